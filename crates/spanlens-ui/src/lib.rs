//! The Spanlens web UI: the static assets (ES modules, CSS, an SVG icon) compiled into the
//! binary, and the router that serves them, so `spanlens serve` needs no files on disk and no
//! build step.
//!
//! Every page path returns the same HTML shell; the client routes with the history API. The
//! server's API routes are separate paths, so merging this router never shadows them.
//!
//! Every UI response carries a strict Content-Security-Policy ([`CSP`]): scripts, styles and
//! everything else only from this origin, no inline script or style, no framing. The UI shows
//! names, ids and payloads from ingested spans, which anyone who can send spans controls; the
//! pages put them into the DOM as text, and the policy is the second wall should one ever be
//! parsed as markup.

use axum::body::Body;
use axum::extract::Path;
use axum::http::{
    header, response::Builder, HeaderMap, HeaderName, HeaderValue, Response, StatusCode,
};
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
    asset!("compare.js", JS),
    asset!("span.js", JS),
    asset!("sessions.js", JS),
    asset!("dashboard.js", JS),
    asset!("live.js", JS),
    asset!("reliability.js", JS),
    asset!("scores.js", JS),
    asset!("charts.js", JS),
    asset!("login.js", JS),
    asset!("admin.js", JS),
    asset!("graph.js", JS),
    asset!("replay.js", JS),
    asset!("queues.js", JS),
    asset!("prompts.js", JS),
    asset!("media.js", JS),
    asset!("whatif.js", JS),
    asset!("favicon.svg", "image/svg+xml"),
];

/// The HTML shell every page path answers with.
const INDEX_HTML: &[u8] = include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/index.html"));

/// Page paths of the client-side router (the shell is served for each).
pub const PAGES: &[&str] = &[
    "/",
    "/traces/{trace_id}",
    "/compare",
    "/sessions",
    "/sessions/{session_id}",
    "/dashboard",
    "/reliability",
    "/live",
    "/login",
    "/admin",
    "/graph",
    "/queues",
    "/queues/{queue_id}",
    "/prompts",
];

/// The router serving the UI pages and `/assets/...`; merge it into the API router.
pub fn router() -> Router {
    let mut r = Router::new();
    for page in PAGES {
        r = r.route(page, get(index));
    }
    r.route("/assets/{*path}", get(asset))
}

/// The Content-Security-Policy of every UI response. `img-src data:` is for images the browser
/// itself draws from data URLs (none of the pages' own), `connect-src 'self'` covers the API
/// calls and the live view's event stream, `media-src 'self'` the audio of span media.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; media-src 'self'; connect-src 'self'; font-src 'self'; \
    manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The security headers of every UI response, whatever its status.
const SECURITY_HEADERS: [(HeaderName, &str); 4] = [
    (header::CONTENT_SECURITY_POLICY, CSP),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::REFERRER_POLICY, "no-referrer"),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
];

/// A response builder that already carries [`SECURITY_HEADERS`].
fn secured() -> Builder {
    SECURITY_HEADERS
        .iter()
        .fold(Response::builder(), |b, (name, value)| {
            b.header(name, *value)
        })
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
    let builder = secured()
        .header(header::CACHE_CONTROL, "no-cache")
        .header(header::ETAG, &tag);
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
        None => secured()
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

    /// Every kind of UI response — each page path, each asset, each asset's 304 and an unknown
    /// asset's 404 — carries the CSP and the other security headers.
    #[tokio::test]
    async fn every_response_carries_the_security_headers() {
        use tower::ServiceExt;
        async fn get(uri: &str, if_none_match: Option<&str>) -> Response<Body> {
            let mut req = axum::http::Request::get(uri);
            if let Some(tag) = if_none_match {
                req = req.header(header::IF_NONE_MATCH, tag);
            }
            router()
                .oneshot(req.body(Body::empty()).unwrap())
                .await
                .unwrap()
        }
        let mut checked = Vec::new();
        let pages = PAGES.iter().map(|p| {
            p.replace("{trace_id}", "5c415c415c415c415c415c415c415c41")
                .replace("{session_id}", "javascript%3Aalert(1)")
        });
        for uri in pages.chain(ASSETS.iter().map(|a| format!("/assets/{}", a.path))) {
            let fresh = get(&uri, None).await;
            assert_eq!(fresh.status(), StatusCode::OK, "{uri}");
            let tag = fresh.headers()[header::ETAG].to_str().unwrap().to_string();
            let cached = get(&uri, Some(&tag)).await;
            assert_eq!(cached.status(), StatusCode::NOT_MODIFIED, "{uri}");
            checked.push((uri.clone(), fresh));
            checked.push((format!("{uri} (304)"), cached));
        }
        let missing = get("/assets/no-such-file.js", None).await;
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        checked.push(("/assets/no-such-file.js".into(), missing));
        for (uri, resp) in &checked {
            for (name, want) in [
                ("content-security-policy", CSP),
                ("x-frame-options", "DENY"),
                ("referrer-policy", "no-referrer"),
                ("x-content-type-options", "nosniff"),
            ] {
                assert_eq!(
                    resp.headers().get(name).and_then(|v| v.to_str().ok()),
                    Some(want),
                    "{name} of {uri}"
                );
            }
        }
        assert_eq!(
            CSP,
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             media-src 'self'; connect-src 'self'; font-src 'self'; manifest-src 'self'; \
             base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
        );
    }

    /// The shell loads only same-origin files and has nothing inline that the CSP would block.
    #[test]
    fn the_shell_needs_nothing_inline() {
        let html = std::str::from_utf8(INDEX_HTML).unwrap().to_lowercase();
        assert_eq!(html.matches("<script").count(), 1);
        assert!(html.contains(r#"<script type="module" src="/assets/app.js"></script>"#));
        for forbidden in ["<style", "style=", "javascript:"] {
            assert!(!html.contains(forbidden), "index.html has {forbidden:?}");
        }
        // Event handler attributes: a word `on…=` anywhere in a tag.
        let handlers: Vec<&str> = html
            .split(|c: char| c.is_whitespace() || c == '<')
            .filter(|w| {
                w.split_once('=').is_some_and(|(name, _)| {
                    name.len() > 2
                        && name.starts_with("on")
                        && name.chars().all(|c| c.is_ascii_alphabetic())
                })
            })
            .collect();
        assert!(handlers.is_empty(), "index.html has {handlers:?}");
    }

    #[test]
    fn etag_changes_with_content() {
        assert_eq!(etag(b"a"), etag(b"a"));
        assert_ne!(etag(b"a"), etag(b"b"));
    }
}
