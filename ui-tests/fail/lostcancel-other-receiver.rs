use ctx::{ctx, Context};

#[ctx]
fn fetch(parent: &Context) {
    let (child, _) = parent.with_cancel();
    let _ = (child, ctx);
}

fn main() {}
