//! `GET /api/v1/media/{hash}`: a medium taken out of span payloads (#19 item 9), by the hash
//! a span's `spanlens-media:sha256:<hash>` reference names, from the caller's project only.
//!
//! The bytes are a user's upload: served with their sniffed type (only raster images and
//! audio are ever stored), never sniffed again by the browser, and sandboxed so that opened
//! on its own the answer runs nothing.

use super::error::ApiError;
use super::params::Params;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use spanlens_store::is_media_hash;

/// The stored medium with this hash, in the caller's project.
pub(super) async fn get_media(
    State(st): State<AppState>,
    Path(hash): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let p = Params::parse(q)?;
    if !is_media_hash(&hash) {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!(
                "invalid media hash {:?}: expected 64 lowercase hex digits (SHA-256)",
                hash.chars().take(80).collect::<String>()
            ),
        ));
    }
    let project = p.project();
    let media = st
        .store
        .get_media(&project, &hash)
        .await?
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no media {hash}")))?;
    // Stored types are sniffed ones (`spanlens_core::media::sniff`); anything else is sent as
    // bytes to download, never as what it claims.
    let mime = match spanlens_core::media::sniff(&media.bytes) {
        Some(sniffed) if sniffed == media.mime => sniffed,
        _ => "application/octet-stream",
    };
    let mut resp = Response::new(Body::from(media.bytes));
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox; default-src 'none'"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=31536000, immutable"),
    );
    Ok(resp)
}
