// A bare `.0` statement drops the context and its guard at once.
use ctx::ctx;

#[ctx]
fn start() {
    ctx.with_cancel().0;
}

fn main() {}
