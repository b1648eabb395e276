//! `#[instrument]` written above `#[ctx]` expands first, before `ctx` is a
//! parameter: it cannot skip it. Write `#[ctx]` above `#[instrument]`.
use ctx::ctx;
use tracing::instrument;

#[instrument(skip(ctx))]
#[ctx]
async fn get(id: u32) -> Result<u32, ctx::Error> {
    Ok(id)
}

fn main() {}
