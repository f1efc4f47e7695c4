//! The agent graph over a real socket: traces posted as OTLP/JSON with GenAI attributes, then
//! `/api/v1/traces/{id}/graph` and `/api/v1/graph` checked against figures worked out by hand
//! (gpt-4o-mini is $0.15 per million input tokens and $0.60 per million output tokens, so a
//! call of 1,000 in and 100 out costs 150,000 + 60,000 = 210,000 nano-USD).

mod common;

use common::client::{Server, JSON};
use common::otlp_json::{self, kv, MS};
use serde_json::{json, Value};

const CALL_NANO: i64 = 210_000;

/// One OTLP span (see [`otlp_json::span`]); a failed one says "lookup failed".
#[allow(clippy::too_many_arguments)]
fn span(
    trace: &str,
    id: u8,
    parent: Option<u8>,
    name: &str,
    base: u64,
    ms: (u64, u64),
    attrs: Vec<Value>,
    failed: bool,
) -> Value {
    otlp_json::span(
        trace,
        id,
        parent,
        name,
        base,
        ms,
        attrs,
        failed.then_some("lookup failed"),
    )
}

fn agent(name: &str) -> Vec<Value> {
    vec![
        kv("gen_ai.operation.name", json!("invoke_agent")),
        kv("gen_ai.agent.name", json!(name)),
    ]
}

fn chat(provider: &str, model: &str, input: u64, output: u64) -> Vec<Value> {
    vec![
        kv("gen_ai.operation.name", json!("chat")),
        kv("gen_ai.provider.name", json!(provider)),
        kv("gen_ai.request.model", json!(model)),
        kv("gen_ai.usage.input_tokens", json!(input)),
        kv("gen_ai.usage.output_tokens", json!(output)),
    ]
}

const T1: &str = "11111111111111111111111111111111";
const T2: &str = "22222222222222222222222222222222";
const T3: &str = "33333333333333333333333333333333";

/// Three traces: two of the workflow `support` (T1 the full shape, T2 a short one, later) and
/// one of `other`.
fn post_traces(s: &Server, base: u64) {
    let spans = vec![
        // T1: support → triage (gpt-4o-mini, a failing tool, a handoff to billing) and billing
        // (gpt-4o-mini and an unpriced model).
        span(T1, 1, None, "support", base, (0, 1000), vec![], false),
        span(
            T1,
            2,
            Some(1),
            "invoke_agent triage",
            base,
            (10, 300),
            agent("triage"),
            false,
        ),
        span(
            T1,
            3,
            Some(2),
            "chat gpt-4o-mini",
            base,
            (20, 120),
            chat("openai", "gpt-4o-mini", 1000, 100),
            false,
        ),
        span(
            T1,
            4,
            Some(2),
            "execute_tool lookup",
            base,
            (130, 180),
            vec![
                kv("gen_ai.operation.name", json!("execute_tool")),
                kv("gen_ai.tool.name", json!("lookup")),
            ],
            true,
        ),
        span(
            T1,
            5,
            Some(2),
            "handoff → billing",
            base,
            (190, 191),
            vec![
                kv("spanlens.span.kind", json!("handoff")),
                kv("handoff.to", json!("billing")),
            ],
            false,
        ),
        span(
            T1,
            6,
            Some(1),
            "invoke_agent billing",
            base,
            (300, 900),
            agent("billing"),
            false,
        ),
        span(
            T1,
            7,
            Some(6),
            "chat gpt-4o-mini",
            base,
            (310, 410),
            chat("openai", "gpt-4o-mini", 1000, 100),
            false,
        ),
        span(
            T1,
            8,
            Some(6),
            "chat acme-model",
            base,
            (420, 520),
            chat("acme", "acme-model", 10, 5),
            false,
        ),
        // T2, a minute later: support → triage → gpt-4o-mini.
        span(
            T2,
            1,
            None,
            "support",
            base + 60_000 * MS,
            (0, 500),
            vec![],
            false,
        ),
        span(
            T2,
            2,
            Some(1),
            "invoke_agent triage",
            base + 60_000 * MS,
            (10, 400),
            agent("triage"),
            false,
        ),
        span(
            T2,
            3,
            Some(2),
            "chat gpt-4o-mini",
            base + 60_000 * MS,
            (20, 220),
            chat("openai", "gpt-4o-mini", 1000, 100),
            false,
        ),
        // T3: another workflow.
        span(T3, 1, None, "other", base, (0, 100), vec![], false),
        span(
            T3,
            2,
            Some(1),
            "chat gpt-4o-mini",
            base,
            (10, 50),
            chat("openai", "gpt-4o-mini", 1000, 100),
            false,
        ),
    ];
    let body = json!({"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"spans": spans}]}]});
    let (status, answer, _) = s.post("/v1/traces", &[JSON], body.to_string().as_bytes());
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
}

fn node<'a>(g: &'a Value, id: &str) -> &'a Value {
    g["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == id)
        .unwrap_or_else(|| panic!("no node {id} in {g}"))
}

fn edge<'a>(g: &'a Value, from: &str, to: &str, handoff: bool) -> &'a Value {
    g["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["from"] == from && e["to"] == to && e["handoff"] == handoff)
        .unwrap_or_else(|| panic!("no edge {from} → {to} in {g}"))
}

/// `(calls, errors, duration_ms, cost_nano_usd, unpriced, input_tokens)` of a node or edge.
fn figures(v: &Value) -> (u64, u64, f64, i64, u64, u64) {
    (
        v["calls"].as_u64().unwrap(),
        v["errors"].as_u64().unwrap(),
        v["duration_ms"].as_f64().unwrap(),
        v["cost_nano_usd"].as_i64().unwrap(),
        v["unpriced_span_count"].as_u64().unwrap(),
        v["input_tokens"].as_u64().unwrap(),
    )
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

#[test]
fn a_traces_graph_and_its_workflows_graph_add_up() {
    let s = Server::start();
    let base = now_ns() - 3_600_000 * MS;
    post_traces(&s, base);

    // One trace.
    let (status, g) = s.get(&format!("/api/v1/traces/{T1}/graph"));
    assert_eq!(status, 200, "{g}");
    assert_eq!(
        (g["trace_id"].as_str(), g["name"].as_str()),
        (Some(T1), Some("support"))
    );
    let mut ids: Vec<&str> = g["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        [
            "agent:billing",
            "agent:triage",
            "model:acme/acme-model",
            "model:openai/gpt-4o-mini",
            "pipeline:support",
            "tool:lookup"
        ]
    );
    assert_eq!(g["edges"].as_array().unwrap().len(), 7, "{g}");
    assert_eq!(
        figures(edge(&g, "pipeline:support", "agent:triage", false)),
        (1, 0, 290.0, CALL_NANO, 0, 1000)
    );
    assert_eq!(
        figures(edge(&g, "pipeline:support", "agent:billing", false)),
        (1, 0, 600.0, CALL_NANO, 1, 1010)
    );
    assert_eq!(
        figures(edge(&g, "agent:triage", "tool:lookup", false)),
        (1, 1, 50.0, 0, 0, 0)
    );
    assert_eq!(
        figures(edge(&g, "agent:triage", "agent:billing", true)),
        (1, 0, 1.0, 0, 0, 0)
    );
    assert_eq!(
        figures(edge(&g, "agent:billing", "model:acme/acme-model", false)),
        (1, 0, 100.0, 0, 1, 10)
    );
    let gpt = node(&g, "model:openai/gpt-4o-mini");
    assert_eq!(figures(gpt), (2, 0, 200.0, 2 * CALL_NANO, 0, 2000));
    assert_eq!(
        gpt["span_ids"],
        json!([format!("{:016x}", 3), format!("{:016x}", 7)])
    );
    assert_eq!(
        edge(&g, "agent:triage", "agent:billing", true)["span_ids"],
        json!([format!("{:016x}", 5)])
    );
    assert_eq!(node(&g, "agent:triage")["depth"], 1);
    assert_eq!(node(&g, "tool:lookup")["depth"], 2);
    // Node costs add up to the trace's.
    let total: i64 = g["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["cost_nano_usd"].as_i64().unwrap())
        .sum();
    assert_eq!(total, 2 * CALL_NANO);
    // Laid out: columns by depth, no two boxes sharing area.
    let boxes: Vec<(f64, f64, f64, f64)> = g["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["x"].as_f64().unwrap(),
                n["y"].as_f64().unwrap(),
                n["width"].as_f64().unwrap(),
                n["height"].as_f64().unwrap(),
            )
        })
        .collect();
    for (i, a) in boxes.iter().enumerate() {
        assert!(
            a.0 + a.2 <= g["width"].as_f64().unwrap() && a.1 + a.3 <= g["height"].as_f64().unwrap()
        );
        for b in &boxes[i + 1..] {
            assert!(
                a.0 + a.2 <= b.0 || b.0 + b.2 <= a.0 || a.1 + a.3 <= b.1 || b.1 + b.3 <= a.1,
                "{a:?} {b:?}"
            );
        }
    }
    assert!(node(&g, "pipeline:support")["x"].as_f64() < node(&g, "agent:triage")["x"].as_f64());

    // The workflow: T1 and T2, not T3.
    let (from, to) = (base - 1000 * MS, base + 120_000 * MS);
    let (status, w) = s.get(&format!("/api/v1/graph?name=support&from={from}&to={to}"));
    assert_eq!(status, 200, "{w}");
    assert_eq!(
        (
            w["matched_traces"].as_u64(),
            w["used_traces"].as_u64(),
            w["trace_cap"].as_u64()
        ),
        (Some(2), Some(2), Some(1000))
    );
    assert_eq!(w["name"], "support");
    let into_triage = edge(&w, "pipeline:support", "agent:triage", false);
    assert_eq!(
        figures(into_triage),
        (2, 0, 290.0 + 390.0, 2 * CALL_NANO, 0, 2000)
    );
    assert_eq!(into_triage["traces"], 2);
    assert_eq!(
        figures(node(&w, "model:openai/gpt-4o-mini")),
        (3, 0, 400.0, 3 * CALL_NANO, 0, 3000)
    );
    assert_eq!(node(&w, "agent:billing")["traces"], 1);
    assert!(w["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .all(|n| n.get("span_ids").is_none()));
    assert!(!w.to_string().contains("pipeline:other"));

    // Capped at the most recent trace: T2 alone.
    let (status, w) = s.get(&format!(
        "/api/v1/graph?name=support&from={from}&to={to}&limit=1"
    ));
    assert_eq!(status, 200, "{w}");
    assert_eq!(
        (
            w["matched_traces"].as_u64(),
            w["used_traces"].as_u64(),
            w["trace_cap"].as_u64()
        ),
        (Some(2), Some(1), Some(1))
    );
    assert_eq!(
        figures(edge(&w, "agent:triage", "model:openai/gpt-4o-mini", false)),
        (1, 0, 200.0, CALL_NANO, 0, 1000)
    );
    assert!(!w.to_string().contains("agent:billing"));

    // Without a name, every trace of the default range (the 7 days before now).
    let (status, w) = s.get("/api/v1/graph");
    assert_eq!(status, 200, "{w}");
    assert_eq!(
        (w["matched_traces"].as_u64(), w["used_traces"].as_u64()),
        (Some(3), Some(3))
    );
    assert!(w["name"].is_null());
    assert_eq!(node(&w, "model:openai/gpt-4o-mini")["calls"], 4);

    // Another project sees none of it.
    let (status, w) = s.get("/api/v1/graph?project=elsewhere");
    assert_eq!(status, 200, "{w}");
    assert_eq!(
        (
            w["matched_traces"].as_u64(),
            w["nodes"].as_array().map(Vec::len)
        ),
        (Some(0), Some(0))
    );
    let (status, _) = s.get(&format!("/api/v1/traces/{T1}/graph?project=elsewhere"));
    assert_eq!(status, 404);
}

#[test]
fn bad_parameters_are_named() {
    let s = Server::start();
    for (url, param) in [
        ("/api/v1/graph?limit=0", "limit"),
        ("/api/v1/graph?limit=1001", "limit"),
        ("/api/v1/graph?limit=many", "limit"),
        ("/api/v1/graph?from=yesterday", "from"),
        ("/api/v1/graph?to=soon", "to"),
        ("/api/v1/graph?from=2000&to=1000", "from"),
        ("/api/v1/traces/not-hex/graph", "trace_id"),
    ] {
        let (status, body) = s.get(url);
        assert_eq!(status, 400, "{url}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains(param),
            "{url}: {body}"
        );
    }
    let (status, _) = s.get(&format!("/api/v1/traces/{T1}/graph"));
    assert_eq!(status, 404);
}
