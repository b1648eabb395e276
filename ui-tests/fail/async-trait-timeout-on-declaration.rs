//! Under `#[async_trait]` too, options that change the body go on the
//! implementations.
use async_trait::async_trait;
use ctx::ctx;

#[async_trait]
trait Store {
    #[ctx(timeout = std::time::Duration::from_secs(1))]
    async fn get(&self) -> Result<u32, ctx::Error>;
}

fn main() {}
