//! `/api/v1/sessions`: sessions and one session's traces.

use super::error::ApiError;
use super::params::Params;
use super::rows::trace_row;
use crate::state::AppState;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};
use spanlens_store::SessionQuery;

pub(super) async fn list_sessions(
    State(st): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let p = Params::parse(q)?;
    let mut query = SessionQuery::new(p.project());
    query.from = p.time("from")?;
    query.to = p.time("to")?;
    query.user_id = p.string(&["user", "user_id"]);
    query.limit = p.limit()?;
    query.cursor = p.string(&["cursor"]);
    let page = st.store.list_sessions(&query).await?;
    Ok(Json(
        json!({"items": page.items, "next_cursor": page.next_cursor}),
    ))
}

pub(super) async fn get_session(
    State(st): State<AppState>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let p = Params::parse(q)?;
    let project = p.project();
    let detail = st
        .store
        .get_session(&project, &id)
        .await?
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no session {id:?}")))?;
    Ok(Json(json!({
        "session": detail.session,
        "traces": detail.traces.iter().map(trace_row).collect::<Vec<_>>(),
    })))
}
