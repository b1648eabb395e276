//! Containing panics of user code that ctx runs on its own account.
//!
//! ctx runs user code in places where a panic must not escape: `after_func`
//! callbacks and wakers inside a cancel walk (which may be a guard's `Drop`
//! or the timer thread), drops of user values on ctx's own threads,
//! `Display` of a scope error turned into a cause. `catch_unwind` alone is
//! not enough there: the caught payload is itself a user value, and a
//! payload whose `Drop` panics would unwind from wherever it is dropped,
//! outside the catch. [`contain`] drops the payload inside a further catch
//! and forgets whatever that second catch returns, so nothing can escape.
//!
//! The panic hook still reports every panic, as it does for a panicking
//! thread. Scope tasks are not contained here: their panics are resumed in
//! the caller of `scope`, as documented.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs `f`; a panic in it (or in the drop of its payload) stops there.
/// Returns `None` if `f` panicked.
pub(crate) fn contain<R>(f: impl FnOnce() -> R) -> Option<R> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(value) => Some(value),
        Err(payload) => {
            drop_payload(payload);
            None
        }
    }
}

/// Drops a caught panic payload whose `Drop` may itself panic: that second
/// panic is caught too, and its payload forgotten (leaked, never dropped).
pub(crate) fn drop_payload(payload: Box<dyn Any + Send>) {
    if let Err(again) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
        std::mem::forget(again);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::contain;

    /// A panic payload whose own drop panics.
    pub(crate) struct Bomb;

    impl Drop for Bomb {
        fn drop(&mut self) {
            panic!("the payload's drop panics too");
        }
    }

    #[test]
    fn a_payload_whose_drop_panics_is_contained() {
        assert_eq!(contain(|| 7), Some(7));
        let out: Option<()> = contain(|| std::panic::panic_any(Bomb));
        assert_eq!(out, None, "the panic stopped in contain");
    }
}
