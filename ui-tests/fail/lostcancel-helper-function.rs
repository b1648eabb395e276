// The guard comes from a function of the user's: the type says it is one.
use ctx::{ctx, CancelGuard, Context};

fn child_of(parent: &Context) -> (Context, CancelGuard) {
    parent.with_cancel()
}

#[ctx]
fn fetch() -> bool {
    let (child, _) = child_of(ctx);
    child.is_done()
}

fn main() {}
