//! Replaying an LLM span against the repository's Python mock LLM (tests/e2e/mock_llm.py) over
//! real sockets: OpenAI chat completions and Anthropic Messages endpoints, the answer's usage,
//! cost and latency beside the original's, the new trace stored through ingest and linked to
//! the original (read back through the API), the key never in any answer, provider failures
//! as 502 with the attempt stored as an error span, refusals as 400, viewers refused. Run on
//! SQLite always, and on PostgreSQL and ClickHouse with the features and the test servers
//! (`SPANLENS_TEST_POSTGRES`, `SPANLENS_TEST_CLICKHOUSE`).

use serde_json::{json, Value};
use spanlens_core::{Message, Span, SpanId, SpanKind, Timestamp, TraceId, Usage};
use spanlens_server::replay::ReplayConfig;
use spanlens_server::ServerConfig;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};

mod common;

use common::any_store::{self, Srv};

/// A fake key the endpoints are configured with: it must appear in no answer.
const KEY: &str = "sk-REPLAY-FAKE-KEY-7f3a9c";
const ORIG_TRACE: &str = "0123456789abcdef0123456789abcdef";
const ORIG_SPAN: &str = "00000000000000a1";
const TOOL_SPAN: &str = "00000000000000b2";

// ---- the mock LLM (as crates/spanlens-reqwest/tests/common/mod.rs starts it) ----

const START: &str = r#"
import sys
sys.path.insert(0, sys.argv[1])
try:
    import mock_llm
except Exception as e:
    print(f"IMPORT-FAILED {e!r}", flush=True)
    sys.exit(3)
m = mock_llm.MockLLM().start()
print(m.port, flush=True)
sys.stdin.read()
"#;

struct Mock {
    port: u16,
    _child: Child,
    _stdin: ChildStdin,
}

/// Base URL of the mock, started once per test binary; it stops when the process exits (its
/// standard input closes).
fn mock_url() -> String {
    static MOCK: OnceLock<Mutex<Mock>> = OnceLock::new();
    let m = MOCK.get_or_init(|| {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/e2e");
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(START)
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("these tests need python3 for {dir}/mock_llm.py: {e}"));
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("the mock LLM did not start: {line:?}"));
        let stdin = child.stdin.take().unwrap();
        Mutex::new(Mock {
            port,
            _child: child,
            _stdin: stdin,
        })
    });
    format!("http://127.0.0.1:{}", m.lock().unwrap().port)
}

/// Reads a whole HTTP request (so closing the connection after answering resets nothing);
/// its request line and headers.
fn read_request(conn: &std::net::TcpStream) -> String {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut head = String::new();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        head.push_str(&line);
    }
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    head
}

/// A provider that answers every request 401 with the request's headers in its body (as some
/// gateways do): the key it echoes must not reach the replay's caller.
fn echoing_provider() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let head = read_request(&conn);
            let answer =
                json!({"error": {"message": format!("invalid key; you sent {head}")}}).to_string();
            let _ = write!(
                conn,
                "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    format!("http://{addr}/v1")
}

/// A provider that accepts connections and never answers (`silent`), or answers 200 with a
/// body that is not JSON.
fn broken_provider(silent: bool) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            if silent {
                held.push(conn);
                continue;
            }
            read_request(&conn);
            let body = "<html>gateway page</html>";
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    format!("http://{addr}/v1")
}

fn config() -> ReplayConfig {
    let mock = mock_url();
    let echo = echoing_provider();
    let silent = broken_provider(true);
    let junk = broken_provider(false);
    let text = format!(
        r#"
[[endpoint]]
name = "mock-openai"
kind = "openai"
base_url = "{mock}/v1"
api_key_env = "REPLAY_TEST_KEY"
models = ["gpt-4o-mini", "gpt-4o"]

[[endpoint]]
name = "mock-anthropic"
kind = "anthropic"
base_url = "{mock}/v1"
api_key_env = "REPLAY_TEST_KEY"
models = ["claude-sonnet-4-5"]

[[endpoint]]
name = "nowhere"
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
models = ["gpt-4o-mini"]
timeout_seconds = 5

[[endpoint]]
name = "echo"
kind = "openai"
base_url = "{echo}"
api_key_env = "REPLAY_TEST_KEY"
models = ["gpt-4o-mini"]

[[endpoint]]
name = "silent"
kind = "anthropic"
base_url = "{silent}"
models = ["claude-sonnet-4-5"]
timeout_seconds = 1

[[endpoint]]
name = "junk"
kind = "openai"
base_url = "{junk}"
models = ["gpt-4o-mini"]
"#
    );
    ReplayConfig::from_toml_with(&text, &|var| {
        (var == "REPLAY_TEST_KEY").then(|| KEY.to_string())
    })
    .unwrap()
}

// ---- a server on any store, with the replay endpoints ----

/// A server on the store `uri` names with the replay endpoints configured, then `edit`.
fn start(
    uri: Option<String>,
    dir: tempfile::TempDir,
    edit: impl FnOnce(&mut ServerConfig) + Send + 'static,
) -> Srv {
    any_store::start(uri, dir, move |c| {
        c.replay = Some(config());
        edit(c)
    })
}
// ---- the original trace ----

fn msg(role: &str, content: &str) -> Message {
    Message {
        role: Some(role.into()),
        content: Some(content.into()),
        ..Message::default()
    }
}

/// The original trace: an LLM span (gpt-4o-mini, two input messages, sampling parameters,
/// usage) and a tool span.
fn original_spans() -> Vec<Span> {
    let tid = TraceId::from_hex(ORIG_TRACE).unwrap();
    let start = 1_760_000_000_000_000_000u64;
    let mut params = spanlens_core::Attributes::new();
    params.insert("temperature".into(), json!(0.7));
    params.insert("max_tokens".into(), json!(300));
    params.insert("logit_bias".into(), json!("{}"));
    let llm = Span {
        trace_id: tid,
        span_id: SpanId::from_hex(ORIG_SPAN).unwrap(),
        name: "chat gpt-4o-mini".into(),
        kind: SpanKind::Llm,
        start_time: Timestamp(start),
        end_time: Some(Timestamp(start + 1_250_000_000)),
        provider: Some("openai".into()),
        request_model: Some("gpt-4o-mini".into()),
        response_model: Some("gpt-4o-mini-2024-07-18".into()),
        model_parameters: params,
        usage: Some(Usage {
            input_tokens: 1000,
            output_tokens: 50,
            total_tokens: 1050,
            ..Usage::default()
        }),
        input_messages: vec![
            msg("system", "You answer in one sentence."),
            msg("user", "What is the capital of France?"),
        ],
        output_messages: vec![msg("assistant", "Paris is the capital of France.")],
        finish_reasons: vec!["stop".into()],
        ..Span::default()
    };
    let tool = Span {
        span_id: SpanId::from_hex(TOOL_SPAN).unwrap(),
        parent_span_id: Some(llm.span_id),
        name: "lookup".into(),
        kind: SpanKind::Tool,
        start_time: Timestamp(start + 10),
        end_time: Some(Timestamp(start + 20)),
        ..llm.clone()
    };
    vec![llm, tool]
}

/// Sends the original trace to `project` over OTLP/HTTP (protobuf), as any SDK would.
fn send_original(s: &Srv, project: &str, auth: Option<&str>) {
    use prost::Message as _;
    let enc = spanlens_core::otlp::encode::Encoding {
        flavor: spanlens_core::otlp::encode::Flavor::Otlp,
        cost: false,
        scope: "test",
    };
    let body = spanlens_core::otlp::encode::export_request(&original_spans(), &enc).encode_to_vec();
    let mut headers = vec![("x-project-name", project)];
    if let Some(a) = auth {
        headers = vec![("authorization", a)];
    }
    let (status, _, text) = s.raw(
        "POST",
        "/v1/traces",
        &headers,
        Some((body, "application/x-protobuf")),
    );
    assert_eq!(status, 200, "{text}");
}

/// USD the built-in catalog charges `usage` on `model`.
fn price(model: &str, usage: &Usage) -> f64 {
    let mut s = Span {
        kind: SpanKind::Llm,
        response_model: Some(model.into()),
        usage: Some(usage.clone()),
        ..Span::default()
    };
    spanlens_core::price_span(&mut s, spanlens_core::PriceCatalog::builtin());
    s.cost.expect("a priced model").amounts.total.as_usd_f64()
}

fn usage_of(v: &Value) -> Usage {
    serde_json::from_value(v.clone()).unwrap()
}

/// Every check of the feature on one server, in project `project`.
fn replays_on(s: &Srv, project: &str) {
    send_original(s, project, None);
    let q = format!("?project={project}");
    let mut answers = String::new();

    // Endpoints: names, kinds, models; never a key or a URL.
    let (code, eps, text) = s.call("GET", "/api/v1/replay/endpoints", &[], None);
    assert_eq!(code, 200, "{text}");
    let names: Vec<&str> = eps["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "mock-openai",
            "mock-anthropic",
            "nowhere",
            "echo",
            "silent",
            "junk"
        ]
    );
    assert_eq!(eps["endpoints"][1]["kind"], "anthropic");
    assert_eq!(
        eps["endpoints"][0]["models"],
        json!(["gpt-4o-mini", "gpt-4o"])
    );
    assert!(
        !text.contains("127.0.0.1") && !text.contains("REPLAY_TEST_KEY"),
        "{text}"
    );
    answers.push_str(&text);

    // The draft: the span's messages and parameters, what is left out, the original's figures.
    let (code, draft, text) = s.call(
        "GET",
        &format!("/api/v1/traces/{ORIG_TRACE}/spans/{ORIG_SPAN}/replay{q}"),
        &[],
        None,
    );
    assert_eq!(code, 200, "{text}");
    assert_eq!(draft["model"], "gpt-4o-mini");
    assert_eq!(draft["provider"], "openai");
    assert_eq!(
        draft["messages"],
        json!([
        {"role": "system", "content": "You answer in one sentence."},
        {"role": "user", "content": "What is the capital of France?"}])
    );
    assert_eq!(
        draft["parameters"],
        json!({"temperature": 0.7, "max_tokens": 300})
    );
    assert!(draft["notes"].to_string().contains("logit_bias"), "{draft}");
    assert_eq!(
        draft["original"]["output"],
        "Paris is the capital of France."
    );
    assert_eq!(draft["original"]["latency_ms"], 1250.0);
    assert_eq!(draft["original"]["usage"]["input_tokens"], 1000);
    let orig_cost = price(
        "gpt-4o-mini-2024-07-18",
        &usage_of(&draft["original"]["usage"]),
    );
    assert!(
        (draft["original"]["cost_usd"].as_f64().unwrap() - orig_cost).abs() < 1e-9,
        "{draft}"
    );
    // A tool span is no model call; an unknown span is not found.
    let (code, _, text) = s.call(
        "GET",
        &format!("/api/v1/traces/{ORIG_TRACE}/spans/{TOOL_SPAN}/replay{q}"),
        &[],
        None,
    );
    assert_eq!(code, 400, "{text}");
    assert!(text.contains("only llm spans"), "{text}");
    let (code, _, _) = s.call(
        "GET",
        &format!("/api/v1/traces/{ORIG_TRACE}/spans/00000000000000ff/replay{q}"),
        &[],
        None,
    );
    assert_eq!(code, 404);

    // Replay on the OpenAI endpoint, a message edited.
    let mut messages = draft["messages"].clone();
    messages[1]["content"] = json!("And of Italy?");
    let body = json!({"trace_id": ORIG_TRACE, "span_id": ORIG_SPAN, "endpoint": "mock-openai",
        "model": "gpt-4o-mini", "messages": messages, "parameters": {"temperature": 0.2, "max_tokens": 100}});
    let (code, ans, text) = s.call("POST", &format!("/api/v1/replay{q}"), &[], Some(&body));
    assert_eq!(code, 200, "{text}");
    answers.push_str(&text);
    assert_eq!(ans["endpoint"], "mock-openai");
    assert_eq!(ans["output"], "Mock answer to: And of Italy?");
    assert_eq!(ans["model"], "gpt-4o-mini-2024-07-18");
    // The mock's plain chat usage: 2006 prompt tokens (1920 cached), 300 completion (128 reasoning).
    let u = usage_of(&ans["usage"]);
    assert_eq!(
        (
            u.input_tokens,
            u.cache_read_tokens,
            u.output_tokens,
            u.reasoning_tokens
        ),
        (2006, 1920, 300, 128)
    );
    let cost = ans["cost_usd"].as_f64().unwrap();
    assert!(
        (cost - price("gpt-4o-mini-2024-07-18", &u)).abs() < 1e-9,
        "{ans}"
    );
    assert!(cost > 0.0);
    let latency = ans["latency_ms"].as_f64().unwrap();
    assert!(latency > 0.0 && latency < 30_000.0, "{ans}");
    assert_eq!(ans["finish_reasons"], json!(["stop"]));
    assert_eq!(ans["original"]["output"], "Paris is the capital of France.");
    assert_eq!(ans["original"]["cost_usd"], draft["original"]["cost_usd"]);

    // The new trace, read back: one llm span linked to the original, the edited conversation.
    let new_trace = ans["trace_id"].as_str().unwrap();
    assert_ne!(new_trace, ORIG_TRACE);
    let (code, t, text) = s.call(
        "GET",
        &format!("/api/v1/traces/{new_trace}{q}&analysis=false"),
        &[],
        None,
    );
    assert_eq!(code, 200, "{text}");
    answers.push_str(&text);
    let spans = t["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 1, "{t}");
    let sp = &spans[0];
    assert_eq!(sp["span_id"], ans["span_id"]);
    assert_eq!(sp["kind"], "llm");
    assert_eq!(sp["status"], "ok");
    assert_eq!(sp["provider"], "openai");
    assert_eq!(sp["request_model"], "gpt-4o-mini");
    assert_eq!(sp["attributes"]["spanlens.replay.of_trace"], ORIG_TRACE);
    assert_eq!(sp["attributes"]["spanlens.replay.of_span"], ORIG_SPAN);
    assert_eq!(sp["links"][0]["trace_id"], ORIG_TRACE);
    assert_eq!(sp["links"][0]["span_id"], ORIG_SPAN);
    assert_eq!(sp["input_messages"][1]["content"], "And of Italy?");
    assert_eq!(
        sp["output_messages"][0]["content"],
        "Mock answer to: And of Italy?"
    );
    assert_eq!(sp["model_parameters"]["temperature"], 0.2);
    assert_eq!(sp["usage"]["input_tokens"], 2006);
    assert!(
        (sp["cost"]["total_usd"].as_f64().unwrap() - cost).abs() < 1e-9,
        "{sp}"
    );
    assert!((t["trace"]["total_cost_usd"].as_f64().unwrap() - cost).abs() < 1e-9);
    // Listed like any trace of the project.
    let (_, list, _) = s.call("GET", &format!("/api/v1/traces{q}&limit=50"), &[], None);
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["trace_id"] == new_trace),
        "{list}"
    );

    // Anthropic: the system message goes to `system`; its usage is read in Anthropic's rule.
    let body = json!({"trace_id": ORIG_TRACE, "span_id": ORIG_SPAN, "endpoint": "mock-anthropic",
        "model": "claude-sonnet-4-5", "messages": draft["messages"], "parameters": {"max_tokens": 200, "stop": ["END"]}});
    let (code, ans, text) = s.call("POST", &format!("/api/v1/replay{q}"), &[], Some(&body));
    assert_eq!(code, 200, "{text}");
    answers.push_str(&text);
    assert_eq!(
        ans["output"],
        "Mock answer to: What is the capital of France?"
    );
    assert_eq!(ans["model"], "claude-sonnet-4-5-20250929");
    let u = usage_of(&ans["usage"]);
    // ANTHROPIC_USAGE plain: 312 input + 2048 cache read + 1024 + 512 cache writes; 187 output.
    assert_eq!(
        (
            u.input_tokens,
            u.cache_read_tokens,
            u.cache_write_tokens,
            u.output_tokens
        ),
        (3896, 2048, 1536, 187)
    );
    assert!(ans["cost_usd"].as_f64().unwrap() > 0.0, "{ans}");
    assert_eq!(ans["finish_reasons"], json!(["end_turn"]));

    // Refusals, each naming the problem; nothing is called or stored for them.
    let base = json!({"trace_id": ORIG_TRACE, "span_id": ORIG_SPAN, "endpoint": "mock-openai",
        "model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]});
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    for (body, code_wanted, says) in [
        (
            with("endpoint", json!("elsewhere")),
            400,
            "unknown endpoint \"elsewhere\"",
        ),
        (
            with("model", json!("gpt-5")),
            400,
            "offers no model \"gpt-5\"",
        ),
        (with("messages", json!([])), 400, "messages"),
        (
            with("messages", json!([{"role": "tool", "content": "x"}])),
            400,
            "role",
        ),
        (
            with("parameters", json!({"temperature": 7})),
            400,
            "temperature",
        ),
        (with("parameters", json!({"top_k": 3})), 400, "top_k"),
        (with("span_id", json!(TOOL_SPAN)), 400, "only llm spans"),
        (with("span_id", json!("zz")), 400, "span_id"),
        (
            with("trace_id", json!("00000000000000000000000000000001")),
            404,
            "no trace",
        ),
        (json!({"trace_id": ORIG_TRACE}), 400, "invalid JSON body"),
    ] {
        let (code, err, text) = s.call("POST", &format!("/api/v1/replay{q}"), &[], Some(&body));
        assert_eq!(code, code_wanted, "{body}: {text}");
        assert!(
            err["error"].as_str().unwrap().contains(says),
            "{body}: {text}"
        );
        answers.push_str(&text);
    }
    let mut b = base.clone();
    b["endpoint"] = json!("mock-anthropic");
    b["model"] = json!("claude-sonnet-4-5");
    b["parameters"] = json!({"seed": 1});
    let (code, _, text) = s.call("POST", &format!("/api/v1/replay{q}"), &[], Some(&b));
    assert_eq!((code, text.contains("seed")), (400, true), "{text}");

    // Provider failures: 502 naming the problem, the attempt stored as an error span.
    let failing = with(
        "messages",
        json!([{"role": "user", "content": "please FAIL_500"}]),
    );
    let (code, err, text) = s.call("POST", &format!("/api/v1/replay{q}"), &[], Some(&failing));
    assert_eq!(code, 502, "{text}");
    answers.push_str(&text);
    let msg = err["error"].as_str().unwrap();
    assert!(
        msg.contains("HTTP 500") && msg.contains("Internal server error (mock)"),
        "{msg}"
    );
    let stored = msg.rsplit("trace ").next().unwrap().trim();
    assert_eq!(stored.len(), 32, "{msg}");
    let (code, t, text) = s.call(
        "GET",
        &format!("/api/v1/traces/{stored}{q}&analysis=false"),
        &[],
        None,
    );
    assert_eq!(code, 200, "{text}");
    let sp = &t["spans"][0];
    assert_eq!(sp["status"], "error");
    assert_eq!(sp["error_type"], "http_500");
    assert_eq!(sp["attributes"]["spanlens.replay.of_span"], ORIG_SPAN);
    assert_eq!(sp["input_messages"][0]["content"], "please FAIL_500");

    let (code, err, text) = s.call(
        "POST",
        &format!("/api/v1/replay{q}"),
        &[],
        Some(&with("endpoint", json!("nowhere"))),
    );
    assert_eq!(code, 502, "{text}");
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .contains("could not be reached"),
        "{text}"
    );

    // A provider echoing the request's headers: the key is masked before it reaches anyone.
    let (code, err, text) = s.call(
        "POST",
        &format!("/api/v1/replay{q}"),
        &[],
        Some(&with("endpoint", json!("echo"))),
    );
    assert_eq!(code, 502, "{text}");
    answers.push_str(&text);
    let msg = err["error"].as_str().unwrap();
    assert!(
        msg.contains("HTTP 401") && msg.contains("Bearer [api key]"),
        "the key was sent, and masked: {msg}"
    );
    let echoed = msg.rsplit("trace ").next().unwrap().trim();
    let (_, t, text) = s.call("GET", &format!("/api/v1/traces/{echoed}{q}"), &[], None);
    answers.push_str(&text);
    assert_eq!(t["spans"][0]["error_type"], "http_401");

    // A provider that does not answer in time, and one whose answer is not the API's.
    let mut slow = with("endpoint", json!("silent"));
    slow["model"] = json!("claude-sonnet-4-5");
    let (code, err, text) = s.call("POST", &format!("/api/v1/replay{q}"), &[], Some(&slow));
    assert_eq!(code, 502, "{text}");
    let msg = err["error"].as_str().unwrap();
    assert!(msg.contains("did not answer within 1 s"), "{msg}");
    let stored = msg.rsplit("trace ").next().unwrap().trim();
    let (_, t, _) = s.call("GET", &format!("/api/v1/traces/{stored}{q}"), &[], None);
    assert_eq!(t["spans"][0]["error_type"], "timeout");
    let (code, err, text) = s.call(
        "POST",
        &format!("/api/v1/replay{q}"),
        &[],
        Some(&with("endpoint", json!("junk"))),
    );
    assert_eq!(code, 502, "{text}");
    let msg = err["error"].as_str().unwrap();
    assert!(
        msg.contains("cannot be read") && msg.contains("gateway page"),
        "{msg}"
    );

    // A request over 1 MiB is refused on its length, before its body is read.
    let mut conn = std::net::TcpStream::connect(s.bound.http).unwrap();
    write!(
        conn,
        "POST /api/v1/replay{q} HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: 1100000\r\n\r\n{{"
    )
    .unwrap();
    let mut status = String::new();
    BufReader::new(conn).read_line(&mut status).unwrap();
    assert!(status.starts_with("HTTP/1.1 413"), "{status}");

    assert!(!answers.contains(KEY), "an answer holds the key");
}

#[test]
fn replays_on_sqlite() {
    let s = start(None, tempfile::tempdir().unwrap(), |_| {});
    replays_on(&s, "shop");
}

#[test]
fn without_endpoints_replay_says_it_is_not_configured() {
    let s = start(None, tempfile::tempdir().unwrap(), |c| c.replay = None);
    send_original(&s, "default", None);
    let (code, eps, _) = s.call("GET", "/api/v1/replay/endpoints", &[], None);
    assert_eq!((code, eps), (200, json!({"endpoints": []})));
    let body = json!({"trace_id": ORIG_TRACE, "span_id": ORIG_SPAN, "endpoint": "x", "model": "m",
        "messages": [{"role": "user", "content": "hi"}]});
    let (code, _, text) = s.call("POST", "/api/v1/replay", &[], Some(&body));
    assert_eq!(code, 400);
    assert!(text.contains("--replay"), "{text}");
}

#[test]
fn viewers_are_refused_and_members_replay_their_own_project() {
    let dir = tempfile::tempdir().unwrap();
    let (viewer, member, other) = {
        let store = Arc::new(spanlens_server::open_store(dir.path()).unwrap());
        let d = spanlens_auth::Directory::new(store);
        let rt = tokio::runtime::Runtime::new().unwrap();
        let mk = |project: &str, name: &str, scopes: &[spanlens_auth::Scope]| {
            format!(
                "Bearer {}",
                rt.block_on(d.create(project, name, scopes, false))
                    .unwrap()
                    .secret
            )
        };
        use spanlens_auth::Scope::{Ingest, Read};
        (
            mk("shop", "reader", &[Read]),
            mk("shop", "member", &[Read, Ingest]),
            mk("other", "member", &[Read, Ingest]),
        )
    };
    let s = start(None, dir, |c| {
        c.auth = spanlens_server::auth::AuthMode::Required
    });
    send_original(&s, "shop", Some(&member));
    let body = json!({"trace_id": ORIG_TRACE, "span_id": ORIG_SPAN, "endpoint": "mock-openai",
        "model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]});
    let (code, _, text) = s.call(
        "POST",
        "/api/v1/replay",
        &[("authorization", &viewer)],
        Some(&body),
    );
    assert_eq!(code, 403, "a viewer does not replay: {text}");
    let (code, _, _) = s.call(
        "GET",
        "/api/v1/replay/endpoints",
        &[("authorization", &viewer)],
        None,
    );
    assert_eq!(code, 200, "a viewer sees the endpoints");
    let (code, _, text) = s.call(
        "GET",
        &format!("/api/v1/traces/{ORIG_TRACE}/spans/{ORIG_SPAN}/replay"),
        &[("authorization", &viewer)],
        None,
    );
    assert_eq!(code, 200, "a viewer reads the draft: {text}");
    // Another project's member cannot reach this span, by its key or by naming the project.
    let (code, _, _) = s.call(
        "POST",
        "/api/v1/replay",
        &[("authorization", &other)],
        Some(&body),
    );
    assert_eq!(code, 404);
    let (code, _, _) = s.call(
        "POST",
        "/api/v1/replay?project=shop",
        &[("authorization", &other)],
        Some(&body),
    );
    assert_eq!(code, 403);
    let (code, ans, text) = s.call(
        "POST",
        "/api/v1/replay",
        &[("authorization", &member)],
        Some(&body),
    );
    assert_eq!(code, 200, "{text}");
    assert_eq!(ans["output"], "Mock answer to: hello");
    let (code, _, _) = s.call(
        "GET",
        &format!("/api/v1/traces/{}", ans["trace_id"].as_str().unwrap()),
        &[("authorization", &viewer)],
        None,
    );
    assert_eq!(code, 200, "stored in the member's project");
}

#[test]
fn a_bad_replay_file_is_refused_with_the_reason() {
    let e = ReplayConfig::from_toml_with(
        "[[endpoint]]\nname = \"o\"\nkind = \"openai\"\nbase_url = \"http://x/v1\"\napi_key_env = \"MISSING_KEY_VAR\"\nmodels = [\"m\"]",
        &|_| None,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("MISSING_KEY_VAR") && e.contains("not set"),
        "{e}"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("replay.toml");
    std::fs::write(
        &path,
        "[[endpoint]]\nname = \"o\"\nkind = \"cohere\"\nbase_url = \"http://x\"\nmodels = [\"m\"]",
    )
    .unwrap();
    let e = ReplayConfig::load(&path).unwrap_err().to_string();
    assert!(
        e.contains("invalid replay endpoints") && e.contains("cohere"),
        "{e}"
    );
}

#[cfg(feature = "postgres")]
#[test]
fn replays_on_postgres() {
    let (uri, _db) =
        any_store::postgres_database(&format!("spanlens_replay_{}", std::process::id()));
    let s = start(Some(uri), tempfile::tempdir().unwrap(), |_| {});
    replays_on(&s, "shop");
}

#[cfg(feature = "clickhouse")]
#[test]
fn replays_on_clickhouse() {
    let s = start(
        Some(any_store::clickhouse_uri("spanlens_replay")),
        tempfile::tempdir().unwrap(),
        |_| {},
    );
    replays_on(&s, "shop");
}
