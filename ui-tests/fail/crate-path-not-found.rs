#[ctx::ctx(crate = not_a_crate)]
fn fetch() {}

fn main() {}
