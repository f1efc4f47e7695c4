//! Ingest and query figures of the SQLite store on realistic synthetic agent traces.
//!
//! ```sh
//! cargo run --release -p spanlens-store --example ingest_bench -- [SPANS] [--path FILE] [--threads N] [--batch N] [--page-size BYTES]
//! ```
//!
//! Generates SPANS (default 1,000,000) priced canonical spans shaped like agent pipelines
//! (pipeline → agents → LLM calls, tools, retrievers; ~17 spans per trace, ~1-2 KiB of JSON
//! each), submits them in batches of 500 from 2 threads, then times the trace list with filters,
//! the detail of a 10,000-span trace, sessions and metrics.

use serde_json::json;
use spanlens_core::{
    price_span, Event, Message, Payload, PriceCatalog, Span, SpanId, SpanKind, Status, Timestamp,
    ToolInfo, TraceId, Usage,
};
use spanlens_store::{
    CommitTicket, GroupBy, ListQuery, MetricsQuery, SessionQuery, SortField, SqliteOptions,
    SqliteStore, Store, TraceFilter,
};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const T0: u64 = 1_767_225_600_000_000_000; // 2026-01-01T00:00:00Z
const MS: u64 = 1_000_000;
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
}

impl Gen {
    fn new(seed: u64) -> Gen {
        Gen {
            rng: Rng(seed | 1),
            next_span: 1,
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
        price_span(&mut s, PriceCatalog::builtin());
        s
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

fn generate(spans: usize, total: usize, thread: u64, threads: u64, batch: usize) -> Vec<Vec<Span>> {
    let mut g = Gen::new(0x9e37_79b9 + thread * 7919);
    let mut all = Vec::with_capacity(spans + 64);
    let mut n = thread;
    // Spread the traffic over 30 days (a trace has ~17 spans).
    let spacing = 30 * 86_400_000 * MS / (total as u64 / 17).max(1);
    while all.len() < spans {
        let start = T0 + n * spacing;
        let user = g.rng.below(1000);
        g.trace(n, start, user, &mut all);
        n += threads;
    }
    all.truncate(spans);
    let mut batches = Vec::new();
    let mut it = all.into_iter().peekable();
    while it.peek().is_some() {
        batches.push(it.by_ref().take(batch).collect());
    }
    batches
}

/// Submits batches keeping up to `window` in flight (as a server with many open requests does).
fn submit_all(store: &SqliteStore, batches: Vec<Vec<Span>>, window: usize) -> usize {
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

fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, Duration, T) {
    let t = Instant::now();
    let mut out = f();
    let first = t.elapsed();
    let mut times = vec![first];
    for _ in 1..runs {
        let t = Instant::now();
        out = f();
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

fn main() {
    let mut args = std::env::args().skip(1);
    let mut spans = 1_000_000usize;
    let mut path: Option<PathBuf> = None;
    let mut threads = 2u64;
    let mut batch = 500usize;
    let mut page_size = SqliteOptions::default().page_size;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--page-size" => {
                page_size = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(page_size)
            }
            "--path" => path = args.next().map(PathBuf::from),
            "--threads" => threads = args.next().and_then(|v| v.parse().ok()).unwrap_or(2),
            "--batch" => batch = args.next().and_then(|v| v.parse().ok()).unwrap_or(500),
            n => spans = n.replace('_', "").parse().expect("SPANS must be a number"),
        }
    }
    let tmp;
    let path = match path {
        Some(p) => p,
        None => {
            tmp = tempfile::tempdir().expect("temp dir");
            tmp.path().join("bench.db")
        }
    };
    let _ = std::fs::remove_file(&path);

    println!("generating {spans} spans in {threads} threads …");
    let t = Instant::now();
    let per_thread: Vec<Vec<Vec<Span>>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|i| s.spawn(move || generate(spans / threads as usize, spans, i, threads, batch)))
            .collect();
        hs.into_iter()
            .map(|h| h.join().expect("generator"))
            .collect()
    });
    let gen_time = t.elapsed();
    let json_bytes: usize = per_thread[0][0]
        .iter()
        .map(|s| serde_json::to_string(s).map(|j| j.len()).unwrap_or(0))
        .sum();
    println!(
        "generated in {} (not counted); mean canonical JSON size {} bytes",
        ms(gen_time),
        json_bytes / per_thread[0][0].len().max(1)
    );

    let mut opts = SqliteOptions {
        page_size,
        ..SqliteOptions::default()
    };
    if let Some(n) = std::env::var("BENCH_TXN").ok().and_then(|v| v.parse().ok()) {
        opts.max_spans_per_transaction = n;
    }
    let store = SqliteStore::open_with(&path, opts).expect("open");
    let (w0, p0) = cpu_seconds();
    let t = Instant::now();
    let sent: usize = std::thread::scope(|s| {
        let hs: Vec<_> = per_thread
            .into_iter()
            .map(|batches| {
                let store = &store;
                s.spawn(move || submit_all(store, batches, 16))
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
    assert_eq!(store.count_spans("default").expect("count"), sent as u64);
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
        return;
    }

    // One 10,000-span trace, submitted in batches like everything else.
    let big = TraceId([0xbb; 16]);
    let mut g = Gen::new(42);
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
            .expect("write big trace");
    }
    println!(
        "10,000-span trace written in {} (20 sequential batches of 500)",
        ms(t.elapsed())
    );

    let db_size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let wal = path.with_extension("db-wal");
    let wal_size = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    println!(
        "database {:.0} MiB (+ WAL {:.0} MiB), {} spans",
        db_size as f64 / 1048576.0,
        wal_size as f64 / 1048576.0,
        store.count_spans("default").unwrap_or(0)
    );

    let store = if std::env::var_os("BENCH_REOPEN").is_some() {
        drop(store);
        SqliteStore::open(&path).expect("reopen")
    } else {
        store
    };
    println!("\nqueries (first run / median of 5):");
    let list = |name: &str, q: ListQuery| {
        let (first, med, page) = time(5, || store.list_traces(&q).expect("list"));
        println!(
            "  list_traces {name:<42} {:>9} / {:>9}  ({} rows)",
            ms(first),
            ms(med),
            page.items.len()
        );
    };
    list("newest 50, no filter", ListQuery::new("default"));
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
    );
    list(
        "user=user-7",
        f(TraceFilter {
            user_id: Some("user-7".into()),
            ..Default::default()
        }),
    );
    list(
        "tag=beta min_cost=$0.05",
        f(TraceFilter {
            tags: vec!["beta".into()],
            min_cost: spanlens_core::NanoUsd::parse_decimal("0.05"),
            ..Default::default()
        }),
    );
    list(
        "kind=tool min_duration=20s, 7-day window",
        f(TraceFilter {
            kind: Some(SpanKind::Tool),
            min_duration_ns: Some(20_000 * MS),
            from: Some(Timestamp(T0 + 7 * 86_400_000 * MS)),
            to: Some(Timestamp(T0 + 14 * 86_400_000 * MS)),
            ..Default::default()
        }),
    );
    list(
        "text=\"send_email\"",
        f(TraceFilter {
            text: Some("send_email".into()),
            ..Default::default()
        }),
    );
    list(
        "sort by cost desc",
        ListQuery {
            sort: SortField::Cost,
            ..ListQuery::new("default")
        },
    );
    list(
        "sort by duration desc",
        ListQuery {
            sort: SortField::Duration,
            ..ListQuery::new("default")
        },
    );
    list(
        "min_cost=$2 (few match: the whole project)",
        f(TraceFilter {
            min_cost: spanlens_core::NanoUsd::parse_decimal("2"),
            ..Default::default()
        }),
    );
    // Page 11 of a filtered list, reached through cursors.
    let (first, med, _) = time(5, || {
        let mut q = f(TraceFilter {
            provider: Some("google".into()),
            ..Default::default()
        });
        for _ in 0..10 {
            let p = store.list_traces(&q).expect("list");
            q.cursor = p.next_cursor;
        }
        store.list_traces(&q).expect("list")
    });
    println!(
        "  list_traces {:<42} {:>9} / {:>9}",
        "provider=google, 11 pages via cursor",
        ms(first),
        ms(med)
    );

    let (first, med, d) = time(5, || {
        store
            .get_trace("default", big)
            .expect("get")
            .expect("exists")
    });
    println!(
        "  get_trace 10,000 spans (decoded)                    {:>9} / {:>9}  ({} spans)",
        ms(first),
        ms(med),
        d.spans.len()
    );
    let (first, med, d) = time(5, || {
        store
            .get_trace_json("default", big)
            .expect("get")
            .expect("exists")
    });
    println!(
        "  get_trace_json 10,000 spans (stored JSON)           {:>9} / {:>9}  ({} spans)",
        ms(first),
        ms(med),
        d.spans.len()
    );
    let (first, med, p) = time(5, || {
        store
            .list_sessions(&SessionQuery::new("default"))
            .expect("sessions")
    });
    println!(
        "  list_sessions newest 50                             {:>9} / {:>9}  ({} rows)",
        ms(first),
        ms(med),
        p.items.len()
    );
    for g in [GroupBy::Model, GroupBy::Day, GroupBy::Tool] {
        let (first, med, rows) = time(5, || {
            store
                .metrics(&MetricsQuery::new("default", g))
                .expect("metrics")
        });
        println!(
            "  metrics by {:<40} {:>9} / {:>9}  ({} groups)",
            g.as_str(),
            ms(first),
            ms(med),
            rows.len()
        );
    }
    let mut q = MetricsQuery::new("default", GroupBy::Model);
    q.from = Some(Timestamp(T0 + 86_400_000 * MS));
    q.to = Some(Timestamp(T0 + 2 * 86_400_000 * MS));
    let (first, med, _) = time(5, || store.metrics(&q).expect("metrics"));
    println!(
        "  metrics by model, one day                           {:>9} / {:>9}",
        ms(first),
        ms(med)
    );
    let rows = store
        .metrics(&MetricsQuery::new("default", GroupBy::Model))
        .expect("metrics");
    println!("\ncost by model:");
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
