//! OpenInference conventions (Arize Phoenix): `openinference.span.kind`, `llm.*`, `input.value`, …
//!
//! Token rule: `llm.token_count.prompt` INCLUDES `prompt_details.cache_read`/`cache_write`, and
//! `llm.token_count.completion` INCLUDES `completion_details.reasoning`, see [`super::InclusiveCounts`].
//! Costs in `llm.cost.*` are taken as provider-reported.

use super::attrs::ns;
use super::{canonical_provider, messages, set, Attrs, InclusiveCounts};
use crate::money::NanoUsd;
use crate::span::{CostBreakdown, Payload, PromptTemplate, Span, SpanKind, ToolInfo};
use serde_json::Value;

pub(super) fn kind(a: &Attrs) -> Option<SpanKind> {
    Some(
        match a
            .str("openinference.span.kind")?
            .to_ascii_uppercase()
            .as_str()
        {
            "LLM" => SpanKind::Llm,
            "EMBEDDING" => SpanKind::Embedding,
            "TOOL" => SpanKind::Tool,
            "AGENT" => SpanKind::Agent,
            "RETRIEVER" => SpanKind::Retriever,
            "RERANKER" => SpanKind::Reranker,
            "GUARDRAIL" => SpanKind::Guardrail,
            "EVALUATOR" => SpanKind::Evaluator,
            _ => SpanKind::Span, // CHAIN, PROMPT, UNKNOWN; a root CHAIN becomes a pipeline
        },
    )
}

/// Namespaces of the keys OpenInference instrumentations write.
const NAMESPACES: u32 = ns::OPENINFERENCE
    | ns::LLM
    | ns::EMBEDDING
    | ns::INPUT
    | ns::OUTPUT
    | ns::TOOL
    | ns::TOOL_CALL
    | ns::TAG
    | ns::METADATA;

pub(super) fn apply(span: &mut Span, a: &Attrs) {
    if !a.has_namespace(NAMESPACES) {
        // Without any of its keys, only the tool record below would apply.
        if span.kind == SpanKind::Tool {
            span.tool.get_or_insert_with(ToolInfo::default);
        }
        return;
    }
    set(
        &mut span.provider,
        a.first_string(&["llm.provider", "llm.system"])
            .map(|p| canonical_provider(&p)),
    );
    // `llm.model_name` is the model that answered; the one asked for is in the invocation parameters.
    let model = a.first_string(&["llm.model_name", "embedding.model_name"]);
    if let Some(Value::Object(params)) = a.json("llm.invocation_parameters") {
        for (k, v) in params {
            if k == "model" {
                if let Value::String(m) = &v {
                    set(&mut span.request_model, Some(m.clone()));
                }
                continue;
            }
            if super::is_model_parameter(&k) {
                span.model_parameters.entry(k).or_insert(v);
            }
        }
    }
    // Newer instrumentations (Anthropic 3.x) name both apart; `llm.model_name` is then the answer.
    set(&mut span.request_model, a.string("llm.request.model_name"));
    set(
        &mut span.response_model,
        a.string("llm.response.model_name"),
    );
    set(&mut span.request_model, model.clone());
    set(&mut span.response_model, model);
    if span.usage.is_none() {
        span.usage = InclusiveCounts {
            input: a.u64("llm.token_count.prompt"),
            output: a.u64("llm.token_count.completion"),
            cache_read: a.u64("llm.token_count.prompt_details.cache_read"),
            cache_write: a.u64("llm.token_count.prompt_details.cache_write"),
            reasoning: a.u64("llm.token_count.completion_details.reasoning"),
            total: a.u64("llm.token_count.total"),
        }
        .into_usage();
        if let Some(u) = span.usage.as_mut() {
            for (attr, key) in [
                ("llm.token_count.prompt_details.audio", "audio_input_tokens"),
                (
                    "llm.token_count.completion_details.audio",
                    "audio_output_tokens",
                ),
            ] {
                if let Some(n) = a.u64(attr).filter(|n| *n > 0) {
                    u.extra.insert(key.into(), n);
                }
            }
        }
    }
    if let Some(u) = span.usage.as_mut() {
        if let Some(hour) = anthropic_one_hour_writes(a) {
            u.extra
                .entry(crate::span::Usage::CACHE_WRITE_1H.into())
                .or_insert(hour.min(u.cache_write_tokens));
        }
    }
    if span.cost.is_none() {
        span.cost = reported_cost(a).map(super::reported);
    }
    set(
        &mut span.input,
        payload(a, "input.value", "input.mime_type"),
    );
    set(
        &mut span.output,
        payload(a, "output.value", "output.mime_type"),
    );
    if span.tool_definitions.is_none() {
        span.tool_definitions = tool_schemas(a);
    }
    if span.kind == SpanKind::Llm {
        set(&mut span.response_id, response_id(span.output.as_ref()));
    }
    if span.input_messages.is_empty() {
        span.input_messages = messages::openinference_messages(a, "llm.input_messages.");
    }
    if span.output_messages.is_empty() {
        span.output_messages = messages::openinference_messages(a, "llm.output_messages.");
    }
    if span.prompt.is_none()
        && (a.has("llm.prompt_template.template") || a.has("llm.prompt_template.variables"))
    {
        span.prompt = Some(PromptTemplate {
            name: None,
            template: a.string("llm.prompt_template.template"),
            version: a.string("llm.prompt_template.version"),
            variables: match a.json("llm.prompt_template.variables") {
                Some(Value::Object(m)) => m.into_iter().collect(),
                _ => Default::default(),
            },
        });
    }
    if span.kind == SpanKind::Tool || a.has("tool.name") {
        let tool = span.tool.get_or_insert_with(ToolInfo::default);
        set(&mut tool.name, a.string("tool.name"));
        set(&mut tool.description, a.string("tool.description"));
        set(
            &mut tool.call_id,
            a.first_string(&["tool_call.id", "tool.id"]),
        );
    }
    if span.finish_reasons.is_empty() {
        span.finish_reasons = a.strings("llm.finish_reason");
    }
    if span.tags.is_empty() {
        span.tags = a.strings("tag.tags");
    }
    if let Some(Value::Object(meta)) = a.json("metadata") {
        for (k, v) in meta {
            span.metadata.entry(k).or_insert(v);
        }
    }
}

/// The tools offered to the model: `llm.tools.N.tool.json_schema`, in index order.
fn tool_schemas(a: &Attrs) -> Option<Payload> {
    let mut tools: Vec<(usize, Value)> = a
        .prefixed("llm.tools.")
        .filter_map(|(rest, v)| {
            let index = rest.strip_suffix(".tool.json_schema")?.parse().ok()?;
            let schema = match v {
                Value::String(s) => serde_json::from_str(s).unwrap_or_else(|_| v.clone()),
                other => other.clone(),
            };
            Some((index, schema))
        })
        .collect();
    if tools.is_empty() {
        return None;
    }
    tools.sort_by_key(|(i, _)| *i);
    Some(Payload::from_value(Value::Array(
        tools.into_iter().map(|(_, v)| v).collect(),
    )))
}

/// One-hour cache writes, which cost more than five-minute ones and have no token-count attribute:
/// the Anthropic instrumentation puts the raw Messages response, usage included, in `output.value`.
fn anthropic_one_hour_writes(a: &Attrs) -> Option<u64> {
    if a.str("llm.provider").or_else(|| a.str("llm.system")) != Some("anthropic")
        || a.u64("llm.token_count.prompt_details.cache_write")
            .unwrap_or(0)
            == 0
    {
        return None;
    }
    let response = a.json("output.value")?;
    let usage = crate::usage::anthropic_usage(response.get("usage")?).ok()?;
    usage.extra.get(crate::span::Usage::CACHE_WRITE_1H).copied()
}

/// OpenInference has no response-id attribute, but its provider instrumentations (OpenAI,
/// Anthropic) record the raw response as `output.value`: its top-level `id` is the response id
/// when the object also names its `model` (a Chat Completions, Responses or Messages response).
fn response_id(output: Option<&Payload>) -> Option<String> {
    let Value::Object(o) = &output?.value else {
        return None;
    };
    if !o.get("model").is_some_and(Value::is_string) {
        return None;
    }
    o.get("id")
        .and_then(Value::as_str)
        .filter(|id| !id.trim().is_empty())
        .map(str::to_string)
}

fn payload(a: &Attrs, value_key: &str, mime_key: &str) -> Option<Payload> {
    let mime = a.str(mime_key);
    match a.get(value_key)? {
        Value::String(s) => Some(Payload::from_text(s, mime)),
        v => Some(Payload::from_value(v.clone())),
    }
}

fn reported_cost(a: &Attrs) -> Option<CostBreakdown> {
    // A cost cannot be negative: such an amount is not read (the raw attribute stays).
    let usd = |k: &str| {
        a.f64(k)
            .and_then(NanoUsd::from_usd_f64)
            .filter(|n| n.0 >= 0)
    };
    let total = usd("llm.cost.total");
    let prompt = usd("llm.cost.prompt");
    let completion = usd("llm.cost.completion");
    if total.is_none() && prompt.is_none() && completion.is_none() {
        return None;
    }
    let cache_read = usd("llm.cost.prompt_details.cache_read").unwrap_or_default();
    let cache_write = usd("llm.cost.prompt_details.cache_write").unwrap_or_default();
    let reasoning = usd("llm.cost.completion_details.reasoning").unwrap_or_default();
    let input = usd("llm.cost.prompt_details.input").unwrap_or_else(|| {
        NanoUsd(
            prompt
                .unwrap_or_default()
                .0
                .saturating_sub(cache_read.0)
                .saturating_sub(cache_write.0)
                .max(0),
        )
    });
    let output = usd("llm.cost.completion_details.output").unwrap_or_else(|| {
        NanoUsd(
            completion
                .unwrap_or_default()
                .0
                .saturating_sub(reasoning.0)
                .max(0),
        )
    });
    let parts = CostBreakdown {
        input,
        output,
        cache_read,
        cache_write,
        reasoning,
        total: NanoUsd::ZERO,
    }
    .with_total();
    Some(CostBreakdown {
        total: total.unwrap_or(parts.total),
        ..parts
    })
}
