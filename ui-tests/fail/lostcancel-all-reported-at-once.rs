use std::time::Duration;

use ctx::ctx;

#[ctx]
fn fetch() {
    let _ = ctx.with_cancel();
    let (_a, _) = ctx.with_timeout(Duration::from_secs(1));
    ctx.with_cancel();
}

fn main() {}
