//! The `tracing` bridge: `tracing` spans and events as Spanlens spans, one tree with `#[traced]`,
//! GenAI fields priced, async `.instrument()` across worker threads.
//!
//! Every test builds its own tracer (in-memory processor) and subscriber, and installs the
//! subscriber only for its own thread or futures: no global state, so tests run in parallel.

use spanlens::processor::InMemoryProcessor;
use spanlens::{Resource, SpanData, SpanKind, Status, Tracer, Value};
use std::collections::HashMap;
use std::time::Duration;
use tracing::field::Empty;
use tracing::instrument::WithSubscriber;
use tracing::{Dispatch, Instrument};
use tracing_subscriber::layer::SubscriberExt;

fn setup_with(
    layer: impl FnOnce(spanlens::TracingLayer) -> spanlens::TracingLayer,
) -> (Dispatch, InMemoryProcessor) {
    let mem = InMemoryProcessor::new();
    let tracer = Tracer::builder().with_processor(mem.clone()).build();
    let layer = layer(spanlens::tracing_layer().with_tracer(tracer));
    (
        Dispatch::new(tracing_subscriber::registry().with(layer)),
        mem,
    )
}

fn setup() -> (Dispatch, InMemoryProcessor) {
    setup_with(|l| l)
}

/// Runs `f` with the bridge as this thread's subscriber; returns the ended spans by name.
fn record(f: impl FnOnce()) -> HashMap<String, SpanData> {
    let (dispatch, mem) = setup();
    tracing::dispatcher::with_default(&dispatch, f);
    by_name(&mem.spans())
}

fn by_name(spans: &[SpanData]) -> HashMap<String, SpanData> {
    let map: HashMap<String, SpanData> = spans
        .iter()
        .map(|s| (s.name.to_string(), s.clone()))
        .collect();
    assert_eq!(
        map.len(),
        spans.len(),
        "names are unique per test: {spans:#?}"
    );
    map
}

fn assert_child(spans: &HashMap<String, SpanData>, child: &str, parent: &str) {
    let (c, p) = (&spans[child], &spans[parent]);
    assert_eq!(
        c.parent_span_id,
        Some(p.span_id),
        "{child} should be a child of {parent}: {spans:#?}"
    );
    assert_eq!(c.trace_id, p.trace_id, "{child} and {parent} share a trace");
}

fn current_span_id() -> Option<spanlens_core::SpanId> {
    spanlens::Context::current().span().span_id()
}

#[test]
fn tracing_spans_nest_as_parent_and_child() {
    let spans = record(|| {
        let outer = tracing::info_span!("outer");
        {
            let _o = outer.enter();
            let inner = tracing::info_span!("inner");
            let _i = inner.enter();
            let _leaf = tracing::debug_span!("leaf").entered();
            // `parent: None` starts a new trace even inside other spans.
            let _root = tracing::info_span!(parent: None, "detached root").entered();
        }
        assert!(current_span_id().is_none(), "exit restores the context");
        // An explicit parent is honoured though nothing is entered.
        let _late = tracing::info_span!(parent: &outer, "explicit child").entered();
    });
    assert_eq!(spans.len(), 5);
    assert_child(&spans, "inner", "outer");
    assert_child(&spans, "leaf", "inner");
    assert_child(&spans, "explicit child", "outer");
    assert_eq!(spans["outer"].parent_span_id, None);
    let detached = &spans["detached root"];
    assert_eq!(detached.parent_span_id, None);
    assert_ne!(detached.trace_id, spans["outer"].trace_id);
    for s in spans.values() {
        assert_eq!(s.kind, SpanKind::Span, "{}", s.name);
        let (start, end) = (s.start_time, s.end_time.expect("ended on close"));
        assert!(start.0 > 0 && end >= start, "{s:?}");
    }
}

#[test]
fn the_span_ends_when_the_tracing_span_closes() {
    let (dispatch, mem) = setup();
    tracing::dispatcher::with_default(&dispatch, || {
        let span = tracing::info_span!("held");
        let handle = span.clone();
        span.in_scope(|| {});
        drop(span);
        assert!(mem.spans().is_empty(), "a clone keeps it open");
        drop(handle);
        assert_eq!(mem.spans().len(), 1, "the last handle closes it");
    });
}

#[derive(Debug)]
#[allow(dead_code)] // read through `Debug`
struct Order {
    id: u32,
}

#[test]
fn fields_become_attributes_and_record_replaces_them() {
    let spans = record(|| {
        let span = tracing::info_span!(
            "fields",
            text = "hello",
            count = 3i64,
            big = u64::MAX,
            ratio = 0.25,
            flag = true,
            order = ?Order { id: 7 },
            shown = %"as display",
            later = Empty,
            gen_ai.request.temperature = 0.2,
            replaced = 1,
        );
        span.record("later", "filled in");
        span.record("replaced", 2);
    });
    let s = &spans["fields"];
    let attr = |k: &str| s.attribute(k).cloned();
    assert_eq!(attr("text"), Some(Value::Str("hello".into())));
    assert_eq!(attr("count"), Some(Value::I64(3)));
    assert_eq!(attr("big"), Some(Value::I64(i64::MAX)), "clamped");
    assert_eq!(attr("ratio"), Some(Value::F64(0.25)));
    assert_eq!(attr("flag"), Some(Value::Bool(true)));
    assert_eq!(attr("order"), Some(Value::Str("Order { id: 7 }".into())));
    assert_eq!(attr("shown"), Some(Value::Str("as display".into())));
    assert_eq!(attr("later"), Some(Value::Str("filled in".into())));
    assert_eq!(attr("gen_ai.request.temperature"), Some(Value::F64(0.2)));
    assert_eq!(attr("replaced"), Some(Value::I64(2)));
    assert_eq!(
        s.attributes.iter().filter(|(k, _)| k == "replaced").count(),
        1,
        "record replaces, it does not append"
    );
    assert_eq!(
        attr("code.namespace"),
        Some(Value::Str(module_path!().into())),
        "the target"
    );
    assert_eq!(
        attr("tracing.level"),
        None,
        "span levels are off by default"
    );
}

#[test]
fn special_fields_rename_set_kind_and_status() {
    let spans = record(|| {
        let _a = tracing::info_span!(
            "agent step",
            spanlens.kind = "agent",
            otel.name = "planner",
            otel.kind = "client",
        )
        .entered();
        let failed = tracing::info_span!(
            "failing",
            otel.status_code = Empty,
            otel.status_message = Empty
        );
        failed.record("otel.status_code", "ERROR");
        failed.record("otel.status_message", "quota exceeded");
        let _odd = tracing::info_span!("odd kind", spanlens.kind = "wizard").entered();
    });
    let agent = &spans["planner"];
    assert_eq!(agent.kind, SpanKind::Agent);
    for k in ["spanlens.kind", "otel.name", "otel.kind"] {
        assert_eq!(agent.attribute(k), None, "{k} is consumed, not stored");
    }
    let failed = &spans["failing"];
    assert_eq!(failed.status, Status::Error);
    assert_eq!(failed.status_message.as_deref(), Some("quota exceeded"));
    let odd = &spans["odd kind"];
    assert_eq!(odd.kind, SpanKind::Span);
    assert_eq!(
        odd.attribute("spanlens.kind"),
        Some(&Value::Str("wizard".into())),
        "an unknown kind stays visible"
    );
}

#[test]
fn events_become_span_events_and_error_marks_failure() {
    let (dispatch, mem) = setup_with(|l| l.with_location(true));
    tracing::dispatcher::with_default(&dispatch, || {
        tracing::info!("outside every span: dropped");
        let span = tracing::info_span!("work");
        span.in_scope(|| {
            tracing::info!(user = 7, "looking up");
            tracing::warn!(attempt = 2, "slow upstream");
            tracing::error!(error.type = "Timeout", "upstream timed out");
            tracing::error!("second failure");
            tracing::info!(no_message = true);
        });
        tracing::info!(parent: &span, "explicit parent");
    });
    let spans = by_name(&mem.spans());
    assert_eq!(spans.len(), 1, "events make no spans: {spans:#?}");
    let s = &spans["work"];
    let names: Vec<&str> = s.events.iter().map(|e| e.name.as_ref()).collect();
    assert_eq!(names.len(), 6, "{names:?}");
    assert_eq!(
        &names[..4],
        [
            "looking up",
            "slow upstream",
            "upstream timed out",
            "second failure"
        ]
    );
    assert!(
        names[4].starts_with("event "),
        "no message: the callsite name, got {}",
        names[4]
    );
    assert_eq!(names[5], "explicit parent");
    let attr = |i: usize, k: &str| {
        s.events[i]
            .attributes
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(attr(0, "user"), Some(Value::I64(7)));
    assert_eq!(attr(0, "tracing.level"), Some(Value::Str("INFO".into())));
    assert_eq!(attr(1, "tracing.level"), Some(Value::Str("WARN".into())));
    assert_eq!(
        attr(0, "code.namespace"),
        Some(Value::Str(module_path!().into()))
    );
    assert_eq!(
        attr(0, "message"),
        None,
        "the message is the name, not an attribute"
    );
    assert!(
        matches!(attr(0, "code.file.path"), Some(Value::Str(f)) if f.ends_with("tracing_layer.rs"))
    );
    assert!(matches!(attr(0, "code.line.number"), Some(Value::I64(n)) if n > 0));
    assert_eq!(s.status, Status::Error, "an ERROR event fails its span");
    assert_eq!(
        s.status_message.as_deref(),
        Some("upstream timed out"),
        "the first error explains the failure"
    );
    assert_eq!(
        s.attribute("error.type"),
        Some(&Value::Str("Timeout".into()))
    );
    assert!(s.events.windows(2).all(|w| w[0].time <= w[1].time));
}

#[test]
fn error_events_can_leave_the_status_alone() {
    let (dispatch, mem) = setup_with(|l| l.with_error_status(false));
    tracing::dispatcher::with_default(&dispatch, || {
        tracing::info_span!("tolerant").in_scope(|| tracing::error!("logged, handled"));
    });
    let s = &mem.spans()[0];
    assert_eq!(s.status, Status::Unset);
    assert_eq!(s.events.len(), 1);
}

#[test]
fn gen_ai_fields_make_a_priced_llm_span() {
    let spans = record(|| {
        let call = tracing::info_span!(
            "chat gpt-4o-mini",
            gen_ai.operation.name = "chat",
            gen_ai.provider.name = "openai",
            gen_ai.request.model = "gpt-4o-mini",
            gen_ai.response.model = Empty,
            gen_ai.usage.input_tokens = Empty,
            gen_ai.usage.output_tokens = Empty,
            gen_ai.usage.cache_read.input_tokens = Empty,
        );
        // The answer arrives later: usage is recorded after creation.
        call.record("gen_ai.response.model", "gpt-4o-mini-2024-07-18");
        call.record("gen_ai.usage.input_tokens", 1000u64);
        call.record("gen_ai.usage.output_tokens", 200u64);
        call.record("gen_ai.usage.cache_read.input_tokens", 400u64);
    });
    let llm = &spans["chat gpt-4o-mini"];
    assert_eq!(llm.kind, SpanKind::Llm);
    let canonical =
        spanlens::convert::to_canonical(std::slice::from_ref(llm), &Resource::new("svc"));
    let c = &canonical[0];
    assert_eq!(c.kind, spanlens_core::SpanKind::Llm);
    assert_eq!(c.request_model.as_deref(), Some("gpt-4o-mini"));
    assert_eq!(c.provider.as_deref(), Some("openai"));
    let usage = c.usage.as_ref().expect("usage");
    assert_eq!(
        (
            usage.input_tokens,
            usage.output_tokens,
            usage.cache_read_tokens
        ),
        (1000, 200, 400)
    );
    let catalog = spanlens_core::PriceCatalog::builtin();
    let entry = catalog
        .lookup("gpt-4o-mini-2024-07-18", Some("openai"), None)
        .or_else(|| catalog.lookup("gpt-4o-mini", Some("openai"), None))
        .expect("gpt-4o-mini is in the catalog");
    let expected = spanlens_core::compute_cost(entry, usage).total;
    let cost = c.cost.as_ref().expect("priced").amounts.total;
    assert_eq!(cost, expected);
    // 600 × $0.15/M + 400 cached × $0.075/M + 200 × $0.60/M = $0.00024
    assert_eq!(cost, spanlens_core::NanoUsd(240_000));
}

#[test]
fn kinds_come_from_the_operation_the_model_or_an_explicit_field() {
    let spans = record(|| {
        let _a = tracing::info_span!("by model", gen_ai.request.model = "gpt-4o").entered();
        let _b = tracing::info_span!("tool", gen_ai.operation.name = "execute_tool").entered();
        let _c = tracing::info_span!(
            "agent",
            gen_ai.operation.name = "invoke_agent",
            gen_ai.request.model = "gpt-4o"
        )
        .entered();
        let _d = tracing::info_span!(
            "explicit wins",
            spanlens.kind = "guardrail",
            gen_ai.operation.name = "chat"
        )
        .entered();
        let later = tracing::info_span!("later", gen_ai.operation.name = Empty);
        later.record("gen_ai.operation.name", "embeddings");
        let _e = tracing::info_span!("unknown op", gen_ai.operation.name = "frobnicate").entered();
    });
    let kind = |n: &str| spans[n].kind;
    assert_eq!(kind("by model"), SpanKind::Llm);
    assert_eq!(kind("tool"), SpanKind::Tool);
    assert_eq!(kind("agent"), SpanKind::Agent);
    assert_eq!(kind("explicit wins"), SpanKind::Guardrail);
    assert_eq!(kind("later"), SpanKind::Embedding);
    assert_eq!(kind("unknown op"), SpanKind::Span);
    // What normalisation makes of them agrees.
    let all: Vec<SpanData> = spans.values().cloned().collect();
    for c in spanlens::convert::to_canonical(&all, &Resource::new("svc")) {
        assert_eq!(c.kind.as_str(), spans[&c.name].kind.as_str(), "{}", c.name);
    }
}

#[spanlens::traced]
fn traced_step() {
    let inner = tracing::info_span!("tracing inside traced");
    let _i = inner.enter();
    traced_leaf();
}

#[spanlens::traced(kind = "tool")]
fn traced_leaf() {
    tracing::info!("from the leaf");
}

#[test]
fn traced_and_tracing_spans_share_one_tree() {
    let spans = record(|| {
        let _outer = tracing::info_span!("tracing outer").entered();
        traced_step();
        assert!(current_span_id().is_some());
    });
    assert_eq!(spans.len(), 4, "{spans:#?}");
    assert_child(&spans, "traced_step", "tracing outer");
    assert_child(&spans, "tracing inside traced", "traced_step");
    assert_child(&spans, "traced_leaf", "tracing inside traced");
    assert_eq!(spans["traced_leaf"].kind, SpanKind::Tool);
    assert_eq!(
        spans["traced_leaf"].events[0].name, "from the leaf",
        "events land on the innermost span, a traced one included"
    );
}

#[test]
fn a_tracing_span_inside_an_sdk_root_is_its_child() {
    let (dispatch, mem) = setup();
    let tracer = Tracer::builder().with_processor(mem.clone()).build();
    tracing::dispatcher::with_default(&dispatch, || {
        let root = tracer.span("sdk root").kind(SpanKind::Pipeline).start();
        let _r = root.enter();
        tracing::info_span!("tracing child").in_scope(traced_leaf);
    });
    let spans = by_name(&mem.spans());
    assert_child(&spans, "tracing child", "sdk root");
    assert_child(&spans, "traced_leaf", "tracing child");
}

#[test]
fn out_of_order_exits_keep_the_innermost_span_current() {
    let spans = record(|| {
        let a = tracing::info_span!("a").entered();
        let b = tracing::info_span!("b").entered();
        let b_id = current_span_id();
        drop(a.exit()); // `tracing` allows it; `b` stays current
        assert_eq!(current_span_id(), b_id);
        let _c = tracing::info_span!("c").entered();
        drop(_c);
        drop(b);
        assert_eq!(current_span_id(), None, "what `a` replaced is restored");
    });
    assert_child(&spans, "b", "a");
    assert_child(&spans, "c", "b");
}

#[test]
fn one_span_entered_on_several_threads_at_once() {
    let (dispatch, mem) = setup();
    let shared = tracing::dispatcher::with_default(&dispatch, || tracing::info_span!("shared"));
    let barrier = std::sync::Barrier::new(4);
    std::thread::scope(|s| {
        for k in 0..4 {
            let (dispatch, shared, barrier) = (&dispatch, &shared, &barrier);
            s.spawn(move || {
                tracing::dispatcher::with_default(dispatch, || {
                    let _in = shared.enter();
                    barrier.wait(); // every thread is inside `shared` now
                    let _c = tracing::info_span!("per thread", k).entered();
                    barrier.wait();
                });
                assert_eq!(current_span_id(), None, "thread {k} left clean");
            });
        }
    });
    drop(shared);
    let spans = mem.spans();
    let shared = spans.iter().find(|s| s.name == "shared").unwrap();
    let children: Vec<&SpanData> = spans.iter().filter(|s| s.name == "per thread").collect();
    assert_eq!(children.len(), 4);
    assert!(children
        .iter()
        .all(|c| c.parent_span_id == Some(shared.span_id)));
}

#[spanlens::traced(capture_args)]
async fn traced_async_step(job: i64) {
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(1)).await;
        tokio::task::yield_now().await;
    }
    let nested = tracing::info_span!("nested", job);
    async {
        tokio::time::sleep(Duration::from_millis(1)).await;
        tracing::info!(job, "nested done");
    }
    .instrument(nested)
    .await;
}

#[test]
fn async_instrument_across_worker_threads() {
    let (dispatch, mem) = setup();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    const JOBS: i64 = 8;
    rt.block_on(
        async {
            let request = tracing::info_span!("request");
            async {
                let mut handles = Vec::new();
                for job in 0..JOBS {
                    let span = tracing::info_span!("job", job);
                    let task = async move {
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        traced_async_step(job).await;
                        tokio::task::yield_now().await;
                        tracing::info!("job done");
                    };
                    handles.push(tokio::spawn(
                        task.instrument(span).with_current_subscriber(),
                    ));
                }
                for h in handles {
                    h.await.unwrap();
                }
            }
            .instrument(request)
            .await;
        }
        .with_subscriber(dispatch),
    );
    // No worker thread is left with a span current.
    let leftovers = rt.block_on(async {
        let mut hs = Vec::new();
        for _ in 0..16 {
            hs.push(tokio::spawn(async { current_span_id() }));
        }
        let mut out = Vec::new();
        for h in hs {
            out.push(h.await.unwrap());
        }
        out
    });
    assert!(leftovers.iter().all(Option::is_none), "{leftovers:?}");
    drop(rt);

    let spans = mem.spans();
    let request = spans.iter().find(|s| s.name == "request").unwrap();
    let job_of = |s: &SpanData| match s.attribute("job") {
        Some(Value::I64(j)) => *j,
        _ => panic!("{} has no job: {s:?}", s.name),
    };
    let by = |name: &str| -> HashMap<i64, &SpanData> {
        spans
            .iter()
            .filter(|s| s.name == name)
            .map(|s| (job_of(s), s))
            .collect()
    };
    let jobs = by("job");
    let nested = by("nested");
    let steps: HashMap<i64, &SpanData> = spans
        .iter()
        .filter(|s| s.name == "traced_async_step")
        .map(|s| {
            let input = s.attribute("input.value").expect("captured args");
            let Value::Json(j) = input else {
                panic!("{input:?}")
            };
            (j["job"].as_i64().unwrap(), s)
        })
        .collect();
    assert_eq!((jobs.len(), steps.len(), nested.len()), (8, 8, 8));
    assert_eq!(spans.len(), 1 + 3 * JOBS as usize);
    for job in 0..JOBS {
        let (j, st, n) = (jobs[&job], steps[&job], nested[&job]);
        assert_eq!(j.parent_span_id, Some(request.span_id), "job {job}");
        assert_eq!(st.parent_span_id, Some(j.span_id), "step {job}");
        assert_eq!(n.parent_span_id, Some(st.span_id), "nested {job}");
        assert!([j, st, n].iter().all(|s| s.trace_id == request.trace_id));
        assert_eq!(j.events.len(), 1, "job {job}: {:?}", j.events);
        assert_eq!(j.events[0].name, "job done");
        assert_eq!(n.events[0].name, "nested done");
        assert!(st.end_time <= j.end_time);
    }
}

#[test]
fn unsampled_traces_stay_unrecorded_down_the_tree() {
    let mem = InMemoryProcessor::new();
    let tracer = Tracer::builder()
        .with_processor(mem.clone())
        .with_sample_rate(0.0)
        .build();
    let dispatch = Dispatch::new(
        tracing_subscriber::registry().with(spanlens::tracing_layer().with_tracer(tracer)),
    );
    tracing::dispatcher::with_default(&dispatch, || {
        let _root = tracing::info_span!("root").entered();
        assert!(current_span_id().is_some(), "context still flows");
        traced_leaf();
        tracing::info_span!("child").in_scope(|| tracing::error!("not recorded"));
    });
    assert!(mem.spans().is_empty(), "{:?}", mem.spans());
}

#[test]
fn a_per_layer_filter_keeps_filtered_spans_and_events_out_of_the_tree() {
    use tracing_subscriber::filter::LevelFilter;
    use tracing_subscriber::Layer as _;
    let mem = InMemoryProcessor::new();
    let tracer = Tracer::builder().with_processor(mem.clone()).build();
    let layer = spanlens::tracing_layer()
        .with_tracer(tracer)
        .with_filter(LevelFilter::INFO);
    // Another layer wants every span, so `noisy` exists, only not for the bridge. (Were the
    // bridge the only layer, `tracing` would not create `noisy` at all, and `parent: &noisy`
    // would mean no parent.)
    struct Everything;
    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Everything {}
    let dispatch = Dispatch::new(tracing_subscriber::registry().with(layer).with(Everything));
    tracing::dispatcher::with_default(&dispatch, || {
        let _outer = tracing::info_span!("outer").entered();
        let noisy = tracing::debug_span!("noisy");
        noisy.in_scope(|| {
            tracing::debug!("filtered out");
            let _c = tracing::info_span!("contextual").entered();
            tracing::info!("kept");
        });
        let _e = tracing::info_span!(parent: &noisy, "explicit").entered();
    });
    let spans = by_name(&mem.spans());
    assert_eq!(spans.len(), 3, "{spans:#?}");
    assert_child(&spans, "contextual", "outer");
    assert_child(&spans, "explicit", "outer");
    let names: Vec<&str> = spans["contextual"]
        .events
        .iter()
        .map(|e| e.name.as_ref())
        .collect();
    assert_eq!(names, ["kept"]);
    assert!(spans["outer"].events.is_empty());
}
