//! Re-pricing rewrites computed costs and trace summaries consistently; daily cost per group;
//! unpriced calls counted in every sum that carries a cost.

use super::build::*;
use super::{fresh, StoreHarness};
use crate::domain::reprice::reprice;
use crate::prelude::*;
use crate::{GroupBy, MetricsQuery, SpanScan};
use spanlens_core::{CostSource, NanoUsd, PriceCatalog, Timestamp};

/// "m" at $1 and "x" at $2 per million input tokens.
fn catalog() -> PriceCatalog {
    super::build::test_catalog(&[("m", "m", 1.0, 0.0), ("x", "x", 2.0, 0.0)])
}

/// Day one: three computed, one reported and one unpriced call in trace 1; trace 2 a day later.
async fn seed(store: &dyn Store) {
    let mut reported = llm(1, 4, Some(1), "m", "p", 40, 10, 1_000_000, 0, 999);
    reported.cost.as_mut().unwrap().source = CostSource::Reported;
    let mut unpriced = llm(1, 5, Some(1), "x", "p", 50, 10, 1_000_000, 0, 0);
    unpriced.cost = None;
    unpriced.unpriced_reason = Some("no price for \"x\"".into());
    store
        .write(
            "default",
            vec![
                span(1, 1, None, "root", 0, 100),
                llm(1, 2, Some(1), "m", "p", 10, 10, 1_000_000, 0, 100),
                llm(1, 3, Some(1), "m", "p", 20, 10, 2_000_000, 0, 100),
                reported,
                unpriced,
                // A day later: outside the range re-priced below.
                llm(2, 6, None, "m", "p", 86_400_000, 10, 1_000_000, 0, 100),
            ],
        )
        .await
        .unwrap();
}

/// The first hour of day one.
fn day_one() -> SpanScan {
    SpanScan {
        project: "default".into(),
        from: Some(Timestamp(T0)),
        to: Some(Timestamp(T0 + 3_600_000 * MS)),
        model: None,
    }
}

/// Re-pricing (dry run, then for real) rewrites the computed costs in the range, leaves
/// reported ones, prices unpriced calls, updates summaries and metrics, and changes nothing when
/// run again.
pub async fn repricing_updates_spans_and_summaries_and_is_idempotent(h: &dyn StoreHarness) {
    let (_db, store) = fresh(h).await;
    seed(&*store).await;
    let cat = catalog();

    let dry = reprice(&*store, &day_one(), &cat, true).await.unwrap();
    assert_eq!((dry.examined, dry.changed, dry.reported_skipped), (3, 3, 1));
    let t1 = store.get_trace("default", tid(1)).await.unwrap().unwrap();
    assert_eq!(t1.summary.total_cost, NanoUsd(100 + 100 + 999));
    assert_eq!(t1.summary.unpriced_span_count, 1);

    let r = reprice(&*store, &day_one(), &cat, false).await.unwrap();
    assert_eq!((r.examined, r.changed, r.newly_priced), (3, 3, 1));
    let m = r.models.iter().find(|m| m.model == "m").unwrap();
    assert_eq!(m.cost_before, NanoUsd(200));
    assert_eq!(m.cost_after, NanoUsd(3_000_000_000));
    let x = r.models.iter().find(|m| m.model == "x").unwrap();
    assert_eq!((x.unpriced_before, x.unpriced_after), (1, 0));

    let t1 = store.get_trace("default", tid(1)).await.unwrap().unwrap();
    // $1 + $2 for "m", $2 for "x", and the reported 999 nano-USD untouched.
    assert_eq!(t1.summary.total_cost, NanoUsd(5_000_000_999));
    assert_eq!(t1.summary.unpriced_span_count, 0);
    assert_eq!(t1.summary.span_count, 5);
    let by_id = |n: u64| t1.spans.iter().find(|s| s.span_id == sid(n)).unwrap();
    assert_eq!(by_id(4).cost.as_ref().unwrap().amounts.total, NanoUsd(999));
    assert_eq!(by_id(4).cost.as_ref().unwrap().source, CostSource::Reported);
    assert!(by_id(5).unpriced_reason.is_none());
    assert_eq!(
        by_id(5).cost.as_ref().unwrap().amounts.total,
        NanoUsd(2_000_000_000)
    );
    // Outside the range: untouched.
    let t2 = store.get_trace("default", tid(2)).await.unwrap().unwrap();
    assert_eq!(t2.summary.total_cost, NanoUsd(100));
    // Metrics read the rewritten rows.
    let all = store
        .metrics(&MetricsQuery::new("default", GroupBy::All))
        .await
        .unwrap();
    assert_eq!(all[0].cost, NanoUsd(5_000_000_999 + 100));
    assert_eq!(store.count_spans("default").await.unwrap(), 6);

    let again = reprice(&*store, &day_one(), &cat, false).await.unwrap();
    assert_eq!((again.examined, again.changed), (3, 0));
    let t1_again = store.get_trace("default", tid(1)).await.unwrap().unwrap();
    assert_eq!(t1_again.summary, t1.summary);
}

/// A model filter limits re-pricing to that model's calls.
pub async fn model_filter_limits_repricing(h: &dyn StoreHarness) {
    let (_db, store) = fresh(h).await;
    seed(&*store).await;
    let scan = SpanScan {
        model: Some("x".into()),
        ..day_one()
    };
    let r = reprice(&*store, &scan, &catalog(), false).await.unwrap();
    assert_eq!((r.examined, r.changed), (1, 1));
    let t1 = store.get_trace("default", tid(1)).await.unwrap().unwrap();
    assert_eq!(
        t1.summary.total_cost,
        NanoUsd(100 + 100 + 999 + 2_000_000_000)
    );
}

/// Daily cost per model (the forecast's input): a row per model and UTC day, an unpriced model
/// a row that says so, ranges and unknown projects.
pub async fn daily_cost_per_model(h: &dyn StoreHarness) {
    let (_db, store) = fresh(h).await;
    seed(&*store).await;
    let rows = store
        .daily_cost(&MetricsQuery::new("default", GroupBy::Model))
        .await
        .unwrap();
    let day0 = (T0 / 86_400_000_000_000) as i64;
    let got: Vec<(Option<&str>, i64, i64, u64)> = rows
        .iter()
        .map(|r| {
            (
                r.key.as_deref(),
                r.day - day0,
                r.cost.0,
                r.unpriced_span_count,
            )
        })
        .collect();
    // "x" has no price: a row of its own that says so, not a $0 day.
    assert_eq!(
        got,
        vec![
            (Some("m"), 0, 1199, 0),
            (Some("m"), 1, 100, 0),
            (Some("x"), 0, 0, 1)
        ]
    );
    assert_eq!(rows[2].priced_span_count, 0);
    let mut q = MetricsQuery::new("default", GroupBy::All);
    q.from = Some(Timestamp(T0 + 86_400_000 * MS));
    let rows = store.daily_cost(&q).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].key.as_deref(), rows[0].cost), (None, NanoUsd(100)));
    assert!(store
        .daily_cost(&MetricsQuery::new("nobody", GroupBy::Model))
        .await
        .unwrap()
        .is_empty());
}

/// Every sum that carries a cost also counts the unpriced calls in it (trace, session, metrics
/// by model, user, agent and day, daily cost), and re-pricing that prices them takes the counts
/// back down everywhere.
pub async fn unpriced_counts_follow_every_cost_and_drop_when_repriced(h: &dyn StoreHarness) {
    let (_db, store) = fresh(h).await;
    seed(&*store).await;
    // The unpriced call has a user, a session and an agent too.
    let mut x = store
        .get_trace("default", tid(1))
        .await
        .unwrap()
        .unwrap()
        .spans;
    x.retain(|s| s.span_id == sid(5));
    x[0].user_id = Some("ann".into());
    x[0].session_id = Some("chat-1".into());
    x[0].agent_name = Some("extractor".into());
    store.write("default", x).await.unwrap();

    let unpriced_of = async |g: GroupBy, key: Option<&str>| -> (u64, NanoUsd, u64) {
        let rows = store
            .metrics(&MetricsQuery::new("default", g))
            .await
            .unwrap();
        let r = rows
            .iter()
            .find(|r| r.key.as_deref() == key)
            .unwrap_or_else(|| panic!("{g:?} {key:?}: {rows:?}"));
        (r.unpriced_span_count, r.cost, r.input_tokens)
    };
    assert_eq!(unpriced_of(GroupBy::All, None).await.0, 1);
    // The model without a price: its tokens, no cost, and the count that says why.
    assert_eq!(
        unpriced_of(GroupBy::Model, Some("x")).await,
        (1, NanoUsd(0), 1_000_000)
    );
    assert_eq!(unpriced_of(GroupBy::Model, Some("m")).await.0, 0);
    assert_eq!(unpriced_of(GroupBy::User, Some("ann")).await.0, 1);
    assert_eq!(unpriced_of(GroupBy::Agent, Some("extractor")).await.0, 1);
    let days = store
        .metrics(&MetricsQuery::new("default", GroupBy::Day))
        .await
        .unwrap();
    assert_eq!(
        days.iter()
            .map(|r| r.unpriced_span_count)
            .collect::<Vec<_>>(),
        vec![1, 0]
    );
    let session = store
        .get_session("default", "chat-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(session.session.unpriced_span_count, 1);

    reprice(&*store, &day_one(), &catalog(), false)
        .await
        .unwrap();

    assert_eq!(unpriced_of(GroupBy::All, None).await.0, 0);
    let (n, cost, tokens) = unpriced_of(GroupBy::Model, Some("x")).await;
    assert_eq!((n, cost, tokens), (0, NanoUsd(2_000_000_000), 1_000_000));
    assert_eq!(unpriced_of(GroupBy::User, Some("ann")).await.0, 0);
    assert_eq!(unpriced_of(GroupBy::Agent, Some("extractor")).await.0, 0);
    let session = store
        .get_session("default", "chat-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(session.session.unpriced_span_count, 0);
    assert_eq!(
        session.session.total_cost,
        session.traces.iter().map(|t| t.total_cost).sum::<NanoUsd>()
    );
    let daily = store
        .daily_cost(&MetricsQuery::new("default", GroupBy::Model))
        .await
        .unwrap();
    assert!(
        daily.iter().all(|r| r.unpriced_span_count == 0),
        "{daily:?}"
    );
}
