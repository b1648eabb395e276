use std::time::Instant;

use ctx::ctx;

#[ctx]
fn fetch() {
    let _ = ctx.with_deadline_cause(Instant::now(), std::fmt::Error);
}

fn main() {}
