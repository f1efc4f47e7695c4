//! `/api/v1/metrics`, models and prices, projects and stats.

use super::error::{bad, ApiError};
use super::params::{Params, MAX_BUCKETS};
use crate::state::AppState;
use axum::extract::{Path, RawQuery, State};
use axum::Json;
use serde_json::{json, Value};
use spanlens_core::Timestamp;
use spanlens_store::{GroupBy, MetricsQuery};

pub(super) async fn metrics_query(
    st: AppState,
    p: Params,
    group: Option<String>,
) -> Result<Json<Value>, ApiError> {
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
        return Ok(Json(json!({"group_by": group_by.as_str(), "rows": rows})));
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
    let series: Vec<Value> = bounds
        .windows(2)
        .zip(all.slices)
        .map(|(w, rows)| json!({"from": w[0].to_rfc3339(), "to": w[1].to_rfc3339(), "rows": rows}))
        .collect();
    let rows = all.rows;
    Ok(Json(json!({
        "group_by": group_by.as_str(),
        "rows": rows,
        "buckets": series,
    })))
}

pub(super) async fn metrics(
    State(st): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    metrics_query(st, Params::parse(q)?, None).await
}

pub(super) async fn metrics_grouped(
    State(st): State<AppState>,
    Path(group): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    metrics_query(st, Params::parse(q)?, Some(group)).await
}

pub(super) async fn models(State(st): State<AppState>) -> Json<Value> {
    let c = st.catalog();
    let rows: Vec<Value> = c
        .entries()
        .iter()
        .map(|e| {
            let per_m = |n: i64| n as f64 / 1e9;
            json!({
                "id": e.id, "provider": e.provider, "kind": e.kind, "match": e.pattern,
                "valid_from": e.valid_from,
                "input_per_million_usd": per_m(e.rates.input),
                "output_per_million_usd": per_m(e.rates.output),
                "cache_read_per_million_usd": e.rates.cache_read.map(per_m),
                "cache_write_per_million_usd": e.rates.cache_write.map(per_m),
                "cache_write_1h_per_million_usd": e.rates.cache_write_1h.map(per_m),
                "reasoning_per_million_usd": e.rates.reasoning.map(per_m),
                "tiers": e.tiers.iter().map(|t| json!({
                    "above_input_tokens": t.above_input_tokens,
                    "input_per_million_usd": per_m(t.rates.input),
                    "output_per_million_usd": per_m(t.rates.output),
                })).collect::<Vec<_>>(),
                "source": e.source, "checked": e.checked,
            })
        })
        .collect();
    Json(json!({"version": c.version(), "models": rows}))
}

pub(super) async fn projects(State(st): State<AppState>) -> Result<Json<Value>, ApiError> {
    let list = st.store.projects().await?;
    Ok(Json(json!({"projects": list})))
}

pub(super) async fn stats(
    State(st): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let p = Params::parse(q)?;
    let project = p.project();
    let spans = st.store.count_spans(&project).await?;
    Ok(Json(json!({"project": project, "span_count": spans})))
}
