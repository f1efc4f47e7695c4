//! Forwarding over real sockets: in-test receivers stand in for an OTLP collector, Langfuse and
//! LangSmith and record every request; the checks are the requests each one documents (path,
//! authentication, compression, attribute names, nesting, ids), the filters, the retries after
//! 429 and 500, a restart with a non-empty queue, and a project's own destinations.

use flate2::read::GzDecoder;
use prost::Message;
use serde_json::{json, Value};
use spanlens_core::otlp::proto::{self, ExportTraceServiceRequest};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;

use common::client::{Server, JSON};

/// One request a receiver got.
#[derive(Debug, Clone)]
struct Got {
    path: String,
    headers: Vec<(String, String)>,
    /// Decompressed.
    body: Vec<u8>,
    at: Instant,
}

impl Got {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn spans(&self) -> Vec<proto::Span> {
        let req = ExportTraceServiceRequest::decode(&self.body[..]).expect("OTLP protobuf");
        req.resource_spans
            .into_iter()
            .flat_map(|r| r.scope_spans)
            .flat_map(|s| s.spans)
            .collect()
    }
}

/// An HTTP/1.1 receiver answering from a script (then 200 for ever), recording requests.
struct Receiver {
    addr: SocketAddr,
    got: Arc<Mutex<Vec<Got>>>,
}

impl Receiver {
    fn start(script: Vec<(u16, Vec<(&'static str, &'static str)>)>) -> Receiver {
        Receiver::on(TcpListener::bind("127.0.0.1:0").unwrap(), script)
    }

    fn on(
        listener: TcpListener,
        script: Vec<(u16, Vec<(&'static str, &'static str)>)>,
    ) -> Receiver {
        let addr = listener.local_addr().unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(std::collections::VecDeque::from(script)));
        let g = got.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (g, script) = (g.clone(), script.clone());
                std::thread::spawn(move || serve(conn, g, script));
            }
        });
        Receiver { addr, got }
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Waits until `enough` holds for the requests so far.
    fn wait(&self, what: &str, enough: impl Fn(&[Got]) -> bool) -> Vec<Got> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = self.got.lock().unwrap().clone();
            if enough(&got) {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: got {} requests",
                got.len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

type Script = Arc<Mutex<std::collections::VecDeque<(u16, Vec<(&'static str, &'static str)>)>>>;

fn serve(conn: TcpStream, got: Arc<Mutex<Vec<Got>>>, script: Script) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut conn = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            reader.read_line(&mut h).unwrap();
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((n, v)) = h.split_once(':') {
                headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let len: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut raw = vec![0; len];
        reader.read_exact(&mut raw).unwrap();
        let body = if headers
            .iter()
            .any(|(n, v)| n == "content-encoding" && v == "gzip")
        {
            let mut out = Vec::new();
            GzDecoder::new(&raw[..]).read_to_end(&mut out).unwrap();
            out
        } else {
            raw
        };
        let (status, extra) = script.lock().unwrap().pop_front().unwrap_or((200, vec![]));
        got.lock().unwrap().push(Got {
            path,
            headers,
            body,
            at: Instant::now(),
        });
        let mut answer = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\n");
        for (n, v) in extra {
            answer.push_str(&format!("{n}: {v}\r\n"));
        }
        answer.push_str("\r\n");
        if conn.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// A pipeline with one priced model call (OpenTelemetry GenAI attributes) and one tool call.
fn trace(trace_id: &str) -> Vec<u8> {
    json!({"resourceSpans": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "shop"}}]},
      "scopeSpans": [{"spans": [
        {"traceId": trace_id, "spanId": "00f067aa0ba902b7", "name": "support",
         "startTimeUnixNano": "1767225600000000000", "endTimeUnixNano": "1767225602000000000",
         "attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "invoke_workflow"}},
                        {"key": "session.id", "value": {"stringValue": "conv-7"}},
                        {"key": "user.id", "value": {"stringValue": "u-42"}}]},
        {"traceId": trace_id, "spanId": "b7ad6b7169203331", "parentSpanId": "00f067aa0ba902b7",
         "name": "chat gpt-4o-mini",
         "startTimeUnixNano": "1767225600100000000", "endTimeUnixNano": "1767225601100000000",
         "attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                        {"key": "gen_ai.provider.name", "value": {"stringValue": "openai"}},
                        {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o-mini"}},
                        {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "2000"}},
                        {"key": "gen_ai.usage.cache_read.input_tokens", "value": {"intValue": "1024"}},
                        {"key": "gen_ai.usage.output_tokens", "value": {"intValue": "300"}}]},
        {"traceId": trace_id, "spanId": "c7ad6b7169203332", "parentSpanId": "00f067aa0ba902b7",
         "name": "lookup", "startTimeUnixNano": "1767225601200000000",
         "endTimeUnixNano": "1767225601300000000",
         "attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "execute_tool"}},
                        {"key": "gen_ai.tool.name", "value": {"stringValue": "lookup"}}]}
    ]}]}]})
    .to_string()
    .into_bytes()
}

fn attr(s: &proto::Span, key: &str) -> Option<Value> {
    let kv = s.attributes.iter().find(|kv| kv.key == key)?;
    let v = spanlens_core::otlp::any_value(kv.value.clone()?);
    Some(match v {
        Value::String(t) => serde_json::from_str(&t).unwrap_or(Value::String(t)),
        v => v,
    })
}

fn destination(
    name: &str,
    kind: &str,
    endpoint: &str,
    extra: Value,
) -> spanlens_api::DestinationConfig {
    let mut d = json!({"name": name, "kind": kind, "endpoint": endpoint});
    d.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    serde_json::from_value(d).unwrap()
}

fn start(destinations: Vec<spanlens_api::DestinationConfig>) -> Server {
    start_in(tempfile::tempdir().unwrap(), destinations)
}

fn start_in(dir: tempfile::TempDir, destinations: Vec<spanlens_api::DestinationConfig>) -> Server {
    Server::start_configured(dir, Vec::new(), |c| {
        c.forward = spanlens_api::ForwardConfig {
            destination: destinations,
        };
    })
}

fn status(s: &Server, project: &str) -> Value {
    let (code, body) = s.get(&format!("/api/v1/projects/{project}/forwarding"));
    assert_eq!(code, 200, "{body}");
    body
}

#[test]
fn each_destination_gets_the_request_its_receiver_documents() {
    let otlp = Receiver::start(vec![]);
    let langfuse = Receiver::start(vec![]);
    let langsmith = Receiver::start(vec![]);
    let s = start(vec![
        destination(
            "collector",
            "otlp",
            &otlp.endpoint(),
            json!({"headers": {"x-team": "agents"}}),
        ),
        destination(
            "lf",
            "langfuse",
            &langfuse.endpoint(),
            json!({"public_key": "pk-lf-1", "secret_key": "sk-lf-2"}),
        ),
        destination(
            "ls",
            "langsmith",
            &langsmith.endpoint(),
            json!({"api_key": "lsv2_pt_x", "project": "support-agents", "gzip": false}),
        ),
    ]);
    assert_eq!(s.post("/v1/traces", &[JSON], &trace(TRACE)).0, 200);
    let spans_of = |r: &Receiver, what: &str| {
        let got = r.wait(what, |g| {
            g.iter().map(|g| g.spans().len()).sum::<usize>() >= 3
        });
        (
            got[0].clone(),
            got.iter().flat_map(|g| g.spans()).collect::<Vec<_>>(),
        )
    };

    let (req, spans) = spans_of(&otlp, "collector");
    assert_eq!(req.path, "/v1/traces");
    assert_eq!(req.header("content-type"), Some("application/x-protobuf"));
    assert_eq!(
        req.header("content-encoding"),
        Some("gzip"),
        "gzip by default"
    );
    assert_eq!(req.header("x-team"), Some("agents"));
    assert_eq!(spans.len(), 3);
    let llm = spans.iter().find(|s| s.name == "chat gpt-4o-mini").unwrap();
    let root = spans.iter().find(|s| s.name == "support").unwrap();
    assert_eq!(hex::encode(&llm.trace_id), TRACE, "ids kept");
    assert_eq!(llm.parent_span_id, root.span_id, "nesting kept");
    assert_eq!(attr(llm, "gen_ai.usage.input_tokens"), Some(json!(2000)));
    assert_eq!(attr(llm, "gen_ai.usage.total_tokens"), Some(json!(2300)));
    // gpt-4o-mini: 976 × $0.15/M + 1024 × $0.075/M + 300 × $0.60/M = $0.0004032.
    let total = attr(llm, "spanlens.cost.total_usd")
        .unwrap()
        .as_f64()
        .unwrap();
    assert!((total - 0.0004032).abs() < 1e-9, "{total}");
    assert_eq!(attr(llm, "spanlens.cost.source"), Some(json!("computed")));

    let (req, spans) = spans_of(&langfuse, "langfuse");
    assert_eq!(req.path, "/api/public/otel/v1/traces");
    // base64("pk-lf-1:sk-lf-2")
    assert_eq!(
        req.header("authorization"),
        Some("Basic cGstbGYtMTpzay1sZi0y")
    );
    let llm = spans.iter().find(|s| s.name == "chat gpt-4o-mini").unwrap();
    let root = spans.iter().find(|s| s.name == "support").unwrap();
    assert_eq!(
        attr(llm, "langfuse.observation.type"),
        Some(json!("generation"))
    );
    assert_eq!(attr(root, "langfuse.trace.name"), Some(json!("support")));
    assert_eq!(attr(root, "langfuse.session.id"), Some(json!("conv-7")));
    assert_eq!(attr(root, "langfuse.user.id"), Some(json!("u-42")));
    assert_eq!(
        attr(llm, "langfuse.observation.usage_details"),
        Some(json!({"input": 976, "output": 300, "cache_read_input_tokens": 1024, "total": 2300}))
    );
    let cost = attr(llm, "langfuse.observation.cost_details").unwrap();
    assert!(
        (cost["total"].as_f64().unwrap() - 0.0004032).abs() < 1e-9,
        "{cost}"
    );
    let tool = spans.iter().find(|s| s.name == "lookup").unwrap();
    assert_eq!(attr(tool, "langfuse.observation.type"), Some(json!("tool")));

    let (req, spans) = spans_of(&langsmith, "langsmith");
    assert_eq!(req.path, "/otel/v1/traces");
    assert_eq!(req.header("x-api-key"), Some("lsv2_pt_x"));
    assert_eq!(req.header("langsmith-project"), Some("support-agents"));
    assert_eq!(req.header("content-encoding"), None, "gzip = false");
    let llm = spans.iter().find(|s| s.name == "chat gpt-4o-mini").unwrap();
    assert_eq!(attr(llm, "langsmith.span.kind"), Some(json!("llm")));
    assert_eq!(
        attr(llm, "langsmith.metadata.ls_model_name"),
        Some(json!("gpt-4o-mini"))
    );
    let usage = &attr(llm, "gen_ai.completion").unwrap()["usage_metadata"];
    assert_eq!(usage["input_tokens"], 2000);
    assert_eq!(usage["input_token_details"]["cache_read"], 1024);
    assert!((usage["total_cost"].as_f64().unwrap() - 0.0004032).abs() < 1e-9);

    // Counters: every destination delivered what it was handed.
    let st = s.running_status_until(|v| {
        v["destinations"]
            .as_array()
            .is_some_and(|d| d.iter().all(|d| d["counters"]["sent"].as_u64() >= Some(1)))
    });
    for d in st["destinations"].as_array().unwrap() {
        assert_eq!(d["counters"]["spans"], 3, "{d}");
        assert_eq!(d["source"], "file");
    }
    let lf = st["destinations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["config"]["name"] == "lf")
        .unwrap();
    assert_eq!(
        lf["config"]["secret_key"],
        spanlens_api::SECRET_MASK,
        "secrets masked"
    );
}

trait StatusUntil {
    fn running_status_until(&self, ok: impl Fn(&Value) -> bool) -> Value;
}

impl StatusUntil for Server {
    fn running_status_until(&self, ok: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let v = status(self, "default");
            if ok(&v) {
                return v;
            }
            assert!(Instant::now() < deadline, "{v}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn filters_pick_projects_kinds_and_whole_traces() {
    let only_llm = Receiver::start(vec![]);
    let other_project = Receiver::start(vec![]);
    let none_sampled = Receiver::start(vec![]);
    let s = start(vec![
        destination(
            "llm",
            "otlp",
            &only_llm.endpoint(),
            json!({"kinds": ["llm"]}),
        ),
        destination(
            "other",
            "otlp",
            &other_project.endpoint(),
            json!({"projects": ["other"]}),
        ),
        destination(
            "sampled",
            "otlp",
            &none_sampled.endpoint(),
            json!({"sample_rate": 0.5}),
        ),
    ]);
    // Trace ids whose low half is above and below the half of the range.
    let kept = "4bf92f3577b34da60000000000000001";
    let dropped = "4bf92f3577b34da6ffffffffffffff01";
    for id in [kept, dropped] {
        assert_eq!(s.post("/v1/traces", &[JSON], &trace(id)).0, 200);
    }
    assert_eq!(
        s.post(
            "/v1/traces",
            &[JSON, ("x-project-name", "other")],
            &trace(TRACE)
        )
        .0,
        200
    );
    let got = only_llm.wait("llm", |g| {
        g.iter().map(|g| g.spans().len()).sum::<usize>() >= 2
    });
    let spans: Vec<_> = got.iter().flat_map(|g| g.spans()).collect();
    assert!(
        spans.iter().all(|s| s.name == "chat gpt-4o-mini"),
        "{spans:?}"
    );
    let got = other_project.wait("other", |g| !g.is_empty());
    let ids: Vec<String> = got
        .iter()
        .flat_map(|g| g.spans())
        .map(|s| hex::encode(s.trace_id))
        .collect();
    assert_eq!(ids, vec![TRACE; 3], "the other project's trace only");
    let got = none_sampled.wait("sampled", |g| {
        g.iter().map(|g| g.spans().len()).sum::<usize>() >= 3
    });
    std::thread::sleep(Duration::from_millis(500));
    let got_now = none_sampled.got.lock().unwrap().clone();
    let ids: std::collections::BTreeSet<String> = got_now
        .iter()
        .flat_map(|g| g.spans())
        .map(|s| hex::encode(s.trace_id))
        .collect();
    assert_eq!(
        ids.into_iter().collect::<Vec<_>>(),
        vec![kept.to_string()],
        "{got:?}"
    );
}

#[test]
fn retries_after_429_and_500_then_delivers() {
    let r = Receiver::start(vec![(429, vec![("retry-after", "1")]), (500, vec![])]);
    let s = start(vec![destination("flaky", "otlp", &r.endpoint(), json!({}))]);
    assert_eq!(s.post("/v1/traces", &[JSON], &trace(TRACE)).0, 200);
    let got = r.wait("three attempts", |g| g.len() >= 3);
    assert!(
        got[1].at.duration_since(got[0].at) >= Duration::from_millis(950),
        "Retry-After: 1 honoured"
    );
    assert_eq!(got[0].body, got[2].body, "the same request again");
    let st = s.running_status_until(|v| v["destinations"][0]["counters"]["sent"] == 1);
    let c = &st["destinations"][0]["counters"];
    assert_eq!(c["retried"], 2, "{c}");
    assert_eq!(c["queued"], 0, "{c}");
}

#[test]
fn a_restart_with_requests_still_queued_delivers_them() {
    // A port that refuses connections while the first server runs.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let endpoint = format!("http://127.0.0.1:{port}");
    let dests = || vec![destination("later", "otlp", &endpoint, json!({}))];
    let s = start(dests());
    assert_eq!(s.post("/v1/traces", &[JSON], &trace(TRACE)).0, 200);
    let st = s.running_status_until(|v| {
        let c = &v["destinations"][0]["counters"];
        c["queued"] == 1 && c["retried"].as_u64() >= Some(1)
    });
    assert!(
        st["destinations"][0]["counters"]["last_error"].is_string(),
        "{st}"
    );
    let dir = s.stop_keeping_data();
    let r = Receiver::on(TcpListener::bind(("127.0.0.1", port)).unwrap(), vec![]);
    let s = start_in(dir, dests());
    let got = r.wait("the queued request", |g| !g.is_empty());
    assert_eq!(got[0].spans().len(), 3);
    s.running_status_until(|v| v["destinations"][0]["counters"]["queued"] == 0);
}

#[test]
fn a_projects_admin_sets_its_own_destinations_which_take_its_spans_only() {
    let r = Receiver::start(vec![]);
    let s = start(vec![]);
    let body = json!({"destinations": [{"name": "lf", "kind": "langfuse", "endpoint": r.endpoint(),
        "public_key": "pk-lf-1", "secret_key": "sk-lf-2", "projects": ["default"]}]});
    let (code, answer) = s.json("PUT", "/api/v1/projects/team-a/forwarding", &[], &body);
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["destinations"][0]["source"], "project");
    assert_eq!(
        answer["destinations"][0]["config"]["secret_key"],
        spanlens_api::SECRET_MASK
    );
    assert!(
        answer["destinations"][0]["config"]
            .get("projects")
            .is_none(),
        "a project's destination takes that project's spans whatever it says"
    );
    assert_eq!(
        s.post("/v1/traces", &[JSON], &trace(TRACE)).0,
        200,
        "default"
    );
    let other = "4bf92f3577b34da6a3ce929d0e0e4799";
    assert_eq!(
        s.post(
            "/v1/traces",
            &[JSON, ("x-project-name", "team-a")],
            &trace(other)
        )
        .0,
        200
    );
    let got = r.wait("team-a's trace", |g| !g.is_empty());
    std::thread::sleep(Duration::from_millis(300));
    let ids: std::collections::BTreeSet<String> = r
        .got
        .lock()
        .unwrap()
        .iter()
        .flat_map(|g| g.spans())
        .map(|s| hex::encode(s.trace_id))
        .collect();
    assert_eq!(
        ids.into_iter().collect::<Vec<_>>(),
        vec![other.to_string()],
        "{got:?}"
    );
    assert_eq!(
        got[0].header("authorization"),
        Some("Basic cGstbGYtMTpzay1sZi0y")
    );
    // Sent back masked, the secret is kept.
    let shown = answer["destinations"][0]["config"].clone();
    let (code, answer) = s.json(
        "PUT",
        "/api/v1/projects/team-a/forwarding",
        &[],
        &json!({"destinations": [shown]}),
    );
    assert_eq!(code, 200, "{answer}");
    assert_eq!(
        status(&s, "default")["destinations"],
        json!([]),
        "not default's"
    );
    // A bad destination is refused with the reason; nothing changes.
    let bad = json!({"destinations": [{"name": "x", "kind": "langsmith", "endpoint": "http://h"}]});
    let (code, answer) = s.json("PUT", "/api/v1/projects/team-a/forwarding", &[], &bad);
    assert_eq!(code, 400, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("api_key"),
        "{answer}"
    );
    assert_eq!(
        status(&s, "team-a")["destinations"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Audited, secrets masked.
    let (_, audit) = s.get("/api/v1/audit?project=team-a");
    let entry = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "forwarding.set")
        .unwrap_or_else(|| panic!("{audit}"))
        .clone();
    assert!(!entry.to_string().contains("sk-lf-2"), "{entry}");
    // Removed: the destination stops.
    let (code, _) = s.json(
        "PUT",
        "/api/v1/projects/team-a/forwarding",
        &[],
        &json!({"destinations": []}),
    );
    assert_eq!(code, 200);
    assert_eq!(status(&s, "team-a")["destinations"], json!([]));
}

/// One Spanlens server forwarding to another over OTLP/gRPC: the second rebuilds the same
/// canonical spans (kinds, nesting, tokens, cost) from what the first sent.
#[test]
fn a_spanlens_server_forwards_to_another_over_grpc() {
    let downstream = start(vec![]);
    let upstream = start(vec![destination(
        "next",
        "otlp",
        &format!("http://{}", downstream.bound.grpc),
        json!({"protocol": "grpc"}),
    )]);
    assert_eq!(upstream.post("/v1/traces", &[JSON], &trace(TRACE)).0, 200);
    let deadline = Instant::now() + Duration::from_secs(30);
    let there = loop {
        let (code, body) = downstream.get(&format!("/api/v1/traces/{TRACE}"));
        if code == 200 && body["spans"].as_array().is_some_and(|s| s.len() == 3) {
            break body;
        }
        assert!(Instant::now() < deadline, "{code} {body}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let (_, here) = upstream.get(&format!("/api/v1/traces/{TRACE}"));
    assert_eq!(there["trace"]["total_cost_nano_usd"], 403_200, "{there}");
    for field in [
        "span_count",
        "input_tokens",
        "output_tokens",
        "total_cost_nano_usd",
        "session_id",
    ] {
        assert!(!here["trace"][field].is_null(), "{field}: {here}");
        assert_eq!(
            there["trace"][field], here["trace"][field],
            "{field}: {there}"
        );
    }
    let by_name = |t: &Value, name: &str| {
        t["spans"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .cloned()
            .unwrap()
    };
    let (a, b) = (
        by_name(&here, "chat gpt-4o-mini"),
        by_name(&there, "chat gpt-4o-mini"),
    );
    for field in [
        "kind",
        "parent_span_id",
        "usage",
        "cost",
        "service",
        "session_id",
        "user_id",
    ] {
        assert!(!a[field].is_null(), "{field}: {a}");
        assert_eq!(a[field], b[field], "{field}");
    }
}
