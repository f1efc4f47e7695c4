//! Who may talk to the server from a browser, and the headers every answer carries.
//!
//! A server on loopback is reachable from any web page the user opens: a page cannot read its
//! answers (no CORS), but it could write traces with a body a browser sends without a
//! preflight, and with DNS rebinding (a host name that resolves to 127.0.0.1) it could read
//! them too. So: requests naming a `Host` other than the server's own names are refused while
//! the server listens on loopback, and a state-changing request from a browser `Origin` that is
//! not the server itself (or explicitly allowed) is refused everywhere.
//!
//! CORS is off unless origins are named (`serve --cors-origin`): a web page of such an origin
//! may call the API (`/api/…`, `/v1/…`) with a key — its preflight is answered, its answers
//! carry `Access-Control-Allow-Origin` — and may change state. Cookies are never offered
//! across origins: the session cookie is `SameSite=Strict`.

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;
use std::sync::Arc;

/// The `Host` and `Origin` policy.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// Host names (no port, lowercase) a request may name; `None`: any.
    hosts: Option<Vec<String>>,
    /// Browser origins (`scheme://host[:port]`, lowercase) allowed to change state besides
    /// the server's own.
    origins: Vec<String>,
    /// Origins whose pages may read the API's answers (CORS); they may change state too.
    cors: Vec<String>,
}

impl Access {
    /// No `Host` check and no extra origins (an embedded router, tests).
    pub fn open() -> Access {
        Access::default()
    }

    /// The policy of a server bound to `http`: on loopback, only its own names (`localhost`,
    /// the loopback addresses, the bound address) and `public_names` are served; elsewhere any
    /// host is, unless `public_names` are given. `origins` may change state from a browser.
    pub fn for_server(http: SocketAddr, public_names: &[String], origins: &[String]) -> Access {
        Access::for_server_with_cors(http, public_names, origins, &[])
    }

    /// [`Access::for_server`], with origins allowed to call the API from their pages (CORS).
    pub fn for_server_with_cors(
        http: SocketAddr,
        public_names: &[String],
        origins: &[String],
        cors: &[String],
    ) -> Access {
        let hosts = if http.ip().is_loopback() || !public_names.is_empty() {
            let mut hosts: Vec<String> = ["localhost", "127.0.0.1", "::1"]
                .into_iter()
                .map(str::to_string)
                .collect();
            hosts.push(http.ip().to_string());
            hosts.extend(public_names.iter().map(|n| n.trim().to_ascii_lowercase()));
            Some(hosts)
        } else {
            None
        };
        let norm = |list: &[String]| -> Vec<String> {
            list.iter()
                .map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase())
                .collect()
        };
        let cors = norm(cors);
        let mut origins = norm(origins);
        origins.extend(cors.iter().cloned());
        Access {
            hosts,
            origins,
            cors,
        }
    }

    /// Whether pages of `origin` may read the API's answers.
    fn cors_allowed(&self, origin: &str) -> bool {
        let origin = origin.trim().to_ascii_lowercase();
        self.cors.contains(&origin)
    }

    fn host_allowed(&self, host: &str) -> bool {
        match &self.hosts {
            None => true,
            Some(allowed) => {
                let name = host_name(host);
                allowed.contains(&name)
            }
        }
    }

    /// An origin is the server itself when it names the host the request was sent to.
    fn origin_allowed(&self, origin: &str, host: Option<&str>) -> bool {
        let origin = origin.trim().to_ascii_lowercase();
        if self.origins.contains(&origin) {
            return true;
        }
        let Some(rest) = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
        else {
            return false; // `null`, `file://`, extensions …
        };
        host.is_some_and(|h| h.eq_ignore_ascii_case(rest)) && self.host_allowed(rest)
    }
}

/// The host name of a `Host` value, without its port (`[::1]:4318` → `::1`).
fn host_name(host: &str) -> String {
    let host = host.trim();
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':')
            .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
            .map_or(host, |(name, _)| name)
    };
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn refuse(why: String) -> Response {
    (
        StatusCode::FORBIDDEN,
        axum::Json(serde_json::json!({ "error": why })),
    )
        .into_response()
}

/// Checks `Host` and `Origin`, then adds the security headers the answer does not set itself.
pub async fn guard(State(access): State<Arc<Access>>, req: Request, next: Next) -> Response {
    // HTTP/2 carries the host in the URI's authority instead of a header.
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.as_str().to_string()));
    if let Some(h) = &host {
        if !access.host_allowed(h) {
            return refuse(format!(
                "host {:?} is not served here: use localhost or 127.0.0.1, or start the server with --public-name {}",
                short(h),
                short(&host_name(h))
            ));
        }
    }
    let path = req.uri().path();
    let api = path.starts_with("/api/") || path.starts_with("/v1/");
    let cors_origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .filter(|o| api && access.cors_allowed(o))
        .map(str::to_string);
    if let (Some(origin), &Method::OPTIONS) = (&cors_origin, req.method()) {
        if req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
        {
            return preflight(origin);
        }
    }
    let changes_state = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if changes_state {
        if let Some(origin) = req.headers().get(header::ORIGIN) {
            let origin = origin.to_str().unwrap_or("null");
            if !access.origin_allowed(origin, host.as_deref()) {
                return refuse(format!(
                    "requests from the web page at {:?} may not change data here (start the server with --allow-origin to allow it)",
                    short(origin)
                ));
            }
        }
    }
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    if let Some(origin) = cors_origin.and_then(|o| HeaderValue::from_str(&o).ok()) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    h.entry(header::X_CONTENT_TYPE_OPTIONS)
        .or_insert(HeaderValue::from_static("nosniff"));
    // The UI's pages set their own policy; everything else (JSON, protobuf, events) is data
    // that must never be rendered as a page or framed.
    h.entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(
            "default-src 'none'; frame-ancestors 'none'",
        ));
    h.entry(header::X_FRAME_OPTIONS)
        .or_insert(HeaderValue::from_static("DENY"));
    h.entry(header::REFERRER_POLICY)
        .or_insert(HeaderValue::from_static("no-referrer"));
    resp
}

/// The answer to a CORS preflight from an allowed origin: the API's methods and the headers
/// its clients send (a key, JSON, a project), for ten minutes.
fn preflight(origin: &str) -> Response {
    let mut resp = StatusCode::NO_CONTENT.into_response();
    let h = resp.headers_mut();
    if let Ok(o) = HeaderValue::from_str(origin) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
    }
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, PUT, DELETE"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(
            "authorization, x-api-key, content-type, content-encoding, x-project-name",
        ),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
    resp
}

/// At most 100 characters of an untrusted header, for an error message.
fn short(s: &str) -> String {
    let mut out: String = s.chars().take(100).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loopback() -> Access {
        Access::for_server(
            SocketAddr::from(([127, 0, 0, 1], 4318)),
            &["spanlens.internal".into()],
            &["https://dash.example.com/".into()],
        )
    }

    #[test]
    fn host_names_are_read_without_their_port() {
        assert_eq!(host_name("localhost:4318"), "localhost");
        assert_eq!(host_name("[::1]:4318"), "::1");
        assert_eq!(host_name("Example.COM."), "example.com");
        assert_eq!(host_name("127.0.0.1"), "127.0.0.1");
    }

    #[test]
    fn loopback_serves_only_its_own_names() {
        let a = loopback();
        for ok in [
            "localhost:4318",
            "127.0.0.1:4318",
            "[::1]:4318",
            "spanlens.internal",
        ] {
            assert!(a.host_allowed(ok), "{ok}");
        }
        for bad in [
            "evil.example:4318",
            "127.0.0.1.nip.io",
            "localhost.evil.com",
        ] {
            assert!(!a.host_allowed(bad), "{bad}");
        }
        let public = Access::for_server(SocketAddr::from(([0, 0, 0, 0], 4318)), &[], &[]);
        assert!(public.host_allowed("anything.example"));
    }

    #[test]
    fn only_the_server_itself_and_allowed_origins_change_state() {
        let a = loopback();
        assert!(a.origin_allowed("http://127.0.0.1:4318", Some("127.0.0.1:4318")));
        assert!(a.origin_allowed("https://dash.example.com", Some("127.0.0.1:4318")));
        assert!(!a.origin_allowed("http://evil.example", Some("127.0.0.1:4318")));
        assert!(!a.origin_allowed("null", Some("127.0.0.1:4318")));
        // Same host, other port: another origin.
        assert!(!a.origin_allowed("http://127.0.0.1:8080", Some("127.0.0.1:4318")));
        // A rebound name matching its own Host is still not one of ours.
        assert!(!a.origin_allowed("http://evil.example:4318", Some("evil.example:4318")));
    }
}
