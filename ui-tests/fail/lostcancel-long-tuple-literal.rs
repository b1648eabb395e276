// Past the fourth element the traits cannot name a guard's place, but in a
// tuple literal the `_` picks the value itself.
use ctx::ctx;

#[ctx]
fn fetch() -> bool {
    let (child, cancel) = ctx.with_cancel();
    let (a, b, c, d, _) = (1, 2, 3, child.clone(), cancel);
    a + b + c == 0 || d.is_done() || child.is_done()
}

fn main() {}
