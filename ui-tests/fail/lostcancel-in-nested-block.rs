use ctx::ctx;

#[ctx]
fn fetch(retry: bool) {
    if retry {
        for _ in 0..3 {
            let (_child, _) = ctx.with_cancel();
        }
    }
}

fn main() {}
