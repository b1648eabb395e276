//! What the check does not look at compiles: nested items, methods of
//! other types with another arity, nested tuple patterns over a value that
//! is not a tuple literal, and code outside `#[ctx]`.
#![deny(warnings)]

use std::time::Duration;

use ctx::{ctx, Context};

struct Builder;

impl Builder {
    fn with_timeout(&self, _connect: Duration, _read: Duration) -> Builder {
        Builder
    }
    fn with_cancel(&self, _yes: bool) {}
}

#[ctx]
fn nested_items_are_not_this_body() {
    fn helper(parent: &Context) {
        // Not checked: another function. (`let _ =` also silences
        // `#[must_use]`; this is the mistake, made outside `#[ctx]`.)
        let _ = parent.with_cancel();
    }
    helper(ctx);
}

#[ctx]
fn same_name_other_arity() {
    let _ = Builder.with_timeout(Duration::from_secs(1), Duration::from_secs(2));
    Builder.with_cancel(true);
}

/// A pair inside a pair: what a macro cannot take apart without the types.
fn nested_pair(parent: &Context) -> ((Context, ctx::CancelGuard), u8) {
    (parent.with_cancel(), 3)
}

#[ctx]
fn nested_pattern_over_a_call() -> bool {
    // The limit: the `_` is two steps into the value, and the traits name
    // one step. (Over a tuple literal, `(ctx.with_cancel(), 3)`, it is
    // reported.)
    let ((child, _), attempts) = nested_pair(ctx);
    child.is_done() && attempts == 3
}

fn main() {
    let root = Context::background();
    nested_items_are_not_this_body(&root);
    same_name_other_arity(&root);
    // The limit's cost: the guard is gone, the context canceled.
    assert!(nested_pattern_over_a_call(&root));
}
