//! `#[ctx(owned)]`: `ctx: ctx::Context` by value, for axum handlers and
//! functions whose future is spawned; with every other option, on methods
//! and trait methods, without a warning.
#![deny(warnings)]

use std::time::Duration;

use ctx::{ctx, Context, Error};

#[ctx(owned)]
async fn spawnable(n: u32) -> Result<u32, Error> {
    ctx.check()?;
    Ok(n)
}

#[ctx(owned)]
async fn moves_ctx_into_a_task() -> Result<bool, Error> {
    let task = tokio::spawn(async move { ctx.is_done() });
    Ok(task.await.unwrap())
}

// Unused `ctx`, under a timeout: no warning.
#[ctx(owned, timeout = Duration::from_secs(1))]
async fn ignores_ctx() -> Result<(), Error> {
    Ok(())
}

#[ctx(owned, cooperative)]
async fn cooperative() -> Result<(), Error> {
    ctx.check()
}

#[ctx(owned)]
fn sync_owned() -> Result<Context, Error> {
    Ok(ctx)
}

#[ctx(owned, timeout = Duration::from_secs(5))]
fn sync_owned_child() -> Option<Duration> {
    ctx.remaining()
}

trait Worker {
    #[ctx(owned)]
    async fn work(&self) -> Result<u32, Error>;
}

struct Fixed(u32);

impl Worker for Fixed {
    #[ctx(owned)]
    async fn work(&self) -> Result<u32, Error> {
        Ok(self.0)
    }
}

fn main() {
    let root = Context::background();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        // `'static`: the future does not borrow the context.
        let task = tokio::spawn(spawnable(root.clone(), 3));
        assert_eq!(task.await.unwrap(), Ok(3));
        assert_eq!(moves_ctx_into_a_task(root.clone()).await, Ok(false));
        assert_eq!(ignores_ctx(root.clone()).await, Ok(()));
        assert_eq!(cooperative(root.clone()).await, Ok(()));
        assert_eq!(Fixed(4).work(root.clone()).await, Ok(4));
    });
    assert!(!sync_owned(root.clone()).unwrap().is_done());
    assert!(sync_owned_child(root).is_some());
}
