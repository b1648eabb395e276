//! `#[ctx]` with `#[tracing::instrument]`, in both orders, on functions and
//! under `#[async_trait]`, without a warning. Above `#[instrument]` (the
//! order the docs give), `ctx` is a parameter it sees: `skip(ctx)` works.
#![deny(warnings)]

use std::time::Duration;

use async_trait::async_trait;
use ctx::{ctx, Context, Error};
use tracing::instrument;

#[ctx]
#[instrument(skip(ctx), err, ret)]
async fn above(id: u32) -> Result<u32, Error> {
    ctx.check()?;
    Ok(id)
}

#[ctx(timeout = Duration::from_secs(1))]
#[instrument(skip_all, fields(id))]
async fn above_with_timeout(id: u32) -> Result<u32, Error> {
    Ok(id)
}

#[ctx]
#[instrument(skip(ctx))]
fn above_sync(id: u32) -> Result<u32, Error> {
    ctx.check()?;
    Ok(id)
}

#[instrument(err)]
#[ctx]
async fn below(id: u32) -> Result<u32, Error> {
    ctx.check()?;
    Ok(id)
}

#[async_trait]
trait Store {
    #[ctx]
    async fn get(&self, id: u32) -> Result<u32, Error>;

    #[ctx]
    async fn put(&self, id: u32) -> Result<u32, Error>;
}

struct Db;

#[async_trait]
impl Store for Db {
    #[ctx]
    #[instrument(skip(self, ctx), err)]
    async fn get(&self, id: u32) -> Result<u32, Error> {
        ctx.check()?;
        Ok(id)
    }

    #[instrument(skip(self))]
    #[ctx(timeout = Duration::from_secs(1))]
    async fn put(&self, id: u32) -> Result<u32, Error> {
        ctx.check()?;
        Ok(id)
    }
}

fn main() {
    let root = Context::background();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        assert_eq!(above(&root, 1).await, Ok(1));
        assert_eq!(above_with_timeout(&root, 2).await, Ok(2));
        assert_eq!(below(&root, 3).await, Ok(3));
        assert_eq!(Db.get(&root, 4).await, Ok(4));
        assert_eq!(Db.put(&root, 5).await, Ok(5));
    });
    assert_eq!(above_sync(&root, 6), Ok(6));
}
