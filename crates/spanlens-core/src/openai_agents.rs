//! OpenAI Agents SDK export payloads (`BackendSpanExporter`, `POST /v1/traces/ingest`) into
//! canonical spans.
//!
//! The body is `{"data": [item, ...]}`; an item is a trace object (`"object": "trace"`) or a
//! span object (`"object": "trace.span"`). The SDK sends a trace object when the trace
//! *starts* and each span when it *ends*, so one trace is usually spread over several batches.
//!
//! Mapping:
//! - ids: `trace_<32hex>` and `span_<24hex>` go through [`TraceId::from_foreign`] and
//!   [`SpanId::from_foreign`], so every batch maps the same source id to the same canonical id.
//!   The original strings are kept as `openai_agents.trace_id`, `openai_agents.span_id` and
//!   `openai_agents.parent_id`.
//! - A trace object becomes a synthetic root span of kind `pipeline` whose span id is
//!   `SpanId::from_foreign(<trace id>)`; spans whose `parent_id` is null hang under it, even
//!   when the trace object travels in another batch. Its name is `workflow_name`, its
//!   `session_id` is `group_id` and its `metadata` is the trace metadata (a string
//!   `metadata.user_id` also becomes `user_id`); those three are copied onto every span of the
//!   trace found in the same payload. Its start and end are the earliest `started_at` and the
//!   latest `ended_at` of those spans, or `received_at` and no end when the payload has none.
//! - `span_data.type` picks the kind: `agent` → agent, `generation` / `response` /
//!   `transcription` / `speech` → llm (provider `openai`), `function` → tool, `handoff` →
//!   handoff, `guardrail` → guardrail, `custom` → span (pipeline for the SDK's task spans),
//!   `mcp_tools` / `speech_group` and any unknown type → span. Nothing is dropped: the whole
//!   `span_data` minus `input` / `output` (which become the canonical input, output or messages)
//!   is kept as `openai_agents.span_data`.
//! - `error` sets status `error` with its message; otherwise an ended span is `ok` and an open
//!   one (`ended_at` null) is `unset` with no end time.
//! - Cost is left empty: pricing is applied later by the shared pricing step.
//!
//! Token rule: Agents SDK usage follows the OpenAI Responses semantics, which are already the
//! canonical ones: `input_tokens` INCLUDE `input_tokens_details.cached_tokens` and
//! `output_tokens` INCLUDE `output_tokens_details.reasoning_tokens`, so the counts are taken as
//! they are (see [`openai_responses_usage`]). The `usage` that the SDK's task and turn spans
//! carry aggregates their children; it is kept only inside `openai_agents.span_data`, never
//! as the span's usage, so tokens are not counted twice.

use crate::ids::{SpanId, TraceId};
use crate::normalize::{
    propagate_agent_names, DecodeError, NormalizeOptions, Normalized, Rejection,
};
use crate::span::{
    Attributes, Message, Payload, Span, SpanKind, Status, ToolCallRef, ToolInfo, Usage,
};
use crate::time::Timestamp;
use crate::usage::{openai_responses_usage, parse_provider_usage, short};
use serde_json::{Map, Value};
use std::collections::HashMap;

/// Value of [`Span::source`] on every span read from an OpenAI Agents export.
pub const SOURCE: &str = "openai_agents";

/// Name the SDK gives a trace when the caller names none.
const DEFAULT_WORKFLOW_NAME: &str = "Agent workflow";

/// Top-level fields of a span object that are mapped; any other field is kept as an attribute.
const SPAN_FIELDS: [&str; 8] = [
    "object",
    "id",
    "trace_id",
    "parent_id",
    "started_at",
    "ended_at",
    "span_data",
    "error",
];

/// Top-level fields of a trace object that are mapped; any other field is kept as an attribute.
const TRACE_FIELDS: [&str; 5] = ["object", "id", "workflow_name", "group_id", "metadata"];

/// Turns an OpenAI Agents SDK export body (`{"data": [...]}`) into canonical spans.
pub fn normalize_export(body: &Value, opts: &NormalizeOptions) -> Result<Normalized, DecodeError> {
    let obj = body.as_object().ok_or_else(|| {
        DecodeError::new(
            "",
            format!(
                "expected a JSON object with a \"data\" array, got {}",
                short(body)
            ),
        )
    })?;
    let items = match obj.get("data") {
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(DecodeError::new(
                "data",
                format!(
                    "expected an array of traces and spans, got {}",
                    short(other)
                ),
            ))
        }
        None => {
            return Err(DecodeError::new(
                "data",
                "missing: expected an array of traces and spans",
            ))
        }
    };

    let mut out = Normalized::default();
    let mut parsed: Vec<Item> = Vec::with_capacity(items.len());
    let mut seen_traces: HashMap<TraceId, usize> = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        match read_item(i, item, opts) {
            Ok(Item::Trace(t)) => {
                if let Some(first) = seen_traces.get(&t.trace_id) {
                    out.rejected.push(Rejection {
                        path: format!("data[{i}].id"),
                        reason: format!(
                            "duplicate trace object {:?} (already given at data[{first}])",
                            t.raw_id
                        ),
                    });
                    continue;
                }
                seen_traces.insert(t.trace_id, i);
                parsed.push(Item::Trace(t));
            }
            Ok(item) => parsed.push(item),
            Err(r) => out.rejected.push(r),
        }
    }

    // Time bounds of each trace's spans in this payload, for the synthetic roots.
    let mut bounds: HashMap<TraceId, (Timestamp, Option<Timestamp>)> = HashMap::new();
    for item in &parsed {
        if let Item::Span(s) = item {
            let b = bounds
                .entry(s.trace_id)
                .or_insert((s.start_time, s.end_time));
            b.0 = b.0.min(s.start_time);
            b.1 = b.1.max(s.end_time);
        }
    }

    let contexts: HashMap<TraceId, TraceContext> = parsed
        .iter()
        .filter_map(|item| match item {
            Item::Trace(t) => Some((t.trace_id, t.context.clone())),
            Item::Span(_) => None,
        })
        .collect();

    out.spans.reserve(parsed.len());
    for item in parsed {
        match item {
            Item::Trace(t) => {
                let (start, end) = bounds
                    .get(&t.trace_id)
                    .copied()
                    .unwrap_or((opts.received_at, None));
                out.spans.push(t.into_root(start, end, opts));
            }
            Item::Span(mut s) => {
                if let Some(ctx) = contexts.get(&s.trace_id) {
                    ctx.apply(&mut s);
                }
                out.spans.push(*s);
            }
        }
    }
    propagate_agent_names(&mut out.spans);
    recover_streamed_outputs(&mut out.spans);
    models_for_model_calls(&mut out.spans);
    Ok(out)
}

/// Attribute naming where a model call's model came from when its own span data had none.
pub const MODEL_SOURCE_ATTRIBUTE: &str = "spanlens.model_source";

/// Trace-metadata keys that name the model of a run (set with `RunConfig(trace_metadata=…)`).
const METADATA_MODEL_KEYS: [&str; 3] = ["gen_ai.request.model", "model", "agent.model"];

/// A `response` span (the Responses API) is exported with its id and usage only: without a model
/// it cannot be priced. Its model is then taken, in order, from the configuration of the agent it
/// ran under (an `agent` span whose data names a `model`; openai-agents 0.24 does not export one,
/// other exporters and later releases may), else from the trace metadata (`gen_ai.request.model`,
/// `model` or `agent.model`), and the span says which in `spanlens.model_source`. Only spans of
/// one export payload are seen.
fn models_for_model_calls(spans: &mut [Span]) {
    let index: HashMap<(TraceId, SpanId), usize> = spans
        .iter()
        .enumerate()
        .map(|(i, s)| ((s.trace_id, s.span_id), i))
        .collect();
    let configured = |s: &Span| {
        let data = s.attributes.get("openai_agents.span_data")?;
        let model = data.get("model")?.as_str()?.trim();
        (!model.is_empty()).then(|| model.to_string())
    };
    for i in 0..spans.len() {
        let s = &spans[i];
        if s.kind != SpanKind::Llm || s.request_model.is_some() || s.response_model.is_some() {
            continue;
        }
        // The nearest agent above, at most 64 levels up (a hostile payload may loop).
        let mut found = None;
        let mut at = s.parent_span_id;
        for _ in 0..64 {
            let Some(&j) = at.and_then(|p| index.get(&(s.trace_id, p))) else {
                break;
            };
            if spans[j].kind == SpanKind::Agent {
                found = configured(&spans[j]).map(|m| {
                    let name = spans[j].agent_name.as_deref().unwrap_or("agent");
                    (m, format!("the configuration of agent {name:?}"))
                });
                break;
            }
            at = spans[j].parent_span_id;
        }
        let found = found.or_else(|| {
            METADATA_MODEL_KEYS.iter().find_map(|k| {
                let m = s.metadata.get(*k)?.as_str()?.trim();
                (!m.is_empty()).then(|| (m.to_string(), format!("the trace metadata {k:?}")))
            })
        });
        if let Some((model, source)) = found {
            let span = &mut spans[i];
            span.request_model = Some(model);
            span.attributes
                .insert(MODEL_SOURCE_ATTRIBUTE.into(), Value::String(source));
        }
    }
}

/// Attribute naming where a streamed generation's output was recovered from, or why it is absent.
pub const OUTPUT_SOURCE_ATTRIBUTE: &str = "spanlens.output_source";

/// A streamed Chat Completions generation is exported with `output: [{}]`: the SDK keeps no
/// text or tool calls. A later model call of the same conversation sends the whole history,
/// which holds what this call answered: the assistant messages right after this call's own
/// input. Those become its output messages, and the span says where they came from; a run's last
/// call has no such successor, so its empty placeholder is dropped and the span says why.
/// Only spans of one export payload are seen (the SDK exports a run's spans together); each turn
/// of a streamed run has its own parent, so successors are looked for across the trace, matched
/// by their input starting with this call's whole input.
fn recover_streamed_outputs(spans: &mut [Span]) {
    /// Later calls looked at per blank one: enough for any real run, bounded for hostile input.
    const LOOKAHEAD: usize = 64;
    let blank = |s: &Span| {
        s.kind == SpanKind::Llm
            && !s.output_messages.is_empty()
            && s.output_messages.iter().all(|m| *m == Message::default())
    };
    let mut calls: Vec<usize> = (0..spans.len())
        .filter(|&i| spans[i].kind == SpanKind::Llm && !spans[i].input_messages.is_empty())
        .collect();
    calls.sort_by_key(|&i| (spans[i].trace_id, spans[i].start_time));
    for k in 0..calls.len() {
        let i = calls[k];
        if !blank(&spans[i]) {
            continue;
        }
        let asked = &spans[i].input_messages;
        let successor = calls[k + 1..]
            .iter()
            .take(LOOKAHEAD)
            .copied()
            .take_while(|&j| spans[j].trace_id == spans[i].trace_id)
            .find(|&j| {
                let later = &spans[j].input_messages;
                later.len() > asked.len() && later[..asked.len()] == asked[..]
            });
        let answered: Vec<Message> = successor
            .map(|j| {
                spans[j].input_messages[asked.len()..]
                    .iter()
                    .take_while(|m| m.role.as_deref() == Some("assistant"))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let note = match successor {
            Some(j) if !answered.is_empty() => format!(
                "recovered from the input of the next model call (span {})",
                spans[j].span_id
            ),
            _ => "not exported: the Agents SDK keeps no output of a streamed call".to_string(),
        };
        let span = &mut spans[i];
        span.output_messages = answered;
        span.attributes
            .insert(OUTPUT_SOURCE_ATTRIBUTE.into(), Value::String(note));
    }
}

/// One readable item of the `data` array.
enum Item {
    Trace(TraceItem),
    Span(Box<Span>),
}

/// Context a trace object gives every span of its trace.
#[derive(Clone, Default)]
struct TraceContext {
    session_id: Option<String>,
    user_id: Option<String>,
    metadata: Attributes,
}

impl TraceContext {
    fn apply(&self, span: &mut Span) {
        if span.session_id.is_none() {
            span.session_id.clone_from(&self.session_id);
        }
        if span.user_id.is_none() {
            span.user_id.clone_from(&self.user_id);
        }
        for (k, v) in &self.metadata {
            span.metadata.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
}

/// A trace object, read.
struct TraceItem {
    raw_id: String,
    trace_id: TraceId,
    name: String,
    context: TraceContext,
    attributes: Attributes,
}

impl TraceItem {
    fn into_root(self, start: Timestamp, end: Option<Timestamp>, opts: &NormalizeOptions) -> Span {
        let mut span = Span {
            trace_id: self.trace_id,
            span_id: SpanId::from_foreign(&self.raw_id),
            parent_span_id: None,
            name: self.name,
            kind: SpanKind::Pipeline,
            start_time: start,
            end_time: end,
            status: Status::Unset,
            project: opts.default_project.clone(),
            source: Some(SOURCE.to_string()),
            attributes: self.attributes,
            ..Default::default()
        };
        self.context.apply(&mut span);
        span
    }
}

fn read_item(i: usize, item: &Value, opts: &NormalizeOptions) -> Result<Item, Rejection> {
    let obj = item.as_object().ok_or_else(|| Rejection {
        path: format!("data[{i}]"),
        reason: format!("expected a trace or span object, got {}", short(item)),
    })?;
    let object = match obj.get("object") {
        Some(Value::String(s)) => s.as_str(),
        // Tolerate a missing `object` when the shape is unmistakable.
        None | Some(Value::Null) if obj.contains_key("span_data") => "trace.span",
        None | Some(Value::Null) if obj.contains_key("workflow_name") => "trace",
        None | Some(Value::Null) => {
            return Err(Rejection {
                path: format!("data[{i}].object"),
                reason: "missing object type: expected \"trace\" or \"trace.span\"".into(),
            })
        }
        Some(other) => {
            return Err(Rejection {
                path: format!("data[{i}].object"),
                reason: format!(
                    "invalid object type {}: expected \"trace\" or \"trace.span\"",
                    short(other)
                ),
            })
        }
    };
    match object {
        "trace" => read_trace(i, obj).map(Item::Trace),
        "trace.span" => read_span(i, obj, opts).map(|s| Item::Span(Box::new(s))),
        other => Err(Rejection {
            path: format!("data[{i}].object"),
            reason: format!("unknown object type {other:?}: expected \"trace\" or \"trace.span\""),
        }),
    }
}

fn read_trace(i: usize, obj: &Map<String, Value>) -> Result<TraceItem, Rejection> {
    let at = |field: &str| format!("data[{i}].{field}");
    let raw_id = required_id(obj, "id", "trace id").map_err(|reason| Rejection {
        path: at("id"),
        reason,
    })?;
    let mut attributes = Attributes::new();
    attributes.insert("openai_agents.trace_id".into(), raw_id.into());
    attributes.insert("openai_agents.type".into(), "trace".into());
    keep_unknown_fields(obj, &TRACE_FIELDS, &mut attributes);

    let name = match obj.get("workflow_name") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        None | Some(Value::Null) => DEFAULT_WORKFLOW_NAME.to_string(),
        Some(other) => {
            attributes.insert("openai_agents.workflow_name".into(), other.clone());
            DEFAULT_WORKFLOW_NAME.to_string()
        }
    };
    let mut context = TraceContext::default();
    match obj.get("group_id") {
        None | Some(Value::Null) => {}
        Some(v) => match scalar_text(v) {
            Some(s) => context.session_id = Some(s),
            None => {
                attributes.insert("openai_agents.group_id".into(), v.clone());
            }
        },
    }
    match obj.get("metadata") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            context.metadata = m.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            context.user_id = m.get("user_id").and_then(scalar_text);
        }
        Some(other) => {
            attributes.insert("openai_agents.metadata".into(), other.clone());
        }
    }
    Ok(TraceItem {
        raw_id: raw_id.to_string(),
        trace_id: TraceId::from_foreign(raw_id),
        name,
        context,
        attributes,
    })
}

fn read_span(
    i: usize,
    obj: &Map<String, Value>,
    opts: &NormalizeOptions,
) -> Result<Span, Rejection> {
    let at = |field: &str| format!("data[{i}].{field}");
    let reject = |field: &str| {
        let path = at(field);
        move |reason: String| Rejection { path, reason }
    };
    let raw_id = required_id(obj, "id", "span id").map_err(reject("id"))?;
    let raw_trace = required_id(obj, "trace_id", "trace id").map_err(reject("trace_id"))?;
    let raw_parent = match obj.get("parent_id") {
        None | Some(Value::Null) => None,
        Some(_) => Some(required_id(obj, "parent_id", "parent id").map_err(reject("parent_id"))?),
    };
    let start = match obj.get("started_at") {
        None | Some(Value::Null) => return Err(reject("started_at")("missing start time".into())),
        Some(v) => parse_time(v).map_err(reject("started_at"))?,
    };
    let end = match obj.get("ended_at") {
        None | Some(Value::Null) => None,
        Some(v) => Some(parse_time(v).map_err(reject("ended_at"))?),
    };

    let trace_id = TraceId::from_foreign(raw_trace);
    let mut span = Span {
        trace_id,
        span_id: SpanId::from_foreign(raw_id),
        // A top-level span hangs under the synthetic root of its trace.
        parent_span_id: Some(SpanId::from_foreign(raw_parent.unwrap_or(raw_trace))),
        start_time: start,
        end_time: end,
        project: opts.default_project.clone(),
        source: Some(SOURCE.to_string()),
        ..Default::default()
    };
    let attrs = &mut span.attributes;
    attrs.insert("openai_agents.trace_id".into(), raw_trace.into());
    attrs.insert("openai_agents.span_id".into(), raw_id.into());
    if let Some(p) = raw_parent {
        attrs.insert("openai_agents.parent_id".into(), p.into());
    }
    keep_unknown_fields(obj, &SPAN_FIELDS, attrs);

    apply_span_data(&mut span, obj.get("span_data").unwrap_or(&Value::Null));
    apply_error(&mut span, obj.get("error").unwrap_or(&Value::Null));
    Ok(span)
}

/// Maps `span_data` onto the span: kind, name, model fields, payloads, raw attributes.
fn apply_span_data(span: &mut Span, data: &Value) {
    let Value::Object(fields) = data else {
        span.name = "span".into();
        if !data.is_null() {
            span.attributes
                .insert("openai_agents.span_data".into(), data.clone());
        }
        return;
    };
    let text = |key: &str| fields.get(key).and_then(Value::as_str).map(str::to_string);
    let ty = fields.get("type").and_then(Value::as_str).unwrap_or("");
    // Set when the type-specific mapping has already placed `input` / `output`.
    let mut input_done = false;
    let mut output_done = false;

    match ty {
        "agent" => {
            span.kind = SpanKind::Agent;
            span.name = text("name").unwrap_or_else(|| "agent".into());
            span.agent_name = text("name");
        }
        "generation" => {
            read_model_call(span, fields);
            span.name = "generation".into();
            if let Some(v) = fields.get("input") {
                input_done = read_messages(v, &mut span.input_messages, &mut span.input);
            }
            if let Some(v) = fields.get("output") {
                output_done = read_messages(v, &mut span.output_messages, &mut span.output);
            }
        }
        "response" => {
            read_model_call(span, fields);
            span.name = "response".into();
            if let Some(id) = fields.get("response_id").filter(|v| !v.is_null()) {
                span.response_id = id.as_str().filter(|s| !s.trim().is_empty()).map(Into::into);
                span.attributes
                    .insert("gen_ai.response.id".into(), id.clone());
            }
        }
        "function" => {
            span.kind = SpanKind::Tool;
            span.name = text("name").unwrap_or_else(|| "function".into());
            span.tool = Some(ToolInfo {
                name: text("name"),
                ..Default::default()
            });
        }
        "handoff" => {
            span.kind = SpanKind::Handoff;
            let from = text("from_agent");
            let to = text("to_agent");
            span.name = format!(
                "handoff: {} → {}",
                from.as_deref().unwrap_or("?"),
                to.as_deref().unwrap_or("?")
            );
            if let Some(from) = from {
                span.attributes
                    .insert("handoff.from_agent".into(), from.into());
            }
            if let Some(to) = to {
                span.attributes.insert("handoff.to_agent".into(), to.into());
            }
        }
        "guardrail" => {
            span.kind = SpanKind::Guardrail;
            span.name = text("name").unwrap_or_else(|| "guardrail".into());
            if let Some(t) = fields.get("triggered").and_then(Value::as_bool) {
                span.attributes
                    .insert("guardrail.triggered".into(), t.into());
            }
        }
        "custom" => {
            span.kind = SpanKind::Span;
            span.name = text("name").unwrap_or_else(|| "custom".into());
            let inner = fields.get("data").and_then(Value::as_object);
            let inner_text = |key: &str| inner.and_then(|d| d.get(key)).and_then(Value::as_str);
            match inner_text("sdk_span_type") {
                // One `Runner.run` inside the workflow: the trace object is already the
                // pipeline, so a second pipeline span would only repeat it.
                Some("task") => {
                    if let Some(n) = inner_text("name").filter(|n| !n.is_empty()) {
                        span.name = n.to_string();
                    }
                }
                Some("turn") => {
                    if let Some(n) = inner.and_then(|d| d.get("turn")).and_then(Value::as_u64) {
                        span.name = format!("turn {n}");
                    }
                    span.agent_name = inner_text("agent_name").map(str::to_string);
                }
                _ => {}
            }
        }
        "mcp_tools" => {
            span.kind = SpanKind::Span;
            span.name = match text("server") {
                Some(server) => format!("mcp_tools: {server}"),
                None => "mcp_tools".into(),
            };
        }
        "transcription" | "speech" => {
            read_model_call(span, fields);
            span.name = ty.to_string();
            if ty == "speech" {
                let first = fields
                    .get("first_content_at")
                    .and_then(Value::as_str)
                    .and_then(|s| Timestamp::parse_rfc3339(s).ok());
                span.ttft_ns = first
                    .filter(|f| *f >= span.start_time)
                    .map(|f| f.0 - span.start_time.0);
            }
        }
        "speech_group" => {
            span.kind = SpanKind::Span;
            span.name = "speech_group".into();
        }
        _ => {
            span.kind = SpanKind::Span;
            span.name = text("name")
                .or_else(|| (!ty.is_empty()).then(|| ty.to_string()))
                .unwrap_or_else(|| "span".into());
        }
    }

    if !input_done {
        span.input = fields.get("input").and_then(payload);
    }
    if !output_done {
        span.output = fields.get("output").and_then(payload);
    }
    if let Some(t) = fields.get("type").filter(|v| !v.is_null()) {
        span.attributes
            .insert("openai_agents.type".into(), t.clone());
    }
    let raw: Map<String, Value> = fields
        .iter()
        .filter(|(k, _)| k.as_str() != "input" && k.as_str() != "output")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    span.attributes
        .insert("openai_agents.span_data".into(), Value::Object(raw));
}

/// Fields shared by the model-call types (generation, response, transcription, speech).
fn read_model_call(span: &mut Span, fields: &Map<String, Value>) {
    span.kind = SpanKind::Llm;
    span.provider = Some("openai".into());
    span.request_model = fields
        .get("model")
        .and_then(Value::as_str)
        .map(str::to_string);
    if let Some(Value::Object(config)) = fields.get("model_config") {
        // The SDK dumps every model setting, unset ones as null: only the set ones were sent.
        span.model_parameters = config
            .iter()
            .filter(|(k, v)| !v.is_null() && crate::conventions::is_model_parameter(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
    }
    match fields.get("usage") {
        None | Some(Value::Null) => {}
        Some(u) => match read_usage(u) {
            Ok(usage) => span.usage = Some(usage),
            Err(e) => {
                span.attributes
                    .insert("openai_agents.usage_error".into(), e.into());
            }
        },
    }
}

/// Agents usage (Responses semantics) or, failing that, any provider usage shape.
fn read_usage(v: &Value) -> Result<Usage, String> {
    let responses_shape = v
        .as_object()
        .is_some_and(|o| o.contains_key("input_tokens") || o.contains_key("output_tokens"));
    let read = if responses_shape {
        openai_responses_usage(v)
    } else {
        parse_provider_usage(v).map(|(u, _)| u)
    };
    read.map_err(|e| e.to_string())
}

/// Sets status, message and error type from the span's `error`.
fn apply_error(span: &mut Span, error: &Value) {
    match error {
        Value::Null => {
            span.status = if span.end_time.is_some() {
                Status::Ok
            } else {
                Status::Unset
            };
            return;
        }
        Value::Object(e) => {
            span.status = Status::Error;
            span.status_message = e.get("message").and_then(scalar_text);
            let data = e.get("data").and_then(Value::as_object);
            let field = |key: &str| data.and_then(|d| d.get(key)).and_then(Value::as_str);
            // The SDK usually puts `str(exception)` in `data.error`: only a class-like word
            // (`TimeoutError`) is an error type; a sentence stays in the raw attribute.
            span.error_type = field("type")
                .filter(|s| !s.is_empty())
                .or_else(|| field("error").filter(|s| looks_like_error_type(s)))
                .map(str::to_string);
        }
        other => {
            span.status = Status::Error;
            span.status_message = Some(scalar_text(other).unwrap_or_else(|| other.to_string()));
        }
    }
    span.attributes
        .insert("openai_agents.error".into(), error.clone());
}

/// True for an identifier-like error class (`RateLimitError`, `openai.APITimeoutError`).
fn looks_like_error_type(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && s.chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | ':' | '-'))
}

/// Reads chat-completions messages into `messages`; returns true when `value` is fully
/// represented there. When the conversion loses anything (unknown fields, image parts, …) the
/// raw value is also kept as the `payload`, and true is returned too.
fn read_messages(
    value: &Value,
    messages: &mut Vec<Message>,
    payload_slot: &mut Option<Payload>,
) -> bool {
    let Value::Array(items) = value else {
        return false;
    };
    if !items.iter().all(Value::is_object) {
        return false;
    }
    let mut lossless = true;
    *messages = items
        .iter()
        .filter_map(Value::as_object)
        .map(|m| chat_message(m, &mut lossless))
        .collect();
    if !lossless {
        *payload_slot = Some(Payload::from_value(value.clone()));
    }
    true
}

fn chat_message(m: &Map<String, Value>, lossless: &mut bool) -> Message {
    let mut msg = Message::default();
    for (key, v) in m {
        if is_blank(v) {
            continue;
        }
        match key.as_str() {
            "role" => msg.role = plain_text(v, lossless),
            "name" => msg.name = plain_text(v, lossless),
            "tool_call_id" => msg.tool_call_id = plain_text(v, lossless),
            "content" => msg.content = content_text(v, lossless),
            "tool_calls" => msg.tool_calls = tool_calls(v, lossless),
            _ => *lossless = false,
        }
    }
    msg
}

/// Message content: a string, or the text parts of a list of parts joined with newlines.
fn content_text(v: &Value, lossless: &mut bool) -> Option<String> {
    let parts = match v {
        Value::String(s) => return Some(s.clone()),
        Value::Array(parts) => parts,
        _ => {
            *lossless = false;
            return None;
        }
    };
    let mut texts = Vec::new();
    for part in parts {
        match part {
            Value::String(s) => texts.push(s.as_str()),
            Value::Object(p) => {
                let kind = p.get("type").and_then(Value::as_str);
                let text = p.get("text").and_then(Value::as_str);
                let only_text = p
                    .iter()
                    .all(|(k, v)| matches!(k.as_str(), "type" | "text") || is_blank(v));
                match (kind, text) {
                    (Some("text" | "input_text" | "output_text") | None, Some(t)) => {
                        texts.push(t);
                        *lossless &= only_text;
                    }
                    _ => *lossless = false,
                }
            }
            _ => *lossless = false,
        }
    }
    (!texts.is_empty()).then(|| texts.join("\n"))
}

fn tool_calls(v: &Value, lossless: &mut bool) -> Vec<ToolCallRef> {
    let Value::Array(calls) = v else {
        *lossless = false;
        return Vec::new();
    };
    let mut out = Vec::with_capacity(calls.len());
    for call in calls {
        let Value::Object(c) = call else {
            *lossless = false;
            continue;
        };
        let mut r = ToolCallRef::default();
        for (key, v) in c {
            if is_blank(v) {
                continue;
            }
            match (key.as_str(), v) {
                ("id", _) => r.id = plain_text(v, lossless),
                ("type", Value::String(t)) if t == "function" => {}
                ("function", Value::Object(f)) => {
                    for (fk, fv) in f {
                        match fk.as_str() {
                            _ if is_blank(fv) => {}
                            "name" => r.name = plain_text(fv, lossless),
                            "arguments" => {
                                r.arguments = Some(match fv {
                                    Value::String(s) => s.clone(),
                                    other => other.to_string(),
                                });
                            }
                            _ => *lossless = false,
                        }
                    }
                }
                _ => *lossless = false,
            }
        }
        out.push(r);
    }
    out
}

/// A string field; anything else is rendered as JSON and marks the conversion lossy.
fn plain_text(v: &Value, lossless: &mut bool) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        other => {
            *lossless = false;
            Some(other.to_string())
        }
    }
}

/// Null or an empty array: carries nothing (model dumps are full of both).
fn is_blank(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// An input/output value as a payload: text for strings, structured otherwise; null is none.
fn payload(v: &Value) -> Option<Payload> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(Payload::from_text(s, None)),
        other => Some(Payload::from_value(other.clone())),
    }
}

/// A string, or a number rendered as text.
fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A required, non-empty string id field.
fn required_id<'a>(obj: &'a Map<String, Value>, key: &str, what: &str) -> Result<&'a str, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Err(format!("missing {what}")),
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.as_str()),
        Some(other) => Err(format!(
            "invalid {what} {}: expected a non-empty string",
            short(other)
        )),
    }
}

fn parse_time(v: &Value) -> Result<Timestamp, String> {
    match v {
        Value::String(s) => Timestamp::parse_rfc3339(s).map_err(|e| e.to_string()),
        other => Err(format!(
            "invalid time {}: expected an RFC 3339 string",
            short(other)
        )),
    }
}

/// Keeps fields the mapping does not know as `openai_agents.<field>` (secrets excepted).
fn keep_unknown_fields(obj: &Map<String, Value>, known: &[&str], attrs: &mut Attributes) {
    for (key, v) in obj {
        if known.contains(&key.as_str()) || v.is_null() || key.contains("api_key") {
            continue;
        }
        attrs.insert(format!("openai_agents.{key}"), v.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TRACE: &str = "trace_0123456789abcdef0123456789abcdef";
    const T0: &str = "2025-06-01T10:00:00.000000+00:00";
    const T1: &str = "2025-06-01T10:00:01.500000+00:00";

    fn opts() -> NormalizeOptions {
        NormalizeOptions {
            received_at: Timestamp::parse_rfc3339("2025-06-01T12:00:00Z").unwrap(),
            default_project: Some("proj".into()),
        }
    }

    fn span_item(id: &str, parent: Option<&str>, data: Value) -> Value {
        json!({"object": "trace.span", "id": id, "trace_id": TRACE, "parent_id": parent,
            "started_at": T0, "ended_at": T1, "span_data": data, "error": null})
    }

    fn one(data: Value) -> Span {
        let body = json!({"data": [span_item("span_aaaaaaaaaaaaaaaaaaaaaaaa", None, data)]});
        let n = normalize_export(&body, &opts()).unwrap();
        assert!(n.rejected.is_empty(), "{:?}", n.rejected);
        assert_eq!(n.spans.len(), 1);
        n.spans.into_iter().next().unwrap()
    }

    #[test]
    fn each_type_maps_to_its_kind_and_name() {
        let cases = [
            (
                json!({"type": "agent", "name": "Triage", "handoffs": [], "tools": [], "output_type": "str"}),
                SpanKind::Agent,
                "Triage",
            ),
            (
                json!({"type": "generation", "model": "gpt-4o"}),
                SpanKind::Llm,
                "generation",
            ),
            (
                json!({"type": "response", "response_id": "resp_1", "usage": null}),
                SpanKind::Llm,
                "response",
            ),
            (
                json!({"type": "function", "name": "lookup", "input": "{}", "output": "ok", "mcp_data": null}),
                SpanKind::Tool,
                "lookup",
            ),
            (
                json!({"type": "handoff", "from_agent": "A", "to_agent": "B"}),
                SpanKind::Handoff,
                "handoff: A → B",
            ),
            (
                json!({"type": "guardrail", "name": "pii", "triggered": true}),
                SpanKind::Guardrail,
                "pii",
            ),
            (
                json!({"type": "custom", "name": "cache", "data": {"hit": true}}),
                SpanKind::Span,
                "cache",
            ),
            (
                json!({"type": "custom", "name": "task", "data": {"sdk_span_type": "task", "name": "Run"}}),
                SpanKind::Span,
                "Run",
            ),
            (
                json!({"type": "custom", "name": "turn", "data": {"sdk_span_type": "turn", "turn": 2, "agent_name": "A"}}),
                SpanKind::Span,
                "turn 2",
            ),
            (
                json!({"type": "mcp_tools", "server": "files", "result": ["read"]}),
                SpanKind::Span,
                "mcp_tools: files",
            ),
            (
                json!({"type": "transcription", "input": {"data": "AAAA", "format": "pcm"}, "output": "hi", "model": "whisper-1"}),
                SpanKind::Llm,
                "transcription",
            ),
            (
                json!({"type": "speech", "input": "hi", "output": {"data": "AAAA", "format": "pcm"}, "model": "tts-1"}),
                SpanKind::Llm,
                "speech",
            ),
            (
                json!({"type": "speech_group", "input": "hi"}),
                SpanKind::Span,
                "speech_group",
            ),
        ];
        for (data, kind, name) in cases {
            let s = one(data.clone());
            assert_eq!((s.kind, s.name.as_str()), (kind, name), "{data}");
            assert_eq!(s.source.as_deref(), Some("openai_agents"));
            assert_eq!(s.project.as_deref(), Some("proj"));
            assert_eq!(s.status, Status::Ok);
            assert_eq!(s.attributes["openai_agents.type"], data["type"]);
            let raw = &s.attributes["openai_agents.span_data"];
            assert!(
                raw.get("input").is_none() && raw.get("output").is_none(),
                "{raw}"
            );
            assert!(s.cost.is_none());
        }
    }

    #[test]
    fn type_specific_fields() {
        let s = one(
            json!({"type": "function", "name": "lookup", "input": "{\"id\": 7}",
            "output": "found", "mcp_data": {"server": "billing"}}),
        );
        assert_eq!(s.tool.unwrap().name.as_deref(), Some("lookup"));
        assert_eq!(s.input.unwrap().value, json!({"id": 7}));
        assert_eq!(s.output.unwrap().value, json!("found"));
        assert_eq!(
            s.attributes["openai_agents.span_data"]["mcp_data"]["server"],
            "billing"
        );

        let s = one(json!({"type": "handoff", "from_agent": "A", "to_agent": "B"}));
        assert_eq!(s.attributes["handoff.from_agent"], "A");
        assert_eq!(s.attributes["handoff.to_agent"], "B");

        let s = one(json!({"type": "guardrail", "name": "pii", "triggered": false}));
        assert_eq!(s.attributes["guardrail.triggered"], false);

        let s = one(json!({"type": "response", "response_id": "resp_1", "usage": null}));
        assert_eq!(s.attributes["gen_ai.response.id"], "resp_1");
        assert_eq!(s.response_id.as_deref(), Some("resp_1"));
        assert_eq!(s.provider.as_deref(), Some("openai"));
        assert!(s.usage.is_none());

        let s = one(json!({"type": "speech", "input": "hello", "model": "tts-1",
            "output": {"data": "AAAA", "format": "pcm"}, "model_config": {"voice": "alloy", "speed": null},
            "first_content_at": "2025-06-01T10:00:00.250000+00:00"}));
        assert_eq!(s.ttft_ns, Some(250_000_000));
        assert_eq!(s.request_model.as_deref(), Some("tts-1"));
        assert_eq!(
            s.model_parameters.len(),
            1,
            "null settings are not parameters"
        );
        assert_eq!(s.input.unwrap().value, json!("hello"));
        assert_eq!(s.output.unwrap().value["format"], "pcm");
    }

    #[test]
    fn task_usage_is_not_span_usage() {
        let s = one(
            json!({"type": "custom", "name": "task", "data": {"sdk_span_type": "task",
            "name": "Run", "usage": {"input_tokens": 100, "output_tokens": 10}}}),
        );
        assert!(s.usage.is_none());
        assert_eq!(
            s.attributes["openai_agents.span_data"]["data"]["usage"]["input_tokens"],
            100
        );
    }

    #[test]
    fn usage_keeps_cached_inside_input_and_reasoning_inside_output() {
        let s = one(json!({"type": "generation", "model": "o3-mini",
            "model_config": {"temperature": 0.2, "top_p": null, "base_url": "http://127.0.0.1:9/v1", "include_usage": true},
            "usage": {"input_tokens": 900, "output_tokens": 300, "requests": 1,
                "input_tokens_details": {"cached_tokens": 512},
                "output_tokens_details": {"reasoning_tokens": 64}}}));
        let u = s.usage.unwrap();
        assert_eq!((u.input_tokens, u.cache_read_tokens), (900, 512));
        assert_eq!((u.output_tokens, u.reasoning_tokens), (300, 64));
        assert_eq!(u.total_tokens, 1200);
        assert_eq!(s.model_parameters.get("temperature"), Some(&json!(0.2)));
        assert!(!s.model_parameters.contains_key("top_p"));
        assert_eq!(
            s.model_parameters.len(),
            1,
            "base_url and include_usage are settings"
        );

        // A chat-completions shaped usage is still read, by its own rule.
        let s = one(
            json!({"type": "generation", "usage": {"prompt_tokens": 10, "completion_tokens": 5}}),
        );
        assert_eq!(s.usage.unwrap().total_tokens, 15);

        // Unreadable usage keeps the span and says why.
        let s = one(json!({"type": "generation", "usage": {"input_tokens": "many"}}));
        assert!(s.usage.is_none());
        assert!(s.attributes["openai_agents.usage_error"]
            .as_str()
            .unwrap()
            .contains("many"));
    }

    #[test]
    fn generation_messages_are_parsed() {
        let s = one(json!({"type": "generation",
            "input": [{"role": "system", "content": "be brief"},
                      {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
                      {"role": "tool", "tool_call_id": "call_1", "content": "42"}],
            "output": [{"role": "assistant", "content": null, "refusal": null, "annotations": [],
                "tool_calls": [{"id": "call_2", "type": "function",
                    "function": {"name": "lookup", "arguments": "{\"q\":1}"}}]}]}));
        assert_eq!(s.input_messages.len(), 3);
        assert_eq!(s.input_messages[1].content.as_deref(), Some("a\nb"));
        assert_eq!(s.input_messages[2].tool_call_id.as_deref(), Some("call_1"));
        let call = &s.output_messages[0].tool_calls[0];
        assert_eq!(call.name.as_deref(), Some("lookup"));
        assert_eq!(call.arguments.as_deref(), Some("{\"q\":1}"));
        assert!(
            s.input.is_none() && s.output.is_none(),
            "lossless: no duplicate payload"
        );

        // An image part cannot live in a message: the raw input is kept beside the messages.
        let s = one(
            json!({"type": "generation", "input": [{"role": "user", "content": [
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]}),
        );
        assert_eq!(
            s.input_messages[0].content.as_deref(),
            Some("what is this?")
        );
        assert_eq!(s.input.unwrap().value[0]["content"][1]["type"], "image_url");

        // Not a message list: kept as a payload.
        let s = one(json!({"type": "generation", "input": "just a prompt"}));
        assert!(s.input_messages.is_empty());
        assert_eq!(s.input.unwrap().value, json!("just a prompt"));
    }

    #[test]
    fn streamed_generation_outputs_come_from_the_next_call() {
        // Two streamed generations of one agent, as openai-agents 0.24 exports them: `[{}]`.
        let agent = "span_000000000000000000000001";
        let gen = |id: &str, start: &str, input: Value| {
            let mut item = span_item(
                id,
                Some(agent),
                json!({"type": "generation",
                "model": "gpt-4o-mini", "input": input, "output": [{}]}),
            );
            item["started_at"] = json!(start);
            item
        };
        let asked = json!([{"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather in Paris?"}]);
        let mut later = asked.as_array().unwrap().clone();
        later.push(
            json!({"role": "assistant", "tool_calls": [{"id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]}),
        );
        later.push(json!({"role": "tool", "tool_call_id": "call_1", "content": "Sunny"}));
        let body = json!({"data": [
            span_item(agent, None, json!({"type": "agent", "name": "weather"})),
            gen("span_000000000000000000000003", "2025-11-21T10:00:02.000000+00:00", json!(later)),
            gen("span_000000000000000000000002", "2025-11-21T10:00:01.000000+00:00", asked),
        ]});
        let n = normalize_export(&body, &opts()).unwrap();
        let [_, last, first] = &n.spans[..] else {
            panic!("{:?}", n.spans)
        };
        assert_eq!(
            first.output_messages.len(),
            1,
            "{:?}",
            first.output_messages
        );
        let call = &first.output_messages[0];
        assert_eq!(call.role.as_deref(), Some("assistant"));
        assert_eq!(call.tool_calls[0].name.as_deref(), Some("get_weather"));
        assert!(first.attributes[OUTPUT_SOURCE_ATTRIBUTE]
            .as_str()
            .unwrap()
            .starts_with("recovered from the input of the next model call"));
        // The run's last call has no successor: no placeholder, and the span says why.
        assert!(last.output_messages.is_empty());
        assert!(last.attributes[OUTPUT_SOURCE_ATTRIBUTE]
            .as_str()
            .unwrap()
            .starts_with("not exported"));
    }

    #[test]
    fn response_spans_take_their_model_from_the_agent_or_the_trace_metadata() {
        let response = |id: &str, parent: &str| {
            span_item(
                id,
                Some(parent),
                json!({"type": "response", "response_id": "resp_1",
                "usage": {"input_tokens": 10, "output_tokens": 2, "total_tokens": 12}}),
            )
        };
        let trace = json!({"object": "trace", "id": TRACE, "workflow_name": "w",
            "metadata": {"model": "gpt-4o-mini"}});
        let body = json!({"data": [
            trace,
            // An agent whose exported data names its model (not openai-agents 0.24).
            span_item("span_000000000000000000000001", None,
                json!({"type": "agent", "name": "planner", "model": "gpt-4.1"})),
            response("span_000000000000000000000002", "span_000000000000000000000001"),
            // An agent without one: the trace metadata names the model.
            span_item("span_000000000000000000000003", None, json!({"type": "agent", "name": "writer"})),
            response("span_000000000000000000000004", "span_000000000000000000000003"),
        ]});
        let n = normalize_export(&body, &opts()).unwrap();
        let by_name = |id: &str| {
            n.spans
                .iter()
                .find(|s| s.span_id == SpanId::from_foreign(id))
                .unwrap()
        };
        let planned = by_name("span_000000000000000000000002");
        assert_eq!(planned.request_model.as_deref(), Some("gpt-4.1"));
        assert_eq!(
            planned.attributes[MODEL_SOURCE_ATTRIBUTE],
            "the configuration of agent \"planner\""
        );
        let written = by_name("span_000000000000000000000004");
        assert_eq!(written.request_model.as_deref(), Some("gpt-4o-mini"));
        assert_eq!(
            written.attributes[MODEL_SOURCE_ATTRIBUTE],
            "the trace metadata \"model\""
        );
        // Without either, the span stays without a model (and so unpriced, saying why).
        let alone = json!({"data": [response("span_000000000000000000000005", "span_000000000000000000000009")]});
        let n = normalize_export(&alone, &opts()).unwrap();
        assert_eq!(n.spans[0].request_model, None);
        assert!(!n.spans[0].attributes.contains_key(MODEL_SOURCE_ATTRIBUTE));
    }

    #[test]
    fn parents_context_and_agent_names() {
        let body = json!({"data": [
            {"object": "trace", "id": TRACE, "workflow_name": "Flow", "group_id": "conv_1",
                "metadata": {"user_id": "u_1", "tier": "gold"}},
            span_item("span_aaaaaaaaaaaaaaaaaaaaaaaa", None, json!({"type": "agent", "name": "Triage"})),
            span_item("span_bbbbbbbbbbbbbbbbbbbbbbbb", Some("span_aaaaaaaaaaaaaaaaaaaaaaaa"),
                json!({"type": "function", "name": "f"})),
        ]});
        let n = normalize_export(&body, &opts()).unwrap();
        assert!(n.rejected.is_empty());
        let [root, agent, tool] = &n.spans[..] else {
            panic!("expected 3 spans, got {}", n.spans.len())
        };
        assert_eq!(root.span_id, SpanId::from_foreign(TRACE));
        assert_eq!(root.trace_id.to_hex(), "0123456789abcdef0123456789abcdef");
        assert_eq!(root.parent_span_id, None);
        assert_eq!(
            (root.kind, root.name.as_str()),
            (SpanKind::Pipeline, "Flow")
        );
        assert_eq!(root.start_time, Timestamp::parse_rfc3339(T0).unwrap());
        assert_eq!(root.end_time, Some(Timestamp::parse_rfc3339(T1).unwrap()));
        assert_eq!(agent.parent_span_id, Some(root.span_id));
        assert_eq!(tool.parent_span_id, Some(agent.span_id));
        assert_eq!(
            tool.attributes["openai_agents.parent_id"],
            "span_aaaaaaaaaaaaaaaaaaaaaaaa"
        );
        for s in &n.spans {
            assert_eq!(s.trace_id, root.trace_id);
            assert_eq!(s.session_id.as_deref(), Some("conv_1"));
            assert_eq!(s.user_id.as_deref(), Some("u_1"));
            assert_eq!(s.metadata["tier"], "gold");
        }
        assert_eq!(root.agent_name, None);
        assert_eq!(agent.agent_name.as_deref(), Some("Triage"));
        assert_eq!(tool.agent_name.as_deref(), Some("Triage"));
    }

    #[test]
    fn spans_without_their_trace_object_still_hang_under_its_root() {
        // The SDK sends the trace object when the trace starts, usually in an earlier batch.
        let body = json!({"data": [span_item("span_aaaaaaaaaaaaaaaaaaaaaaaa", None, json!({"type": "agent", "name": "A"}))]});
        let n = normalize_export(&body, &opts()).unwrap();
        assert_eq!(n.spans.len(), 1, "no root without a trace object");
        assert_eq!(n.spans[0].parent_span_id, Some(SpanId::from_foreign(TRACE)));
        assert!(n.spans[0].session_id.is_none() && n.spans[0].metadata.is_empty());

        let trace = json!({"object": "trace", "id": TRACE, "workflow_name": "Flow"});
        let n = normalize_export(&json!({"data": [trace.clone(), trace]}), &opts()).unwrap();
        assert_eq!(n.spans.len(), 1);
        assert_eq!(n.rejected[0].path, "data[1].id");
        assert!(
            n.rejected[0].reason.starts_with("duplicate trace object"),
            "{}",
            n.rejected[0]
        );
    }

    #[test]
    fn trace_alone_starts_at_received_at() {
        let body = json!({"data": [{"object": "trace", "id": TRACE, "workflow_name": "Flow",
            "group_id": null, "metadata": null}]});
        let n = normalize_export(&body, &opts()).unwrap();
        let root = &n.spans[0];
        assert_eq!(root.start_time, opts().received_at);
        assert_eq!(root.end_time, None);
        assert_eq!(root.status, Status::Unset);
        assert!(root.session_id.is_none() && root.metadata.is_empty());
    }

    #[test]
    fn open_and_failed_spans() {
        let mut item = span_item(
            "span_aaaaaaaaaaaaaaaaaaaaaaaa",
            None,
            json!({"type": "agent", "name": "A"}),
        );
        item["ended_at"] = Value::Null;
        let n = normalize_export(&json!({"data": [item]}), &opts()).unwrap();
        assert_eq!(
            (n.spans[0].end_time, n.spans[0].status),
            (None, Status::Unset)
        );

        let mut item = span_item(
            "span_aaaaaaaaaaaaaaaaaaaaaaaa",
            None,
            json!({"type": "function", "name": "f"}),
        );
        item["error"] = json!({"message": "Error running tool", "data": {"tool_name": "f", "error": "TimeoutError"}});
        let s = &normalize_export(&json!({"data": [item]}), &opts())
            .unwrap()
            .spans[0];
        assert_eq!(s.status, Status::Error);
        assert_eq!(s.status_message.as_deref(), Some("Error running tool"));
        assert_eq!(s.error_type.as_deref(), Some("TimeoutError"));
        assert_eq!(
            s.attributes["openai_agents.error"]["data"]["tool_name"],
            "f"
        );

        let mut item = span_item(
            "span_aaaaaaaaaaaaaaaaaaaaaaaa",
            None,
            json!({"type": "function", "name": "f"}),
        );
        item["error"] =
            json!({"message": "Error running tool", "data": {"error": "connection reset by peer"}});
        let s = &normalize_export(&json!({"data": [item]}), &opts())
            .unwrap()
            .spans[0];
        assert_eq!(s.error_type, None, "a sentence is not an error type");
        item["error"] = json!({"message": "Max turns exceeded", "data": {"type": "MaxTurnsExceeded", "error": "x"}});
        let s = &normalize_export(&json!({"data": [item]}), &opts())
            .unwrap()
            .spans[0];
        assert_eq!(s.error_type.as_deref(), Some("MaxTurnsExceeded"));
        item["error"] = json!("boom");
        let s = &normalize_export(&json!({"data": [item]}), &opts())
            .unwrap()
            .spans[0];
        assert_eq!(
            (s.status, s.status_message.as_deref()),
            (Status::Error, Some("boom"))
        );
    }

    #[test]
    fn bad_items_are_rejected_and_the_rest_continues() {
        let good = span_item(
            "span_aaaaaaaaaaaaaaaaaaaaaaaa",
            None,
            json!({"type": "agent", "name": "A"}),
        );
        let mut bad_time = good.clone();
        bad_time["started_at"] = json!("yesterday");
        let mut bad_id = good.clone();
        bad_id["id"] = json!(42);
        let mut no_trace = good.clone();
        no_trace.as_object_mut().unwrap().remove("trace_id");
        let body = json!({"data": [bad_time, good, bad_id, 7, {"object": "trace.event"}, no_trace,
            {"object": "trace", "id": ""}]});
        let n = normalize_export(&body, &opts()).unwrap();
        assert_eq!(n.spans.len(), 1);
        let got: Vec<String> = n.rejected.iter().map(|r| r.to_string()).collect();
        assert!(
            got[0].starts_with("data[0].started_at: invalid RFC 3339 time \"yesterday\": "),
            "{got:?}"
        );
        assert_eq!(
            got[1],
            "data[2].id: invalid span id 42: expected a non-empty string"
        );
        assert_eq!(got[2], "data[3]: expected a trace or span object, got 7");
        assert_eq!(
            got[3],
            "data[4].object: unknown object type \"trace.event\": expected \"trace\" or \"trace.span\""
        );
        assert_eq!(got[4], "data[5].trace_id: missing trace id");
        assert_eq!(
            got[5],
            "data[6].id: invalid trace id \"\": expected a non-empty string"
        );
        assert_eq!(got.len(), 6);
    }

    #[test]
    fn body_must_be_an_object_with_a_data_array() {
        let e = normalize_export(&json!([1, 2]), &opts()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "expected a JSON object with a \"data\" array, got [1,2]"
        );
        let e = normalize_export(&json!({"items": []}), &opts()).unwrap_err();
        assert_eq!(e.path, "data");
        let e = normalize_export(&json!({"data": {"object": "trace"}}), &opts()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "data: expected an array of traces and spans, got {\"object\":\"trace\"}"
        );
        assert!(normalize_export(&json!({"data": []}), &opts())
            .unwrap()
            .spans
            .is_empty());
    }

    #[test]
    fn unknown_types_and_fields_are_kept() {
        let s = one(json!({"type": "reasoning_summary", "summary": "thought", "input": [1, 2]}));
        assert_eq!(
            (s.kind, s.name.as_str()),
            (SpanKind::Span, "reasoning_summary")
        );
        assert_eq!(
            s.attributes["openai_agents.span_data"]["summary"],
            "thought"
        );
        assert_eq!(s.input.unwrap().value, json!([1, 2]));

        let mut item = span_item("span_aaaaaaaaaaaaaaaaaaaaaaaa", None, Value::Null);
        item["metadata"] = json!({"k": 1});
        item["tracing_api_key"] = json!("sk-secret");
        let s = &normalize_export(&json!({"data": [item]}), &opts())
            .unwrap()
            .spans[0];
        assert_eq!((s.kind, s.name.as_str()), (SpanKind::Span, "span"));
        assert_eq!(s.attributes["openai_agents.metadata"], json!({"k": 1}));
        assert!(!s.attributes.contains_key("openai_agents.tracing_api_key"));
    }

    #[test]
    fn hostile_values_do_not_panic() {
        let weird = [
            json!({"data": [{"object": "trace.span", "id": "x", "trace_id": "y", "started_at": "2025-01-01T00:00:00Z",
                "span_data": {"type": 5, "input": {"a": 1}}, "error": "boom"}]}),
            json!({"data": [{"object": "trace.span", "id": "x", "trace_id": "y", "started_at": "2025-01-01T00:00:00Z",
                "span_data": {"type": "generation", "input": [{"role": 1, "content": {}, "tool_calls": [3, {"function": 2}]}],
                    "usage": [], "model_config": 3}}]}),
            json!({"data": [{"object": "trace.span", "id": "x", "trace_id": "y", "started_at": 5}]}),
            json!({"data": [{"object": "trace.span", "id": "x", "trace_id": "y", "parent_id": [],
                "started_at": "2025-01-01T00:00:00Z"}]}),
            json!({"data": [{"workflow_name": 3, "id": "t", "group_id": 12, "metadata": "m"}, {"span_data": {}}]}),
        ];
        for body in weird {
            let n = normalize_export(&body, &opts()).unwrap();
            assert_eq!(
                n.spans.len() + n.rejected.len(),
                body["data"].as_array().unwrap().len(),
                "{body}"
            );
        }
    }
}
