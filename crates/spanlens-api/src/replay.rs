//! Replaying a model call: the endpoints the server may call, the draft an editor starts from,
//! the request that sends an edited call again, and what it answers beside the original.

use serde::{Deserialize, Serialize};
use spanlens_core::Usage;

/// One endpoint a replay may be sent to, as the server's `--replay` file names it. Its key
/// stays on the server: nothing here holds or hints at it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayEndpoint {
    /// Its name, what a replay request picks.
    pub name: String,
    /// Its API: `openai` (chat completions) or `anthropic` (Messages).
    pub kind: String,
    /// The models a replay may ask it for.
    pub models: Vec<String>,
}

/// `GET /api/v1/replay/endpoints`: where replays may go (empty: replay is not configured).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayEndpoints {
    /// The configured endpoints, in the file's order.
    pub endpoints: Vec<ReplayEndpoint>,
}

/// One message of a replayed conversation (text only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// Its text.
    pub content: String,
}

/// Sampling parameters sent with a replay; an absent one is left to the provider's default
/// (Anthropic requires `max_tokens`: 1024 when absent).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayParameters {
    /// 0 to 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Most output tokens, 1 to 1,000,000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    /// 0 to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Stop sequences (at most 4).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
    /// OpenAI only: -2 to 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f64>,
    /// OpenAI only: -2 to 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f64>,
    /// OpenAI only: a seed for repeatable sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
}

/// A model call's figures: the original span's, or the replay's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReplayFigures {
    /// The model that answered (else the one asked for).
    pub model: Option<String>,
    /// The answer's text.
    pub output: Option<String>,
    /// Token counts.
    pub usage: Option<Usage>,
    /// Cost in USD (`None`: nothing to price, or a model the catalog does not price).
    pub cost_usd: Option<f64>,
    /// Why a call with usage has no cost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unpriced_reason: Option<String>,
    /// Wall time of the call, milliseconds.
    pub latency_ms: Option<f64>,
    /// Why the model stopped.
    #[serde(default)]
    pub finish_reasons: Vec<String>,
}

/// `GET /api/v1/traces/{trace_id}/spans/{span_id}/replay`: an LLM span as an editor's
/// starting point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayDraft {
    /// The original trace.
    pub trace_id: String,
    /// The original span.
    pub span_id: String,
    /// Its provider (`openai`, `anthropic`, …).
    pub provider: Option<String>,
    /// The model it asked for.
    pub model: Option<String>,
    /// Its input messages, as text.
    pub messages: Vec<ReplayMessage>,
    /// Its sampling parameters (`gen_ai.request.*`).
    pub parameters: ReplayParameters,
    /// What the draft could not carry over (tool calls, tool results, unknown parameters).
    pub notes: Vec<String>,
    /// The original call's figures.
    pub original: ReplayFigures,
}

/// The body of `POST /api/v1/replay`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// The original trace (32 hex digits).
    pub trace_id: String,
    /// The original LLM span (16 hex digits).
    pub span_id: String,
    /// A configured endpoint's name.
    pub endpoint: String,
    /// One of its models.
    pub model: String,
    /// The conversation sent (1 to 500 messages).
    pub messages: Vec<ReplayMessage>,
    /// Sampling parameters.
    #[serde(default)]
    pub parameters: ReplayParameters,
}

/// `POST /api/v1/replay`: the replay, stored as a new trace, beside the original.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayAnswer {
    /// The new trace.
    pub trace_id: String,
    /// Its one span.
    pub span_id: String,
    /// The endpoint called.
    pub endpoint: String,
    /// The replay's figures.
    #[serde(flatten)]
    pub replay: ReplayFigures,
    /// The original call's figures.
    pub original: ReplayFigures,
}
