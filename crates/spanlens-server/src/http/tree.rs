//! `/api/v1/traces/{id}/tree`: a trace's shape without payloads, for the waterfall.

use super::error::{bad, internal, ApiError};
use super::params::Params;
use super::rows::trace_id;
use super::stored::{readable_spans, TreeSource};
use super::tree_columns::TreeColumns;
use crate::state::AppState;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use spanlens_api::{TraceRow, TreeAnswer, TreeNode, TreeSummary};
use spanlens_core::analysis::SpanTiming;
use spanlens_core::{analyze, Span, Status};
use std::collections::HashMap;
use std::time::Instant;

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
    let columns = match p.get(&["format"]) {
        None | Some("rows") => false,
        Some("columns") => true,
        Some(other) => return Err(bad("format", other, "expected `rows` or `columns`")),
    };
    let began = Instant::now();
    let detail = st
        .store
        .get_trace_json(&project, tid)
        .await?
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no trace {tid}")))?;
    let read_ms = began.elapsed().as_secs_f64() * 1e3;
    // Parsing the spans is CPU work: off the async workers.
    let (body, build_ms, encode_ms, parse_ms, analyze_ms) =
        tokio::task::spawn_blocking(move || -> Result<(String, f64, f64, f64, f64), ApiError> {
            let began = Instant::now();
            let start = detail.summary.start_time.0;
            let (readable, mut unreadable) = readable_spans(&detail);
            unreadable.extend(detail.unreadable.iter().cloned());
            let (sources, spans): (Vec<TreeSource>, Vec<Span>) = readable
                .into_iter()
                .map(|(_, src, span)| (src, span))
                .unzip();
            let parsed_ms = began.elapsed().as_secs_f64() * 1e3;
            let analysis = analyze(&spans);
            let analyzed_ms = began.elapsed().as_secs_f64() * 1e3;
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
            let analysis = TreeSummary {
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
            };
            let trace = TraceRow::from(&detail.summary);
            let built = began.elapsed().as_secs_f64() * 1e3;
            let body = if columns {
                serde_json::to_string(&TreeColumns::new(trace, analysis, unreadable, &nodes))
            } else {
                serde_json::to_string(&TreeAnswer {
                    trace,
                    spans: nodes,
                    analysis,
                    unreadable_spans: unreadable,
                })
            }
            .map_err(internal)?;
            Ok((
                body,
                built,
                began.elapsed().as_secs_f64() * 1e3 - built,
                parsed_ms,
                analyzed_ms - parsed_ms,
            ))
        })
        .await
        .map_err(internal)??;
    // Where the time went, for the browser's resource timing (and anyone measuring).
    let timing = format!(
        "read;dur={read_ms:.1}, parse;dur={parse_ms:.1}, analyze;dur={analyze_ms:.1}, build;dur={build_ms:.1}, encode;dur={encode_ms:.1}"
    );
    Ok((
        [
            (header::CONTENT_TYPE, "application/json".to_string()),
            (header::HeaderName::from_static("server-timing"), timing),
        ],
        body,
    )
        .into_response())
}
