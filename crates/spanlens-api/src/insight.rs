//! `/api/v1/forecast` and `/api/v1/reconciliation`: cost insight. Amounts are in USD for
//! display, and exact in nano-USD where a client may add them up.

use serde::{Deserialize, Serialize};
use spanlens_store::Unreadable;

/// `GET /api/v1/forecast`: daily cost forecast per group and for the project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForecastAnswer {
    /// Project.
    pub project: String,
    /// The grouping (model, agent or user), if any.
    pub group_by: Option<String>,
    /// Days forecast.
    pub horizon_days: u32,
    /// The history the forecast was fitted on.
    pub history_window: HistoryWindow,
    /// First day forecast, `YYYY-MM-DD`.
    pub forecast_from: String,
    /// Last day forecast.
    pub forecast_to: String,
    /// How the forecast is made, in words.
    pub method: String,
    /// One series per group, costliest first.
    pub groups: Vec<ForecastSeries>,
    /// Groups left out of `groups` (they still count in `total`).
    pub groups_omitted: usize,
    /// Groups with only unpriced model calls: counted, never forecast as $0.
    pub unpriced_groups: Vec<UnpricedGroup>,
    /// The whole project.
    pub total: ForecastSeries,
}

/// The history window asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryWindow {
    /// Days.
    pub days: u32,
    /// First day, `YYYY-MM-DD`.
    pub from: String,
    /// Last day (yesterday: today is partial).
    pub to: String,
}

/// A group whose model calls all lacked a price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnpricedGroup {
    /// The group.
    pub key: Option<String>,
    /// Its unpriced model calls in the history window.
    pub unpriced_span_count: u64,
}

/// The forecast of one series. When the history is too short to fit, `error` says so and
/// `method`, `confidence`, `points` and `total` are empty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForecastSeries {
    /// The group (`null` for the total, and for spans without the grouping's value).
    pub key: Option<String>,
    /// The history used.
    pub history: ForecastHistory,
    /// Why no forecast could be made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `weekly` or `linear`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Width of the prediction interval (0.95).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    /// Fitted trend, USD per day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trend_usd_per_day: Option<f64>,
    /// Standard deviation of the residuals, USD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub residual_sd_usd: Option<f64>,
    /// Fitted weekday offsets, USD; absent with less than 14 days of history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weekday_offsets_usd: Option<WeekdayOffsets>,
    /// One point per day forecast.
    pub points: Vec<ForecastPoint>,
    /// The sum over the horizon.
    pub total: Option<ForecastTotal>,
}

/// The cost history of a series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForecastHistory {
    /// Days used (days before the series' first cost are dropped).
    pub days: usize,
    /// First day used, when any.
    pub from: Option<String>,
    /// Last day used, when any.
    pub to: Option<String>,
    /// Cost over the days used, USD.
    pub cost_usd: f64,
    /// The same, exact, nano-USD.
    pub cost_nano_usd: i64,
    /// Unpriced model calls in the window: their cost is in neither history nor forecast.
    pub unpriced_span_count: u64,
    /// Cost per day.
    pub daily: Vec<DailyCostPoint>,
}

/// One day of a cost history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DailyCostPoint {
    /// `YYYY-MM-DD`.
    pub date: String,
    /// Cost, USD.
    pub cost_usd: f64,
}

/// One forecast day with its 95% interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForecastPoint {
    /// `YYYY-MM-DD`.
    pub date: String,
    /// Expected cost, USD.
    pub cost_usd: f64,
    /// Lower bound, USD.
    pub lower_usd: f64,
    /// Upper bound, USD.
    pub upper_usd: f64,
}

/// The forecast summed over the horizon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForecastTotal {
    /// Expected cost, USD.
    pub cost_usd: f64,
    /// Lower bound, USD.
    pub lower_usd: f64,
    /// Upper bound, USD.
    pub upper_usd: f64,
    /// Expected cost, nano-USD.
    pub cost_nano_usd: i64,
    /// Lower bound, nano-USD.
    pub lower_nano_usd: i64,
    /// Upper bound, nano-USD.
    pub upper_nano_usd: i64,
}

/// Weekday offsets from the trend, USD (Monday first).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)] // the names say it
pub struct WeekdayOffsets {
    pub mon: f64,
    pub tue: f64,
    pub wed: f64,
    pub thu: f64,
    pub fri: f64,
    pub sat: f64,
    pub sun: f64,
}

/// `GET /api/v1/reconciliation`: per model, the cost providers reported against what the
/// catalog in force computes for the same spans.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReconciliationAnswer {
    /// Project.
    pub project: String,
    /// The catalog the computed costs come from.
    pub catalog_version: String,
    /// One row per model.
    pub rows: Vec<ReconciliationRow>,
    /// Every model (`model` is null).
    pub total: ReconciliationRow,
    /// Stored spans the scan could not read.
    pub unreadable_spans: Unreadable,
}

/// Reported against computed cost of one model's calls that carry a reported cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReconciliationRow {
    /// The model (null in the total).
    pub model: Option<String>,
    /// Calls compared.
    pub spans: u64,
    /// Reported by the provider, USD.
    pub reported_usd: f64,
    /// Computed from the catalog, USD.
    pub computed_usd: f64,
    /// Reported minus computed, USD.
    pub difference_usd: f64,
    /// The difference as a percentage of the computed cost, when that is not 0.
    pub difference_pct: Option<f64>,
    /// Reported, nano-USD.
    pub reported_nano_usd: i64,
    /// Computed, nano-USD.
    pub computed_nano_usd: i64,
    /// Difference, nano-USD.
    pub difference_nano_usd: i64,
    /// Calls the catalog cannot price (not in the comparison).
    pub unpriced_spans: u64,
    /// What the provider reported for those, USD.
    pub unpriced_reported_usd: f64,
}

/// `GET /api/v1/whatif`: what model calls would have cost on another catalog model, beside
/// their cost as stored; nothing stored changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WhatIfAnswer {
    /// The catalog model the calls were priced as.
    pub model: String,
    /// The catalog's version.
    pub pricing_version: String,
    /// Whether cache reads and writes were priced at the model's cache rates (else as input).
    pub cache_reads: bool,
    /// What was priced: `trace`, `session`, `traces` (those the trace list's filters choose)
    /// or `range` (every model call that started in a time range).
    pub scope: String,
    /// The trace or session id, the filters as `key=value&…`, or the range as `FROM/TO`.
    pub id: String,
    /// Traces read.
    pub traces: usize,
    /// Plainly: token counts are as measured, not as the other model would count them.
    pub note: String,
    /// The model calls, each as stored and on the other model (empty for a range: see
    /// `by_model`).
    pub calls: Vec<WhatIfCall>,
    /// The calls by the model they ran on, costliest as stored first.
    pub by_model: Vec<WhatIfModelRow>,
    /// Totals over the calls.
    pub total: WhatIfTotal,
}

/// The calls of one model in a [`WhatIfAnswer`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WhatIfModelRow {
    /// The model the calls ran on (`None`: not reported).
    pub model: Option<String>,
    /// Calls.
    pub calls: usize,
    /// Calls priced as the other model.
    pub repriced: usize,
    /// Their stored cost (the priced ones), USD.
    pub stored_usd: f64,
    /// Calls with no stored price (not in `stored_usd`).
    pub stored_unpriced: usize,
    /// Their cost on the other model, USD.
    pub whatif_usd: f64,
    /// Calls kept as stored with no price (not in `whatif_usd`).
    pub whatif_unpriced: usize,
}

/// One model call in a [`WhatIfAnswer`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WhatIfCall {
    /// Trace.
    pub trace_id: String,
    /// Span.
    pub span_id: String,
    /// Span name.
    pub name: String,
    /// The model it ran on.
    pub model: Option<String>,
    /// Its agent.
    pub agent: Option<String>,
    /// Input tokens, as measured.
    pub input_tokens: u64,
    /// Cached input tokens read, as measured.
    pub cache_read_tokens: u64,
    /// Output tokens, as measured.
    pub output_tokens: u64,
    /// Cost as stored, USD (`None`: unpriced).
    pub stored_usd: Option<f64>,
    /// Cost on the other model, USD (the stored one when not repriced).
    pub whatif_usd: Option<f64>,
    /// Whether this call was priced as the other model.
    pub repriced: bool,
    /// The catalog entry it was priced with.
    pub pricing_id: Option<String>,
}

/// Totals of a [`WhatIfAnswer`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WhatIfTotal {
    /// Stored cost of the calls that have one, USD.
    pub stored_usd: f64,
    /// The same, exact nano-USD.
    pub stored_nano_usd: i64,
    /// Cost on the other model, USD.
    pub whatif_usd: f64,
    /// The same, exact nano-USD.
    pub whatif_nano_usd: i64,
    /// `whatif - stored`, USD.
    pub difference_usd: f64,
    /// Model calls considered.
    pub calls: usize,
    /// Calls priced as the other model.
    pub repriced: usize,
    /// Calls with no stored cost (unpriced): in the what-if sum, not the stored one.
    pub stored_unpriced: usize,
    /// Calls left as stored with no cost: in neither sum.
    pub whatif_unpriced: usize,
}

/// `GET /api/v1/forecast/workflow`: one workflow's cost per run and its cost at a volume the
/// caller names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowForecastAnswer {
    /// Project.
    pub project: String,
    /// The workflow: the trace name.
    pub name: String,
    /// The history the figures come from.
    pub history: WorkflowHistory,
    /// Cost per run.
    pub per_run: WorkflowPerRun,
    /// The projection.
    pub projection: WorkflowProjection,
    /// `low`, `medium` or `high`.
    pub confidence: String,
    /// How far to trust it, in a sentence.
    pub confidence_note: String,
}

/// The history of a [`WorkflowForecastAnswer`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowHistory {
    /// Window start (RFC 3339).
    pub from: String,
    /// Window end (RFC 3339).
    pub to: String,
    /// Days in the window.
    pub days: f64,
    /// Runs (traces of the workflow) in the window.
    pub runs: usize,
    /// Runs per day.
    pub runs_per_day: f64,
    /// Runs with model calls the catalog could not price (their cost is understated).
    pub unpriced_runs: usize,
    /// Only runs carrying every one of these tags were counted.
    pub tags: Vec<String>,
    /// Only runs of this service were counted.
    pub service: Option<String>,
}

/// Cost per run in a [`WorkflowForecastAnswer`], USD.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowPerRun {
    /// Mean.
    pub mean_usd: f64,
    /// Median.
    pub p50_usd: f64,
    /// 95th percentile.
    pub p95_usd: f64,
    /// Lower end of the mean's 95% interval (`None` with one run).
    pub mean_low_usd: Option<f64>,
    /// Upper end of the mean's 95% interval.
    pub mean_high_usd: Option<f64>,
}

/// The projection in a [`WorkflowForecastAnswer`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowProjection {
    /// Days projected.
    pub horizon_days: u32,
    /// The runs the caller expects over the horizon (when given).
    pub runs: Option<u64>,
    /// The change of the daily run rate the caller expects, percent (when given instead).
    pub growth_pct: Option<f64>,
    /// Runs the projection is for.
    pub expected_runs: f64,
    /// Expected runs × mean cost per run, USD.
    pub cost_usd: f64,
    /// Expected runs × the lower end of the mean's interval.
    pub low_usd: Option<f64>,
    /// Expected runs × the upper end of the mean's interval.
    pub high_usd: Option<f64>,
}
