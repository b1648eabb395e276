use std::mem;

use ctx::ctx;

#[ctx]
fn fetch() {
    mem::forget(ctx.with_cancel());
}

fn main() {}
