//! Strings are cut while a request is read, before they are copied.
//!
//! A 61 KB gzip request can carry a 60 MiB span name. The limits of [`crate::limits`] cut it to
//! a few KiB, but only after decoding, and decoding copied it: JSON into a `Value`, protobuf
//! into the message structs, so one such request took the server's memory up by 190 MB on top
//! of its body. Here no string longer than [`READ_CAP_BYTES`] is copied whole: JSON strings are
//! cut as they are parsed, and a protobuf body holding a longer string is rewritten with the
//! string cut before it is decoded. A cut string ends with `…`, which makes it longer than the
//! cap, so the limits can say the original was "more than" the cap.
//!
//! The cap sits far above every limit applied later (names 2 KiB, values and payloads 256 KiB),
//! so nothing that would have been kept is lost; it only bounds what reading costs.

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::fmt;

/// The longest string read whole from a request (4 MiB).
pub const READ_CAP_BYTES: usize = 4 * 1024 * 1024;

/// What ends a string cut while reading.
const CUT_MARK: &str = "…";

/// `s` cut to the read cap on a character boundary, with the cut mark.
fn cut(s: &str) -> String {
    let mut end = READ_CAP_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = String::with_capacity(end + CUT_MARK.len());
    out.push_str(&s[..end]);
    out.push_str(CUT_MARK);
    out
}

/// True when `s` was cut while reading (no string read whole is longer than the cap).
pub fn was_cut_while_reading(s: &str) -> bool {
    s.len() > READ_CAP_BYTES
}

/// Parses JSON into a `Value` the way `serde_json::from_slice` does, except that strings
/// (values and keys) longer than the cap are cut as they are read.
pub fn parse_json(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let v = Capped.deserialize(&mut de)?;
    de.end()?;
    Ok(v)
}

/// A `Value` whose strings are cut to the cap.
#[derive(Clone, Copy)]
struct Capped;

impl<'de> DeserializeSeed<'de> for Capped {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Capped {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(if v.len() > READ_CAP_BYTES {
            cut(v)
        } else {
            v.to_string()
        }))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(if v.len() > READ_CAP_BYTES {
            cut(&v)
        } else {
            v
        }))
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        self.deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(v) = seq.next_element_seed(Capped)? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key_seed(CappedKey)? {
            let v = map.next_value_seed(Capped)?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

/// An object key, cut to the cap like any string.
struct CappedKey;

impl<'de> DeserializeSeed<'de> for CappedKey {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for CappedKey {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E>(self, v: &str) -> Result<String, E> {
        Ok(if v.len() > READ_CAP_BYTES {
            cut(v)
        } else {
            v.to_string()
        })
    }
}

/// What a length-delimited field of an OTLP message holds.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    /// Another message of the given type: cut inside it.
    Message(Msg),
    /// A UTF-8 string: cut it.
    Text,
    /// Anything else (ids, bytes values, unknown fields): copied as it is.
    Other,
}

/// The OTLP trace and logs messages that can hold strings.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Msg {
    Request,
    LogsRequest,
    ResourceLogs,
    ScopeLogs,
    LogRecord,
    ResourceSpans,
    Resource,
    ScopeSpans,
    Scope,
    Span,
    Event,
    Link,
    Status,
    KeyValue,
    AnyValue,
    ArrayValue,
    KeyValueList,
}

impl Msg {
    /// The field numbers of `proto.rs` (and the published `.proto` files).
    fn field(self, number: u64) -> Kind {
        use Kind::{Message as M, Other, Text};
        match (self, number) {
            (Msg::Request, 1) => M(Msg::ResourceSpans),
            (Msg::LogsRequest, 1) => M(Msg::ResourceLogs),
            (Msg::ResourceLogs, 1) => M(Msg::Resource),
            (Msg::ResourceLogs, 2) => M(Msg::ScopeLogs),
            (Msg::ResourceLogs, 3) | (Msg::ScopeLogs, 3) => Text,
            (Msg::ScopeLogs, 1) => M(Msg::Scope),
            (Msg::ScopeLogs, 2) => M(Msg::LogRecord),
            (Msg::LogRecord, 3 | 12) => Text,
            (Msg::LogRecord, 5) => M(Msg::AnyValue),
            (Msg::LogRecord, 6) => M(Msg::KeyValue),
            (Msg::ResourceSpans, 1) => M(Msg::Resource),
            (Msg::ResourceSpans, 2) => M(Msg::ScopeSpans),
            (Msg::ResourceSpans, 3) | (Msg::ScopeSpans, 3) => Text,
            (Msg::Resource, 1) => M(Msg::KeyValue),
            (Msg::ScopeSpans, 1) => M(Msg::Scope),
            (Msg::ScopeSpans, 2) => M(Msg::Span),
            (Msg::Scope, 1 | 2) => Text,
            (Msg::Scope, 3) => M(Msg::KeyValue),
            (Msg::Span, 3 | 5) => Text,
            (Msg::Span, 9) => M(Msg::KeyValue),
            (Msg::Span, 11) => M(Msg::Event),
            (Msg::Span, 13) => M(Msg::Link),
            (Msg::Span, 15) => M(Msg::Status),
            (Msg::Event, 2) => Text,
            (Msg::Event, 3) => M(Msg::KeyValue),
            (Msg::Link, 3) => Text,
            (Msg::Link, 4) => M(Msg::KeyValue),
            (Msg::Status, 2) => Text,
            (Msg::KeyValue, 1) => Text,
            (Msg::KeyValue, 2) => M(Msg::AnyValue),
            (Msg::AnyValue, 1) => Text,
            (Msg::AnyValue, 5) => M(Msg::ArrayValue),
            (Msg::AnyValue, 6) => M(Msg::KeyValueList),
            (Msg::ArrayValue, 1) => M(Msg::AnyValue),
            (Msg::KeyValueList, 1) => M(Msg::KeyValue),
            _ => Other,
        }
    }
}

/// An `ExportTraceServiceRequest` with every string longer than the cap cut, or `None` when
/// the body holds no such string (nearly always: then it costs a walk over the top-level
/// fields, since a message no longer than the cap cannot hold a longer string). `None` too
/// when the body is not well-formed protobuf: the decoder then says what is wrong.
pub fn cut_protobuf_strings(body: &[u8]) -> Option<Vec<u8>> {
    cut_message(body, Msg::Request)
}

/// [`cut_protobuf_strings`] for an `ExportLogsServiceRequest`: log bodies and attributes are
/// as untrusted as span attributes.
pub fn cut_protobuf_log_strings(body: &[u8]) -> Option<Vec<u8>> {
    cut_message(body, Msg::LogsRequest)
}

fn cut_message(body: &[u8], root: Msg) -> Option<Vec<u8>> {
    if !holds_long_string(body, root, 0)? {
        return None;
    }
    let mut out = Vec::with_capacity(body.len().min(4 * READ_CAP_BYTES));
    rewrite(body, root, &mut out, 0)?;
    Some(out)
}

/// Nesting followed at most (prost refuses deeper messages anyway).
const MAX_DEPTH: usize = 100;

/// One field: its number, wire type, and where its value starts and ends in `msg`.
struct Field {
    number: u64,
    wire: u8,
    start: usize,
    end: usize,
}

fn varint(buf: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*at)?;
        *at += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// The fields of a message in wire order; `None` on malformed input.
fn fields(msg: &[u8]) -> impl Iterator<Item = Option<Field>> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || {
        if at >= msg.len() {
            return None;
        }
        let field_start = at;
        let field = (|| {
            let key = varint(msg, &mut at)?;
            let wire = (key & 7) as u8;
            let start = at;
            match wire {
                0 => {
                    varint(msg, &mut at)?;
                }
                1 => at = at.checked_add(8)?,
                2 => {
                    let len = usize::try_from(varint(msg, &mut at)?).ok()?;
                    at = at.checked_add(len)?;
                }
                5 => at = at.checked_add(4)?,
                _ => return None,
            }
            (at <= msg.len()).then_some(Field {
                number: key >> 3,
                wire,
                start: if wire == 2 { start } else { field_start },
                end: at,
            })
        })();
        if field.is_none() {
            at = msg.len();
        }
        Some(field)
    })
}

/// The value bytes of a length-delimited field (after its length prefix).
fn payload<'a>(msg: &'a [u8], f: &Field) -> Option<&'a [u8]> {
    let mut at = f.start;
    let len = usize::try_from(varint(msg, &mut at)?).ok()?;
    msg.get(at..at.checked_add(len)?)
}

fn holds_long_string(msg: &[u8], kind: Msg, depth: usize) -> Option<bool> {
    if msg.len() <= READ_CAP_BYTES {
        return Some(false);
    }
    if depth > MAX_DEPTH {
        return None;
    }
    for f in fields(msg) {
        let f = f?;
        if f.wire != 2 {
            continue;
        }
        let value = payload(msg, &f)?;
        if value.len() <= READ_CAP_BYTES {
            continue;
        }
        match kind.field(f.number) {
            Kind::Text => return Some(true),
            Kind::Message(m) => {
                if holds_long_string(value, m, depth + 1)? {
                    return Some(true);
                }
            }
            Kind::Other => {}
        }
    }
    Some(false)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Copies `msg` into `out`, cutting long strings; fields that cannot hold one are copied as
/// they are.
fn rewrite(msg: &[u8], kind: Msg, out: &mut Vec<u8>, depth: usize) -> Option<()> {
    if depth > MAX_DEPTH {
        return None;
    }
    let mut field_start = 0;
    for f in fields(msg) {
        let f = f?;
        let whole = &msg[field_start..f.end];
        field_start = f.end;
        if f.wire != 2 {
            out.extend_from_slice(whole);
            continue;
        }
        let value = payload(msg, &f)?;
        if value.len() <= READ_CAP_BYTES {
            out.extend_from_slice(whole);
            continue;
        }
        let key = (f.number << 3) | 2;
        match kind.field(f.number) {
            Kind::Text => {
                // Cut on a character boundary: never split a UTF-8 sequence.
                let mut end = READ_CAP_BYTES;
                while end > 0 && (value[end] & 0xc0) == 0x80 {
                    end -= 1;
                }
                put_varint(out, key);
                put_varint(out, (end + CUT_MARK.len()) as u64);
                out.extend_from_slice(&value[..end]);
                out.extend_from_slice(CUT_MARK.as_bytes());
            }
            Kind::Message(m) => {
                let mut inner = Vec::new();
                rewrite(value, m, &mut inner, depth + 1)?;
                put_varint(out, key);
                put_varint(out, inner.len() as u64);
                out.extend_from_slice(&inner);
            }
            Kind::Other => out.extend_from_slice(whole),
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otlp::proto;
    use prost::Message;

    fn kv(key: &str, value: &str) -> proto::KeyValue {
        proto::KeyValue {
            key: key.into(),
            value: Some(proto::AnyValue {
                value: Some(proto::any_value::Value::StringValue(value.into())),
            }),
        }
    }

    fn request(name: &str, attrs: Vec<proto::KeyValue>) -> proto::ExportTraceServiceRequest {
        proto::ExportTraceServiceRequest {
            resource_spans: vec![proto::ResourceSpans {
                scope_spans: vec![proto::ScopeSpans {
                    spans: vec![proto::Span {
                        trace_id: vec![1; 16],
                        span_id: vec![2; 8],
                        name: name.into(),
                        start_time_unix_nano: 1,
                        attributes: attrs,
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn json_strings_and_keys_are_cut_while_parsing() {
        let long = "é".repeat(READ_CAP_BYTES);
        let text = serde_json::json!({ "name": long, long.clone(): [1, -2, 2.5, null, true] });
        let v = parse_json(text.to_string().as_bytes()).unwrap();
        let name = v["name"].as_str().unwrap();
        assert!(was_cut_while_reading(name));
        assert!(name.ends_with(CUT_MARK) && name.len() <= READ_CAP_BYTES + CUT_MARK.len());
        let key = v
            .as_object()
            .unwrap()
            .keys()
            .find(|k| *k != "name")
            .unwrap();
        assert!(was_cut_while_reading(key));
        assert_eq!(v[key], serde_json::json!([1, -2, 2.5, null, true]));
        // Short input reads exactly as serde_json reads it.
        let small = br#"{"a": "b\n\u00e9", "n": [1, 1.5e3, -7], "o": {}}"#;
        assert_eq!(
            parse_json(small).unwrap(),
            serde_json::from_slice::<Value>(small).unwrap()
        );
        assert!(parse_json(b"{\"a\": 1} x").is_err());
    }

    #[test]
    fn protobuf_strings_are_cut_before_decoding() {
        let req = request(
            &"n".repeat(READ_CAP_BYTES + 10),
            vec![kv("k", &"é".repeat(READ_CAP_BYTES)), kv("small", "v")],
        );
        let body = req.encode_to_vec();
        let cut = cut_protobuf_strings(&body).expect("a long string was found");
        assert!(cut.len() < body.len());
        let back = proto::ExportTraceServiceRequest::decode(&cut[..]).unwrap();
        let span = &back.resource_spans[0].scope_spans[0].spans[0];
        assert!(was_cut_while_reading(&span.name));
        assert_eq!(span.trace_id, vec![1; 16]);
        let proto::any_value::Value::StringValue(v) =
            span.attributes[0].value.clone().unwrap().value.unwrap()
        else {
            panic!("string value expected")
        };
        assert!(was_cut_while_reading(&v) && v.is_char_boundary(v.len() - CUT_MARK.len()));
        assert_eq!(span.attributes[1], kv("small", "v"));
    }

    #[test]
    fn ordinary_and_malformed_bodies_are_left_to_the_decoder() {
        let body = request("short", vec![kv("a", "b")]).encode_to_vec();
        assert_eq!(cut_protobuf_strings(&body), None);
        // Large, but made of many short strings: nothing to cut.
        let many: Vec<_> = (0..100_000)
            .map(|i| kv(&format!("k{i}"), "0123456789012345678901234567890123456789"))
            .collect();
        let body = request("x", many).encode_to_vec();
        assert!(body.len() > READ_CAP_BYTES);
        assert_eq!(cut_protobuf_strings(&body), None);
        assert_eq!(cut_protobuf_strings(&[0xff; 16]), None);
        let mut truncated = request(&"n".repeat(READ_CAP_BYTES + 1), vec![]).encode_to_vec();
        truncated.truncate(truncated.len() - 1);
        assert_eq!(cut_protobuf_strings(&truncated), None);
    }
}
