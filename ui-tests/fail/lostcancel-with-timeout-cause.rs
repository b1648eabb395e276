use std::time::Duration;

use ctx::ctx;

#[ctx]
fn fetch() {
    let (child, _) = ctx.with_timeout_cause(Duration::from_secs(1), std::fmt::Error);
    let _ = child;
}

fn main() {}
