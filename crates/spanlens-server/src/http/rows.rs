//! Wire shapes shared by several resources: the trace-list row and a trace id from a path.

use super::error::{bad, ApiError};
use serde_json::{json, Value};
use spanlens_core::TraceId;
use spanlens_store::TraceSummary;

/// A trace-list row with the field names the API promises (see openapi.json, TraceRow).
pub(super) fn trace_row(t: &TraceSummary) -> Value {
    json!({
        "trace_id": t.trace_id,
        "project": t.project,
        "name": t.name,
        "start_time": t.start_time,
        "end_time": t.end_time,
        "duration_ms": t.duration_ns as f64 / 1e6,
        "status": t.status,
        "span_count": t.span_count,
        "error_count": t.error_count,
        "input_tokens": t.input_tokens,
        "output_tokens": t.output_tokens,
        "total_tokens": t.total_tokens,
        "total_cost_usd": t.total_cost.as_usd_f64(),
        "total_cost_nano_usd": t.total_cost.0,
        "unpriced_span_count": t.unpriced_span_count,
        "user_id": t.user_id,
        "session_id": t.session_id,
        "tags": t.tags,
        "root_span_id": t.root_span_id,
        "service": t.service,
    })
}

pub(super) fn trace_id(raw: &str) -> Result<TraceId, ApiError> {
    TraceId::from_hex(raw).map_err(|e| bad("trace_id", raw, &e.to_string()))
}
