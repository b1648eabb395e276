use std::time::Duration;

use ctx::ctx;

#[ctx]
fn fetch(fast: bool) -> bool {
    let (child, _) = if fast {
        ctx.with_timeout(Duration::from_millis(10))
    } else {
        ctx.with_cancel()
    };
    child.is_done()
}

fn main() {}
