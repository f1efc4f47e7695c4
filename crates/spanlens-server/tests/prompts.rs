//! Prompt versions over a real socket: spans posted as OTLP/JSON with OpenInference prompt
//! attributes (a nameless template, known by its span's name `answer`, in versions v1 and v2)
//! and Traceloop ones (`summarize`, versions 3 and 4), scores posted on a trace and on a span,
//! then `/api/v1/prompts` and the trace list's `prompt` filter checked against figures worked
//! out by hand (gpt-4o-mini is $0.15 per million input tokens and $0.60 per million output
//! tokens, so a call of 1,000 in and 100 out costs 150,000 + 60,000 = 210,000 nano-USD).

mod common;

use common::client::{Server, JSON};
use common::otlp_json::{self, kv, MS};
use serde_json::{json, Value};

const CALL_NANO: i64 = 210_000;

/// One OTLP span (see [`otlp_json::span`]); a failed one says "model refused".
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
        failed.then_some("model refused"),
    )
}

/// An OpenInference LLM span rendered from a template (OpenInference names no template).
fn openinference(version: &str) -> Vec<Value> {
    vec![
        kv("openinference.span.kind", json!("LLM")),
        kv("llm.provider", json!("openai")),
        kv("llm.system", json!("openai")),
        kv("llm.model_name", json!("gpt-4o-mini")),
        kv("llm.token_count.prompt", json!(1000)),
        kv("llm.token_count.completion", json!(100)),
        kv("llm.prompt_template.template", json!("Answer {question}")),
        kv("llm.prompt_template.version", json!(version)),
        kv(
            "llm.prompt_template.variables",
            json!("{\"question\": \"why?\"}"),
        ),
    ]
}

/// A Traceloop chat span using the managed prompt `summarize`.
fn traceloop(version: u64) -> Vec<Value> {
    vec![
        kv("llm.request.type", json!("chat")),
        kv("gen_ai.system", json!("openai")),
        kv("gen_ai.request.model", json!("gpt-4o-mini")),
        kv("llm.usage.prompt_tokens", json!(1000)),
        kv("llm.usage.completion_tokens", json!(100)),
        kv("traceloop.prompt.key", json!("summarize")),
        kv("traceloop.prompt.version", json!(version)),
        kv("traceloop.prompt.template", json!("Summarize {text}")),
    ]
}

const T1: &str = "11111111111111111111111111111111";
const T2: &str = "22222222222222222222222222222222";
const T3: &str = "33333333333333333333333333333333";
const T4: &str = "44444444444444444444444444444444";

/// T1 (at `base`): answer v1 (100 ms), summarize 3 (50 ms). T2 (a minute later): answer v1
/// (300 ms, failed), answer v2 (200 ms). T3 (two minutes later): answer v2 (400 ms),
/// summarize 4 (60 ms). T4: no prompt.
fn post_traces(s: &Server, base: u64) {
    let (b2, b3) = (base + 60_000 * MS, base + 120_000 * MS);
    let spans = vec![
        span(T1, 1, None, "ask", base, (0, 1000), vec![], false),
        span(
            T1,
            2,
            Some(1),
            "answer",
            base,
            (10, 110),
            openinference("v1"),
            false,
        ),
        span(
            T1,
            3,
            Some(1),
            "summarize text",
            base,
            (200, 250),
            traceloop(3),
            false,
        ),
        span(T2, 1, None, "ask", b2, (0, 1000), vec![], false),
        span(
            T2,
            2,
            Some(1),
            "answer",
            b2,
            (10, 310),
            openinference("v1"),
            true,
        ),
        span(
            T2,
            3,
            Some(1),
            "answer",
            b2,
            (400, 600),
            openinference("v2"),
            false,
        ),
        span(T3, 1, None, "ask", b3, (0, 1000), vec![], false),
        span(
            T3,
            2,
            Some(1),
            "answer",
            b3,
            (10, 410),
            openinference("v2"),
            false,
        ),
        span(
            T3,
            3,
            Some(1),
            "summarize text",
            b3,
            (500, 560),
            traceloop(4),
            false,
        ),
        span(T4, 1, None, "ask", b3, (0, 100), vec![], false),
    ];
    let body = json!({"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"spans": spans}]}]});
    let (status, answer, _) = s.post("/v1/traces", &[JSON], body.to_string().as_bytes());
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    for score in [
        // On T1: counts once for each version T1 used (answer v1, summarize 3).
        json!({"trace_id": T1, "name": "helpful", "data_type": "numeric", "value": 1.0}),
        // On T2's v2 span: for answer v2 only.
        json!({"trace_id": T2, "span_id": format!("{:016x}", 3), "name": "helpful",
               "data_type": "numeric", "value": 0.5}),
        // On T2's root span: a span that used no prompt counts for none.
        json!({"trace_id": T2, "span_id": format!("{:016x}", 1), "name": "helpful",
               "data_type": "numeric", "value": 0.0}),
    ] {
        let (status, answer, _) = s.post("/api/v1/scores", &[JSON], score.to_string().as_bytes());
        assert_eq!(status, 201, "{}", String::from_utf8_lossy(&answer));
    }
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn version<'a>(t: &'a Value, v: &str) -> &'a Value {
    t["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["version"] == v)
        .unwrap_or_else(|| panic!("no version {v} in {t}"))
}

/// `(calls, errors, error_rate, cost_nano_usd, p50_ms, p95_ms, traces)`.
fn figures(v: &Value) -> (u64, u64, f64, i64, f64, f64, u64) {
    (
        v["calls"].as_u64().unwrap(),
        v["errors"].as_u64().unwrap(),
        v["error_rate"].as_f64().unwrap(),
        v["cost_nano_usd"].as_i64().unwrap(),
        v["p50_ms"].as_f64().unwrap(),
        v["p95_ms"].as_f64().unwrap(),
        v["traces"].as_u64().unwrap(),
    )
}

fn listed(s: &Server, query: &str) -> Vec<String> {
    let (status, page) = s.get(&format!("/api/v1/traces?{query}"));
    assert_eq!(status, 200, "{page}");
    let mut ids: Vec<String> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["trace_id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

#[test]
fn prompt_versions_add_up_and_filter_the_trace_list() {
    let s = Server::start();
    let base = now_ns() - 3_600_000 * MS;
    post_traces(&s, base);

    let (status, p) = s.get("/api/v1/prompts");
    assert_eq!(status, 200, "{p}");
    assert_eq!(
        (
            p["matched_traces"].as_u64(),
            p["used_traces"].as_u64(),
            p["trace_cap"].as_u64()
        ),
        (Some(3), Some(3), Some(1000)),
        "{p}"
    );
    assert_eq!(p["unreadable_span_count"], 0);
    let templates = p["templates"].as_array().unwrap();
    let names: Vec<&str> = templates
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["answer", "summarize"]);
    let answer = &templates[0];
    assert_eq!(answer["calls"], 4);
    // v2's last call (T3) is newer than v1's (T2): v2 first.
    assert_eq!(answer["versions"][0]["version"], "v2");
    // v1: 100 and 300 ms; one of two failed. Nearest rank: p50 is the 1st, p95 the 2nd.
    let v1 = version(answer, "v1");
    assert_eq!(figures(v1), (2, 1, 0.5, 2 * CALL_NANO, 100.0, 300.0, 2));
    // The score on T1 only (T2's root score is on a span without a prompt).
    assert_eq!(
        v1["scores"],
        json!([{"name": "helpful", "count": 1, "mean": 1.0}])
    );
    // v2: 200 and 400 ms.
    let v2 = version(answer, "v2");
    assert_eq!(figures(v2), (2, 0, 0.0, 2 * CALL_NANO, 200.0, 400.0, 2));
    assert_eq!(
        v2["scores"],
        json!([{"name": "helpful", "count": 1, "mean": 0.5}])
    );
    assert_eq!(v2["unpriced_span_count"], 0);
    let summarize = &templates[1];
    assert_eq!(summarize["versions"][0]["version"], "4");
    assert_eq!(
        figures(version(summarize, "3")),
        (1, 0, 0.0, CALL_NANO, 50.0, 50.0, 1)
    );
    assert_eq!(version(summarize, "3")["scores"][0]["mean"], 1.0);
    assert_eq!(
        figures(version(summarize, "4")),
        (1, 0, 0.0, CALL_NANO, 60.0, 60.0, 1)
    );
    assert_eq!(version(summarize, "4")["scores"], json!([]));

    // The cap: the most recent trace only (T3), and the answer says so.
    let (status, one) = s.get("/api/v1/prompts?limit=1");
    assert_eq!(status, 200, "{one}");
    assert_eq!(
        (one["matched_traces"].as_u64(), one["used_traces"].as_u64()),
        (Some(3), Some(1))
    );
    let calls: Vec<(String, u64)> = one["templates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_string(),
                t["calls"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        calls,
        [("answer".to_string(), 1), ("summarize".to_string(), 1)]
    );

    // A range that holds T1 only.
    let (status, early) = s.get(&format!(
        "/api/v1/prompts?from={}&to={}",
        base - MS,
        base + MS
    ));
    assert_eq!(status, 200, "{early}");
    assert_eq!(early["matched_traces"], 1);
    assert_eq!(figures(version(&early["templates"][0], "v1")).0, 1);

    // The trace list by template and version.
    assert_eq!(listed(&s, "prompt=answer&prompt_version=v1"), [T1, T2]);
    assert_eq!(listed(&s, "prompt=answer&prompt_version=v2"), [T2, T3]);
    assert_eq!(listed(&s, "prompt=answer"), [T1, T2, T3]);
    assert_eq!(listed(&s, "prompt=summarize&prompt_version=4"), [T3]);
    assert!(listed(&s, "prompt=summarize&prompt_version=v1").is_empty());
    // T2 failed in a call, not as a whole: it recovered.
    assert_eq!(listed(&s, "prompt=answer&status=recovered"), [T2]);
    assert!(listed(&s, "prompt=answer&status=error").is_empty());
    let (status, outcomes) = s.get("/api/v1/traces/outcomes?prompt=answer&prompt_version=v1");
    assert_eq!(status, 200);
    assert_eq!(
        (outcomes["traces"].as_u64(), outcomes["failed"].as_u64()),
        (Some(2), Some(0))
    );

    // A saved view keeps the filter.
    let view = json!({"name": "answer v2", "query": "prompt=answer&prompt_version=v2"});
    let (status, saved, _) = s.post("/api/v1/views", &[JSON], view.to_string().as_bytes());
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&saved));
    let saved: Value = serde_json::from_slice(&saved).unwrap();
    assert_eq!(saved["query"], "prompt=answer&prompt_version=v2");
}

#[test]
fn bad_prompt_queries_are_refused_naming_the_problem() {
    let s = Server::start();
    for (path, named) in [
        ("/api/v1/prompts?limit=0", "limit"),
        ("/api/v1/prompts?limit=1001", "limit"),
        ("/api/v1/prompts?limit=many", "limit"),
        (
            "/api/v1/prompts?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
            "from",
        ),
        ("/api/v1/prompts?from=yesterday", "from"),
        ("/api/v1/traces?prompt_version=v1", "prompt_version"),
    ] {
        let (status, body) = s.get(path);
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body.to_string().contains(named), "{path}: {body}");
    }
    // A view whose query the list refuses is refused too.
    let view = json!({"name": "bad", "query": "prompt_version=v1"});
    let (status, _, _) = s.post("/api/v1/views", &[JSON], view.to_string().as_bytes());
    assert_eq!(status, 400);
    // Nothing stored: no templates.
    let (status, p) = s.get("/api/v1/prompts");
    assert_eq!(status, 200);
    assert_eq!(p["templates"], json!([]));
    assert_eq!(p["matched_traces"], 0);
}
