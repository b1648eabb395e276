//! A request-scoped log id, read by every layer through `value`.
//!
//! The handler puts a `RequestId` into the request's context once; the
//! service and the repository below it never take it as a parameter, yet
//! every line they log carries it.
//!
//! Run: `cargo run --example logid`

use std::sync::Arc;

use ctx::Context;

include!("support/narration.rs");

/// The key and the value in one: a newtype per meaning.
#[derive(Debug, Clone, Copy)]
pub struct RequestId(pub u64);

fn log(ctx: &Context, say: &Say, message: &str) {
    match ctx.value::<RequestId>() {
        Some(RequestId(id)) => say(format!("[req {id}] {message}")),
        None => say(format!("[no request] {message}")),
    }
}

fn repository(ctx: &Context, say: &Say, user: &str) -> u32 {
    log(ctx, say, &format!("repository: loading {user}"));
    42
}

fn service(ctx: &Context, say: &Say, user: &str) -> u32 {
    log(ctx, say, "service: checking permissions");
    let (ctx, _cancel) = ctx.with_cancel(); // derived contexts keep the value
    repository(&ctx, say, user)
}

fn handler(root: &Context, say: &Say, request_id: u64, user: &str) {
    let ctx = root.with_value(RequestId(request_id));
    log(&ctx, say, &format!("handler: GET /users/{user}"));
    let score = service(&ctx, say, user);
    log(&ctx, say, &format!("handler: responding {score}"));
}

pub fn story(say: Say) {
    let root = Context::background();
    handler(&root, &say, 7, "ada");
    handler(&root, &say, 8, "bob");
    log(&root, &say, "server: idle");
}

// `pub`: the tour and the tests include this file as a `pub mod` and never call it.
pub fn main() {
    story(Arc::new(|line| println!("{line}")));
}
