//! `/api/v1/views`: saved views of the trace list, per project. A view is a shared-state
//! document (`view:{hex project}:{id}`), so every server on one store lists the same views and
//! every backend keeps them. Members and admins save and delete views; viewers read them.

use super::admin::json_body;
use super::error::{bad, ApiError};
use super::params::Params;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use spanlens_api::{SavedView, ViewInput, ViewList, VIEW_COLUMNS};

/// Most views one project keeps.
const MAX_VIEWS: usize = 200;
/// Longest name, in characters.
const MAX_NAME_CHARS: usize = 100;
/// Longest query string, in bytes.
const MAX_QUERY_BYTES: usize = 4096;

/// The shared-state key prefix of `project`'s views (hex keeps one project's prefix from
/// matching another whose name starts the same way).
fn prefix(project: &str) -> String {
    format!("view:{}:", hex::encode(project))
}

async fn load(st: &AppState, project: &str) -> Result<Vec<SavedView>, ApiError> {
    let mut views = Vec::new();
    for (key, doc) in st.store.list_state(&prefix(project)).await? {
        match serde_json::from_str::<SavedView>(&doc) {
            Ok(v) => views.push(v),
            // One damaged document must not hide the others.
            Err(e) => tracing::error!(key, error = %e, "saved view unreadable; left out"),
        }
    }
    views.sort_by_key(|v| v.name.to_lowercase());
    Ok(views)
}

/// Checks a view's input: a name, a query the trace list accepts, known columns.
pub(super) fn checked(input: ViewInput) -> Result<ViewInput, ApiError> {
    let name = input.name.trim().to_string();
    if name.is_empty()
        || name.chars().count() > MAX_NAME_CHARS
        || name.chars().any(char::is_control)
    {
        return Err(bad(
            "name",
            &input.name,
            &format!("1 to {MAX_NAME_CHARS} characters, no control characters"),
        ));
    }
    let query = input.query.trim_start_matches('?').to_string();
    if query.len() > MAX_QUERY_BYTES {
        return Err(bad(
            "query",
            "…",
            &format!("longer than {MAX_QUERY_BYTES} bytes"),
        ));
    }
    let parsed = Params::parse(Some(query.clone()))?;
    for (k, _) in parsed.pairs().0 {
        if k == "project" || k == "cursor" {
            return Err(bad(
                "query",
                k,
                "a view keeps filters and sort, not a project or a page",
            ));
        }
    }
    super::traces::list_query(&parsed)
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("query: {}", e.1)))?;
    for c in &input.columns {
        if !VIEW_COLUMNS.contains(&c.as_str()) {
            return Err(bad(
                "columns",
                c,
                &format!("use {}", VIEW_COLUMNS.join(", ")),
            ));
        }
    }
    Ok(ViewInput {
        name,
        query,
        columns: input.columns,
    })
}

fn now_ns() -> u64 {
    crate::ingest::now().0
}

fn view_id(id: &str) -> Result<&str, ApiError> {
    super::rows::doc_id(id, "id", "view")
}

async fn save(st: &AppState, project: &str, view: &SavedView) -> Result<(), ApiError> {
    let doc = serde_json::to_string(view)
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    st.store
        .save_state(&format!("{}{}", prefix(project), view.id), &doc)
        .await?;
    Ok(())
}

fn actor(caller: Option<&crate::auth::Caller>) -> String {
    caller.map_or_else(|| "local (auth off)".into(), |c| c.actor())
}

/// `GET /api/v1/views`: the project's saved views.
pub(super) async fn list_views(
    State(st): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<Json<ViewList>, ApiError> {
    let project = Params::parse(q)?.project();
    let views = load(&st, &project).await?;
    Ok(Json(ViewList { project, views }))
}

/// `POST /api/v1/views`: saves a new view (201); a name already used is 409.
pub(super) async fn create_view(
    State(st): State<AppState>,
    caller: Option<axum::Extension<crate::auth::Caller>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<SavedView>), ApiError> {
    let p = Params::parse(q)?;
    let project = p.project();
    let input = checked(json_body(&st, &headers, body, 16 * 1024).await?)?;
    let existing = load(&st, &project).await?;
    if existing.len() >= MAX_VIEWS {
        return Err(ApiError(
            StatusCode::CONFLICT,
            format!(
                "project {project:?} has {MAX_VIEWS} views, the most it may keep; delete one first"
            ),
        ));
    }
    if existing
        .iter()
        .any(|v| v.name.eq_ignore_ascii_case(&input.name))
    {
        return Err(ApiError(
            StatusCode::CONFLICT,
            format!(
                "a view named {:?} exists; save over it with PUT",
                input.name
            ),
        ));
    }
    let view = SavedView {
        id: super::rows::new_id()?,
        name: input.name,
        query: input.query,
        columns: input.columns,
        saved_by: actor(caller.as_deref()),
        saved_ns: now_ns(),
    };
    save(&st, &project, &view).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// `PUT /api/v1/views/{id}`: saves over a view (its name, query and columns).
pub(super) async fn update_view(
    State(st): State<AppState>,
    caller: Option<axum::Extension<crate::auth::Caller>>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<SavedView>, ApiError> {
    let id = view_id(&id)?;
    let p = Params::parse(q)?;
    let project = p.project();
    let input = checked(json_body(&st, &headers, body, 16 * 1024).await?)?;
    let existing = load(&st, &project).await?;
    if !existing.iter().any(|v| v.id == id) {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no view {id} in project {project:?}"),
        ));
    }
    if existing
        .iter()
        .any(|v| v.id != id && v.name.eq_ignore_ascii_case(&input.name))
    {
        return Err(ApiError(
            StatusCode::CONFLICT,
            format!("another view is named {:?}", input.name),
        ));
    }
    let view = SavedView {
        id: id.to_string(),
        name: input.name,
        query: input.query,
        columns: input.columns,
        saved_by: actor(caller.as_deref()),
        saved_ns: now_ns(),
    };
    save(&st, &project, &view).await?;
    Ok(Json(view))
}

/// `GET /api/v1/views/{id}`: one view (what `/?view=ID` opens).
pub(super) async fn get_view(
    State(st): State<AppState>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<SavedView>, ApiError> {
    let id = view_id(&id)?;
    let project = Params::parse(q)?.project();
    let doc = st
        .store
        .load_state(&format!("{}{id}", prefix(&project)))
        .await?
        .ok_or_else(|| {
            ApiError(
                StatusCode::NOT_FOUND,
                format!("no view {id} in project {project:?}"),
            )
        })?;
    serde_json::from_str(&doc).map(Json).map_err(|e| {
        ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("view {id} unreadable: {e}"),
        )
    })
}

/// `DELETE /api/v1/views/{id}`: deletes a view (204).
pub(super) async fn delete_view(
    State(st): State<AppState>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<StatusCode, ApiError> {
    let id = view_id(&id)?;
    let project = Params::parse(q)?.project();
    let key = format!("{}{id}", prefix(&project));
    if st.store.load_state(&key).await?.is_none() {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no view {id} in project {project:?}"),
        ));
    }
    st.store.delete_state(&key).await?;
    Ok(StatusCode::NO_CONTENT)
}
