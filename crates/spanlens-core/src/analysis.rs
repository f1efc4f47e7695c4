//! Trace analysis: where the time of one trace went (issue #6, "Insight").
//!
//! [`analyze`] takes a trace's spans in any order and answers: which chain of spans set the
//! end-to-end latency (critical path), how much of each span was its own work (self time), how
//! long parents spent coordinating rather than waiting on children (overhead), which siblings ran
//! concurrently and how well (parallel groups, efficiency), how long each agent took, and items
//! per second where spans say how many items they handled.
//!
//! Real traces are messy, so the rules for bad input are part of the contract:
//! - **out-of-order input**: spans are indexed by id first; order never matters;
//! - **orphans** (parent id not in the trace), self-parents and parent cycles: the span is
//!   treated as a root (listed in `orphan_span_ids`);
//! - **unclosed spans** (no end time): treated as ending at the latest time known in the trace
//!   (any start, end or event time) and listed in `unclosed_span_ids`;
//! - **end before start**: read as a zero-length span;
//! - **clock skew** (a child starting before its parent or ending after it): the child keeps its
//!   own duration, but everything measured against the parent (coverage, overhead, critical
//!   path) uses the child's interval clipped to the parent; such spans are listed in
//!   `clock_skew_span_ids`.
//!
//! Durations in the output are fractional milliseconds, like every `*_ms` field of the API.

use crate::ids::SpanId;
use crate::span::{Span, SpanKind};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// Attributes read as "items handled by this span", in order of preference: a span that sets
/// one of them (a non-negative number, or a string holding one) gets a throughput entry.
pub const ITEM_COUNT_ATTRIBUTES: [&str; 2] = ["spanlens.items", "items.count"];

/// The result of [`analyze`]: one trace's time, explained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceAnalysis {
    /// Spans analysed (duplicates of one span id counted once).
    pub span_count: usize,
    /// Wall time from the earliest start to the latest known time, ms.
    pub wall_ms: f64,
    /// Root spans, including orphans, earliest first.
    pub root_span_ids: Vec<String>,
    /// The chain of spans that set end-to-end latency, in time order (see [`analyze`]).
    pub critical_path: Vec<CriticalStep>,
    /// Length of the critical path (the duration of the root it starts from), ms.
    pub critical_path_ms: f64,
    /// Per-span timings, in start order.
    pub spans: Vec<SpanTiming>,
    /// Parents with children: time not covered by any child, ms, largest first.
    pub overhead: Vec<ParentOverhead>,
    /// Sum of every parent's coordination overhead, ms.
    pub coordination_overhead_ms: f64,
    /// Sets of siblings whose intervals overlap (transitively), two or more spans each.
    pub parallel_groups: Vec<ParallelGroup>,
    /// Per parent: how much child work ran per unit of child wall time.
    pub parallelism: Vec<ParentParallelism>,
    /// Over all parents: sum of child durations / sum of child wall time (1.0 = sequential).
    pub parallelism_efficiency: Option<f64>,
    /// Per agent name: how long its agent spans ran and how much of it was its own work.
    pub agents: Vec<AgentTiming>,
    /// Items per second for spans that declare an item count ([`ITEM_COUNT_ATTRIBUTES`]).
    pub throughput: Vec<Throughput>,
    /// Spans without an end time (treated as ending at the latest known time).
    pub unclosed_span_ids: Vec<String>,
    /// Spans whose parent is missing from the trace (or form a cycle), treated as roots.
    pub orphan_span_ids: Vec<String>,
    /// Spans that start before or end after their parent.
    pub clock_skew_span_ids: Vec<String>,
}

/// One span on the critical path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CriticalStep {
    /// Span id.
    pub span_id: String,
    /// Span name.
    pub name: String,
    /// Span kind.
    pub kind: SpanKind,
    /// Depth below the root the path starts from (0 = that root).
    pub depth: usize,
    /// Span duration (clipped to its parent), ms.
    pub duration_ms: f64,
    /// Time on the path attributed to this span itself: its duration minus the critical
    /// children it waited on, ms. The contributions of a path add up to `critical_path_ms`.
    pub contribution_ms: f64,
}

/// Timing of one span.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanTiming {
    /// Span id.
    pub span_id: String,
    /// Duration (an unclosed span runs to the latest known time), ms.
    pub duration_ms: f64,
    /// Duration not covered by any child's interval (clipped to this span), ms.
    pub self_ms: f64,
    /// On the critical path.
    pub critical: bool,
    /// No end time was recorded.
    pub unclosed: bool,
}

/// Coordination overhead of one parent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParentOverhead {
    /// Parent span id.
    pub span_id: String,
    /// Parent name.
    pub name: String,
    /// Number of children.
    pub children: usize,
    /// Parent duration, ms.
    pub duration_ms: f64,
    /// Parent time not covered by any child, ms.
    pub overhead_ms: f64,
    /// `overhead_ms / duration_ms` (0 for a zero-length parent).
    pub overhead_ratio: f64,
}

/// Siblings that ran at the same time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParallelGroup {
    /// Their parent (`None` for overlapping roots).
    pub parent_span_id: Option<String>,
    /// Members, in start order.
    pub span_ids: Vec<String>,
    /// Member names, in the same order.
    pub names: Vec<String>,
    /// Offset of the group's start from the trace start, ms.
    pub start_ms: f64,
    /// Wall time from the first start to the last end, ms.
    pub wall_ms: f64,
    /// Sum of the members' durations, ms.
    pub sum_ms: f64,
    /// `sum_ms / wall_ms`: average number of members running at once.
    pub efficiency: f64,
}

/// Parallelism of one parent's children.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParentParallelism {
    /// Parent span id.
    pub span_id: String,
    /// Parent name.
    pub name: String,
    /// Sum of the children's durations (clipped to the parent), ms.
    pub children_sum_ms: f64,
    /// Wall time covered by at least one child, ms.
    pub children_wall_ms: f64,
    /// `children_sum_ms / children_wall_ms`; `None` when the children cover no time.
    pub efficiency: Option<f64>,
}

/// Durations of one agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentTiming {
    /// Agent name.
    pub agent: String,
    /// Number of `agent` spans with this name.
    pub agent_spans: usize,
    /// Wall time covered by its agent spans (overlapping runs counted once), ms.
    pub wall_ms: f64,
    /// Self time of its agent spans: the agent's own orchestration, ms.
    pub self_ms: f64,
    /// Self time of every span attributed to the agent (`agent_name`), ms: the time this
    /// agent's work was the innermost thing running.
    pub attributed_self_ms: f64,
    /// Ids of its agent spans, in start order.
    pub span_ids: Vec<String>,
}

/// Items per second of one span.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Throughput {
    /// Span id.
    pub span_id: String,
    /// Span name.
    pub name: String,
    /// The attribute the count was read from.
    pub attribute: String,
    /// Items handled.
    pub items: f64,
    /// Span duration, ms.
    pub duration_ms: f64,
    /// `items / seconds`; `None` for a zero-length span.
    pub items_per_s: Option<f64>,
}

/// What the timing analysis needs of a span: its ids and times, none of its payload. A
/// waterfall of 100,000 spans builds these from stored columns instead of whole spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanShape {
    /// Span id.
    pub span_id: SpanId,
    /// Parent span id.
    pub parent_span_id: Option<SpanId>,
    /// Start, ns since the Unix epoch.
    pub start: u64,
    /// End, ns since the Unix epoch; `None` while the span is unclosed.
    pub end: Option<u64>,
    /// Its latest event's time, ns: a time the trace is known to have reached.
    pub last_event: Option<u64>,
}

impl From<&Span> for SpanShape {
    fn from(s: &Span) -> SpanShape {
        SpanShape {
            span_id: s.span_id,
            parent_span_id: s.parent_span_id,
            start: s.start_time.0,
            end: s.end_time.map(|e| e.0),
            last_event: s.events.iter().map(|e| e.time.0).max(),
        }
    }
}

/// A distinct span of the timeline.
struct Node {
    /// Index of the first input span with this id.
    input: usize,
    span_id: SpanId,
    /// The span named a parent (found in the trace or not).
    has_parent_id: bool,
    start: u64,
    end: u64,
    parent: Option<usize>,
    children: Vec<usize>,
    unclosed: bool,
}

/// One step of the critical path, by node.
struct PathStep {
    node: usize,
    depth: usize,
    duration_ns: u64,
    contribution_ns: u64,
}

/// Siblings whose intervals overlap, by node, earliest first.
struct NodeGroup {
    parent: Option<usize>,
    members: Vec<usize>,
    start: u64,
    end: u64,
    sum_ns: u64,
}

/// The timing core of [`analyze`], kept by index so that it makes no string per span: self
/// time and critical-path membership of every span and the trace-wide figures. A waterfall
/// needs only this; [`analyze`] names the per-parent, per-agent and throughput views on top.
pub struct Timeline {
    /// Node of each input span (duplicated ids share the first one's node).
    node_of_input: Vec<usize>,
    nodes: Vec<Node>,
    /// Interval of each node clipped to its parent's: what the parent can see of it.
    clipped: Vec<(u64, u64)>,
    self_ns: Vec<u64>,
    covered_ns: Vec<u64>,
    child_sum_ns: Vec<u64>,
    /// Roots (including orphans), by start then id.
    roots: Vec<usize>,
    critical: Vec<bool>,
    path: Vec<PathStep>,
    critical_path_ns: u64,
    /// Nodes in start order (ties: id).
    order: Vec<usize>,
    latest: u64,
    trace_start: u64,
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// Total length of the union of `[start, end)` intervals (sorted in place).
fn union_len(iv: &mut [(u64, u64)]) -> u64 {
    iv.sort_unstable();
    let mut total = 0;
    let mut cur: Option<(u64, u64)> = None;
    for &(s, e) in iv.iter() {
        match cur {
            Some((cs, ce)) if s <= ce => cur = Some((cs, ce.max(e))),
            Some((cs, ce)) => {
                total += ce - cs;
                cur = Some((s, e));
            }
            None => cur = Some((s, e)),
        }
    }
    total + cur.map_or(0, |(s, e)| e - s)
}

fn item_count(s: &Span) -> Option<(&'static str, f64)> {
    ITEM_COUNT_ATTRIBUTES.iter().find_map(|&k| {
        let v = s.attributes.get(k)?;
        let n = v
            .as_f64()
            .or_else(|| v.as_str().and_then(|t| t.trim().parse::<f64>().ok()))?;
        (n.is_finite() && n >= 0.0).then_some((k, n))
    })
}

impl Timeline {
    /// The timeline of a trace's spans, in any order (see [`analyze`] for the rules).
    pub fn new(spans: &[SpanShape]) -> Timeline {
        // Index by id; the first occurrence of a duplicated id wins.
        let mut index: HashMap<SpanId, usize> = HashMap::with_capacity(spans.len());
        let mut firsts: Vec<usize> = Vec::with_capacity(spans.len());
        let node_of_input = spans
            .iter()
            .enumerate()
            .map(|(i, s)| {
                *index.entry(s.span_id).or_insert_with(|| {
                    firsts.push(i);
                    firsts.len() - 1
                })
            })
            .collect();
        let latest = firsts
            .iter()
            .map(|&i| {
                let s = &spans[i];
                s.start
                    .max(s.end.unwrap_or(0))
                    .max(s.last_event.unwrap_or(0))
            })
            .max()
            .unwrap_or(0);
        let mut nodes: Vec<Node> = firsts
            .iter()
            .map(|&i| {
                let s = &spans[i];
                Node {
                    input: i,
                    span_id: s.span_id,
                    has_parent_id: s.parent_span_id.is_some(),
                    start: s.start,
                    end: s.end.unwrap_or(latest).max(s.start),
                    parent: s
                        .parent_span_id
                        .filter(|p| *p != s.span_id)
                        .and_then(|p| index.get(&p).copied()),
                    children: Vec::new(),
                    unclosed: s.end.is_none(),
                }
            })
            .collect();
        drop(index);
        break_cycles(&mut nodes);
        for i in 0..nodes.len() {
            if let Some(p) = nodes[i].parent {
                nodes[p].children.push(i);
            }
        }
        let clipped: Vec<(u64, u64)> = nodes
            .iter()
            .map(|n| match n.parent {
                None => (n.start, n.end),
                Some(p) => {
                    let (ps, pe) = (nodes[p].start, nodes[p].end);
                    let s = n.start.clamp(ps, pe);
                    (s, n.end.clamp(s, pe))
                }
            })
            .collect();
        let trace_start = nodes.iter().map(|n| n.start).min().unwrap_or(0);

        // Self time and per-parent coverage.
        let mut self_ns = vec![0u64; nodes.len()];
        let mut covered_ns = vec![0u64; nodes.len()];
        let mut child_sum_ns = vec![0u64; nodes.len()];
        let mut iv: Vec<(u64, u64)> = Vec::new();
        for (i, n) in nodes.iter().enumerate() {
            iv.clear();
            iv.extend(n.children.iter().map(|&c| clipped[c]));
            child_sum_ns[i] = iv.iter().fold(0, |a, (s, e)| a.saturating_add(e - s));
            covered_ns[i] = union_len(&mut iv);
            self_ns[i] = (n.end - n.start).saturating_sub(covered_ns[i]);
        }

        let mut roots: Vec<usize> = (0..nodes.len())
            .filter(|&i| nodes[i].parent.is_none())
            .collect();
        roots.sort_by_key(|&i| (nodes[i].start, nodes[i].span_id.0));
        let mut order: Vec<usize> = (0..nodes.len()).collect();
        order.sort_by_key(|&i| (nodes[i].start, nodes[i].span_id.0));
        let mut t = Timeline {
            node_of_input,
            critical: vec![false; nodes.len()],
            nodes,
            clipped,
            self_ns,
            covered_ns,
            child_sum_ns,
            roots,
            path: Vec::new(),
            critical_path_ns: 0,
            order,
            latest,
            trace_start,
        };
        t.walk_critical_path();
        t
    }

    /// Marks the critical path (see [`analyze`] for the rule).
    fn walk_critical_path(&mut self) {
        let (nodes, clipped) = (&self.nodes, &self.clipped);
        let Some(&root) = self
            .roots
            .iter()
            .max_by_key(|&&i| (nodes[i].end, std::cmp::Reverse(nodes[i].start)))
        else {
            return;
        };
        self.critical_path_ns = nodes[root].end - nodes[root].start;
        // Depth-first in time order: a stack of (span, depth), children pushed latest first.
        let mut stack = vec![(root, 0usize)];
        while let Some((i, depth)) = stack.pop() {
            self.critical[i] = true;
            let mut kids: Vec<usize> = nodes[i]
                .children
                .iter()
                .copied()
                .filter(|&c| clipped[c].1 > clipped[c].0)
                .collect();
            kids.sort_by_key(|&c| (std::cmp::Reverse(clipped[c].1), clipped[c].0));
            let mut cursor = nodes[i].end;
            let mut chosen = Vec::new();
            for c in kids {
                if clipped[c].1 <= cursor {
                    cursor = clipped[c].0;
                    chosen.push(c);
                }
            }
            let (s, e) = clipped[i];
            let waited: u64 = chosen
                .iter()
                .fold(0, |a, &c| a.saturating_add(clipped[c].1 - clipped[c].0));
            self.path.push(PathStep {
                node: i,
                depth,
                duration_ns: e - s,
                contribution_ns: (e - s).saturating_sub(waited),
            });
            // `chosen` runs latest first; pushing it in that order pops the earliest first.
            stack.extend(chosen.into_iter().map(|c| (c, depth + 1)));
        }
    }

    fn id(&self, node: usize) -> String {
        self.nodes[node].span_id.to_hex()
    }

    fn ids(&self, keep: impl Fn(usize) -> bool) -> Vec<String> {
        self.order
            .iter()
            .copied()
            .filter(|&i| keep(i))
            .map(|i| self.id(i))
            .collect()
    }

    /// Distinct spans (duplicated ids counted once).
    pub fn span_count(&self) -> usize {
        self.nodes.len()
    }

    /// Self time of input span `input` (of the first span with its id), ms.
    pub fn self_ms(&self, input: usize) -> f64 {
        ms(self.self_ns[self.node_of_input[input]])
    }

    /// Whether input span `input` (the first span with its id) is on the critical path.
    pub fn critical(&self, input: usize) -> bool {
        self.critical[self.node_of_input[input]]
    }

    /// Wall time from the earliest start to the latest known time, ms.
    pub fn wall_ms(&self) -> f64 {
        ms(self.latest.saturating_sub(self.trace_start))
    }

    /// Length of the critical path, ms.
    pub fn critical_path_ms(&self) -> f64 {
        ms(self.critical_path_ns)
    }

    /// Ids of the critical path's spans, in time order.
    pub fn critical_path_ids(&self) -> Vec<String> {
        self.path.iter().map(|p| self.id(p.node)).collect()
    }

    /// Parents with children, in start order.
    fn parents(&self) -> impl Iterator<Item = usize> + '_ {
        self.order
            .iter()
            .copied()
            .filter(|&i| !self.nodes[i].children.is_empty())
    }

    /// Sum of every parent's coordination overhead, ms.
    pub fn coordination_overhead_ms(&self) -> f64 {
        ms(self
            .parents()
            .fold(0u64, |a, i| a.saturating_add(self.self_ns[i])))
    }

    /// Over all parents: sum of child durations / sum of child wall time.
    pub fn parallelism_efficiency(&self) -> Option<f64> {
        let (sum, wall) = self.parents().fold((0u64, 0u64), |(s, w), i| {
            (
                s.saturating_add(self.child_sum_ns[i]),
                w.saturating_add(self.covered_ns[i]),
            )
        });
        (wall > 0).then(|| sum as f64 / wall as f64)
    }

    /// Sets of siblings (and of roots) whose intervals overlap transitively, two or more each:
    /// siblings swept in start order, joined while they overlap.
    fn node_groups(&self) -> Vec<NodeGroup> {
        let (nodes, clipped) = (&self.nodes, &self.clipped);
        let mut groups = Vec::new();
        let sibling_sets = self
            .parents()
            .map(|i| (Some(i), nodes[i].children.clone()))
            .chain(std::iter::once((None, self.roots.clone())));
        for (parent, mut sibs) in sibling_sets {
            sibs.sort_by_key(|&c| (clipped[c].0, nodes[c].span_id.0));
            let mut group: Vec<usize> = Vec::new();
            let mut group_end = 0;
            let flush = |group: &mut Vec<usize>, groups: &mut Vec<NodeGroup>| {
                if group.len() >= 2 {
                    let start = clipped[group[0]].0;
                    groups.push(NodeGroup {
                        parent,
                        start,
                        end: group.iter().map(|&c| clipped[c].1).max().unwrap_or(start),
                        sum_ns: group
                            .iter()
                            .fold(0, |a, &c| a.saturating_add(clipped[c].1 - clipped[c].0)),
                        members: std::mem::take(group),
                    });
                }
                group.clear();
            };
            for c in sibs {
                let (s, e) = clipped[c];
                if !group.is_empty() && s >= group_end {
                    flush(&mut group, &mut groups);
                }
                group_end = if group.is_empty() {
                    e
                } else {
                    group_end.max(e)
                };
                group.push(c);
            }
            flush(&mut group, &mut groups);
        }
        groups
    }

    /// Number of parallel groups ([`TraceAnalysis::parallel_groups`]).
    pub fn parallel_group_count(&self) -> usize {
        self.node_groups().len()
    }

    /// Spans without an end time, in start order.
    pub fn unclosed_span_ids(&self) -> Vec<String> {
        self.ids(|i| self.nodes[i].unclosed)
    }

    /// Spans whose parent is not in the trace (or loops back), in start order.
    pub fn orphan_span_ids(&self) -> Vec<String> {
        self.ids(|i| self.nodes[i].parent.is_none() && self.nodes[i].has_parent_id)
    }

    /// Spans starting before their parent or ending after it, in start order.
    pub fn clock_skew_span_ids(&self) -> Vec<String> {
        let n = &self.nodes;
        self.ids(|i| {
            n[i].parent
                .is_some_and(|p| n[i].start < n[p].start || n[i].end > n[p].end)
        })
    }
}

/// Analyses one trace's spans (see the module docs for how bad input is read).
///
/// **Critical path rule.** The path starts at the root that ends last (ties: the earlier
/// start). For a span on the path, with a cursor set to its end: take its children (intervals
/// clipped to it, zero-length ones ignored) from the latest end to the earliest (ties: the
/// earlier start, i.e. the longer one); a child is on the path when it ends at or before the
/// cursor, and then the cursor moves to that child's start. So the last-finishing child is
/// chosen first, then the child that finished before it started, and so on back to the
/// parent's start; every chosen child is walked the same way. Gaps between chosen children are
/// the parent's own contribution.
pub fn analyze(spans: &[Span]) -> TraceAnalysis {
    let shapes: Vec<SpanShape> = spans.iter().map(SpanShape::from).collect();
    let t = Timeline::new(&shapes);
    let nodes = &t.nodes;
    let span = |i: usize| &spans[nodes[i].input];
    let name = |i: usize| span(i).name.clone();
    let id = |i: usize| t.id(i);
    let ms_of = |i: usize| ms(nodes[i].end - nodes[i].start);

    let critical_path = t
        .path
        .iter()
        .map(|p| CriticalStep {
            span_id: id(p.node),
            name: name(p.node),
            kind: span(p.node).kind,
            depth: p.depth,
            duration_ms: ms(p.duration_ns),
            contribution_ms: ms(p.contribution_ns),
        })
        .collect();
    let timings = t
        .order
        .iter()
        .map(|&i| SpanTiming {
            span_id: id(i),
            duration_ms: ms_of(i),
            self_ms: ms(t.self_ns[i]),
            critical: t.critical[i],
            unclosed: nodes[i].unclosed,
        })
        .collect();

    // Overhead and parallelism per parent.
    let mut overhead = Vec::new();
    let mut parallelism = Vec::new();
    for i in t.parents() {
        let dur = nodes[i].end - nodes[i].start;
        overhead.push(ParentOverhead {
            span_id: id(i),
            name: name(i),
            children: nodes[i].children.len(),
            duration_ms: ms(dur),
            overhead_ms: ms(t.self_ns[i]),
            overhead_ratio: if dur == 0 {
                0.0
            } else {
                t.self_ns[i] as f64 / dur as f64
            },
        });
        parallelism.push(ParentParallelism {
            span_id: id(i),
            name: name(i),
            children_sum_ms: ms(t.child_sum_ns[i]),
            children_wall_ms: ms(t.covered_ns[i]),
            efficiency: (t.covered_ns[i] > 0)
                .then(|| t.child_sum_ns[i] as f64 / t.covered_ns[i] as f64),
        });
    }
    overhead.sort_by(|a, b| b.overhead_ms.total_cmp(&a.overhead_ms));

    let parallel_groups = t
        .node_groups()
        .into_iter()
        .map(|g| ParallelGroup {
            parent_span_id: g.parent.map(id),
            span_ids: g.members.iter().map(|&c| id(c)).collect(),
            names: g.members.iter().map(|&c| name(c)).collect(),
            start_ms: ms(g.start - t.trace_start),
            wall_ms: ms(g.end - g.start),
            sum_ms: ms(g.sum_ns),
            efficiency: if g.end > g.start {
                g.sum_ns as f64 / (g.end - g.start) as f64
            } else {
                1.0
            },
        })
        .collect();

    // Agents.
    let mut agents: BTreeMap<&str, AgentTiming> = BTreeMap::new();
    let mut agent_iv: BTreeMap<&str, Vec<(u64, u64)>> = BTreeMap::new();
    for &i in &t.order {
        let s = span(i);
        let name = match (&s.agent_name, s.kind) {
            (Some(a), _) => a.as_str(),
            (None, SpanKind::Agent) => s.name.as_str(),
            (None, _) => continue,
        };
        let a = agents.entry(name).or_insert_with(|| AgentTiming {
            agent: name.to_string(),
            agent_spans: 0,
            wall_ms: 0.0,
            self_ms: 0.0,
            attributed_self_ms: 0.0,
            span_ids: Vec::new(),
        });
        a.attributed_self_ms += ms(t.self_ns[i]);
        if s.kind == SpanKind::Agent {
            a.agent_spans += 1;
            a.self_ms += ms(t.self_ns[i]);
            a.span_ids.push(id(i));
            agent_iv
                .entry(name)
                .or_default()
                .push((nodes[i].start, nodes[i].end));
        }
    }
    for (name, mut iv) in agent_iv {
        if let Some(a) = agents.get_mut(name) {
            a.wall_ms = ms(union_len(&mut iv));
        }
    }
    let mut agents: Vec<AgentTiming> = agents.into_values().collect();
    agents.sort_by(|a, b| b.wall_ms.total_cmp(&a.wall_ms));

    let throughput = t
        .order
        .iter()
        .filter_map(|&i| {
            let (attr, items) = item_count(span(i))?;
            let dur = nodes[i].end - nodes[i].start;
            Some(Throughput {
                span_id: id(i),
                name: name(i),
                attribute: attr.to_string(),
                items,
                duration_ms: ms(dur),
                items_per_s: (dur > 0).then(|| items / (dur as f64 / 1e9)),
            })
        })
        .collect();

    TraceAnalysis {
        span_count: t.span_count(),
        wall_ms: t.wall_ms(),
        root_span_ids: t.roots.iter().map(|&i| id(i)).collect(),
        critical_path,
        critical_path_ms: t.critical_path_ms(),
        spans: timings,
        overhead,
        coordination_overhead_ms: t.coordination_overhead_ms(),
        parallel_groups,
        parallelism,
        parallelism_efficiency: t.parallelism_efficiency(),
        agents,
        throughput,
        unclosed_span_ids: t.unclosed_span_ids(),
        orphan_span_ids: t.orphan_span_ids(),
        clock_skew_span_ids: t.clock_skew_span_ids(),
    }
}

/// Cuts parent links that loop back on themselves, so every span hangs below some root.
fn break_cycles(nodes: &mut [Node]) {
    // 0 = unvisited, 1 = on the current walk, 2 = known to reach a root.
    let mut state = vec![0u8; nodes.len()];
    for i in 0..nodes.len() {
        let mut walk = Vec::new();
        let mut cur = Some(i);
        while let Some(c) = cur {
            match state[c] {
                2 => break,
                1 => {
                    // `c` is reached again: its parent link closes the loop.
                    nodes[c].parent = None;
                    break;
                }
                _ => {
                    state[c] = 1;
                    walk.push(c);
                    cur = nodes[c].parent;
                }
            }
        }
        for c in walk {
            state[c] = 2;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::TraceId;
    use crate::time::Timestamp;
    use serde_json::json;

    const MS: u64 = 1_000_000;

    fn sid(n: u8) -> SpanId {
        SpanId([n; 8])
    }

    /// Span `n` under `parent`, from `start` to `end` ms (`None` = unclosed).
    fn span(n: u8, parent: Option<u8>, start: u64, end: Option<u64>) -> Span {
        Span {
            trace_id: TraceId([7; 16]),
            span_id: sid(n),
            parent_span_id: parent.map(sid),
            name: format!("s{n}"),
            start_time: Timestamp(1_000 * MS + start * MS),
            end_time: end.map(|e| Timestamp(1_000 * MS + e * MS)),
            ..Default::default()
        }
    }

    /// Siblings whose durations add up past 2^64 ns (each about 146 years long, which the
    /// limits let through) are summed saturating, never overflowing (found by fuzzing).
    #[test]
    fn huge_sibling_durations_do_not_overflow() {
        let long = crate::limits::MAX_TIME_NS / 2;
        let mut spans = vec![span(1, None, 0, None)];
        spans[0].end_time = Some(Timestamp(crate::limits::MAX_TIME_NS));
        for n in 2..8 {
            let mut s = span(n, Some(1), 0, None);
            s.start_time = Timestamp(1);
            s.end_time = Some(Timestamp(long));
            spans.push(s);
        }
        let a = analyze(&spans);
        assert_eq!(a.parallel_groups.len(), 1);
        assert!(a.parallel_groups[0].sum_ms > a.parallel_groups[0].wall_ms);
    }

    fn timing(a: &TraceAnalysis, n: u8) -> &SpanTiming {
        let hex = sid(n).to_hex();
        a.spans.iter().find(|t| t.span_id == hex).unwrap()
    }

    fn path_names(a: &TraceAnalysis) -> Vec<&str> {
        a.critical_path.iter().map(|s| s.name.as_str()).collect()
    }

    /// root 0..100: a 10..40, b 20..60 (overlaps a), c 70..90; b has child d 25..55.
    fn fan_out() -> Vec<Span> {
        vec![
            span(1, None, 0, Some(100)),
            span(2, Some(1), 10, Some(40)),
            span(3, Some(1), 20, Some(60)),
            span(4, Some(1), 70, Some(90)),
            span(5, Some(3), 25, Some(55)),
        ]
    }

    #[test]
    fn critical_path_follows_last_finishing_children() {
        let a = analyze(&fan_out());
        // c ends last; before c starts (70) the latest-ending child is b (60); a ends at 40,
        // after b started (20), so it is off the path.
        assert_eq!(path_names(&a), ["s1", "s3", "s5", "s4"]);
        assert_eq!(a.critical_path_ms, 100.0);
        let total: f64 = a.critical_path.iter().map(|s| s.contribution_ms).sum();
        assert_eq!(total, 100.0);
        // root: 100 − b 40 − c 20; b: 40 − d 30.
        assert_eq!(a.critical_path[0].contribution_ms, 40.0);
        assert_eq!(a.critical_path[1].contribution_ms, 10.0);
        assert_eq!(a.critical_path[1].depth, 1);
        assert_eq!(a.critical_path[2].depth, 2);
        assert!(!timing(&a, 2).critical);
        assert!(timing(&a, 4).critical);
    }

    #[test]
    fn self_time_overhead_and_parallelism() {
        let a = analyze(&fan_out());
        // root children cover 10..60 and 70..90 = 70 ms.
        assert_eq!(timing(&a, 1).self_ms, 30.0);
        assert_eq!(timing(&a, 3).self_ms, 10.0);
        assert_eq!(timing(&a, 2).self_ms, 30.0);
        assert_eq!(a.coordination_overhead_ms, 40.0);
        assert_eq!(a.overhead[0].name, "s1");
        assert_eq!(a.overhead[0].overhead_ratio, 0.3);
        // root: children sum 30+40+20 = 90 over 70 ms of wall time.
        let root = a.parallelism.iter().find(|p| p.name == "s1").unwrap();
        assert_eq!(root.children_sum_ms, 90.0);
        assert_eq!(root.children_wall_ms, 70.0);
        assert_eq!(root.efficiency, Some(90.0 / 70.0));
        // overall: (90 + 30) / (70 + 30).
        assert_eq!(a.parallelism_efficiency, Some(1.2));
        assert_eq!(a.parallel_groups.len(), 1);
        let g = &a.parallel_groups[0];
        assert_eq!(g.names, ["s2", "s3"]);
        assert_eq!((g.start_ms, g.wall_ms, g.sum_ms), (10.0, 50.0, 70.0));
    }

    #[test]
    fn input_order_does_not_matter() {
        let mut spans = fan_out();
        let a = analyze(&spans);
        spans.reverse();
        spans.swap(0, 2);
        assert_eq!(analyze(&spans), a);
    }

    #[test]
    fn unclosed_spans_run_to_the_latest_known_time() {
        let mut spans = vec![
            span(1, None, 0, None),
            span(2, Some(1), 0, Some(30)),
            span(3, Some(1), 40, None),
        ];
        spans[1].events.push(crate::span::Event {
            name: "late".into(),
            time: Timestamp(1_000 * MS + 50 * MS),
            ..Default::default()
        });
        let a = analyze(&spans);
        assert_eq!(a.wall_ms, 50.0);
        assert_eq!(a.unclosed_span_ids, [sid(1).to_hex(), sid(3).to_hex()]);
        assert!(timing(&a, 3).unclosed && !timing(&a, 2).unclosed);
        assert_eq!(timing(&a, 3).duration_ms, 10.0);
        assert_eq!(timing(&a, 1).self_ms, 10.0);
        assert_eq!(path_names(&a), ["s1", "s2", "s3"]);
    }

    #[test]
    fn orphans_and_cycles_become_roots() {
        let spans = vec![
            span(1, None, 0, Some(10)),
            span(2, Some(9), 5, Some(50)), // parent 9 never arrived
            span(3, Some(4), 0, Some(5)),  // 3 and 4 are each other's parent
            span(4, Some(3), 0, Some(5)),
            span(5, Some(5), 60, Some(70)), // its own parent
        ];
        let a = analyze(&spans);
        assert_eq!(a.span_count, 5);
        assert!(a.orphan_span_ids.contains(&sid(2).to_hex()));
        assert!(a.orphan_span_ids.contains(&sid(5).to_hex()));
        assert_eq!(a.root_span_ids.len(), 4);
        // The root ending last is the orphan 5 (60..70).
        assert_eq!(path_names(&a), ["s5"]);
        // Roots 1 and 2 overlap (0..10, 5..50), as do 1 and the 3/4 loop root.
        let roots = a
            .parallel_groups
            .iter()
            .find(|g| g.parent_span_id.is_none())
            .unwrap();
        assert_eq!(roots.span_ids.len(), 3);
    }

    #[test]
    fn zero_length_and_reversed_spans() {
        let spans = vec![
            span(1, None, 0, Some(10)),
            span(2, Some(1), 5, Some(5)), // zero length
            span(3, Some(1), 8, Some(2)), // ends before it starts: read as zero length
        ];
        let a = analyze(&spans);
        assert_eq!(timing(&a, 1).self_ms, 10.0);
        assert_eq!(timing(&a, 3).duration_ms, 0.0);
        assert_eq!(path_names(&a), ["s1"]);
        let p = &a.parallelism[0];
        assert_eq!(p.efficiency, None);
        assert!(a.parallel_groups.is_empty());
    }

    #[test]
    fn clock_skew_is_clipped_to_the_parent_and_flagged() {
        // The child claims to start 5 ms before its parent and to end 5 ms after it.
        let spans = vec![span(1, None, 10, Some(20)), span(2, Some(1), 5, Some(25))];
        let a = analyze(&spans);
        assert_eq!(a.clock_skew_span_ids, [sid(2).to_hex()]);
        assert_eq!(timing(&a, 1).self_ms, 0.0);
        assert_eq!(timing(&a, 2).duration_ms, 20.0);
        assert_eq!(a.critical_path[1].duration_ms, 10.0);
        assert_eq!(a.critical_path_ms, 10.0);
        assert_eq!(a.coordination_overhead_ms, 0.0);
    }

    #[test]
    fn agents_are_timed_by_wall_and_self_time() {
        let mut spans = vec![
            span(1, None, 0, Some(100)),
            span(2, Some(1), 0, Some(60)),
            span(3, Some(1), 40, Some(100)),
            span(4, Some(2), 10, Some(50)),
        ];
        spans[1].kind = SpanKind::Agent;
        spans[1].name = "researcher".into();
        spans[2].kind = SpanKind::Agent;
        spans[2].name = "researcher".into();
        spans[3].agent_name = Some("researcher".into());
        let a = analyze(&spans);
        assert_eq!(a.agents.len(), 1);
        let r = &a.agents[0];
        assert_eq!(r.agent_spans, 2);
        assert_eq!(r.wall_ms, 100.0);
        // span 2: 60 − 40 covered by span 4; span 3: 60.
        assert_eq!(r.self_ms, 80.0);
        assert_eq!(r.attributed_self_ms, 120.0);
    }

    #[test]
    fn throughput_reads_item_counts() {
        let mut spans = vec![
            span(1, None, 0, Some(500)),
            span(2, Some(1), 0, Some(0)),
            span(3, Some(1), 0, Some(100)),
        ];
        spans[0]
            .attributes
            .insert("spanlens.items".into(), json!(250));
        spans[1]
            .attributes
            .insert("items.count".into(), json!("12"));
        spans[2].attributes.insert("items.count".into(), json!(-3));
        let a = analyze(&spans);
        assert_eq!(a.throughput.len(), 2);
        let t = a.throughput.iter().find(|t| t.name == "s1").unwrap();
        assert_eq!((t.items, t.items_per_s), (250.0, Some(500.0)));
        assert_eq!(t.attribute, "spanlens.items");
        let z = a.throughput.iter().find(|t| t.name == "s2").unwrap();
        assert_eq!(z.items_per_s, None);
    }

    #[test]
    fn empty_trace_and_duplicates() {
        let a = analyze(&[]);
        assert_eq!(a.span_count, 0);
        assert!(a.critical_path.is_empty());
        assert_eq!(a.parallelism_efficiency, None);
        let s = span(1, None, 0, Some(10));
        let a = analyze(&[s.clone(), s]);
        assert_eq!(a.span_count, 1);
        assert_eq!(path_names(&a), ["s1"]);
        serde_json::to_string(&a).unwrap();
    }

    /// The timeline alone (what the waterfall reads) answers as the full analysis does, span
    /// by span of the input: a repeated id reads its first span's timing, and every kind of
    /// bad input (unclosed, orphan, cycle, skew) is counted the same.
    #[test]
    fn the_timeline_answers_as_the_analysis_does() {
        let mut late = span(2, Some(1), 10, Some(30));
        late.start_time = Timestamp(1_000 * MS + 12 * MS); // a second copy of span 2, moved
        let mut skewed = span(6, Some(1), 0, Some(200));
        skewed.start_time = Timestamp(1_000 * MS - 5 * MS);
        let spans = vec![
            span(1, None, 0, Some(100)),
            span(2, Some(1), 10, Some(30)),
            late,
            span(3, Some(1), 20, Some(90)),
            span(4, Some(3), 25, None),
            span(5, Some(9), 40, Some(120)),
            skewed,
            span(7, Some(8), 0, Some(5)),
            span(8, Some(7), 0, Some(5)),
        ];
        let a = analyze(&spans);
        let t = Timeline::new(&spans.iter().map(SpanShape::from).collect::<Vec<_>>());
        for (i, s) in spans.iter().enumerate() {
            let want = timing(&a, s.span_id.0[0]);
            assert_eq!(t.self_ms(i), want.self_ms, "span {i}");
            assert_eq!(t.critical(i), want.critical, "span {i}");
        }
        assert_eq!(
            t.self_ms(2),
            t.self_ms(1),
            "a repeated id reads the first copy"
        );
        assert_eq!(t.span_count(), a.span_count);
        assert_eq!(t.wall_ms(), a.wall_ms);
        assert_eq!(t.critical_path_ms(), a.critical_path_ms);
        let path: Vec<String> = a.critical_path.iter().map(|c| c.span_id.clone()).collect();
        assert_eq!(t.critical_path_ids(), path);
        assert_eq!(t.coordination_overhead_ms(), a.coordination_overhead_ms);
        assert_eq!(t.parallelism_efficiency(), a.parallelism_efficiency);
        assert_eq!(t.parallel_group_count(), a.parallel_groups.len());
        assert!(t.parallel_group_count() >= 2);
        assert_eq!(t.unclosed_span_ids(), a.unclosed_span_ids);
        assert_eq!(t.unclosed_span_ids(), [sid(4).to_hex()]);
        assert_eq!(t.orphan_span_ids(), a.orphan_span_ids);
        assert_eq!(
            t.orphan_span_ids().len(),
            2,
            "5 (no parent) and one of the 7/8 loop"
        );
        assert_eq!(t.clock_skew_span_ids(), a.clock_skew_span_ids);
        // 4 is unclosed, so it runs to the trace's latest time, past its parent's end.
        assert_eq!(t.clock_skew_span_ids(), [sid(6).to_hex(), sid(4).to_hex()]);
    }
}
