//! Signing in to the UI: `/api/v1/session` (who the browser is, sign in, sign out) and
//! `/api/v1/accounts` (the people of a project, managed by its admins).
//!
//! A session is a random token in an `HttpOnly`, `SameSite=Strict` cookie (`Secure` when the
//! request came through a TLS proxy that says so with `X-Forwarded-Proto: https`); its CSRF
//! token is given to the page by `GET /api/v1/session` and must come back in `x-csrf-token`
//! on every state-changing request. Failed sign-ins are limited per account name and per
//! client address (429 with `Retry-After`).

use super::admin::{json_body, project_name};
use super::error::ApiError;
use super::guard::{cookie, SESSION_COOKIE};
use super::keys::{directory, failed, managed};
use super::params::Params;
use crate::auth::Caller;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use spanlens_api::{AccountsAnswer, CreateAccount, SetRole, SignIn, SignInState};
use std::net::SocketAddr;

fn answer(
    st: &AppState,
    session: Option<(&spanlens_auth::Session, &spanlens_auth::Account)>,
) -> SignInState {
    SignInState {
        auth: if st.auth().required() {
            "required"
        } else {
            "off"
        }
        .into(),
        account: session.map(|(_, a)| a.name.clone()),
        roles: session.map(|(_, a)| a.roles.clone()).unwrap_or_default(),
        csrf: session.map(|(s, _)| s.csrf.clone()),
    }
}

fn denied(d: crate::auth::Denied) -> ApiError {
    ApiError(
        StatusCode::from_u16(d.status()).unwrap_or(StatusCode::FORBIDDEN),
        d.to_string(),
    )
}

/// `GET /api/v1/session`: the signed-in account, its roles and CSRF token (all empty when
/// not signed in).
pub(super) async fn get_session(
    State(st): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<SignInState>, ApiError> {
    let Some(token) = cookie(&headers, SESSION_COOKIE) else {
        return Ok(Json(answer(&st, None)));
    };
    let Some(session) = st.auth().session(token).await.map_err(denied)? else {
        return Ok(Json(answer(&st, None)));
    };
    let account = st.auth().account(&session.account).await.map_err(denied)?;
    Ok(Json(answer(&st, account.as_deref().map(|a| (&session, a)))))
}

/// The session cookie: `HttpOnly`, `SameSite=Strict`, whole site, `Secure` behind TLS.
fn session_cookie(headers: &HeaderMap, token: &str, max_age_s: i64) -> HeaderValue {
    let tls = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"));
    let secure = if tls { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_s}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("spanlens_session=; Path=/; Max-Age=0"))
}

/// `POST /api/v1/session`: signs in with a name and password.
pub(super) async fn sign_in(
    State(st): State<AppState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    if !st.auth().required() {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "this server runs with --auth off: there is nothing to sign in to".into(),
        ));
    }
    let ask: SignIn = json_body(&st, &headers, body, 16 * 1024).await?;
    let ip = peer.map(|Extension(ConnectInfo(a))| a.ip());
    if let Some(wait) = st.auth().sign_in_wait(&ask.name, ip) {
        let mut resp = ApiError(
            StatusCode::TOO_MANY_REQUESTS,
            format!("too many failed sign-ins: try again in {wait} s"),
        )
        .into_response();
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(wait));
        return Ok(resp);
    }
    let signed = directory(&st)?
        .sign_in(&ask.name, &ask.password)
        .await
        .map_err(failed)?;
    let Some((token, session)) = signed else {
        st.auth().sign_in_failed(&ask.name, ip);
        tracing::info!(account = %ask.name.chars().take(64).collect::<String>(), peer = ?ip, "sign-in refused");
        return Err(ApiError(
            StatusCode::UNAUTHORIZED,
            "wrong name or password".into(),
        ));
    };
    st.auth().forget_session(None, Some(&session.account));
    let account = st.auth().account(&session.account).await.map_err(denied)?;
    tracing::info!(account = %session.account, "signed in");
    let max_age = spanlens_auth::accounts::SESSION_TTL_NS / 1_000_000_000;
    let mut resp = Json(answer(&st, account.as_deref().map(|a| (&session, a)))).into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        session_cookie(&headers, &token, max_age),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// `DELETE /api/v1/session`: signs out (the session ends on every server).
pub(super) async fn sign_out(
    State(st): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(token) = cookie(&headers, SESSION_COOKIE) {
        if let Ok(dir) = directory(&st) {
            dir.sign_out(token).await.map_err(failed)?;
        }
        st.auth().forget_session(Some(token), None);
    }
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut()
        .insert(header::SET_COOKIE, session_cookie(&headers, "", 0));
    Ok(resp)
}

/// An account as a call bound to one project sees it: its role there only (an account is
/// server-wide; its roles in other projects are theirs).
fn only_bound(
    mut a: spanlens_api::AccountView,
    caller: &Option<Extension<Caller>>,
) -> spanlens_api::AccountView {
    if let Some(own) = caller.as_ref().and_then(|c| c.project()) {
        a.roles.retain(|p, _| p == own);
    }
    a
}

/// `GET /api/v1/accounts`: the people with a role in the project.
pub(super) async fn list_accounts(
    State(st): State<AppState>,
    caller: Option<Extension<Caller>>,
    RawQuery(q): RawQuery,
) -> Result<Json<AccountsAnswer>, ApiError> {
    let p = Params::parse(q)?;
    let project = managed(&caller, p.string(&["project"]));
    let accounts = directory(&st)?
        .accounts(project.as_deref())
        .await
        .map_err(failed)?
        .into_iter()
        .map(|a| only_bound(a, &caller))
        .collect();
    Ok(Json(AccountsAnswer { accounts }))
}

/// `POST /api/v1/accounts`: adds a person with a role in the project (201).
pub(super) async fn create_account(
    State(st): State<AppState>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<spanlens_api::AccountView>), ApiError> {
    let ask: CreateAccount = json_body(&st, &headers, body, 16 * 1024).await?;
    let bound = caller
        .as_ref()
        .and_then(|c| c.project())
        .map(str::to_string);
    if let (Some(own), Some(other)) = (&bound, &ask.project) {
        if own != other {
            return Err(ApiError(
                StatusCode::FORBIDDEN,
                format!("this call is bound to project {own:?} and cannot add people to {other:?}"),
            ));
        }
    }
    let project = managed(&caller, ask.project.clone()).ok_or_else(|| {
        ApiError(
            StatusCode::BAD_REQUEST,
            "name the project: {\"project\": …}".into(),
        )
    })?;
    project_name(&project)?;
    let made = directory(&st)?
        .create_account(&ask.name, &ask.password, &project, ask.role)
        .await
        .map_err(failed)?;
    let made = only_bound(made, &caller);
    tracing::info!(account = %made.name, project, role = ask.role.name(), "account made");
    st.audit(
        caller.as_deref(),
        &project,
        "account.create",
        &made.name,
        serde_json::json!({"role": ask.role}),
    )
    .await;
    Ok((StatusCode::CREATED, Json(made)))
}

/// `PUT /api/v1/accounts/{name}`: sets or removes a person's role in the project.
pub(super) async fn set_role(
    State(st): State<AppState>,
    caller: Option<Extension<Caller>>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<spanlens_api::AccountView>, ApiError> {
    let p = Params::parse(q)?;
    let ask: SetRole = json_body(&st, &headers, body, 16 * 1024).await?;
    let project = managed(&caller, p.string(&["project"])).ok_or_else(|| {
        ApiError(
            StatusCode::BAD_REQUEST,
            "name the project: ?project=…".into(),
        )
    })?;
    let view = directory(&st)?
        .set_role(&name, &project, ask.role)
        .await
        .map_err(failed)?;
    let view = only_bound(view, &caller);
    st.auth().forget_session(None, Some(&name));
    tracing::info!(account = %name, project, role = ?ask.role, "role changed");
    st.audit(
        caller.as_deref(),
        &project,
        "account.role",
        &name,
        serde_json::json!({"role": ask.role}),
    )
    .await;
    Ok(Json(view))
}
