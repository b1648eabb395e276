// A nested tuple pattern in a match arm that hands its context out: the
// guard under `_` is dropped with the scrutinee.
use ctx::{ctx, Context};

#[ctx]
fn fetch() -> Context {
    match (ctx.with_cancel(), 3) {
        ((child, _), _) => child,
    }
}

fn main() {}
