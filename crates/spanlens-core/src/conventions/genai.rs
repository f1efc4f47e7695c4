//! OpenTelemetry GenAI semantic conventions (`gen_ai.*`), current names and the deprecated ones
//! older instrumentations still emit (`gen_ai.system`, `gen_ai.usage.prompt_tokens`, …).
//!
//! Token rule: `gen_ai.usage.input_tokens` INCLUDES cached tokens and `output_tokens` INCLUDES
//! reasoning tokens (the spec's wording), see [`super::InclusiveCounts`].

use super::attrs::ns;
use super::{canonical_provider, messages, set, ttft_from_seconds, Attrs, InclusiveCounts};
use crate::span::{Message, Payload, Span, SpanKind, ToolInfo};

/// The per-modality token counts (semantic-conventions-genai) and the `usage.extra` key each
/// is kept under.
const MODALITY_COUNTS: [(&str, &str); 10] = [
    ("gen_ai.usage.text.input_tokens", "text_input_tokens"),
    ("gen_ai.usage.image.input_tokens", "image_input_tokens"),
    ("gen_ai.usage.audio.input_tokens", "audio_input_tokens"),
    ("gen_ai.usage.video.input_tokens", "video_input_tokens"),
    (
        "gen_ai.usage.text.cache_read.input_tokens",
        "text_cache_read_input_tokens",
    ),
    (
        "gen_ai.usage.image.cache_read.input_tokens",
        "image_cache_read_input_tokens",
    ),
    (
        "gen_ai.usage.audio.cache_read.input_tokens",
        "audio_cache_read_input_tokens",
    ),
    ("gen_ai.usage.text.output_tokens", "text_output_tokens"),
    ("gen_ai.usage.image.output_tokens", "image_output_tokens"),
    ("gen_ai.usage.audio.output_tokens", "audio_output_tokens"),
];

/// Kind from `gen_ai.operation.name`, or `llm` when a model is named.
pub(super) fn kind(a: &Attrs) -> Option<SpanKind> {
    let op = a.str("gen_ai.operation.name")?;
    Some(operation_kind(op).unwrap_or(SpanKind::Span))
}

/// The kind an OTel GenAI operation name (`gen_ai.operation.name`) stands for, if it names one.
pub fn operation_kind(operation: &str) -> Option<SpanKind> {
    Some(match operation {
        "chat" | "text_completion" | "generate_content" | "completion" => SpanKind::Llm,
        "embeddings" | "embedding" => SpanKind::Embedding,
        "execute_tool" => SpanKind::Tool,
        "invoke_agent" | "create_agent" => SpanKind::Agent,
        "invoke_workflow" => SpanKind::Pipeline,
        "retrieval" | "retrieve" => SpanKind::Retriever,
        "rerank" => SpanKind::Reranker,
        _ => return None,
    })
}

pub(super) fn apply(span: &mut Span, a: &Attrs) {
    if !a.has_namespace(ns::GEN_AI | ns::LLM) {
        return;
    }
    if span.kind == SpanKind::Span
        && a.has("gen_ai.request.model")
        && (a.has("gen_ai.system") || a.has("gen_ai.provider.name"))
    {
        span.kind = SpanKind::Llm;
    }
    set(
        &mut span.provider,
        a.first_string(&["gen_ai.provider.name", "gen_ai.system"])
            .map(|p| canonical_provider(&p)),
    );
    set(&mut span.request_model, a.string("gen_ai.request.model"));
    set(&mut span.response_model, a.string("gen_ai.response.model"));
    set(
        &mut span.response_id,
        a.string("gen_ai.response.id")
            .filter(|id| !id.trim().is_empty()),
    );
    for (k, v) in a.prefixed("gen_ai.request.") {
        if k != "model" {
            span.model_parameters
                .entry(k.to_string())
                .or_insert_with(|| v.clone());
        }
    }
    if span.usage.is_none() {
        span.usage = InclusiveCounts {
            input: a.first_u64(&["gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens"]),
            output: a.first_u64(&[
                "gen_ai.usage.output_tokens",
                "gen_ai.usage.completion_tokens",
            ]),
            cache_read: a.first_u64(&[
                "gen_ai.usage.cache_read.input_tokens",
                "gen_ai.usage.cache_read_input_tokens",
                "gen_ai.usage.input_tokens.cached",
            ]),
            // `cache_write` is the name since the conventions moved to their own repository
            // (semantic-conventions-genai); `cache_creation` the one before.
            cache_write: a.first_u64(&[
                "gen_ai.usage.cache_write.input_tokens",
                "gen_ai.usage.cache_creation.input_tokens",
                "gen_ai.usage.cache_creation_input_tokens",
                "gen_ai.usage.input_tokens.cache_write",
            ]),
            reasoning: a.first_u64(&[
                "gen_ai.usage.reasoning.output_tokens",
                "gen_ai.usage.reasoning_tokens",
                "gen_ai.usage.output_tokens.reasoning",
            ]),
            total: a.first_u64(&["gen_ai.usage.total_tokens", "llm.usage.total_tokens"]),
        }
        .into_usage();
        // The per-modality breakdown (semantic-conventions-genai, `gen_ai.usage.{text,image,
        // audio}.*`): parts of the counts above, kept in `usage.extra` as reported.
        if let Some(u) = span.usage.as_mut() {
            for (attr, key) in MODALITY_COUNTS {
                if let Some(n) = a.u64(attr).filter(|n| *n > 0) {
                    u.extra.insert(key.into(), n);
                }
            }
        }
    }
    set(
        &mut span.ttft_ns,
        ttft_from_seconds(
            a.f64("gen_ai.response.time_to_first_chunk")
                .or_else(|| a.f64("gen_ai.response.time_to_first_token")),
        ),
    );
    if span.finish_reasons.is_empty() {
        span.finish_reasons = a.strings("gen_ai.response.finish_reasons");
    }
    set(&mut span.session_id, a.string("gen_ai.conversation.id"));
    set(&mut span.agent_name, a.string("gen_ai.agent.name"));
    if span.kind == SpanKind::Tool || a.has("gen_ai.tool.name") {
        let tool = span.tool.get_or_insert_with(ToolInfo::default);
        set(&mut tool.name, a.string("gen_ai.tool.name"));
        set(&mut tool.call_id, a.string("gen_ai.tool.call.id"));
        set(&mut tool.description, a.string("gen_ai.tool.description"));
        set(
            &mut span.input,
            a.string("gen_ai.tool.call.arguments")
                .map(|t| Payload::from_text(&t, None)),
        );
        set(
            &mut span.output,
            a.string("gen_ai.tool.call.result")
                .map(|t| Payload::from_text(&t, None)),
        );
    }
    set(
        &mut span.tool_definitions,
        a.json("gen_ai.tool.definitions").map(Payload::from_value),
    );
    if span.input_messages.is_empty() {
        let mut msgs: Vec<Message> = Vec::new();
        if let Some(sys) = a.json("gen_ai.system_instructions") {
            let parts = serde_json::json!([{"role": "system", "parts": sys}]);
            msgs.extend(messages::messages_from_json(&parts));
        }
        if let Some(m) = a
            .get("gen_ai.input.messages")
            .and_then(messages::messages_from_attribute)
        {
            msgs.extend(m);
        }
        if msgs.is_empty() {
            msgs = messages::indexed_messages(a, "gen_ai.prompt.");
        }
        span.input_messages = msgs;
    }
    if span.output_messages.is_empty() {
        span.output_messages = match a
            .get("gen_ai.output.messages")
            .and_then(messages::messages_from_attribute)
        {
            Some(m) => m,
            None => messages::indexed_messages(a, "gen_ai.completion."),
        };
    }
    // The oldest instrumentations wrote whole prompts/completions as plain strings.
    set(
        &mut span.input,
        a.string("gen_ai.prompt")
            .map(|t| Payload::from_text(&t, None)),
    );
    set(
        &mut span.output,
        a.string("gen_ai.completion")
            .map(|t| Payload::from_text(&t, None)),
    );
}
