// A `..` inside a nested tuple pattern drops the guard of the pair it
// stands in, where the value is a tuple literal.
use std::time::Duration;

use ctx::ctx;

#[ctx]
fn fetch() -> bool {
    let (attempts, (child, ..)) = (3, ctx.with_timeout(Duration::from_secs(1)));
    child.is_done() || attempts == 0
}

fn main() {}
