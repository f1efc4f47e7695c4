//! The HTTP side of `--auth required`: which scope each route needs, the key check, and the
//! binding of the call to the key's project (its `project` query parameter, its path, and
//! the project ingest writes to).

use super::error::ApiError;
use crate::auth::{credential, Caller, Denied, Who};
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use spanlens_auth::{ApiKey, Scope};

/// The scope a route needs; `None`: open to anyone (the UI's pages and assets, which hold no
/// data, the health check and the API document).
pub(crate) fn needed(method: &Method, path: &str) -> Option<Scope> {
    if path.starts_with("/v1/") || path.starts_with("/api/public/") {
        return Some(Scope::Ingest);
    }
    let api = path.strip_prefix("/api/v1/")?;
    let reading = matches!(*method, Method::GET | Method::HEAD);
    Some(match api {
        "openapi.json" | "session" => return None,
        "scores" if *method == Method::POST => Scope::Ingest,
        // A replay calls a paid model and stores a trace: a member's, like sending spans.
        "replay" if *method == Method::POST => Scope::Ingest,
        // Saved views are the team's working state, not settings: members save them.
        _ if (api == "views" || api.starts_with("views/")) && !reading => Scope::Ingest,
        // Review queues too: members make them and review; viewers see them and their progress.
        _ if (api == "queues" || api.starts_with("queues/")) && !reading => Scope::Ingest,
        // Keys, people, settings and the audit log are an admin's.
        _ if api == "keys" || api.starts_with("keys/") => Scope::Admin,
        _ if api == "accounts" || api.starts_with("accounts/") || api == "audit" => Scope::Admin,
        _ if api.starts_with("projects/") => Scope::Admin,
        _ if reading => Scope::Read,
        _ => Scope::Admin,
    })
}

fn refuse(d: &Denied) -> Response {
    let status = StatusCode::from_u16(d.status()).unwrap_or(StatusCode::FORBIDDEN);
    let mut resp = ApiError(status, d.to_string()).into_response();
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"spanlens\""),
        );
    }
    resp
}

/// The cookie that holds a UI session's token.
pub(crate) const SESSION_COOKIE: &str = "spanlens_session";

/// The value of cookie `name` in a request's `Cookie` headers.
pub(crate) fn cookie<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// Routes every signed-in account may use whatever its roles: they hold no project's data.
fn unscoped(path: &str) -> bool {
    matches!(path, "/api/v1/projects" | "/api/v1/models")
}

/// Checks the caller (an API key, else a UI session) against the route and binds the request
/// to one project: the key's, or for a session the one it names (its role there must allow
/// the route).
pub(crate) async fn guard(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    let Some(needs) = needed(req.method(), req.uri().path()) else {
        return next.run(req).await;
    };
    if !st.auth().required() {
        req.extensions_mut().insert(Caller::default());
        return next.run(req).await;
    }
    let (presented, session) = {
        let text = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
        (
            credential(text("authorization"), text("x-api-key")),
            cookie(req.headers(), SESSION_COOKIE).map(str::to_string),
        )
    };
    let caller = match (presented, session) {
        (None, Some(token)) => signed_in(&st, &token, needs, &mut req).await,
        (presented, _) => match st.auth().check(presented, needs).await {
            Ok(Some(key)) => bind(&key, &mut req).map(|()| Caller::key(key)),
            Ok(None) => Ok(Caller::default()),
            Err(d) => Err(d),
        },
    };
    match caller {
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Err(d) => refuse(&d),
    }
}

/// A UI session's call: the session must be live, a state-changing request must carry its
/// CSRF token, and the account's role in the project the request names (`default` when it
/// names none) must allow `needs`.
async fn signed_in(
    st: &AppState,
    token: &str,
    needs: Scope,
    req: &mut Request,
) -> Result<Caller, Denied> {
    let auth = st.auth();
    let session = auth.session(token).await?.ok_or(Denied::SignedOut)?;
    if !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        let sent = req
            .headers()
            .get("x-csrf-token")
            .map(|v| v.as_bytes())
            .unwrap_or(b"");
        if !bool::from(subtle::ConstantTimeEq::ct_eq(sent, session.csrf.as_bytes())) {
            return Err(Denied::Csrf);
        }
    }
    let account = auth
        .account(&session.account)
        .await?
        .ok_or(Denied::SignedOut)?;
    let project = named_project(req).unwrap_or_else(|| spanlens_store::DEFAULT_PROJECT.to_string());
    if !unscoped(req.uri().path()) && !account.allows(&project, needs) {
        return Err(Denied::Role {
            account: account.name.clone(),
            needs,
            project,
        });
    }
    set_project(req, &project);
    Ok(Caller {
        who: Who::Account(account),
        project: Some(project),
    })
}

/// The project a request names: in its path, its `project` parameter (the last one, as the
/// routes read it) or its `x-project-name` header.
fn named_project(req: &Request) -> Option<String> {
    if let Some(rest) = req.uri().path().strip_prefix("/api/v1/projects/") {
        let named = rest.split('/').next().unwrap_or("");
        return Some(
            percent_encoding::percent_decode_str(named)
                .decode_utf8_lossy()
                .into_owned(),
        );
    }
    let query = req.uri().query().unwrap_or("");
    let from_query = serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .ok()
        .and_then(|pairs| {
            pairs
                .into_iter()
                .rev()
                .find(|(k, v)| k == "project" && !v.is_empty())
                .map(|(_, v)| v)
        });
    from_query.or_else(|| {
        req.headers()
            .get("x-project-name")
            .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_string())
            .filter(|p| !p.is_empty())
    })
}

/// Makes `req` reach `key`'s project only: a different `x-project-name`, `project` parameter
/// or project in the path is refused; a missing parameter is set to the key's project.
fn bind(key: &ApiKey, req: &mut Request) -> Result<(), Denied> {
    let own = key.project.as_str();
    if let Some(named) = req.headers().get("x-project-name") {
        let named = String::from_utf8_lossy(named.as_bytes());
        if named.trim() != own && !named.trim().is_empty() {
            return Err(Denied::project(key, named.trim()));
        }
    }
    if let Some(rest) = req.uri().path().strip_prefix("/api/v1/projects/") {
        let named = rest.split('/').next().unwrap_or("");
        let named = percent_encoding::percent_decode_str(named).decode_utf8_lossy();
        if named != own {
            return Err(Denied::project(key, &named));
        }
    }
    let query = req.uri().query().unwrap_or("");
    if let Ok(pairs) = serde_urlencoded::from_str::<Vec<(String, String)>>(query) {
        if let Some((_, other)) = pairs.iter().find(|(k, v)| k == "project" && v != own) {
            return Err(Denied::project(key, other));
        }
    }
    set_project(req, own);
    Ok(())
}

/// Sets the request's `project` parameter to `project` alone. A query that does not parse is
/// left as it is: the route refuses it the same way.
fn set_project(req: &mut Request, project: &str) {
    let query = req.uri().query().unwrap_or("");
    let Ok(mut pairs) = serde_urlencoded::from_str::<Vec<(String, String)>>(query) else {
        return;
    };
    pairs.retain(|(k, _)| k != "project");
    pairs.push(("project".into(), project.to_string()));
    let query = serde_urlencoded::to_string(&pairs).unwrap_or_default();
    let mut parts = req.uri().clone().into_parts();
    parts.path_and_query = format!("{}?{query}", req.uri().path()).parse().ok();
    if let Ok(uri) = Uri::from_parts(parts) {
        *req.uri_mut() = uri;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_route_needs_its_scope() {
        let get = Method::GET;
        let post = Method::POST;
        for (m, p, want) in [
            (&post, "/v1/traces", Some(Scope::Ingest)),
            (&post, "/api/public/otel/v1/traces", Some(Scope::Ingest)),
            (&post, "/v1/logs", Some(Scope::Ingest)),
            (&post, "/api/v1/scores", Some(Scope::Ingest)),
            (&get, "/api/v1/scores", Some(Scope::Read)),
            (&get, "/api/v1/traces", Some(Scope::Read)),
            (&get, "/api/v1/live", Some(Scope::Read)),
            (&get, "/api/v1/alerts", Some(Scope::Read)),
            (&get, "/api/v1/keys", Some(Scope::Admin)),
            (&Method::DELETE, "/api/v1/keys/abc", Some(Scope::Admin)),
            (&get, "/api/v1/projects/p/redaction", Some(Scope::Admin)),
            (&Method::DELETE, "/api/v1/traces/abc", Some(Scope::Admin)),
            (&get, "/api/v1/openapi.json", None),
            (&post, "/api/v1/replay", Some(Scope::Ingest)),
            (&get, "/api/v1/replay/endpoints", Some(Scope::Read)),
            (&post, "/api/v1/session", None),
            (&get, "/api/v1/accounts", Some(Scope::Admin)),
            (&get, "/api/v1/audit", Some(Scope::Admin)),
            (&get, "/healthz", None),
            (&get, "/", None),
            (&get, "/assets/app.js", None),
        ] {
            assert_eq!(needed(m, p), want, "{m} {p}");
        }
    }
}
