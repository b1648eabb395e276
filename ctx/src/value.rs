//! Request-scoped values, keyed by type.

use crate::context::Context;

impl Context {
    /// A child carrying `value`, found by [`value::<T>`](Context::value) on
    /// it and on every context derived from it.
    ///
    /// Values are keyed by their type, so two libraries cannot collide on a
    /// key: define a newtype per meaning (`struct RequestId(u64)`), not a bare
    /// `u64`. A nearer value of the same type shadows a farther one. Values are
    /// for data that belongs to the request (ids, auth, deadlines of a
    /// protocol), not for passing optional parameters.
    ///
    /// ```
    /// #[derive(Debug, PartialEq)]
    /// struct RequestId(u64);
    ///
    /// let ctx = ctx::Context::background().with_value(RequestId(42));
    /// let (inner, _cancel) = ctx.with_cancel();
    /// assert_eq!(inner.value::<RequestId>(), Some(&RequestId(42)));
    /// assert_eq!(ctx::Context::background().value::<RequestId>(), None);
    /// ```
    ///
    /// Go: `context.WithValue` (whose untyped keys this replaces).
    #[must_use = "deriving a context has no effect unless the new context is used"]
    pub fn with_value<T: Send + Sync + 'static>(&self, value: T) -> Context {
        Context {
            repr: self.repr.with_value(value),
        }
    }

    /// The nearest value of type `T` on the path to the root, if any.
    ///
    /// ```
    /// struct User(&'static str);
    /// let ctx = ctx::Context::background().with_value(User("ada")).with_value(User("bob"));
    /// assert_eq!(ctx.value::<User>().map(|u| u.0), Some("bob"));
    /// ```
    ///
    /// Go: `Context.Value`.
    pub fn value<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.repr.value::<T>()
    }
}
