//! Ingest and query figures of the SQLite store on realistic synthetic agent traces.
//!
//! ```sh
//! cargo run --release -p spanlens-store --example ingest_bench -- [SPANS] [--path FILE | --data-dir DIR]
//!     [--threads N] [--batch N] [--page-size BYTES] [--rate-limits] [--stream] [--queries-only]
//! ```
//!
//! Generates SPANS (default 1,000,000) priced canonical spans shaped like agent pipelines
//! (pipeline → agents → LLM calls, tools, retrievers; ~17 spans per trace, ~1-2 KiB of JSON
//! each) spread over 30 days, submits them in batches of 500 from 2 threads, then times the
//! trace list with filters, the detail of a 10,000-span trace, sessions, metrics and the
//! error-recovery report.
//!
//! - `--data-dir DIR` keeps the database (`DIR/spanlens.db`) instead of a temporary file.
//! - `--queries-only` re-opens an existing `--data-dir` (or `--path`) and only times the
//!   queries, so a large database is generated once and measured many times.
//! - `--stream` generates spans while submitting them instead of all before (needed for tens of
//!   millions of spans, which do not fit in memory; the ingest rate then includes generation).
//!   It is the default above 2,000,000 spans.
//! - `--only TEXT` (with `--queries-only`) times only the dashboard queries whose name contains
//!   TEXT, e.g. `--only "metrics by user"`, to profile one of them.
//! - `--rate-limits` adds what the recovery report reads: rate-limit headers on 60% of the LLM
//!   calls and retried LLM calls (3%) with error types and outcomes. Off by default, so the
//!   default data (and its ingest figure) stays the same as before.

use serde_json::json;
use spanlens_core::recovery::{Buckets, RecoveryReport};
use spanlens_core::{
    price_span, Event, Message, Payload, PriceCatalog, RateLimitWindow, RateLimits, Span, SpanId,
    SpanKind, Status, Timestamp, ToolInfo, TraceId, Usage,
};
use spanlens_store::prelude::*;
use spanlens_store::{
    CommitTicket, GroupBy, ListQuery, MetricRow, MetricsQuery, SessionQuery, SortField,
    SqliteOptions, SqliteStore, TraceFilter,
};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const T0: u64 = 1_767_225_600_000_000_000; // 2026-01-01T00:00:00Z
const MS: u64 = 1_000_000;
const DAY: u64 = 86_400_000 * MS;
const MODELS: [(&str, &str); 6] = [
    ("gpt-4o", "openai"),
    ("gpt-4o-mini", "openai"),
    ("claude-sonnet-4", "anthropic"),
    ("claude-3-5-haiku", "anthropic"),
    ("gemini-2.0-flash", "google"),
    ("o3-mini", "openai"),
];
const TOOLS: [&str; 5] = [
    "search_docs",
    "get_weather",
    "lookup_order",
    "send_email",
    "sql_query",
];

/// A small deterministic PRNG (xorshift*), so every run generates the same data.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

struct Gen {
    rng: Rng,
    next_span: u64,
    /// Add rate-limit headers and retried LLM calls (`--rate-limits`).
    rich: bool,
}

impl Gen {
    fn new(seed: u64, rich: bool) -> Gen {
        Gen {
            rng: Rng(seed | 1),
            next_span: 1,
            rich,
        }
    }

    fn base(
        &mut self,
        trace: TraceId,
        parent: Option<SpanId>,
        name: &str,
        kind: SpanKind,
        start: u64,
        dur: u64,
    ) -> Span {
        let id = self.next_span;
        self.next_span += 1;
        let mut s = Span {
            trace_id: trace,
            span_id: SpanId(id.to_be_bytes()),
            parent_span_id: parent,
            name: name.to_string(),
            kind,
            start_time: Timestamp(start),
            end_time: Some(Timestamp(start + dur)),
            status: Status::Ok,
            service: Some("support-bot".into()),
            source: Some("genai".into()),
            ..Default::default()
        };
        let resource = std::sync::Arc::make_mut(&mut s.resource);
        resource.insert("service.name".into(), json!("support-bot"));
        resource.insert("telemetry.sdk.language".into(), json!("python"));
        resource.insert("telemetry.sdk.version".into(), json!("1.27.0"));
        s
    }

    fn llm(&mut self, trace: TraceId, parent: SpanId, agent: &str, start: u64) -> Span {
        let (model, provider) = MODELS[self.rng.below(MODELS.len() as u64) as usize];
        let dur = 200 * MS + self.rng.below(4000) * MS;
        let mut s = self.base(
            trace,
            Some(parent),
            &format!("chat {model}"),
            SpanKind::Llm,
            start,
            dur,
        );
        s.agent_name = Some(agent.into());
        s.provider = Some(provider.into());
        s.request_model = Some(model.into());
        s.response_model = Some(format!("{model}-2025-01-01"));
        s.model_parameters.insert("temperature".into(), json!(0.2));
        s.model_parameters.insert("max_tokens".into(), json!(1024));
        let input = 200 + self.rng.below(6000);
        let cached = if self.rng.below(3) == 0 { input / 2 } else { 0 };
        let output = 20 + self.rng.below(800);
        s.usage = Some(
            Usage {
                input_tokens: input,
                output_tokens: output,
                cache_read_tokens: cached,
                ..Default::default()
            }
            .normalized(),
        );
        s.ttft_ns = Some(80 * MS + self.rng.below(900) * MS);
        s.finish_reasons = vec!["stop".into()];
        s.input_messages = vec![
            Message {
                role: Some("system".into()),
                content: Some("You are a helpful support agent. Answer briefly, cite the docs you used, and never invent order numbers.".into()),
                ..Default::default()
            },
            Message {
                role: Some("user".into()),
                content: Some(format!("Where is my order #{}? It was supposed to arrive yesterday and the tracking page shows nothing.", self.rng.below(1_000_000))),
                ..Default::default()
            },
        ];
        s.output_messages = vec![Message {
            role: Some("assistant".into()),
            content: Some("Your order left our warehouse on Monday and is with the carrier; the tracking page updates within 24 hours of the first scan. I have sent you the carrier link by email.".into()),
            finish_reason: Some("stop".into()),
            ..Default::default()
        }];
        for (k, v) in [
            ("gen_ai.operation.name", json!("chat")),
            ("gen_ai.system", json!(provider)),
            ("gen_ai.request.model", json!(model)),
            ("gen_ai.usage.input_tokens", json!(input)),
            ("gen_ai.usage.output_tokens", json!(output)),
            ("server.address", json!("api.example.com")),
        ] {
            s.attributes.insert(k.into(), v);
        }
        s.events.push(Event {
            name: "spanlens.first_token".into(),
            time: Timestamp(start + s.ttft_ns.unwrap_or(0)),
            attributes: Default::default(),
        });
        if self.rng.below(50) == 0 {
            s.status = Status::Error;
            s.error_type = Some("RateLimitError".into());
            s.status_message = Some("429 Too Many Requests".into());
        }
        if self.rich {
            self.enrich(&mut s, start, dur);
        }
        price_span(&mut s, PriceCatalog::builtin());
        s
    }

    /// Rate-limit headers on 60% of the calls, and 3% retried (rate limited or timed out,
    /// once or twice) before they succeeded or gave up.
    fn enrich(&mut self, s: &mut Span, start: u64, dur: u64) {
        if self.rng.below(10) < 6 {
            let window = |limit: u64, remaining: u64| RateLimitWindow {
                limit: Some(limit),
                remaining: Some(remaining),
                reset: None,
            };
            s.rate_limits = Some(RateLimits {
                requests: Some(window(10_000, self.rng.below(10_001))),
                tokens: Some(window(2_000_000, self.rng.below(2_000_001))),
                retry_after_ms: (self.rng.below(100) == 0).then_some(1000 + self.rng.below(20_000)),
                ..Default::default()
            });
        }
        if self.rng.below(100) < 3 {
            let attempts = 1 + self.rng.below(2);
            for a in 0..attempts {
                let error = if self.rng.below(3) == 0 {
                    "APITimeoutError"
                } else {
                    "RateLimitError"
                };
                s.events.push(Event {
                    name: "retry".into(),
                    time: Timestamp(start + (a + 1) * dur / 4),
                    attributes: [
                        ("retry.attempt".to_string(), json!(a + 1)),
                        ("error.type".to_string(), json!(error)),
                        ("retry.backoff_ms".to_string(), json!(250 * (a + 1))),
                    ]
                    .into_iter()
                    .collect(),
                });
            }
            let ok = s.status != Status::Error;
            s.events.push(Event {
                name: "retry.outcome".into(),
                time: Timestamp(start + dur),
                attributes: [
                    ("retry.succeeded".to_string(), json!(ok)),
                    ("retry.attempts".to_string(), json!(attempts + 1)),
                ]
                .into_iter()
                .collect(),
            });
        }
    }

    fn tool(&mut self, trace: TraceId, parent: SpanId, agent: &str, start: u64) -> Span {
        let name = TOOLS[self.rng.below(TOOLS.len() as u64) as usize];
        let dur = 5 * MS + self.rng.below(800) * MS;
        let mut s = self.base(trace, Some(parent), name, SpanKind::Tool, start, dur);
        s.agent_name = Some(agent.into());
        s.tool = Some(ToolInfo {
            name: Some(name.into()),
            call_id: Some(format!("call_{}", self.rng.next())),
            description: None,
        });
        s.input = Some(Payload::from_text(
            r#"{"query":"order status carrier tracking","limit":5}"#,
            None,
        ));
        s.output = Some(Payload::from_text(
            r#"{"results":[{"id":"doc-17","title":"Shipping times","score":0.83},{"id":"doc-4","title":"Tracking","score":0.71}]}"#,
            None,
        ));
        if self.rng.below(20) == 0 {
            s.events.push(Event {
                name: "retry".into(),
                time: Timestamp(start + dur / 2),
                attributes: Default::default(),
            });
        }
        s
    }

    /// One trace, children before parents (the order OTel exporters send them in).
    fn trace(&mut self, n: u64, start: u64, user: u64, out: &mut Vec<Span>) {
        let trace = TraceId((u128::from(n) + 1).to_be_bytes());
        let mut children = Vec::new();
        let root_id = SpanId(self.next_span.to_be_bytes());
        self.next_span += 1;
        let mut t = start + MS;
        for agent in ["planner", "writer"] {
            let mut a = self.base(trace, Some(root_id), agent, SpanKind::Agent, t, 0);
            a.agent_name = Some(agent.into());
            let agent_start = t;
            for _ in 0..(2 + self.rng.below(5)) {
                let s = self.llm(trace, a.span_id, agent, t);
                t = s.end_time.map_or(t, |e| e.0) + MS;
                children.push(s);
                if self.rng.below(2) == 0 {
                    let s = self.tool(trace, a.span_id, agent, t);
                    t = s.end_time.map_or(t, |e| e.0) + MS;
                    children.push(s);
                }
            }
            let r = self.base(
                trace,
                Some(a.span_id),
                "vector_search",
                SpanKind::Retriever,
                t,
                30 * MS,
            );
            t += 31 * MS;
            children.push(r);
            a.end_time = Some(Timestamp(t));
            a.start_time = Timestamp(agent_start);
            children.push(a);
            t += MS;
        }
        let g = self.base(
            trace,
            Some(root_id),
            "moderation",
            SpanKind::Guardrail,
            t,
            15 * MS,
        );
        t += 16 * MS;
        children.push(g);
        let mut root = self.base(
            trace,
            None,
            "handle_ticket",
            SpanKind::Pipeline,
            start,
            t - start,
        );
        root.span_id = root_id;
        // Like most SDKs, the root leaves its status unset: the trace status follows its spans.
        root.status = Status::Unset;
        root.user_id = Some(format!("user-{user}"));
        root.session_id = Some(format!("session-{}", n / 4));
        root.tags = vec![if n % 10 == 0 { "beta" } else { "prod" }.into()];
        root.metadata
            .insert("tenant".into(), json!(format!("tenant-{}", user % 50)));
        for c in &mut children {
            c.user_id = root.user_id.clone();
            c.session_id = root.session_id.clone();
            c.tags = root.tags.clone();
        }
        out.extend(children);
        out.push(root);
    }
}

/// One submitting thread's share of the spans, produced a batch at a time: thread `i` of `n`
/// generates traces `i, i + n, i + 2n, …`, each starting `spacing` after the previous one, so
/// `total` spans cover 30 days.
struct Feed {
    g: Gen,
    n: u64,
    threads: u64,
    spacing: u64,
    left: usize,
    batch: usize,
    buf: Vec<Span>,
}

impl Feed {
    fn new(
        spans: usize,
        total: usize,
        thread: u64,
        threads: u64,
        batch: usize,
        rich: bool,
    ) -> Feed {
        Feed {
            g: Gen::new(0x9e37_79b9 + thread * 7919, rich),
            n: thread,
            threads,
            // Spread the traffic over 30 days (a trace has ~17 spans).
            spacing: 30 * DAY / (total as u64 / 17).max(1),
            left: spans,
            batch: batch.max(1),
            buf: Vec::new(),
        }
    }

    fn next_batch(&mut self) -> Option<Vec<Span>> {
        if self.left == 0 {
            return None;
        }
        let take = self.batch.min(self.left);
        while self.buf.len() < take {
            let start = T0 + self.n * self.spacing;
            let user = self.g.rng.below(1000);
            self.g.trace(self.n, start, user, &mut self.buf);
            self.n += self.threads;
        }
        let mut rest = self.buf.split_off(take);
        self.left -= take;
        if self.left == 0 {
            // The last trace may run past the share: its other spans are not sent.
            rest.clear();
        }
        Some(std::mem::replace(&mut self.buf, rest))
    }
}

/// Submits batches keeping up to `window` in flight (as a server with many open requests does).
fn submit_all(
    store: &SqliteStore,
    batches: impl IntoIterator<Item = Vec<Span>>,
    window: usize,
) -> usize {
    let mut inflight = VecDeque::new();
    let mut spans = 0;
    for batch in batches {
        while inflight.len() >= window {
            if let Some(t) = inflight.pop_front() {
                let t: CommitTicket = t;
                t.wait().expect("commit");
            }
        }
        spans += batch.len();
        // The window keeps far fewer spans in flight than the queue limit, so Busy cannot happen.
        inflight.push_back(store.submit("default", batch).expect("submit"));
    }
    for t in inflight {
        t.wait().expect("commit");
    }
    spans
}

async fn time<T>(runs: usize, mut f: impl AsyncFnMut() -> T) -> (Duration, Duration, T) {
    let t = Instant::now();
    let mut out = f().await;
    let first = t.elapsed();
    let mut times = vec![first];
    for _ in 1..runs {
        let t = Instant::now();
        out = f().await;
        times.push(t.elapsed());
    }
    times.sort();
    (first, times[times.len() / 2], out)
}

/// CPU seconds used so far by the writer thread (named `spanlens-writer`) and by the
/// whole process (Linux only; 0 elsewhere).
fn cpu_seconds() -> (f64, f64) {
    let ticks = 100.0; // USER_HZ on Linux
    let parse = |stat: &str| -> f64 {
        // Fields after the parenthesised command name: utime is the 14th field, stime the 15th.
        let rest = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
        let f: Vec<&str> = rest.split_whitespace().collect();
        let get = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        (get(11) + get(12)) / ticks
    };
    let process = std::fs::read_to_string("/proc/self/stat")
        .map(|s| parse(&s))
        .unwrap_or(0.0);
    let mut writer = 0.0;
    if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
        for e in dir.flatten() {
            let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
            if comm.starts_with("spanlens-writer") {
                writer += std::fs::read_to_string(e.path().join("stat"))
                    .map(|s| parse(&s))
                    .unwrap_or(0.0);
            }
        }
    }
    (writer, process)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// The error-recovery report as `GET /api/v1/recovery` builds it, over `[from, to)` in 24 buckets.
async fn recovery(store: &SqliteStore, from: Timestamp, to: Timestamp) -> RecoveryReport {
    store
        .recovery_report(
            "default",
            Buckets {
                from,
                to,
                count: 24,
            },
        )
        .await
        .expect("recovery report")
}

/// The time series of `GET /api/v1/metrics?buckets=N`: the whole range and `n` equal slices,
/// cut as the server cuts them.
async fn series(
    store: &SqliteStore,
    q: &MetricsQuery,
    n: u64,
) -> (Vec<MetricRow>, Vec<Vec<MetricRow>>) {
    let (Some(from), Some(to)) = (q.from, q.to) else {
        return (Vec::new(), Vec::new());
    };
    let step = (to.0 - from.0).div_ceil(n);
    let mut bounds = vec![from];
    for i in 0..n {
        let start = from.0 + i * step;
        let end = (start + step).min(to.0);
        if start >= end {
            break;
        }
        bounds.push(Timestamp(end));
    }
    let s = store
        .metrics_series(q, &bounds)
        .await
        .expect("metrics series");
    (s.rows, s.slices)
}

struct Args {
    spans: usize,
    path: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    threads: u64,
    batch: usize,
    page_size: u32,
    rich: bool,
    stream: Option<bool>,
    queries_only: bool,
    only: Option<String>,
}

/// `--only TEXT`: the dashboard queries to time (all when unset).
static ONLY: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();

/// Whether the query named `name` is to be timed.
fn want(name: &str) -> bool {
    ONLY.get()
        .and_then(|o| o.as_deref())
        .is_none_or(|o| name.contains(o))
}

fn parse_args() -> Args {
    let mut args = std::env::args().skip(1);
    let mut a = Args {
        spans: 1_000_000,
        path: None,
        data_dir: None,
        threads: 2,
        batch: 500,
        page_size: SqliteOptions::default().page_size,
        rich: false,
        stream: None,
        queries_only: false,
        only: None,
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--page-size" => {
                a.page_size = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(a.page_size)
            }
            "--path" => a.path = args.next().map(PathBuf::from),
            "--data-dir" => a.data_dir = args.next().map(PathBuf::from),
            "--threads" => a.threads = args.next().and_then(|v| v.parse().ok()).unwrap_or(2),
            "--batch" => a.batch = args.next().and_then(|v| v.parse().ok()).unwrap_or(500),
            "--rate-limits" => a.rich = true,
            "--stream" => a.stream = Some(true),
            "--queries-only" => a.queries_only = true,
            "--only" => a.only = args.next(),
            n => a.spans = n.replace('_', "").parse().expect("SPANS must be a number"),
        }
    }
    a
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let _ = ONLY.set(args.only.clone());
    let tmp;
    let path = match (&args.path, &args.data_dir) {
        (Some(p), _) => p.clone(),
        (None, Some(d)) => {
            std::fs::create_dir_all(d).expect("create the data directory");
            d.join("spanlens.db")
        }
        (None, None) => {
            tmp = tempfile::tempdir().expect("temp dir");
            tmp.path().join("bench.db")
        }
    };
    let store = if args.queries_only {
        assert!(
            path.is_file(),
            "--queries-only needs an existing database: {} is missing",
            path.display()
        );
        let t = Instant::now();
        let store = SqliteStore::open(&path).expect("open");
        println!(
            "opened {} in {} ({} spans)",
            path.display(),
            ms(t.elapsed()),
            store.count_spans("default").await.unwrap_or(0)
        );
        store
    } else {
        for suffix in ["", "-wal", "-shm"] {
            let mut p = path.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
        let Some(store) = ingest(&args, &path).await else {
            return;
        };
        store
    };
    let db_size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let wal = path.with_extension("db-wal");
    let wal_size = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    println!(
        "database {:.0} MiB (+ WAL {:.0} MiB), {} spans",
        db_size as f64 / 1048576.0,
        wal_size as f64 / 1048576.0,
        store.count_spans("default").await.unwrap_or(0)
    );
    let store = if std::env::var_os("BENCH_REOPEN").is_some() {
        drop(store);
        SqliteStore::open(&path).expect("reopen")
    } else {
        store
    };
    if args.only.is_some() {
        dashboard(&store).await;
    } else {
        queries(&store).await;
    }
}

/// Generates and submits the spans, prints the ingest figures, then writes one 10,000-span
/// trace; `None` when only ingest was asked for (`BENCH_INGEST_ONLY`).
async fn ingest(args: &Args, path: &std::path::Path) -> Option<SqliteStore> {
    let (spans, threads, batch) = (args.spans, args.threads, args.batch);
    let stream = args.stream.unwrap_or(spans > 2_000_000);
    let mut feeds: Vec<Feed> = (0..threads)
        .map(|i| {
            Feed::new(
                spans / threads as usize,
                spans,
                i,
                threads,
                batch,
                args.rich,
            )
        })
        .collect();
    // Either generated now, untimed, or while submitting.
    let prepared: Vec<Option<Vec<Vec<Span>>>> = if stream {
        println!("generating {spans} spans in {threads} threads while submitting them …");
        feeds.iter().map(|_| None).collect()
    } else {
        println!("generating {spans} spans in {threads} threads …");
        let t = Instant::now();
        let prepared: Vec<Option<Vec<Vec<Span>>>> = std::thread::scope(|s| {
            let hs: Vec<_> = feeds
                .iter_mut()
                .map(|f| s.spawn(move || Some(std::iter::from_fn(|| f.next_batch()).collect())))
                .collect();
            hs.into_iter()
                .map(|h| h.join().expect("generator"))
                .collect()
        });
        let first: &[Span] = prepared
            .first()
            .and_then(|p| p.as_ref())
            .and_then(|b| b.first())
            .map_or(&[], |b| b.as_slice());
        let json_bytes: usize = first
            .iter()
            .map(|s| serde_json::to_string(s).map(|j| j.len()).unwrap_or(0))
            .sum();
        println!(
            "generated in {} (not counted); mean canonical JSON size {} bytes",
            ms(t.elapsed()),
            json_bytes / first.len().max(1)
        );
        prepared
    };

    let mut opts = SqliteOptions {
        page_size: args.page_size,
        ..SqliteOptions::default()
    };
    if let Some(n) = std::env::var("BENCH_TXN").ok().and_then(|v| v.parse().ok()) {
        opts.max_spans_per_transaction = n;
    }
    let store = SqliteStore::open_with(path, opts).expect("open");
    let (w0, p0) = cpu_seconds();
    let t = Instant::now();
    let sent: usize = std::thread::scope(|s| {
        let hs: Vec<_> = feeds
            .into_iter()
            .zip(prepared)
            .map(|(mut feed, batches)| {
                let store = &store;
                s.spawn(move || match batches {
                    Some(batches) => submit_all(store, batches, 16),
                    None => submit_all(store, std::iter::from_fn(|| feed.next_batch()), 16),
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("submitter")).sum()
    });
    let elapsed = t.elapsed();
    let (w1, p1) = cpu_seconds();
    let stats = store.writer_stats();
    println!(
        "ingest: {sent} spans in {:.2} s = {:.0} spans/s ({} transactions for {} batches)",
        elapsed.as_secs_f64(),
        sent as f64 / elapsed.as_secs_f64(),
        stats.transactions,
        stats.batches
    );
    println!(
        "  CPU during ingest: writer thread {:.2} s, whole process {:.2} s (wall {:.2} s)",
        w1 - w0,
        p1 - p0,
        elapsed.as_secs_f64()
    );
    assert_eq!(
        store.count_spans("default").await.expect("count"),
        sent as u64
    );
    if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
        for e in dir.flatten() {
            let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
            let sched = std::fs::read_to_string(e.path().join("schedstat")).unwrap_or_default();
            let f: Vec<f64> = sched
                .split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect();
            if f.len() >= 2 && f[0] > 1e8 {
                println!(
                    "  thread {:<16} on-cpu {:.2} s, runnable-but-waiting {:.2} s",
                    comm.trim(),
                    f[0] / 1e9,
                    f[1] / 1e9
                );
            }
        }
    }
    if std::env::var_os("BENCH_INGEST_ONLY").is_some() {
        return None;
    }

    // One 10,000-span trace, submitted in batches like everything else.
    let big = TraceId([0xbb; 16]);
    let mut g = Gen::new(42, false);
    let root = g.base(
        big,
        None,
        "bulk_pipeline",
        SpanKind::Pipeline,
        T0,
        3_600_000 * MS,
    );
    let mut spans_big = vec![root.clone()];
    for i in 0..9_999u64 {
        let start = T0 + i * 300 * MS;
        let s = if i % 3 == 0 {
            g.tool(big, root.span_id, "bulk", start)
        } else {
            g.llm(big, root.span_id, "bulk", start)
        };
        spans_big.push(s);
    }
    let t = Instant::now();
    for chunk in spans_big.chunks(batch) {
        store
            .write("default", chunk.to_vec())
            .await
            .expect("write big trace");
    }
    println!(
        "10,000-span trace written in {} (20 sequential batches of 500)",
        ms(t.elapsed())
    );
    Some(store)
}

async fn queries(store: &SqliteStore) {
    let big = TraceId([0xbb; 16]);
    println!("\nqueries (first run / median of 5):");
    let list = async |name: &str, q: ListQuery| {
        let (first, med, page) = time(5, async || store.list_traces(&q).await.expect("list")).await;
        println!(
            "  list_traces {name:<42} {:>9} / {:>9}  ({} rows)",
            ms(first),
            ms(med),
            page.items.len()
        );
    };
    list("newest 50, no filter", ListQuery::new("default")).await;
    let f = |filter: TraceFilter| ListQuery {
        filter,
        ..ListQuery::new("default")
    };
    list(
        "model=claude-sonnet-4 status=error",
        f(TraceFilter {
            model: Some("claude-sonnet-4".into()),
            status: Some(Status::Error),
            ..Default::default()
        }),
    )
    .await;
    list(
        "user=user-7",
        f(TraceFilter {
            user_id: Some("user-7".into()),
            ..Default::default()
        }),
    )
    .await;
    list(
        "tag=beta min_cost=$0.05",
        f(TraceFilter {
            tags: vec!["beta".into()],
            min_cost: spanlens_core::NanoUsd::parse_decimal("0.05"),
            ..Default::default()
        }),
    )
    .await;
    list(
        "kind=tool min_duration=20s, 7-day window",
        f(TraceFilter {
            kind: Some(SpanKind::Tool),
            min_duration_ns: Some(20_000 * MS),
            from: Some(Timestamp(T0 + 7 * 86_400_000 * MS)),
            to: Some(Timestamp(T0 + 14 * 86_400_000 * MS)),
            ..Default::default()
        }),
    )
    .await;
    list(
        "text=\"send_email\"",
        f(TraceFilter {
            text: Some("send_email".into()),
            ..Default::default()
        }),
    )
    .await;
    list(
        "sort by cost desc",
        ListQuery {
            sort: SortField::Cost,
            ..ListQuery::new("default")
        },
    )
    .await;
    list(
        "sort by duration desc",
        ListQuery {
            sort: SortField::Duration,
            ..ListQuery::new("default")
        },
    )
    .await;
    list(
        "min_cost=$2 (few match: the whole project)",
        f(TraceFilter {
            min_cost: spanlens_core::NanoUsd::parse_decimal("2"),
            ..Default::default()
        }),
    )
    .await;
    // Page 11 of a filtered list, reached through cursors.
    let (first, med, _) = time(5, async || {
        let mut q = f(TraceFilter {
            provider: Some("google".into()),
            ..Default::default()
        });
        for _ in 0..10 {
            let p = store.list_traces(&q).await.expect("list");
            q.cursor = p.next_cursor;
        }
        store.list_traces(&q).await.expect("list")
    })
    .await;
    println!(
        "  list_traces {:<42} {:>9} / {:>9}",
        "provider=google, 11 pages via cursor",
        ms(first),
        ms(med)
    );

    let (first, med, d) = time(5, async || {
        store
            .get_trace("default", big)
            .await
            .expect("get")
            .expect("exists")
    })
    .await;
    println!(
        "  get_trace 10,000 spans (decoded)                    {:>9} / {:>9}  ({} spans)",
        ms(first),
        ms(med),
        d.spans.len()
    );
    let (first, med, d) = time(5, async || {
        store
            .get_trace_json("default", big)
            .await
            .expect("get")
            .expect("exists")
    })
    .await;
    println!(
        "  get_trace_json 10,000 spans (stored JSON)           {:>9} / {:>9}  ({} spans)",
        ms(first),
        ms(med),
        d.spans.len()
    );
    dashboard(store).await;
}

fn line(what: &str, first: Duration, med: Duration, note: String) {
    println!("  {what:<52} {:>9} / {:>9}  {note}", ms(first), ms(med));
}

/// The dashboard and recovery queries over a 30-day window that is not aligned to any hour or
/// day (like "the last 30 days" from now), the 7 days before its end, and one day.
async fn dashboard(store: &SqliteStore) {
    let from = Timestamp(T0 + 17 * 60_000 * MS + 3_500 * MS);
    let to = Timestamp(from.0 + 30 * DAY);
    let week = Timestamp(to.0 - 7 * DAY);
    println!(
        "\ndashboard queries over [{}, {}) (first run / median of 5):",
        from.to_rfc3339(),
        to.to_rfc3339()
    );

    let mut sq = SessionQuery::new("default");
    sq.from = Some(from);
    sq.to = Some(to);
    let page = store.list_sessions(&sq).await.expect("sessions");
    if want("list_sessions, first page") {
        let (first, med, page) = time(5, async || {
            store.list_sessions(&sq).await.expect("sessions")
        })
        .await;
        line(
            "list_sessions, first page of 50",
            first,
            med,
            format!("({} rows)", page.items.len()),
        );
    }
    if want("list_sessions, page 11") {
        let mut later = sq.clone();
        for _ in 0..10 {
            later.cursor = store
                .list_sessions(&later)
                .await
                .expect("sessions")
                .next_cursor;
        }
        let (first, med, p11) = time(5, async || {
            store.list_sessions(&later).await.expect("sessions")
        })
        .await;
        line(
            "list_sessions, page 11 (by cursor)",
            first,
            med,
            format!("({} rows)", p11.items.len()),
        );
    }
    if want("list_sessions, user=user-7") {
        let mut by_user = sq.clone();
        by_user.user_id = Some("user-7".into());
        let (first, med, pu) = time(5, async || {
            store.list_sessions(&by_user).await.expect("sessions")
        })
        .await;
        line(
            "list_sessions, user=user-7",
            first,
            med,
            format!("({} rows)", pu.items.len()),
        );
    }
    if let Some(s) = page.items.first().filter(|_| want("get_session")) {
        let (first, med, d) = time(5, async || {
            store
                .get_session("default", &s.session_id)
                .await
                .expect("session")
                .expect("exists")
        })
        .await;
        line(
            "get_session (newest)",
            first,
            med,
            format!("({} traces)", d.traces.len()),
        );
    }

    for (g, kind) in [
        (GroupBy::All, None),
        (GroupBy::Model, None),
        (GroupBy::Provider, None),
        (GroupBy::Agent, None),
        (GroupBy::User, None),
        (GroupBy::Day, None),
        (GroupBy::Kind, None),
        (GroupBy::Tool, Some(SpanKind::Tool)),
        (GroupBy::Model, Some(SpanKind::Llm)),
        (GroupBy::User, Some(SpanKind::Llm)),
    ] {
        let filter = kind.map_or(String::new(), |k| format!(", kind={}", k.as_str()));
        let name = format!("metrics by {}{filter}, 30 days", g.as_str());
        if !want(&name) {
            continue;
        }
        let mut q = MetricsQuery::new("default", g);
        q.from = Some(from);
        q.to = Some(to);
        q.kind = kind;
        let (first, med, rows) = time(5, async || store.metrics(&q).await.expect("metrics")).await;
        let spans: u64 = rows.iter().map(|r| r.span_count).sum();
        line(
            &name,
            first,
            med,
            format!("({} groups, {spans} spans)", rows.len()),
        );
    }
    if want("metrics by model, one day") {
        let mut q = MetricsQuery::new("default", GroupBy::Model);
        q.from = Some(Timestamp(T0 + DAY));
        q.to = Some(Timestamp(T0 + 2 * DAY));
        let (first, med, _) = time(5, async || store.metrics(&q).await.expect("metrics")).await;
        line("metrics by model, one day", first, med, String::new());
    }
    for (g, kind) in [(GroupBy::All, None), (GroupBy::Model, Some(SpanKind::Llm))] {
        let filter = kind.map_or(String::new(), |k| format!(", kind={}", k.as_str()));
        let name = format!("time series by {}{filter}, 30 slices", g.as_str());
        if !want(&name) {
            continue;
        }
        let mut q = MetricsQuery::new("default", g);
        q.from = Some(from);
        q.to = Some(to);
        q.kind = kind;
        let (first, med, (rows, slices)) = time(5, async || series(store, &q, 30).await).await;
        line(
            &name,
            first,
            med,
            format!(
                "({} slices, {} spans)",
                slices.len(),
                rows.iter().map(|r| r.span_count).sum::<u64>()
            ),
        );
    }
    if want("daily_cost by model, 30 days") {
        let mut q = MetricsQuery::new("default", GroupBy::Model);
        q.from = Some(from);
        q.to = Some(to);
        let (first, med, days) =
            time(5, async || store.daily_cost(&q).await.expect("daily cost")).await;
        line(
            "daily_cost by model, 30 days",
            first,
            med,
            format!("({} rows)", days.len()),
        );
    }
    for (name, start) in [("30 days", from), ("7 days", week)] {
        if !want(&format!("recovery report, {name}")) {
            continue;
        }
        let (first, med, r) = time(5, async || recovery(store, start, to).await).await;
        line(
            &format!("recovery report, {name}"),
            first,
            med,
            format!(
                "({} retried spans, {} retries, {} rate-limit series, {} samples)",
                r.spans_with_retries,
                r.retries,
                r.rate_limits.len(),
                r.rate_limits.iter().map(|s| s.samples).sum::<usize>()
            ),
        );
    }
    if ONLY.get().is_some_and(|o| o.is_some()) {
        return;
    }
    let mut q = MetricsQuery::new("default", GroupBy::Model);
    q.from = Some(from);
    q.to = Some(to);
    let rows = store.metrics(&q).await.expect("metrics");
    println!("\ncost by model, 30 days:");
    for r in rows {
        println!(
            "  {:<20} {:>8} spans  {:>14}  p50 {:>8.1} ms  p99 {:>8.1} ms  ttft p50 {:>6.1} ms",
            r.key.as_deref().unwrap_or("(none)"),
            r.span_count,
            r.cost.to_string(),
            r.latency.p50.unwrap_or(0) as f64 / 1e6,
            r.latency.p99.unwrap_or(0) as f64 / 1e6,
            r.ttft.p50.unwrap_or(0) as f64 / 1e6,
        );
    }
}
