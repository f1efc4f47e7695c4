use super::*;
use crate::evals::{ScoreSource, ScoreType};
use crate::span::{Cost, PromptTemplate};
use crate::{Timestamp, TraceId};

const MS: u64 = 1_000_000;

fn call(
    trace: u8,
    id: u8,
    name: Option<&str>,
    version: Option<&str>,
    ms: u64,
    usd_nano: i64,
) -> Span {
    Span {
        trace_id: TraceId([trace; 16]),
        span_id: SpanId([id; 8]),
        name: "llm.call".into(),
        start_time: Timestamp(u64::from(id) * 1_000 * MS),
        end_time: Some(Timestamp(u64::from(id) * 1_000 * MS + ms * MS)),
        prompt: Some(PromptTemplate {
            name: name.map(str::to_string),
            version: version.map(str::to_string),
            ..Default::default()
        }),
        cost: Some(Cost::computed_total(NanoUsd(usd_nano))),
        ..Default::default()
    }
}

fn score(trace: u8, span: Option<u8>, name: &str, value: f64) -> Score {
    Score {
        id: None,
        trace_id: Some(TraceId([trace; 16])),
        span_id: span.map(|s| SpanId([s; 8])),
        session_id: None,
        name: name.into(),
        data_type: ScoreType::Numeric,
        value: Some(value),
        label: None,
        source: ScoreSource::Api,
        comment: None,
        author: None,
        created_ns: None,
    }
}

#[test]
fn nearest_rank_by_hand() {
    assert_eq!(nearest_rank(&[], 50.0), None);
    assert_eq!(nearest_rank(&[7], 95.0), Some(7));
    // 4 values: p50 rank ceil(2) = 2nd, p95 rank ceil(3.8) = 4th.
    assert_eq!(nearest_rank(&[100, 200, 300, 400], 50.0), Some(200));
    assert_eq!(nearest_rank(&[100, 200, 300, 400], 95.0), Some(400));
    // 1..=20: p95 rank ceil(19) = 19th, p50 rank 10th.
    let v: Vec<u64> = (1..=20).collect();
    assert_eq!(nearest_rank(&v, 95.0), Some(19));
    assert_eq!(nearest_rank(&v, 50.0), Some(10));
    assert_eq!(nearest_rank(&v, 0.0), Some(1));
}

#[test]
fn a_template_without_a_name_is_known_by_its_span() {
    let s = call(1, 1, None, Some(" v2 "), 10, 0);
    assert_eq!(
        prompt_of(&s),
        Some(PromptRef {
            name: "llm.call".into(),
            version: Some("v2".into())
        })
    );
    let s = call(1, 1, Some("answer"), Some(""), 10, 0);
    assert_eq!(prompt_of(&s).unwrap().version, None);
    let mut s = call(1, 1, None, None, 10, 0);
    s.name = "  ".into();
    assert_eq!(prompt_of(&s), None);
    s.prompt = None;
    assert_eq!(prompt_of(&s), None);
}

/// Two templates; `answer` in two versions over two traces, figures worked by hand.
#[test]
fn figures_per_version_by_hand() {
    let mut stats = PromptStats::new();
    // Trace 1: answer v1 (100 ms, $0.001), answer v1 (300 ms, $0.003, error),
    // summarize (no version, 50 ms), and a span without a prompt.
    let mut err = call(1, 2, Some("answer"), Some("1"), 300, 3_000_000);
    err.status = Status::Error;
    let mut plain = call(1, 4, None, None, 999, 9_000_000);
    plain.prompt = None;
    stats.add_trace(
        &[
            call(1, 1, Some("answer"), Some("1"), 100, 1_000_000),
            err,
            call(1, 3, Some("summarize"), None, 50, 500_000),
            plain,
        ],
        &[
            // On the first v1 span: counts for v1 only.
            score(1, Some(1), "helpful", 1.0),
            // On the trace: once for v1 and once for summarize.
            score(1, None, "helpful", 0.5),
            // On the span without a prompt: for none.
            score(1, Some(4), "helpful", 0.0),
        ],
    );
    // Trace 2: answer v1 (200 ms, $0.002), answer v2 (400 ms, $0.004) and a duplicate of it
    // (costs nothing, counted as a call), and an unpriced v2 call.
    let mut dup = call(2, 6, Some("answer"), Some("2"), 400, 4_000_000);
    dup.duplicate_of = Some(SpanId([5; 8]));
    let mut unpriced = call(2, 7, Some("answer"), Some("2"), 600, 0);
    unpriced.cost = None;
    unpriced.unpriced_reason = Some("unknown model".into());
    stats.add_trace(
        &[
            call(2, 3, Some("answer"), Some("1"), 200, 2_000_000),
            call(2, 5, Some("answer"), Some("2"), 400, 4_000_000),
            dup,
            unpriced,
        ],
        &[
            score(2, Some(5), "helpful", 0.25),
            score(2, Some(5), "tone", 3.0),
        ],
    );
    let out = stats.finish();
    assert_eq!(
        out.iter()
            .map(|t| (t.name.as_str(), t.calls))
            .collect::<Vec<_>>(),
        vec![("answer", 6), ("summarize", 1)]
    );
    let answer = &out[0];
    // v2's last call (span 7, at 7 s) is newer than v1's (span 3, at 3 s): v2 first.
    let v2 = &answer.versions[0];
    assert_eq!(v2.version.as_deref(), Some("2"));
    assert_eq!((v2.calls, v2.errors, v2.traces), (3, 0, 1));
    assert_eq!(v2.cost_usd, NanoUsd(4_000_000));
    assert_eq!(v2.unpriced_count, 1);
    // Durations 400, 400, 600: p50 rank 2 = 400, p95 rank 3 = 600.
    assert_eq!((v2.p50_ns, v2.p95_ns), (Some(400 * MS), Some(600 * MS)));
    assert_eq!(
        v2.scores,
        vec![
            ScoreMean {
                name: "helpful".into(),
                count: 1,
                mean: 0.25
            },
            ScoreMean {
                name: "tone".into(),
                count: 1,
                mean: 3.0
            },
        ]
    );
    let v1 = &answer.versions[1];
    assert_eq!(v1.version.as_deref(), Some("1"));
    assert_eq!((v1.calls, v1.errors, v1.traces), (3, 1, 2));
    assert!((v1.error_rate - 1.0 / 3.0).abs() < 1e-12);
    assert_eq!(v1.cost_usd, NanoUsd(6_000_000));
    // Durations 100, 200, 300: p50 rank 2 = 200, p95 rank 3 = 300.
    assert_eq!((v1.p50_ns, v1.p95_ns), (Some(200 * MS), Some(300 * MS)));
    assert_eq!((v1.first_ns, v1.last_ns), (1_000 * MS, 3_000 * MS));
    // 1.0 on the span and 0.5 on the trace: mean 0.75 over 2.
    assert_eq!(
        v1.scores,
        vec![ScoreMean {
            name: "helpful".into(),
            count: 2,
            mean: 0.75
        }]
    );
    let s = &out[1].versions[0];
    assert_eq!(s.version, None);
    assert_eq!(
        (s.calls, s.cost_usd, s.p50_ns),
        (1, NanoUsd(500_000), Some(50 * MS))
    );
    assert_eq!(
        s.scores,
        vec![ScoreMean {
            name: "helpful".into(),
            count: 1,
            mean: 0.5
        }]
    );
}
