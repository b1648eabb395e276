// `.0` passed to a function: the guard is dropped with the statement, so the
// worker gets a canceled context.
use ctx::{ctx, Context};

fn spawn_worker(ctx: Context) -> bool {
    ctx.is_done()
}

#[ctx]
fn start() -> bool {
    let done = spawn_worker(ctx.with_cancel().0);
    done
}

fn main() {}
