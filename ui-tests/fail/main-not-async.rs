#[ctx::main]
fn main() {
    let _ = ctx;
}
