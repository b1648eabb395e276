//! Nested tuple patterns compile where what their `_` and `..` drop is not
//! a cancel guard: unrelated tuples, the context half of a pair, a place
//! (nothing is moved), an arm that only uses its context inside, and a `..`
//! between two names, which may cover nothing.
#![deny(warnings)]

use ctx::{ctx, Context};

struct Timer;

impl Timer {
    fn with_timeout(&self, ticks: u32) -> (u32, u32) {
        (ticks, ticks * 2)
    }
}

#[ctx]
fn unrelated_nested_tuples(timer: &Timer) -> u32 {
    let ((a, _), _) = (timer.with_timeout(1), 2);
    let (_, (b, ..)) = ((), timer.with_timeout(3));
    let (c, _, ((d, _), ..)) = (5, (), (timer.with_timeout(7), 9));
    let (e, f);
    ((e, _), f) = (timer.with_timeout(11), 13);
    a + b + c + d + e + f
}

#[ctx]
fn nested_discards_that_keep_the_guard() -> bool {
    // `_` on the context half of a nested pair.
    let ((_, cancel), attempts) = (ctx.with_cancel(), 3);
    // A nested pattern over a place: nothing is moved out of `pair`.
    let pair = ctx.with_cancel();
    let ((child, _), _) = (&pair, 1);
    // The arm only uses `c`: the guard lives until the match ends.
    let inside = match (ctx.with_cancel(), 1) {
        ((c, _), _) => c.is_done(),
    };
    // A `..` between two names: over a pair it covers nothing.
    let (grandchild, .., _grandchild_cancel) = child.with_cancel();
    drop(cancel);
    attempts == 0 || child.is_done() || inside || grandchild.is_done()
}

fn main() {
    let root = Context::background();
    assert_eq!(unrelated_nested_tuples(&root, &Timer), 1 + 3 + 5 + 7 + 11 + 13);
    assert!(!nested_discards_that_keep_the_guard(&root));
}
