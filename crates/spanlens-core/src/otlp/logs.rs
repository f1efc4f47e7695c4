//! OTLP logs intake: the GenAI events among log records, keyed by the span they belong to.
//!
//! GenAI instrumentations emit their events (`gen_ai.client.inference.operation.details`, the
//! per-message events, evaluation results) as log records carrying the trace and span id of the
//! call. Such a record becomes an [`Event`] of that span: its name from `event_name` (newer
//! SDKs) or the attribute `event.name` (older ones), its body kept in the attribute
//! [`EVENT_CONTENT`]. The span may arrive before or after its events; the store keeps the events
//! apart and merges them into the span when it is read ([`crate::conventions::merge_log_events`]).
//!
//! Other records are counted and ignored: without a trace and span id there is no span to
//! attach to, and a record that is not a GenAI event is not something Spanlens reads.

use super::proto;
use crate::conventions::events::{is_genai_event, EVENT_CONTENT, EVENT_TRUNCATED};
use crate::ids::{SpanId, TraceId};
use crate::normalize::{DecodeError, NormalizeOptions, Rejection};
use crate::span::Event;
use crate::time::Timestamp;
use prost::Message;
use serde_json::Value;

/// One GenAI event that arrived as a log record, for the span it names.
#[derive(Debug, Clone, PartialEq)]
pub struct LogEvent {
    /// The project the record's resource names, if any (the request's header wins over it).
    pub project: Option<String>,
    /// The span's trace.
    pub trace_id: TraceId,
    /// The span.
    pub span_id: SpanId,
    /// The event, held to the limits of span events.
    pub event: Event,
}

impl LogEvent {
    /// A stable digest of the event (name, time, attributes), so a record sent twice (an
    /// exporter retrying) is stored once.
    pub fn digest(&self) -> u64 {
        let text = serde_json::to_string(&self.event).unwrap_or_default();
        crate::limits::fnv1a(text.as_bytes())
    }
}

/// Log records not taken, by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogRejections {
    /// Records without a (valid, non-zero) trace and span id.
    pub no_ids: usize,
    /// Records whose event name is missing or not a `gen_ai.*` name.
    pub not_genai: usize,
    /// Records that cannot be stored (an id of the wrong length, a time out of range, a bad
    /// project name), each with where and why.
    pub malformed: Vec<Rejection>,
    /// Events refused because their span already holds as many events as it may
    /// ([`crate::limits::MAX_EVENTS`]); set by whoever stores them.
    pub over_limit: usize,
}

impl LogRejections {
    /// How many records were not taken.
    pub fn count(&self) -> usize {
        self.no_ids + self.not_genai + self.malformed.len() + self.over_limit
    }

    /// The partial-success message: each reason with its count, and the first malformed
    /// records named. Empty when nothing was rejected.
    pub fn message(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        let mut first = true;
        let mut clause = |n: usize, one: &str, many: &str| {
            if n == 0 {
                return;
            }
            let (noun, verb) = match (first, n == 1) {
                (true, true) => ("log record ", one),
                (true, false) => ("log records ", many),
                (false, true) => ("", one),
                (false, false) => ("", many),
            };
            parts.push(format!("{n} {noun}{verb}"));
            first = false;
        };
        clause(
            self.no_ids,
            "had no trace/span id and was ignored",
            "had no trace/span id and were ignored",
        );
        clause(
            self.not_genai,
            "was not a GenAI event (no gen_ai.* event name)",
            "were not GenAI events (no gen_ai.* event name)",
        );
        clause(
            self.over_limit,
            &format!(
                "was over the {} events one span may hold",
                crate::limits::MAX_EVENTS
            ),
            &format!(
                "were over the {} events one span may hold",
                crate::limits::MAX_EVENTS
            ),
        );
        let named: Vec<String> = self
            .malformed
            .iter()
            .take(3)
            .map(|r| r.to_string())
            .collect();
        let malformed = if named.is_empty() {
            String::new()
        } else {
            format!(" ({})", named.join("; "))
        };
        clause(
            self.malformed.len(),
            &format!("was malformed{malformed}"),
            &format!("were malformed{malformed}"),
        );
        parts.join("; ")
    }
}

/// What one logs request came to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogEvents {
    /// The GenAI events, in request order.
    pub events: Vec<LogEvent>,
    /// What was not taken.
    pub rejected: LogRejections,
}

/// Decodes an OTLP/HTTP or gRPC protobuf `ExportLogsServiceRequest`; strings longer than
/// [`super::read_cap::READ_CAP_BYTES`] are cut before they are decoded.
pub fn decode_protobuf(bytes: &[u8]) -> Result<proto::ExportLogsServiceRequest, DecodeError> {
    let decoded = match super::read_cap::cut_protobuf_log_strings(bytes) {
        Some(cut) => proto::ExportLogsServiceRequest::decode(&cut[..]),
        None => proto::ExportLogsServiceRequest::decode(bytes),
    };
    decoded.map_err(|e| DecodeError::new("", format!("invalid OTLP protobuf: {e}")))
}

/// Decodes an OTLP/JSON `ExportLogsServiceRequest`, cutting long strings as they are parsed.
pub fn decode_json(bytes: &[u8]) -> Result<proto::ExportLogsServiceRequest, DecodeError> {
    let v: Value = super::read_cap::parse_json(bytes)
        .map_err(|e| DecodeError::new("", format!("invalid JSON: {e}")))?;
    super::json::decode_logs_request(&v)
}

/// The GenAI events of a decoded request, each held to the limits of a span event, and the
/// records not taken. A record with no time takes its observed time, else `opts.received_at`.
pub fn to_events(req: proto::ExportLogsServiceRequest, opts: &NormalizeOptions) -> LogEvents {
    let mut out = LogEvents::default();
    for (ri, rl) in req.resource_logs.into_iter().enumerate() {
        let resource = rl
            .resource
            .map(|r| super::attributes(r.attributes))
            .unwrap_or_default();
        let project = super::resource_project(&resource).or_else(|| opts.default_project.clone());
        let bad_project = project
            .as_deref()
            .and_then(|p| crate::limits::check_project(p).err());
        for (si, sl) in rl.scope_logs.into_iter().enumerate() {
            for (li, rec) in sl.log_records.into_iter().enumerate() {
                let at = |field: &str| {
                    format!("resourceLogs[{ri}].scopeLogs[{si}].logRecords[{li}]{field}")
                };
                if let Some(why) = &bad_project {
                    out.rejected.malformed.push(Rejection {
                        path: at(".resource"),
                        reason: why.clone(),
                    });
                    continue;
                }
                match record(rec, opts, &at) {
                    Ok(Some((trace_id, span_id, event))) => out.events.push(LogEvent {
                        project: project.clone(),
                        trace_id,
                        span_id,
                        event,
                    }),
                    Ok(None) => {}
                    Err(Skip::NoIds) => out.rejected.no_ids += 1,
                    Err(Skip::NotGenAi) => out.rejected.not_genai += 1,
                    Err(Skip::Malformed(r)) => out.rejected.malformed.push(r),
                }
            }
        }
    }
    out
}

/// Why a record is not taken.
enum Skip {
    NoIds,
    NotGenAi,
    Malformed(Rejection),
}

type Taken = Option<(TraceId, SpanId, Event)>;

fn record(
    rec: proto::LogRecord,
    opts: &NormalizeOptions,
    at: &dyn Fn(&str) -> String,
) -> Result<Taken, Skip> {
    let mut attributes = super::attributes(rec.attributes);
    let name = if rec.event_name.is_empty() {
        attributes
            .get("event.name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    } else {
        rec.event_name
    };
    if !is_genai_event(&name) {
        return Err(Skip::NotGenAi);
    }
    let zero = |b: &[u8]| b.iter().all(|x| *x == 0);
    if zero(&rec.trace_id) || zero(&rec.span_id) {
        return Err(Skip::NoIds);
    }
    let malformed = |field: &str, reason: String| {
        Skip::Malformed(Rejection {
            path: at(field),
            reason,
        })
    };
    let trace_id = TraceId::from_bytes(&rec.trace_id)
        .map_err(|e| malformed(".traceId", format!("{e} in trace id")))?;
    let span_id = SpanId::from_bytes(&rec.span_id)
        .map_err(|e| malformed(".spanId", format!("{e} in span id")))?;
    let time = [rec.time_unix_nano, rec.observed_time_unix_nano]
        .into_iter()
        .find(|t| *t != 0)
        .unwrap_or(opts.received_at.0);
    crate::limits::check_time("timeUnixNano", time)
        .map_err(|e| malformed(".timeUnixNano", e.reason))?;
    if let Some(body) = rec.body.map(super::any_value).filter(|b| !b.is_null()) {
        attributes.insert(EVENT_CONTENT.into(), body);
    }
    let mut event = Event {
        name,
        time: Timestamp(time),
        attributes,
    };
    let notes = crate::limits::cap_event(&mut event);
    if !notes.is_empty() {
        let notes = notes
            .into_iter()
            .map(|n| serde_json::json!({"field": n.field, "reason": n.reason}))
            .collect();
        event
            .attributes
            .insert(EVENT_TRUNCATED.into(), Value::Array(notes));
    }
    Ok(Some((trace_id, span_id, event)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otlp::proto::{any_value, AnyValue, KeyValue, KeyValueList};

    fn s(v: &str) -> AnyValue {
        AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }
    }

    fn kv(k: &str, v: AnyValue) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(v),
        }
    }

    fn rec(name: &str, trace: Vec<u8>, span: Vec<u8>) -> proto::LogRecord {
        proto::LogRecord {
            time_unix_nano: 1_700_000_000_000_000_000,
            event_name: name.into(),
            trace_id: trace,
            span_id: span,
            ..Default::default()
        }
    }

    fn request(records: Vec<proto::LogRecord>) -> proto::ExportLogsServiceRequest {
        proto::ExportLogsServiceRequest {
            resource_logs: vec![proto::ResourceLogs {
                resource: Some(proto::Resource {
                    attributes: vec![kv("openinference.project.name", s("bot"))],
                    dropped_attributes_count: 0,
                }),
                scope_logs: vec![proto::ScopeLogs {
                    log_records: records,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn protobuf_records_become_events_of_their_span() {
        let mut user = rec("gen_ai.user.message", vec![1; 16], vec![2; 8]);
        user.body = Some(AnyValue {
            value: Some(any_value::Value::KvlistValue(KeyValueList {
                values: vec![kv("content", s("Weather in Paris?"))],
            })),
        });
        // The older form: the name in the attribute `event.name`, no time but an observed one.
        let mut choice = rec("", vec![1; 16], vec![2; 8]);
        choice.attributes = vec![kv("event.name", s("gen_ai.choice"))];
        choice.time_unix_nano = 0;
        choice.observed_time_unix_nano = 5;
        let bytes = request(vec![
            user,
            choice,
            rec("gen_ai.user.message", vec![], vec![]),
            rec("gen_ai.user.message", vec![0; 16], vec![2; 8]),
            rec("app.started", vec![1; 16], vec![2; 8]),
            rec("", vec![1; 16], vec![2; 8]),
            rec("gen_ai.choice", vec![1; 3], vec![2; 8]),
        ])
        .encode_to_vec();
        let out = to_events(
            decode_protobuf(&bytes).unwrap(),
            &NormalizeOptions::default(),
        );
        assert_eq!(out.events.len(), 2);
        let e = &out.events[0];
        assert_eq!(e.project.as_deref(), Some("bot"));
        assert_eq!((e.trace_id, e.span_id), (TraceId([1; 16]), SpanId([2; 8])));
        assert_eq!(
            e.event.attributes[EVENT_CONTENT]["content"],
            "Weather in Paris?"
        );
        assert_eq!(out.events[1].event.name, "gen_ai.choice");
        assert_eq!(out.events[1].event.time, Timestamp(5));
        assert_eq!(out.rejected.no_ids, 2);
        assert_eq!(out.rejected.not_genai, 2);
        assert_eq!(out.rejected.malformed.len(), 1);
        assert_eq!(out.rejected.count(), 5);
        let msg = out.rejected.message();
        assert!(
            msg.starts_with(
                "2 log records had no trace/span id and were ignored; 2 were not GenAI events"
            ),
            "{msg}"
        );
        assert!(
            msg.contains("1 was malformed (resourceLogs[0].scopeLogs[0].logRecords[6].traceId"),
            "{msg}"
        );
        // Sent twice, an event has the same digest.
        let again = to_events(
            decode_protobuf(&bytes).unwrap(),
            &NormalizeOptions::default(),
        );
        assert_eq!(again.events[0].digest(), out.events[0].digest());
        assert_ne!(out.events[0].digest(), out.events[1].digest());
    }

    #[test]
    fn json_records_read_the_same_as_protobuf() {
        let json = br#"{"resourceLogs": [{"resource": {"attributes": [
            {"key": "openinference.project.name", "value": {"stringValue": "bot"}}]},
          "scopeLogs": [{"scope": {"name": "opentelemetry.instrumentation.openai"}, "logRecords": [
            {"timeUnixNano": "1700000000000000000", "severityNumber": "SEVERITY_NUMBER_INFO",
             "eventName": "gen_ai.user.message", "traceId": "01010101010101010101010101010101",
             "spanId": "0202020202020202",
             "body": {"kvlistValue": {"values": [{"key": "content", "value": {"stringValue": "Weather in Paris?"}}]}}}
          ]}]}]}"#;
        let from_json = to_events(decode_json(json).unwrap(), &NormalizeOptions::default());
        let mut user = rec("gen_ai.user.message", vec![1; 16], vec![2; 8]);
        user.severity_number = 9;
        user.body = Some(AnyValue {
            value: Some(any_value::Value::KvlistValue(KeyValueList {
                values: vec![kv("content", s("Weather in Paris?"))],
            })),
        });
        let from_proto = to_events(
            decode_protobuf(&request(vec![user]).encode_to_vec()).unwrap(),
            &NormalizeOptions::default(),
        );
        assert_eq!(from_json, from_proto);
        let e = decode_json(
            br#"{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"spanId": "xyz"}]}]}]}"#,
        )
        .unwrap_err();
        assert_eq!(e.path, "resourceLogs[0].scopeLogs[0].logRecords[0].spanId");
        assert!(decode_protobuf(b"\x0a\xff\xff").is_err());
    }

    #[test]
    fn oversized_bodies_are_cut_and_noted() {
        let mut big = rec("gen_ai.user.message", vec![1; 16], vec![2; 8]);
        big.body = Some(s(&"x".repeat(super::super::read_cap::READ_CAP_BYTES + 10)));
        let bytes = request(vec![big]).encode_to_vec();
        let out = to_events(
            decode_protobuf(&bytes).unwrap(),
            &NormalizeOptions::default(),
        );
        let e = &out.events[0].event;
        let body = e.attributes[EVENT_CONTENT].as_str().unwrap();
        assert_eq!(body.len(), crate::limits::MAX_ATTRIBUTE_VALUE_BYTES);
        let notes = e.attributes[EVENT_TRUNCATED].as_array().unwrap();
        assert!(
            notes[0]["reason"]
                .as_str()
                .unwrap()
                .contains("cut while reading"),
            "{notes:?}"
        );
    }

    #[test]
    fn a_bad_resource_project_rejects_its_records() {
        let mut req = request(vec![rec("gen_ai.choice", vec![1; 16], vec![2; 8])]);
        req.resource_logs[0].resource = Some(proto::Resource {
            attributes: vec![kv("openinference.project.name", s(&"p".repeat(200)))],
            dropped_attributes_count: 0,
        });
        let out = to_events(req, &NormalizeOptions::default());
        assert!(out.events.is_empty());
        assert!(out.rejected.message().contains("project name"));
    }
}
