//! [`LlmCall`]: one request to a language model, as an `llm` span.
//!
//! What it records, and the attribute each lands in (all read back by `spanlens-core`):
//!
//! | what | attribute |
//! |---|---|
//! | provider, operation, models | `gen_ai.provider.name`, `gen_ai.operation.name`, `gen_ai.request.model`, `gen_ai.response.model` |
//! | request parameters | `gen_ai.request.<param>` (`temperature`, `max_tokens`, …) |
//! | usage (canonical: input INCLUDES cache reads and writes, output INCLUDES reasoning) | `gen_ai.usage.input_tokens`, `gen_ai.usage.output_tokens`, `gen_ai.usage.cache_read.input_tokens`, `gen_ai.usage.cache_creation.input_tokens`, `gen_ai.usage.reasoning.output_tokens`, `gen_ai.usage.total_tokens`, `spanlens.usage.<extra>` |
//! | time to first token | event `spanlens.first_token` + `gen_ai.response.time_to_first_chunk` (seconds) |
//! | streaming speed | `spanlens.llm.streamed_tokens`, `spanlens.llm.tokens_per_second`, `spanlens.llm.time_per_output_token_ms` |
//! | cost (built-in catalog) | `spanlens.cost.{input,output,cache_read,cache_write,reasoning,total}_usd`, `spanlens.pricing_id`, `spanlens.pricing_version`, or `spanlens.unpriced = true` |
//! | messages (opt-in) | `gen_ai.input.messages`, `gen_ai.output.messages` |
//! | prompt template | `llm.prompt_template.template`, `.version`, `.variables` |
//! | finish reasons, response id | `gen_ai.response.finish_reasons`, `gen_ai.response.id` |
//! | rate limits | `spanlens.ratelimit.*` (see [`super::parse_rate_limit_headers`]) |

use super::ratelimit::{parse_rate_limit_headers, rate_limit_attributes};
use crate::attr::{Key, Value};
use crate::context::{Context, ContextGuard};
use crate::span::{now, Span, SpanBuilder};
use spanlens_core::{compute_cost, parse_provider_usage, PriceCatalog, SpanKind, Timestamp, Usage};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Name of the event marking the first streamed token (read back by core as TTFT).
pub const FIRST_TOKEN_EVENT: &str = "spanlens.first_token";

#[derive(Default)]
struct State {
    first_token: Option<Duration>,
    usage: Option<Usage>,
    response_model: Option<String>,
    finish_reasons: Vec<String>,
    failed: bool,
    capture: Option<bool>,
    done: bool,
}

/// A call to a language model, recorded as an `llm` span that ends at [`LlmCall::finish`] or on
/// drop.
///
/// Every method takes `&self` (streaming loops and callbacks can share the call) and returns it
/// for chaining. On a disabled or unsampled trace every method is a cheap no-op.
#[must_use = "the call's span ends when the LlmCall is dropped; bind it"]
pub struct LlmCall {
    span: Span,
    recording: bool,
    provider: String,
    request_model: String,
    started: Instant,
    start_time: Timestamp,
    first_marked: AtomicBool,
    streamed: AtomicU64,
    state: Mutex<State>,
}

impl LlmCall {
    /// Opens an `llm` span named `chat <model>` as a child of the current span.
    pub fn start(provider: impl Into<String>, model: impl Into<String>) -> LlmCall {
        let model = model.into();
        LlmCall::start_with(crate::span(format!("chat {model}")), provider, model)
    }

    /// Opens the call's span from a builder of your own (name, parent, tracer, extra attributes);
    /// its kind is set to `llm`.
    pub fn start_with(
        builder: SpanBuilder,
        provider: impl Into<String>,
        model: impl Into<String>,
    ) -> LlmCall {
        let provider = provider.into();
        let request_model = model.into();
        let span = builder
            .kind(SpanKind::Llm)
            .attr("gen_ai.operation.name", "chat")
            .attr("gen_ai.provider.name", provider.clone())
            .attr("gen_ai.request.model", request_model.clone())
            .start();
        LlmCall {
            recording: span.is_recording(),
            span,
            provider,
            request_model,
            started: Instant::now(),
            start_time: now(),
            first_marked: AtomicBool::new(false),
            streamed: AtomicU64::new(0),
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The call's span (to add attributes of your own).
    pub fn span(&self) -> &Span {
        &self.span
    }

    /// Makes the call's span current on this thread until the guard drops.
    pub fn enter(&self) -> ContextGuard {
        self.span.enter()
    }

    /// The call's span as a context to carry into tasks.
    pub fn context(&self) -> Context {
        self.span.context()
    }

    /// Runs `f` with the call's span current.
    pub fn in_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        self.span.in_scope(f)
    }

    /// Sets the GenAI operation (`chat` by default; `text_completion`, `generate_content`, …).
    pub fn operation(&self, name: impl Into<String>) -> &Self {
        self.span
            .set_attribute("gen_ai.operation.name", name.into());
        self
    }

    /// Records a request parameter as `gen_ai.request.<key>` (`temperature`, `max_tokens`,
    /// `top_p`, `seed`, …). `model` is ignored: the requested model is fixed at start.
    pub fn param(&self, key: &str, value: impl Into<Value>) -> &Self {
        if self.recording && key != "model" {
            let key = key.strip_prefix("gen_ai.request.").unwrap_or(key);
            self.span
                .set_attribute(format!("gen_ai.request.{key}"), value.into());
        }
        self
    }

    /// Turns message capture on or off for this call, overriding `SPANLENS_CAPTURE_MESSAGES`.
    /// Call it before [`messages_input`](Self::messages_input) / [`messages_output`](Self::messages_output).
    pub fn capture_messages(&self, on: bool) -> &Self {
        self.state().capture = Some(on);
        self
    }

    fn capturing(&self) -> bool {
        self.recording
            && self
                .state()
                .capture
                .unwrap_or_else(super::capture_messages_from_env)
    }

    /// The messages sent (OpenAI-style or GenAI-parts JSON), recorded as `gen_ai.input.messages`
    /// only when message capture is on: they often hold personal data.
    pub fn messages_input(&self, messages: &serde_json::Value) -> &Self {
        if self.capturing() {
            self.span
                .set_attribute("gen_ai.input.messages", messages.clone());
        }
        self
    }

    /// The messages produced, recorded as `gen_ai.output.messages` only when capture is on.
    pub fn messages_output(&self, messages: &serde_json::Value) -> &Self {
        if self.capturing() {
            self.span
                .set_attribute("gen_ai.output.messages", messages.clone());
        }
        self
    }

    /// The prompt template the input was rendered from, its version and the variables used.
    pub fn prompt_template(
        &self,
        template: impl Into<String>,
        version: impl Into<String>,
        variables: &serde_json::Value,
    ) -> &Self {
        if self.recording {
            let mut attrs: Vec<(Key, Value)> = vec![
                (
                    "llm.prompt_template.template".into(),
                    template.into().into(),
                ),
                ("llm.prompt_template.version".into(), version.into().into()),
            ];
            if !variables.is_null() {
                attrs.push((
                    "llm.prompt_template.variables".into(),
                    variables.clone().into(),
                ));
            }
            self.span.set_attributes(attrs);
        }
        self
    }

    /// Marks the first token as arriving now: a `spanlens.first_token` event plus
    /// `gen_ai.response.time_to_first_chunk`. Only the first call counts.
    pub fn first_token(&self) -> &Self {
        if self.first_marked.swap(true, Ordering::AcqRel) {
            return self;
        }
        let ttft = self.started.elapsed();
        self.state().first_token = Some(ttft);
        self.span
            .set_attribute("gen_ai.response.time_to_first_chunk", ttft.as_secs_f64());
        self.span
            .add_event(FIRST_TOKEN_EVENT, Vec::<(Key, Value)>::new());
        self
    }

    /// Counts one streamed token (or chunk); the first one also marks the first token.
    pub fn token(&self) -> &Self {
        self.tokens(1)
    }

    /// Counts `n` streamed tokens; the first call also marks the first token.
    pub fn tokens(&self, n: u64) -> &Self {
        if !self.first_marked.load(Ordering::Acquire) {
            self.first_token();
        }
        self.streamed.fetch_add(n, Ordering::Relaxed);
        self
    }

    /// Reads a provider usage object (OpenAI Chat or Responses, Anthropic, Gemini, or a whole
    /// response holding one) with core's token rules. An unreadable object is recorded as
    /// `spanlens.usage_error` and leaves any earlier usage in place.
    pub fn usage_json(&self, raw: &serde_json::Value) -> &Self {
        if !self.recording {
            return self;
        }
        match parse_provider_usage(raw) {
            Ok((usage, format)) => {
                self.span
                    .set_attribute("spanlens.usage.format", format.as_str());
                self.state().usage = Some(usage);
            }
            Err(e) => self
                .span
                .set_attribute("spanlens.usage_error", e.to_string()),
        }
        self
    }

    /// Sets the usage directly (canonical semantics: input includes cached tokens, output
    /// includes reasoning; the invariants are restored if broken).
    pub fn usage(&self, usage: Usage) -> &Self {
        if self.recording {
            self.state().usage = Some(usage.normalized());
        }
        self
    }

    /// The model that answered (often a dated snapshot of the requested one).
    pub fn response_model(&self, model: impl Into<String>) -> &Self {
        let m = model.into();
        self.span.set_attribute("gen_ai.response.model", m.clone());
        self.state().response_model = Some(m);
        self
    }

    /// The provider's response id.
    pub fn response_id(&self, id: impl Into<String>) -> &Self {
        self.span.set_attribute("gen_ai.response.id", id.into());
        self
    }

    /// Why generation stopped (`stop`, `length`, `tool_calls`, `end_turn`, …); one per choice.
    pub fn finish_reason(&self, reason: impl Into<String>) -> &Self {
        if self.recording {
            let list = {
                let mut st = self.state();
                st.finish_reasons.push(reason.into());
                st.finish_reasons.clone()
            };
            self.span
                .set_attribute("gen_ai.response.finish_reasons", list);
        }
        self
    }

    /// Reads the provider's rate-limit headers (OpenAI, Anthropic, `retry-after`) into
    /// `spanlens.ratelimit.*`.
    pub fn rate_limit_headers<I, K, V>(&self, headers: I) -> &Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        if self.recording {
            let rl = parse_rate_limit_headers(headers, now());
            self.span.set_attributes(rate_limit_attributes(&rl));
        }
        self
    }

    /// Marks the call failed; `error.type` is the error's type name when it says something.
    pub fn error<E: fmt::Display + ?Sized>(&self, err: &E) -> &Self {
        let ty = super::error_type_name::<E>();
        self.error_typed(ty.as_deref(), err.to_string())
    }

    /// Marks the call failed with an explicit error type (`rate_limit`, `timeout`, `429`, …).
    pub fn error_typed(&self, error_type: Option<&str>, message: impl Into<String>) -> &Self {
        self.state().failed = true;
        self.span.set_error(message, error_type);
        self
    }

    /// Ends the call: records usage, streaming speed and cost, then ends the span.
    pub fn finish(self) {
        // Dropping does the work, so a call that is never finished explicitly is complete too.
    }

    fn complete(&mut self) {
        let end = Instant::now();
        // The call ended now: what follows (usage, pricing — the first call of a process loads
        // the price catalog) is bookkeeping, not part of the span's duration.
        let end_time = now();
        let mut st = self.state();
        if std::mem::replace(&mut st.done, true) || !self.recording {
            return;
        }
        let mut attrs: Vec<(Key, Value)> = Vec::new();
        let streamed = self.streamed.load(Ordering::Relaxed);
        if streamed > 0 {
            attrs.push(("spanlens.llm.streamed_tokens".into(), streamed.into()));
        }
        let usage = st.usage.take();
        if let Some(u) = &usage {
            attrs.extend(usage_attributes(u));
        }
        let out_tokens = usage
            .as_ref()
            .map(|u| u.output_tokens)
            .filter(|n| *n > 0)
            .unwrap_or(streamed);
        if let Some(first) = st.first_token {
            let window = end.saturating_duration_since(self.started + first);
            if let Some((tps, tpot_ms)) = throughput(out_tokens, window) {
                attrs.push(("spanlens.llm.tokens_per_second".into(), tps.into()));
                attrs.push((
                    "spanlens.llm.time_per_output_token_ms".into(),
                    tpot_ms.into(),
                ));
            }
        }
        if let Some(u) = usage.as_ref().filter(|u| !u.is_empty()) {
            let models = [
                st.response_model.as_deref(),
                Some(self.request_model.as_str()),
            ];
            attrs.extend(cost_attributes(
                PriceCatalog::builtin(),
                &models,
                &self.provider,
                self.start_time,
                u,
            ));
        }
        let failed = st.failed;
        drop(st);
        self.span.set_attributes(attrs);
        if !failed {
            self.span.set_ok();
        }
        self.span.finish_at(end_time);
    }
}

impl Drop for LlmCall {
    fn drop(&mut self) {
        self.complete();
    }
}

impl fmt::Debug for LlmCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LlmCall")
            .field("span", &self.span)
            .field("provider", &self.provider)
            .field("model", &self.request_model)
            .finish()
    }
}

/// Decode speed over the generation window (first token to end): the remaining `n − 1` tokens
/// arrived over `window`, so tokens/s = (n − 1) / window and per-token latency = window / (n − 1).
/// `None` with fewer than two tokens or an empty window.
fn throughput(output_tokens: u64, window: Duration) -> Option<(f64, f64)> {
    let secs = window.as_secs_f64();
    if output_tokens < 2 || secs <= 0.0 {
        return None;
    }
    let after_first = (output_tokens - 1) as f64;
    Some((after_first / secs, secs * 1000.0 / after_first))
}

/// The `gen_ai.usage.*` attributes of a canonical usage (zero cache and reasoning counts left
/// out), plus its extra counts as `spanlens.usage.<name>`.
pub fn usage_attributes(u: &Usage) -> Vec<(Key, Value)> {
    let mut out: Vec<(Key, Value)> = vec![
        ("gen_ai.usage.input_tokens".into(), u.input_tokens.into()),
        ("gen_ai.usage.output_tokens".into(), u.output_tokens.into()),
    ];
    let optional = [
        ("gen_ai.usage.cache_read.input_tokens", u.cache_read_tokens),
        (
            "gen_ai.usage.cache_creation.input_tokens",
            u.cache_write_tokens,
        ),
        ("gen_ai.usage.reasoning.output_tokens", u.reasoning_tokens),
    ];
    for (k, v) in optional {
        if v > 0 {
            out.push((k.into(), v.into()));
        }
    }
    if u.total_tokens > 0 {
        out.push(("gen_ai.usage.total_tokens".into(), u.total_tokens.into()));
    }
    for (k, v) in &u.extra {
        out.push((format!("spanlens.usage.{k}").into(), (*v).into()));
    }
    out
}

/// The `spanlens.cost.*` attributes for `usage` priced with the first of `models` the catalog
/// knows, or `spanlens.unpriced = true` when none is.
fn cost_attributes(
    catalog: &PriceCatalog,
    models: &[Option<&str>],
    provider: &str,
    at: Timestamp,
    usage: &Usage,
) -> Vec<(Key, Value)> {
    let entry = models
        .iter()
        .flatten()
        .find_map(|m| catalog.lookup(m, Some(provider), Some(at)));
    let Some(entry) = entry else {
        return vec![("spanlens.unpriced".into(), true.into())];
    };
    let c = compute_cost(entry, usage);
    vec![
        (
            "spanlens.cost.input_usd".into(),
            c.input.as_usd_f64().into(),
        ),
        (
            "spanlens.cost.output_usd".into(),
            c.output.as_usd_f64().into(),
        ),
        (
            "spanlens.cost.cache_read_usd".into(),
            c.cache_read.as_usd_f64().into(),
        ),
        (
            "spanlens.cost.cache_write_usd".into(),
            c.cache_write.as_usd_f64().into(),
        ),
        (
            "spanlens.cost.reasoning_usd".into(),
            c.reasoning.as_usd_f64().into(),
        ),
        (
            "spanlens.cost.total_usd".into(),
            c.total.as_usd_f64().into(),
        ),
        ("spanlens.pricing_id".into(), entry.id.clone().into()),
        (
            "spanlens.pricing_version".into(),
            catalog.version().to_string().into(),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throughput_over_the_generation_window() {
        let (tps, tpot) = throughput(11, Duration::from_millis(500)).unwrap();
        assert!((tps - 20.0).abs() < 1e-9, "{tps}");
        assert!((tpot - 50.0).abs() < 1e-9, "{tpot}");
        assert_eq!(throughput(1, Duration::from_secs(1)), None);
        assert_eq!(throughput(100, Duration::ZERO), None);
    }

    #[test]
    fn usage_attributes_skip_zero_details() {
        let u = Usage {
            input_tokens: 10,
            output_tokens: 2,
            total_tokens: 12,
            ..Default::default()
        };
        let keys: Vec<String> = usage_attributes(&u)
            .into_iter()
            .map(|(k, _)| k.into_owned())
            .collect();
        assert_eq!(
            keys,
            [
                "gen_ai.usage.input_tokens",
                "gen_ai.usage.output_tokens",
                "gen_ai.usage.total_tokens"
            ]
        );
    }

    #[test]
    fn unknown_model_is_unpriced() {
        let u = Usage {
            input_tokens: 10,
            output_tokens: 2,
            ..Default::default()
        };
        let attrs = cost_attributes(
            PriceCatalog::builtin(),
            &[None, Some("my-private-finetune-xyz")],
            "acme",
            Timestamp(1_750_000_000_000_000_000),
            &u,
        );
        assert_eq!(attrs, vec![("spanlens.unpriced".into(), Value::Bool(true))]);
    }
}
