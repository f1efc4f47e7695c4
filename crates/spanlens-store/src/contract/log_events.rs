//! GenAI events that arrived as OTLP log records: kept for their span, merged into it on read
//! whichever came first, stored once when sent twice, capped per span, and left out of the
//! trace's totals.

use super::build::*;
use super::{fresh, StoreHarness};
use crate::prelude::*;
use crate::{LogEventsReceipt, ScoreQuery, TraceSummary};
use serde_json::json;
use spanlens_core::evals::{Score, ScoreSource, ScoreType};
use spanlens_core::otlp::logs::LogEvent;
use spanlens_core::{Event, Timestamp};

/// An event of span `s` of trace `t`, `at_ms` after T0.
fn log_event(t: u64, s: u64, name: &str, at_ms: u64, attrs: serde_json::Value) -> LogEvent {
    LogEvent {
        project: None,
        trace_id: tid(t),
        span_id: sid(s),
        event: Event {
            name: name.into(),
            time: Timestamp(T0 + at_ms * MS),
            attributes: serde_json::from_value(attrs).unwrap(),
        },
    }
}

/// The details of a chat call and the user's message, as an instrumentation logs them.
fn call_events() -> Vec<LogEvent> {
    vec![
        log_event(
            1,
            2,
            "gen_ai.client.inference.operation.details",
            5,
            json!({"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
                "gen_ai.provider.name": "openai", "gen_ai.usage.input_tokens": 900,
                "gen_ai.usage.output_tokens": 50,
                "gen_ai.output.messages": [{"role": "assistant", "content": "Sunny."}]}),
        ),
        log_event(
            1,
            2,
            "gen_ai.user.message",
            1,
            json!({"gen_ai.event.content": {"content": "Weather in Paris?"}}),
        ),
    ]
}

/// The trace the events belong to: an agent and the call.
fn spans() -> Vec<spanlens_core::Span> {
    vec![
        span(1, 1, None, "agent", 0, 100),
        span(1, 2, Some(1), "call", 0, 50),
    ]
}

/// Trace 1 of project `p` as JSON values, and its summary.
async fn trace_json(store: &dyn Store) -> (Vec<serde_json::Value>, TraceSummary) {
    let d = store.get_trace_json("p", tid(1)).await.unwrap().unwrap();
    assert!(d.unreadable.is_empty(), "{:?}", d.unreadable);
    let spans = d
        .spans
        .iter()
        .map(|s| serde_json::from_str(s).unwrap())
        .collect();
    (spans, d.summary)
}

/// Events stored before their span and events stored after it end in the same trace read, merged
/// into their span, and left out of the trace's totals.
pub async fn events_merge_into_their_span_whichever_arrives_first(h: &dyn StoreHarness) {
    let (_before_db, before) = fresh(h).await;
    let r = before.add_log_events("p", &call_events()).await.unwrap();
    assert_eq!(r.stored, 2);
    // Waiting: no trace yet.
    assert!(before.get_trace_json("p", tid(1)).await.unwrap().is_none());
    before.write("p", spans()).await.unwrap();

    let (_after_db, after) = fresh(h).await;
    after.write("p", spans()).await.unwrap();
    after.add_log_events("p", &call_events()).await.unwrap();

    let (a, summary_a) = trace_json(&*before).await;
    let (b, summary_b) = trace_json(&*after).await;
    assert_eq!(a, b, "the same trace whichever arrived first");
    assert_eq!(summary_a.input_tokens, summary_b.input_tokens);
    let call = &a[1];
    assert_eq!(call["kind"], "llm");
    assert_eq!(call["request_model"], "gpt-4o");
    assert_eq!(call["usage"]["input_tokens"], 900);
    assert!(call["cost"]["total_usd"].as_f64().unwrap() > 0.0);
    assert_eq!(call["input_messages"][0]["content"], "Weather in Paris?");
    assert_eq!(call["output_messages"][0]["content"], "Sunny.");
    // The events are the span's, oldest first.
    let names: Vec<_> = call["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "gen_ai.user.message",
            "gen_ai.client.inference.operation.details"
        ]
    );
    // The other span is untouched, and usage from log events is not in the trace's totals.
    assert!(a[0].get("events").is_none());
    assert_eq!(summary_a.input_tokens, 0);
    // The decoded read merges too.
    let detail = before.get_trace("p", tid(1)).await.unwrap().unwrap();
    let call = detail.spans.iter().find(|s| s.span_id == sid(2)).unwrap();
    assert_eq!(call.usage.as_ref().unwrap().output_tokens, 50);
}

/// A log record sent twice is stored once, a span keeps at most the event limit, and another
/// project's span with the same ids is another span.
pub async fn a_record_sent_twice_is_stored_once_and_a_span_holds_at_most_the_event_limit(
    h: &dyn StoreHarness,
) {
    let (_db, store) = fresh(h).await;
    store.write("p", spans()).await.unwrap();
    store.add_log_events("p", &call_events()).await.unwrap();
    let again = store.add_log_events("p", &call_events()).await.unwrap();
    assert_eq!(
        again,
        LogEventsReceipt {
            stored: 0,
            duplicates: 2,
            over_limit: 0
        }
    );
    let (spans, _) = trace_json(&*store).await;
    assert_eq!(spans[1]["events"].as_array().unwrap().len(), 2);

    let max = spanlens_core::limits::MAX_EVENTS;
    let many: Vec<LogEvent> = (0..max as u64 + 5)
        .map(|i| log_event(1, 1, "gen_ai.user.message", i, json!({"n": i})))
        .collect();
    let r = store.add_log_events("p", &many).await.unwrap();
    assert_eq!((r.stored, r.over_limit), (max, 5));
    // Another project's span with the same ids is another span.
    let r = store.add_log_events("q", &many[..3]).await.unwrap();
    assert_eq!(r.stored, 3);
}

/// A score from a GenAI event or a rule identical to a stored one is kept once (its id is
/// returned); scores from the API never are merged.
pub async fn identical_scores_from_events_are_kept_once(h: &dyn StoreHarness) {
    let (_db, store) = fresh(h).await;
    let score = Score {
        id: None,
        trace_id: Some(tid(1)),
        span_id: Some(sid(2)),
        session_id: None,
        name: "relevance".into(),
        data_type: ScoreType::Numeric,
        value: Some(0.8),
        label: None,
        source: ScoreSource::OtelEvent,
        comment: Some("on topic".into()),
        author: None,
        created_ns: None,
    };
    let first = store
        .add_scores("p", std::slice::from_ref(&score))
        .await
        .unwrap();
    let second = store
        .add_scores("p", &[score.clone(), score.clone()])
        .await
        .unwrap();
    assert_eq!(second, [first[0], first[0]]);
    let other = Score {
        value: Some(0.4),
        ..score.clone()
    };
    store.add_scores("p", &[other]).await.unwrap();
    // A rule's verdict given twice (a span taken by two collectors) is kept once too.
    let rule = Score {
        source: ScoreSource::Rule,
        ..score.clone()
    };
    let rules = store
        .add_scores("p", std::slice::from_ref(&rule))
        .await
        .unwrap();
    assert_eq!(store.add_scores("p", &[rule]).await.unwrap(), rules);
    // Scores from the API are never merged: each call is a new judgement.
    let api = Score {
        source: ScoreSource::Api,
        ..score
    };
    store.add_scores("p", &[api.clone(), api]).await.unwrap();
    let all = store
        .list_scores(&ScoreQuery {
            project: "p".into(),
            trace_id: Some(tid(1)),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 5);
    assert_eq!(
        all.iter()
            .filter(|s| s.source == ScoreSource::OtelEvent)
            .count(),
        2
    );
}
