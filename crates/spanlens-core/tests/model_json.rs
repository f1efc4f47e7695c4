//! The canonical span's JSON form: every field round-trips, times are RFC 3339 with nanoseconds,
//! ids are lowercase hex, and no integer above 2^53 appears where JavaScript would lose it.

use serde_json::{json, Value};
use spanlens_core::*;

fn full_span() -> Span {
    let mut usage = Usage {
        input_tokens: 21_050,
        output_tokens: 400,
        cache_read_tokens: 20_000,
        cache_write_tokens: 1_000,
        reasoning_tokens: 120,
        total_tokens: 21_450,
        ..Default::default()
    };
    usage.extra.insert(Usage::CACHE_WRITE_1H.into(), 400);
    Span {
        trace_id: TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
        span_id: SpanId::from_hex("00f067aa0ba902b7").unwrap(),
        parent_span_id: Some(SpanId::from_hex("53995c3f42cd8ad8").unwrap()),
        name: "chat claude-sonnet-4".into(),
        kind: SpanKind::Llm,
        start_time: Timestamp(1_735_689_600_123_456_789),
        end_time: Some(Timestamp(1_735_689_602_987_654_321)),
        status: Status::Error,
        status_message: Some("rate limited".into()),
        error_type: Some("RateLimitError".into()),
        error_stack: Some("at call()".into()),
        service: Some("support-bot".into()),
        project: Some("default".into()),
        source: Some("genai".into()),
        session_id: Some("conv_42".into()),
        user_id: Some("u_123".into()),
        tags: vec!["prod".into(), "beta".into()],
        metadata: [("tenant".to_string(), json!("acme"))]
            .into_iter()
            .collect(),
        agent_name: Some("billing".into()),
        provider: Some("anthropic".into()),
        request_model: Some("claude-sonnet-4".into()),
        response_model: Some("claude-sonnet-4-20250514".into()),
        response_id: Some("msg_01XFDUDYJgAACzvnptvVoYEL".into()),
        duplicate_of: Some(SpanId::from_hex("53995c3f42cd8ad9").unwrap()),
        model_parameters: [("temperature".to_string(), json!(0.2))]
            .into_iter()
            .collect(),
        usage: Some(usage),
        cost: Some(Cost {
            source: CostSource::Reported,
            amounts: CostBreakdown {
                input: NanoUsd(150_000),
                output: NanoUsd(6_000_000),
                cache_read: NanoUsd(6_000_000),
                cache_write: NanoUsd(4_650_000),
                reasoning: NanoUsd(0),
                total: NanoUsd(16_800_000),
            },
            pricing_id: Some("claude-sonnet-4".into()),
            pricing_version: Some("2026.11.22".into()),
            computed: Some(CostBreakdown {
                total: NanoUsd(16_800_001),
                ..Default::default()
            }),
        }),
        unpriced_reason: None,
        ttft_ns: Some(412_345_678),
        finish_reasons: vec!["end_turn".into()],
        input: Some(Payload::from_text("{\"q\": \"refund\"}", None)),
        output: Some(Payload::from_text("Refund issued.", Some("text/plain"))),
        input_messages: vec![Message {
            role: Some("user".into()),
            content: Some("refund?".into()),
            ..Default::default()
        }],
        output_messages: vec![Message {
            role: Some("assistant".into()),
            tool_calls: vec![ToolCallRef {
                id: Some("c1".into()),
                name: Some("refund".into()),
                arguments: Some("{}".into()),
            }],
            finish_reason: Some("tool_use".into()),
            ..Default::default()
        }],
        tool_definitions: Some(Payload::from_value(
            json!([{"type": "function", "name": "get_weather"}]),
        )),
        tool: Some(ToolInfo {
            name: Some("refund".into()),
            call_id: Some("c1".into()),
            description: None,
        }),
        prompt: Some(PromptTemplate {
            name: Some("support".into()),
            template: Some("Help {{user}}".into()),
            version: Some("3".into()),
            variables: [("user".to_string(), json!("Ada"))].into_iter().collect(),
        }),
        events: vec![Event {
            name: "retry".into(),
            time: Timestamp(1_735_689_601_000_000_001),
            attributes: [("attempt".to_string(), json!(2))].into_iter().collect(),
        }],
        links: vec![Link {
            trace_id: TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").unwrap(),
            span_id: SpanId::from_hex("b7ad6b7169203331").unwrap(),
            attributes: Default::default(),
        }],
        rate_limits: Some(RateLimits {
            requests: Some(RateLimitWindow {
                limit: Some(4000),
                remaining: Some(3999),
                reset: Some(Timestamp(1_735_689_660_000_000_000)),
            }),
            retry_after_ms: Some(1500),
            ..Default::default()
        }),
        resource: std::sync::Arc::new(
            [("service.name".to_string(), json!("support-bot"))]
                .into_iter()
                .collect(),
        ),
        attributes: [("acme.flag".to_string(), json!(true))]
            .into_iter()
            .collect(),
        truncated: vec![Truncation {
            field: "name".into(),
            reason: "5000 bytes, kept 2048".into(),
        }],
    }
}

#[test]
fn every_field_round_trips() {
    let s = full_span();
    let text = serde_json::to_string(&s).unwrap();
    let back: Span = serde_json::from_str(&text).unwrap();
    assert_eq!(back, s);
}

#[test]
fn wire_shape_is_the_documented_one() {
    let v = serde_json::to_value(full_span()).unwrap();
    assert_eq!(v["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(v["span_id"], "00f067aa0ba902b7");
    assert_eq!(v["start_time"], "2025-01-01T00:00:00.123456789Z");
    assert_eq!(v["end_time"], "2025-01-01T00:00:02.987654321Z");
    assert_eq!(v["kind"], "llm");
    assert_eq!(v["status"], "error");
    assert_eq!(v["ttft_ms"], 412.345678);
    assert_eq!(v["cost"]["total_usd"], 0.0168);
    assert_eq!(v["cost"]["source"], "reported");
    assert_eq!(v["response_id"], "msg_01XFDUDYJgAACzvnptvVoYEL");
    assert_eq!(v["duplicate_of"], "53995c3f42cd8ad9");
    assert_eq!(v["cost"]["computed"]["total_usd"], 0.016800001);
    assert_eq!(v["usage"]["extra"]["cache_write_1h_tokens"], 400);
    assert_eq!(
        v["rate_limits"]["requests"]["reset"],
        "2025-01-01T00:01:00.000000000Z"
    );
    assert_eq!(v["input"]["value"]["q"], "refund");
    fn no_big_ints(v: &Value, path: &str) {
        match v {
            Value::Number(n) => assert!(n.as_u64().is_none_or(|u| u < (1 << 53)), "{path} = {n}"),
            Value::Array(a) => a
                .iter()
                .enumerate()
                .for_each(|(i, x)| no_big_ints(x, &format!("{path}[{i}]"))),
            Value::Object(o) => o
                .iter()
                .for_each(|(k, x)| no_big_ints(x, &format!("{path}.{k}"))),
            _ => {}
        }
    }
    no_big_ints(&v, "span");
}

#[test]
fn minimal_span_deserialises_with_defaults_and_rejects_bad_ids() {
    let s: Span = serde_json::from_value(json!({
        "trace_id": "4BF92F3577B34DA6A3CE929D0E0E4736", "span_id": "00f067aa0ba902b7",
        "name": "x", "start_time": "2025-01-01T00:00:00Z", "unknown_future_field": 1
    }))
    .unwrap();
    assert_eq!(s.kind, SpanKind::Span);
    assert_eq!(s.end_time, None);
    let e = serde_json::from_value::<Span>(json!({
        "trace_id": "nothex", "span_id": "00f067aa0ba902b7", "name": "x", "start_time": "2025-01-01T00:00:00Z"
    }))
    .unwrap_err();
    assert!(e.to_string().contains("nothex"), "{e}");
}
