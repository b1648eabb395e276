//! `#[ctx]` beside `#[tracing::instrument]`. Write `#[ctx]` above it:
//! `#[instrument]` then sees the function as callers do, `ctx` parameter
//! included (so `skip(ctx)` works), and its span and its `err` event cover
//! the entry check, the race and the timeout. Below it, `#[instrument]`
//! runs first, never sees `ctx`, and a canceled call returns its `Err`
//! outside the span, where `err` does not see it.

use std::sync::{Arc, Mutex};

use ctx::{ctx, Context, Error};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{instrument, Event, Metadata, Subscriber};

/// A span's name and the names of its fields.
type SpanSeen = (String, Vec<String>);

/// What a subscriber saw: each span, and each event's fields as
/// `name=value`.
#[derive(Clone, Default)]
struct Seen {
    spans: Arc<Mutex<Vec<SpanSeen>>>,
    events: Arc<Mutex<Vec<String>>>,
}

struct Names(Vec<String>);

impl Visit for Names {
    fn record_debug(&mut self, field: &Field, _: &dyn std::fmt::Debug) {
        self.0.push(field.name().to_owned());
    }
}

struct Values(Vec<String>);

impl Visit for Values {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push(format!("{}={value:?}", field.name()));
    }
}

impl Subscriber for Seen {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut names = Names(Vec::new());
        span.record(&mut names);
        let mut spans = self.spans.lock().unwrap();
        spans.push((span.metadata().name().to_owned(), names.0));
        Id::from_u64(spans.len() as u64)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut values = Values(Vec::new());
        event.record(&mut values);
        self.events.lock().unwrap().extend(values.0);
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// Runs `f` on a runtime with `seen` as the subscriber.
fn watched<F: std::future::Future>(f: F) -> (F::Output, Seen) {
    let seen = Seen::default();
    let out = tracing::subscriber::with_default(seen.clone(), || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    });
    (out, seen)
}

fn canceled() -> Context {
    let (ctx, cancel) = Context::background().with_cancel();
    cancel.cancel();
    ctx
}

// The documented order.
#[ctx]
#[instrument(skip(ctx), err)]
async fn ctx_above(id: u32) -> Result<u32, Error> {
    Ok(id)
}

// `ctx` recorded: it is a parameter `#[instrument]` sees.
#[ctx]
#[instrument]
async fn ctx_above_recorded(id: u32) -> Result<u32, Error> {
    Ok(id)
}

// The other order: `#[instrument]` never sees `ctx` (and `skip(ctx)` would
// not compile: ui-tests/fail/instrument-above-ctx-cannot-skip-it.rs).
#[instrument(err)]
#[ctx]
async fn ctx_below(id: u32) -> Result<u32, Error> {
    Ok(id)
}

#[test]
fn above_instrument_ctx_is_a_parameter_it_can_skip_or_record() {
    let (out, seen) = watched(ctx_above(&Context::background(), 3));
    assert_eq!(out, Ok(3));
    assert_eq!(
        *seen.spans.lock().unwrap(),
        [("ctx_above".to_owned(), vec!["id".to_owned()])]
    );

    let (_, seen) = watched(ctx_above_recorded(&Context::background(), 3));
    assert_eq!(
        *seen.spans.lock().unwrap(),
        [(
            "ctx_above_recorded".to_owned(),
            vec!["ctx".to_owned(), "id".to_owned()]
        )]
    );
}

#[test]
fn above_instrument_a_canceled_call_is_in_the_span_and_its_err_event() {
    let (out, seen) = watched(ctx_above(&canceled(), 3));
    assert_eq!(out, Err(Error::Canceled));
    assert_eq!(seen.spans.lock().unwrap().len(), 1);
    assert_eq!(*seen.events.lock().unwrap(), ["error=context canceled"]);
}

#[test]
fn below_instrument_the_fields_are_the_same_but_a_canceled_call_is_outside() {
    let (out, seen) = watched(ctx_below(&Context::background(), 3));
    assert_eq!(out, Ok(3));
    assert_eq!(
        *seen.spans.lock().unwrap(),
        [("ctx_below".to_owned(), vec!["id".to_owned()])]
    );

    let (out, seen) = watched(ctx_below(&canceled(), 3));
    assert_eq!(out, Err(Error::Canceled));
    // The race ends the call before the instrumented body is polled: there
    // is no span, and `err` records nothing.
    assert!(seen.spans.lock().unwrap().is_empty());
    assert!(seen.events.lock().unwrap().is_empty());
}
