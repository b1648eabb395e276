//! `.0` on a value that is not a derivation's pair compiles in every
//! position the check looks at, and so does a `.0` that drops no guard: one
//! on a place, one behind a reference, one borrowed (the pair lives as long
//! as the borrow), and a `.1` that moves the guard out.
#![deny(warnings)]

use ctx::{ctx, CancelGuard, Context};

struct Timer;

impl Timer {
    fn with_timeout(&self, ticks: u32) -> (u32, u32) {
        (ticks, ticks * 2)
    }

    fn with_cancel(&self) -> (Context, u32) {
        (Context::background(), 0)
    }
}

fn split(n: u32) -> (u32, u32) {
    (n, n + 1)
}

fn consume(n: u32) -> u32 {
    n
}

fn is_done(ctx: &Context) -> bool {
    ctx.is_done()
}

struct Worker {
    ticks: u32,
}

#[ctx]
fn unrelated_tuples_anywhere(timer: &Timer) -> u32 {
    let argument = consume(timer.with_timeout(1).0);
    let worker = Worker {
        ticks: timer.with_timeout(2).0,
    };
    let receiver = timer.with_timeout(3).0.clone() + split(4).0.pow(1);
    let child = timer.with_cancel().0.with_value(7u8);
    timer.with_timeout(5).0;
    let closure = || split(6).0;
    let returned = || {
        return timer.with_timeout(7).0;
    };
    argument + worker.ticks + receiver + u32::from(*child.value::<u8>().unwrap_or(&0))
        + closure()
        + returned()
        + split(8).0
}

#[ctx]
fn dot_zero_that_drops_no_guard() -> bool {
    // A place: `.0` moves the context out and leaves the guard in `pair`.
    let pair = ctx.with_cancel();
    let from_place = pair.0;
    // Behind a reference: nothing is moved out of the vector.
    let pairs = vec![ctx.with_cancel()];
    let behind_reference = pairs.first().map(|pair| pair.0.clone());
    // Borrowed: the pair lives to the end of the statement, or of the
    // block where a `let` extends its life.
    let in_argument = is_done(&ctx.with_cancel().0);
    let borrowed = &ctx.with_cancel().0;
    let (in_tuple, _n) = (&ctx.with_cancel().0, 1);
    let ref by_ref = ctx.with_cancel().0;
    let in_branch = if from_place.is_done() {
        &ctx.with_cancel().0
    } else {
        &ctx.with_cancel().0
    };
    // `.1` moves the guard out: the context half is what is dropped.
    let guard: CancelGuard = ctx.with_cancel().1;
    drop(guard);
    from_place.is_done()
        || in_argument
        || behind_reference.is_none_or(|child| child.is_done())
        || borrowed.is_done()
        || in_tuple.is_done()
        || by_ref.is_done()
        || in_branch.is_done()
}

fn main() {
    let root = Context::background();
    assert_eq!(unrelated_tuples_anywhere(&root, &Timer), 1 + 2 + 3 + 4 + 7 + 6 + 7 + 8);
    assert!(!dot_zero_that_drops_no_guard(&root));
}
