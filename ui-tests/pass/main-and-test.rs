//! `#[ctx::main]` with options, and `#[ctx::test]`, compile without
//! warnings.
#![deny(warnings)]

#[ctx::test(timeout = std::time::Duration::from_secs(1), flavor = "multi_thread", worker_threads = 2)]
async fn a_test() {
    assert!(!ctx.is_done());
}

#[ctx::main(flavor = "current_thread")]
async fn main() -> Result<(), ctx::Error> {
    assert!(!ctx.is_done());
    assert_eq!(ctx.deadline(), None);
    ctx.check()
}
