//! The OTLP/JSON encoding (OTLP spec, "JSON Protobuf Encoding") of traces and logs decoded into
//! the protobuf types.
//!
//! Rules followed: keys in lowerCamelCase (the original snake_case names are accepted too);
//! trace and span ids as hex (either case), not base64; 64-bit integers as strings or numbers;
//! enums as integers (their names accepted too); unknown fields ignored. Every error names the
//! path of the offending field and its value.

use super::proto::{self, any_value};
use crate::normalize::DecodeError;
use crate::usage::short;
use serde_json::{Map, Value};

/// Decodes an OTLP/JSON `ExportTraceServiceRequest`.
pub fn decode_request(v: &Value) -> Result<proto::ExportTraceServiceRequest, DecodeError> {
    let obj = as_object(v, "")?;
    let mut req = proto::ExportTraceServiceRequest::default();
    for (i, rs) in array(obj, "resourceSpans", "resource_spans", "")?
        .iter()
        .enumerate()
    {
        let path = format!("resourceSpans[{i}]");
        req.resource_spans.push(resource_spans(rs, &path)?);
    }
    Ok(req)
}

/// The `resource` of a resource-spans or resource-logs object at `path`, if it has one.
fn resource(obj: &Map<String, Value>, path: &str) -> Result<Option<proto::Resource>, DecodeError> {
    let Some(r) = field(obj, "resource", "resource") else {
        return Ok(None);
    };
    let rpath = format!("{path}.resource");
    let robj = as_object(r, &rpath)?;
    Ok(Some(proto::Resource {
        attributes: key_values(robj, "attributes", "attributes", &rpath)?,
        dropped_attributes_count: uint32(
            robj,
            "droppedAttributesCount",
            "dropped_attributes_count",
            &rpath,
        )?,
    }))
}

/// The instrumentation scope `s` of the scope-spans or scope-logs object at `path`.
fn instrumentation_scope(
    s: &Value,
    path: &str,
) -> Result<proto::InstrumentationScope, DecodeError> {
    let spath = format!("{path}.scope");
    let sobj = as_object(s, &spath)?;
    Ok(proto::InstrumentationScope {
        name: string(sobj, "name", "name", &spath)?,
        version: string(sobj, "version", "version", &spath)?,
        attributes: key_values(sobj, "attributes", "attributes", &spath)?,
        dropped_attributes_count: uint32(
            sobj,
            "droppedAttributesCount",
            "dropped_attributes_count",
            &spath,
        )?,
    })
}

fn resource_spans(v: &Value, path: &str) -> Result<proto::ResourceSpans, DecodeError> {
    let obj = as_object(v, path)?;
    let mut out = proto::ResourceSpans {
        schema_url: string(obj, "schemaUrl", "schema_url", path)?,
        ..Default::default()
    };
    out.resource = resource(obj, path)?;
    for (i, ss) in array(obj, "scopeSpans", "scope_spans", path)?
        .iter()
        .enumerate()
    {
        out.scope_spans
            .push(scope_spans(ss, &format!("{path}.scopeSpans[{i}]"))?);
    }
    // Pre-1.0 exporters wrote `instrumentationLibrarySpans`; read it the same way.
    for (i, ss) in array(
        obj,
        "instrumentationLibrarySpans",
        "instrumentation_library_spans",
        path,
    )?
    .iter()
    .enumerate()
    {
        out.scope_spans.push(scope_spans(
            ss,
            &format!("{path}.instrumentationLibrarySpans[{i}]"),
        )?);
    }
    Ok(out)
}

fn scope_spans(v: &Value, path: &str) -> Result<proto::ScopeSpans, DecodeError> {
    let obj = as_object(v, path)?;
    let mut out = proto::ScopeSpans {
        schema_url: string(obj, "schemaUrl", "schema_url", path)?,
        ..Default::default()
    };
    let scope = field(obj, "scope", "scope")
        .or_else(|| field(obj, "instrumentationLibrary", "instrumentation_library"));
    out.scope = scope.map(|s| instrumentation_scope(s, path)).transpose()?;
    for (i, s) in array(obj, "spans", "spans", path)?.iter().enumerate() {
        out.spans.push(span(s, &format!("{path}.spans[{i}]"))?);
    }
    Ok(out)
}

fn span(v: &Value, path: &str) -> Result<proto::Span, DecodeError> {
    let obj = as_object(v, path)?;
    let status = match field(obj, "status", "status") {
        Some(s) => {
            let spath = format!("{path}.status");
            let sobj = as_object(s, &spath)?;
            Some(proto::Status {
                message: string(sobj, "message", "message", &spath)?,
                code: enumeration(sobj, "code", "code", &spath, |n| {
                    proto::StatusCode::from_str_name(n).map(|c| c as i32)
                })?,
            })
        }
        None => None,
    };
    let mut events = Vec::new();
    for (i, e) in array(obj, "events", "events", path)?.iter().enumerate() {
        let epath = format!("{path}.events[{i}]");
        let eobj = as_object(e, &epath)?;
        events.push(proto::Event {
            time_unix_nano: uint64(eobj, "timeUnixNano", "time_unix_nano", &epath)?,
            name: string(eobj, "name", "name", &epath)?,
            attributes: key_values(eobj, "attributes", "attributes", &epath)?,
            dropped_attributes_count: uint32(
                eobj,
                "droppedAttributesCount",
                "dropped_attributes_count",
                &epath,
            )?,
        });
    }
    let mut links = Vec::new();
    for (i, l) in array(obj, "links", "links", path)?.iter().enumerate() {
        let lpath = format!("{path}.links[{i}]");
        let lobj = as_object(l, &lpath)?;
        links.push(proto::Link {
            trace_id: hex_id(lobj, "traceId", "trace_id", &lpath)?,
            span_id: hex_id(lobj, "spanId", "span_id", &lpath)?,
            trace_state: string(lobj, "traceState", "trace_state", &lpath)?,
            attributes: key_values(lobj, "attributes", "attributes", &lpath)?,
            dropped_attributes_count: uint32(
                lobj,
                "droppedAttributesCount",
                "dropped_attributes_count",
                &lpath,
            )?,
            flags: uint32(lobj, "flags", "flags", &lpath)?,
        });
    }
    Ok(proto::Span {
        trace_id: hex_id(obj, "traceId", "trace_id", path)?,
        span_id: hex_id(obj, "spanId", "span_id", path)?,
        trace_state: string(obj, "traceState", "trace_state", path)?,
        parent_span_id: hex_id(obj, "parentSpanId", "parent_span_id", path)?,
        flags: uint32(obj, "flags", "flags", path)?,
        name: string(obj, "name", "name", path)?,
        kind: enumeration(obj, "kind", "kind", path, |n| {
            proto::SpanKind::from_str_name(n).map(|k| k as i32)
        })?,
        start_time_unix_nano: uint64(obj, "startTimeUnixNano", "start_time_unix_nano", path)?,
        end_time_unix_nano: uint64(obj, "endTimeUnixNano", "end_time_unix_nano", path)?,
        attributes: key_values(obj, "attributes", "attributes", path)?,
        dropped_attributes_count: uint32(
            obj,
            "droppedAttributesCount",
            "dropped_attributes_count",
            path,
        )?,
        events,
        dropped_events_count: uint32(obj, "droppedEventsCount", "dropped_events_count", path)?,
        links,
        dropped_links_count: uint32(obj, "droppedLinksCount", "dropped_links_count", path)?,
        status,
    })
}

/// Decodes an OTLP/JSON `ExportLogsServiceRequest`, by the same rules as traces.
pub fn decode_logs_request(v: &Value) -> Result<proto::ExportLogsServiceRequest, DecodeError> {
    let obj = as_object(v, "")?;
    let mut req = proto::ExportLogsServiceRequest::default();
    for (i, rl) in array(obj, "resourceLogs", "resource_logs", "")?
        .iter()
        .enumerate()
    {
        let path = format!("resourceLogs[{i}]");
        let robj = as_object(rl, &path)?;
        let mut out = proto::ResourceLogs {
            schema_url: string(robj, "schemaUrl", "schema_url", &path)?,
            ..Default::default()
        };
        out.resource = resource(robj, &path)?;
        for (j, sl) in array(robj, "scopeLogs", "scope_logs", &path)?
            .iter()
            .enumerate()
        {
            out.scope_logs
                .push(scope_logs(sl, &format!("{path}.scopeLogs[{j}]"))?);
        }
        req.resource_logs.push(out);
    }
    Ok(req)
}

fn scope_logs(v: &Value, path: &str) -> Result<proto::ScopeLogs, DecodeError> {
    let obj = as_object(v, path)?;
    let mut out = proto::ScopeLogs {
        schema_url: string(obj, "schemaUrl", "schema_url", path)?,
        ..Default::default()
    };
    out.scope = field(obj, "scope", "scope")
        .map(|s| instrumentation_scope(s, path))
        .transpose()?;
    for (i, r) in array(obj, "logRecords", "log_records", path)?
        .iter()
        .enumerate()
    {
        out.log_records
            .push(log_record(r, &format!("{path}.logRecords[{i}]"))?);
    }
    Ok(out)
}

fn log_record(v: &Value, path: &str) -> Result<proto::LogRecord, DecodeError> {
    let obj = as_object(v, path)?;
    let body = match field(obj, "body", "body") {
        Some(b) => Some(any_value_of(b, &format!("{path}.body"), 0)?),
        None => None,
    };
    Ok(proto::LogRecord {
        time_unix_nano: uint64(obj, "timeUnixNano", "time_unix_nano", path)?,
        observed_time_unix_nano: uint64(
            obj,
            "observedTimeUnixNano",
            "observed_time_unix_nano",
            path,
        )?,
        severity_number: enumeration(obj, "severityNumber", "severity_number", path, |n| {
            proto::SEVERITY_NUMBER_NAMES
                .iter()
                .position(|s| *s == n)
                .and_then(|i| i32::try_from(i).ok())
        })?,
        severity_text: string(obj, "severityText", "severity_text", path)?,
        body,
        attributes: key_values(obj, "attributes", "attributes", path)?,
        dropped_attributes_count: uint32(
            obj,
            "droppedAttributesCount",
            "dropped_attributes_count",
            path,
        )?,
        flags: uint32(obj, "flags", "flags", path)?,
        trace_id: hex_id(obj, "traceId", "trace_id", path)?,
        span_id: hex_id(obj, "spanId", "span_id", path)?,
        event_name: string(obj, "eventName", "event_name", path)?,
    })
}

fn key_values(
    obj: &Map<String, Value>,
    camel: &str,
    snake: &str,
    path: &str,
) -> Result<Vec<proto::KeyValue>, DecodeError> {
    let mut out = Vec::new();
    for (i, kv) in array(obj, camel, snake, path)?.iter().enumerate() {
        out.push(key_value(kv, &format!("{}[{i}]", join(path, camel)))?);
    }
    Ok(out)
}

fn key_value(v: &Value, path: &str) -> Result<proto::KeyValue, DecodeError> {
    let obj = as_object(v, path)?;
    let key = string(obj, "key", "key", path)?;
    let value = match field(obj, "value", "value") {
        Some(val) => Some(any_value_of(val, &format!("{path}.value"), 0)?),
        None => None,
    };
    Ok(proto::KeyValue { key, value })
}

/// Attribute values nest (arrays of maps of arrays…); a bound keeps hostile input from exhausting the stack.
const MAX_VALUE_DEPTH: usize = 64;

fn any_value_of(v: &Value, path: &str, depth: usize) -> Result<proto::AnyValue, DecodeError> {
    if depth > MAX_VALUE_DEPTH {
        return Err(DecodeError::new(
            path,
            format!("attribute value nested deeper than {MAX_VALUE_DEPTH} levels"),
        ));
    }
    let obj = as_object(v, path)?;
    let mut value = None;
    for (k, inner) in obj {
        let ipath = format!("{path}.{k}");
        let parsed = match k.as_str() {
            "stringValue" | "string_value" => match inner {
                Value::String(s) => any_value::Value::StringValue(s.clone()),
                other => return Err(bad(&ipath, "a string", other)),
            },
            "boolValue" | "bool_value" => match inner {
                Value::Bool(b) => any_value::Value::BoolValue(*b),
                other => return Err(bad(&ipath, "a boolean", other)),
            },
            "intValue" | "int_value" => any_value::Value::IntValue(int64_value(inner, &ipath)?),
            "doubleValue" | "double_value" => {
                any_value::Value::DoubleValue(double_value(inner, &ipath)?)
            }
            "bytesValue" | "bytes_value" => match inner {
                Value::String(s) => any_value::Value::BytesValue(
                    base64_decode(s).ok_or_else(|| bad(&ipath, "base64", inner))?,
                ),
                other => return Err(bad(&ipath, "a base64 string", other)),
            },
            "arrayValue" | "array_value" => {
                let aobj = as_object(inner, &ipath)?;
                let mut values = Vec::new();
                for (i, e) in array(aobj, "values", "values", &ipath)?.iter().enumerate() {
                    values.push(any_value_of(e, &format!("{ipath}.values[{i}]"), depth + 1)?);
                }
                any_value::Value::ArrayValue(proto::ArrayValue { values })
            }
            "kvlistValue" | "kvlist_value" => {
                let kobj = as_object(inner, &ipath)?;
                let mut values = Vec::new();
                for (i, e) in array(kobj, "values", "values", &ipath)?.iter().enumerate() {
                    let epath = format!("{ipath}.values[{i}]");
                    let eobj = as_object(e, &epath)?;
                    let key = string(eobj, "key", "key", &epath)?;
                    let val = match field(eobj, "value", "value") {
                        Some(x) => Some(any_value_of(x, &format!("{epath}.value"), depth + 1)?),
                        None => None,
                    };
                    values.push(proto::KeyValue { key, value: val });
                }
                any_value::Value::KvlistValue(proto::KeyValueList { values })
            }
            _ => continue, // unknown fields are ignored
        };
        value = Some(parsed);
    }
    Ok(proto::AnyValue { value })
}

fn field<'a>(obj: &'a Map<String, Value>, camel: &str, snake: &str) -> Option<&'a Value> {
    obj.get(camel)
        .or_else(|| obj.get(snake))
        .filter(|v| !v.is_null())
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn bad(path: &str, expected: &str, got: &Value) -> DecodeError {
    DecodeError::new(path, format!("expected {expected}, got {}", short(got)))
}

fn as_object<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>, DecodeError> {
    v.as_object().ok_or_else(|| bad(path, "an object", v))
}

fn array<'a>(
    obj: &'a Map<String, Value>,
    camel: &str,
    snake: &str,
    path: &str,
) -> Result<&'a [Value], DecodeError> {
    match field(obj, camel, snake) {
        None => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(other) => Err(bad(&join(path, camel), "an array", other)),
    }
}

fn string(
    obj: &Map<String, Value>,
    camel: &str,
    snake: &str,
    path: &str,
) -> Result<String, DecodeError> {
    match field(obj, camel, snake) {
        None => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(bad(&join(path, camel), "a string", other)),
    }
}

fn hex_id(
    obj: &Map<String, Value>,
    camel: &str,
    snake: &str,
    path: &str,
) -> Result<Vec<u8>, DecodeError> {
    match field(obj, camel, snake) {
        None => Ok(Vec::new()),
        Some(v @ Value::String(s)) => {
            if s.len() % 2 != 0 {
                return Err(bad(
                    &join(path, camel),
                    "hex with an even number of digits",
                    v,
                ));
            }
            hex::decode(s).map_err(|_| bad(&join(path, camel), "a hex id", v))
        }
        Some(other) => Err(bad(&join(path, camel), "a hex string", other)),
    }
}

fn uint64(
    obj: &Map<String, Value>,
    camel: &str,
    snake: &str,
    path: &str,
) -> Result<u64, DecodeError> {
    let Some(v) = field(obj, camel, snake) else {
        return Ok(0);
    };
    let p = join(path, camel);
    match v {
        Value::Number(n) => n
            .as_u64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < 1.8e19)
                    .map(|f| f as u64)
            })
            .ok_or_else(|| bad(&p, "an unsigned 64-bit integer", v)),
        Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| bad(&p, "an unsigned 64-bit integer", v)),
        _ => Err(bad(&p, "an unsigned 64-bit integer", v)),
    }
}

fn uint32(
    obj: &Map<String, Value>,
    camel: &str,
    snake: &str,
    path: &str,
) -> Result<u32, DecodeError> {
    let n = uint64(obj, camel, snake, path)?;
    u32::try_from(n).map_err(|_| {
        DecodeError::new(
            join(path, camel),
            format!("expected an unsigned 32-bit integer, got {n}"),
        )
    })
}

fn int64_value(v: &Value, path: &str) -> Result<i64, DecodeError> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18)
                    .map(|f| f as i64)
            })
            .ok_or_else(|| bad(path, "a 64-bit integer", v)),
        Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| bad(path, "a 64-bit integer", v)),
        _ => Err(bad(path, "a 64-bit integer", v)),
    }
}

fn double_value(v: &Value, path: &str) -> Result<f64, DecodeError> {
    match v {
        Value::Number(n) => n.as_f64().ok_or_else(|| bad(path, "a number", v)),
        Value::String(s) => match s.as_str() {
            "NaN" => Ok(f64::NAN),
            "Infinity" => Ok(f64::INFINITY),
            "-Infinity" => Ok(f64::NEG_INFINITY),
            other => other.trim().parse().map_err(|_| bad(path, "a number", v)),
        },
        _ => Err(bad(path, "a number", v)),
    }
}

fn enumeration(
    obj: &Map<String, Value>,
    camel: &str,
    snake: &str,
    path: &str,
    by_name: impl Fn(&str) -> Option<i32>,
) -> Result<i32, DecodeError> {
    match field(obj, camel, snake) {
        None => Ok(0),
        Some(v @ Value::String(s)) => by_name(s)
            .or_else(|| s.parse().ok())
            .ok_or_else(|| bad(&join(path, camel), "an enum number or name", v)),
        Some(v) => {
            let n = int64_value(v, &join(path, camel))?;
            i32::try_from(n).map_err(|_| bad(&join(path, camel), "an enum number", v))
        }
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard or URL-safe base64, padding optional (protobuf JSON accepts both alphabets).
pub(crate) fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.trim_end_matches('=').bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Standard base64 with padding (how bytes attributes are shown in canonical JSON).
pub(crate) fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn base64_round_trip() {
        for data in [&b""[..], b"f", b"fo", b"foo", b"foob", b"\xff\x00\x10"] {
            assert_eq!(base64_decode(&base64_encode(data)).unwrap(), data);
        }
        assert_eq!(base64_encode(b"foob"), "Zm9vYg==");
        assert!(base64_decode("a*b").is_none());
    }

    #[test]
    fn accepts_strings_numbers_names_and_snake_case() {
        let v = json!({"resource_spans": [{"scopeSpans": [{"spans": [{
            "traceId": "5B8EFFF798038103D269B633813FC60C", "spanId": "EEE19B7EC3C1B174",
            "parentSpanId": "", "name": "x", "kind": "SPAN_KIND_CLIENT",
            "startTimeUnixNano": "1544712660000000000", "endTimeUnixNano": 1544712661000000000u64,
            "status": {"code": 2, "message": "boom"}, "futureField": {"a": 1},
            "attributes": [{"key": "n", "value": {"intValue": "42"}},
                           {"key": "d", "value": {"doubleValue": "NaN"}},
                           {"key": "b", "value": {"bytesValue": "AQI="}}]}]}]}]});
        let req = decode_request(&v).unwrap();
        let s = &req.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(s.kind, proto::SpanKind::Client as i32);
        assert_eq!(s.start_time_unix_nano, 1_544_712_660_000_000_000);
        assert_eq!(s.end_time_unix_nano, 1_544_712_661_000_000_000);
        assert!(s.parent_span_id.is_empty());
        assert_eq!(s.trace_id[0], 0x5b);
        assert_eq!(s.status.as_ref().unwrap().code, 2);
        assert_eq!(
            s.attributes[0].value.as_ref().unwrap().value,
            Some(any_value::Value::IntValue(42))
        );
        assert_eq!(
            s.attributes[2].value.as_ref().unwrap().value,
            Some(any_value::Value::BytesValue(vec![1, 2]))
        );
    }

    #[test]
    fn errors_name_the_path_and_value() {
        let v = json!({"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]});
        let e = decode_request(&v).unwrap_err();
        assert_eq!(e.path, "resourceSpans[0].scopeSpans[0].spans[0].traceId");
        assert!(e.message.contains("\"zz\""), "{e}");
        let v = json!({"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": "soon"}]}]}]});
        let e = decode_request(&v).unwrap_err();
        assert_eq!(e.to_string(), "resourceSpans[0].scopeSpans[0].spans[0].startTimeUnixNano: expected an unsigned 64-bit integer, got \"soon\"");
        let e = decode_request(&json!({"resourceSpans": {}})).unwrap_err();
        assert_eq!(e.path, "resourceSpans");
        let e = decode_request(&json!([])).unwrap_err();
        assert!(e.message.contains("an object"));
    }

    #[test]
    fn deep_values_are_refused_not_overflowed() {
        let mut v = json!({"stringValue": "leaf"});
        for _ in 0..100 {
            v = json!({"arrayValue": {"values": [v]}});
        }
        assert!(any_value_of(&v, "v", 0).is_err());
    }
}
