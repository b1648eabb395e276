//! Request fan-out: one handler, three subtasks, one scope.
//!
//! The handler of a request looks up the caller's identity, reads their
//! orders from the database and validates their token, all at once. If any
//! of the three fails, or the request itself is canceled (the client went
//! away), the other two stop at once, and the handler answers with the first
//! failure. `ctx::scope` does the bookkeeping: the first error cancels the
//! group context, whose cause says why, and the scope returns only once all
//! three subtasks have stopped.
//!
//! Run: `cargo run --example fanout`

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ctx::Context;
use tokio::sync::Semaphore;

include!("support/narration.rs");

/// Why a request failed.
#[derive(Debug)]
pub enum HandlerError {
    /// The request's context ended (client gone, deadline passed).
    Ctx(ctx::Error),
    Unauthorized(&'static str),
}

impl From<ctx::Error> for HandlerError {
    fn from(err: ctx::Error) -> Self {
        HandlerError::Ctx(err)
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandlerError::Ctx(err) => write!(f, "{err}"),
            HandlerError::Unauthorized(why) => write!(f, "unauthorized: {why}"),
        }
    }
}

impl std::error::Error for HandlerError {}

/// How one backend call behaves in a scenario: it answers after `after`,
/// or fails then with the given error.
#[derive(Clone, Copy)]
pub struct Call {
    after: Duration,
    fails_with: Option<fn() -> HandlerError>,
}

/// Quick enough for a demo.
const FAST: Duration = Duration::from_millis(5);
/// A call that would hold the request for a long time if nothing stopped it.
pub const SLOW: Duration = Duration::from_secs(30);

pub fn ok(after: Duration) -> Call {
    Call {
        after,
        fails_with: None,
    }
}

pub fn fails(after: Duration, err: fn() -> HandlerError) -> Call {
    Call {
        after,
        fails_with: Some(err),
    }
}

/// The three backends of one scenario.
#[derive(Clone, Copy)]
pub struct Backends {
    pub identity: Call,
    pub database: Call,
    pub token: Call,
}

/// What each subtask ended with, printed in a fixed order once the scope is
/// over (the subtasks themselves finish in any order).
#[derive(Default)]
struct Outcomes {
    identity: Mutex<String>,
    database: Mutex<String>,
    token: Mutex<String>,
}

/// One backend call: waits `call.after` unless the context ends first.
async fn backend(
    ctx: &Context,
    call: Call,
    started: &Semaphore,
    outcome: &Mutex<String>,
) -> Result<(), HandlerError> {
    started.add_permits(1);
    if let Err(err) = ctx.run(tokio::time::sleep(call.after)).await {
        let cause = ctx.cause().map(|c| c.to_string()).unwrap_or_default();
        *outcome.lock().unwrap() = format!("stopped early ({err}; cause: {cause})");
        return Err(err.into());
    }
    match call.fails_with {
        Some(err) => {
            let err = err();
            *outcome.lock().unwrap() = format!("failed: {err}");
            Err(err)
        }
        None => {
            *outcome.lock().unwrap() = "done".to_string();
            Ok(())
        }
    }
}

/// The request handler: three subtasks in one scope.
pub async fn handle(
    request: &Context,
    backends: Backends,
    started: Arc<Semaphore>,
    say: Say,
) -> Result<String, HandlerError> {
    let outcomes = Arc::new(Outcomes::default());
    let o = outcomes.clone();
    let result = ctx::scope(request, |s| async move {
        let (o1, st1) = (o.clone(), started.clone());
        let user = s.spawn(move |ctx| async move {
            backend(&ctx, backends.identity, &st1, &o1.identity).await?;
            Ok("alice")
        });
        let (o2, st2) = (o.clone(), started.clone());
        let orders = s.spawn(move |ctx| async move {
            backend(&ctx, backends.database, &st2, &o2.database).await?;
            Ok(3)
        });
        let (o3, st3) = (o.clone(), started.clone());
        s.spawn(move |ctx| async move {
            backend(&ctx, backends.token, &st3, &o3.token).await?;
            Ok(())
        });
        // If a subtask fails, these handles resolve with the group's error and
        // `?` ends the body; the scope still returns the first real error.
        let (user, orders) = (user.await?, orders.await?);
        Ok(format!("{user} has {orders} orders"))
    })
    .await;
    say(format!("  identity: {}", outcomes.identity.lock().unwrap()));
    say(format!("  database: {}", outcomes.database.lock().unwrap()));
    say(format!("  token:    {}", outcomes.token.lock().unwrap()));
    result
}

/// Client went away: the cause the server records on the request context.
#[derive(Debug)]
pub struct ClientGone;

impl fmt::Display for ClientGone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("client disconnected")
    }
}

impl std::error::Error for ClientGone {}

/// Runs one request; `cancel_when_started` plays a client that hangs up once
/// all three subtasks are running.
async fn request(name: &str, backends: Backends, cancel_when_started: bool, say: Say) {
    say(format!("{name}:"));
    let (ctx, cancel) = Context::background().with_cancel();
    let started = Arc::new(Semaphore::new(0));
    let begin = Instant::now();
    let handler = tokio::spawn({
        let (started, say) = (started.clone(), say.clone());
        async move { handle(&ctx, backends, started, say).await }
    });
    if cancel_when_started {
        started.acquire_many(3).await.unwrap().forget();
        cancel.cancel_with_cause(ClientGone);
    }
    let result = handler.await.expect("the handler panicked");
    let early = begin.elapsed() < SLOW / 3;
    match result {
        Ok(body) => say(format!("  -> 200 OK: {body}")),
        Err(err) => say(format!(
            "  -> error: {err}{}",
            if early {
                " (answered without waiting for the slow calls)"
            } else {
                ""
            }
        )),
    }
}

pub async fn story(say: Say) {
    let all_fine = Backends {
        identity: ok(FAST),
        database: ok(FAST * 2),
        token: ok(FAST),
    };
    request(
        "request 1, every backend answers",
        all_fine,
        false,
        say.clone(),
    )
    .await;

    let bad_token = Backends {
        identity: ok(SLOW),
        database: ok(SLOW),
        token: fails(FAST, || HandlerError::Unauthorized("token expired")),
    };
    request(
        "request 2, the token is expired",
        bad_token,
        false,
        say.clone(),
    )
    .await;

    let slow_everything = Backends {
        identity: ok(SLOW),
        database: ok(SLOW),
        token: ok(SLOW),
    };
    request(
        "request 3, the client hangs up",
        slow_everything,
        true,
        say.clone(),
    )
    .await;
}

// `pub`: the tour and the tests include this file as a `pub mod` and never call it.
#[tokio::main]
pub async fn main() {
    story(Arc::new(|line| println!("{line}"))).await;
}
