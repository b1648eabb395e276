// `#[ctx::check]` checks code that takes its context by hand.
use ctx::Context;

struct Service;

#[ctx::check]
impl Service {
    fn call(&self, parent: &Context) -> bool {
        let (child, _) = parent.with_cancel();
        child.is_done()
    }
}

fn main() {}
