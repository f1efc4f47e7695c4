//! `GET /api/v1/whatif` with answers worked out by hand from the built-in catalog's list
//! prices, on SQLite always and on PostgreSQL and ClickHouse with the features and the test
//! servers (`SPANLENS_TEST_POSTGRES`, `SPANLENS_TEST_CLICKHOUSE`).
//!
//! Prices per million tokens: gpt-4o $2.50 input, $1.25 cache read, $10 output; gpt-4o-mini
//! $0.15 input; claude-sonnet-4-5 $3 input, $0.30 cache read, $15 output, and $6 input past
//! 200,000 input tokens.

use serde_json::{json, Value};

mod common;

use common::any_store::{self, Srv};
use common::otlp_json::{kv, span};

const TRACE_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const TRACE_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
/// 2026-11-01T00:00:00Z: every price above is in force.
const BASE: u64 = 1_793_491_200_000_000_000;

fn llm(trace: &str, id: u8, model: &str, usage: [u64; 3], agent: Option<&str>) -> Value {
    let [input, cached, output] = usage;
    let mut attrs = vec![
        kv("gen_ai.operation.name", json!("chat")),
        kv("gen_ai.system", json!("openai")),
        kv("gen_ai.request.model", json!(model)),
        kv("gen_ai.usage.input_tokens", json!(input)),
        kv("gen_ai.usage.cache_read.input_tokens", json!(cached)),
        kv("gen_ai.usage.output_tokens", json!(output)),
    ];
    if let Some(a) = agent {
        attrs.push(kv("gen_ai.agent.name", json!(a)));
    }
    span(trace, id, Some(1), "chat", BASE, (10, 900), attrs, None)
}

/// Two traces of session `s-1`: A with a gpt-4o call (10,000 input of which 2,000 cached,
/// 1,000 output: $0.0325 stored) and a tool span; B with the Planner's gpt-4o-mini call
/// (1,000,000 input: $0.15 stored).
fn send(s: &Srv) {
    let session = kv("session.id", json!("s-1"));
    let root = |t: &str| {
        span(
            t,
            1,
            None,
            "turn",
            BASE,
            (0, 1000),
            vec![session.clone()],
            None,
        )
    };
    let tool = span(
        TRACE_A,
        3,
        Some(1),
        "search",
        BASE,
        (900, 950),
        vec![kv("spanlens.span.kind", json!("tool"))],
        None,
    );
    let body = json!({"resourceSpans": [{"scopeSpans": [{"spans": [
        root(TRACE_A),
        llm(TRACE_A, 2, "gpt-4o", [10_000, 2_000, 1_000], None),
        tool,
        root(TRACE_B),
        llm(TRACE_B, 2, "gpt-4o-mini", [1_000_000, 0, 0], Some("Planner")),
    ]}]}]});
    let (status, answer, _) = s.call("POST", "/v1/traces", &[], Some(&body));
    assert_eq!(status, 200, "{answer}");
}

fn whatif(s: &Srv, query: &str) -> Value {
    let (status, answer, _) = s.call("GET", &format!("/api/v1/whatif?{query}"), &[], None);
    assert_eq!(status, 200, "{query}: {answer}");
    answer
}

fn totals(a: &Value) -> (i64, i64, u64) {
    let t = &a["total"];
    (
        t["stored_nano_usd"].as_i64().unwrap(),
        t["whatif_nano_usd"].as_i64().unwrap(),
        t["repriced"].as_u64().unwrap(),
    )
}

fn checks(s: &Srv) {
    send(s);
    // Trace A on Claude: 8,000 × $3 + 2,000 × $0.30 + 1,000 × $15 per million = $0.0396,
    // against 8,000 × $2.50 + 2,000 × $1.25 + 1,000 × $10 = $0.0325 as stored.
    let a = whatif(s, &format!("trace_id={TRACE_A}&as=claude-sonnet-4-5"));
    assert_eq!(totals(&a), (32_500_000, 39_600_000, 1), "{a}");
    assert_eq!(
        a["calls"].as_array().unwrap().len(),
        1,
        "the tool span is no call"
    );
    assert_eq!(a["calls"][0]["model"], "gpt-4o");
    assert_eq!(a["calls"][0]["input_tokens"], 10_000, "tokens as measured");
    assert!(a["note"].as_str().unwrap().contains("tokenizer"));
    // Without cache reads the 2,000 cached tokens are plain input: 10,000 × $3 + $0.015.
    let a = whatif(
        s,
        &format!("trace_id={TRACE_A}&as=claude-sonnet-4-5&cache_reads=false"),
    );
    assert_eq!(totals(&a).1, 45_000_000);
    // The session on Claude: B's million input tokens take the long-context rate, $6.
    let session = whatif(s, "session_id=s-1&as=claude-sonnet-4-5");
    assert_eq!(session["traces"], 2);
    assert_eq!(
        totals(&session),
        (182_500_000, 6_039_600_000, 2),
        "{session}"
    );
    // Only the Planner's call on gpt-4o: 1,000,000 × $2.50; A's call stays as stored.
    let planner = whatif(s, "session_id=s-1&as=gpt-4o&only_agent=planner");
    assert_eq!(totals(&planner), (182_500_000, 2_532_500_000, 1));
    // Only gpt-4o-mini's calls, by model.
    let mini = whatif(s, "session_id=s-1&as=gpt-4o&only_model=gpt-4o-mini");
    assert_eq!(totals(&mini), (182_500_000, 2_532_500_000, 1));
    // The traces the trace list's filters choose: both turns by name; only B by its cost.
    let named = whatif(s, "name=turn&as=claude-sonnet-4-5");
    assert_eq!(named["scope"], "traces");
    assert_eq!(totals(&named), (182_500_000, 6_039_600_000, 2), "{named}");
    assert_eq!(named["calls"].as_array().unwrap().len(), 2);
    let costly = whatif(s, "name=turn&min_cost=0.1&as=claude-sonnet-4-5");
    assert_eq!(totals(&costly), (150_000_000, 6_000_000_000, 1), "{costly}");
    assert_eq!(costly["id"], "name=turn&min_cost=0.1");
    // Every call that started in a range: the session's totals, by model, costliest first.
    let range = whatif(
        s,
        &format!(
            "from={}&to={}&as=claude-sonnet-4-5",
            spanlens_core::Timestamp(BASE - 3_600_000_000_000).to_rfc3339(),
            spanlens_core::Timestamp(BASE + 86_400_000_000_000).to_rfc3339()
        ),
    );
    assert_eq!(range["scope"], "range");
    assert_eq!(range["traces"], 2, "{range}");
    assert_eq!(totals(&range), (182_500_000, 6_039_600_000, 2), "{range}");
    assert_eq!(range["calls"], json!([]), "a range answers by model");
    assert_eq!(range["by_model"][0]["model"], "gpt-4o-mini");
    assert_eq!(range["by_model"][0]["whatif_usd"], 6.0);
    assert_eq!(range["by_model"][1]["model"], "gpt-4o");
    assert_eq!(range["by_model"][1]["whatif_usd"], 0.0396);
    // A range before any call prices nothing.
    let empty = whatif(
        s,
        "from=2020-01-01T00:00:00Z&to=2020-01-02T00:00:00Z&as=gpt-4o",
    );
    assert_eq!(totals(&empty), (0, 0, 0));
    // Nothing stored changed.
    let (_, trace, _) = s.call("GET", &format!("/api/v1/traces/{TRACE_A}"), &[], None);
    assert_eq!(
        trace["trace"]["total_cost_nano_usd"], 32_500_000,
        "{}",
        trace["trace"]
    );
    // Refusals name the problem.
    for (query, status, says) in [
        (
            format!("trace_id={TRACE_A}&as=gpt-17-ultra"),
            400,
            "gpt-17-ultra",
        ),
        (format!("trace_id={TRACE_A}"), 400, "as="),
        ("as=gpt-4o".to_string(), 400, "the trace list's filters"),
        (
            format!("trace_id={TRACE_B}&session_id=s-1&as=gpt-4o"),
            400,
            "one of them",
        ),
        (
            format!("trace_id={TRACE_A}&as=gpt-4o&cache_reads=maybe"),
            400,
            "cache_reads",
        ),
        (
            "trace_id=cccccccccccccccccccccccccccccccc&as=gpt-4o".to_string(),
            404,
            "no trace",
        ),
        ("session_id=nope&as=gpt-4o".to_string(), 404, "no session"),
        (
            "from=2020-01-01T00:00:00Z&to=2020-01-02T00:00:00Z&as=gpt-17-ultra".to_string(),
            400,
            "gpt-17-ultra",
        ),
    ] {
        let (got, _, text) = s.call("GET", &format!("/api/v1/whatif?{query}"), &[], None);
        assert_eq!(got, status, "{query}: {text}");
        assert!(text.contains(says), "{query}: {text}");
    }
}

#[test]
fn whatif_on_sqlite() {
    let s = any_store::start(None, tempfile::tempdir().unwrap(), |_| {});
    checks(&s);
}

#[cfg(feature = "postgres")]
#[test]
fn whatif_on_postgres() {
    let (uri, _db) =
        any_store::postgres_database(&format!("spanlens_whatif_{}", std::process::id()));
    let s = any_store::start(Some(uri), tempfile::tempdir().unwrap(), |_| {});
    checks(&s);
}

#[cfg(feature = "clickhouse")]
#[test]
fn whatif_on_clickhouse() {
    let uri = any_store::clickhouse_uri("spanlens_whatif");
    let s = any_store::start(Some(uri), tempfile::tempdir().unwrap(), |_| {});
    checks(&s);
}
