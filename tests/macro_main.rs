//! `#[ctx::main]`: `examples/signal.rs` runs as a child process and gets
//! real signals (sent with `kill`, so Unix only).
#![cfg(unix)]

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Generous: the child only has to react to a signal.
const PATIENCE: Duration = Duration::from_secs(20);

/// The `signal` example, built next to this test (cargo builds examples for
/// `cargo test`; a run limited to this file builds it here).
fn example() -> PathBuf {
    // One build for all tests: a test must not start a binary that another
    // test's build is still writing.
    static EXAMPLE: OnceLock<PathBuf> = OnceLock::new();
    EXAMPLE.get_or_init(build_example).clone()
}

fn build_example() -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows its own path");
    // target/<profile>/deps/macro_main-<hash>
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("tests run from target/<profile>/deps");
    let path = profile_dir
        .join("examples")
        .join(format!("signal{}", std::env::consts::EXE_SUFFIX));
    if !path.exists() {
        let mut build = Command::new(env!("CARGO"));
        build
            .args(["build", "--example", "signal", "--manifest-path"])
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"));
        if profile_dir
            .file_name()
            .is_some_and(|name| name == "release")
        {
            build.arg("--release");
        }
        let status = build.status().expect("cargo runs");
        assert!(status.success(), "building the signal example failed");
    }
    path
}

struct Running {
    child: Child,
    stdout: BufReader<ChildStdout>,
}

impl Running {
    fn start(args: &[&str]) -> Running {
        let mut child = Command::new(example())
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("the example starts");
        let stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
        let mut running = Running { child, stdout };
        // The example prints this once its context listens for signals.
        assert_eq!(running.line(), "ready: press Ctrl-C to stop");
        running
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("stdout reads");
        line.trim_end().to_owned()
    }

    fn kill(&self, signal: &str) {
        kill(self.child.id(), signal);
    }

    /// Waits for the exit, killing the child if it takes too long.
    fn wait(mut self) -> (ExitStatus, String) {
        let at = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("the child can be waited on") {
                break status;
            }
            if at.elapsed() > PATIENCE {
                let _ = self.child.kill();
                panic!("the example did not exit within {PATIENCE:?}");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let mut rest = String::new();
        self.stdout.read_to_string(&mut rest).expect("stdout reads");
        (status, rest)
    }
}

#[test]
fn sigint_cancels_ctx_and_main_exits_cleanly() {
    let running = Running::start(&[]);
    running.kill("INT");
    let (status, out) = running.wait();
    assert!(status.success(), "{status}");
    assert_eq!(out, "canceled: context canceled (received SIGINT)\n");
}

#[test]
fn sigterm_cancels_ctx_too() {
    let running = Running::start(&[]);
    running.kill("TERM");
    let (status, out) = running.wait();
    assert!(status.success(), "{status}");
    assert_eq!(out, "canceled: context canceled (received SIGTERM)\n");
}

#[test]
fn a_second_sigint_ends_a_program_that_ignores_the_first() {
    let mut running = Running::start(&["--stubborn"]);
    running.kill("INT");
    assert_eq!(
        running.line(),
        "canceled: context canceled (received SIGINT)"
    );
    assert_eq!(running.line(), "ignoring it");
    running.kill("INT");
    let (status, out) = running.wait();
    // Killed by the signal itself, as if nothing had handled it: a shell
    // shows 130 and stops a script that ran the program.
    assert_eq!(killed_by(status), Some(SIGINT), "{status}");
    assert_eq!(out, "");
}

#[test]
fn a_second_sigterm_kills_the_program_by_sigterm() {
    let mut running = Running::start(&["--stubborn"]);
    running.kill("TERM");
    assert_eq!(
        running.line(),
        "canceled: context canceled (received SIGTERM)"
    );
    assert_eq!(running.line(), "ignoring it");
    running.kill("TERM");
    let (status, out) = running.wait();
    assert_eq!(killed_by(status), Some(SIGTERM), "{status}");
    assert_eq!(out, "");
}

const SIGINT: i32 = 2;
const SIGTERM: i32 = 15;

/// Sends `signal` (`INT`, `TERM`) to process `pid` with `kill`.
fn kill(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("kill runs");
    assert!(status.success());
}

/// The signal that ended the process, if one did.
fn killed_by(status: ExitStatus) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    status.signal()
}

/// Whether this machine lets an unprivileged process be PID 1 of a new PID
/// namespace (`unshare -Urpf`): containers' entry points run so.
fn pid_namespaces_work() -> bool {
    Command::new("unshare")
        .args(["-Urpf", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// As PID 1 (a container without an init) a default action cannot kill the
/// process: the kernel ignores the signal, and re-raising it would end in
/// `abort`, then a crash. The second SIGINT exits with status 130 instead.
#[test]
fn a_second_sigint_to_process_1_exits_130() {
    if !pid_namespaces_work() {
        eprintln!("skipped: no user and PID namespaces on this machine");
        return;
    }
    let mut child = Command::new("unshare")
        .arg("-Urpf") // -f: the example is PID 1 of the new namespace
        .arg(example())
        .arg("--stubborn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("unshare starts");
    let stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
    let mut running = Running { child, stdout };
    assert_eq!(running.line(), "ready: press Ctrl-C to stop");
    // The example's pid outside its namespace: unshare's one child.
    let unshare = running.child.id();
    let children = std::fs::read_to_string(format!("/proc/{unshare}/task/{unshare}/children"))
        .expect("unshare's children are listed");
    let example: u32 = children.trim().parse().expect("one child");
    kill(example, "INT");
    assert_eq!(
        running.line(),
        "canceled: context canceled (received SIGINT)"
    );
    assert_eq!(running.line(), "ignoring it");
    kill(example, "INT");
    let (status, out) = running.wait();
    // unshare exits with its child's status.
    assert_eq!(
        status.code(),
        Some(130),
        "{status} (signal {:?})",
        killed_by(status)
    );
    assert_eq!(out, "");
}
