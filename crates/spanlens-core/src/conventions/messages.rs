//! Chat messages from the shapes instrumentations use: OpenAI-style JSON, GenAI "parts" JSON,
//! and flattened attribute lists (OpenInference `llm.input_messages.N.message.*`,
//! Traceloop `gen_ai.prompt.N.*`).

use super::Attrs;
use crate::span::{Attributes, Message, ToolCallRef};
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
    for tc in o
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let f = tc.get("function").unwrap_or(tc);
        m.tool_calls.push(ToolCallRef {
            id: tc.get("id").and_then(Value::as_str).map(str::to_string),
            name: f.get("name").and_then(Value::as_str).map(str::to_string),
            arguments: f.get("arguments").map(value_text),
        });
    }
    // GenAI semantic-convention message parts.
    let mut texts = Vec::new();
    for part in o
        .get("parts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
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
    Some(m)
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
    use serde_json::json;

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
