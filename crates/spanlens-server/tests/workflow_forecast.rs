//! `GET /api/v1/forecast/workflow` with answers worked out by hand, on SQLite always and on
//! PostgreSQL and ClickHouse with the features and the test servers (`SPANLENS_TEST_POSTGRES`,
//! `SPANLENS_TEST_CLICKHOUSE`).
//!
//! The workflow `support` runs four times in a 10-day window, tagged `prod`, each run one
//! gpt-4o call of 40,000 / 80,000 / 120,000 / 160,000 input tokens ($2.50 per million: $0.10,
//! $0.20, $0.30, $0.40), plus a `staging` run of 400,000 tokens ($1.00) from another service,
//! a run after the window and a run of another workflow.

use serde_json::{json, Value};

mod common;

use common::any_store::{self, Srv};
use common::otlp_json::{kv, span};

const DAY: u64 = 86_400_000_000_000;
/// 2026-11-01T00:00:00Z, the window's start.
const T0: u64 = 1_793_491_200_000_000_000;

/// One run: a root named `name` on day `day` with `tag`, and a gpt-4o call of `input` tokens.
fn run(n: u8, name: &str, day: u64, tag: &str, service: &str, input: u64) -> Value {
    let trace = format!("{n:032x}");
    let base = T0 + day * DAY;
    let root = span(
        &trace,
        1,
        None,
        name,
        base,
        (0, 1000),
        vec![kv("spanlens.tags", json!(tag))],
        None,
    );
    let call = span(
        &trace,
        2,
        Some(1),
        "chat",
        base,
        (10, 900),
        vec![
            kv("gen_ai.operation.name", json!("chat")),
            kv("gen_ai.system", json!("openai")),
            kv("gen_ai.request.model", json!("gpt-4o")),
            kv("gen_ai.usage.input_tokens", json!(input)),
            kv("gen_ai.usage.output_tokens", json!(0)),
        ],
        None,
    );
    json!({"resource": {"attributes": [kv("service.name", json!(service))]},
           "scopeSpans": [{"spans": [root, call]}]})
}

fn send(s: &Srv) {
    let body = json!({"resourceSpans": [
        run(1, "support", 1, "prod", "checkout", 40_000),
        run(2, "support", 2, "prod", "checkout", 80_000),
        run(3, "support", 5, "prod", "checkout", 120_000),
        run(4, "support", 9, "prod", "checkout", 160_000),
        run(5, "support", 3, "staging", "staging-svc", 400_000),
        run(6, "support", 12, "prod", "checkout", 40_000),
        run(7, "billing", 4, "prod", "checkout", 40_000),
    ]});
    let (status, answer, _) = s.call("POST", "/v1/traces", &[], Some(&body));
    assert_eq!(status, 200, "{answer}");
}

fn get(s: &Srv, query: &str) -> Value {
    let window = format!(
        "from={}&to={}",
        spanlens_core::Timestamp(T0).to_rfc3339(),
        spanlens_core::Timestamp(T0 + 10 * DAY).to_rfc3339()
    );
    let (status, answer, _) = s.call(
        "GET",
        &format!("/api/v1/forecast/workflow?{window}&{query}"),
        &[],
        None,
    );
    assert_eq!(status, 200, "{query}: {answer}");
    answer
}

fn close(v: &Value, want: f64) -> bool {
    v.as_f64().is_some_and(|x| (x - want).abs() < 1e-9)
}

fn checks(s: &Srv) {
    send(s);
    // The four prod runs: mean $0.25, median the 2nd of four ($0.20), p95 the 4th ($0.40);
    // the mean's interval 0.25 ± 3.182 × 0.1291 / 2 (t with 3 degrees of freedom); 0.4 runs a
    // day; 1,000 runs cost $250.
    let a = get(s, "name=support&tag=prod&runs=1000&horizon_days=30");
    assert_eq!(a["history"]["runs"], 4, "{a}");
    assert!(close(&a["history"]["runs_per_day"], 0.4), "{a}");
    assert!(close(&a["per_run"]["mean_usd"], 0.25), "{a}");
    assert!(close(&a["per_run"]["p50_usd"], 0.20), "{a}");
    assert!(close(&a["per_run"]["p95_usd"], 0.40), "{a}");
    let half = 3.182 * (0.05f64 / 3.0).sqrt() / 2.0;
    assert!(close(&a["per_run"]["mean_high_usd"], 0.25 + half), "{a}");
    assert!(close(&a["projection"]["cost_usd"], 250.0), "{a}");
    assert!(
        close(&a["projection"]["high_usd"], 1000.0 * (0.25 + half)),
        "{a}"
    );
    assert_eq!(a["confidence"], "low");
    assert!(
        a["confidence_note"]
            .as_str()
            .unwrap()
            .starts_with("Only 4 runs in 10 days"),
        "{a}"
    );
    // The same four by service; all five without a filter (mean $0.40, median $0.30, p95 $1.00).
    let by_service = get(s, "name=support&service=checkout&runs=1000");
    assert_eq!(by_service["history"]["runs"], 4, "{by_service}");
    let all = get(s, "name=support&runs=10");
    assert_eq!(all["history"]["runs"], 5);
    assert!(close(&all["per_run"]["mean_usd"], 0.40), "{all}");
    assert!(close(&all["per_run"]["p50_usd"], 0.30), "{all}");
    assert!(close(&all["per_run"]["p95_usd"], 1.00), "{all}");
    // 50% more runs a day than the prod history's 0.4, for 30 days: 18 runs, $4.50.
    let g = get(s, "name=support&tag=prod&growth_pct=50&horizon_days=30");
    assert!(close(&g["projection"]["expected_runs"], 18.0), "{g}");
    assert!(close(&g["projection"]["cost_usd"], 4.5), "{g}");
    // Refusals name the problem.
    for (query, status, says) in [
        ("runs=10", 400, "name"),
        ("name=support&runs=10&growth_pct=5", 400, "not both"),
        ("name=support&horizon_days=0", 400, "horizon_days"),
        ("name=nothing-like-it&runs=10", 404, "no trace named"),
    ] {
        let (got, _, text) = s.call(
            "GET",
            &format!("/api/v1/forecast/workflow?{query}"),
            &[],
            None,
        );
        assert_eq!(got, status, "{query}: {text}");
        assert!(text.contains(says), "{query}: {text}");
    }
}

#[test]
fn workflow_forecast_on_sqlite() {
    checks(&any_store::start(
        None,
        tempfile::tempdir().unwrap(),
        |_| {},
    ));
}

#[cfg(feature = "postgres")]
#[test]
fn workflow_forecast_on_postgres() {
    let (uri, _db) =
        any_store::postgres_database(&format!("spanlens_workflow_{}", std::process::id()));
    checks(&any_store::start(
        Some(uri),
        tempfile::tempdir().unwrap(),
        |_| {},
    ));
}

#[cfg(feature = "clickhouse")]
#[test]
fn workflow_forecast_on_clickhouse() {
    let uri = any_store::clickhouse_uri("spanlens_workflow");
    checks(&any_store::start(
        Some(uri),
        tempfile::tempdir().unwrap(),
        |_| {},
    ));
}
