//! OTLP/JSON spans built by hand, for the tests that post traces and check figures worked out
//! from them.
#![allow(dead_code)]

use serde_json::{json, Value};

/// Nanoseconds in a millisecond.
pub const MS: u64 = 1_000_000;

/// An OTLP attribute: a string or an integer.
pub fn kv(key: &str, value: Value) -> Value {
    match value {
        Value::String(s) => json!({"key": key, "value": {"stringValue": s}}),
        Value::Number(n) => json!({"key": key, "value": {"intValue": n.to_string()}}),
        other => panic!("{other}"),
    }
}

/// One OTLP span of `trace`: id suffix, parent suffix, name, start and end (ms after `base`),
/// attributes, and the error message of a failed span.
#[allow(clippy::too_many_arguments)]
pub fn span(
    trace: &str,
    id: u8,
    parent: Option<u8>,
    name: &str,
    base: u64,
    ms: (u64, u64),
    attrs: Vec<Value>,
    error: Option<&str>,
) -> Value {
    let mut s = json!({
        "traceId": trace,
        "spanId": format!("{id:016x}"),
        "name": name,
        "startTimeUnixNano": (base + ms.0 * MS).to_string(),
        "endTimeUnixNano": (base + ms.1 * MS).to_string(),
        "attributes": attrs,
    });
    if let Some(p) = parent {
        s["parentSpanId"] = json!(format!("{p:016x}"));
    }
    if let Some(message) = error {
        s["status"] = json!({"code": 2, "message": message});
    }
    s
}
