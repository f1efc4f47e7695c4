//! `openapi.json` against the server as it is: every route the router serves is documented with
//! its method, and every field of a real answer (on the demo data) is in the answer's schema, so
//! the document cannot drift from the code unnoticed.

mod common;

use common::client::Server;
use serde_json::Value;
use std::collections::BTreeSet;

const ROUTER: &str = include_str!("../src/http/mod.rs");

/// `(method, path)` of every route in the router's source.
fn routes() -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    let src: String = ROUTER.split_whitespace().collect::<Vec<_>>().join(" ");
    for part in src.split(".route(").skip(1) {
        let path = part.split('"').nth(1).expect("a route path").to_string();
        let handlers = part.split(".route(").next().unwrap_or("");
        for method in ["get", "post", "put", "delete"] {
            // `get(…)` as the handler, or `.post(…)` chained to it.
            if handlers.contains(&format!(" {method}("))
                || handlers.contains(&format!("{method}("))
                    && !handlers.contains(&format!("_{method}("))
            {
                out.insert((method.to_string(), path.clone()));
            }
        }
    }
    out
}

fn doc() -> Value {
    serde_json::from_str(spanlens_server::http::OPENAPI_JSON).unwrap()
}

#[test]
fn every_route_is_documented_with_its_method() {
    let doc = doc();
    let routes = routes();
    assert!(routes.len() >= 25, "routes parsed: {routes:?}");
    let missing: Vec<_> = routes
        .iter()
        .filter(|(m, p)| doc["paths"][p.as_str()][m.as_str()].is_null())
        .collect();
    assert!(
        missing.is_empty(),
        "routes missing from openapi.json: {missing:?}"
    );
    // And nothing documented that the router does not serve.
    let served: BTreeSet<&str> = routes.iter().map(|(_, p)| p.as_str()).collect();
    let extra: Vec<&String> = doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|p| !served.contains(p.as_str()))
        .collect();
    assert!(extra.is_empty(), "documented but not served: {extra:?}");
}

/// Follows `$ref`s to `#/components/…`.
fn resolve<'a>(doc: &'a Value, mut s: &'a Value) -> &'a Value {
    while let Some(r) = s.get("$ref").and_then(Value::as_str) {
        let mut at = doc;
        for part in r.trim_start_matches("#/").split('/') {
            at = &at[part];
        }
        s = at;
    }
    s
}

/// Paths (`a.b[].c`) of fields in `value` that `schema` does not describe. An object schema
/// without `properties` (a free-form map) accepts any field.
fn undocumented(doc: &Value, schema: &Value, value: &Value, at: &str, out: &mut Vec<String>) {
    let schema = resolve(doc, schema);
    if let Some(any) = schema
        .get("oneOf")
        .or(schema.get("anyOf"))
        .and_then(Value::as_array)
    {
        // Documented if any alternative documents it.
        let mut best: Option<Vec<String>> = None;
        for alt in any {
            let mut o = Vec::new();
            undocumented(doc, alt, value, at, &mut o);
            if best.as_ref().is_none_or(|b| o.len() < b.len()) {
                best = Some(o);
            }
        }
        out.extend(best.unwrap_or_default());
        return;
    }
    match value {
        Value::Object(map) => {
            let Some(props) = schema.get("properties").and_then(Value::as_object) else {
                if let Some(extra) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                    for (k, v) in map {
                        undocumented(doc, extra, v, &format!("{at}.{k}"), out);
                    }
                }
                return;
            };
            for (k, v) in map {
                match props.get(k) {
                    Some(s) => undocumented(doc, s, v, &format!("{at}.{k}"), out),
                    None => out.push(format!("{at}.{k}")),
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for v in items.iter().take(50) {
                    undocumented(doc, s, v, &format!("{at}[]"), out);
                }
            }
        }
        _ => {}
    }
}

/// Parses an answer as its wire type and serialises it again: the same JSON comes back when
/// the type covers every field the server sent.
fn through<T: serde::Serialize + serde::de::DeserializeOwned>(v: &Value) -> Result<Value, String> {
    let t: T = serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
    serde_json::to_value(&t).map_err(|e| e.to_string())
}

/// The tree answer borrows from its text.
fn through_tree(v: &Value) -> Result<Value, String> {
    let text = v.to_string();
    let t: spanlens_api::TreeAnswer = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    serde_json::to_value(&t).map_err(|e| e.to_string())
}

type Through = fn(&Value) -> Result<Value, String>;

#[test]
fn every_field_of_real_answers_is_in_the_schema_and_its_wire_type() {
    use spanlens_api as api;
    let now = spanlens_core::Timestamp(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    );
    let demo = spanlens_demo::generate(spanlens_demo::DEFAULT_SEED, now);
    let s = Server::start_with(demo);
    let doc = doc();
    let (_, list) = s.get("/api/v1/traces?limit=200");
    let items = list["items"].as_array().unwrap();
    let trace = items
        .iter()
        .max_by_key(|t| t["span_count"].as_u64())
        .unwrap()["trace_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, tree) = s.get(&format!("/api/v1/traces/{trace}/tree"));
    let span = tree["spans"][1]["span_id"].as_str().unwrap().to_string();
    let llm_span = tree["spans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["kind"] == "llm")
        .expect("the demo trace has a model call")["span_id"]
        .as_str()
        .unwrap()
        .to_string();
    let session = items
        .iter()
        .find_map(|t| t["session_id"].as_str())
        .unwrap()
        .to_string();
    // A score, so the score lists have rows to check.
    let score = serde_json::json!({"trace_id": trace, "name": "helpful", "data_type": "numeric",
        "value": 0.8, "comment": "checked by hand"});
    let (status, body, _) = s.post(
        "/api/v1/scores",
        &[common::client::JSON],
        &serde_json::to_vec(&score).unwrap(),
    );
    assert!(status < 300, "{status}: {}", String::from_utf8_lossy(&body));
    // An SDK's export counters (a resource with no spans), so the SDK health has a row.
    let counters = serde_json::json!({"resourceSpans": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "checkout"}},
        {"key": "spanlens.sdk.instance", "value": {"stringValue": "i-1"}},
        {"key": "spanlens.sdk.spans.exported", "value": {"intValue": "40"}},
        {"key": "spanlens.sdk.spans.dropped", "value": {"intValue": "2"}}]}, "scopeSpans": []}]});
    let (status, body, _) = s.post(
        "/v1/traces",
        &[common::client::JSON],
        &serde_json::to_vec(&counters).unwrap(),
    );
    assert!(status < 300, "{status}: {}", String::from_utf8_lossy(&body));
    // A key and redaction settings, so their lists have rows to check.
    let ask = serde_json::json!({"project": "default", "name": "ci", "scopes": ["ingest"],
        "quota": {"spans_per_second": 1000000}});
    let (status, made) = s.json("POST", "/api/v1/keys", &[], &ask);
    assert_eq!(status, 201, "{made}");
    let mut missing = Vec::new();
    let post = &doc["paths"]["/api/v1/keys"]["post"]["responses"]["201"]["content"]
        ["application/json"]["schema"];
    undocumented(&doc, post, &made, "POST /api/v1/keys", &mut missing);
    assert!(missing.is_empty(), "{missing:?}");
    through::<api::NewKey>(&made).unwrap();
    let settings =
        serde_json::json!({"builtin": true, "rules": [{"name": "t", "pattern": "T-[0-9]+"}]});
    let (status, body) = s.json("PUT", "/api/v1/projects/default/redaction", &[], &settings);
    assert_eq!(status, 200, "{body}");
    let day = 86_400_000_000_000u64;
    let (from, to) = (now.0 - 30 * day, now.0);
    // A run of a workflow that ran before too, for the comparison with its previous run.
    let rerun = items
        .iter()
        .enumerate()
        .find(|(i, t)| items[i + 1..].iter().any(|u| u["name"] == t["name"]))
        .map(|(_, t)| t["trace_id"].as_str().unwrap().to_string())
        .expect("a workflow run twice");
    let cases: Vec<(&str, String, Through)> = vec![
        (
            "/api/v1/traces",
            "/api/v1/traces?limit=200".into(),
            through::<api::TracePage>,
        ),
        (
            "/api/v1/traces/outcomes",
            "/api/v1/traces/outcomes".into(),
            through::<api::TraceOutcomes>,
        ),
        (
            "/api/v1/traces/{trace_id}",
            format!("/api/v1/traces/{trace}"),
            // The detail type leaves the analysis out (a client computes it from the spans).
            through::<api::TraceDetail>,
        ),
        (
            "/api/v1/traces/{trace_id}/tree",
            format!("/api/v1/traces/{trace}/tree"),
            through_tree,
        ),
        (
            "/api/v1/traces/{trace_id}/tree",
            format!("/api/v1/traces/{trace}/tree?format=columns"),
            // No wire type: the web UI reads the columns (checked against the schema only).
            |v| Ok(v.clone()),
        ),
        (
            "/api/v1/traces/{trace_id}/graph",
            format!("/api/v1/traces/{trace}/graph"),
            through::<api::TraceGraphAnswer>,
        ),
        (
            "/api/v1/graph",
            format!("/api/v1/graph?from={from}&to={to}&limit=300"),
            through::<api::WorkflowGraphAnswer>,
        ),
        (
            "/api/v1/prompts",
            format!("/api/v1/prompts?from={from}&to={to}"),
            through::<api::PromptsAnswer>,
        ),
        (
            "/api/v1/traces/{trace_id}/spans/{span_id}",
            format!("/api/v1/traces/{trace}/spans/{span}"),
            through::<spanlens_core::Span>,
        ),
        (
            "/api/v1/compare",
            format!("/api/v1/compare?a={rerun}&b=previous"),
            through::<api::CompareAnswer>,
        ),
        (
            "/api/v1/compare",
            format!("/api/v1/compare?a={trace}&b={rerun}"),
            through::<api::CompareAnswer>,
        ),
        (
            "/api/v1/sessions",
            "/api/v1/sessions".into(),
            through::<api::SessionPage>,
        ),
        (
            "/api/v1/sessions/{session_id}",
            format!("/api/v1/sessions/{session}"),
            through::<api::SessionAnswer>,
        ),
        (
            "/api/v1/metrics",
            "/api/v1/metrics".into(),
            through::<api::MetricsAnswer>,
        ),
        (
            "/api/v1/metrics",
            format!("/api/v1/metrics?group_by=model&from={from}&to={to}&buckets=4"),
            through::<api::MetricsAnswer>,
        ),
        (
            "/api/v1/metrics/{group_by}",
            "/api/v1/metrics/agent".into(),
            through::<api::MetricsAnswer>,
        ),
        (
            "/api/v1/recovery",
            format!("/api/v1/recovery?from={from}&to={to}"),
            through::<api::RecoveryAnswer>,
        ),
        (
            "/api/v1/models",
            "/api/v1/models".into(),
            through::<api::ModelsAnswer>,
        ),
        (
            "/api/v1/forecast",
            "/api/v1/forecast?group_by=model".into(),
            through::<api::ForecastAnswer>,
        ),
        (
            "/api/v1/forecast",
            "/api/v1/forecast".into(),
            through::<api::ForecastAnswer>,
        ),
        (
            "/api/v1/reconciliation",
            "/api/v1/reconciliation".into(),
            through::<api::ReconciliationAnswer>,
        ),
        (
            "/api/v1/projects",
            "/api/v1/projects".into(),
            through::<api::ProjectsAnswer>,
        ),
        (
            "/api/v1/stats",
            "/api/v1/stats".into(),
            through::<api::StatsAnswer>,
        ),
        (
            "/api/v1/forecast/workflow",
            "/api/v1/forecast/workflow?name=support.handle_ticket&runs=50000".into(),
            through::<api::WorkflowForecastAnswer>,
        ),
        (
            "/api/v1/whatif",
            format!("/api/v1/whatif?trace_id={trace}&as=claude-sonnet-4-5"),
            through::<api::WhatIfAnswer>,
        ),
        (
            "/api/v1/sdk/health",
            "/api/v1/sdk/health".into(),
            through::<api::SdkHealthAnswer>,
        ),
        (
            "/api/v1/alerts",
            "/api/v1/alerts".into(),
            through::<api::AlertsAnswer>,
        ),
        (
            "/api/v1/scores",
            format!("/api/v1/scores?trace_id={trace}"),
            through::<api::ScoreList>,
        ),
        (
            "/api/v1/scores/trends",
            "/api/v1/scores/trends".into(),
            through::<api::ScoreTrends>,
        ),
        (
            "/api/v1/keys",
            "/api/v1/keys".into(),
            through::<api::KeysAnswer>,
        ),
        (
            "/api/v1/projects/{project}/quota",
            "/api/v1/projects/default/quota".into(),
            through::<api::QuotaAnswer>,
        ),
        (
            "/api/v1/projects/{project}/retention",
            "/api/v1/projects/default/retention".into(),
            through::<api::RetentionAnswer>,
        ),
        (
            "/api/v1/projects/{project}/redaction",
            "/api/v1/projects/default/redaction".into(),
            through::<api::RedactionAnswer>,
        ),
        (
            "/api/v1/replay/endpoints",
            "/api/v1/replay/endpoints".into(),
            through::<api::ReplayEndpoints>,
        ),
        (
            "/api/v1/traces/{trace_id}/spans/{span_id}/replay",
            format!("/api/v1/traces/{trace}/spans/{llm_span}/replay"),
            through::<api::ReplayDraft>,
        ),
    ];
    let mut problems = Vec::new();
    for (path, url, wire) in cases {
        let (status, body) = s.get(&url);
        assert_eq!(status, 200, "{url}: {body}");
        // The wire type (spanlens-api) reads the answer whole: nothing lost, nothing added.
        match wire(&body) {
            Ok(again) => {
                let mut sent = body.clone();
                if path == "/api/v1/traces/{trace_id}" {
                    sent.as_object_mut().map(|m| m.remove("analysis"));
                }
                if again != sent {
                    problems.push(format!(
                        "{url}: its spanlens-api type does not give the same JSON back"
                    ));
                }
            }
            Err(e) => problems.push(format!("{url}: its spanlens-api type cannot read it: {e}")),
        }
        if url.contains("/scores") {
            let rows = body.get("items").or(body.get("rows")).unwrap();
            assert!(!rows.as_array().unwrap().is_empty(), "{url}: {body}");
        }
        let schema =
            &doc["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"];
        if schema.is_null() {
            problems.push(format!("{path}: no JSON schema for 200"));
            continue;
        }
        let mut missing = Vec::new();
        undocumented(&doc, schema, &body, "", &mut missing);
        missing.sort();
        missing.dedup();
        problems.extend(missing.into_iter().map(|m| format!("{url}: {m}")));
    }
    assert!(
        problems.is_empty(),
        "answers not matching openapi.json or their spanlens-api type:\n{}",
        problems.join("\n")
    );
}

/// The review queue answers (made, listed, one queue, next, a review) against their documented
/// schemas, and through their Rust types unchanged.
#[test]
fn review_queue_answers_are_in_the_schema_and_their_wire_type() {
    use spanlens_api as api;
    let now = spanlens_core::Timestamp(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    );
    let s = Server::start_with(spanlens_demo::generate(spanlens_demo::DEFAULT_SEED, now));
    let doc = doc();
    let (_, list) = s.get("/api/v1/traces?limit=5");
    let trace = list["items"][0]["trace_id"].as_str().unwrap().to_string();
    let (_, tree) = s.get(&format!("/api/v1/traces/{trace}/tree"));
    let span = tree["spans"][0]["span_id"].as_str().unwrap().to_string();
    let verdict = serde_json::json!({"trace_id": trace, "span_id": span, "name": "valid_json",
        "data_type": "boolean", "value": 0, "source": "rule", "comment": "not JSON"});
    assert_eq!(s.json("POST", "/api/v1/scores", &[], &verdict).0, 201);
    let input = serde_json::json!({"name": "Broken JSON",
        "source": {"kind": "failed_scores", "score": "valid_json", "fail_at_most": 0},
        "scores": [{"name": "fixable", "data_type": "boolean"},
                   {"name": "severity", "data_type": "numeric", "min": 1, "max": 3},
                   {"name": "cause", "data_type": "categorical", "labels": ["prompt", "model"]}]});
    let (status, made) = s.json("POST", "/api/v1/queues", &[], &input);
    assert_eq!(status, 201, "{made}");
    let id = made["queue"]["id"].as_str().unwrap().to_string();
    let (_, next) = s.json(
        "POST",
        &format!("/api/v1/queues/{id}/next"),
        &[],
        &serde_json::json!({}),
    );
    let review = serde_json::json!({"scores": [{"name": "fixable", "value": 1}, {"name": "cause", "label": "model"}],
        "comment": "truncated"});
    let (status, reviewed) = s.json(
        "POST",
        &format!("/api/v1/queues/{id}/items/0"),
        &[],
        &review,
    );
    assert_eq!(status, 200, "{reviewed}");
    let (_, one) = s.get(&format!("/api/v1/queues/{id}"));
    let (_, all) = s.get("/api/v1/queues");
    let (_, scores) = s.get(&format!("/api/v1/scores?trace_id={trace}"));
    let answer = |path: &str, method: &str, code: &str| {
        doc["paths"][path][method]["responses"][code]["content"]["application/json"]["schema"]
            .clone()
    };
    let cases: Vec<(&str, Value, Value, Through)> = vec![
        (
            "POST /api/v1/queues",
            answer("/api/v1/queues", "post", "201"),
            made,
            through::<api::QueueSummary>,
        ),
        (
            "GET /api/v1/queues",
            answer("/api/v1/queues", "get", "200"),
            all,
            through::<api::QueueList>,
        ),
        (
            "GET /api/v1/queues/{id}",
            answer("/api/v1/queues/{queue_id}", "get", "200"),
            one,
            through::<api::QueueDetail>,
        ),
        (
            "POST next",
            answer("/api/v1/queues/{queue_id}/next", "post", "200"),
            next,
            through::<api::NextItem>,
        ),
        (
            "POST items",
            answer("/api/v1/queues/{queue_id}/items/{item}", "post", "200"),
            reviewed,
            through::<api::ReviewAnswer>,
        ),
        (
            "GET /api/v1/scores",
            answer("/api/v1/scores", "get", "200"),
            scores,
            through::<api::ScoreList>,
        ),
    ];
    let mut missing = Vec::new();
    for (what, schema, value, typed) in cases {
        assert!(!schema.is_null(), "{what}: no schema");
        undocumented(&doc, &schema, &value, what, &mut missing);
        assert_eq!(
            typed(&value).as_ref(),
            Ok(&value),
            "{what}: the type drops or changes fields"
        );
    }
    assert!(missing.is_empty(), "undocumented fields: {missing:?}");
    // The human scores' author and time are among the fields checked.
    let (_, scores) = s.get(&format!("/api/v1/scores?trace_id={trace}&name=cause"));
    assert_eq!(scores["items"][0]["author"], "local (auth off)", "{scores}");
}
