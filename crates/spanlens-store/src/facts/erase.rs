//! What clearing a span's payloads removes ([`crate::Expiry::Payloads`]), the same on every
//! backend: the canonical payload fields, the source attributes the conventions read them from
//! (a span keeps every source attribute verbatim, so clearing only the canonical fields would
//! leave the prompt in `attributes`), and the GenAI content events, whether stored in the span
//! or apart as log events (a read merges those back into the messages).

use serde_json::Value;
use spanlens_core::conventions::events::{EVENT_CONTENT, OPERATION_DETAILS};
use spanlens_core::{Event, Span};

/// Source attributes that hold a payload, by exact key (OpenInference, Traceloop, Langfuse,
/// OpenTelemetry GenAI, current and legacy).
const PAYLOAD_KEYS: &[&str] = &[
    "input.value",
    "output.value",
    "traceloop.entity.input",
    "traceloop.entity.output",
    "langfuse.observation.input",
    "langfuse.observation.output",
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.system_instructions",
    "gen_ai.tool.definitions",
    "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result",
    "gen_ai.prompt",
    "gen_ai.completion",
    "llm.prompt_template.variables",
    "llm.tools",
];

/// Source attributes that hold a payload, by key prefix (one attribute per message part).
const PAYLOAD_PREFIXES: &[&str] = &[
    "llm.input_messages.",
    "llm.output_messages.",
    "gen_ai.prompt.",
    "gen_ai.completion.",
    "traceloop.prompt.template_variables.",
];

/// GenAI events that hold nothing but content (a message, a choice, a whole prompt or
/// completion): dropped whole.
const CONTENT_EVENTS: &[&str] = &[
    "gen_ai.system.message",
    "gen_ai.user.message",
    "gen_ai.assistant.message",
    "gen_ai.tool.message",
    "gen_ai.choice",
    "gen_ai.content.prompt",
    "gen_ai.content.completion",
];

fn is_payload_key(k: &str) -> bool {
    PAYLOAD_KEYS.contains(&k) || PAYLOAD_PREFIXES.iter().any(|p| k.starts_with(p))
}

/// What clearing did to one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scrubbed {
    /// Nothing in it was content.
    Kept,
    /// Content was removed from it; the rest (usage, models, scores) stays.
    Changed,
    /// It held only content: drop it.
    Dropped,
}

/// Clears the content of one event: a content event is to be dropped, the details event loses
/// its message attributes (in its attributes and in its body), any other event is kept.
pub fn scrub_event(e: &mut Event) -> Scrubbed {
    if CONTENT_EVENTS.contains(&e.name.as_str()) {
        return Scrubbed::Dropped;
    }
    if e.name != OPERATION_DETAILS {
        return Scrubbed::Kept;
    }
    let before = e.attributes.len();
    e.attributes.retain(|k, _| !is_payload_key(k));
    let mut changed = e.attributes.len() != before;
    // A log record's body: a map, or JSON text of one.
    if let Some(body) = e.attributes.get_mut(EVENT_CONTENT) {
        let mut parsed = match body {
            Value::String(s) => serde_json::from_str::<Value>(s).ok(),
            Value::Object(_) => Some(body.take()),
            _ => None,
        };
        if let Some(Value::Object(map)) = &mut parsed {
            let n = map.len();
            map.retain(|k, _| !is_payload_key(k));
            changed |= map.len() != n;
        }
        match (parsed, &*body) {
            (Some(v), Value::String(_)) => *body = Value::String(v.to_string()),
            (Some(v), _) => *body = v,
            (None, _) => {}
        }
    }
    if changed {
        Scrubbed::Changed
    } else {
        Scrubbed::Kept
    }
}

/// Clears the payloads of `span` in place; true when anything was removed.
pub fn clear_payloads(span: &mut Span) -> bool {
    let mut changed = span.input.take().is_some() | span.output.take().is_some();
    changed |= span.tool_definitions.take().is_some();
    changed |= !span.input_messages.is_empty() || !span.output_messages.is_empty();
    span.input_messages.clear();
    span.output_messages.clear();
    if let Some(p) = &mut span.prompt {
        changed |= !p.variables.is_empty();
        p.variables.clear();
    }
    if let Some(t) = &mut span.tool {
        changed |= t.description.take().is_some();
    }
    let before = span.attributes.len();
    span.attributes.retain(|k, _| !is_payload_key(k));
    changed |= span.attributes.len() != before;
    let n = span.events.len();
    span.events.retain_mut(|e| match scrub_event(e) {
        Scrubbed::Kept => true,
        Scrubbed::Changed => {
            changed = true;
            true
        }
        Scrubbed::Dropped => false,
    });
    changed | (span.events.len() != n)
}

/// A stored span body (canonical JSON) with its payloads cleared; `None` when it had none, or
/// when it does not decode (a read reports such a span as unreadable, and it shows nothing).
pub fn clear_body(text: &str) -> Option<String> {
    let mut span: Span = serde_json::from_str(text).ok()?;
    if !clear_payloads(&mut span) {
        return None;
    }
    serde_json::to_string(&span).ok()
}

/// A stored log event (its JSON) with its content cleared: `Ok(None)` when it is to be deleted,
/// `Ok(Some(json))` when it changed, `Err(())` when it stays as it is (no content, or it does
/// not decode).
pub fn clear_log_event(text: &str) -> Result<Option<String>, ()> {
    let mut e: Event = serde_json::from_str(text).map_err(drop)?;
    match scrub_event(&mut e) {
        Scrubbed::Kept => Err(()),
        Scrubbed::Dropped => Ok(None),
        Scrubbed::Changed => serde_json::to_string(&e).map(Some).map_err(drop),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spanlens_core::{Message, Payload, Timestamp};

    #[test]
    fn payloads_go_and_everything_else_stays() {
        let mut s = Span {
            name: "chat".into(),
            input: Some(Payload::from_text("secret question", None)),
            output: Some(Payload::from_text("secret answer", None)),
            input_messages: vec![Message {
                content: Some("hi".into()),
                ..Default::default()
            }],
            model_parameters: [("temperature".to_string(), Value::from(0.5))].into(),
            ..Default::default()
        };
        s.attributes.insert("input.value".into(), "secret".into());
        s.attributes
            .insert("llm.input_messages.0.message.content".into(), "x".into());
        s.attributes.insert("http.method".into(), "POST".into());
        s.events.push(Event {
            name: "gen_ai.user.message".into(),
            time: Timestamp(1),
            attributes: Default::default(),
        });
        s.events.push(Event {
            name: OPERATION_DETAILS.into(),
            time: Timestamp(1),
            attributes: [
                ("gen_ai.input.messages".to_string(), Value::from("[]")),
                ("gen_ai.request.model".to_string(), Value::from("m")),
                (
                    EVENT_CONTENT.to_string(),
                    Value::from(r#"{"gen_ai.output.messages":"x","gen_ai.usage.input_tokens":3}"#),
                ),
            ]
            .into(),
        });
        s.events.push(Event {
            name: "exception".into(),
            time: Timestamp(2),
            attributes: Default::default(),
        });
        assert!(clear_payloads(&mut s));
        assert!(s.input.is_none() && s.output.is_none() && s.input_messages.is_empty());
        assert_eq!(s.attributes.keys().collect::<Vec<_>>(), ["http.method"]);
        assert_eq!(s.events.len(), 2);
        let details = &s.events[0].attributes;
        assert!(details.contains_key("gen_ai.request.model"));
        assert!(!details.contains_key("gen_ai.input.messages"));
        let body = details[EVENT_CONTENT].as_str().unwrap();
        assert!(!body.contains("output.messages") && body.contains("input_tokens"));
        assert_eq!(s.model_parameters.len(), 1);
        assert!(!clear_payloads(&mut s), "a second clearing finds nothing");
    }

    #[test]
    fn bodies_and_log_events() {
        let s = Span {
            trace_id: spanlens_core::TraceId([1; 16]),
            span_id: spanlens_core::SpanId([2; 8]),
            input: Some(Payload::from_text("q", None)),
            ..Default::default()
        };
        let cleared = clear_body(&serde_json::to_string(&s).unwrap()).unwrap();
        assert!(!cleared.contains("\"input\""));
        assert_eq!(clear_body(&cleared), None);
        assert_eq!(clear_body("not json"), None);
        let msg = Event {
            name: "gen_ai.choice".into(),
            time: Timestamp(1),
            attributes: Default::default(),
        };
        assert_eq!(
            clear_log_event(&serde_json::to_string(&msg).unwrap()),
            Ok(None)
        );
        let score = Event {
            name: "gen_ai.evaluation.result".into(),
            ..msg
        };
        assert_eq!(
            clear_log_event(&serde_json::to_string(&score).unwrap()),
            Err(())
        );
    }
}
