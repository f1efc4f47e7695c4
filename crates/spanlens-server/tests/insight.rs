//! The insight endpoints over a real socket: cost forecast, cost reconciliation and the error
//! recovery report over a range larger than any cap.

use serde_json::Value;
use spanlens_core::{
    price_span, Cost, CostBreakdown, CostSource, Event, NanoUsd, Payload, PriceCatalog,
    RateLimitWindow, RateLimits, Span, SpanId, SpanKind, Status, Timestamp, TraceId, Usage,
};
use std::net::SocketAddr;
use std::sync::Arc;

mod common;

use common::{local_config, Running};

const NS_PER_DAY: u64 = 86_400_000_000_000;

struct Server {
    http: SocketAddr,
    _running: Running,
}

impl Server {
    /// A server over a store that already holds `spans` in the default project.
    fn with_spans(dir: &std::path::Path, spans: Vec<Span>) -> Server {
        let store = Arc::new(spanlens_server::open_store(dir).unwrap());
        spanlens_store::SpanWriter::submit(&*store, "default", spans)
            .and_then(|ticket| ticket.wait())
            .unwrap();
        let running = Running::start(local_config(dir), store);
        Server {
            http: running.bound.http,
            _running: running,
        }
    }

    fn get(&self, path: &str) -> (u16, Value) {
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build(),
        );
        let mut resp = agent
            .get(&format!("http://{}{path}", self.http))
            .call()
            .unwrap();
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap();
        (status, serde_json::from_str(&text).unwrap())
    }
}

fn today() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    now / NS_PER_DAY
}

/// An LLM span at noon of `day` costing exactly `cost_nano` (computed).
fn llm(n: u64, day: u64, model: &str, cost_nano: i64) -> Span {
    Span {
        trace_id: TraceId((u128::from(n) + 1).to_be_bytes()),
        span_id: SpanId((n + 1).to_be_bytes()),
        name: format!("chat {model}"),
        kind: SpanKind::Llm,
        start_time: Timestamp(day * NS_PER_DAY + NS_PER_DAY / 2),
        end_time: Some(Timestamp(day * NS_PER_DAY + NS_PER_DAY / 2 + 1_000_000)),
        request_model: Some(model.into()),
        usage: Some(Usage {
            input_tokens: 100,
            output_tokens: 10,
            total_tokens: 110,
            ..Default::default()
        }),
        cost: Some(Cost::computed_total(NanoUsd(cost_nano))),
        ..Default::default()
    }
}

#[test]
fn forecast_continues_a_linear_trend_per_model_and_validates_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let t = today();
    // Twenty complete days: "a" grows by $1 a day, "b" costs $0.50 every day.
    let mut spans = Vec::new();
    for i in 0..20u64 {
        let day = t - 20 + i;
        spans.push(llm(2 * i, day, "a", 1_000_000_000 * (i as i64 + 1)));
        spans.push(llm(2 * i + 1, day, "b", 500_000_000));
    }
    // Today is partial and is not history.
    spans.push(llm(999, t, "a", 77));
    let server = Server::with_spans(dir.path(), spans);

    let (status, v) = server.get("/api/v1/forecast?horizon_days=7&group_by=model");
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["horizon_days"], 7);
    let groups = v["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2);
    let a = &groups[0];
    assert_eq!(a["key"], "a");
    // Spending began 20 days ago inside the 56-day window: that first (partial) day is dropped.
    assert_eq!(a["history"]["days"], 19);
    assert_eq!(a["method"], "linear_trend_weekly");
    let points = a["points"].as_array().unwrap();
    assert_eq!(points.len(), 7);
    for (h, p) in points.iter().enumerate() {
        let want = 21.0 + h as f64;
        assert!((p["cost_usd"].as_f64().unwrap() - want).abs() < 1e-6, "{p}");
    }
    assert!((a["total"]["cost_usd"].as_f64().unwrap() - (21..28).sum::<i32>() as f64).abs() < 1e-5);
    let b = &groups[1];
    assert!((b["points"][0]["cost_usd"].as_f64().unwrap() - 0.5).abs() < 1e-6);
    // The project total is the sum: $(21 + 0.5) the first day.
    assert!((v["total"]["points"][0]["cost_usd"].as_f64().unwrap() - 21.5).abs() < 1e-6);

    // Not enough history in a 2-day window: reported per series, not a failure.
    let (status, v) = server.get("/api/v1/forecast?horizon_days=3&history_days=3");
    assert_eq!(status, 200);
    assert_eq!(v["total"]["history"]["days"], 3);
    assert_eq!(v["total"]["method"], "linear_trend");

    for (q, param) in [
        ("horizon_days=0", "horizon_days"),
        ("horizon_days=366", "horizon_days"),
        ("horizon_days=x", "horizon_days"),
        ("history_days=2", "history_days"),
        ("group_by=day", "group_by"),
    ] {
        let (status, v) = server.get(&format!("/api/v1/forecast?{q}"));
        assert_eq!(status, 400, "{q}");
        let msg = v["error"].as_str().unwrap();
        let value = q.split('=').nth(1).unwrap();
        assert!(msg.contains(param) && msg.contains(value), "{msg}");
    }
}

#[test]
fn reconciliation_compares_reported_costs_with_the_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let day = today() - 1;
    let catalog = PriceCatalog::builtin();
    let mut spans = Vec::new();
    for n in 0..3u64 {
        let mut s = llm(n, day, "gpt-4o", 0);
        s.usage = Some(Usage {
            input_tokens: 1_000_000,
            output_tokens: 0,
            total_tokens: 1_000_000,
            ..Default::default()
        });
        s.cost = None;
        price_span(&mut s, catalog);
        let computed = s.cost.as_ref().unwrap().amounts.total;
        // The provider billed 10 % more than the catalog says.
        s.cost = Some(Cost {
            source: CostSource::Reported,
            amounts: CostBreakdown {
                total: NanoUsd(computed.0 + computed.0 / 10),
                ..Default::default()
            },
            pricing_id: None,
            pricing_version: None,
            computed: None,
        });
        spans.push(s);
    }
    // A computed-only span does not take part.
    spans.push(llm(10, day, "gpt-4o", 5));
    let server = Server::with_spans(dir.path(), spans);

    let (status, v) = server.get("/api/v1/reconciliation");
    assert_eq!(status, 200, "{v}");
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["model"], "gpt-4o");
    assert_eq!(rows[0]["spans"], 3);
    assert!((rows[0]["difference_pct"].as_f64().unwrap() - 10.0).abs() < 1e-6);
    assert_eq!(v["total"]["spans"], 3);

    let (status, v) = server.get("/api/v1/reconciliation?to=2000-01-01T00:00:00Z");
    assert_eq!(status, 200);
    assert!(v["rows"].as_array().unwrap().is_empty());
    let (status, v) = server.get("/api/v1/reconciliation?from=yesterday");
    assert_eq!(status, 400);
    assert!(v["error"].as_str().unwrap().contains("from"));
}

/// More traces than the report ever read before (5,000, newest first), each with one retried
/// call; the oldest trace also holds the lowest rate-limit headroom. Only a report over the
/// whole range counts every retry and sees that headroom.
#[test]
fn recovery_report_is_exact_over_the_whole_range() {
    const TRACES: u64 = 6_000;
    const MS: u64 = 1_000_000;
    let t0 = 1_767_225_600_000_000_000u64; // 2026-01-01T00:00:00Z
    let mut spans = Vec::new();
    for n in 0..TRACES {
        let mut tid = [0u8; 16];
        tid[8..].copy_from_slice(&(n + 1).to_be_bytes());
        let start = t0 + n * 10_000 * MS; // one trace every 10 s, oldest first
        let base = |k: u8, kind: SpanKind, name: &str| Span {
            trace_id: TraceId(tid),
            span_id: SpanId([k, 0, 0, 0, 0, 0, 0, 1]),
            parent_span_id: (k != 1).then_some(SpanId([1, 0, 0, 0, 0, 0, 0, 1])),
            name: name.into(),
            kind,
            start_time: Timestamp(start + u64::from(k) * MS),
            end_time: Some(Timestamp(start + 900 * MS)),
            status: Status::Ok,
            ..Default::default()
        };
        spans.push(base(1, SpanKind::Agent, "agent"));
        // A call that failed once (rate limited) and then succeeded.
        let mut call = base(2, SpanKind::Llm, "chat");
        call.provider = Some("openai".into());
        call.events.push(Event {
            name: "retry".into(),
            time: Timestamp(start + 100 * MS),
            attributes: [
                ("retry.attempt".to_string(), serde_json::json!(1)),
                (
                    "error.type".to_string(),
                    serde_json::json!("RateLimitError"),
                ),
            ]
            .into_iter()
            .collect(),
        });
        spans.push(call);
        // A call without retries whose provider headers say how much of the limit is left:
        // 50% everywhere but in the oldest trace, which used it all.
        let mut headers = base(3, SpanKind::Llm, "chat");
        headers.provider = Some("openai".into());
        headers.rate_limits = Some(RateLimits {
            requests: Some(RateLimitWindow {
                limit: Some(1_000),
                remaining: Some(if n == 0 { 0 } else { 500 }),
                reset: None,
            }),
            ..Default::default()
        });
        spans.push(headers);
        // A tool whose payload mentions rate limits but that has none: not a snapshot.
        let mut tool = base(4, SpanKind::Tool, "lookup");
        tool.input = Some(Payload::from_text(r#"{"rate_limits": "see docs"}"#, None));
        spans.push(tool);
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::with_spans(dir.path(), spans);
    let from = Timestamp(t0).to_rfc3339();
    let to = Timestamp(t0 + TRACES * 10_000 * MS).to_rfc3339();
    let (status, r) = server.get(&format!("/api/v1/recovery?from={from}&to={to}&buckets=4"));
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["spans_with_retries"], TRACES);
    assert_eq!(r["retries"], TRACES);
    assert_eq!(r["recovered"], TRACES);
    assert_eq!(r["by_error_type"][0]["key"], "RateLimitError");
    assert_eq!(r["by_error_type"][0]["retries"], TRACES);
    assert_eq!(r["timelines"].as_array().unwrap().len(), 200);
    assert_eq!(r["timelines_truncated"], true);
    let series = r["rate_limits"].as_array().unwrap();
    assert_eq!(series.len(), 1, "{series:?}");
    assert_eq!(series[0]["samples"], TRACES);
    assert_eq!(series[0]["min_headroom"], 0.0);
    assert_eq!(series[0]["buckets"][0]["min_headroom"], 0.0);
    assert_eq!(series[0]["buckets"][3]["min_headroom"], 0.5);
    // A sub-range counts only its own spans (start time in [from, to)).
    let to = Timestamp(t0 + 100 * 10_000 * MS).to_rfc3339();
    let (_, r) = server.get(&format!("/api/v1/recovery?from={from}&to={to}"));
    assert_eq!(r["spans_with_retries"], 100);
    assert_eq!(r["rate_limits"][0]["samples"], 100);
}

/// A call of `model` on `day` that the catalog could not price, by user "ann" in session "s1".
fn unpriced(n: u64, day: u64, model: &str) -> Span {
    let mut s = llm(n, day, model, 0);
    s.cost = None;
    s.unpriced_reason = Some(format!("no price for {model:?}"));
    s.user_id = Some("ann".into());
    s.session_id = Some("s1".into());
    s.agent_name = Some("extractor".into());
    s
}

/// Issue #12 item 7: every cost the API returns that sums spans comes with the number of
/// unpriced model calls in it, so a client can tell "unpriced" from a genuine $0.
#[test]
fn every_cost_comes_with_its_unpriced_calls() {
    let dir = tempfile::tempdir().unwrap();
    let t = today();
    let mut spans = Vec::new();
    for i in 0..10u64 {
        spans.push(llm(2 * i, t - 10 + i, "gpt-4o", 1_000_000));
        spans.push(unpriced(2 * i + 1, t - 10 + i, "acme-ft"));
    }
    let server = Server::with_spans(dir.path(), spans);
    let hex = |n: u64| format!("{:032x}", u128::from(n) + 1);

    // Trace list, detail and tree: the trace costs nothing priced and says why.
    let (_, v) = server.get("/api/v1/traces?limit=100");
    let row = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["trace_id"] == hex(1))
        .unwrap();
    assert_eq!(
        (
            row["total_cost_usd"].as_f64(),
            row["unpriced_span_count"].as_u64()
        ),
        (Some(0.0), Some(1))
    );
    let (_, v) = server.get(&format!("/api/v1/traces/{}", hex(1)));
    assert_eq!(v["trace"]["unpriced_span_count"], 1, "{v}");
    let (_, v) = server.get(&format!("/api/v1/traces/{}/tree", hex(1)));
    assert_eq!(v["trace"]["unpriced_span_count"], 1);
    assert_eq!(v["spans"][0]["unpriced"], true);
    assert!(v["spans"][0]["cost_usd"].is_null());
    let (_, v) = server.get(&format!("/api/v1/traces/{}/tree", hex(0)));
    assert_eq!(v["spans"][0]["unpriced"], false);

    // Sessions.
    let (_, v) = server.get("/api/v1/sessions");
    assert_eq!(v["items"][0]["session_id"], "s1");
    assert_eq!(v["items"][0]["unpriced_span_count"], 10);
    let (_, v) = server.get("/api/v1/sessions/s1");
    assert_eq!(v["session"]["unpriced_span_count"], 10);

    // Metrics: the model without a price is a row with its tokens and its count, not a $0 row.
    let (_, v) = server.get("/api/v1/metrics/model");
    let rows = v["rows"].as_array().unwrap();
    let ft = rows.iter().find(|r| r["key"] == "acme-ft").unwrap();
    assert_eq!(ft["unpriced_span_count"], 10);
    assert_eq!(ft["input_tokens"], 1000);
    assert_eq!(ft["cost_usd"].as_f64(), Some(0.0));
    let gpt = rows.iter().find(|r| r["key"] == "gpt-4o").unwrap();
    assert_eq!(gpt["unpriced_span_count"], 0);
    for (group, key) in [("user", "ann"), ("agent", "extractor")] {
        let (_, v) = server.get(&format!("/api/v1/metrics/{group}"));
        let r = v["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["key"] == key)
            .unwrap_or_else(|| panic!("{group}: {v}"));
        assert_eq!(r["unpriced_span_count"], 10, "{group}");
    }
    let (_, v) = server.get("/api/v1/metrics/day");
    assert!(v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["unpriced_span_count"] == 1));
    // The time series the dashboard draws: each slice counts its own.
    let from = Timestamp((t - 10) * NS_PER_DAY).to_rfc3339();
    let to = Timestamp(t * NS_PER_DAY).to_rfc3339();
    let (status, v) = server.get(&format!(
        "/api/v1/metrics/model?from={from}&to={to}&buckets=5"
    ));
    assert_eq!(status, 200, "{v}");
    for b in v["buckets"].as_array().unwrap() {
        let ft = b["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["key"] == "acme-ft")
            .unwrap();
        assert_eq!(ft["unpriced_span_count"], 2, "{b}");
    }

    // Forecast: the unpriced model is not forecast as $0 a day; it is listed apart.
    let (_, v) = server.get("/api/v1/forecast?horizon_days=7&group_by=model");
    let groups = v["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{v}");
    assert_eq!(groups[0]["key"], "gpt-4o");
    assert_eq!(groups[0]["history"]["unpriced_span_count"], 0);
    assert_eq!(
        v["unpriced_groups"],
        serde_json::json!([{"key": "acme-ft", "unpriced_span_count": 10}])
    );
    assert_eq!(v["total"]["history"]["unpriced_span_count"], 10);
    let (_, v) = server.get("/api/v1/forecast?horizon_days=7");
    assert_eq!(v["total"]["history"]["unpriced_span_count"], 10);
    assert_eq!(v["unpriced_groups"], serde_json::json!([]));
}
