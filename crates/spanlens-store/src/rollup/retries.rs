//! Retries of the recovery report, from typed facts instead of span bodies.
//!
//! What the report needs of a retried span — provider, tool, retry count, outcome, recovery
//! time and the error type of each attempt — is taken from its body once, at ingest
//! ([`RetryFacts::of`], with `spanlens_core::retry_timeline`, so it is read the way the report
//! reads it), and stored in a side table of retried spans. A report then adds those rows up
//! ([`RetryTally`]) and decodes only the bodies of the 200 most recent retried spans for their
//! timelines. Recovery-time percentiles stay exact: every retried span's value is kept.

use super::codec::{CodecError, Reader, Writer};
use spanlens_core::recovery::{
    DurationStats, HeadroomSeries, RecoveryReport, RetryGroup, RetryTimeline, MAX_TIMELINES,
};
use spanlens_core::{retry_timeline, Span};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

/// What the recovery report reads of one retried span.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryFacts {
    /// Provider as sent.
    pub provider: Option<String>,
    /// Tool name (tool spans).
    pub tool: Option<String>,
    /// Failed attempts that were retried.
    pub retries: u64,
    /// The span recovered.
    pub recovered: bool,
    /// First failure to success, ms.
    pub recovery_ms: Option<f64>,
    /// Per error type, the attempts that failed with it (`unknown` carries the whole count when
    /// only a count was reported).
    pub errors: Vec<(String, u64)>,
}

impl RetryFacts {
    /// The facts of a span, `None` when it was never retried.
    pub fn of(span: &Span) -> Option<RetryFacts> {
        let t = retry_timeline(span)?;
        let mut per_error: BTreeMap<&str, u64> = BTreeMap::new();
        for a in &t.attempts {
            *per_error
                .entry(a.error_type.as_deref().unwrap_or("unknown"))
                .or_default() += 1;
        }
        if t.attempts.is_empty() {
            per_error.insert("unknown", t.retries);
        }
        Some(RetryFacts {
            errors: per_error
                .into_iter()
                .map(|(e, n)| (e.to_string(), n))
                .collect(),
            provider: t.provider,
            tool: t.tool,
            retries: t.retries,
            recovered: t.outcome == "recovered",
            recovery_ms: t.recovery_ms,
        })
    }

    /// The error types and counts as stored.
    pub fn encode_errors(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u64(self.errors.len() as u64);
        for (e, n) in &self.errors {
            w.str(e);
            w.u64(*n);
        }
        w.buf
    }

    /// Calls `f` with each stored `(error type, attempts)`.
    pub fn decode_errors(b: &[u8], f: &mut dyn FnMut(&str, u64)) -> Result<(), CodecError> {
        let mut r = Reader::new(b);
        let n = r.len()?;
        for _ in 0..n {
            let e = r.str()?;
            f(e, r.u64()?);
        }
        Ok(())
    }
}

#[derive(Debug, Default, Clone)]
struct GroupAcc {
    spans: usize,
    retries: u64,
    recovered: usize,
}

impl GroupAcc {
    fn add(&mut self, retries: u64, ok: bool) {
        self.spans += 1;
        self.retries = self.retries.saturating_add(retries);
        self.recovered += usize::from(ok);
    }
}

/// A retried span's place in "most recent first": later start first, then trace and span id.
type Recent = (Reverse<i64>, [u8; 16], [u8; 8], i64);

/// The retry figures of a report while retried spans are added.
#[derive(Debug, Default)]
pub struct RetryTally {
    spans: usize,
    recovered: usize,
    retries: u64,
    by_provider: BTreeMap<String, GroupAcc>,
    by_tool: BTreeMap<String, GroupAcc>,
    by_error: BTreeMap<String, GroupAcc>,
    recovery_ms: Vec<f64>,
    /// The most recent spans seen, worst on top so it is the one dropped.
    recent: BinaryHeap<Recent>,
}

/// One stored retried span, as the tally reads it.
#[derive(Debug, Clone, Copy)]
pub struct RetryRow<'a> {
    pub start_ns: i64,
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    /// The trace's row id (keys its bodies).
    pub trace_ref: i64,
    pub provider: Option<&'a str>,
    pub tool: Option<&'a str>,
    pub retries: u64,
    pub recovered: bool,
    pub recovery_ms: Option<f64>,
    /// Encoded error types ([`RetryFacts::encode_errors`]).
    pub errors: &'a [u8],
}

impl RetryTally {
    /// Counts one retried span.
    pub fn add(&mut self, r: &RetryRow<'_>) -> Result<(), CodecError> {
        let ok = r.recovered;
        self.spans += 1;
        self.recovered += usize::from(ok);
        self.retries = self.retries.saturating_add(r.retries);
        if let Some(p) = r.provider {
            slot(&mut self.by_provider, p).add(r.retries, ok);
        }
        if let Some(t) = r.tool {
            slot(&mut self.by_tool, t).add(r.retries, ok);
        }
        let by_error = &mut self.by_error;
        RetryFacts::decode_errors(r.errors, &mut |e, n| slot(by_error, e).add(n, ok))?;
        if ok {
            if let Some(ms) = r.recovery_ms {
                self.recovery_ms.push(ms);
            }
        }
        self.recent
            .push((Reverse(r.start_ns), r.trace_id, r.span_id, r.trace_ref));
        if self.recent.len() > MAX_TIMELINES {
            self.recent.pop();
        }
        Ok(())
    }

    /// The `(trace row id, span id)` of the spans whose timelines the report shows.
    pub fn recent(&self) -> Vec<(i64, [u8; 8])> {
        let mut v: Vec<&Recent> = self.recent.iter().collect();
        v.sort();
        v.into_iter().map(|r| (r.3, r.2)).collect()
    }

    /// The report, given the timelines of [`RetryTally::recent`] and the headroom series.
    pub fn finish(
        self,
        mut timelines: Vec<RetryTimeline>,
        rate_limits: Vec<HeadroomSeries>,
    ) -> RecoveryReport {
        timelines.sort_by(|a, b| {
            b.start_time
                .cmp(&a.start_time)
                .then_with(|| a.trace_id.cmp(&b.trace_id))
                .then_with(|| a.span_id.cmp(&b.span_id))
        });
        timelines.truncate(MAX_TIMELINES);
        let total = self.spans;
        RecoveryReport {
            spans_with_retries: total,
            recovered: self.recovered,
            failed: total - self.recovered,
            recovery_rate: (total > 0).then(|| self.recovered as f64 / total as f64),
            retries: self.retries,
            recovery_time: stats(self.recovery_ms),
            by_provider: groups(self.by_provider),
            by_tool: groups(self.by_tool),
            by_error_type: groups(self.by_error),
            timelines,
            timelines_truncated: total > MAX_TIMELINES,
            rate_limits,
        }
    }
}

fn slot<'m>(map: &'m mut BTreeMap<String, GroupAcc>, key: &str) -> &'m mut GroupAcc {
    if !map.contains_key(key) {
        map.insert(key.to_string(), GroupAcc::default());
    }
    map.get_mut(key)
        .expect("the group is present: inserted just above when missing")
}

/// Nearest-rank figures of the recovery times, as the core report computes them (the mean is
/// summed in sorted order, so it does not depend on the order the spans were read in).
fn stats(mut v: Vec<f64>) -> Option<DurationStats> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let rank = |q: f64| v[((q * n as f64).ceil() as usize).clamp(1, n) - 1];
    Some(DurationStats {
        count: n,
        mean_ms: v.iter().sum::<f64>() / n as f64,
        p50_ms: rank(0.5),
        p95_ms: rank(0.95),
        max_ms: v[n - 1],
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use spanlens_core::recovery::{recovery_report, Buckets};
    use spanlens_core::{Event, SpanId, SpanKind, Status, Timestamp, ToolInfo, TraceId};

    fn retried(n: u8, start: u64, kind: SpanKind, errors: &[&str], status: Status) -> Span {
        Span {
            trace_id: TraceId([n % 3; 16]),
            span_id: SpanId([n; 8]),
            name: format!("s{n}"),
            kind,
            start_time: Timestamp(start),
            end_time: Some(Timestamp(start + 5_000_000)),
            status,
            provider: (kind == SpanKind::Llm).then(|| "openai".into()),
            tool: (kind == SpanKind::Tool).then(|| ToolInfo {
                name: Some(format!("t{}", n % 2)),
                ..Default::default()
            }),
            events: errors
                .iter()
                .enumerate()
                .map(|(i, e)| Event {
                    name: "retry".into(),
                    time: Timestamp(start + i as u64 * 1_000_000),
                    attributes: [("error.type".to_string(), serde_json::json!(e))]
                        .into_iter()
                        .collect(),
                })
                .collect(),
            ..Default::default()
        }
    }

    /// Tallying stored facts gives the core report's figures (its timelines are the caller's).
    #[test]
    fn tally_matches_the_core_report() {
        let mut spans = Vec::new();
        for n in 0..250u8 {
            let kind = if n % 2 == 0 {
                SpanKind::Llm
            } else {
                SpanKind::Tool
            };
            let status = if n % 7 == 0 {
                Status::Error
            } else {
                Status::Ok
            };
            let errs: &[&str] = match n % 3 {
                0 => &["RateLimitError"],
                1 => &["Timeout", "RateLimitError"],
                _ => &[],
            };
            let mut s = retried(n, 1_000 + u64::from(n % 50), kind, errs, status);
            if errs.is_empty() {
                s.attributes
                    .insert("spanlens.tool.retry_count".into(), serde_json::json!(2));
            }
            spans.push(s);
        }
        spans.push(retried(251, 9, SpanKind::Span, &[], Status::Ok)); // never retried
        let b = Buckets {
            from: Timestamp(0),
            to: Timestamp(10_000_000),
            count: 2,
        };
        let core = recovery_report(&spans, b);
        let mut tally = RetryTally::default();
        let mut facts = Vec::new();
        for s in &spans {
            if let Some(f) = RetryFacts::of(s) {
                facts.push((s, f));
            }
        }
        assert!(RetryFacts::of(&spans[250]).is_none());
        for (s, f) in &facts {
            let errors = f.encode_errors();
            tally
                .add(&RetryRow {
                    start_ns: s.start_time.0 as i64,
                    trace_id: s.trace_id.0,
                    span_id: s.span_id.0,
                    trace_ref: 1,
                    provider: f.provider.as_deref(),
                    tool: f.tool.as_deref(),
                    retries: f.retries,
                    recovered: f.recovered,
                    recovery_ms: f.recovery_ms,
                    errors: &errors,
                })
                .unwrap();
        }
        let recent = tally.recent();
        assert_eq!(recent.len(), MAX_TIMELINES);
        let chosen: Vec<RetryTimeline> = recent
            .iter()
            .filter_map(|(_, sid)| spans.iter().find(|s| s.span_id.0 == *sid))
            .filter_map(retry_timeline)
            .collect();
        let mine = tally.finish(chosen, core.rate_limits.clone());
        assert_eq!(mine, core);
    }
}
