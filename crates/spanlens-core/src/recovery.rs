//! Error recovery: how retried operations fared, and how close calls ran to their rate limits
//! (issue #6, "Insight").
//!
//! Reads what the SDK and the normalisers record (see `spanlens::retry`):
//! - `retry` events, one per failed attempt that was retried: `retry.attempt`, `error.type`,
//!   `error.message`, `retry.backoff_ms`, `retry.retry_after_ms`;
//! - the `retry.outcome` event: `retry.succeeded`, `retry.attempts`, `retry.recovery_ms`,
//!   `retry.stop_reason`;
//! - the `spanlens.tool.retry_count` attribute of tool spans that only report a count;
//! - `rate_limits` snapshots of model calls.
//!
//! A span "has retries" when it has a `retry` event or a positive retry count. It *recovered*
//! when its outcome event says it succeeded, or, without one, when its status is not `error`.

use crate::span::{Span, SpanKind, Status};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::borrow::Cow;
use std::collections::BTreeMap;

/// Event recorded for each failed attempt that is retried.
pub const RETRY_EVENT: &str = "retry";
/// Event recorded once with the final outcome of an operation that failed at least once.
pub const RETRY_OUTCOME_EVENT: &str = "retry.outcome";
/// Attribute of tool spans that report only how often they were retried.
pub const TOOL_RETRY_COUNT_ATTR: &str = "spanlens.tool.retry_count";

/// Most timelines a report carries (the most recent ones); the rollups count every span.
pub const MAX_TIMELINES: usize = 200;

/// How to bucket rate-limit headroom in time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Buckets {
    /// Start of the first bucket.
    pub from: Timestamp,
    /// End of the last bucket.
    pub to: Timestamp,
    /// Number of equal buckets (at least 1).
    pub count: u32,
}

/// Recovery over a set of spans: the answer of `GET /api/v1/recovery`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecoveryReport {
    /// Spans that were retried at least once.
    pub spans_with_retries: usize,
    /// Of those, spans that ended successfully.
    pub recovered: usize,
    /// Of those, spans that gave up or ended in error.
    pub failed: usize,
    /// `recovered / spans_with_retries`; `None` without retried spans.
    pub recovery_rate: Option<f64>,
    /// Failed attempts that were retried, in all.
    pub retries: u64,
    /// Time from the first failed attempt to success, over recovered spans that say it.
    pub recovery_time: Option<DurationStats>,
    /// Retries by model provider (spans without a provider are left out).
    pub by_provider: Vec<RetryGroup>,
    /// Retries by tool (tool spans only).
    pub by_tool: Vec<RetryGroup>,
    /// Retries by the error type of each failed attempt.
    pub by_error_type: Vec<RetryGroup>,
    /// The most recent retried spans' timelines, newest first (at most [`MAX_TIMELINES`]).
    pub timelines: Vec<RetryTimeline>,
    /// More retried spans existed than timelines shown.
    pub timelines_truncated: bool,
    /// Rate-limit headroom per provider and window type, bucketed by time.
    pub rate_limits: Vec<HeadroomSeries>,
}

/// Mean and spread of a set of durations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DurationStats {
    /// Number of samples.
    pub count: usize,
    /// Mean, ms.
    pub mean_ms: f64,
    /// Median, ms (nearest rank).
    pub p50_ms: f64,
    /// 95th percentile, ms (nearest rank).
    pub p95_ms: f64,
    /// Longest, ms.
    pub max_ms: f64,
}

/// Retries of one provider, tool or error type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetryGroup {
    /// Provider, tool or error type.
    pub key: String,
    /// Retried spans in the group.
    pub spans: usize,
    /// Failed attempts that were retried.
    pub retries: u64,
    /// Spans in the group that recovered.
    pub recovered: usize,
    /// `recovered / spans`.
    pub recovery_rate: f64,
}

/// One failed attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// 1-based attempt number.
    pub attempt: u64,
    /// When it failed.
    pub time: Timestamp,
    /// Offset from the span start, ms.
    pub offset_ms: f64,
    /// Error class.
    pub error_type: Option<String>,
    /// Error message.
    pub error_message: Option<String>,
    /// Wait before the next attempt, ms.
    pub backoff_ms: Option<f64>,
    /// Server hint (`retry-after`), ms.
    pub retry_after_ms: Option<f64>,
}

/// The retry story of one span.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetryTimeline {
    /// Trace id.
    pub trace_id: String,
    /// Span id.
    pub span_id: String,
    /// Span name.
    pub name: String,
    /// Span kind.
    pub kind: SpanKind,
    /// Model provider.
    pub provider: Option<String>,
    /// Tool name (tool spans).
    pub tool: Option<String>,
    /// Agent the span belongs to.
    pub agent: Option<String>,
    /// Span start.
    pub start_time: Timestamp,
    /// Failed attempts that were retried, in order (empty when only a count was reported).
    pub attempts: Vec<Attempt>,
    /// Failed attempts that were retried (events, or the reported count).
    pub retries: u64,
    /// `recovered` or `failed`.
    pub outcome: Cow<'static, str>,
    /// Why retrying stopped on failure (`exhausted`, `not_retryable`).
    pub stop_reason: Option<String>,
    /// First failed attempt to success, ms (recovered spans).
    pub recovery_ms: Option<f64>,
}

/// Headroom of one provider's rate-limit window over time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadroomSeries {
    /// Provider (`unknown` when the span does not say).
    pub provider: String,
    /// Window type: `requests`, `tokens`, `input_tokens` or `output_tokens`.
    pub window: Cow<'static, str>,
    /// Snapshots in all.
    pub samples: usize,
    /// Lowest `remaining / limit` seen.
    pub min_headroom: f64,
    /// One entry per bucket, in time order (empty buckets included, with no samples).
    pub buckets: Vec<HeadroomBucket>,
}

/// Headroom in one time bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadroomBucket {
    /// Bucket start.
    pub from: Timestamp,
    /// Bucket end.
    pub to: Timestamp,
    /// Snapshots in the bucket.
    pub samples: usize,
    /// Lowest `remaining / limit`.
    pub min_headroom: Option<f64>,
    /// Mean `remaining / limit`.
    pub mean_headroom: Option<f64>,
    /// Lowest `remaining` seen.
    pub min_remaining: Option<u64>,
    /// Largest `limit` seen.
    pub limit: Option<u64>,
    /// Snapshots that carried a `retry-after` (the provider asked to back off).
    pub throttled: usize,
}

fn attr_f64(attrs: &crate::span::Attributes, key: &str) -> Option<f64> {
    let v = attrs.get(key)?;
    let n = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }?;
    (n.is_finite() && n >= 0.0).then_some(n)
}

fn attr_str(attrs: &crate::span::Attributes, key: &str) -> Option<String> {
    match attrs.get(key)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Null => None,
        v => Some(v.to_string()),
    }
}

fn attr_bool(attrs: &crate::span::Attributes, key: &str) -> Option<bool> {
    match attrs.get(key)? {
        Value::Bool(b) => Some(*b),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn tool_name(s: &Span) -> Option<String> {
    (s.kind == SpanKind::Tool).then(|| {
        s.tool
            .as_ref()
            .and_then(|t| t.name.clone())
            .unwrap_or_else(|| s.name.clone())
    })
}

/// The retry timeline of one span, or `None` when it was never retried.
pub fn retry_timeline(s: &Span) -> Option<RetryTimeline> {
    let start = s.start_time.0;
    let attempts: Vec<Attempt> = s
        .events
        .iter()
        .filter(|e| e.name.eq_ignore_ascii_case(RETRY_EVENT))
        .enumerate()
        .map(|(i, e)| Attempt {
            attempt: attr_f64(&e.attributes, "retry.attempt").map_or(i as u64 + 1, |n| n as u64),
            time: e.time,
            offset_ms: (i128::from(e.time.0) - i128::from(start)) as f64 / 1e6,
            error_type: attr_str(&e.attributes, "error.type"),
            error_message: attr_str(&e.attributes, "error.message"),
            backoff_ms: attr_f64(&e.attributes, "retry.backoff_ms"),
            retry_after_ms: attr_f64(&e.attributes, "retry.retry_after_ms"),
        })
        .collect();
    let counted = s
        .attributes
        .get(TOOL_RETRY_COUNT_ATTR)
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let retries = (attempts.len() as u64).max(counted);
    if retries == 0 {
        return None;
    }
    let outcome = s
        .events
        .iter()
        .rev()
        .find(|e| e.name.eq_ignore_ascii_case(RETRY_OUTCOME_EVENT));
    let succeeded = outcome
        .and_then(|e| attr_bool(&e.attributes, "retry.succeeded"))
        .unwrap_or(s.status != Status::Error);
    // Recovery time: as recorded, else from the first failure to the outcome (or span end).
    let recovery_ms = succeeded
        .then(|| {
            outcome
                .and_then(|e| attr_f64(&e.attributes, "retry.recovery_ms"))
                .or_else(|| {
                    let first = attempts.first()?.time.0;
                    let done = outcome.map(|e| e.time).or(s.end_time)?.0;
                    Some(done.saturating_sub(first) as f64 / 1e6)
                })
        })
        .flatten();
    Some(RetryTimeline {
        trace_id: s.trace_id.to_hex(),
        span_id: s.span_id.to_hex(),
        name: s.name.clone(),
        kind: s.kind,
        provider: s.provider.clone(),
        tool: tool_name(s),
        agent: s.agent_name.clone(),
        start_time: s.start_time,
        attempts,
        retries,
        outcome: Cow::Borrowed(if succeeded { "recovered" } else { "failed" }),
        stop_reason: outcome.and_then(|e| attr_str(&e.attributes, "retry.stop_reason")),
        recovery_ms,
    })
}

fn stats(mut v: Vec<f64>) -> Option<DurationStats> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let rank = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    Some(DurationStats {
        count: v.len(),
        mean_ms: v.iter().sum::<f64>() / v.len() as f64,
        p50_ms: rank(0.5),
        p95_ms: rank(0.95),
        max_ms: v[v.len() - 1],
    })
}

#[derive(Default)]
struct GroupAcc {
    spans: usize,
    retries: u64,
    recovered: usize,
}

fn groups(map: BTreeMap<String, GroupAcc>) -> Vec<RetryGroup> {
    let mut out: Vec<RetryGroup> = map
        .into_iter()
        .map(|(key, g)| RetryGroup {
            key,
            spans: g.spans,
            retries: g.retries,
            recovered: g.recovered,
            recovery_rate: g.recovered as f64 / g.spans.max(1) as f64,
        })
        .collect();
    out.sort_by(|a, b| b.retries.cmp(&a.retries).then(a.key.cmp(&b.key)));
    out
}

/// Builds the recovery report of `spans` (any spans: those without retries or rate limits are
/// ignored), with rate-limit headroom bucketed as `buckets` says.
pub fn recovery_report(spans: &[Span], buckets: Buckets) -> RecoveryReport {
    let mut b = RecoveryBuilder::new(buckets);
    for s in spans {
        b.add(s);
    }
    b.finish()
}

/// Builds a [`RecoveryReport`] one span at a time, so a caller scanning a large range keeps
/// only the retried spans' timelines and the headroom tallies, never the spans themselves.
#[derive(Debug, Clone)]
pub struct RecoveryBuilder {
    timelines: Vec<RetryTimeline>,
    headroom: Headroom,
}

impl RecoveryBuilder {
    /// An empty report with rate-limit headroom bucketed as `buckets` says.
    pub fn new(buckets: Buckets) -> RecoveryBuilder {
        RecoveryBuilder {
            timelines: Vec::new(),
            headroom: Headroom::new(buckets),
        }
    }

    /// Counts one span (one without retries or rate limits changes nothing).
    pub fn add(&mut self, s: &Span) {
        if let Some(t) = retry_timeline(s) {
            self.timelines.push(t);
        }
        self.headroom.add(s);
    }

    /// The report of every span added.
    pub fn finish(self) -> RecoveryReport {
        let mut timelines = self.timelines;
        let recovered = timelines
            .iter()
            .filter(|t| t.outcome == "recovered")
            .count();
        let (mut by_provider, mut by_tool, mut by_error) =
            (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
        for t in &timelines {
            let ok = usize::from(t.outcome == "recovered");
            let add = |map: &mut BTreeMap<String, GroupAcc>, key: &str, retries: u64| {
                let g = map.entry(key.to_string()).or_default();
                g.spans += 1;
                g.retries += retries;
                g.recovered += ok;
            };
            if let Some(p) = &t.provider {
                add(&mut by_provider, p, t.retries);
            }
            if let Some(tool) = &t.tool {
                add(&mut by_tool, tool, t.retries);
            }
            let mut per_error: BTreeMap<&str, u64> = BTreeMap::new();
            for a in &t.attempts {
                *per_error
                    .entry(a.error_type.as_deref().unwrap_or("unknown"))
                    .or_default() += 1;
            }
            if t.attempts.is_empty() {
                per_error.insert("unknown", t.retries);
            }
            for (e, n) in per_error {
                add(&mut by_error, e, n);
            }
        }
        let recovery_time = stats(timelines.iter().filter_map(|t| t.recovery_ms).collect());
        let total = timelines.len();
        let retries = timelines.iter().map(|t| t.retries).sum();
        // Newest first; ties (same start) in a fixed order whatever order the spans came in.
        timelines.sort_by(|a, b| {
            b.start_time
                .cmp(&a.start_time)
                .then_with(|| a.trace_id.cmp(&b.trace_id))
                .then_with(|| a.span_id.cmp(&b.span_id))
        });
        let truncated = timelines.len() > MAX_TIMELINES;
        timelines.truncate(MAX_TIMELINES);
        RecoveryReport {
            spans_with_retries: total,
            recovered,
            failed: total - recovered,
            recovery_rate: (total > 0).then(|| recovered as f64 / total as f64),
            retries,
            recovery_time,
            by_provider: groups(by_provider),
            by_tool: groups(by_tool),
            by_error_type: groups(by_error),
            timelines,
            timelines_truncated: truncated,
            rate_limits: self.headroom.finish(),
        }
    }
}

/// Rate-limit snapshots bucketed by the time they were taken (the span's end, else its start).
#[derive(Debug, Clone)]
struct Headroom {
    b: Buckets,
    n: u64,
    width: u64,
    series: BTreeMap<(String, &'static str), HeadroomSeries>,
    /// Per series, the sum of the ratios in each bucket (for the mean).
    sums: BTreeMap<(String, &'static str), Vec<f64>>,
}

impl Headroom {
    fn new(b: Buckets) -> Headroom {
        let n = b.count.max(1) as u64;
        Headroom {
            b,
            n,
            width: b.to.0.saturating_sub(b.from.0).max(1).div_ceil(n),
            series: BTreeMap::new(),
            sums: BTreeMap::new(),
        }
    }

    fn add(&mut self, s: &Span) {
        let (b, n, width) = (self.b, self.n, self.width);
        let Some(rl) = &s.rate_limits else { return };
        let at = s.end_time.unwrap_or(s.start_time).0;
        if at < b.from.0 || at >= b.to.0 {
            return;
        }
        let i = ((at - b.from.0) / width).min(n - 1) as usize;
        let provider = s.provider.clone().unwrap_or_else(|| "unknown".into());
        let windows = [
            ("requests", &rl.requests),
            ("tokens", &rl.tokens),
            ("input_tokens", &rl.input_tokens),
            ("output_tokens", &rl.output_tokens),
        ];
        for (window, w) in windows {
            let Some(w) = w else { continue };
            let (Some(limit), Some(remaining)) = (w.limit, w.remaining) else {
                continue;
            };
            if limit == 0 {
                continue;
            }
            let ratio = (remaining as f64 / limit as f64).min(1.0);
            let key = (provider.clone(), window);
            let sr = self
                .series
                .entry(key.clone())
                .or_insert_with(|| HeadroomSeries {
                    provider: provider.clone(),
                    window: Cow::Borrowed(window),
                    samples: 0,
                    min_headroom: 1.0,
                    buckets: (0..n)
                        .map(|k| HeadroomBucket {
                            from: Timestamp(b.from.0 + k * width),
                            to: Timestamp((b.from.0 + (k + 1) * width).min(b.to.0)),
                            samples: 0,
                            min_headroom: None,
                            mean_headroom: None,
                            min_remaining: None,
                            limit: None,
                            throttled: 0,
                        })
                        .collect(),
                });
            sr.samples += 1;
            sr.min_headroom = sr.min_headroom.min(ratio);
            let bk = &mut sr.buckets[i];
            bk.samples += 1;
            bk.min_headroom = Some(bk.min_headroom.map_or(ratio, |m| m.min(ratio)));
            bk.min_remaining = Some(bk.min_remaining.map_or(remaining, |m| m.min(remaining)));
            bk.limit = Some(bk.limit.map_or(limit, |m| m.max(limit)));
            bk.throttled += usize::from(rl.retry_after_ms.is_some());
            let sum = self
                .sums
                .entry(key)
                .or_insert_with(|| vec![0.0; n as usize]);
            sum[i] += ratio;
        }
    }

    fn finish(mut self) -> Vec<HeadroomSeries> {
        for (key, sr) in self.series.iter_mut() {
            if let Some(sum) = self.sums.get(key) {
                for (bk, total) in sr.buckets.iter_mut().zip(sum) {
                    if bk.samples > 0 {
                        bk.mean_headroom = Some(total / bk.samples as f64);
                    }
                }
            }
        }
        self.series.into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{SpanId, TraceId};
    use crate::span::{Event, RateLimitWindow, RateLimits, ToolInfo};
    use serde_json::json;

    const MS: u64 = 1_000_000;

    fn span(n: u8, start_ms: u64, end_ms: u64) -> Span {
        Span {
            trace_id: TraceId([1; 16]),
            span_id: SpanId([n; 8]),
            name: format!("s{n}"),
            start_time: Timestamp(start_ms * MS),
            end_time: Some(Timestamp(end_ms * MS)),
            status: Status::Ok,
            ..Default::default()
        }
    }

    fn retry(at_ms: u64, attempt: u64, error: &str, backoff: u64) -> Event {
        Event {
            name: "retry".into(),
            time: Timestamp(at_ms * MS),
            attributes: [
                ("retry.attempt".to_string(), json!(attempt)),
                ("error.type".to_string(), json!(error)),
                ("retry.backoff_ms".to_string(), json!(backoff)),
            ]
            .into_iter()
            .collect(),
        }
    }

    fn outcome(at_ms: u64, ok: bool, extra: Value) -> Event {
        let mut attributes: crate::span::Attributes = [
            ("retry.succeeded".to_string(), json!(ok)),
            ("retry.attempts".to_string(), json!(2)),
        ]
        .into_iter()
        .collect();
        if let Value::Object(m) = extra {
            attributes.extend(m);
        }
        Event {
            name: "retry.outcome".into(),
            time: Timestamp(at_ms * MS),
            attributes,
        }
    }

    fn all(spans: &[Span]) -> RecoveryReport {
        recovery_report(
            spans,
            Buckets {
                from: Timestamp(0),
                to: Timestamp(100 * MS),
                count: 4,
            },
        )
    }

    fn sample() -> Vec<Span> {
        // An LLM call that hit a rate limit twice and then succeeded.
        let mut llm = span(1, 0, 50);
        llm.kind = SpanKind::Llm;
        llm.provider = Some("openai".into());
        llm.events = vec![
            retry(5, 1, "RateLimitError", 10),
            retry(20, 2, "RateLimitError", 20),
            outcome(45, true, json!({"retry.recovery_ms": 40})),
        ];
        // A tool call that timed out twice and gave up.
        let mut tool = span(2, 10, 60);
        tool.kind = SpanKind::Tool;
        tool.tool = Some(ToolInfo {
            name: Some("search".into()),
            ..Default::default()
        });
        tool.status = Status::Error;
        tool.events = vec![
            retry(20, 1, "TimeoutError", 5),
            outcome(60, false, json!({"retry.stop_reason": "exhausted"})),
        ];
        // A tool that only reports a count, and recovered (status ok, no outcome event).
        let mut counted = span(3, 0, 30);
        counted.kind = SpanKind::Tool;
        counted
            .attributes
            .insert(TOOL_RETRY_COUNT_ATTR.into(), json!(3));
        // Never retried.
        let plain = span(4, 0, 10);
        vec![llm, tool, counted, plain]
    }

    #[test]
    fn recovery_rate_and_time() {
        let r = all(&sample());
        assert_eq!(r.spans_with_retries, 3);
        assert_eq!((r.recovered, r.failed), (2, 1));
        assert_eq!(r.recovery_rate, Some(2.0 / 3.0));
        assert_eq!(r.retries, 2 + 1 + 3);
        // Only the LLM call says how long recovery took.
        let t = r.recovery_time.unwrap();
        assert_eq!((t.count, t.mean_ms, t.max_ms), (1, 40.0, 40.0));
    }

    #[test]
    fn timelines_carry_attempts_backoff_and_outcome() {
        let r = all(&sample());
        let llm = r.timelines.iter().find(|t| t.name == "s1").unwrap();
        assert_eq!(llm.outcome, "recovered");
        assert_eq!(llm.attempts.len(), 2);
        assert_eq!(llm.attempts[1].attempt, 2);
        assert_eq!(llm.attempts[1].offset_ms, 20.0);
        assert_eq!(llm.attempts[1].backoff_ms, Some(20.0));
        assert_eq!(
            llm.attempts[0].error_type.as_deref(),
            Some("RateLimitError")
        );
        let tool = r.timelines.iter().find(|t| t.name == "s2").unwrap();
        assert_eq!(tool.outcome, "failed");
        assert_eq!(tool.stop_reason.as_deref(), Some("exhausted"));
        assert_eq!(tool.recovery_ms, None);
        let counted = r.timelines.iter().find(|t| t.name == "s3").unwrap();
        assert!(counted.attempts.is_empty());
        assert_eq!(counted.retries, 3);
        // Newest first.
        assert_eq!(r.timelines[0].name, "s2");
    }

    #[test]
    fn recovery_time_without_a_recorded_figure_runs_to_the_outcome() {
        let mut s = span(1, 0, 90);
        s.events = vec![retry(10, 1, "Boom", 5), outcome(70, true, json!({}))];
        assert_eq!(retry_timeline(&s).unwrap().recovery_ms, Some(60.0));
        s.events.pop();
        assert_eq!(retry_timeline(&s).unwrap().recovery_ms, Some(80.0));
        s.status = Status::Error;
        assert_eq!(retry_timeline(&s).unwrap().outcome, "failed");
    }

    #[test]
    fn retries_are_grouped_by_provider_tool_and_error_type() {
        let r = all(&sample());
        assert_eq!(r.by_provider.len(), 1);
        assert_eq!(r.by_provider[0].key, "openai");
        assert_eq!(r.by_provider[0].retries, 2);
        let tools: Vec<(&str, u64, usize)> = r
            .by_tool
            .iter()
            .map(|g| (g.key.as_str(), g.retries, g.recovered))
            .collect();
        assert_eq!(tools, [("s3", 3, 1), ("search", 1, 0)]);
        let errors: Vec<(&str, u64)> = r
            .by_error_type
            .iter()
            .map(|g| (g.key.as_str(), g.retries))
            .collect();
        assert_eq!(
            errors,
            [("unknown", 3), ("RateLimitError", 2), ("TimeoutError", 1)]
        );
    }

    #[test]
    fn rate_limit_headroom_is_bucketed() {
        let window = |limit, remaining| {
            Some(RateLimitWindow {
                limit: Some(limit),
                remaining: Some(remaining),
                reset: None,
            })
        };
        let mut spans = Vec::new();
        for (n, end, remaining, throttled) in
            [(1, 10, 90, false), (2, 20, 50, false), (3, 80, 0, true)]
        {
            let mut s = span(n, 0, end);
            s.provider = Some("anthropic".into());
            s.rate_limits = Some(RateLimits {
                requests: window(100, remaining),
                tokens: window(0, 0), // no limit: skipped
                retry_after_ms: throttled.then_some(1000),
                ..Default::default()
            });
            spans.push(s);
        }
        let mut outside = span(9, 0, 200);
        outside.rate_limits = spans[0].rate_limits.clone();
        spans.push(outside);
        let r = all(&spans);
        assert_eq!(r.rate_limits.len(), 1);
        let s = &r.rate_limits[0];
        assert_eq!(
            (s.provider.as_str(), &*s.window, s.samples),
            ("anthropic", "requests", 3)
        );
        assert_eq!(s.min_headroom, 0.0);
        assert_eq!(s.buckets.len(), 4);
        let b0 = &s.buckets[0];
        assert_eq!(b0.samples, 2);
        assert_eq!(b0.min_headroom, Some(0.5));
        assert!((b0.mean_headroom.unwrap() - 0.7).abs() < 1e-12);
        assert_eq!(b0.min_remaining, Some(50));
        assert_eq!(s.buckets[1].samples, 0);
        assert_eq!(s.buckets[3].throttled, 1);
        assert_eq!(s.buckets[3].to, Timestamp(100 * MS));
    }

    #[test]
    fn nothing_to_report() {
        let r = all(&[span(1, 0, 10)]);
        assert_eq!(r.spans_with_retries, 0);
        assert_eq!(r.recovery_rate, None);
        assert!(r.recovery_time.is_none() && r.rate_limits.is_empty());
        serde_json::to_string(&r).unwrap();
    }
}
