// A method called on `.0` hands out a context (a clone, a child) whose
// guard is dropped with the statement.
use ctx::ctx;

struct RequestId(u64);

#[ctx]
fn start() -> bool {
    let copy = ctx.with_cancel().0.clone();
    let child = ctx.with_cancel().0.with_value(RequestId(7));
    copy.is_done() || child.value::<RequestId>().is_some_and(|id| id.0 == 7)
}

fn main() {}
