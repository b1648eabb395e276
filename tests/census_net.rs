//! `ctx::debug` and `ctx::http::ContextLayer`: a request context is listed
//! under the server layer's line, with the request's method and path, and
//! leaves the census once its response has been sent and dropped.
//!
//! Each test uses its own paths and takes [`serial`] first.

use std::convert::Infallible;
use std::time::Duration;

use ctx::debug::LiveContext;
use ctx::http::{ContextLayer, RequestExt};
use ctx::Context;
use tower::{Layer, Service, ServiceExt};

#[path = "support/census_serial.rs"]
mod census_serial;
use census_serial::block_on;

/// The live contexts labeled `label`.
fn labeled(label: &str) -> Vec<LiveContext> {
    ctx::debug::live()
        .into_iter()
        .filter(|c| c.label() == Some(label))
        .collect()
}

#[test]
fn a_request_context_names_the_server_layer_and_the_request() {
    block_on(async {
        let (root, _stop) = Context::background().with_cancel();
        let root_line = line!() - 1;
        let mut svc = ContextLayer::new(&root).layer(tower::service_fn(
            move |req: http::Request<()>| async move {
                let ctx = req.context();
                let found = labeled("GET /users/7");
                assert_eq!(found.len(), 1, "one request in flight");
                let entry = &found[0];
                // The derivation happens in ctx's server layer, for this request.
                assert!(
                    entry.location().file().contains("src/http/server"),
                    "{}",
                    entry.location()
                );
                assert_eq!(entry.parent_location().map(|l| l.file()), Some(file!()));
                assert_eq!(entry.parent_location().map(|l| l.line()), Some(root_line));
                assert_eq!(entry.err(), None);
                assert_eq!(entry.deadline(), ctx.deadline());
                assert!(entry.deadline().is_some(), "from grpc-timeout");
                let tree = ctx::debug::live().to_string();
                assert!(tree.contains("src/http/server/"), "{tree}");
                assert!(tree.contains(" GET /users/7  not done, age "), "{tree}");
                Ok::<_, Infallible>(http::Response::new(String::from("ok")))
            },
        ));

        let req = http::Request::builder()
            .uri("/users/7?token=secret")
            .header("grpc-timeout", "5S")
            .body(())
            .unwrap();
        let resp = svc.ready().await.unwrap().call(req).await.unwrap();
        // The response holds the request context until it has been sent.
        assert_eq!(labeled("GET /users/7").len(), 1);
        drop(resp);
        assert!(labeled("GET /users/7").is_empty());
        // The query (which may carry secrets) is never recorded.
        assert!(!ctx::debug::live().to_string().contains("secret"));
    });
}

#[test]
fn a_request_kept_past_its_response_shows_done() {
    block_on(async {
        let (root, _stop) = Context::background().with_cancel();
        let (kept_tx, mut kept) = tokio::sync::mpsc::unbounded_channel();
        let mut svc = ContextLayer::new(&root)
            .default_timeout(Duration::from_secs(30))
            .layer(tower::service_fn(move |req: http::Request<()>| {
                // The mistake: the handler hands its request context to
                // something that outlives the request.
                kept_tx.send(req.context()).unwrap();
                async { Ok::<_, Infallible>(http::Response::new(String::new())) }
            }));

        let req = http::Request::post("/orders").body(()).unwrap();
        drop(svc.ready().await.unwrap().call(req).await.unwrap());
        let held = kept.recv().await.unwrap();
        let found = labeled("POST /orders");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].err(), Some(ctx::Error::Canceled));
        drop(held);
        assert!(labeled("POST /orders").is_empty());
    });
}

#[test]
fn a_long_path_is_cut() {
    block_on(async {
        let (root, _stop) = Context::background().with_cancel();
        let path = format!("/long/{}", "a".repeat(10_000));
        let mut svc = ContextLayer::new(&root).layer(tower::service_fn(
            move |_req: http::Request<()>| async move {
                let census = ctx::debug::live();
                let entry = census
                    .iter()
                    .find(|c| c.label().is_some_and(|l| l.starts_with("PUT /long/")))
                    .expect("the request context");
                let label = entry.label().unwrap();
                assert!(label.len() <= 131, "{} bytes", label.len());
                assert!(label.ends_with('…'));
                Ok::<_, Infallible>(http::Response::new(String::new()))
            },
        ));
        let req = http::Request::put(path.as_str()).body(()).unwrap();
        drop(svc.ready().await.unwrap().call(req).await.unwrap());
    });
}
