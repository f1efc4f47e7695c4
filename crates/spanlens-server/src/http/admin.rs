//! A project's settings: `GET` and `PUT /api/v1/projects/{project}/redaction`.

use super::error::ApiError;
use super::params::{content_length, header_str};
use crate::ingest;
use crate::redaction::RedactionError;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use spanlens_api::{RedactionAnswer, RedactionSettings};

/// Largest settings document accepted.
const MAX_SETTINGS_BYTES: usize = 1024 * 1024;

/// Reads a small JSON request body (`application/json`, at most `max` bytes) as a `T`,
/// naming what is wrong when it is not one.
pub(super) async fn json_body<T: serde::de::DeserializeOwned>(
    st: &AppState,
    headers: &HeaderMap,
    body: Body,
    max: usize,
) -> Result<T, ApiError> {
    let refuse = |e: ingest::IngestError| {
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
        ApiError(status, e.to_string())
    };
    match ingest::media_type(header_str(headers, "content-type")).as_str() {
        "application/json" => {}
        other => {
            return Err(refuse(ingest::IngestError::UnsupportedMediaType(
                other.to_string(),
            )))
        }
    }
    let (bytes, _held) = ingest::read_body(st, content_length(headers), body, max)
        .await
        .map_err(refuse)?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}")))
}

/// The project of a path, checked like any project name.
pub(super) fn project_name(project: &str) -> Result<&str, ApiError> {
    spanlens_core::limits::check_project(project)
        .map_err(|why| ApiError(StatusCode::BAD_REQUEST, format!("project: {why}")))?;
    Ok(project)
}

fn answer(st: &AppState, project: &str) -> RedactionAnswer {
    let r = st.redactions();
    RedactionAnswer {
        project: project.to_string(),
        settings: r.project_settings(project),
        server: r.server_settings().clone(),
    }
}

/// `GET /api/v1/projects/{project}/redaction`: what the project redacts.
pub(super) async fn get_redaction(
    State(st): State<AppState>,
    Path(project): Path<String>,
) -> Result<Json<RedactionAnswer>, ApiError> {
    Ok(Json(answer(&st, project_name(&project)?)))
}

/// `PUT /api/v1/projects/{project}/redaction`: replaces what the project redacts (from the
/// next span on; stored spans are not rewritten).
pub(super) async fn put_redaction(
    State(st): State<AppState>,
    caller: Option<axum::Extension<crate::auth::Caller>>,
    Path(project): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<RedactionAnswer>, ApiError> {
    let project = project_name(&project)?;
    let settings: RedactionSettings = json_body(&st, &headers, body, MAX_SETTINGS_BYTES).await?;
    st.redactions()
        .save(&*st.store, project, settings)
        .await
        .map_err(|e| match e {
            RedactionError::Invalid(e) => ApiError(StatusCode::BAD_REQUEST, e.to_string()),
            RedactionError::Store(e) => ApiError::from(e),
        })?;
    tracing::info!(project, "redaction settings changed");
    let detail =
        serde_json::to_value(st.redactions().project_settings(project)).unwrap_or_default();
    st.audit(
        caller.as_deref(),
        project,
        "redaction.set",
        "redaction",
        detail,
    )
    .await;
    Ok(Json(answer(&st, project)))
}

/// `GET /api/v1/audit`: the project's admin actions, newest first (`?limit=`, at most 1,000).
pub(super) async fn audit(
    State(st): State<AppState>,
    axum::extract::RawQuery(q): axum::extract::RawQuery,
) -> Result<Json<spanlens_api::AuditAnswer>, ApiError> {
    let p = super::params::Params::parse(q)?;
    let project = p.project();
    let limit = match p.get(&["limit"]) {
        None => 200,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| super::error::bad("limit", v, "a number from 1 to 1000"))?,
    };
    let entries = spanlens_auth::audit::list(&*st.store, &project, limit).await?;
    Ok(Json(spanlens_api::AuditAnswer { entries }))
}

async fn retention_answer(
    st: &AppState,
    project: &str,
) -> Result<spanlens_api::RetentionAnswer, ApiError> {
    Ok(spanlens_api::RetentionAnswer {
        project: project.to_string(),
        settings: crate::retention::settings(&*st.store, project).await?,
        last_sweep: crate::retention::last_sweep(&*st.store, project).await?,
    })
}

/// `GET /api/v1/projects/{project}/retention`: how long the project keeps its data, and what
/// the last sweep removed.
pub(super) async fn get_retention(
    State(st): State<AppState>,
    Path(project): Path<String>,
) -> Result<Json<spanlens_api::RetentionAnswer>, ApiError> {
    Ok(Json(retention_answer(&st, project_name(&project)?).await?))
}

/// `PUT /api/v1/projects/{project}/retention`: sets it; the sweeper starts at once.
pub(super) async fn put_retention(
    State(st): State<AppState>,
    caller: Option<axum::Extension<crate::auth::Caller>>,
    Path(project): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<spanlens_api::RetentionAnswer>, ApiError> {
    let project = project_name(&project)?;
    let settings: spanlens_api::RetentionSettings =
        json_body(&st, &headers, body, 16 * 1024).await?;
    crate::retention::check(&settings).map_err(|e| ApiError(StatusCode::BAD_REQUEST, e))?;
    crate::retention::save(&*st.store, project, settings).await?;
    tracing::info!(project, days = ?settings.days, payload_days = ?settings.payload_days, "retention changed");
    let detail = serde_json::to_value(settings).unwrap_or_default();
    st.audit(
        caller.as_deref(),
        project,
        "retention.set",
        "retention",
        detail,
    )
    .await;
    st.wake_sweeper();
    Ok(Json(retention_answer(&st, project).await?))
}

async fn quota_answer(st: &AppState, project: &str) -> Result<spanlens_api::QuotaAnswer, ApiError> {
    let quotas = st.quotas();
    let mut keys = Vec::new();
    if let Some(dir) = st.auth().directory() {
        for k in dir
            .list(Some(project))
            .await
            .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        {
            if !k.quota.is_unlimited() {
                keys.push(spanlens_api::KeyQuota {
                    usage: quotas.usage(None, Some(&k.id)),
                    id: k.id,
                    prefix: k.prefix,
                    name: k.name,
                    quota: k.quota,
                });
            }
        }
    }
    Ok(spanlens_api::QuotaAnswer {
        project: project.to_string(),
        quota: quotas.project(project),
        usage: quotas.usage(Some(project), None),
        keys,
    })
}

/// `GET /api/v1/projects/{project}/quota`: the quota and what was sent and refused.
pub(super) async fn get_quota(
    State(st): State<AppState>,
    Path(project): Path<String>,
) -> Result<Json<spanlens_api::QuotaAnswer>, ApiError> {
    Ok(Json(quota_answer(&st, project_name(&project)?).await?))
}

/// `PUT /api/v1/projects/{project}/quota`: sets the project's quota.
pub(super) async fn put_quota(
    State(st): State<AppState>,
    caller: Option<axum::Extension<crate::auth::Caller>>,
    Path(project): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<spanlens_api::QuotaAnswer>, ApiError> {
    let project = project_name(&project)?;
    let quota: spanlens_api::Quota = json_body(&st, &headers, body, 16 * 1024).await?;
    quota
        .check()
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, e))?;
    st.quotas().save(&*st.store, project, quota).await?;
    tracing::info!(project, ?quota, "quota changed");
    let detail = serde_json::to_value(quota).unwrap_or_default();
    st.audit(caller.as_deref(), project, "quota.set", "quota", detail)
        .await;
    Ok(Json(quota_answer(&st, project).await?))
}

fn forwarding_answer(st: &AppState, project: &str) -> spanlens_api::ForwardingAnswer {
    spanlens_api::ForwardingAnswer {
        project: project.to_string(),
        destinations: st
            .forwarding()
            .map(|f| f.status(project))
            .unwrap_or_default(),
    }
}

/// `GET /api/v1/projects/{project}/forwarding`: where the project's spans are sent on, with
/// each destination's delivery counters (secrets masked).
pub(super) async fn get_forwarding(
    State(st): State<AppState>,
    Path(project): Path<String>,
) -> Result<Json<spanlens_api::ForwardingAnswer>, ApiError> {
    Ok(Json(forwarding_answer(&st, project_name(&project)?)))
}

/// `PUT /api/v1/projects/{project}/forwarding`: replaces the project's own destinations.
pub(super) async fn put_forwarding(
    State(st): State<AppState>,
    caller: Option<axum::Extension<crate::auth::Caller>>,
    Path(project): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<spanlens_api::ForwardingAnswer>, ApiError> {
    let project = project_name(&project)?;
    let body: spanlens_api::ProjectForwarding = json_body(&st, &headers, body, 256 * 1024).await?;
    let Some(forwarding) = st.forwarding() else {
        return Err(ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "forwarding is not running on this server".into(),
        ));
    };
    forwarding
        .save(&*st.store, project, body.destinations)
        .await
        .map_err(|e| match e {
            crate::forward::ForwardError::Invalid(_) => {
                ApiError(StatusCode::BAD_REQUEST, e.to_string())
            }
            crate::forward::ForwardError::Store(e) => ApiError::from(e),
            e => ApiError(StatusCode::BAD_REQUEST, e.to_string()),
        })?;
    let shown: Vec<_> = forwarding
        .saved(project)
        .iter()
        .map(|d| d.masked())
        .collect();
    tracing::info!(project, destinations = shown.len(), "forwarding changed");
    st.audit(
        caller.as_deref(),
        project,
        "forwarding.set",
        "forwarding",
        serde_json::to_value(&shown).unwrap_or_default(),
    )
    .await;
    Ok(Json(forwarding_answer(&st, project)))
}
