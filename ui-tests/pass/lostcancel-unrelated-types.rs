//! Types that are not cancel guards pass the lostcancel check, whatever
//! their methods are called (issue 12: the check is type-directed).
#![deny(warnings)]

use std::time::{Duration, Instant};

use ctx::{ctx, Context};

struct Timer;

impl Timer {
    fn with_timeout(&self, ticks: u32) -> (u32, u32) {
        (ticks, ticks * 2)
    }

    fn with_cancel(ticks: u32) -> (Timer, u32) {
        (Timer, ticks)
    }
}

#[derive(Default)]
struct Builder {
    cancelable: bool,
}

impl Builder {
    fn with_cancel(&mut self) {
        self.cancelable = true;
    }

    fn with_deadline(self, _at: Instant) -> Builder {
        self
    }
}

#[ctx]
fn unrelated_types() -> u32 {
    let my_timer = Timer;
    let (a, _) = my_timer.with_timeout(5);
    let (_timer, _) = Timer::with_cancel(3);
    let (_timer, ..) = Timer::with_cancel(3);
    let b = &mut Builder::default();
    b.with_cancel();
    let _ = Builder::default().with_deadline(Instant::now());
    let first = my_timer.with_timeout(7).0;
    let matched = match my_timer.with_timeout(1) {
        (n, _) => n,
    };
    std::mem::forget(Builder::default());
    _ = Timer::with_cancel(4);
    a + first + matched
}

#[ctx]
fn guards_that_are_kept() -> bool {
    let (child, cancel) = ctx.with_timeout(Duration::from_secs(1));
    // `_` on the context half drops a context, not a guard.
    let (_, other) = ctx.with_cancel();
    // A place is not moved by `let`: nothing is dropped.
    let pair = ctx.with_cancel();
    let (grandchild, _) = &pair;
    let done = child.is_done() || grandchild.is_done();
    // The arm only uses `c`: the guard lives until the statement ends.
    let inside = match ctx.with_cancel() {
        (c, _) => c.is_done(),
    };
    drop((cancel, other));
    done || inside
}

#[ctx]
fn never_returning_calls_are_left_alone(stop: bool) {
    if stop {
        let _ = std::process::exit(0);
    }
}

fn main() {
    let root = Context::background();
    assert_eq!(unrelated_types(&root), 5 + 7 + 1);
    assert!(!guards_that_are_kept(&root));
    never_returning_calls_are_left_alone(&root, false);
}
