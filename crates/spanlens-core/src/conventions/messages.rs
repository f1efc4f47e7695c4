//! Chat messages from the shapes instrumentations use: OpenAI-style JSON, GenAI "parts" JSON,
//! and flattened attribute lists (OpenInference `llm.input_messages.N.message.*`,
//! Traceloop `gen_ai.prompt.N.*`).

use super::Attrs;
use crate::span::{Attributes, Message, ToolCallRef};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// Reads messages from JSON: an array of OpenAI-style (`role`, `content`, `tool_calls`) or
/// GenAI-style (`role`, `parts`) messages, a `{"messages": [...]}` wrapper, or one message.
pub fn messages_from_json(v: &Value) -> Vec<Message> {
    match v {
        Value::Array(items) => items.iter().filter_map(message_from_json).collect(),
        Value::Object(o) => match o.get("messages") {
            Some(inner @ Value::Array(_)) => messages_from_json(inner),
            _ => message_from_json(v).into_iter().collect(),
        },
        _ => Vec::new(),
    }
}

pub(crate) fn message_from_json(v: &Value) -> Option<Message> {
    let o = v.as_object()?;
    if !o.contains_key("role") && !o.contains_key("content") && !o.contains_key("parts") {
        return None;
    }
    let text = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_string);
    let mut m = Message {
        role: text("role"),
        name: text("name"),
        tool_call_id: text("tool_call_id"),
        finish_reason: text("finish_reason"),
        content: o.get("content").and_then(content_text),
        ..Default::default()
    };
    add_tool_calls(&mut m, o.get("tool_calls"));
    add_parts(&mut m, o.get("parts"));
    Some(m)
}

/// Messages from an attribute holding them as JSON text (as `gen_ai.input.messages` does) or
/// as structured JSON: what [`messages_from_json`] reads from the parsed value, `None` when
/// the text is not JSON.
///
/// Why not parse to a `Value` first: for the usual shape, an array of messages, reading each
/// message into its fields directly skips building and dropping a map per message (a few
/// percent of a span's ingest cost). Any other shape, or a field of an unexpected type, is
/// read through the `Value` as before, so both paths give the same messages.
pub(crate) fn messages_from_attribute(v: &Value) -> Option<Vec<Message>> {
    let Value::String(text) = v else {
        return Some(messages_from_json(v));
    };
    if let Ok(wire) = serde_json::from_str::<Vec<WireMessage>>(text) {
        return Some(
            wire.into_iter()
                .filter_map(WireMessage::into_message)
                .collect(),
        );
    }
    serde_json::from_str(text)
        .ok()
        .map(|v| messages_from_json(&v))
}

/// One message object as read straight from JSON text. Each field is `None` when the key is
/// absent and `Some` when present (even as `null`), because a message is one with a `role`,
/// `content` or `parts` key, whatever their values.
#[derive(Deserialize)]
struct WireMessage {
    #[serde(default, deserialize_with = "present")]
    role: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    tool_call_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    finish_reason: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    content: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    tool_calls: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    parts: Option<Value>,
}

/// `Some` for a key that is present, whatever its value (`Option`'s own impl reads `null` as
/// absent).
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

impl WireMessage {
    /// The message [`message_from_json`] reads from the same object.
    fn into_message(self) -> Option<Message> {
        if self.role.is_none() && self.content.is_none() && self.parts.is_none() {
            return None;
        }
        let mut m = Message {
            role: self.role.flatten(),
            name: self.name.flatten(),
            tool_call_id: self.tool_call_id.flatten(),
            finish_reason: self.finish_reason.flatten(),
            content: self.content.and_then(|c| match c {
                Value::String(s) => Some(s),
                other => content_text(&other),
            }),
            ..Default::default()
        };
        add_tool_calls(&mut m, self.tool_calls.as_ref());
        add_parts(&mut m, self.parts.as_ref());
        Some(m)
    }
}

/// The OpenAI-style `tool_calls` of a message, when they are an array.
fn add_tool_calls(m: &mut Message, tool_calls: Option<&Value>) {
    for tc in tool_calls.and_then(Value::as_array).into_iter().flatten() {
        let f = tc.get("function").unwrap_or(tc);
        m.tool_calls.push(ToolCallRef {
            id: tc.get("id").and_then(Value::as_str).map(str::to_string),
            name: f.get("name").and_then(Value::as_str).map(str::to_string),
            arguments: f.get("arguments").map(value_text),
        });
    }
}

/// GenAI semantic-convention message parts: their text becomes the content when the message
/// has none, tool calls and responses are kept as such.
fn add_parts(m: &mut Message, parts: Option<&Value>) {
    let mut texts = Vec::new();
    for part in parts.and_then(Value::as_array).into_iter().flatten() {
        match part.get("type").and_then(Value::as_str) {
            Some("text") | Some("reasoning") => {
                if let Some(t) = part.get("content").and_then(Value::as_str) {
                    texts.push(t.to_string());
                }
            }
            Some("tool_call") => m.tool_calls.push(ToolCallRef {
                id: part.get("id").and_then(Value::as_str).map(str::to_string),
                name: part.get("name").and_then(Value::as_str).map(str::to_string),
                arguments: part.get("arguments").map(value_text),
            }),
            Some("tool_call_response") => {
                m.tool_call_id = part.get("id").and_then(Value::as_str).map(str::to_string);
                if let Some(r) = part.get("response") {
                    texts.push(value_text(r));
                }
            }
            _ => {}
        }
    }
    if m.content.is_none() && !texts.is_empty() {
        m.content = Some(texts.join("\n"));
    }
}

/// Text of a content value: a string, or the text parts of a multi-part list joined by newlines.
fn content_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => {
            let texts: Vec<&str> = parts
                .iter()
                .filter_map(|p| match p {
                    Value::String(s) => Some(s.as_str()),
                    _ => p.get("text").and_then(Value::as_str),
                })
                .collect();
            (!texts.is_empty()).then(|| texts.join("\n"))
        }
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// OpenInference flattened messages: `<prefix>N.message.role`, `.content`, `.contents.M.message_content.text`,
/// `.tool_calls.K.tool_call.{id,function.name,function.arguments}`, `.name`, `.tool_call_id`.
pub(crate) fn openinference_messages(a: &Attrs, prefix: &str) -> Vec<Message> {
    a.indexed(prefix)
        .into_values()
        .map(|m| {
            let ma = Attrs::new(&m);
            let mut msg = Message {
                role: ma.string("message.role"),
                content: ma.string("message.content"),
                name: ma.string("message.name"),
                tool_call_id: ma.string("message.tool_call_id"),
                ..Default::default()
            };
            if msg.content.is_none() {
                let texts: Vec<String> = ma
                    .indexed("message.contents.")
                    .into_values()
                    .filter_map(|c| Attrs::new(&c).string("message_content.text"))
                    .collect();
                if !texts.is_empty() {
                    msg.content = Some(texts.join("\n"));
                }
            }
            msg.tool_calls = ma
                .indexed("message.tool_calls.")
                .into_values()
                .map(|tc| {
                    let ta = Attrs::new(&tc);
                    ToolCallRef {
                        id: ta.string("tool_call.id"),
                        name: ta.string("tool_call.function.name"),
                        arguments: ta.string("tool_call.function.arguments"),
                    }
                })
                .collect();
            msg
        })
        .collect()
}

/// Traceloop / deprecated GenAI flattened messages: `<prefix>N.role`, `.content`, `.finish_reason`,
/// `.tool_calls.K.{id,name,arguments}`.
pub(crate) fn indexed_messages(a: &Attrs, prefix: &str) -> Vec<Message> {
    let to_msg = |m: Attributes| {
        let ma = Attrs::new(&m);
        Message {
            role: ma.string("role"),
            content: ma.string("content"),
            finish_reason: ma.string("finish_reason"),
            tool_call_id: ma.string("tool_call_id"),
            tool_calls: ma
                .indexed("tool_calls.")
                .into_values()
                .map(|tc| {
                    let ta = Attrs::new(&tc);
                    ToolCallRef {
                        id: ta.string("id"),
                        name: ta.string("name"),
                        arguments: ta.string("arguments"),
                    }
                })
                .collect(),
            ..Default::default()
        }
    };
    let grouped: BTreeMap<usize, Attributes> = a.indexed(prefix);
    grouped.into_values().map(to_msg).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// What the attribute path gives for `text`, checked against parsing to a `Value` first.
    fn same_as_value_path(text: &str) -> Option<Vec<Message>> {
        let fast = messages_from_attribute(&Value::String(text.to_string()));
        let slow = serde_json::from_str::<Value>(text)
            .ok()
            .map(|v| messages_from_json(&v));
        assert_eq!(fast, slow, "{text}");
        fast
    }

    #[test]
    fn the_attribute_path_reads_what_the_value_path_reads() {
        let usual = r#"[{"role":"system","content":"be \"brief\""},
            {"role":"user","content":[{"type":"text","text":"hi"},"there",{"type":"image_url"}]},
            {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function",
                "function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},
            {"role":"assistant","parts":[{"type":"text","content":"Sunny"},
                {"type":"tool_call","id":"c2","name":"f","arguments":{"x":1}},
                {"type":"tool_call_response","id":"c3","response":{"ok":true}}],
                "finish_reason":"stop","extra":{"deep":[1,2,{"x":null}]}},
            {"name":"only a name"},
            {"role":null},
            {"content":5},
            {"parts":"not a list","tool_calls":{"not":"a list"}}]"#;
        assert!(
            serde_json::from_str::<Vec<WireMessage>>(usual).is_ok(),
            "the usual shape takes the typed reading"
        );
        let m = same_as_value_path(usual).unwrap();
        assert_eq!(
            m.len(),
            7,
            "the object without role, content or parts is no message"
        );
        assert_eq!(m[0].content.as_deref(), Some("be \"brief\""));
        assert_eq!(m[1].content.as_deref(), Some("hi\nthere"));
        assert_eq!(m[3].content.as_deref(), Some("Sunny\n{\"ok\":true}"));
        assert_eq!(m[5].content.as_deref(), Some("5"));
        // Shapes the typed reading refuses go through the value, with the same result.
        for text in [
            r#"[{"role":"user","content":"a"},"not a message",7,null]"#,
            r#"[{"role":5,"content":"role is a number"}]"#,
            r#"[{"role":"user","role":"assistant","content":"a key twice"}]"#,
            r#"{"messages":[{"role":"user","content":"wrapped"}]}"#,
            r#"{"role":"user","content":"one message"}"#,
            r#"[{"role":"user","content":"a"}] trailing"#,
            "not json",
            "[]",
            r#""a string""#,
        ] {
            same_as_value_path(text);
        }
        assert_eq!(same_as_value_path("not json"), None);
        let structured = json!([{"role": "user", "content": "already parsed"}]);
        assert_eq!(
            messages_from_attribute(&structured),
            Some(messages_from_json(&structured))
        );
    }

    /// Message-like JSON: objects over the keys messages use, with values of every type.
    fn message_text() -> impl Strategy<Value = String> {
        let scalar = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i32>().prop_map(Value::from),
            "[a-z \"\\\n]{0,12}".prop_map(Value::from),
        ];
        let part = (
            prop_oneof![
                Just("text"),
                Just("reasoning"),
                Just("tool_call"),
                Just("tool_call_response"),
                Just("image")
            ],
            scalar.clone(),
        )
            .prop_map(|(kind, v)| {
                json!({"type": kind, "content": v, "id": "i", "name": "n",
                       "arguments": v, "response": v, "text": v})
            });
        let value = prop_oneof![
            scalar,
            prop::collection::vec(part.clone(), 0..3).prop_map(Value::from),
            part,
        ];
        let key = prop_oneof![
            Just("role"),
            Just("name"),
            Just("content"),
            Just("parts"),
            Just("tool_calls"),
            Just("tool_call_id"),
            Just("finish_reason"),
            Just("other"),
        ];
        let message = prop::collection::vec((key, value), 0..5).prop_map(|fields| {
            // Written by hand so that a key may occur twice, as JSON text allows.
            let body: Vec<String> = fields
                .iter()
                .map(|(k, v)| format!("{}:{v}", Value::from(*k)))
                .collect();
            format!("{{{}}}", body.join(","))
        });
        prop::collection::vec(message, 0..4).prop_map(|m| format!("[{}]", m.join(",")))
    }

    proptest! {
        #[test]
        fn any_message_text_reads_the_same_both_ways(text in message_text()) {
            same_as_value_path(&text);
        }
    }

    #[test]
    fn openai_and_genai_shapes() {
        let v = json!([
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url"}]},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
            {"role": "assistant", "parts": [{"type": "text", "content": "Sunny"},
                {"type": "tool_call", "id": "c2", "name": "f", "arguments": {"x": 1}}], "finish_reason": "stop"},
            "not a message"
        ]);
        let m = messages_from_json(&v);
        assert_eq!(m.len(), 4);
        assert_eq!(m[1].content.as_deref(), Some("hi"));
        assert_eq!(m[2].tool_calls[0].name.as_deref(), Some("get_weather"));
        assert_eq!(m[3].content.as_deref(), Some("Sunny"));
        assert_eq!(m[3].tool_calls[0].arguments.as_deref(), Some("{\"x\":1}"));
        assert_eq!(m[3].finish_reason.as_deref(), Some("stop"));
    }
}
