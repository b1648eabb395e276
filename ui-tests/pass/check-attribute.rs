//! `#[ctx::check]` checks without injecting `ctx`: guards kept by hand
//! compile, with their signatures unchanged.
#![deny(warnings)]

use ctx::{CancelGuard, Context};

struct Service;

#[ctx::check]
impl Service {
    fn call(&self, parent: &Context) -> bool {
        let (child, _cancel) = parent.with_cancel();
        child.is_done()
    }

    #[ctx::ctx]
    fn with_injected_ctx(&self) -> bool {
        let (child, _cancel) = ctx.with_cancel();
        child.is_done()
    }
}

#[ctx::check]
trait Derive {
    fn derive(&self, parent: &Context) -> (Context, CancelGuard) {
        parent.with_cancel()
    }
}

impl Derive for Service {}

#[ctx::check]
mod handlers {
    use ctx::Context;

    pub fn call(parent: &Context) -> bool {
        let (child, _cancel) = parent.with_cancel();
        let (_, other) = parent.with_cancel();
        drop(other);
        child.is_done()
    }
}

#[ctx::check(crate = ctx)]
fn free(parent: &Context) -> bool {
    let (child, _cancel) = parent.with_cancel();
    child.is_done()
}

fn main() {
    let root = Context::background();
    assert!(!Service.call(&root));
    assert!(!Service.with_injected_ctx(&root));
    let (child, _cancel) = Service.derive(&root);
    assert!(!child.is_done());
    assert!(!handlers::call(&root));
    assert!(!free(&root));
}
