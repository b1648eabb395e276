//! Compile-time behaviour of `#[ctx]`, `#[ctx::main]` and `#[ctx::test]`:
//! every misuse in `ui-tests/fail` must fail with its checked-in `.stderr`,
//! every idiom in `ui-tests/pass` must compile.
//!
//! Regenerate snapshots with `TRYBUILD=overwrite`, then review each diff.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui-tests/fail/*.rs");
    t.pass("ui-tests/pass/*.rs");
}
