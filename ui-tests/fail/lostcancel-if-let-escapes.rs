use std::time::Duration;

use ctx::{ctx, Context};

#[ctx]
#[allow(irrefutable_let_patterns)]
fn child() -> Option<Context> {
    if let (c, ..) = ctx.with_timeout(Duration::from_secs(1)) {
        Some(c)
    } else {
        None
    }
}

fn main() {}
