//! `#[traced]`: nesting, kinds and names, sync and async bodies, methods and generics, argument
//! and result capture, error status, early returns and panics.
//!
//! Every test uses its own tracer with an in-memory processor and a root span entered on the
//! test's thread (or instrumenting the test's future): no global tracer, so tests can run in
//! parallel in one process.

use spanlens::processor::InMemoryProcessor;
use spanlens::{traced, FutureExt, SpanData, SpanKind, Status, Tracer, Value};
use std::collections::HashMap;
use std::fmt;

fn tracer() -> (Tracer, InMemoryProcessor) {
    let mem = InMemoryProcessor::new();
    (Tracer::builder().with_processor(mem.clone()).build(), mem)
}

/// Runs `f` under a root span named "root" and returns the ended spans by name.
fn under_root(f: impl FnOnce()) -> HashMap<String, SpanData> {
    let (t, mem) = tracer();
    {
        let root = t.span("root").kind(SpanKind::Pipeline).start();
        let _in = root.enter();
        f();
    }
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
        "span names are unique in each test: {spans:#?}"
    );
    map
}

fn input_json(s: &SpanData) -> serde_json::Map<String, serde_json::Value> {
    match s.attribute("input.value") {
        Some(Value::Json(j)) => match &**j {
            serde_json::Value::Object(m) => m.clone(),
            other => panic!("input.value should be a JSON object, got {other:?}"),
        },
        other => panic!("input.value should be JSON, got {other:?}"),
    }
}

fn text(s: &SpanData, key: &str) -> String {
    match s.attribute(key) {
        Some(v) => v.as_text().into_owned(),
        None => panic!("{key} missing on {}: {:?}", s.name, s.attributes),
    }
}

fn assert_child(spans: &HashMap<String, SpanData>, child: &str, parent: &str) {
    let c = &spans[child];
    let p = &spans[parent];
    assert_eq!(
        c.parent_span_id,
        Some(p.span_id),
        "{child} should be a child of {parent}"
    );
    assert_eq!(c.trace_id, p.trace_id);
    let (c_end, p_end) = (c.end_time.unwrap(), p.end_time.unwrap());
    assert!(
        c.start_time >= p.start_time && c_end <= p_end,
        "{child} lies within {parent}"
    );
}

// ---------------------------------------------------------------------------------------------
// Sync functions

#[traced]
fn add(a: u32, b: u32) -> u32 {
    a + b
}

#[traced(kind = "tool")]
fn outer_tool() -> u32 {
    add(1, 2) * 10
}

#[test]
fn sync_fn_nests_under_the_current_span() {
    let mut got = 0;
    let s = under_root(|| got = outer_tool());
    assert_eq!(got, 30);
    assert_eq!(s.len(), 3);
    assert_child(&s, "outer_tool", "root");
    assert_child(&s, "add", "outer_tool");
    assert_eq!(s["outer_tool"].kind, SpanKind::Tool);
    assert_eq!(s["add"].kind, SpanKind::Span, "the default kind");
    assert_eq!(
        s["add"].status,
        Status::Ok,
        "a function that returned normally succeeded"
    );
    assert!(
        s["add"].attribute("input.value").is_none(),
        "arguments are opt-in"
    );
    assert!(
        s["add"].attribute("output.value").is_none(),
        "the result is opt-in"
    );
}

#[test]
fn the_span_is_current_only_inside_the_body() {
    let (t, mem) = tracer();
    {
        let root = t.span("root").start();
        let _in = root.enter();
        add(1, 1);
        // After the traced call the root is current again: this span is its child, not add's.
        let _after = spanlens::span("after").start();
    }
    let s = by_name(&mem.spans());
    assert_child(&s, "add", "root");
    assert_child(&s, "after", "root");
}

#[traced(name = "custom name", kind = "guardrail")]
fn renamed() {}

#[traced(kind = "llm")]
fn llm_call() {}

#[traced(kind = "evaluator", name = "judge")]
async fn judge() {}

#[test]
fn custom_name_and_kind() {
    let s = under_root(|| {
        renamed();
        llm_call();
    });
    assert_eq!(s["custom name"].kind, SpanKind::Guardrail);
    assert_eq!(s["llm_call"].kind, SpanKind::Llm);
    assert!(!s.contains_key("renamed"));
    assert_child(&s, "custom name", "root");
}

#[tokio::test]
async fn custom_name_and_kind_on_an_async_fn() {
    let (t, mem) = tracer();
    judge().instrument(t.span("root").start()).await;
    let s = by_name(&mem.spans());
    assert_eq!(s["judge"].kind, SpanKind::Evaluator);
    assert_child(&s, "judge", "root");
}

// ---------------------------------------------------------------------------------------------
// Methods and generics

struct Retriever {
    corpus: Vec<&'static str>,
    hits: u32,
}

impl Retriever {
    #[traced(kind = "retriever", capture_args)]
    fn search(&self, query: &str) -> Vec<&'static str> {
        let found: Vec<_> = self
            .corpus
            .iter()
            .copied()
            .filter(|d| d.contains(query))
            .collect();
        add(1, 1); // a child of search
        found
    }

    /// `&mut self` returning a borrow of `self`.
    #[traced]
    fn hits_mut(&mut self) -> &mut u32 {
        &mut self.hits
    }

    #[traced(kind = "agent")]
    async fn answer(&self, query: &str) -> String {
        tokio::task::yield_now().await;
        self.search(query).join(",")
    }

    #[traced]
    fn into_len(self) -> usize {
        self.corpus.len()
    }
}

#[test]
fn methods_with_self() {
    let mut r = Retriever {
        corpus: vec!["rust book", "rust nomicon", "go tour"],
        hits: 0,
    };
    let mut found = vec![];
    let s = under_root(|| {
        found = r.search("rust");
        *r.hits_mut() += 1;
    });
    assert_eq!(found, ["rust book", "rust nomicon"]);
    assert_eq!(r.hits, 1);
    assert_child(&s, "search", "root");
    assert_child(&s, "add", "search");
    assert_child(&s, "hits_mut", "root");
    assert_eq!(s["search"].kind, SpanKind::Retriever);
    let input = input_json(&s["search"]);
    assert_eq!(
        input.keys().collect::<Vec<_>>(),
        ["query"],
        "`self` is never captured"
    );
    assert_eq!(input["query"], "rust");

    let mut len = 0;
    let s = under_root(|| len = r.into_len());
    assert_eq!(len, 3);
    assert_child(&s, "into_len", "root");
}

#[traced(capture_args, capture_result)]
fn largest<'a, T, I>(items: I, fallback: &'a T) -> &'a T
where
    T: PartialOrd + fmt::Debug + 'a,
    I: IntoIterator<Item = &'a T>,
{
    let mut best = fallback;
    for it in items {
        if it > best {
            best = it;
        }
    }
    best
}

#[traced(capture_args)]
fn describe(label: impl fmt::Display, value: impl fmt::Debug) -> String {
    format!("{label}={value:?}")
}

#[test]
fn generic_fns_with_lifetimes_where_clauses_and_impl_trait_args() {
    let v = vec![3, 9, 4];
    let mut got = 0;
    let mut d = String::new();
    let s = under_root(|| {
        got = *largest(&v, &0);
        d = describe("x", [1, 2]);
    });
    assert_eq!(got, 9);
    assert_eq!(d, "x=[1, 2]");
    assert_child(&s, "largest", "root");
    let input = input_json(&s["largest"]);
    // `I` has no `Debug` bound, so it is recorded as such; `&T` is `Debug`.
    assert_eq!(input["items"], "<not Debug>");
    assert_eq!(input["fallback"], "0");
    assert_eq!(text(&s["largest"], "output.value"), "9");
    let input = input_json(&s["describe"]);
    assert_eq!(
        input["label"], "<not Debug>",
        "`impl Display` is not known to be Debug"
    );
    assert_eq!(input["value"], "[1, 2]");
}

#[traced]
fn evens(limit: u32) -> impl Iterator<Item = u32> {
    (0..limit).filter(|n| n % 2 == 0)
}

#[traced]
async fn first_long<'a>(words: &'a [String], min: usize) -> Option<&'a String> {
    tokio::task::yield_now().await;
    words.iter().find(|w| w.len() >= min)
}

#[traced]
async fn parse_async(s: &str) -> Result<u32, Box<dyn std::error::Error + Send + Sync>> {
    tokio::task::yield_now().await;
    let n: u32 = s.trim().parse()?; // `?` converts into the declared error type
    Ok(n)
}

#[traced]
async fn lazy_label(n: u32) -> impl fmt::Display {
    tokio::task::yield_now().await;
    format!("#{n}")
}

struct Counter {
    n: u32,
}

impl Counter {
    #[traced]
    async fn bump(&mut self) -> &mut u32 {
        self.n += 1;
        &mut self.n
    }

    #[traced(capture_args)]
    fn with_pattern(&self, (a, b): (u32, u32), r#type: &str) -> u32 {
        let _ = r#type;
        self.n + a + b
    }
}

#[tokio::test]
async fn unusual_signatures_compile_and_trace() {
    let (t, mem) = tracer();
    let words = vec!["a".to_string(), "abcd".to_string()];
    let mut c = Counter { n: 0 };
    async {
        assert_eq!(evens(7).collect::<Vec<_>>(), [0, 2, 4, 6]);
        assert_eq!(
            first_long(&words, 3).await.map(String::as_str),
            Some("abcd")
        );
        assert_eq!(parse_async(" 7 ").await.unwrap(), 7);
        assert_eq!(
            parse_async("x").await.unwrap_err().to_string(),
            "invalid digit found in string"
        );
        assert_eq!(lazy_label(3).await.to_string(), "#3");
        *c.bump().await += 10;
        assert_eq!(c.with_pattern((1, 2), "t"), 14);
    }
    .instrument(t.span("root").start())
    .await;
    let spans = mem.spans();
    let root = spans.iter().find(|s| s.name == "root").unwrap();
    for name in [
        "evens",
        "first_long",
        "parse_async",
        "lazy_label",
        "bump",
        "with_pattern",
    ] {
        let s: Vec<&SpanData> = spans.iter().filter(|s| s.name == name).collect();
        assert!(!s.is_empty(), "{name} traced");
        assert!(
            s.iter().all(|s| s.parent_span_id == Some(root.span_id)),
            "{name} under root"
        );
    }
    let parsed: Vec<Status> = spans
        .iter()
        .filter(|s| s.name == "parse_async")
        .map(|s| s.status)
        .collect();
    assert_eq!(parsed, [Status::Ok, Status::Error]);
    let err = spans
        .iter()
        .find(|s| s.name == "parse_async" && s.status == Status::Error)
        .unwrap();
    assert_eq!(text(err, "error.type"), "Box<dyn Error + Send + Sync>");
    let wp = spans.iter().find(|s| s.name == "with_pattern").unwrap();
    let input = input_json(wp);
    assert_eq!(
        input.keys().collect::<Vec<_>>(),
        ["type"],
        "patterns are not captured; `r#` is dropped"
    );
}

// ---------------------------------------------------------------------------------------------
// Capture

#[traced(kind = "tool", capture_args, skip(api_key), capture_result)]
fn call_api(endpoint: &str, api_key: &str, retries: u8, payload: String) -> usize {
    let _ = api_key;
    endpoint.len() + payload.len() + usize::from(retries)
}

#[test]
fn capture_args_skips_secrets_and_respects_the_cap() {
    let big = "é".repeat(5_000); // 10 kB, two bytes a char
    let mut n = 0;
    let s = under_root(|| n = call_api("/v1/search", "sk-secret", 2, big.clone()));
    assert_eq!(n, 10 + 10_000 + 2);
    let span = &s["call_api"];
    let input = input_json(span);
    assert_eq!(
        input.keys().collect::<Vec<_>>(),
        ["endpoint", "retries", "payload"]
    );
    assert!(!input.contains_key("api_key"));
    assert!(
        !format!("{:?}", span.attributes).contains("sk-secret"),
        "the secret appears nowhere"
    );
    assert_eq!(input["endpoint"], "/v1/search");
    let payload = input["payload"].as_str().unwrap();
    let total: usize = input
        .values()
        .map(|v| v.as_str().map_or(v.to_string().len(), str::len))
        .sum();
    assert!(
        total <= 4096,
        "all captured text fits the default cap, got {total}"
    );
    assert!(total > 4090, "the budget left is used, got {total}");
    assert!(
        payload.starts_with("éé") && payload.ends_with('é'),
        "cut on a char boundary"
    );
    assert_eq!(input["retries"], 2);
    assert_eq!(
        span.attribute("spanlens.input.truncated"),
        Some(&Value::Bool(true))
    );
    assert_eq!(text(span, "input.mime_type"), "application/json");
    // The result is small and captured whole.
    assert_eq!(text(span, "output.value"), "10012");
    assert_eq!(text(span, "output.mime_type"), "text/plain");
    assert!(span.attribute("spanlens.output.truncated").is_none());
}

#[traced(capture_args, max_bytes = 8)]
fn small_cap(first: &str, second: u8) {
    let _ = (first, second);
}

#[traced(capture_args, capture_result, max_bytes = 4096)]
fn echo(s: String) -> String {
    s
}

#[test]
fn max_bytes_caps_args_and_result() {
    let s = under_root(|| {
        small_cap("abcdefghij", 7);
        echo("x".repeat(10_000));
    });
    let input = input_json(&s["small_cap"]);
    assert_eq!(input["first"], "abcdefgh", "cut at 8 bytes");
    assert_eq!(input["second"], "");
    let out = text(&s["echo"], "output.value");
    assert_eq!(out.len(), 4096);
    assert_eq!(
        s["echo"].attribute("spanlens.output.truncated"),
        Some(&Value::Bool(true))
    );
    let input = input_json(&s["echo"]);
    assert_eq!(input["s"].as_str().unwrap().len(), 4096);
}

#[test]
fn small_args_are_not_marked_truncated() {
    let s = under_root(|| {
        echo("hi".into());
    });
    assert_eq!(input_json(&s["echo"])["s"], "hi");
    assert_eq!(text(&s["echo"], "output.value"), "\"hi\"");
    assert!(s["echo"].attribute("spanlens.input.truncated").is_none());
    assert!(s["echo"].attribute("spanlens.output.truncated").is_none());
}

/// Counts how often it is formatted.
struct Counted<'a>(&'a std::sync::atomic::AtomicUsize);

impl fmt::Debug for Counted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        f.write_str("counted")
    }
}

#[traced(capture_args, capture_result)]
fn take_counted(c: Counted<'_>) -> Counted<'_> {
    c
}

#[test]
fn nothing_is_formatted_when_the_span_is_not_recording() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let n = AtomicUsize::new(0);
    // No current span and no global tracer in this binary: a noop span.
    let _ = take_counted(Counted(&n));
    assert_eq!(n.load(Ordering::SeqCst), 0);
    // An unsampled trace: the span exists to carry context but does not record.
    let mem = InMemoryProcessor::new();
    let t = Tracer::builder()
        .with_processor(mem.clone())
        .with_sample_rate(0.0)
        .build();
    {
        let root = t.span("root").start();
        let _in = root.enter();
        let _ = take_counted(Counted(&n));
    }
    assert_eq!(n.load(Ordering::SeqCst), 0);
    assert!(mem.spans().is_empty());
    // Recording: formatted once for the argument, once for the result.
    let s = under_root(|| {
        let _ = take_counted(Counted(&n));
    });
    assert_eq!(n.load(Ordering::SeqCst), 2);
    assert_eq!(input_json(&s["take_counted"])["c"], "counted");
}

// ---------------------------------------------------------------------------------------------
// Results, early returns, panics

#[derive(Debug)]
struct QuotaExceeded {
    limit: u32,
}

impl fmt::Display for QuotaExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "quota of {} exceeded", self.limit)
    }
}

impl std::error::Error for QuotaExceeded {}

#[traced(kind = "llm")]
fn complete(tokens: u32) -> Result<u32, QuotaExceeded> {
    if tokens > 100 {
        return Err(QuotaExceeded { limit: 100 });
    }
    Ok(tokens * 2)
}

#[traced]
fn parse_number(text: &str) -> Result<u32, std::num::ParseIntError> {
    let n: u32 = text.parse()?;
    Ok(n)
}

#[traced]
fn boxed(fail: bool) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    if fail {
        Err(QuotaExceeded { limit: 1 })?;
    }
    Ok(())
}

type IoResult<T> = std::io::Result<T>;

#[traced]
fn aliased() -> IoResult<()> {
    Err(std::io::Error::other("disk on fire"))
}

#[traced]
fn unit_error() -> Result<u8, ()> {
    Err(())
}

#[test]
fn result_err_sets_error_status_message_and_type() {
    let s = under_root(|| {
        assert!(complete(500).is_err());
        assert!(parse_number("12x").is_err());
        assert!(boxed(true).is_err());
        assert!(aliased().is_err());
        assert!(unit_error().is_err());
    });
    let c = &s["complete"];
    assert_eq!(c.status, Status::Error);
    assert_eq!(c.status_message.as_deref(), Some("quota of 100 exceeded"));
    assert_eq!(text(c, "error.type"), "QuotaExceeded");

    let p = &s["parse_number"];
    assert_eq!(p.status, Status::Error, "`?` is an exit too");
    assert_eq!(
        p.status_message.as_deref(),
        Some("invalid digit found in string")
    );
    assert_eq!(text(p, "error.type"), "ParseIntError");

    let b = &s["boxed"];
    assert_eq!(b.status_message.as_deref(), Some("quota of 1 exceeded"));
    assert_eq!(text(b, "error.type"), "Box<dyn Error + Send + Sync>");

    let a = &s["aliased"];
    assert_eq!(
        a.status,
        Status::Error,
        "decided by the type, not its spelling"
    );
    assert_eq!(a.status_message.as_deref(), Some("disk on fire"));
    assert_eq!(text(a, "error.type"), "Error");

    let u = &s["unit_error"];
    assert_eq!(u.status, Status::Error);
    assert_eq!(
        u.status_message.as_deref(),
        Some("()"),
        "Debug text when not Display"
    );
}

#[test]
fn result_ok_sets_ok_status() {
    let s = under_root(|| {
        assert_eq!(complete(5).unwrap(), 10);
        assert_eq!(parse_number("12").unwrap(), 12);
        boxed(false).unwrap();
    });
    for name in ["complete", "parse_number", "boxed"] {
        assert_eq!(s[name].status, Status::Ok, "{name}");
        assert_eq!(s[name].status_message, None);
        assert!(s[name].attribute("error.type").is_none());
    }
}

#[traced(capture_result)]
fn classify(n: i32) -> &'static str {
    if n < 0 {
        return "negative";
    }
    for i in 0..n {
        if i == 3 {
            return "big";
        }
    }
    "small"
}

#[traced]
fn early_unit(n: i32, log: &mut Vec<i32>) {
    if n == 0 {
        return;
    }
    log.push(n);
    let _child = spanlens::span("after early check").start();
}

#[test]
fn early_return_records_the_value_and_ends_the_span() {
    let mut log = vec![];
    let s = under_root(|| {
        assert_eq!(classify(-1), "negative");
        early_unit(0, &mut log);
    });
    assert_eq!(text(&s["classify"], "output.value"), "\"negative\"");
    assert!(s["classify"].end_time.is_some());
    assert_child(&s, "classify", "root");
    assert_child(&s, "early_unit", "root");
    assert!(!s.contains_key("after early check"));
    assert!(log.is_empty());

    let s = under_root(|| {
        assert_eq!(classify(10), "big");
        early_unit(1, &mut log);
    });
    assert_eq!(text(&s["classify"], "output.value"), "\"big\"");
    assert_child(&s, "after early check", "early_unit");
    assert_eq!(log, [1]);
}

#[traced(kind = "tool")]
fn explode(n: u32) -> u32 {
    let _child = spanlens::span("before the panic").start();
    if n > 0 {
        panic!("tool exploded");
    }
    n
}

#[traced]
fn diverge(code: i32) -> ! {
    panic!("exit {code}")
}

#[test]
fn a_panic_still_ends_the_span_and_marks_it_failed() {
    let (t, mem) = tracer();
    {
        let root = t.span("root").start();
        let _in = root.enter();
        let r = std::panic::catch_unwind(|| explode(1));
        assert!(r.is_err());
        assert!(std::panic::catch_unwind(|| diverge(3)).is_err());
        // The context was restored by the unwinding: this is the root's child again.
        let _after = spanlens::span("after").start();
    }
    let s = by_name(&mem.spans());
    let e = &s["explode"];
    assert!(e.end_time.is_some());
    assert_eq!(e.status, Status::Error);
    assert_eq!(e.status_message.as_deref(), Some("panicked"));
    assert_eq!(text(e, "error.type"), "panic");
    assert_child(&s, "explode", "root");
    assert_child(&s, "before the panic", "explode");
    assert_child(&s, "after", "root");
    assert_eq!(
        s["diverge"].status,
        Status::Error,
        "a `-> !` function is traced too"
    );
    assert_child(&s, "diverge", "root");
}

// ---------------------------------------------------------------------------------------------
// Async functions

#[traced(kind = "retriever")]
async fn fetch(doc: u32) -> u32 {
    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    tokio::task::yield_now().await;
    let _leaf = spanlens::span(format!("leaf {doc}")).start();
    doc * 10
}

#[traced(kind = "agent", capture_args, capture_result)]
async fn agent(task: &str) -> Vec<u32> {
    let mut out = vec![fetch(1).await];
    tokio::task::yield_now().await;
    // Concurrent children on one task.
    let (b, c) = tokio::join!(fetch(2), fetch(3));
    out.push(b);
    out.push(c);
    // A spawned child carries the context explicitly.
    let d = tokio::spawn(fetch(4).in_current_context()).await.unwrap();
    out.push(d);
    let _ = task;
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn async_fn_children_attach_to_it_across_awaits() {
    let (t, mem) = tracer();
    let root = t.span("root").kind(SpanKind::Pipeline).start();
    let got = agent("find docs").instrument(root).await;
    assert_eq!(got, [10, 20, 30, 40]);
    let spans = mem.spans();
    assert_eq!(spans.len(), 1 + 1 + 4 + 4);
    let one = |name: &str| {
        let v: Vec<&SpanData> = spans.iter().filter(|x| x.name == name).collect();
        assert_eq!(v.len(), 1, "one span named {name}");
        v[0]
    };
    let (root, agent) = (one("root"), one("agent"));
    assert_eq!(agent.parent_span_id, Some(root.span_id));
    assert_eq!(agent.kind, SpanKind::Agent);
    // Four `fetch` spans (sequential, joined and spawned): all children of `agent`.
    let fetches: Vec<&SpanData> = spans.iter().filter(|x| x.name == "fetch").collect();
    assert_eq!(fetches.len(), 4);
    for f in &fetches {
        assert_eq!(f.parent_span_id, Some(agent.span_id));
        assert_eq!(f.kind, SpanKind::Retriever);
        assert!(f.start_time >= agent.start_time && f.end_time <= agent.end_time);
    }
    // Each leaf, started after two awaits, is a child of its own fetch.
    let mut parents: Vec<_> = (1..=4)
        .map(|i| one(&format!("leaf {i}")).parent_span_id.unwrap())
        .collect();
    parents.sort();
    parents.dedup();
    assert_eq!(parents.len(), 4);
    assert!(parents
        .iter()
        .all(|p| fetches.iter().any(|f| f.span_id == *p)));
    assert_eq!(input_json(agent)["task"], "find docs");
    assert_eq!(text(agent, "output.value"), "[10, 20, 30, 40]");
    assert!(spans.iter().all(|x| x.trace_id == root.trace_id));
}

#[derive(Debug)]
struct Timeout;

impl fmt::Display for Timeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("timed out")
    }
}

#[traced(kind = "llm")]
async fn flaky(attempt: u32) -> Result<u32, Timeout> {
    tokio::task::yield_now().await;
    if attempt == 0 {
        return Err(Timeout);
    }
    let n: u32 = format!("{attempt}").parse().map_err(|_| Timeout)?;
    Ok(n)
}

#[traced(kind = "agent")]
async fn with_retry() -> Result<u32, Timeout> {
    match flaky(0).await {
        Ok(n) => Ok(n),
        Err(_) => flaky(1).await,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn async_result_sets_status_and_early_return_works() {
    let (t, mem) = tracer();
    let r = with_retry().instrument(t.span("root").start()).await;
    assert_eq!(r.unwrap(), 1);
    let spans = mem.spans();
    let flaky: Vec<&SpanData> = spans.iter().filter(|s| s.name == "flaky").collect();
    assert_eq!(flaky.len(), 2);
    // Ended in completion order: the failed attempt first.
    assert_eq!(flaky[0].status, Status::Error);
    assert_eq!(flaky[0].status_message.as_deref(), Some("timed out"));
    assert_eq!(text(flaky[0], "error.type"), "Timeout");
    assert_eq!(flaky[1].status, Status::Ok);
    let retry = spans.iter().find(|s| s.name == "with_retry").unwrap();
    assert_eq!(retry.status, Status::Ok);
    assert!(flaky
        .iter()
        .all(|f| f.parent_span_id == Some(retry.span_id)));
}

struct Agent {
    name: &'static str,
}

#[test]
fn async_methods_nest_and_stay_send() {
    fn assert_send<T: Send>(t: T) -> T {
        t
    }
    let r = Retriever {
        corpus: vec!["alpha", "beta"],
        hits: 0,
    };
    let a = Agent { name: "helper" };
    let (t, mem) = tracer();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let root = t.span("root").start();
    let fut = assert_send(async move {
        let x = assert_send(r.answer("a")).await;
        let y = assert_send(a.greet("bob")).await;
        format!("{x}|{y}")
    });
    let got = rt.block_on(rt.spawn(fut.instrument(root))).unwrap();
    assert_eq!(got, "alpha,beta|helper greets bob");
    let s = by_name(&mem.spans());
    assert_child(&s, "answer", "root");
    assert_child(&s, "search", "answer");
    assert_child(&s, "add", "search");
    assert_child(&s, "greet", "root");
    assert_eq!(s["answer"].kind, SpanKind::Agent);
    assert_eq!(input_json(&s["greet"]).keys().collect::<Vec<_>>(), ["who"]);
}

impl Agent {
    #[traced(capture_args)]
    async fn greet(&self, who: &str) -> String {
        tokio::task::yield_now().await;
        format!("{} greets {who}", self.name)
    }
}

#[traced]
async fn async_explode() -> u32 {
    tokio::task::yield_now().await;
    panic!("async tool exploded");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_panicking_async_fn_still_ends_its_span() {
    let (t, mem) = tracer();
    let root = t.span("root").start();
    let ctx = root.context();
    let r = tokio::spawn(ctx.wrap(async_explode())).await;
    assert!(r.unwrap_err().is_panic());
    drop(root);
    let s = by_name(&mem.spans());
    let e = &s["async_explode"];
    assert!(e.end_time.is_some());
    assert_eq!(e.status, Status::Error);
    assert_eq!(e.status_message.as_deref(), Some("panicked"));
    assert_child(&s, "async_explode", "root");
}

#[tokio::test]
async fn an_async_span_ends_when_its_future_completes() {
    let (t, mem) = tracer();
    let root = t.span("root").start();
    let fut = fetch(7).instrument(root);
    assert!(mem.spans().is_empty(), "nothing runs before the first poll");
    assert_eq!(fut.await, 70);
    let names: Vec<String> = mem.spans().iter().map(|s| s.name.to_string()).collect();
    assert_eq!(names, ["leaf 7", "fetch", "root"]);
}

#[traced]
async fn unit_async(log: &mut Vec<&'static str>) {
    tokio::task::yield_now().await;
    if log.is_empty() {
        log.push("first");
        return;
    }
    tokio::task::yield_now().await;
    let _child = spanlens::span("unit child").start();
    log.push("again");
}

#[tokio::test]
async fn unit_async_fn_with_early_return() {
    let (t, mem) = tracer();
    let mut log = vec![];
    async {
        unit_async(&mut log).await;
        unit_async(&mut log).await;
    }
    .instrument(t.span("root").start())
    .await;
    assert_eq!(log, ["first", "again"]);
    let spans = mem.spans();
    let root = spans.iter().find(|s| s.name == "root").unwrap();
    let units: Vec<&SpanData> = spans.iter().filter(|s| s.name == "unit_async").collect();
    assert_eq!(units.len(), 2);
    assert!(
        units
            .iter()
            .all(|u| u.parent_span_id == Some(root.span_id) && u.status == Status::Ok),
        "{:?}",
        units.iter().map(|u| u.status).collect::<Vec<_>>()
    );
    // Only the second call gets past the early return; its child nests under it and ends first.
    let child = spans.iter().find(|s| s.name == "unit child").unwrap();
    assert_eq!(child.parent_span_id, Some(units[1].span_id));
    assert!(child.end_time <= units[1].end_time && child.start_time >= units[1].start_time);
    assert!(
        units[0].end_time <= units[1].start_time.into(),
        "calls in sequence"
    );
}

/// A type without `Debug`.
struct Opaque;

/// Read only through its `Debug` text.
#[derive(Debug)]
#[allow(dead_code)]
struct Point {
    x: i32,
}

#[allow(clippy::too_many_arguments)]
#[traced(capture_args)]
fn every_kind(
    city: &str,
    owned: String,
    borrowed: &String,
    cow: std::borrow::Cow<'_, str>,
    boxed: Box<str>,
    count: i32,
    big: u64,
    ratio: f64,
    nan: f64,
    flag: bool,
    letter: char,
    maybe: Option<&str>,
    list: Vec<u32>,
    point: Point,
    opaque: Opaque,
) {
    let _ = (
        city, owned, borrowed, cow, boxed, count, big, ratio, nan, flag, letter, maybe,
    );
    let _ = (list, point, opaque);
}

#[test]
fn each_argument_type_is_stored_as_itself() {
    let s = under_root(|| {
        every_kind(
            "Lisbon",
            "Porto".to_string(),
            &"Faro".to_string(),
            std::borrow::Cow::Borrowed("Braga"),
            "Évora".into(),
            -3,
            u64::MAX,
            0.25,
            f64::NAN,
            true,
            'x',
            Some("Sintra"),
            vec![1, 2],
            Point { x: 7 },
            Opaque,
        )
    });
    let input = input_json(&s["every_kind"]);
    let want = serde_json::json!({
        // Text as the string itself, never its quoted Debug text.
        "city": "Lisbon", "owned": "Porto", "borrowed": "Faro", "cow": "Braga", "boxed": "Évora",
        // Numbers and booleans as JSON numbers and booleans.
        "count": -3, "big": u64::MAX, "ratio": 0.25, "flag": true,
        // What JSON cannot hold, and everything else: the Debug text.
        "nan": "NaN", "letter": "'x'", "maybe": "Some(\"Sintra\")", "list": "[1, 2]",
        "point": "Point { x: 7 }", "opaque": "<not Debug>",
    });
    assert_eq!(serde_json::Value::Object(input), want);
}

#[traced]
fn unit_sync(fail: bool, early: bool) {
    if early {
        return;
    }
    if fail {
        spanlens::Context::current()
            .span()
            .set_error("refused by policy", Some("Policy"));
    }
}

#[test]
fn functions_that_return_normally_are_ok_unless_they_said_otherwise() {
    let s = under_root(|| unit_sync(false, false));
    assert_eq!(s["unit_sync"].status, Status::Ok);
    let s = under_root(|| unit_sync(false, true));
    assert_eq!(s["unit_sync"].status, Status::Ok, "an early return too");
    let s = under_root(|| unit_sync(true, false));
    assert_eq!(
        s["unit_sync"].status,
        Status::Error,
        "the body's own error stays"
    );
}
