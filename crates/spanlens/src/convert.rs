//! SDK spans into the wire and canonical forms: OTLP protobuf messages for exporters, and
//! canonical spans (through the same core normalisation the server uses) for local processors.

use crate::attr::Value;
use crate::span::SpanData;
use crate::tracer::Resource;
use spanlens_core::otlp::proto::{self, any_value};
use spanlens_core::{NormalizeOptions, PriceCatalog};
use std::borrow::Borrow;

/// The attribute carrying the span kind, read back by `spanlens-core`'s conventions.
pub const KIND_ATTRIBUTE: &str = "spanlens.span.kind";

fn any(v: &Value) -> proto::AnyValue {
    let value = match v {
        Value::Bool(b) => any_value::Value::BoolValue(*b),
        Value::I64(i) => any_value::Value::IntValue(*i),
        Value::F64(f) => any_value::Value::DoubleValue(*f),
        Value::Str(s) => any_value::Value::StringValue(s.to_string()),
        Value::StrList(l) => any_value::Value::ArrayValue(proto::ArrayValue {
            values: l
                .iter()
                .map(|s| proto::AnyValue {
                    value: Some(any_value::Value::StringValue(s.clone())),
                })
                .collect(),
        }),
        // Structured values travel as JSON text: every OTel backend can store a string.
        Value::Json(j) => any_value::Value::StringValue(match &**j {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        }),
    };
    proto::AnyValue { value: Some(value) }
}

fn kv(key: &str, v: &Value) -> proto::KeyValue {
    proto::KeyValue {
        key: key.to_string(),
        value: Some(any(v)),
    }
}

/// One SDK span as an OTLP span.
pub fn to_proto_span(s: &SpanData) -> proto::Span {
    let mut attributes = Vec::with_capacity(s.attributes.len() + 1);
    attributes.push(kv(KIND_ATTRIBUTE, &Value::Str(s.kind.as_str().into())));
    attributes.extend(s.attributes.iter().map(|(k, v)| kv(k, v)));
    proto::Span {
        trace_id: s.trace_id.0.to_vec(),
        span_id: s.span_id.0.to_vec(),
        parent_span_id: s.parent_span_id.map(|p| p.0.to_vec()).unwrap_or_default(),
        name: s.name.to_string(),
        kind: proto::SpanKind::Internal as i32,
        start_time_unix_nano: s.start_time.0,
        end_time_unix_nano: s.end_time.map(|t| t.0).unwrap_or(0),
        attributes,
        events: s
            .events
            .iter()
            .map(|e| proto::Event {
                time_unix_nano: e.time.0,
                name: e.name.to_string(),
                attributes: e.attributes.iter().map(|(k, v)| kv(k, v)).collect(),
                dropped_attributes_count: 0,
            })
            .collect(),
        status: Some(proto::Status {
            message: s.status_message.clone().unwrap_or_default(),
            code: match s.status {
                spanlens_core::Status::Unset => proto::StatusCode::Unset,
                spanlens_core::Status::Ok => proto::StatusCode::Ok,
                spanlens_core::Status::Error => proto::StatusCode::Error,
            } as i32,
        }),
        ..Default::default()
    }
}

/// A batch of SDK spans as one OTLP export request.
pub fn to_export_request<S: Borrow<SpanData>>(
    spans: &[S],
    resource: &Resource,
) -> proto::ExportTraceServiceRequest {
    proto::ExportTraceServiceRequest {
        resource_spans: vec![proto::ResourceSpans {
            resource: Some(proto::Resource {
                attributes: resource
                    .attributes
                    .iter()
                    .map(|(k, v)| kv(k, &Value::Str(v.clone().into())))
                    .collect(),
                dropped_attributes_count: 0,
            }),
            scope_spans: vec![proto::ScopeSpans {
                scope: Some(proto::InstrumentationScope {
                    name: "spanlens".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                spans: spans.iter().map(|s| to_proto_span(s.borrow())).collect(),
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// SDK spans as canonical spans, normalised and priced exactly as the server would.
pub fn to_canonical<S: Borrow<SpanData>>(
    spans: &[S],
    resource: &Resource,
) -> Vec<spanlens_core::Span> {
    let req = to_export_request(spans, resource);
    let mut out = spanlens_core::otlp::into_canonical(req, &NormalizeOptions::default()).spans;
    for s in &mut out {
        spanlens_core::price_span(s, PriceCatalog::builtin());
    }
    out
}
