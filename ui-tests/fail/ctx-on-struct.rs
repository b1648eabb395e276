use ctx::ctx;

#[ctx]
struct Server {
    port: u16,
}

fn main() {}
