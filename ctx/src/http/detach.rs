//! Detached handlers: [`DetachLayer`] runs a handler to completion in a
//! task of its own, under a context the client's disconnect cannot cancel.
//!
//! The layer makes a [`DetachService`], whose calls return a
//! [`ResponseFuture`]. The layer and the service are also at
//! [`ctx::http`](super).

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{ready, Context as TaskContext, Poll};

use http::header::HeaderValue;
use http::{Request, Response, StatusCode};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tower_layer::Layer;
use tower_service::Service;

use super::server::{grpc_status_headers, panicked, Protocol, ServerRoot};
use super::RequestExt;
use crate::{AfterFunc, CancelGuard, Context, Error};

/// A tower layer for routes whose work must finish even if the client goes
/// away (a payment, an upload's bookkeeping): the handler runs to
/// completion in a tokio task of its own.
///
/// The handler gets a detached context in place of the request context:
///
/// - it keeps the request context's values (the [`RequestId`](super::RequestId)
///   among them) and its deadline;
/// - it is **not** canceled when the client disconnects, nor when the
///   request context ends for any other reason of its own;
/// - it **is** canceled by the server's root (the `root` given to
///   [`ContextLayer::new`](super::ContextLayer::new)), with the root's
///   cause, so a shutdown still reaches detached work;
/// - it ends (a plain cancel) when the handler returns, as Go's request
///   context ends when `ServeHTTP` returns; a handler that panics ends it
///   with [`HandlerPanicked`](super::HandlerPanicked), and the panic goes on
///   to the caller as it would without the layer.
///
/// While the client waits, it gets the handler's response as usual. If it
/// goes away first (or the request context ends and
/// [`ContextLayer`](super::ContextLayer) answers for the handler), this
/// layer's future is dropped, the handler runs on, and its response is
/// discarded when it comes.
///
/// Put it inside a [`ContextLayer`](super::ContextLayer), on the routes
/// that need it (axum's `route_layer`). Without one outside it, it refuses
/// the request without calling the handler: a 500 Internal Server Error,
/// or for a gRPC request HTTP 200 with `grpc-status` 13 (`INTERNAL`) and
/// the reason in `grpc-message` (for gRPC-Web with the request's gRPC-Web
/// `content-type`); with the `tracing` feature it also logs the reason as
/// an error event. The body of that answer is the handler
/// body type's `Default` (empty, for the common body types), since the
/// layer cannot write into a body type it does not know. It refuses the
/// same way outside a tokio runtime, which it needs for the task.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use axum::{routing::post, Router};
/// use ctx::http::{ContextLayer, DetachLayer};
/// use tower::ServiceExt;
///
/// async fn charge(ctx: ctx::Context) -> &'static str {
///     // Runs to the end even if the client hangs up; a shutdown still
///     // cancels `ctx`.
///     let _ = ctx.remaining(); // the request's deadline, if it had one
///     "charged"
/// }
///
/// let root = ctx::Context::background();
/// let app = Router::new()
///     .route("/charge", post(charge))
///     .route_layer(DetachLayer::new())
///     .layer(ContextLayer::new(&root));
/// let req = http::Request::post("/charge").body(axum::body::Body::empty()).unwrap();
/// let resp = app.oneshot(req).await.unwrap();
/// assert_eq!(resp.status(), 200);
/// # }
/// ```
///
/// Go: `context.WithoutCancel(r.Context())` handed to a goroutine, merged
/// with the server's base context as `context.AfterFunc`'s documentation
/// shows.
///
/// # Shutdown
///
/// A detached handler is a task of the runtime: when the runtime shuts down
/// it is dropped wherever it is. A server that must let that work finish
/// waits for it with [`wait`](DetachLayer::wait) before its runtime ends,
/// on a clone of the layer it gave the router (clones share the count).
#[derive(Clone, Debug, Default)]
pub struct DetachLayer {
    /// The handlers running, shared by the layer's clones and services.
    running: Arc<Running>,
}

/// How many detached handlers run, and who waits for none.
#[derive(Debug, Default)]
struct Running {
    count: AtomicUsize,
    idle: Notify,
}

/// One running handler: counted from its spawn to the end (or drop) of
/// its task.
struct Counted(Arc<Running>);

impl Counted {
    fn new(running: &Arc<Running>) -> Counted {
        running.count.fetch_add(1, Ordering::Relaxed);
        Counted(running.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        // Release: what the handler did happens before `wait` returns.
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl DetachLayer {
    /// The layer. It has no settings: the deadline and values come from
    /// the request context, the root from the [`ContextLayer`](super::ContextLayer)
    /// outside.
    ///
    /// ```
    /// let layer = ctx::http::DetachLayer::new();
    /// # let _ = layer;
    /// ```
    pub fn new() -> DetachLayer {
        DetachLayer::default()
    }

    /// How many handlers this layer, its clones and their services run
    /// now, in tasks of their own.
    ///
    /// ```
    /// let layer = ctx::http::DetachLayer::new();
    /// assert_eq!(layer.in_flight(), 0);
    /// ```
    pub fn in_flight(&self) -> usize {
        self.running.count.load(Ordering::Acquire)
    }

    /// Waits until this layer (its clones and their services) runs no
    /// handler: for a graceful shutdown, once the server takes no more
    /// requests, so that detached work finishes before the runtime ends.
    /// Returns at once when none runs; a handler started while it waits is
    /// waited for too. To stop the work sooner, cancel the server's root
    /// first: detached contexts end with it.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping it waits no more and changes nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use axum::{routing::post, Router};
    /// use ctx::http::{ContextLayer, DetachLayer};
    ///
    /// let detach = DetachLayer::new();
    /// let root = ctx::Context::background();
    /// let app: Router = Router::new()
    ///     .route("/charge", post(|| async { "charged" }))
    ///     .route_layer(detach.clone())
    ///     .layer(ContextLayer::new(&root));
    /// // ... serve `app` with a graceful shutdown, then:
    /// detach.wait().await;
    /// # drop(app);
    /// # }
    /// ```
    ///
    /// Go: `sync.WaitGroup.Wait` over the goroutines a handler started;
    /// tokio-util: `TaskTracker::wait`.
    pub async fn wait(&self) {
        loop {
            let idle = self.running.idle.notified();
            let mut idle = std::pin::pin!(idle);
            // Listening before the count is read: a last handler that ends
            // in between still reaches this waiter.
            idle.as_mut().enable();
            if self.in_flight() == 0 {
                return;
            }
            idle.await;
        }
    }
}

impl<S> Layer<S> for DetachLayer {
    type Service = DetachService<S>;

    fn layer(&self, inner: S) -> DetachService<S> {
        DetachService {
            inner,
            running: self.running.clone(),
        }
    }
}

/// The service made by [`DetachLayer`]: see there.
///
/// ```
/// use tower::Layer;
/// let svc = ctx::http::DetachLayer::new().layer(tower::service_fn(|_: http::Request<()>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
/// }));
/// # let _ = svc;
/// ```
#[derive(Clone, Debug)]
pub struct DetachService<S> {
    /// The handler; set by [`DetachLayer::layer`].
    inner: S,
    /// The layer's count of running handlers.
    running: Arc<Running>,
}

impl<S, B, ResBody> Service<Request<B>> for DetachService<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    // The refusal's body: the layer cannot write into a body type it does
    // not know.
    ResBody: Default + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<ResBody, S::Error>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let protocol = Protocol::of(req.headers());
        let Some(ServerRoot(root)) = req.extensions().get::<ServerRoot>().cloned() else {
            return ResponseFuture::refused(Refusal::NoContextLayer, &protocol);
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return ResponseFuture::refused(Refusal::NoRuntime, &protocol);
        };
        let (detached, guard) = detach(&req.context());
        let watch = RootWatch::new(&root, &guard);
        req.extensions_mut().insert(detached);
        let handler = match catch_unwind(AssertUnwindSafe(|| self.inner.call(req))) {
            Ok(handler) => handler,
            Err(payload) => panicked(Some(guard), payload),
        };
        let counted = Counted::new(&self.running);
        let task = runtime.spawn(span::in_current(run_detached(
            handler, guard, watch, counted,
        )));
        ResponseFuture {
            state: State::Running { task, protocol },
        }
    }
}

/// A tonic server takes a detached service as it took the service inside.
#[cfg(feature = "tonic")]
impl<S: tonic::server::NamedService> tonic::server::NamedService for DetachService<S> {
    const NAME: &'static str = S::NAME;
}

/// The detached context of `request`: its values and its deadline, and
/// nothing of its cancellation.
fn detach(request: &Context) -> (Context, CancelGuard) {
    let values = request.without_cancel();
    match request.deadline() {
        Some(deadline) => values.with_deadline(deadline),
        None => values.with_cancel(),
    }
}

/// Cancels a detached context when the server's root ends, with the root's
/// cause; stops watching when dropped (the handler returned).
struct RootWatch(AfterFunc);

impl RootWatch {
    fn new(root: &Context, guard: &CancelGuard) -> RootWatch {
        let handle = guard.handle();
        // The callback holds a clone of the root, which holds the callback
        // until it runs or is stopped: `Drop` stops it, so the pair is
        // freed once the handler is done.
        let cause_of = root.clone();
        RootWatch(root.after_func(move || {
            let cause = cause_of.cause().unwrap_or_else(|| Error::Canceled.into());
            handle.cancel_with_cause(cause);
        }))
    }
}

impl Drop for RootWatch {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// The detached task: the handler to its end, then the detached context's
/// end (a plain cancel, or [`HandlerPanicked`](super::HandlerPanicked)).
/// `counted` goes last, with the task, so that `wait` returns after all of
/// it.
async fn run_detached<F: Future>(
    handler: F,
    guard: CancelGuard,
    watch: RootWatch,
    counted: Counted,
) -> F::Output {
    let _counted = counted;
    let output = CatchUnwind { inner: handler }.await;
    drop(watch);
    match output {
        Ok(output) => {
            drop(guard);
            output
        }
        Err(payload) => panicked(Some(guard), payload),
    }
}

pin_project_lite::pin_project! {
    /// A future's output, or the payload of its panic.
    struct CatchUnwind<F> {
        #[pin]
        inner: F,
    }
}

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Box<dyn Any + Send>>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let inner = self.project().inner;
        match catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Err(payload) => Poll::Ready(Err(payload)),
        }
    }
}

/// Why a [`DetachService`] refused a request without calling its handler.
#[derive(Clone, Copy, Debug)]
enum Refusal {
    /// No [`ContextLayer`](super::ContextLayer) outside: no root to obey.
    NoContextLayer,
    /// Not on a tokio runtime: nowhere to spawn the handler's task.
    NoRuntime,
    /// The handler's task was canceled before it finished: its runtime is
    /// shutting down.
    RuntimeShutDown,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::NoContextLayer => {
                "ctx::http::DetachLayer needs a ctx::http::ContextLayer outside it (the request has no server root)"
            }
            Refusal::NoRuntime => "ctx::http::DetachLayer needs a tokio runtime to run the handler on",
            Refusal::RuntimeShutDown => "the detached handler's runtime shut down before it finished",
        })
    }
}

impl Refusal {
    /// The answer: a 500 or 503, or the matching gRPC status, with an empty
    /// body of the handler's type.
    fn answer<B: Default>(self, protocol: &Protocol) -> Response<B> {
        let mut resp = Response::new(B::default());
        let (status, grpc_code) = match self {
            Refusal::NoContextLayer | Refusal::NoRuntime => (
                StatusCode::INTERNAL_SERVER_ERROR,
                HeaderValue::from_static("13"),
            ),
            Refusal::RuntimeShutDown => (
                StatusCode::SERVICE_UNAVAILABLE,
                HeaderValue::from_static("1"),
            ),
        };
        if let Some(content_type) = protocol.grpc_content_type() {
            let message = HeaderValue::from_str(&self.to_string())
                .expect("ctx: internal error: the refusals are plain ASCII");
            grpc_status_headers(resp.headers_mut(), content_type, grpc_code, message);
        } else {
            *resp.status_mut() = status;
        }
        resp
    }
}

/// The response future of [`DetachService`]: waits for the detached
/// handler's task, or holds the layer's refusal.
///
/// Dropping it does not stop the handler: the task runs on, and its
/// response is discarded. A panic in the handler reaches this future's
/// caller with its own payload.
///
/// ```
/// fn assert_future<F: std::future::Future>(_: &F) {}
/// # use tower::{Layer, Service};
/// # let mut svc = ctx::http::DetachLayer::new()
/// #     .layer(tower::service_fn(|_: http::Request<()>| async {
/// #         Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
/// #     }));
/// let fut: ctx::http::detach::ResponseFuture<String, _> = svc.call(http::Request::new(()));
/// assert_future(&fut);
/// ```
///
/// # Cancel safety
///
/// Dropping it detaches from the handler's task; the handler goes on.
pub struct ResponseFuture<B, E> {
    /// Chosen once, by [`DetachService::call`].
    state: State<B, E>,
}

/// The handler's task, or the refusal not yet reported.
enum State<B, E> {
    Running {
        /// The detached task; its output is the handler's.
        task: JoinHandle<Result<Response<B>, E>>,
        /// The request's protocol (gRPC, gRPC-Web or plain HTTP): how to
        /// answer if the task is canceled.
        protocol: Protocol,
    },
    Refused {
        /// Taken by the one poll that reports it.
        answer: Option<Response<B>>,
    },
}

impl<B: Default, E> ResponseFuture<B, E> {
    fn refused(refusal: Refusal, protocol: &Protocol) -> ResponseFuture<B, E> {
        span::refused(refusal);
        ResponseFuture {
            state: State::Refused {
                answer: Some(refusal.answer(protocol)),
            },
        }
    }
}

// Nothing in it is pinned: the task handle is `Unpin`, and the refusal is
// only moved out.
impl<B, E> Unpin for ResponseFuture<B, E> {}

impl<B: Default, E> Future for ResponseFuture<B, E> {
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().state {
            State::Refused { answer } => Poll::Ready(Ok(answer
                .take()
                .expect("ctx: internal error: detach ResponseFuture polled after it finished"))),
            State::Running { task, protocol } => match ready!(Pin::new(task).poll(cx)) {
                Ok(output) => Poll::Ready(output),
                // The handler's own panic, payload and all.
                Err(err) if err.is_panic() => resume_unwind(err.into_panic()),
                Err(_) => {
                    let refusal = Refusal::RuntimeShutDown;
                    span::refused(refusal);
                    Poll::Ready(Ok(refusal.answer(protocol)))
                }
            },
        }
    }
}

impl<B, E> fmt::Debug for ResponseFuture<B, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Running { .. } => "running",
            State::Refused { .. } => "refused",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

/// The detached task's span and the refusal's event: real with the
/// `tracing` feature, nothing without.
mod span {
    use std::future::Future;

    /// `fut`, inside the span current now (the layer's `request` span,
    /// entered around the handler's `call`).
    #[cfg(feature = "tracing")]
    pub(super) fn in_current<F: Future>(fut: F) -> tracing::instrument::Instrumented<F> {
        tracing::Instrument::in_current_span(fut)
    }

    #[cfg(not(feature = "tracing"))]
    #[inline]
    pub(super) fn in_current<F: Future>(fut: F) -> F {
        fut
    }

    #[cfg(feature = "tracing")]
    pub(super) fn refused(refusal: super::Refusal) {
        tracing::error!(reason = %refusal, "request refused by ctx::http::DetachLayer");
    }

    #[cfg(not(feature = "tracing"))]
    #[inline]
    pub(super) fn refused(_: super::Refusal) {}
}
