//! Ids from a path, and new ids, shared by several resources.

use super::error::{bad, ApiError};
use axum::http::StatusCode;
use spanlens_core::TraceId;

pub(super) fn trace_id(raw: &str) -> Result<TraceId, ApiError> {
    TraceId::from_hex(raw).map_err(|e| bad("trace_id", raw, &e.to_string()))
}

/// A new id for a stored document (a saved view, a review queue, a claim): 16 random hex digits.
pub(super) fn new_id() -> Result<String, ApiError> {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).map_err(|e| {
        ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("no randomness for an id: {e}"),
        )
    })?;
    Ok(hex::encode(b))
}

/// An id made by [`new_id`], from the path parameter `param`; anything else is refused naming
/// `what` it should have been.
pub(super) fn doc_id<'a>(raw: &'a str, param: &str, what: &str) -> Result<&'a str, ApiError> {
    if raw.len() == 16 && raw.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(raw)
    } else {
        Err(bad(param, raw, &format!("a {what} id is 16 hex digits")))
    }
}
