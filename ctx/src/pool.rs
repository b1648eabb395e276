//! The callback pool: threads for user code that ctx must not run on its
//! own threads.
//!
//! The deadline timer cancels nodes on its one thread; the `after_func`
//! callbacks such a cancel fires are user code, and one that blocks would
//! hold back every later deadline of the process. They run here instead, one
//! job per callback, so a blocked callback delays neither deadlines nor other
//! callbacks, up to [`MAX_THREADS`] blocked at once (further jobs wait in the
//! queue for a free thread).
//!
//! Like tokio's blocking pool, threads (named `ctx-callback`) are started on
//! demand, when a job arrives and no thread is idle, and end after
//! [`KEEP_ALIVE`] without work, so an idle process holds none. The pool knows
//! nothing of contexts: a job is any `FnOnce`.
//!
//! Why not tokio's blocking pool: deadlines work with no runtime at all, and
//! the pool must outlive whatever runtime happened to be current.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crate::unwind;

/// The most callback threads alive at once: the number of callbacks that
/// may block at the same time without delaying the ones queued behind them.
pub(crate) const MAX_THREADS: usize = 64;

/// How long an idle thread waits for work before it ends.
pub(crate) const KEEP_ALIVE: Duration = Duration::from_secs(10);

type Job = Box<dyn FnOnce() + Send + 'static>;

struct Pool {
    state: Mutex<State>,
    /// Signalled when a job is queued.
    work: Condvar,
}

struct State {
    /// Pushed by `execute`, popped by the threads.
    queue: VecDeque<Job>,
    /// Threads alive: raised by `execute` before it spawns one, lowered by a
    /// thread as it ends (or by `execute` when the spawn fails).
    threads: usize,
    /// Threads waiting for work: raised and lowered by each thread around
    /// its wait.
    idle: usize,
}

static POOL: Pool = Pool {
    state: Mutex::new(State {
        queue: VecDeque::new(),
        threads: 0,
        idle: 0,
    }),
    work: Condvar::new(),
};

fn lock() -> MutexGuard<'static, State> {
    // Jobs run outside the lock, so nothing can poison it mid-update.
    POOL.state.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `job` on a callback thread, soon; never on the calling thread unless
/// no thread can be started at all (then the job runs here rather than
/// never). A panic in `job` is contained, as everywhere ctx runs user code.
pub(crate) fn execute(job: impl FnOnce() + Send + 'static) {
    let mut state = lock();
    state.queue.push_back(Box::new(job));
    if state.idle >= state.queue.len() {
        // An idle thread will take it (one per queued job).
        drop(state);
        POOL.work.notify_one();
        return;
    }
    if state.threads >= MAX_THREADS {
        // All busy: the job waits for the first to finish.
        return;
    }
    state.threads += 1;
    drop(state);
    let spawned = std::thread::Builder::new()
        .name("ctx-callback".into())
        .spawn(work);
    if spawned.is_err() {
        let mut state = lock();
        state.threads -= 1;
        if state.threads == 0 {
            // No thread to run the queue: run it here rather than lose it.
            let jobs: Vec<Job> = state.queue.drain(..).collect();
            drop(state);
            for job in jobs {
                unwind::contain(job);
            }
        }
    }
}

/// A callback thread: runs queued jobs until idle for `KEEP_ALIVE`.
fn work() {
    let mut state = lock();
    loop {
        if let Some(job) = state.queue.pop_front() {
            shrink(&mut state.queue);
            drop(state);
            unwind::contain(job);
            state = lock();
            continue;
        }
        state.idle += 1;
        let (next, timeout) = POOL
            .work
            .wait_timeout(state, KEEP_ALIVE)
            .unwrap_or_else(|e| e.into_inner());
        state = next;
        state.idle -= 1;
        if timeout.timed_out() && state.queue.is_empty() {
            state.threads -= 1;
            return;
        }
    }
}

/// Gives the queue's memory back once it is less than a quarter full, so a
/// burst of callbacks does not stay allocated for the life of the process.
fn shrink(queue: &mut VecDeque<Job>) {
    if queue.capacity() > 16 && queue.len() * 4 < queue.capacity() {
        queue.shrink_to(queue.len() * 2);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    use super::execute;

    #[test]
    fn a_blocked_job_does_not_delay_the_next() {
        let (tx, rx) = mpsc::channel();
        let (release, blocked) = mpsc::channel::<()>();
        execute(move || {
            let _ = blocked.recv_timeout(Duration::from_secs(30));
        });
        let start = Instant::now();
        execute(move || {
            let _ = tx.send(());
        });
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(()));
        assert!(start.elapsed() < Duration::from_secs(10));
        let _ = release.send(());
    }

    #[test]
    fn jobs_run_off_the_calling_thread() {
        let (tx, rx) = mpsc::channel();
        execute(move || {
            let _ = tx.send(std::thread::current().name().map(str::to_owned));
        });
        let name = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(name.as_deref(), Some("ctx-callback"));
    }
}
