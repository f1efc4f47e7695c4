//! `/api/v1/live`: the server-sent events of arriving spans.

use serde::{Deserialize, Serialize};
use spanlens_core::{Span, SpanKind, Status};

/// One arriving span as the live stream sends it (event `span`): small, so a busy server can
/// fan it out cheaply; the full span is one `GET /api/v1/traces/{id}` away. A client too slow
/// for the stream gets an event `lagged` whose data is the number of spans it missed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveSpan {
    /// Project.
    pub project: String,
    /// Trace id.
    pub trace_id: String,
    /// Span id.
    pub span_id: String,
    /// Parent span id.
    pub parent_span_id: Option<String>,
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: SpanKind,
    /// Start, RFC 3339.
    pub start_time: String,
    /// Duration in milliseconds, when ended.
    pub duration_ms: Option<f64>,
    /// `ok` / `error` / `unset`.
    pub status: Status,
    /// Model, for LLM spans.
    pub model: Option<String>,
    /// Input + output tokens.
    pub tokens: Option<u64>,
    /// Cost in USD.
    pub cost_usd: Option<f64>,
    /// A model call the catalog could not price (no cost, and not $0 either).
    pub unpriced: bool,
    /// Session, when the span names one (a deletion of the session reaches its rows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// User, when the span names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
}

impl LiveSpan {
    /// The live-stream event of a span stored in `project`.
    pub fn of(project: &str, s: &Span) -> LiveSpan {
        LiveSpan {
            project: project.to_string(),
            trace_id: s.trace_id.to_hex(),
            span_id: s.span_id.to_hex(),
            parent_span_id: s.parent_span_id.map(|p| p.to_hex()),
            name: s.name.clone(),
            kind: s.kind,
            start_time: s.start_time.to_rfc3339(),
            duration_ms: s.duration_ns().map(|d| d as f64 / 1e6),
            status: s.status,
            model: s.response_model.clone().or_else(|| s.request_model.clone()),
            tokens: s.usage.as_ref().map(|u| u.input_tokens + u.output_tokens),
            cost_usd: s.cost.as_ref().map(|c| c.amounts.total.as_usd_f64()),
            unpriced: s.unpriced_reason.is_some(),
            session_id: s.session_id.clone(),
            user_id: s.user_id.clone(),
        }
    }
}

/// Traces deleted (event `deleted` of the live stream): a viewer drops their spans.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveDeleted {
    /// Project.
    pub project: String,
    /// The deleted traces' ids (when one trace was deleted by id).
    pub trace_ids: Vec<String>,
    /// The session whose traces were deleted, if that was the ask.
    pub session_id: Option<String>,
    /// The user whose traces were deleted, if that was the ask.
    pub user_id: Option<String>,
}
