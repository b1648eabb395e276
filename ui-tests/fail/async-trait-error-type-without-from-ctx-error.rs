//! Under `#[async_trait]`, a missing `From<ctx::Error>` is still reported
//! on the user's error type.
use async_trait::async_trait;
use ctx::ctx;

#[derive(Debug)]
struct AppError;

#[async_trait]
trait Store {
    #[ctx]
    async fn get(&self, id: u32) -> Result<u32, AppError>;
}

struct Db;

#[async_trait]
impl Store for Db {
    #[ctx]
    async fn get(&self, id: u32) -> Result<u32, AppError> {
        Ok(id)
    }
}

fn main() {}
