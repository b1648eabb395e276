use ctx::ctx;

#[ctx]
async fn fetch() -> Result<(), ctx::Error> {
    let (ctx, _) = ctx.with_cancel();
    ctx.check()
}

fn main() {}
