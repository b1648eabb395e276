use std::time::Duration;

use ctx::ctx;

#[ctx]
fn fetch() -> bool {
    let child = ctx.with_timeout(Duration::from_secs(1)).0;
    child.is_done()
}

fn main() {}
