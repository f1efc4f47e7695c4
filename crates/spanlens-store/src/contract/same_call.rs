//! One count per provider call (issue #12 item 6): a framework span and the provider SDK's span
//! of the same call are both kept, but every total counts the call once, whatever order and
//! grouping the spans arrive in.

use super::build::*;
use super::{fresh, StoreHarness, TestDatabase};
use crate::prelude::*;
use crate::{GroupBy, MetricsQuery, SessionQuery};
use spanlens_core::{NanoUsd, Span, SpanId, Timestamp};
use std::sync::Arc;

const DAY: u64 = 86_400_000 * MS;

/// Trace 1: an agent (1) whose framework LLM span (2) wraps the SDK's span of the same call
/// (3, which carries the response id), then a second, different call (4). Session `s1`.
fn trace() -> Vec<Span> {
    let mut root = span(1, 1, None, "agent", 0, 2_000);
    root.session_id = Some("s1".into());
    let framework = llm(1, 2, Some(1), "gpt-4o", "openai", 100, 800, 100, 20, 1_000);
    let mut sdk = llm(1, 3, Some(2), "gpt-4o", "openai", 120, 760, 100, 20, 1_000);
    sdk.response_id = Some("chatcmpl-1".into());
    let other = llm(1, 4, Some(1), "gpt-4o", "openai", 1_000, 500, 50, 5, 300);
    vec![root, framework, sdk, other]
}

/// Everything the issue lists a total for, as comparable text.
async fn totals(store: &dyn Store) -> String {
    let t = store.get_trace("p", tid(1)).await.unwrap().unwrap();
    let s = &t.summary;
    let mut out = format!(
        "trace: in {} out {} total {} cost {} unpriced {} spans {}\n",
        s.input_tokens,
        s.output_tokens,
        s.total_tokens,
        s.total_cost.0,
        s.unpriced_span_count,
        s.span_count
    );
    let sessions = store.list_sessions(&SessionQuery::new("p")).await.unwrap();
    for x in &sessions.items {
        out += &format!(
            "session {}: in {} out {} cost {}\n",
            x.session_id, x.input_tokens, x.output_tokens, x.total_cost.0
        );
    }
    // Unbounded (the spans at the edges) and over whole days (the rollup rows).
    for (from, to) in [
        (None, None),
        (Some(Timestamp(T0 - DAY)), Some(Timestamp(T0 + 2 * DAY))),
    ] {
        let mut q = MetricsQuery::new("p", GroupBy::Model);
        q.from = from;
        q.to = to;
        for r in store.metrics(&q).await.unwrap() {
            out += &format!(
                "metrics {:?}: spans {} in {} out {} total {} cost {}\n",
                r.key, r.span_count, r.input_tokens, r.output_tokens, r.total_tokens, r.cost.0
            );
        }
        for d in store.daily_cost(&q).await.unwrap() {
            out += &format!("daily {:?} {}: {}\n", d.key, d.day, d.cost.0);
        }
    }
    out
}

/// Each span of trace 1 and the span it duplicates, if any.
async fn duplicates(store: &dyn Store) -> Vec<(SpanId, Option<SpanId>)> {
    let t = store.get_trace("p", tid(1)).await.unwrap().unwrap();
    let mut v: Vec<_> = t
        .spans
        .iter()
        .map(|s| (s.span_id, s.duplicate_of))
        .collect();
    v.sort();
    v
}

/// A store with the spans of [`trace`] written in the given commits (span numbers).
async fn written(
    h: &dyn StoreHarness,
    batches: &[&[u64]],
) -> (Box<dyn TestDatabase>, Arc<dyn Store>) {
    let spans = trace();
    let (db, store) = fresh(h).await;
    for b in batches {
        let part: Vec<Span> = b.iter().map(|&i| spans[i as usize - 1].clone()).collect();
        store.write("p", part).await.unwrap();
    }
    (db, store)
}

/// A framework span and the SDK span of the same provider call are both kept, and every total
/// counts the call once.
pub async fn a_call_recorded_twice_counts_once_in_every_total(h: &dyn StoreHarness) {
    let (_db, store) = written(h, &[&[1, 2, 3, 4]]).await;
    let t = totals(&*store).await;
    assert!(
        t.starts_with("trace: in 150 out 25 total 175 cost 1300 unpriced 0 spans 4\n"),
        "{t}"
    );
    assert!(t.contains("session s1: in 150 out 25 cost 1300\n"), "{t}");
    // Every span is still listed, each LLM span with its own usage.
    assert!(
        t.contains("metrics Some(\"gpt-4o\"): spans 3 in 150 out 25 total 175 cost 1300\n"),
        "{t}"
    );
    assert_eq!(
        t.matches("daily Some(\"gpt-4o\") 20089: 1300\n").count(),
        2,
        "{t}"
    );
    // Both spans are kept; the SDK's span (3) is the same call as the framework's (2), which is
    // counted (same usage and cost, smaller span id).
    assert_eq!(
        duplicates(&*store).await,
        vec![
            (sid(1), None),
            (sid(2), None),
            (sid(3), Some(sid(2))),
            (sid(4), None)
        ]
    );
    let detail = store.get_trace("p", tid(1)).await.unwrap().unwrap();
    let sdk = detail.spans.iter().find(|s| s.span_id == sid(3)).unwrap();
    assert_eq!(sdk.usage.as_ref().unwrap().input_tokens, 100);
    assert_eq!(sdk.cost.as_ref().unwrap().amounts.total, NanoUsd(1_000));
}

/// Whichever of the two records of a call arrives first, and however the spans are batched,
/// the totals and the duplicate marks are the same.
pub async fn late_arrival_in_either_order_gives_the_same_totals(h: &dyn StoreHarness) {
    let (_together_db, together) = written(h, &[&[1, 2, 3, 4]]).await;
    let want = totals(&*together).await;
    let want_dups = duplicates(&*together).await;
    for batches in [
        // The framework span first, the SDK span later.
        &[&[1u64, 2, 4][..], &[3][..]][..],
        // The SDK span first: the counted span arrives after its duplicate.
        &[&[1, 3, 4], &[2]],
        // One span per commit, children first.
        &[&[3], &[4], &[2], &[1]],
        &[&[2], &[3], &[1], &[4]],
    ] {
        let (_db, store) = written(h, batches).await;

        assert_eq!(totals(&*store).await, want, "batches {batches:?}");
        assert_eq!(duplicates(&*store).await, want_dups, "batches {batches:?}");
    }
}

/// A duplicate sent again with other usage is another call and counts again; sent back as it
/// was, it is the same call again.
pub async fn a_span_sent_again_with_other_usage_counts_again(h: &dyn StoreHarness) {
    let (_db, store) = written(h, &[&[1, 2, 3, 4]]).await;
    let deduped = totals(&*store).await;
    // The SDK span re-sent with one more output token: no longer the framework span's call
    // (only the SDK span has an id, so the fingerprint decides).
    let mut changed = trace()[2].clone();
    changed.usage.as_mut().unwrap().output_tokens = 21;
    changed.usage.as_mut().unwrap().total_tokens = 121;
    store.write("p", vec![changed]).await.unwrap();
    let t = totals(&*store).await;
    assert!(
        t.starts_with("trace: in 250 out 46 total 296 cost 2300 unpriced 0 spans 4\n"),
        "{t}"
    );
    assert!(
        t.contains("spans 3 in 250 out 46 total 296 cost 2300\n"),
        "{t}"
    );
    assert!(duplicates(&*store).await.iter().all(|(_, d)| d.is_none()));
    // And back: the same call again, counted once.
    store.write("p", vec![trace()[2].clone()]).await.unwrap();
    assert_eq!(totals(&*store).await, deduped);
    // The counted span re-sent unchanged changes nothing; nor does the duplicate, whose new row
    // must count nothing again.
    store.write("p", vec![trace()[1].clone()]).await.unwrap();
    assert_eq!(totals(&*store).await, deduped);
    store.write("p", vec![trace()[2].clone()]).await.unwrap();
    assert_eq!(totals(&*store).await, deduped);
}

/// Calls that do not overlap, and the same call in another trace, are not merged.
pub async fn separate_calls_and_other_traces_are_not_merged(h: &dyn StoreHarness) {
    let mut spans = trace();
    // The "SDK" span ends before the framework span starts: two calls.
    spans[2].start_time = Timestamp(T0 + 1_500 * MS);
    spans[2].end_time = Some(Timestamp(T0 + 1_600 * MS));
    spans[2].parent_span_id = Some(sid(1));
    // An identical call in another trace.
    let mut elsewhere = spans[1].clone();
    elsewhere.trace_id = tid(2);
    spans.push(elsewhere);
    let (_db, store) = fresh(h).await;
    store.write("p", spans).await.unwrap();
    let t = totals(&*store).await;
    assert!(
        t.starts_with("trace: in 250 out 45 total 295 cost 2300"),
        "{t}"
    );
    assert!(duplicates(&*store).await.iter().all(|(_, d)| d.is_none()));
    let other = store.get_trace("p", tid(2)).await.unwrap().unwrap();
    assert_eq!(other.summary.total_cost, NanoUsd(1_000));
}

/// A duplicate without a price does not make its trace count an unpriced call.
pub async fn an_unpriced_duplicate_is_not_counted_as_unpriced(h: &dyn StoreHarness) {
    let mut spans = trace();
    // The SDK span's model is unknown to the catalog; the framework reported a cost.
    spans[2].cost = None;
    spans[2].unpriced_reason = Some("no price for gpt-4o".into());
    let (_db, store) = fresh(h).await;
    store.write("p", spans).await.unwrap();
    let t = store.get_trace("p", tid(1)).await.unwrap().unwrap();
    assert_eq!(t.summary.unpriced_span_count, 0);
    assert_eq!(t.summary.total_cost, NanoUsd(1_300));
}

/// The stored-JSON trace read marks the duplicate with the span counted in its place.
pub async fn trace_json_marks_the_duplicate(h: &dyn StoreHarness) {
    let (_db, store) = written(h, &[&[3], &[1, 2, 4]]).await;
    let t = store.get_trace_json("p", tid(1)).await.unwrap().unwrap();
    let spans: Vec<serde_json::Value> = t
        .spans
        .iter()
        .map(|s| serde_json::from_str(s).unwrap())
        .collect();
    let sdk = spans
        .iter()
        .find(|s| s["span_id"] == sid(3).to_hex())
        .unwrap();
    assert_eq!(sdk["duplicate_of"], sid(2).to_hex());
    assert_eq!(sdk["usage"]["input_tokens"], 100);
    let n = spans
        .iter()
        .filter(|s| s.get("duplicate_of").is_some())
        .count();
    assert_eq!(n, 1);
}
