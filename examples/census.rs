//! The census: which contexts are still alive, and which line made each.
//!
//! A small service makes two classic mistakes: it keeps each request's
//! context in a session cache (the request ends, its context stays), and it
//! starts a background refresher whose guard it forgets (nothing will ever
//! cancel it). While a scope is serving a query, it prints
//! `ctx::debug::live()`: both mistakes show, with their lines.
//!
//! Run: `cargo run --example census --features debug`

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ctx::{Context, Error};

include!("support/narration.rs");

/// Sessions by user, each with the context of the request that opened it:
/// the first mistake (a context stored past its request).
#[derive(Default)]
pub struct Sessions(Mutex<HashMap<u32, Context>>);

/// A request: a budget of 30 s, and a session that keeps its context.
fn login(root: &Context, user: u32, sessions: &Sessions) {
    let (ctx, _cancel) = root.with_timeout(Duration::from_secs(30));
    sessions.0.lock().unwrap().insert(user, ctx);
} // `_cancel` drops: the request's context is done, but the cache holds it

/// A refresher that runs until its context ends; its guard is forgotten:
/// the second mistake (nothing will ever cancel it but the root).
fn start_refresher(root: &Context) {
    let (ctx, guard) = root.with_cancel();
    std::mem::forget(guard);
    tokio::spawn(async move {
        ctx.done().await;
    });
}

/// Runs the service and returns the census it printed.
pub async fn story(say: Say) -> String {
    let (root, _stop) = Context::background().with_cancel();
    let sessions = Sessions::default();
    login(&root, 7, &sessions);
    start_refresher(&root);
    tokio::task::yield_now().await; // the refresher starts waiting

    let census = ctx::scope(&root, |s| async move {
        let query = s.spawn(|ctx| async move {
            let (_query, _cancel) = ctx.with_timeout(Duration::from_secs(2));
            Ok(ctx::debug::live().to_string())
        });
        query.await
    })
    .await
    .unwrap_or_else(|err: Error| format!("the scope failed: {err}"));

    say("the census, taken while a scope serves a query:".to_string());
    for line in census.lines() {
        say(format!("  {line}"));
    }
    census
}

// `pub`: a test includes this file as a `pub mod` and never calls it.
#[tokio::main]
pub async fn main() {
    story(Arc::new(|line| println!("{line}"))).await;
}
