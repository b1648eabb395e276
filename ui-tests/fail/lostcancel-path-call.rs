use ctx::{ctx, Context};

#[ctx]
fn fetch() -> bool {
    let (child, _) = Context::with_cancel(ctx);
    child.is_done()
}

fn main() {}
