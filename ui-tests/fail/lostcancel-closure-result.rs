// The pair's type is known only by inference through the closure.
use ctx::ctx;

#[ctx]
fn fetch() -> bool {
    let derive = || ctx.with_cancel();
    let (child, _) = derive();
    child.is_done()
}

fn main() {}
