//! Retries of the recovery report, from typed facts instead of span bodies.
//!
//! What the report needs of a retried span — provider, tool, retry count, outcome, recovery
//! time and the error type of each attempt — is taken from its body once, at ingest
//! ([`RetryFacts::of`], with `spanlens_core::retry_timeline`, so it is read the way the report
//! reads it), and stored in a side table of retried spans (for the edges of a range and the
//! timelines) and summed per bucket into rollup rows ([`RetryBody`]): reading the side table
//! over 30 days of 40M spans (978k retried spans) took 750 ms. A report adds rows and edge
//! rows up and decodes only the bodies of the 200 most recent retried spans for their
//! timelines. Recovery times are kept as exact values with counts, so the percentiles, the
//! maximum and the mean are what a computation from every span gives.

use super::codec::{CodecError, Reader, Writer};
use spanlens_core::recovery::{
    DurationStats, HeadroomSeries, RecoveryReport, RetryGroup, RetryTimeline, MAX_TIMELINES,
};
use spanlens_core::{retry_timeline, Span};
use std::collections::BTreeMap;

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

/// Retried spans of one group in a rollup row, signed so a re-sent span can be taken back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetryAcc {
    pub spans: i64,
    pub retries: i128,
    pub recovered: i64,
}

impl RetryAcc {
    fn add(&mut self, retries: u64, ok: bool, sign: i64) {
        self.spans = self.spans.saturating_add(sign);
        self.retries = self
            .retries
            .saturating_add(i128::from(retries).saturating_mul(i128::from(sign)));
        if ok {
            self.recovered = self.recovered.saturating_add(sign);
        }
    }

    fn merge(&mut self, o: &RetryAcc, sign: i64) {
        self.spans = self.spans.saturating_add(o.spans.saturating_mul(sign));
        self.retries = self
            .retries
            .saturating_add(o.retries.saturating_mul(i128::from(sign)));
        self.recovered = self
            .recovered
            .saturating_add(o.recovered.saturating_mul(sign));
    }

    fn is_zero(&self) -> bool {
        *self == RetryAcc::default()
    }
}

const RETRY_BODY_VERSION: u8 = 1;

/// The retry sums of one rollup bucket: everything [`RetryTally`] adds up, mergeable and
/// signed. Recovery times (ms, as the report gives them) are kept by value with a count.
#[derive(Debug, Clone, Default)]
pub struct RetryBody {
    pub spans: i64,
    pub recovered: i64,
    pub retries: i128,
    pub by_provider: BTreeMap<String, RetryAcc>,
    pub by_tool: BTreeMap<String, RetryAcc>,
    pub by_error: BTreeMap<String, RetryAcc>,
    /// Recovery time (the bits of an `f64` of ms) → recovered spans that took it.
    pub recovery: BTreeMap<u64, i64>,
}

/// Equal when every sum is, zero entries left aside.
impl PartialEq for RetryBody {
    fn eq(&self, o: &RetryBody) -> bool {
        let live = |m: &BTreeMap<String, RetryAcc>| -> Vec<(String, RetryAcc)> {
            m.iter()
                .filter(|(_, a)| !a.is_zero())
                .map(|(k, a)| (k.clone(), *a))
                .collect()
        };
        let times = |m: &BTreeMap<u64, i64>| -> Vec<(u64, i64)> {
            m.iter()
                .filter(|(_, n)| **n != 0)
                .map(|(k, n)| (*k, *n))
                .collect()
        };
        (self.spans, self.recovered, self.retries) == (o.spans, o.recovered, o.retries)
            && live(&self.by_provider) == live(&o.by_provider)
            && live(&self.by_tool) == live(&o.by_tool)
            && live(&self.by_error) == live(&o.by_error)
            && times(&self.recovery) == times(&o.recovery)
    }
}

impl Eq for RetryBody {}

fn acc<'m>(map: &'m mut BTreeMap<String, RetryAcc>, key: &str) -> &'m mut RetryAcc {
    if !map.contains_key(key) {
        map.insert(key.to_string(), RetryAcc::default());
    }
    map.get_mut(key)
        .expect("the group is present: inserted just above when missing")
}

impl RetryBody {
    /// Counts one retried span (`sign` 1) or takes it back (-1).
    pub fn add(&mut self, f: &RetryFacts, sign: i64) {
        let ok = f.recovered;
        self.spans = self.spans.saturating_add(sign);
        if ok {
            self.recovered = self.recovered.saturating_add(sign);
        }
        self.retries = self
            .retries
            .saturating_add(i128::from(f.retries).saturating_mul(i128::from(sign)));
        if let Some(p) = &f.provider {
            acc(&mut self.by_provider, p).add(f.retries, ok, sign);
        }
        if let Some(t) = &f.tool {
            acc(&mut self.by_tool, t).add(f.retries, ok, sign);
        }
        for (e, n) in &f.errors {
            acc(&mut self.by_error, e).add(*n, ok, sign);
        }
        if ok {
            if let Some(ms) = f.recovery_ms {
                let n = self.recovery.entry(ms.to_bits()).or_default();
                *n = n.saturating_add(sign);
            }
        }
    }

    /// Adds `o` times `sign`.
    #[cfg(test)]
    pub fn merge(&mut self, o: &RetryBody, sign: i64) {
        self.spans = self.spans.saturating_add(o.spans.saturating_mul(sign));
        self.recovered = self
            .recovered
            .saturating_add(o.recovered.saturating_mul(sign));
        self.retries = self
            .retries
            .saturating_add(o.retries.saturating_mul(i128::from(sign)));
        for (mine, theirs) in [
            (&mut self.by_provider, &o.by_provider),
            (&mut self.by_tool, &o.by_tool),
            (&mut self.by_error, &o.by_error),
        ] {
            for (k, a) in theirs {
                acc(mine, k).merge(a, sign);
            }
        }
        for (k, n) in &o.recovery {
            let m = self.recovery.entry(*k).or_default();
            *m = m.saturating_add(n.saturating_mul(sign));
        }
    }

    /// True when every sum is zero.
    pub fn is_empty(&self) -> bool {
        *self == RetryBody::default()
    }

    /// The stored form: the sums, each group's sums, then the recovery times in increasing
    /// bit order as gaps from the previous one (zero sums left out).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.buf.push(RETRY_BODY_VERSION);
        w.i64(self.spans);
        w.i64(self.recovered);
        w.i128(self.retries);
        for map in [&self.by_provider, &self.by_tool, &self.by_error] {
            let live: Vec<(&String, &RetryAcc)> =
                map.iter().filter(|(_, a)| !a.is_zero()).collect();
            w.u64(live.len() as u64);
            for (k, a) in live {
                w.str(k);
                w.i64(a.spans);
                w.i128(a.retries);
                w.i64(a.recovered);
            }
        }
        let live: Vec<(&u64, &i64)> = self.recovery.iter().filter(|(_, n)| **n != 0).collect();
        w.u64(live.len() as u64);
        let mut prev = 0u64;
        for (k, n) in live {
            w.u64(k - prev);
            w.i64(*n);
            prev = *k;
        }
        w.buf
    }

    /// Adds an encoded body times `sign`.
    pub fn merge_encoded(&mut self, b: &[u8], sign: i64) -> Result<(), CodecError> {
        let mut r = Reader::new(b);
        let version = r.u8()?;
        if version != RETRY_BODY_VERSION {
            return Err(CodecError(format!("unknown retry body version {version}")));
        }
        let s = i128::from(sign);
        self.spans = self.spans.saturating_add(r.i64()?.saturating_mul(sign));
        self.recovered = self.recovered.saturating_add(r.i64()?.saturating_mul(sign));
        self.retries = self.retries.saturating_add(r.i128()?.saturating_mul(s));
        for k in 0..3 {
            let n = r.len()?;
            for _ in 0..n {
                let key = r.str()?;
                let a = RetryAcc {
                    spans: r.i64()?,
                    retries: r.i128()?,
                    recovered: r.i64()?,
                };
                let map = match k {
                    0 => &mut self.by_provider,
                    1 => &mut self.by_tool,
                    _ => &mut self.by_error,
                };
                acc(map, key).merge(&a, sign);
            }
        }
        let n = r.len()?;
        let mut key = 0u64;
        for i in 0..n {
            let gap = r.u64()?;
            key = if i == 0 {
                gap
            } else {
                key.checked_add(gap)
                    .ok_or_else(|| CodecError("recovery time out of range".into()))?
            };
            let c = r.i64()?;
            let m = self.recovery.entry(key).or_default();
            *m = m.saturating_add(c.saturating_mul(sign));
        }
        Ok(())
    }

    /// The report's retry figures, given the timelines of the most recent retried spans, how
    /// many retried spans were there in all, and the headroom series.
    pub fn finish(
        self,
        mut timelines: Vec<RetryTimeline>,
        rate_limits: Vec<HeadroomSeries>,
    ) -> RecoveryReport {
        let n = |v: i64| usize::try_from(v).unwrap_or(0);
        let accs = |m: BTreeMap<String, RetryAcc>| -> BTreeMap<String, GroupAcc> {
            m.into_iter()
                .filter(|(_, a)| a.spans > 0)
                .map(|(k, a)| {
                    (
                        k,
                        GroupAcc {
                            spans: n(a.spans),
                            retries: u64::try_from(a.retries.max(0)).unwrap_or(u64::MAX),
                            recovered: n(a.recovered),
                        },
                    )
                })
                .collect()
        };
        let total = n(self.spans);
        let recovered = n(self.recovered);
        timelines.sort_by(|a, b| {
            b.start_time
                .cmp(&a.start_time)
                .then_with(|| a.trace_id.cmp(&b.trace_id))
                .then_with(|| a.span_id.cmp(&b.span_id))
        });
        timelines.truncate(MAX_TIMELINES);
        RecoveryReport {
            spans_with_retries: total,
            recovered,
            failed: total.saturating_sub(recovered),
            recovery_rate: (total > 0).then(|| recovered as f64 / total as f64),
            retries: u64::try_from(self.retries.max(0)).unwrap_or(u64::MAX),
            recovery_time: stats_of_counts(&self.recovery),
            by_provider: groups(accs(self.by_provider)),
            by_tool: groups(accs(self.by_tool)),
            by_error_type: groups(accs(self.by_error)),
            timelines,
            timelines_truncated: total > MAX_TIMELINES,
            rate_limits,
        }
    }
}

/// Count, mean and nearest-rank p50, p95 and maximum of values given with their counts
/// (non-positive counts left out), without expanding them.
fn stats_of_counts(times: &BTreeMap<u64, i64>) -> Option<DurationStats> {
    let mut v: Vec<(f64, u64)> = times
        .iter()
        .filter_map(|(bits, c)| Some((f64::from_bits(*bits), u64::try_from(*c).ok()?)))
        .filter(|(_, c)| *c > 0)
        .collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n: u64 = v.iter().fold(0u64, |t, (_, c)| t.saturating_add(*c));
    let rank = |q: f64| -> f64 {
        let r = ((q * n as f64).ceil() as u64).clamp(1, n);
        let mut seen = 0u64;
        for (x, c) in &v {
            seen = seen.saturating_add(*c);
            if seen >= r {
                return *x;
            }
        }
        v[v.len() - 1].0
    };
    let sum: f64 = v.iter().map(|(x, c)| x * *c as f64).sum();
    Some(DurationStats {
        count: usize::try_from(n).unwrap_or(usize::MAX),
        mean_ms: sum / n as f64,
        p50_ms: rank(0.5),
        p95_ms: rank(0.95),
        max_ms: v[v.len() - 1].0,
    })
}

impl RetryFacts {
    /// The facts of a stored retry row (its error types decoded).
    pub fn of_row(r: &RetryRow<'_>) -> Result<RetryFacts, CodecError> {
        let mut errors = Vec::new();
        RetryFacts::decode_errors(r.errors, &mut |e, n| errors.push((e.to_string(), n)))?;
        Ok(RetryFacts {
            provider: r.provider.map(str::to_string),
            tool: r.tool.map(str::to_string),
            retries: r.retries,
            recovered: r.recovered,
            recovery_ms: r.recovery_ms,
            errors,
        })
    }
}

#[derive(Debug, Default, Clone)]
struct GroupAcc {
    spans: usize,
    retries: u64,
    recovered: usize,
}

/// One stored retried span (a `span_retries` row), as a report reads it at a range's edges.
#[derive(Debug, Clone, Copy)]
pub struct RetryRow<'a> {
    pub start_ns: i64,
    pub provider: Option<&'a str>,
    pub tool: Option<&'a str>,
    pub retries: u64,
    pub recovered: bool,
    pub recovery_ms: Option<f64>,
    /// Encoded error types ([`RetryFacts::encode_errors`]).
    pub errors: &'a [u8],
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

    /// Retry rows summed in parts, stored, merged back and with spans taken back give the core
    /// report's figures; damaged rows are errors.
    #[test]
    fn retry_rows_merge_and_take_back_to_the_core_report() {
        let mut spans = Vec::new();
        for n in 0..120u8 {
            let kind = if n % 3 == 0 {
                SpanKind::Tool
            } else {
                SpanKind::Llm
            };
            let status = if n % 5 == 0 {
                Status::Error
            } else {
                Status::Ok
            };
            let errs: &[&str] = if n % 2 == 0 {
                &["RateLimitError", "Timeout"]
            } else {
                &["Timeout"]
            };
            // Equal recovery times for many spans: counts above one.
            spans.push(retried(n, 1_000 + u64::from(n % 4), kind, errs, status));
        }
        let b = Buckets {
            from: Timestamp(0),
            to: Timestamp(10_000_000),
            count: 1,
        };
        let core = recovery_report(&spans, b);
        let facts: Vec<RetryFacts> = spans.iter().filter_map(RetryFacts::of).collect();
        let mut whole = RetryBody::default();
        for f in &facts {
            whole.add(f, 1);
        }
        let (mut first, mut second) = (RetryBody::default(), RetryBody::default());
        for (i, f) in facts.iter().enumerate() {
            if i % 3 == 0 {
                first.add(f, 1);
            } else {
                second.add(f, 1);
            }
        }
        // A span counted, then taken back (a re-sent copy).
        second.add(&facts[7], 1);
        let mut back = RetryBody::default();
        back.add(&facts[7], -1);
        let mut merged = RetryBody::default();
        for part in [&first, &second] {
            merged.merge_encoded(&part.encode(), 1).unwrap();
        }
        merged.merge_encoded(&back.encode(), 1).unwrap();
        assert_eq!(merged, whole);
        let mut gone = merged.clone();
        gone.merge(&whole, -1);
        assert!(gone.is_empty());
        let mine =
            serde_json::to_value(merged.finish(Vec::new(), core.rate_limits.clone())).unwrap();
        let mut want = serde_json::to_value(&core).unwrap();
        want["timelines"] = serde_json::json!([]);
        let mean = |v: &serde_json::Value| v["recovery_time"]["mean_ms"].as_f64().unwrap();
        assert!((mean(&mine) - mean(&want)).abs() <= 1e-9 * mean(&want));
        for v in [&mine, &want] {
            assert!(v["recovery_time"]["count"].as_u64().unwrap() > 0);
        }
        let strip = |mut v: serde_json::Value| {
            v["recovery_time"]["mean_ms"] = serde_json::json!(0);
            v
        };
        assert_eq!(strip(mine), strip(want));
        let bytes = whole.encode();
        for cut in 0..bytes.len() {
            assert!(RetryBody::default()
                .merge_encoded(&bytes[..cut], 1)
                .is_err());
        }
    }
}
