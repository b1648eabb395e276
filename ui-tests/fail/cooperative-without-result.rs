use ctx::ctx;

#[ctx(cooperative)]
async fn fetch() -> u32 {
    1
}

fn main() {}
