//! Sessions (traces grouped by session id) and metrics, checked against hand-computed values.

use super::build::*;
use super::{fresh, StoreHarness};
use crate::{GroupBy, MetricRow, MetricsQuery, SessionQuery, MAX_PERCENTILE_ERROR};
use serde_json::json;
use spanlens_core::{Event, NanoUsd, Span, SpanKind, Status, Timestamp, Usage};
use std::collections::HashSet;

const DAY_MS: u64 = 86_400_000;

/// (trace, session, user, start_ms, dur_ms, cost)
type TraceRow = (
    u64,
    Option<&'static str>,
    Option<&'static str>,
    u64,
    u64,
    i64,
);

/// Sessions group their traces' totals, are listed by last activity, page one at a time,
/// filter by user and time, and read back with their traces oldest first.
pub async fn sessions_group_traces_and_paginate(h: &dyn StoreHarness) {
    let (_db, store) = fresh(h).await;
    let rows: &[TraceRow] = &[
        (1, Some("s-a"), Some("ann"), 0, 100, 10),
        (2, Some("s-a"), Some("ann"), 1_000, 100, 20),
        (3, Some("s-a"), None, 5_000, 500, 30),
        (4, Some("s-b"), Some("bob"), 2_000, 100, 40),
        (5, Some("s-c"), Some("cid"), 3_000, 100, 50),
        (6, Some("s-c"), Some("cid"), 9_000, 100, 60),
        (7, None, Some("ann"), 10_000, 100, 70),
    ];
    let mut spans = Vec::new();
    for &(t, sess, user, start, dur, cost) in rows {
        let mut root = span(t, 1, None, "turn", start, dur);
        root.session_id = sess.map(str::to_string);
        root.user_id = user.map(str::to_string);
        spans.push(root);
        let mut call = llm(
            t,
            2,
            Some(1),
            "gpt-4o",
            "openai",
            start + 1,
            10,
            100,
            7,
            cost,
        );
        call.status = if t == 2 { Status::Error } else { Status::Ok };
        spans.push(call);
    }
    store.write("p", spans).await.unwrap();

    let page = store.list_sessions(&SessionQuery::new("p")).await.unwrap();
    let order: Vec<&str> = page.items.iter().map(|s| s.session_id.as_str()).collect();
    // Last activity: s-c ends at 9.1 s, s-a at 5.5 s, s-b at 2.1 s; no-session traces excluded.
    assert_eq!(order, vec!["s-c", "s-a", "s-b"]);
    let a = &page.items[1];
    assert_eq!(a.trace_count, 3);
    assert_eq!(a.span_count, 6);
    assert_eq!(a.error_count, 1);
    assert_eq!(a.input_tokens, 300);
    assert_eq!(a.output_tokens, 21);
    assert_eq!(a.total_cost, NanoUsd(60));
    assert_eq!(a.first_time, Timestamp(T0));
    assert_eq!(a.last_time, Timestamp(T0 + 5_500 * MS));
    assert_eq!(a.user_id.as_deref(), Some("ann"));

    // One session per page walks all of them without duplicates.
    let mut q = SessionQuery::new("p");
    q.limit = 1;
    let mut walked = Vec::new();
    loop {
        let p = store.list_sessions(&q).await.unwrap();
        walked.extend(p.items.into_iter().map(|s| s.session_id));
        match p.next_cursor {
            Some(c) => q.cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(walked, vec!["s-c", "s-a", "s-b"]);

    // Filters: by user and by time.
    let mut q = SessionQuery::new("p");
    q.user_id = Some("cid".into());
    let p = store.list_sessions(&q).await.unwrap();
    assert_eq!(p.items.len(), 1);
    assert_eq!(p.items[0].session_id, "s-c");
    let mut q = SessionQuery::new("p");
    q.from = Some(Timestamp(T0 + 4_000 * MS));
    let p = store.list_sessions(&q).await.unwrap();
    let ids: Vec<_> = p.items.iter().map(|s| s.session_id.as_str()).collect();
    assert_eq!(ids, vec!["s-c", "s-a"]);
    assert_eq!(p.items[1].trace_count, 1);

    let d = store.get_session("p", "s-a").await.unwrap().unwrap();
    assert_eq!(d.session.trace_count, 3);
    let traces: Vec<_> = d.traces.iter().map(|t| t.trace_id).collect();
    assert_eq!(traces, vec![tid(1), tid(2), tid(3)], "oldest first");
    assert!(store.get_session("p", "nope").await.unwrap().is_none());
    assert!(store.get_session("p", "").await.unwrap().is_none());
    assert!(store.get_session("other", "s-a").await.unwrap().is_none());
}

/// `s` with a time to first token of `ttft_ms`.
fn timed(mut s: Span, ttft_ms: Option<u64>) -> Span {
    s.ttft_ns = ttft_ms.map(|t| t * MS);
    s
}

/// The metrics fixture, with every expected figure worked out by hand in the test below.
fn metrics_fixture() -> Vec<Span> {
    let mut out = Vec::new();
    // Ten gpt-4o calls lasting 100..=1000 ms; seven on day 0, three on day 1.
    let ttfts = [
        Some(50),
        Some(10),
        Some(30),
        Some(20),
        None,
        None,
        None,
        None,
        None,
        None,
    ];
    for i in 0..10u64 {
        let start = if i < 7 { i * 1000 } else { DAY_MS + i * 1000 };
        let mut s = llm(
            1,
            10 + i,
            None,
            "gpt-4o",
            "openai",
            start,
            (i + 1) * 100,
            100,
            10,
            1000,
        );
        s.usage = Some(Usage {
            input_tokens: 100,
            output_tokens: 10,
            cache_read_tokens: 40,
            cache_write_tokens: 0,
            reasoning_tokens: 5,
            total_tokens: 110,
            ..Default::default()
        });
        s.status = if i == 2 || i == 9 {
            Status::Error
        } else {
            Status::Ok
        };
        s.agent_name = Some("planner".into());
        s.user_id = Some(if i % 2 == 0 { "ann" } else { "bob" }.into());
        out.push(timed(s, ttfts[i as usize]));
    }
    // Three claude calls of 5, 1 and 3 ms; the response model differs from the request model.
    for (i, d) in [5u64, 1, 3].into_iter().enumerate() {
        let mut s = llm(
            2,
            30 + i as u64,
            None,
            "claude-3-5-sonnet",
            "anthropic",
            100,
            d,
            1000,
            0,
            7000,
        );
        s.response_model = Some("claude-3-5-sonnet-20241022".into());
        s.agent_name = Some("writer".into());
        s.user_id = Some("ann".into());
        out.push(s);
    }
    // Tools: two `search` calls (10 and 20 ms, one retried twice), one `fetch` retried three times.
    let retry = |n: usize| {
        (0..n)
            .map(|_| Event {
                name: "retry".into(),
                ..Default::default()
            })
            .collect::<Vec<_>>()
    };
    let mut t1 = span(3, 40, None, "search", 0, 10);
    t1.kind = SpanKind::Tool;
    let mut t2 = span(3, 41, None, "search", 20, 20);
    t2.kind = SpanKind::Tool;
    t2.events = retry(2);
    t2.status = Status::Error;
    let mut t3 = span(3, 42, None, "fetch", 50, 7);
    t3.kind = SpanKind::Tool;
    t3.attributes
        .insert("spanlens.tool.retry_count".into(), json!(3));
    out.extend([t1, t2, t3]);
    out
}

/// Percentiles come from histograms: within `MAX_PERCENTILE_ERROR` of the exact nearest-rank
/// value worked out by hand.
#[track_caller]
fn near(got: Option<u64>, exact: u64) {
    let got = got.unwrap_or_else(|| panic!("no percentile where {exact} ns is exact"));
    let err = (got as f64 - exact as f64).abs() / exact as f64;
    assert!(
        err <= MAX_PERCENTILE_ERROR,
        "{got} ns is {err:.4} from the exact {exact} ns"
    );
}

/// The row of `key`.
fn row<'a>(rows: &'a [MetricRow], key: Option<&str>) -> &'a MetricRow {
    rows.iter()
        .find(|r| r.key.as_deref() == key)
        .unwrap_or_else(|| panic!("no row {key:?} in {rows:#?}"))
}

/// Metrics by every grouping and filter, with percentiles, agree with figures worked out by
/// hand.
pub async fn metrics_grouping_and_percentiles_match_hand_computed_values(h: &dyn StoreHarness) {
    let (_db, store) = fresh(h).await;
    store.write("m", metrics_fixture()).await.unwrap();

    let by_model = store
        .metrics(&MetricsQuery::new("m", GroupBy::Model))
        .await
        .unwrap();
    let keys: Vec<_> = by_model.iter().map(|r| r.key.as_deref()).collect();
    assert_eq!(
        keys,
        vec![Some("claude-3-5-sonnet"), Some("gpt-4o"), None],
        "ordered by cost, spans without a model last"
    );
    let gpt = row(&by_model, Some("gpt-4o"));
    assert_eq!(gpt.span_count, 10);
    assert_eq!(gpt.error_count, 2);
    assert_eq!(gpt.cost, NanoUsd(10_000));
    assert_eq!(
        (
            gpt.input_tokens,
            gpt.output_tokens,
            gpt.cache_read_tokens,
            gpt.reasoning_tokens,
            gpt.total_tokens
        ),
        (1000, 100, 400, 50, 1100)
    );
    // Durations 100..=1000 ms: p50 = 5th value (500), p95 = 10th (ceil 9.5), p99 = 10th.
    near(gpt.latency.p50, 500 * MS);
    near(gpt.latency.p95, 1000 * MS);
    near(gpt.latency.p99, 1000 * MS);
    assert_eq!(gpt.latency.count, 10);
    // TTFT {10, 20, 30, 50}: p50 = 2nd (20), p95 = 4th (ceil 3.8), p99 = 4th.
    near(gpt.ttft.p50, 20 * MS);
    near(gpt.ttft.p95, 50 * MS);
    near(gpt.ttft.p99, 50 * MS);
    assert_eq!(gpt.ttft.count, 4);
    let claude = row(&by_model, Some("claude-3-5-sonnet"));
    assert_eq!(claude.cost, NanoUsd(21_000));
    // {1, 3, 5}: p50 = 2nd (3), p95 = 3rd (ceil 2.85).
    near(claude.latency.p50, 3 * MS);
    near(claude.latency.p95, 5 * MS);
    assert_eq!(claude.ttft.p50, None);
    assert_eq!(claude.ttft.count, 0);
    let none = row(&by_model, None);
    assert_eq!(none.span_count, 3);

    let by_provider = store
        .metrics(&MetricsQuery::new("m", GroupBy::Provider))
        .await
        .unwrap();
    assert_eq!(row(&by_provider, Some("anthropic")).span_count, 3);
    assert_eq!(row(&by_provider, Some("openai")).span_count, 10);

    let by_agent = store
        .metrics(&MetricsQuery::new("m", GroupBy::Agent))
        .await
        .unwrap();
    assert_eq!(row(&by_agent, Some("planner")).cost, NanoUsd(10_000));
    assert_eq!(row(&by_agent, Some("writer")).cost, NanoUsd(21_000));

    let by_user = store
        .metrics(&MetricsQuery::new("m", GroupBy::User))
        .await
        .unwrap();
    assert_eq!(row(&by_user, Some("ann")).span_count, 5 + 3);
    assert_eq!(row(&by_user, Some("bob")).span_count, 5);
    assert_eq!(row(&by_user, Some("ann")).cost, NanoUsd(5_000 + 21_000));

    let by_day = store
        .metrics(&MetricsQuery::new("m", GroupBy::Day))
        .await
        .unwrap();
    let days: Vec<_> = by_day
        .iter()
        .map(|r| (r.key.clone().unwrap(), r.span_count))
        .collect();
    assert_eq!(
        days,
        vec![
            ("2025-01-01".to_string(), 7 + 3 + 3),
            ("2025-01-02".to_string(), 3)
        ]
    );
    // Day 1 holds the 800, 900 and 1000 ms calls.
    near(by_day[1].latency.p50, 900 * MS);

    let by_kind = store
        .metrics(&MetricsQuery::new("m", GroupBy::Kind))
        .await
        .unwrap();
    assert_eq!(row(&by_kind, Some("llm")).span_count, 13);
    assert_eq!(row(&by_kind, Some("tool")).span_count, 3);

    let by_tool = store
        .metrics(&MetricsQuery::new("m", GroupBy::Tool))
        .await
        .unwrap();
    let search = row(&by_tool, Some("search"));
    assert_eq!(
        (search.span_count, search.error_count, search.retry_count),
        (2, 1, 2)
    );
    near(search.latency.p50, 10 * MS);
    near(search.latency.p99, 20 * MS);
    assert_eq!(row(&by_tool, Some("fetch")).retry_count, 3);
    assert_eq!(by_tool.len(), 2);

    let all = store
        .metrics(&MetricsQuery::new("m", GroupBy::All))
        .await
        .unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].span_count, 16);
    assert_eq!(all[0].retry_count, 5);
    assert_eq!(all[0].error_count, 3);
    assert_eq!(all[0].cost, NanoUsd(31_000));

    // Filters: model (request or response name), provider, kind and time range.
    let mut q = MetricsQuery::new("m", GroupBy::All);
    q.model = Some("claude-3-5-sonnet-20241022".into());
    assert_eq!(store.metrics(&q).await.unwrap()[0].span_count, 3);
    let mut q = MetricsQuery::new("m", GroupBy::All);
    q.provider = Some("openai".into());
    assert_eq!(store.metrics(&q).await.unwrap()[0].span_count, 10);
    let mut q = MetricsQuery::new("m", GroupBy::Model);
    q.kind = Some(SpanKind::Tool);
    assert_eq!(store.metrics(&q).await.unwrap().len(), 1);
    let mut q = MetricsQuery::new("m", GroupBy::All);
    q.from = Some(Timestamp(T0 + DAY_MS * MS));
    assert_eq!(store.metrics(&q).await.unwrap()[0].span_count, 3);
    q.to = Some(Timestamp(T0 + DAY_MS * MS));
    assert!(store.metrics(&q).await.unwrap().is_empty());
    assert!(store
        .metrics(&MetricsQuery::new("unknown", GroupBy::Model))
        .await
        .unwrap()
        .is_empty());

    // The JSON shape carries milliseconds and USD.
    let v = serde_json::to_value(gpt).unwrap();
    let p50_ms = v["latency"]["p50_ms"].as_f64().unwrap();
    assert_eq!(p50_ms, gpt.latency.p50.unwrap() as f64 / 1e6);
    assert_eq!(v["cost_usd"], json!(0.00001));
}

/// Percentiles over 200 distinct durations written shuffled are the nearest-rank ones, within
/// the stated error.
pub async fn percentiles_over_two_hundred_values(h: &dyn StoreHarness) {
    let (_db, store) = fresh(h).await;
    // Durations 1..=200 ms, inserted shuffled.
    let mut spans: Vec<Span> = (1..=200u64)
        .map(|d| {
            let mut s = span(1, d, None, "op", d, (d * 73) % 200 + 1);
            s.kind = SpanKind::Retriever;
            s
        })
        .collect();
    spans.reverse();
    let durations: HashSet<u64> = (1..=200).map(|d| (d * 73) % 200 + 1).collect();
    assert_eq!(durations.len(), 200, "the fixture covers 1..=200 once each");
    store.write("p", spans).await.unwrap();
    let r = store
        .metrics(&MetricsQuery::new("p", GroupBy::Kind))
        .await
        .unwrap();
    let l = r[0].latency;
    // Nearest rank: p50 = 100th, p95 = 190th, p99 = 198th value.
    near(l.p50, 100 * MS);
    near(l.p95, 190 * MS);
    near(l.p99, 198 * MS);
    assert_eq!(l.count, 200);
}
