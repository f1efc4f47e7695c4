//! Replaying a model call against a provider the server is configured with: the `--replay`
//! file, the OpenAI chat completions and Anthropic Messages request and answer shapes, and the
//! call itself (blocking HTTP, a timeout, capped sizes). The keys are read from the server's
//! environment when the file is loaded and never leave this module: no answer, error or log
//! line holds one (a provider's error text that echoes it has it masked).
//!
//! Configuration (`spanlens serve --replay FILE`), TOML:
//!
//! ```toml
//! [[endpoint]]
//! name = "openai"
//! kind = "openai"                          # openai (chat completions) | anthropic (Messages)
//! base_url = "https://api.openai.com/v1"   # /chat/completions or /messages is appended
//! api_key_env = "OPENAI_API_KEY"           # optional: the key is read from this variable
//! models = ["gpt-4o-mini", "gpt-4o"]       # the models a replay may ask for
//! timeout_seconds = 120                    # optional (default 120, at most 600)
//! ```

use serde::Deserialize;
use serde_json::{json, Value};
use spanlens_api::{ReplayMessage, ReplayParameters};
use spanlens_core::Usage;
use std::path::Path;
use std::time::Duration;

/// Most bytes of a provider's answer read; past it the call fails (a chat answer is far
/// smaller: this only stops a wrong URL from streaming a file into memory).
pub const MAX_ANSWER_BYTES: u64 = 4 * 1024 * 1024;
/// Longest time a call may take when the file does not say.
const DEFAULT_TIMEOUT_S: u64 = 120;
/// Longest time a file may allow.
const MAX_TIMEOUT_S: u64 = 600;
/// What Anthropic is asked for when the replay sets no `max_tokens` (the API requires one).
pub const ANTHROPIC_DEFAULT_MAX_TOKENS: u64 = 1024;
/// The Messages API version sent to Anthropic endpoints.
const ANTHROPIC_VERSION: &str = "2023-06-01";

/// Which API an endpoint speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// OpenAI chat completions (and every compatible server).
    Openai,
    /// Anthropic Messages.
    Anthropic,
}

impl Kind {
    /// Its name in the file and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Openai => "openai",
            Kind::Anthropic => "anthropic",
        }
    }
}

/// One `[[endpoint]]` as written in the file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct EndpointFile {
    name: String,
    kind: Kind,
    base_url: String,
    #[serde(default)]
    api_key_env: Option<String>,
    models: Vec<String>,
    #[serde(default)]
    timeout_seconds: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayFile {
    #[serde(default)]
    endpoint: Vec<EndpointFile>,
}

/// An API key: kept out of `Debug` so no log or error prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// One endpoint replays may be sent to.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    /// Its name.
    pub name: String,
    /// Its API.
    pub kind: Kind,
    /// Base URL, without a trailing slash.
    pub base_url: String,
    /// The models it may be asked for.
    pub models: Vec<String>,
    /// How long a call may take.
    pub timeout: Duration,
    key: Option<Secret>,
}

/// The replay endpoints of a server.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReplayConfig {
    /// In the file's order.
    pub endpoints: Vec<Endpoint>,
}

/// Why a replay file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReplayConfigError {
    /// Unreadable file.
    #[error("cannot read replay endpoints {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// What went wrong.
        source: std::io::Error,
    },
    /// Malformed or invalid content.
    #[error("invalid replay endpoints: {0}")]
    Invalid(String),
}

impl ReplayConfig {
    /// Parses and checks a file, reading keys with `env` (the variable's name → its value).
    pub fn from_toml_with(
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ReplayConfig, ReplayConfigError> {
        let invalid = ReplayConfigError::Invalid;
        let file: ReplayFile = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let mut endpoints: Vec<Endpoint> = Vec::new();
        for e in file.endpoint {
            let name = e.name.trim().to_string();
            if name.is_empty() || name.chars().any(char::is_control) || name.len() > 100 {
                return Err(invalid(format!(
                    "endpoint name {:?}: 1 to 100 characters, no control characters",
                    e.name
                )));
            }
            if endpoints.iter().any(|x| x.name == name) {
                return Err(invalid(format!("two endpoints are named {name:?}")));
            }
            let url = e.base_url.trim().trim_end_matches('/').to_string();
            if !(url.starts_with("http://") || url.starts_with("https://")) || url.contains(' ') {
                return Err(invalid(format!(
                    "endpoint {name:?}: base_url {:?} must be an http:// or https:// URL",
                    e.base_url
                )));
            }
            if e.models.is_empty() {
                return Err(invalid(format!(
                    "endpoint {name:?}: models is empty (list the models a replay may ask for)"
                )));
            }
            if let Some(m) = e.models.iter().find(|m| m.trim().is_empty()) {
                return Err(invalid(format!("endpoint {name:?}: model {m:?} is empty")));
            }
            let timeout_s = e.timeout_seconds.unwrap_or(DEFAULT_TIMEOUT_S);
            if !(1..=MAX_TIMEOUT_S).contains(&timeout_s) {
                return Err(invalid(format!(
                    "endpoint {name:?}: timeout_seconds {timeout_s} must be 1 to {MAX_TIMEOUT_S}"
                )));
            }
            let key = match &e.api_key_env {
                None => None,
                Some(var) => {
                    let value = env(var).filter(|v| !v.trim().is_empty()).ok_or_else(|| {
                        invalid(format!(
                            "endpoint {name:?}: environment variable {var} (api_key_env) is not set"
                        ))
                    })?;
                    Some(Secret(value.trim().to_string()))
                }
            };
            endpoints.push(Endpoint {
                name,
                kind: e.kind,
                base_url: url,
                models: e.models.iter().map(|m| m.trim().to_string()).collect(),
                timeout: Duration::from_secs(timeout_s),
                key,
            });
        }
        Ok(ReplayConfig { endpoints })
    }

    /// Parses and checks a file, reading keys from the process environment.
    pub fn from_toml(text: &str) -> Result<ReplayConfig, ReplayConfigError> {
        ReplayConfig::from_toml_with(text, &|var| std::env::var(var).ok())
    }

    /// Reads a file.
    pub fn load(path: &Path) -> Result<ReplayConfig, ReplayConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ReplayConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        ReplayConfig::from_toml(&text)
    }

    /// The endpoint named `name`.
    pub fn endpoint(&self, name: &str) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| e.name == name)
    }

    /// What the API shows of the endpoints: names, kinds, models; never keys or URLs.
    pub fn public(&self) -> spanlens_api::ReplayEndpoints {
        spanlens_api::ReplayEndpoints {
            endpoints: self
                .endpoints
                .iter()
                .map(|e| spanlens_api::ReplayEndpoint {
                    name: e.name.clone(),
                    kind: e.kind.as_str().to_string(),
                    models: e.models.clone(),
                })
                .collect(),
        }
    }
}

/// What a provider answered.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Answer {
    /// The model that answered.
    pub model: Option<String>,
    /// The provider's id of the answer.
    pub id: Option<String>,
    /// The answer's text (text parts joined).
    pub text: String,
    /// Token counts, when reported.
    pub usage: Option<Usage>,
    /// Why the model stopped.
    pub finish_reasons: Vec<String>,
}

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    /// The provider answered an HTTP error.
    #[error("the provider answered HTTP {status}: {body}")]
    Status {
        /// The status.
        status: u16,
        /// The start of its body (the key masked).
        body: String,
    },
    /// No answer in time.
    #[error("the provider did not answer within {0} s")]
    Timeout(u64),
    /// Could not connect or read.
    #[error("the provider could not be reached: {0}")]
    Transport(String),
    /// An answer that is not the API's shape.
    #[error("the provider's answer cannot be read: {0}")]
    Unreadable(String),
}

impl CallError {
    /// The error class stored on the span (`error.type`).
    pub fn class(&self) -> String {
        match self {
            CallError::Status { status, .. } => format!("http_{status}"),
            CallError::Timeout(_) => "timeout".into(),
            CallError::Transport(_) => "transport".into(),
            CallError::Unreadable(_) => "unreadable_answer".into(),
        }
    }
}

/// The request body for an OpenAI chat completions call.
pub fn openai_body(model: &str, messages: &[ReplayMessage], p: &ReplayParameters) -> Value {
    let mut body = json!({
        "model": model,
        "messages": messages.iter().map(|m| json!({"role": m.role, "content": m.content})).collect::<Vec<_>>(),
    });
    let o = body.as_object_mut().expect("an object");
    put(o, "temperature", p.temperature.map(Value::from));
    put(o, "max_tokens", p.max_tokens.map(Value::from));
    put(o, "top_p", p.top_p.map(Value::from));
    put(o, "presence_penalty", p.presence_penalty.map(Value::from));
    put(o, "frequency_penalty", p.frequency_penalty.map(Value::from));
    put(o, "seed", p.seed.map(Value::from));
    if !p.stop.is_empty() {
        o.insert("stop".into(), json!(p.stop));
    }
    body
}

/// The request body for an Anthropic Messages call: system messages go to `system`.
pub fn anthropic_body(model: &str, messages: &[ReplayMessage], p: &ReplayParameters) -> Value {
    let system: Vec<&str> = messages
        .iter()
        .filter(|m| m.role == "system")
        .map(|m| m.content.as_str())
        .collect();
    let turns: Vec<Value> = messages
        .iter()
        .filter(|m| m.role != "system")
        .map(|m| json!({"role": m.role, "content": m.content}))
        .collect();
    let mut body = json!({
        "model": model,
        "max_tokens": p.max_tokens.unwrap_or(ANTHROPIC_DEFAULT_MAX_TOKENS),
        "messages": turns,
    });
    let o = body.as_object_mut().expect("an object");
    if !system.is_empty() {
        o.insert("system".into(), Value::from(system.join("\n\n")));
    }
    put(o, "temperature", p.temperature.map(Value::from));
    put(o, "top_p", p.top_p.map(Value::from));
    if !p.stop.is_empty() {
        o.insert("stop_sequences".into(), json!(p.stop));
    }
    body
}

fn put(o: &mut serde_json::Map<String, Value>, k: &str, v: Option<Value>) {
    if let Some(v) = v {
        o.insert(k.into(), v);
    }
}

fn text_of(v: &Value) -> Option<String> {
    v.as_str().map(str::to_string)
}

/// Reads an OpenAI chat completions answer.
pub fn parse_openai(v: &Value) -> Result<Answer, CallError> {
    let choices = v["choices"]
        .as_array()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| CallError::Unreadable("no choices in a chat completions answer".into()))?;
    let message = &choices[0]["message"];
    let text = match &message["content"] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join(""),
        other => {
            return Err(CallError::Unreadable(format!(
                "choices[0].message.content is {other}"
            )))
        }
    };
    let usage = usage_of(v, spanlens_core::usage::openai_chat_usage)?;
    Ok(Answer {
        model: text_of(&v["model"]),
        id: text_of(&v["id"]),
        text,
        usage,
        finish_reasons: choices
            .iter()
            .filter_map(|c| c["finish_reason"].as_str().map(str::to_string))
            .collect(),
    })
}

/// The `usage` of an answer read with `read`, `None` when the answer has none.
fn usage_of<U, E: std::fmt::Display>(
    v: &Value,
    read: impl Fn(&Value) -> Result<U, E>,
) -> Result<Option<U>, CallError> {
    match &v["usage"] {
        Value::Null => Ok(None),
        u => read(u)
            .map(Some)
            .map_err(|e| CallError::Unreadable(format!("usage: {e}"))),
    }
}

/// Reads an Anthropic Messages answer.
pub fn parse_anthropic(v: &Value) -> Result<Answer, CallError> {
    let content = v["content"]
        .as_array()
        .ok_or_else(|| CallError::Unreadable("no content in a Messages answer".into()))?;
    let text = content
        .iter()
        .filter(|b| b["type"] == "text")
        .filter_map(|b| b["text"].as_str())
        .collect::<Vec<_>>()
        .join("");
    let usage = usage_of(v, spanlens_core::usage::anthropic_usage)?;
    Ok(Answer {
        model: text_of(&v["model"]),
        id: text_of(&v["id"]),
        text,
        usage,
        finish_reasons: v["stop_reason"]
            .as_str()
            .map(|s| vec![s.to_string()])
            .unwrap_or_default(),
    })
}

/// `text` with every occurrence of the key masked, cut to `max` characters.
fn masked(text: &str, key: Option<&Secret>, max: usize) -> String {
    let text = match key {
        Some(Secret(k)) if !k.is_empty() => text.replace(k.as_str(), "[api key]"),
        _ => text.to_string(),
    };
    let mut out: String = text.chars().take(max).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

impl Endpoint {
    /// The URL a call is POSTed to.
    pub fn url(&self) -> String {
        match self.kind {
            Kind::Openai => format!("{}/chat/completions", self.base_url),
            Kind::Anthropic => format!("{}/messages", self.base_url),
        }
    }

    /// The request body of a call.
    pub fn body(&self, model: &str, messages: &[ReplayMessage], p: &ReplayParameters) -> Value {
        match self.kind {
            Kind::Openai => openai_body(model, messages, p),
            Kind::Anthropic => anthropic_body(model, messages, p),
        }
    }

    /// Sends `body` and reads the answer (blocking: run it off the async workers).
    pub fn call(&self, body: &Value) -> Result<Answer, CallError> {
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(self.timeout))
                .build(),
        );
        let url = self.url();
        let mut req = agent.post(&url).header("content-type", "application/json");
        match (self.kind, &self.key) {
            (Kind::Openai, Some(Secret(k))) => {
                req = req.header("authorization", &format!("Bearer {k}"));
            }
            (Kind::Anthropic, key) => {
                req = req.header("anthropic-version", ANTHROPIC_VERSION);
                if let Some(Secret(k)) = key {
                    req = req.header("x-api-key", k);
                }
            }
            (Kind::Openai, None) => {}
        }
        let secs = self.timeout.as_secs();
        let fail = |e: ureq::Error| match e {
            ureq::Error::Timeout(_) => CallError::Timeout(secs),
            other => CallError::Transport(masked(&other.to_string(), self.key.as_ref(), 300)),
        };
        let mut resp = req.send(body.to_string().as_bytes()).map_err(fail)?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER_BYTES)
            .read_to_string()
            .map_err(fail)?;
        if !(200..300).contains(&status) {
            return Err(CallError::Status {
                status,
                body: masked(&text, self.key.as_ref(), 500),
            });
        }
        let v: Value = serde_json::from_str(&text).map_err(|e| {
            CallError::Unreadable(format!(
                "not JSON ({e}): {}",
                masked(&text, self.key.as_ref(), 200)
            ))
        })?;
        match self.kind {
            Kind::Openai => parse_openai(&v),
            Kind::Anthropic => parse_anthropic(&v),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(var: &str) -> Option<String> {
        (var == "K").then(|| "sk-test-123".to_string())
    }

    #[test]
    fn files_are_checked_and_keys_read_from_the_environment() {
        let c = ReplayConfig::from_toml_with(
            "[[endpoint]]\nname='o'\nkind='openai'\nbase_url='http://x/v1/'\napi_key_env='K'\nmodels=['m']",
            &env,
        )
        .unwrap();
        assert_eq!(c.endpoints[0].base_url, "http://x/v1");
        assert_eq!(c.endpoints[0].url(), "http://x/v1/chat/completions");
        assert!(
            !format!("{c:?}").contains("sk-test-123"),
            "Debug hides the key"
        );
        for (text, says) in [
            ("[[endpoint]]\nname='o'\nkind='gemini'\nbase_url='http://x'\nmodels=['m']", "kind"),
            ("[[endpoint]]\nname='o'\nkind='openai'\nbase_url='x'\nmodels=['m']", "base_url"),
            ("[[endpoint]]\nname='o'\nkind='openai'\nbase_url='http://x'\nmodels=[]", "models"),
            ("[[endpoint]]\nname='o'\nkind='openai'\nbase_url='http://x'\napi_key_env='NOPE'\nmodels=['m']", "NOPE"),
            ("[[endpoint]]\nname='o'\nkind='openai'\nbase_url='http://x'\nmodels=['m']\n[[endpoint]]\nname='o'\nkind='anthropic'\nbase_url='http://y'\nmodels=['m']", "two endpoints"),
            ("[[endpoint]]\nname='o'\nkind='openai'\nbase_url='http://x'\nmodels=['m']\nkey='sk'", "unknown field"),
            ("[[endpoint]]\nname='o'\nkind='openai'\nbase_url='http://x'\nmodels=['m']\ntimeout_seconds=0", "timeout_seconds"),
        ] {
            let e = ReplayConfig::from_toml_with(text, &env).unwrap_err().to_string();
            assert!(e.contains(says), "{text}: {e}");
        }
    }

    #[test]
    fn anthropic_bodies_move_system_messages_and_default_max_tokens() {
        let msgs = vec![
            ReplayMessage {
                role: "system".into(),
                content: "be brief".into(),
            },
            ReplayMessage {
                role: "user".into(),
                content: "hi".into(),
            },
        ];
        let p = ReplayParameters {
            temperature: Some(0.2),
            stop: vec!["END".into()],
            ..Default::default()
        };
        let b = anthropic_body("claude", &msgs, &p);
        assert_eq!(b["system"], "be brief");
        assert_eq!(b["messages"], json!([{"role": "user", "content": "hi"}]));
        assert_eq!(b["max_tokens"], ANTHROPIC_DEFAULT_MAX_TOKENS);
        assert_eq!(b["stop_sequences"], json!(["END"]));
        let o = openai_body("gpt", &msgs, &p);
        assert_eq!(o["messages"].as_array().unwrap().len(), 2);
        assert_eq!(o["stop"], json!(["END"]));
        assert!(o.get("max_tokens").is_none());
    }

    #[test]
    fn answers_are_read_and_keys_masked() {
        let a = parse_openai(&json!({"id": "c1", "model": "gpt-x", "choices": [{"message": {"content": "hello"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}}))
        .unwrap();
        assert_eq!(
            (a.text.as_str(), a.usage.unwrap().output_tokens),
            ("hello", 2)
        );
        let a = parse_anthropic(
            &json!({"id": "m1", "model": "claude-x", "content": [{"type": "text", "text": "hi"}],
            "stop_reason": "end_turn", "usage": {"input_tokens": 5, "output_tokens": 1}}),
        )
        .unwrap();
        assert_eq!(
            (a.text.as_str(), a.finish_reasons[0].as_str()),
            ("hi", "end_turn")
        );
        assert!(parse_openai(&json!({"choices": []})).is_err());
        let key = Secret("sk-test-123".into());
        assert_eq!(
            masked("bad key sk-test-123 given", Some(&key), 100),
            "bad key [api key] given"
        );
    }
}
