//! `#[ctx]` changes the signature: it goes on the trait's declaration as
//! well as on each impl.
use async_trait::async_trait;
use ctx::ctx;

#[async_trait]
trait Store {
    async fn get(&self, id: u32) -> Result<u32, ctx::Error>;
}

struct Db;

#[async_trait]
impl Store for Db {
    #[ctx]
    async fn get(&self, id: u32) -> Result<u32, ctx::Error> {
        ctx.check()?;
        Ok(id)
    }
}

fn main() {}
