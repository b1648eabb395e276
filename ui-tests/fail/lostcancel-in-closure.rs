use std::time::Duration;

use ctx::ctx;

#[ctx]
fn fetch() {
    let run = || {
        let (child, _) = ctx.with_timeout(Duration::from_secs(1));
        child.is_done()
    };
    run();
}

fn main() {}
