//! `/api/v1/traces/{id}/tree`: a trace's shape without payloads, for the waterfall.

use super::error::{internal, ApiError};
use super::params::Params;
use super::rows::trace_id;
use super::stored::{readable_spans, TreeSource};
use crate::state::AppState;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use spanlens_api::{TraceRow, TreeAnswer, TreeNode, TreeSummary};
use spanlens_core::analysis::SpanTiming;
use spanlens_core::{analyze, Span, Status};
use std::collections::HashMap;

/// One span of the `tree` view from its stored JSON and its timing in the analysis.
fn tree_node<'a>(s: TreeSource<'a>, trace_start: u64, timing: Option<&SpanTiming>) -> TreeNode<'a> {
    TreeNode {
        self_ms: timing.map(|t| t.self_ms),
        critical: timing.is_some_and(|t| t.critical),
        unclosed: s.end_time.is_none(),
        span_id: s.span_id,
        parent_span_id: s.parent_span_id,
        name: s.name,
        kind: s.kind,
        start_ms: s.start_time.0.saturating_sub(trace_start) as f64 / 1e6,
        duration_ms: s
            .end_time
            .map(|e| e.0.saturating_sub(s.start_time.0) as f64 / 1e6),
        model: s.response_model.or(s.request_model),
        input_tokens: s.usage.as_ref().map(|u| u.input_tokens),
        output_tokens: s.usage.as_ref().map(|u| u.output_tokens),
        cost_usd: s.cost.map(|c| c.total_usd.as_usd_f64()),
        unpriced: s.unpriced_reason.is_some(),
        error: s.status == Status::Error,
        error_message: (s.status == Status::Error)
            .then(|| error_summary(s.error_type.as_deref(), s.status_message.as_deref())),
        status: s.status,
        duplicate_of: s.duplicate_of,
    }
}

/// Characters of a failed span's error kept in the tree view (the span panel has all of it).
pub(super) const TREE_ERROR_CHARS: usize = 300;

/// `type: message` of a failed span, cut on a character boundary to [`TREE_ERROR_CHARS`].
pub(super) fn error_summary(error_type: Option<&str>, message: Option<&str>) -> String {
    let text = match (error_type, message) {
        (Some(t), Some(m)) => format!("{t}: {m}"),
        (Some(t), None) => t.to_string(),
        (None, Some(m)) => m.to_string(),
        (None, None) => "error".to_string(),
    };
    match text.char_indices().nth(TREE_ERROR_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// The trace's shape without payloads: a waterfall of 10,000 spans paints from this, and a
/// span's full record is fetched only when it is opened (`/spans/{span_id}`). Built from the
/// stored JSON with a parser that skips the payloads, which is most of each span's bytes.
pub(super) async fn trace_tree(
    State(st): State<AppState>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let p = Params::parse(q)?;
    let (project, tid) = (p.project(), trace_id(&id)?);
    let detail = st
        .store
        .get_trace_json(&project, tid)
        .await?
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no trace {tid}")))?;
    // Parsing the spans is CPU work: off the async workers.
    let body = tokio::task::spawn_blocking(move || -> Result<String, ApiError> {
        let start = detail.summary.start_time.0;
        let (readable, mut unreadable) = readable_spans(&detail);
        unreadable.extend(detail.unreadable.iter().cloned());
        let (sources, spans): (Vec<TreeSource>, Vec<Span>) = readable
            .into_iter()
            .map(|(_, src, span)| (src, span))
            .unzip();
        let analysis = analyze(&spans);
        let timings: HashMap<&str, &SpanTiming> = analysis
            .spans
            .iter()
            .map(|t| (t.span_id.as_str(), t))
            .collect();
        let nodes: Vec<TreeNode> = sources
            .into_iter()
            .map(|s| {
                let t = timings.get(&*s.span_id).copied();
                tree_node(s, start, t)
            })
            .collect();
        let answer = TreeAnswer {
            trace: TraceRow::from(&detail.summary),
            spans: nodes,
            analysis: TreeSummary {
                wall_ms: analysis.wall_ms,
                critical_path: analysis
                    .critical_path
                    .iter()
                    .map(|c| c.span_id.clone())
                    .collect(),
                critical_path_ms: analysis.critical_path_ms,
                coordination_overhead_ms: analysis.coordination_overhead_ms,
                parallelism_efficiency: analysis.parallelism_efficiency,
                parallel_groups: analysis.parallel_groups.len(),
                unclosed_span_ids: analysis.unclosed_span_ids.clone(),
                orphan_span_ids: analysis.orphan_span_ids.clone(),
                clock_skew_span_ids: analysis.clock_skew_span_ids.clone(),
            },
            unreadable_spans: unreadable,
        };
        serde_json::to_string(&answer).map_err(internal)
    })
    .await
    .map_err(internal)??;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}
