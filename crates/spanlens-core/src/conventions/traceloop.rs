//! OpenLLMetry / Traceloop conventions: `traceloop.*`, `llm.request.type`, `llm.usage.*`.
//!
//! Token counts come through the `gen_ai.usage.*` names it shares with GenAI (same inclusive rule);
//! the older `llm.usage.prompt_tokens` / `completion_tokens` are read under that rule too.

use super::attrs::ns;
use super::{set, Attrs, InclusiveCounts};
use crate::span::{Payload, PromptTemplate, Span, SpanKind, ToolInfo};
use serde_json::Value;

pub(super) fn kind(a: &Attrs) -> Option<SpanKind> {
    if let Some(k) = a.str("traceloop.span.kind") {
        return Some(match k {
            "workflow" => SpanKind::Pipeline,
            "agent" => SpanKind::Agent,
            "tool" => SpanKind::Tool,
            _ => SpanKind::Span, // task, unknown
        });
    }
    Some(match a.str("llm.request.type")? {
        "chat" | "completion" => SpanKind::Llm,
        "embedding" => SpanKind::Embedding,
        "rerank" => SpanKind::Reranker,
        _ => SpanKind::Span,
    })
}

pub(super) fn apply(span: &mut Span, a: &Attrs) {
    if a.has_namespace(ns::LLM | ns::TRACELOOP) {
        apply_attributes(span, a);
    }
    // Messages may come from another convention's keys (deprecated GenAI flattening).
    if span.finish_reasons.is_empty() {
        span.finish_reasons = span
            .output_messages
            .iter()
            .filter_map(|m| m.finish_reason.clone())
            .collect();
    }
}

fn apply_attributes(span: &mut Span, a: &Attrs) {
    set(&mut span.request_model, a.string("llm.request.model"));
    set(&mut span.response_model, a.string("llm.response.model"));
    if span.usage.is_none() {
        span.usage = InclusiveCounts {
            input: a.u64("llm.usage.prompt_tokens"),
            output: a.u64("llm.usage.completion_tokens"),
            cache_read: a.u64("llm.usage.cache_read_input_tokens"),
            cache_write: a.u64("llm.usage.cache_creation_input_tokens"),
            reasoning: a.u64("llm.usage.reasoning_tokens"),
            total: a.u64("llm.usage.total_tokens"),
        }
        .into_usage();
    }
    set(
        &mut span.input,
        a.string("traceloop.entity.input")
            .map(|t| Payload::from_text(&t, None)),
    );
    set(
        &mut span.output,
        a.string("traceloop.entity.output")
            .map(|t| Payload::from_text(&t, None)),
    );
    let entity = a.string("traceloop.entity.name");
    match span.kind {
        SpanKind::Tool => {
            let tool = span.tool.get_or_insert_with(ToolInfo::default);
            set(&mut tool.name, entity);
        }
        SpanKind::Agent => set(&mut span.agent_name, entity),
        _ => {}
    }
    set(&mut span.user_id, a.string("llm.user"));
    for (k, v) in a.prefixed("traceloop.association.properties.") {
        let text = match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        match k {
            "user_id" | "userId" => set(&mut span.user_id, text),
            "session_id" | "sessionId" | "conversation_id" => set(&mut span.session_id, text),
            _ => {
                span.metadata
                    .entry(k.to_string())
                    .or_insert_with(|| v.clone());
            }
        }
    }
    if span.prompt.is_none()
        && (a.has("traceloop.prompt.template") || a.has("traceloop.prompt.key"))
    {
        span.prompt = Some(PromptTemplate {
            name: a.string("traceloop.prompt.key"),
            template: a.string("traceloop.prompt.template"),
            version: a.string("traceloop.prompt.version"),
            variables: a
                .prefixed("traceloop.prompt.template_variables.")
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        });
    }
}
