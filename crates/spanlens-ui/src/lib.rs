//! The Spanlens web UI: the static assets (ES modules, CSS, an SVG icon) compiled into the
//! binary, and the router that serves them, so `spanlens serve` needs no files on disk and no
//! build step.
//!
//! Every page path returns the same HTML shell; the client routes with the history API. The
//! server's API routes are separate paths, so merging this router never shadows them.

use axum::body::Body;
use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use axum::routing::get;
use axum::Router;
use std::borrow::Cow;

/// One embedded file.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $ct:expr) => {
        Asset {
            path: $path,
            content_type: $ct,
            body: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/", $path)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Everything under `/assets/`.
const ASSETS: &[Asset] = &[
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("format.js", JS),
    asset!("dom.js", JS),
    asset!("traces.js", JS),
    asset!("trace.js", JS),
    asset!("span.js", JS),
    asset!("sessions.js", JS),
    asset!("dashboard.js", JS),
    asset!("live.js", JS),
    asset!("reliability.js", JS),
    asset!("scores.js", JS),
    asset!("charts.js", JS),
    asset!("favicon.svg", "image/svg+xml"),
];

/// The HTML shell every page path answers with.
const INDEX_HTML: &[u8] = include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/index.html"));

/// Page paths of the client-side router (the shell is served for each).
pub const PAGES: &[&str] = &[
    "/",
    "/traces/{trace_id}",
    "/sessions",
    "/sessions/{session_id}",
    "/dashboard",
    "/reliability",
    "/live",
];

/// The router serving the UI pages and `/assets/...`; merge it into the API router.
pub fn router() -> Router {
    let mut r = Router::new();
    for page in PAGES {
        r = r.route(page, get(index));
    }
    r.route("/assets/{*path}", get(asset))
}

/// A strong validator for `bytes` (FNV-1a), so browsers revalidate cheaply with `If-None-Match`
/// and never keep a stale file after the binary is upgraded.
fn etag(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("\"{h:016x}-{}\"", bytes.len())
}

/// A 200 with the body, or a 304 when the client already holds this version.
fn respond(
    headers: &HeaderMap,
    content_type: &'static str,
    body: Cow<'static, [u8]>,
) -> Response<Body> {
    let tag = etag(&body);
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag));
    let builder = Response::builder()
        .header(header::CACHE_CONTROL, "no-cache")
        .header(header::ETAG, &tag)
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    let resp = if fresh {
        builder.status(StatusCode::NOT_MODIFIED).body(Body::empty())
    } else {
        builder
            .header(header::CONTENT_TYPE, HeaderValue::from_static(content_type))
            .body(Body::from(body))
    };
    // The parts above are static and valid, so building cannot fail.
    resp.unwrap_or_else(|_| Response::new(Body::empty()))
}

/// For UI development only: with `SPANLENS_UI_DIR` set to the assets folder, files are read
/// from there on every request, so an edit shows on reload without rebuilding the binary.
fn from_dev_dir(path: &str) -> Option<Cow<'static, [u8]>> {
    let dir = std::env::var_os("SPANLENS_UI_DIR")?;
    std::fs::read(std::path::Path::new(&dir).join(path))
        .ok()
        .map(Cow::Owned)
}

async fn index(headers: HeaderMap) -> Response<Body> {
    let body = from_dev_dir("index.html").unwrap_or(Cow::Borrowed(INDEX_HTML));
    respond(&headers, "text/html; charset=utf-8", body)
}

async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response<Body> {
    match ASSETS.iter().find(|a| a.path == path) {
        Some(a) => respond(
            &headers,
            a.content_type,
            from_dev_dir(a.path).unwrap_or(Cow::Borrowed(a.body)),
        ),
        None => Response::builder()
            .status(StatusCode::NOT_FOUND)
            .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(Body::from(format!("no asset {path:?}")))
            .unwrap_or_else(|_| Response::new(Body::empty())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_embedded_and_typed() {
        for a in ASSETS {
            assert!(!a.body.is_empty(), "{} is empty", a.path);
            let ext = a.path.rsplit('.').next().unwrap();
            let expected = match ext {
                "js" => "text/javascript",
                "css" => "text/css",
                "svg" => "image/svg+xml",
                _ => "text/plain",
            };
            assert!(a.content_type.starts_with(expected), "{}", a.path);
        }
        assert!(std::str::from_utf8(INDEX_HTML)
            .unwrap()
            .contains("/assets/app.js"));
    }

    #[test]
    fn every_module_import_names_an_embedded_asset() {
        for a in ASSETS.iter().filter(|a| a.path.ends_with(".js")) {
            let text = std::str::from_utf8(a.body).unwrap();
            for line in text.lines().filter(|l| l.starts_with("import ")) {
                let Some(spec) = line.split(['"', '\'']).nth(1) else {
                    continue;
                };
                let target = spec.trim_start_matches("./");
                assert!(
                    ASSETS.iter().any(|b| b.path == target),
                    "{} imports {spec}, which is not embedded",
                    a.path
                );
            }
        }
    }

    #[test]
    fn etag_changes_with_content() {
        assert_eq!(etag(b"a"), etag(b"a"));
        assert_ne!(etag(b"a"), etag(b"b"));
    }
}
