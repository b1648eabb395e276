//! How the request contexts of a [`ContextLayer`] end: the guard that ends
//! each one ([`RequestGuard`]), the layer's counts by cause ([`Stats`]),
//! and, with the `tracing` feature, one event per request.
//!
//! # Counting without a shared hot spot
//!
//! Every end is counted, so the counters are on the path of every request.
//! They belong to the layer (an `Arc` its clones and services share; no
//! global state, nothing in ctx's own cancel path), split into shards of
//! one cache line each. A thread always counts in the same shard, chosen
//! once per thread, so requests ending on different threads touch
//! different lines; a relaxed add is all a count costs. [`Stats`] is the
//! sum over the shards at the time it is read.

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use super::server::{Abandoned, HandlerPanicked};
#[cfg(doc)]
use super::ContextLayer;
use crate::{CancelGuard, Context, Error};

/// How the request contexts of a [`ContextLayer`] ended, counted by cause:
/// what [`ContextLayer::stats`] returns.
///
/// Each request context is counted once, when the layer lets go of it, by
/// the cause it ended with:
///
/// - [`completed`](Stats::completed): the layer ended it (a plain cancel)
///   because the response was written in full, or the handler or its body
///   returned an error: the request's normal end;
/// - [`canceled`](Stats::canceled): the server's root was canceled (a
///   shutdown) first;
/// - [`deadline_exceeded`](Stats::deadline_exceeded): its deadline
///   passed first (the caller's `grpc-timeout`, or the layer's default or
///   maximum);
/// - [`abandoned`](Stats::abandoned): the response was dropped before it
///   was written in full (the cause [`Abandoned`]: the client went away);
/// - [`handler_panicked`](Stats::handler_panicked): the handler or its
///   body panicked (the cause [`HandlerPanicked`]).
///
/// The counts cover the layer, its clones and every service they made;
/// each only grows. Requests still running are in none of them. A request
/// context the layer ends itself (completed, abandoned, handler panicked)
/// is counted before it is canceled, so a task that saw it end sees it
/// counted; one that ended first (deadline, canceled) is counted when the
/// layer lets go of it: when it answers for the handler (503, 504), before
/// that answer is returned, or, for a [cooperative](ContextLayer::cooperative)
/// layer, when the response ends.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::time::Duration;
/// use ctx::http::ContextLayer;
/// use tower::{Layer, ServiceExt};
///
/// let layer = ContextLayer::new(&ctx::Context::background()).max_timeout(Duration::from_millis(10));
/// let svc = layer.layer(tower::service_fn(|req: http::Request<()>| async move {
///     if req.uri().path() == "/slow" {
///         tokio::time::sleep(Duration::from_secs(60)).await;
///     }
///     Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
/// }));
/// let fast = svc.clone().oneshot(http::Request::new(())).await.unwrap();
/// drop(fast); // an empty body: written in full
/// let slow = svc.oneshot(http::Request::get("/slow").body(()).unwrap()).await.unwrap();
/// assert_eq!(slow.status(), 504);
///
/// let stats = layer.stats();
/// assert_eq!((stats.completed(), stats.deadline_exceeded()), (1, 1));
/// assert_eq!(stats.ended(), 2);
/// # }
/// ```
///
/// Go: none; `net/http` counts nothing, and expvar or a metrics library
/// would be fed by hand.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Stats {
    // Private, so a cause added later breaks no one.
    completed: u64,
    canceled: u64,
    deadline_exceeded: u64,
    abandoned: u64,
    handler_panicked: u64,
}

impl Stats {
    /// Request contexts the layer ended itself: the response was written in
    /// full, or the handler or its body failed.
    ///
    /// ```
    /// assert_eq!(ctx::http::Stats::default().completed(), 0);
    /// ```
    pub fn completed(&self) -> u64 {
        self.completed
    }

    /// Request contexts canceled from above first: the server's root was
    /// canceled ([`Error::Canceled`], whatever the root's cause).
    ///
    /// ```
    /// assert_eq!(ctx::http::Stats::default().canceled(), 0);
    /// ```
    pub fn canceled(&self) -> u64 {
        self.canceled
    }

    /// Request contexts whose deadline passed first
    /// ([`Error::DeadlineExceeded`]).
    ///
    /// ```
    /// assert_eq!(ctx::http::Stats::default().deadline_exceeded(), 0);
    /// ```
    pub fn deadline_exceeded(&self) -> u64 {
        self.deadline_exceeded
    }

    /// Request contexts ended with the cause [`Abandoned`]: the response
    /// was dropped before it was written in full.
    ///
    /// ```
    /// assert_eq!(ctx::http::Stats::default().abandoned(), 0);
    /// ```
    pub fn abandoned(&self) -> u64 {
        self.abandoned
    }

    /// Request contexts ended with the cause [`HandlerPanicked`].
    ///
    /// ```
    /// assert_eq!(ctx::http::Stats::default().handler_panicked(), 0);
    /// ```
    pub fn handler_panicked(&self) -> u64 {
        self.handler_panicked
    }

    /// All the request contexts that ended: the sum of the others.
    ///
    /// ```
    /// assert_eq!(ctx::http::Stats::default().ended(), 0);
    /// ```
    pub fn ended(&self) -> u64 {
        self.completed
            .saturating_add(self.canceled)
            .saturating_add(self.deadline_exceeded)
            .saturating_add(self.abandoned)
            .saturating_add(self.handler_panicked)
    }
}

/// How one request context ended: the index of its counter, and its name
/// in the ending event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    Completed,
    Canceled,
    DeadlineExceeded,
    Abandoned,
    HandlerPanicked,
}

impl End {
    const COUNT: usize = 5;

    #[cfg(feature = "tracing")]
    fn as_str(self) -> &'static str {
        match self {
            End::Completed => "completed",
            End::Canceled => "canceled",
            End::DeadlineExceeded => "deadline_exceeded",
            End::Abandoned => "abandoned",
            End::HandlerPanicked => "handler_panicked",
        }
    }
}

/// How many shards a layer's counters have: enough that the threads of a
/// usual runtime rarely share one.
const SHARDS: usize = 16;

/// A layer's counters: see the [module docs](self).
pub(super) struct Counters {
    shards: [Shard; SHARDS],
}

/// One thread's counters (or a few threads'), alone on its cache line (128
/// bytes: two lines, as the adjacent-line prefetcher of x86 pairs them).
#[repr(align(128))]
#[derive(Default)]
struct Shard([AtomicU64; End::COUNT]);

impl Counters {
    pub(super) fn new() -> Counters {
        Counters {
            shards: Default::default(),
        }
    }

    fn count(&self, end: End) {
        self.shards[shard_index()].0[end as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// The sums, as of now.
    pub(super) fn stats(&self) -> Stats {
        let sum = |end: End| {
            self.shards
                .iter()
                .map(|shard| shard.0[end as usize].load(Ordering::Relaxed))
                .fold(0u64, u64::saturating_add)
        };
        Stats {
            completed: sum(End::Completed),
            canceled: sum(End::Canceled),
            deadline_exceeded: sum(End::DeadlineExceeded),
            abandoned: sum(End::Abandoned),
            handler_panicked: sum(End::HandlerPanicked),
        }
    }
}

impl fmt::Debug for Counters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.stats(), f)
    }
}

/// The calling thread's shard: given out round-robin at the thread's first
/// count, then fixed.
fn shard_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    // A count from a thread-local's destructor, after this one is gone,
    // shares shard 0.
    INDEX.try_with(|index| *index).unwrap_or(0)
}

/// How the layer lets go of a request context.
enum How {
    /// A plain cancel: the response was written in full, the handler
    /// failed, or the context had ended already.
    Plain,
    Abandoned,
    Panicked(HandlerPanicked),
}

/// The request context's guard, with what the layer needs to report its
/// end: the one way the layer ends a request context.
///
/// Dropping it is a plain cancel; [`abandon`](RequestGuard::abandon) and
/// [`panicked`](RequestGuard::panicked) end with those causes. Each way
/// counts the end in the layer's [`Stats`] and, with `tracing`, logs the
/// ending event: once, whichever comes first.
pub(super) struct RequestGuard {
    /// Taken by the first end.
    guard: Option<CancelGuard>,
    /// The request context: whether it had ended before the layer let go,
    /// and its deadline, for the event; the race reads it too (one clone
    /// for both).
    ctx: Context,
    /// The layer's.
    counters: Arc<Counters>,
    /// The request's span and start, for the event.
    report: report::Report,
}

impl RequestGuard {
    pub(super) fn new(
        guard: CancelGuard,
        ctx: &Context,
        counters: &Arc<Counters>,
        span: &super::server::RequestSpan,
    ) -> RequestGuard {
        RequestGuard {
            guard: Some(guard),
            ctx: ctx.clone(),
            counters: counters.clone(),
            report: report::Report::new(span),
        }
    }

    /// The request context.
    #[inline]
    pub(super) fn context(&self) -> &Context {
        &self.ctx
    }

    /// Ends the request context with the cause [`Abandoned`] (unless it had
    /// ended already).
    pub(super) fn abandon(mut self) {
        self.end(How::Abandoned);
    }

    /// Ends the request context with `cause` (unless it had ended already).
    pub(super) fn panicked(mut self, cause: HandlerPanicked) {
        self.end(How::Panicked(cause));
    }

    fn end(&mut self, how: How) {
        let Some(guard) = self.guard.take() else {
            return;
        };
        // Read before the cancel below: a context that had ended keeps its
        // own cause, and is counted by it.
        let end = match (self.ctx.err(), &how) {
            (Some(Error::DeadlineExceeded), _) => End::DeadlineExceeded,
            (Some(Error::Canceled), _) => End::Canceled,
            (None, How::Plain) => End::Completed,
            // Dropped with its deadline passed, before the timer thread got
            // to it: a timeout above that fired at the same deadline (tonic
            // reads `grpc-timeout` too, outside every layer), not a client
            // that went away.
            (None, How::Abandoned) if self.ctx.deadline_passed() => End::DeadlineExceeded,
            (None, How::Abandoned) => End::Abandoned,
            (None, How::Panicked(_)) => End::HandlerPanicked,
        };
        // Counted before the cancel: whoever sees the context end by the
        // layer's hand sees it counted.
        self.counters.count(end);
        match how {
            How::Plain => guard.cancel(),
            How::Abandoned if end == End::DeadlineExceeded => guard.expire(),
            How::Abandoned => guard.cancel_with_cause(Abandoned),
            How::Panicked(cause) => guard.cancel_with_cause(cause),
        }
        self.report.ended(end, &self.ctx);
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.end(How::Plain);
    }
}

/// The ending event: real with the `tracing` feature, nothing without.
mod report {
    #[cfg(feature = "tracing")]
    use std::fmt;
    #[cfg(feature = "tracing")]
    use std::time::{Duration, Instant};

    use super::End;
    use crate::http::server::RequestSpan;
    use crate::Context;
    #[cfg(feature = "tracing")]
    use crate::Error;

    /// The request's span and when the layer made its context.
    #[cfg(feature = "tracing")]
    pub(super) struct Report {
        span: RequestSpan,
        started: Instant,
    }

    #[cfg(not(feature = "tracing"))]
    pub(super) struct Report;

    #[cfg(feature = "tracing")]
    impl Report {
        pub(super) fn new(span: &RequestSpan) -> Report {
            Report {
                span: span.clone(),
                started: Instant::now(),
            }
        }

        /// Logs the one event of the request context's end, in the
        /// request's span: `debug` for a request that completed, `info`
        /// for one ended early, `warn` for a handler panic.
        pub(super) fn ended(&self, end: End, ctx: &Context) {
            let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
            // The fields are worked out only when the event is enabled.
            // The cause's text may hold a panic message: escaped.
            macro_rules! ended {
                ($level:expr) => {
                    tracing::event!(
                        target: "ctx::http::server",
                        parent: &self.span,
                        $level,
                        end = end.as_str(),
                        cause = ?Escaped(ctx.cause().unwrap_or_else(|| Error::Canceled.into())),
                        elapsed_us = micros(self.started.elapsed()),
                        deadline_left_us = ctx.remaining().map(micros),
                        "request context ended"
                    )
                };
            }
            match end {
                End::Completed => ended!(tracing::Level::DEBUG),
                End::HandlerPanicked => ended!(tracing::Level::WARN),
                End::Canceled | End::DeadlineExceeded | End::Abandoned => {
                    ended!(tracing::Level::INFO)
                }
            }
        }
    }

    /// Writes text that may hold anything (a cause's text holds a panic's
    /// message) as a quoted, escaped string, as `str`'s `Debug` does (and
    /// `'` too), so it cannot fake fields or lines in a plain-text log.
    #[cfg(feature = "tracing")]
    pub(super) struct Escaped<T>(pub(super) T);

    #[cfg(feature = "tracing")]
    impl<T: fmt::Display> fmt::Debug for Escaped<T> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            use fmt::Write;
            /// Escapes each piece the `Display` writes.
            struct Escape<'a, 'b>(&'a mut fmt::Formatter<'b>);
            impl fmt::Write for Escape<'_, '_> {
                fn write_str(&mut self, s: &str) -> fmt::Result {
                    write!(self.0, "{}", s.escape_debug())
                }
            }
            f.write_char('"')?;
            write!(Escape(f), "{}", self.0)?;
            f.write_char('"')
        }
    }

    #[cfg(not(feature = "tracing"))]
    impl Report {
        #[inline]
        pub(super) fn new(_: &RequestSpan) -> Report {
            Report
        }

        #[inline]
        pub(super) fn ended(&self, _: End, _: &Context) {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "tracing")]
    #[test]
    fn escaped_text_cannot_fake_a_field_or_a_line() {
        let text = "a\" request_id=\"forged\"\nnext line \\";
        let written = format!("{:?}", report::Escaped(text));
        assert_eq!(written, r#""a\" request_id=\"forged\"\nnext line \\""#);
        assert_eq!(written, format!("{text:?}"), "as str's Debug");
    }

    #[test]
    fn a_shard_is_a_cache_line_pair_of_its_own() {
        assert_eq!(std::mem::align_of::<Shard>(), 128);
        assert_eq!(std::mem::size_of::<Shard>(), 128);
    }

    #[test]
    fn counts_from_many_threads_add_up() {
        let counters = Arc::new(Counters::new());
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let counters = counters.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        counters.count(End::Completed);
                    }
                    counters.count(End::Abandoned);
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let stats = counters.stats();
        assert_eq!(stats.completed(), 8000);
        assert_eq!(stats.abandoned(), 8);
        assert_eq!(stats.ended(), 8008);
    }

    #[test]
    fn a_context_that_ended_first_is_counted_by_its_own_cause() {
        let counters = Arc::new(Counters::new());
        let span = super::super::server::test_span();
        let end = |ctx: &Context, guard: CancelGuard, how: How| {
            let mut request = RequestGuard::new(guard, ctx, &counters, &span);
            request.end(how);
        };

        let (root, stop) = Context::background().with_cancel();
        let (ctx, guard) = root.with_cancel();
        stop.cancel();
        end(&ctx, guard, How::Abandoned);
        assert!(ctx.cause().unwrap().downcast_ref::<Abandoned>().is_none());

        let (ctx, guard) = Context::background().with_timeout(std::time::Duration::ZERO);
        end(
            &ctx,
            guard,
            How::Panicked(HandlerPanicked::from_payload(&"boom")),
        );

        let (ctx, guard) = Context::background().with_cancel();
        end(
            &ctx,
            guard,
            How::Panicked(HandlerPanicked::from_payload(&"boom")),
        );
        assert!(ctx
            .cause()
            .unwrap()
            .downcast_ref::<HandlerPanicked>()
            .is_some());

        let (ctx, guard) = Context::background().with_cancel();
        drop(RequestGuard::new(guard, &ctx, &counters, &span));
        assert_eq!(ctx.err(), Some(Error::Canceled));

        let stats = counters.stats();
        assert_eq!(
            (
                stats.canceled(),
                stats.deadline_exceeded(),
                stats.handler_panicked(),
                stats.completed(),
                stats.abandoned()
            ),
            (1, 1, 1, 1, 0)
        );
    }
}
