use ctx::ctx;

#[ctx(timeout = 5)]
async fn fetch() -> Result<(), ctx::Error> {
    Ok(())
}

fn main() {}
