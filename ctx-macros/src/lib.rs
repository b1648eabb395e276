//! Attributes for the [ctx] crate: `#[ctx]`, `#[ctx::main]` and
//! `#[ctx::test]`, with a compile-time lostcancel check, and `#[ctx::check]`
//! with the check alone.
//!
//! Use them through `ctx`, which re-exports them; this crate is an
//! implementation detail and its paths are not API.
//!
//! [ctx]: https://docs.rs/ctx-tree/latest/ctx/

mod args;
mod check;
mod codegen;
mod entry;
mod errors;
mod expand;
mod func;
mod future;
mod lifetimes;

use proc_macro::TokenStream;

/// Gives a function a context: adds `ctx: &ctx::Context` as its first
/// parameter, makes a `Result` function give up when that context is done,
/// and rejects cancel guards dropped at once.
///
/// ```
/// use ctx::ctx;
/// # use std::time::Duration;
/// # #[derive(Debug)] struct AppError(ctx::Error);
/// # impl From<ctx::Error> for AppError { fn from(e: ctx::Error) -> Self { AppError(e) } }
///
/// #[ctx]
/// async fn fetch_user(id: u64) -> Result<String, AppError> {
///     // `ctx: &ctx::Context` is in scope here.
///     tokio::time::sleep(Duration::from_millis(1)).await;
///     Ok(format!("user {id}"))
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let root = ctx::Context::background();
/// // The caller passes the context first.
/// assert_eq!(fetch_user(&root, 7).await.unwrap(), "user 7");
///
/// let (canceled, cancel) = root.with_cancel();
/// cancel.cancel();
/// assert!(matches!(fetch_user(&canceled, 7).await, Err(AppError(ctx::Error::Canceled))));
/// # }
/// ```
///
/// Because `ctx` names both the crate and this attribute, write `use
/// ctx::ctx;` and then `#[ctx]`, or `#[ctx::ctx]` without the import.
///
/// # The parameter
///
/// `ctx: &ctx::Context` goes first, after `self` on methods. Attributes, doc
/// comments, visibility, generics and where-clauses stay; so do the spans of
/// everything the user wrote, so an error in the body points at the body.
/// It works on free functions, inherent methods, trait method declarations
/// and their implementations, sync or `async`. Put `#[ctx]` on both the
/// trait's declaration and each implementation; a declaration without a
/// body only gets the parameter.
///
/// A free function that returns a borrow keeps borrowing from where elision
/// said: `fn first(xs: &[u8]) -> &u8` becomes
/// `fn first<'__ctx_elided>(ctx: &Context, xs: &'__ctx_elided [u8]) -> &'__ctx_elided u8`.
/// A lifetime hidden in a path (`Ref` for `Ref<'a>`) cannot be seen; there,
/// name the lifetimes.
///
/// The `ctx` the body sees resolves from the body's own tokens, not from the
/// attribute's, so `#[ctx]` (and `#[ctx::main]`, `#[ctx::test]`) also work
/// on a function that a `macro_rules!` re-emits
/// (`$(#[$m:meta])* $v:vis async fn $($rest:tt)*`), or around a body a
/// macro was given, where the attribute itself belongs to the macro.
///
/// # Functions that return `Result`
///
/// When the declared return type is spelled `Result<..>` (any path ending in
/// `Result`, so `io::Result<T>` and a crate's own `Result<T>` alias count),
/// the error type must implement `From<ctx::Error>`, and:
///
/// - a context that is already done returns `Err(ctx::Error.into())` at
///   entry, without running the body;
/// - an `async` body (or the async block a function returning a future ends
///   with: see "Under `#[async_trait]`" below) is raced
///   against the context, as
///   [`Context::run`](https://docs.rs/ctx-tree/latest/ctx/struct.Context.html#method.run)
///   does: once the context is done, the body's future is dropped at its
///   next `.await` and the function returns `Err` at once instead of
///   finishing wasted work.
///
/// Any other return type only gets the parameter: there is no value to
/// return early. A return type that is a `Result` under another name (an
/// alias not ending in `Result`) is not recognized; spell it `Result`.
///
/// # `cooperative`
///
/// `#[ctx(cooperative)]` turns the race off: the body always runs to its end
/// and must watch `ctx` itself (`ctx.check()?`, `ctx.done()` in a
/// `select!`), for bodies that must not be dropped halfway, such as one that
/// has to roll back. The entry check stays. On a sync function, or one that
/// does not return `Result`, there is no race, and the option is an error.
///
/// ```
/// # use ctx::ctx;
/// #[ctx(cooperative)]
/// async fn copy_all(items: Vec<u32>) -> Result<usize, ctx::Error> {
///     let mut done = 0;
///     for _item in items {
///         ctx.check()?; // stop between items, never inside one
///         done += 1;
///     }
///     Ok(done)
/// }
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// # assert_eq!(copy_all(&ctx::Context::background(), vec![1, 2]).await, Ok(2));
/// # }
/// ```
///
/// # `timeout = EXPR`
///
/// `#[ctx(timeout = Duration::from_secs(5))]` runs the body under a child
/// context with that timeout (`ctx.with_timeout(EXPR)`); inside, `ctx` is the
/// child. `EXPR` is any expression of type `std::time::Duration`, evaluated
/// on each call, after the parameters are bound, so it may use them. An
/// `async` `Result` function whose body overruns returns
/// `Err(ctx::Error::DeadlineExceeded.into())`. A sync body cannot be
/// interrupted: it sees the deadline through `ctx` and must check it.
///
/// ```
/// # use ctx::ctx;
/// # use std::time::Duration;
/// #[ctx(timeout = Duration::from_millis(10))]
/// async fn slow() -> Result<(), ctx::Error> {
///     tokio::time::sleep(Duration::from_secs(60)).await;
///     Ok(())
/// }
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// assert_eq!(slow(&ctx::Context::background()).await, Err(ctx::Error::DeadlineExceeded));
/// # }
/// ```
///
/// # `owned`
///
/// `#[ctx(owned)]` takes the context by value: `ctx: ctx::Context` comes
/// first, and the body sees it owned, so it can move it into a task. The
/// other options and checks are the same. Use it where a borrowed context
/// cannot go:
///
/// - **axum handlers.** A handler's future must own what it uses, so
///   `#[ctx]` on a handler, which takes `&Context`, fails with axum's
///   "the trait bound `fn(..) {handler}: Handler<_, _>` is not satisfied".
///   With `#[ctx(owned)]`, `ctx: Context` is the first extractor, filled
///   with the request's context by `ctx::http::ContextLayer`:
///
///   ```text
///   #[ctx(owned, timeout = Duration::from_secs(2))]
///   async fn user(Path(id): Path<u64>) -> Result<String, ctx::Error> { .. }
///   // Router::new().route("/users/{id}", get(user)).layer(ContextLayer::new(&root))
///   ```
///
/// - **futures that are spawned**, whose type must be `'static`:
///
/// ```
/// # use ctx::ctx;
/// #[ctx(owned)]
/// async fn count_to(n: u32) -> Result<u32, ctx::Error> {
///     for _ in 0..n {
///         ctx.check()?;
///         tokio::task::yield_now().await;
///     }
///     Ok(n)
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let root = ctx::Context::background();
/// let task = tokio::spawn(count_to(root.clone(), 3));
/// assert_eq!(task.await.unwrap(), Ok(3));
/// # }
/// ```
///
/// # Under `#[async_trait]`
///
/// `#[async_trait]` (and `#[tonic::async_trait]`, which is the same macro)
/// expands before the `#[ctx]` on a method, turning `async fn get(..) -> R`
/// into `fn get<'life0, 'async_trait>(..)`, which returns
/// `Pin<Box<dyn Future<Output = R> + Send + 'async_trait>>` built by
/// `Box::pin(async move { .. })`.
/// `#[ctx]` recognises that output and keeps every promise: the entry
/// check, the race, `timeout`, `cooperative` and `owned` work in the boxed
/// future, and `ctx` is borrowed for `'async_trait`
/// (`ctx: &'__ctx_life Context` with `'__ctx_life: 'async_trait`), so the
/// body can use it. As without async-trait, put `#[ctx]` on the trait's
/// declaration and on each impl, options that change the body on the impls:
///
/// ```
/// use async_trait::async_trait;
/// use ctx::ctx;
/// # use std::time::Duration;
///
/// #[async_trait]
/// trait Store: Send + Sync {
///     #[ctx]
///     async fn get(&self, id: u32) -> Result<u32, ctx::Error>;
/// }
///
/// struct Db;
///
/// #[async_trait]
/// impl Store for Db {
///     #[ctx(timeout = Duration::from_millis(50))]
///     async fn get(&self, id: u32) -> Result<u32, ctx::Error> {
///         ctx.check()?;
///         Ok(id)
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let store: Box<dyn Store> = Box::new(Db);
/// let (canceled, cancel) = ctx::Context::background().with_cancel();
/// cancel.cancel();
/// assert_eq!(store.get(&canceled, 1).await, Err(ctx::Error::Canceled));
/// # }
/// ```
///
/// Other `fn`s that return a future are treated the same way when the
/// future's `Output` is written out (`impl Future<Output = R>`,
/// `Pin<Box<dyn Future<Output = R> ..>>`, `BoxFuture<'_, R>`) and the body
/// ends in the async block it returns (`async move { .. }`,
/// `Box::pin(async move { .. })`, `async move { .. }.boxed()`): the checks
/// go in the block, which gets its own handle on the context (a clone), and
/// statements before it run at the call, as written. When such a function
/// returns a `Result` and its async block cannot be found (it returns a
/// future made elsewhere), that is an error: end the body with
/// `Box::pin(async move { ctx.run(future).await? })`.
///
/// A trait defined elsewhere, such as a service trait tonic generates,
/// cannot take another parameter. There, get the context from the request
/// and pass it to `#[ctx]` code, which keeps its checks:
///
/// ```text
/// #[tonic::async_trait]
/// impl Greeter for MyGreeter {
///     async fn say_hello(&self, request: Request<HelloRequest>) -> Result<Response<HelloReply>, Status> {
///         let ctx = request.context(); // ctx::grpc::RequestExt: deadline from grpc-timeout
///         let reply = self.store.get(&ctx, request.into_inner().id).await?;
///         Ok(Response::new(reply))
///     }
/// }
/// ```
///
/// # With `#[tracing::instrument]`
///
/// Write `#[ctx]` above `#[instrument]`:
///
/// ```text
/// #[ctx]
/// #[instrument(skip(ctx), err)]
/// async fn get(id: u32) -> Result<u32, AppError> { .. }
/// ```
///
/// Attributes expand from the top, so `#[instrument]` then sees `ctx` as a
/// parameter: skip it with `skip(ctx)` (or let it record the context's
/// chain), and its span and its `err` event cover the entry check, the race
/// and the timeout, so a canceled call is recorded. The other way round,
/// `#[instrument]` expands first and never sees `ctx`: `skip(ctx)` is then
/// an error ("attempting to skip non-existent parameter"), the recorded
/// fields are the same without it, and a canceled call returns before the
/// instrumented body starts, with no span and no `err` event. Inside an
/// `#[async_trait]` impl, both go on the method, in the same order.
///
/// # `crate = path`
///
/// Generated code names the crate by absolute paths (`::ctx::Context`,
/// `::ctx::__private::...`), so items of the user's own named `Context`,
/// `Error` or `Result` do not get in the way. When the dependency is
/// renamed, say how it is called: `#[renamed::ctx(crate = renamed)]`.
///
/// # Expansion
///
/// ```text
/// #[ctx(timeout = D)]
/// async fn get(&self, id: u64) -> Result<T, E> { BODY }
/// ```
///
/// becomes, in outline (generated names start with `__ctx_`):
///
/// ```text
/// async fn get(&self, ctx: &::ctx::Context, id: u64) -> Result<T, E> {
///     let (__ctx_child, __ctx_guard) = ctx.with_timeout(D);
///     let ctx = &__ctx_child;
///     match ctx.run(async move { BODY }).await {
///         Ok(out) => out,
///         Err(e) => Err(E::from(e)),
///     }
/// }
/// ```
///
/// A sync or `cooperative` `Result` function instead starts with
/// `if let Some(e) = ctx.err() { return Err(E::from(e)); }` and keeps its
/// body. With `owned`, the parameter is `ctx: ::ctx::Context`, the child
/// context is moved into `ctx`, and the race holds a clone of it, so the
/// body may move `ctx` away.
///
/// Under `#[async_trait]`, the same statements go inside the boxed future,
/// after async-trait's own:
///
/// ```text
/// fn get<'life0, 'async_trait, '__ctx_life>(&'life0 self, ctx: &'__ctx_life ::ctx::Context, id: u64)
///     -> Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'async_trait>>
/// where 'life0: 'async_trait, Self: 'async_trait, '__ctx_life: 'async_trait
/// {
///     Box::pin(async move {
///         let __self = self;   // async-trait moving the parameters in
///         let id = id;
///         let (__ctx_child, __ctx_guard) = ctx.with_timeout(D);
///         let ctx = &__ctx_child;
///         match ctx.run(async move { BODY }).await {
///             Ok(out) => out,
///             Err(e) => Err(E::from(e)),
///         }
///     })
/// }
/// ```
///
/// # The lostcancel check
///
/// Each derivation (`with_cancel`, `with_deadline`, `with_timeout`,
/// `with_deadline_cause`, `with_timeout_cause`, and `ctx::signal::notify`)
/// returns the new context with a `CancelGuard` that cancels it when dropped.
/// A guard dropped at once leaves a context that is canceled before anything
/// uses it: the mistake Go's `go vet` reports as lostcancel. Inside the body
/// of a `#[ctx]`, `#[ctx::main]`, `#[ctx::test]` or [`#[ctx::check]`](macro@check)
/// item, in nested blocks, closures and async blocks, these are compile
/// errors when what they drop is a `CancelGuard` (alone, as the guard of a
/// pair, or in the `io::Result` of `signal::notify`):
///
/// ```text
/// let (c, _) = x.with_cancel();         // error on `_` (and on `..`)
/// let _ = x.with_timeout(d);            // error on `_`
/// x.with_deadline(t);                   // error on the statement
/// (c, _) = x.with_timeout_cause(d, e);  // error on `_`
/// let c = x.with_cancel().0;            // error on `.0`, wherever it stands:
/// spawn(x.with_cancel().0);             // an argument, a field, a receiver
/// let ((c, _), n) = (x.with_cancel(), 1);  // error on `_`, at any depth
/// std::mem::forget(guard);              // error on `forget`: never canceled
/// let c = match x.with_cancel() { (c, _) => c };  // error on `_`
/// ```
///
/// The last one: an arm (or an `if let`) that hands the context out while
/// its guard, left under `_`, is dropped with the scrutinee at the end of
/// the statement. An arm that only uses the context inside runs while the
/// guard is alive, and is fine.
///
/// The check follows types, not names: the macro wraps each discarded
/// value, where it stands, in a call that rustc resolves once it knows the
/// value's type, and only a guard fails. So a guard from a function of your
/// own, from a closure or from each branch of an `if` is caught; a method of
/// another type called `with_timeout`, a tuple of your own, or a `_` whose
/// type is only known from a later line compiles as before. The wrapping
/// returns the value unchanged: every value is dropped where it was.
/// The error is rustc's `E0277` with the message above, on the span shown.
///
/// The fix is to bind the guard and keep it until the work ends:
/// `let (c, _cancel) = x.with_cancel();` (`_cancel` is a name, kept to the
/// end of the scope; `_` is not). A guard bound to a name, moved into a
/// struct, returned, passed to a function, or canceled by hand on some paths
/// is fine.
///
/// What it does not see:
///
/// - a guard dropped through a path it does not look at: a guard bound and
///   then dropped early (`drop(guard)`, a block that ends), a pair moved into
///   a function that drops it, a guard inside another type (`Some(guard)`, a
///   struct) or past the fourth element of a tuple that is not a literal, or
///   a value built inside a macro invocation, whose tokens it does not parse;
/// - a `_` or `..` in a nested tuple pattern over a value that is not a
///   tuple literal (`let ((c, _), n) = make();`: it can name one element of
///   one tuple, not of a tuple in it), and a `..` between two names
///   (`(c, .., g)`) over such a value (over a pair it covers nothing);
/// - a borrowed `.0`: `f(&x.with_cancel().0)` and `let c = &x.with_cancel().0;`
///   keep the pair, guard included, as long as the borrow, which is fine
///   unless `f` keeps a clone of the context;
/// - a call that never returns (type `!`) in place of a discarded value:
///   std's `process::exit`, `process::abort`, `panic_any` and
///   `resume_unwind` are left alone; a function of your own that returns
///   `!`, written as `let _ = stop();`, is reported as a lost guard (write
///   `stop();`, which drops nothing);
/// - a place: `let (c, _) = pair;` moves `c` out and leaves the guard in
///   `pair`, which drops it at the end of its scope: nothing to report;
/// - code outside a checked item: nested `fn` items of a `#[ctx]` function
///   and every other function. There a discarded guard is silent, or, as a
///   bare statement, a `#[must_use]` warning whose help suggests `let _ =`,
///   the same mistake: put `#[ctx::check]` on the function, its `impl` block
///   or its module.
#[proc_macro_attribute]
pub fn ctx(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::ctx(args.into(), item.into()).into()
}

/// Runs an `async fn main` on a tokio runtime, with `ctx` in scope: a root
/// context canceled on SIGINT or SIGTERM (Ctrl-C).
///
/// ```no_run
/// #[ctx::main]
/// async fn main() -> Result<(), ctx::Error> {
///     // Runs until Ctrl-C, then returns cleanly.
///     let why = ctx.done().await;
///     println!("shutting down: {why}");
///     Ok(())
/// }
/// ```
///
/// `ctx` is `&ctx::Context` and comes from
/// [`ctx::signal::notify`](https://docs.rs/ctx-tree/latest/ctx/signal/fn.notify.html): the first signal cancels it
/// (its cause says which signal); a second signal, once it is canceled, ends
/// the process at once, as Ctrl-C does in a program that does not catch it.
/// The body is checked for lost cancel guards as in `#[ctx]`.
///
/// # Options
///
/// - `flavor = "multi_thread"` (the default) or `flavor = "current_thread"`:
///   the tokio runtime to build, as in `#[tokio::main]`;
/// - `worker_threads = N`: the number of worker threads of the
///   `multi_thread` runtime;
/// - `crate = path`: the path the ctx crate is known by, if renamed.
///
/// # Panics
///
/// Before the body runs, if tokio cannot build the runtime, or if the
/// process cannot listen for SIGINT and SIGTERM at all.
///
/// # Expansion
///
/// ```text
/// #[ctx::main]
/// async fn main() -> R { BODY }
/// ```
///
/// becomes (generated names start with `__ctx_`; `::ctx::__private` holds
/// what expansions call and is not API):
///
/// ```text
/// fn main() -> R {
///     // Builds the runtime (tokio's `Builder::new_multi_thread().enable_all()`,
///     // through ctx's own tokio: the program needs no tokio dependency for
///     // this), and runs the closure's future on it under the root context,
///     // `ctx::signal::notify(&Context::background())`, panicking if either
///     // fails.
///     ::ctx::__private::block_on_main(
///         ::ctx::__private::Runtime::multi_thread("ctx::main: failed to build the tokio runtime"),
///         move |__ctx_root: ::ctx::Context| async move {
///             #[allow(unused_variables)] // the user's hygiene: linted as their code
///             let ctx: &::ctx::Context = &__ctx_root;
///             // Pins the tail to `R`, so a wrong one is reported on the body
///             let __ctx_out: R = { BODY };
///             #[allow(unreachable_code)]
///             return __ctx_out;
///         },
///     )
/// }
/// ```
///
/// `R` is `()` without a return type; when it cannot be named in a `let`
/// (`impl Trait`), `BODY`'s statements stand in place of the two
/// `__ctx_out` statements. `flavor = "current_thread"` builds with
/// `Runtime::current_thread(..)`, and `worker_threads = N` adds
/// `.worker_threads(N)` after it.
///
/// `block_on_main` needs ctx's `rt` feature (on by default); without it,
/// the expansion fails to compile with an error that says to enable it.
#[proc_macro_attribute]
pub fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    entry::main(args.into(), item.into()).into()
}

/// Runs an `async fn` as a test on a tokio runtime, with `ctx` in scope.
///
/// ```
/// # use std::time::Duration;
/// #[ctx::test(timeout = Duration::from_secs(5))]
/// async fn finishes_in_time() {
///     assert!(ctx.deadline().is_some());
///     assert!(!ctx.is_done());
/// }
/// # fn main() {}
/// ```
///
/// `ctx` is `&ctx::Context`, a root context for the test. The body is
/// checked for lost cancel guards as in `#[ctx]` (a test body is compiled,
/// and so checked, by `cargo test`).
///
/// # `timeout = EXPR`
///
/// `EXPR` is a `std::time::Duration`. `ctx` gets that timeout; when it
/// expires, the context is canceled and the test fails with a panic message
/// that names the timeout (`#[should_panic(expected = "timeout")]` matches
/// it) and points at the test, even if the body ignores `ctx`: its future is
/// dropped. Without `timeout`, `ctx` is never done while the test runs.
///
/// A body that blocks its thread instead of awaiting (`std::thread::sleep`
/// in a loop, a lock, a busy loop) cannot be dropped, so the runtime and the
/// body run on a thread of their own, and the test's thread is a watchdog
/// on the real clock: at the timeout plus a quarter of a second it cancels
/// `ctx` and fails the test with the same message, adding that the body is
/// left behind on its thread (it ends with the test process). The timeout
/// and the watchdog use the real clock even when tokio's clock is paused.
/// A panic of the body (a failed assertion, `#[should_panic]`) is resumed on
/// the test's thread, so the test fails or passes as it would have. A test
/// that returns a value (`Result<(), E>`) is reported on the body's thread,
/// as the test harness would (`Error: ...` and a failure), and the function
/// returns the `ExitCode`, since the value itself may not be `Send`.
///
/// # `start_paused = true`
///
/// tokio's option, with the same meaning: the test's runtime starts with
/// tokio's clock paused, so `tokio::time::sleep` returns at once in real
/// time, `tokio::time::advance` moves the clock, and an idle runtime jumps
/// to its next timer. On top of tokio's, every deadline of a context
/// derived in the test (on its thread, inside its runtime) is measured on
/// tokio's clock: `deadline()`, `remaining()` and an outgoing
/// `grpc-timeout` read it, and sleeping or advancing past a deadline ends
/// the context by the time the sleep returns.
///
/// ```
/// # use std::time::Duration;
/// #[ctx::test(start_paused = true)]
/// async fn a_slow_call_times_out() {
///     let (call, _cancel) = ctx.with_timeout(Duration::from_secs(30));
///     // Ends at once in real time: the runtime is idle, so tokio's clock
///     // jumps to the deadline.
///     let out = call.run(std::future::pending::<()>()).await;
///     assert_eq!(out, Err(ctx::Error::DeadlineExceeded));
/// }
/// # fn main() {}
/// ```
///
/// The test's own `timeout = ...` stays on the real clock, as does its
/// watchdog: a test that sleeps an hour of tokio's time within a budget of
/// 5 s passes, and one that blocks still fails. So that the two clocks never
/// meet, `ctx` then has no deadline (`ctx.deadline()` is `None`): the
/// watchdog cancels it when the budget runs out (`ctx.err()` is
/// `Canceled`, `ctx.cause()` `DeadlineExceeded`), and the test fails as
/// above. Deadlines elsewhere (other threads, other runtimes) keep the real
/// clock. Without the macro, [`ctx::test_util::use_tokio_clock`](https://docs.rs/ctx-tree/latest/ctx/test_util/fn.use_tokio_clock.html) does the
/// same for a `#[tokio::test(start_paused = true)]`.
///
/// Needs the `test-util` feature of `ctx-tree` (as tokio's own option needs
/// tokio's): without it the test does not compile, and the error says to
/// enable it in `[dev-dependencies]`:
///
/// ```toml
/// [dev-dependencies]
/// ctx-tree = { version = "0.1", features = ["test-util"] }
/// ```
///
/// tokio pauses only a `current_thread` runtime, so `start_paused = true`
/// with `flavor = "multi_thread"` or `worker_threads` is a compile error.
/// `start_paused = false` is the same as leaving the option out.
///
/// # Other options
///
/// - `flavor = "current_thread"` (the default) or `flavor = "multi_thread"`,
///   and `worker_threads = N` (which implies `multi_thread`), as in
///   `#[tokio::test]`;
/// - `crate = path`: the path the ctx crate is known by, if renamed.
///
/// Do not add `#[test]`: this attribute adds it.
///
/// # Expansion
///
/// ```text
/// #[ctx::test(timeout = D)]
/// async fn name() { BODY }
/// ```
///
/// becomes (names as in [`macro@main`]):
///
/// ```text
/// #[::core::prelude::v1::test]
/// fn name() {
///     let __ctx_timeout: ::core::time::Duration = ::ctx::__private::timeout(D);
///     // Makes the root context, with the timeout, runs the closure on a
///     // thread of its own, and fails the test, quoting `D`, if it has not
///     // returned by the timeout plus a grace of 250 ms.
///     ::ctx::__private::test_watchdog(
///         __ctx_timeout,
///         "D",
///         "name",
///         move |__ctx_root: ::ctx::Context| {
///             let __ctx_body = async move {
///                 // Races the body against `__ctx_root` (the body's future is
///                 // dropped if the deadline passes first): `None` if the
///                 // deadline has passed.
///                 let __ctx_out = ::ctx::__private::test_within(&__ctx_root, async {
///                     #[allow(unused_variables)]
///                     let ctx: &::ctx::Context = &__ctx_root;
///                     let __ctx_out: () = { BODY };
///                     #[allow(unreachable_code)]
///                     return __ctx_out;
///                 })
///                 .await;
///                 match __ctx_out {
///                     ::core::option::Option::Some(__ctx_out) => __ctx_out,
///                     // Panics, quoting `D`, at the test's name.
///                     ::core::option::Option::None => ::ctx::__private::test_timed_out(__ctx_timeout, "D"),
///                 }
///             };
///             ::ctx::__private::block_on(
///                 ::ctx::__private::Runtime::current_thread("ctx::test: failed to build the tokio runtime"),
///                 __ctx_body,
///             )
///         },
///     )
/// }
/// ```
///
/// `::ctx::__private::timeout(D)` only checks that `D` is a `Duration`.
/// With a return type `R` other than `()`, the function returns
/// `::std::process::ExitCode`, and the closure ends with
/// `::std::process::Termination::report(..)` of the runtime's result.
/// Without `timeout` there is no thread and no race: the body is built as in
/// [`macro@main`], with `let (__ctx_root, __ctx_guard) =
/// ::ctx::Context::with_cancel(&::ctx::Context::background());` as its root,
/// and `R` kept. `flavor` and `worker_threads` are as there.
///
/// `start_paused = true` calls `::ctx::__private::block_on_paused` instead
/// of `block_on`: it builds the runtime with tokio's clock paused and runs
/// the body with [`ctx::test_util::use_tokio_clock`](https://docs.rs/ctx-tree/latest/ctx/test_util/fn.use_tokio_clock.html)'s guard held on its
/// thread; with `timeout`, `test_watchdog_paused` stands for
/// `test_watchdog` and gives the root no deadline. `block_on` needs ctx's
/// `rt` feature and `block_on_paused` its `test-util` feature: without
/// them the expansion does not compile, with an error that names the
/// feature.
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    entry::test(args.into(), item.into()).into()
}

/// The lostcancel check of [`#[ctx]`](macro@ctx), alone: for code that takes
/// its context by hand, or that `#[ctx]` does not fit.
///
/// Put it on a function, an `impl` block, a trait or an inline
/// `mod { ... }`: every function body inside, nested functions included, is
/// checked as a `#[ctx]` body is (see [the lostcancel
/// check](macro@ctx#the-lostcancel-check)), and nothing else changes: no
/// parameter is added, no body is raced. Functions inside that have
/// `#[ctx]`, `#[ctx::main]` or `#[ctx::test]` are checked once. A `const fn`
/// and a `const` or `static` initializer are left as written: the check's
/// calls are not `const`, and no guard can be made there.
///
/// ```
/// use ctx::Context;
///
/// struct Store;
///
/// #[ctx::check]
/// impl Store {
///     fn get(&self, parent: &Context, key: u32) -> Option<u32> {
///         // `let (ctx, _) = ...` here would not compile: the guard would
///         // cancel `ctx` at once.
///         let (ctx, _cancel) = parent.with_cancel();
///         ctx.check().ok().map(|()| key)
///     }
/// }
///
/// assert_eq!(Store.get(&Context::background(), 7), Some(7));
/// ```
///
/// Go: `go vet`'s lostcancel analyzer, for the code it covers.
///
/// # `crate = path`
///
/// The path the ctx crate is known by, if renamed, as for `#[ctx]`.
///
/// # Expansion
///
/// The item as written, with each discarded value wrapped in its check:
///
/// ```text
/// let (ctx, _) = parent.with_cancel();
/// // becomes
/// let (ctx, _) = ::ctx::__private::lostcancel::TupleWithCancel::front::<1, _>(
///     parent.with_cancel(),
/// )
/// .__lostcancel(0);
/// ```
///
/// The call returns its argument; its bounds hold for every type but a
/// guard at that place (`ctx::__private::lostcancel` explains how).
#[proc_macro_attribute]
pub fn check(args: TokenStream, item: TokenStream) -> TokenStream {
    check::attribute(args.into(), item.into()).into()
}
