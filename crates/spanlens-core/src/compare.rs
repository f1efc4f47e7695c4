//! Two traces side by side: their spans aligned by the path of names from the root, with what
//! changed between them (duration, tokens, cost, status, model, output text).
//!
//! Runs of one workflow have no span ids in common, so spans are matched by where they sit:
//! the root's name, then each child's name under it. Among siblings of one name (a loop's
//! iterations, retries) the k-th in start order of one trace is matched with the k-th of the
//! other. What is left is "only in A" or "only in B". Rows come in tree order (a parent before
//! its children), each with its depth, so a reader can indent them.
//!
//! Outputs are untrusted and may be large, so each compared text is cut to
//! [`CompareOptions::max_text_bytes`] (the diff says so) and one comparison holds at most
//! [`CompareOptions::max_diff_bytes`] of diff text; the word diff falls back to lines, then to
//! "all replaced", when the two texts would need too large a table.

use crate::ids::SpanId;
use crate::money::NanoUsd;
use crate::span::{Span, SpanKind, Status};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

/// Bounds on the work and the size of one comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompareOptions {
    /// Bytes of each output compared; the rest is left out and the diff says it was cut.
    pub max_text_bytes: usize,
    /// Bytes of diff text one comparison holds in all; later changed outputs get no diff
    /// (`diff_omitted`), so a trace of thousands of changed outputs stays a bounded answer.
    pub max_diff_bytes: usize,
    /// Cells of the longest-common-subsequence table one diff may use (memory and time bound).
    pub max_diff_cells: usize,
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions {
            max_text_bytes: 20 * 1024,
            max_diff_bytes: 2 * 1024 * 1024,
            max_diff_cells: 4_000_000,
        }
    }
}

/// Two traces compared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// Aligned spans in tree order: matched pairs, and spans only one trace has.
    pub rows: Vec<CompareRow>,
    /// Both traces' totals and their difference.
    pub totals: CompareTotals,
    /// What the comparison had to work around (repeated span ids, missing parents, cycles,
    /// diffs left out), in words.
    #[serde(default)]
    pub notes: Vec<String>,
}

/// One aligned position: a span of A, of B, or both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompareRow {
    /// The span name at this position.
    pub name: String,
    /// 0 for a root, 1 for its children, …
    pub depth: u32,
    /// Which of the same-named siblings this is, from 0 in start order.
    pub occurrence: u32,
    /// Index in `rows` of the parent position; `None` for a root.
    pub parent_row: Option<u32>,
    /// A's span here, if A has one.
    pub a: Option<SpanFacts>,
    /// B's span here, if B has one.
    pub b: Option<SpanFacts>,
    /// B minus A, when both have a span here.
    pub delta: Option<SpanDelta>,
}

/// What is compared of one span.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanFacts {
    /// The span.
    pub span_id: SpanId,
    /// Its kind.
    pub kind: SpanKind,
    /// Its status.
    pub status: Status,
    /// Duration, ms; `None` while open.
    pub duration_ms: Option<f64>,
    /// Answering model, else the model asked for.
    pub model: Option<String>,
    /// Input tokens (cached included).
    pub input_tokens: u64,
    /// Output tokens (reasoning included).
    pub output_tokens: u64,
    /// Cost in USD; `None` when the span has none.
    pub cost_usd: Option<NanoUsd>,
    /// A model call the catalog could not price (no cost, and not $0 either).
    pub unpriced: bool,
    /// Recorded the same provider call as another span, which is counted in the totals instead.
    pub duplicate: bool,
}

/// B minus A for one matched pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanDelta {
    /// Duration difference, ms (positive: B slower); `None` when either is open.
    pub duration_ms: Option<f64>,
    /// Input token difference.
    pub input_tokens: i64,
    /// Output token difference.
    pub output_tokens: i64,
    /// Cost difference; `None` when either side is unpriced (no honest figure).
    pub cost_usd: Option<NanoUsd>,
    /// The statuses differ.
    pub status_changed: bool,
    /// The models differ.
    pub model_changed: bool,
    /// The output texts differ.
    pub output_changed: bool,
    /// How the outputs differ, when they do and the comparison's diff budget allowed it.
    pub output_diff: Option<TextDiff>,
    /// The outputs differ but no diff was made: the comparison's diff budget was spent.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub diff_omitted: bool,
}

/// One trace's totals, counting each provider call once (spans marked as duplicates left out).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct TraceTotals {
    /// Spans compared (a repeated span id counted once).
    pub span_count: u64,
    /// Spans that failed.
    pub error_count: u64,
    /// From the earliest start to the latest end, ms.
    pub duration_ms: f64,
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Cost of the priced calls, USD.
    pub cost_usd: NanoUsd,
    /// Model calls without a price: when above 0, `cost_usd` is a lower bound.
    pub unpriced_span_count: u64,
}

/// Both traces' totals, their difference and how the rows fell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompareTotals {
    /// Trace A.
    pub a: TraceTotals,
    /// Trace B.
    pub b: TraceTotals,
    /// B minus A.
    pub delta: TotalsDelta,
    /// Rows with a span on both sides.
    pub matched: u64,
    /// Rows with A's span only.
    pub only_a: u64,
    /// Rows with B's span only.
    pub only_b: u64,
    /// Matched rows whose outputs differ.
    pub changed_outputs: u64,
}

/// B minus A of the totals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TotalsDelta {
    /// Wall time difference, ms.
    pub duration_ms: f64,
    /// Input token difference.
    pub input_tokens: i64,
    /// Output token difference.
    pub output_tokens: i64,
    /// Cost difference of the priced calls, USD.
    pub cost_usd: NanoUsd,
    /// Span count difference.
    pub span_count: i64,
    /// Failed span difference.
    pub error_count: i64,
}

/// A diff of two texts as pieces in order: kept, removed from A, added in B.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextDiff {
    /// The pieces; A is the `equal` and `delete` pieces joined, B the `equal` and `insert` ones.
    pub pieces: Vec<DiffPiece>,
    /// A's text was longer than the cap: only its start was compared.
    pub a_cut: bool,
    /// B's text was longer than the cap: only its start was compared.
    pub b_cut: bool,
    /// The unit the texts were compared in.
    pub granularity: Granularity,
}

/// One piece of a [`TextDiff`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffPiece {
    /// Kept, removed or added.
    pub op: DiffOp,
    /// The text.
    pub text: String,
}

/// What happened to a piece of text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiffOp {
    /// In both.
    Equal,
    /// Only in A.
    Delete,
    /// Only in B.
    Insert,
}

/// The unit a diff was computed in: words, or coarser when the texts were too different for
/// a word table within the bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Granularity {
    /// Words (each with the whitespace after it).
    Words,
    /// Lines.
    Lines,
    /// The differing middle replaced as a whole.
    Whole,
}

/// Compares A with B under the default bounds.
pub fn compare(a: &[Span], b: &[Span]) -> Comparison {
    compare_with(a, b, &CompareOptions::default())
}

/// Compares A with B: rows aligned by path of names, deltas as B minus A.
pub fn compare_with(a: &[Span], b: &[Span], opts: &CompareOptions) -> Comparison {
    let mut notes = Vec::new();
    let ta = Tree::build(a, "A", &mut notes);
    let tb = Tree::build(b, "B", &mut notes);
    let mut rows: Vec<CompareRow> = Vec::new();
    let mut counts = (0u64, 0u64, 0u64, 0u64);
    let mut diff_bytes = 0usize;
    let mut omitted = 0u64;
    // Explicit stack: a trace may be a chain thousands of spans deep.
    let mut stack: Vec<(Slot, u32, Option<u32>)> = merge(&ta, &ta.roots, &tb, &tb.roots)
        .into_iter()
        .rev()
        .map(|s| (s, 0, None))
        .collect();
    while let Some((slot, depth, parent_row)) = stack.pop() {
        let sa = slot.a.map(|i| ta.spans[i]);
        let sb = slot.b.map(|i| tb.spans[i]);
        let name = sa.or(sb).map(|s| s.name.clone()).unwrap_or_default();
        let delta = match (sa, sb) {
            (Some(x), Some(y)) => {
                counts.0 += 1;
                let d = span_delta(x, y, opts, &mut diff_bytes);
                if d.output_changed {
                    counts.3 += 1;
                }
                if d.diff_omitted {
                    omitted += 1;
                }
                Some(d)
            }
            (Some(_), None) => {
                counts.1 += 1;
                None
            }
            _ => {
                counts.2 += 1;
                None
            }
        };
        let row = rows.len() as u32;
        rows.push(CompareRow {
            name,
            depth,
            occurrence: slot.occurrence,
            parent_row,
            a: sa.map(facts),
            b: sb.map(facts),
            delta,
        });
        let ca = slot.a.map_or(&[][..], |i| &ta.children[i][..]);
        let cb = slot.b.map_or(&[][..], |i| &tb.children[i][..]);
        for child in merge(&ta, ca, &tb, cb).into_iter().rev() {
            stack.push((child, depth + 1, Some(row)));
        }
    }
    if omitted > 0 {
        notes.push(format!(
            "{omitted} changed outputs have no diff: the comparison's {} bytes of diff text were spent",
            opts.max_diff_bytes
        ));
    }
    let (sa, sb) = (ta.totals(), tb.totals());
    let delta = TotalsDelta {
        duration_ms: sb.duration_ms - sa.duration_ms,
        input_tokens: signed(sa.input_tokens, sb.input_tokens),
        output_tokens: signed(sa.output_tokens, sb.output_tokens),
        cost_usd: NanoUsd(sb.cost_usd.0.saturating_sub(sa.cost_usd.0)),
        span_count: signed(sa.span_count, sb.span_count),
        error_count: signed(sa.error_count, sb.error_count),
    };
    Comparison {
        rows,
        totals: CompareTotals {
            a: sa,
            b: sb,
            delta,
            matched: counts.0,
            only_a: counts.1,
            only_b: counts.2,
            changed_outputs: counts.3,
        },
        notes,
    }
}

/// `b - a` as a signed count, saturating.
fn signed(a: u64, b: u64) -> i64 {
    (i128::from(b) - i128::from(a)).clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// One trace's spans as a forest: each span once, children in start order.
struct Tree<'a> {
    spans: Vec<&'a Span>,
    children: Vec<Vec<usize>>,
    roots: Vec<usize>,
}

impl<'a> Tree<'a> {
    fn build(input: &'a [Span], side: &str, notes: &mut Vec<String>) -> Tree<'a> {
        let mut seen = HashSet::with_capacity(input.len());
        let spans: Vec<&Span> = input.iter().filter(|s| seen.insert(s.span_id)).collect();
        if spans.len() < input.len() {
            notes.push(format!(
                "trace {side}: {} spans repeat a span id seen before and were left out",
                input.len() - spans.len()
            ));
        }
        let index: HashMap<SpanId, usize> = spans
            .iter()
            .enumerate()
            .map(|(i, s)| (s.span_id, i))
            .collect();
        let mut children = vec![Vec::new(); spans.len()];
        let mut parent = vec![None; spans.len()];
        let mut roots = Vec::new();
        let mut orphans = 0;
        for (i, s) in spans.iter().enumerate() {
            match s.parent_span_id.and_then(|p| index.get(&p).copied()) {
                Some(p) if p != i => {
                    children[p].push(i);
                    parent[i] = Some(p);
                }
                _ => {
                    if s.parent_span_id.is_some_and(|p| p != s.span_id) {
                        orphans += 1;
                    }
                    roots.push(i);
                }
            }
        }
        if orphans > 0 {
            notes.push(format!(
                "trace {side}: {orphans} spans name a parent the trace does not hold and are shown as roots"
            ));
        }
        let order = |spans: &[&Span], v: &mut Vec<usize>| {
            v.sort_by(|&x, &y| {
                (spans[x].start_time, spans[x].span_id)
                    .cmp(&(spans[y].start_time, spans[y].span_id))
            })
        };
        // Spans in a parent cycle are reached from no root: cut each cycle at its earliest span.
        let mut reached = vec![false; spans.len()];
        let mark = |from: usize, reached: &mut Vec<bool>, children: &Vec<Vec<usize>>| {
            let mut todo = vec![from];
            while let Some(i) = todo.pop() {
                if !std::mem::replace(&mut reached[i], true) {
                    todo.extend(&children[i]);
                }
            }
        };
        for &r in &roots {
            mark(r, &mut reached, &children);
        }
        let mut by_start: Vec<usize> = (0..spans.len()).collect();
        order(&spans, &mut by_start);
        let mut cycles = 0;
        for i in by_start {
            if reached[i] {
                continue;
            }
            cycles += 1;
            if let Some(p) = parent[i].take() {
                children[p].retain(|&c| c != i);
            }
            roots.push(i);
            mark(i, &mut reached, &children);
        }
        if cycles > 0 {
            notes.push(format!(
                "trace {side}: {cycles} cycles of parent ids were cut at their earliest span"
            ));
        }
        order(&spans, &mut roots);
        for c in &mut children {
            order(&spans, c);
        }
        Tree {
            spans,
            children,
            roots,
        }
    }

    fn totals(&self) -> TraceTotals {
        let mut t = TraceTotals {
            span_count: self.spans.len() as u64,
            ..Default::default()
        };
        let (mut first, mut last) = (u64::MAX, 0u64);
        for s in &self.spans {
            first = first.min(s.start_time.0);
            last = last.max(s.end_time.unwrap_or(s.start_time).0.max(s.start_time.0));
            if s.status == Status::Error {
                t.error_count += 1;
            }
            if s.duplicate_of.is_some() {
                continue;
            }
            if let Some(u) = &s.usage {
                t.input_tokens = t.input_tokens.saturating_add(u.input_tokens);
                t.output_tokens = t.output_tokens.saturating_add(u.output_tokens);
            }
            if let Some(c) = &s.cost {
                t.cost_usd += c.amounts.total;
            }
            if s.unpriced_reason.is_some() && s.cost.is_none() {
                t.unpriced_span_count += 1;
            }
        }
        if first <= last {
            t.duration_ms = (last - first) as f64 / 1e6;
        }
        t
    }
}

/// A position among siblings: A's child, B's child, or both, and the same-name occurrence.
struct Slot {
    a: Option<usize>,
    b: Option<usize>,
    occurrence: u32,
}

/// Each child's name and which occurrence of that name it is among its siblings.
fn keyed<'a>(t: &Tree<'a>, kids: &[usize]) -> Vec<(&'a str, u32)> {
    let mut seen: HashMap<&str, u32> = HashMap::new();
    kids.iter()
        .map(|&i| {
            let name = t.spans[i].name.as_str();
            let n = seen.entry(name).or_insert(0);
            *n += 1;
            (name, *n - 1)
        })
        .collect()
}

/// Aligns two sibling lists: A's order kept, each of B's spans beside A's span of the same
/// name and occurrence, and B's unmatched ones after the A span its previous matched sibling
/// stands beside (at the front when none came before).
fn merge(ta: &Tree<'_>, ca: &[usize], tb: &Tree<'_>, cb: &[usize]) -> Vec<Slot> {
    let ka = keyed(ta, ca);
    let kb = keyed(tb, cb);
    let a_at: HashMap<(&str, u32), usize> = ka.iter().enumerate().map(|(i, k)| (*k, i)).collect();
    let mut partner: Vec<Option<usize>> = vec![None; ca.len()];
    // B-only children to place after A's position (index + 1), or at the front (0).
    let mut after: Vec<Vec<usize>> = vec![Vec::new(); ca.len() + 1];
    let mut anchor = 0;
    for (j, k) in kb.iter().enumerate() {
        match a_at.get(k) {
            Some(&i) => {
                partner[i] = Some(cb[j]);
                anchor = i + 1;
            }
            None => after[anchor].push(j),
        }
    }
    // B's spans before its first match go just before that match's A span; with no match at
    // all, after A's (two unrelated sibling lists read better one after the other).
    let lead = std::mem::take(&mut after[0]);
    let first = partner.iter().position(Option::is_some).unwrap_or(ca.len());
    let mut out = Vec::with_capacity(ca.len() + cb.len());
    let only_b = |out: &mut Vec<Slot>, list: &[usize]| {
        for &j in list {
            out.push(Slot {
                a: None,
                b: Some(cb[j]),
                occurrence: kb[j].1,
            });
        }
    };
    for (i, &x) in ca.iter().enumerate() {
        if i == first {
            only_b(&mut out, &lead);
        }
        out.push(Slot {
            a: Some(x),
            b: partner[i],
            occurrence: ka[i].1,
        });
        only_b(&mut out, &after[i + 1]);
    }
    if first == ca.len() {
        only_b(&mut out, &lead);
    }
    out
}

fn model(s: &Span) -> Option<&str> {
    s.response_model.as_deref().or(s.request_model.as_deref())
}

fn facts(s: &Span) -> SpanFacts {
    let usage = s.usage.as_ref();
    SpanFacts {
        span_id: s.span_id,
        kind: s.kind,
        status: s.status,
        duration_ms: s.duration_ns().map(|ns| ns as f64 / 1e6),
        model: model(s).map(str::to_string),
        input_tokens: usage.map_or(0, |u| u.input_tokens),
        output_tokens: usage.map_or(0, |u| u.output_tokens),
        cost_usd: s.cost.as_ref().map(|c| c.amounts.total),
        unpriced: s.cost.is_none() && s.unpriced_reason.is_some(),
        duplicate: s.duplicate_of.is_some(),
    }
}

fn span_delta(a: &Span, b: &Span, opts: &CompareOptions, budget: &mut usize) -> SpanDelta {
    let (fa, fb) = (facts(a), facts(b));
    let duration_ms = match (a.duration_ns(), b.duration_ns()) {
        (Some(x), Some(y)) => Some(signed(x, y) as f64 / 1e6),
        _ => None,
    };
    let cost_usd = if fa.unpriced || fb.unpriced {
        None
    } else {
        let (x, y) = (
            fa.cost_usd.unwrap_or_default(),
            fb.cost_usd.unwrap_or_default(),
        );
        Some(NanoUsd(y.0.saturating_sub(x.0)))
    };
    let (oa, ob) = (output_text(a), output_text(b));
    let output_changed = oa != ob;
    let (mut output_diff, mut diff_omitted) = (None, false);
    if output_changed {
        if *budget < opts.max_diff_bytes {
            let d = diff_text(
                oa.as_deref().unwrap_or(""),
                ob.as_deref().unwrap_or(""),
                opts,
            );
            *budget = budget.saturating_add(d.pieces.iter().map(|p| p.text.len()).sum());
            output_diff = Some(d);
        } else {
            diff_omitted = true;
        }
    }
    SpanDelta {
        duration_ms,
        input_tokens: signed(fa.input_tokens, fb.input_tokens),
        output_tokens: signed(fa.output_tokens, fb.output_tokens),
        cost_usd,
        status_changed: a.status != b.status,
        model_changed: fa.model != fb.model,
        output_changed,
        output_diff,
        diff_omitted,
    }
}

/// What a span answered, as text: its output payload, else its output messages (content and
/// the tool calls asked for, one per line).
pub fn output_text(s: &Span) -> Option<String> {
    if let Some(p) = &s.output {
        if !p.value.is_null() {
            return Some(p.as_text());
        }
    }
    let mut lines = Vec::new();
    for m in &s.output_messages {
        if let Some(c) = &m.content {
            lines.push(c.clone());
        }
        for t in &m.tool_calls {
            lines.push(format!(
                "→ {}({})",
                t.name.as_deref().unwrap_or("?"),
                t.arguments.as_deref().unwrap_or("")
            ));
        }
    }
    (!lines.is_empty()).then(|| lines.join("\n"))
}

/// The start of `s`, at most `max` bytes, cut on a character boundary; and whether it was cut.
fn cap(s: &str, max: usize) -> (&str, bool) {
    if s.len() <= max {
        return (s, false);
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    (&s[..end], true)
}

/// Words, each with the whitespace after it (leading whitespace is a token of its own).
fn words(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut in_space = true;
    for (i, c) in s.char_indices() {
        let space = c.is_whitespace();
        if !space && in_space && i > start {
            out.push(&s[start..i]);
            start = i;
        }
        in_space = space;
    }
    if start < s.len() {
        out.push(&s[start..]);
    }
    out
}

/// Lines, each with its newline.
fn lines(s: &str) -> Vec<&str> {
    s.split_inclusive('\n').collect()
}

/// A diff of A's and B's text (each cut to the options' cap), in words when the table fits,
/// else in lines, else the differing middle replaced whole.
pub fn diff_text(a: &str, b: &str, opts: &CompareOptions) -> TextDiff {
    let (a, a_cut) = cap(a, opts.max_text_bytes);
    let (b, b_cut) = cap(b, opts.max_text_bytes);
    let mut pieces = None;
    let mut granularity = Granularity::Words;
    for (g, split) in [
        (Granularity::Words, words as fn(&str) -> Vec<&str>),
        (Granularity::Lines, lines),
    ] {
        if let Some(p) = lcs_diff(&split(a), &split(b), opts.max_diff_cells) {
            pieces = Some(p);
            granularity = g;
            break;
        }
    }
    let pieces = pieces.unwrap_or_else(|| {
        granularity = Granularity::Whole;
        let (ta, tb) = (lines(a), lines(b));
        let pre = common_prefix(&ta, &tb);
        let suf = common_suffix(&ta[pre..], &tb[pre..]);
        let mut out = Vec::new();
        push(&mut out, DiffOp::Equal, &ta[..pre]);
        push(&mut out, DiffOp::Delete, &ta[pre..ta.len() - suf]);
        push(&mut out, DiffOp::Insert, &tb[pre..tb.len() - suf]);
        push(&mut out, DiffOp::Equal, &ta[ta.len() - suf..]);
        out
    });
    TextDiff {
        pieces,
        a_cut,
        b_cut,
        granularity,
    }
}

fn common_prefix(a: &[&str], b: &[&str]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

fn common_suffix(a: &[&str], b: &[&str]) -> usize {
    a.iter()
        .rev()
        .zip(b.iter().rev())
        .take_while(|(x, y)| x == y)
        .count()
}

/// Appends tokens as one piece, merged into the previous piece when it has the same op.
fn push(out: &mut Vec<DiffPiece>, op: DiffOp, tokens: &[&str]) {
    if tokens.is_empty() {
        return;
    }
    let text: String = tokens.concat();
    match out.last_mut() {
        Some(last) if last.op == op => last.text.push_str(&text),
        _ => out.push(DiffPiece { op, text }),
    }
}

fn intern<'t>(ids: &mut HashMap<&'t str, u32>, t: &'t str) -> u32 {
    let next = ids.len() as u32;
    *ids.entry(t).or_insert(next)
}

/// A shortest-edit diff of two token lists (Myers' greedy algorithm, whose work grows with
/// the number of differences, so two long, nearly equal outputs are cheap), or `None` when
/// the edit paths kept for the walk back would exceed `max_cells`.
fn lcs_diff(a: &[&str], b: &[&str], max_cells: usize) -> Option<Vec<DiffPiece>> {
    let pre = common_prefix(a, b);
    let suf = common_suffix(&a[pre..], &b[pre..]);
    let (ma, mb) = (&a[pre..a.len() - suf], &b[pre..b.len() - suf]);
    if ma.len().max(mb.len()) >= i32::MAX as usize / 2 {
        return None;
    }
    // Tokens as small integers, so the inner loop compares numbers, not strings.
    let mut ids: HashMap<&str, u32> = HashMap::new();
    let xa: Vec<u32> = ma.iter().map(|t| intern(&mut ids, t)).collect();
    let xb: Vec<u32> = mb.iter().map(|t| intern(&mut ids, t)).collect();
    let ops = edit_script(&xa, &xb, max_cells)?;
    let mut out = Vec::new();
    push(&mut out, DiffOp::Equal, &a[..pre]);
    let (mut i, mut j) = (0, 0);
    for op in ops {
        match op {
            DiffOp::Equal => {
                push(&mut out, op, &ma[i..i + 1]);
                i += 1;
                j += 1;
            }
            DiffOp::Delete => {
                push(&mut out, op, &ma[i..i + 1]);
                i += 1;
            }
            DiffOp::Insert => {
                push(&mut out, op, &mb[j..j + 1]);
                j += 1;
            }
        }
    }
    push(&mut out, DiffOp::Equal, &a[a.len() - suf..]);
    Some(out)
}

/// The edit script turning `a` into `b`, one op per token, found by following the furthest
/// point reached on each diagonal for 0, 1, 2, … differences; `None` past `max_cells` of kept
/// diagonals.
fn edit_script(a: &[u32], b: &[u32], max_cells: usize) -> Option<Vec<DiffOp>> {
    let (n, m) = (a.len() as i32, b.len() as i32);
    // Furthest x on diagonal k (= x - y), stored at k + d + 1 in the row of step d.
    let mut rows: Vec<Vec<i32>> = Vec::new();
    let mut kept = 0usize;
    let mut prev: Vec<i32> = vec![0; 3];
    let mut found = None;
    for d in 0..=(n + m) {
        let mut row = vec![0i32; 2 * d as usize + 3];
        let at = |k: i32, dd: i32| (k + dd + 1) as usize;
        for k in (-d..=d).step_by(2) {
            // From the diagonal above (an insertion) or the one left (a deletion), whichever
            // got further.
            let down = k == -d || (k != d && prev[at(k - 1, d - 1)] < prev[at(k + 1, d - 1)]);
            let mut x = if d == 0 {
                0
            } else if down {
                prev[at(k + 1, d - 1)]
            } else {
                prev[at(k - 1, d - 1)] + 1
            };
            let mut y = x - k;
            while x < n && y < m && a[x as usize] == b[y as usize] {
                x += 1;
                y += 1;
            }
            row[at(k, d)] = x;
            if x >= n && y >= m {
                found = Some(d);
                break;
            }
        }
        kept = kept.saturating_add(row.len());
        if kept > max_cells {
            return None;
        }
        rows.push(row.clone());
        prev = row;
        if found.is_some() {
            break;
        }
    }
    let dmax = found?;
    // Walk back from the end, one difference per step.
    let mut ops = Vec::with_capacity((n + m) as usize);
    let (mut x, mut y) = (n, m);
    for d in (1..=dmax).rev() {
        let p = &rows[d as usize - 1];
        let at = |k: i32| (k + d) as usize;
        let k = x - y;
        let down = k == -d || (k != d && p[at(k - 1)] < p[at(k + 1)]);
        let pk = if down { k + 1 } else { k - 1 };
        let px = p[at(pk)];
        let py = px - pk;
        // The common run after the step's one edit.
        let after_edit = if down { px } else { px + 1 };
        while x > after_edit {
            ops.push(DiffOp::Equal);
            x -= 1;
        }
        ops.push(if down { DiffOp::Insert } else { DiffOp::Delete });
        x = px;
        y = py;
    }
    // The common run before the first difference (on the diagonal, so x = y).
    ops.extend(std::iter::repeat_n(DiffOp::Equal, x as usize));
    ops.reverse();
    Some(ops)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::span::{Cost, Payload, Usage};
    use crate::time::Timestamp;

    const MS: u64 = 1_000_000;

    fn sid(n: u16) -> SpanId {
        let mut b = [0u8; 8];
        b[6..].copy_from_slice(&n.to_be_bytes());
        SpanId(b)
    }

    /// A span `id` under `parent`, starting `start` ms in, lasting `dur` ms.
    fn sp(id: u16, parent: Option<u16>, name: &str, start: u64, dur: u64) -> Span {
        Span {
            span_id: sid(id),
            parent_span_id: parent.map(sid),
            name: name.into(),
            start_time: Timestamp(1_000 * MS + start * MS),
            end_time: Some(Timestamp(1_000 * MS + (start + dur) * MS)),
            status: Status::Ok,
            ..Default::default()
        }
    }

    fn llm(mut s: Span, model: &str, tokens: (u64, u64), nano: i64, out: &str) -> Span {
        s.kind = SpanKind::Llm;
        s.response_model = Some(model.into());
        s.usage = Some(
            Usage {
                input_tokens: tokens.0,
                output_tokens: tokens.1,
                ..Default::default()
            }
            .normalized(),
        );
        s.cost = Some(Cost::computed_total(NanoUsd(nano)));
        s.output = Some(Payload::from_text(out, Some("text/plain")));
        s
    }

    /// Each row as `depth name#k [A] [B]`, to compare layouts at a glance.
    fn layout(c: &Comparison) -> Vec<String> {
        c.rows
            .iter()
            .map(|r| {
                format!(
                    "{}{}#{} {}{}",
                    "  ".repeat(r.depth as usize),
                    r.name,
                    r.occurrence,
                    if r.a.is_some() { "A" } else { "-" },
                    if r.b.is_some() { "B" } else { "-" }
                )
            })
            .collect()
    }

    fn text(d: &TextDiff, op: DiffOp) -> String {
        d.pieces
            .iter()
            .filter(|p| p.op == op)
            .map(|p| p.text.as_str())
            .collect()
    }

    #[test]
    fn repeated_siblings_match_in_start_order_and_extra_ones_stand_alone() {
        // A: agent with three tool calls; B: the same agent with two, and a new step.
        let a = vec![
            sp(1, None, "agent", 0, 100),
            sp(2, Some(1), "search", 10, 5),
            sp(3, Some(1), "search", 20, 7),
            sp(4, Some(1), "search", 30, 9),
            sp(5, Some(1), "answer", 50, 20),
        ];
        let b = vec![
            sp(11, None, "agent", 0, 90),
            // Listed out of order: start time decides which is the first.
            sp(13, Some(11), "search", 25, 8),
            sp(12, Some(11), "search", 12, 4),
            sp(14, Some(11), "rerank", 30, 3),
            sp(15, Some(11), "answer", 40, 30),
        ];
        let c = compare(&a, &b);
        assert_eq!(
            layout(&c),
            [
                "agent#0 AB",
                "  search#0 AB",
                "  search#1 AB",
                "  rerank#0 -B",
                "  search#2 A-",
                "  answer#0 AB",
            ]
        );
        assert_eq!(c.rows[1].b.as_ref().unwrap().span_id, sid(12));
        assert_eq!(c.rows[2].b.as_ref().unwrap().span_id, sid(13));
        let d = c.rows[2].delta.as_ref().unwrap();
        assert_eq!(d.duration_ms, Some(1.0));
        assert_eq!(c.rows[5].delta.as_ref().unwrap().duration_ms, Some(10.0));
        assert_eq!(c.rows[0].delta.as_ref().unwrap().duration_ms, Some(-10.0));
        assert!(c.rows.iter().skip(1).all(|r| r.parent_row == Some(0)));
        let t = &c.totals;
        assert_eq!((t.matched, t.only_a, t.only_b), (4, 1, 1));
        assert_eq!((t.a.span_count, t.b.span_count), (5, 5));
        assert_eq!(t.delta.duration_ms, -10.0);
        assert!(c.notes.is_empty(), "{:?}", c.notes);
    }

    #[test]
    fn missing_subtrees_on_either_side_keep_their_depth() {
        let a = vec![
            sp(1, None, "run", 0, 100),
            sp(2, Some(1), "plan", 0, 10),
            sp(3, Some(2), "llm", 1, 5),
            sp(4, Some(1), "act", 20, 10),
        ];
        let b = vec![
            sp(1, None, "run", 0, 100),
            sp(5, Some(1), "act", 20, 10),
            sp(6, Some(5), "tool", 21, 2),
            sp(7, Some(6), "http", 21, 1),
        ];
        let c = compare(&a, &b);
        assert_eq!(
            layout(&c),
            [
                "run#0 AB",
                "  plan#0 A-",
                "    llm#0 A-",
                "  act#0 AB",
                "    tool#0 -B",
                "      http#0 -B",
            ]
        );
        assert_eq!(c.rows[5].parent_row, Some(4));
        // A different root name is two unrelated trees, one per side.
        let c = compare(&[sp(1, None, "x", 0, 1)], &[sp(1, None, "y", 0, 1)]);
        assert_eq!(layout(&c), ["x#0 A-", "y#0 -B"]);
        assert!(c.rows.iter().all(|r| r.delta.is_none()));
        // An empty side.
        let c = compare(&[], &a);
        assert_eq!(c.totals.only_b, 4);
        assert_eq!(c.totals.a, TraceTotals::default());
    }

    #[test]
    fn deltas_of_tokens_cost_status_model_and_output() {
        let a = vec![
            sp(1, None, "chat", 0, 100),
            llm(
                sp(2, Some(1), "call", 0, 80),
                "gpt-4o",
                (1000, 200),
                3_000_000,
                "The quick fox jumps.",
            ),
        ];
        let mut b = vec![
            sp(1, None, "chat", 0, 150),
            llm(
                sp(2, Some(1), "call", 0, 130),
                "gpt-4o-mini",
                (1200, 150),
                500_000,
                "The quick brown fox jumps.",
            ),
        ];
        b[0].status = Status::Error;
        let c = compare(&a, &b);
        let d = c.rows[1].delta.as_ref().unwrap();
        assert_eq!(d.duration_ms, Some(50.0));
        assert_eq!((d.input_tokens, d.output_tokens), (200, -50));
        assert_eq!(d.cost_usd, Some(NanoUsd(-2_500_000)));
        assert!(d.model_changed && !d.status_changed && d.output_changed);
        let diff = d.output_diff.as_ref().unwrap();
        assert_eq!(text(diff, DiffOp::Insert), "brown ");
        assert_eq!(text(diff, DiffOp::Delete), "");
        assert_eq!(diff.granularity, Granularity::Words);
        assert!(!diff.a_cut && !diff.b_cut);
        let root = c.rows[0].delta.as_ref().unwrap();
        assert!(root.status_changed && !root.output_changed && root.output_diff.is_none());
        assert_eq!(root.cost_usd, Some(NanoUsd::ZERO));
        let t = &c.totals;
        assert_eq!((t.a.input_tokens, t.b.input_tokens), (1000, 1200));
        assert_eq!(t.delta.cost_usd, NanoUsd(-2_500_000));
        assert_eq!(t.delta.error_count, 1);
        assert_eq!(t.changed_outputs, 1);
        // An unpriced side has no cost delta: $0 would be a lie.
        let mut b2 = b.clone();
        b2[1].cost = None;
        b2[1].unpriced_reason = Some("no catalog entry".into());
        let c = compare(&a, &b2);
        let d = c.rows[1].delta.as_ref().unwrap();
        assert_eq!(d.cost_usd, None);
        assert!(c.rows[1].b.as_ref().unwrap().unpriced);
        assert_eq!(c.totals.b.unpriced_span_count, 1);
        // The JSON round-trips exactly (the API's type reads what the server wrote).
        let json = serde_json::to_value(&c).unwrap();
        let back: Comparison = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(serde_json::to_value(&back).unwrap(), json);
    }

    #[test]
    fn duplicated_span_ids_are_kept_once_and_duplicate_calls_counted_once() {
        let mut a = vec![
            sp(1, None, "root", 0, 10),
            llm(sp(2, Some(1), "call", 0, 5), "m", (10, 1), 100, "x"),
        ];
        // The same id again, as a resend with another name would be.
        a.push(sp(2, Some(1), "again", 1, 1));
        // A second record of the same provider call: shown, not counted in totals.
        let mut dup = llm(sp(3, Some(1), "sdk call", 0, 5), "m", (10, 1), 100, "x");
        dup.duplicate_of = Some(sid(2));
        a.push(dup);
        let c = compare(&a, &a[..2]);
        assert_eq!(layout(&c), ["root#0 AB", "  call#0 AB", "  sdk call#0 A-"]);
        assert_eq!(c.totals.a.span_count, 3);
        assert_eq!(c.totals.a.input_tokens, 10);
        assert_eq!(c.totals.a.cost_usd, NanoUsd(100));
        assert!(c.rows[2].a.as_ref().unwrap().duplicate);
        assert!(c
            .notes
            .iter()
            .any(|n| n.contains("trace A: 1 spans repeat")));
    }

    #[test]
    fn a_missing_parent_or_a_parent_cycle_still_shows_every_span() {
        let a = vec![
            sp(1, None, "root", 0, 10),
            // Its parent never arrived.
            sp(2, Some(99), "orphan", 2, 1),
            // Two spans naming each other as parent, and one naming itself.
            sp(3, Some(4), "loop-a", 3, 1),
            sp(4, Some(3), "loop-b", 4, 1),
            sp(5, Some(5), "self", 5, 1),
        ];
        let b = vec![sp(7, None, "root", 0, 12), sp(8, Some(77), "orphan", 2, 2)];
        let c = compare(&a, &b);
        assert_eq!(
            layout(&c),
            [
                "root#0 AB",
                "orphan#0 AB",
                "loop-a#0 A-",
                "  loop-b#0 A-",
                "self#0 A-",
            ]
        );
        assert_eq!(c.totals.a.span_count, 5);
        assert!(c
            .notes
            .iter()
            .any(|n| n.contains("trace A: 1 spans name a parent")));
        assert!(c
            .notes
            .iter()
            .any(|n| n.contains("trace B: 1 spans name a parent")));
        assert!(c.notes.iter().any(|n| n.contains("1 cycles")));
    }

    #[test]
    fn a_deep_chain_is_compared_without_recursion() {
        let chain = |n: u16| -> Vec<Span> {
            (1..=n)
                .map(|i| sp(i, (i > 1).then(|| i - 1), "step", u64::from(i), 1))
                .collect()
        };
        let c = compare(&chain(20_000), &chain(19_999));
        assert_eq!(c.rows.len(), 20_000);
        assert_eq!(c.rows.last().unwrap().depth, 19_999);
        assert_eq!((c.totals.matched, c.totals.only_a), (19_999, 1));
    }

    #[test]
    fn big_outputs_are_cut_and_the_diff_stays_bounded() {
        let opts = CompareOptions::default();
        // 200 KB each, differing in one word near the start and beyond the cap.
        let base = "lorem ipsum dolor sit amet ".repeat(8_000);
        let a = format!("alpha {base}tail-a");
        let b = format!("beta {base}tail-b");
        let d = diff_text(&a, &b, &opts);
        assert!(d.a_cut && d.b_cut);
        assert_eq!(d.granularity, Granularity::Words);
        // The cuts fall one byte apart in the repeated text, so its ends differ a little too.
        let (del, ins) = (text(&d, DiffOp::Delete), text(&d, DiffOp::Insert));
        assert!(del.starts_with("alpha ") && del.len() < 40, "{:.80}", del);
        assert!(ins.starts_with("beta ") && ins.len() < 40, "{:.80}", ins);
        let total: usize = d.pieces.iter().map(|p| p.text.len()).sum();
        assert!(total <= 2 * opts.max_text_bytes, "{total}");
        // Texts with nothing in common: too big a word table, so lines, then the whole middle.
        let x: String = (0..4_000).map(|i| format!("a{i} ")).collect();
        let y: String = (0..4_000).map(|i| format!("b{i} ")).collect();
        let d = diff_text(&x, &y, &opts);
        assert_eq!(d.granularity, Granularity::Lines);
        assert_eq!(
            text(&d, DiffOp::Delete).len(),
            x.len().min(opts.max_text_bytes)
        );
        let xl = x.replace(' ', "\n");
        let tight = CompareOptions {
            max_diff_cells: 100,
            ..opts
        };
        let d = diff_text(&xl, &y.replace(' ', "\n"), &tight);
        assert_eq!(d.granularity, Granularity::Whole);
        assert!(text(&d, DiffOp::Insert).starts_with("b0\nb1\n"));
        let xl: String = xl.lines().take(100).map(|l| format!("{l}\n")).collect();
        let yl = format!("new\n{xl}");
        let d = diff_text(
            &xl,
            &yl,
            &CompareOptions {
                max_diff_cells: 10,
                ..opts
            },
        );
        assert_eq!(d.granularity, Granularity::Words);
        assert_eq!(text(&d, DiffOp::Insert), "new\n");
        // Many changed outputs: diffs stop at the comparison's budget, and say so.
        let many = |tag: &str| -> Vec<Span> {
            let mut v = vec![sp(1, None, "root", 0, 1)];
            for i in 0..50u16 {
                let mut s = sp(i + 2, Some(1), "step", u64::from(i), 1);
                s.output = Some(Payload::from_text(
                    &format!("{tag} {}", "z".repeat(1000)),
                    None,
                ));
                v.push(s);
            }
            v
        };
        let small = CompareOptions {
            max_diff_bytes: 10_000,
            ..opts
        };
        let c = compare_with(&many("a"), &many("b"), &small);
        let with = c
            .rows
            .iter()
            .filter_map(|r| r.delta.as_ref())
            .filter(|d| d.output_diff.is_some())
            .count();
        let without = c
            .rows
            .iter()
            .filter_map(|r| r.delta.as_ref())
            .filter(|d| d.diff_omitted)
            .count();
        assert_eq!(c.totals.changed_outputs, 50);
        assert_eq!(with + without, 50);
        assert!((5..=11).contains(&with), "{with}");
        assert!(c.notes.iter().any(|n| n.contains("have no diff")));
    }

    #[test]
    fn words_lines_and_messages() {
        assert_eq!(words("  a bc\n d"), ["  ", "a ", "bc\n ", "d"]);
        assert_eq!(lines("a\nb\n\nc"), ["a\n", "b\n", "\n", "c"]);
        let d = diff_text("the cat sat", "the dog sat", &CompareOptions::default());
        assert_eq!(
            d.pieces,
            [
                DiffPiece {
                    op: DiffOp::Equal,
                    text: "the ".into()
                },
                DiffPiece {
                    op: DiffOp::Delete,
                    text: "cat ".into()
                },
                DiffPiece {
                    op: DiffOp::Insert,
                    text: "dog ".into()
                },
                DiffPiece {
                    op: DiffOp::Equal,
                    text: "sat".into()
                },
            ]
        );
        let d = diff_text("", "", &CompareOptions::default());
        assert!(d.pieces.is_empty());
        // A cut inside a multi-byte character backs off to its start.
        let (s, cut) = cap("ééé", 3);
        assert_eq!((s, cut), ("é", true));
        let mut s = sp(1, None, "x", 0, 1);
        assert_eq!(output_text(&s), None);
        s.output_messages = vec![crate::span::Message {
            content: Some("calling".into()),
            tool_calls: vec![crate::span::ToolCallRef {
                name: Some("search".into()),
                arguments: Some("{\"q\":1}".into()),
                id: None,
            }],
            ..Default::default()
        }];
        assert_eq!(output_text(&s).unwrap(), "calling\n→ search({\"q\":1})");
    }

    proptest::proptest! {
        /// Whatever the texts and bounds, A is the kept and removed pieces and B the kept and
        /// added ones, and no two neighbouring pieces share an op.
        #[test]
        fn the_pieces_rebuild_both_texts(
            a in "[ab \n]{0,60}",
            b in "[ab \n]{0,60}",
            cells in 0usize..200,
        ) {
            let opts = CompareOptions { max_diff_cells: cells, ..Default::default() };
            let d = diff_text(&a, &b, &opts);
            let side = |skip: DiffOp| -> String {
                d.pieces.iter().filter(|p| p.op != skip).map(|p| p.text.as_str()).collect()
            };
            proptest::prop_assert_eq!(side(DiffOp::Insert), a);
            proptest::prop_assert_eq!(side(DiffOp::Delete), b);
            proptest::prop_assert!(d.pieces.windows(2).all(|w| w[0].op != w[1].op));
        }
    }
}
