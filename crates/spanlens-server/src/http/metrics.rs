//! `/api/v1/metrics`, models and prices, projects and stats.

use super::error::{bad, ApiError};
use super::params::{Params, MAX_BUCKETS};
use crate::state::AppState;
use axum::extract::{Path, RawQuery, State};
use axum::Json;
use spanlens_api::{
    MetricBucket, MetricsAnswer, ModelPrice, ModelsAnswer, PriceTier, ProjectsAnswer, StatsAnswer,
};
use spanlens_core::Timestamp;
use spanlens_store::{GroupBy, MetricsQuery};

pub(super) async fn metrics_query(
    st: AppState,
    p: Params,
    group: Option<String>,
) -> Result<Json<MetricsAnswer>, ApiError> {
    let group_by = match group.as_deref().or(p.get(&["group_by"])) {
        None => GroupBy::All,
        Some(g) => GroupBy::parse(g).ok_or_else(|| {
            bad(
                "group_by",
                g,
                "use all, model, provider, agent, user, day, kind or tool",
            )
        })?,
    };
    let mut query = MetricsQuery::new(p.project(), group_by);
    query.from = p.time("from")?;
    query.to = p.time("to")?;
    query.kind = p.kind()?;
    query.model = p.string(&["model"]);
    query.provider = p.string(&["provider"]);
    let buckets = p.number::<u32>("buckets")?;
    let Some(n) = buckets else {
        let rows = st.store.metrics(&query).await?;
        return Ok(Json(MetricsAnswer {
            group_by: group_by.as_str().to_string(),
            rows,
            buckets: None,
        }));
    };
    // Time series (the dashboard's cost over time by model): the same grouping for each equal
    // slice of [from, to), answered by the store in one pass.
    let (Some(from), Some(to)) = (query.from, query.to) else {
        return Err(bad("buckets", &n.to_string(), "needs both from and to"));
    };
    if n == 0 || n > MAX_BUCKETS || to.0 <= from.0 {
        return Err(bad(
            "buckets",
            &n.to_string(),
            &format!("must be 1..={MAX_BUCKETS}, with from before to"),
        ));
    }
    let step = (to.0 - from.0).div_ceil(u64::from(n));
    let mut bounds = vec![from];
    for i in 0..u64::from(n) {
        let start = from.0 + i * step;
        let end = (start + step).min(to.0);
        if start >= end {
            break;
        }
        bounds.push(Timestamp(end));
    }
    let all = st.store.metrics_series(&query, &bounds).await?;
    let series = bounds
        .windows(2)
        .zip(all.slices)
        .map(|(w, rows)| MetricBucket {
            from: w[0],
            to: w[1],
            rows,
        })
        .collect();
    Ok(Json(MetricsAnswer {
        group_by: group_by.as_str().to_string(),
        rows: all.rows,
        buckets: Some(series),
    }))
}

pub(super) async fn metrics(
    State(st): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<Json<MetricsAnswer>, ApiError> {
    metrics_query(st, Params::parse(q)?, None).await
}

pub(super) async fn metrics_grouped(
    State(st): State<AppState>,
    Path(group): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<MetricsAnswer>, ApiError> {
    metrics_query(st, Params::parse(q)?, Some(group)).await
}

pub(super) async fn models(State(st): State<AppState>) -> Json<ModelsAnswer> {
    let c = st.catalog();
    let per_m = |n: i64| n as f64 / 1e9;
    let models = c
        .entries()
        .iter()
        .map(|e| ModelPrice {
            id: e.id.clone(),
            provider: e.provider.clone(),
            kind: e.kind.clone(),
            pattern: e.pattern.clone(),
            valid_from: e.valid_from.clone(),
            input_per_million_usd: per_m(e.rates.input),
            output_per_million_usd: per_m(e.rates.output),
            cache_read_per_million_usd: e.rates.cache_read.map(per_m),
            cache_write_per_million_usd: e.rates.cache_write.map(per_m),
            cache_write_1h_per_million_usd: e.rates.cache_write_1h.map(per_m),
            reasoning_per_million_usd: e.rates.reasoning.map(per_m),
            tiers: e
                .tiers
                .iter()
                .map(|t| PriceTier {
                    above_input_tokens: t.above_input_tokens,
                    input_per_million_usd: per_m(t.rates.input),
                    output_per_million_usd: per_m(t.rates.output),
                })
                .collect(),
            source: e.source.clone(),
            checked: e.checked.clone(),
        })
        .collect();
    Json(ModelsAnswer {
        version: c.version().to_string(),
        models,
    })
}

/// The projects with spans; a key sees its own project only.
pub(super) async fn projects(
    State(st): State<AppState>,
    caller: Option<axum::Extension<crate::auth::Caller>>,
) -> Result<Json<ProjectsAnswer>, ApiError> {
    let mut projects = st.store.projects().await?;
    if let Some(axum::Extension(c)) = &caller {
        projects.retain(|p| c.may_see(p));
    }
    Ok(Json(ProjectsAnswer { projects }))
}

/// `GET /api/v1/sdk/health`: what each service's SDK reported about its own export.
pub(super) async fn sdk_health(
    State(st): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<Json<spanlens_api::SdkHealthAnswer>, ApiError> {
    let project = Params::parse(q)?.project();
    let services = st.sdk_health().services(&project);
    Ok(Json(spanlens_api::SdkHealthAnswer { project, services }))
}

pub(super) async fn stats(
    State(st): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<Json<StatsAnswer>, ApiError> {
    let p = Params::parse(q)?;
    let project = p.project();
    let span_count = st.store.count_spans(&project).await?;
    let media = st.store.media_usage(&project).await?;
    Ok(Json(StatsAnswer {
        project,
        span_count,
        media_blobs: media.blobs,
        media_bytes: media.bytes,
    }))
}
