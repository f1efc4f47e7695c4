//! Langfuse OTel attributes (`langfuse.observation.*`, `langfuse.trace.*`) as its SDKs send them.
//!
//! Token rule: Langfuse usage keys are DISJOINT (its total is the sum of all keys), so `input`
//! EXCLUDES cached tokens and `output` EXCLUDES reasoning tokens: cache keys are ADDED to canonical
//! input and reasoning keys to canonical output.

use super::attrs::ns;
use super::{messages, set, ttft_from_time, Attrs};
use crate::money::NanoUsd;
use crate::span::{CostBreakdown, Message, Payload, PromptTemplate, Span, SpanKind, Status, Usage};
use crate::usage::json_u64;
use serde_json::Value;

pub(super) fn kind(a: &Attrs) -> Option<SpanKind> {
    Some(
        match a
            .str("langfuse.observation.type")?
            .to_ascii_lowercase()
            .as_str()
        {
            "generation" => SpanKind::Llm,
            "embedding" => SpanKind::Embedding,
            "agent" => SpanKind::Agent,
            "tool" => SpanKind::Tool,
            "chain" => SpanKind::Pipeline,
            "retriever" => SpanKind::Retriever,
            "evaluator" => SpanKind::Evaluator,
            "guardrail" => SpanKind::Guardrail,
            _ => SpanKind::Span,
        },
    )
}

pub(super) fn apply(span: &mut Span, a: &Attrs) {
    if !a.has_namespace(ns::LANGFUSE) {
        return;
    }
    // Langfuse keeps one model name, the last the SDK set: its OpenAI integration starts with the
    // requested model and replaces it with the one the provider answered with (a dated snapshot).
    // So a generation that got an answer (output or usage) names the response model.
    let answered =
        a.has("langfuse.observation.usage_details") || a.has("langfuse.observation.output");
    let model = if answered {
        &mut span.response_model
    } else {
        &mut span.request_model
    };
    set(model, a.string("langfuse.observation.model.name"));
    if let Some(Value::Object(params)) = a.json("langfuse.observation.model.parameters") {
        for (k, v) in params {
            if !super::is_model_parameter(&k) {
                continue;
            }
            span.model_parameters.entry(k).or_insert(v);
        }
    }
    if span.usage.is_none() {
        if let Some(Value::Object(details)) = a.json("langfuse.observation.usage_details") {
            span.usage = usage_from_details(&details);
        }
    }
    if span.cost.is_none() {
        if let Some(Value::Object(details)) = a.json("langfuse.observation.cost_details") {
            span.cost = cost_from_details(&details).map(super::reported);
        }
    }
    set(
        &mut span.ttft_ns,
        ttft_from_time(
            span.start_time,
            a.time("langfuse.observation.completion_start_time"),
        ),
    );
    for (key, slot) in [
        ("langfuse.observation.input", true),
        ("langfuse.observation.output", false),
    ] {
        if let Some(v) = a.get(key) {
            let p = match v {
                Value::String(s) => Payload::from_text(s, None),
                other => Payload::from_value(other.clone()),
            };
            let mut msgs = messages::messages_from_json(&p.value);
            if slot {
                // A chat input: the messages themselves, or the SDK's OpenAI integration's
                // `{"messages": [...], "tools": [...]}`; not any object that happens to have a
                // `content` key.
                let chat =
                    p.value.is_array() || p.value.get("messages").is_some_and(Value::is_array);
                if span.input_messages.is_empty() && chat {
                    span.input_messages = msgs;
                }
                if let Some(tools @ Value::Array(_)) = p.value.get("tools") {
                    set(
                        &mut span.tool_definitions,
                        Some(Payload::from_value(tools.clone())),
                    );
                }
                set(&mut span.input, Some(p));
            } else {
                // A generation whose output is plain text answered with that text.
                match &p.value {
                    Value::String(text)
                        if msgs.is_empty() && span.kind == SpanKind::Llm && !text.is_empty() =>
                    {
                        msgs.push(Message {
                            role: Some("assistant".into()),
                            content: Some(text.clone()),
                            ..Default::default()
                        });
                    }
                    _ => {}
                }
                if span.output_messages.is_empty() && !msgs.is_empty() {
                    span.output_messages = msgs;
                }
                set(&mut span.output, Some(p));
            }
        }
    }
    if a.str("langfuse.observation.level") == Some("ERROR") {
        span.status = Status::Error;
    }
    set(
        &mut span.status_message,
        a.string("langfuse.observation.status_message"),
    );
    // A Langfuse tool observation is named after its tool.
    if a.str("langfuse.observation.type") == Some("tool") {
        let name = span.name.clone();
        let tool = span.tool.get_or_insert_with(Default::default);
        if tool.name.is_none() && !name.is_empty() {
            tool.name = Some(name);
        }
    }
    if span.prompt.is_none() && a.has("langfuse.observation.prompt.name") {
        span.prompt = Some(PromptTemplate {
            name: a.string("langfuse.observation.prompt.name"),
            version: a.string("langfuse.observation.prompt.version"),
            ..Default::default()
        });
    }
    set(&mut span.user_id, a.string("langfuse.user.id"));
    set(&mut span.session_id, a.string("langfuse.session.id"));
    if span.tags.is_empty() {
        span.tags = a.strings("langfuse.trace.tags");
    }
    for prefix in ["langfuse.trace.metadata", "langfuse.observation.metadata"] {
        if let Some(Value::Object(m)) = a.json(prefix) {
            for (k, v) in m {
                span.metadata.entry(k).or_insert(v);
            }
        }
        let dotted = format!("{prefix}.");
        for (k, v) in a.prefixed(&dotted) {
            span.metadata
                .entry(k.to_string())
                .or_insert_with(|| v.clone());
        }
    }
    for (attr, key) in [
        ("langfuse.environment", "environment"),
        ("langfuse.release", "release"),
    ] {
        if let Some(v) = a.get(attr) {
            span.metadata.entry(key.into()).or_insert_with(|| v.clone());
        }
    }
}

fn usage_from_details(d: &serde_json::Map<String, Value>) -> Option<Usage> {
    let mut u = Usage::default();
    let mut seen = false;
    for (k, v) in d {
        if let Value::Object(parts) = v {
            seen |= add_provider_details(&mut u, k, parts);
            continue;
        }
        let Some(n) = json_u64(v) else { continue };
        seen = true;
        let key = k.to_ascii_lowercase();
        if key == "total" || key == "total_tokens" {
            u.total_tokens = n;
        } else if key.contains("cache_read") || key.contains("cached") {
            u.cache_read_tokens += n;
            u.input_tokens += n;
        } else if key.contains("cache_creation") || key.contains("cache_write") {
            u.cache_write_tokens += n;
            u.input_tokens += n;
        } else if key.contains("reasoning") {
            u.reasoning_tokens += n;
            u.output_tokens += n;
        } else if key == "input" || key == "prompt_tokens" || key == "input_tokens" {
            u.input_tokens += n;
        } else if key == "output" || key == "completion_tokens" || key == "output_tokens" {
            u.output_tokens += n;
        } else if key.contains("input") || key.contains("prompt") {
            u.input_tokens += n;
            u.extra.insert(k.clone(), n);
        } else if key.contains("output") || key.contains("completion") {
            u.output_tokens += n;
            u.extra.insert(k.clone(), n);
        } else {
            u.extra.insert(k.clone(), n);
        }
    }
    seen.then(|| u.normalized())
}

/// A provider's own breakdown nested in the usage details, as the Langfuse SDK's OpenAI
/// integration sends the raw usage object: `prompt_tokens_details` / `input_tokens_details`
/// (Chat Completions / Responses) and `completion_tokens_details` / `output_tokens_details`.
/// OpenAI counts these parts inside `prompt_tokens` and `completion_tokens`, so they are not
/// added to input or output again; parts with no canonical field are kept in `extra` as
/// `parent.part`. True when a count was read.
fn add_provider_details(
    u: &mut Usage,
    parent: &str,
    parts: &serde_json::Map<String, Value>,
) -> bool {
    let of_input = matches!(
        parent,
        "prompt_tokens_details" | "input_tokens_details" | "input_token_details"
    );
    let of_output = matches!(
        parent,
        "completion_tokens_details" | "output_tokens_details" | "output_token_details"
    );
    let mut seen = false;
    for (k, v) in parts {
        let Some(n) = json_u64(v) else { continue };
        seen = true;
        match k.as_str() {
            "cached_tokens" | "cache_read" if of_input => {
                u.cache_read_tokens = u.cache_read_tokens.saturating_add(n);
            }
            "reasoning_tokens" | "reasoning" if of_output => {
                u.reasoning_tokens = u.reasoning_tokens.saturating_add(n);
            }
            // Anthropic's TTL split of the cache writes (already in `cache_creation_input_tokens`):
            // the one-hour part has its own price.
            "ephemeral_1h_input_tokens" if parent == "cache_creation" => {
                u.extra.insert(Usage::CACHE_WRITE_1H.into(), n);
            }
            _ if n > 0 => {
                u.extra.insert(format!("{parent}.{k}"), n);
            }
            _ => {}
        }
    }
    seen
}

fn cost_from_details(d: &serde_json::Map<String, Value>) -> Option<CostBreakdown> {
    let mut c = CostBreakdown::default();
    let mut total = None;
    for (k, v) in d {
        // A cost cannot be negative: such an amount is not read (the raw attribute stays).
        let Some(n) = v
            .as_f64()
            .and_then(NanoUsd::from_usd_f64)
            .filter(|n| n.0 >= 0)
        else {
            continue;
        };
        let key = k.to_ascii_lowercase();
        if key == "total" {
            total = Some(n);
        } else if key.contains("cache_read") || key.contains("cached") {
            c.cache_read += n;
        } else if key.contains("cache_creation") || key.contains("cache_write") {
            c.cache_write += n;
        } else if key.contains("reasoning") {
            c.reasoning += n;
        } else if key.contains("input") || key.contains("prompt") {
            c.input += n;
        } else if key.contains("output") || key.contains("completion") {
            c.output += n;
        }
    }
    let c = c.with_total();
    if total.is_none() && c.total == NanoUsd::ZERO {
        return None;
    }
    Some(CostBreakdown {
        total: total.unwrap_or(c.total),
        ..c
    })
}
