//! A workflow's cost at a volume the user names ("50,000 tickets next month: what will the
//! support workflow cost?"): from its past runs (one trace each), the cost per run and the
//! runs per day, projected over a horizon for an expected number of runs or for a growth of
//! the daily rate.
//!
//! Per run: the mean, the median and the 95th percentile (nearest rank: the value at rank
//! ⌈p·n⌉ of the sorted costs), and the 95% interval of the mean, `mean ± t·s/√n` (Student's t
//! with n − 1 degrees of freedom, `s` the sample standard deviation). The projection is the
//! expected runs times the mean, its interval the expected runs times the interval of the
//! mean: the volume is taken as given, the uncertainty is that of the cost per run. How far
//! to trust it is said plainly ([`Confidence`]).

use crate::money::NanoUsd;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

const NS_PER_DAY: f64 = 86_400e9;

/// One past run of the workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// When it started.
    pub start: Timestamp,
    /// What it cost (its priced calls).
    pub cost: NanoUsd,
    /// Some of its model calls had no price: its cost is understated.
    pub unpriced: bool,
}

/// The volume to project for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Volume {
    /// This many runs over the horizon.
    Runs(u64),
    /// The history's runs per day changed by this many percent (0: as now), over the horizon.
    GrowthPct(f64),
}

/// How far the projection can be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Confidence {
    /// Fewer than 10 runs, or less than a week of history: a rough guide.
    Low,
    /// Fewer than 30 runs, or a mean known only to more than ±25%.
    Medium,
    /// 30 runs or more and a mean known to ±25% or better.
    High,
}

impl Confidence {
    /// Its name on the wire (as serialized).
    pub fn as_str(self) -> &'static str {
        match self {
            Confidence::Low => "low",
            Confidence::Medium => "medium",
            Confidence::High => "high",
        }
    }
}

/// Why a projection cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProjectionError {
    /// No run of the workflow in the history window.
    #[error("no run of this workflow in the history window: nothing to project from")]
    NoRuns,
    /// The window is empty or reversed.
    #[error("the history window must end after it starts")]
    EmptyWindow,
}

/// The answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Projection {
    /// Runs in the history window.
    pub runs: usize,
    /// Days in the history window.
    pub history_days: f64,
    /// Runs per day over the window.
    pub runs_per_day: f64,
    /// Mean cost per run.
    pub mean_usd: f64,
    /// Median cost per run.
    pub p50_usd: f64,
    /// 95th percentile of the cost per run.
    pub p95_usd: f64,
    /// 95% interval of the mean (`None` with a single run).
    pub mean_interval_usd: Option<(f64, f64)>,
    /// Runs expected over the horizon.
    pub expected_runs: f64,
    /// Days projected.
    pub horizon_days: u32,
    /// Expected runs × mean cost per run.
    pub projected_usd: f64,
    /// Expected runs × the interval of the mean.
    pub projected_interval_usd: Option<(f64, f64)>,
    /// Runs with model calls the catalog could not price (their cost is understated).
    pub unpriced_runs: usize,
    /// How far to trust it.
    pub confidence: Confidence,
    /// The same, in a sentence.
    pub confidence_note: String,
}

/// Nearest-rank percentile of sorted `v` (`p` in 0–1).
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = (p * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

/// Projects `runs` (those in `[from, to)`) to `volume` over `horizon_days`.
pub fn project(
    runs: &[Run],
    from: Timestamp,
    to: Timestamp,
    volume: Volume,
    horizon_days: u32,
) -> Result<Projection, ProjectionError> {
    if to.0 <= from.0 {
        return Err(ProjectionError::EmptyWindow);
    }
    let mut costs: Vec<f64> = runs
        .iter()
        .filter(|r| r.start.0 >= from.0 && r.start.0 < to.0)
        .map(|r| r.cost.as_usd_f64())
        .collect();
    if costs.is_empty() {
        return Err(ProjectionError::NoRuns);
    }
    let unpriced_runs = runs
        .iter()
        .filter(|r| r.unpriced && r.start.0 >= from.0 && r.start.0 < to.0)
        .count();
    costs.sort_by(f64::total_cmp);
    let n = costs.len();
    let nf = n as f64;
    let mean = costs.iter().sum::<f64>() / nf;
    let interval = (n >= 2).then(|| {
        let var = costs.iter().map(|c| (c - mean).powi(2)).sum::<f64>() / (nf - 1.0);
        let half = crate::forecast::t_quantile_975(n - 1) * var.sqrt() / nf.sqrt();
        ((mean - half).max(0.0), mean + half)
    });
    let history_days = (to.0 - from.0) as f64 / NS_PER_DAY;
    let runs_per_day = nf / history_days;
    let expected_runs = match volume {
        Volume::Runs(r) => r as f64,
        Volume::GrowthPct(p) => runs_per_day * (1.0 + p / 100.0).max(0.0) * f64::from(horizon_days),
    };
    let relative = interval.map(|(lo, hi)| {
        if mean > 0.0 {
            (hi - lo) / 2.0 / mean
        } else {
            0.0
        }
    });
    let confidence = if n < 10 || history_days < 7.0 {
        Confidence::Low
    } else if n < 30 || relative.is_none_or(|r| r > 0.25) {
        Confidence::Medium
    } else {
        Confidence::High
    };
    let days = format!(
        "{history_days:.0} day{}",
        if history_days.round() == 1.0 { "" } else { "s" }
    );
    let mut confidence_note = match (confidence, interval, relative) {
        (_, None, _) => format!("One run in {days}: no interval can be given; this is a guess."),
        (Confidence::Low, Some((lo, hi)), _) => format!(
            "Only {n} runs in {days}: a rough guide; the mean cost per run is ${lo:.4}–${hi:.4} (95%)."
        ),
        (_, Some(_), Some(r)) => format!(
            "{n} runs in {days}; the mean cost per run is known to ±{:.0}% (95%).",
            r * 100.0
        ),
        (_, Some(_), None) => unreachable!("an interval has a relative width"),
    };
    if unpriced_runs > 0 {
        confidence_note.push_str(&format!(
            " {unpriced_runs} run{} had model calls without a price: the costs are understated.",
            if unpriced_runs == 1 { "" } else { "s" }
        ));
    }
    Ok(Projection {
        runs: n,
        history_days,
        runs_per_day,
        mean_usd: mean,
        p50_usd: percentile(&costs, 0.5),
        p95_usd: percentile(&costs, 0.95),
        mean_interval_usd: interval,
        expected_runs,
        horizon_days,
        projected_usd: expected_runs * mean,
        projected_interval_usd: interval.map(|(lo, hi)| (expected_runs * lo, expected_runs * hi)),
        unpriced_runs,
        confidence,
        confidence_note,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400_000_000_000;

    fn run(day: u64, cents: i64) -> Run {
        Run {
            start: Timestamp(day * DAY + 1),
            cost: NanoUsd(cents * 10_000_000),
            unpriced: false,
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    /// Four runs of $0.10, $0.20, $0.30, $0.40 over 10 days: mean $0.25, s = 0.1291 (var
    /// 0.05/3), t(3) = 3.182, half-width 3.182 × 0.1291 / 2 = $0.2054; 0.4 runs a day.
    #[test]
    fn four_runs_worked_by_hand() {
        let runs = [run(1, 10), run(2, 20), run(5, 30), run(9, 40), run(12, 99)];
        let p = project(
            &runs,
            Timestamp(0),
            Timestamp(10 * DAY),
            Volume::Runs(1000),
            30,
        )
        .unwrap();
        assert_eq!(p.runs, 4, "the run after the window is left out");
        assert!(close(p.mean_usd, 0.25));
        assert!(close(p.p50_usd, 0.20), "nearest rank: ⌈0.5 × 4⌉ = 2nd");
        assert!(close(p.p95_usd, 0.40), "⌈0.95 × 4⌉ = 4th");
        let (lo, hi) = p.mean_interval_usd.unwrap();
        let half = 3.182 * (0.05f64 / 3.0).sqrt() / 2.0;
        assert!(
            close(lo, (0.25 - half).max(0.0)) && close(hi, 0.25 + half),
            "{lo} {hi}"
        );
        assert!(close(p.runs_per_day, 0.4));
        assert!(close(p.projected_usd, 250.0));
        let (plo, phi) = p.projected_interval_usd.unwrap();
        assert!(close(plo, 1000.0 * lo) && close(phi, 1000.0 * hi));
        assert_eq!(p.confidence, Confidence::Low);
        assert!(
            p.confidence_note.starts_with("Only 4 runs in 10 days"),
            "{}",
            p.confidence_note
        );
        // 50% more runs a day than the history's 0.4, for 30 days: 18 runs.
        let g = project(
            &runs,
            Timestamp(0),
            Timestamp(10 * DAY),
            Volume::GrowthPct(50.0),
            30,
        )
        .unwrap();
        assert!(close(g.expected_runs, 18.0));
        assert!(close(g.projected_usd, 4.5));
    }

    #[test]
    fn many_steady_runs_are_trusted_and_thin_history_is_said_plainly() {
        let runs: Vec<Run> = (0..60).map(|i| run(i % 30, 50 + (i % 3) as i64)).collect();
        let p = project(
            &runs,
            Timestamp(0),
            Timestamp(30 * DAY),
            Volume::Runs(50_000),
            30,
        )
        .unwrap();
        assert_eq!(p.confidence, Confidence::High, "{}", p.confidence_note);
        assert!(
            p.confidence_note.starts_with("60 runs in 30 days"),
            "{}",
            p.confidence_note
        );
        let one = project(
            &runs[..1],
            Timestamp(0),
            Timestamp(30 * DAY),
            Volume::Runs(10),
            7,
        )
        .unwrap();
        assert_eq!(one.mean_interval_usd, None);
        assert!(
            one.confidence_note.starts_with("One run"),
            "{}",
            one.confidence_note
        );
        let mut unpriced = runs[..12].to_vec();
        unpriced[0].unpriced = true;
        let u = project(
            &unpriced,
            Timestamp(0),
            Timestamp(30 * DAY),
            Volume::Runs(10),
            7,
        )
        .unwrap();
        assert_eq!(u.unpriced_runs, 1);
        assert!(
            u.confidence_note.contains("understated"),
            "{}",
            u.confidence_note
        );
        assert_eq!(
            project(
                &runs,
                Timestamp(40 * DAY),
                Timestamp(50 * DAY),
                Volume::Runs(1),
                1
            ),
            Err(ProjectionError::NoRuns)
        );
        assert_eq!(
            project(&runs, Timestamp(DAY), Timestamp(DAY), Volume::Runs(1), 1),
            Err(ProjectionError::EmptyWindow)
        );
    }
}
