//! `/api/v1/keys`: a project's API keys, made, listed and revoked by its admins (with auth off,
//! by anyone on the loopback address, for any project).

use super::admin::{json_body, project_name};
use super::error::ApiError;
use super::params::Params;
use crate::auth::Caller;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use spanlens_api::{CreateKey, KeysAnswer, NewKey, RevokedKey};
use spanlens_auth::{directory::DirectoryError, Directory};

pub(super) fn directory(st: &AppState) -> Result<&Directory, ApiError> {
    st.auth().directory().ok_or_else(|| {
        ApiError(
            StatusCode::NOT_FOUND,
            "this server keeps no API keys".into(),
        )
    })
}

/// A directory failure as the API answers it.
pub(super) fn failed(e: DirectoryError) -> ApiError {
    use spanlens_auth::accounts::AccountError;
    match e {
        DirectoryError::Key(e) => ApiError(StatusCode::BAD_REQUEST, e.to_string()),
        DirectoryError::Account(e @ AccountError::Exists(_)) => {
            ApiError(StatusCode::CONFLICT, e.to_string())
        }
        DirectoryError::Account(e @ AccountError::Unknown(_)) => {
            ApiError(StatusCode::NOT_FOUND, e.to_string())
        }
        DirectoryError::Account(e) => ApiError(StatusCode::BAD_REQUEST, e.to_string()),
        DirectoryError::Store(e) => ApiError::from(e),
        e @ DirectoryError::Damaged { .. } => {
            ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        }
    }
}

/// The project a call manages: its key's; with auth off, the `project` parameter (every
/// project when absent, for a list).
pub(super) fn managed(caller: &Option<Extension<Caller>>, named: Option<String>) -> Option<String> {
    match caller {
        Some(Extension(c)) => c.project_or(named),
        None => named,
    }
}

/// `GET /api/v1/keys`.
pub(super) async fn list_keys(
    State(st): State<AppState>,
    caller: Option<Extension<Caller>>,
    RawQuery(q): RawQuery,
) -> Result<Json<KeysAnswer>, ApiError> {
    let p = Params::parse(q)?;
    let project = managed(&caller, p.string(&["project"]));
    let keys = directory(&st)?
        .list(project.as_deref())
        .await
        .map_err(failed)?;
    Ok(Json(KeysAnswer { keys }))
}

/// `POST /api/v1/keys`: 201 with the key's secret, shown this once.
pub(super) async fn create_key(
    State(st): State<AppState>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<NewKey>), ApiError> {
    let ask: CreateKey = json_body(&st, &headers, body, 64 * 1024).await?;
    if let (Some(Extension(c)), Some(other)) = (&caller, &ask.project) {
        if c.project().is_some_and(|own| own != other) {
            return Err(ApiError(
                StatusCode::FORBIDDEN,
                format!(
                    "this call is bound to project {:?} and cannot make keys of project {other:?}",
                    c.project().unwrap_or("")
                ),
            ));
        }
    }
    let project = managed(&caller, ask.project.clone()).ok_or_else(|| {
        ApiError(
            StatusCode::BAD_REQUEST,
            "name the key's project: {\"project\": …}".into(),
        )
    })?;
    project_name(&project)?;
    let new = directory(&st)?
        .create_with_quota(
            &project,
            ask.name.as_deref().unwrap_or(""),
            &ask.scopes,
            ask.langfuse,
            ask.quota,
        )
        .await
        .map_err(failed)?;
    tracing::info!(project, key = %new.view.prefix, scopes = ?new.view.scopes, "API key made");
    let detail = serde_json::json!({"name": new.view.name, "scopes": new.view.scopes, "langfuse": new.view.langfuse});
    st.audit(
        caller.as_deref(),
        &project,
        "key.create",
        &new.view.prefix,
        detail,
    )
    .await;
    Ok((StatusCode::CREATED, Json(new)))
}

/// `DELETE /api/v1/keys/{id}`: revokes it at once on this server, within
/// [`crate::auth::CACHE_TTL`] on others on the same store.
pub(super) async fn revoke_key(
    State(st): State<AppState>,
    caller: Option<Extension<Caller>>,
    Path(id): Path<String>,
) -> Result<Json<RevokedKey>, ApiError> {
    let own = caller
        .as_ref()
        .and_then(|c| c.0.project())
        .map(str::to_string);
    let key = directory(&st)?
        .revoke(own.as_deref(), &id)
        .await
        .map_err(failed)?
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no key {id:?} here")))?;
    st.auth().forget(&key.id);
    tracing::info!(project = %key.project, key = %key.prefix, "API key revoked");
    st.audit(
        caller.as_deref(),
        &key.project,
        "key.revoke",
        &key.prefix,
        serde_json::json!({"name": key.name}),
    )
    .await;
    Ok(Json(RevokedKey { key }))
}
