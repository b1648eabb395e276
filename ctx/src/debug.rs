//! Seeing inside: a census of the cancelable contexts still alive, and the
//! line of code that derived each (cargo feature `debug`).
//!
//! A context that never ends is a leak Go's `context` cannot show you:
//! a guard kept forever (`mem::forget`, a `CancelGuard` in a long-lived
//! map), or a context stored in a struct that outlives its request. With the
//! `debug` feature, every cancelable derivation (`with_cancel`,
//! `with_deadline`, `with_timeout` and their `_cause` variants, a
//! [`scope`](crate::scope), a request context of `ctx::http::ContextLayer`)
//! records where it was made, when, and below which context; [`live`] lists
//! the ones not yet freed, with their state now.
//!
//! "Live" means *not yet freed*, not "not done": an entry says whether its
//! context is done, so both kinds of leak show. A forgotten guard leaves an
//! old context that is not done; a context kept in a struct after its work
//! ended leaves one that is done but still referenced. A context canceled
//! and dropped everywhere is gone from the census.
//!
//! ```
//! use std::time::Duration;
//!
//! let (request, _cancel) = ctx::Context::background().with_timeout(Duration::from_secs(30));
//! let (forgotten, guard) = request.with_cancel();
//! let line = line!() - 1;
//! std::mem::forget(guard); // the leak: nothing will ever cancel `forgotten`
//! drop(forgotten);
//!
//! let census = ctx::debug::live();
//! let leak = census
//!     .iter()
//!     .find(|c| c.location().line() == line)
//!     .expect("the forgotten context is still alive");
//! assert_eq!(leak.err(), None); // not done, and never will be
//! assert!(leak.deadline().is_some()); // its parent's deadline will end it
//! println!("{census}");
//! ```
//!
//! # What it costs
//!
//! With the feature on, each cancelable derivation takes a lock on one of
//! 16 shards of a global registry to add its entry, and takes it again when
//! the context is freed; the node grows by the entry's handle (see
//! `BENCHMARKS.md` for the measured cost per derivation). Without the
//! feature, nothing is recorded: no field, no lock, no cost. Turn it on for
//! a debugging build or a staging server, not in every build.
//!
//! Values (`with_value`) and `without_cancel` cannot be done and are not
//! listed; a cancelable context below one of them lists as a child of the
//! nearest cancelable context above, or as a root if there is none.
//!
//! Go: none (Go's `context` keeps no registry of its contexts). Peer:
//! tokio-console, which lists live tasks the same way.

use std::collections::HashMap;
use std::fmt;
use std::panic::Location;
use std::time::{Duration, Instant};

use crate::clock;
use crate::error::Error;
use registry::{Observed, Seen};

pub(crate) mod registry;

#[cfg(loom)]
compile_error!("the `debug` feature is not available in loom builds (`--cfg loom`)");

/// A census of the cancelable contexts not yet freed, taken now.
///
/// Entries are read one registry shard at a time, so a context derived or
/// freed while `live` runs may or may not be in it; every entry was alive
/// when it was read. Taking a census keeps no context alive afterwards, but
/// holds each for the instant it reads it: a context whose last handle is
/// dropped meanwhile is freed (on this thread) once `live` is done with it.
/// Its cost is linear in the number of entries, however deep the tree.
///
/// # Examples
///
/// ```
/// let (ctx, _cancel) = ctx::Context::background().with_cancel();
/// let line = line!() - 1;
/// let census = ctx::debug::live();
/// assert!(census.iter().any(|c| c.location().line() == line && c.err().is_none()));
/// # drop(ctx);
/// ```
///
/// Go: none (Go's `context` keeps no registry). Peer: tokio-console.
#[must_use = "a census does nothing unless read or printed"]
pub fn live() -> Census {
    let seen = registry::snapshot();
    // One instant for every age, so that siblings compare.
    let taken = Instant::now();
    let now = clock::now();
    // Read (taking each node's lock) after the registry's locks are
    // released; the strong references drop once every deadline is known.
    let observed: Vec<Observed> = seen.iter().map(|seen| seen.node.observe()).collect();
    let deadlines = deadlines(&seen, &observed);
    let mut entries: Vec<LiveContext> = seen
        .into_iter()
        .zip(observed)
        .zip(deadlines)
        .map(|((seen, observed), deadline)| LiveContext {
            id: seen.id,
            parent_id: seen.parent.map(|(id, _)| id),
            location: seen.origin.location,
            label: seen.origin.label,
            created: seen.created,
            age: taken.saturating_duration_since(seen.created),
            deadline,
            remaining: deadline.map(|deadline| deadline.saturating_duration_since(now)),
            err: observed.err,
            waiters: observed.waiters,
            parent_location: seen.parent.map(|(_, location)| location),
        })
        .collect();
    entries.sort_by_key(|entry| (entry.created, entry.id));
    Census { entries }
}

/// The deadline of each entry: its own if it has one (then the earliest on
/// its path), else its parent's. Each entry is resolved once, from its
/// parent's entry found by id, so a census of a chain `n` deep costs O(n);
/// asking each node, which walks up the tree to the nearest deadline, cost
/// O(n²). Only an entry whose parent the census did not see (registered in
/// a shard already read) asks its node.
fn deadlines(seen: &[Seen], observed: &[Observed]) -> Vec<Option<Instant>> {
    let at: HashMap<u64, usize> = seen
        .iter()
        .enumerate()
        .map(|(i, seen)| (seen.id, i))
        .collect();
    let mut resolved: Vec<Option<Option<Instant>>> = vec![None; seen.len()];
    // The entries on the way up from one entry to the first that knows its
    // deadline, which is theirs too. A loop, not recursion: chains are
    // deep. Parents are registered before their children, so the way up
    // ends.
    let mut path = Vec::new();
    for start in 0..seen.len() {
        let mut i = start;
        let deadline = loop {
            if let Some(deadline) = resolved[i] {
                break deadline;
            }
            if let Some(own) = observed[i].own_deadline {
                break Some(own);
            }
            path.push(i);
            match seen[i].parent.and_then(|(id, _)| at.get(&id)) {
                Some(&parent) => i = parent,
                None => break seen[i].node.deadline(),
            }
        };
        resolved[i] = Some(deadline);
        for j in path.drain(..) {
            resolved[j] = Some(deadline);
        }
    }
    resolved
        .into_iter()
        .map(|deadline| deadline.expect("ctx: internal error: a census deadline left unresolved"))
        .collect()
}

/// The cancelable contexts alive at one instant, oldest first: what
/// [`live`] returns.
///
/// Iterate it (`for c in &census`, [`Census::iter`]) for the entries in the
/// order they were derived, or print it: its `Display` is an indented tree,
/// each context below the nearest cancelable context it was derived from,
/// siblings oldest first, one line each with `file:line`, then whether it
/// is done, its age, its deadline and its waiters:
///
/// ```text
/// 3 live contexts, oldest first:
/// src/main.rs:12  not done, age 5.0s, deadline in 25.0s
///   src/server.rs:40 GET /users/7  not done, age 4.9s, deadline in 25.0s, 1 waiter
///   src/cache.rs:88  done (context canceled), age 3.1s
/// ```
///
/// Indentation stops at 32 levels: a context deeper down is indented as at
/// 32, and its line starts with `… [depth N]` (a root is at depth 0), so a
/// census prints in space linear in the number of contexts, however deep a
/// chain of them is:
///
/// ```text
/// <64 spaces>src/deep.rs:9  not done, age 1.0s
/// <64 spaces>… [depth 33] src/deep.rs:9  not done, age 1.0s
/// <64 spaces>… [depth 34] src/deep.rs:9  not done, age 1.0s
/// ```
///
/// # Examples
///
/// ```
/// let (parent, _p) = ctx::Context::background().with_cancel();
/// let (child, _c) = parent.with_cancel();
/// let line = line!() - 1;
/// let tree = ctx::debug::live().to_string();
/// let at = |line: u32| tree.lines().find(|l| l.contains(&format!(":{line}  "))).unwrap();
/// let (parent_line, child_line) = (at(line - 1), at(line));
/// // The child is indented one step further than its parent.
/// let indent = |l: &str| l.len() - l.trim_start().len();
/// assert_eq!(indent(child_line), indent(parent_line) + 2);
/// # drop((parent, child));
/// ```
///
/// Go: none. Peer: tokio-console's task list.
#[derive(Clone, Debug)]
pub struct Census {
    /// Oldest first (by creation, then id).
    entries: Vec<LiveContext>,
}

impl Census {
    /// The entries, oldest first.
    ///
    /// ```
    /// let first = line!() + 1;
    /// let (_a, _ga) = ctx::Context::background().with_cancel();
    /// let (_b, _gb) = ctx::Context::background().with_cancel();
    /// let census = ctx::debug::live();
    /// let ours: Vec<u32> = census.iter().map(|c| c.location().line()).collect();
    /// assert_eq!(ours, [first, first + 1]); // alone in this process
    /// ```
    pub fn iter(&self) -> std::slice::Iter<'_, LiveContext> {
        self.entries.iter()
    }

    /// How many contexts were alive.
    ///
    /// ```
    /// let (_ctx, _cancel) = ctx::Context::background().with_cancel();
    /// assert!(ctx::debug::live().len() >= 1);
    /// ```
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no cancelable context was alive.
    ///
    /// ```
    /// let (ctx, cancel) = ctx::Context::background().with_cancel();
    /// assert!(!ctx::debug::live().is_empty());
    /// drop((ctx, cancel));
    /// // In a process of its own (as this example is), nothing is left.
    /// assert!(ctx::debug::live().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl<'a> IntoIterator for &'a Census {
    type Item = &'a LiveContext;
    type IntoIter = std::slice::Iter<'a, LiveContext>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter()
    }
}

impl IntoIterator for Census {
    type Item = LiveContext;
    type IntoIter = std::vec::IntoIter<LiveContext>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

impl fmt::Display for Census {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.entries.len() {
            0 => return f.write_str("no live contexts\n"),
            1 => f.write_str("1 live context:\n")?,
            n => writeln!(f, "{n} live contexts, oldest first:")?,
        }
        // Children by parent id, oldest first (the entries are in that
        // order already); a context whose parent is not in the census (made
        // after its shard was read, or below a root) is a root here.
        let present: HashMap<u64, usize> = self
            .entries
            .iter()
            .enumerate()
            .map(|(i, entry)| (entry.id, i))
            .collect();
        let mut children: HashMap<usize, Vec<usize>> = HashMap::new();
        let mut roots = Vec::new();
        for (i, entry) in self.entries.iter().enumerate() {
            match entry.parent_id.and_then(|id| present.get(&id)) {
                Some(&parent) => children.entry(parent).or_default().push(i),
                None => roots.push(i),
            }
        }
        // Depth first with a stack of its own: a million-deep chain must not
        // overflow the stack.
        let mut stack: Vec<(usize, usize)> = roots.iter().rev().map(|&i| (i, 0)).collect();
        while let Some((i, depth)) = stack.pop() {
            write_line(f, &self.entries[i], depth)?;
            if let Some(below) = children.get(&i) {
                stack.extend(below.iter().rev().map(|&child| (child, depth + 1)));
            }
        }
        Ok(())
    }
}

/// How many levels the tree indents (two spaces each); a line deeper down
/// is indented as at this depth and numbers its own.
const MAX_INDENT_DEPTH: usize = 32;

/// The indentation of a line [`MAX_INDENT_DEPTH`] deep.
const INDENT: &str = "                                                                ";
const _: () = assert!(INDENT.len() == 2 * MAX_INDENT_DEPTH);

/// One line of the tree: `file:line[ label]  state, age[, deadline][, waiters]`,
/// after two spaces a level, or after [`INDENT`] and `… [depth N] ` below
/// [`MAX_INDENT_DEPTH`]: the text stays linear in the number of contexts,
/// however deep the chain.
fn write_line(f: &mut fmt::Formatter<'_>, entry: &LiveContext, depth: usize) -> fmt::Result {
    if depth <= MAX_INDENT_DEPTH {
        f.write_str(&INDENT[..2 * depth])?;
    } else {
        write!(f, "{INDENT}… [depth {depth}] ")?;
    }
    write!(f, "{}:{}", entry.location.file(), entry.location.line())?;
    if let Some(label) = &entry.label {
        write!(f, " {label}")?;
    }
    match entry.err {
        None => f.write_str("  not done")?,
        Some(err) => write!(f, "  done ({err})")?,
    }
    write!(f, ", age {:.1?}", entry.age)?;
    match entry.remaining {
        Some(Duration::ZERO) => f.write_str(", deadline passed")?,
        Some(left) => write!(f, ", deadline in {left:.1?}")?,
        None => {}
    }
    match entry.waiters {
        0 => {}
        1 => f.write_str(", 1 waiter")?,
        n => write!(f, ", {n} waiters")?,
    }
    f.write_str("\n")
}

/// One cancelable context that was alive when the [`Census`] was taken.
///
/// It is a snapshot: reading it later says what was true then, and holds
/// nothing of the context (which may be gone by now).
///
/// # Examples
///
/// ```
/// let (ctx, _cancel) = ctx::Context::background().with_cancel();
/// let census = ctx::debug::live();
/// let entry = census.iter().next().unwrap(); // alone in this process
/// assert_eq!(entry.location().line(), line!() - 3);
/// assert_eq!(entry.err(), None);
/// assert_eq!(entry.waiters(), 0);
/// assert_eq!(entry.parent_location(), None); // derived from the root
/// # drop(ctx);
/// ```
///
/// Go: none. Peer: a task in tokio-console.
#[derive(Clone, Debug)]
pub struct LiveContext {
    /// The registry's id, unique for the life of the process.
    id: u64,
    /// The id of the nearest cancelable context above.
    parent_id: Option<u64>,
    location: &'static Location<'static>,
    label: Option<Box<str>>,
    /// For the order of the census.
    created: Instant,
    age: Duration,
    deadline: Option<Instant>,
    /// The time left until `deadline` when the census was taken.
    remaining: Option<Duration>,
    err: Option<Error>,
    waiters: usize,
    parent_location: Option<&'static Location<'static>>,
}

impl LiveContext {
    /// The source location of the call that derived this context: the
    /// user's `with_cancel`, `with_deadline`, `with_timeout` (or `_cause`
    /// variant) or `signal::notify` call, the `scope(...)` call of a scope's
    /// group context, the `#[ctx(timeout = ...)]` attribute of a function's
    /// child context, or the line in ctx's server layer for a request
    /// context (whose [`label`](LiveContext::label) names the request).
    ///
    /// ```
    /// let (ctx, _cancel) = ctx::Context::background().with_cancel();
    /// let line = line!() - 1;
    /// let census = ctx::debug::live();
    /// let entry = census.iter().find(|c| c.location().line() == line).unwrap();
    /// assert_eq!(entry.location().file(), file!());
    /// # drop(ctx);
    /// ```
    pub fn location(&self) -> &'static Location<'static> {
        self.location
    }

    /// What made it, besides the location: `"GET /users/7"` (the method and
    /// path, at most 128 bytes) for a request context of
    /// `ctx::http::ContextLayer`; `None` for every other context.
    ///
    /// ```
    /// let (ctx, _cancel) = ctx::Context::background().with_cancel();
    /// let census = ctx::debug::live();
    /// assert_eq!(census.iter().next().unwrap().label(), None);
    /// # drop(ctx);
    /// ```
    pub fn label(&self) -> Option<&str> {
        self.label.as_deref()
    }

    /// How long before the census it was derived (real time).
    ///
    /// ```
    /// let (ctx, _cancel) = ctx::Context::background().with_cancel();
    /// std::thread::sleep(std::time::Duration::from_millis(20));
    /// let census = ctx::debug::live();
    /// let entry = census.iter().next().unwrap();
    /// assert!(entry.age() >= std::time::Duration::from_millis(20));
    /// # drop(ctx);
    /// ```
    pub fn age(&self) -> Duration {
        self.age
    }

    /// Its deadline, as [`Context::deadline`](crate::Context::deadline)
    /// reported it: the earliest on the path to the root, if any.
    ///
    /// ```
    /// use std::time::Duration;
    /// let (ctx, _cancel) = ctx::Context::background().with_timeout(Duration::from_secs(60));
    /// let census = ctx::debug::live();
    /// let entry = census.iter().next().unwrap();
    /// assert_eq!(entry.deadline(), ctx.deadline());
    /// ```
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// `None` if it was not done, else why, as
    /// [`Context::err`](crate::Context::err) reported it. A done context
    /// still in the census is still referenced somewhere (kept in a struct,
    /// a cache, a task that never ended).
    ///
    /// ```
    /// let (ctx, cancel) = ctx::Context::background().with_cancel();
    /// cancel.cancel(); // done, but `ctx` is still held
    /// let census = ctx::debug::live();
    /// let entry = census.iter().next().unwrap();
    /// assert_eq!(entry.err(), Some(ctx::Error::Canceled));
    /// # drop(ctx);
    /// ```
    pub fn err(&self) -> Option<Error> {
        self.err
    }

    /// How many were waiting for it to be done: pending
    /// [`done()`](crate::Context::done) futures that have been polled, and
    /// threads in [`wait_blocking`](crate::Context::wait_blocking) or
    /// [`wait_timeout`](crate::Context::wait_timeout).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let (ctx, _cancel) = ctx::Context::background().with_cancel();
    /// let waiter = tokio::spawn({
    ///     let ctx = ctx.clone();
    ///     async move { ctx.done().await }
    /// });
    /// tokio::task::yield_now().await; // the task polls `done()` once
    /// let census = ctx::debug::live();
    /// let entry = census.iter().next().unwrap();
    /// assert_eq!(entry.waiters(), 1);
    /// # waiter.abort();
    /// # }
    /// ```
    pub fn waiters(&self) -> usize {
        self.waiters
    }

    /// Where the nearest cancelable context above it was derived: the one
    /// whose end ends this one too. `None` below a root (`background`,
    /// `todo`) or below `without_cancel` with no cancelable context between.
    ///
    /// ```
    /// let (parent, _p) = ctx::Context::background().with_cancel();
    /// let (child, _c) = parent.with_value(7u8).with_cancel();
    /// let line = line!() - 1;
    /// let census = ctx::debug::live();
    /// let entry = census.iter().find(|c| c.location().line() == line).unwrap();
    /// assert_eq!(entry.parent_location().map(|l| l.line()), Some(line - 1));
    /// # drop((parent, child));
    /// ```
    pub fn parent_location(&self) -> Option<&'static Location<'static>> {
        self.parent_location
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use registry::{Observe, Origin};

    /// A node whose walk up the tree would find `walked`.
    struct Walked(Option<Instant>);

    impl Observe for Walked {
        fn observe(&self) -> Observed {
            unreachable!("deadlines() reads only what it is given")
        }

        fn deadline(&self) -> Option<Instant> {
            self.0
        }
    }

    #[track_caller]
    fn seen(id: u64, parent: Option<u64>, walked: Option<Instant>) -> Seen {
        Seen {
            id,
            node: Arc::new(Walked(walked)),
            origin: Origin::caller(),
            created: Instant::now(),
            parent: parent.map(|id| (id, Location::caller())),
        }
    }

    fn own(deadline: Option<Instant>) -> Observed {
        Observed {
            err: None,
            own_deadline: deadline,
            waiters: 0,
        }
    }

    #[test]
    fn a_deadline_comes_from_the_parents_entry_or_a_walk_when_it_is_missing() {
        let now = Instant::now();
        let (early, late, walked) = (
            now + Duration::from_secs(1),
            now + Duration::from_secs(2),
            now + Duration::from_secs(3),
        );
        // Children before parents, as shards read in turn may give them.
        // 1 (late) <- 2 <- 3 (early) <- 4; 6 below 5, which the census did
        // not see; 7, a root, <- 8.
        let entries = [
            (seen(4, Some(3), None), own(None), Some(early)),
            (seen(2, Some(1), None), own(None), Some(late)),
            (seen(3, Some(2), None), own(Some(early)), Some(early)),
            (seen(1, None, None), own(Some(late)), Some(late)),
            (seen(6, Some(5), Some(walked)), own(None), Some(walked)),
            (seen(8, Some(7), Some(walked)), own(None), None),
            (seen(7, None, None), own(None), None),
        ];
        let want: Vec<_> = entries.iter().map(|(_, _, want)| *want).collect();
        let (seen, observed): (Vec<_>, Vec<_>) = entries
            .into_iter()
            .map(|(seen, observed, _)| (seen, observed))
            .unzip();
        assert_eq!(deadlines(&seen, &observed), want);
    }
}
