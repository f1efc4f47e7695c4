//! The agent graph: who calls whom in a trace, and the same shape summed over many traces.
//!
//! Nodes are the parts of an agent system a reader names: agents (by agent name), tools (by
//! tool name; retrievers, rerankers, guardrails and evaluators count as tools), models (by
//! provider and model), pipelines (the trace's root and any `pipeline` span, by name) and
//! handoffs whose target cannot be read. An edge goes from a span's *caller*, the nearest
//! ancestor that is a node, to the node the span is; plain spans are transparent, so a helper
//! function between an agent and its model call does not hide the call. A handoff span whose
//! target agent is named becomes an agent → agent edge.
//!
//! What is summed, so that figures add up:
//! - a node's `calls`, `errors` and `duration` are those of its own spans; its cost, tokens and
//!   unpriced calls are those of its spans *and* of the plain spans it owns (the node sums of a
//!   trace add up to the trace's cost);
//! - an edge's `calls`, `errors` and `duration` are those of the callee spans; its cost, tokens
//!   and unpriced calls are the callee spans' whole subtrees (what the call cost, all included).
//!
//! A span that recorded the same provider call as another (`duplicate_of`) is transparent and
//! adds no cost or tokens, so a call recorded twice counts once.

pub mod layout;

pub use layout::{layout, Layout, NodeBox};

use crate::{NanoUsd, Span, SpanId, SpanKind, Status};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// What a node stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    /// A workflow: the trace's root, or a `pipeline` span.
    Pipeline,
    /// An agent, by agent name.
    Agent,
    /// A tool (or retriever, reranker, guardrail, evaluator), by tool name.
    Tool,
    /// A model, by provider and model.
    Model,
    /// A handoff whose target agent is not named.
    Handoff,
}

impl NodeKind {
    /// The lowercase name used in ids and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeKind::Pipeline => "pipeline",
            NodeKind::Agent => "agent",
            NodeKind::Tool => "tool",
            NodeKind::Model => "model",
            NodeKind::Handoff => "handoff",
        }
    }
}

/// Sums kept per node and per edge (see the module doc for which spans each covers).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Spans.
    pub calls: u64,
    /// Spans with status `error`.
    pub errors: u64,
    /// Summed durations, nanoseconds (an open span counts 0).
    pub duration_ns: u64,
    /// Summed cost.
    pub cost: NanoUsd,
    /// Model calls the catalog could not price (their cost is missing from `cost`).
    pub unpriced: u64,
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
}

impl Stats {
    fn add(&mut self, o: &Stats) {
        self.calls = self.calls.saturating_add(o.calls);
        self.errors = self.errors.saturating_add(o.errors);
        self.duration_ns = self.duration_ns.saturating_add(o.duration_ns);
        self.cost += o.cost;
        self.unpriced = self.unpriced.saturating_add(o.unpriced);
        self.input_tokens = self.input_tokens.saturating_add(o.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(o.output_tokens);
    }

    /// A span's call: counted once, its error and its duration.
    fn call(s: &Span) -> Stats {
        Stats {
            calls: 1,
            errors: u64::from(s.status == Status::Error),
            duration_ns: s.duration_ns().unwrap_or(0),
            ..Stats::default()
        }
    }

    /// What a span itself spent: cost, tokens, whether it lacks a price.
    fn spent(s: &Span) -> Stats {
        if s.duplicate_of.is_some() {
            return Stats::default();
        }
        let usage = s.usage.as_ref();
        Stats {
            cost: s.cost.as_ref().map_or(NanoUsd::ZERO, |c| c.amounts.total),
            unpriced: u64::from(s.unpriced_reason.is_some()),
            input_tokens: usage.map_or(0, |u| u.input_tokens),
            output_tokens: usage.map_or(0, |u| u.output_tokens),
            ..Stats::default()
        }
    }

    fn with_spent(mut self, spent: &Stats) -> Stats {
        self.cost += spent.cost;
        self.unpriced = self.unpriced.saturating_add(spent.unpriced);
        self.input_tokens = self.input_tokens.saturating_add(spent.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(spent.output_tokens);
        self
    }
}

/// One agent, tool, model, pipeline or unresolved handoff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// `kind:label`, the node's identity across traces.
    pub id: String,
    /// What it stands for.
    pub kind: NodeKind,
    /// Its name as shown (`provider/model` for a model).
    pub label: String,
    /// Fewest callers above it in any trace (0 for a root): its column in a layout.
    pub depth: u32,
    /// Traces it appears in.
    pub traces: u64,
    /// Its own spans, plus the cost and tokens of the plain spans it owns.
    pub stats: Stats,
    /// Its spans, in one trace (empty in a merged graph).
    pub span_ids: Vec<SpanId>,
}

/// Calls from one node to another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Edge {
    /// Caller's node id.
    pub from: String,
    /// Callee's node id.
    pub to: String,
    /// True for an agent handing off to another agent.
    pub handoff: bool,
    /// Traces it appears in.
    pub traces: u64,
    /// The callee spans; cost and tokens of their whole subtrees.
    pub stats: Stats,
    /// The callee spans, in one trace (empty in a merged graph).
    pub span_ids: Vec<SpanId>,
}

/// The graph of one trace or of many.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Graph {
    /// Traces summed.
    pub traces: u64,
    /// Nodes, in order of first appearance.
    pub nodes: Vec<Node>,
    /// Edges, in order of first appearance.
    pub edges: Vec<Edge>,
}

/// Attributes naming a handoff's target agent, in the order they are read.
const HANDOFF_TARGET_KEYS: [&str; 3] = ["handoff.to_agent", "handoff.to", "gen_ai.handoff.target"];

/// The agent a handoff span hands to: an attribute, else what follows an arrow in its name
/// (`handoff: A → B`, `handoff -> B`).
pub fn handoff_target(s: &Span) -> Option<String> {
    for key in HANDOFF_TARGET_KEYS {
        if let Some(t) = s.attributes.get(key).and_then(|v| v.as_str()) {
            let t = t.trim();
            if !t.is_empty() {
                return Some(t.to_string());
            }
        }
    }
    let after = s
        .name
        .rsplit_once('→')
        .or_else(|| s.name.rsplit_once("->"))?
        .1
        .trim();
    (!after.is_empty() && after != "?").then(|| after.to_string())
}

/// What node a span is, if any; `root` says whether it has no parent in the trace.
fn identity(s: &Span, root: bool) -> Option<(NodeKind, String)> {
    if s.duplicate_of.is_some() {
        return None;
    }
    let nonempty = |v: Option<&String>| v.filter(|x| !x.is_empty()).cloned();
    match s.kind {
        SpanKind::Agent => Some((
            NodeKind::Agent,
            nonempty(s.agent_name.as_ref()).unwrap_or_else(|| s.name.clone()),
        )),
        SpanKind::Tool
        | SpanKind::Retriever
        | SpanKind::Reranker
        | SpanKind::Guardrail
        | SpanKind::Evaluator => Some((
            NodeKind::Tool,
            nonempty(s.tool.as_ref().and_then(|t| t.name.as_ref()))
                .unwrap_or_else(|| s.name.clone()),
        )),
        SpanKind::Llm | SpanKind::Embedding => {
            let model = nonempty(s.request_model.as_ref())
                .or_else(|| nonempty(s.response_model.as_ref()))
                .unwrap_or_else(|| s.name.clone());
            let label = match nonempty(s.provider.as_ref()) {
                Some(p) => format!("{p}/{model}"),
                None => model,
            };
            Some((NodeKind::Model, label))
        }
        SpanKind::Handoff => Some((NodeKind::Handoff, s.name.clone())),
        SpanKind::Pipeline => Some((NodeKind::Pipeline, s.name.clone())),
        SpanKind::Span => root.then(|| (NodeKind::Pipeline, s.name.clone())),
    }
}

/// Each span's parent as an index, with the parent chains made finite: a missing parent makes
/// a root, and a chain that comes back to a span on it is cut at that span (which becomes a
/// root), so every walk up ends.
fn parents(spans: &[&Span]) -> Vec<Option<usize>> {
    let at: HashMap<SpanId, usize> = spans
        .iter()
        .enumerate()
        .map(|(i, s)| (s.span_id, i))
        .collect();
    let mut parent: Vec<Option<usize>> = spans
        .iter()
        .enumerate()
        .map(|(i, s)| {
            s.parent_span_id
                .and_then(|p| at.get(&p).copied())
                .filter(|&p| p != i)
        })
        .collect();
    // 0 unseen, 1 on the current walk, 2 known to reach a root.
    let mut state = vec![0u8; spans.len()];
    let mut walk = Vec::new();
    for start in 0..spans.len() {
        let mut j = start;
        loop {
            match state[j] {
                2 => break,
                1 => {
                    parent[j] = None;
                    break;
                }
                _ => {}
            }
            state[j] = 1;
            walk.push(j);
            match parent[j] {
                Some(p) => j = p,
                None => break,
            }
        }
        for k in walk.drain(..) {
            state[k] = 2;
        }
    }
    parent
}

/// Builds nodes and edges as they are found.
#[derive(Default)]
struct Builder {
    graph: Graph,
    node_at: HashMap<String, usize>,
    edge_at: HashMap<(usize, usize, bool), usize>,
}

impl Builder {
    fn node(&mut self, kind: NodeKind, label: String, depth: u32) -> usize {
        let id = format!("{}:{label}", kind.as_str());
        if let Some(&n) = self.node_at.get(&id) {
            let node = &mut self.graph.nodes[n];
            node.depth = node.depth.min(depth);
            return n;
        }
        self.graph.nodes.push(Node {
            id: id.clone(),
            kind,
            label,
            depth,
            traces: 1,
            stats: Stats::default(),
            span_ids: Vec::new(),
        });
        self.node_at.insert(id, self.graph.nodes.len() - 1);
        self.graph.nodes.len() - 1
    }

    fn edge(&mut self, from: usize, to: usize, handoff: bool) -> usize {
        *self.edge_at.entry((from, to, handoff)).or_insert_with(|| {
            self.graph.edges.push(Edge {
                from: self.graph.nodes[from].id.clone(),
                to: self.graph.nodes[to].id.clone(),
                handoff,
                traces: 1,
                stats: Stats::default(),
                span_ids: Vec::new(),
            });
            self.graph.edges.len() - 1
        })
    }
}

/// The graph of one trace's spans. Spans sent twice with one id count once (the last copy, as
/// a store keeps a resend); a span whose parent is missing, or whose parent chain loops, is a
/// root; every root is a node (a plain one becomes a pipeline).
pub fn trace_graph(spans: &[Span]) -> Graph {
    // One copy per id, the last; ordered by start so the graph reads in time order.
    let mut last: HashMap<SpanId, usize> = HashMap::with_capacity(spans.len());
    for (i, s) in spans.iter().enumerate() {
        last.insert(s.span_id, i);
    }
    let mut kept: Vec<&Span> = spans
        .iter()
        .enumerate()
        .filter(|(i, s)| last.get(&s.span_id) == Some(i))
        .map(|(_, s)| s)
        .collect();
    kept.sort_by_key(|s| (s.start_time, s.span_id));
    let parent = parents(&kept);
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); kept.len()];
    let mut order: Vec<usize> = Vec::with_capacity(kept.len());
    for (i, p) in parent.iter().enumerate() {
        match p {
            Some(p) => children[*p].push(i),
            None => order.push(i),
        }
    }
    // Breadth first from the roots: a parent is always handled before its children.
    let mut next = 0;
    while next < order.len() {
        let i = order[next];
        order.extend(children[i].iter().copied());
        next += 1;
    }
    // What each span spent with everything under it.
    let spent: Vec<Stats> = kept.iter().map(|s| Stats::spent(s)).collect();
    let mut subtree = spent.clone();
    for &i in order.iter().rev() {
        if let Some(p) = parent[i] {
            let below = subtree[i];
            subtree[p].add(&below);
        }
    }
    let mut b = Builder::default();
    // The node that owns each span (itself, or its nearest node ancestor) and that node's depth.
    let mut owner: Vec<Option<(usize, u32)>> = vec![None; kept.len()];
    for &i in &order {
        let s = kept[i];
        let caller = parent[i].and_then(|p| owner[p]);
        let depth = caller.map_or(0, |(_, d)| d + 1);
        let target = (s.kind == SpanKind::Handoff && s.duplicate_of.is_none())
            .then(|| handoff_target(s))
            .flatten();
        let me = match (target, caller) {
            // A named handoff from a caller: an agent → agent edge, the span stays transparent.
            (Some(target), Some((from, _))) => {
                let to = b.node(NodeKind::Agent, target, depth);
                let e = b.edge(from, to, true);
                let edge = &mut b.graph.edges[e];
                edge.stats.add(&Stats::call(s).with_spent(&subtree[i]));
                edge.span_ids.push(s.span_id);
                None
            }
            _ => identity(s, parent[i].is_none()),
        };
        match me {
            Some((kind, label)) => {
                let n = b.node(kind, label, depth);
                let node = &mut b.graph.nodes[n];
                node.stats.add(&Stats::call(s));
                node.span_ids.push(s.span_id);
                if let Some((from, _)) = caller {
                    let e = b.edge(from, n, false);
                    let edge = &mut b.graph.edges[e];
                    edge.stats.add(&Stats::call(s).with_spent(&subtree[i]));
                    edge.span_ids.push(s.span_id);
                }
                owner[i] = Some((n, depth));
            }
            None => owner[i] = caller,
        }
        if let Some((n, _)) = owner[i] {
            let node = &mut b.graph.nodes[n];
            node.stats = node.stats.with_spent(&spent[i]);
        }
    }
    b.graph.traces = u64::from(!kept.is_empty());
    b.graph
}

/// Sums graphs (of many traces) into one: nodes and edges by identity, their figures and
/// trace counts added, a node's depth the smallest seen. Span ids belong to one trace, so the
/// merged graph has none.
pub fn merge(graphs: impl IntoIterator<Item = Graph>) -> Graph {
    let mut b = Builder::default();
    for g in graphs {
        b.graph.traces = b.graph.traces.saturating_add(g.traces);
        let mut local = Vec::with_capacity(g.nodes.len());
        let mut by_id = HashMap::with_capacity(g.nodes.len());
        for n in g.nodes {
            let at = b.node(n.kind, n.label, n.depth);
            b.graph.nodes[at].stats.add(&n.stats);
            by_id.insert(n.id, at);
            local.push((at, n.traces));
        }
        for e in g.edges {
            let (Some(&from), Some(&to)) = (by_id.get(&e.from), by_id.get(&e.to)) else {
                continue;
            };
            let at = b.edge(from, to, e.handoff);
            b.graph.edges[at].stats.add(&e.stats);
            b.graph.edges[at].traces = b.graph.edges[at].traces.saturating_add(e.traces);
        }
        for (at, traces) in local {
            let node = &mut b.graph.nodes[at];
            node.traces = node.traces.saturating_add(traces);
        }
    }
    // `Builder` starts every node and edge at one trace; the sums above counted them all.
    for n in &mut b.graph.nodes {
        n.traces -= 1;
    }
    for e in &mut b.graph.edges {
        e.traces -= 1;
    }
    b.graph
}

#[cfg(test)]
mod tests;
