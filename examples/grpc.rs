//! gRPC on tonic: the caller's deadline reaches the handler's `ctx`, and a
//! caller that gives up cancels the handler's work.
//!
//! `cargo run --example grpc --features net`; `tests/net_grpc.rs` runs the
//! same story.
//!
//! The server wraps its services in `ctx::http::ContextLayer`, so each
//! call's context has the caller's `grpc-timeout` as its deadline; the
//! handler reads it with `request.context()`. The client wraps its channel
//! in `ctx::grpc::ClientLayer` and makes each request with
//! `ctx::grpc::request(&ctx, message)`.
//!
//! There is no `.proto` file and no code generation (which would need
//! `protoc`): the messages derive `prost::Message` by hand, and the service
//! and client below are what `tonic-build` would generate, cut down to one
//! method.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use ctx::grpc::RequestExt;
use ctx::http::{ContextLayer, RequestId};
use ctx::Context;
use tokio::sync::{mpsc, Notify};
use tonic::codegen::{Body, Bytes, StdError};
use tonic::{Code, Status};

/// Asks the server to work for `millis` milliseconds.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WorkRequest {
    #[prost(uint64, tag = "1")]
    pub millis: u64,
}

/// What the handler saw: the time its context had left, and the request id.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WorkReply {
    #[prost(uint64, tag = "1")]
    pub left_micros: u64,
    #[prost(string, tag = "2")]
    pub request_id: String,
}

/// The `demo.Worker` service; reports on `ended` how each call's context
/// ended.
#[derive(Clone)]
pub struct Worker {
    ended: mpsc::UnboundedSender<String>,
    calls: Arc<AtomicUsize>,
    started: Arc<Notify>,
}

impl Worker {
    pub fn new(ended: mpsc::UnboundedSender<String>) -> Worker {
        Worker {
            ended,
            calls: Arc::new(AtomicUsize::new(0)),
            started: Arc::new(Notify::new()),
        }
    }

    /// How many calls reached the handler.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// Notified (one permit) each time a call reaches the handler.
    pub fn started(&self) -> Arc<Notify> {
        self.started.clone()
    }

    async fn work(
        &self,
        request: tonic::Request<WorkRequest>,
    ) -> Result<tonic::Response<WorkReply>, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.started.notify_one();
        let ctx = request.context();
        let reply = WorkReply {
            left_micros: ctx.remaining().map_or(0, |left| left.as_micros() as u64),
            request_id: ctx
                .value::<RequestId>()
                .map(ToString::to_string)
                .unwrap_or_default(),
        };
        // tonic drops this future when the caller resets the call, so the
        // report comes from a task that holds the context.
        let ended = self.ended.clone();
        let watched = ctx.clone();
        tokio::spawn(async move {
            watched.done().await;
            let cause = watched
                .cause()
                .map(|cause| cause.to_string())
                .unwrap_or_default();
            let _ = ended.send(cause);
        });
        let millis = request.into_inner().millis;
        ctx.run(tokio::time::sleep(Duration::from_millis(millis)))
            .await?;
        Ok(tonic::Response::new(reply))
    }
}

const WORK_PATH: &str = "/demo.Worker/Work";

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl tonic::server::NamedService for Worker {
    const NAME: &'static str = "demo.Worker";
}

impl<B> tower::Service<http::Request<B>> for Worker
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() != WORK_PATH {
            return Box::pin(async { Ok(Status::unimplemented("no such method").into_http()) });
        }
        let method = WorkMethod(self.clone());
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default());
            Ok(grpc.unary(method, req).await)
        })
    }
}

struct WorkMethod(Worker);

impl tonic::server::UnaryService<WorkRequest> for WorkMethod {
    type Response = WorkReply;
    type Future = BoxFuture<tonic::Response<WorkReply>, Status>;

    fn call(&mut self, request: tonic::Request<WorkRequest>) -> Self::Future {
        let worker = self.0.clone();
        Box::pin(async move { worker.work(request).await })
    }
}

/// The client of `demo.Worker`, over any gRPC service (here a tonic channel
/// wrapped in `ctx::grpc::ClientLayer`).
pub struct WorkerClient<T> {
    inner: tonic::client::Grpc<T>,
}

impl<T> WorkerClient<T>
where
    T: tonic::client::GrpcService<tonic::body::Body>,
    T::Error: Into<StdError>,
    T::ResponseBody: Body<Data = Bytes> + Send + 'static,
    <T::ResponseBody as Body>::Error: Into<StdError> + Send,
{
    pub fn new(inner: T) -> Self {
        WorkerClient {
            inner: tonic::client::Grpc::new(inner),
        }
    }

    pub async fn work(
        &mut self,
        request: tonic::Request<WorkRequest>,
    ) -> Result<tonic::Response<WorkReply>, Status> {
        self.inner
            .ready()
            .await
            .map_err(|err| Status::unknown(format!("service was not ready: {}", err.into())))?;
        let path = http::uri::PathAndQuery::from_static(WORK_PATH);
        self.inner
            .unary(request, path, tonic_prost::ProstCodec::default())
            .await
    }
}

/// Starts the server on 127.0.0.1 under `root`: canceling `root` cancels
/// the calls in flight and stops the server.
pub async fn serve(root: &Context, worker: Worker) -> std::io::Result<SocketAddr> {
    let incoming =
        tonic::transport::server::TcpIncoming::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    let addr = incoming.local_addr()?;
    let router = tonic::transport::Server::builder()
        .layer(ContextLayer::new(root))
        .add_service(worker);
    let stop = root.clone();
    tokio::spawn(async move {
        router
            .serve_with_incoming_shutdown(incoming, async move {
                stop.done().await;
            })
            .await
    });
    Ok(addr)
}

include!("support/narration.rs");

/// What happened, for the test to check.
#[derive(Debug)]
pub struct Outcome {
    /// The caller's timeout of the first call, and the time the handler's
    /// context had left.
    pub sent: Duration,
    pub seen: Duration,
    /// Whether the handler saw the caller's request id.
    pub same_id: bool,
    /// The slow call: its status code, how long it took, and how the
    /// handler's context ended.
    pub slow: (Code, Duration, String),
    /// A call whose deadline had passed: its status code.
    pub late: Code,
    /// How many calls reached the handler.
    pub handled: usize,
}

pub async fn story(say: Say) -> Result<Outcome, Box<dyn std::error::Error + Send + Sync>> {
    let (ended, mut endings) = mpsc::unbounded_channel();
    let (root, _stop) = Context::background().with_cancel();
    let worker = Worker::new(ended);
    let addr = serve(&root, worker.clone()).await?;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let channel = tower::ServiceBuilder::new()
        .layer(ctx::grpc::ClientLayer::new())
        .service(channel);
    let mut client = WorkerClient::new(channel);

    // 1. The deadline reaches the handler's ctx.
    let sent = Duration::from_secs(1);
    let id = RequestId::generate();
    let (ctx, _cancel) = Context::background()
        .with_value(id.clone())
        .with_timeout(sent);
    let reply = client
        .work(ctx::grpc::request(&ctx, WorkRequest { millis: 0 }))
        .await?
        .into_inner();
    let seen = Duration::from_micros(reply.left_micros);
    say(format!(
        "handler: {} ms left of the caller's {} ms",
        seen.as_millis(),
        sent.as_millis()
    ));
    let same_id = reply.request_id == id.to_string();
    say(format!("handler: saw the caller's request id: {same_id}"));
    endings.recv().await; // the first call's context, ended with its response

    // 2. A call that outlives its deadline: the caller gets DEADLINE_EXCEEDED
    //    and the handler's context ends with it.
    let start = Instant::now();
    let (ctx, _cancel) = Context::background().with_timeout(Duration::from_millis(200));
    let status = client
        .work(ctx::grpc::request(&ctx, WorkRequest { millis: 10_000 }))
        .await
        .expect_err("ten seconds of work in 200 ms");
    let took = start.elapsed();
    say(format!(
        "caller: {:?} after {} ms",
        status.code(),
        took.as_millis()
    ));
    let in_handler = endings.recv().await.unwrap_or_default();
    say(format!("handler: context ended: {in_handler}"));

    // 3. A deadline already passed: nothing is sent.
    let (ctx, _cancel) = Context::background().with_deadline(Instant::now());
    let late = client
        .work(ctx::grpc::request(&ctx, WorkRequest { millis: 0 }))
        .await
        .expect_err("the deadline has passed");
    say(format!(
        "caller, deadline passed: {:?}, not sent",
        late.code()
    ));

    Ok(Outcome {
        sent,
        seen,
        same_id,
        slow: (status.code(), took, in_handler),
        late: late.code(),
        handled: worker.calls(),
    })
}

// `pub`: the tests include this file as a `pub mod` and never call it.
#[tokio::main]
pub async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    story(Arc::new(|line| println!("{line}"))).await?;
    Ok(())
}
