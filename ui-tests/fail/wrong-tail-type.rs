use ctx::ctx;

#[ctx]
async fn fetch() -> Result<u32, ctx::Error> {
    Ok("seven")
}

fn main() {}
