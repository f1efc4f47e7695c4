//! Hostile values at the edges of every time and number field, through `normalize` in each
//! format: what cannot be stored is rejected per span naming the field, what is too large is
//! cut and noted, and every span that comes out reads back from its stored JSON form.

use prost::Message;
use serde_json::{json, Value};
use spanlens_core::limits::{MAX_ID_BYTES, MAX_NAME_BYTES, MAX_TIME_NS};
use spanlens_core::{normalize, InputFormat, NormalizeOptions, Normalized, PriceCatalog, Span};

fn opts() -> NormalizeOptions {
    NormalizeOptions {
        received_at: spanlens_core::Timestamp(1_764_003_600_000_000_000),
        default_project: None,
    }
}

fn attr(key: &str, value: Value) -> Value {
    let v = match value {
        Value::String(s) => json!({ "stringValue": s }),
        Value::Number(n) if n.is_f64() => json!({ "doubleValue": n }),
        Value::Number(n) => json!({ "intValue": n.to_string() }),
        other => json!({ "stringValue": other.to_string() }),
    };
    json!({ "key": key, "value": v })
}

/// One OTLP/JSON span with the given times (strings of nanoseconds) and attributes.
fn otlp_span(i: u64, start: &str, end: &str, name: &str, attrs: Vec<Value>) -> Value {
    json!({
        "traceId": "4bf92f3577b34da6a3ce929d0e0e4736",
        "spanId": format!("{:016x}", i + 1),
        "name": name,
        "startTimeUnixNano": start,
        "endTimeUnixNano": end,
        "attributes": attrs,
    })
}

fn request(spans: Vec<Value>) -> Value {
    json!({ "resourceSpans": [{
        "resource": { "attributes": [attr("service.name", json!("edge"))] },
        "scopeSpans": [{ "spans": spans }]
    }]})
}

/// The same request as protobuf, encoded from the JSON form this crate decodes.
fn as_protobuf(v: &Value) -> Vec<u8> {
    let bytes = serde_json::to_vec(v).unwrap();
    spanlens_core::otlp::decode_json(&bytes)
        .unwrap()
        .encode_to_vec()
}

fn run(format: InputFormat, body: &[u8]) -> Normalized {
    let out = normalize(format, body, &opts(), PriceCatalog::builtin()).unwrap();
    for s in &out.spans {
        let text = serde_json::to_string(s).unwrap();
        let back: Span = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("span {} does not read back: {e}", s.span_id));
        assert_eq!(&back, s);
    }
    out
}

const OK_START: &str = "1764003600000000000";

#[test]
fn times_that_cannot_be_stored_are_rejected_per_span_naming_the_field() {
    let max = MAX_TIME_NS.to_string();
    let past_max = (MAX_TIME_NS + 1).to_string();
    let u64_max = u64::MAX.to_string();
    let mut with_event = otlp_span(4, OK_START, OK_START, "event", vec![]);
    with_event["events"] = json!([{ "name": "late", "timeUnixNano": u64_max }]);
    let req = request(vec![
        otlp_span(0, OK_START, &past_max, "end past 2262", vec![]),
        otlp_span(1, &u64_max, &u64_max, "start at u64::MAX", vec![]),
        otlp_span(2, OK_START, &max, "end at the last storable ns", vec![]),
        otlp_span(3, "1", "2", "1970", vec![]),
        with_event,
    ]);
    for (format, body) in [
        (InputFormat::OtlpJson, serde_json::to_vec(&req).unwrap()),
        (InputFormat::OtlpProtobuf, as_protobuf(&req)),
    ] {
        let out = run(format, &body);
        let kept: Vec<&str> = out.spans.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(kept, ["end at the last storable ns", "1970"], "{format:?}");
        let reasons: Vec<String> = out.rejected.iter().map(|r| r.to_string()).collect();
        assert_eq!(reasons.len(), 3, "{reasons:?}");
        assert!(
            reasons[0].contains("spans[0].endTimeUnixNano"),
            "{reasons:?}"
        );
        assert!(reasons[0].contains("2262-04-11T23:47:16"), "{reasons:?}");
        assert!(
            reasons[1].contains("spans[1].startTimeUnixNano"),
            "{reasons:?}"
        );
        assert!(reasons[2].contains("events[0].timeUnixNano"), "{reasons:?}");
    }
}

#[test]
fn agents_times_past_2262_are_rejected() {
    let body = json!({ "data": [
        { "object": "trace.span", "id": "span_000000000000000000000001",
          "trace_id": "trace_0123456789abcdef0123456789abcdef",
          "started_at": "2300-01-01T00:00:00Z", "ended_at": "2300-01-01T00:00:01Z",
          "span_data": { "type": "function", "name": "far" } },
        { "object": "trace.span", "id": "span_000000000000000000000002",
          "trace_id": "trace_0123456789abcdef0123456789abcdef",
          "started_at": "2025-11-24T17:00:00Z", "ended_at": "2025-11-24T17:00:01Z",
          "span_data": { "type": "function", "name": "near" } }
    ]});
    let out = run(
        InputFormat::OpenAiAgents,
        &serde_json::to_vec(&body).unwrap(),
    );
    assert_eq!(out.spans.len(), 1, "{:?}", out.rejected);
    assert_eq!(out.rejected.len(), 1);
    assert!(out.rejected[0].to_string().contains("start_time"));
}

#[test]
fn extreme_numbers_are_dropped_and_noted_never_stored() {
    let llm = |i: u64, extra: Vec<Value>| {
        let mut attrs = vec![
            attr("gen_ai.operation.name", json!("chat")),
            attr("gen_ai.provider.name", json!("openai")),
            attr("gen_ai.request.model", json!("gpt-4o")),
        ];
        attrs.extend(extra);
        otlp_span(i, OK_START, "1764003601000000000", "chat", attrs)
    };
    let req = request(vec![
        llm(0, vec![attr("gen_ai.usage.input_tokens", json!(i64::MAX))]),
        llm(
            1,
            vec![attr("gen_ai.response.time_to_first_chunk", json!(1e300))],
        ),
        llm(
            2,
            vec![
                attr("openinference.span.kind", json!("LLM")),
                attr("llm.token_count.prompt", json!(10)),
                attr("llm.cost.total", json!(1e300)),
            ],
        ),
        llm(
            3,
            vec![
                attr("gen_ai.usage.input_tokens", json!(-5)),
                attr("gen_ai.usage.output_tokens", json!(f64::MAX)),
            ],
        ),
    ]);
    for (format, body) in [
        (InputFormat::OtlpJson, serde_json::to_vec(&req).unwrap()),
        (InputFormat::OtlpProtobuf, as_protobuf(&req)),
    ] {
        let out = run(format, &body);
        assert_eq!(out.spans.len(), 4, "{format:?}: {:?}", out.rejected);
        for s in &out.spans {
            if let Some(u) = &s.usage {
                assert!(u.total_tokens <= u64::from(u32::MAX), "{u:?}");
            }
            assert!(s.ttft_ns.is_none_or(|t| t <= MAX_TIME_NS));
            if let Some(c) = &s.cost {
                assert!(c.amounts.total.0.unsigned_abs() < 10_000_000 * 1_000_000_000);
            }
        }
        assert!(out.spans[0].usage.is_none());
        assert_eq!(out.spans[0].truncated[0].field, "usage");
    }
}

#[test]
fn oversized_names_and_ids_are_cut_with_a_marker() {
    let huge = "n".repeat(10 * 1024 * 1024);
    let req = request(vec![otlp_span(
        0,
        OK_START,
        OK_START,
        &huge,
        vec![
            attr("session.id", json!("s".repeat(100_000))),
            attr("user.id", json!("u".repeat(100_000))),
            attr("input.value", json!("i".repeat(5 * 1024 * 1024))),
        ],
    )]);
    let out = run(InputFormat::OtlpJson, &serde_json::to_vec(&req).unwrap());
    let s = &out.spans[0];
    assert_eq!(s.name.len(), MAX_NAME_BYTES);
    assert_eq!(
        s.truncated[0].reason,
        "more than 4194304 bytes (cut while reading), kept 2048"
    );
    assert!(s.session_id.as_ref().unwrap().len() <= MAX_ID_BYTES);
    assert!(s.user_id.as_ref().unwrap().len() <= MAX_ID_BYTES);
    let stored = serde_json::to_string(s).unwrap();
    assert!(stored.len() < 1024 * 1024, "{} bytes stored", stored.len());
    let fields: Vec<&str> = s.truncated.iter().map(|t| t.field.as_str()).collect();
    assert!(fields.contains(&"name"), "{fields:?}");
    assert!(fields.contains(&"session_id"), "{fields:?}");
    assert!(
        fields.iter().any(|f| f.contains("input.value")),
        "{fields:?}"
    );
}

#[test]
fn an_overlong_project_attribute_rejects_its_spans() {
    let mut req = request(vec![otlp_span(0, OK_START, OK_START, "x", vec![])]);
    req["resourceSpans"][0]["resource"]["attributes"] = json!([attr(
        "openinference.project.name",
        json!("p".repeat(10_000))
    )]);
    let out = run(InputFormat::OtlpJson, &serde_json::to_vec(&req).unwrap());
    assert!(out.spans.is_empty());
    assert!(out.rejected[0].to_string().contains("project"));
}
