//! Copying a store into another (`domain::copy`, `spanlens migrate`): whole, checked, and
//! resumable after an interruption at any page without duplicating anything.

use super::build::*;
use super::{fresh, StoreHarness};
use crate::domain::copy::{copy_store, progress_key, CopyError, CopyOptions};
use crate::store::Store;
use crate::{ListQuery, ScoreQuery, SessionQuery};
use spanlens_core::evals::{Score, ScoreSource, ScoreType};
use spanlens_core::Status;

/// Two projects: `p` with 7 traces (LLM calls, one unpriced, an error, sessions) and 5 scores,
/// and `q` with one trace.
async fn fill(store: &dyn Store) {
    let mut spans = Vec::new();
    for t in 0..7u64 {
        let mut root = span(t, t * 10, None, "pipeline", t * 100, 50);
        root.session_id = Some(format!("s{}", t % 3));
        root.user_id = Some(format!("u{}", t % 2));
        spans.push(root);
        spans.push(llm(
            t,
            t * 10 + 1,
            Some(t * 10),
            "gpt-4o",
            "openai",
            t * 100 + 1,
            20,
            100 + t,
            10,
            1_000 + t as i64,
        ));
        let mut tool = span(t, t * 10 + 2, Some(t * 10), "search", t * 100 + 25, 5);
        if t == 3 {
            tool.status = Status::Error;
        }
        spans.push(tool);
    }
    let mut unpriced = llm(6, 69, Some(60), "acme-ft", "acme", 640, 5, 10, 1, 0);
    unpriced.cost = None;
    unpriced.unpriced_reason = Some("no price for acme-ft".into());
    spans.push(unpriced);
    store.write("p", spans).await.unwrap();
    store
        .write("q", vec![span(100, 1000, None, "other", 0, 10)])
        .await
        .unwrap();
    let scores: Vec<Score> = (0..5)
        .map(|i| Score {
            id: None,
            trace_id: Some(tid(i)),
            span_id: None,
            session_id: None,
            name: format!("quality{i}"),
            data_type: ScoreType::Numeric,
            value: Some(i as f64 / 10.0),
            label: None,
            source: ScoreSource::Api,
            comment: None,
            author: None,
            created_ns: None,
        })
        .collect();
    store.add_scores("p", &scores).await.unwrap();
}

/// Every trace summary, session and score of a project, for comparing two stores.
async fn contents(store: &dyn Store, project: &str) -> (Vec<String>, Vec<String>, Vec<String>) {
    let mut q = ListQuery::new(project);
    q.limit = 1000;
    let traces = store.list_traces(&q).await.unwrap().items;
    let sessions = store
        .list_sessions(&SessionQuery::new(project))
        .await
        .unwrap()
        .items;
    let mut scores = store
        .list_scores(&ScoreQuery {
            project: project.into(),
            limit: Some(1000),
            ..Default::default()
        })
        .await
        .unwrap();
    for s in &mut scores {
        // A copy stores each score anew: its id and the time it was stored are the target's.
        s.id = None;
        s.created_ns = None;
    }
    let show = |v: &dyn std::fmt::Debug| format!("{v:?}");
    (
        traces.iter().map(|t| show(t)).collect(),
        sessions.iter().map(|s| show(s)).collect(),
        scores.iter().map(|s| show(s)).collect(),
    )
}

/// A copy holds what the source holds (summaries, sessions, scores, cost, unpriced calls), says
/// so in its report, and refuses a target that already holds data.
pub async fn a_copy_holds_what_the_source_holds(h: &dyn StoreHarness) {
    let (_a, source) = fresh(h).await;
    let (_b, target) = fresh(h).await;
    fill(&*source).await;
    let mut pages = 0;
    let report = copy_store(
        &*source,
        &*target,
        "src",
        CopyOptions::default(),
        &mut |_| {
            pages += 1;
            true
        },
    )
    .await
    .unwrap();
    assert!(
        pages >= 3,
        "a page of traces and of scores per project: {pages}"
    );
    assert!(report.matches(), "{report:?}");
    assert!(!report.resumed);
    let p = report.projects.iter().find(|c| c.project == "p").unwrap();
    assert_eq!(
        (p.source.spans, p.source.traces, p.source.scores),
        (22, 7, 5)
    );
    assert_eq!(p.source.unpriced, 1);
    assert!(p.source.cost.0 > 0);
    for project in ["p", "q"] {
        assert_eq!(
            contents(&*source, project).await,
            contents(&*target, project).await
        );
    }
    // Another source into the now full target is refused before anything is written.
    let err = copy_store(
        &*source,
        &*target,
        "another",
        CopyOptions::default(),
        &mut |_| true,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, CopyError::TargetNotEmpty { .. }), "{err}");
    assert!(err.to_string().contains("\"p\""), "{err}");
}

/// Interrupted after any page, even with a page written whose progress was not saved, the
/// copy resumes to the same result, nothing duplicated.
pub async fn an_interrupted_copy_resumes_without_duplicates(h: &dyn StoreHarness) {
    let (_a, source) = fresh(h).await;
    fill(&*source).await;
    let (_c, whole) = fresh(h).await;
    let small = CopyOptions {
        trace_page: 2,
        score_page: 2,
    };
    let mut pages = 0;
    copy_store(&*source, &*whole, "src", small, &mut |_| {
        pages += 1;
        true
    })
    .await
    .unwrap();
    for stop_at in 1..pages {
        let (_b, target) = fresh(h).await;
        let key = progress_key("src");
        // Stop after `stop_at` pages, then do one page more whose progress is "lost" (the saved
        // progress is put back as it was), as if the process died between the write and the
        // save.
        let mut seen = 0;
        let err = copy_store(&*source, &*target, "src", small, &mut |_| {
            seen += 1;
            seen < stop_at
        })
        .await
        .unwrap_err();
        assert!(matches!(err, CopyError::Interrupted), "{err}");
        let saved = target.load_state(&key).await.unwrap().unwrap();
        let mut more = 0;
        let _ = copy_store(&*source, &*target, "src", small, &mut |_| {
            more += 1;
            false
        })
        .await;
        target.save_state(&key, &saved).await.unwrap();
        let report = copy_store(&*source, &*target, "src", small, &mut |_| true)
            .await
            .unwrap();
        assert!(report.resumed);
        assert!(
            report.matches(),
            "stopped after {stop_at} pages: {report:?}"
        );
        for project in ["p", "q"] {
            assert_eq!(
                contents(&*source, project).await,
                contents(&*target, project).await,
                "stopped after {stop_at} pages"
            );
        }
    }
}
