//! `/api/v1/traces/{id}/graph` and `/api/v1/graph`: the agent graph (`spanlens_core::graph`)
//! of one trace, and summed over a workflow's most recent traces in a range. Built on the
//! `TraceReader` trait alone, so every store backend answers it the same way.

use super::error::{internal, ApiError};
use super::params::Params;
use super::rows::trace_id;
use super::stored::TreeCost;
use crate::state::AppState;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::Json;
use futures_util::StreamExt;
use spanlens_api::{GraphView, TraceGraphAnswer, WorkflowGraphAnswer};
use spanlens_core::graph::{layout, merge, trace_graph, Graph};
use spanlens_core::{Attributes, Span, SpanId, SpanKind, Status, Timestamp, ToolInfo, Usage};
use spanlens_store::{ListQuery, TraceDetailJson, TraceFilter, UnreadableSpan};

/// Most traces one workflow graph reads (the most recent of the range).
pub(super) const GRAPH_TRACE_CAP: u32 = 1000;

/// Traces read at once while building a workflow graph.
const READS_IN_FLIGHT: usize = 4;

/// Default look-back of the workflow graph when `from` is not given.
const GRAPH_DEFAULT_NS: u64 = 7 * 24 * 3_600 * 1_000_000_000;

/// The fields of a stored span the graph reads; payloads and messages are skipped unbuilt.
#[derive(serde::Deserialize)]
struct GraphSource {
    span_id: SpanId,
    #[serde(default)]
    parent_span_id: Option<SpanId>,
    name: String,
    #[serde(default)]
    kind: SpanKind,
    start_time: Timestamp,
    #[serde(default)]
    end_time: Option<Timestamp>,
    #[serde(default)]
    status: Status,
    #[serde(default)]
    agent_name: Option<String>,
    #[serde(default)]
    provider: Option<String>,
    #[serde(default)]
    request_model: Option<String>,
    #[serde(default)]
    response_model: Option<String>,
    #[serde(default)]
    duplicate_of: Option<SpanId>,
    #[serde(default)]
    usage: Option<SourceUsage>,
    #[serde(default)]
    cost: Option<TreeCost>,
    #[serde(default)]
    unpriced_reason: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    tool: Option<SourceTool>,
    #[serde(default)]
    attributes: SourceAttributes,
}

#[derive(serde::Deserialize)]
struct SourceUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
}

#[derive(serde::Deserialize)]
struct SourceTool {
    #[serde(default)]
    name: Option<String>,
}

/// The attributes naming a handoff's target (`spanlens_core::graph::handoff_target`).
#[derive(serde::Deserialize, Default)]
struct SourceAttributes {
    #[serde(rename = "handoff.to_agent", default)]
    to_agent: Option<serde_json::Value>,
    #[serde(rename = "handoff.to", default)]
    to: Option<serde_json::Value>,
    #[serde(rename = "gen_ai.handoff.target", default)]
    target: Option<serde_json::Value>,
}

impl GraphSource {
    fn into_span(self) -> Span {
        let mut attributes = Attributes::new();
        for (k, v) in [
            ("handoff.to_agent", self.attributes.to_agent),
            ("handoff.to", self.attributes.to),
            ("gen_ai.handoff.target", self.attributes.target),
        ] {
            if let Some(v) = v {
                attributes.insert(k.to_string(), v);
            }
        }
        Span {
            span_id: self.span_id,
            parent_span_id: self.parent_span_id,
            name: self.name,
            kind: self.kind,
            start_time: self.start_time,
            end_time: self.end_time,
            status: self.status,
            agent_name: self.agent_name,
            provider: self.provider,
            request_model: self.request_model,
            response_model: self.response_model,
            duplicate_of: self.duplicate_of,
            usage: self.usage.map(|u| Usage {
                input_tokens: u.input_tokens,
                output_tokens: u.output_tokens,
                ..Default::default()
            }),
            cost: self.cost.map(TreeCost::into_cost),
            unpriced_reason: self.unpriced_reason.map(|_| String::new()),
            tool: self.tool.map(|t| ToolInfo {
                name: t.name,
                ..Default::default()
            }),
            attributes,
            ..Default::default()
        }
    }
}

/// A stored trace's graph, and the spans that could not be read for it.
fn graph_of(detail: &TraceDetailJson) -> (Graph, Vec<UnreadableSpan>) {
    let mut unreadable = detail.unreadable.clone();
    let trace = detail.summary.trace_id.to_hex();
    let spans: Vec<Span> = detail
        .spans
        .iter()
        .filter_map(|raw| match serde_json::from_str::<GraphSource>(raw) {
            Ok(src) => Some(src.into_span()),
            Err(e) => {
                unreadable.push(UnreadableSpan {
                    span_id: None,
                    trace_id: trace.clone(),
                    reason: format!("stored span is not canonical JSON: {e}"),
                });
                None
            }
        })
        .collect();
    (trace_graph(&spans), unreadable)
}

/// One trace's agent graph, laid out; each node and edge lists its spans, so the waterfall can
/// be filtered to them.
pub(super) async fn trace_graph_handler(
    State(st): State<AppState>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<TraceGraphAnswer>, ApiError> {
    let p = Params::parse(q)?;
    let (project, tid) = (p.project(), trace_id(&id)?);
    let detail = st
        .store
        .get_trace_json(&project, tid)
        .await?
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no trace {tid}")))?;
    // Parsing the spans is CPU work: off the async workers.
    let answer = tokio::task::spawn_blocking(move || {
        let (graph, unreadable_spans) = graph_of(&detail);
        let laid = layout(&graph);
        TraceGraphAnswer {
            project,
            trace_id: tid,
            name: detail.summary.name.clone(),
            graph: GraphView::new(graph, &laid),
            unreadable_spans,
        }
    })
    .await
    .map_err(internal)?;
    Ok(Json(answer))
}

/// The agent graph summed over the most recent traces (at most `limit`, default and most
/// [`GRAPH_TRACE_CAP`]) named `name` (every trace without it) that started in `[from, to)`
/// (default: the 7 days before now). The answer says how many matched and how many were read.
pub(super) async fn workflow_graph(
    State(st): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<Json<WorkflowGraphAnswer>, ApiError> {
    let p = Params::parse(q)?;
    let (from, to, cap) = p.range_and_cap(GRAPH_DEFAULT_NS, GRAPH_TRACE_CAP)?;
    let name = p.string(&["name"]);
    let project = p.project();
    let query = ListQuery {
        filter: TraceFilter {
            from: Some(from),
            to: Some(to),
            name: name.clone(),
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
    let read: Vec<(Graph, u64)> = futures_util::stream::iter(page.items)
        .map(|t| {
            let (store, project) = (store.clone(), reader.clone());
            async move {
                let Some(detail) = store.get_trace_json(&project, t.trace_id).await? else {
                    // Deleted since it was listed.
                    return Ok::<_, ApiError>(None);
                };
                let built = tokio::task::spawn_blocking(move || {
                    let (g, unreadable) = graph_of(&detail);
                    (g, unreadable.len() as u64)
                })
                .await
                .map_err(internal)?;
                Ok(Some(built))
            }
        })
        .buffered(READS_IN_FLIGHT)
        .filter_map(|r| async move { r.transpose() })
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let answer = tokio::task::spawn_blocking(move || {
        let unreadable: u64 = read.iter().map(|(_, u)| u).sum();
        let graph = merge(read.into_iter().map(|(g, _)| g));
        let laid = layout(&graph);
        WorkflowGraphAnswer {
            project,
            name,
            from,
            to,
            matched_traces: matched,
            used_traces: graph.traces,
            trace_cap: u64::from(cap),
            graph: GraphView::new(graph, &laid),
            unreadable_span_count: unreadable,
        }
    })
    .await
    .map_err(internal)?;
    Ok(Json(answer))
}
