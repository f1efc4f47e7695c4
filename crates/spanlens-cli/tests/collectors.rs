//! Several collectors on one PostgreSQL: three `spanlens serve` processes share a fresh
//! database while every trace's spans are spread over all three at once, and the same spans are
//! sent to two of them. Every trace's summary, every session's rollup, the span count and the
//! metrics must come out exactly as the spans say, as if one collector had taken them all.
//!
//! The same on ClickHouse, where there are no transactions or locks.
//!
//! Needs `SPANLENS_TEST_POSTGRES` (a superuser URL; `scripts/postgres-test-server` starts one and
//! prints it) and `psql`, and `SPANLENS_TEST_CLICKHOUSE` (`scripts/test` starts a chDB server).

#![cfg(any(feature = "postgres", feature = "clickhouse"))]

mod common;

use common::{agent_trace, otlp_request, Endpoint, Server, SESSIONS, SPANS_PER_TRACE};
use serde_json::Value;
use spanlens_api::{SessionPage, TraceDetail, TracePage};
use std::collections::BTreeMap;

const TRACES: u64 = 240;

#[cfg(feature = "postgres")]
#[test]
fn three_collectors_agree_with_one() {
    let db = common::PgDatabase::create("collectors");
    collectors_agree_with_one(&db.uri);
}

#[cfg(feature = "clickhouse")]
#[test]
fn three_collectors_agree_with_one_on_clickhouse() {
    collectors_agree_with_one(&common::clickhouse_database("collectors"));
}

/// Three collectors on the store `uri` take every trace's spans at once; every trace, session
/// and metric must come out as the spans say.
fn collectors_agree_with_one(uri: &str) {
    let servers: Vec<Server> = (0..3).map(|_| Server::start_store(uri, &[])).collect();
    let collectors: Vec<Endpoint> = servers.iter().map(Server::endpoint).collect();
    let base_ns = 1_767_225_600_000_000_000; // 2026-01-01
    let all: Vec<Vec<Value>> = (0..TRACES).map(|t| agent_trace(t, base_ns)).collect();
    // Span j of every trace goes to collector j % 3; the collectors take their shares at the
    // same time, in trace order, so the spans of one trace are committed concurrently.
    std::thread::scope(|scope| {
        for (c, collector) in collectors.iter().enumerate() {
            let all = &all;
            scope.spawn(move || {
                let mine: Vec<Value> = all
                    .iter()
                    .flat_map(|spans| spans.iter().skip(c).step_by(3).cloned())
                    .collect();
                for batch in mine.chunks(48) {
                    collector.post_traces(&otlp_request(batch));
                }
            });
        }
        // The same spans sent to two collectors at once are stored once.
        let twice = otlp_request(&all[3]);
        for c in [&collectors[1], &collectors[2]] {
            let twice = twice.clone();
            scope.spawn(move || c.post_traces(&twice));
        }
    });

    let stats = collectors[0].get("/api/v1/stats");
    assert_eq!(stats["span_count"], TRACES * SPANS_PER_TRACE, "{stats}");

    // Every trace's summary equals what its spans say, read from any collector.
    let mut per_session: BTreeMap<String, (u64, u64, u64, u64, i64)> = BTreeMap::new();
    let mut listed = 0;
    let mut cursor: Option<String> = None;
    loop {
        let mut path = "/api/v1/traces?limit=100".to_string();
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page: TracePage = serde_json::from_value(collectors[listed % 3].get(&path)).unwrap();
        for row in &page.items {
            let id = row.trace_id.to_hex();
            let d: TraceDetail = serde_json::from_value(
                collectors[listed % 3].get(&format!("/api/v1/traces/{id}?analysis=false")),
            )
            .unwrap();
            let spans = &d.spans;
            let sum = |f: &dyn Fn(&spanlens_core::Span) -> u64| spans.iter().map(f).sum::<u64>();
            let input = sum(&|s| s.usage.as_ref().map_or(0, |u| u.input_tokens));
            let output = sum(&|s| s.usage.as_ref().map_or(0, |u| u.output_tokens));
            let cost: i64 = spans
                .iter()
                .filter_map(|s| s.cost.as_ref())
                .map(|c| c.amounts.total.0)
                .sum();
            let errors = spans
                .iter()
                .filter(|s| s.status == spanlens_core::Status::Error)
                .count() as u64;
            let t = &d.trace;
            assert_eq!(spans.len() as u64, SPANS_PER_TRACE, "trace {id}");
            assert_eq!(
                (
                    t.span_count,
                    t.input_tokens,
                    t.output_tokens,
                    t.total_cost_nano_usd,
                    t.error_count
                ),
                (spans.len() as u64, input, output, cost, errors),
                "trace {id}: its summary against its spans"
            );
            assert!(cost > 0, "trace {id}: the model calls are priced");
            assert_eq!(t.name, "pipeline", "trace {id}: named by its root");
            assert_eq!(
                t.start_time,
                spans.iter().map(|s| s.start_time).min().unwrap()
            );
            let session = t.session_id.clone().expect("a session from the root");
            let e = per_session.entry(session).or_default();
            e.0 += 1;
            e.1 += t.span_count;
            e.2 += t.input_tokens;
            e.3 += t.error_count;
            e.4 += t.total_cost_nano_usd;
            listed += 1;
        }
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(listed as u64, TRACES);

    // Every session's rollup equals the sum of its traces.
    let sessions: SessionPage =
        serde_json::from_value(collectors[2].get("/api/v1/sessions?limit=100")).unwrap();
    assert_eq!(sessions.items.len() as u64, SESSIONS);
    for s in &sessions.items {
        let want = per_session[&s.session_id];
        assert_eq!(
            (
                s.trace_count,
                s.span_count,
                s.input_tokens,
                s.error_count,
                s.total_cost.0
            ),
            want,
            "session {}",
            s.session_id
        );
    }

    // Metrics by model count every call once.
    let m = collectors[1].get("/api/v1/metrics/model");
    let row = m["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == "gpt-4o-mini")
        .unwrap_or_else(|| panic!("{m}"));
    assert_eq!(row["span_count"], TRACES * 6, "{m}");
    let cost: i64 = per_session.values().map(|v| v.4).sum();
    let reported = (row["cost_usd"].as_f64().unwrap() * 1e9).round() as i64;
    assert!((reported - cost).abs() <= 1, "{reported} against {cost}");
}

/// `spanlens migrate` copies the demo from SQLite into PostgreSQL and back, checked at the end,
/// and a collector on the copy answers as the embedded store does.
#[cfg(feature = "postgres")]
#[test]
fn migrate_copies_sqlite_into_postgres_and_back() {
    let db = common::PgDatabase::create("migrate");
    migrate_into_and_back(&db.uri);
}

/// The same into ClickHouse and back.
#[cfg(feature = "clickhouse")]
#[test]
fn migrate_copies_sqlite_into_clickhouse_and_back() {
    migrate_into_and_back(&common::clickhouse_database("migrate"));
}

fn migrate_into_and_back(uri: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (from, back) = (dir.path().join("from"), dir.path().join("back"));
    let run = |args: &[&str]| {
        let o = common::spanlens(args);
        assert!(o.status.success(), "{args:?}: {}", common::text(&o.stderr));
        common::text(&o.stderr)
    };
    run(&["demo", "--data-dir", from.to_str().unwrap()]);
    let sqlite = format!("sqlite://{}", from.display());
    let said = run(&["migrate", "--from", &sqlite, "--to", uri]);
    assert!(said.contains("every project matches"), "{said}");
    let said = run(&[
        "migrate",
        "--from",
        uri,
        "--to",
        &format!("sqlite://{}", back.display()),
    ]);
    assert!(said.contains("every project matches"), "{said}");
    // The same answers from a collector on the copy as from the embedded original.
    let pg = Server::start_store(uri, &[]);
    let lite = Server::start_store(&sqlite, &[]);
    for path in [
        "/api/v1/stats",
        "/api/v1/metrics/model",
        "/api/v1/traces/outcomes",
        "/api/v1/sessions?limit=5",
    ] {
        assert_eq!(pg.get(path), lite.get(path), "{path}");
    }
}
