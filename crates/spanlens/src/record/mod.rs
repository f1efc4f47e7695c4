//! Recorders: typed helpers that open the right kind of span and write the attributes
//! `spanlens-core` reads back into canonical fields (usage, cost, TTFT, rate limits, tool
//! arguments and results, guardrail verdicts, hand-offs).
//!
//! Every recorder attaches to the current span (see [`crate::Span::enter`]) and never fails:
//! a value it cannot read is recorded as such (`spanlens.usage_error`, …), not raised.
//!
//! Attribute names follow the OTel GenAI conventions (`gen_ai.*`) where one exists, OpenInference
//! for prompt templates (`llm.prompt_template.*`) and `spanlens.*` for the rest.
//!
//! ```no_run
//! use spanlens::record::LlmCall;
//! let call = LlmCall::start("openai", "gpt-4o-mini");
//! call.param("temperature", 0.2);
//! // ... send the request, stream the answer:
//! call.token();
//! call.usage_json(&serde_json::json!({"prompt_tokens": 12, "completion_tokens": 3}))
//!     .finish_reason("stop");
//! call.finish(); // tokens/s, per-token latency and cost are recorded here
//! ```

mod agent;
pub mod llm;
mod ratelimit;
pub mod tool;

pub use agent::{
    agent, guardrail, guardrail_check, handoff, GuardrailCheck, Verdict, GUARDRAIL_EVENT,
};
pub use llm::{LlmCall, FIRST_TOKEN_EVENT};
pub use ratelimit::{parse_duration, parse_rate_limit_headers, rate_limit_attributes};
pub use tool::{ToolCall, ToolOutput, ToolPayload};

use spanlens_core::span::MAX_PAYLOAD_BYTES;
use std::sync::OnceLock;

/// Environment variable that turns on message capture for every [`LlmCall`].
pub const CAPTURE_MESSAGES_ENV: &str = "SPANLENS_CAPTURE_MESSAGES";

/// Reads a boolean setting the way the rest of the SDK does (`true/1/yes/on`).
pub(crate) fn env_flag_value(v: Option<&str>) -> bool {
    matches!(
        v.map(|s| s.trim().to_ascii_lowercase()).as_deref(),
        Some("1" | "true" | "yes" | "on")
    )
}

/// Whether `SPANLENS_CAPTURE_MESSAGES` asks for message capture (read once per process).
pub(crate) fn capture_messages_from_env() -> bool {
    static FLAG: OnceLock<bool> = OnceLock::new();
    *FLAG.get_or_init(|| env_flag_value(std::env::var(CAPTURE_MESSAGES_ENV).ok().as_deref()))
}

/// Cuts text to the canonical payload cap on a character boundary; `true` when it was cut.
pub(crate) fn cap_text(mut text: String) -> (String, bool) {
    if text.len() <= MAX_PAYLOAD_BYTES {
        return (text, false);
    }
    let mut cut = MAX_PAYLOAD_BYTES;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text.truncate(cut);
    (text, true)
}

/// A short, human name for an error type (`my_crate::ApiError<T>` → `ApiError`), or `None` for
/// plain strings, whose type says nothing about the error.
pub(crate) fn error_type_name<T: ?Sized>() -> Option<String> {
    let full = std::any::type_name::<T>();
    let base = full.split('<').next().unwrap_or(full);
    let base = base.trim_start_matches('&').trim();
    let short = base.rsplit("::").next().unwrap_or(base);
    match short {
        "" | "str" | "String" | "Cow" | "Arguments" => None,
        s => Some(s.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_flag_values() {
        for v in ["1", "true", "TRUE", " yes ", "on"] {
            assert!(env_flag_value(Some(v)), "{v}");
        }
        for v in ["0", "false", "", "nope"] {
            assert!(!env_flag_value(Some(v)), "{v}");
        }
        assert!(!env_flag_value(None));
    }

    #[test]
    fn text_is_capped_on_a_char_boundary() {
        let (t, cut) = cap_text("short".into());
        assert_eq!((t.as_str(), cut), ("short", false));
        let long = "é".repeat(MAX_PAYLOAD_BYTES);
        let (t, cut) = cap_text(long);
        assert!(cut);
        assert!(t.len() <= MAX_PAYLOAD_BYTES && t.len() >= MAX_PAYLOAD_BYTES - 1);
    }

    #[test]
    fn error_type_names() {
        #[allow(dead_code)]
        struct ApiError<T>(T);
        assert_eq!(
            error_type_name::<ApiError<u8>>().as_deref(),
            Some("ApiError")
        );
        assert_eq!(
            error_type_name::<std::io::Error>().as_deref(),
            Some("Error")
        );
        assert_eq!(error_type_name::<&str>(), None);
        assert_eq!(error_type_name::<String>(), None);
    }
}
