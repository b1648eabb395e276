#[ctx::main]
async fn main(args: Vec<String>) {
    let _ = (ctx, args);
}
