//! Tracing spans follow scope tasks (cargo feature `tracing`): a task runs
//! inside the span that was current when it was spawned, as
//! `tracing::Instrument::in_current_span` does, even if it waited in the
//! queue and was started later from another task or thread.
//!
//! Without the feature, [`SpawnSpan`] is zero-sized and its methods vanish
//! when inlined: no cost, nothing stored.

use std::future::Future;

/// The span current at a spawn, carried to wherever the task starts.
pub(super) struct SpawnSpan {
    #[cfg(feature = "tracing")]
    span: tracing::Span,
}

impl SpawnSpan {
    /// Captures the current span; called by `spawn`, `try_spawn` and
    /// `spawn_blocking` in the caller, so a queued task keeps its spawner's
    /// span rather than taking the one current where its slot frees.
    #[inline]
    pub(super) fn current() -> Self {
        SpawnSpan {
            #[cfg(feature = "tracing")]
            span: tracing::Span::current(),
        }
    }

    /// Runs `f` (the user's closure) inside the span.
    #[inline]
    pub(super) fn in_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        #[cfg(feature = "tracing")]
        let _entered = self.span.enter();
        f()
    }

    /// `fut` entering the span on every poll and on its drop.
    #[cfg(feature = "tracing")]
    #[inline]
    pub(super) fn instrument<F: Future>(self, fut: F) -> impl Future<Output = F::Output> {
        tracing::Instrument::instrument(fut, self.span)
    }

    /// `fut` unchanged: there are no spans without the feature.
    #[cfg(not(feature = "tracing"))]
    #[inline]
    pub(super) fn instrument<F: Future>(self, fut: F) -> F {
        fut
    }
}

#[cfg(all(test, not(feature = "tracing")))]
mod tests {
    #[test]
    fn without_the_tracing_feature_a_spawn_span_is_zero_sized() {
        assert_eq!(std::mem::size_of::<super::SpawnSpan>(), 0);
    }
}
