//! `spanlens bench ingest`: a load generator sending realistic agent traces as OTLP/HTTP protobuf.
//!
//! Every span carries fresh ids (the server stores a re-sent span once, so reused ids would hide
//! lost spans), GenAI attributes a real instrumentation sends, and a realistic tree shape
//! (pipeline → agents → LLM calls and tools). After the run the stored count is checked against
//! the number of spans the server acknowledged.

use crate::{InputError, Outcome};
use anyhow::Context;
use clap::{Args, Subcommand};
use prost::Message;
use spanlens_core::otlp::proto::{self, any_value, AnyValue, KeyValue};
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

/// Spans of one agent trace in the generated shape: 1 pipeline, 3 agents, and under each agent
/// two LLM calls and a tool call.
const SPANS_PER_TRACE: usize = 1 + 3 * SPANS_PER_AGENT;

/// An agent span and its three children.
const SPANS_PER_AGENT: usize = 4;

fn kv(key: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(v) }),
    }
}

fn s(v: &str) -> any_value::Value {
    any_value::Value::StringValue(v.into())
}

fn i(v: i64) -> any_value::Value {
    any_value::Value::IntValue(v)
}

/// A small, fast PRNG: ids must be unique, not unpredictable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// A request template: the span tree and attributes are built once; ids and times are
/// rewritten before each send.
fn template(
    spans_per_request: usize,
    payload_bytes: usize,
    service: &str,
) -> proto::ExportTraceServiceRequest {
    // Varied text, so compression does not make a large request small.
    let prompt: String = (0..payload_bytes)
        .map(|i| (b'a' + ((i * 7 + i / 13) % 26) as u8) as char)
        .collect();
    let traces = spans_per_request.div_ceil(SPANS_PER_TRACE).max(1);
    let models = [
        ("openai", "gpt-4o-mini"),
        ("anthropic", "claude-sonnet-4-20250514"),
        ("openai", "gpt-4o"),
    ];
    let mut spans = Vec::with_capacity(traces * SPANS_PER_TRACE);
    for _ in 0..traces {
        spans.push(proto::Span {
            name: "support_pipeline".into(),
            kind: proto::SpanKind::Internal as i32,
            attributes: vec![
                kv("openinference.span.kind", s("CHAIN")),
                kv("session.id", s("bench-session")),
                kv("user.id", s("bench-user")),
            ],
            ..Default::default()
        });
        for (a, (provider, model)) in ["triage", "researcher", "billing"].iter().zip(models) {
            spans.push(proto::Span {
                name: format!("invoke_agent {a}"),
                attributes: vec![
                    kv("gen_ai.operation.name", s("invoke_agent")),
                    kv("gen_ai.agent.name", s(a)),
                ],
                ..Default::default()
            });
            for call in 0..2 {
                let mut payload = Vec::new();
                if payload_bytes > 0 {
                    payload.push(kv("input.value", s(&prompt)));
                }
                spans.push(proto::Span {
                    name: format!("chat {model}"),
                    kind: proto::SpanKind::Client as i32,
                    attributes: payload
                        .into_iter()
                        .chain([
                            kv("gen_ai.operation.name", s("chat")),
                            kv("gen_ai.provider.name", s(provider)),
                            kv("gen_ai.request.model", s(model)),
                            kv(
                                "gen_ai.request.temperature",
                                any_value::Value::DoubleValue(0.2),
                            ),
                            kv("gen_ai.usage.input_tokens", i(1800 + call * 350)),
                            kv("gen_ai.usage.cache_read.input_tokens", i(1024)),
                            kv("gen_ai.usage.output_tokens", i(220 + call * 40)),
                            kv(
                                "gen_ai.response.finish_reasons",
                                any_value::Value::ArrayValue(proto::ArrayValue {
                                    values: vec![AnyValue {
                                        value: Some(s("stop")),
                                    }],
                                }),
                            ),
                            kv(
                                "gen_ai.response.time_to_first_chunk",
                                any_value::Value::DoubleValue(0.31),
                            ),
                        ])
                        .collect(),
                    ..Default::default()
                });
            }
            spans.push(proto::Span {
                name: "execute_tool lookup".into(),
                attributes: vec![
                    kv("gen_ai.operation.name", s("execute_tool")),
                    kv("gen_ai.tool.name", s("lookup")),
                    kv("gen_ai.tool.call.arguments", s("{\"id\": 42}")),
                ],
                ..Default::default()
            });
        }
    }
    spans.truncate(spans_per_request);
    proto::ExportTraceServiceRequest {
        resource_spans: vec![proto::ResourceSpans {
            resource: Some(proto::Resource {
                attributes: vec![kv("service.name", s(service))],
                dropped_attributes_count: 0,
            }),
            scope_spans: vec![proto::ScopeSpans {
                scope: Some(proto::InstrumentationScope {
                    name: "spanlens-bench".into(),
                    ..Default::default()
                }),
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// Gives every span of the template fresh ids, parent links and times.
fn refresh(req: &mut proto::ExportTraceServiceRequest, rng: &mut Rng, now_ns: u64) {
    let spans = &mut req.resource_spans[0].scope_spans[0].spans;
    let mut trace = [0u8; 16];
    let mut root = [0u8; 8];
    let mut agent = [0u8; 8];
    for (n, sp) in spans.iter_mut().enumerate() {
        let pos = n % SPANS_PER_TRACE;
        let id = rng.next().max(1).to_be_bytes();
        if pos == 0 {
            trace[..8].copy_from_slice(&rng.next().to_be_bytes());
            trace[8..].copy_from_slice(&rng.next().max(1).to_be_bytes());
            root = id;
        }
        sp.trace_id = trace.to_vec();
        sp.span_id = id.to_vec();
        sp.parent_span_id = match pos {
            0 => Vec::new(),
            p if (p - 1) % SPANS_PER_AGENT == 0 => {
                agent = id;
                root.to_vec()
            }
            _ => agent.to_vec(),
        };
        let start = now_ns + (pos as u64) * 1_000_000;
        sp.start_time_unix_nano = start;
        sp.end_time_unix_nano = start + 40_000_000 + (pos as u64 % 3) * 5_000_000;
    }
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

fn sender(a: &IngestArgs, project: &str, seed: u64, stop: &AtomicBool, tally: &Tally) {
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build(),
    );
    let mut req = template(a.spans_per_request, a.payload_bytes, "bench-agents");
    let sent_per_request = req.resource_spans[0].scope_spans[0].spans.len() as u64;
    let mut rng = Rng(seed | 1);
    let mut lat = Vec::new();
    let mut body = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        refresh(&mut req, &mut rng, now_ns());
        body.clear();
        req.encode(&mut body).expect("Vec grows as needed");
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
    let v: serde_json::Value = serde_json::from_str(&resp.body_mut().read_to_string()?)?;
    v["span_count"]
        .as_u64()
        .with_context(|| format!("no span_count in {v}"))
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
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let a = Arc::new(a);
    let started = Instant::now();
    let threads: Vec<_> = (0..a.concurrency)
        .map(|n| {
            let (a, stop, tally, project) =
                (a.clone(), stop.clone(), tally.clone(), project.clone());
            std::thread::spawn(move || {
                sender(
                    &a,
                    &project,
                    now_ns() ^ ((n as u64 + 1) << 40),
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

    #[test]
    fn generated_requests_are_coherent_trees_with_fresh_ids() {
        let mut req = template(500, 0, "t");
        let mut rng = Rng(7);
        refresh(&mut req, &mut rng, 1_700_000_000_000_000_000);
        let first: Vec<Vec<u8>> = req.resource_spans[0].scope_spans[0]
            .spans
            .iter()
            .map(|s| s.span_id.clone())
            .collect();
        refresh(&mut req, &mut rng, 1_700_000_000_000_000_000);
        let spans = &req.resource_spans[0].scope_spans[0].spans;
        assert_eq!(spans.len(), 500);
        assert!(
            spans.iter().all(|s| !first.contains(&s.span_id)),
            "ids are fresh per request"
        );
        let n = spanlens_core::otlp::to_canonical(&req, &Default::default());
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
                .and_then(|p| n.spans.iter().find(|x| x.span_id == p));
            match s.kind {
                spanlens_core::SpanKind::Agent => {
                    assert_eq!(parent.unwrap().kind, spanlens_core::SpanKind::Pipeline)
                }
                spanlens_core::SpanKind::Llm | spanlens_core::SpanKind::Tool => {
                    assert_eq!(parent.unwrap().kind, spanlens_core::SpanKind::Agent)
                }
                _ => assert!(parent.is_none()),
            }
        }
        // 38 whole traces of 13 spans (6 LLM calls each) and 6 spans of a 39th.
        assert_eq!(
            n.spans
                .iter()
                .filter(|s| s.kind == spanlens_core::SpanKind::Llm)
                .count(),
            38 * 6 + 2
        );
    }
}
