//! `SPANLENS_DESTINATIONS=langfuse,langsmith`: the SDK sends its spans straight to Langfuse and
//! LangSmith (no Spanlens server), normalised and priced in the application and shaped as each
//! receiver documents — checked on the wire by an in-test receiver.

use prost::Message;
use serde_json::{json, Value};
use spanlens::record::LlmCall;
use spanlens::{Config, SpanKind};
use spanlens_core::otlp::proto::{self, ExportTraceServiceRequest};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

/// Requests received: path, headers, decompressed OTLP request.
type Got = Arc<Mutex<Vec<(String, Vec<(String, String)>, ExportTraceServiceRequest)>>>;

/// A receiver answering 200 to every request; its base URL and what it got.
fn receiver() -> (String, Got) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let got: Got = Arc::default();
    let sink = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
            let mut headers = Vec::new();
            loop {
                let mut h = String::new();
                reader.read_line(&mut h).unwrap();
                let h = h.trim_end();
                if h.is_empty() {
                    break;
                }
                let (k, v) = h.split_once(':').unwrap();
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
            let len: usize = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .map_or(0, |(_, v)| v.parse().unwrap());
            let mut body = vec![0; len];
            reader.read_exact(&mut body).unwrap();
            if headers
                .iter()
                .any(|(k, v)| k == "content-encoding" && v == "gzip")
            {
                let mut out = Vec::new();
                flate2::read::GzDecoder::new(&body[..])
                    .read_to_end(&mut out)
                    .unwrap();
                body = out;
            }
            let req = ExportTraceServiceRequest::decode(&body[..]).expect("OTLP protobuf");
            sink.lock().unwrap().push((path, headers, req));
            let mut s = stream;
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    (base, got)
}

fn attr(s: &proto::Span, key: &str) -> Option<Value> {
    let kv = s.attributes.iter().find(|kv| kv.key == key)?;
    let v = spanlens_core::otlp::any_value(kv.value.clone()?);
    Some(match v {
        Value::String(t) => serde_json::from_str(&t).unwrap_or(Value::String(t)),
        v => v,
    })
}

/// An agent whose model call used 2,000 input tokens (1,024 cached) and 300 output tokens of
/// gpt-4o-mini: 976 × $0.15/M + 1,024 × $0.075/M + 300 × $0.60/M = $0.0004032.
fn run(config: Config) {
    let tracer = config.build_tracer();
    let agent = tracer.span("support").kind(SpanKind::Agent).start();
    agent.in_scope(|| {
        let call = LlmCall::start("openai", "gpt-4o-mini");
        call.usage_json(&json!({"prompt_tokens": 2000, "completion_tokens": 300,
                                "prompt_tokens_details": {"cached_tokens": 1024}}));
        call.finish();
    });
    drop(agent);
    tracer.shutdown();
}

fn spans(got: &Got) -> Vec<proto::Span> {
    got.lock()
        .unwrap()
        .iter()
        .flat_map(|(_, _, r)| r.resource_spans.clone())
        .flat_map(|r| r.scope_spans)
        .flat_map(|s| s.spans)
        .collect()
}

#[test]
fn langfuse_gets_generations_with_usage_and_cost() {
    let (base, got) = receiver();
    let vars = [
        ("SPANLENS_DESTINATIONS", "langfuse"),
        ("LANGFUSE_PUBLIC_KEY", "pk-lf-1"),
        ("LANGFUSE_SECRET_KEY", "sk-lf-2"),
        ("LANGFUSE_HOST", base.as_str()),
        ("OTEL_SERVICE_NAME", "direct"),
    ];
    let config = Config::from_lookup(|k| {
        vars.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string())
    });
    assert!(config.problems.is_empty(), "{:?}", config.problems);
    run(config);
    let (path, headers, _) = got.lock().unwrap()[0].clone();
    assert_eq!(path, "/api/public/otel/v1/traces");
    assert!(headers.contains(&("authorization".into(), "Basic cGstbGYtMTpzay1sZi0y".into())));
    let spans = spans(&got);
    assert_eq!(spans.len(), 2);
    let llm = spans
        .iter()
        .find(|s| attr(s, "langfuse.observation.type") == Some(json!("generation")))
        .unwrap();
    let agent = spans.iter().find(|s| s.name == "support").unwrap();
    assert_eq!(
        attr(agent, "langfuse.observation.type"),
        Some(json!("agent"))
    );
    assert_eq!(attr(agent, "langfuse.trace.name"), Some(json!("support")));
    assert_eq!(llm.parent_span_id, agent.span_id);
    assert_eq!(
        attr(llm, "langfuse.observation.usage_details"),
        Some(json!({"input": 976, "output": 300, "cache_read_input_tokens": 1024, "total": 2300}))
    );
    let cost = attr(llm, "langfuse.observation.cost_details").unwrap();
    assert!(
        (cost["total"].as_f64().unwrap() - 0.0004032).abs() < 1e-12,
        "{cost}"
    );
}

#[test]
fn langsmith_gets_runs_with_usage_metadata_and_cost() {
    let (base, got) = receiver();
    let vars = [
        ("SPANLENS_DESTINATIONS", "langsmith"),
        ("LANGSMITH_API_KEY", "lsv2_pt_x"),
        ("LANGSMITH_ENDPOINT", base.as_str()),
        ("LANGSMITH_PROJECT", "agents"),
    ];
    let config = Config::from_lookup(|k| {
        vars.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string())
    });
    assert!(config.problems.is_empty(), "{:?}", config.problems);
    run(config);
    let (path, headers, _) = got.lock().unwrap()[0].clone();
    assert_eq!(path, "/otel/v1/traces");
    assert!(headers.contains(&("x-api-key".into(), "lsv2_pt_x".into())));
    assert!(headers.contains(&("langsmith-project".into(), "agents".into())));
    let spans = spans(&got);
    let llm = spans
        .iter()
        .find(|s| attr(s, "langsmith.span.kind") == Some(json!("llm")))
        .unwrap();
    let usage = &attr(llm, "gen_ai.completion").unwrap()["usage_metadata"];
    assert_eq!(usage["input_tokens"], 2000);
    assert_eq!(usage["input_token_details"]["cache_read"], 1024);
    assert!(
        (usage["total_cost"].as_f64().unwrap() - 0.0004032).abs() < 1e-12,
        "{usage}"
    );
}

#[test]
fn missing_credentials_and_unknown_names_are_reported_not_fatal() {
    let vars = [("SPANLENS_DESTINATIONS", "langfuse, langsmith, datadog")];
    let config = Config::from_lookup(|k| {
        vars.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string())
    });
    assert!(config.destinations.is_empty());
    let all = config.problems.join("\n");
    assert!(
        all.contains("LANGFUSE_PUBLIC_KEY or LANGFUSE_SECRET_KEY is not set"),
        "{all}"
    );
    assert!(all.contains("LANGSMITH_API_KEY is not set"), "{all}");
    assert!(
        all.contains("\"datadog\" is not langfuse or langsmith"),
        "{all}"
    );
}
