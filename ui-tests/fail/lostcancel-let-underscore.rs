use std::time::Duration;

use ctx::ctx;

#[ctx]
async fn fetch() -> Result<(), ctx::Error> {
    let _ = ctx.with_timeout(Duration::from_secs(1));
    Ok(())
}

fn main() {}
