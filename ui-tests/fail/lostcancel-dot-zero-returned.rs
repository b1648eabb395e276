// `.0` returned, by `return` or as the tail: the guard is dropped before
// the caller sees the context.
use ctx::{ctx, Context};

#[ctx]
fn early(stop: bool) -> Context {
    if stop {
        return ctx.with_cancel().0;
    }
    ctx.clone()
}

#[ctx::check]
fn tail(parent: &Context) -> Context {
    parent.with_cancel().0
}

#[ctx::check]
fn notified(parent: &Context) -> std::io::Result<Context> {
    Ok(ctx::signal::notify(parent)?.0)
}

fn main() {}
