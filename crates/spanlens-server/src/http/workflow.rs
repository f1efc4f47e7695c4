//! `GET /api/v1/forecast/workflow`: one workflow's cost per run and its projected cost at a
//! volume the caller names (the arithmetic is `spanlens_core::projection`), from the workflow's
//! traces in a history window, read through the trace list of any store.

use super::error::{bad, ApiError};
use super::insight::bounded;
use super::params::Params;
use crate::state::AppState;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::Json;
use spanlens_api as api;
use spanlens_core::projection::{project, ProjectionError, Run, Volume};
use spanlens_core::Timestamp;
use spanlens_store::{ListQuery, MAX_PAGE_SIZE};

const NS_PER_DAY: u64 = 86_400_000_000_000;
/// History when the request says neither `history_days` nor `from`.
const DEFAULT_HISTORY_DAYS: u32 = 30;
/// Horizon when the request does not say.
const DEFAULT_HORIZON_DAYS: u32 = 30;
/// Runs read at most: past them the request is refused with a shorter window to try.
pub(super) const MAX_RUNS: usize = 200_000;

pub(super) async fn workflow_forecast(
    State(st): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<Json<api::WorkflowForecastAnswer>, ApiError> {
    let p = Params::parse(q)?;
    let project = p.project();
    let name = p
        .string(&["name"])
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| bad("name", "", "name the workflow: the name of its traces"))?;
    let horizon_days = bounded(&p, "horizon_days", DEFAULT_HORIZON_DAYS, 1..=365)?;
    let history_days = bounded(&p, "history_days", DEFAULT_HISTORY_DAYS, 1..=365)?;
    let runs: Option<u64> = p.number("runs")?;
    let growth: Option<f64> = p.number("growth_pct")?;
    let volume = match (runs, growth) {
        (Some(_), Some(_)) => {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                "give runs=N (runs over the horizon) or growth_pct=P (change of the daily rate), not both".into(),
            ))
        }
        (Some(r), None) => Volume::Runs(r),
        (None, Some(g)) if g.is_finite() && g >= -100.0 => Volume::GrowthPct(g),
        (None, Some(g)) => return Err(bad("growth_pct", &g.to_string(), "must be -100 or more")),
        (None, None) => Volume::GrowthPct(0.0),
    };
    let now = crate::ingest::now();
    let to = p.time("to")?.unwrap_or(now);
    let from = p.time("from")?.unwrap_or(Timestamp(
        to.0.saturating_sub(u64::from(history_days) * NS_PER_DAY),
    ));
    if to.0 <= from.0 {
        return Err(bad("from", &from.to_rfc3339(), "must be before `to`"));
    }
    let tags: Vec<String> = p.pairs().all("tag");
    let service = p.string(&["service"]);

    let mut query = ListQuery {
        project: project.clone(),
        limit: MAX_PAGE_SIZE,
        ..ListQuery::default()
    };
    query.filter.name = Some(name.clone());
    query.filter.from = Some(from);
    query.filter.to = Some(to);
    query.filter.tags = tags.clone();
    let mut found = Vec::new();
    loop {
        let page = st.store.list_traces(&query).await?;
        found.extend(
            page.items
                .iter()
                .filter(|t| service.is_none() || t.service == service)
                .map(|t| Run {
                    start: t.start_time,
                    cost: t.total_cost,
                    unpriced: t.unpriced_span_count > 0,
                }),
        );
        if found.len() > MAX_RUNS {
            return Err(bad(
                "history_days",
                &history_days.to_string(),
                &format!(
                    "the workflow ran more than {MAX_RUNS} times in the window; use a shorter one"
                ),
            ));
        }
        match page.next_cursor {
            Some(c) => query.cursor = Some(c),
            None => break,
        }
    }
    let pr = project_or_404(&found, from, to, volume, horizon_days, &name)?;
    Ok(Json(api::WorkflowForecastAnswer {
        project,
        name,
        history: api::WorkflowHistory {
            from: from.to_rfc3339(),
            to: to.to_rfc3339(),
            days: pr.history_days,
            runs: pr.runs,
            runs_per_day: pr.runs_per_day,
            unpriced_runs: pr.unpriced_runs,
            tags,
            service,
        },
        per_run: api::WorkflowPerRun {
            mean_usd: pr.mean_usd,
            p50_usd: pr.p50_usd,
            p95_usd: pr.p95_usd,
            mean_low_usd: pr.mean_interval_usd.map(|i| i.0),
            mean_high_usd: pr.mean_interval_usd.map(|i| i.1),
        },
        projection: api::WorkflowProjection {
            horizon_days,
            runs,
            growth_pct: match volume {
                Volume::GrowthPct(g) => Some(g),
                Volume::Runs(_) => None,
            },
            expected_runs: pr.expected_runs,
            cost_usd: pr.projected_usd,
            low_usd: pr.projected_interval_usd.map(|i| i.0),
            high_usd: pr.projected_interval_usd.map(|i| i.1),
        },
        confidence: pr.confidence.as_str().into(),
        confidence_note: pr.confidence_note,
    }))
}

fn project_or_404(
    runs: &[Run],
    from: Timestamp,
    to: Timestamp,
    volume: Volume,
    horizon_days: u32,
    name: &str,
) -> Result<spanlens_core::projection::Projection, ApiError> {
    project(runs, from, to, volume, horizon_days).map_err(|e| match e {
        ProjectionError::NoRuns => ApiError(
            StatusCode::NOT_FOUND,
            format!(
                "no trace named {name:?} between {} and {}: nothing to project from",
                from.to_rfc3339(),
                to.to_rfc3339()
            ),
        ),
        ProjectionError::EmptyWindow => bad("from", &from.to_rfc3339(), &e.to_string()),
    })
}
