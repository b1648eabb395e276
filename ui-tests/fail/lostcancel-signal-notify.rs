use ctx::ctx;

#[ctx]
fn serve() -> std::io::Result<bool> {
    let (child, _) = ctx::signal::notify(ctx)?;
    Ok(child.is_done())
}

fn main() {}
