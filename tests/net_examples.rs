//! The network examples run and do what they say, on real servers on
//! 127.0.0.1. The in-process tests include each example's code from its
//! file; the `http_server` binary also runs as a child process, to see its
//! stderr and its Ctrl-C shutdown.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc as std_mpsc, Arc, OnceLock};
use std::time::{Duration, Instant};

use ctx::Context;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

// `pub mod`: each example's `pub fn main`, which only its own binary calls,
// is then reachable from this crate's root and not dead code here.
#[path = "../examples/http_client.rs"]
pub mod http_client;
#[path = "../examples/http_server.rs"]
pub mod http_server;
#[path = "../examples/two_hop.rs"]
pub mod two_hop;

/// Generous: how long anything prompt may take on a busy two-core machine.
const PATIENCE: Duration = Duration::from_secs(10);

/// The bound from a client's disconnect to "request cancelled".
const PROMPT: Duration = Duration::from_millis(200);

/// How long the test client waits before it disconnects.
const CLIENT_PATIENCE: Duration = Duration::from_millis(100);

/// Lines said by an in-process example, with the instant each was said.
fn recorder() -> (http_server::Say, mpsc::UnboundedReceiver<(Instant, String)>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let say: http_server::Say = Arc::new(move |line: &str| {
        let _ = tx.send((Instant::now(), line.to_owned()));
    });
    (say, rx)
}

async fn next_line(lines: &mut mpsc::UnboundedReceiver<(Instant, String)>) -> (Instant, String) {
    tokio::time::timeout(PATIENCE, lines.recv())
        .await
        .expect("the example said nothing in time")
        .expect("the example is gone")
}

async fn start_http_server() -> (
    SocketAddr,
    http_server::App,
    mpsc::UnboundedReceiver<(Instant, String)>,
) {
    let (say, lines) = recorder();
    let app = http_server::App::new(say);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = http_server::router(&Context::background(), app.clone());
    tokio::spawn(async move { http_server::serve(&Context::background(), listener, router).await });
    (addr, app, lines)
}

#[tokio::test]
async fn http_server_cancels_the_request_when_the_client_leaves() {
    let (addr, app, mut lines) = start_http_server().await;

    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"GET / HTTP/1.1\r\nhost: test\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(next_line(&mut lines).await.1, "processing request");
    tokio::time::sleep(CLIENT_PATIENCE).await; // the client's patience, not a sync
    drop(conn);
    let gone = Instant::now();

    let (said, line) = next_line(&mut lines).await;
    assert_eq!(line, "request cancelled");
    let latency = said.saturating_duration_since(gone);
    eprintln!("http_server, in process: disconnect to \"request cancelled\": {latency:?}");
    assert!(
        latency < PROMPT,
        "{latency:?} from disconnect to \"request cancelled\""
    );
    assert_eq!(
        app.subtasks.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the handler's subtask has stopped"
    );
}

#[tokio::test]
async fn http_server_processes_a_request_whose_client_waits() {
    let (addr, _app, mut lines) = start_http_server().await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<hyper::body::Bytes>>();
    let resp = client
        .get(format!("http://{addr}/").parse().unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap();
    assert_eq!(&body.to_bytes()[..], b"request processed\n");
    assert_eq!(next_line(&mut lines).await.1, "processing request");
    assert_eq!(next_line(&mut lines).await.1, "request processed");
}

#[tokio::test]
async fn http_client_fails_with_deadline_exceeded_after_its_timeout() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let say: http_client::Say = Arc::new(move |line| {
        let _ = tx.send(line);
    });
    let outcome = http_client::story(say).await.unwrap();
    eprintln!("http_client: {outcome:?}");

    assert_eq!(outcome.client, Some(ctx::Error::DeadlineExceeded));
    assert!(outcome.elapsed >= http_client::TIMEOUT, "{outcome:?}");
    assert!(
        outcome.elapsed < http_client::TIMEOUT + PATIENCE / 10,
        "{outcome:?}"
    );
    // The server's request context ended too (its own deadline, or the
    // client hanging up), long before the slow work would have finished.
    assert!(outcome.server.1 < http_client::SLOW / 10, "{outcome:?}");

    let client_line = rx.recv().await.unwrap();
    assert!(
        client_line.starts_with("client: request failed after"),
        "{client_line}"
    );
    assert!(
        client_line.ends_with("context deadline exceeded"),
        "{client_line}"
    );
    assert!(rx
        .recv()
        .await
        .unwrap()
        .starts_with("server: request context ended after"));
}

#[tokio::test]
async fn two_hop_deadline_shrinks_and_a_client_that_leaves_cancels_b() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let say: two_hop::Say = Arc::new(move |line| {
        let _ = tx.send(line);
    });
    let outcome = two_hop::story(say).await.unwrap();
    let [at_client, at_a, at_b] = outcome.left_us;
    eprintln!(
        "two_hop: time left at client, A, B (us): {:?}",
        outcome.left_us
    );
    assert!(at_client <= two_hop::DEADLINE.as_micros());
    assert!(at_a < at_client, "{:?}", outcome.left_us);
    assert!(at_b < at_a, "{:?}", outcome.left_us);
    assert!(at_b > 0, "{:?}", outcome.left_us);
    assert_eq!(outcome.trace_at_b, &two_hop::TRACEPARENT[3..35]);
    assert_eq!(outcome.tenant_at_b, "acme");
    assert_eq!(
        outcome.abandoned,
        [1, 1],
        "one abandoned request in A and B"
    );

    let mut lines = Vec::new();
    while let Ok(line) = rx.try_recv() {
        lines.push(line);
    }
    let abandoned =
        "context canceled (request abandoned before its response was sent (client went away))";
    assert_eq!(
        lines[3..],
        [
            "the request id reached A and B: true".to_owned(),
            "B: working on the slow request".to_owned(),
            "client: gives up".to_owned(),
            format!("A: request context ended: {abandoned}"),
            format!("B: request context ended: {abandoned}"),
            "A: abandoned requests: 1".to_owned(),
            "B: abandoned requests: 1".to_owned(),
        ],
        "{lines:#?}"
    );
}

/// The `http_server` example binary, built next to this test.
fn example() -> PathBuf {
    static EXAMPLE: OnceLock<PathBuf> = OnceLock::new();
    EXAMPLE
        .get_or_init(|| {
            let exe = std::env::current_exe().expect("the test knows its own path");
            let profile_dir = exe
                .parent()
                .and_then(|deps| deps.parent())
                .expect("tests run from target/<profile>/deps");
            let path = profile_dir
                .join("examples")
                .join(format!("http_server{}", std::env::consts::EXE_SUFFIX));
            if !path.exists() {
                let mut build = Command::new(env!("CARGO"));
                build
                    .args(["build", "--example", "http_server", "--features", "net"])
                    .arg("--manifest-path")
                    .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"));
                if profile_dir
                    .file_name()
                    .is_some_and(|name| name == "release")
                {
                    build.arg("--release");
                }
                assert!(build.status().expect("cargo runs").success());
            }
            path
        })
        .clone()
}

/// The example running as a child process; its stderr lines arrive, with
/// the instant each was read, on `stderr`.
struct Server {
    child: Child,
    addr: SocketAddr,
    stdout: BufReader<std::process::ChildStdout>,
    stderr: std_mpsc::Receiver<(Instant, String)>,
}

impl Server {
    fn start() -> Server {
        let mut child = Command::new(example())
            .arg("127.0.0.1:0")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the example starts");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let errors = BufReader::new(child.stderr.take().unwrap());
        let (tx, stderr) = std_mpsc::channel();
        std::thread::spawn(move || {
            for line in errors.lines() {
                let Ok(line) = line else { return };
                if tx.send((Instant::now(), line)).is_err() {
                    return;
                }
            }
        });
        let mut first = String::new();
        stdout.read_line(&mut first).unwrap();
        let addr = first
            .trim()
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line: {first:?}"))
            .parse()
            .unwrap();
        Server {
            child,
            addr,
            stdout,
            stderr,
        }
    }

    fn said(&self) -> (Instant, String) {
        self.stderr
            .recv_timeout(PATIENCE)
            .expect("the server said nothing in time")
    }

    fn request(&self) -> TcpStream {
        let mut conn = TcpStream::connect(self.addr).unwrap();
        conn.write_all(b"GET / HTTP/1.1\r\nhost: test\r\n\r\n")
            .unwrap();
        assert_eq!(self.said().1, "processing request");
        conn
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn http_server_binary_says_request_cancelled_when_the_client_leaves() {
    let server = Server::start();
    let conn = server.request();
    std::thread::sleep(CLIENT_PATIENCE); // the client's patience, not a sync
    drop(conn);
    let gone = Instant::now();
    let (said, line) = server.said();
    assert_eq!(line, "request cancelled");
    let latency = said.saturating_duration_since(gone);
    eprintln!("http_server binary: disconnect to \"request cancelled\" on stderr: {latency:?}");
    // Through a pipe and a reader thread: allow for a busy machine.
    assert!(latency < PROMPT * 5, "{latency:?}");
}

#[cfg(unix)]
#[test]
fn http_server_binary_shuts_down_gracefully_on_ctrl_c() {
    let mut server = Server::start();
    let mut conn = server.request();

    let status = Command::new("kill")
        .arg("-INT")
        .arg(server.child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let signaled = Instant::now();

    // The request in flight sees its context canceled and answers 503.
    assert_eq!(server.said().1, "request cancelled");
    let mut response = String::new();
    conn.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 503"), "{response}");

    // The process exits, within the grace period and then some.
    let exited = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            signaled.elapsed() < http_server::GRACE + PATIENCE,
            "still running"
        );
        std::thread::sleep(Duration::from_millis(10)); // polling a process: no event to await
    };
    eprintln!(
        "http_server binary: Ctrl-C to exit: {:?}",
        signaled.elapsed()
    );
    assert!(exited.success(), "{exited:?}");
    let mut rest = String::new();
    server.stdout.read_to_string(&mut rest).unwrap();
    assert_eq!(rest.trim(), "shut down: received SIGINT");
    // It no longer accepts.
    assert!(TcpStream::connect(server.addr).is_err());
}
