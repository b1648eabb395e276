use ctx::{ctx, Context};

#[ctx]
fn fetch(id: u64, ctx: &Context) -> u64 {
    let _ = ctx;
    id
}

fn main() {}
