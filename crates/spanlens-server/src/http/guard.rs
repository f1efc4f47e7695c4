//! The HTTP side of `--auth required`: which scope each route needs, the key check, and the
//! binding of the call to the key's project (its `project` query parameter, its path, and
//! the project ingest writes to).

use super::error::ApiError;
use crate::auth::{credential, Caller, Denied};
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
        "openapi.json" => return None,
        "scores" if *method == Method::POST => Scope::Ingest,
        // Alert rules hold webhook addresses; keys and settings are an admin's.
        _ if api == "alerts" || api == "keys" || api.starts_with("keys/") => Scope::Admin,
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

/// Checks the caller's key against the route and binds the request to the key's project.
pub(crate) async fn guard(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    let Some(needs) = needed(req.method(), req.uri().path()) else {
        return next.run(req).await;
    };
    let presented = {
        let text = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
        credential(text("authorization"), text("x-api-key"))
    };
    let key = match st.auth().check(presented, needs).await {
        Ok(key) => key,
        Err(d) => return refuse(&d),
    };
    if let Some(key) = &key {
        if let Err(d) = bind(key, &mut req) {
            return refuse(&d);
        }
    }
    req.extensions_mut().insert(Caller(key));
    next.run(req).await
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
    let path = req.uri().path().to_string();
    if let Some(rest) = path.strip_prefix("/api/v1/projects/") {
        let named = rest.split('/').next().unwrap_or("");
        let named = percent_encoding::percent_decode_str(named).decode_utf8_lossy();
        if named != own {
            return Err(Denied::project(key, &named));
        }
    }
    let query = req.uri().query().unwrap_or("");
    // A query that does not parse is left as it is: the route refuses it the same way.
    let Ok(mut pairs) = serde_urlencoded::from_str::<Vec<(String, String)>>(query) else {
        return Ok(());
    };
    if let Some((_, other)) = pairs.iter().find(|(k, v)| k == "project" && v != own) {
        return Err(Denied::project(key, other));
    }
    pairs.retain(|(k, _)| k != "project");
    pairs.push(("project".into(), own.to_string()));
    let query = serde_urlencoded::to_string(&pairs).unwrap_or_default();
    let mut parts = req.uri().clone().into_parts();
    let path_and_query = format!("{path}?{query}");
    parts.path_and_query = path_and_query.parse().ok();
    if let Ok(uri) = Uri::from_parts(parts) {
        *req.uri_mut() = uri;
    }
    Ok(())
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
            (&get, "/api/v1/alerts", Some(Scope::Admin)),
            (&get, "/api/v1/keys", Some(Scope::Admin)),
            (&Method::DELETE, "/api/v1/keys/abc", Some(Scope::Admin)),
            (&get, "/api/v1/projects/p/redaction", Some(Scope::Admin)),
            (&Method::DELETE, "/api/v1/traces/abc", Some(Scope::Admin)),
            (&get, "/api/v1/openapi.json", None),
            (&get, "/healthz", None),
            (&get, "/", None),
            (&get, "/assets/app.js", None),
        ] {
            assert_eq!(needed(m, p), want, "{m} {p}");
        }
    }
}
