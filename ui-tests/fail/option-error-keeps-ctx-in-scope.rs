// Only the option is reported: `ctx` is still injected, so its uses in
// the body raise no "cannot find value `ctx`" errors.
use ctx::ctx;

#[ctx(retries = 3)]
async fn fetch() -> Result<(), ctx::Error> {
    ctx.check()?;
    ctx.check()
}

fn main() {}
