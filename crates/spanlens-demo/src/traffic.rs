//! The shape of the demo's traffic over its window, and start times drawn from it.

use crate::{HOUR, NS_PER_MS, WINDOW_MS};

pub(crate) const MS_PER_DAY: u64 = 24 * HOUR;

/// Relative traffic per UTC weekday, Monday first: a business workload, quiet at weekends.
pub(crate) const WEEKDAY_TRAFFIC: [f64; 7] = [1.0, 1.08, 1.05, 1.0, 0.88, 0.38, 0.32];

/// Relative traffic per UTC hour: working hours in Europe and the Americas, quiet nights.
pub(crate) const HOURLY_TRAFFIC: [f64; 24] = [
    0.25, 0.2, 0.18, 0.18, 0.2, 0.3, 0.5, 0.8, 1.0, 1.1, 1.15, 1.15, 1.1, 1.15, 1.2, 1.2, 1.15,
    1.05, 0.95, 0.8, 0.65, 0.5, 0.4, 0.3,
];

/// Growth of the traffic from the first to the last day of the window (a product gaining users).
pub(crate) const GROWTH: f64 = 0.3;

/// Relative traffic at `at_ms` (milliseconds since the epoch) when the window starts at
/// `start_ms`: weekday × hour of day × linear growth.
pub(crate) fn traffic_weight(at_ms: u64, start_ms: u64) -> f64 {
    let day = at_ms / MS_PER_DAY;
    // 1970-01-01 was a Thursday: index 3 when Monday is 0.
    let weekday = ((day + 3) % 7) as usize;
    let hour = ((at_ms % MS_PER_DAY) / HOUR) as usize;
    let progress = at_ms.saturating_sub(start_ms) as f64 / WINDOW_MS as f64;
    WEEKDAY_TRAFFIC[weekday] * HOURLY_TRAFFIC[hour] * (1.0 + GROWTH * progress.min(1.0))
}

/// The traffic density over the window as hourly steps, for drawing start times from it.
pub(crate) struct Traffic {
    /// `cumulative[k]`: total weight of the hours before hour `k` of the window.
    pub(crate) cumulative: Vec<f64>,
}

impl Traffic {
    /// One step per hour of the window (the steps follow the window start, not the clock hour:
    /// each takes the weight of its midpoint).
    pub(crate) fn new(window_start_ns: u64) -> Traffic {
        let start_ms = window_start_ns / NS_PER_MS;
        let hours = (WINDOW_MS / HOUR) as usize;
        let mut cumulative = Vec::with_capacity(hours + 1);
        let mut sum = 0.0;
        cumulative.push(sum);
        for k in 0..hours as u64 {
            sum += traffic_weight(start_ms + k * HOUR + HOUR / 2, start_ms);
            cumulative.push(sum);
        }
        Traffic { cumulative }
    }

    /// Cumulative weight at offset `ms` of the window.
    pub(crate) fn cdf(&self, ms: u64) -> f64 {
        let k = ((ms / HOUR) as usize).min(self.cumulative.len() - 2);
        let within = (ms - k as u64 * HOUR) as f64 / HOUR as f64;
        self.cumulative[k] + within * (self.cumulative[k + 1] - self.cumulative[k])
    }

    /// The offset in `[lo, hi)` whose cumulative weight is the fraction `u` of the way from
    /// `lo` to `hi` (inverse transform sampling).
    pub(crate) fn place(&self, lo: u64, hi: u64, u: f64) -> u64 {
        let (a, b) = (self.cdf(lo), self.cdf(hi));
        let target = a + u * (b - a);
        // The last step whose start is at or below the target.
        let k = self
            .cumulative
            .partition_point(|c| *c <= target)
            .saturating_sub(1)
            .min(self.cumulative.len() - 2);
        let width = self.cumulative[k + 1] - self.cumulative[k];
        let within = if width > 0.0 {
            (target - self.cumulative[k]) / width
        } else {
            0.0
        };
        let at = k as u64 * HOUR + (within * HOUR as f64) as u64;
        at.clamp(lo, hi.saturating_sub(1).max(lo))
    }
}
