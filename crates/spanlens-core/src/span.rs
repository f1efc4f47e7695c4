//! The canonical span: the one shape every source is normalised into.

use crate::ids::{SpanId, TraceId};
use crate::money::NanoUsd;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Free-form key/value attributes (raw source attributes, metadata, parameters).
pub type Attributes = BTreeMap<String, Value>;

/// What a span represents in an agent pipeline.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "snake_case")]
pub enum SpanKind {
    /// A whole workflow / chain of steps.
    Pipeline,
    /// An agent invocation.
    Agent,
    /// A call to a language model.
    Llm,
    /// A call to an embedding model.
    Embedding,
    /// A retrieval step (vector search, …).
    Retriever,
    /// A reranking step.
    Reranker,
    /// A tool / function execution.
    Tool,
    /// A guardrail check.
    Guardrail,
    /// A hand-off from one agent to another.
    Handoff,
    /// An evaluation.
    Evaluator,
    /// Anything else.
    #[default]
    Span,
}

impl SpanKind {
    /// Every kind, in display order.
    pub const ALL: [SpanKind; 11] = [
        SpanKind::Pipeline,
        SpanKind::Agent,
        SpanKind::Llm,
        SpanKind::Embedding,
        SpanKind::Retriever,
        SpanKind::Reranker,
        SpanKind::Tool,
        SpanKind::Guardrail,
        SpanKind::Handoff,
        SpanKind::Evaluator,
        SpanKind::Span,
    ];

    /// The lowercase name used in JSON and attributes.
    pub fn as_str(self) -> &'static str {
        match self {
            SpanKind::Pipeline => "pipeline",
            SpanKind::Agent => "agent",
            SpanKind::Llm => "llm",
            SpanKind::Embedding => "embedding",
            SpanKind::Retriever => "retriever",
            SpanKind::Reranker => "reranker",
            SpanKind::Tool => "tool",
            SpanKind::Guardrail => "guardrail",
            SpanKind::Handoff => "handoff",
            SpanKind::Evaluator => "evaluator",
            SpanKind::Span => "span",
        }
    }

    /// Parses the lowercase name (case-insensitive).
    pub fn parse(s: &str) -> Option<SpanKind> {
        SpanKind::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(s))
    }
}

/// Outcome of a span.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Not set by the instrumentation.
    #[default]
    Unset,
    /// Completed successfully.
    Ok,
    /// Failed.
    Error,
}

/// Token counts with the canonical semantics (README, Token semantics).
///
/// `input_tokens` INCLUDES cache reads and cache writes; `output_tokens` INCLUDES reasoning tokens.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Usage {
    /// All input tokens, cached ones included.
    #[serde(default)]
    pub input_tokens: u64,
    /// All output tokens, reasoning included.
    #[serde(default)]
    pub output_tokens: u64,
    /// Input tokens served from the provider's prompt cache (part of `input_tokens`).
    #[serde(default)]
    pub cache_read_tokens: u64,
    /// Input tokens written to the prompt cache (part of `input_tokens`).
    #[serde(default)]
    pub cache_write_tokens: u64,
    /// Hidden reasoning tokens (part of `output_tokens`).
    #[serde(default)]
    pub reasoning_tokens: u64,
    /// Input plus output (as reported, or computed when not reported).
    #[serde(default)]
    pub total_tokens: u64,
    /// Further counts a provider reports (`cache_write_1h_tokens`, `audio_input_tokens`, …).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, u64>,
}

impl Usage {
    /// Extra key for the part of `cache_write_tokens` written with a one-hour TTL (Anthropic).
    pub const CACHE_WRITE_1H: &'static str = "cache_write_1h_tokens";

    /// True when no count is set.
    pub fn is_empty(&self) -> bool {
        self.input_tokens == 0
            && self.output_tokens == 0
            && self.total_tokens == 0
            && self.extra.is_empty()
    }

    /// Restores the invariants: cached tokens within input, reasoning within output, total filled.
    pub fn normalized(mut self) -> Usage {
        let cached = self
            .cache_read_tokens
            .saturating_add(self.cache_write_tokens);
        if self.input_tokens < cached {
            self.input_tokens = cached;
        }
        if self.output_tokens < self.reasoning_tokens {
            self.output_tokens = self.reasoning_tokens;
        }
        let sum = self.input_tokens.saturating_add(self.output_tokens);
        if self.total_tokens < sum {
            self.total_tokens = sum;
        }
        self
    }
}

/// Where a span's displayed cost comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CostSource {
    /// Reported by the provider or the instrumentation.
    Reported,
    /// Computed by Spanlens from usage and the price catalog.
    Computed,
}

/// A cost breakdown in USD (exact nano-USD inside, floats in JSON).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CostBreakdown {
    /// Uncached input tokens.
    #[serde(rename = "input_usd", default)]
    pub input: NanoUsd,
    /// Output tokens (reasoning excluded when it has its own price).
    #[serde(rename = "output_usd", default)]
    pub output: NanoUsd,
    /// Cache reads.
    #[serde(rename = "cache_read_usd", default)]
    pub cache_read: NanoUsd,
    /// Cache writes.
    #[serde(rename = "cache_write_usd", default)]
    pub cache_write: NanoUsd,
    /// Reasoning tokens, when priced apart from output.
    #[serde(rename = "reasoning_usd", default)]
    pub reasoning: NanoUsd,
    /// The sum of the parts (or the reported total).
    #[serde(rename = "total_usd", default)]
    pub total: NanoUsd,
}

impl CostBreakdown {
    /// Sets `total` to the sum of the parts.
    pub fn with_total(mut self) -> Self {
        self.total = self.input + self.output + self.cache_read + self.cache_write + self.reasoning;
        self
    }
}

/// The cost of a span.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cost {
    /// Where the displayed amounts come from.
    pub source: CostSource,
    /// The displayed amounts.
    #[serde(flatten)]
    pub amounts: CostBreakdown,
    /// Catalog entry used for the computed cost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pricing_id: Option<String>,
    /// Catalog version used for the computed cost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pricing_version: Option<String>,
    /// The computed cost kept beside a reported one, for reconciliation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub computed: Option<CostBreakdown>,
}

impl Cost {
    /// A computed cost holding only its total (no breakdown, catalog entry or reported
    /// amounts): what a reader that keeps only the total rebuilds, and what tests price with.
    pub fn computed_total(total: NanoUsd) -> Cost {
        Cost {
            source: CostSource::Computed,
            amounts: CostBreakdown {
                total,
                ..Default::default()
            },
            pricing_id: None,
            pricing_version: None,
            computed: None,
        }
    }
}

/// A text or JSON payload (input, output, tool arguments, …), size-capped.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Payload {
    /// The content; a JSON string value holds text, anything else is structured.
    pub value: Value,
    /// MIME type when known (`text/plain`, `application/json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    /// True when `value` was cut to the size cap.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    /// Size in bytes before truncation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_bytes: Option<u64>,
}

/// Largest payload kept verbatim; larger text is cut with `truncated: true`.
pub const MAX_PAYLOAD_BYTES: usize = 256 * 1024;

impl Payload {
    /// A payload from text, parsed as JSON when it looks like a JSON object or array.
    pub fn from_text(text: &str, mime_type: Option<&str>) -> Payload {
        // SDKs that `json.dumps` every payload send a returned string as a quoted JSON string.
        let trimmed = text.trim();
        if trimmed.len() >= 2
            && trimmed.starts_with('"')
            && trimmed.ends_with('"')
            && !mime_type.is_some_and(|m| m.starts_with("text/"))
        {
            if let Ok(Value::String(inner)) = serde_json::from_str::<Value>(trimmed) {
                return Payload::from_text(&inner, Some("text/plain"));
            }
        }
        let is_json_mime = mime_type.is_some_and(|m| m.contains("json"));
        let looks_json = text.trim_start().starts_with(['{', '[']);
        if text.len() <= MAX_PAYLOAD_BYTES && (is_json_mime || looks_json) {
            if let Ok(v) = serde_json::from_str::<Value>(text) {
                if v.is_object() || v.is_array() || is_json_mime {
                    return Payload {
                        value: v,
                        mime_type: Some("application/json".into()),
                        ..Default::default()
                    };
                }
            }
        }
        let mut p = Payload {
            value: Value::Null,
            mime_type: mime_type.map(str::to_string),
            ..Default::default()
        };
        if text.len() > MAX_PAYLOAD_BYTES {
            let mut cut = MAX_PAYLOAD_BYTES;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            p.value = Value::String(text[..cut].to_string());
            p.truncated = true;
            p.original_bytes = Some(text.len() as u64);
        } else {
            p.value = Value::String(text.to_string());
        }
        p
    }

    /// A payload from a structured value; over the cap it is kept as truncated JSON text.
    pub fn from_value(v: Value) -> Payload {
        if let Value::String(s) = &v {
            return Payload::from_text(s, None);
        }
        let text = v.to_string();
        if text.len() > MAX_PAYLOAD_BYTES {
            let mut p = Payload::from_text(&text, Some("application/json"));
            p.mime_type = Some("application/json".into());
            return p;
        }
        Payload {
            value: v,
            mime_type: Some("application/json".into()),
            ..Default::default()
        }
    }

    /// The payload as text (JSON rendered compactly).
    pub fn as_text(&self) -> String {
        match &self.value {
            Value::String(s) => s.clone(),
            v => v.to_string(),
        }
    }
}

/// A tool call requested by a model inside a message.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ToolCallRef {
    /// Provider call id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Tool / function name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Arguments, usually a JSON string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
}

/// A chat message sent to or received from a model.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Message {
    /// `system`, `user`, `assistant`, `tool`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Text content (multi-part text joined with newlines).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Participant or function name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// For tool results: the call this answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// Tool calls requested by the model.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCallRef>,
    /// Why generation stopped (output messages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
}

/// Tool-execution details of a `tool` span.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ToolInfo {
    /// Tool name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Call id linking it to the model's tool call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    /// Tool description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A prompt template and the variables it was filled with.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PromptTemplate {
    /// Template name or id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Template text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// Template version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Variables substituted into the template.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: Attributes,
}

/// A timestamped event inside a span (retry, first token, guardrail verdict, exception, …).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Event {
    /// Event name.
    pub name: String,
    /// When it happened.
    pub time: Timestamp,
    /// Event attributes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: Attributes,
}

/// A link to another span (OTel span links).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Link {
    /// Linked trace.
    pub trace_id: TraceId,
    /// Linked span.
    pub span_id: SpanId,
    /// Link attributes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: Attributes,
}

/// One rate-limit window as reported by provider headers.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RateLimitWindow {
    /// Allowed in the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    /// Left in the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining: Option<u64>,
    /// When the window resets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset: Option<Timestamp>,
}

/// Rate-limit state at the time of an LLM call.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RateLimits {
    /// Request-count window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<RateLimitWindow>,
    /// Token window (all tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<RateLimitWindow>,
    /// Input-token window (Anthropic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<RateLimitWindow>,
    /// Output-token window (Anthropic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<RateLimitWindow>,
    /// `retry-after` in milliseconds, when the provider asked to back off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

/// The canonical span.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Span {
    /// Trace id.
    pub trace_id: TraceId,
    /// Span id.
    pub span_id: SpanId,
    /// Parent span id; `None` for a root.
    #[serde(default)]
    pub parent_span_id: Option<SpanId>,
    /// Display name.
    pub name: String,
    /// What the span represents.
    #[serde(default)]
    pub kind: SpanKind,
    /// Start time.
    pub start_time: Timestamp,
    /// End time; `None` while the span is open.
    #[serde(default)]
    pub end_time: Option<Timestamp>,
    /// Outcome.
    #[serde(default)]
    pub status: Status,
    /// Error description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
    /// Error class (`RateLimitError`, `timeout`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    /// Stack trace of the error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_stack: Option<String>,
    /// Emitting service (`service.name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Project the span belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Which convention the span was read with (`genai`, `openinference`, `openai_agents`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Conversation / session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// End user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Application metadata.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: Attributes,
    /// Agent this span belongs to (its own name for agent spans).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_name: Option<String>,
    /// Model provider (`openai`, `anthropic`, `google`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Model asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_model: Option<String>,
    /// Model that answered (often a dated snapshot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_model: Option<String>,
    /// The provider's id of the response (`chatcmpl-…`, `resp_…`, `msg_…`): two spans of one
    /// trace with the same id recorded the same call (see [`crate::dedup`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_id: Option<String>,
    /// Set on reading by the store when this LLM span recorded the same provider call as
    /// another span of its trace: that span is the one counted in totals (see [`crate::dedup`]).
    /// This span keeps its own usage and cost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate_of: Option<SpanId>,
    /// Temperature, max tokens, … as sent.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub model_parameters: Attributes,
    /// Token counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Cost; `None` when there is nothing to price or the model is unpriced (see `unpriced_reason`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<Cost>,
    /// Why an LLM span with usage has no cost (no catalog entry matched its model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unpriced_reason: Option<String>,
    /// Time to first token, nanoseconds (JSON: `ttft_ms`).
    #[serde(
        default,
        rename = "ttft_ms",
        with = "crate::time::opt_ms",
        skip_serializing_if = "Option::is_none"
    )]
    pub ttft_ns: Option<u64>,
    /// Why the model stopped (`stop`, `length`, `tool_calls`, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub finish_reasons: Vec<String>,
    /// Span input (prompt, tool arguments, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Payload>,
    /// Span output (completion, tool result, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Payload>,
    /// Messages sent to the model.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub input_messages: Vec<Message>,
    /// Messages the model produced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub output_messages: Vec<Message>,
    /// The tools offered to the model, as the source sent them (a JSON array of definitions):
    /// what the model could have called, next to what it did call in `output_messages`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_definitions: Option<Payload>,
    /// Tool details for tool spans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<ToolInfo>,
    /// Prompt template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<PromptTemplate>,
    /// Events.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<Event>,
    /// Links.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<Link>,
    /// Rate-limit state from provider headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limits: Option<RateLimits>,
    /// Resource attributes of the emitting process, shared by every span of one resource
    /// instead of copied into each (an OTel SDK's resource has a handful of entries).
    #[serde(default, skip_serializing_if = "no_resource")]
    pub resource: std::sync::Arc<Attributes>,
    /// Every source attribute, verbatim: nothing a source sends is lost.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: Attributes,
    /// What was cut to the size limits of [`crate::limits`] before the span was stored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub truncated: Vec<Truncation>,
}

/// One field of a span that was cut (or a derived value dropped) to fit the limits.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Truncation {
    /// The canonical field, e.g. `name`, `attributes["input.value"]`, `events`.
    pub field: String,
    /// What was done, e.g. `62914560 bytes, kept 2048`.
    pub reason: String,
}

impl Span {
    /// Duration in nanoseconds, when the span has ended (and did not end before it started).
    pub fn duration_ns(&self) -> Option<u64> {
        self.end_time.map(|e| e.0.saturating_sub(self.start_time.0))
    }
}

/// Serde's skip test for [`Span::resource`].
fn no_resource(r: &std::sync::Arc<Attributes>) -> bool {
    r.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_normalisation_restores_invariants() {
        let u = Usage {
            input_tokens: 5,
            cache_read_tokens: 10,
            output_tokens: 1,
            reasoning_tokens: 4,
            ..Default::default()
        }
        .normalized();
        assert_eq!(
            (u.input_tokens, u.output_tokens, u.total_tokens),
            (10, 4, 14)
        );
    }

    #[test]
    fn kind_names_round_trip() {
        for k in SpanKind::ALL {
            assert_eq!(SpanKind::parse(k.as_str()), Some(k));
            let json = serde_json::to_string(&k).unwrap();
            assert_eq!(json, format!("\"{}\"", k.as_str()));
        }
        assert_eq!(SpanKind::parse("LLM"), Some(SpanKind::Llm));
        assert_eq!(SpanKind::parse("nope"), None);
    }

    #[test]
    fn large_payload_is_truncated_on_a_char_boundary() {
        let text = "é".repeat(MAX_PAYLOAD_BYTES);
        let p = Payload::from_text(&text, None);
        assert!(p.truncated);
        assert_eq!(p.original_bytes, Some(text.len() as u64));
        assert!(p.as_text().len() <= MAX_PAYLOAD_BYTES);
    }

    #[test]
    fn json_text_payload_is_structured() {
        let p = Payload::from_text(r#"{"city":"Paris"}"#, None);
        assert_eq!(p.value["city"], "Paris");
        let p = Payload::from_text("plain words", Some("text/plain"));
        assert_eq!(p.value, Value::String("plain words".into()));
        let p = Payload::from_text("\"quoted \\\"text\\\"\"", None);
        assert_eq!(p.value, Value::String("quoted \"text\"".into()));
        let p = Payload::from_text("\"kept\"", Some("text/plain"));
        assert_eq!(p.value, Value::String("\"kept\"".into()));
    }
}
