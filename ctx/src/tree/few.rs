//! `Few`: the cancel walk's lists of wakers, callbacks and timers.

/// A list that holds its first item inline: canceling a leaf with one
/// waiter, one callback or one timer allocates nothing. (`SmallVec<[T; 1]>`
/// would do the same with more instructions on every leaf's cancel.)
pub(super) struct Few<T> {
    first: Option<T>,
    rest: Vec<T>,
}

impl<T> Default for Few<T> {
    #[inline]
    fn default() -> Self {
        Few {
            first: None,
            rest: Vec::new(),
        }
    }
}

impl<T> Extend<T> for Few<T> {
    #[inline]
    fn extend<I: IntoIterator<Item = T>>(&mut self, items: I) {
        for item in items {
            match self.first {
                None => self.first = Some(item),
                Some(_) => self.rest.push(item),
            }
        }
    }
}

impl<T> Few<T> {
    /// Calls `f` on each item, first to last.
    #[inline]
    pub(super) fn each(self, mut f: impl FnMut(T)) {
        if let Some(first) = self.first {
            f(first);
        }
        if !self.rest.is_empty() {
            self.rest.into_iter().for_each(f);
        }
    }
}
