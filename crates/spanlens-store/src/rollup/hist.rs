//! A mergeable latency histogram with a stated error bound.
//!
//! Exact percentiles need every value, and 40 million durations cannot be read in 500 ms. So
//! rollups keep counts per bucket instead: values below 64 ns each have their own bucket (exact),
//! and every power of two above is cut into 64 equal buckets. A bucket is then at most 1/64 of
//! its lower edge wide, and its midpoint is within **1/128 (0.79%)** of any value in it.
//!
//! Percentiles are nearest-rank over the bucket counts (the same rank as
//! [`crate::percentile_nearest_rank`]): the bucket holding the rank-th smallest value is found
//! exactly, and its midpoint is returned, so the answer is within 0.79% of the exact
//! nearest-rank value. Counts add and subtract exactly, so rows merge in any order and a
//! re-sent span's old value can be taken out again.

use super::codec::{CodecError, Reader, Writer};

/// Sub-buckets per power of two, as a shift.
const SUB_BITS: u32 = 6;
/// Sub-buckets per power of two.
const SUB: u64 = 1 << SUB_BITS;

/// Largest relative distance between a value and the midpoint returned for its bucket.
pub const MAX_RELATIVE_ERROR: f64 = 1.0 / 128.0;

/// Number of bucket indexes (`u64::MAX` falls in the last one).
pub const BUCKETS: usize = ((64 - SUB_BITS as usize) + 1) * SUB as usize;

/// The bucket of a value: exact below 64, else 64 per power of two.
pub fn bucket_of(v: u64) -> u16 {
    if v < SUB {
        return v as u16;
    }
    let e = 63 - v.leading_zeros(); // v in [2^e, 2^(e+1)), e >= 6
    let sub = (v >> (e - SUB_BITS)) & (SUB - 1);
    ((u64::from(e - SUB_BITS + 1) << SUB_BITS) | sub) as u16
}

/// The lowest value of a bucket and its width.
pub fn bucket_bounds(i: u16) -> (u64, u64) {
    let i = u64::from(i);
    if i < SUB {
        return (i, 1);
    }
    let k = (i >> SUB_BITS).min(64 - u64::from(SUB_BITS)); // 1..=58
    let sub = i & (SUB - 1);
    let shift = k - 1;
    ((SUB + sub) << shift, 1 << shift)
}

/// The value a bucket stands for: its midpoint (exact for buckets one wide).
pub fn representative(i: u16) -> u64 {
    let (lo, width) = bucket_bounds(i);
    lo + width / 2
}

/// Counts per bucket, in the cheapest of three forms: up to four buckets inline, a sorted list
/// of `(bucket, count)`, or counts over a window of bucket indexes `[lo, lo + counts.len())`.
/// Most sums kept per span class at ingest hold a handful of spans; a window for each (up to
/// 30 KB, filled out of order) made building a submission's sums cost 4 µs per span, and a
/// heap allocation for each was still a third of it.
///
/// Counts are signed: a delta that takes a span back holds -1 in its bucket. A histogram read
/// for an answer has only non-negative counts once every delta is merged.
#[derive(Debug, Clone, Default)]
pub struct Hist(Repr);

/// Buckets kept as a sorted list before the histogram becomes a window.
const SPARSE_MAX: usize = 32;

/// Buckets kept inline.
const FEW: usize = 4;

#[derive(Debug, Clone, Default)]
enum Repr {
    #[default]
    Empty,
    /// The first `n` items, sorted by bucket.
    Few {
        n: u8,
        items: [(u16, i32); FEW],
    },
    Sparse(Vec<(u16, i64)>),
    Window {
        lo: u16,
        counts: Vec<i64>,
    },
}

/// Equal when every bucket holds the same count, whatever the representation.
impl PartialEq for Hist {
    fn eq(&self, other: &Hist) -> bool {
        self.nonzero() == other.nonzero()
    }
}

impl Eq for Hist {}

impl Hist {
    /// Calls `f` with `(bucket, count)` of every non-zero bucket, in bucket order.
    pub fn for_each(&self, mut f: impl FnMut(u16, i64)) {
        match &self.0 {
            Repr::Empty => {}
            Repr::Few { n, items } => {
                for (i, c) in &items[..usize::from(*n)] {
                    if *c != 0 {
                        f(*i, i64::from(*c));
                    }
                }
            }
            Repr::Sparse(v) => {
                for (i, c) in v {
                    if *c != 0 {
                        f(*i, *c);
                    }
                }
            }
            Repr::Window { lo, counts } => {
                for (k, c) in counts.iter().enumerate() {
                    if *c != 0 {
                        f(lo + k as u16, *c);
                    }
                }
            }
        }
    }

    fn nonzero(&self) -> Vec<(u16, i64)> {
        let mut v = Vec::new();
        self.for_each(|i, c| v.push((i, c)));
        v
    }

    /// True when every count is zero.
    pub fn is_empty(&self) -> bool {
        match &self.0 {
            Repr::Empty => true,
            Repr::Few { n, items } => items[..usize::from(*n)].iter().all(|(_, c)| *c == 0),
            Repr::Sparse(v) => v.iter().all(|(_, c)| *c == 0),
            Repr::Window { counts, .. } => counts.iter().all(|c| *c == 0),
        }
    }

    /// Sum of the counts (the number of values).
    pub fn total(&self) -> i64 {
        let mut t = 0i64;
        self.for_each(|_, c| t = t.saturating_add(c));
        t
    }

    /// Adds `n` to bucket `i`.
    pub fn add_at(&mut self, i: u16, n: i64) {
        if n == 0 {
            return;
        }
        match &mut self.0 {
            Repr::Empty => {
                if let Ok(c) = i32::try_from(n) {
                    self.0 = Repr::Few {
                        n: 1,
                        items: [(i, c), (0, 0), (0, 0), (0, 0)],
                    };
                } else {
                    self.0 = Repr::Sparse(vec![(i, n)]);
                }
            }
            Repr::Few { n: len, items } => {
                let k = usize::from(*len);
                let at = items[..k].partition_point(|e| e.0 < i);
                let summed = if at < k && items[at].0 == i {
                    i32::try_from(i64::from(items[at].1).saturating_add(n)).ok()
                } else {
                    None
                };
                if let Some(c) = summed {
                    items[at].1 = c;
                } else if !(at < k && items[at].0 == i) && k < FEW && i32::try_from(n).is_ok() {
                    items.copy_within(at..k, at + 1);
                    items[at] = (i, n as i32);
                    *len += 1;
                } else {
                    // Full, or a count past i32: a list takes over.
                    let v: Vec<(u16, i64)> = items[..k]
                        .iter()
                        .map(|(b, c)| (*b, i64::from(*c)))
                        .collect();
                    self.0 = Repr::Sparse(v);
                    self.add_at(i, n);
                }
            }
            Repr::Sparse(v) => match v.binary_search_by_key(&i, |e| e.0) {
                Ok(k) => v[k].1 = v[k].1.saturating_add(n),
                Err(k) => {
                    v.insert(k, (i, n));
                    if v.len() > SPARSE_MAX {
                        let lo = v[0].0;
                        let hi = v[v.len() - 1].0;
                        let mut counts = vec![0; usize::from(hi - lo) + 1];
                        for (b, c) in v.iter() {
                            counts[usize::from(b - lo)] = *c;
                        }
                        self.0 = Repr::Window { lo, counts };
                    }
                }
            },
            Repr::Window { lo, counts } => {
                if i < *lo {
                    let grow = usize::from(*lo - i);
                    counts.splice(0..0, std::iter::repeat_n(0, grow));
                    *lo = i;
                }
                let at = usize::from(i - *lo);
                if at >= counts.len() {
                    counts.resize(at + 1, 0);
                }
                counts[at] = counts[at].saturating_add(n);
            }
        }
    }

    /// Counts one value (`sign` +1) or takes one back (-1).
    pub fn add(&mut self, v: u64, sign: i64) {
        self.add_at(bucket_of(v), sign);
    }

    /// Adds every count of `other`, times `sign`.
    pub fn merge(&mut self, other: &Hist, sign: i64) {
        match (&mut self.0, &other.0) {
            (_, Repr::Empty) => {}
            (Repr::Empty, _) if sign == 1 => self.0 = other.0.clone(),
            (
                Repr::Window { lo, counts },
                Repr::Window {
                    lo: olo,
                    counts: oc,
                },
            ) => {
                // Widen once, then add in one pass.
                let new_lo = (*lo).min(*olo);
                let hi = (usize::from(*lo) + counts.len()).max(usize::from(*olo) + oc.len());
                if new_lo < *lo {
                    counts.splice(0..0, std::iter::repeat_n(0, usize::from(*lo - new_lo)));
                    *lo = new_lo;
                }
                counts.resize(hi - usize::from(*lo), 0);
                let at = usize::from(*olo - *lo);
                for (slot, c) in counts[at..at + oc.len()].iter_mut().zip(oc) {
                    *slot = slot.saturating_add(c.saturating_mul(sign));
                }
            }
            _ => other.for_each(|i, c| self.add_at(i, c.saturating_mul(sign))),
        }
    }

    /// The nearest-rank percentile `p` (0..=100) of the counted values, as the midpoint of the
    /// bucket holding it; `None` when nothing is counted. Negative counts (never left once
    /// every delta is merged) are ignored rather than trusted.
    pub fn percentile(&self, p: f64) -> Option<u64> {
        let mut n = 0u64;
        self.for_each(|_, c| n += u64::try_from(c).unwrap_or(0));
        if n == 0 || !p.is_finite() {
            return None;
        }
        let p = p.clamp(0.0, 100.0);
        let rank = ((p * n as f64 / 100.0).ceil() as u64).clamp(1, n);
        let mut seen = 0u64;
        let mut found = None;
        self.for_each(|i, c| {
            seen += u64::try_from(c).unwrap_or(0);
            if found.is_none() && seen >= rank {
                found = Some(representative(i));
            }
        });
        found
    }

    /// Writes the non-zero counts as runs: `[runs] ([gap from the previous run's end] [length]
    /// [counts…])…`, the first gap being the first bucket's index. Dense histograms cost about
    /// a byte per bucket.
    pub fn encode(&self, w: &mut Writer) {
        if let Repr::Few { n, items } = &self.0 {
            // Few buckets (the common case at ingest): runs read straight off the array.
            let live = &items[..usize::from(*n)];
            let mut runs = 0u64;
            let mut next: Option<u16> = None;
            for (i, c) in live {
                if *c == 0 {
                    continue;
                }
                if next != Some(*i) {
                    runs += 1;
                }
                next = i.checked_add(1);
            }
            w.u64(runs);
            let mut k = 0;
            let mut prev_end: Option<usize> = None;
            while k < live.len() {
                if live[k].1 == 0 {
                    k += 1;
                    continue;
                }
                let start = k;
                while k + 1 < live.len() && live[k + 1].1 != 0 && live[k + 1].0 == live[k].0 + 1 {
                    k += 1;
                }
                let at = usize::from(live[start].0);
                w.u64(prev_end.map_or(at, |p| at - p) as u64);
                w.u64((k + 1 - start) as u64);
                for (_, c) in &live[start..=k] {
                    w.i64(i64::from(*c));
                }
                prev_end = Some(at + (k + 1 - start));
                k += 1;
            }
            return;
        }
        // Runs of consecutive non-zero buckets: counted, then written.
        let mut runs = 0u64;
        let mut next: Option<u16> = None;
        self.for_each(|i, _| {
            if next != Some(i) {
                runs += 1;
            }
            next = i.checked_add(1);
        });
        w.u64(runs);
        if runs == 0 {
            return;
        }
        // A run's length comes before its counts, so each run is gathered first.
        let mut run: Vec<i64> = Vec::new();
        let mut start = 0u16;
        let mut prev_end: Option<usize> = None;
        let flush =
            |w: &mut Writer, start: u16, run: &mut Vec<i64>, prev_end: &mut Option<usize>| {
                if run.is_empty() {
                    return;
                }
                let at = usize::from(start);
                w.u64(prev_end.map_or(at, |p| at - p) as u64);
                w.u64(run.len() as u64);
                for c in run.iter() {
                    w.i64(*c);
                }
                *prev_end = Some(at + run.len());
                run.clear();
            };
        let mut next: Option<u16> = None;
        self.for_each(|i, c| {
            if next != Some(i) {
                flush(w, start, &mut run, &mut prev_end);
                start = i;
            }
            run.push(c);
            next = i.checked_add(1);
        });
        flush(w, start, &mut run, &mut prev_end);
    }

    /// Reads what [`Hist::encode`] wrote, adding `sign` times each count into `self`.
    ///
    /// A query merges thousands of stored histograms into a few: once the target holds many
    /// buckets, each run is added straight into its window instead of bucket by bucket
    /// (which was half of a 30-day metrics-by-user query).
    pub fn merge_encoded(&mut self, r: &mut Reader<'_>, sign: i64) -> Result<(), CodecError> {
        let runs = r.len()?;
        let mut at = 0usize;
        for i in 0..runs {
            let gap = r.u64()? as usize;
            at = if i == 0 { gap } else { at.saturating_add(gap) };
            let len = r.len()?;
            let end = at.saturating_add(len);
            if end > BUCKETS {
                return Err(CodecError(format!("histogram bucket {end} out of range")));
            }
            match self.window_for(at, end) {
                Some(slots) => r.add_i64s(slots, sign)?,
                None => {
                    for k in at..end {
                        let c = r.i64()?;
                        // `end` is at most BUCKETS, so every index fits u16.
                        self.add_at(k as u16, c.saturating_mul(sign));
                    }
                }
            }
            at = end;
        }
        Ok(())
    }

    /// The counts of buckets `[at, end)` (`end <= BUCKETS`) as a slice of the window, widened
    /// to hold them, when the histogram is or becomes a window (it holds more than
    /// `SPARSE_MAX` buckets with these); `None` while it stays small.
    fn window_for(&mut self, at: usize, end: usize) -> Option<&mut [i64]> {
        let held = match &self.0 {
            Repr::Empty => 0,
            Repr::Few { n, .. } => usize::from(*n),
            Repr::Sparse(v) => v.len(),
            Repr::Window { .. } => usize::MAX,
        };
        if held != usize::MAX {
            if held + (end - at) <= SPARSE_MAX {
                return None;
            }
            let items = self.nonzero();
            let lo = items.first().map_or(at, |e| usize::from(e.0).min(at));
            let hi = items
                .last()
                .map_or(end, |e| (usize::from(e.0) + 1).max(end));
            let mut counts = vec![0; hi - lo];
            for (b, c) in items {
                counts[usize::from(b) - lo] = c;
            }
            self.0 = Repr::Window {
                lo: lo as u16,
                counts,
            };
        }
        let Repr::Window { lo, counts } = &mut self.0 else {
            return None;
        };
        let start = usize::from(*lo);
        if at < start {
            counts.splice(0..0, std::iter::repeat_n(0, start - at));
            *lo = at as u16;
        }
        let base = usize::from(*lo);
        if counts.len() < end - base {
            counts.resize(end - base, 0);
        }
        counts.get_mut(at - base..end - base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::percentile_nearest_rank;
    use proptest::prelude::*;

    #[test]
    fn buckets_cover_every_value_in_order() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(63), 63);
        assert_eq!(bucket_of(64), 64);
        assert_eq!(bucket_of(127), 127);
        assert_eq!(bucket_of(128), 128);
        assert_eq!(bucket_of(129), 128);
        assert_eq!(usize::from(bucket_of(u64::MAX)), BUCKETS - 1);
        for v in [
            0u64,
            1,
            63,
            64,
            65,
            1000,
            123_456_789,
            1 << 40,
            u64::MAX / 3,
            u64::MAX,
        ] {
            let (lo, w) = bucket_bounds(bucket_of(v));
            assert!(lo <= v && v - lo < w, "{v} in [{lo}, {lo}+{w})");
        }
        // Consecutive buckets touch: no value falls between two.
        for i in 0..(BUCKETS as u16 - 1) {
            let (lo, w) = bucket_bounds(i);
            assert_eq!(lo + w, bucket_bounds(i + 1).0, "bucket {i}");
        }
    }

    #[test]
    fn small_values_are_exact() {
        let mut h = Hist::default();
        for v in [3u64, 1, 2, 50] {
            h.add(v, 1);
        }
        assert_eq!(h.percentile(50.0), Some(2));
        assert_eq!(h.percentile(100.0), Some(50));
        assert_eq!(Hist::default().percentile(50.0), None);
    }

    #[test]
    fn counts_past_i32_are_kept_exactly() {
        let mut h = Hist::default();
        h.add_at(5, i64::from(i32::MAX));
        h.add_at(5, 10);
        h.add_at(7, i64::from(i32::MAX) * 3);
        assert_eq!(h.total(), i64::from(i32::MAX) * 4 + 10);
        let mut w = Writer::default();
        h.encode(&mut w);
        let mut back = Hist::default();
        back.merge_encoded(&mut Reader::new(&w.buf), 1).unwrap();
        assert_eq!(back, h);
        back.merge(&h, -1);
        assert!(back.is_empty());
    }

    proptest! {
        /// Every value's bucket midpoint is within the stated bound of the value.
        #[test]
        fn midpoint_is_within_the_bound(v in any::<u64>()) {
            let r = representative(bucket_of(v));
            let err = (r as f64 - v as f64).abs() / (v.max(1) as f64);
            prop_assert!(err <= MAX_RELATIVE_ERROR, "{v} -> {r}: {err}");
        }

        /// Percentiles of a histogram are within the bound of the exact nearest-rank value,
        /// however the values are split into histograms that are then merged.
        #[test]
        fn merged_percentiles_are_within_the_bound_of_exact_ones(
            values in prop::collection::vec(0u64..10_000_000_000, 1..400),
            split in 0usize..400,
            p in prop::sample::select(vec![0.0, 1.0, 50.0, 90.0, 95.0, 99.0, 99.9, 100.0]),
        ) {
            let split = split.min(values.len());
            let (mut a, mut b) = (Hist::default(), Hist::default());
            for v in &values[..split] { a.add(*v, 1); }
            for v in &values[split..] { b.add(*v, 1); }
            a.merge(&b, 1);
            let mut sorted = values.clone();
            sorted.sort_unstable();
            let exact = percentile_nearest_rank(&sorted, p).unwrap();
            let approx = a.percentile(p).unwrap();
            let err = (approx as f64 - exact as f64).abs() / (exact.max(1) as f64);
            prop_assert!(err <= MAX_RELATIVE_ERROR, "p{p}: exact {exact}, got {approx}");
            prop_assert_eq!(a.total(), values.len() as i64);
        }

        /// Taking values back leaves the histogram of the rest, and encoding round-trips.
        #[test]
        fn subtract_and_encode_round_trip(
            values in prop::collection::vec(any::<u64>(), 0..200),
            drop in 0usize..200,
        ) {
            let drop = drop.min(values.len());
            let mut all = Hist::default();
            for v in &values { all.add(*v, 1); }
            let mut gone = Hist::default();
            for v in &values[..drop] { gone.add(*v, 1); }
            all.merge(&gone, -1);
            let mut rest = Hist::default();
            for v in &values[drop..] { rest.add(*v, 1); }
            let mut w = Writer::default();
            all.encode(&mut w);
            let mut back = Hist::default();
            back.merge_encoded(&mut Reader::new(&w.buf), 1).unwrap();
            for p in [0.0, 50.0, 99.0, 100.0] {
                prop_assert_eq!(back.percentile(p), rest.percentile(p));
            }
            prop_assert_eq!(back.total(), rest.total());
        }

        /// Merging encoded histograms (as a query does, the target turning into a window and
        /// widening both ways) adds exactly the counts of every bucket, signs included.
        #[test]
        fn merging_encoded_rows_adds_every_bucket(
            parts in prop::collection::vec(
                (prop::collection::vec((0u16..BUCKETS as u16, -3i64..50), 0..120), -1i64..=1),
                1..12,
            ),
        ) {
            let mut want: std::collections::BTreeMap<u16, i64> = Default::default();
            let mut got = Hist::default();
            for (items, sign) in &parts {
                let mut h = Hist::default();
                for (b, c) in items {
                    h.add_at(*b, *c);
                    *want.entry(*b).or_default() += c * sign;
                }
                let mut w = Writer::default();
                h.encode(&mut w);
                got.merge_encoded(&mut Reader::new(&w.buf), *sign).unwrap();
            }
            want.retain(|_, c| *c != 0);
            prop_assert_eq!(got.nonzero(), want.into_iter().collect::<Vec<_>>());
        }
    }
}
