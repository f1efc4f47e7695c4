//! The `langfuse.*` attributes Langfuse's OTLP endpoint reads, so an observation lands with its
//! type, model, parameters, usage, cost, first-token time, input, output, level, prompt, user,
//! session, tags and metadata in Langfuse's own fields.
//!
//! Langfuse's usage and cost details are disjoint (its total is the sum of the keys), while the
//! canonical counts are inclusive: cached input is taken out of `input` and reasoning out of
//! `output`, under the keys Langfuse's own integrations use.

use super::{payload_text, text, Attrs};
use crate::span::{Cost, Span, SpanKind, Status, Usage};
use crate::time::Timestamp;
use serde_json::{json, Map, Value};

pub(super) fn add(a: &mut Attrs, s: &Span, cost: bool) {
    a.put("langfuse.observation.type", text(observation_type(s.kind)));
    if s.parent_span_id.is_none() {
        a.put("langfuse.trace.name", text(&s.name));
    }
    let model = s.response_model.as_deref().or(s.request_model.as_deref());
    a.opt("langfuse.observation.model.name", model);
    if !s.model_parameters.is_empty() {
        let params: Map<String, Value> = s.model_parameters.clone().into_iter().collect();
        a.json(
            "langfuse.observation.model.parameters",
            &Value::Object(params),
        );
    }
    if let Some(u) = &s.usage {
        a.json("langfuse.observation.usage_details", &usage_details(u));
    }
    if let (true, Some(c)) = (cost, &s.cost) {
        a.json("langfuse.observation.cost_details", &cost_details(c));
    }
    if let Some(ttft) = s.ttft_ns {
        let first = Timestamp(s.start_time.0.saturating_add(ttft));
        a.put(
            "langfuse.observation.completion_start_time",
            text(&first.to_rfc3339()),
        );
    }
    let payloads = [
        ("langfuse.observation.input", &s.input_messages, &s.input),
        ("langfuse.observation.output", &s.output_messages, &s.output),
    ];
    for (key, messages, payload) in payloads {
        if !messages.is_empty() {
            a.json(key, &serde_json::to_value(messages).unwrap_or_default());
        } else if let Some(p) = payload {
            a.put(key, text(&payload_text(p)));
        }
    }
    if s.status == Status::Error {
        a.put("langfuse.observation.level", text("ERROR"));
        a.opt(
            "langfuse.observation.status_message",
            s.status_message.as_deref(),
        );
    }
    if let Some(p) = &s.prompt {
        a.opt("langfuse.observation.prompt.name", p.name.as_deref());
        // Langfuse numbers its prompt versions; another label goes as it is.
        match p.version.as_deref().map(|v| (v, v.parse::<u64>())) {
            Some((_, Ok(n))) => a.int("langfuse.observation.prompt.version", n),
            Some((v, Err(_))) => a.put("langfuse.observation.prompt.version", text(v)),
            None => {}
        }
    }
    a.opt("langfuse.user.id", s.user_id.as_deref());
    a.opt("langfuse.session.id", s.session_id.as_deref());
    if !s.tags.is_empty() {
        a.put("langfuse.trace.tags", super::strings(&s.tags));
    }
    if !s.metadata.is_empty() {
        let m: Map<String, Value> = s.metadata.clone().into_iter().collect();
        a.json("langfuse.observation.metadata", &Value::Object(m));
    }
}

/// Langfuse's observation types (the ones since its agent-aware SDKs), `span` for the rest.
fn observation_type(kind: SpanKind) -> &'static str {
    match kind {
        SpanKind::Llm => "generation",
        SpanKind::Embedding => "embedding",
        SpanKind::Agent => "agent",
        SpanKind::Tool => "tool",
        SpanKind::Pipeline => "chain",
        SpanKind::Retriever => "retriever",
        SpanKind::Evaluator => "evaluator",
        SpanKind::Guardrail => "guardrail",
        SpanKind::Reranker | SpanKind::Handoff | SpanKind::Span => "span",
    }
}

/// Disjoint token counts: `input` without cache reads and writes, `output` without reasoning.
fn usage_details(u: &Usage) -> Value {
    let cached = u.cache_read_tokens.saturating_add(u.cache_write_tokens);
    let mut d = Map::new();
    d.insert("input".into(), json!(u.input_tokens.saturating_sub(cached)));
    d.insert(
        "output".into(),
        json!(u.output_tokens.saturating_sub(u.reasoning_tokens)),
    );
    for (key, n) in [
        ("cache_read_input_tokens", u.cache_read_tokens),
        ("cache_creation_input_tokens", u.cache_write_tokens),
        ("output_reasoning_tokens", u.reasoning_tokens),
    ] {
        if n > 0 {
            d.insert(key.into(), json!(n));
        }
    }
    d.insert("total".into(), json!(u.total_tokens));
    Value::Object(d)
}

/// USD amounts under the same keys as the usage details, and the total.
fn cost_details(c: &Cost) -> Value {
    let a = &c.amounts;
    let mut d = Map::new();
    for (key, n) in [
        ("input", a.input),
        ("output", a.output),
        ("cache_read_input_tokens", a.cache_read),
        ("cache_creation_input_tokens", a.cache_write),
        ("output_reasoning_tokens", a.reasoning),
    ] {
        if n.0 != 0 || key == "input" || key == "output" {
            d.insert(key.into(), json!(n.as_usd_f64()));
        }
    }
    d.insert("total".into(), json!(a.total.as_usd_f64()));
    Value::Object(d)
}
