use ctx::ctx;

#[ctx(deadline = 5)]
fn fetch() {}

fn main() {}
