//! A `fn` returning a future of `Result` must end in the async block it
//! returns: `#[ctx]` cannot race a future made elsewhere.
use std::future::Future;
use std::pin::Pin;

use ctx::ctx;

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

fn lookup(id: u32) -> BoxFuture<'static, Result<u32, ctx::Error>> {
    Box::pin(async move { Ok(id) })
}

#[ctx]
fn get(id: u32) -> BoxFuture<'static, Result<u32, ctx::Error>> {
    lookup(id)
}

fn main() {}
