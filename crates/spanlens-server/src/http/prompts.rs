//! `/api/v1/prompts`: the prompt templates and versions used in the most recent traces of a
//! range that hold one, with the figures of each version (`spanlens_core::prompts`). Built on
//! `TraceReader` and `ScoreStore` alone, so every store backend answers it the same way.

use super::error::{internal, ApiError};
use super::params::Params;
use super::stored::TreeCost;
use crate::state::AppState;
use axum::extract::{RawQuery, State};
use axum::Json;
use futures_util::StreamExt;
use spanlens_api::{PromptTemplateRow, PromptsAnswer};
use spanlens_core::evals::Score;
use spanlens_core::prompts::PromptStats;
use spanlens_core::span::PromptTemplate;
use spanlens_core::{Span, SpanId, Status, Timestamp, TraceId};
use spanlens_store::{ListQuery, ScoreQuery, TraceDetailJson, TraceFilter};

/// Most traces one answer reads (the most recent of the range that hold a prompt).
pub(super) const PROMPT_TRACE_CAP: u32 = 1000;

/// Traces read at once.
const READS_IN_FLIGHT: usize = 4;

/// Default look-back when `from` is not given.
const DEFAULT_RANGE_NS: u64 = 7 * 24 * 3_600 * 1_000_000_000;

/// Most scores read per trace.
const SCORES_PER_TRACE: usize = 1000;

/// The fields of a stored span the figures read; payloads and messages are skipped unbuilt.
#[derive(serde::Deserialize)]
struct PromptSource {
    span_id: SpanId,
    name: String,
    start_time: Timestamp,
    #[serde(default)]
    end_time: Option<Timestamp>,
    #[serde(default)]
    status: Status,
    #[serde(default)]
    duplicate_of: Option<SpanId>,
    #[serde(default)]
    cost: Option<TreeCost>,
    #[serde(default)]
    unpriced_reason: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    prompt: Option<SourcePrompt>,
}

#[derive(serde::Deserialize)]
struct SourcePrompt {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    version: Option<String>,
}

impl PromptSource {
    fn into_span(self, trace_id: TraceId) -> Span {
        Span {
            trace_id,
            span_id: self.span_id,
            name: self.name,
            start_time: self.start_time,
            end_time: self.end_time,
            status: self.status,
            duplicate_of: self.duplicate_of,
            cost: self.cost.map(TreeCost::into_cost),
            unpriced_reason: self.unpriced_reason.map(|_| String::new()),
            prompt: self.prompt.map(|p| PromptTemplate {
                name: p.name,
                version: p.version,
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

/// The spans of a stored trace that used a prompt, and how many could not be read.
fn prompt_spans(detail: &TraceDetailJson) -> (Vec<Span>, u64) {
    let tid = detail.summary.trace_id;
    let mut unreadable = detail.unreadable.len() as u64;
    let mut spans = Vec::new();
    for raw in &detail.spans {
        match serde_json::from_str::<PromptSource>(raw) {
            Ok(src) if src.prompt.is_some() => spans.push(src.into_span(tid)),
            Ok(_) => {}
            Err(_) => unreadable += 1,
        }
    }
    (spans, unreadable)
}

/// The templates and versions used in `[from, to)` (default: the 7 days before now) in the
/// most recent traces holding a prompt (at most `limit`, default and most
/// [`PROMPT_TRACE_CAP`]); the answer says how many matched and how many were read.
pub(super) async fn list_prompts(
    State(st): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<Json<PromptsAnswer>, ApiError> {
    let p = Params::parse(q)?;
    let (from, to, cap) = p.range_and_cap(DEFAULT_RANGE_NS, PROMPT_TRACE_CAP)?;
    let project = p.project();
    let query = ListQuery {
        filter: TraceFilter {
            from: Some(from),
            to: Some(to),
            has_prompt: true,
            ..Default::default()
        },
        // Newest first (the default sort), one page of the cap.
        limit: cap,
        ..ListQuery::new(project.clone())
    };
    let matched = st.store.trace_outcomes(&query).await?.traces;
    let page = st.store.list_traces(&query).await?;
    let store = st.store.clone();
    let reader = project.clone();
    let read: Vec<(Vec<Span>, Vec<Score>, u64)> = futures_util::stream::iter(page.items)
        .map(|t| {
            let (store, project) = (store.clone(), reader.clone());
            async move {
                let Some(detail) = store.get_trace_json(&project, t.trace_id).await? else {
                    // Deleted since it was listed.
                    return Ok::<_, ApiError>(None);
                };
                let scores = store
                    .list_scores(&ScoreQuery {
                        project: project.clone(),
                        trace_id: Some(t.trace_id),
                        limit: Some(SCORES_PER_TRACE),
                        ..Default::default()
                    })
                    .await?;
                let (spans, unreadable) =
                    tokio::task::spawn_blocking(move || prompt_spans(&detail))
                        .await
                        .map_err(internal)?;
                Ok(Some((spans, scores, unreadable)))
            }
        })
        .buffered(READS_IN_FLIGHT)
        .filter_map(|r| async move { r.transpose() })
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let used = read.len() as u64;
    let answer = tokio::task::spawn_blocking(move || {
        let mut stats = PromptStats::new();
        let mut unreadable = 0;
        for (spans, scores, u) in &read {
            stats.add_trace(spans, scores);
            unreadable += u;
        }
        PromptsAnswer {
            project,
            from,
            to,
            matched_traces: matched,
            used_traces: used,
            trace_cap: u64::from(cap),
            templates: stats
                .finish()
                .into_iter()
                .map(PromptTemplateRow::from)
                .collect(),
            unreadable_span_count: unreadable,
        }
    })
    .await
    .map_err(internal)?;
    Ok(Json(answer))
}
