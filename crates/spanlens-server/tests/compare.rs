//! `GET /api/v1/compare` over real ingest: two runs of a workflow sent over OTLP come back
//! aligned, with deltas checked by hand against the price catalog (gpt-4o $2.50/$10 per
//! million tokens, gpt-4o-mini $0.15/$0.60); `b=previous` finds the run before within the
//! project and the name; missing or malformed parameters are 400 and unknown traces 404,
//! each naming which.

use serde_json::{json, Value};

mod common;

use common::client::{Server, JSON};

const T0: u64 = 1_700_000_000_000_000_000;
const HOUR: u64 = 3_600_000_000_000;
const MS: u64 = 1_000_000;

fn trace_id(n: u8) -> String {
    format!("c0ffee00c0ffee00c0ffee00c0ffee{n:02x}")
}

fn kv(key: &str, value: Value) -> Value {
    let v = match value {
        Value::String(s) => json!({"stringValue": s}),
        Value::Number(n) => json!({"intValue": n.to_string()}),
        other => other,
    };
    json!({"key": key, "value": v})
}

/// A span: `(name, parent index, start ms, duration ms, attributes)`; index 0 is the root.
type Spec<'a> = (&'a str, Option<usize>, u64, u64, Vec<Value>);

fn send(s: &Server, project: &str, n: u8, name_start: u64, error_root: bool, spans: Vec<Spec>) {
    let tid = trace_id(n);
    let sid = |i: usize| format!("{n:02x}00000000000{i:03x}");
    let out: Vec<Value> = spans
        .into_iter()
        .enumerate()
        .map(|(i, (name, parent, start, dur, attrs))| {
            let mut span = json!({
                "traceId": tid, "spanId": sid(i), "name": name,
                "startTimeUnixNano": (name_start + start * MS).to_string(),
                "endTimeUnixNano": (name_start + (start + dur) * MS).to_string(),
                "attributes": attrs,
            });
            if let Some(p) = parent {
                span["parentSpanId"] = json!(sid(p));
            }
            if i == 0 && error_root {
                span["status"] = json!({"code": 2, "message": "escalated"});
            }
            span
        })
        .collect();
    let body = json!({"resourceSpans": [{
        "resource": {"attributes": [kv("spanlens.project", json!(project))]},
        "scopeSpans": [{"spans": out}]}]});
    let (status, answer, _) = s.post("/v1/traces", &[JSON], body.to_string().as_bytes());
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
}

fn chat(model: &str, input: u64, output: u64, text: &str) -> Vec<Value> {
    vec![
        kv("gen_ai.operation.name", json!("chat")),
        kv("gen_ai.request.model", json!(model)),
        kv("gen_ai.usage.input_tokens", json!(input)),
        kv("gen_ai.usage.output_tokens", json!(output)),
        kv("output.value", json!(text)),
    ]
}

/// Run A at T0; run B an hour later (slower, failed, a cheaper model, one search fewer and an
/// escalation); run C two hours later; another workflow and another project's run between.
fn seed() -> Server {
    let s = Server::start();
    send(
        &s,
        "default",
        1,
        T0,
        false,
        vec![
            ("support", None, 0, 2000, vec![]),
            (
                "chat",
                Some(0),
                100,
                900,
                chat("gpt-4o", 1000, 100, "The refund is approved."),
            ),
            ("search", Some(0), 1200, 10, vec![]),
            ("search", Some(0), 1300, 20, vec![]),
        ],
    );
    send(
        &s,
        "default",
        2,
        T0 + HOUR,
        true,
        vec![
            ("support", None, 0, 2500, vec![]),
            (
                "chat",
                Some(0),
                100,
                1400,
                chat("gpt-4o-mini", 2000, 50, "The refund is not approved."),
            ),
            ("search", Some(0), 1600, 15, vec![]),
            ("escalate", Some(0), 1700, 100, vec![]),
        ],
    );
    send(
        &s,
        "default",
        3,
        T0 + 2 * HOUR,
        false,
        vec![("support", None, 0, 1000, vec![])],
    );
    send(
        &s,
        "default",
        4,
        T0 + 90 * HOUR / 60,
        false,
        vec![("billing", None, 0, 1000, vec![])],
    );
    send(
        &s,
        "other",
        5,
        T0 + 100 * HOUR / 60,
        false,
        vec![("support", None, 0, 1000, vec![])],
    );
    s
}

fn compare(s: &Server, query: &str) -> (u16, Value) {
    s.get(&format!("/api/v1/compare?{query}"))
}

#[test]
fn two_runs_are_aligned_with_their_deltas() {
    let s = seed();
    let (status, c) = compare(&s, &format!("a={}&b={}", trace_id(1), trace_id(2)));
    assert_eq!(status, 200, "{c}");
    // The answer is read whole by its wire type.
    let typed: spanlens_api::CompareAnswer = serde_json::from_value(c.clone()).unwrap();
    assert_eq!(serde_json::to_value(&typed).unwrap(), c);
    assert_eq!(c["a"]["trace_id"], trace_id(1));
    assert_eq!(c["b"]["trace_id"], trace_id(2));
    assert_eq!(c["b_is_previous"], false);
    let rows = c["rows"].as_array().unwrap();
    let layout: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{} {}#{} {}{}",
                r["depth"],
                r["name"].as_str().unwrap(),
                r["occurrence"],
                if r["a"].is_null() { "-" } else { "A" },
                if r["b"].is_null() { "-" } else { "B" }
            )
        })
        .collect();
    assert_eq!(
        layout,
        [
            "0 support#0 AB",
            "1 chat#0 AB",
            "1 search#0 AB",
            "1 escalate#0 -B",
            "1 search#1 A-"
        ]
    );
    // The root: 500 ms slower and failed.
    let root = &rows[0]["delta"];
    assert_eq!(root["duration_ms"], 500.0);
    assert_eq!(root["status_changed"], true);
    assert_eq!(rows[0]["b"]["status"], "error");
    // The model call: +1000 input, -50 output tokens; $0.0035 → $0.00033.
    let chat = &rows[1];
    assert_eq!(chat["a"]["cost_usd"], 0.0035);
    assert_eq!(chat["b"]["cost_usd"], 0.00033);
    let d = &chat["delta"];
    assert_eq!(d["duration_ms"], 500.0);
    assert_eq!(
        (d["input_tokens"].as_i64(), d["output_tokens"].as_i64()),
        (Some(1000), Some(-50))
    );
    assert_eq!(d["cost_usd"], -0.00317);
    assert_eq!(d["model_changed"], true);
    assert_eq!(d["output_changed"], true);
    let pieces = d["output_diff"]["pieces"].as_array().unwrap();
    let ops: Vec<(&str, &str)> = pieces
        .iter()
        .map(|p| (p["op"].as_str().unwrap(), p["text"].as_str().unwrap()))
        .collect();
    assert_eq!(
        ops,
        [
            ("equal", "The refund is "),
            ("insert", "not "),
            ("equal", "approved.")
        ]
    );
    assert_eq!(rows[2]["delta"]["duration_ms"], 5.0);
    assert!(rows[3]["delta"].is_null() && rows[4]["delta"].is_null());
    assert!(rows[1..].iter().all(|r| r["parent_row"] == 0));
    // Totals.
    let t = &c["totals"];
    assert_eq!(
        (
            t["matched"].as_u64(),
            t["only_a"].as_u64(),
            t["only_b"].as_u64()
        ),
        (Some(3), Some(1), Some(1))
    );
    assert_eq!(t["changed_outputs"], 1);
    assert_eq!(
        (
            t["a"]["input_tokens"].as_u64(),
            t["b"]["input_tokens"].as_u64()
        ),
        (Some(1000), Some(2000))
    );
    assert_eq!(t["a"]["cost_usd"], 0.0035);
    assert_eq!(t["delta"]["cost_usd"], -0.00317);
    assert_eq!(t["delta"]["duration_ms"], 500.0);
    assert_eq!(t["delta"]["error_count"], 1);
    // The rows' totals agree with the store's own summaries.
    assert_eq!(t["a"]["cost_usd"], c["a"]["total_cost_usd"]);
    assert_eq!(t["b"]["output_tokens"], c["b"]["output_tokens"]);
    assert_eq!(c["notes"], json!([]));
}

#[test]
fn previous_is_the_latest_earlier_run_of_the_name_in_the_project() {
    let s = seed();
    // C's previous run is B: not the other workflow, not the other project's later run.
    let (status, c) = compare(&s, &format!("a={}&b=previous", trace_id(3)));
    assert_eq!(status, 200, "{c}");
    assert_eq!(c["b"]["trace_id"], trace_id(2));
    assert_eq!(c["b_is_previous"], true);
    let (_, c) = compare(&s, &format!("a={}&b=previous", trace_id(2)));
    assert_eq!(c["b"]["trace_id"], trace_id(1));
    // The first run has none.
    let (status, e) = compare(&s, &format!("a={}&b=previous", trace_id(1)));
    assert_eq!(status, 404, "{e}");
    let msg = e["error"].as_str().unwrap();
    assert!(
        msg.starts_with("b=previous: no trace named \"support\""),
        "{msg}"
    );
    // Within project `other`, its run has no previous one either, and default's are unseen.
    let (status, _) = compare(&s, &format!("a={}&b=previous&project=other", trace_id(5)));
    assert_eq!(status, 404);
}

#[test]
fn bad_parameters_and_unknown_traces_are_named() {
    let s = seed();
    let (a, unknown) = (trace_id(1), trace_id(0x77));
    for (query, status, starts) in [
        ("".to_string(), 400, "missing a"),
        (format!("b={a}"), 400, "missing a"),
        (format!("a={a}"), 400, "missing b"),
        (format!("a={a}&b="), 400, "missing b"),
        (format!("a=xyz&b={a}"), 400, "invalid a=\"xyz\""),
        (format!("a={a}&b=prev"), 400, "invalid b=\"prev\""),
        (format!("a={unknown}&b={a}"), 404, "a: no trace"),
        (format!("a={a}&b={unknown}"), 404, "b: no trace"),
        // Another project's trace is as unknown as one never sent.
        (format!("a={a}&b={}", trace_id(5)), 404, "b: no trace"),
        (format!("a={a}&b={a}&project=other"), 404, "a: no trace"),
    ] {
        let (got, body) = compare(&s, &query);
        assert_eq!(got, status, "{query}: {body}");
        let msg = body["error"].as_str().unwrap_or_default();
        assert!(msg.starts_with(starts), "{query}: {msg}");
    }
    // A trace against itself: everything matched, nothing changed.
    let (status, c) = compare(&s, &format!("a={a}&b={a}"));
    assert_eq!(status, 200);
    assert_eq!(c["totals"]["matched"], 4);
    assert_eq!(c["totals"]["changed_outputs"], 0);
    let (status, c) = compare(&s, &format!("a={0}&b={0}&project=other", trace_id(5)));
    assert_eq!(status, 200, "{c}");
    assert_eq!(c["a"]["project"], "other");
}
