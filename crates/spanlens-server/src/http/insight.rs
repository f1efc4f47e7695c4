//! Insight endpoints (issue #6): the cost forecast and the reported-versus-computed cost
//! reconciliation. The arithmetic lives in `spanlens-core`; this module only gathers the data.

use super::error::{bad, ApiError};
use super::params::Params;
use crate::state::AppState;
use axum::extract::{RawQuery, State};
use axum::Json;
use spanlens_api as api;
use spanlens_core::forecast::{forecast, DailySeries, ForecastPoint, MAX_HORIZON_DAYS, MIN_DAYS};
use spanlens_core::{NanoUsd, Reconciliation, ReconciliationRow, Timestamp};
use spanlens_store::{GroupBy, MetricsQuery, SpanScan};
use std::collections::BTreeMap;

const NS_PER_DAY: u64 = 86_400_000_000_000;
/// History used when the request does not say (eight weeks: enough for the weekly pattern).
const DEFAULT_HISTORY_DAYS: u32 = 56;
/// Longest history a forecast may use.
const MAX_HISTORY_DAYS: u32 = 730;
/// Horizon when the request does not say.
const DEFAULT_HORIZON_DAYS: u32 = 30;
/// Groups forecast apart, the costliest first; the rest still count in the total.
const MAX_GROUPS: usize = 20;

/// `YYYY-MM-DD` of a day number.
fn date(day: i64) -> String {
    let ns = u64::try_from(day).unwrap_or(0).saturating_mul(NS_PER_DAY);
    Timestamp(ns).to_rfc3339()[..10].to_string()
}

fn usd(n: NanoUsd) -> f64 {
    n.as_usd_f64()
}

fn today() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    (now / NS_PER_DAY) as i64
}

/// A whole-number parameter within `range`, or its default; 400 naming it otherwise.
pub(super) fn bounded(
    p: &Params,
    key: &str,
    default: u32,
    range: std::ops::RangeInclusive<u32>,
) -> Result<u32, ApiError> {
    let Some(raw) = p.get(&[key]) else {
        return Ok(default);
    };
    let n: i64 = raw
        .trim()
        .parse()
        .map_err(|_| bad(key, raw, "not a whole number"))?;
    u32::try_from(n)
        .ok()
        .filter(|n| range.contains(n))
        .ok_or_else(|| {
            bad(
                key,
                raw,
                &format!("must be {}..={}", range.start(), range.end()),
            )
        })
}

fn point(p: &ForecastPoint) -> api::ForecastPoint {
    api::ForecastPoint {
        date: date(p.day),
        cost_usd: usd(p.point),
        lower_usd: usd(p.lower),
        upper_usd: usd(p.upper),
    }
}

fn total(p: &ForecastPoint) -> api::ForecastTotal {
    api::ForecastTotal {
        cost_usd: usd(p.point),
        lower_usd: usd(p.lower),
        upper_usd: usd(p.upper),
        cost_nano_usd: p.point.0,
        lower_nano_usd: p.lower.0,
        upper_nano_usd: p.upper.0,
    }
}

/// The forecast of one series; too short a history is reported, not an error. `unpriced`
/// model calls of the history window had no price: their cost is in neither the history nor
/// the forecast, and the count says so.
fn series(
    key: Option<String>,
    series: DailySeries,
    horizon: u32,
    unpriced: u64,
) -> api::ForecastSeries {
    let series = series.trim_start_of_use();
    let history_cost: NanoUsd = series.values.iter().copied().sum();
    let history = api::ForecastHistory {
        days: series.values.len(),
        from: (!series.values.is_empty()).then(|| date(series.first_day)),
        to: (!series.values.is_empty()).then(|| date(series.last_day())),
        cost_usd: usd(history_cost),
        cost_nano_usd: history_cost.0,
        unpriced_span_count: unpriced,
        daily: series
            .values
            .iter()
            .enumerate()
            .map(|(i, v)| api::DailyCostPoint {
                date: date(series.first_day + i as i64),
                cost_usd: usd(*v),
            })
            .collect(),
    };
    let mut out = api::ForecastSeries {
        key,
        history,
        error: None,
        method: None,
        confidence: None,
        trend_usd_per_day: None,
        residual_sd_usd: None,
        weekday_offsets_usd: None,
        points: Vec::new(),
        total: None,
    };
    match forecast(&series, horizon) {
        Ok(f) => {
            out.method = Some(f.method.as_str().to_string());
            out.confidence = Some(f.confidence);
            out.trend_usd_per_day = Some(f.trend_per_day / 1e9);
            out.residual_sd_usd = Some(f.residual_sd / 1e9);
            out.weekday_offsets_usd = f.weekday_offsets.map(|o| api::WeekdayOffsets {
                mon: o[0] / 1e9,
                tue: o[1] / 1e9,
                wed: o[2] / 1e9,
                thu: o[3] / 1e9,
                fri: o[4] / 1e9,
                sat: o[5] / 1e9,
                sun: o[6] / 1e9,
            });
            out.points = f.points.iter().map(point).collect();
            out.total = Some(total(&f.total));
        }
        Err(e) => out.error = Some(e.to_string()),
    }
    out
}

/// `GET /api/v1/forecast?horizon_days=&group_by=model|agent|user&project=&history_days=`:
/// a forecast of daily cost per group and for the whole project, from the complete UTC days
/// before today (today is partial, so it is not history).
pub(super) async fn forecast_handler(
    State(st): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<Json<api::ForecastAnswer>, ApiError> {
    let p = Params::parse(q)?;
    let horizon = bounded(
        &p,
        "horizon_days",
        DEFAULT_HORIZON_DAYS,
        1..=MAX_HORIZON_DAYS,
    )?;
    let history_days = bounded(
        &p,
        "history_days",
        DEFAULT_HISTORY_DAYS,
        MIN_DAYS as u32..=MAX_HISTORY_DAYS,
    )?;
    let group_by = match p.get(&["group_by"]) {
        None => None,
        Some(g) => Some(
            GroupBy::parse(g)
                .filter(|g| matches!(g, GroupBy::Model | GroupBy::Agent | GroupBy::User))
                .ok_or_else(|| bad("group_by", g, "use model, agent or user"))?,
        ),
    };
    let project = p.project();
    let last = today() - 1;
    let first = last - i64::from(history_days) + 1;
    let mut query = MetricsQuery::new(project.clone(), group_by.unwrap_or(GroupBy::All));
    query.from = Some(Timestamp(u64::try_from(first).unwrap_or(0) * NS_PER_DAY));
    query.to = Some(Timestamp(u64::try_from(last + 1).unwrap_or(0) * NS_PER_DAY));
    let rows = st.store.daily_cost(&query).await?;

    let mut total: BTreeMap<i64, NanoUsd> = BTreeMap::new();
    let mut groups: BTreeMap<Option<String>, BTreeMap<i64, NanoUsd>> = BTreeMap::new();
    // Unpriced calls are counted, never fitted as $0 days: a group with nothing priced is
    // listed apart instead of forecast.
    let mut unpriced: BTreeMap<Option<String>, u64> = BTreeMap::new();
    let mut total_unpriced = 0u64;
    for r in rows {
        if r.unpriced_span_count > 0 {
            *unpriced.entry(r.key.clone()).or_default() += r.unpriced_span_count;
            total_unpriced += r.unpriced_span_count;
        }
        if r.priced_span_count == 0 {
            continue;
        }
        *total.entry(r.day).or_default() += r.cost;
        *groups.entry(r.key).or_default().entry(r.day).or_default() += r.cost;
    }
    let unpriced_groups = unpriced
        .iter()
        .filter(|(k, _)| group_by.is_some() && !groups.contains_key(*k))
        .map(|(k, n)| api::UnpricedGroup {
            key: k.clone(),
            unpriced_span_count: *n,
        })
        .collect();
    let mut ranked: Vec<(Option<String>, BTreeMap<i64, NanoUsd>, NanoUsd)> = groups
        .into_iter()
        .map(|(k, days)| {
            let sum = days.values().copied().sum();
            (k, days, sum)
        })
        .collect();
    ranked.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
    let omitted = ranked.len().saturating_sub(MAX_GROUPS);
    let group_rows = if group_by.is_some() {
        ranked
            .into_iter()
            .take(MAX_GROUPS)
            .map(|(key, days, _)| {
                let n = unpriced.get(&key).copied().unwrap_or(0);
                series(key, DailySeries::from_days(first, last, &days), horizon, n)
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(Json(api::ForecastAnswer {
        project,
        group_by: group_by.map(|g| g.as_str().to_string()),
        horizon_days: horizon,
        history_window: api::HistoryWindow {
            days: history_days,
            from: date(first),
            to: date(last),
        },
        forecast_from: date(last + 1),
        forecast_to: date(last + i64::from(horizon)),
        method: "least squares on the day index with weekday offsets (14+ days of history; a \
                 straight line with 3-13 days); 95% prediction interval from the residual \
                 standard deviation, widening with the horizon; days before a series' first \
                 cost are dropped, and so is that first (partial) day when 3 days remain"
            .to_string(),
        groups: group_rows,
        groups_omitted: omitted,
        unpriced_groups,
        total: series(
            None,
            DailySeries::from_days(first, last, &total),
            horizon,
            total_unpriced,
        ),
    }))
}

fn reconciliation_row(r: &ReconciliationRow, model: Option<String>) -> api::ReconciliationRow {
    api::ReconciliationRow {
        model,
        spans: r.spans,
        reported_usd: usd(r.reported),
        computed_usd: usd(r.computed),
        difference_usd: usd(r.difference()),
        difference_pct: r.difference_pct(),
        reported_nano_usd: r.reported.0,
        computed_nano_usd: r.computed.0,
        difference_nano_usd: r.difference().0,
        unpriced_spans: r.unpriced_spans,
        unpriced_reported_usd: usd(r.unpriced_reported),
    }
}

/// `GET /api/v1/reconciliation?from=&to=&project=`: per model, the cost providers reported
/// against what the catalog in force computes for the same spans.
pub(super) async fn reconciliation_handler(
    State(st): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<Json<api::ReconciliationAnswer>, ApiError> {
    let p = Params::parse(q)?;
    let scan = SpanScan {
        project: p.project(),
        from: p.time("from")?,
        to: p.time("to")?,
        model: p.string(&["model"]),
    };
    let project = scan.project.clone();
    let catalog = st.catalog();
    let mut rec = Reconciliation::default();
    let mut batches = st.store.scan_model_spans(&scan).await?;
    while let Some(spans) = batches.next().await {
        for s in &spans {
            rec.add(s, catalog);
        }
    }
    let unreadable = batches.finish().await?;
    Ok(Json(api::ReconciliationAnswer {
        project,
        catalog_version: catalog.version().to_string(),
        rows: rec
            .rows()
            .iter()
            .map(|r| reconciliation_row(r, Some(r.model.clone())))
            .collect(),
        total: reconciliation_row(&rec.total(), None),
        unreadable_spans: unreadable,
    }))
}
