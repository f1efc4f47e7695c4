//! `/api/v1/sessions`: sessions and one session's traces.

use super::error::ApiError;
use super::params::Params;
use crate::state::AppState;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::Json;
use spanlens_api::{SessionAnswer, SessionPage, TraceRow};
use spanlens_store::SessionQuery;

pub(super) async fn list_sessions(
    State(st): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<Json<SessionPage>, ApiError> {
    let p = Params::parse(q)?;
    let mut query = SessionQuery::new(p.project());
    query.from = p.time("from")?;
    query.to = p.time("to")?;
    query.user_id = p.string(&["user", "user_id"]);
    query.limit = p.limit()?;
    query.cursor = p.string(&["cursor"]);
    Ok(Json(st.store.list_sessions(&query).await?))
}

pub(super) async fn get_session(
    State(st): State<AppState>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<SessionAnswer>, ApiError> {
    let p = Params::parse(q)?;
    let project = p.project();
    let detail = st
        .store
        .get_session(&project, &id)
        .await?
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no session {id:?}")))?;
    Ok(Json(SessionAnswer {
        session: detail.session,
        traces: detail.traces.iter().map(TraceRow::from).collect(),
    }))
}
