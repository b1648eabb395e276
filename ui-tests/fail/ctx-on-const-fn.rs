use ctx::ctx;

#[ctx]
const fn answer() -> Result<u32, ctx::Error> {
    Ok(42)
}

fn main() {}
