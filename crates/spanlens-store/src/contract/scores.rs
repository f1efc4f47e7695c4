//! Evaluation scores: stored all-or-none, listed by target, trended by day, and usable as a
//! trace-list filter.

use super::build::*;
use super::{fresh, StoreHarness};
use crate::{ListQuery, ScoreFilter, ScoreQuery, StoreError};
use spanlens_core::evals::{Score, ScoreSource, ScoreType};

/// A score of a trace or span with a value.
fn score(trace: Option<u64>, span: Option<u64>, name: &str, t: ScoreType, v: f64) -> Score {
    Score {
        id: None,
        trace_id: trace.map(tid),
        span_id: span.map(sid),
        session_id: None,
        name: name.into(),
        data_type: t,
        value: Some(v),
        label: None,
        source: ScoreSource::Api,
        comment: None,
        author: None,
        created_ns: None,
    }
}

/// Scores are stored, listed by trace, span and session, trended by day (numeric and boolean
/// ones), and filter the trace list.
pub async fn scores_are_stored_listed_trended_and_filter_traces(h: &dyn StoreHarness) {
    let (_db, store) = fresh(h).await;
    store
        .write(
            "p",
            vec![span(1, 1, None, "a", 0, 10), span(2, 2, None, "b", 0, 10)],
        )
        .await
        .unwrap();
    let ids = store
        .add_scores(
            "p",
            &[
                score(Some(1), None, "helpfulness", ScoreType::Numeric, 0.9),
                score(Some(1), Some(1), "valid_json", ScoreType::Boolean, 1.0),
                score(Some(2), None, "helpfulness", ScoreType::Numeric, 0.2),
                Score {
                    session_id: Some("s1".into()),
                    data_type: ScoreType::Categorical,
                    value: None,
                    label: Some("resolved".into()),
                    source: ScoreSource::Human,
                    author: Some("account ada".into()),
                    ..score(None, None, "outcome", ScoreType::Categorical, 0.0)
                },
            ],
        )
        .await
        .unwrap();
    assert_eq!(ids.len(), 4);

    let mut q = ScoreQuery {
        project: "p".into(),
        trace_id: Some(tid(1)),
        ..Default::default()
    };
    let of_trace = store.list_scores(&q).await.unwrap();
    assert_eq!(of_trace.len(), 2);
    assert!(of_trace.iter().all(|s| s.trace_id == Some(tid(1))));
    q.span_id = Some(sid(1));
    assert_eq!(store.list_scores(&q).await.unwrap()[0].name, "valid_json");
    let session = store
        .list_scores(&ScoreQuery {
            project: "p".into(),
            session_id: Some("s1".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(session[0].label.as_deref(), Some("resolved"));
    assert_eq!(session[0].source, ScoreSource::Human);
    // Who gave a score and when it was stored come back; a score without an author has none.
    assert_eq!(session[0].author.as_deref(), Some("account ada"));
    assert!(session[0]
        .created_ns
        .is_some_and(|t| t > 1_600_000_000_000_000_000));
    assert!(of_trace.iter().all(|s| s.author.is_none()));

    let trends = store.score_trends("p", None, None).await.unwrap();
    let help = trends.iter().find(|r| r.name == "helpfulness").unwrap();
    assert_eq!(help.count, 2);
    assert!((help.mean - 0.55).abs() < 1e-9);
    assert!(
        trends.iter().all(|r| r.name != "outcome"),
        "categorical scores have no mean"
    );

    let mut lq = ListQuery::new("p");
    lq.filter.score = Some(ScoreFilter {
        name: "helpfulness".into(),
        min: Some(0.5),
        ..Default::default()
    });
    let page = store.list_traces(&lq).await.unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].trace_id, tid(1));
    lq.filter.score = Some(ScoreFilter {
        name: "valid_json".into(),
        max: Some(0.0),
        ..Default::default()
    });
    assert!(store.list_traces(&lq).await.unwrap().items.is_empty());
}

/// A batch with an invalid score is refused whole, naming it; a zero limit is refused.
pub async fn an_invalid_score_stores_nothing(h: &dyn StoreHarness) {
    let (_db, store) = fresh(h).await;
    let good = score(Some(1), None, "ok", ScoreType::Numeric, 1.0);
    let bad = score(Some(1), None, "flag", ScoreType::Boolean, 0.5);
    let err = store.add_scores("p", &[good, bad]).await.unwrap_err();
    assert!(matches!(err, StoreError::InvalidQuery(_)), "{err}");
    assert!(err.to_string().contains("flag"), "{err}");
    let none = store
        .list_scores(&ScoreQuery {
            project: "p".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(none.is_empty());
    let err = store
        .list_scores(&ScoreQuery {
            project: "p".into(),
            limit: Some(0),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("limit"), "{err}");
}

/// `after_id` pages through every score of a project oldest first, each score once, whatever
/// the page size, and other projects' scores never appear.
pub async fn scores_page_through_a_project_by_id(h: &dyn StoreHarness) {
    let (_db, store) = fresh(h).await;
    let batch: Vec<Score> = (0..7)
        .map(|i| {
            score(
                Some(1),
                None,
                &format!("s{i}"),
                ScoreType::Numeric,
                f64::from(i),
            )
        })
        .collect();
    let first = store.add_scores("p", &batch[..4]).await.unwrap();
    store.add_scores("other", &batch[..2]).await.unwrap();
    let second = store.add_scores("p", &batch[4..]).await.unwrap();
    let stored: Vec<i64> = first.into_iter().chain(second).collect();
    let mut seen = Vec::new();
    let mut after = 0;
    loop {
        let page = store
            .list_scores(&ScoreQuery {
                project: "p".into(),
                limit: Some(3),
                after_id: Some(after),
                ..Default::default()
            })
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = last.id.expect("a stored score has its id");
        seen.extend(page.iter().map(|s| (s.id.unwrap(), s.name.clone())));
    }
    let want: Vec<(i64, String)> = stored
        .iter()
        .zip(&batch)
        .map(|(id, s)| (*id, s.name.clone()))
        .collect();
    assert_eq!(seen, want);
}
