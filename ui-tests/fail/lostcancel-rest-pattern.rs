use ctx::ctx;

#[ctx]
fn fetch() -> bool {
    let (child, ..) = ctx.with_cancel();
    child.is_done()
}

fn main() {}
