use std::time::Instant;

use ctx::ctx;

#[ctx]
fn fetch() {
    ctx.with_deadline(Instant::now());
}

fn main() {}
