//! Runs until Ctrl-C (SIGINT) or SIGTERM, then shuts down cleanly.
//!
//! `cargo run --example signal`, then press Ctrl-C: the work in progress
//! returns at once with `Err`, and `main` returns `Ok`. With `--stubborn`
//! it ignores the first signal and keeps running, so a second Ctrl-C ends
//! the process by SIGINT (a shell shows exit status 130), as it would for a
//! program that does not catch signals. `tests/macro_main.rs` runs both.

use std::time::Duration;

use ctx::ctx;

/// Stands for real work: a `#[ctx]` function returning `Result` ends as
/// soon as its context does.
#[ctx]
async fn serve() -> Result<(), ctx::Error> {
    tokio::time::sleep(Duration::from_secs(3600)).await;
    Ok(())
}

#[ctx::main]
async fn main() -> Result<(), ctx::Error> {
    let stubborn = std::env::args().any(|arg| arg == "--stubborn");
    println!("ready: press Ctrl-C to stop");
    let err = serve(ctx).await.expect_err("served for an hour");
    let cause = ctx.cause().expect("a done context has a cause");
    println!("canceled: {err} ({cause})");
    if stubborn {
        println!("ignoring it");
        std::future::pending::<()>().await;
    }
    Ok(())
}
