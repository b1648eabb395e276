//! `#[ctx]` goes on the methods inside an `#[async_trait]` impl, not on the
//! impl block above it.
use async_trait::async_trait;
use ctx::ctx;

#[async_trait]
trait Store {
    async fn get(&self, id: u32) -> Result<u32, ctx::Error>;
}

struct Db;

#[ctx]
#[async_trait]
impl Store for Db {
    async fn get(&self, id: u32) -> Result<u32, ctx::Error> {
        Ok(id)
    }
}

fn main() {}
