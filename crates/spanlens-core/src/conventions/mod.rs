//! Semantic conventions: reading the attributes of an OTLP span into the canonical fields.
//!
//! Each convention lives in its own module and fills only fields still empty, in priority order:
//! Spanlens' own SDK attributes, OpenInference, Langfuse, OTel GenAI (current and deprecated
//! names), OpenLLMetry/Traceloop. The raw attributes stay on the span untouched.

mod attrs;
pub mod events;
mod genai;
mod langfuse;
mod messages;
mod openinference;
mod traceloop;

pub(crate) use attrs::Attrs;
pub use events::{apply_events, event_score, merge_log_events, span_scores};
pub use genai::operation_kind;
pub use messages::messages_from_json;

use crate::span::{Span, SpanKind, Status};
use crate::time::Timestamp;
use attrs::ns;

/// Fills the canonical fields of `span` from its raw attributes and events (GenAI events
/// fill only what the attributes left empty, see [`events`]).
pub fn enrich(span: &mut Span) {
    let attrs = std::mem::take(&mut span.attributes);
    let a = Attrs::new(&attrs);
    span.source = Some(detect_source(&a).to_string());
    if let Some(kind) = openinference::kind(&a)
        .or_else(|| langfuse::kind(&a))
        .or_else(|| spanlens_kind(&a))
        .or_else(|| traceloop::kind(&a))
        .or_else(|| genai::kind(&a))
    {
        span.kind = kind;
    }
    if span.kind == SpanKind::Span
        && span.parent_span_id.is_none()
        && a.str("openinference.span.kind") == Some("CHAIN")
    {
        span.kind = SpanKind::Pipeline;
    }
    // An MCP (Model Context Protocol) request is a tool call of the agent making it.
    if span.kind == SpanKind::Span && a.has("mcp.method.name") {
        span.kind = SpanKind::Tool;
    }
    openinference::apply(span, &a);
    langfuse::apply(span, &a);
    genai::apply(span, &a);
    traceloop::apply(span, &a);
    mcp(span, &a);
    common(span, &a);
    // Events after every attribute convention: what the span's attributes say wins.
    let events = std::mem::take(&mut span.events);
    events::apply_events(span, &events);
    span.events = events;
    if span.agent_name.is_none() && span.kind == SpanKind::Agent {
        span.agent_name = Some(span.name.clone());
    }
    span.attributes = attrs;
}

/// The tool of an MCP request span: `gen_ai.tool.name` (set for `tools/call`), else the target
/// the span is named after (`{mcp.method.name} {target}`), else the method itself; the
/// JSON-RPC request id as the call id. `mcp.session.id` stays an attribute: it names the
/// client's connection to the server, not the user's session.
fn mcp(span: &mut Span, a: &Attrs) {
    let Some(method) = a.str("mcp.method.name") else {
        return;
    };
    if span.kind != SpanKind::Tool {
        return;
    }
    let target = span
        .name
        .strip_prefix(method)
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string);
    let tool = span.tool.get_or_insert_with(Default::default);
    set(
        &mut tool.name,
        a.string("gen_ai.tool.name")
            .or(target)
            .or_else(|| Some(method.to_string())),
    );
    set(&mut tool.call_id, a.string("jsonrpc.request.id"));
}

fn detect_source(a: &Attrs) -> &'static str {
    if a.has("spanlens.span.kind") {
        "spanlens"
    } else if a.has("openinference.span.kind") {
        "openinference"
    } else if a.has_namespace(ns::LANGFUSE) && a.has_prefix("langfuse.") {
        "langfuse"
    } else if (a.has_namespace(ns::TRACELOOP) && a.has_prefix("traceloop."))
        || a.has("llm.request.type")
    {
        "traceloop"
    } else if a.has_namespace(ns::GEN_AI) && a.has_prefix("gen_ai.") {
        "genai"
    } else {
        "otel"
    }
}

fn spanlens_kind(a: &Attrs) -> Option<SpanKind> {
    a.str("spanlens.span.kind").and_then(SpanKind::parse)
}

/// Conventions every source shares: OTel exceptions and `error.type`, first-token events,
/// end-user and session ids, and the Spanlens SDK's rate-limit attributes.
fn common(span: &mut Span, a: &Attrs) {
    if let Some(ex) = span.events.iter().find(|e| e.name == "exception") {
        let ea = Attrs::new(&ex.attributes);
        set(&mut span.error_type, ea.string("exception.type"));
        set(&mut span.status_message, ea.string("exception.message"));
        set(&mut span.error_stack, ea.string("exception.stacktrace"));
        if span.status == Status::Unset {
            span.status = Status::Error;
        }
    }
    set(&mut span.error_type, a.string("error.type"));
    if span.ttft_ns.is_none() {
        const FIRST_TOKEN_EVENTS: [&str; 5] = [
            "First Token Stream Event",
            "gen_ai.first_token",
            "first_token",
            "llm.first_token",
            "spanlens.first_token",
        ];
        if let Some(e) = span
            .events
            .iter()
            .find(|e| FIRST_TOKEN_EVENTS.contains(&e.name.as_str()))
        {
            span.ttft_ns = e.time.0.checked_sub(span.start_time.0);
        }
    }
    set(&mut span.session_id, a.string("session.id"));
    set(
        &mut span.user_id,
        a.first_string(&["user.id", "enduser.id"]),
    );
    set(
        &mut span.agent_name,
        a.first_string(&["spanlens.agent.name", "agent.name"]),
    );
    if span.rate_limits.is_none() {
        span.rate_limits = rate_limits(a);
    }
    if span.tags.is_empty() {
        span.tags = a.strings("spanlens.tags");
    }
    for (k, v) in a.prefixed("spanlens.metadata.") {
        span.metadata
            .entry(k.to_string())
            .or_insert_with(|| v.clone());
    }
    // One-hour cache writes cost more than five-minute ones: our own attribute, or the Anthropic
    // SDK's built-in tracing, which splits `cache_creation` by TTL.
    if let (Some(u), Some(h)) = (
        span.usage.as_mut(),
        a.first_u64(&[
            "spanlens.usage.cache_write_1h_tokens",
            "anthropic.usage.cache_creation.ephemeral_1h_input_tokens",
        ]),
    ) {
        u.extra
            .entry(crate::span::Usage::CACHE_WRITE_1H.into())
            .or_insert(h.min(u.cache_write_tokens));
    }
}

fn rate_limits(a: &Attrs) -> Option<crate::span::RateLimits> {
    use crate::span::{RateLimitWindow, RateLimits};
    // One range probe instead of thirteen formatted lookups on the common span without limits.
    if !a.has_prefix("spanlens.ratelimit.") {
        return None;
    }
    let window = |name: &str| {
        let w = RateLimitWindow {
            limit: a.u64(&format!("spanlens.ratelimit.{name}.limit")),
            remaining: a.u64(&format!("spanlens.ratelimit.{name}.remaining")),
            reset: a.time(&format!("spanlens.ratelimit.{name}.reset")),
        };
        (w != RateLimitWindow::default()).then_some(w)
    };
    let rl = RateLimits {
        requests: window("requests"),
        tokens: window("tokens"),
        input_tokens: window("input_tokens"),
        output_tokens: window("output_tokens"),
        retry_after_ms: a.u64("spanlens.ratelimit.retry_after_ms"),
    };
    (rl != RateLimits::default()).then_some(rl)
}

/// False for request settings that instrumentations dump next to the sampling parameters
/// (transport, streaming, SDK pass-through options): they do not change what the model does,
/// so they stay in the raw attributes and out of `model_parameters`.
pub(crate) fn is_model_parameter(key: &str) -> bool {
    !matches!(
        key,
        "base_url"
            | "api_base"
            | "api_key"
            | "api_version"
            | "organization"
            | "timeout"
            | "stream"
            | "stream_options"
            | "include_usage"
            | "extra_headers"
            | "extra_query"
            | "extra_body"
            | "extra_args"
            | "store"
            | "metadata"
            | "response_include"
            | "model_impl"
    )
}

/// Sets an empty optional field; the first convention to provide a value wins.
pub(crate) fn set<T>(slot: &mut Option<T>, v: Option<T>) {
    if slot.is_none() {
        *slot = v;
    }
}

/// Time-to-first-token from a duration in seconds (GenAI `time_to_first_chunk`).
pub(crate) fn ttft_from_seconds(secs: Option<f64>) -> Option<u64> {
    secs.filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| (s * 1e9).round() as u64)
}

/// Time-to-first-token from an absolute first-token time.
pub(crate) fn ttft_from_time(start: Timestamp, first: Option<Timestamp>) -> Option<u64> {
    first.and_then(|t| t.0.checked_sub(start.0))
}

/// Canonical provider names, so `gen_ai.system=az.ai.openai` and `llm.provider=azure` group together.
pub fn canonical_provider(raw: &str) -> String {
    let p = raw.trim().to_ascii_lowercase();
    let mapped = match p.as_str() {
        "openai" => "openai",
        "azure" | "azure.ai.openai" | "az.ai.openai" | "azure_openai" | "azure-openai" => "azure",
        "azure.ai.inference" | "az.ai.inference" => "azure",
        "anthropic" => "anthropic",
        "aws.bedrock" | "aws" | "bedrock" | "amazon_bedrock" => "aws",
        "google" | "gemini" | "gcp.gemini" | "gcp.gen_ai" | "gcp.vertex_ai" | "vertex_ai"
        | "vertexai" | "google_genai" | "vertex" => "google",
        "mistral" | "mistralai" | "mistral_ai" => "mistral",
        "x_ai" | "xai" | "x.ai" | "grok" => "xai",
        "cohere" | "cohere_ai" => "cohere",
        "deepseek" | "deepseek_ai" => "deepseek",
        "groq" => "groq",
        "perplexity" => "perplexity",
        "ibm.watsonx.ai" | "watsonx" => "ibm",
        "openrouter" => "openrouter",
        other => other,
    };
    mapped.to_string()
}

/// Token counts reported under the "cache within input, reasoning within output" rule
/// (OTel GenAI, OpenInference, Traceloop).
///
/// Some instrumentations of Anthropic copy its raw `input_tokens` (which EXCLUDE the cache) into
/// these attributes; when the cache counts alone exceed the reported input, that is the only
/// consistent reading, so they are added.
pub(crate) struct InclusiveCounts {
    pub input: Option<u64>,
    pub output: Option<u64>,
    pub cache_read: Option<u64>,
    pub cache_write: Option<u64>,
    pub reasoning: Option<u64>,
    pub total: Option<u64>,
}

impl InclusiveCounts {
    pub(crate) fn into_usage(self) -> Option<crate::span::Usage> {
        if self.input.is_none() && self.output.is_none() && self.total.is_none() {
            return None;
        }
        let read = self.cache_read.unwrap_or(0);
        let write = self.cache_write.unwrap_or(0);
        let mut input = self.input.unwrap_or(0);
        if input > 0 && read.saturating_add(write) > input {
            input = input.saturating_add(read).saturating_add(write);
        }
        Some(
            crate::span::Usage {
                input_tokens: input,
                output_tokens: self.output.unwrap_or(0),
                cache_read_tokens: read,
                cache_write_tokens: write,
                reasoning_tokens: self.reasoning.unwrap_or(0),
                total_tokens: self.total.unwrap_or(0),
                ..Default::default()
            }
            .normalized(),
        )
    }
}

/// A provider- or instrumentation-reported cost (displayed; the computed one is added beside it).
pub(crate) fn reported(amounts: crate::span::CostBreakdown) -> crate::span::Cost {
    crate::span::Cost {
        source: crate::span::CostSource::Reported,
        amounts,
        pricing_id: None,
        pricing_version: None,
        computed: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_are_canonicalised() {
        assert_eq!(canonical_provider("az.ai.openai"), "azure");
        assert_eq!(canonical_provider("MistralAI"), "mistral");
        assert_eq!(canonical_provider("gcp.vertex_ai"), "google");
        assert_eq!(canonical_provider("acme"), "acme");
    }

    use serde_json::json;

    fn enriched(attrs: serde_json::Value) -> Span {
        let mut s = Span {
            start_time: Timestamp(1_000_000_000),
            attributes: serde_json::from_value(attrs).unwrap(),
            ..Default::default()
        };
        enrich(&mut s);
        s
    }

    #[test]
    fn genai_counts_are_inclusive() {
        let s = enriched(
            json!({"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
            "gen_ai.usage.input_tokens": 1000, "gen_ai.usage.cache_read.input_tokens": 800,
            "gen_ai.usage.output_tokens": 300, "gen_ai.usage.reasoning.output_tokens": 200}),
        );
        let u = s.usage.unwrap();
        assert_eq!(
            (
                u.input_tokens,
                u.cache_read_tokens,
                u.output_tokens,
                u.reasoning_tokens
            ),
            (1000, 800, 300, 200)
        );
        assert_eq!(s.kind, SpanKind::Llm);
        assert_eq!(s.source.as_deref(), Some("genai"));
    }

    #[test]
    fn response_ids_are_read_from_genai_traceloop_and_openinference() {
        let s = enriched(
            json!({"gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o",
            "gen_ai.response.id": "chatcmpl-9"}),
        );
        assert_eq!(s.response_id.as_deref(), Some("chatcmpl-9"));
        let s = enriched(
            json!({"llm.request.type": "chat", "gen_ai.system": "openai",
            "gen_ai.response.id": "chatcmpl-8", "llm.usage.prompt_tokens": 3}),
        );
        assert_eq!(s.source.as_deref(), Some("traceloop"));
        assert_eq!(s.response_id.as_deref(), Some("chatcmpl-8"));
        let s = enriched(json!({"gen_ai.system": "openai", "gen_ai.response.id": " "}));
        assert_eq!(s.response_id, None);
        // OpenInference: the raw response recorded as the output.
        let s = enriched(json!({"openinference.span.kind": "LLM",
            "output.value": "{\"id\": \"msg_01\", \"model\": \"claude-sonnet-4\", \"content\": []}",
            "output.mime_type": "application/json"}));
        assert_eq!(s.response_id.as_deref(), Some("msg_01"));
        // An output that is not a provider response has no id.
        let s = enriched(json!({"openinference.span.kind": "LLM",
            "output.value": "{\"id\": 7, \"answer\": \"hi\"}"}));
        assert_eq!(s.response_id, None);
    }

    /// The Anthropic SDK's own tracing sends the newest name of the cache-write count; the
    /// name before it is still read.
    #[test]
    fn genai_cache_writes_are_read_under_both_names() {
        for key in [
            "gen_ai.usage.cache_write.input_tokens",
            "gen_ai.usage.cache_creation.input_tokens",
        ] {
            let mut attrs = json!({"gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "anthropic", "gen_ai.request.model": "claude-sonnet-4",
                "gen_ai.usage.input_tokens": 1500, "gen_ai.usage.cache_read.input_tokens": 200,
                "gen_ai.usage.output_tokens": 40});
            attrs[key] = json!(1000);
            let u = enriched(attrs).usage.unwrap();
            assert_eq!(
                (u.input_tokens, u.cache_read_tokens, u.cache_write_tokens),
                (1500, 200, 1000),
                "{key}"
            );
        }
    }

    #[test]
    fn anthropic_sdk_one_hour_cache_writes_are_kept_apart() {
        // What the Anthropic SDK's built-in tracing sends for 1,024 five-minute and 512 one-hour
        // cache writes: the one-hour part costs more and must reach the price engine.
        let s = enriched(json!({"gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "anthropic", "gen_ai.request.model": "claude-sonnet-4-5",
            "gen_ai.usage.input_tokens": 3896, "gen_ai.usage.cache_read.input_tokens": 2048,
            "gen_ai.usage.cache_write.input_tokens": 1536, "gen_ai.usage.output_tokens": 187,
            "anthropic.usage.cache_creation.ephemeral_5m_input_tokens": 1024,
            "anthropic.usage.cache_creation.ephemeral_1h_input_tokens": 512}));
        let u = s.usage.unwrap();
        assert_eq!(u.cache_write_tokens, 1536);
        assert_eq!(u.extra.get(crate::span::Usage::CACHE_WRITE_1H), Some(&512));
    }

    #[test]
    fn openinference_anthropic_keeps_request_and_response_models_apart() {
        // As openinference-instrumentation-anthropic 3.1 sends a call with 512 one-hour writes.
        let s = enriched(
            json!({"openinference.span.kind": "LLM", "llm.provider": "anthropic",
            "llm.model_name": "claude-sonnet-4-5-20250929",
            "llm.request.model_name": "claude-sonnet-4-5",
            "llm.response.model_name": "claude-sonnet-4-5-20250929",
            "llm.token_count.prompt": 3896, "llm.token_count.completion": 187,
            "llm.token_count.prompt_details.cache_read": 2048,
            "llm.token_count.prompt_details.cache_write": 1536,
            "output.mime_type": "application/json",
            "output.value": json!({"id": "msg_1", "usage": {"input_tokens": 312,
                "cache_read_input_tokens": 2048, "cache_creation_input_tokens": 1536,
                "cache_creation": {"ephemeral_5m_input_tokens": 1024,
                    "ephemeral_1h_input_tokens": 512}, "output_tokens": 187}}).to_string()}),
        );
        assert_eq!(s.request_model.as_deref(), Some("claude-sonnet-4-5"));
        assert_eq!(
            s.response_model.as_deref(),
            Some("claude-sonnet-4-5-20250929")
        );
        let u = s.usage.unwrap();
        assert_eq!((u.input_tokens, u.cache_write_tokens), (3896, 1536));
        assert_eq!(u.extra.get(crate::span::Usage::CACHE_WRITE_1H), Some(&512));
        // Without the new attributes, `llm.model_name` still names both.
        let old = enriched(
            json!({"openinference.span.kind": "LLM", "llm.provider": "openai",
            "llm.model_name": "gpt-4o-2024-08-06", "llm.token_count.prompt": 10}),
        );
        assert_eq!(old.request_model, old.response_model);
    }

    #[test]
    fn tool_definitions_are_read_from_every_source() {
        let weather = json!({"type": "function", "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}});
        // GenAI: a JSON string (or a structured value) in `gen_ai.tool.definitions`.
        let genai = enriched(json!({"gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
            "gen_ai.tool.definitions": json!([weather]).to_string()}));
        // OpenInference: one JSON schema per `llm.tools.N.tool.json_schema`, in index order.
        let oi = enriched(
            json!({"openinference.span.kind": "LLM", "llm.model_name": "gpt-4o",
            "llm.tools.1.tool.json_schema": json!({"name": "second"}).to_string(),
            "llm.tools.0.tool.json_schema": weather.to_string()}),
        );
        // Langfuse: the OpenAI integration's `{"messages": [...], "tools": [...]}` input.
        let lf = enriched(json!({"langfuse.observation.type": "generation",
            "langfuse.observation.input": json!({"messages": [{"role": "user", "content": "hi"}],
                "tools": [weather]}).to_string()}));
        assert_eq!(genai.tool_definitions.unwrap().value, json!([weather]));
        assert_eq!(
            oi.tool_definitions.unwrap().value,
            json!([weather, {"name": "second"}])
        );
        assert_eq!(lf.tool_definitions.unwrap().value, json!([weather]));
        assert_eq!(lf.input_messages.len(), 1);
    }

    #[test]
    fn raw_anthropic_counts_in_genai_attributes_are_repaired() {
        // Uncached input 50 with 20,000 cache reads cannot be an inclusive count.
        let s = enriched(
            json!({"gen_ai.system": "anthropic", "gen_ai.request.model": "claude-3-5-haiku",
            "gen_ai.usage.prompt_tokens": 50, "gen_ai.usage.cache_read_input_tokens": 20000,
            "gen_ai.usage.completion_tokens": 10}),
        );
        let u = s.usage.unwrap();
        assert_eq!(u.input_tokens, 20050);
        assert_eq!(s.kind, SpanKind::Llm);
        assert_eq!(s.provider.as_deref(), Some("anthropic"));
    }

    #[test]
    fn openinference_counts_are_inclusive() {
        let s = enriched(
            json!({"openinference.span.kind": "LLM", "llm.token_count.prompt": 2000,
            "llm.token_count.prompt_details.cache_read": 1500, "llm.token_count.completion": 100,
            "llm.token_count.completion_details.reasoning": 60, "llm.token_count.total": 2100,
            "llm.finish_reason": "stop"}),
        );
        let u = s.usage.unwrap();
        assert_eq!(
            (
                u.input_tokens,
                u.cache_read_tokens,
                u.output_tokens,
                u.reasoning_tokens
            ),
            (2000, 1500, 100, 60)
        );
        assert_eq!(s.finish_reasons, vec!["stop".to_string()]);
    }

    #[test]
    fn langfuse_usage_keys_are_disjoint() {
        let s = enriched(json!({"langfuse.observation.type": "generation",
            "langfuse.observation.usage_details": "{\"input\": 120, \"output\": 80, \"cache_read_input_tokens\": 900, \"output_reasoning_tokens\": 30, \"total\": 1130}",
            "langfuse.observation.completion_start_time": "\"1970-01-01T00:00:01.250Z\""}));
        let u = s.usage.unwrap();
        assert_eq!(
            (
                u.input_tokens,
                u.cache_read_tokens,
                u.output_tokens,
                u.reasoning_tokens
            ),
            (1020, 900, 110, 30)
        );
        assert_eq!(s.ttft_ns, Some(250_000_000));
        assert_eq!(s.kind, SpanKind::Llm);
    }

    /// The Langfuse SDK's OpenAI integration sends OpenAI's own usage object, whose nested
    /// cached and reasoning counts are parts of `prompt_tokens` / `completion_tokens` (Chat
    /// Completions) or `input_tokens` / `output_tokens` (Responses).
    #[test]
    fn langfuse_raw_openai_usage_keeps_cached_and_reasoning_tokens() {
        for details in [
            r#"{"prompt_tokens": 1000, "completion_tokens": 300, "total_tokens": 1300,
                "prompt_tokens_details": {"cached_tokens": 800, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 200, "audio_tokens": null}}"#,
            r#"{"input_tokens": 1000, "output_tokens": 300, "total_tokens": 1300,
                "input_tokens_details": {"cached_tokens": 800},
                "output_tokens_details": {"reasoning_tokens": 200}}"#,
        ] {
            let s = enriched(json!({"langfuse.observation.type": "generation",
                "langfuse.observation.model.name": "gpt-4o",
                "langfuse.observation.usage_details": details}));
            let u = s.usage.unwrap();
            assert_eq!(
                (
                    u.input_tokens,
                    u.cache_read_tokens,
                    u.output_tokens,
                    u.reasoning_tokens,
                    u.total_tokens
                ),
                (1000, 800, 300, 200, 1300),
                "{details}"
            );
        }
    }

    #[test]
    fn langfuse_raw_anthropic_usage_keeps_cache_reads_and_both_write_ttls() {
        // Anthropic's own usage object as usage details: input excludes the cache, and the
        // writes are split by TTL in a nested object.
        let s = enriched(json!({"langfuse.observation.type": "generation",
            "langfuse.observation.model.name": "claude-sonnet-4-5",
            "langfuse.observation.usage_details": r#"{"input_tokens": 312,
                "cache_read_input_tokens": 2048, "cache_creation_input_tokens": 1536,
                "cache_creation": {"ephemeral_5m_input_tokens": 1024, "ephemeral_1h_input_tokens": 512},
                "output_tokens": 187}"#}));
        let u = s.usage.unwrap();
        assert_eq!(
            (
                u.input_tokens,
                u.cache_read_tokens,
                u.cache_write_tokens,
                u.output_tokens
            ),
            (3896, 2048, 1536, 187)
        );
        assert_eq!(u.extra.get(crate::span::Usage::CACHE_WRITE_1H), Some(&512));
    }

    /// The Langfuse SDK's OpenAI integration records a chat input as `{"messages", "tools"}` and
    /// a completion's output as its plain text.
    #[test]
    fn langfuse_chat_inputs_and_plain_text_outputs_become_messages() {
        let s = enriched(json!({"langfuse.observation.type": "generation",
            "langfuse.observation.input": r#"{"messages": [{"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Weather in Paris?"}],
                "tools": [{"type": "function", "function": {"name": "get_weather"}}]}"#,
            "langfuse.observation.output": "Sunny, 21 °C."}));
        let roles: Vec<_> = s.input_messages.iter().map(|m| m.role.as_deref()).collect();
        assert_eq!(roles, [Some("system"), Some("user")]);
        assert_eq!(
            s.input_messages[1].content.as_deref(),
            Some("Weather in Paris?")
        );
        assert_eq!(s.output_messages.len(), 1);
        assert_eq!(s.output_messages[0].role.as_deref(), Some("assistant"));
        assert_eq!(
            s.output_messages[0].content.as_deref(),
            Some("Sunny, 21 °C.")
        );
        // Neither rule applies to other observations or other shapes.
        let s = enriched(json!({"langfuse.observation.type": "span",
            "langfuse.observation.input": r#"{"content": "a document", "id": 7}"#,
            "langfuse.observation.output": "done"}));
        assert!(s.input_messages.is_empty() && s.output_messages.is_empty());
    }

    /// The per-modality breakdown of the newest GenAI conventions is kept beside the counts it
    /// is part of.
    #[test]
    fn genai_modality_breakdowns_are_kept() {
        let s = enriched(
            json!({"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
            "gen_ai.usage.input_tokens": 1500, "gen_ai.usage.output_tokens": 90,
            "gen_ai.usage.text.input_tokens": 1000, "gen_ai.usage.audio.input_tokens": 300,
            "gen_ai.usage.video.input_tokens": 200,
            "gen_ai.usage.audio.cache_read.input_tokens": 100, "gen_ai.usage.image.output_tokens": 0,
            "gen_ai.usage.audio.output_tokens": 90}),
        );
        let u = s.usage.unwrap();
        assert_eq!((u.input_tokens, u.output_tokens), (1500, 90));
        let extra: Vec<_> = u.extra.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(
            extra,
            [
                ("audio_cache_read_input_tokens", 100),
                ("audio_input_tokens", 300),
                ("audio_output_tokens", 90),
                ("text_input_tokens", 1000),
                ("video_input_tokens", 200)
            ]
        );
    }

    /// MCP request spans are tool spans named after their tool (semantic conventions for MCP).
    #[test]
    fn mcp_requests_become_tool_spans() {
        let mut s = Span {
            name: "tools/call get_weather".into(),
            attributes: serde_json::from_value(json!({"mcp.method.name": "tools/call",
                "gen_ai.tool.name": "get_weather", "gen_ai.operation.name": "execute_tool",
                "jsonrpc.request.id": "42", "mcp.session.id": "c0ffee"}))
            .unwrap(),
            ..Default::default()
        };
        enrich(&mut s);
        assert_eq!(s.kind, SpanKind::Tool);
        let tool = s.tool.clone().unwrap();
        assert_eq!(tool.name.as_deref(), Some("get_weather"));
        assert_eq!(tool.call_id.as_deref(), Some("42"));
        assert_eq!(s.attributes["mcp.session.id"], json!("c0ffee"));
        // Without the GenAI attributes: the target in the span name, else the method.
        for (name, want) in [
            ("resources/read file:///a.txt", "file:///a.txt"),
            ("initialize", "initialize"),
        ] {
            let method = name.split(' ').next().unwrap();
            let mut s = Span {
                name: name.into(),
                attributes: serde_json::from_value(json!({"mcp.method.name": method})).unwrap(),
                ..Default::default()
            };
            enrich(&mut s);
            assert_eq!(s.kind, SpanKind::Tool);
            assert_eq!(s.tool.unwrap().name.as_deref(), Some(want));
        }
    }

    #[test]
    fn unknown_attributes_survive_and_exceptions_become_errors() {
        let mut s = Span {
            attributes: serde_json::from_value(json!({"acme.flag": true})).unwrap(),
            events: vec![crate::span::Event {
                name: "exception".into(),
                time: Timestamp(5),
                attributes: serde_json::from_value(json!({"exception.type": "TimeoutError",
                    "exception.message": "tool timed out", "exception.stacktrace": "at f()"}))
                .unwrap(),
            }],
            ..Default::default()
        };
        enrich(&mut s);
        assert_eq!(s.attributes["acme.flag"], json!(true));
        assert_eq!(s.status, Status::Error);
        assert_eq!(s.error_type.as_deref(), Some("TimeoutError"));
        assert_eq!(s.status_message.as_deref(), Some("tool timed out"));
        assert_eq!(s.source.as_deref(), Some("otel"));
    }

    /// Found by fuzzing (fuzz/, normalize_otlp_proto): a negative reported amount became a
    /// negative displayed cost.
    #[test]
    fn negative_reported_costs_are_not_read() {
        let s = enriched(json!({"openinference.span.kind": "LLM", "llm.cost.total": -1.0}));
        assert_eq!(s.cost, None);
        assert_eq!(s.attributes["llm.cost.total"], json!(-1.0));
        let s = enriched(
            json!({"openinference.span.kind": "LLM", "llm.cost.total": 0.5,
            "llm.cost.prompt": 0.25, "llm.cost.prompt_details.cache_read": -0.5,
            "llm.cost.completion": 0.25, "llm.cost.completion_details.reasoning": -9e9}),
        );
        let c = s.cost.unwrap().amounts;
        assert_eq!(c.total.0, 500_000_000);
        assert!(
            [c.input, c.output, c.cache_read, c.cache_write, c.reasoning]
                .iter()
                .all(|n| n.0 >= 0)
        );
        let s = enriched(json!({"langfuse.observation.type": "generation",
            "langfuse.observation.cost_details": "{\"total\": -2, \"input\": -1}"}));
        assert_eq!(s.cost, None);
        let s = enriched(json!({"langfuse.observation.type": "generation",
            "langfuse.observation.cost_details": "{\"input\": 0.5, \"output\": -1}"}));
        let c = s.cost.unwrap().amounts;
        assert_eq!(
            (c.input.0, c.output.0, c.total.0),
            (500_000_000, 0, 500_000_000)
        );
    }

    /// Found by fuzzing: the uncached share of a reported prompt cost is computed without
    /// overflowing when the cached parts are near the largest amount.
    #[test]
    fn reported_cost_parts_do_not_overflow() {
        let s = enriched(
            json!({"openinference.span.kind": "LLM", "llm.cost.prompt": 0,
            "llm.cost.prompt_details.cache_read": 9.0e9, "llm.cost.prompt_details.cache_write": 9.0e9,
            "llm.cost.completion": 0, "llm.cost.completion_details.reasoning": 9.0e9}),
        );
        let c = s.cost.unwrap().amounts;
        assert_eq!((c.input.0, c.output.0), (0, 0));
    }

    /// Langfuse's SDKs name the prompt a generation used by name and numbered version
    /// (`langfuse.observation.prompt.*`); the prompt versions page reads them as text.
    #[test]
    fn langfuse_prompt_name_and_version_are_read() {
        let s = enriched(json!({"langfuse.observation.type": "generation",
            "langfuse.observation.model.name": "gpt-4o",
            "langfuse.observation.prompt.name": "support-answer",
            "langfuse.observation.prompt.version": 3}));
        let p = s.prompt.expect("a prompt");
        assert_eq!(p.name.as_deref(), Some("support-answer"));
        assert_eq!(p.version.as_deref(), Some("3"));
        // Without a name there is no prompt to group by.
        let s = enriched(json!({"langfuse.observation.type": "generation",
            "langfuse.observation.prompt.version": 3}));
        assert!(s.prompt.is_none());
    }
}
