//! Reading a response body as the caller consumes it: a whole JSON answer, or server-sent
//! events one at a time, into what the span records (models, usage, finish reasons, output).
//!
//! Nothing here changes the bytes the caller gets; it only looks at copies of them.

use crate::endpoint::Api;
use crate::request::gemini_text;
use serde_json::{json, Map, Value};
use spanlens::record::LlmCall;
use spanlens_core::span::MAX_PAYLOAD_BYTES;

/// Largest JSON answer kept to read its usage (an answer above it is passed on unread).
const MAX_JSON_BYTES: usize = 32 * 1024 * 1024;
/// Longest single SSE line kept; a longer one is skipped, not buffered without bound.
const MAX_SSE_LINE: usize = 8 * 1024 * 1024;

/// What has been learnt about the answer so far.
#[derive(Debug, Default)]
struct Answer {
    model: Option<String>,
    id: Option<String>,
    finish_reasons: Vec<String>,
    /// The provider's raw usage object (Anthropic's stream parts merged).
    usage: Option<Map<String, Value>>,
    text: String,
    text_cut: bool,
    tool_calls: Vec<Value>,
    /// An error reported inside a successful HTTP answer (an SSE `error` event, a failed response).
    error: Option<(Option<String>, String)>,
}

impl Answer {
    fn push_text(&mut self, t: &str) {
        if self.text_cut || t.is_empty() {
            return;
        }
        let room = MAX_PAYLOAD_BYTES.saturating_sub(self.text.len());
        if t.len() <= room {
            self.text.push_str(t);
        } else {
            let mut cut = room;
            while !t.is_char_boundary(cut) {
                cut -= 1;
            }
            self.text.push_str(&t[..cut]);
            self.text_cut = true;
        }
    }

    fn set_once(slot: &mut Option<String>, v: Option<&Value>) {
        if slot.is_none() {
            if let Some(s) = v.and_then(Value::as_str).filter(|s| !s.is_empty()) {
                *slot = Some(s.to_string());
            }
        }
    }

    fn finish_reason(&mut self, v: Option<&Value>) {
        if let Some(r) = v.and_then(Value::as_str).filter(|s| !s.is_empty()) {
            self.finish_reasons.push(r.to_string());
        }
    }

    /// Replaces the usage, or merges into it (`merge`: Anthropic's `message_delta` carries the
    /// final output count and repeats or updates some input counts of `message_start`).
    fn usage(&mut self, v: Option<&Value>, merge: bool) {
        let Some(Value::Object(u)) = v else { return };
        match (&mut self.usage, merge) {
            (Some(old), true) => {
                for (k, v) in u {
                    if !v.is_null() {
                        old.insert(k.clone(), v.clone());
                    }
                }
            }
            (slot, _) => *slot = Some(u.clone()),
        }
    }
}

enum Mode {
    Json { buf: Vec<u8>, overflow: bool },
    Sse(SseParser),
}

/// Watches one response body.
pub(crate) struct Observer {
    api: Api,
    capture: bool,
    mode: Mode,
    answer: Answer,
}

impl Observer {
    /// `sse`: the body is `text/event-stream`; anything else is read as one JSON document.
    pub(crate) fn new(api: Api, sse: bool, capture: bool) -> Observer {
        let mode = if sse {
            Mode::Sse(SseParser::default())
        } else {
            Mode::Json {
                buf: Vec::new(),
                overflow: false,
            }
        };
        Observer {
            api,
            capture,
            mode,
            answer: Answer::default(),
        }
    }

    /// Looks at the next chunk of the body.
    pub(crate) fn feed(&mut self, chunk: &[u8], call: &LlmCall) {
        match &mut self.mode {
            Mode::Json { buf, overflow } => {
                if *overflow || buf.len() + chunk.len() > MAX_JSON_BYTES {
                    *overflow = true;
                    buf.clear();
                } else {
                    buf.extend_from_slice(chunk);
                }
            }
            Mode::Sse(p) => {
                let (api, answer) = (self.api, &mut self.answer);
                p.feed(chunk, &mut |event, data| {
                    sse_event(api, answer, call, event, data)
                });
            }
        }
    }

    /// The body ended (or was dropped): records what was learnt on the call.
    pub(crate) fn finish(mut self, call: &LlmCall, complete: bool) {
        match &mut self.mode {
            Mode::Json { buf, overflow } => {
                if *overflow {
                    call.span()
                        .set_attribute("spanlens.reqwest.unread_reason", "body_too_large");
                } else if let Ok(v) = serde_json::from_slice::<Value>(buf) {
                    match v {
                        // Gemini `streamGenerateContent` without `alt=sse`: a JSON array of chunks.
                        Value::Array(chunks) => {
                            for c in &chunks {
                                gemini_chunk(&mut self.answer, c, None);
                            }
                        }
                        v => whole(self.api, &mut self.answer, &v),
                    }
                } else if complete && !buf.is_empty() {
                    call.span()
                        .set_attribute("spanlens.reqwest.unread_reason", "invalid_json");
                }
            }
            Mode::Sse(p) => {
                let (api, answer) = (self.api, &mut self.answer);
                p.flush(&mut |event, data| sse_event(api, answer, call, event, data));
            }
        }
        record(self.answer, self.capture, call);
        if !complete {
            call.span()
                .set_attribute("spanlens.reqwest.body_incomplete", true);
        }
    }
}

/// Puts what was learnt onto the call.
fn record(a: Answer, capture: bool, call: &LlmCall) {
    if let Some(m) = &a.model {
        call.response_model(m.clone());
    }
    if let Some(id) = &a.id {
        call.response_id(id.clone());
    }
    for r in &a.finish_reasons {
        call.finish_reason(r.clone());
    }
    if let Some(u) = a.usage {
        call.usage_json(&Value::Object(u));
    }
    if let Some((ty, msg)) = &a.error {
        call.error_typed(ty.as_deref(), msg.clone());
    }
    if capture && (!a.text.is_empty() || !a.tool_calls.is_empty()) {
        let mut m = json!({"role": "assistant", "content": a.text});
        if let Some(r) = a.finish_reasons.first() {
            m["finish_reason"] = json!(r);
        }
        if !a.tool_calls.is_empty() {
            m["tool_calls"] = Value::Array(a.tool_calls);
        }
        call.messages_output(&json!([m]));
        if a.text_cut {
            call.span()
                .set_attribute("spanlens.reqwest.output_truncated", true);
        }
    }
}

/// A whole (non-streamed) answer.
fn whole(api: Api, a: &mut Answer, v: &Value) {
    match api {
        Api::ChatCompletions | Api::Completions | Api::Embeddings => {
            Answer::set_once(&mut a.model, v.get("model"));
            Answer::set_once(&mut a.id, v.get("id"));
            for c in v
                .get("choices")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                a.finish_reason(c.get("finish_reason"));
                if let Some(m) = c.get("message") {
                    if let Some(t) = m.get("content").and_then(Value::as_str) {
                        a.push_text(t);
                    }
                    if let Some(Value::Array(calls)) = m.get("tool_calls") {
                        a.tool_calls.extend(calls.iter().cloned());
                    }
                } else if let Some(t) = c.get("text").and_then(Value::as_str) {
                    a.push_text(t);
                }
            }
            a.usage(v.get("usage"), false);
        }
        Api::Responses => responses_object(a, v, true),
        Api::AnthropicMessages => {
            Answer::set_once(&mut a.model, v.get("model"));
            Answer::set_once(&mut a.id, v.get("id"));
            a.finish_reason(v.get("stop_reason"));
            for block in v
                .get("content")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                match block.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        if let Some(t) = block.get("text").and_then(Value::as_str) {
                            a.push_text(t);
                        }
                    }
                    Some("tool_use") => a.tool_calls.push(tool_call(
                        block.get("id"),
                        block.get("name"),
                        block.get("input"),
                    )),
                    _ => {}
                }
            }
            a.usage(v.get("usage"), false);
        }
        Api::GeminiGenerate | Api::GeminiStream => gemini_chunk(a, v, None),
    }
}

/// An OpenAI-style tool call from an id, a name and arguments (text or JSON).
fn tool_call(id: Option<&Value>, name: Option<&Value>, args: Option<&Value>) -> Value {
    let arguments = match args {
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => String::new(),
    };
    json!({"id": id, "type": "function", "function": {"name": name, "arguments": arguments}})
}

/// A Responses API `Response` object (`with_text`: take its output text, which a stream has
/// already delivered as deltas).
fn responses_object(a: &mut Answer, v: &Value, with_text: bool) {
    Answer::set_once(&mut a.model, v.get("model"));
    Answer::set_once(&mut a.id, v.get("id"));
    let reason = v
        .get("incomplete_details")
        .and_then(|d| d.get("reason"))
        .or(v.get("status"));
    a.finish_reason(reason);
    for item in v
        .get("output")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        match item.get("type").and_then(Value::as_str) {
            Some("message") if with_text => {
                for part in item
                    .get("content")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let Some(t) = part.get("text").and_then(Value::as_str) {
                        a.push_text(t);
                    }
                }
            }
            Some("function_call") => a.tool_calls.push(tool_call(
                item.get("call_id"),
                item.get("name"),
                item.get("arguments"),
            )),
            _ => {}
        }
    }
    a.usage(v.get("usage"), false);
    if let Some(e) = v.get("error").filter(|e| !e.is_null()) {
        a.error = Some(error_parts(e));
    }
}

/// One Gemini `GenerateContentResponse` (a whole answer or a streamed chunk); `call` counts the
/// chunk as streamed output.
fn gemini_chunk(a: &mut Answer, v: &Value, call: Option<&LlmCall>) {
    Answer::set_once(&mut a.model, v.get("modelVersion"));
    Answer::set_once(&mut a.id, v.get("responseId"));
    let mut produced = false;
    for c in v
        .get("candidates")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        a.finish_reason(c.get("finishReason"));
        if let Some(content) = c.get("content") {
            let t = gemini_text(content);
            produced |= !t.is_empty();
            a.push_text(&t);
            for p in content
                .get("parts")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(f) = p.get("functionCall") {
                    produced = true;
                    a.tool_calls
                        .push(tool_call(f.get("id"), f.get("name"), f.get("args")));
                }
            }
        }
    }
    // Each chunk carries the counts so far: the last one is the total.
    a.usage(v.get("usageMetadata"), false);
    if let (Some(call), true) = (call, produced) {
        call.token();
    }
}

/// One server-sent event of a streamed answer.
fn sse_event(api: Api, a: &mut Answer, call: &LlmCall, event: &str, data: &str) {
    let data = data.trim();
    if data.is_empty() || data == "[DONE]" {
        return;
    }
    let Ok(v) = serde_json::from_str::<Value>(data) else {
        return;
    };
    let ty = v
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or(event)
        .to_string();
    if ty == "error" || (event == "error" && v.get("error").is_some()) {
        a.error = Some(error_parts(v.get("error").unwrap_or(&v)));
        return;
    }
    match api {
        Api::ChatCompletions | Api::Completions | Api::Embeddings => {
            Answer::set_once(&mut a.model, v.get("model"));
            Answer::set_once(&mut a.id, v.get("id"));
            let mut produced = false;
            for c in v
                .get("choices")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                a.finish_reason(c.get("finish_reason"));
                let delta = c.get("delta");
                let text = delta
                    .and_then(|d| d.get("content"))
                    .or(c.get("text"))
                    .and_then(Value::as_str);
                if let Some(t) = text {
                    a.push_text(t);
                }
                // The first chunk of an answer (even its empty role delta) is its first token.
                produced |= delta.is_some() || text.is_some();
            }
            if produced {
                call.token();
            }
            a.usage(v.get("usage"), false);
        }
        Api::Responses => match ty.as_str() {
            "response.created" | "response.in_progress" | "response.queued" => {
                if let Some(r) = v.get("response") {
                    Answer::set_once(&mut a.model, r.get("model"));
                    Answer::set_once(&mut a.id, r.get("id"));
                }
            }
            "response.completed" | "response.incomplete" | "response.failed" => {
                if let Some(r) = v.get("response") {
                    let no_deltas = a.text.is_empty();
                    responses_object(a, r, no_deltas);
                }
            }
            t if t.ends_with(".delta") => {
                if t == "response.output_text.delta" {
                    if let Some(d) = v.get("delta").and_then(Value::as_str) {
                        a.push_text(d);
                    }
                }
                call.token();
            }
            "response.output_item.added" => {
                call.first_token();
            }
            _ => {}
        },
        Api::AnthropicMessages => match ty.as_str() {
            "message_start" => {
                if let Some(m) = v.get("message") {
                    Answer::set_once(&mut a.model, m.get("model"));
                    Answer::set_once(&mut a.id, m.get("id"));
                    a.usage(m.get("usage"), true);
                }
            }
            "content_block_start" => {
                call.first_token();
            }
            "content_block_delta" => {
                let d = v.get("delta");
                if let Some(t) = d.and_then(|d| d.get("text")).and_then(Value::as_str) {
                    a.push_text(t);
                }
                call.token();
            }
            "message_delta" => {
                a.finish_reason(v.get("delta").and_then(|d| d.get("stop_reason")));
                a.usage(v.get("usage"), true);
            }
            _ => {}
        },
        Api::GeminiGenerate | Api::GeminiStream => gemini_chunk(a, &v, Some(call)),
    }
}

/// The type and message of a provider error object (`{"type"|"status"|"code", "message"}`).
pub(crate) fn error_parts(e: &Value) -> (Option<String>, String) {
    let text = |k: &str| match e.get(k) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let ty = text("type")
        .or_else(|| text("status"))
        .or_else(|| text("code"));
    let msg = text("message").unwrap_or_else(|| e.to_string());
    (ty, msg)
}

/// The provider's error type and message from an error answer's body (`None` type when the body
/// does not say); a body that is not JSON gives its text, cut to 1 KiB.
pub(crate) fn error_from_body(body: &[u8]) -> (Option<String>, Option<String>) {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => {
            let e = v.get("error").unwrap_or(&v);
            if e.is_object() {
                let (ty, msg) = error_parts(e);
                (ty, Some(msg))
            } else {
                (None, Some(e.to_string()))
            }
        }
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            let mut cut = text.len().min(1024);
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            (None, (!text.is_empty()).then(|| text[..cut].to_string()))
        }
    }
}

/// Splits a byte stream into server-sent events (`event:` name and joined `data:` lines),
/// accepting `\n`, `\r\n` and `\r` line ends.
#[derive(Default)]
struct SseParser {
    line: Vec<u8>,
    skipping: bool,
    after_cr: bool,
    event: String,
    data: String,
    has_data: bool,
}

impl SseParser {
    fn feed(&mut self, chunk: &[u8], on_event: &mut dyn FnMut(&str, &str)) {
        for &b in chunk {
            if self.after_cr && b == b'\n' {
                self.after_cr = false;
                continue;
            }
            self.after_cr = b == b'\r';
            if b == b'\n' || b == b'\r' {
                self.end_line(on_event);
            } else if !self.skipping {
                if self.line.len() >= MAX_SSE_LINE {
                    self.skipping = true;
                    self.line.clear();
                } else {
                    self.line.push(b);
                }
            }
        }
    }

    fn end_line(&mut self, on_event: &mut dyn FnMut(&str, &str)) {
        if std::mem::take(&mut self.skipping) {
            return;
        }
        let line = std::mem::take(&mut self.line);
        if line.is_empty() {
            self.dispatch(on_event);
            return;
        }
        let line = String::from_utf8_lossy(&line);
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line.as_ref(), ""),
        };
        match field {
            "event" => self.event = value.to_string(),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, on_event: &mut dyn FnMut(&str, &str)) {
        if self.has_data {
            on_event(&self.event, &self.data);
        }
        self.event.clear();
        self.data.clear();
        self.has_data = false;
    }

    /// The stream ended: an event not closed by a blank line still counts.
    fn flush(&mut self, on_event: &mut dyn FnMut(&str, &str)) {
        if !self.line.is_empty() {
            self.end_line(on_event);
        }
        self.dispatch(on_event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(chunks: &[&[u8]]) -> Vec<(String, String)> {
        let mut p = SseParser::default();
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c, &mut |e, d| out.push((e.to_string(), d.to_string())));
        }
        p.flush(&mut |e, d| out.push((e.to_string(), d.to_string())));
        out
    }

    #[test]
    fn sse_events_across_chunk_boundaries_and_line_ends() {
        let got = events(&[
            b"event: a\nda",
            b"ta: {\"x\":1}\n\n",
            b"data: 2\r",
            b"\n\r\ndata: 3",
        ]);
        assert_eq!(
            got,
            [
                ("a".to_string(), "{\"x\":1}".to_string()),
                (String::new(), "2".to_string()),
                (String::new(), "3".to_string()),
            ]
        );
        let got = events(&[b": comment\ndata: a\ndata: b\n\n"]);
        assert_eq!(got, [(String::new(), "a\nb".to_string())]);
    }

    #[test]
    fn error_bodies() {
        let (ty, msg) = error_from_body(
            br#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#,
        );
        assert_eq!(
            (ty.as_deref(), msg.as_deref()),
            (Some("rate_limit_error"), Some("slow down"))
        );
        let (ty, msg) = error_from_body(
            br#"{"error":{"code":429,"message":"quota","status":"RESOURCE_EXHAUSTED"}}"#,
        );
        assert_eq!(
            (ty.as_deref(), msg.as_deref()),
            (Some("RESOURCE_EXHAUSTED"), Some("quota"))
        );
        let (ty, msg) = error_from_body(b"Bad Gateway");
        assert_eq!((ty, msg.as_deref()), (None, Some("Bad Gateway")));
        assert_eq!(error_from_body(b""), (None, None));
    }

    #[test]
    fn anthropic_stream_usage_is_merged() {
        let mut a = Answer::default();
        a.usage(
            Some(&json!({"input_tokens": 10, "cache_read_input_tokens": 5, "output_tokens": 1})),
            true,
        );
        a.usage(Some(&json!({"output_tokens": 42})), true);
        let u = a.usage.unwrap();
        assert_eq!(u["input_tokens"], 10);
        assert_eq!(u["cache_read_input_tokens"], 5);
        assert_eq!(u["output_tokens"], 42);
    }

    #[test]
    fn output_text_is_capped() {
        let mut a = Answer::default();
        a.push_text(&"é".repeat(MAX_PAYLOAD_BYTES));
        assert!(a.text_cut);
        assert!(a.text.len() <= MAX_PAYLOAD_BYTES);
        a.push_text("more");
        assert!(a.text.len() <= MAX_PAYLOAD_BYTES);
    }
}
