//! Full-text search: traces one of whose spans holds every word of a query in its name, input,
//! output or messages, whole words, case-insensitive, on every store alike.

use super::build::*;
use super::{fresh, StoreHarness};
use crate::prelude::*;
use crate::{ListQuery, StoreError};
use spanlens_core::span::{Message, Payload};
use spanlens_core::{Span, SpanKind, Status};
use std::collections::BTreeSet;

const TRACES: u64 = 30;

/// Trace `i`: a root named `task {i}`, an LLM span told `Where is
/// order {i}?` (`… about a refund` when `i % 3 == 0`) answering `Thirty days.` when
/// `i % 5 == 0`, and for trace 7 a tool span whose JSON input holds `Café Über`. Trace 29
/// holds `refund` and `thirty` in two different spans. Every fourth trace (from 1) failed.
fn spans_of(i: u64) -> Vec<Span> {
    let mut root = span(i, i * 10, None, &format!("task {i}"), i * 1000, 500);
    if i % 4 == 1 {
        root.status = Status::Error;
    }
    let mut call = llm(
        i,
        i * 10 + 1,
        Some(i * 10),
        "gpt-4o",
        "openai",
        i * 1000 + 10,
        100,
        5,
        5,
        1,
    );
    let asked = match i % 3 {
        0 => format!("Where is order {i}? It is about a REFUND."),
        _ => format!("Where is order {i}?"),
    };
    call.input_messages = vec![Message {
        role: Some("user".into()),
        content: Some(asked),
        ..Default::default()
    }];
    if i % 5 == 0 {
        call.output = Some(Payload::from_text("Thirty days.", Some("text/plain")));
    }
    let mut out = vec![root, call];
    if i == 7 {
        let mut tool = span(i, i * 10 + 2, Some(i * 10), "lookup", i * 1000 + 200, 50);
        tool.kind = SpanKind::Tool;
        tool.input = Some(Payload::from_text(r#"{"query": "Café Über"}"#, None));
        out.push(tool);
    }
    if i == 29 {
        let mut other = span(i, i * 10 + 3, Some(i * 10), "answer", i * 1000 + 300, 50);
        other.output = Some(Payload::from_text("thirty", Some("text/plain")));
        out.push(other);
    }
    out
}

/// The trace numbers a content query finds in project `p`, walking every page of `limit`.
async fn found(store: &dyn Store, content: &str, limit: u32) -> BTreeSet<u64> {
    found_in(store, "p", content, limit).await
}

async fn found_in(store: &dyn Store, project: &str, content: &str, limit: u32) -> BTreeSet<u64> {
    let mut q = ListQuery::new(project);
    q.filter.content = Some(content.into());
    q.limit = limit;
    let mut out = BTreeSet::new();
    for _ in 0..100 {
        let page = store.list_traces(&q).await.unwrap();
        assert!(page.items.len() <= limit as usize);
        for t in &page.items {
            let n = u64::from_be_bytes(t.trace_id.0[8..].try_into().unwrap()) - 1;
            assert!(out.insert(n), "trace {n} came twice for {content:?}");
        }
        match page.next_cursor {
            Some(c) => q.cursor = Some(c),
            None => return out,
        }
    }
    panic!("more than 100 pages for {content:?}");
}

fn numbers(f: impl Fn(u64) -> bool) -> BTreeSet<u64> {
    (0..TRACES).filter(|i| f(*i)).collect()
}

/// Whole words, any case, all in one span; names are searched too; pages, other filters and
/// outcome counts agree; a query with no word or too many is refused.
pub async fn content_search_finds_traces_by_the_words_one_span_holds(h: &dyn StoreHarness) {
    let (_db, store) = fresh(h).await;
    let all: Vec<Span> = (0..TRACES).flat_map(spans_of).collect();
    for chunk in all.chunks(11) {
        store.write("p", chunk.to_vec()).await.unwrap();
    }
    let refund = numbers(|i| i % 3 == 0);
    assert_eq!(found(&*store, "refund", 50).await, refund);
    assert_eq!(found(&*store, "Refund", 4).await, refund, "paged by 4");
    assert_eq!(
        found(&*store, "REFUND order", 1).await,
        refund,
        "paged by 1"
    );
    assert_eq!(
        found(&*store, "thirty days", 50).await,
        numbers(|i| i % 5 == 0)
    );
    assert_eq!(
        found(&*store, "refund; thirty!", 50).await,
        numbers(|i| i % 15 == 0)
    );
    assert_eq!(found(&*store, "order 17", 50).await, [17].into());
    assert_eq!(found(&*store, "café über", 3).await, [7].into());
    assert!(
        found(&*store, "refunds", 50).await.is_empty(),
        "whole words"
    );
    assert!(
        found(&*store, "user", 50).await.is_empty(),
        "a role is not content"
    );
    assert_eq!(found(&*store, "lookup", 50).await, [7].into(), "a name");
    assert_eq!(
        found(&*store, "LOOKUP café", 50).await,
        [7].into(),
        "a name and content of one span"
    );
    assert_eq!(found(&*store, "task 12", 50).await, [12].into());
    assert!(
        found(&*store, "task lookup", 50).await.is_empty(),
        "names of two spans"
    );
    assert!(
        !found(&*store, "refund thirty", 50).await.contains(&29),
        "words in two spans"
    );

    // With other filters, and counted.
    let mut q = ListQuery::new("p");
    q.filter.content = Some("refund".into());
    q.filter.status = Some(Status::Error);
    let failed: BTreeSet<u64> = refund.iter().copied().filter(|i| i % 4 == 1).collect();
    assert!(!failed.is_empty());
    assert_eq!(
        store.list_traces(&q).await.unwrap().items.len(),
        failed.len()
    );
    let counts = store.trace_outcomes(&q).await.unwrap();
    assert_eq!(
        counts.traces,
        refund.len() as u64,
        "status is not counted by"
    );
    assert_eq!(counts.failed, failed.len() as u64);

    // A span sent again with other content is found by its new words only.
    let mut again = spans_of(3);
    again[1].input_messages[0].content = Some("Where is my parcel?".into());
    store.write("p", again).await.unwrap();
    let now = found(&*store, "refund", 50).await;
    assert!(!now.contains(&3), "old content of a replaced span: {now:?}");
    assert_eq!(found(&*store, "parcel", 50).await, [3].into());

    for bad in [
        " -- ",
        &(0..17)
            .map(|i| format!("w{i}"))
            .collect::<Vec<_>>()
            .join(" "),
    ] {
        let mut q = ListQuery::new("p");
        q.filter.content = Some(bad.to_string());
        let e = store.list_traces(&q).await.unwrap_err();
        assert!(matches!(e, StoreError::InvalidQuery(_)), "{bad:?}: {e}");
        assert!(e.to_string().contains("content search"), "{e}");
        let e = store.trace_outcomes(&q).await.unwrap_err();
        assert!(matches!(e, StoreError::InvalidQuery(_)), "{bad:?}: {e}");
    }
    // A word in the oldest of 2,101 traces: a store that reads traces a bounded number per page
    // answers short (even empty) pages with a cursor until it gets there.
    let mut many: Vec<Span> = (100..2_201)
        .map(|t| span(t, t * 10, None, "other", t, 5))
        .collect();
    let mut oldest = span(99, 990, None, "oldest", 0, 5);
    oldest.output = Some(Payload::from_text("needle", Some("text/plain")));
    many.push(oldest);
    for chunk in many.chunks(500) {
        store.write("q", chunk.to_vec()).await.unwrap();
    }
    assert_eq!(found_in(&*store, "q", "needle", 50).await, [99].into());

    // A deleted trace is no longer found.
    store
        .delete_traces("p", &[spans_of(7)[0].trace_id])
        .await
        .unwrap();
    assert!(found(&*store, "lookup", 50).await.is_empty());

    // Spaces only: no condition.
    let mut q = ListQuery::new("p");
    q.filter.content = Some("  ".into());
    q.limit = 100;
    assert_eq!(
        store.list_traces(&q).await.unwrap().items.len(),
        TRACES as usize - 1
    );
}
