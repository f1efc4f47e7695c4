//! The attributes LangSmith's OTLP endpoint maps to its run fields: `langsmith.span.kind` (run
//! type), `langsmith.metadata.*` (with `ls_provider` and `ls_model_name`, which LangSmith uses to
//! identify the model, and the thread key `session_id`), `langsmith.span.tags`, `gen_ai.system`,
//! and `gen_ai.prompt` / `gen_ai.completion` (the run's inputs and outputs).
//!
//! Token counts and costs travel in the outputs' `usage_metadata`, the object LangSmith reads
//! for an LLM run's usage and for costs the client computed: inclusive `input_tokens` and
//! `output_tokens` with their `input_token_details` (cache reads and writes) and
//! `output_token_details` (reasoning), and `input_cost`, `output_cost`, `total_cost` in USD.

use super::{payload_value, text, Attrs};
use crate::span::{Cost, Span, SpanKind, Usage};
use serde_json::{json, Map, Value};

pub(super) fn add(a: &mut Attrs, s: &Span, cost: bool) {
    a.put("langsmith.span.kind", text(run_type(s.kind)));
    a.opt("gen_ai.system", s.provider.as_deref());
    a.opt("langsmith.metadata.ls_provider", s.provider.as_deref());
    let model = s.response_model.as_deref().or(s.request_model.as_deref());
    a.opt("langsmith.metadata.ls_model_name", model);
    // LangSmith groups runs into threads by this metadata key, on every run of the thread.
    a.opt("langsmith.metadata.session_id", s.session_id.as_deref());
    a.opt("langsmith.metadata.user_id", s.user_id.as_deref());
    for (k, v) in &s.metadata {
        let key = format!("langsmith.metadata.{k}");
        match v {
            Value::String(t) => a.put(&key, text(t)),
            other => a.json(&key, other),
        }
    }
    if !s.tags.is_empty() {
        a.put("langsmith.span.tags", text(&s.tags.join(",")));
    }
    let mut inputs = Map::new();
    if !s.input_messages.is_empty() {
        inputs.insert("messages".into(), json!(s.input_messages));
    } else if let Some(p) = &s.input {
        inputs.insert("input".into(), payload_value(p));
    }
    if !inputs.is_empty() {
        a.json("gen_ai.prompt", &Value::Object(inputs));
    }
    let mut outputs = Map::new();
    if !s.output_messages.is_empty() {
        outputs.insert("messages".into(), json!(s.output_messages));
    } else if let Some(p) = &s.output {
        outputs.insert("output".into(), payload_value(p));
    }
    if let Some(u) = &s.usage {
        let cost = s.cost.as_ref().filter(|_| cost);
        outputs.insert("usage_metadata".into(), usage_metadata(u, cost));
    }
    if !outputs.is_empty() {
        a.json("gen_ai.completion", &Value::Object(outputs));
    }
}

/// LangSmith's run types; what it has no type for is a `chain`.
fn run_type(kind: SpanKind) -> &'static str {
    match kind {
        SpanKind::Llm => "llm",
        SpanKind::Embedding => "embedding",
        SpanKind::Tool => "tool",
        SpanKind::Retriever | SpanKind::Reranker => "retriever",
        SpanKind::Pipeline
        | SpanKind::Agent
        | SpanKind::Guardrail
        | SpanKind::Handoff
        | SpanKind::Evaluator
        | SpanKind::Span => "chain",
    }
}

fn usage_metadata(u: &Usage, cost: Option<&Cost>) -> Value {
    let mut m = Map::new();
    m.insert("input_tokens".into(), json!(u.input_tokens));
    m.insert("output_tokens".into(), json!(u.output_tokens));
    m.insert("total_tokens".into(), json!(u.total_tokens));
    let mut input = Map::new();
    if u.cache_read_tokens > 0 {
        input.insert("cache_read".into(), json!(u.cache_read_tokens));
    }
    if u.cache_write_tokens > 0 {
        input.insert("cache_creation".into(), json!(u.cache_write_tokens));
    }
    if !input.is_empty() {
        m.insert("input_token_details".into(), Value::Object(input));
    }
    if u.reasoning_tokens > 0 {
        m.insert(
            "output_token_details".into(),
            json!({"reasoning": u.reasoning_tokens}),
        );
    }
    if let Some(c) = cost {
        let a = &c.amounts;
        let input = a.input + a.cache_read + a.cache_write;
        let output = a.output + a.reasoning;
        m.insert("input_cost".into(), json!(input.as_usd_f64()));
        m.insert("output_cost".into(), json!(output.as_usd_f64()));
        m.insert("total_cost".into(), json!(a.total.as_usd_f64()));
    }
    Value::Object(m)
}
