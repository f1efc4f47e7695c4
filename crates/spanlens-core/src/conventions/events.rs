//! GenAI events: the content of an LLM call reported as events instead of span attributes.
//!
//! The same events arrive two ways: as span events inside the span, or as OTLP log records that
//! carry the span's trace and span id. Both end up as [`Event`]s of the span, and one function
//! ([`apply_events`]) reads them, so a span reads the same whichever way its events came. A log
//! record's body is kept in the event attribute [`EVENT_CONTENT`], the attribute instrumentations
//! that record these events as span events (Azure AI Inference, Semantic Kernel) put it in.
//!
//! Read (spec files in open-telemetry/semantic-conventions and semantic-conventions-genai):
//! - `gen_ai.client.inference.operation.details` (`model/gen-ai/events.yaml`): the attributes of
//!   an inference span (`gen_ai.input.messages`, `gen_ai.output.messages`,
//!   `gen_ai.system_instructions`, usage, models, …), read as the span's own GenAI attributes;
//! - `gen_ai.system.message`, `gen_ai.user.message`, `gen_ai.assistant.message`,
//!   `gen_ai.tool.message` and `gen_ai.choice` (`model/gen-ai/deprecated/events-deprecated.yaml`):
//!   one message each, in the body (`content`, `role`, `tool_calls`, `id`; a choice has `index`,
//!   `finish_reason` and `message`);
//! - `gen_ai.content.prompt` / `gen_ai.content.completion` (`model/trace/gen-ai.yaml` of older
//!   releases, attributes `gen_ai.prompt` / `gen_ai.completion`, now in
//!   `model/gen-ai/deprecated/registry-deprecated.yaml`): the whole prompt and completion;
//! - `gen_ai.evaluation.result` (`model/gen-ai/events.yaml`): a score ([`event_score`]).
//!
//! Every rule fills only what is still empty: a span's own attributes win over its events, and
//! the newest form (operation details) over the legacy ones.

use super::{genai, messages, Attrs};
use crate::evals::{Score, ScoreSource, ScoreType};
use crate::ids::{SpanId, TraceId};
use crate::span::{Attributes, Event, Message, Payload, Span, SpanKind, Truncation};
use serde_json::{Map, Value};

/// The event attribute holding an event's body (a log record's body, or the JSON text an
/// instrumentation put there).
pub const EVENT_CONTENT: &str = "gen_ai.event.content";

/// The event attribute holding what was cut from a log event before it was stored, moved to the
/// span's `truncated` when the event is merged.
pub const EVENT_TRUNCATED: &str = "spanlens.truncated";

/// The opt-in event with the whole call's details.
pub const OPERATION_DETAILS: &str = "gen_ai.client.inference.operation.details";
/// An evaluation of the span's output.
pub const EVALUATION_RESULT: &str = "gen_ai.evaluation.result";

/// The legacy per-message events of the input, with the role each implies.
const INPUT_MESSAGE_EVENTS: [(&str, &str); 4] = [
    ("gen_ai.system.message", "system"),
    ("gen_ai.user.message", "user"),
    ("gen_ai.assistant.message", "assistant"),
    ("gen_ai.tool.message", "tool"),
];

/// True for events this module reads (and so for span events worth a closer look).
pub fn is_genai_event(name: &str) -> bool {
    name.starts_with("gen_ai.")
}

/// Fills the canonical fields of `span` still empty from the GenAI events among `events`.
pub fn apply_events(span: &mut Span, events: &[Event]) {
    if !events.iter().any(|e| is_genai_event(&e.name)) {
        return;
    }
    for e in events.iter().filter(|e| e.name == OPERATION_DETAILS) {
        let fields = fields(e);
        let a = Attrs::new(&fields);
        if span.kind == SpanKind::Span {
            if let Some(kind) = genai::kind(&a) {
                span.kind = kind;
            }
        }
        genai::apply(span, &a);
    }
    let mut inputs = Vec::new();
    let mut choices: Vec<(i64, Message)> = Vec::new();
    for e in events {
        if let Some((_, role)) = INPUT_MESSAGE_EVENTS.iter().find(|(n, _)| *n == e.name) {
            inputs.push(input_message(&body(e), role));
        } else if e.name == "gen_ai.choice" {
            let b = body(e);
            let index = b.get("index").and_then(Value::as_i64).unwrap_or(i64::MAX);
            choices.push((index, choice_message(&b)));
        }
    }
    if span.input_messages.is_empty() {
        span.input_messages = inputs;
    }
    // Stable: choices without an index keep their order after the indexed ones.
    choices.sort_by_key(|(i, _)| *i);
    if span.finish_reasons.is_empty() {
        span.finish_reasons = choices
            .iter()
            .filter_map(|(_, m)| m.finish_reason.clone())
            .collect();
    }
    if span.output_messages.is_empty() {
        span.output_messages = choices.into_iter().map(|(_, m)| m).collect();
    }
    for e in events {
        let (key, slot) = match e.name.as_str() {
            "gen_ai.content.prompt" => ("gen_ai.prompt", &mut span.input),
            "gen_ai.content.completion" => ("gen_ai.completion", &mut span.output),
            _ => continue,
        };
        if slot.is_none() {
            *slot = Attrs::new(&e.attributes)
                .string(key)
                .map(|t| Payload::from_text(&t, None));
        }
    }
}

/// Merges events that arrived apart from `span` (OTLP log records) into it, as if they had been
/// span events: read by [`apply_events`] (filling only what is empty), appended to the span's
/// events, priced when they gave the span its usage, and held to the span's limits. What was
/// cut from them before they were stored moves to `span.truncated`.
pub fn merge_log_events(span: &mut Span, mut events: Vec<Event>) {
    if events.is_empty() {
        return;
    }
    for e in &mut events {
        if let Some(Value::Array(notes)) = e.attributes.remove(EVENT_TRUNCATED) {
            for n in notes {
                let text = |k: &str| n.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                span.truncated.push(Truncation {
                    field: format!("log event {}: {}", e.name, text("field")),
                    reason: text("reason"),
                });
            }
        }
    }
    let had_usage = span.usage.is_some();
    apply_events(span, &events);
    span.events.extend(events);
    if !had_usage && span.usage.is_some() && span.cost.is_none() {
        crate::pricing::price_span(span, crate::pricing::PriceCatalog::builtin());
    }
    // The times were checked when the events were read; a span that fails now was stored
    // before and is shown as it was stored plus its events.
    let _ = crate::limits::enforce(span);
}

/// The scores of a span's `gen_ai.evaluation.result` events.
pub fn span_scores(span: &Span) -> Vec<Score> {
    span.events
        .iter()
        .filter(|e| e.name == EVALUATION_RESULT)
        .filter_map(|e| event_score(span.trace_id, span.span_id, e).ok())
        .collect()
}

/// The score a `gen_ai.evaluation.result` event reports on the span it belongs to:
/// `gen_ai.evaluation.name`, a numeric `gen_ai.evaluation.score.value` (with the label kept
/// beside it) or else a categorical `gen_ai.evaluation.score.label`, and
/// `gen_ai.evaluation.explanation` as its comment. `Err` says why the event gives none.
pub fn event_score(trace_id: TraceId, span_id: SpanId, e: &Event) -> Result<Score, String> {
    use crate::limits::{MAX_ID_BYTES, MAX_TEXT_BYTES};
    if e.name != EVALUATION_RESULT {
        return Err(format!("{:?} is not an evaluation result", e.name));
    }
    let fields = fields(e);
    let a = Attrs::new(&fields);
    let name = a
        .string("gen_ai.evaluation.name")
        .map(|n| cut(n.trim(), MAX_ID_BYTES))
        .filter(|n| !n.is_empty())
        .ok_or("an evaluation result without gen_ai.evaluation.name")?;
    let value = a.f64("gen_ai.evaluation.score.value");
    let label = a
        .string("gen_ai.evaluation.score.label")
        .map(|l| cut(l.trim(), MAX_ID_BYTES))
        .filter(|l| !l.is_empty());
    let data_type = match (value, &label) {
        (Some(v), _) if v.is_finite() => ScoreType::Numeric,
        (_, Some(_)) => ScoreType::Categorical,
        _ => {
            return Err(format!(
                "evaluation {name:?} has neither a finite score value nor a label"
            ))
        }
    };
    Ok(Score {
        id: None,
        trace_id: Some(trace_id),
        span_id: Some(span_id),
        session_id: None,
        name,
        data_type,
        value: value.filter(|v| v.is_finite()),
        label,
        source: ScoreSource::OtelEvent,
        comment: a
            .string("gen_ai.evaluation.explanation")
            .map(|c| cut(&c, MAX_TEXT_BYTES)),
        author: None,
        created_ns: None,
    })
}

/// `s` cut to `max` bytes on a character boundary.
fn cut(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// An event's attributes with its body's fields added (attributes win): operation details and
/// evaluations are defined as attributes, but some senders put them in the body.
fn fields(e: &Event) -> Attributes {
    let mut out = e.attributes.clone();
    if let Value::Object(b) = body(e) {
        for (k, v) in b {
            out.entry(k).or_insert(v);
        }
    }
    out
}

/// An event's body: [`EVENT_CONTENT`] (a map, or JSON text of one), else the event's own
/// attributes (some instrumentations put `content` and `role` there directly).
fn body(e: &Event) -> Value {
    match e.attributes.get(EVENT_CONTENT) {
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(v @ Value::Object(_)) => v,
            // Plain text as a body is the content itself.
            _ => Value::Object(Map::from_iter([(
                "content".into(),
                Value::String(s.clone()),
            )])),
        },
        Some(v @ Value::Object(_)) => v.clone(),
        Some(Value::Null) | None => Value::Object(
            e.attributes
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        Some(other) => Value::Object(Map::from_iter([("content".into(), other.clone())])),
    }
}

/// Content that is a map with a text (`{"text": "…"}` or Azure's `{"text": {"value": "…"}}`)
/// becomes that text; anything else is left to the message reader.
fn unwrap_content(body: &mut Value) {
    let Some(Value::Object(c)) = body.get("content") else {
        return;
    };
    let text = match c.get("text") {
        Some(Value::String(t)) => Some(t.clone()),
        Some(Value::Object(t)) => t.get("value").and_then(Value::as_str).map(str::to_string),
        _ => None,
    };
    if let (Some(t), Value::Object(b)) = (text, body) {
        b.insert("content".into(), Value::String(t));
    }
}

/// One input message from a legacy message event; the role defaults to the event's.
fn input_message(body: &Value, role: &str) -> Message {
    let mut body = body.clone();
    unwrap_content(&mut body);
    let mut m = with_role(&body, role);
    if role == "tool" && m.tool_call_id.is_none() {
        m.tool_call_id = body.get("id").and_then(Value::as_str).map(str::to_string);
    }
    m
}

/// The output message of a `gen_ai.choice` body: its `message`, with the choice's tool calls
/// and finish reason.
fn choice_message(body: &Value) -> Message {
    let mut msg = match body.get("message") {
        Some(Value::Object(m)) => Value::Object(m.clone()),
        _ => Value::Object(Map::new()),
    };
    if let Value::Object(m) = &mut msg {
        for key in ["tool_calls", "finish_reason"] {
            if let Some(v) = body.get(key) {
                m.entry(key).or_insert_with(|| v.clone());
            }
        }
    }
    unwrap_content(&mut msg);
    with_role(&msg, "assistant")
}

/// A message read from `v`, with `role` when it names none.
fn with_role(v: &Value, role: &str) -> Message {
    let mut v = v.clone();
    if let Value::Object(o) = &mut v {
        if !o.get("role").is_some_and(Value::is_string) {
            o.insert("role".into(), Value::String(role.into()));
        }
    }
    messages::message_from_json(&v).unwrap_or_else(|| Message {
        role: Some(role.into()),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Timestamp;
    use serde_json::json;

    fn event(name: &str, attrs: Value) -> Event {
        Event {
            name: name.into(),
            time: Timestamp(2_000),
            attributes: serde_json::from_value(attrs).unwrap(),
        }
    }

    fn span_with(events: Vec<Event>, attrs: Value) -> Span {
        let mut s = Span {
            trace_id: TraceId([1; 16]),
            span_id: SpanId([2; 8]),
            start_time: Timestamp(1_000),
            events,
            attributes: serde_json::from_value(attrs).unwrap(),
            ..Default::default()
        };
        super::super::enrich(&mut s);
        s
    }

    #[test]
    fn operation_details_fill_messages_usage_and_model() {
        let details = event(
            OPERATION_DETAILS,
            json!({
                "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 120,
                "gen_ai.usage.output_tokens": 30,
                "gen_ai.system_instructions": "[{\"type\": \"text\", \"content\": \"Be brief.\"}]",
                "gen_ai.input.messages": "[{\"role\": \"user\", \"parts\": [{\"type\": \"text\", \"content\": \"Weather in Paris?\"}]}]",
                "gen_ai.output.messages": [{"role": "assistant", "parts": [{"type": "text", "content": "Sunny."}], "finish_reason": "stop"}],
                "gen_ai.tool.definitions": "[{\"type\": \"function\", \"name\": \"get_weather\"}]"
            }),
        );
        let s = span_with(vec![details], json!({}));
        assert_eq!(s.kind, SpanKind::Llm);
        assert_eq!(s.request_model.as_deref(), Some("gpt-4o"));
        assert_eq!(s.provider.as_deref(), Some("openai"));
        let u = s.usage.as_ref().unwrap();
        assert_eq!((u.input_tokens, u.output_tokens), (120, 30));
        let roles: Vec<_> = s.input_messages.iter().map(|m| m.role.as_deref()).collect();
        assert_eq!(roles, [Some("system"), Some("user")]);
        assert_eq!(s.input_messages[0].content.as_deref(), Some("Be brief."));
        assert_eq!(s.output_messages[0].content.as_deref(), Some("Sunny."));
        // The tool definitions become the span's, and stay readable on the event itself.
        assert_eq!(
            s.tool_definitions.as_ref().unwrap().value,
            json!([{"type": "function", "name": "get_weather"}])
        );
        assert!(s.events[0]
            .attributes
            .contains_key("gen_ai.tool.definitions"));
    }

    #[test]
    fn the_span_attributes_win_over_its_events() {
        let details = event(
            OPERATION_DETAILS,
            json!({"gen_ai.request.model": "from-event", "gen_ai.usage.input_tokens": 1,
                "gen_ai.input.messages": [{"role": "user", "content": "event"}]}),
        );
        let s = span_with(
            vec![details],
            json!({"gen_ai.operation.name": "chat", "gen_ai.request.model": "from-span",
                "gen_ai.usage.input_tokens": 500,
                "gen_ai.input.messages": [{"role": "user", "content": "span"}]}),
        );
        assert_eq!(s.request_model.as_deref(), Some("from-span"));
        assert_eq!(s.usage.unwrap().input_tokens, 500);
        assert_eq!(s.input_messages[0].content.as_deref(), Some("span"));
    }

    #[test]
    fn legacy_message_events_become_messages() {
        let events = vec![
            event(
                "gen_ai.system.message",
                json!({"gen_ai.system": "openai", EVENT_CONTENT: {"content": "Be brief."}}),
            ),
            event(
                "gen_ai.user.message",
                json!({EVENT_CONTENT: "{\"content\": \"Weather in Paris?\"}"}),
            ),
            event(
                "gen_ai.assistant.message",
                json!({EVENT_CONTENT: {"tool_calls": [{"id": "call_1", "type": "function",
                    "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]}}),
            ),
            event(
                "gen_ai.tool.message",
                json!({EVENT_CONTENT: {"content": "rainy, 57°F", "id": "call_1"}}),
            ),
            // Two choices, out of order; the second names its role.
            event(
                "gen_ai.choice",
                json!({EVENT_CONTENT: {"index": 1, "finish_reason": "length",
                    "message": {"content": "It rai", "role": "bot"}}}),
            ),
            event(
                "gen_ai.choice",
                json!({EVENT_CONTENT: {"index": 0, "finish_reason": "stop",
                    "message": {"content": {"text": {"value": "It rains."}}}}}),
            ),
            // Content and role as plain span-event attributes.
            event("gen_ai.user.message", json!({"content": "And tomorrow?"})),
        ];
        let s = span_with(events, json!({"gen_ai.operation.name": "chat"}));
        let ins: Vec<_> = s
            .input_messages
            .iter()
            .map(|m| (m.role.as_deref().unwrap(), m.content.as_deref()))
            .collect();
        assert_eq!(
            ins,
            [
                ("system", Some("Be brief.")),
                ("user", Some("Weather in Paris?")),
                ("assistant", None),
                ("tool", Some("rainy, 57°F")),
                ("user", Some("And tomorrow?"))
            ]
        );
        assert_eq!(
            s.input_messages[2].tool_calls[0].name.as_deref(),
            Some("get_weather")
        );
        assert_eq!(s.input_messages[3].tool_call_id.as_deref(), Some("call_1"));
        let outs: Vec<_> = s
            .output_messages
            .iter()
            .map(|m| (m.role.as_deref().unwrap(), m.content.as_deref()))
            .collect();
        assert_eq!(
            outs,
            [("assistant", Some("It rains.")), ("bot", Some("It rai"))]
        );
        assert_eq!(s.finish_reasons, ["stop", "length"]);
    }

    #[test]
    fn legacy_content_events_fill_the_payloads() {
        let s = span_with(
            vec![
                event(
                    "gen_ai.content.prompt",
                    json!({"gen_ai.prompt": "[{\"role\": \"user\", \"content\": \"hi\"}]"}),
                ),
                event(
                    "gen_ai.content.completion",
                    json!({"gen_ai.completion": "hello"}),
                ),
            ],
            json!({"gen_ai.operation.name": "chat"}),
        );
        assert_eq!(s.input.unwrap().value[0]["content"], "hi");
        assert_eq!(s.output.unwrap().value, json!("hello"));
    }

    #[test]
    fn evaluation_results_become_scores() {
        let s = span_with(
            vec![
                event(
                    EVALUATION_RESULT,
                    json!({"gen_ai.evaluation.name": "relevance",
                        "gen_ai.evaluation.score.value": 0.85,
                        "gen_ai.evaluation.score.label": "relevant",
                        "gen_ai.evaluation.explanation": "on topic"}),
                ),
                event(
                    EVALUATION_RESULT,
                    json!({"gen_ai.evaluation.name": "tone",
                        "gen_ai.evaluation.score.label": "polite"}),
                ),
                event(
                    EVALUATION_RESULT,
                    json!({"gen_ai.evaluation.name": "empty"}),
                ),
                event(
                    EVALUATION_RESULT,
                    json!({"gen_ai.evaluation.score.value": 1}),
                ),
            ],
            json!({}),
        );
        let scores = span_scores(&s);
        assert_eq!(scores.len(), 2);
        assert_eq!(scores[0].name, "relevance");
        assert_eq!(scores[0].data_type, ScoreType::Numeric);
        assert_eq!(scores[0].value, Some(0.85));
        assert_eq!(scores[0].label.as_deref(), Some("relevant"));
        assert_eq!(scores[0].comment.as_deref(), Some("on topic"));
        assert_eq!(scores[0].source, ScoreSource::OtelEvent);
        assert_eq!(scores[0].span_id, Some(SpanId([2; 8])));
        assert_eq!(scores[1].data_type, ScoreType::Categorical);
        assert!(scores.iter().all(|sc| sc.validate().is_ok()));
        let e = event_score(s.trace_id, s.span_id, &s.events[2]).unwrap_err();
        assert!(e.contains("neither"), "{e}");
    }

    #[test]
    fn merged_log_events_read_like_span_events() {
        let details = event(
            OPERATION_DETAILS,
            json!({"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
                "gen_ai.provider.name": "openai",
                "gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 100,
                EVENT_TRUNCATED: [{"field": "attributes[\"x\"]", "reason": "300000 bytes, kept 262144"}]}),
        );
        // As a span event, read at ingest.
        let inside = span_with(vec![details.clone()], json!({}));
        // As a log record, merged into a span stored without it.
        let mut merged = span_with(vec![], json!({}));
        merge_log_events(&mut merged, vec![details]);
        assert_eq!(merged.usage, inside.usage);
        assert_eq!(merged.request_model, inside.request_model);
        assert_eq!(merged.kind, SpanKind::Llm);
        assert!(merged.cost.is_some(), "priced from the event's usage");
        assert_eq!(merged.events.len(), 1);
        assert!(!merged.events[0].attributes.contains_key(EVENT_TRUNCATED));
        assert_eq!(
            merged.truncated[0].field,
            format!("log event {OPERATION_DETAILS}: attributes[\"x\"]")
        );
    }
}
