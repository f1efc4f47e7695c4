//! Ingest and query figures of the SQLite store on realistic synthetic agent traces.
//!
//! ```sh
//! cargo run --release -p spanlens-store --example ingest_bench -- [SPANS] [--path FILE | --data-dir DIR]
//!     [--threads N] [--batch N] [--page-size BYTES] [--rate-limits] [--stream] [--queries-only]
//! ```
//!
//! Generates SPANS (default 1,000,000) priced canonical spans shaped like agent pipelines
//! (pipeline → agents → LLM calls, tools, retrievers; ~18 spans per trace, ~1-2 KiB of JSON
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
//!   TEXT, e.g. `--only "metrics by user"`, to profile one of them; `--skip TEXT` leaves out
//!   those whose name contains TEXT (e.g. `--skip recovery`).
//! - `--sessions N` splits the traces into about N sessions (default: sessions of 4 traces).
//! - `--rate-limits` adds what the recovery report reads: rate-limit headers on about 60% of the
//!   LLM calls and retried LLM calls (3%) with error types and outcomes. Off by default.
//!
//! The traces come from `spanlens_demo::LoadGen` (one generator per thread), the load shape
//! `spanlens bench ingest` sends too. It kept this example's earlier shape: per trace a
//! pipeline, two agents with 2–6 LLM calls each (half followed by a tool call) and a retriever,
//! and a guardrail; 44% LLM and 22% tool spans, a mean canonical JSON size within 3% of before,
//! 2% of LLM calls failing, 1,000 users, sessions of 4 traces. What changed with it:
//! - the models, latencies and caching are the demo's: dated model names (the filter query
//!   names `claude-sonnet-4-20250514`), slower calls (a trace's median length is ~40 s, was
//!   ~20 s), Anthropic prompts that write the cache when they do not read it;
//! - a failed LLM call has no usage or cost (it was refused), and retried calls and tools carry
//!   the full `retry` / `retry.outcome` events;
//! - a session has one user (drawn per session, not per trace), so a small run has fewer users;
//!   trace ids begin with the start time (they were a counter) and span ids are random;
//! - every span has the trace's metadata, and `source` is `demo` (was `genai`).
//!
//! Figures measured before this change are therefore close to, not exactly, comparable.

use spanlens_core::recovery::{Buckets, RecoveryReport};
use spanlens_core::{Span, SpanKind, Status, Timestamp, TraceId};
use spanlens_demo::{LoadGen, LoadOptions};
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
/// One submitting thread's share of the spans, produced a batch at a time: thread `i` of `n`
/// generates traces `i, i + n, i + 2n, …`, each starting `spacing` after the previous one, so
/// `total` spans cover 30 days.
struct Feed {
    g: LoadGen,
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
        opts: LoadOptions,
    ) -> Feed {
        Feed {
            g: LoadGen::new(0x9e37_79b9 + thread * 7919, opts),
            n: thread,
            threads,
            // Spread the traffic over 30 days (a trace has ~18 spans).
            spacing: 30 * DAY / (total as u64 / 18).max(1),
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
            let start = Timestamp(T0 + self.n * self.spacing);
            self.buf.extend(self.g.trace(self.n, start));
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
    store: &dyn Store,
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
async fn recovery(store: &dyn Store, from: Timestamp, to: Timestamp) -> RecoveryReport {
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
    store: &dyn Store,
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
    /// `--store postgres://…`: a PostgreSQL store instead of the SQLite file.
    store: Option<String>,
    path: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    threads: u64,
    batch: usize,
    page_size: u32,
    rich: bool,
    stream: Option<bool>,
    queries_only: bool,
    only: Option<String>,
    skip: Option<String>,
    sessions: Option<u64>,
}

/// `--only TEXT`: the dashboard queries to time (all when unset).
static ONLY: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
/// `--skip TEXT`: dashboard queries not to time.
static SKIP: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();

/// Whether the query named `name` is to be timed.
fn want(name: &str) -> bool {
    fn named(o: &'static std::sync::OnceLock<Option<String>>) -> Option<&'static str> {
        o.get().and_then(|o| o.as_deref())
    }
    named(&ONLY).is_none_or(|o| name.contains(o)) && named(&SKIP).is_none_or(|s| !name.contains(s))
}

fn parse_args() -> Args {
    let mut args = std::env::args().skip(1);
    let mut a = Args {
        spans: 1_000_000,
        store: None,
        path: None,
        data_dir: None,
        threads: 2,
        batch: 500,
        page_size: SqliteOptions::default().page_size,
        rich: false,
        stream: None,
        queries_only: false,
        only: None,
        skip: None,
        sessions: None,
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
            "--store" => a.store = args.next(),
            "--data-dir" => a.data_dir = args.next().map(PathBuf::from),
            "--threads" => a.threads = args.next().and_then(|v| v.parse().ok()).unwrap_or(2),
            "--batch" => a.batch = args.next().and_then(|v| v.parse().ok()).unwrap_or(500),
            "--rate-limits" => a.rich = true,
            "--stream" => a.stream = Some(true),
            "--queries-only" => a.queries_only = true,
            "--only" => a.only = args.next(),
            "--skip" => a.skip = args.next(),
            "--sessions" => a.sessions = args.next().and_then(|v| v.parse().ok()),
            n => a.spans = n.replace('_', "").parse().expect("SPANS must be a number"),
        }
    }
    a
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let _ = ONLY.set(args.only.clone());
    let _ = SKIP.set(args.skip.clone());
    if let Some(uri) = &args.store {
        return on_server_store(&args, uri).await;
    }
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
    let mut opts = SqliteOptions {
        page_size: args.page_size,
        ..SqliteOptions::default()
    };
    if let Some(n) = std::env::var("BENCH_TXN").ok().and_then(|v| v.parse().ok()) {
        opts.max_spans_per_transaction = n;
    }
    let store = SqliteStore::open_with(path, opts).expect("open");
    let stats = || {
        let s = store.writer_stats();
        format!(
            " ({} transactions for {} batches)",
            s.transactions, s.batches
        )
    };
    if !ingest_into(args, &store, &stats).await {
        return None;
    }
    Some(store)
}

/// Generates and submits the spans into `store`, prints the ingest figures (with `stats`, what
/// the backend says of its writer), then writes one 10,000-span trace; false when only ingest
/// was asked for (`BENCH_INGEST_ONLY`).
async fn ingest_into(args: &Args, store: &dyn Store, stats: &dyn Fn() -> String) -> bool {
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
                LoadOptions {
                    rate_limits: args.rich,
                    // `--sessions N`: the traces (~18 spans each) split into N sessions.
                    traces_per_session: args
                        .sessions
                        .map_or(LoadOptions::default().traces_per_session, |n| {
                            (spans as u64 / 18 / n.max(1)).max(1)
                        }),
                    ..LoadOptions::default()
                },
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

    let (w0, p0) = cpu_seconds();
    let t = Instant::now();
    let sent: usize = std::thread::scope(|s| {
        let hs: Vec<_> = feeds
            .into_iter()
            .zip(prepared)
            .map(|(mut feed, batches)| {
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
    println!(
        "ingest: {sent} spans in {:.2} s = {:.0} spans/s{}",
        elapsed.as_secs_f64(),
        sent as f64 / elapsed.as_secs_f64(),
        stats()
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
        return false;
    }

    // One 10,000-span trace, submitted in batches like everything else.
    let big = TraceId([0xbb; 16]);
    let spans_big = LoadGen::new(42, LoadOptions::default()).wide_trace(big, Timestamp(T0), 10_000);
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
    true
}

async fn queries(store: &dyn Store) {
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
        "model=claude-sonnet-4-20250514 status=error",
        f(TraceFilter {
            model: Some("claude-sonnet-4-20250514".into()),
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
    // Full-text search (`q`): a word in every model call's prompt, words of tool names, and an
    // order number (900,000 of them drawn at random, so a handful of calls at 10M spans, maybe
    // none at 1M). Each store answers from its own index (SQLite: FTS5).
    for words in ["tracking", "send email", "order 123456"] {
        list(
            &format!("q=\"{words}\""),
            f(TraceFilter {
                content: Some(words.into()),
                ..Default::default()
            }),
        )
        .await;
    }
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
async fn dashboard(store: &dyn Store) {
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
            "  {:<26} {:>8} spans  {:>14}  p50 {:>8.1} ms  p99 {:>8.1} ms  ttft p50 {:>6.1} ms",
            r.key.as_deref().unwrap_or("(none)"),
            r.span_count,
            r.cost.to_string(),
            r.latency.p50.unwrap_or(0) as f64 / 1e6,
            r.latency.p99.unwrap_or(0) as f64 / 1e6,
            r.ttft.p50.unwrap_or(0) as f64 / 1e6,
        );
    }
}

/// The same figures on a server store (`--store postgres://…` or `clickhouse://…`): the
/// database must be empty unless `--queries-only`.
async fn on_server_store(args: &Args, uri: &str) {
    if uri.starts_with("clickhouse://") {
        on_clickhouse(args, uri).await
    } else {
        on_postgres(args, uri).await
    }
}

#[cfg(feature = "clickhouse")]
async fn on_clickhouse(args: &Args, uri: &str) {
    let t = Instant::now();
    let store = spanlens_store::ClickHouseStore::connect(uri)
        .await
        .expect("connect");
    println!(
        "connected to {} in {}",
        spanlens_store::redact(uri),
        ms(t.elapsed())
    );
    if !args.queries_only {
        let have = store.count_spans("default").await.expect("count");
        assert_eq!(have, 0, "{} already holds {have} spans", store.uri());
        if !ingest_into(args, &store, &String::new).await {
            return;
        }
    }
    // As on PostgreSQL: the figures below are of a store whose hours have all been rebuilt.
    let t = Instant::now();
    let hours = store.refresh_rollups().await.expect("rebuilding rollups");
    println!("rollups of {hours} hours rebuilt in {}", ms(t.elapsed()));
    println!("{} spans", store.count_spans("default").await.unwrap_or(0));
    if let Ok(bytes) = store.disk_bytes().await {
        println!("{bytes} bytes on disk (active parts of the database's tables)");
    }
    if args.only.is_some() {
        dashboard(&store).await;
    } else {
        queries(&store).await;
    }
}

#[cfg(not(feature = "clickhouse"))]
async fn on_clickhouse(_: &Args, uri: &str) {
    panic!("{uri}: build with --features clickhouse for a ClickHouse store");
}

#[cfg(feature = "postgres")]
async fn on_postgres(args: &Args, uri: &str) {
    let t = Instant::now();
    let mut options = spanlens_store::PostgresOptions::default();
    if std::env::var_os("BENCH_NO_ROLLUP_TASK").is_some() {
        options.rollup_interval = None;
    }
    let store = spanlens_store::PostgresStore::connect_with(uri, options)
        .await
        .expect("connect");
    println!(
        "connected to {} in {}",
        spanlens_store::redact(uri),
        ms(t.elapsed())
    );
    if !args.queries_only {
        let have = store.count_spans("default").await.expect("count");
        assert_eq!(
            have,
            0,
            "{} already holds {have} spans",
            spanlens_store::redact(uri)
        );
        if !ingest_into(args, &store, &String::new).await {
            return;
        }
    }
    // Collectors rebuild the rollups of settled hours in the background; the figures below are
    // of a store whose hours have all been rebuilt (a dashboard reads spans of hours still
    // marked, so it is exact before too, only slower).
    let t = Instant::now();
    let hours = store.refresh_rollups().await.expect("rebuilding rollups");
    println!("rollups of {hours} hours rebuilt in {}", ms(t.elapsed()));
    println!("{} spans", store.count_spans("default").await.unwrap_or(0));
    if args.only.is_some() {
        dashboard(&store).await;
    } else {
        queries(&store).await;
    }
}

#[cfg(not(feature = "postgres"))]
async fn on_postgres(_: &Args, uri: &str) {
    panic!("{uri}: build with --features postgres for a PostgreSQL store");
}
