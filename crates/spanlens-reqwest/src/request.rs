//! What the middleware reads from a request body: the model, the sampling parameters, whether a
//! stream was asked for, and (only when message capture is on) the input messages.

use crate::endpoint::Api;
use serde_json::{json, Map, Value};
use spanlens::Value as AttrValue;

/// The parts of a request the span records.
#[derive(Debug, Default)]
pub(crate) struct RequestInfo {
    pub model: Option<String>,
    pub params: Vec<(&'static str, AttrValue)>,
    /// Input messages in the OpenAI-style shape core reads (`role`, `content`).
    pub messages: Option<Value>,
}

/// Body fields recorded as `gen_ai.request.<name>`: (field in the body, recorded name).
const OPENAI_PARAMS: [(&str, &str); 14] = [
    ("temperature", "temperature"),
    ("top_p", "top_p"),
    ("max_tokens", "max_tokens"),
    ("max_completion_tokens", "max_tokens"),
    ("max_output_tokens", "max_tokens"),
    ("frequency_penalty", "frequency_penalty"),
    ("presence_penalty", "presence_penalty"),
    ("seed", "seed"),
    ("stop", "stop_sequences"),
    ("n", "choice.count"),
    ("reasoning_effort", "reasoning_effort"),
    ("dimensions", "embedding.dimensions"),
    ("encoding_format", "encoding_formats"),
    ("service_tier", "service_tier"),
];

const ANTHROPIC_PARAMS: [(&str, &str); 5] = [
    ("temperature", "temperature"),
    ("top_p", "top_p"),
    ("top_k", "top_k"),
    ("max_tokens", "max_tokens"),
    ("stop_sequences", "stop_sequences"),
];

const GEMINI_PARAMS: [(&str, &str); 9] = [
    ("temperature", "temperature"),
    ("topP", "top_p"),
    ("topK", "top_k"),
    ("maxOutputTokens", "max_tokens"),
    ("candidateCount", "choice.count"),
    ("stopSequences", "stop_sequences"),
    ("seed", "seed"),
    ("presencePenalty", "presence_penalty"),
    ("frequencyPenalty", "frequency_penalty"),
];

/// Reads a request body; an unreadable body gives an empty description, never an error (the
/// request is still sent as is).
pub(crate) fn read(api: Api, body: Option<&[u8]>, capture: bool) -> RequestInfo {
    let Some(Value::Object(obj)) = body.and_then(|b| serde_json::from_slice(b).ok()) else {
        return RequestInfo::default();
    };
    let mut info = RequestInfo {
        model: obj.get("model").and_then(Value::as_str).map(str::to_string),
        ..Default::default()
    };
    match api {
        Api::AnthropicMessages => collect(&obj, &ANTHROPIC_PARAMS, &mut info.params),
        Api::GeminiGenerate | Api::GeminiStream => {
            if let Some(Value::Object(cfg)) = obj.get("generationConfig") {
                collect(cfg, &GEMINI_PARAMS, &mut info.params);
                if let Some(b) = cfg
                    .get("thinkingConfig")
                    .and_then(|t| t.get("thinkingBudget"))
                    .and_then(attr_value)
                {
                    info.params.push(("thinking_budget", b));
                }
            }
        }
        _ => {
            collect(&obj, &OPENAI_PARAMS, &mut info.params);
            // Responses API: `reasoning: {effort}`.
            if let Some(e) = obj
                .get("reasoning")
                .and_then(|r| r.get("effort"))
                .and_then(attr_value)
            {
                info.params.push(("reasoning_effort", e));
            }
        }
    }
    if capture {
        info.messages = input_messages(api, &obj);
    }
    info
}

fn collect(
    obj: &Map<String, Value>,
    table: &[(&str, &'static str)],
    out: &mut Vec<(&'static str, AttrValue)>,
) {
    for (field, name) in table {
        if let Some(v) = obj.get(*field).and_then(attr_value) {
            // The first field of a name wins (`max_tokens` before `max_completion_tokens`).
            if !out.iter().any(|(n, _)| n == name) {
                out.push((name, v));
            }
        }
    }
}

/// A JSON value as a span attribute: scalars as themselves, a list of strings as a list,
/// anything else as JSON; `null` is left out.
pub(crate) fn attr_value(v: &Value) -> Option<AttrValue> {
    Some(match v {
        Value::Null => return None,
        Value::Bool(b) => (*b).into(),
        Value::Number(n) => match n.as_i64() {
            Some(i) => i.into(),
            None => n.as_f64()?.into(),
        },
        Value::String(s) => s.clone().into(),
        Value::Array(items) if items.iter().all(Value::is_string) => items
            .iter()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect::<Vec<_>>()
            .into(),
        other => other.clone().into(),
    })
}

/// The input messages as OpenAI-style JSON (`[{"role", "content"}]`), whatever the API.
fn input_messages(api: Api, obj: &Map<String, Value>) -> Option<Value> {
    let mut out: Vec<Value> = Vec::new();
    match api {
        Api::ChatCompletions => return obj.get("messages").cloned(),
        Api::Completions | Api::Embeddings => {
            let key = if api == Api::Completions {
                "prompt"
            } else {
                "input"
            };
            let v = obj.get(key)?;
            let text = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            out.push(json!({"role": "user", "content": text}));
        }
        Api::Responses => {
            if let Some(sys) = obj.get("instructions").and_then(Value::as_str) {
                out.push(json!({"role": "system", "content": sys}));
            }
            match obj.get("input")? {
                Value::String(s) => out.push(json!({"role": "user", "content": s})),
                Value::Array(items) => {
                    for item in items {
                        if item.get("role").is_some() {
                            out.push(item.clone());
                        } else if let Some(o) = item.get("output") {
                            // A tool result item (`function_call_output`).
                            out.push(json!({"role": "tool", "content": o,
                                "tool_call_id": item.get("call_id")}));
                        }
                    }
                }
                _ => {}
            }
        }
        Api::AnthropicMessages => {
            if let Some(sys) = obj.get("system") {
                out.push(json!({"role": "system", "content": sys}));
            }
            out.extend(obj.get("messages")?.as_array()?.iter().cloned());
        }
        Api::GeminiGenerate | Api::GeminiStream => {
            if let Some(sys) = obj
                .get("systemInstruction")
                .or(obj.get("system_instruction"))
            {
                out.push(json!({"role": "system", "content": gemini_text(sys)}));
            }
            for c in obj.get("contents")?.as_array()? {
                let role = match c.get("role").and_then(Value::as_str) {
                    Some("model") => "assistant",
                    Some(r) => r,
                    None => "user",
                };
                out.push(json!({"role": role, "content": gemini_text(c)}));
            }
        }
    }
    Some(Value::Array(out))
}

/// The text parts of a Gemini `Content` joined by newlines.
pub(crate) fn gemini_text(content: &Value) -> String {
    content
        .get("parts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("text").and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_parameters_and_messages() {
        let body = json!({"model": "gpt-4o-mini", "temperature": 0.2, "max_completion_tokens": 50,
            "stop": ["\n"], "stream": true, "messages": [{"role": "user", "content": "hi"}]});
        let info = read(
            Api::ChatCompletions,
            Some(body.to_string().as_bytes()),
            true,
        );
        assert_eq!(info.model.as_deref(), Some("gpt-4o-mini"));
        let names: Vec<&str> = info.params.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["temperature", "max_tokens", "stop_sequences"]);
        assert_eq!(info.messages.unwrap()[0]["content"], "hi");
        let info = read(
            Api::ChatCompletions,
            Some(body.to_string().as_bytes()),
            false,
        );
        assert!(info.messages.is_none());
    }

    #[test]
    fn gemini_parameters_and_messages() {
        let body = json!({"contents": [{"role": "user", "parts": [{"text": "a"}, {"text": "b"}]},
                                       {"role": "model", "parts": [{"text": "c"}]}],
            "systemInstruction": {"parts": [{"text": "be brief"}]},
            "generationConfig": {"temperature": 1, "maxOutputTokens": 99,
                                 "thinkingConfig": {"thinkingBudget": 128}}});
        let info = read(Api::GeminiGenerate, Some(body.to_string().as_bytes()), true);
        assert_eq!(info.model, None);
        let names: Vec<&str> = info.params.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["temperature", "max_tokens", "thinking_budget"]);
        let m = info.messages.unwrap();
        assert_eq!(m[0], json!({"role": "system", "content": "be brief"}));
        assert_eq!(m[1], json!({"role": "user", "content": "a\nb"}));
        assert_eq!(m[2]["role"], "assistant");
    }

    #[test]
    fn unreadable_bodies_give_nothing() {
        assert!(read(Api::ChatCompletions, None, true).model.is_none());
        assert!(read(Api::ChatCompletions, Some(b"not json"), true)
            .params
            .is_empty());
    }
}
