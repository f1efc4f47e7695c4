//! The `tracing` bridge with the SDK not initialised, then disabled (own test binary: it flips
//! process-wide state, so everything runs in one test, in order).

use spanlens::processor::InMemoryProcessor;
use spanlens::Tracer;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tracing::Dispatch;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

/// Another layer on the same registry, to show the bridge takes nothing away from it.
#[derive(Clone, Default)]
struct Count(Arc<AtomicUsize>);

impl<S: tracing::Subscriber> Layer<S> for Count {
    fn on_enter(&self, _id: &tracing::span::Id, _ctx: Context<'_, S>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    fn on_event(&self, _event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

#[spanlens::traced]
fn traced_inside() -> u32 {
    41 + 1
}

/// Spans, a later `record`, an event, an explicit parent, `#[traced]` and an instrumented future;
/// `recording` says whether Spanlens spans should be behind them.
fn exercise(recording: bool) -> u32 {
    let outer = tracing::info_span!("outer", a = 1, later = tracing::field::Empty);
    let _o = outer.enter();
    outer.record("later", "x");
    assert_eq!(
        spanlens::Context::current().span().is_recording(),
        recording,
        "a Spanlens span behind the tracing span only when recording"
    );
    tracing::error!("an error event");
    let n = tracing::info_span!(parent: &outer, "child").in_scope(traced_inside);
    async_free_instrument();
    n
}

fn async_free_instrument() {
    use std::future::Future as _;
    use tracing::Instrument as _;
    let fut = std::future::ready(5);
    let fut = fut.instrument(tracing::info_span!("instrumented"));
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut fut = std::pin::pin!(fut);
    assert_eq!(fut.as_mut().poll(&mut cx), std::task::Poll::Ready(5));
}

#[test]
fn the_layer_is_harmless_without_a_tracer_and_while_disabled() {
    // 1. Not initialised: no global tracer, no explicit one.
    assert!(spanlens::global_tracer().is_none());
    let count = Count::default();
    let dispatch = Dispatch::new(
        tracing_subscriber::registry()
            .with(spanlens::tracing_layer())
            .with(count.clone()),
    );
    let n = tracing::dispatcher::with_default(&dispatch, || exercise(false));
    assert_eq!(n, 42);
    assert_eq!(
        count.0.load(Ordering::Relaxed),
        5,
        "the other layer saw every enter and the event (the instrumented future enters its span \
         on poll and again to drop its inner future)"
    );

    // 2. Disabled, with a tracer that would otherwise record.
    let mem = InMemoryProcessor::new();
    let tracer = Tracer::builder().with_processor(mem.clone()).build();
    let dispatch = Dispatch::new(
        tracing_subscriber::registry().with(spanlens::tracing_layer().with_tracer(tracer)),
    );
    spanlens::set_disabled(true);
    let made_while_disabled = tracing::dispatcher::with_default(&dispatch, || {
        assert_eq!(exercise(false), 42);
        tracing::info_span!("made while disabled")
    });
    assert!(mem.spans().is_empty(), "{:?}", mem.spans());

    // 3. Enabled again: recording resumes; a span made while disabled stays unrecorded and
    //    its children start their own trace.
    spanlens::set_disabled(false);
    tracing::dispatcher::with_default(&dispatch, || {
        let _d = made_while_disabled.enter();
        assert_eq!(exercise(true), 42);
    });
    drop(made_while_disabled);
    let names: Vec<String> = mem.spans().iter().map(|s| s.name.to_string()).collect();
    assert_eq!(names.len(), 4, "{names:?}");
    for n in ["outer", "child", "traced_inside", "instrumented"] {
        assert!(names.iter().any(|x| x == n), "{n} recorded: {names:?}");
    }
    assert!(mem
        .spans()
        .iter()
        .find(|s| s.name == "outer")
        .unwrap()
        .parent_span_id
        .is_none());
}
