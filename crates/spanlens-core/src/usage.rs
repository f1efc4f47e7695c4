//! Reading raw provider usage objects into canonical [`Usage`].
//!
//! Each format states the rule it applies, because the providers disagree:
//! - OpenAI Chat Completions: `prompt_tokens` already INCLUDE `prompt_tokens_details.cached_tokens`;
//!   `completion_tokens` already INCLUDE `completion_tokens_details.reasoning_tokens`. Taken as is.
//! - OpenAI Responses (and the OpenAI Agents SDK): `input_tokens` INCLUDE `input_tokens_details.cached_tokens`;
//!   `output_tokens` INCLUDE `output_tokens_details.reasoning_tokens`. Taken as is.
//! - Anthropic Messages: `input_tokens` EXCLUDE `cache_read_input_tokens` and `cache_creation_input_tokens`,
//!   so both are ADDED to get canonical input.
//! - Gemini `usageMetadata`: `promptTokenCount` INCLUDES `cachedContentTokenCount`, but `candidatesTokenCount`
//!   EXCLUDES `thoughtsTokenCount`, so thoughts are ADDED to get canonical output.

use crate::span::Usage;
use serde_json::{Map, Value};

/// Which provider usage shape was recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageFormat {
    /// OpenAI Chat Completions (`prompt_tokens`, `completion_tokens`).
    OpenAiChat,
    /// OpenAI Responses / Agents SDK (`input_tokens` with `*_tokens_details`).
    OpenAiResponses,
    /// Anthropic Messages (`cache_read_input_tokens`, `cache_creation_input_tokens`).
    Anthropic,
    /// Google Gemini (`promptTokenCount`, `candidatesTokenCount`).
    Gemini,
}

impl UsageFormat {
    /// Short name for messages and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            UsageFormat::OpenAiChat => "openai_chat",
            UsageFormat::OpenAiResponses => "openai_responses",
            UsageFormat::Anthropic => "anthropic",
            UsageFormat::Gemini => "gemini",
        }
    }
}

/// A usage object that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsageError {
    /// Not a JSON object.
    #[error("usage must be a JSON object, got {0}")]
    NotObject(String),
    /// No known token field.
    #[error("usage object has no known token field (expected prompt_tokens, input_tokens or promptTokenCount)")]
    Unrecognised,
    /// A field is not a non-negative integer.
    #[error("usage field `{field}` must be a non-negative integer, got {value}")]
    BadField {
        /// Dotted path of the field.
        field: String,
        /// The value found, as JSON.
        value: String,
    },
}

/// Reads a raw provider usage object (the `usage` of an API response), recognising its format.
///
/// A wrapper such as a whole response (`{"usage": {...}}` or `{"usageMetadata": {...}}`) is accepted too.
pub fn parse_provider_usage(v: &Value) -> Result<(Usage, UsageFormat), UsageError> {
    let obj = v
        .as_object()
        .ok_or_else(|| UsageError::NotObject(short(v)))?;
    for wrapper in ["usage", "usageMetadata", "usage_metadata"] {
        if let Some(inner @ Value::Object(_)) = obj.get(wrapper) {
            return parse_provider_usage(inner);
        }
    }
    let r = Reader {
        obj,
        prefix: String::new(),
    };
    if obj.contains_key("prompt_tokens") || obj.contains_key("completion_tokens") {
        return Ok((openai_chat(&r)?, UsageFormat::OpenAiChat));
    }
    if obj.contains_key("promptTokenCount") || obj.contains_key("candidatesTokenCount") {
        return Ok((gemini(&r)?, UsageFormat::Gemini));
    }
    let anthropic_keys = [
        "cache_read_input_tokens",
        "cache_creation_input_tokens",
        "cache_creation",
    ];
    if anthropic_keys.iter().any(|k| obj.contains_key(*k)) {
        return Ok((anthropic(&r)?, UsageFormat::Anthropic));
    }
    if obj.contains_key("input_tokens") || obj.contains_key("output_tokens") {
        return Ok((openai_responses(&r)?, UsageFormat::OpenAiResponses));
    }
    Err(UsageError::Unrecognised)
}

/// OpenAI Chat Completions usage (cached within prompt, reasoning within completion).
pub fn openai_chat_usage(v: &Value) -> Result<Usage, UsageError> {
    openai_chat(&Reader::root(v)?)
}

/// OpenAI Responses / Agents SDK usage (cached within input, reasoning within output).
pub fn openai_responses_usage(v: &Value) -> Result<Usage, UsageError> {
    openai_responses(&Reader::root(v)?)
}

/// Anthropic usage (cache reads and writes added to input).
pub fn anthropic_usage(v: &Value) -> Result<Usage, UsageError> {
    anthropic(&Reader::root(v)?)
}

fn openai_chat(r: &Reader) -> Result<Usage, UsageError> {
    let prompt = r.child("prompt_tokens_details")?;
    let completion = r.child("completion_tokens_details")?;
    let mut u = Usage {
        input_tokens: r.u64("prompt_tokens")?.unwrap_or(0),
        output_tokens: r.u64("completion_tokens")?.unwrap_or(0),
        total_tokens: r.u64("total_tokens")?.unwrap_or(0),
        ..Default::default()
    };
    if let Some(p) = &prompt {
        u.cache_read_tokens = p.u64("cached_tokens")?.unwrap_or(0);
        // Some OpenAI-compatible gateways report cache writes here.
        u.cache_write_tokens = p.u64("cache_write_tokens")?.unwrap_or(0);
        extra(&mut u, "audio_input_tokens", p.u64("audio_tokens")?);
    }
    if let Some(c) = &completion {
        u.reasoning_tokens = c.u64("reasoning_tokens")?.unwrap_or(0);
        extra(&mut u, "audio_output_tokens", c.u64("audio_tokens")?);
        extra(
            &mut u,
            "accepted_prediction_tokens",
            c.u64("accepted_prediction_tokens")?,
        );
        extra(
            &mut u,
            "rejected_prediction_tokens",
            c.u64("rejected_prediction_tokens")?,
        );
    }
    Ok(u.normalized())
}

fn openai_responses(r: &Reader) -> Result<Usage, UsageError> {
    let mut u = Usage {
        input_tokens: r.u64("input_tokens")?.unwrap_or(0),
        output_tokens: r.u64("output_tokens")?.unwrap_or(0),
        total_tokens: r.u64("total_tokens")?.unwrap_or(0),
        ..Default::default()
    };
    if let Some(d) = r.child("input_tokens_details")? {
        u.cache_read_tokens = d.u64("cached_tokens")?.unwrap_or(0);
        u.cache_write_tokens = d.u64("cache_write_tokens")?.unwrap_or(0);
        extra(&mut u, "audio_input_tokens", d.u64("audio_tokens")?);
    }
    if let Some(d) = r.child("output_tokens_details")? {
        u.reasoning_tokens = d.u64("reasoning_tokens")?.unwrap_or(0);
        extra(&mut u, "audio_output_tokens", d.u64("audio_tokens")?);
    }
    Ok(u.normalized())
}

fn anthropic(r: &Reader) -> Result<Usage, UsageError> {
    let uncached = r.u64("input_tokens")?.unwrap_or(0);
    let read = r.u64("cache_read_input_tokens")?.unwrap_or(0);
    let mut write = r.u64("cache_creation_input_tokens")?.unwrap_or(0);
    let mut u = Usage {
        output_tokens: r.u64("output_tokens")?.unwrap_or(0),
        cache_read_tokens: read,
        ..Default::default()
    };
    if let Some(c) = r.child("cache_creation")? {
        let five = c.u64("ephemeral_5m_input_tokens")?.unwrap_or(0);
        let hour = c.u64("ephemeral_1h_input_tokens")?.unwrap_or(0);
        // The breakdown and the flat count describe the same tokens; trust the larger.
        write = write.max(five.saturating_add(hour));
        extra(&mut u, Usage::CACHE_WRITE_1H, (hour > 0).then_some(hour));
    }
    if let Some(s) = r.child("server_tool_use")? {
        extra(&mut u, "web_search_requests", s.u64("web_search_requests")?);
    }
    u.cache_write_tokens = write;
    u.input_tokens = uncached.saturating_add(read).saturating_add(write);
    Ok(u.normalized())
}

fn gemini(r: &Reader) -> Result<Usage, UsageError> {
    let thoughts = r.u64("thoughtsTokenCount")?.unwrap_or(0);
    let candidates = r.u64("candidatesTokenCount")?.unwrap_or(0);
    let mut u = Usage {
        input_tokens: r.u64("promptTokenCount")?.unwrap_or(0),
        cache_read_tokens: r.u64("cachedContentTokenCount")?.unwrap_or(0),
        output_tokens: candidates.saturating_add(thoughts),
        reasoning_tokens: thoughts,
        total_tokens: r.u64("totalTokenCount")?.unwrap_or(0),
        ..Default::default()
    };
    extra(
        &mut u,
        "tool_use_prompt_tokens",
        r.u64("toolUsePromptTokenCount")?,
    );
    Ok(u.normalized())
}

fn extra(u: &mut Usage, key: &str, v: Option<u64>) {
    if let Some(v) = v.filter(|v| *v > 0) {
        u.extra.insert(key.to_string(), v);
    }
}

/// Field access that names the full path of a bad field in its error.
struct Reader<'a> {
    obj: &'a Map<String, Value>,
    prefix: String,
}

impl<'a> Reader<'a> {
    fn root(v: &'a Value) -> Result<Reader<'a>, UsageError> {
        let obj = v
            .as_object()
            .ok_or_else(|| UsageError::NotObject(short(v)))?;
        Ok(Reader {
            obj,
            prefix: String::new(),
        })
    }

    fn u64(&self, key: &str) -> Result<Option<u64>, UsageError> {
        match self.obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => json_u64(v).map(Some).ok_or_else(|| UsageError::BadField {
                field: format!("{}{key}", self.prefix),
                value: short(v),
            }),
        }
    }

    fn child(&self, key: &str) -> Result<Option<Reader<'a>>, UsageError> {
        match self.obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(o)) => Ok(Some(Reader {
                obj: o,
                prefix: format!("{}{key}.", self.prefix),
            })),
            Some(v) => Err(UsageError::BadField {
                field: format!("{}{key}", self.prefix),
                value: short(v),
            }),
        }
    }
}

/// A non-negative integer from a JSON number (integral floats accepted) or a numeric string.
pub(crate) fn json_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < 1.8e19)
                .map(|f| f as u64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A JSON value shortened for an error message.
pub(crate) fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 80 {
        let mut cut = 77;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}...", &s[..cut])
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn openai_chat_keeps_cached_inside_prompt() {
        let v = json!({"prompt_tokens": 2006, "completion_tokens": 300, "total_tokens": 2306,
            "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 128, "audio_tokens": 0,
                "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}});
        let (u, f) = parse_provider_usage(&v).unwrap();
        assert_eq!(f, UsageFormat::OpenAiChat);
        assert_eq!(u.input_tokens, 2006);
        assert_eq!(u.cache_read_tokens, 1920);
        assert_eq!(u.output_tokens, 300);
        assert_eq!(u.reasoning_tokens, 128);
        assert_eq!(u.total_tokens, 2306);
        assert!(u.extra.is_empty());
    }

    #[test]
    fn openai_responses_keeps_cached_inside_input() {
        let v = json!({"input_tokens": 5000, "input_tokens_details": {"cached_tokens": 4096},
            "output_tokens": 900, "output_tokens_details": {"reasoning_tokens": 640}, "total_tokens": 5900});
        let (u, f) = parse_provider_usage(&v).unwrap();
        assert_eq!(f, UsageFormat::OpenAiResponses);
        assert_eq!((u.input_tokens, u.cache_read_tokens), (5000, 4096));
        assert_eq!(
            (u.output_tokens, u.reasoning_tokens, u.total_tokens),
            (900, 640, 5900)
        );
    }

    #[test]
    fn anthropic_adds_cache_reads_and_writes_to_input() {
        let v = json!({"input_tokens": 50, "cache_creation_input_tokens": 1000,
            "cache_read_input_tokens": 20000, "output_tokens": 400,
            "cache_creation": {"ephemeral_5m_input_tokens": 600, "ephemeral_1h_input_tokens": 400}});
        let (u, f) = parse_provider_usage(&v).unwrap();
        assert_eq!(f, UsageFormat::Anthropic);
        assert_eq!(u.input_tokens, 21050);
        assert_eq!(u.cache_read_tokens, 20000);
        assert_eq!(u.cache_write_tokens, 1000);
        assert_eq!(u.extra.get(Usage::CACHE_WRITE_1H), Some(&400));
        assert_eq!(u.total_tokens, 21450);
    }

    #[test]
    fn gemini_adds_thoughts_to_output() {
        let v = json!({"usageMetadata": {"promptTokenCount": 1200, "cachedContentTokenCount": 1000,
            "candidatesTokenCount": 80, "thoughtsTokenCount": 420, "totalTokenCount": 1700}});
        let (u, f) = parse_provider_usage(&v).unwrap();
        assert_eq!(f, UsageFormat::Gemini);
        assert_eq!((u.input_tokens, u.cache_read_tokens), (1200, 1000));
        assert_eq!((u.output_tokens, u.reasoning_tokens), (500, 420));
    }

    #[test]
    fn whole_response_wrapper_is_accepted() {
        let v = json!({"id": "chatcmpl-1", "usage": {"prompt_tokens": 10, "completion_tokens": 2}});
        let (u, _) = parse_provider_usage(&v).unwrap();
        assert_eq!(
            (u.input_tokens, u.output_tokens, u.total_tokens),
            (10, 2, 12)
        );
    }

    #[test]
    fn bad_fields_are_named() {
        let e = parse_provider_usage(&json!({"prompt_tokens": "ten"})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "usage field `prompt_tokens` must be a non-negative integer, got \"ten\""
        );
        let e = parse_provider_usage(
            &json!({"input_tokens": 1, "input_tokens_details": {"cached_tokens": -3}}),
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("input_tokens_details.cached_tokens"),
            "{e}"
        );
        assert_eq!(
            parse_provider_usage(&json!({"foo": 1})),
            Err(UsageError::Unrecognised)
        );
        assert!(matches!(
            parse_provider_usage(&json!([1])),
            Err(UsageError::NotObject(_))
        ));
    }
}
