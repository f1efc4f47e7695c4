//! The trace list: every filter and every sort, walked page by page with cursors.

use super::build::*;
use super::{fresh, StoreHarness, TestDatabase};
use crate::prelude::*;
use crate::{ListQuery, SortField, SortOrder, StoreError, TraceFilter, TraceSummary};
use spanlens_core::{NanoUsd, Span, SpanKind, Status, Timestamp, TraceId};
use std::collections::HashSet;
use std::sync::Arc;

/// What the test knows about each generated trace, independently of the store.
#[derive(Debug, Clone)]
struct Model {
    n: u64,
    name: &'static str,
    start_ms: u64,
    dur_ms: u64,
    status: Status,
    user: Option<String>,
    session: Option<String>,
    tags: Vec<&'static str>,
    model: &'static str,
    provider: &'static str,
    has_tool: bool,
    cost: i64,
    tokens: u64,
    spans: u64,
}

const N: u64 = 83;

/// The generated traces.
fn models() -> Vec<Model> {
    (0..N)
        .map(|i| {
            let (model, provider) = [
                ("gpt-4o", "openai"),
                ("claude-3-5-sonnet", "anthropic"),
                ("gemini-2.0-flash", "google"),
            ][(i % 3) as usize];
            let mut tags = Vec::new();
            if i % 2 == 0 {
                tags.push("even");
            }
            if i % 3 == 0 {
                tags.push("three");
            }
            let has_tool = i % 4 == 1;
            Model {
                n: i,
                name: ["checkout", "search", "refund", "chat"][(i % 4) as usize],
                // Some traces share a start time, to exercise the tie-breaker.
                start_ms: (i / 2) * 1000,
                dur_ms: (i * 37) % 500 + 20,
                status: if i % 5 == 0 {
                    Status::Error
                } else {
                    Status::Ok
                },
                user: (i % 7 != 0).then(|| format!("u{}", i % 3)),
                session: (i % 4 != 3).then(|| format!("s{}", i % 6)),
                tags,
                model,
                provider,
                has_tool,
                cost: ((i * 1013) % 5000) as i64,
                tokens: (i % 6) * 100 + 30,
                spans: if has_tool { 3 } else { 2 },
            }
        })
        .collect()
}

/// The spans of a trace: an agent root, an LLM call and maybe a tool.
fn spans_of(m: &Model) -> Vec<Span> {
    let mut root = span(m.n, 1, None, m.name, m.start_ms, m.dur_ms);
    root.kind = SpanKind::Agent;
    root.status = m.status;
    root.user_id = m.user.clone();
    root.session_id = m.session.clone();
    root.tags = m.tags.iter().map(|t| t.to_string()).collect();
    let input = m.tokens - 10;
    let call = llm(
        m.n,
        2,
        Some(1),
        m.model,
        m.provider,
        m.start_ms + 1,
        m.dur_ms - 10,
        input,
        10,
        m.cost,
    );
    let mut out = vec![root, call];
    if m.has_tool {
        let mut tool = span(m.n, 3, Some(1), "web_search", m.start_ms + 2, 5);
        tool.kind = SpanKind::Tool;
        out.push(tool);
    }
    out
}

/// A fresh store holding the spans of [`models`], and the models.
async fn load(h: &dyn StoreHarness) -> (Box<dyn TestDatabase>, Arc<dyn Store>, Vec<Model>) {
    let (db, store) = fresh(h).await;
    let ms = models();
    // Several traces per request, in an order unrelated to any sort.
    let mut all: Vec<Span> = ms.iter().flat_map(spans_of).collect();
    all.reverse();
    for chunk in all.chunks(17) {
        store.write("p", chunk.to_vec()).await.unwrap();
    }
    (db, store, ms)
}

/// Every page of the query, `page` rows at a time, checking that no trace comes twice.
async fn walk(store: &dyn Store, base: &ListQuery, page: u32) -> Vec<TraceSummary> {
    let mut q = base.clone();
    q.limit = page;
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for _ in 0..1000 {
        let p = store.list_traces(&q).await.unwrap();
        assert!(p.items.len() <= page as usize);
        for s in &p.items {
            assert!(seen.insert(s.trace_id), "duplicate {}", s.trace_id);
        }
        out.extend(p.items);
        match p.next_cursor {
            Some(c) => q.cursor = Some(c),
            None => return out,
        }
    }
    panic!("pagination did not end");
}

fn ids(v: &[TraceSummary]) -> Vec<TraceId> {
    v.iter().map(|s| s.trace_id).collect()
}

fn expect(ms: &[Model], keep: impl Fn(&Model) -> bool) -> HashSet<TraceId> {
    ms.iter().filter(|m| keep(m)).map(|m| tid(m.n)).collect()
}

/// Walks the traces the filter selects and compares them with the model's.
async fn check_filter(
    store: &dyn Store,
    ms: &[Model],
    filter: TraceFilter,
    keep: impl Fn(&Model) -> bool,
) {
    let q = ListQuery {
        filter: filter.clone(),
        ..ListQuery::new("p")
    };
    let got = walk(store, &q, 5).await;
    let got_set: HashSet<TraceId> = ids(&got).into_iter().collect();
    let want = expect(ms, keep);
    assert!(!want.is_empty() || format!("{filter:?}").contains("nothing"));
    assert_eq!(got_set, want, "filter {filter:?}");
    // Default order: newest first, trace id breaking ties.
    let keys: Vec<_> = got.iter().map(|s| (s.start_time, s.trace_id)).collect();
    let mut sorted = keys.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(keys, sorted);
}

/// Every trace's summary agrees with what was generated.
pub async fn summaries_match_the_model(h: &dyn StoreHarness) {
    let (_db, store, ms) = load(h).await;
    let all = walk(&*store, &ListQuery::new("p"), 50).await;
    assert_eq!(all.len(), N as usize);
    for s in &all {
        let m = &ms[(u128::from_be_bytes(s.trace_id.0) - 1) as usize];
        assert_eq!(s.name, m.name);
        assert_eq!(s.start_time, Timestamp(T0 + m.start_ms * MS));
        assert_eq!(s.duration_ns, m.dur_ms * MS);
        assert_eq!(s.status, m.status);
        assert_eq!(s.span_count, m.spans);
        assert_eq!(s.total_cost, NanoUsd(m.cost));
        assert_eq!(s.total_tokens, m.tokens);
        assert_eq!(s.user_id, m.user);
        assert_eq!(s.session_id, m.session);
        let mut tags: Vec<&str> = m.tags.clone();
        tags.sort();
        assert_eq!(s.tags, tags);
    }
}

/// Every trace-list filter, alone and together, walked page by page.
pub async fn every_filter(h: &dyn StoreHarness) {
    let (_db, store, ms) = load(h).await;
    let at = |ms: u64| Some(Timestamp(T0 + ms * MS));
    let f = TraceFilter::default;
    check_filter(
        &*store,
        &ms,
        TraceFilter {
            from: at(10_000),
            to: at(30_000),
            ..f()
        },
        |m| (10_000..30_000).contains(&m.start_ms),
    )
    .await;
    check_filter(
        &*store,
        &ms,
        TraceFilter {
            name: Some("refund".into()),
            ..f()
        },
        |m| m.name == "refund",
    )
    .await;
    check_filter(
        &*store,
        &ms,
        TraceFilter {
            kind: Some(SpanKind::Tool),
            ..f()
        },
        |m| m.has_tool,
    )
    .await;
    check_filter(
        &*store,
        &ms,
        TraceFilter {
            kind: Some(SpanKind::Llm),
            ..f()
        },
        |_| true,
    )
    .await;
    check_filter(
        &*store,
        &ms,
        TraceFilter {
            status: Some(Status::Error),
            ..f()
        },
        |m| m.status == Status::Error,
    )
    .await;
    check_filter(
        &*store,
        &ms,
        TraceFilter {
            model: Some("claude-3-5-sonnet".into()),
            ..f()
        },
        |m| m.model == "claude-3-5-sonnet",
    )
    .await;
    check_filter(
        &*store,
        &ms,
        TraceFilter {
            provider: Some("google".into()),
            ..f()
        },
        |m| m.provider == "google",
    )
    .await;
    check_filter(
        &*store,
        &ms,
        TraceFilter {
            user_id: Some("u1".into()),
            ..f()
        },
        |m| m.user.as_deref() == Some("u1"),
    )
    .await;
    check_filter(
        &*store,
        &ms,
        TraceFilter {
            session_id: Some("s2".into()),
            ..f()
        },
        |m| m.session.as_deref() == Some("s2"),
    )
    .await;
    check_filter(
        &*store,
        &ms,
        TraceFilter {
            tags: vec!["even".into()],
            ..f()
        },
        |m| m.tags.contains(&"even"),
    )
    .await;
    check_filter(
        &*store,
        &ms,
        TraceFilter {
            tags: vec!["even".into(), "three".into()],
            ..f()
        },
        |m| m.tags.contains(&"even") && m.tags.contains(&"three"),
    )
    .await;
    check_filter(
        &*store,
        &ms,
        TraceFilter {
            min_duration_ns: Some(200 * MS),
            max_duration_ns: Some(400 * MS),
            ..f()
        },
        |m| (200..=400).contains(&m.dur_ms),
    )
    .await;
    check_filter(
        &*store,
        &ms,
        TraceFilter {
            min_cost: Some(NanoUsd(2500)),
            ..f()
        },
        |m| m.cost >= 2500,
    )
    .await;
    check_filter(
        &*store,
        &ms,
        TraceFilter {
            min_cost: Some(NanoUsd(1000)),
            max_cost: Some(NanoUsd(2500)),
            ..f()
        },
        |m| (1000..=2500).contains(&m.cost),
    )
    .await;
    // Text matches span names (not just the root's), case-insensitively …
    check_filter(
        &*store,
        &ms,
        TraceFilter {
            text: Some("Web_Search".into()),
            ..f()
        },
        |m| m.has_tool,
    )
    .await;
    // … and user ids, and the trace id.
    check_filter(
        &*store,
        &ms,
        TraceFilter {
            text: Some("u2".into()),
            ..f()
        },
        |m| m.user.as_deref() == Some("u2"),
    )
    .await;
    check_filter(
        &*store,
        &ms,
        TraceFilter {
            text: Some(tid(5).to_hex()),
            ..f()
        },
        |m| m.n == 5,
    )
    .await;
    // Everything at once.
    check_filter(
        &*store,
        &ms,
        TraceFilter {
            from: at(5_000),
            status: Some(Status::Ok),
            model: Some("gpt-4o".into()),
            tags: vec!["even".into()],
            min_duration_ns: Some(50 * MS),
            ..f()
        },
        |m| {
            m.start_ms >= 5_000
                && m.status == Status::Ok
                && m.model == "gpt-4o"
                && m.tags.contains(&"even")
                && m.dur_ms >= 50
        },
    )
    .await;
    // A filter nothing matches.
    let q = ListQuery {
        filter: TraceFilter {
            name: Some("nothing".into()),
            ..f()
        },
        ..ListQuery::new("p")
    };
    let p = store.list_traces(&q).await.unwrap();
    assert!(p.items.is_empty() && p.next_cursor.is_none());
}

/// Every sort field, ascending and descending, walks all pages in order (trace id breaking
/// ties).
pub async fn every_sort_both_ways_walks_all_pages_in_order(h: &dyn StoreHarness) {
    let (_db, store, ms) = load(h).await;
    for sort in SortField::ALL {
        for order in [SortOrder::Asc, SortOrder::Desc] {
            let q = ListQuery {
                sort,
                order,
                ..ListQuery::new("p")
            };
            let got = ids(&walk(&*store, &q, 7).await);
            let mut want: Vec<&Model> = ms.iter().collect();
            want.sort_by(|a, b| {
                let key = match sort {
                    SortField::StartTime => a.start_ms.cmp(&b.start_ms),
                    SortField::Duration => a.dur_ms.cmp(&b.dur_ms),
                    SortField::Cost => a.cost.cmp(&b.cost),
                    SortField::Tokens => a.tokens.cmp(&b.tokens),
                    SortField::SpanCount => a.spans.cmp(&b.spans),
                    SortField::Name => a.name.cmp(b.name),
                    SortField::Status => {
                        let s = |m: &Model| {
                            if m.status == Status::Error {
                                "error"
                            } else {
                                "ok"
                            }
                        };
                        s(a).cmp(s(b))
                    }
                    SortField::User => a
                        .user
                        .clone()
                        .unwrap_or_default()
                        .cmp(&b.user.clone().unwrap_or_default()),
                };
                let ord = key.then(a.n.cmp(&b.n));
                match order {
                    SortOrder::Asc => ord,
                    SortOrder::Desc => ord.reverse(),
                }
            });
            let want: Vec<TraceId> = want.iter().map(|m| tid(m.n)).collect();
            assert_eq!(got, want, "sort {} {}", sort.as_str(), order.as_str());
        }
    }
}

/// A cursor resumes exactly after its page while new traces arrive before and after it.
pub async fn cursor_is_stable_while_traces_arrive(h: &dyn StoreHarness) {
    let (_db, store, ms) = load(h).await;
    let mut q = ListQuery::new("p");
    q.limit = 10;
    let first = store.list_traces(&q).await.unwrap();
    let mut seen: Vec<TraceId> = ids(&first.items);
    // New traces: one newer than anything (belongs before the cursor), one in the middle.
    let mut newest = span(1000, 1, None, "newest", 10_000_000, 5);
    newest.kind = SpanKind::Agent;
    let middle = span(1001, 1, None, "middle", 20_000, 5);
    store.write("p", vec![newest, middle]).await.unwrap();
    q.cursor = first.next_cursor;
    loop {
        let p = store.list_traces(&q).await.unwrap();
        seen.extend(ids(&p.items));
        match p.next_cursor {
            Some(c) => q.cursor = Some(c),
            None => break,
        }
    }
    let unique: HashSet<_> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "no duplicates");
    for m in &ms {
        assert!(unique.contains(&tid(m.n)), "trace {} missing", m.n);
    }
    assert!(
        !unique.contains(&tid(1000)),
        "a trace before the cursor is not returned"
    );
    assert!(
        unique.contains(&tid(1001)),
        "a trace after the cursor is returned"
    );
}

/// A cursor of another sort, a malformed cursor and out-of-range limits are refused with
/// errors that say why; an unknown project is an empty list.
pub async fn bad_queries_are_refused_with_clear_errors(h: &dyn StoreHarness) {
    let (_db, store, _ms) = load(h).await;
    let mut q = ListQuery::new("p");
    q.limit = 3;
    let c = store.list_traces(&q).await.unwrap().next_cursor.unwrap();
    let mut other = q.clone();
    other.sort = SortField::Cost;
    other.cursor = Some(c.clone());
    let e = store.list_traces(&other).await.unwrap_err();
    assert!(matches!(e, StoreError::InvalidCursor(_)), "{e}");
    assert!(e.to_string().contains("start_time desc"), "{e}");
    other.cursor = Some("%%%not-a-cursor".into());
    assert!(matches!(
        store.list_traces(&other).await,
        Err(StoreError::InvalidCursor(_))
    ));
    q.limit = 0;
    assert!(matches!(
        store.list_traces(&q).await,
        Err(StoreError::InvalidQuery(_))
    ));
    q.limit = 5000;
    assert!(matches!(
        store.list_traces(&q).await,
        Err(StoreError::InvalidQuery(_))
    ));
    // Unknown project: empty, not an error.
    assert!(store
        .list_traces(&ListQuery::new("nope"))
        .await
        .unwrap()
        .items
        .is_empty());
}
