// A `_` inside a nested tuple pattern drops the guard of the pair it stands
// in, where the value is a tuple literal.
use ctx::ctx;

#[ctx]
fn fetch() -> bool {
    let ((child, _), attempts) = (ctx.with_cancel(), 3);
    child.is_done() || attempts == 0
}

fn main() {}
