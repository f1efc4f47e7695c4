//! Deleting traces, sessions and users, and expiring old data: every read stops showing what
//! was removed, everything derived (lists, sessions, metrics, series, daily cost, the recovery
//! report, span counts, content search) equals a recomputation from the spans left, other
//! projects and neighbour traces are untouched, and a trace id deleted may be used again.

use super::build::*;
use super::rollups::{
    check_everything, expected_metrics, generate, send, stored, Rng, BASE, HOUR, SPREAD,
};
use super::{fresh, open, StoreHarness};
use crate::prelude::*;
use crate::{
    Erased, Expiry, GroupBy, ListQuery, MetricsQuery, ScoreQuery, SessionQuery, StoreError,
    ERASE_BATCH,
};
use serde_json::json;
use spanlens_core::evals::{Score, ScoreSource, ScoreType};
use spanlens_core::otlp::logs::LogEvent;
use spanlens_core::{Event, Message, Payload, Span, Timestamp, TraceId};
use std::collections::BTreeSet;

/// A numeric API score of trace `t` (of its span `s` when given).
fn score(t: u64, s: Option<u64>) -> Score {
    Score {
        id: None,
        trace_id: Some(tid(t)),
        span_id: s.map(sid),
        session_id: None,
        name: "quality".into(),
        data_type: ScoreType::Numeric,
        value: Some(0.5),
        label: None,
        source: ScoreSource::Api,
        comment: None,
        author: None,
        created_ns: None,
    }
}

/// A GenAI user message of span `s` of trace `t`, logged apart from the span.
fn message_event(t: u64, s: u64, text: &str) -> LogEvent {
    LogEvent {
        project: None,
        trace_id: tid(t),
        span_id: sid(s),
        event: Event {
            name: "gen_ai.user.message".into(),
            time: Timestamp(BASE),
            attributes: serde_json::from_value(json!({"gen_ai.event.content": {"content": text}}))
                .unwrap(),
        },
    }
}

/// Gives `s` payloads holding `words`: input, output, messages and the source attribute.
fn with_payloads(s: &mut Span, words: &str) {
    s.input = Some(Payload::from_text(&format!("asked {words}"), None));
    s.output = Some(Payload::from_text(&format!("answered {words}"), None));
    s.input_messages = vec![Message {
        role: Some("user".into()),
        content: Some(format!("please {words}")),
        ..Default::default()
    }];
    s.attributes
        .insert("input.value".into(), json!(format!("asked {words}")));
}

/// Which of the traces `0..n` of `project` a content search for `words` finds.
async fn found(store: &dyn Store, project: &str, words: &str, n: u64) -> BTreeSet<u64> {
    let mut q = ListQuery::new(project);
    q.filter.content = Some(words.into());
    q.limit = 1000;
    let mut out = BTreeSet::new();
    loop {
        let page = store.list_traces(&q).await.unwrap();
        for t in &page.items {
            out.extend((0..n).filter(|i| tid(*i) == t.trace_id));
        }
        match page.next_cursor {
            Some(c) => q.cursor = Some(c),
            None => return out,
        }
    }
}

/// The trace ids of `project`'s trace list, walked whole.
async fn listed(store: &dyn Store, project: &str) -> BTreeSet<TraceId> {
    let mut q = ListQuery::new(project);
    q.limit = 1000;
    let mut out = BTreeSet::new();
    loop {
        let page = store.list_traces(&q).await.unwrap();
        out.extend(page.items.iter().map(|t| t.trace_id));
        match page.next_cursor {
            Some(c) => q.cursor = Some(c),
            None => return out,
        }
    }
}

/// Deleted traces leave no trace in any read (summary, spans, scores, log events, content
/// search, lists, outcome counts), and metrics, series, daily cost, sessions, the recovery
/// report and span counts equal a brute-force recomputation from the spans left; the same ids
/// in another project stay; deleting again counts nothing; a span sent afterwards for a deleted
/// id starts a new trace.
pub async fn deleted_traces_leave_every_read_and_the_rest_stays_exact(h: &dyn StoreHarness) {
    let (db, store) = fresh(h).await;
    const N: u64 = 60;
    let mut rng = Rng(0xe4a5e);
    let mut spans = generate(&mut rng, N);
    for s in spans.iter_mut().filter(|s| s.parent_span_id.is_none()) {
        let t = (0..N).find(|t| tid(*t) == s.trace_id).unwrap();
        with_payloads(s, &format!("zebra w{t}"));
    }
    send(&mut rng, &*store, spans.clone()).await;
    store.write("q", spans.clone()).await.unwrap();
    let doomed: Vec<u64> = (0..N).filter(|t| t % 4 == 1).collect();
    let mut scores: Vec<Score> = doomed.iter().map(|t| score(*t, None)).collect();
    scores.extend(doomed.iter().map(|t| score(*t, Some(0))));
    scores.push(score(0, None));
    store.add_scores("p", &scores).await.unwrap();
    store.add_scores("q", &scores).await.unwrap();
    let events: Vec<LogEvent> = [1, 2]
        .iter()
        .map(|t| message_event(*t, 0, "hello"))
        .collect();
    store.add_log_events("p", &events).await.unwrap();
    let (before, _) = stored(&*store, N).await;
    let q_spans = store.count_spans("q").await.unwrap();
    assert_eq!(q_spans, before.len() as u64);
    assert_eq!(found(&*store, "p", "zebra", N).await.len(), N as usize);

    let mut ids: Vec<TraceId> = doomed.iter().map(|t| tid(*t)).collect();
    ids.push(tid(9_999)); // never stored
    let erased = store.delete_traces("p", &ids).await.unwrap();
    let doomed_spans = before.iter().filter(|s| ids.contains(&s.trace_id)).count() as u64;
    assert_eq!(
        erased,
        Erased {
            traces: doomed.len() as u64,
            spans: doomed_spans,
            scores: 2 * doomed.len() as u64,
            payloads: 0,
        }
    );

    for t in &doomed {
        assert!(store.get_trace("p", tid(*t)).await.unwrap().is_none());
        assert!(store.get_trace_json("p", tid(*t)).await.unwrap().is_none());
        let sq = ScoreQuery {
            project: "p".into(),
            trace_id: Some(tid(*t)),
            ..Default::default()
        };
        assert!(store.list_scores(&sq).await.unwrap().is_empty(), "{t}");
    }
    let left: BTreeSet<u64> = (0..N).filter(|t| t % 4 != 1).collect();
    assert_eq!(found(&*store, "p", "zebra", N).await, left);
    assert!(found(&*store, "p", "w1", N).await.is_empty());
    let want: BTreeSet<TraceId> = left.iter().map(|t| tid(*t)).collect();
    assert_eq!(listed(&*store, "p").await, want);
    let outcomes = store.trace_outcomes(&ListQuery::new("p")).await.unwrap();
    assert_eq!(outcomes.traces, left.len() as u64);
    // The neighbour keeps its score and its log event.
    let sq = ScoreQuery {
        project: "p".into(),
        trace_id: Some(tid(0)),
        ..Default::default()
    };
    assert_eq!(store.list_scores(&sq).await.unwrap().len(), 1);
    let two = store.get_trace("p", tid(2)).await.unwrap().unwrap();
    assert!(two
        .spans
        .iter()
        .any(|s| s.events.iter().any(|e| e.name == "gen_ai.user.message")));
    check_everything(&mut rng, h.random_ranges(), &*store, N).await;

    // The other project holds the same ids, untouched.
    assert_eq!(store.count_spans("q").await.unwrap(), q_spans);
    assert_eq!(listed(&*store, "q").await.len(), N as usize);
    let sq = ScoreQuery {
        project: "q".into(),
        limit: Some(1000),
        ..Default::default()
    };
    assert_eq!(store.list_scores(&sq).await.unwrap().len(), scores.len());

    // Again: nothing left to delete.
    assert_eq!(
        store.delete_traces("p", &ids).await.unwrap(),
        Erased::default()
    );

    // Reopened (nothing kept in memory), the answers hold; then a deleted id comes back.
    drop(store);
    let store = open(&*db).await;
    check_everything(&mut rng, h.random_ranges(), &*store, N).await;
    let mut back = span(1, 77, None, "again", 0, 10);
    back.start_time = Timestamp(BASE + HOUR);
    back.end_time = Some(Timestamp(BASE + HOUR + 10 * MS));
    store.write("p", vec![back]).await.unwrap();
    let d = store.get_trace("p", tid(1)).await.unwrap().unwrap();
    assert_eq!(d.spans.len(), 1);
    assert_eq!(d.summary.span_count, 1);
    assert_eq!(d.summary.name, "again");
    check_everything(&mut rng, h.random_ranges(), &*store, N).await;
}

/// Traffic in time order (rollup rows of past hours and days built as it goes, partly from
/// sums kept in memory), then a deletion across many buckets: metrics over whole days, whole
/// hours and unaligned ranges equal the spans left.
pub async fn deleting_from_built_rollup_rows_keeps_them_exact(h: &dyn StoreHarness) {
    let (_db, store) = fresh(h).await;
    const N: u64 = 150;
    let mut rng = Rng(0x0d1e);
    let mut spans = generate(&mut rng, N);
    spans.sort_by_key(|s| s.start_time);
    for chunk in spans.chunks(9) {
        store.write("p", chunk.to_vec()).await.unwrap();
    }
    let ids: Vec<TraceId> = (0..N).filter(|t| t % 3 == 0).map(tid).collect();
    let erased = store.delete_traces("p", &ids).await.unwrap();
    assert_eq!(erased.traces, ids.len() as u64);
    // More traffic after it, into the same buckets and past them.
    let mut more: Vec<Span> = generate(&mut Rng(5), 20)
        .into_iter()
        .map(|mut s| {
            let t = u128::from_be_bytes(s.trace_id.0) - 1;
            s.trace_id = tid(N + t as u64);
            s
        })
        .collect();
    // Days later: the last hours and day of the traffic go cold and get their rows built.
    let mut late = span(N + 20, 1, None, "x", 0, 0);
    late.start_time = Timestamp(BASE + SPREAD + 3 * 24 * HOUR);
    more.push(late);
    store.write("p", more).await.unwrap();
    let (truth, _) = stored(&*store, N + 21).await;
    assert_eq!(store.count_spans("p").await.unwrap(), truth.len() as u64);
    let day = 24 * HOUR;
    for (from, to) in [
        (None, None),
        (Some(T0 + day), Some(T0 + 3 * day)),
        (Some(T0 + day + HOUR), Some(T0 + 2 * day + 5 * HOUR)),
        (Some(BASE + 17), Some(BASE + SPREAD - 17)),
    ] {
        for g in GroupBy::ALL {
            let mut q = MetricsQuery::new("p", g);
            q.from = from.map(Timestamp);
            q.to = to.map(Timestamp);
            assert_eq!(
                store.metrics(&q).await.unwrap(),
                expected_metrics(&truth, &q),
                "{q:?}"
            );
        }
    }
}

/// A session and a user with more traces than one batch are erased whole (with the session's
/// own scores); other sessions and users stay; an empty id is refused.
pub async fn a_session_and_a_user_are_erased_across_batches(h: &dyn StoreHarness) {
    let (_db, store) = fresh(h).await;
    let big = ERASE_BATCH as u64 + 30;
    let mut spans = Vec::new();
    for t in 0..big {
        // The session's traces; a third of them also carry the user.
        let mut s = llm(t, 0, None, "m", "p", t, 5, 10, 2, 100);
        s.session_id = Some("big".into());
        s.user_id = (t % 3 == 0).then(|| "carol".into());
        spans.push(s);
    }
    for t in big..2 * big {
        // The user's other traces, in other sessions.
        let mut s = llm(t, 0, None, "m", "p", t, 5, 10, 2, 100);
        s.user_id = Some("carol".into());
        s.session_id = Some(format!("s{}", t % 4));
        spans.push(s);
    }
    for t in 2 * big..2 * big + 10 {
        let mut s = llm(t, 0, None, "m", "p", t, 5, 10, 2, 100);
        s.user_id = Some("dan".into());
        s.session_id = Some("small".into());
        spans.push(s);
    }
    store.write("p", spans.clone()).await.unwrap();
    store.write("q", spans).await.unwrap();
    let session_score = Score {
        trace_id: None,
        session_id: Some("big".into()),
        ..score(0, None)
    };
    store
        .add_scores(
            "p",
            &[session_score.clone(), score(1, None), score(2 * big, None)],
        )
        .await
        .unwrap();

    for bad in [
        store.delete_session("p", "").await,
        store.delete_user("p", "").await,
    ] {
        assert!(matches!(bad, Err(StoreError::InvalidQuery(_))), "{bad:?}");
    }

    let erased = store.delete_session("p", "big").await.unwrap();
    assert_eq!((erased.traces, erased.spans, erased.scores), (big, big, 2));
    assert!(store.get_session("p", "big").await.unwrap().is_none());
    let sessions = store.list_sessions(&SessionQuery::new("p")).await.unwrap();
    let names: BTreeSet<String> = sessions.items.into_iter().map(|s| s.session_id).collect();
    assert_eq!(
        names,
        ["s0", "s1", "s2", "s3", "small"]
            .map(String::from)
            .into_iter()
            .collect()
    );
    assert_eq!(store.count_spans("p").await.unwrap(), big + 10);

    let erased = store.delete_user("p", "carol").await.unwrap();
    assert_eq!((erased.traces, erased.spans), (big, big));
    let left = listed(&*store, "p").await;
    let want: BTreeSet<TraceId> = (2 * big..2 * big + 10).map(tid).collect();
    assert_eq!(left, want);
    let by_user = store
        .metrics(&MetricsQuery::new("p", GroupBy::User))
        .await
        .unwrap();
    assert_eq!(by_user.len(), 1, "{by_user:?}");
    assert_eq!(by_user[0].span_count, 10);
    assert!(store.get_session("p", "small").await.unwrap().is_some());
    assert_eq!(
        store.delete_user("p", "carol").await.unwrap(),
        Erased::default()
    );
    // The other project is untouched.
    assert_eq!(store.count_spans("q").await.unwrap(), 2 * big + 10);
    assert!(store.get_session("q", "big").await.unwrap().is_some());
}

/// Trace `t` of the expiry test: a root and an LLM call with payloads and a logged message,
/// ending `t` hours after T0.
fn aging_trace(t: u64) -> Vec<Span> {
    let start = t * 3_600_000;
    let mut root = span(t, 0, None, "root", start, 1_000);
    let mut call = llm(t, 1, Some(0), "m", "p", start + 10, 500, 100, 20, 1_000);
    with_payloads(&mut root, &format!("secret w{t}"));
    with_payloads(&mut call, &format!("secret w{t}"));
    call.output_messages = vec![Message {
        role: Some("assistant".into()),
        content: Some(format!("secret reply w{t}")),
        ..Default::default()
    }];
    vec![root, call]
}

/// Payload expiry clears what spans said (bodies, source attributes, logged messages, content
/// search) in steps of at most `limit` spans, and changes no count; a span that arrives again
/// for a cleared trace is cleared by the next step. Full expiry deletes old traces in steps of
/// at most `limit` traces, and the metrics equal the spans left.
pub async fn expiry_deletes_or_clears_old_traces_in_small_steps(h: &dyn StoreHarness) {
    let (_db, store) = fresh(h).await;
    const N: u64 = 30;
    let spans: Vec<Span> = (0..N).flat_map(aging_trace).collect();
    store.write("p", spans.clone()).await.unwrap();
    store.write("q", spans).await.unwrap();
    let events: Vec<LogEvent> = (0..N).map(|t| message_event(t, 1, "secret")).collect();
    store.add_log_events("p", &events).await.unwrap();
    let all = MetricsQuery::new("p", GroupBy::Model);
    let metrics_before = store.metrics(&all).await.unwrap();
    let summary_before = store.get_trace("p", tid(3)).await.unwrap().unwrap().summary;

    // Traces 0..20 end before the cutoff; two traces (four spans) per step.
    let cutoff = Timestamp(T0 + 20 * 3_600_000 * MS - 1);
    let rule = Expiry::Payloads { before: cutoff };
    let mut total = Erased::default();
    let mut steps = 0;
    loop {
        let step = store.expire("p", rule, 4).await.unwrap();
        if step.is_empty() {
            break;
        }
        assert!(step.payloads <= 4, "{step:?}");
        assert_eq!((step.traces, step.spans, step.scores), (0, 0, 0));
        total.add(step);
        steps += 1;
        assert!(steps < 100, "payload expiry does not end");
    }
    assert_eq!(total.payloads, 40);
    assert!(steps >= 10, "{steps} steps");
    for t in 0..N {
        let d = store.get_trace("p", tid(t)).await.unwrap().unwrap();
        let text = serde_json::to_string(&d.spans).unwrap();
        assert_eq!(text.contains("secret"), t >= 20, "trace {t}: {text}");
        assert_eq!(d.spans.len(), 2);
    }
    let wanted: BTreeSet<u64> = (20..N).collect();
    assert_eq!(found(&*store, "p", "secret", N).await, wanted);
    assert_eq!(found(&*store, "q", "secret", N).await.len(), N as usize);
    assert_eq!(store.metrics(&all).await.unwrap(), metrics_before);
    let summary = store.get_trace("p", tid(3)).await.unwrap().unwrap().summary;
    assert_eq!(summary, summary_before);
    assert_eq!(store.count_spans("p").await.unwrap(), 2 * N);

    // A span of trace 3 sent again with its payload: cleared by the next step.
    store
        .write("p", vec![aging_trace(3).remove(1)])
        .await
        .unwrap();
    assert_eq!(found(&*store, "p", "w3", N).await.len(), 1);
    let again = store.expire("p", rule, 4).await.unwrap();
    assert!(again.payloads >= 1, "{again:?}");
    assert!(found(&*store, "p", "w3", N).await.is_empty());
    while !store.expire("p", rule, 4).await.unwrap().is_empty() {}

    // Everything before hour 10, three traces per step.
    let rule = Expiry::Everything {
        before: Timestamp(T0 + 10 * 3_600_000 * MS - 1),
    };
    let mut total = Erased::default();
    loop {
        let step = store.expire("p", rule, 3).await.unwrap();
        if step.is_empty() {
            break;
        }
        assert!(step.traces <= 3, "{step:?}");
        total.add(step);
    }
    assert_eq!((total.traces, total.spans), (10, 20));
    let left: BTreeSet<TraceId> = (10..N).map(tid).collect();
    assert_eq!(listed(&*store, "p").await, left);
    let (truth, _) = stored(&*store, N).await;
    assert_eq!(truth.len(), 40);
    assert_eq!(store.count_spans("p").await.unwrap(), 40);
    for g in GroupBy::ALL {
        let q = MetricsQuery::new("p", g);
        assert_eq!(
            store.metrics(&q).await.unwrap(),
            expected_metrics(&truth, &q)
        );
    }
    let cost: i64 = store
        .daily_cost(&all)
        .await
        .unwrap()
        .iter()
        .map(|d| d.cost.0)
        .sum();
    assert_eq!(cost, 20 * 1_000);
    assert_eq!(store.count_spans("q").await.unwrap(), 2 * N);
}

/// Nothing to erase is not an error: an empty list, unknown ids, an unknown project, a limit
/// of zero, a cutoff before everything.
pub async fn erasing_nothing_counts_nothing(h: &dyn StoreHarness) {
    let (_db, store) = fresh(h).await;
    store.write("p", aging_trace(1)).await.unwrap();
    let zero = Erased::default();
    assert_eq!(store.delete_traces("p", &[]).await.unwrap(), zero);
    assert_eq!(
        store.delete_traces("p", &[tid(5), tid(6)]).await.unwrap(),
        zero
    );
    assert_eq!(store.delete_traces("nope", &[tid(1)]).await.unwrap(), zero);
    assert_eq!(store.delete_session("p", "none").await.unwrap(), zero);
    assert_eq!(store.delete_user("nope", "none").await.unwrap(), zero);
    let early = Timestamp(T0);
    for rule in [
        Expiry::Everything { before: early },
        Expiry::Payloads { before: early },
    ] {
        assert_eq!(store.expire("p", rule, 100).await.unwrap(), zero);
        assert_eq!(store.expire("nope", rule, 100).await.unwrap(), zero);
    }
    let late = Expiry::Everything {
        before: Timestamp(T0 + 100 * 3_600_000 * MS),
    };
    assert_eq!(store.expire("p", late, 0).await.unwrap(), zero);
    assert_eq!(store.count_spans("p").await.unwrap(), 2);
    assert_eq!(store.expire("p", late, 1).await.unwrap().traces, 1);
    assert_eq!(store.count_spans("p").await.unwrap(), 0);
}
