#[ctx::check]
struct Worker {
    _id: u32,
}

fn main() {}
