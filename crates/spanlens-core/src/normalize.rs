//! Entry points that turn a request body from any supported source into canonical spans.

use crate::span::Span;
use crate::time::Timestamp;
use std::fmt;

/// A request body (or part of one) that cannot be read, with the path of the offending field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", if path.is_empty() { String::new() } else { format!("{path}: ") })]
pub struct DecodeError {
    /// Dotted/indexed path of the bad field, e.g. `resourceSpans[0].scopeSpans[1].spans[3].traceId`.
    pub path: String,
    /// What is wrong, naming the bad value.
    pub message: String,
}

impl DecodeError {
    /// An error at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        DecodeError {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// One item of a batch that could not be turned into a span (reported as OTLP partial success).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Where in the request the item sits.
    pub path: String,
    /// Why it was rejected, naming the bad value.
    pub reason: String,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.reason)
    }
}

/// The outcome of normalising one request: the spans, and what was rejected.
#[derive(Debug, Clone, Default)]
pub struct Normalized {
    /// Canonical spans, in request order.
    pub spans: Vec<Span>,
    /// Items that could not become spans (bad ids, missing times, …).
    pub rejected: Vec<Rejection>,
    /// Base64 media taken out of the spans, once per content hash across the batch; the spans
    /// hold references to them instead ([`crate::media`]).
    pub media: Vec<crate::media::MediaBlob>,
    /// Which trace refers to which of `media` (trace, hash), sorted and without repeats: the
    /// store keeps a blob while a trace refers to it, and erasing traces frees the rest.
    pub media_refs: Vec<(crate::TraceId, String)>,
    /// Export counters SDKs sent as resource attributes ([`crate::sdk_report`]), taken out of
    /// the resources the spans keep.
    pub sdk_reports: Vec<crate::sdk_report::SdkReport>,
}

/// Context the caller supplies that the request itself may not carry.
#[derive(Debug, Clone, Default)]
pub struct NormalizeOptions {
    /// When the request arrived; used where a source gives no time at all
    /// (an OpenAI Agents trace object exported before any of its spans).
    pub received_at: Timestamp,
    /// Project to assign when the request names none.
    pub default_project: Option<String>,
}

/// Copies trace-level context within a batch (one wide span table, no joins): a span without a
/// session or user takes the trace's (the root's, else the first span's that has one); tags and
/// metadata of the root go to every span of the trace that lacks them.
pub fn propagate_trace_context(spans: &mut [Span]) {
    use crate::ids::TraceId;
    use std::collections::HashMap;
    #[derive(Default)]
    struct Ctx {
        session: Option<String>,
        user: Option<String>,
        root: Option<usize>,
    }
    let mut by_trace: HashMap<TraceId, Ctx> = HashMap::new();
    for (i, s) in spans.iter().enumerate() {
        let c = by_trace.entry(s.trace_id).or_default();
        let is_root = s.parent_span_id.is_none();
        if is_root {
            c.root = Some(i);
        }
        if s.session_id.is_some() && (c.session.is_none() || is_root) {
            c.session = s.session_id.clone();
        }
        if s.user_id.is_some() && (c.user.is_none() || is_root) {
            c.user = s.user_id.clone();
        }
    }
    let roots: HashMap<TraceId, (Vec<String>, crate::span::Attributes)> = by_trace
        .iter()
        .filter_map(|(t, c)| {
            c.root
                .map(|r| (*t, (spans[r].tags.clone(), spans[r].metadata.clone())))
        })
        .collect();
    for s in spans.iter_mut() {
        let c = &by_trace[&s.trace_id];
        if s.session_id.is_none() {
            s.session_id = c.session.clone();
        }
        if s.user_id.is_none() {
            s.user_id = c.user.clone();
        }
        if let Some((tags, meta)) = roots.get(&s.trace_id) {
            if s.tags.is_empty() {
                s.tags = tags.clone();
            }
            for (k, v) in meta {
                s.metadata.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
    }
}

/// Sets `agent_name` on every span from its nearest `agent` ancestor within the batch
/// (an agent span names itself), so cost and latency can be grouped by agent.
pub fn propagate_agent_names(spans: &mut [Span]) {
    use crate::ids::{SpanId, TraceId};
    use crate::span::SpanKind;
    use std::collections::HashMap;
    let index: HashMap<(TraceId, SpanId), usize> = spans
        .iter()
        .enumerate()
        .map(|(i, s)| ((s.trace_id, s.span_id), i))
        .collect();
    for i in 0..spans.len() {
        if spans[i].agent_name.is_some() {
            continue;
        }
        if spans[i].kind == SpanKind::Agent {
            spans[i].agent_name = Some(spans[i].name.clone());
            continue;
        }
        let trace = spans[i].trace_id;
        let mut cur = spans[i].parent_span_id;
        // Bounded walk: a malformed batch may contain parent cycles.
        for _ in 0..1024 {
            let Some(j) = cur.and_then(|p| index.get(&(trace, p)).copied()) else {
                break;
            };
            if spans[j].kind == SpanKind::Agent || spans[j].agent_name.is_some() {
                spans[i].agent_name = spans[j]
                    .agent_name
                    .clone()
                    .or_else(|| Some(spans[j].name.clone()));
                break;
            }
            cur = spans[j].parent_span_id;
        }
    }
}

/// The wire formats Spanlens reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFormat {
    /// OTLP `ExportTraceServiceRequest`, protobuf encoding.
    OtlpProtobuf,
    /// OTLP `ExportTraceServiceRequest`, JSON encoding.
    OtlpJson,
    /// OpenAI Agents SDK export (`{"data": [...]}`).
    OpenAiAgents,
}

/// Decodes, normalises and prices one request body of a known format.
pub fn normalize(
    format: InputFormat,
    body: &[u8],
    opts: &NormalizeOptions,
    catalog: &crate::pricing::PriceCatalog,
) -> Result<Normalized, DecodeError> {
    // Media are taken out before payloads are built: building one cuts it to the payload cap.
    let mut out = match format {
        InputFormat::OtlpProtobuf => {
            crate::otlp::into_canonical_extracting_media(crate::otlp::decode_protobuf(body)?, opts)
        }
        InputFormat::OtlpJson => {
            crate::otlp::into_canonical_extracting_media(crate::otlp::decode_json(body)?, opts)
        }
        InputFormat::OpenAiAgents => {
            let mut v = parse_json(body)?;
            let mut media = Vec::new();
            crate::media::extract_from_value(&mut v, &mut media);
            let mut out = crate::openai_agents::normalize_export(&v, opts)?;
            out.media = media;
            out
        }
    };
    // What a convention put together from several places (a message's data URL) is caught here.
    for s in &mut out.spans {
        let found = crate::media::extract(s);
        crate::media::merge(&mut out.media, found);
    }
    hold_to_limits(&mut out);
    // After the limits: a span refused there refers to nothing.
    out.media_refs = crate::media::refs_of(&out.spans, &out.media);
    for s in &mut out.spans {
        crate::pricing::price_span(s, catalog);
    }
    Ok(out)
}

/// Applies [`crate::limits::enforce`] to every span: a span that cannot be stored moves to
/// `rejected`, naming the span and the field.
pub fn hold_to_limits(out: &mut Normalized) {
    // In place: spans move only after the first rejected one (a span is large to copy).
    let rejected = &mut out.rejected;
    out.spans.retain_mut(|s| match crate::limits::enforce(s) {
        Ok(()) => true,
        Err(e) => {
            rejected.push(Rejection {
                path: format!("trace {} span {}: {}", s.trace_id, s.span_id, e.field),
                reason: e.reason,
            });
            false
        }
    });
}

/// Tells an OTLP/JSON request from an OpenAI Agents export by its top-level keys.
pub fn detect_json_format(body: &[u8]) -> Result<InputFormat, DecodeError> {
    let v = parse_json(body)?;
    let obj = v.as_object().ok_or_else(|| {
        DecodeError::new(
            "",
            format!("expected a JSON object, got {}", crate::usage::short(&v)),
        )
    })?;
    if obj.contains_key("resourceSpans") || obj.contains_key("resource_spans") {
        Ok(InputFormat::OtlpJson)
    } else if obj.contains_key("data") {
        Ok(InputFormat::OpenAiAgents)
    } else {
        let keys: Vec<&str> = obj.keys().map(String::as_str).take(5).collect();
        Err(DecodeError::new(
            "",
            format!(
                "unrecognised JSON: expected \"resourceSpans\" (OTLP) or \"data\" (OpenAI Agents export), found keys {keys:?}"
            ),
        ))
    }
}

fn parse_json(body: &[u8]) -> Result<serde_json::Value, DecodeError> {
    crate::otlp::read_cap::parse_json(body)
        .map_err(|e| DecodeError::new("", format!("invalid JSON: {e}")))
}
