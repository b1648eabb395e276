//! Go's `context` for async Rust: cancellation, deadlines and request-scoped
//! values that flow down every call, with cancel guards the compiler checks
//! and task groups that cannot leak.
//!
//! # The model
//!
//! A [`Context`] is a handle to one node of a tree. The roots,
//! [`Context::background`] and [`Context::todo`], are never done. Every other
//! context is derived from a parent and ends (becomes *done*) when the parent
//! does, when its own deadline passes, or when it is canceled, whichever comes
//! first. Ending flows down the tree, never up: canceling a child leaves its
//! parent alone.
//!
//! ```
//! use ctx::{Context, Error};
//!
//! let root = Context::background();
//! let (request, cancel_request) = root.with_cancel();
//! let (query, _cancel_query) = request.with_cancel();
//!
//! cancel_request.cancel();
//! assert_eq!(query.err(), Some(Error::Canceled)); // reached the child
//! assert_eq!(root.err(), None); // not the root
//! ```
//!
//! Code that may block takes a context as its first parameter, named `ctx`,
//! checks [`ctx.err()`](Context::err) (one atomic load) or
//! [`ctx.check()?`](Context::check) between steps, and waits with
//! [`ctx.done()`](Context::done) (a future for any executor) or
//! [`ctx.wait_blocking()`](Context::wait_blocking) (plain threads).
//! [`ctx.run(fut)`](Context::run) races a future against the context.
//!
//! # Guards: why dropping cancels
//!
//! Every cancelable derivation returns the new context and a [`CancelGuard`].
//! The guard cancels when it is dropped, so every path out of the function
//! that owns it (an early `return`, a `?`, a panic) releases the context and
//! its timer: what `defer cancel()` does in Go, and what `go vet`'s
//! `lostcancel` check can only warn about, the type system enforces. Bind the
//! guard to a name (`_cancel` is fine) for as long as the work runs; `let _ =`
//! would drop it at once. [`CancelGuard::handle`] gives a cloneable
//! [`CancelHandle`] to cancel from elsewhere.
//!
//! # Deadlines
//!
//! [`with_deadline`](Context::with_deadline) and
//! [`with_timeout`](Context::with_timeout) end a context with
//! [`Error::DeadlineExceeded`] when the time comes: never early, with or
//! without an async runtime, from one shared timer thread (no thread or task
//! per context). A child's deadline is never later than its parent's:
//! [`deadline()`](Context::deadline) reports the earliest on the path to the
//! root, and [`remaining()`](Context::remaining) the time left, ready to be
//! sent to the next service.
//!
//! # Values
//!
//! [`with_value`](Context::with_value) attaches request-scoped data (a
//! request id, the caller's identity), found by type with
//! [`value::<T>()`](Context::value). Use a newtype per meaning, so that two
//! libraries cannot collide. Values are for data that belongs to the request,
//! not for optional parameters.
//!
//! ```
//! struct RequestId(u64);
//! let ctx = ctx::Context::background().with_value(RequestId(7));
//! let (ctx, _cancel) = ctx.with_cancel();
//! assert_eq!(ctx.value::<RequestId>().map(|id| id.0), Some(7));
//! ```
//!
//! # Causes
//!
//! [`err()`](Context::err) says *that* a context ended, [`cause()`](Context::cause)
//! says *why*. The rules are Go's: the first cancellation of a context or of
//! an ancestor sets the cause and nothing changes it afterwards; a plain
//! cancel or a deadline records the matching [`Error`];
//! [`cancel_with_cause`](CancelGuard::cancel_with_cause),
//! [`with_deadline_cause`](Context::with_deadline_cause) and failed scope tasks
//! record their error as a [`Cause`]; a child canceled by its parent reports
//! the parent's cause.
//!
//! # Scopes
//!
//! [`scope`] runs a group of tasks under one child context: the first error
//! cancels the others, a panic is resumed in the caller after its siblings
//! stop, and no task outlives the scope (Go's `errgroup`, without the leaks).
//! Its tasks run on tokio (feature `scope`, on by default).
//!
//! # Rules of use
//!
//! - Pass the context explicitly, first, as `ctx: &Context`; do not store it
//!   in structs (except those that represent one request).
//! - Keep each guard until the work it bounds is over.
//! - Never block forever on anything but `ctx.done()` or something that
//!   watches it.
//! - `Context::todo()` marks code that has not been given a context yet.
//!
//! # Macros
//!
//! [`#[ctx]`](macro@ctx) adds the `ctx: &ctx::Context` parameter, returns
//! promptly when the context ends, and rejects discarded guards at compile
//! time; `#[ctx::main]` gives `main` a context canceled by Ctrl-C, and
//! `#[ctx::test]` a test with a timeout, on tokio's paused clock if asked
//! (`start_paused = true`, feature `test-util`). These two build a tokio
//! runtime (feature `rt`, on by default).
//!
//! # Threads
//!
//! ctx works on any executor and on plain threads, so it keeps what must
//! run on its own in a few threads of its own, each started on first use:
//!
//! | thread | what it does | how many | feature |
//! | --- | --- | --- | --- |
//! | `ctx-timer` | fires every deadline of the process (cancels the nodes) | one; restarted if it ever dies | always |
//! | `ctx-callback` | runs `after_func` callbacks fired by a deadline, and drops of user values the timer held last | 0 to 64: started on demand, ended after 10 s idle | always |
//! | `ctx-signal` | watches SIGINT and SIGTERM, on a one-thread tokio runtime of its own, for `signal::notify` and `#[ctx::main]` | one, for the life of the process, once used | `signal` |
//!
//! The only user code `ctx-timer` runs is the `wake` of the wakers that
//! `done()` futures registered (every executor's waker is quick, as wakers
//! must be); callbacks and drops of user values go to `ctx-callback`. User
//! code on these threads is contained: a panic there (even one whose
//! payload panics again when dropped) ends neither the thread nor the
//! process. The deadlines of a
//! test on tokio's paused clock (`test-util`) are tasks of the test's own
//! runtime instead, and start no thread.
//!
//! # Cargo features
//!
//! The core (contexts, guards, deadlines, values, `done()`, the blocking
//! waits) needs no async runtime and no feature. Three default features
//! add what needs tokio; with `default-features = false` ctx does not
//! depend on tokio at all.
//!
//! | feature | default | gives | tokio features it enables |
//! | --- | --- | --- | --- |
//! | `scope` | yes | `ctx::scope`, `Scope`, `TaskHandle` | `rt`, `sync`, `macros` |
//! | `signal` | yes | `ctx::signal` (contexts canceled by Ctrl-C) | `rt`, `sync`, `macros`, `signal` |
//! | `rt` | yes | what `#[ctx::main]` and `#[ctx::test]` run on; implies `signal` | `rt`, `rt-multi-thread`, `time` |
//! | `test-util` | no | `#[ctx::test(start_paused = true)]`, `ctx::test_util`; implies `rt` | `test-util` |
//! | `http` | no | `ctx::http`: request ids, `grpc-timeout` | none |
//! | `tower` | no | the tower layers of `ctx::http`; implies `http` | `rt` (`DetachLayer` spawns) |
//! | `axum` | no | `Context` and `RequestId` as axum handler arguments; implies `tower` | as `tower` |
//! | `tonic` | no | `ctx::grpc`; implies `tower` | as `tower` |
//! | `tracing` | no | request spans, and scope tasks in their spawner's span | none |
//!
//! `#[ctx]` and `#[ctx::check]` work without any feature;
//! `#[ctx::main]` and `#[ctx::test]` without `rt` (and `start_paused =
//! true` without `test-util`) do not compile, with an error that names the
//! feature to enable.
//!
//! # Across the network
//!
//! Behind cargo features, all off by default (see [Cargo
//! features](#cargo-features)): `http` and `tower` give every
//! HTTP request its own context, canceled when the client goes away, with
//! the caller's `grpc-timeout` as its deadline and a request id as a value,
//! and make outgoing calls carry the deadline on (`ctx::http`, Go's
//! `r.Context()`); `axum` makes `ctx: ctx::Context` a handler argument;
//! `tonic` does the same for gRPC (`ctx::grpc`); `tracing` logs the request
//! id in a span around each request, and makes every scope task run in the
//! span that was current where it was spawned.
//!
//! # Seeing inside
//!
//! Behind the cargo feature `debug`, `ctx::debug::live()` lists every
//! cancelable context not yet freed, as a tree, with the line that derived
//! each, whether it is done, its age and deadline: a forgotten guard or a
//! context kept past its request shows up with its `file:line`. Without the
//! feature nothing is recorded and nothing is paid.
#![warn(missing_docs)]
#![doc(test(attr(deny(warnings))))]

mod after_func;
mod cancel;
mod clock;
mod context;
#[cfg(feature = "debug")]
pub mod debug;
mod done;
mod error;
#[cfg(feature = "tonic")]
pub mod grpc;
#[cfg(feature = "http")]
pub mod http;
mod loom;
mod pool;
#[cfg(feature = "scope")]
mod scope;
// tokio has no signal support in loom builds; the loom models need neither
// signals nor the macro helpers.
#[cfg(all(feature = "signal", not(loom)))]
pub mod signal;
mod slab;
#[cfg(feature = "test-util")]
pub mod test_util;
mod timer;
mod tree;
mod unwind;
mod value;

#[cfg(not(loom))]
#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use after_func::AfterFunc;
pub use cancel::{CancelGuard, CancelHandle};
pub use context::Context;
pub use done::{Done, DoneOwned};
pub use error::{Cause, Error};
#[cfg(feature = "scope")]
pub use scope::{scope, Scope, TaskHandle};

pub use ctx_macros::{check, ctx, main, test};
