use ctx::{ctx, Context};

#[ctx]
fn fetch() -> bool {
    let mut child = Context::background();
    assert!(!child.is_done());
    (child, _) = ctx.with_cancel();
    child.is_done()
}

fn main() {}
