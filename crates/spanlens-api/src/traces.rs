//! `/api/v1/traces`: the list, one trace, and its waterfall tree.

use serde::{Deserialize, Serialize};
use spanlens_core::{Span, SpanId, SpanKind, Status, Timestamp, TraceId};
use spanlens_store::{Page, TraceSummary, UnreadableSpan};
use std::borrow::Cow;

/// One row of the trace list (`TraceRow` in openapi.json).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceRow {
    /// Trace id, hex.
    pub trace_id: TraceId,
    /// Project.
    pub project: String,
    /// The root span's name (or the earliest span's, before the root arrives).
    pub name: String,
    /// Start of the earliest span.
    pub start_time: Timestamp,
    /// End of the latest span.
    pub end_time: Timestamp,
    /// Wall time, milliseconds.
    pub duration_ms: f64,
    /// The trace's outcome (see the README: an error recovered from is not a failure).
    pub status: Status,
    /// Spans stored.
    pub span_count: u64,
    /// Spans that failed, recovered or not.
    pub error_count: u64,
    /// Input tokens of its model calls.
    pub input_tokens: u64,
    /// Output tokens of its model calls.
    pub output_tokens: u64,
    /// Total tokens.
    pub total_tokens: u64,
    /// Cost in USD (for display; sums use `total_cost_nano_usd`).
    pub total_cost_usd: f64,
    /// Cost, exact, in nano-USD.
    pub total_cost_nano_usd: i64,
    /// Model calls the catalog could not price: when above 0 the cost is a lower bound.
    pub unpriced_span_count: u64,
    /// End user.
    pub user_id: Option<String>,
    /// Session.
    pub session_id: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// The root span, once it arrived.
    pub root_span_id: Option<SpanId>,
    /// Service that produced the root span.
    pub service: Option<String>,
    /// With a full-text search (`q`): the first span holding the words, and a snippet of its
    /// text with the words marked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hit: Option<SearchHit>,
}

/// Where a trace of a full-text search holds the words.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchHit {
    /// The span.
    pub span_id: SpanId,
    /// Its name.
    pub span_name: String,
    /// A piece of its name and content around the first word found (on one line), with the
    /// byte ranges of the query's words in it.
    pub snippet: spanlens_core::content::Snippet,
}

impl From<&TraceSummary> for TraceRow {
    fn from(t: &TraceSummary) -> TraceRow {
        TraceRow {
            trace_id: t.trace_id,
            project: t.project.clone(),
            name: t.name.clone(),
            start_time: t.start_time,
            end_time: t.end_time,
            duration_ms: t.duration_ns as f64 / 1e6,
            status: t.status,
            span_count: t.span_count,
            error_count: t.error_count,
            input_tokens: t.input_tokens,
            output_tokens: t.output_tokens,
            total_tokens: t.total_tokens,
            total_cost_usd: t.total_cost.as_usd_f64(),
            total_cost_nano_usd: t.total_cost.0,
            unpriced_span_count: t.unpriced_span_count,
            user_id: t.user_id.clone(),
            session_id: t.session_id.clone(),
            tags: t.tags.clone(),
            root_span_id: t.root_span_id,
            service: t.service.clone(),
            hit: None,
        }
    }
}

/// `GET /api/v1/traces`: one page of the list; `next_cursor` asks for the next.
pub type TracePage = Page<TraceRow>;

/// `GET /api/v1/traces/{id}?analysis=false`: the summary and every canonical span. (With the
/// analysis, the answer also has `analysis`: `spanlens_core::TraceAnalysis`, which this type
/// ignores.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceDetail {
    /// The trace's row.
    pub trace: TraceRow,
    /// Its spans, in start order.
    pub spans: Vec<Span>,
    /// Stored spans left out because they cannot be read; absent when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unreadable_spans: Vec<UnreadableSpan>,
}

/// One span of the waterfall (`GET /api/v1/traces/{id}/tree`): its shape without payloads.
/// Borrows from the stored JSON it is read from, so a 10,000-span tree copies no names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TreeNode<'a> {
    /// Span id, hex.
    #[serde(borrow)]
    pub span_id: Cow<'a, str>,
    /// Parent span id, hex.
    #[serde(borrow)]
    pub parent_span_id: Option<Cow<'a, str>>,
    /// Name.
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    /// Kind.
    pub kind: SpanKind,
    /// Status.
    pub status: Status,
    /// Start, milliseconds after the trace's start.
    pub start_ms: f64,
    /// Duration, milliseconds, when ended.
    pub duration_ms: Option<f64>,
    /// The model called (response model, else request model).
    #[serde(borrow)]
    pub model: Option<Cow<'a, str>>,
    /// Input tokens.
    pub input_tokens: Option<u64>,
    /// Output tokens.
    pub output_tokens: Option<u64>,
    /// Cost in USD.
    pub cost_usd: Option<f64>,
    /// A model call the catalog could not price: no cost, and not $0 either.
    pub unpriced: bool,
    /// Status is error.
    pub error: bool,
    /// A failed span's error, `type: message`, cut to a few hundred characters (a row's
    /// tooltip and the trace header's "first error" read it without opening the span).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// Duration not covered by any child, ms (an unclosed span runs to the trace's latest time).
    pub self_ms: Option<f64>,
    /// On the critical path.
    pub critical: bool,
    /// The span has no end time yet.
    pub unclosed: bool,
    /// The span recorded the same provider call as this one, which is counted in its place.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub duplicate_of: Option<Cow<'a, str>>,
}

/// What the tree view shows of the trace analysis (`TreeAnalysis` in openapi.json).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TreeSummary {
    /// Wall time, ms.
    pub wall_ms: f64,
    /// Span ids on the critical path, from the root down.
    pub critical_path: Vec<String>,
    /// Length of the critical path, ms.
    pub critical_path_ms: f64,
    /// Time parents spent outside their children, ms.
    pub coordination_overhead_ms: f64,
    /// How well parallel work overlapped (1 is perfect), when any ran in parallel.
    pub parallelism_efficiency: Option<f64>,
    /// Groups of children that ran in parallel.
    pub parallel_groups: usize,
    /// Spans without an end time.
    pub unclosed_span_ids: Vec<String>,
    /// Spans whose parent is not in the trace.
    pub orphan_span_ids: Vec<String>,
    /// Spans that start before their parent or end after it.
    pub clock_skew_span_ids: Vec<String>,
}

/// `GET /api/v1/traces/{id}/tree`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TreeAnswer<'a> {
    /// The trace's row.
    pub trace: TraceRow,
    /// Every readable span, in start order.
    #[serde(borrow)]
    pub spans: Vec<TreeNode<'a>>,
    /// The analysis summary.
    pub analysis: TreeSummary,
    /// Stored spans left out because they cannot be read; absent when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unreadable_spans: Vec<UnreadableSpan>,
}
