// Without `?`, the whole `io::Result` with the pair in it is dropped.
use ctx::ctx;

#[ctx]
fn serve() {
    let _ = ctx::signal::notify(ctx);
}

fn main() {}
