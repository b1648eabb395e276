// A body that does not parse (an edit in progress) gets rustc's own syntax
// error, and nothing from the macro.
use ctx::ctx;

#[ctx]
async fn fetch() -> Result<u32, ctx::Error> {
    let id = ;
    Ok(id)
}

fn main() {}
