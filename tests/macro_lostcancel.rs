//! The lostcancel check wraps discarded values in a call that asks rustc for
//! their type. The wrapping must not move any drop: each body below runs
//! twice, as a plain function and under `#[ctx]`, and the two must log the
//! same drops in the same order.

use std::cell::RefCell;
use std::time::Duration;

use ctx::Context;

thread_local! {
    static LOG: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

fn log(event: impl Into<String>) {
    LOG.with(|log| log.borrow_mut().push(event.into()));
}

fn take_log() -> Vec<String> {
    LOG.with(|log| log.borrow_mut().drain(..).collect())
}

/// Logs its drop.
struct Noisy(&'static str);

impl Drop for Noisy {
    fn drop(&mut self) {
        log(format!("drop {}", self.0));
    }
}

fn noisy(name: &'static str) -> Noisy {
    Noisy(name)
}

fn pair(a: &'static str, b: &'static str) -> (Noisy, Noisy) {
    (Noisy(a), Noisy(b))
}

/// A value made from a borrowed temporary: both are dropped at the end of
/// the statement, the result first.
fn derived(from: &Noisy) -> Noisy {
    Noisy(if from.0 == "t" { "t-result" } else { "result" })
}

/// Takes a value and drops it before returning.
fn consume(value: Noisy) {
    log(format!("consumed {}", value.0));
}

struct Holder {
    kept: Noisy,
}

/// `fn $plain()` as written, and `#[ctx] fn $checked()` with the same body.
macro_rules! twice {
    ($($plain:ident, $checked:ident: $body:block)*) => {
        $(
            fn $plain() $body

            #[ctx::ctx]
            fn $checked() $body
        )*
    };
}

twice! {
    let_underscore_drops_at_once, let_underscore_drops_at_once_checked: {
        let _ = noisy("a");
        log("next statement");
    }

    tuple_underscore_drops_at_end_of_statement, tuple_underscore_drops_at_end_of_statement_checked: {
        let (_kept, _) = pair("kept", "dropped");
        log("next statement");
    }

    tuple_literal_element, tuple_literal_element_checked: {
        let (_kept, _) = (noisy("kept"), noisy("dropped"));
        log("next statement");
    }

    place_is_not_moved, place_is_not_moved_checked: {
        let place = noisy("place");
        let _ = place;
        log("next statement");
        let both = pair("first", "second");
        let (_first, _) = both;
        log("after destructuring a place");
    }

    temporaries_in_creation_order, temporaries_in_creation_order_checked: {
        let _ = derived(&noisy("t"));
        log("next statement");
        let (_r, _) = (derived(&noisy("u")), noisy("v"));
        log("after tuple");
    }

    lifetime_extension_is_kept, lifetime_extension_is_kept_checked: {
        let (extended, _) = (&noisy("extended"), noisy("dropped"));
        log("next statement");
        log(extended.0);
    }

    block_and_if_tails, block_and_if_tails_checked: {
        let _ = {
            let inner = noisy("block tail");
            log("in block");
            inner
        };
        log("after block");
        let flag = LOG.with(|log| !log.borrow().is_empty());
        let (_kept, _) = if flag {
            pair("then kept", "then dropped")
        } else {
            pair("else kept", "else dropped")
        };
        log("after if");
    }

    match_arms, match_arms_checked: {
        // The shape under test, though a `let` would do.
        #[allow(clippy::match_single_binding)]
        let kept = match pair("arm kept", "arm dropped") {
            (a, _) => a,
        };
        log("after match");
        drop(kept);
    }

    assignments, assignments_checked: {
        let mut kept = noisy("initial");
        log(kept.0);
        (kept, _) = pair("assigned", "assigned dropped");
        log("after tuple assignment");
        _ = noisy("wild assigned");
        log("after wild assignment");
        drop(kept);
    }

    forget_is_still_forget, forget_is_still_forget_checked: {
        std::mem::forget(noisy("forgotten"));
        log("after forget");
    }

    dot_zero_anywhere, dot_zero_anywhere_checked: {
        consume(pair("argument", "argument dropped").0);
        log("after argument");
        let holder = Holder {
            kept: pair("field", "field dropped").0,
        };
        log("after field");
        log(pair("receiver", "receiver dropped").0 .0);
        log("after receiver");
        let _result = derived(&pair("t", "t dropped").0);
        log("after borrowed argument");
        // The shapes under test, though clippy would shorten them.
        #[allow(clippy::unnecessary_operation)]
        pair("statement", "statement dropped").0;
        log("after statement");
        #[allow(clippy::needless_return)]
        let early = || {
            return pair("returned", "return dropped").0;
        };
        let tail = || pair("tail", "tail dropped").0;
        drop(early());
        log("after return");
        drop(tail());
        log("after tail");
        log(holder.kept.0);
    }

    dot_zero_under_an_extending_let, dot_zero_under_an_extending_let_checked: {
        let extended = &pair("extended", "extended dropped").0;
        log("next statement");
        log(extended.0);
    }

    nested_tuple_literals, nested_tuple_literals_checked: {
        let ((_kept, _), _n) = (pair("nested kept", "nested dropped"), noisy("n"));
        log("after nested");
        let (_first, .., _last) = (noisy("first"), noisy("middle a"), noisy("middle b"), noisy("last"));
        log("after rest");
        let (_a, _b, _c, _d, _) = (noisy("1"), noisy("2"), noisy("3"), noisy("4"), noisy("fifth"));
        log("after long tuple");
        let _zero = (noisy("zero"), noisy("one")).0;
        log("after dot zero");
    }

    closures_and_async_blocks, closures_and_async_blocks_checked: {
        let run = || {
            let (_kept, _) = pair("closure kept", "closure dropped");
            log("in closure");
        };
        run();
        let future = async {
            let _ = noisy("async dropped");
            log("in async block");
        };
        futures::executor::block_on(future);
    }
}

/// Runs `plain` and `checked`, returning the log of each.
fn logs(plain: fn(), checked: fn(&Context)) -> (Vec<String>, Vec<String>) {
    take_log();
    plain();
    let plain = take_log();
    checked(&Context::background());
    (plain, take_log())
}

macro_rules! same_drops {
    ($($test:ident: $plain:ident, $checked:ident => [$($expected:literal),* $(,)?];)*) => {
        $(
            #[test]
            fn $test() {
                let (plain, checked) = logs($plain, $checked);
                assert_eq!(plain, [$($expected),*], "the plain function");
                assert_eq!(checked, plain, "`#[ctx]` moved a drop");
            }
        )*
    };
}

same_drops! {
    let_underscore_drops_the_value_at_once:
        let_underscore_drops_at_once, let_underscore_drops_at_once_checked
        => ["drop a", "next statement"];
    an_underscore_in_a_tuple_drops_at_the_end_of_the_statement:
        tuple_underscore_drops_at_end_of_statement, tuple_underscore_drops_at_end_of_statement_checked
        => ["drop dropped", "next statement", "drop kept"];
    an_underscore_over_a_tuple_element_drops_it_with_the_statement:
        tuple_literal_element, tuple_literal_element_checked
        => ["drop dropped", "next statement", "drop kept"];
    an_underscore_over_a_place_drops_nothing:
        place_is_not_moved, place_is_not_moved_checked
        => ["next statement", "after destructuring a place", "drop first", "drop second", "drop place"];
    temporaries_drop_in_reverse_order_of_creation:
        temporaries_in_creation_order, temporaries_in_creation_order_checked
        => ["drop t-result", "drop t", "next statement", "drop v", "drop u", "after tuple", "drop result"];
    temporary_lifetime_extension_is_kept:
        lifetime_extension_is_kept, lifetime_extension_is_kept_checked
        => ["drop dropped", "next statement", "extended", "drop extended"];
    block_and_if_tails_drop_where_they_did:
        block_and_if_tails, block_and_if_tails_checked
        => ["in block", "drop block tail", "after block", "drop then dropped", "after if", "drop then kept"];
    a_match_scrutinee_drops_where_it_did:
        match_arms, match_arms_checked
        => ["drop arm dropped", "after match", "drop arm kept"];
    assignments_drop_where_they_did:
        assignments, assignments_checked
        => ["initial", "drop assigned dropped", "drop initial", "after tuple assignment", "drop wild assigned", "after wild assignment", "drop assigned"];
    forget_still_forgets:
        forget_is_still_forget, forget_is_still_forget_checked
        => ["after forget"];
    dot_zero_drops_the_rest_of_the_tuple_where_it_did:
        dot_zero_anywhere, dot_zero_anywhere_checked
        => [
            "consumed argument", "drop argument", "drop argument dropped", "after argument",
            "drop field dropped", "after field",
            "receiver", "drop receiver", "drop receiver dropped", "after receiver",
            "drop t", "drop t dropped", "after borrowed argument",
            "drop statement", "drop statement dropped", "after statement",
            "drop return dropped", "drop returned", "after return",
            "drop tail dropped", "drop tail", "after tail",
            "field", "drop t-result", "drop field",
        ];
    dot_zero_under_an_extending_let_keeps_the_tuple:
        dot_zero_under_an_extending_let, dot_zero_under_an_extending_let_checked
        => ["next statement", "extended", "drop extended", "drop extended dropped"];
    nested_tuple_literals_drop_where_they_did:
        nested_tuple_literals, nested_tuple_literals_checked
        => [
            "drop nested dropped", "after nested",
            "drop middle a", "drop middle b", "after rest",
            "drop fifth", "after long tuple",
            "drop one", "after dot zero",
            "drop zero", "drop 4", "drop 3", "drop 2", "drop 1", "drop last", "drop first",
            "drop n", "drop nested kept",
        ];
    closures_and_async_blocks_drop_where_they_did:
        closures_and_async_blocks, closures_and_async_blocks_checked
        => ["drop closure dropped", "in closure", "drop closure kept", "drop async dropped", "in async block"];
}

/// The guards the check lets through still cancel when they should.
#[ctx::ctx]
fn kept_guard_keeps_the_context_alive() -> bool {
    let (child, _cancel) = ctx.with_timeout(Duration::from_secs(10));
    let (_, other) = ctx.with_cancel();
    drop(other);
    !child.is_done()
}

#[test]
fn a_guard_kept_by_name_keeps_its_context() {
    assert!(kept_guard_keeps_the_context_alive(&Context::background()));
}

/// A `let` that borrows `.0` keeps the whole pair, guard included, to the
/// end of the block: the check lets it through, and rightly.
#[ctx::ctx]
fn extended_pair_keeps_the_context_alive() -> bool {
    let child = &ctx.with_cancel().0;
    #[allow(clippy::toplevel_ref_arg)] // The shape under test.
    let ref by_ref = ctx.with_cancel().0;
    !child.is_done() && !by_ref.is_done()
}

#[test]
fn a_pair_kept_by_an_extending_let_keeps_its_context() {
    assert!(extended_pair_keeps_the_context_alive(&Context::background()));
}
