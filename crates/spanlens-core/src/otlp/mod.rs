//! OTLP ingest: protobuf and JSON decoding, conversion of traces into canonical spans and of
//! log records into the GenAI events of spans ([`logs`]); and the way out, canonical spans as
//! OTLP requests for other backends ([`encode`]).

pub mod encode;
pub mod json;
pub mod logs;
pub mod proto;
pub mod read_cap;

use crate::conventions;
use crate::ids::{SpanId, TraceId};
use crate::normalize::{DecodeError, NormalizeOptions, Normalized, Rejection};
use crate::span::{Attributes, Event, Link, Span, Status};
use crate::time::Timestamp;
use prost::Message;
use serde_json::{Map, Number, Value};

/// Decodes an OTLP/HTTP or gRPC protobuf body.
/// Strings longer than [`read_cap::READ_CAP_BYTES`] are cut before they are decoded.
pub fn decode_protobuf(bytes: &[u8]) -> Result<proto::ExportTraceServiceRequest, DecodeError> {
    let decoded = match read_cap::cut_protobuf_strings(bytes) {
        Some(cut) => proto::ExportTraceServiceRequest::decode(&cut[..]),
        None => proto::ExportTraceServiceRequest::decode(bytes),
    };
    decoded.map_err(|e| DecodeError::new("", format!("invalid OTLP protobuf: {e}")))
}

/// Decodes an OTLP/JSON body; strings longer than [`read_cap::READ_CAP_BYTES`] are cut as
/// they are parsed.
pub fn decode_json(bytes: &[u8]) -> Result<proto::ExportTraceServiceRequest, DecodeError> {
    let v: Value = read_cap::parse_json(bytes)
        .map_err(|e| DecodeError::new("", format!("invalid JSON: {e}")))?;
    json::decode_request(&v)
}

/// Converts a decoded request into canonical spans, applying every semantic convention.
///
/// A span with an unusable id or start time is rejected (and reported), never the whole request.
/// Borrowing form of [`into_canonical`] (it copies the request).
pub fn to_canonical(req: &proto::ExportTraceServiceRequest, opts: &NormalizeOptions) -> Normalized {
    into_canonical(req.clone(), opts)
}

/// Converts a decoded request into canonical spans, moving its strings and values instead of
/// copying them (ingest owns the request and drops it right after).
pub fn into_canonical(
    req: proto::ExportTraceServiceRequest,
    opts: &NormalizeOptions,
) -> Normalized {
    convert(req, opts, false)
}

/// [`into_canonical`] that also takes base64 media out of each span's raw attributes into
/// `media` of the result ([`crate::media`]), before the conventions build (and cut) payloads.
pub fn into_canonical_extracting_media(
    req: proto::ExportTraceServiceRequest,
    opts: &NormalizeOptions,
) -> Normalized {
    convert(req, opts, true)
}

fn convert(
    req: proto::ExportTraceServiceRequest,
    opts: &NormalizeOptions,
    extract_media: bool,
) -> Normalized {
    let mut out = Normalized::default();
    // Sized once: a span is large, and growing the vector copies every span already in it.
    let count: usize = req
        .resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .map(|ss| ss.spans.len())
        .sum();
    out.spans.reserve_exact(count);
    for (ri, rs) in req.resource_spans.into_iter().enumerate() {
        let mut resource_attrs = rs
            .resource
            .map(|r| attributes(r.attributes))
            .unwrap_or_default();
        let counters = crate::sdk_report::take(&mut resource_attrs);
        // Capped once here, before the map is shared by the resource's spans.
        let resource_notes = crate::limits::cap_resource(&mut resource_attrs);
        let resource: std::sync::Arc<Attributes> = std::sync::Arc::new(resource_attrs);
        let service = resource
            .get("service.name")
            .and_then(Value::as_str)
            .map(str::to_string);
        let project = resource_project(&resource).or_else(|| opts.default_project.clone());
        if let Some(counters) = counters {
            out.sdk_reports.push(crate::sdk_report::SdkReport {
                project: project.clone(),
                service: service.clone(),
                counters,
            });
        }
        for (si, ss) in rs.scope_spans.into_iter().enumerate() {
            let scope = ss.scope.filter(|sc| !sc.name.is_empty());
            for (pi, ps) in ss.spans.into_iter().enumerate() {
                match span(ps, (ri, si, pi)) {
                    Ok(mut s) => {
                        s.service = service.clone();
                        s.project = project.clone();
                        s.resource = resource.clone();
                        s.truncated.extend(resource_notes.iter().cloned());
                        if let Some(sc) = &scope {
                            s.attributes
                                .entry("otel.scope.name".into())
                                .or_insert_with(|| Value::String(sc.name.clone()));
                            if !sc.version.is_empty() {
                                s.attributes
                                    .entry("otel.scope.version".into())
                                    .or_insert_with(|| Value::String(sc.version.clone()));
                            }
                        }
                        if extract_media {
                            crate::media::extract_from_attributes(&mut s, &mut out.media);
                        }
                        conventions::enrich(&mut s);
                        out.spans.push(s);
                    }
                    Err(r) => out.rejected.push(r),
                }
            }
        }
    }
    crate::normalize::propagate_agent_names(&mut out.spans);
    crate::normalize::propagate_trace_context(&mut out.spans);
    out
}

/// The project a resource names (OpenInference, Spanlens or Langfuse attribute), if any.
pub(crate) fn resource_project(resource: &Attributes) -> Option<String> {
    [
        "openinference.project.name",
        "spanlens.project",
        "langfuse.project.name",
    ]
    .iter()
    .find_map(|k| resource.get(*k).and_then(Value::as_str))
    .map(str::to_string)
}

/// One span; `at` (resource, scope, span index) names it in a rejection.
fn span(p: proto::Span, at: (usize, usize, usize)) -> Result<Span, Rejection> {
    let reject = |field: &str, reason: String| Rejection {
        path: format!(
            "resourceSpans[{}].scopeSpans[{}].spans[{}].{field}",
            at.0, at.1, at.2
        ),
        reason,
    };
    let trace_id = TraceId::from_bytes(&p.trace_id).map_err(|e| {
        reject(
            "traceId",
            format!("{e} in trace id {:?}", hex::encode(&p.trace_id)),
        )
    })?;
    let span_id = SpanId::from_bytes(&p.span_id).map_err(|e| {
        reject(
            "spanId",
            format!("{e} in span id {:?}", hex::encode(&p.span_id)),
        )
    })?;
    let parent_span_id = if p.parent_span_id.is_empty() {
        None
    } else {
        Some(SpanId::from_bytes(&p.parent_span_id).map_err(|e| {
            reject(
                "parentSpanId",
                format!("{e} in parent span id {:?}", hex::encode(&p.parent_span_id)),
            )
        })?)
    };
    if p.start_time_unix_nano == 0 {
        return Err(reject("startTimeUnixNano", "missing start time (0)".into()));
    }
    let time = |field: &str, ns: u64| {
        crate::limits::check_time(field, ns).map_err(|e| reject(field, e.reason))
    };
    time("startTimeUnixNano", p.start_time_unix_nano)?;
    time("endTimeUnixNano", p.end_time_unix_nano)?;
    for (i, e) in p.events.iter().enumerate() {
        time(&format!("events[{i}].timeUnixNano"), e.time_unix_nano)?;
    }
    let end_time = (p.end_time_unix_nano != 0).then_some(Timestamp(p.end_time_unix_nano));
    let (status, status_message) = match p.status {
        Some(st) => (
            match proto::StatusCode::try_from(st.code) {
                Ok(proto::StatusCode::Ok) => Status::Ok,
                Ok(proto::StatusCode::Error) => Status::Error,
                _ => Status::Unset,
            },
            (!st.message.is_empty()).then_some(st.message),
        ),
        None => (Status::Unset, None),
    };
    let mut attrs = attributes(p.attributes);
    let kind = match proto::SpanKind::try_from(p.kind) {
        Ok(proto::SpanKind::Internal) => Some("internal"),
        Ok(proto::SpanKind::Server) => Some("server"),
        Ok(proto::SpanKind::Client) => Some("client"),
        Ok(proto::SpanKind::Producer) => Some("producer"),
        Ok(proto::SpanKind::Consumer) => Some("consumer"),
        Ok(proto::SpanKind::Unspecified) | Err(_) => None,
    };
    if let Some(kind) = kind {
        attrs
            .entry("otel.span.kind".into())
            .or_insert_with(|| Value::String(kind.into()));
    }
    let events = p
        .events
        .into_iter()
        .map(|e| Event {
            name: e.name,
            time: Timestamp(e.time_unix_nano),
            attributes: attributes(e.attributes),
        })
        .collect();
    let links = p
        .links
        .into_iter()
        .filter_map(|l| {
            Some(Link {
                trace_id: TraceId::from_bytes(&l.trace_id).ok()?,
                span_id: SpanId::from_bytes(&l.span_id).ok()?,
                attributes: attributes(l.attributes),
            })
        })
        .collect();
    Ok(Span {
        trace_id,
        span_id,
        parent_span_id,
        name: p.name,
        start_time: Timestamp(p.start_time_unix_nano),
        end_time,
        status,
        status_message,
        events,
        links,
        attributes: attrs,
        ..Default::default()
    })
}

/// OTLP key/values as a JSON map (later keys win, as in the SDKs), moving keys and values.
pub fn attributes(kvs: Vec<proto::KeyValue>) -> Attributes {
    kvs.into_iter()
        .map(|kv| (kv.key, kv.value.map(any_value).unwrap_or(Value::Null)))
        .collect()
}

/// One OTLP value as JSON: bytes become base64, non-finite doubles their proto-JSON names.
pub fn any_value(v: proto::AnyValue) -> Value {
    use proto::any_value::Value as V;
    match v.value {
        None => Value::Null,
        Some(V::StringValue(s)) => Value::String(s),
        Some(V::BoolValue(b)) => Value::Bool(b),
        Some(V::IntValue(i)) => Value::Number(i.into()),
        Some(V::DoubleValue(d)) => Number::from_f64(d).map(Value::Number).unwrap_or_else(|| {
            Value::String(
                if d.is_nan() {
                    "NaN"
                } else if d > 0.0 {
                    "Infinity"
                } else {
                    "-Infinity"
                }
                .into(),
            )
        }),
        Some(V::BytesValue(b)) => Value::String(json::base64_encode(&b)),
        Some(V::ArrayValue(a)) => Value::Array(a.values.into_iter().map(any_value).collect()),
        Some(V::KvlistValue(kv)) => Value::Object(
            kv.values
                .into_iter()
                .map(|e| (e.key, e.value.map(any_value).unwrap_or(Value::Null)))
                .collect::<Map<_, _>>(),
        ),
    }
}
