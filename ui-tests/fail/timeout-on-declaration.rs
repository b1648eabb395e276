use ctx::ctx;

trait Store {
    #[ctx(timeout = std::time::Duration::from_secs(1))]
    async fn get(&self) -> Result<u32, ctx::Error>;
}

fn main() {}
