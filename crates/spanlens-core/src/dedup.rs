//! One count per provider call: which LLM spans of a trace recorded the same call.
//!
//! Two instrumentations often record one provider call: a framework span (Traceloop, Langfuse,
//! LangChain) and the provider SDK's own span, nested or side by side. Summing both would
//! double the call's tokens and cost, so the spans of such a call form a group, one of them is
//! counted and the others are marked as duplicates of it. Both spans are kept.
//!
//! Two LLM spans with usage are the same call when
//! - both carry a response id: the ids are equal and the providers of one family; or
//! - one or both carry none: they share a model (requested or answering), report identical
//!   usage (all six counts), are siblings or parent and child, and their times overlap.
//!
//! The counted span of a group is chosen from the group alone (most non-zero token counts,
//! then the most usage detail, then a cost present, then the smallest span id), so the outcome
//! does not depend on the order the spans arrived in.

use crate::ids::SpanId;
use crate::span::{Span, SpanKind};
use std::collections::{BTreeMap, HashMap};

/// Calls compared with each later-starting call of identical usage that overlaps it, at most.
/// Bounds the work on a trace of many simultaneous calls with identical usage (a load test);
/// real duplicates start within microseconds of each other, well within the first few.
pub const MAX_COMPARED: usize = 64;

/// What the rule reads of one LLM span.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Call {
    /// The LLM span.
    pub span_id: SpanId,
    /// Its parent (a framework span often wraps the SDK's own span of the same call).
    pub parent_span_id: Option<SpanId>,
    /// Non-blank response id.
    pub response_id: Option<String>,
    /// Provider.
    pub provider: Option<String>,
    /// Model asked for.
    pub request_model: Option<String>,
    /// Model that answered.
    pub response_model: Option<String>,
    /// Start, ns.
    pub start_ns: u64,
    /// End, ns (the start for an open span).
    pub end_ns: u64,
    /// Input, output, cache read, cache write, reasoning and total tokens.
    pub tokens: [u64; 6],
    /// The span has a cost.
    pub priced: bool,
    /// Usage breakdowns beyond the six counts (`usage.extra`, e.g. the one-hour part of the cache
    /// writes): of two records of one call, the more detailed one prices it exactly.
    pub detail: u32,
}

impl Call {
    /// The call a span records: `None` unless it is an LLM span with some token count.
    pub fn of(span: &Span) -> Option<Call> {
        if span.kind != SpanKind::Llm {
            return None;
        }
        let u = span.usage.as_ref()?;
        let tokens = [
            u.input_tokens,
            u.output_tokens,
            u.cache_read_tokens,
            u.cache_write_tokens,
            u.reasoning_tokens,
            u.total_tokens,
        ];
        if tokens.iter().all(|t| *t == 0) {
            return None;
        }
        let start_ns = span.start_time.0;
        Some(Call {
            span_id: span.span_id,
            parent_span_id: span.parent_span_id,
            response_id: non_blank(span.response_id.as_deref()),
            provider: non_blank(span.provider.as_deref()),
            request_model: non_blank(span.request_model.as_deref()),
            response_model: non_blank(span.response_model.as_deref()),
            start_ns,
            end_ns: span.end_time.map_or(start_ns, |e| e.0.max(start_ns)),
            tokens,
            priced: span.cost.is_some(),
            detail: u32::try_from(u.extra.len()).unwrap_or(u32::MAX),
        })
    }

    /// Sort key of the counted span of a group: smallest wins.
    fn rank(&self) -> (usize, u32, bool, [u8; 8]) {
        let nonzero = self.tokens.iter().filter(|t| **t > 0).count();
        (
            usize::MAX - nonzero,
            u32::MAX - self.detail,
            !self.priced,
            self.span_id.0,
        )
    }
}

fn non_blank(s: Option<&str>) -> Option<String> {
    s.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Providers whose ids are one namespace: Azure OpenAI answers with OpenAI's ids, and a
/// framework may name either for the same call.
fn family(provider: &str) -> &str {
    if provider.eq_ignore_ascii_case("azure") {
        "openai"
    } else {
        provider
    }
}

/// True unless both name a provider and the providers are of different families.
fn same_family(a: &Call, b: &Call) -> bool {
    match (&a.provider, &b.provider) {
        (Some(p), Some(q)) => family(p).eq_ignore_ascii_case(family(q)),
        _ => true,
    }
}

fn share_a_model(a: &Call, b: &Call) -> bool {
    let of = |c: &Call| [c.request_model.clone(), c.response_model.clone()];
    let theirs = of(b);
    of(a)
        .iter()
        .flatten()
        .any(|m| theirs.iter().flatten().any(|n| m.eq_ignore_ascii_case(n)))
}

/// Siblings under one parent, or parent and child.
fn related(a: &Call, b: &Call) -> bool {
    (a.parent_span_id.is_some() && a.parent_span_id == b.parent_span_id)
        || a.parent_span_id == Some(b.span_id)
        || b.parent_span_id == Some(a.span_id)
}

/// True when two calls of one trace are the same provider call (the rule of this module).
pub fn same_call(a: &Call, b: &Call) -> bool {
    if a.span_id == b.span_id || !same_family(a, b) {
        return false;
    }
    if let (Some(x), Some(y)) = (&a.response_id, &b.response_id) {
        return x == y;
    }
    a.tokens == b.tokens
        && share_a_model(a, b)
        && related(a, b)
        && a.start_ns <= b.end_ns
        && b.start_ns <= a.end_ns
}

/// Groups being joined; a group never holds two different response ids (two ids are two calls,
/// even when a span without an id looks like both).
struct Groups<'a> {
    parent: Vec<usize>,
    response_id: Vec<Option<&'a str>>,
}

impl<'a> Groups<'a> {
    fn root(&mut self, mut i: usize) -> usize {
        while self.parent[i] != i {
            self.parent[i] = self.parent[self.parent[i]];
            i = self.parent[i];
        }
        i
    }

    fn join(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.root(a), self.root(b));
        if ra == rb {
            return;
        }
        let (ia, ib) = (self.response_id[ra], self.response_id[rb]);
        if matches!((ia, ib), (Some(x), Some(y)) if x != y) {
            return;
        }
        let (keep, gone) = (ra.min(rb), ra.max(rb));
        self.parent[gone] = keep;
        self.response_id[keep] = ia.or(ib);
    }
}

/// For each call of one trace, the index of the call counted in its place, or `None` when it
/// is counted itself. The outcome depends on the set of calls only, not on their order.
pub fn duplicates(calls: &[Call]) -> Vec<Option<usize>> {
    // Work in a canonical order so every arrival order makes the same joins.
    let mut order: Vec<usize> = (0..calls.len()).collect();
    order.sort_by_key(|&i| (calls[i].start_ns, calls[i].span_id.0));
    let mut g = Groups {
        parent: (0..calls.len()).collect(),
        response_id: calls.iter().map(|c| c.response_id.as_deref()).collect(),
    };
    // Same response id: one call wherever the spans sit.
    let mut by_id: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for &i in &order {
        if let Some(id) = calls[i].response_id.as_deref() {
            by_id.entry(id).or_default().push(i);
        }
    }
    for ids in by_id.values() {
        for (n, &i) in ids.iter().enumerate() {
            for &j in ids[n + 1..].iter().take(MAX_COMPARED) {
                if same_call(&calls[i], &calls[j]) {
                    g.join(i, j);
                }
            }
        }
    }
    // Identical usage: compare each call with the later-starting ones that overlap it.
    let mut by_usage: HashMap<[u64; 6], Vec<usize>> = HashMap::new();
    for &i in &order {
        by_usage.entry(calls[i].tokens).or_default().push(i);
    }
    let mut buckets: Vec<&Vec<usize>> = by_usage.values().filter(|v| v.len() > 1).collect();
    buckets.sort_by_key(|v| v[0]);
    for bucket in buckets {
        for (n, &i) in bucket.iter().enumerate() {
            for &j in bucket[n + 1..]
                .iter()
                .take_while(|&&j| calls[j].start_ns <= calls[i].end_ns)
                .take(MAX_COMPARED)
            {
                if same_call(&calls[i], &calls[j]) {
                    g.join(i, j);
                }
            }
        }
    }
    let mut counted: HashMap<usize, usize> = HashMap::new();
    for i in 0..calls.len() {
        let r = g.root(i);
        let best = counted.entry(r).or_insert(i);
        if calls[i].rank() < calls[*best].rank() {
            *best = i;
        }
    }
    (0..calls.len())
        .map(|i| {
            let r = g.root(i);
            let best = counted[&r];
            (best != i).then_some(best)
        })
        .collect()
}

/// Sets `duplicate_of` on every span that recorded the same provider call as another span of
/// its trace (and clears it on the others): what the store does, for spans held in memory.
pub fn mark_duplicates(spans: &mut [Span]) {
    let mut by_trace: BTreeMap<[u8; 16], Vec<(usize, Call)>> = BTreeMap::new();
    for (i, s) in spans.iter_mut().enumerate() {
        s.duplicate_of = None;
        if let Some(c) = Call::of(s) {
            by_trace.entry(s.trace_id.0).or_default().push((i, c));
        }
    }
    for calls in by_trace.into_values() {
        let only: Vec<Call> = calls.iter().map(|(_, c)| c.clone()).collect();
        for (n, d) in duplicates(&only).into_iter().enumerate() {
            if let Some(best) = d {
                spans[calls[n].0].duplicate_of = Some(only[best].span_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::TraceId;
    use crate::span::{Cost, CostBreakdown, CostSource, Usage};
    use crate::time::Timestamp;

    fn llm(id: u8, parent: Option<u8>, start: u64, end: u64) -> Span {
        Span {
            trace_id: TraceId([1; 16]),
            span_id: SpanId([id; 8]),
            parent_span_id: parent.map(|p| SpanId([p; 8])),
            name: format!("call {id}"),
            kind: SpanKind::Llm,
            start_time: Timestamp(start),
            end_time: Some(Timestamp(end)),
            provider: Some("openai".into()),
            request_model: Some("gpt-4o".into()),
            usage: Some(
                Usage {
                    input_tokens: 100,
                    output_tokens: 20,
                    ..Default::default()
                }
                .normalized(),
            ),
            ..Default::default()
        }
    }

    fn priced(mut s: Span) -> Span {
        s.cost = Some(Cost {
            source: CostSource::Computed,
            amounts: CostBreakdown::default(),
            pricing_id: None,
            pricing_version: None,
            computed: None,
        });
        s
    }

    fn marks(spans: &[Span]) -> Vec<Option<u8>> {
        let mut s = spans.to_vec();
        mark_duplicates(&mut s);
        s.iter().map(|s| s.duplicate_of.map(|d| d.0[0])).collect()
    }

    #[test]
    fn nested_framework_and_sdk_spans_without_ids_are_one_call() {
        // The framework span (2) wraps the SDK span (3); both under the agent (1).
        let outer = llm(2, Some(1), 100, 900);
        let inner = llm(3, Some(2), 120, 880);
        assert_eq!(marks(&[outer.clone(), inner.clone()]), [None, Some(2)]);
        // Whichever arrives first.
        assert_eq!(marks(&[inner, outer]), [Some(2), None]);
    }

    #[test]
    fn siblings_under_one_parent_are_one_call() {
        let a = llm(5, Some(1), 100, 900);
        let b = llm(4, Some(1), 150, 950);
        assert_eq!(marks(&[a, b]), [Some(4), None]);
    }

    #[test]
    fn same_response_id_is_one_call_even_with_other_usage_and_times() {
        let mut a = llm(7, Some(1), 100, 200);
        let mut b = llm(3, None, 5_000, 6_000);
        a.response_id = Some("chatcmpl-1".into());
        b.response_id = Some("chatcmpl-1".into());
        b.usage.as_mut().unwrap().reasoning_tokens = 5;
        // 7 has fewer non-zero counts than 3, so 3 is counted.
        assert_eq!(marks(&[a.clone(), b.clone()]), [Some(3), None]);
        // Another provider family: not the same call.
        b.provider = Some("anthropic".into());
        assert_eq!(marks(&[a.clone(), b.clone()]), [None, None]);
        // Azure answers with OpenAI's ids.
        b.provider = Some("azure".into());
        assert_eq!(marks(&[a, b]), [Some(3), None]);
    }

    #[test]
    fn different_response_ids_are_two_calls() {
        let mut a = llm(2, Some(1), 100, 900);
        let mut b = llm(3, Some(2), 120, 880);
        a.response_id = Some("chatcmpl-1".into());
        b.response_id = Some("chatcmpl-2".into());
        assert_eq!(marks(&[a.clone(), b.clone()]), [None, None]);
        // A span without an id that matches both by fingerprint joins only one of them.
        let c = llm(4, Some(2), 130, 870);
        let m = marks(&[a, b, c]);
        assert_eq!(m.iter().filter(|d| d.is_some()).count(), 1);
        assert_eq!(m[2], Some(2));
    }

    #[test]
    fn one_id_missing_falls_back_to_the_fingerprint() {
        let mut a = llm(2, Some(1), 100, 900);
        let b = llm(3, Some(2), 120, 880);
        a.response_id = Some("chatcmpl-1".into());
        assert_eq!(marks(&[a, b]), [None, Some(2)]);
    }

    #[test]
    fn times_that_do_not_overlap_are_two_calls() {
        let a = llm(2, Some(1), 100, 200);
        let b = llm(3, Some(1), 300, 400);
        assert_eq!(marks(&[a, b]), [None, None]);
    }

    #[test]
    fn different_usage_or_model_or_place_are_two_calls() {
        let a = llm(2, Some(1), 100, 900);
        let mut b = llm(3, Some(1), 120, 880);
        b.usage.as_mut().unwrap().output_tokens = 21;
        assert_eq!(marks(&[a.clone(), b]), [None, None]);
        let mut b = llm(3, Some(1), 120, 880);
        b.request_model = Some("gpt-4o-mini".into());
        assert_eq!(marks(&[a.clone(), b]), [None, None]);
        // Cousins (different parents, neither the other's parent).
        let b = llm(3, Some(9), 120, 880);
        assert_eq!(marks(&[a.clone(), b]), [None, None]);
        // The answering model of one is the requested model of the other.
        let mut b = llm(3, Some(1), 120, 880);
        b.request_model = None;
        b.response_model = Some("GPT-4o".into());
        assert_eq!(marks(&[a, b]), [None, Some(2)]);
    }

    #[test]
    fn different_traces_are_never_one_call() {
        let a = llm(2, Some(1), 100, 900);
        let mut b = llm(3, Some(2), 120, 880);
        b.trace_id = TraceId([2; 16]);
        assert_eq!(marks(&[a, b]), [None, None]);
    }

    #[test]
    fn only_llm_spans_with_usage_take_part() {
        let a = llm(2, Some(1), 100, 900);
        let mut b = llm(3, Some(2), 120, 880);
        b.kind = SpanKind::Embedding;
        assert_eq!(marks(&[a.clone(), b]), [None, None]);
        let mut b = llm(3, Some(2), 120, 880);
        b.usage = Some(Usage::default());
        let mut c = a.clone();
        c.span_id = SpanId([4; 8]);
        c.usage = Some(Usage::default());
        assert_eq!(marks(&[b, c]), [None, None]);
    }

    #[test]
    fn the_counted_span_has_the_most_complete_usage_then_a_cost() {
        let a = llm(2, Some(1), 100, 900);
        let b = priced(llm(3, Some(2), 120, 880));
        assert_eq!(marks(&[a, b]), [Some(3), None]);
    }

    #[test]
    fn of_two_equal_records_the_one_with_more_usage_detail_is_counted() {
        // Traceloop's Anthropic span and the Anthropic SDK's own span of one call: the same
        // counts, but only the SDK's splits the cache writes by TTL (priced apart).
        let mut framework = priced(llm(2, Some(1), 100, 900));
        let mut sdk = priced(llm(9, Some(1), 101, 899));
        framework.response_id = Some("msg_1".into());
        sdk.response_id = Some("msg_1".into());
        sdk.usage
            .as_mut()
            .unwrap()
            .extra
            .insert(Usage::CACHE_WRITE_1H.into(), 0);
        // The larger span id wins on detail, in either order.
        assert_eq!(marks(&[framework.clone(), sdk.clone()]), [Some(9), None]);
        assert_eq!(marks(&[sdk, framework]), [None, Some(9)]);
    }

    #[test]
    fn three_records_of_one_call_are_counted_once_in_any_order() {
        let spans = vec![
            llm(2, Some(1), 100, 900),
            llm(3, Some(2), 110, 890),
            llm(4, Some(3), 120, 880),
        ];
        let want = [None, Some(2), Some(2)];
        assert_eq!(marks(&spans), want);
        let mut rev = spans.clone();
        rev.reverse();
        let mut got = marks(&rev);
        got.reverse();
        assert_eq!(got, want);
    }
}
