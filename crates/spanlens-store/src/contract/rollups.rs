//! Randomized: every query the rollups answer, against a brute-force recomputation from the
//! spans the store holds — with random arrival orders and batchings, spans sent again unchanged
//! or changed (moved to another bucket, another model, user or session, rate limits and retries
//! added or dropped), roots that arrive last, a re-pricing run, and ranges that are unaligned,
//! empty, open-ended or exactly on five-minute, hour and day edges.

use super::build::*;
use super::{fresh, open, StoreHarness};
use crate::domain::reprice::reprice;
use crate::prelude::*;
use crate::{
    percentile_nearest_rank, DailyCost, GroupBy, MetricRow, MetricsQuery, Percentiles,
    SessionQuery, SessionSummary, SpanScan, TraceSummary, MAX_PERCENTILE_ERROR,
};
use serde_json::{json, Value};
use spanlens_core::recovery::{Buckets, RecoveryBuilder};
use spanlens_core::{
    Cost, CostBreakdown, CostSource, Event, NanoUsd, PriceCatalog, RateLimitWindow, RateLimits,
    Span, SpanKind, Status, Timestamp, ToolInfo, Usage,
};
use std::collections::BTreeMap;

const MIN: u64 = 60_000 * MS;
pub(super) const HOUR: u64 = 60 * MIN;
pub(super) const DAY: u64 = 24 * HOUR;
/// Spans start in [BASE, BASE + SPREAD): across two UTC day boundaries.
pub(super) const BASE: u64 = T0 + 22 * HOUR;
pub(super) const SPREAD: u64 = 50 * HOUR;

/// A small deterministic PRNG (xorshift*), so a failing seed can be replayed.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub(super) fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<T: Clone>(&mut self, v: &[T]) -> T {
        v[self.below(v.len() as u64) as usize].clone()
    }
    fn opt(&mut self, v: &[&str]) -> Option<String> {
        let i = self.below(v.len() as u64 + 1) as usize;
        v.get(i).map(|s| s.to_string())
    }
}

/// An instant in the spread, often exactly on (or 1 ns off) a five-minute, hour or day edge.
fn instant(rng: &mut Rng) -> u64 {
    let t = BASE + rng.below(SPREAD);
    let edge = match rng.below(10) {
        0..=3 => return t,
        4..=6 => 5 * MIN,
        7 | 8 => HOUR,
        _ => DAY,
    };
    let e = t - t % edge;
    match rng.below(3) {
        0 => e,
        1 => e + 1,
        _ => e - 1,
    }
}

fn event(name: &str, at: u64, attrs: Value) -> Event {
    Event {
        name: name.into(),
        time: Timestamp(at),
        attributes: attrs
            .as_object()
            .map(|m| m.clone().into_iter().collect())
            .unwrap_or_default(),
    }
}

fn window(rng: &mut Rng) -> Option<RateLimitWindow> {
    match rng.below(5) {
        0 => None,
        1 => Some(RateLimitWindow {
            limit: Some(0),
            remaining: Some(0),
            reset: None,
        }),
        2 => Some(RateLimitWindow {
            limit: Some(100),
            remaining: None,
            reset: None,
        }),
        _ => {
            let limit = 1 + rng.below(1000);
            Some(RateLimitWindow {
                limit: Some(limit),
                remaining: Some(rng.below(limit + 50)),
                reset: None,
            })
        }
    }
}

/// Random values for everything the rollups read; `start` is kept.
fn fill(rng: &mut Rng, s: &mut Span) {
    let start = s.start_time.0;
    s.kind = rng.pick(&[
        SpanKind::Llm,
        SpanKind::Llm,
        SpanKind::Tool,
        SpanKind::Agent,
        SpanKind::Embedding,
        SpanKind::Span,
    ]);
    let model_call = matches!(s.kind, SpanKind::Llm | SpanKind::Embedding);
    s.request_model = if model_call || rng.chance(10) {
        rng.opt(&["m", "x", "gpt-4o", " "])
    } else {
        None
    };
    s.response_model = match rng.below(4) {
        0 => s.request_model.as_ref().map(|m| format!("{m}-2024")),
        1 => Some("x".into()),
        _ => None,
    };
    s.provider = rng.opt(&["openai", "anthropic", " "]);
    s.agent_name = rng.opt(&["planner", "writer"]);
    s.user_id = rng.opt(&["ann", "bob", "cid", ""]);
    s.session_id = rng.opt(&["s1", "s2", "s3", "s4", "s5"]);
    s.name = rng.pick(&["a".to_string(), "b".into(), "search".into()]);
    s.tool = (s.kind == SpanKind::Tool).then(|| ToolInfo {
        name: rng.opt(&["search", "fetch"]),
        ..Default::default()
    });
    s.status = rng.pick(&[Status::Ok, Status::Ok, Status::Error, Status::Unset]);
    s.end_time = rng.chance(85).then(|| {
        let d = match rng.below(6) {
            0 => 0,
            1 => 1 + rng.below(63),
            2 => 64 + rng.below(1000),
            _ => rng.below(20 * MIN),
        };
        Timestamp(start + d)
    });
    s.ttft_ns = rng.chance(40).then(|| rng.below(2_000 * MS));
    s.usage = rng.chance(70).then(|| {
        // Sums past i64 (the store saturates them). Only on spans re-pricing leaves alone:
        // core's limits keep such counts out of ingest, and a cost priced from one does not
        // read back.
        let big = !model_call && rng.chance(10);
        Usage {
            input_tokens: if big {
                u64::MAX - 3
            } else {
                rng.below(100_000)
            },
            output_tokens: rng.below(5_000),
            cache_read_tokens: rng.below(100),
            cache_write_tokens: rng.below(100),
            reasoning_tokens: rng.below(100),
            total_tokens: rng.below(200_000),
            ..Default::default()
        }
    });
    s.cost = match rng.below(10) {
        0 | 1 => None,
        2 => Some(-5),
        _ => Some(rng.below(1_000_000_000) as i64),
    }
    .map(|c| Cost {
        source: if rng.chance(10) {
            CostSource::Reported
        } else {
            CostSource::Computed
        },
        amounts: CostBreakdown {
            input: NanoUsd(c),
            total: NanoUsd(c),
            ..Default::default()
        },
        pricing_id: None,
        pricing_version: None,
        computed: None,
    });
    s.unpriced_reason = (s.cost.is_none() && model_call).then(|| "no price".to_string());
    s.events.clear();
    s.attributes.clear();
    if rng.chance(20) {
        for a in 0..=rng.below(3) {
            let err = rng.opt(&["RateLimitError", "Timeout"]);
            s.events.push(event(
                if rng.chance(90) { "retry" } else { "Retry" },
                start + a * 1000,
                json!({"retry.attempt": a + 1, "error.type": err}),
            ));
        }
        if rng.chance(60) {
            let ok = rng.chance(70);
            let recovery = rng.below(5000) as f64 + 0.5;
            s.events.push(event(
                "retry.outcome",
                start + 9_000,
                json!({"retry.succeeded": ok, "retry.recovery_ms": recovery}),
            ));
        }
    } else if rng.chance(8) {
        s.attributes
            .insert("spanlens.tool.retry_count".into(), json!(1 + rng.below(4)));
    }
    s.rate_limits = rng.chance(40).then(|| RateLimits {
        requests: window(rng),
        tokens: window(rng),
        input_tokens: window(rng),
        output_tokens: window(rng),
        retry_after_ms: rng.chance(20).then_some(500),
    });
}

/// Traces of 1..10 spans under a root (a pipeline or an agent).
pub(super) fn generate(rng: &mut Rng, traces: u64) -> Vec<Span> {
    let mut out = Vec::new();
    for t in 0..traces {
        let n = 1 + rng.below(10);
        let t0 = instant(rng);
        for k in 0..n {
            let start = if k == 0 { t0 } else { instant(rng).max(t0) };
            let mut s = span(t, k, (k > 0).then_some(0), "x", 0, 0);
            s.start_time = Timestamp(start);
            fill(rng, &mut s);
            if k == 0 {
                s.kind = rng.pick(&[SpanKind::Pipeline, SpanKind::Agent]);
            }
            out.push(s);
        }
    }
    out
}

/// Sends spans in random order and batch sizes, some batches committed together; roots last
/// for a third of the traces.
pub(super) async fn send(rng: &mut Rng, store: &dyn Store, mut spans: Vec<Span>) {
    for i in (1..spans.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        spans.swap(i, j);
    }
    let (late, mut now): (Vec<Span>, Vec<Span>) = spans
        .into_iter()
        .partition(|s| s.parent_span_id.is_none() && s.trace_id.0[15] % 3 == 0);
    now.extend(late);
    let mut tickets = Vec::new();
    while !now.is_empty() {
        let n = (1 + rng.below(25) as usize).min(now.len());
        let batch: Vec<Span> = now.drain(..n).collect();
        tickets.push(store.submit("p", batch).expect("submit"));
        if rng.chance(50) {
            for t in tickets.drain(..) {
                t.await.expect("commit");
            }
        }
    }
    for t in tickets {
        t.await.expect("commit");
    }
}

/// Spans sent again: unchanged, or changed in what the rollups read (start moved too).
async fn resend(rng: &mut Rng, store: &dyn Store, stored: &[Span]) {
    let mut again = Vec::new();
    for s in stored {
        if !rng.chance(25) {
            continue;
        }
        let mut c = s.clone();
        if rng.chance(70) {
            if rng.chance(50) {
                c.start_time = Timestamp(instant(rng));
            }
            let start = c.start_time;
            fill(rng, &mut c);
            c.start_time = start;
            if c.parent_span_id.is_none() {
                c.kind = SpanKind::Pipeline;
            }
        }
        again.push(c.clone());
        if rng.chance(10) {
            // Twice in one batch: the second copy wins.
            fill(rng, &mut c);
            again.push(c);
        }
    }
    send(rng, store, again).await;
}

/// The catalog the re-pricing step uses: "m" and "x" at $1 and $2 per million input tokens.
fn catalog() -> PriceCatalog {
    super::build::test_catalog(&[("m", "^m$", 1.0, 0.5), ("x", "^x$", 2.0, 0.5)])
}

/// Everything the store holds for project `p`, read back span by span (the truth the rollups
/// must agree with), and the traces' summaries.
pub(super) async fn stored(store: &dyn Store, traces: u64) -> (Vec<Span>, Vec<TraceSummary>) {
    let mut spans = Vec::new();
    let mut summaries = Vec::new();
    for t in 0..traces {
        if let Some(d) = store.get_trace("p", tid(t)).await.unwrap() {
            spans.extend(d.spans);
            summaries.push(d.summary);
        }
    }
    (spans, summaries)
}

// ---------------------------------------------------------------------------------------------
// Brute force from spans, with the store's column rules (prepare.rs)

fn ne(v: &Option<String>) -> Option<String> {
    v.clone().filter(|x| !x.trim().is_empty())
}

fn clamp(v: u64) -> u64 {
    v.min(i64::MAX as u64)
}

struct Facts {
    start: u64,
    kind: &'static str,
    error: bool,
    duration: Option<u64>,
    ttft: Option<u64>,
    tokens: [u64; 6],
    cost: Option<i64>,
    unpriced: bool,
    retries: u64,
    request: Option<String>,
    response: Option<String>,
    provider: Option<String>,
    agent: Option<String>,
    user: Option<String>,
    tool: Option<String>,
}

fn facts(s: &Span) -> Facts {
    let u = s.usage.clone().unwrap_or_default();
    let events = s
        .events
        .iter()
        .filter(|e| e.name.eq_ignore_ascii_case("retry"))
        .count() as u64;
    let attr = s
        .attributes
        .get("spanlens.tool.retry_count")
        .and_then(|v| v.as_u64())
        .unwrap_or(0);
    Facts {
        start: clamp(s.start_time.0),
        kind: s.kind.as_str(),
        error: s.status == Status::Error,
        duration: s.duration_ns().map(clamp),
        ttft: s.ttft_ns.map(clamp),
        tokens: [
            u.input_tokens,
            u.output_tokens,
            u.cache_read_tokens,
            u.cache_write_tokens,
            u.reasoning_tokens,
            u.total_tokens,
        ]
        .map(clamp),
        cost: s.cost.as_ref().map(|c| c.amounts.total.0),
        unpriced: s.unpriced_reason.is_some(),
        retries: clamp(events.max(attr)),
        request: ne(&s.request_model),
        response: ne(&s.response_model),
        provider: ne(&s.provider),
        agent: ne(&s.agent_name),
        user: ne(&s.user_id),
        tool: (s.kind == SpanKind::Tool).then(|| {
            ne(&s.tool.as_ref().and_then(|t| t.name.clone())).unwrap_or_else(|| s.name.clone())
        }),
    }
}

fn in_range(t: u64, from: Option<u64>, to: Option<u64>) -> bool {
    from.is_none_or(|f| t >= f) && to.is_none_or(|x| t < x)
}

/// The group key of a span for a query, `None` when the query does not count it.
fn key_of(f: &Facts, q: &MetricsQuery) -> Option<Option<String>> {
    let mut kind = q.kind.map(|k| k.as_str());
    if q.group_by == GroupBy::Tool {
        if kind.is_some_and(|k| k != "tool") {
            return None;
        }
        kind = Some("tool");
    }
    if kind.is_some_and(|k| k != f.kind)
        || q.model
            .as_ref()
            .is_some_and(|m| f.request.as_ref() != Some(m) && f.response.as_ref() != Some(m))
        || q.provider
            .as_ref()
            .is_some_and(|p| f.provider.as_ref() != Some(p))
    {
        return None;
    }
    Some(match q.group_by {
        GroupBy::All => None,
        GroupBy::Model => f.request.clone().or(f.response.clone()),
        GroupBy::Provider => f.provider.clone(),
        GroupBy::Agent => f.agent.clone(),
        GroupBy::User => f.user.clone(),
        GroupBy::Day => {
            let day = f.start / DAY;
            Some(Timestamp(day * DAY).to_rfc3339()[..10].to_string())
        }
        GroupBy::Kind => Some(f.kind.to_string()),
        GroupBy::Tool => f.tool.clone(),
    })
}

#[derive(Default)]
struct Expect {
    spans: u64,
    errors: u64,
    retries: u128,
    tokens: [u128; 6],
    cost: i128,
    unpriced: u64,
    durations: Vec<u64>,
    ttfts: Vec<u64>,
}

pub(super) fn expected_metrics(spans: &[Span], q: &MetricsQuery) -> Vec<MetricRow> {
    let (from, to) = (q.from.map(|t| t.0), q.to.map(|t| t.0));
    let mut groups: BTreeMap<Option<String>, Expect> = BTreeMap::new();
    for s in spans {
        let f = facts(s);
        if !in_range(f.start, from, to) {
            continue;
        }
        let Some(key) = key_of(&f, q) else { continue };
        let g = groups.entry(key).or_default();
        g.spans += 1;
        g.errors += u64::from(f.error);
        g.retries += u128::from(f.retries);
        for (a, b) in g.tokens.iter_mut().zip(f.tokens) {
            *a += u128::from(b);
        }
        g.cost += i128::from(f.cost.unwrap_or(0));
        g.unpriced += u64::from(f.unpriced);
        g.durations.extend(f.duration);
        g.ttfts.extend(f.ttft);
    }
    let u = |v: u128| u64::try_from(v).unwrap_or(u64::MAX);
    let mut rows: Vec<MetricRow> = groups
        .into_iter()
        .map(|(key, g)| MetricRow {
            key,
            span_count: g.spans,
            error_count: g.errors,
            retry_count: u(g.retries),
            input_tokens: u(g.tokens[0]),
            output_tokens: u(g.tokens[1]),
            cache_read_tokens: u(g.tokens[2]),
            cache_write_tokens: u(g.tokens[3]),
            reasoning_tokens: u(g.tokens[4]),
            total_tokens: u(g.tokens[5]),
            cost: NanoUsd(i64::try_from(g.cost).unwrap_or(i64::MAX)),
            unpriced_span_count: g.unpriced,
            latency: Percentiles::bucketed(&g.durations),
            ttft: Percentiles::bucketed(&g.ttfts),
        })
        .collect();
    if q.group_by != GroupBy::Day {
        // The documented order, restated here: costliest, then most spans, then by key with
        // the group without a key last.
        rows.sort_by_key(|r| {
            (
                std::cmp::Reverse(r.cost),
                std::cmp::Reverse(r.span_count),
                r.key.is_none(),
                r.key.clone(),
            )
        });
    }
    rows
}

/// The histogram percentiles are also within the stated bound of the exact ones.
fn check_bound(spans: &[Span], q: &MetricsQuery, rows: &[MetricRow]) {
    let (from, to) = (q.from.map(|t| t.0), q.to.map(|t| t.0));
    for r in rows {
        let mut values: Vec<u64> = spans
            .iter()
            .map(facts)
            .filter(|f| in_range(f.start, from, to) && key_of(f, q) == Some(r.key.clone()))
            .filter_map(|f| f.duration)
            .collect();
        values.sort_unstable();
        for (p, got) in [
            (50.0, r.latency.p50),
            (95.0, r.latency.p95),
            (99.0, r.latency.p99),
        ] {
            let exact = percentile_nearest_rank(&values, p);
            match (exact, got) {
                (Some(e), Some(g)) => {
                    let err = (g as f64 - e as f64).abs() / (e.max(1) as f64);
                    assert!(err <= MAX_PERCENTILE_ERROR, "p{p} {g} vs exact {e}");
                }
                (e, g) => assert_eq!(e, g),
            }
        }
    }
}

fn expected_daily_cost(spans: &[Span], q: &MetricsQuery) -> Vec<DailyCost> {
    let (from, to) = (q.from.map(|t| t.0), q.to.map(|t| t.0));
    let mut keyed = q.clone();
    if keyed.group_by == GroupBy::Day {
        keyed.group_by = GroupBy::All;
    }
    // Cost, priced and unpriced spans per group and day.
    let mut sums: BTreeMap<(Option<String>, i64), (i128, u64, u64)> = BTreeMap::new();
    for s in spans {
        let f = facts(s);
        if !in_range(f.start, from, to) || (f.cost.is_none() && !f.unpriced) {
            continue;
        }
        let Some(key) = key_of(&f, &keyed) else {
            continue;
        };
        let slot = sums.entry((key, (f.start / DAY) as i64)).or_default();
        slot.0 += i128::from(f.cost.unwrap_or(0));
        slot.1 += u64::from(f.cost.is_some());
        slot.2 += u64::from(f.unpriced);
    }
    sums.into_iter()
        .map(|((key, day), (c, priced, unpriced))| DailyCost {
            key,
            day,
            cost: NanoUsd(i64::try_from(c).unwrap_or(i64::MAX)),
            priced_span_count: priced,
            unpriced_span_count: unpriced,
        })
        .collect()
}

fn expected_sessions(traces: &[TraceSummary], q: &SessionQuery) -> Vec<SessionSummary> {
    let (from, to) = (q.from.map(|t| t.0), q.to.map(|t| t.0));
    let mut by: BTreeMap<String, SessionSummary> = BTreeMap::new();
    for t in traces {
        let Some(sid) = t.session_id.clone() else {
            continue;
        };
        if !in_range(t.start_time.0, from, to)
            || q.user_id
                .as_ref()
                .is_some_and(|u| t.user_id.as_ref() != Some(u))
        {
            continue;
        }
        let s = by.entry(sid.clone()).or_insert(SessionSummary {
            session_id: sid,
            user_id: None,
            trace_count: 0,
            span_count: 0,
            error_count: 0,
            input_tokens: 0,
            output_tokens: 0,
            total_tokens: 0,
            total_cost: NanoUsd(0),
            unpriced_span_count: 0,
            first_time: t.start_time,
            last_time: t.end_time,
        });
        s.user_id = s.user_id.clone().max(t.user_id.clone());
        s.trace_count += 1;
        s.span_count += t.span_count;
        s.error_count += t.error_count;
        s.input_tokens = s.input_tokens.saturating_add(t.input_tokens);
        s.output_tokens = s.output_tokens.saturating_add(t.output_tokens);
        s.total_tokens = s.total_tokens.saturating_add(t.total_tokens);
        s.total_cost = NanoUsd(s.total_cost.0.saturating_add(t.total_cost.0));
        s.unpriced_span_count += t.unpriced_span_count;
        s.first_time = s.first_time.min(t.start_time);
        s.last_time = s.last_time.max(t.end_time);
    }
    let mut out: Vec<SessionSummary> = by.into_values().collect();
    out.sort_by(|a, b| {
        b.last_time
            .cmp(&a.last_time)
            .then_with(|| b.session_id.cmp(&a.session_id))
    });
    out
}

fn expected_recovery(spans: &[Span], b: Buckets) -> Value {
    let mut builder = RecoveryBuilder::new(b);
    for s in spans {
        let f = facts(s);
        let eligible =
            f.retries > 0 || matches!(f.kind, "llm" | "embedding") || f.provider.is_some();
        if eligible && s.start_time.0 >= b.from.0 && s.start_time.0 < b.to.0 {
            builder.add(s);
        }
    }
    serde_json::to_value(builder.finish()).unwrap()
}

/// JSON equality, with floats equal to 1e-9 relative (means are summed in another order).
fn assert_close(got: &Value, want: &Value, path: &str) {
    match (got, want) {
        (Value::Number(a), Value::Number(b)) if a.is_f64() || b.is_f64() => {
            let (a, b) = (a.as_f64().unwrap(), b.as_f64().unwrap());
            assert!(
                (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0),
                "{path}: {a} vs {b}"
            );
        }
        (Value::Array(a), Value::Array(b)) => {
            assert_eq!(a.len(), b.len(), "{path}: lengths");
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                assert_close(x, y, &format!("{path}[{i}]"));
            }
        }
        (Value::Object(a), Value::Object(b)) => {
            assert_eq!(
                a.keys().collect::<Vec<_>>(),
                b.keys().collect::<Vec<_>>(),
                "{path}: keys"
            );
            for (k, x) in a {
                assert_close(x, &b[k], &format!("{path}.{k}"));
            }
        }
        _ => assert_eq!(got, want, "{path}"),
    }
}

// ---------------------------------------------------------------------------------------------

/// Ranges to query: open, unaligned, on edges, empty, tiny, and beyond the data.
fn ranges(rng: &mut Rng, random: usize) -> Vec<(Option<u64>, Option<u64>)> {
    let mut v = vec![
        (None, None),
        (Some(BASE + 3 * HOUR + 17), None),
        (None, Some(BASE + 30 * HOUR + 5)),
        (Some(T0 + DAY), Some(T0 + 2 * DAY)),
        (Some(T0 + DAY - 1), Some(T0 + 2 * DAY + 1)),
        (Some(T0 + DAY + 5 * MIN), Some(T0 + DAY + 10 * MIN)),
        (Some(T0 + DAY + HOUR), Some(T0 + DAY + HOUR + 1)),
        (Some(BASE + 7 * HOUR), Some(BASE + 7 * HOUR)),
        (Some(T0 + 40 * DAY), None),
    ];
    for _ in 0..random {
        let a = instant(rng) - HOUR;
        let b = a + rng.below(SPREAD);
        v.push((Some(a), Some(b)));
    }
    v
}

fn filters() -> Vec<MetricsQuery> {
    let mut v = vec![MetricsQuery::new("p", GroupBy::All)];
    let mut q = MetricsQuery::new("p", GroupBy::All);
    q.kind = Some(SpanKind::Llm);
    v.push(q);
    let mut q = MetricsQuery::new("p", GroupBy::All);
    q.model = Some("x".into());
    v.push(q);
    let mut q = MetricsQuery::new("p", GroupBy::All);
    q.provider = Some("openai".into());
    q.model = Some("m".into());
    v.push(q);
    let mut q = MetricsQuery::new("p", GroupBy::All);
    q.kind = Some(SpanKind::Tool);
    v.push(q);
    v
}

/// Every query the rollups answer, over many ranges and filters, against brute force.
/// `random_ranges`: the harness's [`StoreHarness::random_ranges`].
pub(super) async fn check_everything(
    rng: &mut Rng,
    random_ranges: usize,
    store: &dyn Store,
    traces: u64,
) {
    let (spans, summaries) = stored(store, traces).await;
    assert_eq!(store.count_spans("p").await.unwrap(), spans.len() as u64);
    let ts = |v: Option<u64>| v.map(Timestamp);
    for (from, to) in ranges(rng, random_ranges) {
        for base in filters() {
            for g in GroupBy::ALL {
                let mut q = base.clone();
                q.group_by = g;
                q.from = ts(from);
                q.to = ts(to);
                let got = store.metrics(&q).await.unwrap();
                let want = expected_metrics(&spans, &q);
                assert_eq!(got, want, "metrics {q:?}");
                check_bound(&spans, &q, &got);
            }
            let mut q = base.clone();
            q.group_by = rng.pick(&GroupBy::ALL);
            q.from = ts(from);
            q.to = ts(to);
            assert_eq!(
                store.daily_cost(&q).await.unwrap(),
                expected_daily_cost(&spans, &q),
                "daily cost {q:?}"
            );
        }
        // Sessions over the range, whole and by user, walked page by page.
        for user in [None, Some("ann"), Some("bob")] {
            let mut q = SessionQuery::new("p");
            q.from = ts(from);
            q.to = ts(to);
            q.user_id = user.map(str::to_string);
            q.limit = 1 + rng.below(3) as u32;
            let want = expected_sessions(&summaries, &q);
            let mut got = Vec::new();
            loop {
                let page = store.list_sessions(&q).await.unwrap();
                assert!(page.items.len() <= q.limit as usize);
                got.extend(page.items);
                match page.next_cursor {
                    Some(c) => q.cursor = Some(c),
                    None => break,
                }
            }
            assert_eq!(got, want, "sessions {from:?}..{to:?} user {user:?}");
        }
    }
    for s in expected_sessions(&summaries, &SessionQuery::new("p")) {
        let d = store
            .get_session("p", &s.session_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(d.session, s);
    }
    // Time series: random slice bounds, each slice and the whole against brute force. Slices
    // shorter than a bucket too (neighbours then share the spans scanned between them).
    for round in 0..5 {
        let width = if round % 2 == 0 { 12 * HOUR } else { HOUR / 3 };
        let mut bounds = vec![BASE - HOUR + rng.below(HOUR)];
        for _ in 0..(1 + rng.below(12)) {
            let last = bounds[bounds.len() - 1];
            bounds.push(last + rng.below(width));
        }
        let bounds: Vec<Timestamp> = bounds.into_iter().map(Timestamp).collect();
        for base in filters() {
            let mut q = base.clone();
            q.group_by = rng.pick(&GroupBy::ALL);
            let series = store.metrics_series(&q, &bounds).await.unwrap();
            q.from = bounds.first().copied();
            q.to = bounds.last().copied();
            assert_eq!(series.rows, expected_metrics(&spans, &q), "series {q:?}");
            assert_eq!(series.slices.len(), bounds.len() - 1);
            for (w, got) in bounds.windows(2).zip(&series.slices) {
                q.from = Some(w[0]);
                q.to = Some(w[1]);
                assert_eq!(got, &expected_metrics(&spans, &q), "slice {q:?}");
            }
        }
    }
    // The recovery report over ranges and bucket counts.
    for (from, to) in ranges(rng, random_ranges) {
        let (Some(from), Some(to)) = (from, to) else {
            continue;
        };
        if from >= to {
            continue;
        }
        for count in [1, 3, 7] {
            let b = Buckets {
                from: Timestamp(from),
                to: Timestamp(to),
                count,
            };
            let got = serde_json::to_value(store.recovery_report("p", b).await.unwrap()).unwrap();
            assert_close(&got, &expected_recovery(&spans, b), "recovery");
        }
    }
}

/// Random traffic, checked after it arrives, after spans are sent again, after re-pricing and
/// on a store opened again.
async fn run(h: &dyn StoreHarness, seed: u64, traces: u64) {
    let mut rng = Rng(seed | 1);
    let (db, store) = fresh(h).await;
    let spans = generate(&mut rng, traces);
    send(&mut rng, &*store, spans.clone()).await;
    check_everything(&mut rng, h.random_ranges(), &*store, traces).await;
    let unpriced = async |store: &dyn Store| {
        store
            .metrics(&MetricsQuery::new("p", GroupBy::All))
            .await
            .unwrap()[0]
            .unpriced_span_count
    };
    assert!(
        unpriced(&*store).await > 0,
        "some model calls have no price"
    );

    let (now, _) = stored(&*store, traces).await;
    resend(&mut rng, &*store, &now).await;
    check_everything(&mut rng, h.random_ranges(), &*store, traces).await;

    let report = reprice(
        &*store,
        &SpanScan {
            project: "p".into(),
            ..Default::default()
        },
        &catalog(),
        false,
    )
    .await
    .unwrap();
    assert!(report.changed > 0, "the re-pricing step changes costs");
    assert!(report.newly_priced > 0, "and prices some unpriced calls");
    check_everything(&mut rng, h.random_ranges(), &*store, traces).await;

    // Reopened, the same answers.
    drop(store);
    let store = open(&*db).await;
    check_everything(&mut rng, h.random_ranges(), &*store, traces).await;
}

/// Random traffic (seed 1, 60 traces) against brute force: see the module documentation.
pub async fn rollups_match_brute_force_seed_1(h: &dyn StoreHarness) {
    run(h, 1, 60).await;
}

/// Random traffic (another seed, 90 traces) against brute force.
pub async fn rollups_match_brute_force_seed_2(h: &dyn StoreHarness) {
    run(h, 0x5eed_0002, 90).await;
}

/// Random traffic (a third seed, 40 traces) against brute force.
pub async fn rollups_match_brute_force_seed_3(h: &dyn StoreHarness) {
    run(h, 0xdead_beef, 40).await;
}

/// Traffic in time order, as a live server sees it: every bucket gets many commits, hour and
/// day rows are built as time moves past them (from the sums the writer keeps in memory), and
/// spans re-sent along the way change buckets already built. Ranges on whole days and hours
/// read those rows.
pub async fn time_ordered_ingest_builds_hour_and_day_rows_that_add_up(h: &dyn StoreHarness) {
    let (db, store) = fresh(h).await;
    let mut rng = Rng(99);
    let mut spans = generate(&mut rng, 220);
    spans.sort_by_key(|s| s.start_time);
    let mut sent: Vec<Span> = Vec::new();
    for chunk in spans.chunks(7) {
        store.write("p", chunk.to_vec()).await.unwrap();
        sent.extend_from_slice(chunk);
        if rng.chance(15) {
            // An older span sent again, changed: its bucket may be built already.
            let i = rng.below(sent.len() as u64) as usize;
            let mut c = sent[i].clone();
            let start = c.start_time;
            fill(&mut rng, &mut c);
            c.start_time = start;
            store.write("p", vec![c.clone()]).await.unwrap();
            sent[i] = c;
        }
    }
    let check = async |store: &dyn Store, truth: &[Span]| {
        for (from, to) in [
            (None, None),
            (Some(T0 + DAY), Some(T0 + 3 * DAY)),
            (Some(T0 + DAY + HOUR), Some(T0 + 2 * DAY + 5 * HOUR)),
            (Some(BASE + 17), Some(BASE + SPREAD - 17)),
        ] {
            for g in GroupBy::ALL {
                let mut q = MetricsQuery::new("p", g);
                q.from = from.map(Timestamp);
                q.to = to.map(Timestamp);
                assert_eq!(
                    store.metrics(&q).await.unwrap(),
                    expected_metrics(truth, &q),
                    "{q:?}"
                );
            }
            if let (Some(from), Some(to)) = (from, to) {
                let b = Buckets {
                    from: Timestamp(from),
                    to: Timestamp(to),
                    count: 5,
                };
                assert_close(
                    &serde_json::to_value(store.recovery_report("p", b).await.unwrap()).unwrap(),
                    &expected_recovery(truth, b),
                    "recovery",
                );
            }
        }
    };
    let (truth, _) = stored(&*store, 220).await;
    check(&*store, &truth).await;
    // Reopened (nothing kept in memory), then more traffic builds the rest from rows.
    drop(store);
    let store = open(&*db).await;
    let mut late = span(500, 1, None, "x", 0, 0);
    late.start_time = Timestamp(BASE + SPREAD + 3 * DAY);
    store.write("p", vec![late]).await.unwrap();
    let (truth2, _) = stored(&*store, 501).await;
    assert_eq!(truth2.len(), truth.len() + 1);
    check(&*store, &truth2).await;
}

/// Many spans in one quarter-hour bucket, re-sent in many commits: the bucket's rows are
/// compacted and still add up.
pub async fn many_commits_to_one_bucket_compact_and_add_up(h: &dyn StoreHarness) {
    let (_db, store) = fresh(h).await;
    let mut rng = Rng(7);
    // Spans an hour before and after, so the queries below cover the bucket whole (a range is
    // clamped to the project's spans) and read its rows rather than its spans.
    let mut anchors = vec![span(40, 1, None, "x", 0, 0), span(41, 1, None, "x", 0, 0)];
    anchors[0].start_time = Timestamp(T0 + DAY - HOUR);
    anchors[1].start_time = Timestamp(T0 + DAY + HOUR);
    store.write("p", anchors).await.unwrap();
    let mut all = Vec::new();
    for t in 0..40u64 {
        let mut s = span(t, 1, None, "x", 0, 0);
        s.start_time = Timestamp(T0 + DAY + 2 * MIN + rng.below(MIN));
        fill(&mut rng, &mut s);
        store.write("p", vec![s.clone()]).await.unwrap();
        all.push(s);
    }
    for s in all.iter_mut().take(25) {
        fill(&mut rng, s);
        store.write("p", vec![s.clone()]).await.unwrap();
    }
    let (spans, _) = stored(&*store, 42).await;
    for g in GroupBy::ALL {
        let mut q = MetricsQuery::new("p", g);
        q.from = Some(Timestamp(T0 + DAY));
        q.to = Some(Timestamp(T0 + DAY + 5 * MIN));
        assert_eq!(
            store.metrics(&q).await.unwrap(),
            expected_metrics(&spans, &q)
        );
        let q = MetricsQuery::new("p", g);
        assert_eq!(
            store.metrics(&q).await.unwrap(),
            expected_metrics(&spans, &q)
        );
    }
}

/// Ids and spans of another project never mix in.
pub async fn projects_are_kept_apart(h: &dyn StoreHarness) {
    let (_db, store) = fresh(h).await;
    let mut rng = Rng(11);
    let spans = generate(&mut rng, 10);
    store.write("p", spans.clone()).await.unwrap();
    let mut other = spans.clone();
    for s in &mut other {
        s.cost = None;
        s.rate_limits = None;
    }
    store.write("q", other).await.unwrap();
    let (truth, _) = stored(&*store, 10).await;
    for g in GroupBy::ALL {
        let q = MetricsQuery::new("p", g);
        assert_eq!(
            store.metrics(&q).await.unwrap(),
            expected_metrics(&truth, &q)
        );
    }
    let b = Buckets {
        from: Timestamp(T0),
        to: Timestamp(T0 + 5 * DAY),
        count: 5,
    };
    assert_close(
        &serde_json::to_value(store.recovery_report("p", b).await.unwrap()).unwrap(),
        &expected_recovery(&truth, b),
        "recovery",
    );
}

/// Moves a span (its start, end and events) so that the spread of `generate` becomes `factor`
/// times as long: 50 hours become 25 days with a factor of 12.
fn stretch(s: &mut Span, factor: u64) {
    let shift = s.start_time.0.saturating_sub(BASE) * (factor - 1);
    s.start_time = Timestamp(s.start_time.0 + shift);
    s.end_time = s.end_time.map(|e| Timestamp(e.0 + shift));
    for e in &mut s.events {
        e.time = Timestamp(e.time.0 + shift);
    }
}

/// Spans over 25 days: by-user answers over whole weeks read the users family's week rows —
/// kept at ingest in random and in time order, after spans sent again moved between weeks,
/// and after a reopen — and equal a recomputation from the spans.
pub async fn week_rows_of_users_add_up(h: &dyn StoreHarness) {
    // 2025-01-02, a Thursday: week buckets start on Thursdays (seven days from the epoch).
    let thursday = T0 + DAY;
    for ordered in [false, true] {
        let (db, store) = fresh(h).await;
        let mut rng = Rng(if ordered { 23 } else { 29 });
        let mut spans = generate(&mut rng, 120);
        for s in &mut spans {
            stretch(s, 12);
        }
        if ordered {
            spans.sort_by_key(|s| s.start_time);
            for chunk in spans.chunks(9) {
                store.write("p", chunk.to_vec()).await.unwrap();
            }
        } else {
            send(&mut rng, &*store, spans.clone()).await;
        }
        let check = async |store: &dyn Store, rng: &mut Rng| {
            let (truth, _) = stored(store, 120).await;
            let mut ranges = vec![
                (None, None),
                (Some(thursday), Some(thursday + 14 * DAY)),
                (Some(thursday - 1), Some(thursday + 21 * DAY + 1)),
                (
                    Some(thursday + 7 * DAY + HOUR),
                    Some(thursday + 14 * DAY + 3 * HOUR),
                ),
            ];
            for _ in 0..4 {
                let a = T0 + rng.below(12 * DAY);
                ranges.push((Some(a), Some(a + 7 * DAY + rng.below(10 * DAY))));
            }
            for (from, to) in ranges {
                for g in [GroupBy::User, GroupBy::Model, GroupBy::All] {
                    let mut q = MetricsQuery::new("p", g);
                    q.from = from.map(Timestamp);
                    q.to = to.map(Timestamp);
                    assert_eq!(
                        store.metrics(&q).await.unwrap(),
                        expected_metrics(&truth, &q),
                        "{q:?}"
                    );
                }
            }
            // A series of weekly slices by user.
            let bounds: Vec<Timestamp> =
                (0..4).map(|w| Timestamp(thursday + w * 7 * DAY)).collect();
            let mut q = MetricsQuery::new("p", GroupBy::User);
            let series = store.metrics_series(&q, &bounds).await.unwrap();
            for (w, got) in bounds.windows(2).zip(&series.slices) {
                q.from = Some(w[0]);
                q.to = Some(w[1]);
                assert_eq!(got, &expected_metrics(&truth, &q), "slice {q:?}");
            }
        };
        check(&*store, &mut rng).await;
        // Some spans sent again, moved to another week or changed.
        let (now, _) = stored(&*store, 120).await;
        let mut again = Vec::new();
        for s in now.iter().step_by(4) {
            let mut c = s.clone();
            let start = c.start_time;
            fill(&mut rng, &mut c);
            c.start_time = start;
            if rng.chance(50) {
                let shift = 8 * DAY + rng.below(DAY);
                c.start_time = Timestamp(c.start_time.0 - shift.min(c.start_time.0 - T0));
                c.end_time = c.end_time.map(|_| c.start_time);
                c.events.clear();
            }
            if c.parent_span_id.is_none() {
                c.kind = SpanKind::Pipeline;
            }
            again.push(c);
        }
        store.write("p", again).await.unwrap();
        check(&*store, &mut rng).await;
        drop(store);
        let store = open(&*db).await;
        check(&*store, &mut rng).await;
    }
}
