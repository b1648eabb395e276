use std::time::Duration;

use ctx::ctx;

#[ctx(timeout = Duration::from_secs(1), timeout = Duration::from_secs(2))]
async fn fetch() -> Result<(), ctx::Error> {
    Ok(())
}

fn main() {}
