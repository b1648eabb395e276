// `.0` moved into a struct: the guard is dropped with the statement.
use std::time::Duration;

use ctx::{ctx, Context};

struct Worker {
    ctx: Context,
}

#[ctx]
fn start() -> bool {
    let worker = Worker {
        ctx: ctx.with_timeout(Duration::from_secs(1)).0,
    };
    worker.ctx.is_done()
}

fn main() {}
