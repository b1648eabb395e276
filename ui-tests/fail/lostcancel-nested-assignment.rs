// A `_` inside a nested tuple on the left of `=` drops the guard of the
// pair it stands in.
use ctx::{ctx, Context};

#[ctx]
fn fetch() -> bool {
    let mut child = Context::background();
    let attempts;
    ((child, _), attempts) = (ctx.with_cancel(), 3);
    child.is_done() || attempts == 0
}

fn main() {}
