//! Stress: thousands of scopes on a multi-thread runtime, with random nested
//! spawns, blocking tasks, limits, failures, panics, parent cancellations and
//! dropped scope futures. After every scope, checks that no task body is still
//! alive and that no error was lost or invented. Bounded by count; a few
//! seconds in a debug build.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use ctx::{Context, Scope};
use futures::FutureExt;

const SCOPES_MULTI_THREAD: u64 = 10_000;
const SCOPES_CURRENT_THREAD: u64 = 2_000;
const DRIVERS: u64 = 8;
const PATIENCE: Duration = Duration::from_secs(20);

#[derive(Debug, PartialEq)]
enum StressError {
    Ctx(ctx::Error),
    Failed(u64),
}

impl From<ctx::Error> for StressError {
    fn from(err: ctx::Error) -> Self {
        StressError::Ctx(err)
    }
}

impl std::fmt::Display for StressError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

/// The payload of every planned panic; the panic hook keeps these quiet.
struct StressPanic;

fn quiet_planned_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<StressPanic>().is_none() {
                default(info);
            }
        }));
    });
}

/// xorshift64*: deterministic, seeded per scope and per task.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }
}

/// What one scope's tasks did, seen from outside.
#[derive(Default)]
struct Probe {
    /// Task bodies alive right now (up at start, down on drop).
    live: AtomicUsize,
    /// Error ids returned by tasks or the body.
    errors: Mutex<Vec<u64>>,
    /// Whether any task or the body panicked.
    panicked: AtomicBool,
}

struct Live(Arc<Probe>);

impl Live {
    fn new(probe: &Arc<Probe>) -> Live {
        probe.live.fetch_add(1, SeqCst);
        Live(probe.clone())
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, SeqCst);
    }
}

/// Decides how one task ends.
fn finish(rng: &mut Rng, probe: &Probe, id: u64) -> Result<u64, StressError> {
    match rng.below(1000) {
        0..=4 => {
            probe.panicked.store(true, SeqCst);
            std::panic::panic_any(StressPanic)
        }
        5..=79 => {
            probe.errors.lock().unwrap().push(id);
            Err(StressError::Failed(id))
        }
        _ => Ok(id),
    }
}

fn spawn_task(s: &Scope<StressError>, probe: &Arc<Probe>, seed: u64, depth: u32) {
    let mut rng = Rng::new(seed);
    let (probe, nested) = (probe.clone(), s.clone());
    let id = seed;
    if rng.percent(20) {
        nested.clone().spawn_blocking(move |ctx| {
            let _live = Live::new(&probe);
            let mut rng = Rng::new(seed ^ 0xB10C);
            for _ in 0..rng.below(20) {
                if ctx.is_done() {
                    break;
                }
                std::thread::yield_now();
            }
            if depth < 2 && rng.percent(30) {
                spawn_task(
                    &nested,
                    &probe,
                    seed.wrapping_mul(31).wrapping_add(1),
                    depth + 1,
                );
            }
            finish(&mut rng, &probe, id)
        });
        return;
    }
    s.spawn(move |ctx| async move {
        let _live = Live::new(&probe);
        let mut rng = Rng::new(seed ^ 0xA5A5);
        for _ in 0..rng.below(8) {
            if ctx.is_done() {
                break;
            }
            tokio::task::yield_now().await;
        }
        if depth < 2 && rng.percent(30) {
            for k in 0..1 + rng.below(2) {
                spawn_task(
                    &nested,
                    &probe,
                    seed.wrapping_mul(31).wrapping_add(k + 1),
                    depth + 1,
                );
            }
        }
        if rng.percent(10) {
            // a cooperative task that also watches the group while it works
            let _ = ctx.run(tokio::task::yield_now()).await;
        }
        finish(&mut rng, &probe, id)
    });
}

/// How the scopes of one run ended, to check that every path was taken.
#[derive(Default)]
struct Tally {
    ok: AtomicUsize,
    failed: AtomicUsize,
    parent_error: AtomicUsize,
    panicked: AtomicUsize,
    dropped: AtomicUsize,
}

impl Tally {
    fn assert_every_path_taken(&self) {
        let counts = [
            ("ok", &self.ok),
            ("failed", &self.failed),
            ("parent error", &self.parent_error),
            ("panicked", &self.panicked),
            ("dropped", &self.dropped),
        ];
        for (what, count) in counts {
            assert!(
                count.load(SeqCst) > 0,
                "no scope ended {what}: the mix is broken"
            );
        }
    }
}

/// Runs scope number `index` and checks what it reports against what happened.
async fn one_scope(index: u64, tally: &Tally) {
    let mut rng = Rng::new(index + 1);
    let probe = Arc::new(Probe::default());
    let (parent, cancel_parent) = Context::background().with_cancel();
    let cancel_parent = cancel_parent.handle();
    let limit = if rng.percent(30) {
        Some(1 + rng.below(4) as usize)
    } else {
        None
    };
    let tasks = rng.below(10);
    let body_fails = rng.percent(5);
    let body_panics = rng.percent(1);
    let cancel_after = rng.percent(10).then(|| rng.below(10));
    let drop_after = rng.percent(10).then(|| rng.below(10));
    let body_seed = rng.next();

    let p = probe.clone();
    let scope = ctx::scope(&parent, move |s: Scope<StressError>| async move {
        if let Some(limit) = limit {
            s.set_limit(limit);
        }
        let mut rng = Rng::new(body_seed);
        for t in 0..tasks {
            if limit.is_some() && rng.percent(50) {
                s.ready().await?;
            }
            spawn_task(&s, &p, body_seed.wrapping_add(t * 7919), 0);
            if rng.percent(30) {
                tokio::task::yield_now().await;
            }
        }
        if body_panics {
            p.panicked.store(true, SeqCst);
            std::panic::panic_any(StressPanic);
        }
        if body_fails {
            p.errors.lock().unwrap().push(u64::MAX);
            return Err(StressError::Failed(u64::MAX));
        }
        Ok(index)
    });

    let canceler = cancel_after.map(|yields| {
        let cancel_parent = cancel_parent.clone();
        tokio::spawn(async move {
            for _ in 0..yields {
                tokio::task::yield_now().await;
            }
            cancel_parent.cancel();
        })
    });

    let outcome = match drop_after {
        Some(yields) => {
            let dropper = async {
                for _ in 0..yields {
                    tokio::task::yield_now().await;
                }
            };
            tokio::select! {
                biased;
                out = AssertUnwindSafe(scope).catch_unwind() => Some(out),
                () = dropper => None,
            }
        }
        None => Some(AssertUnwindSafe(scope).catch_unwind().await),
    };

    let Some(outcome) = outcome else {
        // Dropped: every async task is aborted, every blocking one sees its
        // context canceled; all of them must be gone soon.
        let start = Instant::now();
        while probe.live.load(SeqCst) != 0 {
            assert!(
                start.elapsed() < PATIENCE,
                "scope {index}: tasks still alive after the scope future was dropped"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        if let Some(c) = canceler {
            c.await.unwrap();
        }
        tally.dropped.fetch_add(1, SeqCst);
        return;
    };

    assert_eq!(
        probe.live.load(SeqCst),
        0,
        "scope {index}: a task was still alive when scope returned"
    );
    let errors = probe.errors.lock().unwrap().clone();
    match outcome {
        Err(payload) => {
            assert!(
                payload.downcast_ref::<StressPanic>().is_some(),
                "scope {index}: resumed a panic with a foreign payload"
            );
            assert!(
                probe.panicked.load(SeqCst),
                "scope {index}: invented a panic"
            );
            tally.panicked.fetch_add(1, SeqCst);
        }
        Ok(result) => {
            assert!(
                !probe.panicked.load(SeqCst),
                "scope {index}: lost a panic, returned {result:?}"
            );
            match result {
                Ok(value) => {
                    assert_eq!(value, index);
                    assert!(errors.is_empty(), "scope {index}: lost errors {errors:?}");
                    tally.ok.fetch_add(1, SeqCst);
                }
                Err(StressError::Failed(id)) => {
                    assert!(errors.contains(&id), "scope {index}: invented error {id}");
                    tally.failed.fetch_add(1, SeqCst);
                }
                Err(StressError::Ctx(err)) => {
                    assert_eq!(err, ctx::Error::Canceled);
                    assert!(
                        parent.is_done(),
                        "scope {index}: a ctx error without a canceled parent"
                    );
                    tally.parent_error.fetch_add(1, SeqCst);
                }
            }
        }
    }
    if let Some(c) = canceler {
        c.await.unwrap();
    }
}

async fn drive(scopes: u64) {
    let tally = Arc::new(Tally::default());
    let mut drivers = tokio::task::JoinSet::new();
    for d in 0..DRIVERS {
        let tally = tally.clone();
        drivers.spawn(async move {
            let mut index = d;
            while index < scopes {
                one_scope(index, &tally).await;
                index += DRIVERS;
            }
        });
    }
    while let Some(done) = drivers.join_next().await {
        done.expect("a driver failed a check");
    }
    tally.assert_every_path_taken();
}

#[test]
fn thousands_of_scopes_on_a_multi_thread_runtime_lose_no_task_and_no_error() {
    quiet_planned_panics();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(drive(SCOPES_MULTI_THREAD));
}

#[test]
fn a_thousand_scopes_on_a_current_thread_runtime_lose_no_task_and_no_error() {
    quiet_planned_panics();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(drive(SCOPES_CURRENT_THREAD));
}
