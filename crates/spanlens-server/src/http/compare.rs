//! `GET /api/v1/compare?a=…&b=…`: two traces of a project side by side (`b=previous`: A's
//! previous run). Built on `TraceReader` alone, so every store backend answers it.

use super::error::{bad, internal, ApiError};
use super::params::Params;
use crate::state::AppState;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::Json;
use spanlens_api::{CompareAnswer, TraceRow, PREVIOUS};
use spanlens_core::TraceId;
use spanlens_store::{ListQuery, SortField, SortOrder, TraceDetail};

/// A trace id parameter, required.
fn id_param(p: &Params, key: &str) -> Result<TraceId, ApiError> {
    let raw = p.get(&[key]).ok_or_else(|| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("missing {key}: the id of a trace to compare (32 hex digits)"),
        )
    })?;
    TraceId::from_hex(raw).map_err(|e| bad(key, raw, &e.to_string()))
}

async fn trace(
    st: &AppState,
    project: &str,
    key: &str,
    id: TraceId,
) -> Result<TraceDetail, ApiError> {
    st.store
        .get_trace(project, id)
        .await?
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("{key}: no trace {id}")))
}

/// The latest trace of A's name in the project that started before A.
async fn previous(st: &AppState, project: &str, a: &TraceDetail) -> Result<TraceDetail, ApiError> {
    let mut q = ListQuery::new(project);
    q.filter.name = Some(a.summary.name.clone());
    q.filter.to = Some(a.summary.start_time);
    q.sort = SortField::StartTime;
    q.order = SortOrder::Desc;
    q.limit = 1;
    let page = st.store.list_traces(&q).await?;
    let Some(prev) = page.items.first() else {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!(
                "b=previous: no trace named {:?} started before trace {}",
                a.summary.name, a.summary.trace_id
            ),
        ));
    };
    // Deleted between the two reads: as missing as never stored.
    trace(st, project, "b", prev.trace_id).await
}

pub(super) async fn compare(
    State(st): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<Json<CompareAnswer>, ApiError> {
    let p = Params::parse(q)?;
    let project = p.project();
    let a_id = id_param(&p, "a")?;
    let b_is_previous = p.get(&["b"]) == Some(PREVIOUS);
    // Both parameters are checked before anything is read.
    let b_id = if b_is_previous {
        None
    } else {
        Some(id_param(&p, "b")?)
    };
    let a = trace(&st, &project, "a", a_id).await?;
    let b = match b_id {
        Some(id) => trace(&st, &project, "b", id).await?,
        None => previous(&st, &project, &a).await?,
    };
    // Aligning and diffing thousands of spans is CPU work: off the async workers.
    let answer = tokio::task::spawn_blocking(move || {
        let comparison = spanlens_core::compare(&a.spans, &b.spans);
        let mut unreadable = a.unreadable;
        unreadable.extend(b.unreadable);
        CompareAnswer {
            a: TraceRow::from(&a.summary),
            b: TraceRow::from(&b.summary),
            b_is_previous,
            comparison,
            unreadable_spans: unreadable,
        }
    })
    .await
    .map_err(internal)?;
    Ok(Json(answer))
}
