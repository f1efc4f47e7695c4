//! Rate-limit headroom of the recovery report, from typed snapshots instead of span bodies.
//!
//! A model call's rate-limit snapshot is stored with its span as a small typed value
//! ([`RateSample`]); rollups keep, per provider and window, the sample count, the lowest and
//! the summed `remaining / limit`, the lowest `remaining`, the largest `limit` and how many
//! snapshots asked to back off ([`HeadroomAgg`]), per bucket of the *snapshot* time (the
//! span's end, else its start), which is what the report buckets by.
//!
//! Minimums do not subtract, so these rows are merged but never take a span back: when a
//! re-sent span changes or drops its snapshot, the writer rebuilds the rows of that bucket.

use super::codec::{CodecError, Reader, Writer};
use spanlens_core::recovery::{Buckets, HeadroomBucket, HeadroomSeries};
use spanlens_core::{RateLimits, Timestamp};
use std::collections::BTreeMap;

/// Window types in the order their values are stored.
pub const WINDOWS: [&str; 4] = ["requests", "tokens", "input_tokens", "output_tokens"];

/// What the report reads of one rate-limit snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateSample {
    /// The span's provider as sent (`unknown` without one), as the report labels it.
    pub provider: String,
    /// Per window of [`WINDOWS`]: `(limit, remaining)` when both are known and the limit is
    /// not 0 (the report skips the others).
    pub windows: [Option<(u64, u64)>; 4],
    /// The provider sent a `retry-after`.
    pub throttled: bool,
}

impl RateSample {
    /// The sample of a span's rate limits; `None` when no window can be read.
    pub fn of(provider: Option<&str>, rl: &RateLimits) -> Option<RateSample> {
        let mut windows = [None; 4];
        for (slot, w) in windows.iter_mut().zip([
            &rl.requests,
            &rl.tokens,
            &rl.input_tokens,
            &rl.output_tokens,
        ]) {
            if let Some(w) = w {
                if let (Some(limit), Some(remaining)) = (w.limit, w.remaining) {
                    if limit != 0 {
                        *slot = Some((limit, remaining));
                    }
                }
            }
        }
        if windows.iter().all(Option::is_none) {
            return None;
        }
        Some(RateSample {
            provider: provider.unwrap_or("unknown").to_string(),
            windows,
            throttled: rl.retry_after_ms.is_some(),
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.str(&self.provider);
        let mut mask = u8::from(self.throttled) << 4;
        for (i, win) in self.windows.iter().enumerate() {
            if win.is_some() {
                mask |= 1 << i;
            }
        }
        w.buf.push(mask);
        for (limit, remaining) in self.windows.iter().flatten() {
            w.u64(*limit);
            w.u64(*remaining);
        }
        w.buf
    }

    pub fn decode(b: &[u8]) -> Result<RateSample, CodecError> {
        let mut r = Reader::new(b);
        let provider = r.str()?.to_string();
        let mask = r.u8()?;
        let mut windows = [None; 4];
        for (i, slot) in windows.iter_mut().enumerate() {
            if mask & (1 << i) != 0 {
                *slot = Some((r.u64()?, r.u64()?));
            }
        }
        Ok(RateSample {
            provider,
            windows,
            throttled: mask & (1 << 4) != 0,
        })
    }
}

/// Snapshots of one provider's window in one bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct HeadroomAgg {
    pub samples: i64,
    pub min_ratio: f64,
    pub sum_ratio: f64,
    pub min_remaining: u64,
    pub max_limit: u64,
    pub throttled: i64,
}

impl HeadroomAgg {
    fn one(limit: u64, remaining: u64, throttled: bool) -> HeadroomAgg {
        let ratio = (remaining as f64 / limit as f64).min(1.0);
        HeadroomAgg {
            samples: 1,
            min_ratio: ratio,
            sum_ratio: ratio,
            min_remaining: remaining,
            max_limit: limit,
            throttled: i64::from(throttled),
        }
    }

    pub fn merge(&mut self, o: &HeadroomAgg) {
        self.samples = self.samples.saturating_add(o.samples);
        self.min_ratio = self.min_ratio.min(o.min_ratio);
        self.sum_ratio += o.sum_ratio;
        self.min_remaining = self.min_remaining.min(o.min_remaining);
        self.max_limit = self.max_limit.max(o.max_limit);
        self.throttled = self.throttled.saturating_add(o.throttled);
    }
}

/// A headroom row: `(provider, window index)` → snapshots.
pub type HeadroomBody = BTreeMap<(String, u8), HeadroomAgg>;

/// Counts a snapshot into a row.
pub fn add_sample(body: &mut HeadroomBody, s: &RateSample) {
    for (i, w) in s.windows.iter().enumerate() {
        let Some((limit, remaining)) = *w else {
            continue;
        };
        let one = HeadroomAgg::one(limit, remaining, s.throttled);
        match body.get_mut(&(s.provider.clone(), i as u8)) {
            Some(a) => a.merge(&one),
            None => {
                body.insert((s.provider.clone(), i as u8), one);
            }
        }
    }
}

const BODY_VERSION: u8 = 1;

pub fn encode_headroom(body: &HeadroomBody) -> Vec<u8> {
    let mut w = Writer::default();
    w.buf.push(BODY_VERSION);
    w.u64(body.len() as u64);
    for ((provider, window), a) in body {
        w.str(provider);
        w.buf.push(*window);
        w.i64(a.samples);
        w.f64(a.min_ratio);
        w.f64(a.sum_ratio);
        w.u64(a.min_remaining);
        w.u64(a.max_limit);
        w.i64(a.throttled);
    }
    w.buf
}

/// Calls `f` with each `(provider, window index, snapshots)` of an encoded row.
pub fn for_each_headroom_entry(
    body: &[u8],
    f: &mut dyn FnMut(&str, u8, HeadroomAgg),
) -> Result<(), CodecError> {
    let mut r = Reader::new(body);
    let version = r.u8()?;
    if version != BODY_VERSION {
        return Err(CodecError(format!(
            "unknown headroom body version {version}"
        )));
    }
    let n = r.len()?;
    for _ in 0..n {
        let provider = r.str()?;
        let window = r.u8()?;
        if usize::from(window) >= WINDOWS.len() {
            return Err(CodecError(format!("unknown rate-limit window {window}")));
        }
        let a = HeadroomAgg {
            samples: r.i64()?,
            min_ratio: r.f64()?,
            sum_ratio: r.f64()?,
            min_remaining: r.u64()?,
            max_limit: r.u64()?,
            throttled: r.i64()?,
        };
        f(provider, window, a);
    }
    Ok(())
}

/// Merges an encoded row into `into`.
pub fn merge_headroom(into: &mut HeadroomBody, body: &[u8]) -> Result<(), CodecError> {
    for_each_headroom_entry(
        body,
        &mut |p, w, a| match into.get_mut(&(p.to_string(), w)) {
            Some(x) => x.merge(&a),
            None => {
                into.insert((p.to_string(), w), a);
            }
        },
    )
}

/// The report's headroom series while buckets are filled: one slot per report bucket.
#[derive(Debug)]
pub struct HeadroomReport {
    b: Buckets,
    n: u64,
    width: u64,
    series: BTreeMap<(String, &'static str), Vec<Option<HeadroomAgg>>>,
}

impl HeadroomReport {
    /// Empty series bucketed as `b` says (the same bucket bounds as `RecoveryBuilder`).
    pub fn new(b: Buckets) -> HeadroomReport {
        let n = u64::from(b.count.max(1));
        HeadroomReport {
            b,
            n,
            width: b.to.0.saturating_sub(b.from.0).max(1).div_ceil(n),
            series: BTreeMap::new(),
        }
    }

    /// Number of report buckets.
    pub fn len(&self) -> usize {
        self.n as usize
    }

    /// The snapshot-time bounds of report bucket `i` as the report shows them; buckets past
    /// the end of the range are empty (`from >= to`).
    pub fn bounds(&self, i: usize) -> (u64, u64) {
        let k = i as u64;
        let from = self.b.from.0.saturating_add(k.saturating_mul(self.width));
        let to = self
            .b
            .from
            .0
            .saturating_add((k + 1).saturating_mul(self.width))
            .min(self.b.to.0);
        (from, to)
    }

    /// The report bucket of a snapshot taken at `at`, `None` outside the report.
    pub fn bucket_of(&self, at: u64) -> Option<usize> {
        if at < self.b.from.0 || at >= self.b.to.0 {
            return None;
        }
        Some(((at - self.b.from.0) / self.width).min(self.n - 1) as usize)
    }

    /// Adds a row entry (or one sample's) to report bucket `i`.
    pub fn add(&mut self, i: usize, provider: &str, window: u8, a: &HeadroomAgg) {
        let Some(name) = WINDOWS.get(usize::from(window)) else {
            return;
        };
        if i >= self.len() || a.samples == 0 {
            return;
        }
        let n = self.len();
        let slots = match self.series.get_mut(&(provider.to_string(), *name)) {
            Some(s) => s,
            None => self
                .series
                .entry((provider.to_string(), *name))
                .or_insert_with(|| vec![None; n]),
        };
        match &mut slots[i] {
            Some(x) => x.merge(a),
            slot => *slot = Some(a.clone()),
        }
    }

    /// Adds one snapshot taken at `at` (ignored outside the report).
    pub fn add_sample(&mut self, at: u64, s: &RateSample) {
        let Some(i) = self.bucket_of(at) else {
            return;
        };
        let mut body = HeadroomBody::new();
        add_sample(&mut body, s);
        for ((p, w), a) in &body {
            self.add(i, p, *w, a);
        }
    }

    /// The series, by provider then window name, every bucket present.
    pub fn finish(self) -> Vec<HeadroomSeries> {
        let mut out = Vec::with_capacity(self.series.len());
        for ((provider, window), slots) in &self.series {
            let mut samples = 0usize;
            let mut min_headroom = 1.0f64;
            let mut buckets = Vec::with_capacity(slots.len());
            for (k, slot) in slots.iter().enumerate() {
                let (from, to) = self.bounds(k);
                let mut bk = HeadroomBucket {
                    from: Timestamp(from),
                    to: Timestamp(to),
                    samples: 0,
                    min_headroom: None,
                    mean_headroom: None,
                    min_remaining: None,
                    limit: None,
                    throttled: 0,
                };
                if let Some(a) = slot.as_ref().filter(|a| a.samples > 0) {
                    let n = usize::try_from(a.samples).unwrap_or(0);
                    samples += n;
                    min_headroom = min_headroom.min(a.min_ratio);
                    bk.samples = n;
                    bk.min_headroom = Some(a.min_ratio);
                    bk.mean_headroom = Some(a.sum_ratio / a.samples as f64);
                    bk.min_remaining = Some(a.min_remaining);
                    bk.limit = Some(a.max_limit);
                    bk.throttled = usize::try_from(a.throttled).unwrap_or(0);
                }
                buckets.push(bk);
            }
            out.push(HeadroomSeries {
                provider: provider.clone(),
                window: std::borrow::Cow::Borrowed(window),
                samples,
                min_headroom,
                buckets,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spanlens_core::recovery::RecoveryBuilder;
    use spanlens_core::{RateLimitWindow, Span, SpanId, TraceId};

    fn rl(limit: u64, remaining: u64, throttled: bool) -> RateLimits {
        RateLimits {
            requests: Some(RateLimitWindow {
                limit: Some(limit),
                remaining: Some(remaining),
                reset: None,
            }),
            tokens: Some(RateLimitWindow {
                limit: Some(0),
                remaining: Some(0),
                reset: None,
            }),
            output_tokens: Some(RateLimitWindow {
                limit: Some(1000),
                remaining: None,
                reset: None,
            }),
            input_tokens: Some(RateLimitWindow {
                limit: Some(500),
                remaining: Some(900),
                reset: None,
            }),
            retry_after_ms: throttled.then_some(10),
        }
    }

    #[test]
    fn samples_keep_only_readable_windows_and_round_trip() {
        let s = RateSample::of(Some(" "), &rl(100, 25, true)).unwrap();
        assert_eq!(s.provider, " ");
        assert_eq!(s.windows, [Some((100, 25)), None, Some((500, 900)), None]);
        assert_eq!(RateSample::decode(&s.encode()).unwrap(), s);
        assert!(RateSample::of(None, &RateLimits::default()).is_none());
        assert!(RateSample::decode(&[1]).is_err());
    }

    /// The series built from samples (split over rows, merged) equal the core builder's.
    #[test]
    fn series_match_the_core_report() {
        let b = Buckets {
            from: Timestamp(1_000),
            to: Timestamp(2_000),
            count: 3,
        };
        let mut spans = Vec::new();
        for (i, (at, remaining, thr)) in [
            (1_000, 10, false),
            (1_400, 90, true),
            (1_999, 40, false),
            (2_000, 0, false),
        ]
        .into_iter()
        .enumerate()
        {
            spans.push(Span {
                trace_id: TraceId([1; 16]),
                span_id: SpanId([i as u8 + 1; 8]),
                start_time: Timestamp(at),
                provider: (i != 1).then(|| "openai".to_string()),
                rate_limits: Some(rl(100, remaining, thr)),
                ..Default::default()
            });
        }
        let mut core = RecoveryBuilder::new(b);
        let mut mine = HeadroomReport::new(b);
        let mut rows: Vec<HeadroomBody> = vec![HeadroomBody::new(); 3];
        for s in &spans {
            core.add(s);
            let sample =
                RateSample::of(s.provider.as_deref(), s.rate_limits.as_ref().unwrap()).unwrap();
            if let Some(i) = mine.bucket_of(s.start_time.0) {
                add_sample(&mut rows[i], &sample);
            }
        }
        for (i, row) in rows.iter().enumerate() {
            let mut back = HeadroomBody::new();
            merge_headroom(&mut back, &encode_headroom(row)).unwrap();
            for ((p, w), a) in &back {
                mine.add(i, p, *w, a);
            }
        }
        assert_eq!(mine.finish(), core.finish().rate_limits);
    }
}
