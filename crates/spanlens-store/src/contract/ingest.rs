//! Ingest: idempotent upserts, summaries that stay right when spans arrive late, out of order
//! or twice, unpriced calls, failed and recovered traces, and many writers at once.

use super::build::*;
use super::{fresh, StoreHarness};
use crate::{ListQuery, TraceFilter};
use spanlens_core::{NanoUsd, Span, SpanKind, Status};

/// The same span written twice is stored once, the later copy wins in the span, the summary
/// and the facets, and a copy that drops a model or tags drops them from the filters too.
pub async fn same_span_twice_is_stored_once_and_the_last_write_wins(h: &dyn StoreHarness) {
    let (_db, store) = fresh(h).await;
    let first = llm(1, 1, None, "gpt-4o", "openai", 0, 100, 10, 5, 1_000);
    let r1 = store.write("p", vec![first.clone()]).await.unwrap();
    assert_eq!((r1.inserted, r1.replaced), (1, 0));

    let mut second = first.clone();
    second.name = "renamed".into();
    second.status = Status::Error;
    second.tags = vec!["late".into()];
    second.cost.as_mut().unwrap().amounts.total = NanoUsd(2_500);
    let r2 = store.write("p", vec![second.clone()]).await.unwrap();
    assert_eq!((r2.inserted, r2.replaced), (0, 1));

    assert_eq!(store.count_spans("p").await.unwrap(), 1);
    let d = store.get_trace("p", tid(1)).await.unwrap().unwrap();
    assert_eq!(d.spans.len(), 1);
    assert_eq!(d.spans[0].name, "renamed");
    let s = &d.summary;
    assert_eq!(s.span_count, 1, "summary must not double count");
    assert_eq!(s.total_cost, NanoUsd(2_500));
    assert_eq!((s.input_tokens, s.output_tokens), (10, 5));
    assert_eq!(s.name, "renamed");
    assert_eq!(s.status, Status::Error);
    assert_eq!(s.error_count, 1);
    assert_eq!(s.tags, vec!["late"]);

    // The model facet still finds it; a tag it no longer carries does not exist.
    let mut by_model = ListQuery::new("p");
    by_model.filter.model = Some("gpt-4o".into());
    assert_eq!(store.list_traces(&by_model).await.unwrap().items.len(), 1);

    // A replacement that drops the model and tags removes them from the facets too.
    let mut third = second;
    third.request_model = None;
    third.tags.clear();
    store.write("p", vec![third]).await.unwrap();
    assert!(store.list_traces(&by_model).await.unwrap().items.is_empty());
    let mut by_tag = ListQuery::new("p");
    by_tag.filter.tags = vec!["late".into()];
    assert!(store.list_traces(&by_tag).await.unwrap().items.is_empty());
    let d = store.get_trace("p", tid(1)).await.unwrap().unwrap();
    assert!(d.summary.tags.is_empty());
}

/// Two copies of a span in one batch count as one insert and one replace, the second copy
/// winning; the same ids in another project are another span.
pub async fn duplicates_inside_one_batch_and_across_projects(h: &dyn StoreHarness) {
    let (_db, store) = fresh(h).await;
    let a = span(1, 1, None, "first copy", 0, 10);
    let mut b = a.clone();
    b.name = "second copy".into();
    let r = store.write("p", vec![a.clone(), b]).await.unwrap();
    assert_eq!((r.inserted, r.replaced), (1, 1));
    assert_eq!(store.count_spans("p").await.unwrap(), 1);
    let d = store.get_trace("p", tid(1)).await.unwrap().unwrap();
    assert_eq!(d.summary.name, "second copy");
    assert_eq!(d.summary.span_count, 1);

    // The same ids in another project are another span.
    store.write("q", vec![a]).await.unwrap();
    assert_eq!(store.count_spans("q").await.unwrap(), 1);
    assert_eq!(store.count_spans("p").await.unwrap(), 1);
    assert_eq!(store.projects().await.unwrap(), vec!["p", "q"]);
}

/// Children that arrive before their root, in separate writes, give a provisional summary
/// that the root then completes; a late span that starts earlier widens the trace.
pub async fn child_before_parent_across_submits(h: &dyn StoreHarness) {
    let (_db, store) = fresh(h).await;
    // Root: 0..1000 ms. Children arrive first, in two separate requests.
    let mut tool = span(7, 3, Some(2), "web_search", 300, 200);
    tool.kind = SpanKind::Tool;
    tool.status = Status::Error;
    let model = llm(7, 2, Some(1), "gpt-4o", "openai", 100, 600, 100, 20, 7_000);
    store.write("p", vec![tool]).await.unwrap();

    let s = store.get_trace("p", tid(7)).await.unwrap().unwrap().summary;
    assert_eq!(s.name, "web_search", "provisional name: earliest span");
    assert_eq!(s.root_span_id, None);
    assert_eq!(s.duration_ns, 200 * MS);
    assert_eq!(
        s.status,
        Status::Error,
        "no root yet: derived from children"
    );

    store.write("p", vec![model]).await.unwrap();
    let s = store.get_trace("p", tid(7)).await.unwrap().unwrap().summary;
    assert_eq!(s.name, "chat gpt-4o");
    assert_eq!(s.span_count, 2);
    assert_eq!(s.duration_ns, 600 * MS);
    assert_eq!(s.total_cost, NanoUsd(7_000));

    let mut root = span(7, 1, None, "support agent", 0, 1000);
    root.kind = SpanKind::Agent;
    root.user_id = Some("u1".into());
    root.session_id = Some("s1".into());
    root.status = Status::Ok;
    store.write("p", vec![root]).await.unwrap();

    let d = store.get_trace("p", tid(7)).await.unwrap().unwrap();
    let s = &d.summary;
    assert_eq!(s.name, "support agent");
    assert_eq!(s.root_span_id, Some(sid(1)));
    assert_eq!(s.start_time.0, T0);
    assert_eq!(s.duration_ns, 1000 * MS);
    assert_eq!(s.span_count, 3);
    assert_eq!(s.error_count, 1);
    assert_eq!(s.status, Status::Ok, "the root's explicit status wins");
    assert_eq!(s.user_id.as_deref(), Some("u1"));
    assert_eq!(s.session_id.as_deref(), Some("s1"));
    assert_eq!((s.input_tokens, s.output_tokens), (100, 20));
    let names: Vec<_> = d.spans.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, vec!["support agent", "chat gpt-4o", "web_search"]);

    // A late span that starts before the root widens the trace.
    let mut early = span(7, 9, Some(1), "prefetch", 0, 5);
    early.start_time.0 = T0 - 50 * MS;
    store.write("p", vec![early]).await.unwrap();
    let s = store.get_trace("p", tid(7)).await.unwrap().unwrap().summary;
    assert_eq!(s.start_time.0, T0 - 50 * MS);
    assert_eq!(s.duration_ns, 1050 * MS);
    assert_eq!(s.name, "support agent");

    // The trace is found by user and by text now that the root arrived.
    let mut q = ListQuery::new("p");
    q.filter = TraceFilter {
        user_id: Some("u1".into()),
        text: Some("SUPPORT".into()),
        ..Default::default()
    };
    assert_eq!(store.list_traces(&q).await.unwrap().items.len(), 1);
}

/// A trace's user comes from any span until its root names one.
pub async fn user_and_session_come_from_any_span_until_the_root_says_otherwise(
    h: &dyn StoreHarness,
) {
    let (_db, store) = fresh(h).await;
    let mut child = span(3, 2, Some(1), "step", 10, 10);
    child.user_id = Some("from-child".into());
    store.write("p", vec![child]).await.unwrap();
    let s = store.get_trace("p", tid(3)).await.unwrap().unwrap().summary;
    assert_eq!(s.user_id.as_deref(), Some("from-child"));

    let root = span(3, 1, None, "root", 0, 100);
    store.write("p", vec![root]).await.unwrap();
    let s = store.get_trace("p", tid(3)).await.unwrap().unwrap().summary;
    assert_eq!(
        s.user_id.as_deref(),
        Some("from-child"),
        "root has none: keep the child's"
    );

    let mut named = span(3, 1, None, "root", 0, 100);
    named.user_id = Some("from-root".into());
    store.write("p", vec![named]).await.unwrap();
    let s = store.get_trace("p", tid(3)).await.unwrap().unwrap().summary;
    assert_eq!(s.user_id.as_deref(), Some("from-root"));
    assert_eq!(s.span_count, 2);
}

/// A call without a price is counted as unpriced (its trace's cost is a lower bound, never a
/// made-up total), and the count is rebuilt when the span is sent again priced.
pub async fn unpriced_calls_are_counted_so_a_cost_is_never_a_silent_zero(h: &dyn StoreHarness) {
    let (_db, store) = fresh(h).await;
    let priced = llm(7, 1, None, "gpt-4o", "openai", 0, 100, 10, 5, 1_000);
    let mut unknown = llm(7, 2, Some(1), "my-finetune", "acme", 10, 50, 10, 5, 0);
    unknown.cost = None;
    unknown.unpriced_reason = Some("no price for my-finetune".into());
    store.write("p", vec![priced, unknown]).await.unwrap();
    let s = store.get_trace("p", tid(7)).await.unwrap().unwrap().summary;
    assert_eq!(s.unpriced_span_count, 1);
    assert_eq!(
        s.total_cost,
        NanoUsd(1_000),
        "a lower bound, not a made-up total"
    );
    let page = store.list_traces(&ListQuery::new("p")).await.unwrap();
    assert_eq!(page.items[0].unpriced_span_count, 1);

    // Priced later (a re-sent span): the count is rebuilt from the stored spans. (Its usage
    // differs from its parent's: with the same model and usage, nested inside it, it would be
    // the same provider call recorded twice and counted once.)
    let mut now_priced = llm(7, 2, Some(1), "gpt-4o", "openai", 10, 50, 10, 6, 500);
    now_priced.unpriced_reason = None;
    store.write("p", vec![now_priced]).await.unwrap();
    let s = store.get_trace("p", tid(7)).await.unwrap().unwrap().summary;
    assert_eq!((s.unpriced_span_count, s.total_cost), (0, NanoUsd(1_500)));
}

/// A root without a status, an agent under it and a failed tool under the agent.
fn pipeline(t: u64, agent_status: Status) -> Vec<Span> {
    let mut root = span(t, 1, None, "pipeline", 0, 1000);
    root.kind = SpanKind::Pipeline;
    root.status = Status::Unset;
    let mut agent = span(t, 2, Some(1), "agent", 10, 900);
    agent.kind = SpanKind::Agent;
    agent.status = agent_status;
    let mut tool = span(t, 3, Some(2), "tool", 20, 100);
    tool.kind = SpanKind::Tool;
    tool.status = Status::Error;
    vec![root, agent, tool]
}

/// A trace fails by its root: errors it went on from are "recovered", in any arrival order,
/// one span per write or all at once, and the outcome counts and the `recovered` filter agree.
pub async fn failed_and_recovered_traces_in_any_arrival_order(h: &dyn StoreHarness) {
    for order in [[0, 1, 2], [2, 1, 0], [1, 2, 0]] {
        for one_by_one in [false, true] {
            let (_db, store) = fresh(h).await;
            for (t, agent_status) in [(1, Status::Ok), (2, Status::Error)] {
                let spans = pipeline(t, agent_status);
                let ordered: Vec<_> = order.iter().map(|&i| spans[i].clone()).collect();
                if one_by_one {
                    for s in ordered {
                        store.write("p", vec![s]).await.unwrap();
                    }
                } else {
                    store.write("p", ordered).await.unwrap();
                }
            }
            let summary =
                async |t: u64| store.get_trace("p", tid(t)).await.unwrap().unwrap().summary;
            let why = format!("order {order:?}, one by one: {one_by_one}");
            let s1 = summary(1).await;
            assert_eq!(
                (s1.status, s1.error_count),
                (Status::Unset, 1),
                "the tool failed, the agent went on: {why}"
            );
            let s2 = summary(2).await;
            assert_eq!(
                (s2.status, s2.error_count),
                (Status::Error, 2),
                "the agent run failed under a root without a status: {why}"
            );
            let mut q = ListQuery::new("p");
            let o = store.trace_outcomes(&q).await.unwrap();
            assert_eq!((o.traces, o.failed, o.recovered), (2, 1, 1), "{why}");
            q.filter.recovered = true;
            let ids: Vec<_> = store
                .list_traces(&q)
                .await
                .unwrap()
                .items
                .into_iter()
                .map(|t| t.trace_id)
                .collect();
            assert_eq!(ids, vec![tid(1)], "{why}");
            // The counts follow the other filters, not the status one.
            let mut q = ListQuery::new("p");
            q.filter.status = Some(Status::Ok);
            q.filter.min_duration_ns = Some(2_000 * MS);
            assert_eq!(store.trace_outcomes(&q).await.unwrap().traces, 0, "{why}");
        }
    }
}

/// Many tasks submitting at once on a multi-thread runtime: every batch is acknowledged with
/// its own counts once committed, and every span is stored.
pub async fn many_concurrent_submitters_are_all_acknowledged(h: &dyn StoreHarness) {
    let (_db, store) = fresh(h).await;
    let (tasks, batches, per) = (8u64, 40u64, 25u64);
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut acked = 0;
                for b in 0..batches {
                    let spans: Vec<Span> = (0..per)
                        .map(|i| span(t * 1000 + b, i, None, "op", i, 1))
                        .collect();
                    let ticket = store.submit("p", spans).expect("submit");
                    let r = ticket.await.expect("commit");
                    assert_eq!((r.spans, r.inserted), (per as usize, per as usize));
                    acked += r.spans;
                }
                acked
            })
        })
        .collect();
    let mut acked = 0;
    for handle in handles {
        acked += handle.await.expect("a submitter panicked");
    }
    assert_eq!(acked as u64, tasks * batches * per);
    assert_eq!(store.count_spans("p").await.unwrap(), tasks * batches * per);
    let page = store.list_traces(&ListQuery::new("p")).await.unwrap();
    assert_eq!(page.items.len(), crate::DEFAULT_PAGE_SIZE as usize);
}
