//! `/api/v1/traces/{id}/tree?format=columns`: the tree view in columns, so a 100,000-span
//! waterfall is a few megabytes of number arrays the browser parses in tens of milliseconds
//! instead of 100,000 objects with their keys repeated. Names, models, kinds and statuses are
//! sent once each and referred to by index; a parent is the index of its row.

use serde::Serialize;
use spanlens_api::{TraceRow, TreeNode, TreeSummary};
use spanlens_core::{SpanKind, Status};
use spanlens_store::UnreadableSpan;
use std::collections::{BTreeMap, HashMap};

/// Row flag: the span failed.
pub(super) const FLAG_ERROR: u8 = 1;
/// Row flag: a model call the catalog could not price.
pub(super) const FLAG_UNPRICED: u8 = 2;
/// Row flag: on the critical path.
pub(super) const FLAG_CRITICAL: u8 = 4;
/// Row flag: no end time yet.
pub(super) const FLAG_UNCLOSED: u8 = 8;

/// The columnar answer: row `i` of the trace is entry `i` of every array.
#[derive(Serialize)]
pub(super) struct TreeColumns<'a> {
    trace: TraceRow,
    analysis: TreeSummary,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    unreadable_spans: Vec<UnreadableSpan>,
    /// Number of rows.
    count: usize,
    /// Distinct span names; `name[i]` indexes this.
    names: Vec<&'a str>,
    /// Distinct models; `model[i]` indexes this, -1 when none.
    models: Vec<&'a str>,
    /// Distinct kinds; `kind[i]` indexes this.
    kinds: Vec<SpanKind>,
    /// Distinct statuses; `status[i]` indexes this.
    statuses: Vec<Status>,
    span_id: Vec<&'a str>,
    /// Row index of the parent, -1 for a root or a parent the trace does not hold.
    parent: Vec<i64>,
    /// Parent ids that are not rows of this trace (orphans), by row.
    missing_parent: BTreeMap<usize, &'a str>,
    name: Vec<u32>,
    kind: Vec<u8>,
    status: Vec<u8>,
    start_ms: Vec<f64>,
    duration_ms: Vec<Option<f64>>,
    self_ms: Vec<Option<f64>>,
    model: Vec<i64>,
    input_tokens: Vec<Option<u64>>,
    output_tokens: Vec<Option<u64>>,
    cost_usd: Vec<Option<f64>>,
    /// Bits: 1 error, 2 unpriced, 4 critical path, 8 unclosed.
    flags: Vec<u8>,
    /// A failed span's `type: message`, cut as in the row format, by row.
    error_message: BTreeMap<usize, String>,
    /// The span counted in this one's place (same provider call), by row.
    duplicate_of: BTreeMap<usize, &'a str>,
}

/// Index of `v` in `dict`, added when new (kinds and statuses: a handful each).
fn small_index<T: PartialEq + Copy>(dict: &mut Vec<T>, v: T) -> u8 {
    match dict.iter().position(|d| *d == v) {
        Some(i) => i as u8,
        None => {
            dict.push(v);
            (dict.len() - 1) as u8
        }
    }
}

/// Index of `s` in the interned strings, added when new.
fn intern<'a>(dict: &mut Vec<&'a str>, seen: &mut HashMap<&'a str, u32>, s: &'a str) -> u32 {
    *seen.entry(s).or_insert_with(|| {
        dict.push(s);
        (dict.len() - 1) as u32
    })
}

impl<'a> TreeColumns<'a> {
    /// The rows of `nodes` (in their order) as columns.
    pub(super) fn new(
        trace: TraceRow,
        analysis: TreeSummary,
        unreadable_spans: Vec<UnreadableSpan>,
        nodes: &'a [TreeNode<'a>],
    ) -> TreeColumns<'a> {
        let n = nodes.len();
        let mut row_of: HashMap<&str, usize> = HashMap::with_capacity(n);
        for (i, node) in nodes.iter().enumerate() {
            row_of.entry(&node.span_id).or_insert(i);
        }
        let mut c = TreeColumns {
            trace,
            analysis,
            unreadable_spans,
            count: n,
            names: Vec::new(),
            models: Vec::new(),
            kinds: Vec::new(),
            statuses: Vec::new(),
            span_id: Vec::with_capacity(n),
            parent: Vec::with_capacity(n),
            missing_parent: BTreeMap::new(),
            name: Vec::with_capacity(n),
            kind: Vec::with_capacity(n),
            status: Vec::with_capacity(n),
            start_ms: Vec::with_capacity(n),
            duration_ms: Vec::with_capacity(n),
            self_ms: Vec::with_capacity(n),
            model: Vec::with_capacity(n),
            input_tokens: Vec::with_capacity(n),
            output_tokens: Vec::with_capacity(n),
            cost_usd: Vec::with_capacity(n),
            flags: Vec::with_capacity(n),
            error_message: BTreeMap::new(),
            duplicate_of: BTreeMap::new(),
        };
        let (mut seen_names, mut seen_models) = (HashMap::new(), HashMap::new());
        for (i, node) in nodes.iter().enumerate() {
            c.span_id.push(&node.span_id);
            let parent = node.parent_span_id.as_deref();
            match parent.map(|p| (p, row_of.get(p).copied())) {
                Some((_, Some(row))) if row != i => c.parent.push(row as i64),
                Some((p, _)) => {
                    c.parent.push(-1);
                    c.missing_parent.insert(i, p);
                }
                None => c.parent.push(-1),
            }
            c.name
                .push(intern(&mut c.names, &mut seen_names, &node.name));
            c.kind.push(small_index(&mut c.kinds, node.kind));
            c.status.push(small_index(&mut c.statuses, node.status));
            c.start_ms.push(node.start_ms);
            c.duration_ms.push(node.duration_ms);
            c.self_ms.push(node.self_ms);
            c.model.push(match node.model.as_deref() {
                Some(m) => intern(&mut c.models, &mut seen_models, m) as i64,
                None => -1,
            });
            c.input_tokens.push(node.input_tokens);
            c.output_tokens.push(node.output_tokens);
            c.cost_usd.push(node.cost_usd);
            let mut flags = 0;
            for (on, bit) in [
                (node.error, FLAG_ERROR),
                (node.unpriced, FLAG_UNPRICED),
                (node.critical, FLAG_CRITICAL),
                (node.unclosed, FLAG_UNCLOSED),
            ] {
                if on {
                    flags |= bit;
                }
            }
            c.flags.push(flags);
            if let Some(m) = &node.error_message {
                c.error_message.insert(i, m.clone());
            }
            if let Some(d) = node.duplicate_of.as_deref() {
                c.duplicate_of.insert(i, d);
            }
        }
        c
    }
}
