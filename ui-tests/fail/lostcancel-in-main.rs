#[ctx::main]
async fn main() {
    let _ = ctx.with_cancel();
}
