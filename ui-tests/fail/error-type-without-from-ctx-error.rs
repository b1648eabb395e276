use ctx::ctx;

#[derive(Debug)]
struct AppError;

#[ctx]
async fn fetch() -> Result<u32, AppError> {
    Ok(1)
}

fn main() {}
