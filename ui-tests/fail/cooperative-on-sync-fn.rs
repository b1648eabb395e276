use ctx::ctx;

#[ctx(cooperative)]
fn fetch() -> Result<(), ctx::Error> {
    Ok(())
}

fn main() {}
