//! Model-based property test: random sequences of operations on a context
//! tree, checked after every step against a plain single-threaded reference
//! model (err, cause, deadline and values of every live node, plus the
//! `after_func` callbacks registered on them).
//!
//! The operations: derive (`with_cancel`, `with_deadline`/`with_timeout`
//! with and without a cause, `with_value`, `without_cancel`), cancel (guard,
//! guard with cause, handle, handle with cause, guard drop), drop a context
//! handle, register and stop an `after_func`, advance time, query.
//!
//! # Deadlines on the real clock
//!
//! There is no mock clock, so the model never claims to know *when* the timer
//! thread fires. Deadlines are either already past at derivation (the node is
//! born done, synchronously), far in the future (an hour and more: they never
//! fire during a case), or near (a few ms: they fire during the case). The
//! checker is sound for any scheduling:
//!
//! - never early: an observed `DeadlineExceeded` must come from a deadline on
//!   the node's path that had passed when the observation ended;
//! - never late beyond [`GRACE`]: a node whose deadline passed more than
//!   `GRACE` before the observation started must be done;
//! - between the two, either state is accepted, and what is observed becomes
//!   the model's fact ("committed"): from then on it must never change.
//!
//! An explicit cancel is synchronous: once it returns, every node below it is
//! done, with its cause or with whichever cause reached that node first.
//! "Advance time" sleeps until the next near deadline (the clock itself is
//! under test here) and then waits, up to `GRACE`, for every node below it.
//!
//! Cases default to 64 (a few seconds); `CTX_MODEL_CASES=5000` runs more.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::{Duration, Instant};

use ctx::{AfterFunc, CancelGuard, CancelHandle, Cause, Context, Error};
use proptest::prelude::*;

mod support;
use support::CountingWaker;

/// How late the timer may fire on a loaded CI machine before it is a bug.
const GRACE: Duration = Duration::from_secs(5);

/// A cause with an identity, so the checker knows which cancel produced it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tag(u32);

impl std::fmt::Display for Tag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "tag {}", self.0)
    }
}

impl std::error::Error for Tag {}

/// Two value types, so that lookups skip values of the other type.
#[derive(Debug, PartialEq)]
struct ValA(u32);
#[derive(Debug, PartialEq)]
struct ValB(u32);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CauseTag {
    /// No cause given: `cause()` reports the error itself.
    Plain,
    Tag(u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Outcome {
    err: Error,
    cause: CauseTag,
}

#[derive(Debug, Clone, Copy)]
enum When {
    /// Already passed, by this many ms.
    Past(u64),
    /// In this many ms.
    Near(u64),
    /// In an hour plus this many seconds, through `with_deadline`.
    Far(u64),
    /// In an hour plus this many seconds, through `with_timeout`.
    FarTimeout(u64),
}

#[derive(Debug, Clone, Copy)]
enum How {
    Guard,
    GuardWithCause,
    Handle,
    HandleWithCause,
    DropGuard,
}

/// Picks one of the candidates an operation applies to (modulo their number).
#[derive(Debug, Clone, Copy)]
struct Pick(usize);

#[derive(Debug, Clone)]
enum Op {
    DeriveCancel(Pick),
    DeriveDeadline(Pick, When, bool),
    DeriveValue(Pick, bool, u32),
    DeriveWithoutCancel(Pick),
    Cancel(Pick, How),
    DropContext(Pick),
    AfterFunc(Pick),
    StopAfterFunc(Pick),
    AdvanceTime,
    Query(Pick),
}

fn op() -> impl Strategy<Value = Op> {
    let when = prop_oneof![
        (1..1000u64).prop_map(When::Past),
        (2..30u64).prop_map(When::Near),
        (0..100u64).prop_map(When::Far),
        (0..100u64).prop_map(When::FarTimeout),
    ];
    let how = prop_oneof![
        Just(How::Guard),
        Just(How::GuardWithCause),
        Just(How::Handle),
        Just(How::HandleWithCause),
        Just(How::DropGuard),
    ];
    prop_oneof![
        6 => any::<usize>().prop_map(Pick).prop_map(Op::DeriveCancel),
        5 => (any::<usize>().prop_map(Pick), when, any::<bool>()).prop_map(|(i, w, c)| Op::DeriveDeadline(i, w, c)),
        4 => (any::<usize>().prop_map(Pick), any::<bool>(), any::<u32>()).prop_map(|(i, a, v)| Op::DeriveValue(i, a, v)),
        1 => any::<usize>().prop_map(Pick).prop_map(Op::DeriveWithoutCancel),
        5 => (any::<usize>().prop_map(Pick), how).prop_map(|(i, h)| Op::Cancel(i, h)),
        2 => any::<usize>().prop_map(Pick).prop_map(Op::DropContext),
        2 => any::<usize>().prop_map(Pick).prop_map(Op::AfterFunc),
        1 => any::<usize>().prop_map(Pick).prop_map(Op::StopAfterFunc),
        1 => Just(Op::AdvanceTime),
        3 => any::<usize>().prop_map(Pick).prop_map(Op::Query),
    ]
}

/// What the model knows about a cancel node.
#[derive(Default)]
struct CancelState {
    /// Its own deadline: set when it was earlier than every deadline above
    /// (or equal to the one above it, which the generator avoids).
    own_deadline: Option<Instant>,
    /// What `cause()` reports if its own deadline ends it.
    deadline_cause: Option<CauseTag>,
    /// The first explicit cancel of this node (or a deadline that had passed
    /// at derivation): once that returned, the node and its subtree are done.
    explicit: Option<Outcome>,
    /// What was observed once the node was done, and when: a fact for good.
    committed: Option<(Outcome, Instant)>,
}

enum Kind {
    Root,
    Cancel(CancelState),
    Value(bool, u32),
    WithoutCancel,
}

struct Node {
    /// `None` for the root only.
    parent: Option<usize>,
    kind: Kind,
    /// The real handle; `None` once the test dropped it.
    ctx: Option<Context>,
    guard: Option<CancelGuard>,
    handle: Option<CancelHandle>,
}

struct Registration {
    /// The node it was registered on.
    node: usize,
    after: AfterFunc,
    calls: Arc<AtomicUsize>,
    /// `stop()` returned true once: the callback must never run.
    stopped: bool,
    /// `stop()` returned false: the callback has started.
    started: bool,
}

struct Model {
    nodes: Vec<Node>,
    afters: Vec<Registration>,
    next_tag: u32,
}

fn tag_of(cause: &Cause, err: Error) -> CauseTag {
    match cause.downcast_ref::<Tag>() {
        Some(tag) => CauseTag::Tag(tag.0),
        None => {
            assert!(
                cause.is(err),
                "cause {cause:?} is neither a tag nor {err:?}"
            );
            CauseTag::Plain
        }
    }
}

/// Reads `(cause, err)` of a real context, with the instants around the read.
fn observe(ctx: &Context) -> (Option<Outcome>, Instant, Instant) {
    let t0 = Instant::now();
    let cause = ctx.cause();
    let err = ctx.err();
    let t1 = Instant::now();
    let outcome = cause.map(|cause| {
        // Invariant 1 of the tree: the cause is recorded before the error
        // bits are set, and both are sticky.
        let err = err.expect("cause() is Some but a later err() is None");
        Outcome {
            err,
            cause: tag_of(&cause, err),
        }
    });
    (outcome, t0, t1)
}

impl Model {
    fn new() -> Model {
        Model {
            nodes: vec![Node {
                parent: None,
                kind: Kind::Root,
                ctx: Some(Context::background()),
                guard: None,
                handle: None,
            }],
            afters: Vec::new(),
            next_tag: 0,
        }
    }

    fn tag(&mut self) -> u32 {
        self.next_tag += 1;
        self.next_tag
    }

    fn cancel_state(&self, i: usize) -> &CancelState {
        match &self.nodes[i].kind {
            Kind::Cancel(state) => state,
            _ => unreachable!("not a cancel node"),
        }
    }

    fn cancel_state_mut(&mut self, i: usize) -> &mut CancelState {
        match &mut self.nodes[i].kind {
            Kind::Cancel(state) => state,
            _ => unreachable!("not a cancel node"),
        }
    }

    /// The cancel nodes whose cancellation reaches node `i`, nearest first:
    /// up through value nodes, stopping at `without_cancel` and the root.
    fn signal_path(&self, mut i: usize) -> Vec<usize> {
        let mut path = Vec::new();
        loop {
            match self.nodes[i].kind {
                Kind::Root | Kind::WithoutCancel => return path,
                Kind::Cancel(_) => path.push(i),
                Kind::Value(..) => {}
            }
            i = self.nodes[i].parent.expect("only the root has no parent");
        }
    }

    /// The earliest deadline on the signal path.
    fn deadline(&self, i: usize) -> Option<Instant> {
        self.signal_path(i)
            .into_iter()
            .filter_map(|j| self.cancel_state(j).own_deadline)
            .min()
    }

    /// The nearest value of either type on the path to the root.
    fn value(&self, mut i: usize, want_a: bool) -> Option<u32> {
        loop {
            if let Kind::Value(a, v) = self.nodes[i].kind {
                if a == want_a {
                    return Some(v);
                }
            }
            i = self.nodes[i].parent?;
        }
    }

    /// Indices of nodes whose context handle the test still holds.
    fn observable(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].ctx.is_some())
            .collect()
    }

    fn pick(&self, candidates: &[usize], index: &Pick) -> Option<usize> {
        (!candidates.is_empty()).then(|| candidates[index.0 % candidates.len()])
    }

    fn push(
        &mut self,
        parent: usize,
        kind: Kind,
        ctx: Context,
        guard: Option<CancelGuard>,
    ) -> usize {
        self.nodes.push(Node {
            parent: Some(parent),
            kind,
            ctx: Some(ctx),
            guard,
            handle: None,
        });
        self.nodes.len() - 1
    }

    /// A new cancel node under a parent whose signal is already known done is
    /// born done with the parent's error and cause: deterministic.
    fn inherit_commit(&mut self, child: usize) {
        let path = self.signal_path(child);
        if let Some(&signal_parent) = path.get(1) {
            if let Some((outcome, _)) = self.cancel_state(signal_parent).committed {
                self.cancel_state_mut(child).committed = Some((outcome, Instant::now()));
            }
        }
    }

    fn apply(&mut self, op: &Op) {
        let live = self.observable();
        match op {
            Op::DeriveCancel(i) => {
                let p = self.pick(&live, i).expect("the root is always observable");
                let (ctx, guard) = self.nodes[p].ctx.as_ref().unwrap().with_cancel();
                let c = self.push(p, Kind::Cancel(CancelState::default()), ctx, Some(guard));
                self.inherit_commit(c);
            }
            Op::DeriveDeadline(i, when, with_cause) => {
                let p = self.pick(&live, i).unwrap();
                self.derive_deadline(p, *when, *with_cause);
            }
            Op::DeriveValue(i, a, v) => {
                let p = self.pick(&live, i).unwrap();
                let parent = self.nodes[p].ctx.as_ref().unwrap();
                let ctx = if *a {
                    parent.with_value(ValA(*v))
                } else {
                    parent.with_value(ValB(*v))
                };
                self.push(p, Kind::Value(*a, *v), ctx, None);
            }
            Op::DeriveWithoutCancel(i) => {
                let p = self.pick(&live, i).unwrap();
                let ctx = self.nodes[p].ctx.as_ref().unwrap().without_cancel();
                self.push(p, Kind::WithoutCancel, ctx, None);
            }
            Op::Cancel(i, how) => {
                let cancelable: Vec<usize> = (0..self.nodes.len())
                    .filter(|&j| self.nodes[j].guard.is_some() || self.nodes[j].handle.is_some())
                    .collect();
                if let Some(n) = self.pick(&cancelable, i) {
                    self.cancel(n, *how);
                }
            }
            Op::DropContext(i) => {
                // Keep the root: it costs nothing and anchors derivations.
                let droppable: Vec<usize> = live.iter().copied().filter(|&j| j != 0).collect();
                if let Some(n) = self.pick(&droppable, i) {
                    self.nodes[n].ctx = None;
                }
            }
            Op::AfterFunc(i) => {
                let n = self.pick(&live, i).unwrap();
                self.register_after_func(n);
            }
            Op::StopAfterFunc(i) => {
                let all: Vec<usize> = (0..self.afters.len()).collect();
                if let Some(r) = self.pick(&all, i) {
                    self.stop_after_func(r);
                }
            }
            Op::AdvanceTime => self.advance_time(),
            Op::Query(i) => {
                let n = self.pick(&live, i).unwrap();
                self.query(n);
            }
        }
    }

    fn derive_deadline(&mut self, p: usize, when: When, with_cause: bool) {
        let tag = self.tag();
        let cause = with_cause.then_some(Tag(tag));
        let deadline_cause = if with_cause {
            CauseTag::Tag(tag)
        } else {
            CauseTag::Plain
        };
        let parent_deadline = self.deadline(p);
        let parent = self.nodes[p].ctx.clone().unwrap();
        let hour = Duration::from_secs(3600);
        let before = Instant::now();
        let (ctx, guard, own) = match when {
            When::FarTimeout(s) => {
                let timeout = hour + Duration::from_secs(s);
                let (ctx, guard) = match cause {
                    Some(cause) => parent.with_timeout_cause(timeout, cause),
                    None => parent.with_timeout(timeout),
                };
                let after = Instant::now();
                let got = ctx.deadline().expect("a timeout context has a deadline");
                // Read back: either the parent's (earlier) deadline, or its
                // own, taken from the clock during the call.
                let own = if parent_deadline == Some(got) && got < after + timeout {
                    None
                } else {
                    assert!(
                        before + timeout <= got && got <= after + timeout,
                        "with_timeout's deadline is not now + timeout"
                    );
                    assert!(parent_deadline.is_none_or(|pd| got <= pd));
                    Some(got)
                };
                (ctx, guard, own)
            }
            _ => {
                let mut at = match when {
                    When::Past(ms) => before - Duration::from_millis(ms),
                    When::Near(ms) => before + Duration::from_millis(ms),
                    When::Far(s) => before + hour + Duration::from_secs(s),
                    When::FarTimeout(_) => unreachable!(),
                };
                if parent_deadline == Some(at) {
                    // Equal deadlines fire in either order; keep the model exact.
                    at += Duration::from_micros(1);
                }
                let (ctx, guard) = match cause {
                    Some(cause) => parent.with_deadline_cause(at, cause),
                    None => parent.with_deadline(at),
                };
                // Go's rule: a later deadline than the parent's adds nothing.
                let own = (parent_deadline.is_none_or(|pd| at < pd)).then_some(at);
                (ctx, guard, own)
            }
        };
        let mut state = CancelState {
            own_deadline: own,
            deadline_cause: Some(deadline_cause),
            ..CancelState::default()
        };
        if own.is_some_and(|d| d <= before) {
            // Passed before the call: with_deadline cancels synchronously.
            state.explicit = Some(Outcome {
                err: Error::DeadlineExceeded,
                cause: deadline_cause,
            });
        }
        let c = self.push(p, Kind::Cancel(state), ctx, Some(guard));
        self.inherit_commit(c);
    }

    fn cancel(&mut self, n: usize, how: How) {
        let tag = self.tag();
        let node = &mut self.nodes[n];
        if node.handle.is_none() && matches!(how, How::Handle | How::HandleWithCause) {
            node.handle = node.guard.as_ref().map(CancelGuard::handle);
        }
        let (outcome, call): (Outcome, Box<dyn FnOnce()>) =
            match (how, node.guard.take(), node.handle.clone()) {
                (How::Guard, Some(guard), _) => (plain(), Box::new(move || guard.cancel())),
                (How::DropGuard, Some(guard), _) => (plain(), Box::new(move || drop(guard))),
                (How::GuardWithCause, Some(guard), _) => (
                    tagged(tag),
                    Box::new(move || guard.cancel_with_cause(Tag(tag))),
                ),
                (How::HandleWithCause, guard, Some(handle)) => {
                    node.guard = guard;
                    (
                        tagged(tag),
                        Box::new(move || handle.cancel_with_cause(Tag(tag))),
                    )
                }
                (_, guard, Some(handle)) => {
                    node.guard = guard;
                    (plain(), Box::new(move || handle.cancel()))
                }
                (_, Some(guard), None) => (plain(), Box::new(move || guard.cancel())),
                (_, None, None) => unreachable!("picked among cancelable nodes"),
            };
        call();
        // Only the first cancellation of a node counts.
        let state = self.cancel_state_mut(n);
        if state.explicit.is_none() {
            state.explicit = Some(outcome);
        }
    }

    fn register_after_func(&mut self, n: usize) {
        let calls = Arc::new(AtomicUsize::new(0));
        let after = self.nodes[n].ctx.as_ref().unwrap().after_func({
            let calls = calls.clone();
            move || {
                calls.fetch_add(1, Ordering::SeqCst);
            }
        });
        if let Some(&s) = self.signal_path(n).first() {
            if self.cancel_state(s).committed.is_some() {
                assert_eq!(
                    calls.load(Ordering::SeqCst),
                    1,
                    "after_func on a done context runs at once"
                );
            }
        }
        self.afters.push(Registration {
            node: n,
            after,
            calls,
            stopped: false,
            started: false,
        });
    }

    fn stop_after_func(&mut self, r: usize) {
        let reg = &mut self.afters[r];
        let stopped = reg.after.stop();
        if stopped {
            assert!(!reg.stopped && !reg.started, "stop() said true twice");
            reg.stopped = true;
        } else if !reg.stopped {
            // Not stopped before, so the callback has started: the context is done.
            reg.started = true;
            let n = reg.node;
            if let Some(ctx) = &self.nodes[n].ctx {
                assert!(
                    ctx.is_done(),
                    "stop() says the callback started, yet the context is live"
                );
            }
        }
    }

    /// Sleeps until the next near deadline, then waits (up to `GRACE`) for
    /// every observable node below a passed deadline to be done.
    fn advance_time(&mut self) {
        let now = Instant::now();
        let next = (0..self.nodes.len())
            .filter_map(|j| match &self.nodes[j].kind {
                Kind::Cancel(state) => state.own_deadline,
                _ => None,
            })
            .filter(|&d| d > now && d < now + GRACE)
            .min();
        let Some(next) = next else { return };
        // The clock is what is under test here: sleeping is the point.
        std::thread::sleep(next - now + Duration::from_millis(1));
        let now = Instant::now();
        for j in self.observable() {
            let due = self.deadline(j).is_some_and(|d| d <= now);
            if due {
                let ctx = self.nodes[j].ctx.as_ref().unwrap();
                assert!(
                    ctx.wait_timeout(GRACE).is_some(),
                    "{ctx:?}: deadline passed {GRACE:?} ago and still live"
                );
            }
        }
    }

    /// The slower readers, which must agree with `err()`.
    fn query(&self, n: usize) {
        let ctx = self.nodes[n].ctx.as_ref().unwrap();
        let first = ctx.err();
        let check = ctx.check();
        let is_done = ctx.is_done();
        let waited = ctx.wait_timeout(Duration::ZERO);
        let polled = poll_once(ctx);
        let last = ctx.err();
        // Sticky: once an earlier reader saw an error, later ones see it too.
        if let Some(err) = first {
            assert_eq!(check, Err(err));
            assert!(is_done);
            assert_eq!(waited, Some(err));
            assert_eq!(polled, Poll::Ready(err));
        }
        if let Poll::Ready(err) = polled {
            assert_eq!(last, Some(err));
        }
        let before = Instant::now();
        match (ctx.deadline(), ctx.remaining()) {
            (None, None) => {}
            (Some(deadline), Some(left)) => {
                // remaining() read the clock after `before`.
                assert!(left <= deadline.saturating_duration_since(before));
            }
            (d, r) => panic!("deadline {d:?} but remaining {r:?}"),
        }
        let chain = format!("{ctx:?}");
        assert!(chain.starts_with("background"), "{chain}");
    }

    /// Checks every observable node against the model, committing what is
    /// observed once a node is done.
    fn check(&mut self) {
        // Callbacks run after the error is set: read their counts first, so
        // that a count of one implies the node was done before its check.
        let counts: Vec<usize> = self
            .afters
            .iter()
            .map(|r| r.calls.load(Ordering::SeqCst))
            .collect();
        for j in self.observable() {
            self.check_node(j);
        }
        let now = Instant::now();
        for (reg, &count) in self.afters.iter().zip(&counts) {
            assert!(count <= 1, "an after_func ran {count} times");
            let signal = self.signal_path(reg.node).first().copied();
            if reg.stopped {
                assert_eq!(count, 0, "ran after stop() returned true");
                continue;
            }
            let Some(s) = signal else {
                assert_eq!(count, 0, "ran on a context that is never done");
                continue;
            };
            let committed = self.cancel_state(s).committed;
            if count == 1 && self.nodes[reg.node].ctx.is_some() {
                assert!(committed.is_some(), "ran before its context was done");
            }
            if let Some((_, at)) = committed {
                if count == 0 {
                    assert!(
                        now < at + GRACE,
                        "context done {GRACE:?} ago, callback never ran"
                    );
                }
            }
        }
    }

    fn check_node(&mut self, i: usize) {
        let ctx = self.nodes[i].ctx.as_ref().unwrap();
        let (observed, t0, t1) = observe(ctx);
        assert_eq!(ctx.deadline(), self.deadline(i), "deadline of {ctx:?}");
        assert_eq!(
            ctx.value::<ValA>().map(|v| v.0),
            self.value(i, true),
            "ValA of {ctx:?}"
        );
        assert_eq!(
            ctx.value::<ValB>().map(|v| v.0),
            self.value(i, false),
            "ValB of {ctx:?}"
        );
        let chain = format!("{ctx:?}");
        let path = self.signal_path(i);
        let Some(&s) = path.first() else {
            assert_eq!(observed, None, "{chain} can never be done");
            return;
        };
        if let Some((outcome, _)) = self.cancel_state(s).committed {
            assert_eq!(observed, Some(outcome), "{chain} changed after it was done");
            return;
        }
        // The nearest ancestor known done: what reached it may reach us, but
        // nothing from above it can (its walk stops there).
        let known = path
            .iter()
            .position(|&j| self.cancel_state(j).committed.is_some());
        let below = &path[..known.unwrap_or(path.len())];
        match observed {
            Some(outcome) => {
                let mut allowed = Vec::new();
                if let Some(k) = known {
                    allowed.push(self.cancel_state(path[k]).committed.unwrap().0);
                }
                for &x in below {
                    let state = self.cancel_state(x);
                    allowed.extend(state.explicit);
                    if let Some(d) = state.own_deadline {
                        // Never early: only a deadline that had passed.
                        if d <= t1 {
                            allowed.push(Outcome {
                                err: Error::DeadlineExceeded,
                                cause: state.deadline_cause.unwrap(),
                            });
                        }
                    }
                }
                assert!(
                    allowed.contains(&outcome),
                    "{chain} is done with {outcome:?}, but only {allowed:?} could have reached it"
                );
                self.cancel_state_mut(s).committed = Some((outcome, t1));
            }
            None => {
                for &x in &path {
                    let state = self.cancel_state(x);
                    assert!(
                        state.explicit.is_none(),
                        "{chain} is live after a cancel above it returned: {:?}",
                        state.explicit
                    );
                    if let Some(d) = state.own_deadline {
                        assert!(
                            t0 < d + GRACE,
                            "{chain} is live {GRACE:?} after its deadline"
                        );
                    }
                }
                if let Some(k) = known {
                    let (_, at) = self.cancel_state(path[k]).committed.unwrap();
                    assert!(
                        t0 < at + GRACE,
                        "{chain} is live {GRACE:?} after its parent was done"
                    );
                }
            }
        }
    }

    /// Cancels everything: every node below a cancel node must end done.
    fn teardown(mut self) {
        for j in (0..self.nodes.len()).rev() {
            drop(self.nodes[j].guard.take());
        }
        for j in self.observable() {
            let ctx = self.nodes[j].ctx.as_ref().unwrap();
            let cancelable = !self.signal_path(j).is_empty();
            assert_eq!(
                ctx.is_done(),
                cancelable,
                "{ctx:?} after every guard was dropped"
            );
        }
    }
}

fn plain() -> Outcome {
    Outcome {
        err: Error::Canceled,
        cause: CauseTag::Plain,
    }
}

fn tagged(tag: u32) -> Outcome {
    Outcome {
        err: Error::Canceled,
        cause: CauseTag::Tag(tag),
    }
}

/// Polls a fresh `done()` once with a real waker (so it registers), then
/// drops it (so it unregisters).
fn poll_once(ctx: &Context) -> Poll<Error> {
    let waker = Waker::from(Arc::new(CountingWaker::default()));
    let mut done = ctx.done();
    pin!(&mut done).poll(&mut TaskContext::from_waker(&waker))
}

fn run(ops: &[Op]) {
    let mut model = Model::new();
    for op in ops {
        model.apply(op);
        model.check();
    }
    model.teardown();
}

fn cases() -> u32 {
    std::env::var("CTX_MODEL_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(64)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        // Shrinking replays real sleeps; keep it bounded.
        max_shrink_iters: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_operations_agree_with_the_reference_model(ops in proptest::collection::vec(op(), 1..80)) {
        run(&ops);
    }
}

/// The checker itself must be able to fail: a model that forgets a cancel
/// is caught at the next step.
#[test]
#[should_panic(expected = "live after a cancel above it returned")]
fn the_checker_catches_a_cancel_that_did_not_reach_a_child() {
    let mut model = Model::new();
    model.apply(&Op::DeriveCancel(Pick(0)));
    model.apply(&Op::DeriveCancel(Pick(1)));
    // Claim the parent was canceled without canceling it.
    model.cancel_state_mut(1).explicit = Some(plain());
    model.check();
}
