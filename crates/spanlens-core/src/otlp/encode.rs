//! Canonical spans as OTLP requests, for whatever reads OpenTelemetry: the server's forwarding
//! to other backends, the SDK's direct exporters and the load generator.
//!
//! Every [`Flavor`] sends the attributes an OpenTelemetry GenAI instrumentation sends, which are
//! also the keys the normaliser reads back (`crate::conventions`), so a Spanlens server that
//! receives the request rebuilds the same canonical span:
//! - kind: `gen_ai.operation.name` (`chat`, `embeddings`, `execute_tool`, `invoke_agent`,
//!   `invoke_workflow`, `retrieval`, `rerank`), else the Spanlens SDK's `spanlens.span.kind`
//!   (guardrails, evaluators, handoffs);
//! - model calls: `gen_ai.provider.name`, `gen_ai.request.model`, `gen_ai.response.model`,
//!   `gen_ai.response.id`, `gen_ai.request.*` parameters, `gen_ai.usage.*` token counts (cache
//!   reads and writes, reasoning), `gen_ai.response.time_to_first_chunk`,
//!   `gen_ai.response.finish_reasons`, `gen_ai.input.messages` / `gen_ai.output.messages`;
//! - tools: `gen_ai.tool.name`, `gen_ai.tool.call.id`, `gen_ai.tool.description`,
//!   `gen_ai.tool.call.arguments`, `gen_ai.tool.call.result`; agents: `gen_ai.agent.name`;
//! - everything else: `input.value` / `output.value`, `error.type`, the OTLP status,
//!   `user.id`, `session.id`, `spanlens.tags`, `spanlens.metadata.*`, `spanlens.ratelimit.*`,
//!   and the span's events, links, raw attributes and resource as they are.
//!
//! With [`Encoding::cost`] the computed cost goes along as `spanlens.cost.*` (USD doubles) and
//! the total token count as `gen_ai.usage.total_tokens`. The [`Flavor::Langfuse`] and
//! [`Flavor::LangSmith`] flavours add the attributes those products document for their OTLP
//! endpoints (`langfuse.rs`, `langsmith.rs` beside this file), so types, models, usage, cost,
//! users, sessions and payloads land in their own fields there.
//!
//! Prompt templates and stack traces have no GenAI attribute and are sent only by the flavours
//! that have one.

mod langfuse;
mod langsmith;
pub mod target;

use super::proto::{self, any_value, AnyValue, KeyValue};
use crate::span::{
    Attributes, Cost, Event, Link, Payload, RateLimits, Span, SpanKind, Status, Usage,
};
use serde_json::Value;

/// Which receiver the attributes are shaped for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// Any OpenTelemetry backend: GenAI semantic conventions and `spanlens.*`.
    Otlp,
    /// Langfuse's OTLP endpoint (`/api/public/otel/v1/traces`): adds `langfuse.*`.
    Langfuse,
    /// LangSmith's OTLP endpoint (`/otel/v1/traces`): adds `langsmith.*` and the run fields.
    LangSmith,
}

/// How spans are encoded.
#[derive(Debug, Clone, Copy)]
pub struct Encoding<'a> {
    /// The receiver's attribute dialect.
    pub flavor: Flavor,
    /// Send the computed cost and total tokens (a load generator leaves them out so the
    /// receiver prices the tokens itself).
    pub cost: bool,
    /// The instrumentation scope the spans are sent under.
    pub scope: &'a str,
}

impl Encoding<'static> {
    /// Plain OTLP with costs, under the scope `spanlens`.
    pub const OTLP: Encoding<'static> = Encoding {
        flavor: Flavor::Otlp,
        cost: true,
        scope: "spanlens",
    };
}

/// `spans` as one OTLP `ExportTraceServiceRequest`, in the order given: consecutive spans of
/// the same resource and service share a `ResourceSpans`.
pub fn export_request<S: std::borrow::Borrow<Span>>(
    spans: &[S],
    enc: &Encoding,
) -> proto::ExportTraceServiceRequest {
    let mut resource_spans: Vec<proto::ResourceSpans> = Vec::new();
    let mut current: Option<&Span> = None;
    for (i, s) in spans.iter().enumerate() {
        let s: &Span = s.borrow();
        let same = current.is_some_and(|c| {
            c.service == s.service
                && (std::sync::Arc::ptr_eq(&c.resource, &s.resource) || c.resource == s.resource)
        });
        if !same {
            resource_spans.push(resource_group(s, enc.scope, spans.len() - i));
            current = Some(s);
        }
        if let Some(group) = resource_spans.last_mut() {
            group.scope_spans[0].spans.push(span(s, enc));
        }
    }
    proto::ExportTraceServiceRequest { resource_spans }
}

/// An empty `ResourceSpans` for the resource and service of `s`, with room for `room` spans (the
/// rest of the request: usually one resource), so the spans are not moved as it grows.
fn resource_group(s: &Span, scope: &str, room: usize) -> proto::ResourceSpans {
    let mut attributes = Vec::with_capacity(s.resource.len() + 1);
    if let Some(service) = &s.service {
        attributes.push(kv("service.name", text(service)));
    }
    for (k, v) in s.resource.iter() {
        if !(k == "service.name" && s.service.is_some()) {
            attributes.push(kv_json(k, v));
        }
    }
    proto::ResourceSpans {
        resource: Some(proto::Resource {
            attributes,
            dropped_attributes_count: 0,
        }),
        scope_spans: vec![proto::ScopeSpans {
            scope: Some(proto::InstrumentationScope {
                name: scope.into(),
                ..Default::default()
            }),
            spans: Vec::with_capacity(room),
            schema_url: String::new(),
        }],
        schema_url: String::new(),
    }
}

/// The GenAI operation of a kind, when the conventions name one.
fn operation(kind: SpanKind) -> Option<&'static str> {
    Some(match kind {
        SpanKind::Llm => "chat",
        SpanKind::Embedding => "embeddings",
        SpanKind::Tool => "execute_tool",
        SpanKind::Agent => "invoke_agent",
        SpanKind::Pipeline => "invoke_workflow",
        SpanKind::Retriever => "retrieval",
        SpanKind::Reranker => "rerank",
        SpanKind::Guardrail | SpanKind::Handoff | SpanKind::Evaluator | SpanKind::Span => {
            return None
        }
    })
}

/// One canonical span as an OTLP span.
fn span(s: &Span, enc: &Encoding) -> proto::Span {
    let mut a = Attrs(Vec::with_capacity(s.attributes.len() + 24));
    match operation(s.kind) {
        Some(op) => a.put("gen_ai.operation.name", text(op)),
        None if s.kind != SpanKind::Span => a.put("spanlens.span.kind", text(s.kind.as_str())),
        None => {}
    }
    if s.kind == SpanKind::Agent {
        a.opt("gen_ai.agent.name", s.agent_name.as_deref());
    }
    a.opt("gen_ai.provider.name", s.provider.as_deref());
    a.opt("gen_ai.request.model", s.request_model.as_deref());
    a.opt("gen_ai.response.model", s.response_model.as_deref());
    a.opt("gen_ai.response.id", s.response_id.as_deref());
    for (k, v) in &s.model_parameters {
        a.0.push(kv_json(&format!("gen_ai.request.{k}"), v));
    }
    if let Some(u) = &s.usage {
        usage(&mut a, u);
    }
    if let Some(ns) = s.ttft_ns {
        a.put(
            "gen_ai.response.time_to_first_chunk",
            any_value::Value::DoubleValue(ns as f64 / 1e9),
        );
    }
    if !s.finish_reasons.is_empty() {
        a.put("gen_ai.response.finish_reasons", strings(&s.finish_reasons));
    }
    for (key, messages) in [
        ("gen_ai.input.messages", &s.input_messages),
        ("gen_ai.output.messages", &s.output_messages),
    ] {
        if !messages.is_empty() {
            // The OpenAI-style message JSON the conventions read besides GenAI "parts".
            let json = serde_json::to_string(messages).unwrap_or_default();
            a.put(key, any_value::Value::StringValue(json));
        }
    }
    if let Some(p) = &s.tool_definitions {
        a.put("gen_ai.tool.definitions", text(&payload_text(p)));
    }
    if let Some(t) = &s.tool {
        a.opt("gen_ai.tool.name", t.name.as_deref());
        a.opt("gen_ai.tool.call.id", t.call_id.as_deref());
        a.opt("gen_ai.tool.description", t.description.as_deref());
    }
    let tool = s.kind == SpanKind::Tool;
    for (p, key, generic) in [
        (&s.input, "gen_ai.tool.call.arguments", "input"),
        (&s.output, "gen_ai.tool.call.result", "output"),
    ] {
        let Some(p) = p else { continue };
        if tool {
            a.put(key, text(&payload_text(p)));
        } else {
            a.put(&format!("{generic}.value"), text(&payload_text(p)));
            a.opt(&format!("{generic}.mime_type"), p.mime_type.as_deref());
        }
    }
    a.opt("error.type", s.error_type.as_deref());
    a.opt("user.id", s.user_id.as_deref());
    a.opt("session.id", s.session_id.as_deref());
    if !s.tags.is_empty() {
        a.put("spanlens.tags", strings(&s.tags));
    }
    for (k, v) in &s.metadata {
        a.0.push(kv_json(&format!("spanlens.metadata.{k}"), v));
    }
    if let Some(rl) = &s.rate_limits {
        rate_limits(&mut a, rl);
    }
    if enc.cost {
        if let Some(u) = &s.usage {
            a.int("gen_ai.usage.total_tokens", u.total_tokens);
        }
        if let Some(c) = &s.cost {
            cost(&mut a, c);
        }
    }
    match enc.flavor {
        Flavor::Otlp => {}
        Flavor::Langfuse => langfuse::add(&mut a, s, enc.cost),
        Flavor::LangSmith => langsmith::add(&mut a, s, enc.cost),
    }
    // The raw attributes last, where a key above does not already say the same.
    let mut attributes = a.0;
    let derived = attributes.len();
    for (k, v) in &s.attributes {
        if !attributes[..derived].iter().any(|x| &x.key == k) {
            attributes.push(kv_json(k, v));
        }
    }
    let (code, message) = match s.status {
        Status::Unset => (proto::StatusCode::Unset, ""),
        Status::Ok => (proto::StatusCode::Ok, ""),
        Status::Error => (
            proto::StatusCode::Error,
            s.status_message.as_deref().unwrap_or(""),
        ),
    };
    let otel_kind = match s.kind {
        SpanKind::Llm | SpanKind::Embedding | SpanKind::Reranker => proto::SpanKind::Client,
        _ => proto::SpanKind::Internal,
    };
    proto::Span {
        trace_id: s.trace_id.0.to_vec(),
        span_id: s.span_id.0.to_vec(),
        parent_span_id: s.parent_span_id.map(|p| p.0.to_vec()).unwrap_or_default(),
        name: s.name.clone(),
        kind: otel_kind as i32,
        start_time_unix_nano: s.start_time.0,
        end_time_unix_nano: s.end_time.map_or(0, |t| t.0),
        attributes,
        events: s.events.iter().map(event).collect(),
        links: s.links.iter().map(link).collect(),
        status: Some(proto::Status {
            message: message.to_string(),
            code: code as i32,
        }),
        ..Default::default()
    }
}

fn event(e: &Event) -> proto::Event {
    proto::Event {
        time_unix_nano: e.time.0,
        name: e.name.clone(),
        attributes: key_values(&e.attributes),
        dropped_attributes_count: 0,
    }
}

fn link(l: &Link) -> proto::Link {
    proto::Link {
        trace_id: l.trace_id.0.to_vec(),
        span_id: l.span_id.0.to_vec(),
        attributes: key_values(&l.attributes),
        ..Default::default()
    }
}

/// Token counts under the GenAI names (inclusive counts, as the canonical ones are).
fn usage(a: &mut Attrs, u: &Usage) {
    a.int("gen_ai.usage.input_tokens", u.input_tokens);
    a.int("gen_ai.usage.output_tokens", u.output_tokens);
    for (key, n) in [
        ("gen_ai.usage.cache_read.input_tokens", u.cache_read_tokens),
        (
            "gen_ai.usage.cache_write.input_tokens",
            u.cache_write_tokens,
        ),
        ("gen_ai.usage.reasoning.output_tokens", u.reasoning_tokens),
    ] {
        if n > 0 {
            a.int(key, n);
        }
    }
    if let Some(n) = u.extra.get(Usage::CACHE_WRITE_1H) {
        a.int("spanlens.usage.cache_write_1h_tokens", *n);
    }
}

/// The cost as `spanlens.cost.*` USD amounts (the parts that are not zero, and the total),
/// with where it came from and the price entry that made it.
fn cost(a: &mut Attrs, c: &Cost) {
    let parts = [
        ("input", c.amounts.input),
        ("output", c.amounts.output),
        ("cache_read", c.amounts.cache_read),
        ("cache_write", c.amounts.cache_write),
        ("reasoning", c.amounts.reasoning),
    ];
    for (name, n) in parts {
        if n.0 != 0 {
            a.usd(&format!("spanlens.cost.{name}_usd"), n);
        }
    }
    a.usd("spanlens.cost.total_usd", c.amounts.total);
    let source = match c.source {
        crate::span::CostSource::Reported => "reported",
        crate::span::CostSource::Computed => "computed",
    };
    a.put("spanlens.cost.source", text(source));
    a.opt("spanlens.cost.pricing_id", c.pricing_id.as_deref());
}

/// A rate-limit snapshot under the Spanlens SDK's `spanlens.ratelimit.*` names (resets as
/// integer nanoseconds, which the conventions read as well as RFC 3339).
fn rate_limits(a: &mut Attrs, rl: &RateLimits) {
    let windows = [
        ("requests", &rl.requests),
        ("tokens", &rl.tokens),
        ("input_tokens", &rl.input_tokens),
        ("output_tokens", &rl.output_tokens),
    ];
    for (name, w) in windows
        .into_iter()
        .filter_map(|(n, w)| Some((n, w.as_ref()?)))
    {
        let fields = [
            ("limit", w.limit),
            ("remaining", w.remaining),
            ("reset", w.reset.map(|t| t.0)),
        ];
        for (field, n) in fields.into_iter().filter_map(|(f, n)| Some((f, n?))) {
            a.int(&format!("spanlens.ratelimit.{name}.{field}"), n);
        }
    }
    if let Some(ms) = rl.retry_after_ms {
        a.int("spanlens.ratelimit.retry_after_ms", ms);
    }
}

/// The attributes of one span, in the order they are added.
struct Attrs(Vec<KeyValue>);

impl Attrs {
    fn put(&mut self, key: &str, v: any_value::Value) {
        self.0.push(kv(key, v));
    }

    fn opt(&mut self, key: &str, v: Option<&str>) {
        if let Some(v) = v {
            self.put(key, text(v));
        }
    }

    fn int(&mut self, key: &str, n: u64) {
        self.put(key, int(n));
    }

    fn usd(&mut self, key: &str, n: crate::money::NanoUsd) {
        self.put(key, any_value::Value::DoubleValue(n.as_usd_f64()));
    }

    fn json(&mut self, key: &str, v: &Value) {
        self.put(key, text(&v.to_string()));
    }
}

fn kv(key: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(v) }),
    }
}

fn text(s: &str) -> any_value::Value {
    any_value::Value::StringValue(s.to_string())
}

/// An OTLP integer (signed: a count beyond `i64::MAX` goes as a double).
fn int(n: u64) -> any_value::Value {
    i64::try_from(n).map_or(
        any_value::Value::DoubleValue(n as f64),
        any_value::Value::IntValue,
    )
}

fn strings(xs: &[String]) -> any_value::Value {
    any_value::Value::ArrayValue(proto::ArrayValue {
        values: xs
            .iter()
            .map(|x| AnyValue {
                value: Some(text(x)),
            })
            .collect(),
    })
}

/// A payload as a JSON value (its text when it is text).
fn payload_value(p: &Payload) -> Value {
    p.value.clone()
}

/// A payload as the text an instrumentation records: strings as they are, JSON serialised.
fn payload_text(p: &Payload) -> String {
    match &p.value {
        Value::String(s) => s.clone(),
        v => v.to_string(),
    }
}

fn key_values(attrs: &Attributes) -> Vec<KeyValue> {
    attrs.iter().map(|(k, v)| kv_json(k, v)).collect()
}

fn kv_json(key: &str, v: &Value) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(any(v)),
    }
}

/// A JSON value as an OTLP value: objects become key/value lists, `null` an empty value
/// (an unset oneof, which the decoder reads back as `null`).
fn any(v: &Value) -> AnyValue {
    let value = match v {
        Value::Null => None,
        Value::Bool(b) => Some(any_value::Value::BoolValue(*b)),
        Value::Number(n) => Some(match n.as_i64() {
            Some(i) => any_value::Value::IntValue(i),
            None => any_value::Value::DoubleValue(n.as_f64().unwrap_or(0.0)),
        }),
        Value::String(s) => Some(text(s)),
        Value::Array(xs) => Some(any_value::Value::ArrayValue(proto::ArrayValue {
            values: xs.iter().map(any).collect(),
        })),
        Value::Object(m) => Some(any_value::Value::KvlistValue(proto::KeyValueList {
            values: m.iter().map(|(k, v)| kv_json(k, v)).collect(),
        })),
    };
    AnyValue { value }
}

#[cfg(test)]
mod tests;
