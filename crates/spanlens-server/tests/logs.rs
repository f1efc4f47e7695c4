//! OTLP logs intake over real sockets: `POST /v1/logs` (JSON, protobuf, gzip) and gRPC
//! `LogsService/Export`; GenAI events attached to their span whichever arrives first;
//! evaluation results as scores; partial success for records that are not GenAI events of a
//! span; clear errors for bad bodies.

use prost::Message;
use serde_json::{json, Value};
use spanlens_core::otlp::proto::{ExportLogsServiceRequest, ExportLogsServiceResponse};
use std::io::Write;

mod common;

use common::client::{Server, JSON, PROTO};

const TRACE: &str = "5b8efff798038103d269b633813fc60c";
const ROOT: &str = "eee19b7ec3c1b174";
const CALL: &str = "aaa19b7ec3c1b175";

/// An agent span and the chat call under it, with no content on the call.
fn spans() -> Vec<u8> {
    json!({"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": TRACE, "spanId": ROOT, "name": "agent", "startTimeUnixNano": "1700000000000000000",
         "endTimeUnixNano": "1700000002000000000"},
        {"traceId": TRACE, "spanId": CALL, "parentSpanId": ROOT, "name": "chat gpt-4o",
         "startTimeUnixNano": "1700000000100000000", "endTimeUnixNano": "1700000001000000000",
         "attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}}]}
    ]}]}]})
    .to_string()
    .into_bytes()
}

fn kv(key: &str, value: Value) -> Value {
    json!({"key": key, "value": value})
}

/// The call's GenAI events as log records: details with usage, the user's message (body), an
/// evaluation result.
fn logs() -> Value {
    json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [
        {"timeUnixNano": "1700000000900000000", "eventName": "gen_ai.client.inference.operation.details",
         "traceId": TRACE, "spanId": CALL, "severityNumber": 5, "attributes": [
            kv("gen_ai.request.model", json!({"stringValue": "gpt-4o"})),
            kv("gen_ai.provider.name", json!({"stringValue": "openai"})),
            kv("gen_ai.usage.input_tokens", json!({"intValue": "1200"})),
            kv("gen_ai.usage.output_tokens", json!({"intValue": "80"})),
            kv("gen_ai.output.messages", json!({"stringValue":
                "[{\"role\": \"assistant\", \"parts\": [{\"type\": \"text\", \"content\": \"Sunny, 21 °C.\"}], \"finish_reason\": \"stop\"}]"}))]},
        {"timeUnixNano": "1700000000100000000", "traceId": TRACE, "spanId": CALL,
         "attributes": [kv("event.name", json!({"stringValue": "gen_ai.user.message"}))],
         "body": {"kvlistValue": {"values": [kv("content", json!({"stringValue": "<b>Weather</b> in Paris?"}))]}}},
        {"timeUnixNano": "1700000001500000000", "eventName": "gen_ai.evaluation.result",
         "traceId": TRACE, "spanId": CALL, "attributes": [
            kv("gen_ai.evaluation.name", json!({"stringValue": "relevance"})),
            kv("gen_ai.evaluation.score.value", json!({"doubleValue": 0.9})),
            kv("gen_ai.evaluation.explanation", json!({"stringValue": "answers the question"}))]}
    ]}]}]})
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(b).unwrap();
    gz.finish().unwrap()
}

fn trace_of(s: &Server) -> Value {
    let (status, v) = s.get(&format!("/api/v1/traces/{TRACE}"));
    assert_eq!(status, 200, "{v}");
    v
}

fn relevance_scores(s: &Server) -> Vec<Value> {
    let (status, v) = s.get(&format!("/api/v1/scores?trace_id={TRACE}&name=relevance"));
    assert_eq!(status, 200, "{v}");
    v.as_array().cloned().unwrap_or_else(|| {
        v["items"]
            .as_array()
            .cloned()
            .unwrap_or_else(|| panic!("{v}"))
    })
}

#[test]
fn events_attach_to_their_span_whichever_arrives_first() {
    // Logs first (OTLP/JSON), then the spans.
    let first = Server::start();
    let (status, body, _) = first.post("/v1/logs", &[JSON], logs().to_string().as_bytes());
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap(), json!({}));
    assert_eq!(first.get(&format!("/api/v1/traces/{TRACE}")).0, 404);
    assert_eq!(first.post("/v1/traces", &[JSON], &spans()).0, 200);

    // Spans first, then the logs as gzipped protobuf, twice (an exporter retrying).
    let second = Server::start();
    assert_eq!(second.post("/v1/traces", &[JSON], &spans()).0, 200);
    let req = spanlens_core::otlp::logs::decode_json(logs().to_string().as_bytes()).unwrap();
    for _ in 0..2 {
        let (status, body, _) = second.post(
            "/v1/logs",
            &[PROTO, ("content-encoding", "gzip")],
            &gzip(&req.encode_to_vec()),
        );
        assert_eq!(status, 200);
        let resp = ExportLogsServiceResponse::decode(&body[..]).unwrap();
        assert_eq!(resp.partial_success, None);
    }

    let (a, b) = (trace_of(&first), trace_of(&second));
    assert_eq!(a, b, "the same trace detail whichever arrived first");
    let call = a["spans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["span_id"] == CALL)
        .unwrap();
    assert_eq!(call["kind"], "llm");
    assert_eq!(call["usage"]["input_tokens"], 1200);
    assert_eq!(
        call["input_messages"][0]["content"],
        "<b>Weather</b> in Paris?"
    );
    assert_eq!(call["output_messages"][0]["content"], "Sunny, 21 °C.");
    assert_eq!(call["events"].as_array().unwrap().len(), 3);
    // Shown on the span, not counted in the trace's totals (written when the span was).
    assert_eq!(a["trace"]["input_tokens"], 0);
    // The span panel's read and the export merge the same way.
    for s in [&first, &second] {
        let (status, one) = s.get(&format!("/api/v1/traces/{TRACE}/spans/{CALL}"));
        assert_eq!(status, 200);
        assert_eq!(&one, call);
        let (status, export) = s.get(&format!("/api/v1/traces/{TRACE}/export"));
        assert_eq!(status, 200);
        assert_eq!(export["spans"], a["spans"]);
        // The evaluation is a score of the span, stored once though sent twice.
        let scores = relevance_scores(s);
        assert_eq!(scores.len(), 1, "{scores:?}");
        assert_eq!(scores[0]["value"], 0.9);
        assert_eq!(scores[0]["source"], "otel_event");
        assert_eq!(scores[0]["span_id"], CALL);
        assert_eq!(scores[0]["comment"], "answers the question");
    }
}

#[test]
fn records_that_are_not_genai_events_of_a_span_get_partial_success() {
    let s = Server::start();
    let body = json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [
        {"eventName": "gen_ai.user.message", "body": {"stringValue": "no ids"}},
        {"eventName": "gen_ai.user.message", "traceId": TRACE},
        {"eventName": "gen_ai.choice", "traceId": "00000000000000000000000000000000", "spanId": CALL},
        {"eventName": "http.request", "traceId": TRACE, "spanId": CALL},
        {"eventName": "gen_ai.user.message", "traceId": TRACE, "spanId": CALL,
         "body": {"stringValue": "kept"}}
    ]}]}]});
    let (status, resp, _) = s.post("/v1/logs", &[JSON], body.to_string().as_bytes());
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&resp));
    let v: Value = serde_json::from_slice(&resp).unwrap();
    assert_eq!(v["partialSuccess"]["rejectedLogRecords"], "4", "{v}");
    assert_eq!(
        v["partialSuccess"]["errorMessage"],
        "3 log records had no trace/span id and were ignored; \
         1 was not a GenAI event (no gen_ai.* event name)"
    );
    // The one good record waits for its span.
    assert_eq!(s.post("/v1/traces", &[JSON], &spans()).0, 200);
    let t = trace_of(&s);
    let call = t["spans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["span_id"] == CALL)
        .unwrap();
    assert_eq!(call["input_messages"][0]["content"], "kept");
}

#[test]
fn bad_logs_bodies_get_clear_errors() {
    let s = Server::start();
    let (status, body, _) = s.post("/v1/logs", &[("content-type", "text/plain")], b"hi");
    assert_eq!(status, 415, "{}", String::from_utf8_lossy(&body));
    let (status, body, _) = s.post(
        "/v1/logs",
        &[JSON],
        br#"{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"spanId": "xyz"}]}]}]}"#,
    );
    assert_eq!(status, 400);
    let msg: Value = serde_json::from_slice(&body).unwrap();
    let text = msg["message"].as_str().unwrap();
    assert!(
        text.contains("resourceLogs[0].scopeLogs[0].logRecords[0].spanId") && text.contains("xyz"),
        "{msg}"
    );
    let (status, _, _) = s.post("/v1/logs", &[PROTO], b"\x0a\xff\xff");
    assert_eq!(status, 400);
    let (status, _, _) = s.post(
        "/v1/logs",
        &[JSON, ("content-encoding", "gzip")],
        b"not gzip",
    );
    assert_eq!(status, 400);
    let long = "p".repeat(200);
    let (status, body, _) = s.post("/v1/logs", &[JSON, ("x-project-name", &long)], b"{}");
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("x-project-name"));
    // 65 MiB after decompression: refused as too large, without being held whole.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mb = vec![b' '; 1 << 20];
    for _ in 0..65 {
        gz.write_all(&mb).unwrap();
    }
    let (status, _, _) = s.post(
        "/v1/logs",
        &[JSON, ("content-encoding", "gzip")],
        &gz.finish().unwrap(),
    );
    assert_eq!(status, 413);
    // A huge body string is cut to the attribute limit and the cut is shown on the span.
    let big = "x".repeat(5 * 1024 * 1024);
    let body = json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [
        {"eventName": "gen_ai.user.message", "traceId": TRACE, "spanId": CALL,
         "body": {"stringValue": big}}]}]}]});
    let (status, _, _) = s.post("/v1/logs", &[JSON], body.to_string().as_bytes());
    assert_eq!(status, 200);
    assert_eq!(s.post("/v1/traces", &[JSON], &spans()).0, 200);
    let (_, call) = s.get(&format!("/api/v1/traces/{TRACE}/spans/{CALL}"));
    let content = call["input_messages"][0]["content"].as_str().unwrap();
    assert!(content.len() <= spanlens_core::limits::MAX_TEXT_BYTES);
    assert!(
        call["truncated"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["field"].as_str().unwrap().starts_with("log event")),
        "{}",
        call["truncated"]
    );
}

#[test]
fn evaluation_span_events_become_scores_once() {
    let s = Server::start();
    let body = json!({"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": TRACE, "spanId": CALL, "name": "chat", "startTimeUnixNano": "1700000000000000000",
         "endTimeUnixNano": "1700000001000000000", "events": [
            {"timeUnixNano": "1700000000500000000", "name": "gen_ai.evaluation.result", "attributes": [
                kv("gen_ai.evaluation.name", json!({"stringValue": "relevance"})),
                kv("gen_ai.evaluation.score.label", json!({"stringValue": "relevant"}))]}]}
    ]}]}]})
    .to_string();
    for _ in 0..2 {
        assert_eq!(s.post("/v1/traces", &[JSON], body.as_bytes()).0, 200);
    }
    let scores = relevance_scores(&s);
    assert_eq!(scores.len(), 1, "{scores:?}");
    assert_eq!(scores[0]["label"], "relevant");
    assert_eq!(scores[0]["data_type"], "categorical");
}

#[tokio::test]
async fn grpc_logs_export_keeps_events_and_reports_partial_success() {
    let s = tokio::task::spawn_blocking(Server::start).await.unwrap();
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", s.bound.grpc))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = tonic::client::Grpc::new(channel);
    client.ready().await.unwrap();
    let mut req: ExportLogsServiceRequest =
        spanlens_core::otlp::logs::decode_json(logs().to_string().as_bytes()).unwrap();
    // One record without ids.
    let mut orphan = req.resource_logs[0].scope_logs[0].log_records[0].clone();
    orphan.trace_id.clear();
    orphan.span_id.clear();
    req.resource_logs[0].scope_logs[0].log_records.push(orphan);
    let codec =
        tonic_prost::ProstCodec::<ExportLogsServiceRequest, ExportLogsServiceResponse>::default();
    let path = http::uri::PathAndQuery::from_static(spanlens_server::grpc::LOGS_EXPORT_PATH);
    let resp = client
        .unary(tonic::Request::new(req), path.clone(), codec)
        .await
        .unwrap()
        .into_inner();
    let partial = resp.partial_success.unwrap();
    assert_eq!(partial.rejected_log_records, 1);
    assert!(partial.error_message.contains("no trace/span id"));
    // A malformed message is INVALID_ARGUMENT, as for traces.
    #[derive(Clone, PartialEq, prost::Message)]
    struct Garbage {
        #[prost(bytes = "vec", tag = "1")]
        resource_logs: Vec<u8>,
    }
    let codec = tonic_prost::ProstCodec::<Garbage, ExportLogsServiceResponse>::default();
    client.ready().await.unwrap();
    let err = client
        .unary(
            tonic::Request::new(Garbage {
                resource_logs: vec![0xff, 0xff],
            }),
            path,
            codec,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    let t = tokio::task::spawn_blocking(move || {
        assert_eq!(s.post("/v1/traces", &[JSON], &spans()).0, 200);
        let t = trace_of(&s);
        drop(s);
        t
    })
    .await
    .unwrap();
    let call = t["spans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["span_id"] == CALL)
        .unwrap()
        .clone();
    assert_eq!(call["usage"]["output_tokens"], 80);
}
