use ctx::ctx;

#[ctx(cooperative = true)]
async fn fetch() -> Result<(), ctx::Error> {
    Ok(())
}

fn main() {}
