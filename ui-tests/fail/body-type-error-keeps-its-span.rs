use ctx::ctx;

#[ctx]
async fn fetch() -> Result<u32, ctx::Error> {
    let id: u32 = "seven";
    Ok(id)
}

fn main() {}
