use ctx::ctx;

#[ctx]
fn fetch() {
    _ = ctx.with_cancel();
}

fn main() {}
