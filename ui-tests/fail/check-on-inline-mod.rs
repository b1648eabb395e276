#[ctx::check]
mod handlers {
    use ctx::Context;

    pub fn call(parent: &Context) {
        parent.with_cancel();
    }

    pub fn nested(parent: &Context) -> bool {
        fn helper(parent: &Context) -> bool {
            let (child, ..) = parent.with_cancel();
            child.is_done()
        }
        helper(parent)
    }
}

fn main() {}
