//! The lostcancel check still reads the body async-trait rewrote, and
//! points at the user's `_`.
use async_trait::async_trait;
use ctx::ctx;

#[async_trait]
trait Store {
    #[ctx]
    async fn get(&self, id: u32) -> Result<u32, ctx::Error>;
}

struct Db;

#[async_trait]
impl Store for Db {
    #[ctx]
    async fn get(&self, id: u32) -> Result<u32, ctx::Error> {
        let (ctx, _) = ctx.with_cancel();
        ctx.check()?;
        Ok(id)
    }
}

fn main() {}
