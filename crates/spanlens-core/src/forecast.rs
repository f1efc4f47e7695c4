//! Cost forecasting from a daily cost series: pure arithmetic, no I/O.
//!
//! # Method
//!
//! Ordinary least squares on the day index `t` (days since the first day of history):
//!
//! * with at least [`MIN_DAYS_WEEKLY`] days: `cost(t) = a + b·t + s[weekday(t)]`, seven weekday
//!   offsets that sum to zero (fitted as six dummy columns against Monday, then centred);
//! * with [`MIN_DAYS`] to `MIN_DAYS_WEEKLY − 1` days: a straight line `a + b·t` (too few weeks
//!   to tell a weekly pattern from noise);
//! * with fewer days: refused ([`ForecastError::TooShort`]).
//!
//! The prediction interval is the classical OLS one: for a future row `x₀`,
//! `ŷ ± q · σ̂ · √(1 + x₀ᵀ(XᵀX)⁻¹x₀)`, where `σ̂² = RSS / (n − p)` and `q` is the Student-t
//! quantile for the confidence level (95 %, two-sided). The `x₀ᵀ(XᵀX)⁻¹x₀` term grows with the
//! distance from the history, so the band widens with the horizon. The horizon total uses the
//! same formula on the sum of the future rows (`σ̂²·(h + vᵀ(XᵀX)⁻¹v)`), assuming independent
//! daily errors. Costs cannot be negative, so points and bounds are clamped at zero; money stays
//! integer nano-USD at the boundary, the fit itself runs in `f64`.

use crate::money::NanoUsd;
use std::collections::BTreeMap;

/// Fewest days of history a forecast accepts.
pub const MIN_DAYS: usize = 3;
/// Fewest days of history for which the weekly pattern is fitted.
pub const MIN_DAYS_WEEKLY: usize = 14;
/// Longest horizon, days.
pub const MAX_HORIZON_DAYS: u32 = 365;

/// Why no forecast could be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForecastError {
    /// Too little history to fit even a line.
    #[error("need at least {min} days of cost history to forecast, got {days}")]
    TooShort {
        /// Days available.
        days: usize,
        /// Days needed.
        min: usize,
    },
    /// The horizon is outside `1..=MAX_HORIZON_DAYS`.
    #[error("horizon_days={0} is outside 1..={MAX_HORIZON_DAYS}")]
    Horizon(u32),
}

/// Which model was fitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `a + b·t`.
    LinearTrend,
    /// `a + b·t + weekday offset`.
    TrendWeekly,
}

impl Method {
    /// Name used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::LinearTrend => "linear_trend",
            Method::TrendWeekly => "linear_trend_weekly",
        }
    }
}

/// A daily cost series without gaps: `values[i]` is the cost of day `first_day + i`
/// (days since 1970-01-01, UTC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DailySeries {
    /// Day number of `values[0]`.
    pub first_day: i64,
    /// Cost per day, nano-USD.
    pub values: Vec<NanoUsd>,
}

impl DailySeries {
    /// The days `from..=to` with the given costs; a day not in `costs` cost nothing.
    pub fn from_days(from: i64, to: i64, costs: &BTreeMap<i64, NanoUsd>) -> DailySeries {
        let values = if to < from {
            Vec::new()
        } else {
            (from..=to)
                .map(|d| costs.get(&d).copied().unwrap_or(NanoUsd::ZERO))
                .collect()
        };
        DailySeries {
            first_day: from,
            values,
        }
    }

    /// The same series without its leading zero days, so a model first used last week is not
    /// fitted as if it had cost nothing for months.
    pub fn trim_leading_zeros(mut self) -> DailySeries {
        let skip = self
            .values
            .iter()
            .take_while(|v| **v == NanoUsd::ZERO)
            .count();
        self.values.drain(..skip);
        self.first_day += skip as i64;
        self
    }

    /// Like [`trim_leading_zeros`](Self::trim_leading_zeros), and when zeros were trimmed the
    /// first day of use goes too: spending began during that day, so it is partial and would
    /// bias the trend upwards. It is kept when dropping it would leave fewer than [`MIN_DAYS`].
    pub fn trim_start_of_use(self) -> DailySeries {
        let before = self.values.len();
        let mut s = self.trim_leading_zeros();
        if s.values.len() < before && s.values.len() > MIN_DAYS {
            s.values.remove(0);
            s.first_day += 1;
        }
        s
    }

    /// Day number of the last value (the first day minus one when empty).
    pub fn last_day(&self) -> i64 {
        self.first_day + self.values.len() as i64 - 1
    }
}

/// One forecast day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForecastPoint {
    /// Day number (days since 1970-01-01, UTC).
    pub day: i64,
    /// Point forecast.
    pub point: NanoUsd,
    /// Lower bound of the prediction interval.
    pub lower: NanoUsd,
    /// Upper bound of the prediction interval.
    pub upper: NanoUsd,
}

/// A fitted forecast.
#[derive(Debug, Clone, PartialEq)]
pub struct Forecast {
    /// The model fitted.
    pub method: Method,
    /// Days of history used.
    pub history_days: usize,
    /// First day of history used.
    pub history_from: i64,
    /// Last day of history used.
    pub history_to: i64,
    /// Two-sided confidence of the intervals (0.95).
    pub confidence: f64,
    /// Fitted slope, nano-USD per day.
    pub trend_per_day: f64,
    /// Fitted weekday offsets, Monday first, nano-USD (sum zero); `None` without seasonality.
    pub weekday_offsets: Option<[f64; 7]>,
    /// Residual standard deviation, nano-USD.
    pub residual_sd: f64,
    /// One point per future day, starting the day after the history.
    pub points: Vec<ForecastPoint>,
    /// Sum over the horizon, with its own interval.
    pub total: ForecastPoint,
}

/// Weekday of a day number, Monday = 0 (1970-01-01 was a Thursday).
pub fn weekday(day: i64) -> usize {
    (day + 3).rem_euclid(7) as usize
}

/// Fits the history and forecasts the `horizon_days` days after it (see the module docs).
pub fn forecast(series: &DailySeries, horizon_days: u32) -> Result<Forecast, ForecastError> {
    if horizon_days == 0 || horizon_days > MAX_HORIZON_DAYS {
        return Err(ForecastError::Horizon(horizon_days));
    }
    let n = series.values.len();
    if n < MIN_DAYS {
        return Err(ForecastError::TooShort {
            days: n,
            min: MIN_DAYS,
        });
    }
    let method = if n >= MIN_DAYS_WEEKLY {
        Method::TrendWeekly
    } else {
        Method::LinearTrend
    };
    let row = |i: i64| design_row(method, i, series.first_day + i);
    let p = row(0).len();
    // Normal equations XᵀX β = Xᵀy.
    let mut xtx = vec![vec![0.0; p]; p];
    let mut xty = vec![0.0; p];
    for (i, y) in series.values.iter().enumerate() {
        let x = row(i as i64);
        let y = y.0 as f64;
        for a in 0..p {
            xty[a] += x[a] * y;
            for b in 0..p {
                xtx[a][b] += x[a] * x[b];
            }
        }
    }
    // A weekday that never occurs cannot happen with 14+ consecutive days, so XᵀX is invertible.
    let inv = invert(&xtx).unwrap_or_else(|| pseudo_ridge(&xtx));
    let beta: Vec<f64> = (0..p)
        .map(|a| (0..p).map(|b| inv[a][b] * xty[b]).sum())
        .collect();
    let predict = |x: &[f64]| -> f64 { x.iter().zip(&beta).map(|(a, b)| a * b).sum() };
    let rss: f64 = series
        .values
        .iter()
        .enumerate()
        .map(|(i, y)| {
            let r = y.0 as f64 - predict(&row(i as i64));
            r * r
        })
        .sum();
    let dof = n - p;
    let sd = if dof > 0 {
        (rss / dof as f64).sqrt()
    } else {
        0.0
    };
    let q = t_quantile_975(dof.max(1));
    let quad = |x: &[f64]| -> f64 {
        (0..p)
            .map(|a| (0..p).map(|b| x[a] * inv[a][b] * x[b]).sum::<f64>())
            .sum::<f64>()
            .max(0.0)
    };
    let mut points = Vec::with_capacity(horizon_days as usize);
    let mut sum_x = vec![0.0; p];
    for h in 0..i64::from(horizon_days) {
        let i = n as i64 + h;
        let x = row(i);
        for (s, v) in sum_x.iter_mut().zip(&x) {
            *s += v;
        }
        let y = predict(&x);
        let half = q * sd * (1.0 + quad(&x)).sqrt();
        points.push(bounded(series.first_day + i, y, half));
    }
    let total_y = predict(&sum_x);
    let total_half = q * sd * (f64::from(horizon_days) + quad(&sum_x)).sqrt();
    let total = bounded(series.first_day + n as i64, total_y, total_half);
    let weekday_offsets = (method == Method::TrendWeekly).then(|| {
        // β[2..8] are Tuesday..Sunday against Monday; centre them so they sum to zero.
        let mut raw = [0.0; 7];
        raw[1..].copy_from_slice(&beta[2..8]);
        let mean = raw.iter().sum::<f64>() / 7.0;
        raw.map(|v| v - mean)
    });
    Ok(Forecast {
        method,
        history_days: n,
        history_from: series.first_day,
        history_to: series.last_day(),
        confidence: 0.95,
        trend_per_day: beta[1],
        weekday_offsets,
        residual_sd: sd,
        points,
        total,
    })
}

/// The regression row of day index `i` (calendar day `day`): intercept, trend, and for the
/// weekly model one dummy per weekday other than Monday.
fn design_row(method: Method, i: i64, day: i64) -> Vec<f64> {
    let mut x = vec![1.0, i as f64];
    if method == Method::TrendWeekly {
        let w = weekday(day);
        x.extend((1..7).map(|k| if k == w { 1.0 } else { 0.0 }));
    }
    x
}

fn to_nano(v: f64) -> NanoUsd {
    // Saturating float-to-int conversion; costs are clamped at zero.
    NanoUsd(v.max(0.0).round() as i64)
}

fn bounded(day: i64, y: f64, half: f64) -> ForecastPoint {
    ForecastPoint {
        day,
        point: to_nano(y),
        lower: to_nano(y - half),
        upper: to_nano(y + half),
    }
}

/// Gauss–Jordan inverse with partial pivoting; `None` when the matrix is singular.
fn invert(m: &[Vec<f64>]) -> Option<Vec<Vec<f64>>> {
    let n = m.len();
    let mut a: Vec<Vec<f64>> = m
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut row = r.clone();
            row.extend((0..n).map(|j| if i == j { 1.0 } else { 0.0 }));
            row
        })
        .collect();
    let scale = m
        .iter()
        .flat_map(|r| r.iter())
        .fold(0.0f64, |s, v| s.max(v.abs()))
        .max(1.0);
    for col in 0..n {
        let pivot = (col..n).max_by(|&x, &y| a[x][col].abs().total_cmp(&a[y][col].abs()))?;
        if a[pivot][col].abs() <= scale * 1e-12 {
            return None;
        }
        a.swap(col, pivot);
        let d = a[col][col];
        for v in a[col].iter_mut() {
            *v /= d;
        }
        let pivot_row = a[col].clone();
        for (r, row) in a.iter_mut().enumerate() {
            let f = row[col];
            if r != col && f != 0.0 {
                for (v, p) in row.iter_mut().zip(&pivot_row) {
                    *v -= f * p;
                }
            }
        }
    }
    Some(a.into_iter().map(|r| r[n..].to_vec()).collect())
}

/// Last resort for a singular system (which consecutive days cannot produce): a tiny ridge.
fn pseudo_ridge(m: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let mut r = m.to_vec();
    for (i, row) in r.iter_mut().enumerate() {
        row[i] += 1e-6 * row[i].abs().max(1.0);
    }
    invert(&r).unwrap_or_else(|| vec![vec![0.0; m.len()]; m.len()])
}

/// Two-sided 95 % Student-t quantile (the 97.5th percentile) for `dof` degrees of freedom:
/// exact table values for small `dof`, the Cornish–Fisher expansion beyond.
pub(crate) fn t_quantile_975(dof: usize) -> f64 {
    const TABLE: [f64; 10] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    ];
    if let Some(v) = TABLE.get(dof.wrapping_sub(1)) {
        return *v;
    }
    let z: f64 = 1.959_963_985;
    let v = dof as f64;
    let z3 = z.powi(3);
    let z5 = z.powi(5);
    z + (z3 + z) / (4.0 * v) + (5.0 * z5 + 16.0 * z3 + 3.0 * z) / (96.0 * v * v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(first_day: i64, values: impl IntoIterator<Item = i64>) -> DailySeries {
        DailySeries {
            first_day,
            values: values.into_iter().map(NanoUsd).collect(),
        }
    }

    /// A small deterministic PRNG (xorshift64*) and Box–Muller normals, so the test is
    /// reproducible without a dependency.
    struct Rng(u64);
    impl Rng {
        fn uniform(&mut self) -> f64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            let v = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
            ((v >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        }
        fn normal(&mut self) -> f64 {
            let (u1, u2) = (self.uniform(), self.uniform());
            (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
        }
    }

    #[test]
    fn pure_linear_trend_continues_exactly() {
        // $1 + $0.10 per day, 30 days: both models must continue it exactly with no width.
        for days in [5usize, 30] {
            let s = series(
                20_000,
                (0..days as i64).map(|i| 1_000_000_000 + 100_000_000 * i),
            );
            let f = forecast(&s, 7).unwrap();
            for (h, p) in f.points.iter().enumerate() {
                let want = 1_000_000_000 + 100_000_000 * (days as i64 + h as i64);
                assert!((p.point.0 - want).abs() <= 1, "{p:?} vs {want}");
                assert!((p.upper.0 - p.lower.0).abs() <= 2, "{p:?}");
                assert_eq!(p.day, 20_000 + days as i64 + h as i64);
            }
            let want_total: i64 = (0..7)
                .map(|h| 1_000_000_000 + 100_000_000 * (days as i64 + h))
                .sum();
            assert!((f.total.point.0 - want_total).abs() <= 7);
            assert!((f.trend_per_day - 1e8).abs() < 1e-3);
        }
    }

    #[test]
    fn weekly_pattern_and_trend_are_recovered() {
        // Weekends cost less: offsets Mon..Sun, sum zero.
        let pattern = [30.0, 20.0, 20.0, 10.0, 0.0, -40.0, -40.0];
        let first = 20_000; // a Monday? weekday(20_000) is computed, not assumed
        let values: Vec<i64> = (0..56)
            .map(|i| {
                let w = weekday(first + i);
                (500.0 + 2.0 * i as f64 + pattern[w]).round() as i64 * 1_000_000
            })
            .collect();
        let f = forecast(&series(first, values), 14).unwrap();
        assert_eq!(f.method, Method::TrendWeekly);
        let off = f.weekday_offsets.unwrap();
        for (got, want) in off.iter().zip(pattern) {
            assert!((got / 1e6 - want).abs() < 1e-6, "{off:?}");
        }
        assert!((f.trend_per_day / 1e6 - 2.0).abs() < 1e-9);
        for p in &f.points {
            let i = p.day - first;
            let want = (500.0 + 2.0 * i as f64 + pattern[weekday(p.day)]) * 1e6;
            assert!((p.point.0 as f64 - want).abs() <= 1.0);
        }
    }

    #[test]
    fn interval_covers_about_95_percent_of_held_out_points() {
        let mut rng = Rng(0x5eed_1234_abcd_0001);
        let (mut inside, mut total) = (0usize, 0usize);
        for _ in 0..400 {
            // $50/day flat, sd $5: fit on 42 days, test the next 7.
            let v: Vec<i64> = (0..49)
                .map(|_| ((50.0 + 5.0 * rng.normal()) * 1e9).round() as i64)
                .collect();
            let f = forecast(&series(19_000, v[..42].iter().copied()), 7).unwrap();
            for (p, y) in f.points.iter().zip(&v[42..]) {
                total += 1;
                if p.lower.0 <= *y && *y <= p.upper.0 {
                    inside += 1;
                }
            }
        }
        let rate = inside as f64 / total as f64;
        assert!((0.93..=0.97).contains(&rate), "coverage {rate}");
    }

    #[test]
    fn interval_widens_with_horizon() {
        let mut rng = Rng(42);
        let v: Vec<i64> = (0..28)
            .map(|i| ((10.0 + 0.5 * i as f64 + rng.normal()) * 1e9) as i64)
            .collect();
        let f = forecast(&series(19_500, v), 30).unwrap();
        let width = |p: &ForecastPoint| p.upper.0 - p.lower.0;
        assert!(width(&f.points[29]) > width(&f.points[0]));
        assert!(f.total.lower <= f.total.point && f.total.point <= f.total.upper);
    }

    #[test]
    fn short_history_is_refused_or_drops_seasonality() {
        assert_eq!(
            forecast(&series(1, [5, 6]), 7),
            Err(ForecastError::TooShort { days: 2, min: 3 })
        );
        assert_eq!(
            forecast(&series(1, []), 7),
            Err(ForecastError::TooShort { days: 0, min: 3 })
        );
        let f = forecast(&series(1, (0..13).map(|i| i * 10)), 3).unwrap();
        assert_eq!(f.method, Method::LinearTrend);
        assert!(f.weekday_offsets.is_none());
        assert_eq!(f.history_days, 13);
        assert_eq!((f.history_from, f.history_to), (1, 13));
    }

    #[test]
    fn horizon_is_validated_and_costs_never_go_negative() {
        let s = series(1, [100, 50, 10, 0, 0]);
        assert_eq!(forecast(&s, 0), Err(ForecastError::Horizon(0)));
        assert_eq!(forecast(&s, 366), Err(ForecastError::Horizon(366)));
        let f = forecast(&s, 365).unwrap();
        assert_eq!(f.points.len(), 365);
        assert!(f.points.iter().all(|p| p.lower.0 >= 0 && p.point.0 >= 0));
        assert_eq!(f.points.last().unwrap().point, NanoUsd::ZERO);
    }

    #[test]
    fn gaps_are_zero_days_and_leading_zeros_are_trimmed() {
        let mut m = BTreeMap::new();
        m.insert(10, NanoUsd(5));
        m.insert(12, NanoUsd(7));
        let s = DailySeries::from_days(8, 13, &m);
        assert_eq!(s.values, [0, 0, 5, 0, 7, 0].map(NanoUsd));
        let t = s.trim_leading_zeros();
        assert_eq!((t.first_day, t.last_day()), (10, 13));
        assert_eq!(t.values.len(), 4);
        // Trimmed zeros mean spending began on day 10: a partial day, dropped when 3 remain.
        let mut m2 = m.clone();
        m2.insert(13, NanoUsd(1));
        let u = DailySeries::from_days(8, 13, &m2).trim_start_of_use();
        assert_eq!((u.first_day, u.values.len()), (11, 3));
        let u = DailySeries::from_days(8, 12, &m).trim_start_of_use();
        assert_eq!((u.first_day, u.values.len()), (10, 3));
        // No zeros before: the window cut into older data, so the first day is complete.
        let u = DailySeries::from_days(10, 13, &m2).trim_start_of_use();
        assert_eq!((u.first_day, u.values.len()), (10, 4));
        assert_eq!(weekday(0), 3); // 1970-01-01 was a Thursday
        assert_eq!(weekday(-1), 2);
    }
}
