//! The service the layer makes, and its response future: [`ContextService`]
//! gives each request its context and races the handler's future against
//! it in [`ResponseFuture`], answering for the handler when the context
//! ends first.

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body::Body;
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::body::{owed_on_the_wire, Kind, ResponseBody};
use super::cause::panicked;
use super::race::{error_text, grpc_status, grpc_status_headers, Protocol, Race};
use super::{span, ContextLayer};
#[cfg(doc)]
use super::{Abandoned, HandlerPanicked};
use crate::http::ending::RequestGuard;
use crate::http::{RequestId, X_REQUEST_ID};
use crate::{Context, Error};

// Here, beside the service it builds, so that the layer's own module needs
// nothing of the service.
impl<S> Layer<S> for ContextLayer {
    type Service = ContextService<S>;

    fn layer(&self, inner: S) -> ContextService<S> {
        ContextService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service made by [`ContextLayer`]: see there.
///
/// ```
/// use tower::Layer;
/// let svc = ctx::http::ContextLayer::new(&ctx::Context::background())
///     .layer(tower::service_fn(|_: http::Request<()>| async {
///         Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
///     }));
/// # let _ = svc;
/// ```
#[derive(Clone, Debug)]
pub struct ContextService<S> {
    /// The handler; set by [`ContextLayer::layer`].
    inner: S,
    /// The settings, copied from the layer that made this service.
    layer: ContextLayer,
}

impl<S, B, ResBody> Service<Request<B>> for ContextService<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    ResBody: Body,
    // The layer's own answer (`context deadline exceeded`) is a frame of
    // the handler's data type: `Bytes`, as in hyper, axum and tonic.
    ResBody::Data: From<&'static [u8]>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let id = req
            .headers()
            .get(X_REQUEST_ID)
            .and_then(RequestId::from_header)
            .unwrap_or_else(RequestId::generate);
        let span = span::new(&req, &id);
        let ctx = self.layer.root.with_value(id.clone());
        let ctx = self.layer.propagate.decode(req.headers(), ctx);
        // `with_timeout` measures from now on the clock deadlines follow
        // (tokio's, in a paused test); a timeout too far to represent is
        // no deadline.
        let (ctx, guard) = {
            // The census (feature `debug`) names this line and the request.
            #[cfg(feature = "debug")]
            let _origin = crate::debug::registry::Origin::labeled(format_args!(
                "{} {}",
                req.method(),
                req.uri().path()
            ))
            .enter();
            match self.layer.timeout_for(&req) {
                Some(timeout) => ctx.with_timeout(timeout),
                None => ctx.with_cancel(),
            }
        };
        let guard = RequestGuard::new(guard, &ctx, &self.layer.counters, &span);
        let race = (!self.layer.cooperative).then(|| Race::new(&ctx, Protocol::of(req.headers())));
        req.extensions_mut().insert(ctx);
        // For a `DetachLayer` inside: the root its detached contexts obey.
        req.extensions_mut()
            .insert(ServerRoot(self.layer.root.clone()));
        let method = req.method().clone();
        let inner = {
            let _entered = span::enter(&span);
            // `call` is the handler's code too (a `service_fn` closure runs
            // here, before any future exists).
            match catch_unwind(AssertUnwindSafe(|| self.inner.call(req))) {
                Ok(inner) => inner,
                Err(payload) => panicked(Some(guard), payload),
            }
        };
        ResponseFuture {
            handler: Handler::Running { inner },
            guard: Some(guard),
            race,
            id: Some(id),
            method,
            span,
        }
    }
}

/// The server's root, as given to [`ContextLayer::new`], in the extensions
/// of every request the layer passes on: [`DetachLayer`](crate::http::DetachLayer)
/// derives from it, and its presence says a `ContextLayer` is outside.
#[derive(Clone)]
pub(in crate::http) struct ServerRoot(pub(in crate::http) Context);

/// The layer's answer when the request context ended before the handler
/// answered: a trailers-only gRPC (or gRPC-Web) status, or 503/504 with
/// the error's text.
fn answer<B>(err: Error, protocol: &Protocol, id: Option<RequestId>) -> Response<ResponseBody<B>>
where
    B: Body,
    B::Data: From<&'static [u8]>,
{
    let grpc_content_type = protocol.grpc_content_type();
    let data = grpc_content_type
        .is_none()
        .then(|| error_text(err).as_bytes());
    let mut resp = Response::new(ResponseBody {
        kind: Kind::Own {
            data: data.map(B::Data::from),
            trailers: None,
            error: None,
        },
        guard: None,
        owed: Some(0),
        race: None,
    });
    let headers = resp.headers_mut();
    if let Some(content_type) = grpc_content_type {
        // HTTP 200: gRPC says it in `grpc-status`.
        let (code, message) = grpc_status(err);
        grpc_status_headers(headers, content_type, code, message);
    } else {
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        *resp.status_mut() = match err {
            Error::Canceled => StatusCode::SERVICE_UNAVAILABLE,
            Error::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        };
    }
    if let Some(id) = id {
        resp.headers_mut()
            .insert(X_REQUEST_ID, id.header_value().clone());
    }
    resp
}

pin_project! {
    /// The response future of [`ContextService`]: the inner service's, with
    /// the request context's guard, raced against the request context.
    ///
    /// When the context ends before the handler answers, the handler's
    /// future is dropped and this future answers itself (503, 504, or a
    /// gRPC status: see [the race](ContextLayer#the-race)), unless the
    /// layer is [`cooperative`](ContextLayer::cooperative).
    ///
    /// Dropping it before it finishes cancels the request context with the
    /// cause [`Abandoned`]; once it finishes, the guard moves into the
    /// response body ([`ResponseBody`]). If the handler's future panics,
    /// the request context is canceled with the cause [`HandlerPanicked`]
    /// and the panic goes on.
    ///
    /// ```
    /// fn assert_future<F: std::future::Future>(_: &F) {}
    /// # use tower::{Layer, Service};
    /// # let mut svc = ctx::http::ContextLayer::new(&ctx::Context::background())
    /// #     .layer(tower::service_fn(|_: http::Request<()>| async {
    /// #         Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
    /// #     }));
    /// let fut: ctx::http::server::ResponseFuture<_> = svc.call(http::Request::new(()));
    /// assert_future(&fut);
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Dropping it is how a server says the request is over: the request
    /// context is canceled before the drop returns.
    #[project = ResponseFutureProj]
    pub struct ResponseFuture<F> {
        // The handler's future, from `ContextService::call`; dropped in
        // place when the request context wins the race.
        #[pin]
        pub(super) handler: Handler<F>,
        // The request context's guard, from `ContextService::call`;
        // taken when the handler answers (into the body), fails (and
        // dropped there: a plain cancel) or loses the race (the context
        // is over already). Still here on drop means the request was
        // abandoned.
        pub(super) guard: Option<RequestGuard>,
        // The race against the request context, from `ContextService::call`
        // (`None`: cooperative); moved into the body with the answer.
        pub(super) race: Option<Race>,
        // The request id to echo; taken when the response head is built.
        pub(super) id: Option<RequestId>,
        // The request's method, from `ContextService::call`: the answer to
        // a `HEAD` or `CONNECT` sends no body.
        pub(super) method: Method,
        // Entered around every poll of the handler.
        pub(super) span: span::Span,
    }

    impl<F> PinnedDrop for ResponseFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(guard) = this.project().guard.take() {
                guard.abandon();
            }
        }
    }
}

pin_project! {
    /// The handler's future, until the request context ends first.
    #[project = HandlerProj]
    pub(super) enum Handler<F> {
        Running {
            #[pin]
            inner: F,
        },
        // Dropped: the context ended first and the layer answered.
        Dropped,
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
    ResBody: Body,
    ResBody::Data: From<&'static [u8]>,
{
    type Output = Result<Response<ResponseBody<ResBody>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        // The context first: a handler ready in the same poll loses, as in
        // `Context::run`, and one whose context is done on arrival is
        // never polled.
        let guard = this.guard.as_ref();
        if let Some(err) = this.race.as_ref().and_then(|race| race.ended(guard)) {
            return Poll::Ready(Ok(lose_race(this, err)));
        }
        let HandlerProj::Running { inner } = this.handler.as_mut().project() else {
            panic!("ctx: internal error: ResponseFuture polled after it finished");
        };
        let polled = {
            let _entered = span::enter(this.span);
            catch_unwind(AssertUnwindSafe(|| inner.poll(cx)))
        };
        let result = match polled {
            Ok(Poll::Ready(result)) => result,
            Ok(Poll::Pending) => {
                return match this.race.as_mut().and_then(|r| r.ended_while_pending(cx)) {
                    Some(err) => Poll::Ready(Ok(lose_race(this, err))),
                    None => Poll::Pending,
                };
            }
            Err(payload) => panicked(this.guard.take(), payload),
        };
        // An error ends the request here: the guard drops (plain cancel).
        let guard = this.guard.take();
        let mut race = this.race.take();
        Poll::Ready(result.map(|mut resp| {
            // The body is framed as the head says: what a cut ends it with.
            if let Some(race) = &mut race {
                race.answered(resp.headers());
            }
            if let Some(id) = this.id.take() {
                resp.headers_mut()
                    .entry(X_REQUEST_ID)
                    .or_insert_with(|| id.header_value().clone());
            }
            let owed = owed_on_the_wire(this.method, &resp);
            resp.map(|inner| ResponseBody {
                kind: Kind::Handler { inner },
                guard,
                owed,
                race,
            })
        }))
    }
}

/// The request context ended before the handler answered: drops the
/// handler's future and answers for it.
fn lose_race<F, ResBody>(
    mut this: ResponseFutureProj<'_, F>,
    err: Error,
) -> Response<ResponseBody<ResBody>>
where
    ResBody: Body,
    ResBody::Data: From<&'static [u8]>,
{
    let protocol = Race::take_protocol(this.race);
    {
        // Dropping the handler runs its code (its drops): in its span.
        let _entered = span::enter(this.span);
        this.handler.set(Handler::Dropped);
    }
    span::lost_race(this.span, err);
    // The context is over already, with its own cause: dropping the guard
    // changes nothing, and the answer below is the response, written in
    // full when the server is done with it.
    drop(this.guard.take());
    answer(err, &protocol, this.id.take())
}
