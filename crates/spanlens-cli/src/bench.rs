//! `spanlens bench ingest`: a load generator sending realistic agent traces as OTLP/HTTP protobuf.
//!
//! The traces are `spanlens_demo::LoadGen`'s, the shape the store's `ingest_bench` example
//! writes too (pipeline → agents → LLM calls, tools, retrievers, a guardrail; ~18 spans a
//! trace), encoded by `spanlens_demo::export_request` with the GenAI attributes a real
//! instrumentation sends. Each sender cycles through a few request templates built before the
//! run; per request it only draws fresh ids (the server stores a re-sent span once, so reused
//! ids would hide lost spans) and moves the times to now. After the run the stored count is
//! checked against the number of spans the server acknowledged.
//!
//! Since the generator moved to `LoadGen` its spans carry what real ones do (chat messages,
//! tool arguments and results, retry events): a 500-span request is ~370 KB of protobuf, about
//! three times the earlier generator's 121 KB of 13-span traces without messages, so figures
//! measured with that one are not comparable with later ones.

use crate::{InputError, Outcome};
use anyhow::Context;
use clap::{Args, Subcommand};
use prost::Message;
use spanlens_core::otlp::proto::{self, any_value, AnyValue, KeyValue};
use spanlens_core::{Span, SpanId, SpanKind, Timestamp, TraceId};
use spanlens_demo::{export_request, LoadGen, LoadOptions, Rng};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Arguments of `spanlens bench`.
#[derive(Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    what: BenchCommand,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Send OTLP/HTTP protobuf traces to an OTLP endpoint as fast as it accepts them.
    Ingest(IngestArgs),
}

#[derive(Args)]
struct IngestArgs {
    /// OTLP/HTTP traces URL, or a base URL to which `/v1/traces` is added (Arize Phoenix: `http://127.0.0.1:6006`).
    #[arg(long, default_value = "http://127.0.0.1:4318/v1/traces")]
    target: String,
    /// Concurrent senders.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Seconds to send for.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Spans per request (an OTel SDK batch is 512 by default).
    #[arg(long, default_value_t = 500)]
    spans_per_request: usize,
    /// Project the spans go to (a fresh one per run keeps the count check exact).
    #[arg(long)]
    project: Option<String>,
    /// Bytes of prompt text (`input.value`) on every LLM call, to send large requests
    /// (500 spans with 20,000 bytes each make a request of about 6 MB).
    #[arg(long, default_value_t = 0)]
    payload_bytes: usize,
    /// Leave message content out (chat messages, tool arguments and results, tool
    /// definitions): the lighter shape the load generator had before it moved to LoadGen
    /// (a 500-span request of ~130 KB instead of ~370 KB), to compare with figures taken then.
    #[arg(long)]
    no_content: bool,
    /// How to check the stored count after the run: the Spanlens API, Arize Phoenix's GraphQL
    /// API (waiting until Phoenix has written everything it accepted), or not at all.
    #[arg(long, value_enum, default_value = "spanlens")]
    verify: Verify,
    /// Same as `--verify none`.
    #[arg(long, hide = true)]
    no_verify: bool,
    /// With `--verify phoenix`: give up waiting for the stored count after this many seconds
    /// without progress.
    #[arg(long, default_value_t = 120.0)]
    stall_timeout: f64,
    /// With `--verify phoenix`: stop waiting after this many seconds and report what is stored
    /// by then (Phoenix may take far longer to store than to accept).
    #[arg(long, default_value_t = 600.0)]
    max_wait: f64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Where the stored count comes from.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Verify {
    /// `GET /api/v1/stats` of a Spanlens server (it acknowledges only committed spans).
    Spanlens,
    /// Arize Phoenix's `POST /graphql` (it stores asynchronously: poll until done).
    Phoenix,
    /// No check.
    None,
}

/// Runs a bench subcommand.
pub fn run(args: BenchArgs) -> anyhow::Result<Outcome> {
    match args.what {
        BenchCommand::Ingest(a) => ingest(a),
    }
}

/// Request templates each sender cycles through, so consecutive requests carry different
/// traces (one when `--payload-bytes` makes every template megabytes).
const TEMPLATES_PER_SENDER: usize = 4;

fn kv(key: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(v) }),
    }
}

/// `spans_per_request` spans of load traces starting at `base_ns`, numbered on from `*n`.
///
/// Whole traces but the last, which is cut as an SDK batch cuts one; its spans are then put
/// parents first (a parent starts no later and ends later than its children), so every span
/// kept has its parent in the request.
fn load_spans(g: &mut LoadGen, n: &mut u64, spans_per_request: usize, base_ns: u64) -> Vec<Span> {
    let mut spans = Vec::with_capacity(spans_per_request);
    while spans.len() < spans_per_request {
        let mut trace = g.trace(*n, Timestamp(base_ns));
        *n += 1;
        let room = spans_per_request - spans.len();
        if trace.len() > room {
            trace.sort_by_key(|s| (s.start_time, std::cmp::Reverse(s.end_time)));
            trace.truncate(room);
        }
        spans.extend(trace);
    }
    spans
}

/// Drops what a span says (messages, tool payloads) and keeps what it measures.
fn without_content(s: &mut Span) {
    s.input = None;
    s.output = None;
    s.input_messages.clear();
    s.output_messages.clear();
    s.tool_definitions = None;
}

/// A request built once; before each send only its ids and times are rewritten, which keeps
/// the generator cheap on the cores it shares with the server it measures.
struct Template {
    req: proto::ExportTraceServiceRequest,
    /// Spans in the request.
    len: usize,
    /// Per span, the index in the request of its parent (`None` for a root).
    parents: Vec<Option<usize>>,
    /// Per span, whether it is the first of its trace in the request.
    starts_trace: Vec<bool>,
    /// What the request's times are relative to: they move with it on every refresh.
    base_ns: u64,
    /// The span ids of the current refresh (kept to reuse the allocation).
    ids: Vec<SpanId>,
}

/// The request template for `spans` (timed from `base_ns`), with `payload_bytes` of prompt
/// text (`input.value`) on every LLM call.
fn template(spans: &[Span], payload_bytes: usize, base_ns: u64) -> Template {
    let index: HashMap<(TraceId, SpanId), usize> = spans
        .iter()
        .enumerate()
        .map(|(i, s)| ((s.trace_id, s.span_id), i))
        .collect();
    let parents = spans
        .iter()
        .map(|s| {
            s.parent_span_id
                .and_then(|p| index.get(&(s.trace_id, p)).copied())
        })
        .collect();
    let starts_trace = spans
        .iter()
        .enumerate()
        .map(|(i, s)| i == 0 || spans[i - 1].trace_id != s.trace_id)
        .collect();
    let mut req = export_request(spans);
    if payload_bytes > 0 {
        // Varied text, so compression does not make a large request small.
        let prompt: String = (0..payload_bytes)
            .map(|i| (b'a' + ((i * 7 + i / 13) % 26) as u8) as char)
            .collect();
        for (sp, s) in request_spans(&mut req).zip(spans) {
            if s.kind == SpanKind::Llm {
                sp.attributes.push(kv(
                    "input.value",
                    any_value::Value::StringValue(prompt.clone()),
                ));
            }
        }
    }
    Template {
        req,
        len: spans.len(),
        parents,
        starts_trace,
        base_ns,
        ids: Vec::with_capacity(spans.len()),
    }
}

/// The spans of a request, in order.
fn request_spans(
    req: &mut proto::ExportTraceServiceRequest,
) -> impl Iterator<Item = &mut proto::Span> {
    req.resource_spans
        .iter_mut()
        .flat_map(|r| r.scope_spans.iter_mut())
        .flat_map(|s| s.spans.iter_mut())
}

/// Gives every span of the template fresh trace and span ids (the server stores a re-sent
/// span once, so reused ids would hide lost spans), its parent's new id, and moves every time
/// by as much as `now_ns` is after the previous refresh.
fn refresh(t: &mut Template, rng: &mut Rng, now_ns: u64) {
    // Wrapping: the clock may step back, and the moved times are in range either way.
    let shift = now_ns.wrapping_sub(t.base_ns);
    t.base_ns = now_ns;
    t.ids.clear();
    t.ids.extend((0..t.len).map(|_| rng.span_id()));
    let mut trace = TraceId([0; 16]);
    for (i, sp) in request_spans(&mut t.req).enumerate() {
        if t.starts_trace[i] {
            trace = rng.trace_id();
        }
        set_bytes(&mut sp.trace_id, &trace.0);
        set_bytes(&mut sp.span_id, &t.ids[i].0);
        match t.parents[i] {
            Some(p) => set_bytes(&mut sp.parent_span_id, &t.ids[p].0),
            None => sp.parent_span_id.clear(),
        }
        sp.start_time_unix_nano = sp.start_time_unix_nano.wrapping_add(shift);
        if sp.end_time_unix_nano != 0 {
            sp.end_time_unix_nano = sp.end_time_unix_nano.wrapping_add(shift);
        }
        for e in &mut sp.events {
            e.time_unix_nano = e.time_unix_nano.wrapping_add(shift);
        }
    }
}

fn set_bytes(field: &mut Vec<u8>, bytes: &[u8]) {
    field.clear();
    field.extend_from_slice(bytes);
}

#[derive(Default)]
struct Tally {
    latencies_us: Mutex<Vec<u64>>,
    accepted: AtomicU64,
    rejected: AtomicU64,
    failed_requests: AtomicU64,
    throttled: AtomicU64,
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn sender(
    a: &IngestArgs,
    project: &str,
    mut templates: Vec<Template>,
    seed: u64,
    stop: &AtomicBool,
    tally: &Tally,
) {
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build(),
    );
    let mut rng = Rng::new(seed);
    let mut lat = Vec::new();
    let mut body = Vec::new();
    let (mut next, count) = (0, templates.len());
    while !stop.load(Ordering::Relaxed) && count > 0 {
        let tpl = &mut templates[next % count];
        next += 1;
        refresh(tpl, &mut rng, now_ns());
        let sent_per_request = tpl.len as u64;
        body.clear();
        tpl.req.encode(&mut body).expect("Vec grows as needed");
        let t = Instant::now();
        let resp = agent
            .post(&a.target)
            .header("content-type", "application/x-protobuf")
            .header("x-project-name", project)
            .send(&body[..]);
        let elapsed = t.elapsed();
        match resp {
            Ok(mut r) if r.status().is_success() => {
                lat.push(elapsed.as_micros() as u64);
                let bytes = r.body_mut().read_to_vec().unwrap_or_default();
                let rejected = proto::ExportTraceServiceResponse::decode(&bytes[..])
                    .ok()
                    .and_then(|x| x.partial_success)
                    .map(|p| p.rejected_spans.max(0) as u64)
                    .unwrap_or(0);
                tally.rejected.fetch_add(rejected, Ordering::Relaxed);
                tally.accepted.fetch_add(
                    sent_per_request - rejected.min(sent_per_request),
                    Ordering::Relaxed,
                );
            }
            Ok(r) if matches!(r.status().as_u16(), 429 | 503) => {
                tally.throttled.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(50));
            }
            Ok(_) | Err(_) => {
                tally.failed_requests.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    tally
        .latencies_us
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .extend(lat);
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1] as f64 / 1000.0
}

/// Arize Phoenix's span count for `project`, from its GraphQL API (`None` until the project exists).
fn phoenix_count(target: &str, project: &str) -> anyhow::Result<Option<u64>> {
    let base = target.trim_end_matches("/v1/traces");
    let url = format!("{base}/graphql");
    let query = serde_json::json!({
        "query": "{ projects { edges { node { name recordCount } } } }"
    });
    let mut resp = ureq::post(&url)
        .header("content-type", "application/json")
        .send(query.to_string().as_bytes())
        .with_context(|| format!("POST {url}"))?;
    let v: serde_json::Value = serde_json::from_str(&resp.body_mut().read_to_string()?)
        .with_context(|| format!("reading the answer of POST {url}"))?;
    let edges = v["data"]["projects"]["edges"]
        .as_array()
        .with_context(|| format!("no data.projects.edges in {v}"))?;
    Ok(edges
        .iter()
        .find(|e| e["node"]["name"] == project)
        .and_then(|e| e["node"]["recordCount"].as_u64()))
}

/// Polls Phoenix until it has stored `accepted` spans or makes no progress for `stall` seconds;
/// returns the count and the seconds waited after sending stopped.
fn wait_for_phoenix(
    target: &str,
    project: &str,
    accepted: u64,
    stall: f64,
    max_wait: f64,
) -> anyhow::Result<(u64, f64)> {
    let started = Instant::now();
    let (mut last, mut last_change) = (0, Instant::now());
    loop {
        let n = phoenix_count(target, project)?.unwrap_or(0);
        if n != last {
            (last, last_change) = (n, Instant::now());
        }
        if n >= accepted
            || last_change.elapsed().as_secs_f64() > stall
            || started.elapsed().as_secs_f64() > max_wait
        {
            // Progress is timed to the last change, not to the poll that noticed the stall.
            let waited = if n >= accepted {
                started.elapsed()
            } else {
                last_change.duration_since(started)
            };
            return Ok((n, waited.as_secs_f64()));
        }
        eprintln!(
            "waiting for Phoenix to store what it accepted: {n} of {accepted} ({:.0} s)",
            started.elapsed().as_secs_f64()
        );
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// The server's stored span count for `project` (Spanlens API).
fn stored_count(target: &str, project: &str) -> anyhow::Result<u64> {
    let base = target.trim_end_matches("/v1/traces");
    let url = format!("{base}/api/v1/stats?project={project}");
    let mut resp = ureq::get(&url)
        .call()
        .with_context(|| format!("GET {url}"))?;
    let body = resp.body_mut().read_to_string()?;
    let stats: spanlens_api::StatsAnswer =
        serde_json::from_str(&body).with_context(|| format!("GET {url}: {body}"))?;
    Ok(stats.span_count)
}

/// The traces URL for a target given as a base URL (`http://host:4318`) or the full OTLP path.
fn traces_url(target: &str) -> String {
    let t = target.trim_end_matches('/');
    let after_scheme = t.split_once("://").map_or(t, |(_, rest)| rest);
    if after_scheme.contains('/') {
        t.to_string()
    } else {
        format!("{t}/v1/traces")
    }
}

fn ingest(mut a: IngestArgs) -> anyhow::Result<Outcome> {
    a.target = traces_url(&a.target);
    if a.concurrency == 0
        || a.spans_per_request == 0
        || !(a.duration > 0.0 && a.duration.is_finite())
    {
        return Err(InputError(
            "--concurrency, --spans-per-request and --duration must be positive".into(),
        )
        .into());
    }
    let project = a
        .project
        .clone()
        .unwrap_or_else(|| format!("bench-{}", now_ns() / 1_000_000));
    // The templates are built before sending starts, so the run measures only the server.
    let per_sender = if a.payload_bytes > 0 {
        1
    } else {
        TEMPLATES_PER_SENDER
    };
    let mut g = LoadGen::new(spanlens_demo::DEFAULT_SEED, LoadOptions::default());
    let (mut n, base) = (0, now_ns());
    let mut pools: Vec<Vec<Template>> = (0..a.concurrency)
        .map(|_| {
            (0..per_sender)
                .map(|_| {
                    let mut spans = load_spans(&mut g, &mut n, a.spans_per_request, base);
                    if a.no_content {
                        spans.iter_mut().for_each(without_content);
                    }
                    template(&spans, a.payload_bytes, base)
                })
                .collect()
        })
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let a = Arc::new(a);
    let started = Instant::now();
    let threads: Vec<_> = (0..a.concurrency)
        .map(|k| {
            let (a, stop, tally, project) =
                (a.clone(), stop.clone(), tally.clone(), project.clone());
            let templates = std::mem::take(&mut pools[k]);
            std::thread::spawn(move || {
                sender(
                    &a,
                    &project,
                    templates,
                    now_ns() ^ ((k as u64 + 1) << 40),
                    &stop,
                    &tally,
                )
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(a.duration));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    let wall = started.elapsed().as_secs_f64();
    let mut lat =
        std::mem::take(&mut *tally.latencies_us.lock().unwrap_or_else(|e| e.into_inner()));
    lat.sort_unstable();
    let accepted = tally.accepted.load(Ordering::Relaxed);
    if accepted == 0 {
        let failed = tally.failed_requests.load(Ordering::Relaxed);
        let throttled = tally.throttled.load(Ordering::Relaxed);
        anyhow::bail!(
            "{} accepted no spans ({failed} requests failed, {throttled} throttled): is an OTLP/HTTP server listening there?",
            a.target
        );
    }
    let how = if a.no_verify { Verify::None } else { a.verify };
    let (verify, drain) = match how {
        Verify::None => (None, 0.0),
        Verify::Spanlens => (Some(stored_count(&a.target, &project)?), 0.0),
        Verify::Phoenix => {
            let (n, waited) =
                wait_for_phoenix(&a.target, &project, accepted, a.stall_timeout, a.max_wait)?;
            (Some(n), waited)
        }
    };
    let per_s = accepted as f64 / wall;
    // Spans per second from the first send until the last one was stored.
    let stored_per_s = verify.map(|v| v as f64 / (wall + drain));
    let (p50, p99) = (percentile(&lat, 50.0), percentile(&lat, 99.0));
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "target": a.target, "project": project, "concurrency": a.concurrency,
                "spans_per_request": a.spans_per_request, "seconds": wall,
                "requests": lat.len(), "accepted_spans": accepted,
                "rejected_spans": tally.rejected.load(Ordering::Relaxed),
                "throttled_requests": tally.throttled.load(Ordering::Relaxed),
                "failed_requests": tally.failed_requests.load(Ordering::Relaxed),
                "spans_per_second": per_s, "latency_p50_ms": p50, "latency_p99_ms": p99,
                "stored_spans": verify, "lost_spans": verify.map(|v| accepted.saturating_sub(v)),
                "drain_seconds": drain, "stored_spans_per_second": stored_per_s,
            })
        );
    } else {
        println!("target         {}", a.target);
        println!(
            "load           {} senders × {} spans/request for {wall:.1} s",
            a.concurrency, a.spans_per_request
        );
        println!(
            "accepted       {accepted} spans in {} requests: {per_s:.0} spans/s",
            lat.len()
        );
        println!("latency        p50 {p50:.1} ms, p99 {p99:.1} ms");
        println!(
            "refused        {} throttled (429/503), {} failed requests, {} spans rejected",
            tally.throttled.load(Ordering::Relaxed),
            tally.failed_requests.load(Ordering::Relaxed),
            tally.rejected.load(Ordering::Relaxed)
        );
        match verify {
            Some(v) if v == accepted => println!("stored         {v} spans in project {project}: nothing lost"),
            Some(v) => println!("stored         {v} spans in project {project}: MISMATCH with {accepted} acknowledged"),
            None => println!("stored         not checked (--verify none)"),
        }
        if let Some(r) = stored_per_s {
            println!(
                "durable        {r:.0} spans/s from the first send until the last span was stored ({drain:.1} s after sending stopped)"
            );
        }
    }
    Ok(match verify {
        Some(v) if v != accepted => Outcome::Incomplete,
        _ => Outcome::Done,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_get_the_otlp_traces_path() {
        assert_eq!(
            traces_url("http://127.0.0.1:4318"),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(traces_url("http://h:6006/"), "http://h:6006/v1/traces");
        assert_eq!(traces_url("http://h:1/v1/traces"), "http://h:1/v1/traces");
        assert_eq!(
            traces_url("http://h:1/custom/path"),
            "http://h:1/custom/path"
        );
    }

    const NOW: u64 = 1_767_225_600_000_000_000; // 2026-01-01T00:00:00Z

    fn spans_of(req: &proto::ExportTraceServiceRequest) -> Vec<&proto::Span> {
        req.resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
            .collect()
    }

    #[test]
    fn generated_requests_are_coherent_trees_with_fresh_ids() {
        let mut g = LoadGen::new(7, LoadOptions::default());
        let spans = load_spans(&mut g, &mut 0, 500, NOW);
        let mut t = template(&spans, 0, NOW);
        let mut rng = Rng::new(7);
        refresh(&mut t, &mut rng, NOW + 1_000_000_000);
        let first: Vec<Vec<u8>> = spans_of(&t.req).iter().map(|s| s.span_id.clone()).collect();
        refresh(&mut t, &mut rng, NOW + 2_000_000_000);
        let sent = spans_of(&t.req);
        assert_eq!(sent.len(), 500);
        assert!(
            sent.iter().all(|s| !first.contains(&s.span_id)),
            "ids are fresh per request"
        );
        // Times moved with the clock: the template's were NOW, the request's two seconds on.
        let earliest = sent.iter().map(|s| s.start_time_unix_nano).min();
        assert_eq!(earliest, Some(NOW + 2_000_000_000));
        let n = spanlens_core::otlp::to_canonical(&t.req, &Default::default());
        assert!(n.rejected.is_empty());
        let ids: std::collections::HashSet<_> =
            n.spans.iter().map(|s| (s.trace_id, s.span_id)).collect();
        assert_eq!(ids.len(), 500);
        for s in &n.spans {
            if let Some(p) = s.parent_span_id {
                assert!(
                    ids.contains(&(s.trace_id, p)),
                    "parent of {} is in the request",
                    s.name
                );
            }
            let parent = s
                .parent_span_id
                .and_then(|p| n.spans.iter().find(|x| x.span_id == p))
                .map(|p| p.kind);
            match s.kind {
                SpanKind::Agent | SpanKind::Guardrail => {
                    assert_eq!(parent, Some(SpanKind::Pipeline))
                }
                SpanKind::Llm | SpanKind::Tool | SpanKind::Retriever => {
                    assert_eq!(parent, Some(SpanKind::Agent))
                }
                _ => assert_eq!(parent, None, "{} is a root", s.name),
            }
        }
        // Traces of ~18 spans, 44% of them LLM calls.
        let traces: std::collections::HashSet<_> = n.spans.iter().map(|s| s.trace_id).collect();
        assert!((25..=35).contains(&traces.len()), "{} traces", traces.len());
        let llm = n.spans.iter().filter(|s| s.kind == SpanKind::Llm).count();
        assert!((180..=270).contains(&llm), "{llm} LLM calls");
    }

    /// What the server does with a request body (decode, normalise, limits, price) gives back
    /// the generated spans' models, tokens, tools, statuses, users and costs.
    #[test]
    fn requests_round_trip_through_the_servers_decode_and_normalise() {
        let mut g = LoadGen::new(3, LoadOptions::default());
        let spans = load_spans(&mut g, &mut 0, 300, NOW);
        let mut t = template(&spans, 0, NOW);
        let later = NOW + 60_000_000_000;
        refresh(&mut t, &mut Rng::new(3), later);
        let mut body = Vec::new();
        t.req.encode(&mut body).expect("Vec grows as needed");
        let got = spanlens_core::normalize(
            spanlens_core::InputFormat::OtlpProtobuf,
            &body,
            &Default::default(),
            spanlens_core::PriceCatalog::builtin(),
        )
        .expect("decodes");
        assert!(got.rejected.is_empty(), "{:?}", got.rejected);
        assert_eq!(got.spans.len(), spans.len());
        assert!(spans
            .iter()
            .any(|s| s.status == spanlens_core::Status::Error));
        for (i, (want, got)) in spans.iter().zip(&got.spans).enumerate() {
            let what = format!("{} {}", want.kind.as_str(), want.name);
            assert_eq!((got.kind, &got.name), (want.kind, &want.name));
            assert_eq!(got.provider, want.provider, "{what}");
            assert_eq!(got.request_model, want.request_model, "{what}");
            assert_eq!(got.response_model, want.response_model, "{what}");
            assert_eq!(got.usage, want.usage, "{what}");
            assert_eq!(got.ttft_ns, want.ttft_ns, "{what}");
            assert_eq!(
                got.cost.as_ref().map(|c| c.amounts.total),
                want.cost.as_ref().map(|c| c.amounts.total),
                "{what}"
            );
            assert_eq!(got.tool, want.tool, "{what}");
            assert_eq!(got.status, want.status, "{what}");
            assert_eq!(got.error_type, want.error_type, "{what}");
            assert_eq!(got.agent_name, want.agent_name, "{what}");
            assert_eq!(
                (&got.user_id, &got.session_id),
                (&want.user_id, &want.session_id)
            );
            assert_eq!(got.service.as_deref(), Some(spanlens_demo::LOAD_SERVICE));
            assert_eq!(got.start_time.0, want.start_time.0 + 60_000_000_000);
            assert_ne!((got.trace_id, got.span_id), (want.trace_id, want.span_id));
            if let Some(p) = t.parents[i] {
                assert_eq!(got.parent_span_id, Some(t.ids[p]), "{what}");
            }
        }
    }
}
