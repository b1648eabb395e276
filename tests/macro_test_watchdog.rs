//! `#[ctx::test(timeout = ...)]` fails a test whose body blocks its thread,
//! within the timeout plus a second, with the timeout's message, at the
//! test's location.
//!
//! A failing test cannot be asserted from inside the same test run, so the
//! tests that must fail are `#[ignore]`d and run by the tests below as child
//! processes of this same binary (`--ignored --exact NAME`). Run on their
//! own (`--include-ignored`), they pass at once: they only misbehave when
//! the parent asks them to, through `CHILD`.

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ctx::Error;

/// Set by the parent tests for the child they run.
const CHILD: &str = "CTX_WATCHDOG_CHILD";

fn is_child() -> bool {
    std::env::var_os(CHILD).is_some()
}

/// How long the blocked child blocks at most, so that with a broken
/// watchdog it still ends (and fails the parent on time) instead of hanging.
const BLOCK_AT_MOST: Duration = Duration::from_secs(10);

/// How long a child may take before the parent gives up on it.
const GIVE_UP: Duration = Duration::from_secs(30);

struct Child {
    success: bool,
    output: String,
    elapsed: Duration,
}

/// Runs the ignored test `name` of this binary in a child process.
fn run_child(name: &str) -> Child {
    let started = Instant::now();
    let mut child = Command::new(std::env::current_exe().expect("the test binary"))
        .args([name, "--exact", "--ignored", "--test-threads=1"])
        .env(CHILD, "1")
        // The panic message alone, without a backtrace through ctx.
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the test binary runs");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let (exited, exit) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let status = child.wait();
        let elapsed = started.elapsed();
        let _ = exited.send(());
        (status, elapsed)
    });
    if exit.recv_timeout(GIVE_UP).is_err() {
        panic!("the child test `{name}` still runs after {GIVE_UP:?}: the watchdog did not fire");
    }
    let (status, elapsed) = waiter.join().unwrap();
    let mut output = String::new();
    stdout.read_to_string(&mut output).unwrap();
    stderr.read_to_string(&mut output).unwrap();
    Child {
        success: status.unwrap().success(),
        output,
        elapsed,
    }
}

// The children. Their line numbers are where the failure must point.

const BLOCKING_LINE: u32 = line!() + 3;
#[ctx::test(timeout = Duration::from_millis(200))]
#[ignore = "run by `a_test_that_blocks_its_thread_fails_within_its_timeout_and_a_second`"]
async fn blocks_its_thread() {
    if !is_child() {
        return;
    }
    let mut reported = false;
    let started = Instant::now();
    // Never awaits: only the watchdog can end this test in time.
    while started.elapsed() < BLOCK_AT_MOST {
        std::thread::sleep(Duration::from_millis(10));
        if !reported && ctx.is_done() {
            reported = true;
            println!("the body saw its context end: {}", ctx.err().unwrap());
        }
    }
}

const AWAITING_LINE: u32 = line!() + 3;
#[ctx::test(timeout = Duration::from_millis(100))]
#[ignore = "run by `a_test_that_awaits_past_its_timeout_fails_at_the_test`"]
async fn awaits_past_its_timeout() {
    if !is_child() {
        return;
    }
    tokio::time::sleep(Duration::from_secs(30)).await;
}

#[ctx::test(timeout = Duration::from_secs(10))]
#[ignore = "run by `a_test_returning_an_error_still_fails`"]
async fn returns_an_error() -> Result<(), Box<dyn std::error::Error>> {
    if !is_child() {
        return Ok(());
    }
    Err("the error the test returned".into())
}

// The parents.

#[test]
fn a_test_that_blocks_its_thread_fails_within_its_timeout_and_a_second() {
    let child = run_child("blocks_its_thread");
    let output = &child.output;
    assert!(!child.success, "the blocked test passed:\n{output}");
    assert!(
        child.elapsed < Duration::from_millis(200) + Duration::from_secs(1),
        "the blocked test failed only after {:?}:\n{output}",
        child.elapsed
    );
    assert!(
        output.contains(
            "test ran past its timeout of 200ms (`timeout = Duration :: from_millis(200)`); \
             its context was canceled, and `blocks_its_thread` still runs on its thread"
        ),
        "the failure does not name the timeout and the test:\n{output}"
    );
    assert!(
        output.contains(&format!(
            "panicked at tests/macro_test_watchdog.rs:{BLOCKING_LINE}:"
        )),
        "the failure does not point at the test (line {BLOCKING_LINE}):\n{output}"
    );
    assert!(
        output.contains(&format!(
            "the body saw its context end: {}",
            Error::DeadlineExceeded
        )),
        "the body left behind did not see its context end:\n{output}"
    );
    assert!(
        output.contains("test blocks_its_thread ... FAILED"),
        "{output}"
    );
}

#[test]
fn a_test_that_awaits_past_its_timeout_fails_at_the_test() {
    let child = run_child("awaits_past_its_timeout");
    let output = &child.output;
    assert!(!child.success, "the test passed:\n{output}");
    assert!(
        output.contains(
            "test ran past its timeout of 100ms (`timeout = Duration :: from_millis(100)`); \
             its context was canceled"
        ),
        "{output}"
    );
    // The runtime dropped the body: the watchdog had nothing to add.
    assert!(!output.contains("still runs on its thread"), "{output}");
    assert!(
        output.contains(&format!(
            "panicked at tests/macro_test_watchdog.rs:{AWAITING_LINE}:"
        )),
        "the failure does not point at the test (line {AWAITING_LINE}):\n{output}"
    );
    assert!(!output.contains("ctx/src/"), "{output}");
}

#[test]
fn a_test_returning_an_error_still_fails() {
    let child = run_child("returns_an_error");
    let output = &child.output;
    assert!(!child.success, "the test passed:\n{output}");
    assert!(
        output.contains("Error: \"the error the test returned\""),
        "{output}"
    );
}

// In-process: what still works as before under a timeout.

#[ctx::test(timeout = Duration::from_secs(10))]
#[should_panic(expected = "the body's own panic")]
// The expansion's `let __ctx_out: () = { BODY };` makes clippy see the
// panic as a diverging sub-expression; every `#[ctx::test]` does so today.
#[allow(clippy::diverging_sub_expression)]
async fn a_panic_in_the_body_fails_the_test_with_its_own_message() {
    panic!("the body's own panic");
}

#[ctx::test(timeout = Duration::from_secs(10))]
#[should_panic(expected = "assertion `left == right` failed")]
async fn a_failed_assertion_fails_the_test() {
    assert_eq!(1 + 1, 3);
}

#[ctx::test(timeout = Duration::from_secs(10))]
async fn a_test_may_return_an_error_type_that_is_not_send() -> Result<(), Box<dyn std::error::Error>>
{
    ctx.check()?;
    Ok(())
}

#[ctx::test(timeout = Duration::from_secs(10), flavor = "multi_thread", worker_threads = 2)]
async fn the_body_runs_on_a_thread_named_after_the_test() {
    let name = std::thread::current().name().map(str::to_owned);
    let worker = tokio::spawn(async {}).await;
    assert!(worker.is_ok());
    // The harness names the test's thread after the test; the body's
    // thread takes that name, so panics name the test.
    assert!(
        name.as_deref()
            .is_some_and(|name| name.ends_with("the_body_runs_on_a_thread_named_after_the_test")),
        "{name:?}"
    );
}
