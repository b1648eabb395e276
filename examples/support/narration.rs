// The narration type every example's `story` takes: one definition instead
// of a copy per example.
//
// An example is built three ways: as its own binary (`cargo run --example
// gen`), as a module of `examples/tour.rs`, and as a module of a test in
// `tests/` (through `#[path]`). Each example therefore pastes this file in
// with `include!("support/narration.rs");`, whose path is resolved from the
// directory of the file that holds it, so the same line works in all three
// builds. (A `#[path] mod` in each example would load this file as a module
// several times into the tour and the tests, which clippy rejects as
// `duplicate_mod`.) Where several examples are built into one crate, each
// has its own copy of the alias, and all the copies are one type. Being
// pasted in, this file has no `use` lines, which could clash with the
// example's own. Cargo does not build `examples/support/` as an example.
//
// `http_server.rs` narrates fixed `&str` lines through its own `Fn(&str)`
// type, which its callers and tests are written against.

/// Where a story says what happens, one line at a time: `println!` when an
/// example runs alone, an indented printer in the tour, a recorder in the
/// tests.
pub type Say = std::sync::Arc<dyn Fn(String) + Send + Sync>;
