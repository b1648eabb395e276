// A forgotten guard never cancels: its context lives as long as the process.
use ctx::ctx;

#[ctx]
fn fetch() -> bool {
    let (child, cancel) = ctx.with_cancel();
    std::mem::forget(cancel);
    child.is_done()
}

fn main() {}
