//! Time buckets: which rollup rows and which raw spans answer a range exactly.
//!
//! Rollups are kept per 5-minute, hour and UTC-day bucket (aligned to the epoch, so a day
//! bucket is a UTC day and holds 24 hour buckets, each holding 12 quarter-hour ones). A range
//! `[from, to)` is answered by the coarsest whole buckets inside it plus a scan of the spans in
//! the partial buckets at its two ends, so any range is exact, aligned or not; over 30 days
//! that is about 30 day rows, 46 hour rows, 22 quarter-hour rows and at most two partial leaf
//! buckets of spans.

const MINUTE_NS: i64 = 60_000_000_000;

/// Bucket sizes, finest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Level {
    /// A quarter of an hour: the finest bucket, so the partial edges of a range are short to
    /// scan (about 14,000 spans at 40M spans a month). Five minutes would make them shorter,
    /// but when traffic is sparse each finest bucket of a span class holds about one span, and
    /// three times as many of them cost a third of the rollups' ingest time.
    Leaf,
    /// One hour.
    Hour,
    /// One UTC day.
    Day,
    /// Seven UTC days from the epoch (Thursday to Wednesday), users family only: its day rows
    /// hold every user of the day (~3 MB at 40M spans a month), and a 30-day by-user query
    /// merging 30 of them took 860 ms.
    Week,
}

impl Level {
    /// The levels of most families, finest first.
    pub const ALL: [Level; 3] = [Level::Leaf, Level::Hour, Level::Day];

    /// Every level there is (to read a stored level code back).
    pub const EVERY: [Level; 4] = [Level::Leaf, Level::Hour, Level::Day, Level::Week];

    /// The bucket width in nanoseconds.
    pub fn width_ns(self) -> i64 {
        match self {
            Level::Leaf => 15 * MINUTE_NS,
            Level::Hour => 60 * MINUTE_NS,
            Level::Day => 24 * 60 * MINUTE_NS,
            Level::Week => 7 * 24 * 60 * MINUTE_NS,
        }
    }

    /// The stored code of the level.
    pub fn code(self) -> i64 {
        match self {
            Level::Leaf => 0,
            Level::Hour => 1,
            Level::Day => 2,
            Level::Week => 3,
        }
    }

    /// The start of the bucket of this level that holds `t`.
    pub fn bucket_of(self, t: i64) -> i64 {
        let w = self.width_ns();
        t - t.rem_euclid(w)
    }
}

/// The UTC day number (days since 1970-01-01) of an instant.
pub fn day_of(t: i64) -> i64 {
    t.div_euclid(Level::Day.width_ns())
}

/// What answers a range: whole buckets read from rollups, and sub-ranges scanned from spans.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cover {
    /// Runs of consecutive whole buckets of one level: `(level, first start, end)`.
    pub runs: Vec<(Level, i64, i64)>,
    /// Ranges `[a, b)` of span start times to scan (the partial buckets at the ends).
    pub scans: Vec<(i64, i64)>,
}

/// Covers `[from, to)` with the coarsest whole buckets of `levels` (finest first; the first is
/// the finest kept for the data) and scans for the rest.
pub fn cover(from: i64, to: i64, levels: &[Level]) -> Cover {
    let mut out = Cover::default();
    let Some(leaf) = levels.first().map(|l| l.width_ns()) else {
        out.scans.push((from, to));
        return out;
    };
    if from >= to {
        return out;
    }
    // In i128, so ranges reaching the ends of i64 cannot overflow.
    let (f, t, w) = (i128::from(from), i128::from(to), i128::from(leaf));
    let a = f + (w - f.rem_euclid(w)) % w;
    let b = t - t.rem_euclid(w);
    if a >= b {
        out.scans.push((from, to));
        return out;
    }
    let (a, b) = (a as i64, b as i64);
    if from < a {
        out.scans.push((from, a));
    }
    let mut p = a;
    while p < b {
        let level = levels
            .iter()
            .rev()
            .copied()
            .find(|l| {
                p.rem_euclid(l.width_ns()) == 0
                    && i128::from(p) + i128::from(l.width_ns()) <= i128::from(b)
            })
            .unwrap_or(levels[0]);
        let end = p + level.width_ns();
        match out.runs.last_mut() {
            Some((l, _, e)) if *l == level && *e == p => *e = end,
            _ => out.runs.push((level, p, end)),
        }
        p = end;
    }
    if b < to {
        out.scans.push((b, to));
    }
    out
}

/// What answers a range when rows can be subtracted (metrics sums and histograms): runs of
/// whole buckets and span ranges, each added (`+1`) or taken away (`-1`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignedCover {
    /// `(level, first bucket start, end, sign)`.
    pub runs: Vec<(Level, i64, i64, i64)>,
    /// `(a, b, sign)`: spans that started in `[a, b)`.
    pub scans: Vec<(i64, i64, i64)>,
}

/// Covers `[from, to)` with whole buckets rounded to the *nearest* edge at each level, from the
/// coarsest down, adding or taking away what lies between the rounded and the real edges at
/// the next finer level. What is left to scan is at most half a finest bucket at each end
/// (half of what [`cover`] leaves on average, and a range starting just after an edge scans
/// that sliver instead of the rest of its bucket), and a day-long range starting mid-day
/// reads one day row and a few small ones instead of 23 hour rows.
pub fn signed_cover(from: i64, to: i64, levels: &[Level]) -> SignedCover {
    let mut out = SignedCover::default();
    signed_into(&mut out, from, to, 1, levels);
    out
}

fn signed_into(out: &mut SignedCover, from: i64, to: i64, sign: i64, levels: &[Level]) {
    if from >= to {
        return;
    }
    let Some((level, finer)) = levels.split_last() else {
        out.scans.push((from, to, sign));
        return;
    };
    let w = i128::from(level.width_ns());
    // Nearest edge, halves rounded up; in i128, then kept only when it fits i64.
    let near = |t: i64| -> Option<i64> {
        let t = i128::from(t);
        let down = t - t.rem_euclid(w);
        let r = if (t - down) * 2 >= w { down + w } else { down };
        i64::try_from(r).ok()
    };
    let (Some(a), Some(b)) = (near(from), near(to)) else {
        signed_into(out, from, to, sign, finer);
        return;
    };
    if a >= b {
        signed_into(out, from, to, sign, finer);
        return;
    }
    match out.runs.last_mut() {
        Some((l, _, e, s)) if *l == *level && *e == a && *s == sign => *e = b,
        _ => out.runs.push((*level, a, b, sign)),
    }
    if from < a {
        signed_into(out, from, a, sign, finer);
    } else {
        signed_into(out, a, from, -sign, finer);
    }
    if b < to {
        signed_into(out, b, to, sign, finer);
    } else {
        signed_into(out, to, b, -sign, finer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const H: i64 = 3_600_000_000_000;

    #[test]
    fn a_thirty_day_range_reads_few_rows() {
        let from = 20_000 * 24 * H + 17 * MINUTE_NS + 3;
        let c = cover(from, from + 30 * 24 * H, &Level::ALL);
        let count = |lvl| {
            c.runs
                .iter()
                .filter(|r| r.0 == lvl)
                .map(|r| (r.2 - r.1) / lvl.width_ns())
                .sum::<i64>()
        };
        assert_eq!(count(Level::Day), 29);
        assert_eq!(count(Level::Hour), 23);
        assert_eq!(count(Level::Leaf), 2 + 1);
        assert_eq!(c.scans.len(), 2);
        assert!(c.scans.iter().all(|(a, b)| b - a < Level::Leaf.width_ns()));
    }

    #[test]
    fn signed_cover_at_the_ends_of_i64() {
        let c = signed_cover(i64::MAX - 10, i64::MAX, &Level::ALL);
        assert_eq!(c.scans, vec![(i64::MAX - 10, i64::MAX, 1)]);
        let c = signed_cover(i64::MIN, i64::MIN + 10, &[Level::Hour, Level::Day]);
        assert_eq!(c.scans, vec![(i64::MIN, i64::MIN + 10, 1)]);
        assert_eq!(signed_cover(5, 5, &Level::ALL), SignedCover::default());
    }

    #[test]
    fn short_and_empty_ranges() {
        assert_eq!(cover(10, 10, &Level::ALL), Cover::default());
        assert_eq!(cover(10, 20, &Level::ALL).scans, vec![(10, 20)]);
        assert_eq!(
            cover(0, H, &Level::ALL).runs,
            vec![(Level::Hour, 0, H)],
            "an aligned hour is one row"
        );
        let c = cover(i64::MAX - 10, i64::MAX, &Level::ALL);
        assert_eq!(c.scans, vec![(i64::MAX - 10, i64::MAX)]);
        let c = cover(i64::MIN, i64::MIN + 10, &[Level::Hour, Level::Day]);
        assert_eq!(c.scans.len(), 1);
    }

    #[test]
    fn a_signed_cover_of_thirty_days_reads_thirty_day_rows() {
        let from = 20_000 * 24 * H + 17 * MINUTE_NS + 3;
        let c = signed_cover(from, from + 30 * 24 * H, &Level::ALL);
        let rows: i64 = c.runs.iter().map(|r| (r.2 - r.1) / r.0.width_ns()).sum();
        assert_eq!(rows, 30 + 2, "30 days, less a quarter-hour at each end");
        let scanned: i64 = c.scans.iter().map(|s| s.1 - s.0).sum();
        assert_eq!(scanned, 2 * (2 * MINUTE_NS + 3));
        // A day-long slice starting mid-day: its day row, not 23 hour rows.
        let c = signed_cover(from, from + 24 * H, &Level::ALL);
        assert!(c.runs.iter().any(|r| r.0 == Level::Day && r.3 == 1));
        assert!(c.runs.len() <= 3, "{c:?}");
    }

    proptest! {
        /// Every instant of the range is counted once and every other instant zero times:
        /// the signed pieces sum to the range's indicator at sampled points.
        #[test]
        fn signed_cover_counts_every_instant_once(
            from in -10_000i64 * H..10_000 * H,
            len in 0i64..(40 * 24 * H),
            users in any::<bool>(),
            probes in prop::collection::vec(-2i64 * 24 * H..42 * 24 * H, 40),
        ) {
            let levels: &[Level] = if users { &[Level::Hour, Level::Day] } else { &Level::ALL };
            let to = from + len;
            let c = signed_cover(from, to, levels);
            for (l, a, b, s) in &c.runs {
                prop_assert!(levels.contains(l));
                prop_assert_eq!(a.rem_euclid(l.width_ns()), 0);
                prop_assert_eq!((b - a) % l.width_ns(), 0);
                prop_assert!(*s == 1 || *s == -1);
            }
            // A scan is an edge piece (at most half the finest width, the edges being rounded to
            // the nearest), or a whole range in which no two distinct edges are nearest (shorter
            // than one finest width): never more than one finest row's worth of spans.
            for (a, b, _) in &c.scans {
                prop_assert!(b > a);
                prop_assert!(b - a < levels[0].width_ns());
            }
            // The edges themselves and points just beside them, plus random points.
            let mut points: Vec<i64> = probes.iter().map(|p| from + p).collect();
            for (_, a, b, _) in &c.runs {
                points.extend([*a - 1, *a, *b - 1, *b]);
            }
            for (a, b, _) in &c.scans {
                points.extend([*a - 1, *a, *b - 1, *b]);
            }
            points.extend([from - 1, from, to - 1, to]);
            for t in points {
                let mut n = 0i64;
                for (_, a, b, s) in &c.runs {
                    if *a <= t && t < *b { n += s; }
                }
                for (a, b, s) in &c.scans {
                    if *a <= t && t < *b { n += s; }
                }
                prop_assert_eq!(n, i64::from(from <= t && t < to), "at {}", t);
            }
        }

        /// The buckets and scans tile the range exactly: no gap, no overlap, buckets aligned.
        #[test]
        fn cover_tiles_the_range(
            from in -10_000i64 * H..10_000 * H,
            len in 0i64..(40 * 24 * H),
            users in any::<bool>(),
        ) {
            let levels: &[Level] = if users { &[Level::Hour, Level::Day] } else { &Level::ALL };
            let to = from + len;
            let c = cover(from, to, levels);
            let mut pieces: Vec<(i64, i64)> = c.scans.clone();
            for (l, a, b) in &c.runs {
                prop_assert!(levels.contains(l));
                prop_assert_eq!(a.rem_euclid(l.width_ns()), 0);
                prop_assert_eq!((b - a) % l.width_ns(), 0);
                pieces.push((*a, *b));
            }
            pieces.sort();
            let mut at = from;
            for (a, b) in pieces {
                prop_assert_eq!(a, at);
                prop_assert!(b > a);
                at = b;
            }
            prop_assert_eq!(at, to.max(from));
            for (a, b) in &c.scans {
                prop_assert!(b - a < 2 * levels[0].width_ns());
            }
        }
    }
}
