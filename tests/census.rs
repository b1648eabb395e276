//! `ctx::debug`: the census finds the contexts still alive, names the line
//! that derived each, and forgets the ones canceled and dropped.
//!
//! Each test looks for its own contexts by file and line, never at the
//! whole census, and takes [`serial`] first.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use ctx::debug::LiveContext;

// `pub mod`: the example's `pub fn main`, which only its own binary calls,
// is then reachable and not dead code here.
#[path = "../examples/census.rs"]
pub mod census_example;
use ctx::{CancelGuard, Context, Error};

#[path = "support/census_serial.rs"]
mod census_serial;
use census_serial::{block_on, serial};

/// The live context derived at `line` of this file, if any.
fn entry_at(line: u32) -> Option<LiveContext> {
    let mut found = ctx::debug::live()
        .into_iter()
        .filter(|c| c.location().file().ends_with("census.rs") && c.location().line() == line);
    let entry = found.next();
    assert!(found.next().is_none(), "two live contexts from line {line}");
    entry
}

/// The line of the census's `Display` naming `line` of this file.
fn shown_at(tree: &str, line: u32) -> (usize, &str) {
    let needle = format!("census.rs:{line}  ");
    tree.lines()
        .enumerate()
        .find(|(_, shown)| shown.contains(&needle))
        .unwrap_or_else(|| panic!("no line for census.rs:{line} in\n{tree}"))
}

fn indent(shown: &str) -> usize {
    shown.len() - shown.trim_start().len()
}

#[test]
fn a_guard_forgotten_with_mem_forget_is_found_at_its_file_and_line() {
    let _serial = serial();
    let (request, _cancel) = Context::background().with_timeout(Duration::from_secs(60));
    let (leaked, guard) = request.with_cancel();
    let line = line!() - 1;
    std::mem::forget(guard);
    drop(leaked);

    let entry = entry_at(line).expect("the forgotten context is alive");
    assert!(entry.location().file().ends_with("census.rs"));
    assert_eq!(entry.location().file(), file!());
    assert_eq!(entry.location().line(), line);
    assert_eq!(entry.err(), None, "nothing will ever cancel it");
    assert_eq!(entry.parent_location().map(|l| l.line()), Some(line - 1));
    assert!(entry.deadline().is_some(), "its parent's deadline");
}

/// A struct that outlives the request it was made for: the mistake the
/// census is meant to show.
struct Session {
    ctx: Context,
}

#[test]
fn a_context_kept_in_a_long_lived_struct_is_found_done() {
    let _serial = serial();
    let (ctx, cancel) = Context::background().with_cancel();
    let line = line!() - 1;
    let session = Session { ctx };
    cancel.cancel(); // the request is over...
    assert!(session.ctx.is_done());

    let entry = entry_at(line).expect("...but the session still holds it");
    assert_eq!(entry.location().line(), line);
    assert!(entry.location().file().ends_with("census.rs"));
    assert_eq!(entry.err(), Some(Error::Canceled));

    drop(session);
    assert!(entry_at(line).is_none(), "freed with its last handle");
}

#[test]
fn contexts_canceled_and_dropped_are_forgotten() {
    let _serial = serial();
    let parent = Context::background();
    for _ in 0..100 {
        let (ctx, cancel) = parent.with_cancel();
        let line = line!() - 1;
        assert!(entry_at(line).is_some());
        cancel.cancel();
        drop(ctx);
        assert!(entry_at(line).is_none());
    }
    // A guard dropped at the end of its scope, with the context.
    let line = {
        let (_ctx, _cancel) = parent.with_timeout(Duration::from_secs(60));
        line!() - 1
    };
    assert!(entry_at(line).is_none());
    // A deadline that fired, its handles dropped. The timer thread wakes
    // the waiter from inside its cancel and lets go of its own reference
    // (or hands the last one to the callback pool) just after: the entry
    // goes once it has (generous bound: CI is a noisy 2-core machine).
    let line = {
        let (ctx, _cancel) = parent.with_timeout(Duration::from_millis(1));
        assert_eq!(ctx.wait_blocking(), Error::DeadlineExceeded);
        line!() - 2
    };
    let start = std::time::Instant::now();
    while entry_at(line).is_some() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "a fired deadline's context is still in the census"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_whole_subtree_is_forgotten_once_its_handles_are_dropped() {
    let _serial = serial();
    let (root, cancel) = Context::background().with_cancel();
    let root_line = line!() - 1;
    let children: Vec<(Context, CancelGuard)> = (0..10).map(|_| root.with_cancel()).collect();
    let child_line = line!() - 1;
    let census = ctx::debug::live();
    let ours = census
        .iter()
        .filter(|c| c.location().file() == file!() && c.location().line() == child_line)
        .count();
    assert_eq!(ours, 10);
    drop(census);
    cancel.cancel();
    drop(root);
    // The children hold their parent: it stays, done, while they live.
    assert_eq!(entry_at(root_line).unwrap().err(), Some(Error::Canceled));
    drop(children);
    assert!(entry_at(root_line).is_none());
    assert!(ctx::debug::live()
        .iter()
        .all(|c| c.location().line() != child_line || c.location().file() != file!()));
}

#[test]
fn every_cancelable_derivation_names_its_callers_line() {
    let _serial = serial();
    let root = Context::background();
    let soon = Instant::now() + Duration::from_secs(60);
    let cause = || std::io::Error::other("too slow");

    let (_a, _ga) = root.with_deadline(soon);
    let a = line!() - 1;
    let (_b, _gb) = root.with_deadline_cause(soon, cause());
    let b = line!() - 1;
    let (_c, _gc) = root.with_timeout(Duration::from_secs(60));
    let c = line!() - 1;
    let (_d, _gd) = root.with_timeout_cause(Duration::from_secs(60), cause());
    let d = line!() - 1;
    // A later deadline below an earlier one arms nothing (a different path
    // inside ctx), and still names this line.
    let (_e, _ge) = _a.with_deadline(soon + Duration::from_secs(60));
    let e = line!() - 1;
    // A deadline already passed: born done.
    let (_f, _gf) = root.with_deadline(Instant::now() - Duration::from_millis(1));
    let f = line!() - 1;

    for line in [a, b, c, d, e, f] {
        let entry = entry_at(line).unwrap_or_else(|| panic!("nothing at line {line}"));
        assert!(entry.location().file().ends_with("census.rs"));
    }
    assert_eq!(
        entry_at(e).unwrap().parent_location().map(|l| l.line()),
        Some(a)
    );
    assert_eq!(entry_at(e).unwrap().deadline(), Some(soon));
    assert_eq!(entry_at(f).unwrap().err(), Some(Error::DeadlineExceeded));
}

#[test]
fn a_child_names_the_nearest_cancelable_context_above_it() {
    let _serial = serial();
    let (parent, _p) = Context::background().with_cancel();
    let parent_line = line!() - 1;
    // Values in between are not cancelable: the parent is still `parent`.
    let (child, _c) = parent.with_value(7u8).with_value("x").with_cancel();
    let child_line = line!() - 1;
    // Below `without_cancel`, nothing above can end it: a root.
    let (detached, _d) = child.without_cancel().with_cancel();
    let detached_line = line!() - 1;

    let child_entry = entry_at(child_line).unwrap();
    assert_eq!(
        child_entry.parent_location().map(|l| l.line()),
        Some(parent_line)
    );
    assert_eq!(
        child_entry.parent_location().map(|l| l.file()),
        Some(file!())
    );
    assert_eq!(entry_at(parent_line).unwrap().parent_location(), None);
    assert_eq!(entry_at(detached_line).unwrap().parent_location(), None);
    drop((child, detached));
}

#[test]
fn the_display_is_an_indented_tree_oldest_first() {
    let _serial = serial();
    let (parent, _p) = Context::background().with_timeout(Duration::from_secs(60));
    let parent_line = line!() - 1;
    let (first, _f) = parent.with_cancel();
    let first_line = line!() - 1;
    let (second, cancel_second) = parent.with_cancel();
    let second_line = line!() - 1;
    let (grandchild, _g) = first.with_cancel();
    let grandchild_line = line!() - 1;
    cancel_second.cancel(); // done, still held by `second`

    let tree = ctx::debug::live().to_string();
    let (at_parent, shown_parent) = shown_at(&tree, parent_line);
    let (at_first, shown_first) = shown_at(&tree, first_line);
    let (at_grandchild, shown_grandchild) = shown_at(&tree, grandchild_line);
    let (at_second, shown_second) = shown_at(&tree, second_line);

    // Depth first, children right below their parent, oldest first.
    assert_eq!(
        [at_first, at_grandchild, at_second],
        [at_parent + 1, at_parent + 2, at_parent + 3],
        "{tree}"
    );
    assert_eq!(indent(shown_parent), 0, "{tree}");
    assert_eq!(indent(shown_first), 2, "{tree}");
    assert_eq!(indent(shown_grandchild), 4, "{tree}");
    assert_eq!(indent(shown_second), 2, "{tree}");

    // file:line, then the state.
    let file_line = format!("{}:{parent_line}  not done, age ", file!());
    assert!(shown_parent.starts_with(&file_line), "{shown_parent}");
    assert!(shown_parent.contains(", deadline in "), "{shown_parent}");
    assert!(
        shown_second.contains("  done (context canceled), age "),
        "{shown_second}"
    );
    assert!(
        tree.lines().next().unwrap().contains("live context"),
        "{tree}"
    );
    drop((first, second, grandchild));
}

/// Indentation stops at 32 levels; deeper lines number their depth. Before,
/// a line 32,768 levels down asked for a width past `u16` and `Display`
/// panicked, and the spaces alone grew with the square of the depth.
#[test]
fn a_chain_deeper_than_the_indentation_prints_in_linear_space() {
    let _serial = serial();
    const DEPTH: usize = 40_000;
    let mut chain: Vec<(Context, CancelGuard)> = Vec::with_capacity(DEPTH);
    let mut ctx = Context::background();
    let line = line!() + 2;
    for _ in 0..DEPTH {
        let (child, guard) = ctx.with_cancel();
        chain.push((std::mem::replace(&mut ctx, child), guard));
    }

    let census = ctx::debug::live();
    let tree = census.to_string();
    let needle = format!("census.rs:{line}  ");
    let ours: Vec<&str> = tree.lines().filter(|l| l.contains(&needle)).collect();
    assert_eq!(ours.len(), DEPTH);
    for (depth, shown) in ours.iter().enumerate() {
        if depth <= 32 {
            assert_eq!(indent(shown), 2 * depth, "{shown}");
            assert!(!shown.contains("[depth"), "{shown}");
        } else {
            assert_eq!(indent(shown), 64, "{shown}");
            let prefix = format!("… [depth {depth}] ");
            assert!(shown.trim_start().starts_with(&prefix), "{shown}");
        }
    }
    // Linear: a line is at most its 64 spaces, its depth and its text (the
    // squared indentation would be 1.6 GB here).
    assert!(
        tree.len() <= 256 * census.len(),
        "{} bytes for {} contexts",
        tree.len(),
        census.len()
    );
    drop((census, ctx));
    while let Some(link) = chain.pop() {
        drop(link);
    }
}

/// The census resolves each deadline from the parent's entry: it must say
/// what `Context::deadline` says, at every link of a chain.
#[test]
fn every_entry_of_a_chain_reports_its_contexts_deadline() {
    let _serial = serial();
    let (a, _a) = Context::background().with_timeout(Duration::from_secs(60));
    let (b, _b) = a.with_cancel();
    let (c, _c) = b.with_timeout(Duration::from_secs(30)); // earlier: its own
    let (d, _d) = c.with_value(7u8).with_cancel();
    let (e, _e) = d.with_timeout(Duration::from_secs(120)); // later: c's
    let (f, _f) = e.with_cancel();
    let (g, _g) = f.without_cancel().with_cancel(); // no deadline above
    let first = line!() - 7;
    let chain = [&a, &b, &c, &d, &e, &f, &g];
    assert!(a.deadline().is_some() && c.deadline() < a.deadline());
    assert_eq!(f.deadline(), c.deadline());
    assert_eq!(g.deadline(), None);

    for (line, ctx) in (first..).zip(chain) {
        let entry = entry_at(line).unwrap();
        assert_eq!(entry.deadline(), ctx.deadline(), "line {line}");
    }
}

#[test]
fn pending_done_futures_count_as_waiters() {
    block_on(async {
        let (ctx, cancel) = Context::background().with_cancel();
        let line = line!() - 1;
        assert_eq!(entry_at(line).unwrap().waiters(), 0);
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let ctx = ctx.clone();
                tokio::spawn(async move { ctx.done().await })
            })
            .collect();
        // The current-thread runtime runs each task to its first `Pending`.
        tokio::task::yield_now().await;
        assert_eq!(entry_at(line).unwrap().waiters(), 3);
        assert!(ctx::debug::live()
            .to_string()
            .contains(&format!("census.rs:{line}  not done")));
        cancel.cancel();
        for waiter in waiters {
            assert_eq!(waiter.await.unwrap(), Error::Canceled);
        }
        assert_eq!(entry_at(line).unwrap().waiters(), 0);
    });
}

#[test]
fn age_is_the_time_since_the_derivation() {
    let _serial = serial();
    let (ctx, _cancel) = Context::background().with_cancel();
    let line = line!() - 1;
    let made = Instant::now();
    std::thread::sleep(Duration::from_millis(30));
    let age = entry_at(line).unwrap().age();
    assert!(age >= Duration::from_millis(30), "{age:?}");
    assert!(age <= made.elapsed() + Duration::from_millis(1), "{age:?}");
    drop(ctx);
}

#[test]
fn a_scope_reports_the_scope_call() {
    block_on(async {
        let (parent, _guard) = Context::background().with_cancel();
        let parent_line = line!() - 1;
        let line = line!() + 1;
        let result = ctx::scope(&parent, |s| async move {
            let group = entry_at(line).expect("the group context, named after the scope call");
            assert!(group.location().file().ends_with("census.rs"));
            assert_eq!(group.parent_location().map(|l| l.line()), Some(parent_line));
            assert_eq!(group.err(), None);
            // A task's context is the group context itself: no entry of its own.
            s.spawn(move |ctx| async move {
                let (_step, _cancel) = ctx.with_cancel();
                let step = line!() - 1;
                let entry = entry_at(step).expect("a derivation inside a task");
                assert_eq!(entry.parent_location().map(|l| l.line()), Some(line));
                Ok(())
            })
            .await?;
            Ok::<_, Error>(())
        })
        .await;
        assert_eq!(result, Ok(()));
        // Once the scope has returned, nothing holds the group context.
        assert!(entry_at(line).is_none());
    });
}

#[test]
fn the_census_example_shows_both_mistakes_in_its_tree() {
    block_on(async {
        let said = std::sync::Arc::new(Mutex::new(Vec::new()));
        let census = census_example::story({
            let said = said.clone();
            std::sync::Arc::new(move |line| said.lock().unwrap().push(line))
        })
        .await;
        // The example's own contexts, as its tree shows them (others of this
        // process may be listed too).
        let ours: Vec<&str> = census
            .lines()
            .filter(|line| line.contains("examples/census.rs:"))
            .collect();
        assert_eq!(ours.len(), 5, "{census}");
        let (root, below) = ours.split_first().unwrap();
        assert_eq!(indent(root), 0, "{census}");
        assert!(below.iter().all(|line| indent(line) >= 2), "{census}");
        // The session, done and still held; the refresher, never canceled,
        // with its task waiting; the scope's query, two levels down.
        assert!(
            below
                .iter()
                .any(|l| l.contains("  done (context canceled)")),
            "{census}"
        );
        assert!(
            below
                .iter()
                .any(|l| l.contains("not done") && l.ends_with(", 1 waiter")),
            "{census}"
        );
        assert!(
            below
                .iter()
                .any(|l| indent(l) == 4 && l.contains("deadline in")),
            "{census}"
        );
        assert!(said.lock().unwrap().len() > 5);
    });
}

/// A `#[ctx(timeout = ...)]` function derives its child context in its
/// expansion, which carries the attribute's span. Returns the census entry
/// of that child and the attribute's line.
#[ctx::ctx(timeout = Duration::from_secs(60))]
async fn budgeted() -> (Option<LiveContext>, u32) {
    let attribute = line!() - 2;
    let entry = ctx::debug::live()
        .into_iter()
        .find(|c| c.location().file() == file!() && c.location().line() == attribute);
    (entry, attribute)
}

#[test]
fn a_ctx_timeout_function_is_named_by_its_attribute() {
    block_on(async {
        let (parent, _p) = Context::background().with_cancel();
        let parent_line = line!() - 1;
        let (entry, attribute) = budgeted(&parent).await;
        let entry = entry.expect("the timeout's child context, at the attribute");
        assert!(entry.deadline().is_some());
        assert_eq!(entry.parent_location().map(|l| l.line()), Some(parent_line));
        assert!(entry_at(attribute).is_none(), "freed when the call returns");
    });
}

#[test]
fn signal_notify_names_its_caller() {
    let _serial = serial();
    let (ctx, stop) = ctx::signal::notify(&Context::background()).unwrap();
    let line = line!() - 1;
    assert!(entry_at(line).is_some());
    drop((ctx, stop));
}
