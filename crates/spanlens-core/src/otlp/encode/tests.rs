//! What each flavour sends, checked attribute by attribute against the names the receivers
//! document, and read back through Spanlens's own normaliser.

use super::*;
use crate::ids::{SpanId, TraceId};
use crate::money::NanoUsd;
use crate::pricing::{price_span, PriceCatalog};
use crate::span::{CostSource, Message, PromptTemplate};
use crate::time::Timestamp;
use serde_json::json;

const T0: u64 = 1_767_225_600_000_000_000; // 2026-01-01T00:00:00Z

fn trace() -> Vec<Span> {
    let trace_id = TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").unwrap();
    let root = Span {
        trace_id,
        span_id: SpanId::from_hex("b7ad6b7169203331").unwrap(),
        name: "support".into(),
        kind: SpanKind::Pipeline,
        start_time: Timestamp(T0),
        end_time: Some(Timestamp(T0 + 2_000_000_000)),
        status: Status::Ok,
        service: Some("shop".into()),
        session_id: Some("conv-7".into()),
        user_id: Some("u-42".into()),
        tags: vec!["prod".into(), "eu".into()],
        metadata: [("tier".to_string(), json!("gold"))].into_iter().collect(),
        input: Some(Payload::from_text("where is my order?", None)),
        output: Some(Payload::from_text("on its way", None)),
        ..Default::default()
    };
    let mut llm = Span {
        trace_id,
        span_id: SpanId::from_hex("00f067aa0ba902b7").unwrap(),
        parent_span_id: Some(root.span_id),
        name: "chat gpt-4o-mini".into(),
        kind: SpanKind::Llm,
        start_time: Timestamp(T0 + 100_000_000),
        end_time: Some(Timestamp(T0 + 1_100_000_000)),
        status: Status::Error,
        status_message: Some("rate limited".into()),
        service: Some("shop".into()),
        session_id: Some("conv-7".into()),
        user_id: Some("u-42".into()),
        tags: vec!["prod".into(), "eu".into()],
        metadata: [("tier".to_string(), json!("gold"))].into_iter().collect(),
        provider: Some("openai".into()),
        request_model: Some("gpt-4o-mini".into()),
        response_model: Some("gpt-4o-mini-2024-07-18".into()),
        model_parameters: [("temperature".to_string(), json!(0.2))]
            .into_iter()
            .collect(),
        usage: Some(
            Usage {
                input_tokens: 2000,
                cache_read_tokens: 1024,
                output_tokens: 300,
                reasoning_tokens: 100,
                ..Default::default()
            }
            .normalized(),
        ),
        ttft_ns: Some(250_000_000),
        input_messages: vec![Message {
            role: Some("user".into()),
            content: Some("where is my order?".into()),
            ..Default::default()
        }],
        output_messages: vec![Message {
            role: Some("assistant".into()),
            content: Some("on its way".into()),
            ..Default::default()
        }],
        prompt: Some(PromptTemplate {
            name: Some("support-answer".into()),
            version: Some("3".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    price_span(&mut llm, PriceCatalog::builtin());
    assert_eq!(
        llm.cost.as_ref().map(|c| c.source),
        Some(CostSource::Computed)
    );
    vec![root, llm]
}

fn encoded(spans: &[Span], flavor: Flavor) -> Vec<proto::Span> {
    let enc = Encoding {
        flavor,
        ..Encoding::OTLP
    };
    let req = export_request(spans, &enc);
    req.resource_spans
        .into_iter()
        .flat_map(|r| r.scope_spans)
        .flat_map(|s| s.spans)
        .collect()
}

/// One attribute as JSON (string values parsed when they hold JSON).
fn attr(s: &proto::Span, key: &str) -> Option<Value> {
    let kv = s.attributes.iter().find(|kv| kv.key == key)?;
    let v = crate::otlp::any_value(kv.value.clone()?);
    Some(match v {
        Value::String(t) => serde_json::from_str(&t).unwrap_or(Value::String(t)),
        v => v,
    })
}

fn usd(n: NanoUsd) -> f64 {
    n.as_usd_f64()
}

#[test]
fn plain_otlp_carries_genai_usage_and_the_computed_cost() {
    let spans = trace();
    let c = spans[1].cost.clone().unwrap().amounts;
    let [_, llm] = &encoded(&spans, Flavor::Otlp)[..] else {
        panic!("two spans")
    };
    assert_eq!(attr(llm, "gen_ai.operation.name"), Some(json!("chat")));
    assert_eq!(attr(llm, "gen_ai.usage.input_tokens"), Some(json!(2000)));
    assert_eq!(
        attr(llm, "gen_ai.usage.cache_read.input_tokens"),
        Some(json!(1024))
    );
    assert_eq!(attr(llm, "gen_ai.usage.total_tokens"), Some(json!(2300)));
    assert_eq!(
        attr(llm, "spanlens.cost.total_usd"),
        Some(json!(usd(c.total)))
    );
    assert_eq!(
        attr(llm, "spanlens.cost.cache_read_usd"),
        Some(json!(usd(c.cache_read)))
    );
    assert_eq!(attr(llm, "spanlens.cost.source"), Some(json!("computed")));
    assert!(attr(llm, "langfuse.observation.type").is_none());
    assert!(attr(llm, "langsmith.span.kind").is_none());
}

#[test]
fn langfuse_flavour_fills_langfuse_fields() {
    let spans = trace();
    let c = spans[1].cost.clone().unwrap().amounts;
    let [root, llm] = &encoded(&spans, Flavor::Langfuse)[..] else {
        panic!("two spans")
    };
    assert_eq!(
        attr(root, "langfuse.observation.type"),
        Some(json!("chain"))
    );
    assert_eq!(attr(root, "langfuse.trace.name"), Some(json!("support")));
    assert_eq!(
        attr(root, "langfuse.trace.tags"),
        Some(json!(["prod", "eu"]))
    );
    assert_eq!(
        attr(root, "langfuse.observation.metadata"),
        Some(json!({"tier": "gold"}))
    );
    assert_eq!(
        attr(root, "langfuse.observation.input"),
        Some(json!("where is my order?"))
    );
    assert_eq!(attr(root, "user.id"), Some(json!("u-42")));
    assert_eq!(attr(root, "session.id"), Some(json!("conv-7")));
    assert!(
        attr(llm, "langfuse.trace.name").is_none(),
        "only the root names the trace"
    );

    assert_eq!(
        attr(llm, "langfuse.observation.type"),
        Some(json!("generation"))
    );
    assert_eq!(
        attr(llm, "langfuse.observation.model.name"),
        Some(json!("gpt-4o-mini-2024-07-18"))
    );
    assert_eq!(
        attr(llm, "langfuse.observation.model.parameters"),
        Some(json!({"temperature": 0.2}))
    );
    // Disjoint, as Langfuse sums them: 2000 input of which 1024 cached, 300 output of which
    // 100 reasoning.
    assert_eq!(
        attr(llm, "langfuse.observation.usage_details"),
        Some(
            json!({"input": 976, "output": 200, "cache_read_input_tokens": 1024,
                    "output_reasoning_tokens": 100, "total": 2300})
        )
    );
    let cost = attr(llm, "langfuse.observation.cost_details").unwrap();
    assert_eq!(cost["total"], json!(usd(c.total)));
    assert_eq!(cost["input"], json!(usd(c.input)));
    assert_eq!(cost["cache_read_input_tokens"], json!(usd(c.cache_read)));
    assert_eq!(
        attr(llm, "langfuse.observation.completion_start_time"),
        Some(json!("2026-01-01T00:00:00.350000000Z"))
    );
    assert_eq!(
        attr(llm, "langfuse.observation.input"),
        Some(json!([{"role": "user", "content": "where is my order?"}]))
    );
    assert_eq!(
        attr(llm, "langfuse.observation.level"),
        Some(json!("ERROR"))
    );
    assert_eq!(
        attr(llm, "langfuse.observation.status_message"),
        Some(json!("rate limited"))
    );
    assert_eq!(
        attr(llm, "langfuse.observation.prompt.name"),
        Some(json!("support-answer"))
    );
    // Langfuse numbers prompt versions.
    assert_eq!(
        attr(llm, "langfuse.observation.prompt.version"),
        Some(json!(3))
    );
    let kv = llm
        .attributes
        .iter()
        .find(|kv| kv.key == "langfuse.observation.prompt.version");
    let sent = kv.and_then(|kv| kv.value.clone()?.value);
    assert_eq!(sent, Some(any_value::Value::IntValue(3)));
}

#[test]
fn langsmith_flavour_fills_run_fields_with_usage_metadata_and_costs() {
    let spans = trace();
    let c = spans[1].cost.clone().unwrap().amounts;
    let [root, llm] = &encoded(&spans, Flavor::LangSmith)[..] else {
        panic!("two spans")
    };
    assert_eq!(attr(root, "langsmith.span.kind"), Some(json!("chain")));
    assert_eq!(attr(root, "langsmith.span.tags"), Some(json!("prod,eu")));
    assert_eq!(attr(root, "langsmith.metadata.tier"), Some(json!("gold")));
    assert_eq!(
        attr(root, "langsmith.metadata.session_id"),
        Some(json!("conv-7"))
    );
    assert_eq!(
        attr(root, "gen_ai.prompt"),
        Some(json!({"input": "where is my order?"}))
    );
    assert_eq!(attr(llm, "langsmith.span.kind"), Some(json!("llm")));
    assert_eq!(attr(llm, "gen_ai.system"), Some(json!("openai")));
    assert_eq!(
        attr(llm, "langsmith.metadata.ls_provider"),
        Some(json!("openai"))
    );
    assert_eq!(
        attr(llm, "langsmith.metadata.ls_model_name"),
        Some(json!("gpt-4o-mini-2024-07-18"))
    );
    assert_eq!(
        attr(llm, "gen_ai.prompt"),
        Some(json!({"messages": [{"role": "user", "content": "where is my order?"}]}))
    );
    let out = attr(llm, "gen_ai.completion").unwrap();
    assert_eq!(
        out["messages"],
        json!([{"role": "assistant", "content": "on its way"}])
    );
    let u = &out["usage_metadata"];
    assert_eq!(
        (&u["input_tokens"], &u["output_tokens"], &u["total_tokens"]),
        (&json!(2000), &json!(300), &json!(2300))
    );
    assert_eq!(u["input_token_details"], json!({"cache_read": 1024}));
    assert_eq!(u["output_token_details"], json!({"reasoning": 100}));
    assert_eq!(
        u["input_cost"],
        json!(usd(c.input + c.cache_read + c.cache_write))
    );
    assert_eq!(u["output_cost"], json!(usd(c.output + c.reasoning)));
    assert_eq!(u["total_cost"], json!(usd(c.total)));
}

/// A Spanlens server receiving any flavour rebuilds the span: the same kind, models, tokens,
/// first-token time, user, session, tags, messages and status.
#[test]
fn every_flavour_reads_back_as_the_same_canonical_span() {
    let spans = trace();
    for flavor in [Flavor::Otlp, Flavor::Langfuse, Flavor::LangSmith] {
        let enc = Encoding {
            flavor,
            ..Encoding::OTLP
        };
        let req = export_request(&spans, &enc);
        let back = crate::otlp::to_canonical(&req, &Default::default());
        assert!(back.rejected.is_empty(), "{flavor:?}: {:?}", back.rejected);
        for (want, got) in spans.iter().zip(&back.spans) {
            let what = format!("{flavor:?} {}", want.name);
            assert_eq!(got.kind, want.kind, "{what}");
            assert_eq!(got.parent_span_id, want.parent_span_id, "{what}");
            assert_eq!(got.usage, want.usage, "{what}");
            assert_eq!(got.request_model, want.request_model, "{what}");
            assert_eq!(got.response_model, want.response_model, "{what}");
            assert_eq!(got.ttft_ns, want.ttft_ns, "{what}");
            assert_eq!(got.user_id, want.user_id, "{what}");
            assert_eq!(got.session_id, want.session_id, "{what}");
            assert_eq!(got.tags, want.tags, "{what}");
            assert_eq!(got.status, want.status, "{what}");
            assert_eq!(got.input_messages, want.input_messages, "{what}");
            assert_eq!(got.output_messages, want.output_messages, "{what}");
            assert_eq!(
                got.metadata.get("tier"),
                want.metadata.get("tier"),
                "{what}"
            );
        }
    }
}
