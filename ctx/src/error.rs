//! `Error`, why a context is done, and `Cause`, the recorded reason behind it.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

/// Why a context is done: it was canceled, or its deadline passed.
///
/// `Error` is what [`Context::err`](crate::Context::err) returns once the
/// context is done; it never changes after that. It is `Copy`, cheap to compare
/// and to match on, and converts into [`std::io::Error`] for code that speaks
/// I/O errors.
///
/// # Examples
///
/// ```
/// use ctx::{Context, Error};
///
/// let (ctx, cancel) = Context::background().with_cancel();
/// assert_eq!(ctx.err(), None);
/// cancel.cancel();
/// assert_eq!(ctx.err(), Some(Error::Canceled));
/// assert_eq!(Error::Canceled.to_string(), "context canceled");
/// assert!(Error::DeadlineExceeded.is_timeout());
/// ```
///
/// Go: `context.Canceled` and `context.DeadlineExceeded`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Error {
    /// The context was canceled: its guard was dropped or canceled, or an
    /// ancestor was. Displays as "context canceled".
    Canceled,
    /// The context's deadline (or an ancestor's) passed. Displays as
    /// "context deadline exceeded".
    DeadlineExceeded,
}

impl Error {
    /// True for [`Error::DeadlineExceeded`].
    ///
    /// ```
    /// assert!(ctx::Error::DeadlineExceeded.is_timeout());
    /// assert!(!ctx::Error::Canceled.is_timeout());
    /// ```
    pub fn is_timeout(self) -> bool {
        self == Error::DeadlineExceeded
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::Canceled => "context canceled",
            Error::DeadlineExceeded => "context deadline exceeded",
        })
    }
}

impl std::error::Error for Error {}

impl From<Error> for std::io::Error {
    /// `Canceled` becomes [`std::io::ErrorKind::Interrupted`],
    /// `DeadlineExceeded` becomes [`std::io::ErrorKind::TimedOut`]; the `ctx`
    /// error stays reachable through `get_ref` and `downcast`.
    ///
    /// ```
    /// let io: std::io::Error = ctx::Error::DeadlineExceeded.into();
    /// assert_eq!(io.kind(), std::io::ErrorKind::TimedOut);
    /// ```
    fn from(err: Error) -> Self {
        let kind = match err {
            Error::Canceled => std::io::ErrorKind::Interrupted,
            Error::DeadlineExceeded => std::io::ErrorKind::TimedOut,
        };
        std::io::Error::new(kind, err)
    }
}

/// The reason a context ended: a cheap, cloneable handle to an error value.
///
/// A cause is recorded by [`CancelGuard::cancel_with_cause`](crate::CancelGuard::cancel_with_cause),
/// by [`Context::with_deadline_cause`](crate::Context::with_deadline_cause) when the
/// deadline fires, and by [`ctx::scope`](crate::scope) when a task fails. When
/// nobody gave a reason, the cause is the [`Error`] itself.
///
/// Every `std::error::Error + Send + Sync + 'static` value converts into a
/// `Cause` with `into()`. Like `anyhow::Error`, `Cause` does not itself
/// implement `std::error::Error`: that is what lets the blanket conversion
/// exist. Use [`Cause::as_error`] where a `&dyn Error` is wanted.
///
/// # Examples
///
/// ```
/// use ctx::{Cause, Context, Error};
///
/// #[derive(Debug)]
/// struct Shutdown;
/// impl std::fmt::Display for Shutdown {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///         f.write_str("server shutting down")
///     }
/// }
/// impl std::error::Error for Shutdown {}
///
/// let (ctx, cancel) = Context::background().with_cancel();
/// cancel.cancel_with_cause(Shutdown);
///
/// assert_eq!(ctx.err(), Some(Error::Canceled)); // err() stays the plain error
/// let cause: Cause = ctx.cause().unwrap();      // cause() says why
/// assert!(cause.downcast_ref::<Shutdown>().is_some());
/// assert_eq!(cause.to_string(), "server shutting down");
/// ```
///
/// Go: `context.Cause`, `WithCancelCause`.
#[derive(Clone)]
pub struct Cause(Repr);

#[derive(Clone)]
enum Repr {
    /// No reason given: the cause is the error itself (no allocation).
    Ctx(Error),
    Other(Arc<dyn std::error::Error + Send + Sync + 'static>),
}

impl Cause {
    /// The cause as a standard error trait object.
    ///
    /// ```
    /// let cause: ctx::Cause = ctx::Error::Canceled.into();
    /// assert_eq!(cause.as_error().to_string(), "context canceled");
    /// ```
    pub fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        match &self.0 {
            Repr::Ctx(err) => err,
            Repr::Other(err) => &**err,
        }
    }

    /// The cause as `E`, if that is its type.
    ///
    /// ```
    /// let cause: ctx::Cause = std::io::Error::other("disk on fire").into();
    /// assert_eq!(cause.downcast_ref::<std::io::Error>().unwrap().to_string(), "disk on fire");
    /// assert!(cause.downcast_ref::<ctx::Error>().is_none());
    /// ```
    pub fn downcast_ref<E: std::error::Error + 'static>(&self) -> Option<&E> {
        self.as_error().downcast_ref::<E>()
    }

    /// True if this cause is the `ctx` error `err`, or wraps it somewhere in
    /// its `source()` chain (Go's `errors.Is`).
    ///
    /// ```
    /// use ctx::{Cause, Error};
    /// let cause: Cause = Error::DeadlineExceeded.into();
    /// assert!(cause.is(Error::DeadlineExceeded));
    /// assert!(!cause.is(Error::Canceled));
    /// // An io::Error built from a ctx error still answers through its source chain.
    /// let wrapped: Cause = std::io::Error::from(Error::Canceled).into();
    /// assert!(wrapped.is(Error::Canceled));
    /// ```
    pub fn is(&self, err: Error) -> bool {
        let mut current: Option<&(dyn std::error::Error + 'static)> = Some(self.as_error());
        while let Some(e) = current {
            if e.downcast_ref::<Error>() == Some(&err) {
                return true;
            }
            // io::Error keeps its payload as the inner error, not as `source()`.
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                if let Some(inner) = io.get_ref() {
                    if inner.downcast_ref::<Error>() == Some(&err) {
                        return true;
                    }
                }
            }
            current = e.source();
        }
        false
    }

    /// The plain [`Error`] if no other reason was recorded.
    pub(crate) fn as_ctx_error(&self) -> Option<Error> {
        match self.0 {
            Repr::Ctx(err) => Some(err),
            Repr::Other(_) => None,
        }
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for Cause {
    fn from(err: E) -> Self {
        // A ctx::Error needs no allocation; recognise it at run time since the
        // blanket impl cannot be specialised.
        if let Some(err) = (&err as &dyn Any).downcast_ref::<Error>() {
            return Cause(Repr::Ctx(*err));
        }
        Cause(Repr::Other(Arc::new(err)))
    }
}

impl AsRef<dyn std::error::Error + Send + Sync + 'static> for Cause {
    fn as_ref(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self.as_error()
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_error(), f)
    }
}

impl fmt::Debug for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_error(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctx_errors_become_allocation_free_causes() {
        let cause: Cause = Error::Canceled.into();
        assert_eq!(cause.as_ctx_error(), Some(Error::Canceled));
        assert!(cause.is(Error::Canceled));
        assert_eq!(format!("{cause:?}"), "Canceled");
    }

    #[test]
    fn other_errors_keep_their_type_and_text() {
        let cause: Cause = std::fmt::Error.into();
        assert_eq!(cause.as_ctx_error(), None);
        assert!(cause.downcast_ref::<std::fmt::Error>().is_some());
        assert!(!cause.is(Error::Canceled));
        assert_eq!(cause.to_string(), std::fmt::Error.to_string());
    }
}
