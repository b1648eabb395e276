#[ctx::check(timeout = 5)]
fn call(parent: &ctx::Context) -> bool {
    parent.is_done()
}

fn main() {}
