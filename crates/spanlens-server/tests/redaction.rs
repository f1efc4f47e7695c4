//! PII redaction at ingest, over real sockets: every ingest format (OTLP/HTTP JSON and
//! protobuf, Langfuse's OTLP path, OTLP/gRPC, the OpenAI Agents exporter, OTLP logs, scores)
//! stores no finding of the built-in detectors; a project's own settings (custom rules,
//! attributes dropped and kept) are saved through the API, applied at once, and kept across a
//! restart; unusable settings are refused with the reason.

use prost::Message;
use serde_json::{json, Value};
use spanlens_core::otlp::proto::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use spanlens_core::redact::RedactionSettings;

mod common;

use common::client::{fixture, Server, JSON, PROTO};

/// What the detectors must find, and where it was put.
const EMAIL: &str = "jane.doe@example.com";
const CARD: &str = "4111 1111 1111 1111";
const KEY: &str = "sk-proj-abcdefghijklmnopqrstuvwx12";
const PHONE: &str = "+1 415 555 0132";
const IP: &str = "10.20.30.40";
const SECRETS: [&str; 5] = [EMAIL, CARD, KEY, PHONE, IP];

fn kv(key: &str, value: &str) -> Value {
    json!({"key": key, "value": {"stringValue": value}})
}

/// One trace of an agent and its chat call, with PII in the name, resource, attributes, input,
/// output, messages, a tool call's arguments and an exception event.
fn otlp(trace: &str) -> Value {
    json!({"resourceSpans": [{
        "resource": {"attributes": [kv("service.name", "support"), kv("host.ip", IP)]},
        "scopeSpans": [{"spans": [
        {"traceId": trace, "spanId": "eee19b7ec3c1b174", "name": format!("agent for {EMAIL}"),
         "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000002000000000",
         "attributes": [
            kv("input.value", &format!("pay with {CARD} please")),
            kv("output.value", &format!("call me on {PHONE}")),
            kv("user.email", EMAIL),
            kv("http.request.header.authorization", "Basic dXNlcjpwYXNz"),
            kv("client.ip", IP)]},
        {"traceId": trace, "spanId": "aaa19b7ec3c1b175", "parentSpanId": "eee19b7ec3c1b174",
         "name": "chat gpt-4o",
         "startTimeUnixNano": "1700000000100000000", "endTimeUnixNano": "1700000001000000000",
         "attributes": [
            kv("gen_ai.operation.name", "chat"),
            kv("gen_ai.request.model", "gpt-4o"),
            kv("gen_ai.input.messages", &json!([{"role": "user", "parts": [
                {"type": "text", "content": format!("my key is {KEY}")}]}]).to_string()),
            kv("gen_ai.output.messages", &json!([{"role": "assistant", "parts": [
                {"type": "tool_call", "id": "c1", "name": "send_mail",
                 "arguments": {"to": EMAIL}}]}]).to_string())],
         "events": [{"name": "exception", "timeUnixNano": "1700000000500000000",
                     "attributes": [kv("exception.message", &format!("no route to {IP}"))]}]}
    ]}]}]})
}

/// The stored trace as the API sends it, as text.
fn stored(s: &Server, project: &str, trace: &str) -> String {
    let (status, body) = s.get(&format!("/api/v1/traces/{trace}?project={project}"));
    assert_eq!(status, 200, "{project}/{trace}: {body}");
    body.to_string()
}

fn assert_clean(what: &str, text: &str) {
    for secret in SECRETS {
        assert!(
            !text.contains(secret),
            "{what}: {secret:?} was stored: {text}"
        );
    }
}

fn server_redacting_builtin() -> Server {
    Server::start_configured(tempfile::tempdir().unwrap(), Vec::new(), |c| {
        c.redaction = RedactionSettings::builtin();
    })
}

#[test]
fn every_http_ingest_format_stores_redacted_spans() {
    let s = server_redacting_builtin();
    // OTLP/HTTP JSON.
    let t1 = "5b8efff798038103d269b633813fc601";
    let (status, body, _) = s.post("/v1/traces", &[JSON], otlp(t1).to_string().as_bytes());
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    // OTLP/HTTP protobuf, gzipped, on Langfuse's path.
    let t2 = "5b8efff798038103d269b633813fc602";
    let req: ExportTraceServiceRequest =
        spanlens_core::otlp::decode_json(otlp(t2).to_string().as_bytes()).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &req.encode_to_vec()).unwrap();
    let (status, _, _) = s.post(
        "/api/public/otel/v1/traces",
        &[PROTO, ("content-encoding", "gzip")],
        &gz.finish().unwrap(),
    );
    assert_eq!(status, 200);
    for t in [t1, t2] {
        let text = stored(&s, "default", t);
        assert_clean(t, &text);
        for marker in ["email", "card", "secret", "phone", "ip"] {
            assert!(
                text.contains(&format!("[REDACTED:{marker}]")),
                "{t}: no {marker} marker in {text}"
            );
        }
        assert!(text.contains("gpt-4o"), "models are not text to redact");
    }
    // The OpenAI Agents exporter.
    let agents = String::from_utf8(fixture("openai_agents_export.json"))
        .unwrap()
        .replace(
            "INV-2024-0193",
            &format!("INV-2024-0193, card {CARD}, mail {EMAIL}"),
        );
    let (status, body, _) = s.post("/v1/traces/ingest", &[JSON], agents.as_bytes());
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let text = stored(&s, "default", "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_clean("agents", &text);
    assert!(text.contains("INV-2024-0193, card [REDACTED:card], mail [REDACTED:email]"));
    // OTLP logs: a GenAI event's content.
    let logs = json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [
        {"timeUnixNano": "1700000000100000000", "traceId": t1, "spanId": "aaa19b7ec3c1b175",
         "attributes": [kv("event.name", "gen_ai.user.message")],
         "body": {"kvlistValue": {"values": [kv("content", &format!("write to {EMAIL}"))]}}}
    ]}]}]});
    let (status, body, _) = s.post("/v1/logs", &[JSON], logs.to_string().as_bytes());
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let text = stored(&s, "default", t1);
    assert!(text.contains("write to [REDACTED:email]"), "{text}");
    assert_clean("logs", &text);
    // A score's comment.
    let score = json!({"trace_id": t1, "name": "helpful", "data_type": "numeric", "value": 1.0,
                       "comment": format!("user {EMAIL} was happy")});
    let (status, body) = s.json("POST", "/api/v1/scores", &[], &score);
    assert_eq!(status, 201, "{body}");
    let (_, scores) = s.get(&format!("/api/v1/scores?trace_id={t1}"));
    assert_clean("scores", &scores.to_string());
    assert!(scores
        .to_string()
        .contains("user [REDACTED:email] was happy"));
}

#[tokio::test]
async fn grpc_ingest_stores_redacted_spans() {
    let s = tokio::task::spawn_blocking(server_redacting_builtin)
        .await
        .unwrap();
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", s.bound.grpc))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = tonic::client::Grpc::new(channel);
    client.ready().await.unwrap();
    let trace = "5b8efff798038103d269b633813fc603";
    let req: ExportTraceServiceRequest =
        spanlens_core::otlp::decode_json(otlp(trace).to_string().as_bytes()).unwrap();
    let codec =
        tonic_prost::ProstCodec::<ExportTraceServiceRequest, ExportTraceServiceResponse>::default();
    let path = http::uri::PathAndQuery::from_static(spanlens_server::grpc::EXPORT_PATH);
    client
        .unary(tonic::Request::new(req), path, codec)
        .await
        .unwrap();
    let text = tokio::task::spawn_blocking(move || stored(&s, "default", trace))
        .await
        .unwrap();
    assert_clean("grpc", &text);
    assert!(text.contains("[REDACTED:secret]"), "{text}");
}

#[test]
fn a_projects_settings_apply_at_once_survive_a_restart_and_bad_ones_are_refused() {
    let s = Server::start();
    let url = "/api/v1/projects/team-b/redaction";
    let (status, body) = s.get(url);
    assert_eq!(status, 200);
    assert_eq!(
        body["settings"],
        json!({"builtin": false, "rules": [], "drop_attributes": [], "keep_attributes": []})
    );
    let settings = json!({
        "builtin": true,
        "rules": [{"name": "ticket", "pattern": "INC-[0-9]{6}"}],
        "drop_attributes": ["http.request.header.*"],
        "keep_attributes": ["client.ip"]
    });
    let (status, body) = s.json("PUT", url, &[], &settings);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["settings"], settings);
    let trace = "5b8efff798038103d269b633813fc604";
    let mut spans = otlp(trace).to_string();
    spans = spans.replace("please", "please, see INC-123456");
    let (status, _, _) = s.post(
        "/v1/traces",
        &[JSON, ("x-project-name", "team-b")],
        spans.as_bytes(),
    );
    assert_eq!(status, 200);
    let text = stored(&s, "team-b", trace);
    assert!(text.contains("see [REDACTED:ticket]"), "{text}");
    assert!(
        !text.contains("http.request.header.authorization"),
        "dropped: {text}"
    );
    assert!(!text.contains("dXNlcjpwYXNz"), "dropped: {text}");
    assert!(
        text.contains(&format!("\"client.ip\":\"{IP}\"")),
        "kept as sent: {text}"
    );
    assert!(!text.contains(EMAIL) && !text.contains(CARD));
    // Another project has no settings and this server none of its own: stored as sent.
    let other = "5b8efff798038103d269b633813fc605";
    s.post(
        "/v1/traces",
        &[JSON, ("x-project-name", "team-c")],
        otlp(other).to_string().as_bytes(),
    );
    assert!(stored(&s, "team-c", other).contains(EMAIL));
    // Unusable settings are refused with the reason, and the saved ones stay.
    for (bad, why) in [
        (
            json!({"rules": [{"name": "x", "pattern": "("}]}),
            "redaction rule \"x\"",
        ),
        (
            json!({"rules": [{"name": "x y", "pattern": "a"}]}),
            "use letters",
        ),
        (
            json!({"rules": [{"name": "e", "pattern": "a*"}]}),
            "matches empty text",
        ),
        (json!({"drop_attributes": ["a*b"]}), "attribute key"),
        (json!({"builtin": true, "colour": "red"}), "unknown field"),
    ] {
        let (status, body) = s.json("PUT", url, &[], &bad);
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains(why),
            "{bad}: {body}"
        );
    }
    let (status, _, _) = s.send("PUT", url, &[("content-type", "text/plain")], b"{}");
    assert_eq!(status, 415);
    let (status, bad_project) = s.get(&format!("/api/v1/projects/{}/redaction", "p".repeat(300)));
    assert_eq!(status, 400);
    assert!(bad_project["error"]
        .as_str()
        .unwrap()
        .contains("project name"));
    // A restart reads them back.
    let dir = s.stop_keeping_data();
    let s = Server::start_in(dir, Vec::new(), None, None);
    assert_eq!(s.get(url).1["settings"], settings);
    // An empty object removes them.
    let (status, body) = s.json("PUT", url, &[], &json!({}));
    assert_eq!(status, 200);
    assert_eq!(body["settings"]["builtin"], false);
    let trace = "5b8efff798038103d269b633813fc606";
    s.post(
        "/v1/traces",
        &[JSON, ("x-project-name", "team-b")],
        otlp(trace).to_string().as_bytes(),
    );
    assert!(stored(&s, "team-b", trace).contains(EMAIL));
}
