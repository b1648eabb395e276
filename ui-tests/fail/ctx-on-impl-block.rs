use ctx::ctx;

struct Server;

#[ctx]
impl Server {
    fn serve(&self) {}
}

fn main() {}
