//! Per-request cost of the network layers: the same in-process tower
//! service with and without `ctx::http::ContextLayer` (and, for clients,
//! `ClientLayer`). The difference between a `with_layer` row and its
//! `no_layer` row is what the layer adds to every request.
//!
//! `cargo bench -p ctx-tree --features tower --bench http_layer`
//!
//! The service answers at once, so the rows measure the request's
//! bookkeeping only: the context (a value node and a cancel node), the
//! request id (read or generated), the `x-request-id` echo, the body
//! wrapper, and, with a `grpc-timeout`, a deadline on the shared timer.

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use ctx::http::{ClientLayer, ContextLayer, RequestExt};
use ctx::Context;
use tower::{Layer, Service};

/// Polls a future that is ready at once (every service here is).
fn now<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    match fut
        .as_mut()
        .poll(&mut TaskContext::from_waker(Waker::noop()))
    {
        Poll::Ready(out) => out,
        Poll::Pending => unreachable!("the services here answer at once"),
    }
}

fn handler() -> impl Service<
    http::Request<()>,
    Response = http::Response<String>,
    Error = Infallible,
    Future = impl Future<Output = Result<http::Response<String>, Infallible>>,
> + Clone {
    tower::service_fn(|req: http::Request<()>| {
        black_box(&req);
        std::future::ready(Ok(http::Response::new(String::new())))
    })
}

fn plain() -> http::Request<()> {
    http::Request::new(())
}

fn with_headers() -> http::Request<()> {
    let mut req = http::Request::new(());
    let headers = req.headers_mut();
    headers.insert(
        "x-request-id",
        http::HeaderValue::from_static("3f2a9c1b7d4e8a60"),
    );
    headers.insert("grpc-timeout", http::HeaderValue::from_static("5S"));
    req
}

fn server(c: &mut Criterion) {
    let mut group = c.benchmark_group("server");
    let mut bare = handler();
    group.bench_function("no_layer", |b| {
        b.iter(|| drop(black_box(now(bare.call(plain())))))
    });
    let mut layered = ContextLayer::new(&Context::background()).layer(handler());
    group.bench_function("with_layer", |b| {
        b.iter(|| drop(black_box(now(layered.call(plain())))))
    });
    group.bench_function("no_layer_headers", |b| {
        b.iter(|| drop(black_box(now(bare.call(with_headers())))))
    });
    group.bench_function("with_layer_headers", |b| {
        b.iter(|| drop(black_box(now(layered.call(with_headers())))))
    });
    let (root, _stop) = Context::background().with_cancel();
    let mut under_root = ContextLayer::new(&root)
        .max_timeout(Duration::from_secs(30))
        .layer(handler());
    group.bench_function("with_layer_cancelable_root_max_timeout", |b| {
        b.iter(|| drop(black_box(now(under_root.call(plain())))))
    });
    group.finish();
}

fn client(c: &mut Criterion) {
    let mut group = c.benchmark_group("client");
    let (ctx, _cancel) = Context::background().with_timeout(Duration::from_secs(30));
    let mut bare = handler();
    group.bench_function("no_layer", |b| {
        b.iter(|| drop(black_box(now(bare.call(plain().with_context(&ctx))))))
    });
    let mut layered = ClientLayer::new().layer(handler());
    group.bench_function("with_layer", |b| {
        b.iter(|| drop(black_box(now(layered.call(plain().with_context(&ctx))))))
    });
    group.finish();
}

criterion_group!(benches, server, client);
criterion_main!(benches);
