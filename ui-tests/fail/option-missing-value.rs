use ctx::ctx;

#[ctx(timeout)]
async fn fetch() -> Result<(), ctx::Error> {
    Ok(())
}

fn main() {}
