#[ctx::main(timeout = std::time::Duration::from_secs(1))]
async fn main() {
    let _ = ctx;
}
