#[ctx::main(flavor = "single_thread")]
async fn main() {
    let _ = ctx;
}
