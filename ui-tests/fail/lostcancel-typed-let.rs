use ctx::{ctx, CancelGuard, Context};

#[ctx]
fn fetch() -> bool {
    let (child, _): (Context, CancelGuard) = ctx.with_cancel();
    child.is_done()
}

fn main() {}
