//! `#[ctx(owned)]` on axum handlers: `ctx: ctx::Context` by value is the
//! request context's extractor, so the handler is a `Handler`, and the
//! function keeps the checks of `#[ctx]`.
//!
//! The layer gives requests no deadline here, so what ends the slow handler
//! is its own `timeout`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path, State};
use axum::routing::get;
use axum::Router;
use ctx::http::ContextLayer;
use ctx::{ctx, Context, Error};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

const FOREVER: Duration = Duration::from_secs(30);
const PROMPT: Duration = Duration::from_secs(1);

#[derive(Clone, Default)]
struct Runs(Arc<AtomicUsize>);

impl Runs {
    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

#[ctx(owned)]
async fn user(Path(id): Path<u32>, State(runs): State<Runs>) -> Result<String, Error> {
    runs.0.fetch_add(1, Ordering::SeqCst);
    ctx.check()?;
    Ok(format!("user {id}"))
}

#[ctx(owned, timeout = Duration::from_millis(50))]
async fn slow(State(runs): State<Runs>) -> Result<&'static str, Error> {
    tokio::time::sleep(FOREVER).await;
    runs.0.fetch_add(1, Ordering::SeqCst);
    Ok("finished")
}

/// Spawnable: it owns its context, so its future is `'static`.
#[ctx(owned)]
async fn count_to(n: u32) -> Result<u32, Error> {
    let mut counted = 0;
    while counted < n {
        ctx.check()?;
        counted += 1;
        tokio::task::yield_now().await;
    }
    Ok(counted)
}

#[ctx(owned)]
async fn spawns() -> Result<String, Error> {
    let first = tokio::spawn(count_to(ctx.clone(), 3));
    // The handler's own `ctx` may move into a task too.
    let second = tokio::spawn(async move { count_to(ctx, 4).await });
    let (first, second) = (first.await.unwrap()?, second.await.unwrap()?);
    Ok(format!("{first} {second}"))
}

fn app(root: &Context, runs: &Runs) -> Router {
    Router::new()
        .route("/users/{id}", get(user))
        .route("/slow", get(slow))
        .route("/spawns", get(spawns))
        .with_state(runs.clone())
        .layer(ContextLayer::new(root))
}

async fn call(app: Router, uri: &str) -> (StatusCode, String) {
    let req = Request::get(uri).body(Body::empty()).unwrap();
    let resp = app.oneshot(req).await.unwrap();
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn an_owned_handler_takes_the_request_context_and_other_extractors() {
    let runs = Runs::default();
    let app = app(&Context::background(), &runs);
    assert_eq!(
        call(app, "/users/7").await,
        (StatusCode::OK, "user 7".to_owned())
    );
    assert_eq!(runs.count(), 1);
}

#[tokio::test]
async fn a_request_under_a_canceled_root_does_not_run_the_handler() {
    let (root, cancel) = Context::background().with_cancel();
    cancel.cancel();
    let runs = Runs::default();
    let (status, _) = call(app(&root, &runs), "/users/7").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(runs.count(), 0, "the handler ran");
}

#[tokio::test]
async fn an_owned_handler_with_a_timeout_answers_504_at_its_budget() {
    let runs = Runs::default();
    let at = Instant::now();
    let (status, _) = call(app(&Context::background(), &runs), "/slow").await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert!(at.elapsed() < PROMPT, "took {:?}", at.elapsed());
    assert_eq!(runs.count(), 0, "the slow body finished");
}

#[tokio::test]
async fn an_owned_context_moves_into_spawned_tasks() {
    let runs = Runs::default();
    assert_eq!(
        call(app(&Context::background(), &runs), "/spawns").await,
        (StatusCode::OK, "3 4".to_owned())
    );
}

#[tokio::test]
async fn an_owned_function_stops_when_its_context_ends() {
    let (ctx, cancel) = Context::background().with_cancel();
    cancel.cancel();
    assert_eq!(count_to(ctx, 3).await, Err(Error::Canceled));
}

/// `#[tonic::async_trait]` is async-trait: `#[ctx]` works under it as under
/// `#[async_trait::async_trait]`.
#[tonic::async_trait]
trait Lookup: Send + Sync {
    #[ctx]
    async fn lookup(&self, id: u32) -> Result<u32, tonic::Status>;
}

struct Table;

#[tonic::async_trait]
impl Lookup for Table {
    #[ctx]
    async fn lookup(&self, id: u32) -> Result<u32, tonic::Status> {
        if id == 99 {
            tokio::time::sleep(FOREVER).await;
        }
        ctx.check()?;
        Ok(id * 2)
    }
}

/// A service trait defined elsewhere (what tonic generates) cannot take a
/// `ctx` parameter: the method finds the request's context and passes it
/// to `#[ctx]` code, which keeps its checks.
#[tonic::async_trait]
trait Greeter: Send + Sync + 'static {
    async fn say_hello(
        &self,
        request: tonic::Request<String>,
    ) -> Result<tonic::Response<String>, tonic::Status>;
}

struct Service {
    table: Table,
}

#[tonic::async_trait]
impl Greeter for Service {
    async fn say_hello(
        &self,
        request: tonic::Request<String>,
    ) -> Result<tonic::Response<String>, tonic::Status> {
        use ctx::grpc::RequestExt;
        let ctx = request.context();
        let id = request.into_inner().len() as u32;
        let doubled = self.table.lookup(&ctx, id).await?;
        Ok(tonic::Response::new(format!("hello {doubled}")))
    }
}

#[tokio::test]
async fn tonic_async_trait_methods_keep_the_checks() {
    let root = Context::background();
    assert_eq!(Table.lookup(&root, 2).await.unwrap(), 4);
    let (canceled, cancel) = root.with_cancel();
    cancel.cancel();
    let status = Table.lookup(&canceled, 2).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Cancelled);
    let (budget, _cancel) = root.with_timeout(Duration::from_millis(50));
    let at = Instant::now();
    let status = Table.lookup(&budget, 99).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::DeadlineExceeded);
    assert!(at.elapsed() < PROMPT, "took {:?}", at.elapsed());
}

#[tokio::test]
async fn a_generated_service_passes_the_request_context_on() {
    let service = Service { table: Table };
    let reply = service
        .say_hello(tonic::Request::new("abc".to_owned()))
        .await
        .unwrap();
    assert_eq!(reply.into_inner(), "hello 6");

    // The request's context (here: attached as a client would) is what the
    // `#[ctx]` code sees.
    let (canceled, cancel) = Context::background().with_cancel();
    cancel.cancel();
    let request = ctx::grpc::request(&canceled, "abc".to_owned());
    let status = service.say_hello(request).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Cancelled);
}
