//! Shared by the HTTP tests that run a real server on loopback.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;

/// Generous: how long anything that should be prompt may take on a busy
/// two-core machine before the test calls it a failure.
pub const PATIENCE: Duration = Duration::from_secs(5);

/// `fut`, failing the test if it takes longer than [`PATIENCE`].
pub async fn within<F: std::future::Future>(what: &str, fut: F) -> F::Output {
    tokio::time::timeout(PATIENCE, fut)
        .await
        .unwrap_or_else(|_| panic!("{what} did not happen within {PATIENCE:?}"))
}

/// Serves `app` on a fresh loopback port; returns its address.
pub async fn serve(app: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}
