//! `#[ctx::test(start_paused = true)]`: the test's runtime starts with
//! tokio's clock paused, deadlines derived in the test follow tokio's clock,
//! and the test's own `timeout =` budget stays on the real clock.
//!
//! Needs the `test-util` feature (`cargo test --features test-util --test
//! macro_test_paused`). The test that must fail (a body that blocks) runs
//! as a child process of this binary, as in `macro_test_watchdog.rs`.

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ctx::{Context, Error};

/// Far more than any of these tests takes in real time, far less than the
/// deadlines they pass on tokio's clock.
const REAL_TIME_BOUND: Duration = Duration::from_secs(5);

#[ctx::test(start_paused = true)]
async fn sleeping_past_a_10s_deadline_ends_it_in_milliseconds_of_real_time() {
    let real = Instant::now();
    let (call, _cancel) = ctx.with_timeout(Duration::from_secs(10));
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert_eq!(call.err(), Some(Error::DeadlineExceeded));
    assert!(call.cause().unwrap().is(Error::DeadlineExceeded));
    assert!(
        real.elapsed() < REAL_TIME_BOUND,
        "took {:?} of real time",
        real.elapsed()
    );
}

#[ctx::test(start_paused = true)]
async fn advancing_past_a_deadline_ends_it_and_never_early() {
    let (call, _cancel) = Context::background().with_timeout(Duration::from_secs(10));
    tokio::time::advance(Duration::from_secs(9)).await;
    assert_eq!(call.err(), None, "never early");
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(call.err(), Some(Error::DeadlineExceeded));
}

#[ctx::test(start_paused = true)]
async fn a_run_under_a_10s_timeout_ends_at_once_by_auto_advance() {
    let real = Instant::now();
    let (call, _cancel) = ctx.with_timeout(Duration::from_secs(10));
    let out = call.run(std::future::pending::<()>()).await;
    assert_eq!(out, Err(Error::DeadlineExceeded));
    assert!(
        real.elapsed() < REAL_TIME_BOUND,
        "took {:?} of real time",
        real.elapsed()
    );
}

#[ctx::test(start_paused = true)]
async fn deadline_and_remaining_read_tokios_clock() {
    let start = tokio::time::Instant::now();
    let (call, _cancel) = ctx.with_timeout(Duration::from_secs(10));
    assert_eq!(
        call.deadline(),
        Some((start + Duration::from_secs(10)).into_std())
    );
    tokio::time::advance(Duration::from_secs(4)).await;
    assert_eq!(call.remaining(), Some(Duration::from_secs(6)));
}

#[ctx::test(start_paused = true)]
async fn without_a_timeout_the_tests_context_is_never_done() {
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(ctx.err(), None);
    assert_eq!(ctx.deadline(), None);
}

#[ctx::test(start_paused = false)]
async fn start_paused_false_keeps_the_real_clock() {
    let real = Instant::now();
    let (call, _cancel) = ctx.with_timeout(Duration::from_millis(50));
    assert_eq!(call.done().await, Error::DeadlineExceeded);
    assert!(real.elapsed() >= Duration::from_millis(50), "not paused");
}

#[ctx::test(start_paused = true)]
async fn deadlines_derived_on_other_threads_keep_the_real_clock() {
    let (there, _cancel) =
        std::thread::spawn(|| Context::background().with_timeout(Duration::from_secs(10)))
            .join()
            .unwrap();
    tokio::time::advance(Duration::from_secs(11)).await;
    assert_eq!(there.err(), None, "made on another thread: the real clock");
}

// The test's own budget, `timeout = ...`, under the paused clock.

#[ctx::test(start_paused = true, timeout = Duration::from_secs(2))]
async fn sleeping_an_hour_of_tokios_time_stays_within_a_real_budget_of_2s() {
    let real = Instant::now();
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(ctx.err(), None, "the budget is on the real clock");
    assert!(real.elapsed() < REAL_TIME_BOUND);
}

#[ctx::test(start_paused = true, timeout = Duration::from_secs(5))]
async fn under_a_budget_the_tests_context_has_no_deadline_to_mix_with_tokios() {
    // The budget is real time; a deadline of tokio's time below it must
    // not be compared with it (that would keep the 5 s one, on the real
    // clock, and the 10 s child would never end on tokio's).
    assert_eq!(ctx.deadline(), None);
    let (call, _cancel) = ctx.with_timeout(Duration::from_secs(10));
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert_eq!(call.err(), Some(Error::DeadlineExceeded));
    assert_eq!(ctx.err(), None);
}

#[ctx::test(start_paused = true, timeout = Duration::from_millis(100))]
#[should_panic(
    expected = "test ran past its timeout of 100ms (`timeout = Duration :: from_millis(100)`)"
)]
async fn a_body_that_awaits_past_its_real_budget_fails() {
    // Nothing on tokio's clock to advance to: only the real budget ends it.
    std::future::pending::<()>().await;
}

// A body that blocks its thread: the watchdog, on the real clock, fails it.

/// Set by the parent test for the child it runs.
const CHILD: &str = "CTX_PAUSED_WATCHDOG_CHILD";

fn is_child() -> bool {
    std::env::var_os(CHILD).is_some()
}

/// How long the blocked child blocks at most, so that a broken watchdog
/// still ends it.
const BLOCK_AT_MOST: Duration = Duration::from_secs(10);

const BLOCKING_LINE: u32 = line!() + 3;
#[ctx::test(start_paused = true, timeout = Duration::from_millis(200))]
#[ignore = "run by `a_paused_test_that_blocks_its_thread_still_fails_within_its_real_budget`"]
async fn blocks_its_thread() {
    if !is_child() {
        return;
    }
    let started = Instant::now();
    let mut reported = false;
    while started.elapsed() < BLOCK_AT_MOST {
        std::thread::sleep(Duration::from_millis(10));
        if !reported && ctx.is_done() {
            reported = true;
            let cause = ctx.cause().unwrap();
            println!(
                "the body saw its context end: {}, because {}",
                ctx.err().unwrap(),
                cause.as_error()
            );
        }
    }
}

#[test]
fn a_paused_test_that_blocks_its_thread_still_fails_within_its_real_budget() {
    let started = Instant::now();
    let mut child = Command::new(std::env::current_exe().expect("the test binary"))
        .args([
            "blocks_its_thread",
            "--exact",
            "--ignored",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
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
        let _ = exited.send(());
        status
    });
    exit.recv_timeout(Duration::from_secs(30))
        .expect("the child still runs after 30 s: the watchdog did not fire");
    let elapsed = started.elapsed();
    let status = waiter.join().unwrap().unwrap();
    let mut output = String::new();
    stdout.read_to_string(&mut output).unwrap();
    stderr.read_to_string(&mut output).unwrap();

    assert!(!status.success(), "the blocked test passed:\n{output}");
    assert!(
        elapsed < Duration::from_millis(200) + Duration::from_secs(1),
        "the blocked test failed only after {elapsed:?}:\n{output}"
    );
    assert!(
        output.contains(
            "test ran past its timeout of 200ms (`timeout = Duration :: from_millis(200)`); \
             its context was canceled, and `blocks_its_thread` still runs on its thread"
        ),
        "{output}"
    );
    assert!(
        output.contains(&format!(
            "panicked at tests/macro_test_paused.rs:{BLOCKING_LINE}:"
        )),
        "the failure does not point at the test (line {BLOCKING_LINE}):\n{output}"
    );
    assert!(
        output.contains(&format!(
            "the body saw its context end: {}, because {}",
            Error::Canceled,
            Error::DeadlineExceeded
        )),
        "the body did not see the budget cancel its context:\n{output}"
    );
}
