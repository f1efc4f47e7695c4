//! `/api/v1/traces/{id}/graph` and `/api/v1/graph`: the agent graph of one trace, and of the
//! traces of one workflow in a time range, laid out for drawing.

use serde::{Deserialize, Serialize};
use spanlens_core::graph::{Edge, Graph, Layout, Node, NodeKind, Stats};
use spanlens_core::{SpanId, Timestamp, TraceId};
use spanlens_store::UnreadableSpan;

/// Figures of a node or an edge, as the API shows them (cost in USD and exact nano-USD).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GraphFigures {
    /// Spans.
    pub calls: u64,
    /// Spans that failed.
    pub errors: u64,
    /// Summed durations, milliseconds.
    pub duration_ms: f64,
    /// Summed cost in USD (for display).
    pub cost_usd: f64,
    /// Summed cost, exact, in nano-USD.
    pub cost_nano_usd: i64,
    /// Model calls the catalog could not price: when above 0 the cost is a lower bound.
    pub unpriced_span_count: u64,
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
}

impl From<&Stats> for GraphFigures {
    fn from(s: &Stats) -> GraphFigures {
        GraphFigures {
            calls: s.calls,
            errors: s.errors,
            duration_ms: s.duration_ns as f64 / 1e6,
            cost_usd: s.cost.as_usd_f64(),
            cost_nano_usd: s.cost.0,
            unpriced_span_count: s.unpriced,
            input_tokens: s.input_tokens,
            output_tokens: s.output_tokens,
        }
    }
}

/// One node with its box in the drawing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GraphNode {
    /// `kind:label`, the same across traces.
    pub id: String,
    /// `pipeline`, `agent`, `tool`, `model` or `handoff`.
    pub kind: NodeKind,
    /// Name as shown (`provider/model` for a model).
    pub label: String,
    /// Fewest callers above it (its column).
    pub depth: u32,
    /// Traces it appears in.
    pub traces: u64,
    /// Its own spans (cost and tokens also of the plain spans under it that no other node owns).
    #[serde(flatten)]
    pub figures: GraphFigures,
    /// Its spans (a trace's graph only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub span_ids: Vec<SpanId>,
    /// Left edge of its box, px.
    pub x: f64,
    /// Top edge of its box, px.
    pub y: f64,
    /// Box width, px.
    pub width: f64,
    /// Box height, px.
    pub height: f64,
}

/// Calls from one node to another.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GraphEdge {
    /// Caller's node id.
    pub from: String,
    /// Callee's node id.
    pub to: String,
    /// An agent handing off to another.
    pub handoff: bool,
    /// Traces it appears in.
    pub traces: u64,
    /// The callee spans (cost and tokens of everything under them too).
    #[serde(flatten)]
    pub figures: GraphFigures,
    /// The callee spans (a trace's graph only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub span_ids: Vec<SpanId>,
}

/// A graph laid out: nodes with their boxes, edges, the drawing's size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GraphView {
    /// Drawing width, px.
    pub width: f64,
    /// Drawing height, px.
    pub height: f64,
    /// Nodes.
    pub nodes: Vec<GraphNode>,
    /// Edges.
    pub edges: Vec<GraphEdge>,
}

impl GraphView {
    /// The view of a graph and its layout (`layout.boxes[i]` is `graph.nodes[i]`'s).
    pub fn new(graph: Graph, layout: &Layout) -> GraphView {
        let nodes = graph
            .nodes
            .into_iter()
            .enumerate()
            .map(|(i, n)| {
                let b = layout.boxes.get(i).copied().unwrap_or_default();
                let Node {
                    id,
                    kind,
                    label,
                    depth,
                    traces,
                    stats,
                    span_ids,
                } = n;
                GraphNode {
                    id,
                    kind,
                    label,
                    depth,
                    traces,
                    figures: GraphFigures::from(&stats),
                    span_ids,
                    x: b.x,
                    y: b.y,
                    width: b.width,
                    height: b.height,
                }
            })
            .collect();
        let edges = graph
            .edges
            .into_iter()
            .map(|e: Edge| GraphEdge {
                figures: GraphFigures::from(&e.stats),
                from: e.from,
                to: e.to,
                handoff: e.handoff,
                traces: e.traces,
                span_ids: e.span_ids,
            })
            .collect();
        GraphView {
            width: layout.width,
            height: layout.height,
            nodes,
            edges,
        }
    }
}

/// `GET /api/v1/traces/{id}/graph`: one trace's graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceGraphAnswer {
    /// Project.
    pub project: String,
    /// The trace.
    pub trace_id: TraceId,
    /// The trace's name.
    pub name: String,
    /// The graph.
    #[serde(flatten)]
    pub graph: GraphView,
    /// Stored spans that could not be read and are not in the graph.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unreadable_spans: Vec<UnreadableSpan>,
}

/// `GET /api/v1/graph`: the graph summed over the most recent traces of a workflow in a range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowGraphAnswer {
    /// Project.
    pub project: String,
    /// The workflow (trace name); `null` for every trace of the range.
    pub name: Option<String>,
    /// Start of the range (traces that started at or after it).
    pub from: Timestamp,
    /// End of the range (traces that started before it).
    pub to: Timestamp,
    /// Traces matching the name and range.
    pub matched_traces: u64,
    /// Traces read into the graph: the most recent, at most `trace_cap`.
    pub used_traces: u64,
    /// Most traces one answer reads.
    pub trace_cap: u64,
    /// The graph.
    #[serde(flatten)]
    pub graph: GraphView,
    /// Stored spans of the traces read that could not be read and are not in the graph.
    pub unreadable_span_count: u64,
}
