// The arm hands the context out; the guard under `_` stays in the
// scrutinee and is dropped at the end of the statement.
use ctx::{ctx, Context};

#[ctx]
fn child() -> Context {
    let child = match ctx.with_cancel() {
        (c, _) => c,
    };
    child
}

fn main() {}
