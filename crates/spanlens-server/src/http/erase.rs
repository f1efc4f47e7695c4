//! Deletion: one trace, every trace of a session, or every trace of a user (the right to
//! erasure), in the project the call is bound to. Spans, scores, log events, rollups and
//! facets go with them; live watchers are told; each deletion is logged.

use super::error::ApiError;
use super::params::Params;
use crate::auth::Caller;
use crate::state::AppState;
use axum::extract::{Path, RawQuery, State};
use axum::Extension;
use axum::Json;
use spanlens_api::{ErasedAnswer, LiveDeleted};
use spanlens_core::TraceId;

/// What to delete.
enum Target {
    Trace(TraceId),
    Session(String),
    User(String),
}

async fn erase(
    st: &AppState,
    caller: Option<Extension<Caller>>,
    q: Option<String>,
    target: Target,
) -> Result<Json<ErasedAnswer>, ApiError> {
    let project = Params::parse(q)?.project();
    let (erased, deleted) = match &target {
        Target::Trace(id) => (
            st.store.delete_traces(&project, &[*id]).await?,
            LiveDeleted {
                project: project.clone(),
                trace_ids: vec![id.to_hex()],
                session_id: None,
                user_id: None,
            },
        ),
        Target::Session(s) => (
            st.store.delete_session(&project, s).await?,
            LiveDeleted {
                project: project.clone(),
                trace_ids: Vec::new(),
                session_id: Some(s.clone()),
                user_id: None,
            },
        ),
        Target::User(u) => (
            st.store.delete_user(&project, u).await?,
            LiveDeleted {
                project: project.clone(),
                trace_ids: Vec::new(),
                session_id: None,
                user_id: Some(u.clone()),
            },
        ),
    };
    let what = match &target {
        Target::Trace(id) => format!("trace {}", id.to_hex()),
        Target::Session(s) => format!("session {s:?}"),
        Target::User(u) => format!("user {u:?}"),
    };
    tracing::info!(project, target = %what, traces = erased.traces, spans = erased.spans, scores = erased.scores, "deleted");
    let action = match &target {
        Target::Trace(_) => "delete.trace",
        Target::Session(_) => "delete.session",
        Target::User(_) => "delete.user",
    };
    let detail = serde_json::to_value(erased).unwrap_or_default();
    st.audit(caller.as_deref(), &project, action, &what, detail)
        .await;
    if erased.traces > 0 || erased.scores > 0 {
        st.announce_deleted(deleted);
    }
    Ok(Json(ErasedAnswer { project, erased }))
}

/// `DELETE /api/v1/traces/{trace_id}`.
pub(super) async fn delete_trace(
    State(st): State<AppState>,
    caller: Option<Extension<Caller>>,
    Path(trace_id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<ErasedAnswer>, ApiError> {
    let id = TraceId::from_hex(&trace_id)
        .map_err(|_| super::error::bad("trace_id", &trace_id, "32 hex digits"))?;
    erase(&st, caller, q, Target::Trace(id)).await
}

/// `DELETE /api/v1/sessions/{session_id}`: every trace of the session.
pub(super) async fn delete_session(
    State(st): State<AppState>,
    caller: Option<Extension<Caller>>,
    Path(session_id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<ErasedAnswer>, ApiError> {
    erase(&st, caller, q, Target::Session(session_id)).await
}

/// `DELETE /api/v1/users/{user_id}`: every trace of the user.
pub(super) async fn delete_user(
    State(st): State<AppState>,
    caller: Option<Extension<Caller>>,
    Path(user_id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<ErasedAnswer>, ApiError> {
    erase(&st, caller, q, Target::User(user_id)).await
}
