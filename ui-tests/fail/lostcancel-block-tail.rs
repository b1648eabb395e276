use ctx::ctx;

#[ctx]
fn fetch() {
    let _ = {
        let pair = ctx.with_cancel();
        pair
    };
}

fn main() {}
