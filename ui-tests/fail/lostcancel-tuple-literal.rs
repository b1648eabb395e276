// The guard is moved into a tuple whose `_` drops it.
use ctx::ctx;

#[ctx]
fn fetch() -> bool {
    let (child, cancel) = ctx.with_cancel();
    let (child, _) = (child, cancel);
    child.is_done()
}

fn main() {}
