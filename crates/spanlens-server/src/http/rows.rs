//! A trace id from a path, shared by several resources.

use super::error::{bad, ApiError};
use spanlens_core::TraceId;

pub(super) fn trace_id(raw: &str) -> Result<TraceId, ApiError> {
    TraceId::from_hex(raw).map_err(|e| bad("trace_id", raw, &e.to_string()))
}
