//! Demo data: a deterministic set of realistic agent traces over the four weeks before a given
//! time, so a fresh install has something to show in the UI, the API and the CLI
//! (`spanlens demo`, `spanlens serve --demo`).
//!
//! Traffic has the shape of a business workload, so the cost forecast has a weekly pattern to
//! fit: weekdays busier than weekends, working hours (UTC) busier than nights, and a gentle
//! growth over the four weeks (see [`traffic_weight`]).
//!
//! Five workflows, each with its own `service`:
//! - `support-bot`: ticket triage, then a researcher and a billing agent running in parallel,
//!   then a responder; tickets are threads of several traces (sessions);
//! - `code-review-agent`: a reviewer agent in a model → tool loop (flaky test runs are retried);
//! - `docs-qa`: RAG question answering (embedding, two retrievers in parallel, reranker, LLM,
//!   LLM-as-judge evaluator);
//! - `invoice-extractor`: document extraction with JSON-schema outputs, schema validation and
//!   repair (and the one call to a self-hosted model that has no price);
//! - `assistant-chat`: multi-turn chat sessions with a growing prompt cache, through an LLM
//!   gateway that reports each call's bill (the demo's provider-reported costs).
//!
//! Spans are built in canonical form and priced by the core cost engine. The ids depend only on
//! the seed, never on `now`, so loading the demo twice stores it once (the later copy wins, with
//! fresh timestamps).

use serde_json::{json, Value};
use spanlens_core::normalize::propagate_agent_names;
use spanlens_core::{
    compute_cost, price_span, Attributes, Cost, CostBreakdown, CostSource, Event, Link, Message,
    Payload, PriceCatalog, PromptTemplate, RateLimitWindow, RateLimits, Span, SpanId, SpanKind,
    Status, Timestamp, ToolCallRef, ToolInfo, TraceId, Usage,
};

/// Days of history the demo covers, ending at `now`: four whole weeks, so the forecast has more
/// than the 14 days it needs to fit a weekday pattern.
pub const DEMO_DAYS: u64 = 28;
/// `Span::source` of every demo span.
pub const DEMO_SOURCE: &str = "demo";
/// Seed used when none is given.
pub const DEFAULT_SEED: u64 = 42;
/// The one model of the demo that has no price in the catalog (a self-hosted fine-tune).
pub const UNPRICED_MODEL: &str = "acme/invoice-extractor-8b-ft";
/// The service whose model calls go through an LLM gateway that reports what each call was
/// billed, so the demo has provider-reported costs to reconcile.
pub const GATEWAY_SERVICE: &str = "assistant-chat";
/// The model whose bill differs from the catalog's price: the chat app asks for the one-hour
/// prompt-cache TTL, which the instrumentation does not record, so the catalog prices its
/// cache writes at the five-minute rate while the provider bills the one-hour rate.
pub const ONE_HOUR_CACHE_MODEL: &str = "claude-3-5-haiku-20241022";
/// Services (one per workflow) the demo's traces come from.
pub const SERVICES: [&str; 5] = [
    "support-bot",
    "code-review-agent",
    "docs-qa",
    "invoice-extractor",
    "assistant-chat",
];

const NS_PER_MS: u64 = 1_000_000;
const SEC: u64 = 1000;
const MINUTE: u64 = 60 * SEC;
const HOUR: u64 = 60 * MINUTE;
/// The demo window in milliseconds.
const WINDOW_MS: u64 = DEMO_DAYS * 24 * HOUR;
/// No trace starts in the first minute of the window…
const EARLY_MS: u64 = MINUTE;
/// …or later than this before `now`, so every span has ended by `now`.
const LATE_MS: u64 = 30 * MINUTE;

// About 25 traces a day on average (~700 in all): enough for a daily cost series that is not
// mostly noise, small enough that `spanlens demo` stays well under two seconds.
const CHAT_SESSIONS: usize = 40;
const SUPPORT_THREADS: usize = 45;
const CODE_REVIEWS: usize = 90;
const RAG_QUESTIONS: usize = 160;
const EXTRACTIONS: usize = 115;
/// Which extraction job runs on the unpriced self-hosted model.
const UNPRICED_EXTRACTION: usize = 5;

/// Realistic, deterministic demo traces over the `DEMO_DAYS` days before `now`.
///
/// The same seed gives the same spans (and, whatever `now` is, the same trace and span ids).
pub fn generate(seed: u64, now: Timestamp) -> Vec<Span> {
    let window_start = now.0.saturating_sub(WINDOW_MS * NS_PER_MS);
    let mut g = Gen {
        rng: Rng::new(seed),
        window_start,
        traffic: Traffic::new(window_start),
        spans: Vec::new(),
    };
    for k in 0..CHAT_SESSIONS {
        g.chat_session(k);
    }
    for k in 0..SUPPORT_THREADS {
        g.support_thread(k);
    }
    for k in 0..CODE_REVIEWS {
        g.code_review(k);
    }
    for k in 0..RAG_QUESTIONS {
        g.rag_question(k);
    }
    for k in 0..EXTRACTIONS {
        g.extraction(k);
    }
    g.spans
}

/// The trace ids of the demo for `seed`, in generation order (they do not depend on `now`), so a
/// caller can check whether the demo is already stored.
pub fn trace_ids(seed: u64) -> Vec<TraceId> {
    let spans = generate(seed, Timestamp(WINDOW_MS * NS_PER_MS));
    let mut ids: Vec<TraceId> = Vec::new();
    for s in &spans {
        if ids.last() != Some(&s.trace_id) {
            ids.push(s.trace_id);
        }
    }
    ids
}

// ---------------------------------------------------------------------------------------------
// Randomness

/// SplitMix64: small, fast, and good enough for plausible data.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5eed_0f5a_a11e_0b5e)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi.saturating_sub(lo) + 1)
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }

    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.index(xs.len())]
    }

    fn hex(&mut self, digits: usize) -> String {
        let mut s = String::with_capacity(digits);
        while s.len() < digits {
            s.push_str(&format!("{:016x}", self.next()));
        }
        s.truncate(digits);
        s
    }

    fn trace_id(&mut self) -> TraceId {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.next().to_be_bytes());
        b[8..].copy_from_slice(&self.next().to_be_bytes());
        b[15] |= 1; // never the invalid all-zero id
        TraceId(b)
    }

    fn span_id(&mut self) -> SpanId {
        let mut b = self.next().to_be_bytes();
        b[7] |= 1;
        SpanId(b)
    }
}

// ---------------------------------------------------------------------------------------------
// Models

/// How a provider caches prompts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cache {
    /// No prompt caching.
    None,
    /// Automatic prefix caching, reads only (OpenAI, Gemini implicit caching).
    Implicit,
    /// Explicit cache breakpoints, reads and writes billed apart (Anthropic).
    Explicit,
}

#[derive(Clone, Copy)]
struct Model {
    provider: &'static str,
    request: &'static str,
    response: &'static str,
    ttft_ms: (u64, u64),
    tokens_per_s: u64,
    cache: Cache,
    reasoning: bool,
    /// Requests per minute of the account's rate limit (0: the provider sends no headers).
    rpm: u64,
    /// Tokens per minute of the account's rate limit.
    tpm: u64,
}

const GPT_4O: Model = Model {
    provider: "openai",
    request: "gpt-4o",
    response: "gpt-4o-2024-08-06",
    ttft_ms: (280, 700),
    tokens_per_s: 85,
    cache: Cache::Implicit,
    reasoning: false,
    rpm: 10_000,
    tpm: 2_000_000,
};
const GPT_4O_MINI: Model = Model {
    provider: "openai",
    request: "gpt-4o-mini",
    response: "gpt-4o-mini-2024-07-18",
    ttft_ms: (180, 450),
    tokens_per_s: 130,
    cache: Cache::Implicit,
    reasoning: false,
    rpm: 30_000,
    tpm: 150_000_000,
};
const O4_MINI: Model = Model {
    provider: "openai",
    request: "o4-mini",
    response: "o4-mini-2025-04-16",
    ttft_ms: (600, 1500),
    tokens_per_s: 160,
    cache: Cache::Implicit,
    reasoning: true,
    rpm: 10_000,
    tpm: 10_000_000,
};
const CLAUDE_SONNET_4: Model = Model {
    provider: "anthropic",
    request: "claude-sonnet-4-20250514",
    response: "claude-sonnet-4-20250514",
    ttft_ms: (550, 1400),
    tokens_per_s: 70,
    cache: Cache::Explicit,
    reasoning: false,
    rpm: 4_000,
    tpm: 2_000_000,
};
const CLAUDE_HAIKU: Model = Model {
    provider: "anthropic",
    request: "claude-3-5-haiku-20241022",
    response: "claude-3-5-haiku-20241022",
    ttft_ms: (300, 750),
    tokens_per_s: 115,
    cache: Cache::Explicit,
    reasoning: false,
    rpm: 4_000,
    tpm: 4_000_000,
};
const GEMINI_FLASH: Model = Model {
    provider: "google",
    request: "gemini-2.5-flash",
    response: "gemini-2.5-flash",
    ttft_ms: (250, 650),
    tokens_per_s: 190,
    cache: Cache::Implicit,
    reasoning: false,
    rpm: 0,
    tpm: 0,
};
const MISTRAL_LARGE: Model = Model {
    provider: "mistral",
    request: "mistral-large-2411",
    response: "mistral-large-2411",
    ttft_ms: (350, 900),
    tokens_per_s: 60,
    cache: Cache::None,
    reasoning: false,
    rpm: 0,
    tpm: 0,
};
const EMBEDDING_SMALL: Model = Model {
    provider: "openai",
    request: "text-embedding-3-small",
    response: "text-embedding-3-small",
    ttft_ms: (40, 160),
    tokens_per_s: 1,
    cache: Cache::None,
    reasoning: false,
    rpm: 10_000,
    tpm: 5_000_000,
};
const SELF_HOSTED: Model = Model {
    provider: "vllm",
    request: UNPRICED_MODEL,
    response: UNPRICED_MODEL,
    ttft_ms: (90, 250),
    tokens_per_s: 240,
    cache: Cache::None,
    reasoning: false,
    rpm: 0,
    tpm: 0,
};

impl Model {
    /// Cache reads and writes for a call whose first `prefix` input tokens are a stable prompt
    /// prefix; `warm` when an earlier call has cached it.
    fn cached(&self, prefix: u64, input: u64, warm: bool) -> (u64, u64) {
        let prefix = prefix.min(input);
        if prefix < 1024 {
            return (0, 0); // below every provider's minimum cacheable prompt
        }
        match (self.cache, warm) {
            (Cache::None, _) => (0, 0),
            (Cache::Implicit, true) => (prefix / 128 * 128, 0),
            (Cache::Implicit, false) => (0, 0),
            (Cache::Explicit, true) => (prefix, 0),
            (Cache::Explicit, false) => (0, prefix),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Traffic shape

const MS_PER_DAY: u64 = 24 * HOUR;

/// Relative traffic per UTC weekday, Monday first: a business workload, quiet at weekends.
const WEEKDAY_TRAFFIC: [f64; 7] = [1.0, 1.08, 1.05, 1.0, 0.88, 0.38, 0.32];

/// Relative traffic per UTC hour: working hours in Europe and the Americas, quiet nights.
const HOURLY_TRAFFIC: [f64; 24] = [
    0.25, 0.2, 0.18, 0.18, 0.2, 0.3, 0.5, 0.8, 1.0, 1.1, 1.15, 1.15, 1.1, 1.15, 1.2, 1.2, 1.15,
    1.05, 0.95, 0.8, 0.65, 0.5, 0.4, 0.3,
];

/// Growth of the traffic from the first to the last day of the window (a product gaining users).
const GROWTH: f64 = 0.3;

/// Relative traffic at `at_ms` (milliseconds since the epoch) when the window starts at
/// `start_ms`: weekday × hour of day × linear growth.
fn traffic_weight(at_ms: u64, start_ms: u64) -> f64 {
    let day = at_ms / MS_PER_DAY;
    // 1970-01-01 was a Thursday: index 3 when Monday is 0.
    let weekday = ((day + 3) % 7) as usize;
    let hour = ((at_ms % MS_PER_DAY) / HOUR) as usize;
    let progress = at_ms.saturating_sub(start_ms) as f64 / WINDOW_MS as f64;
    WEEKDAY_TRAFFIC[weekday] * HOURLY_TRAFFIC[hour] * (1.0 + GROWTH * progress.min(1.0))
}

/// The traffic density over the window as hourly steps, for drawing start times from it.
struct Traffic {
    /// `cumulative[k]`: total weight of the hours before hour `k` of the window.
    cumulative: Vec<f64>,
}

impl Traffic {
    /// One step per hour of the window (the steps follow the window start, not the clock hour:
    /// each takes the weight of its midpoint).
    fn new(window_start_ns: u64) -> Traffic {
        let start_ms = window_start_ns / NS_PER_MS;
        let hours = (WINDOW_MS / HOUR) as usize;
        let mut cumulative = Vec::with_capacity(hours + 1);
        let mut sum = 0.0;
        cumulative.push(sum);
        for k in 0..hours as u64 {
            sum += traffic_weight(start_ms + k * HOUR + HOUR / 2, start_ms);
            cumulative.push(sum);
        }
        Traffic { cumulative }
    }

    /// Cumulative weight at offset `ms` of the window.
    fn cdf(&self, ms: u64) -> f64 {
        let k = ((ms / HOUR) as usize).min(self.cumulative.len() - 2);
        let within = (ms - k as u64 * HOUR) as f64 / HOUR as f64;
        self.cumulative[k] + within * (self.cumulative[k + 1] - self.cumulative[k])
    }

    /// The offset in `[lo, hi)` whose cumulative weight is the fraction `u` of the way from
    /// `lo` to `hi` (inverse transform sampling).
    fn place(&self, lo: u64, hi: u64, u: f64) -> u64 {
        let (a, b) = (self.cdf(lo), self.cdf(hi));
        let target = a + u * (b - a);
        // The last step whose start is at or below the target.
        let k = self
            .cumulative
            .partition_point(|c| *c <= target)
            .saturating_sub(1)
            .min(self.cumulative.len() - 2);
        let width = self.cumulative[k + 1] - self.cumulative[k];
        let within = if width > 0.0 {
            (target - self.cumulative[k]) / width
        } else {
            0.0
        };
        let at = k as u64 * HOUR + (within * HOUR as f64) as u64;
        at.clamp(lo, hi.saturating_sub(1).max(lo))
    }
}

// ---------------------------------------------------------------------------------------------
// Building traces

/// A failure plan for an operation that is retried.
#[derive(Clone)]
struct Retry {
    /// Failed attempts.
    fails: u64,
    /// True when no attempt succeeds (the last failure ends the span in error).
    exhausted: bool,
    error_type: &'static str,
    message: String,
    /// How long a failing attempt takes.
    attempt_ms: (u64, u64),
    /// First backoff; doubled after every failure (plus jitter).
    backoff_ms: u64,
    /// A server's `Retry-After` hint, which replaces the backoff.
    retry_after_ms: Option<u64>,
}

/// One model call to add to a trace.
struct Call {
    name: &'static str,
    model: Model,
    /// All input tokens, cached ones included.
    input: u64,
    /// Visible output tokens (reasoning tokens are added for reasoning models).
    output: u64,
    /// Tokens of stable prompt prefix (system prompt, tools, earlier turns).
    prefix: u64,
    /// Whether the prefix is already in the provider's cache.
    warm: bool,
    temperature: f64,
    max_tokens: u64,
    messages: Vec<Message>,
    reply: Message,
    prompt: Option<PromptTemplate>,
    /// Name of the JSON schema the output must follow (structured outputs).
    json_schema: Option<&'static str>,
    retry: Option<Retry>,
}

impl Call {
    fn new(name: &'static str, model: Model, input: u64, output: u64) -> Call {
        Call {
            name,
            model,
            input,
            output,
            prefix: 0,
            warm: false,
            temperature: 0.2,
            max_tokens: 1024,
            messages: Vec::new(),
            reply: Message::default(),
            prompt: None,
            json_schema: None,
            retry: None,
        }
    }
}

/// One tool execution to add to a trace.
struct ToolCall {
    name: &'static str,
    description: &'static str,
    args: Value,
    result: Value,
    duration_ms: (u64, u64),
    call_id: Option<String>,
    retry: Option<Retry>,
}

/// Trace-level context copied onto every span of the trace.
struct Ctx {
    service: &'static str,
    user: Option<String>,
    session: Option<String>,
    tags: Vec<String>,
    metadata: Attributes,
    /// Forces the workflow's rarest failure in this trace.
    incident: bool,
}

/// What happened when an operation ran: its span, when it ended, whether it succeeded.
#[derive(Clone, Copy)]
struct Done {
    span: usize,
    end: u64,
    ok: bool,
}

/// A trace under construction; times are milliseconds from the trace's start.
struct Trace<'a> {
    rng: &'a mut Rng,
    window_start: u64,
    t0: u64,
    trace_id: TraceId,
    spans: Vec<Span>,
}

impl Trace<'_> {
    fn ts(&self, at: u64) -> Timestamp {
        Timestamp(self.window_start + (self.t0 + at) * NS_PER_MS)
    }

    fn open(&mut self, parent: Option<usize>, name: &str, kind: SpanKind, at: u64) -> usize {
        let span_id = self.rng.span_id();
        let parent_span_id = parent.map(|p| self.spans[p].span_id);
        self.spans.push(Span {
            trace_id: self.trace_id,
            span_id,
            parent_span_id,
            name: name.to_string(),
            kind,
            start_time: self.ts(at),
            ..Default::default()
        });
        self.spans.len() - 1
    }

    /// Ends a span; one not marked failed is `ok`.
    fn close(&mut self, i: usize, at: u64) {
        let end = self.ts(at);
        let s = &mut self.spans[i];
        s.end_time = Some(end);
        if s.status == Status::Unset {
            s.status = Status::Ok;
        }
    }

    fn fail(&mut self, i: usize, error_type: &str, message: impl Into<String>) {
        let s = &mut self.spans[i];
        s.status = Status::Error;
        s.error_type = Some(error_type.to_string());
        s.status_message = Some(message.into());
    }

    fn event(&mut self, i: usize, at: u64, name: &str, attributes: Value) {
        let time = self.ts(at);
        let attributes = match attributes {
            Value::Object(m) => m.into_iter().collect(),
            _ => Attributes::new(),
        };
        self.spans[i].events.push(Event {
            name: name.to_string(),
            time,
            attributes,
        });
    }

    fn attr(&mut self, i: usize, key: &str, value: Value) {
        self.spans[i].attributes.insert(key.to_string(), value);
    }

    fn input(&mut self, i: usize, v: Value) {
        self.spans[i].input = Some(Payload::from_value(v));
    }

    fn output(&mut self, i: usize, v: Value) {
        self.spans[i].output = Some(Payload::from_value(v));
    }

    /// Adds the failed attempts of `r` to span `i` from `at` as `retry` events (and the final
    /// `retry.outcome` when every attempt failed); returns when the next attempt starts, or when
    /// the span ends if none does.
    fn failed_attempts(&mut self, i: usize, at: u64, r: &Retry) -> u64 {
        let mut t = at;
        for attempt in 1..=r.fails {
            t += self.rng.range(r.attempt_ms.0, r.attempt_ms.1);
            if r.exhausted && attempt == r.fails {
                self.event(
                    i,
                    t,
                    "retry.outcome",
                    json!({
                        "retry.attempts": attempt,
                        "retry.succeeded": false,
                        "retry.stop_reason": "exhausted",
                        "error.type": r.error_type,
                        "error.message": r.message,
                    }),
                );
                self.fail(
                    i,
                    r.error_type,
                    format!("{} (gave up after {attempt} attempts)", r.message),
                );
                return t;
            }
            let jitter = self.rng.below(r.backoff_ms / 4 + 1);
            let backoff = r
                .retry_after_ms
                .unwrap_or((r.backoff_ms << (attempt - 1)) + jitter);
            let mut attrs = json!({
                "retry.attempt": attempt,
                "error.type": r.error_type,
                "error.message": r.message,
                "retry.backoff_ms": backoff,
            });
            if let Some(h) = r.retry_after_ms {
                attrs["retry.retry_after_ms"] = json!(h);
            }
            self.event(i, t, "retry", attrs);
            t += backoff;
        }
        t
    }

    /// Records the `retry.outcome` of an operation that failed `r.fails` times and then succeeded.
    fn recovered(&mut self, i: usize, at: u64, first_failure: u64, r: &Retry) {
        self.event(
            i,
            at,
            "retry.outcome",
            json!({
                "retry.attempts": r.fails + 1,
                "retry.succeeded": true,
                "retry.recovery_ms": at.saturating_sub(first_failure),
            }),
        );
    }

    /// A rate-limit snapshot as the provider's response headers report it.
    fn rate_limits(
        &mut self,
        m: &Model,
        at: u64,
        tokens: u64,
        limited: Option<u64>,
    ) -> Option<RateLimits> {
        if m.rpm == 0 {
            return None;
        }
        let req_left = match limited {
            Some(_) => 0,
            None => self.rng.range(m.rpm / 5, m.rpm - 1),
        };
        let tok_left = m
            .tpm
            .saturating_sub(tokens)
            .saturating_sub(self.rng.below(m.tpm / 2));
        let (req_in, tok_in) = (self.rng.range(100, 60 * SEC), self.rng.range(100, 60 * SEC));
        let (req_reset, tok_reset) = (self.ts(at + req_in), self.ts(at + tok_in));
        let window = |limit: u64, remaining: u64, reset: Timestamp| RateLimitWindow {
            limit: Some(limit),
            remaining: Some(remaining),
            reset: Some(reset),
        };
        let mut rl = RateLimits {
            requests: Some(window(m.rpm, req_left, req_reset)),
            tokens: Some(window(m.tpm, tok_left, tok_reset)),
            retry_after_ms: limited,
            ..Default::default()
        };
        if m.provider == "anthropic" {
            let input_tpm = m.tpm * 4 / 5;
            let output_tpm = m.tpm / 5;
            rl.input_tokens = Some(window(
                input_tpm,
                input_tpm.saturating_sub(self.rng.below(input_tpm / 2)),
                tok_reset,
            ));
            rl.output_tokens = Some(window(
                output_tpm,
                output_tpm.saturating_sub(self.rng.below(output_tpm / 2)),
                tok_reset,
            ));
        }
        Some(rl)
    }

    /// Adds a model call under `parent` starting at `at`.
    fn llm(&mut self, parent: usize, at: u64, c: Call) -> Done {
        let m = c.model;
        let kind = if m.request.contains("embedding") {
            SpanKind::Embedding
        } else {
            SpanKind::Llm
        };
        let i = self.open(Some(parent), c.name, kind, at);
        {
            let s = &mut self.spans[i];
            s.provider = Some(m.provider.to_string());
            s.request_model = Some(m.request.to_string());
            if kind == SpanKind::Llm {
                let p = &mut s.model_parameters;
                p.insert("temperature".into(), json!(c.temperature));
                p.insert("max_tokens".into(), json!(c.max_tokens));
                if let Some(schema) = c.json_schema {
                    p.insert(
                        "response_format".into(),
                        json!({"type": "json_schema", "json_schema": {"name": schema, "strict": true}}),
                    );
                }
                if m.reasoning {
                    p.insert("reasoning_effort".into(), json!("medium"));
                }
            }
            s.input_messages = c.messages;
            s.prompt = c.prompt;
            s.attributes.insert(
                "gen_ai.operation.name".into(),
                json!(if kind == SpanKind::Llm {
                    "chat"
                } else {
                    "embeddings"
                }),
            );
        }
        let mut t = at;
        let mut first_failure = None;
        if let Some(r) = &c.retry {
            first_failure = Some(at + r.attempt_ms.0);
            t = self.failed_attempts(i, at, r);
            if r.exhausted {
                let rl = self.rate_limits(&m, t, 0, r.retry_after_ms);
                self.spans[i].rate_limits = rl;
                self.close(i, t);
                return Done {
                    span: i,
                    end: t,
                    ok: false,
                };
            }
        }
        let reasoning = if m.reasoning {
            self.rng.range(c.output / 2, c.output * 3)
        } else {
            0
        };
        let output = if kind == SpanKind::Llm {
            c.output + reasoning
        } else {
            0
        };
        let think_ms = reasoning * SEC / m.tokens_per_s;
        let ttft = self.rng.range(m.ttft_ms.0, m.ttft_ms.1) + c.input / 40 + think_ms;
        let end = t + ttft + c.output * SEC / m.tokens_per_s;
        let (cache_read, cache_write) = m.cached(c.prefix, c.input, c.warm);
        let usage = Usage {
            input_tokens: c.input,
            output_tokens: output,
            cache_read_tokens: cache_read,
            cache_write_tokens: cache_write,
            reasoning_tokens: reasoning,
            ..Default::default()
        }
        .normalized();
        let limited = c.retry.as_ref().and_then(|r| r.retry_after_ms);
        let rl = self.rate_limits(&m, end, usage.total_tokens, limited);
        if let (Some(r), Some(first)) = (&c.retry, first_failure) {
            self.recovered(i, end, first, r);
        }
        let s = &mut self.spans[i];
        s.response_model = Some(m.response.to_string());
        s.usage = Some(usage);
        s.rate_limits = rl;
        if kind == SpanKind::Llm {
            s.ttft_ns = Some((t - at + ttft) * NS_PER_MS);
            let finish = if c.reply.tool_calls.is_empty() {
                "stop"
            } else {
                "tool_calls"
            };
            s.finish_reasons = vec![finish.to_string()];
            let mut reply = c.reply;
            reply.role = Some("assistant".into());
            reply.finish_reason = Some(finish.into());
            s.output_messages = vec![reply];
        }
        self.close(i, end);
        Done {
            span: i,
            end,
            ok: true,
        }
    }

    /// Adds a tool execution under `parent` starting at `at`.
    fn tool(&mut self, parent: usize, at: u64, c: ToolCall) -> Done {
        let i = self.open(Some(parent), c.name, SpanKind::Tool, at);
        self.spans[i].tool = Some(ToolInfo {
            name: Some(c.name.to_string()),
            call_id: c.call_id,
            description: Some(c.description.to_string()),
        });
        self.input(i, c.args);
        let mut t = at;
        if let Some(r) = &c.retry {
            t = self.failed_attempts(i, at, r);
            if r.exhausted {
                self.spans[i].error_stack = Some(format!(
                    "{}: {}\n  at {} (tools/{}.py:{})\n  at run_tool (agents/runtime.py:214)",
                    r.error_type,
                    r.message,
                    c.name,
                    c.name.split('.').next().unwrap_or(c.name),
                    40 + c.name.len() * 3
                ));
                self.close(i, t);
                return Done {
                    span: i,
                    end: t,
                    ok: false,
                };
            }
        }
        let end = t + self.rng.range(c.duration_ms.0, c.duration_ms.1);
        if let Some(r) = &c.retry {
            self.recovered(i, end, at + r.attempt_ms.0, r);
        }
        self.output(i, c.result);
        self.close(i, end);
        Done {
            span: i,
            end,
            ok: true,
        }
    }

    /// A guardrail check with its verdict.
    fn guardrail(
        &mut self,
        parent: usize,
        at: u64,
        name: &str,
        dur: u64,
        passed: bool,
        reason: &str,
    ) -> Done {
        let i = self.open(Some(parent), name, SpanKind::Guardrail, at);
        let end = at + dur;
        self.event(
            i,
            end,
            "guardrail.verdict",
            json!({"guardrail.name": name, "guardrail.passed": passed, "guardrail.reason": reason}),
        );
        self.attr(i, "spanlens.guardrail.passed", json!(passed));
        self.output(i, json!({"passed": passed, "reason": reason}));
        self.close(i, end);
        Done {
            span: i,
            end,
            ok: passed,
        }
    }

    /// Finishes the trace: context onto every span, agent names, prices.
    fn finish(mut self, ctx: &Ctx) -> Vec<Span> {
        let resource: std::sync::Arc<Attributes> = std::sync::Arc::new(
            [
                ("service.name".to_string(), json!(ctx.service)),
                ("service.version".to_string(), json!("2.14.0")),
                ("deployment.environment".to_string(), json!("production")),
                ("telemetry.sdk.name".to_string(), json!("spanlens-demo")),
            ]
            .into_iter()
            .collect::<Attributes>(),
        );
        for s in &mut self.spans {
            s.service = Some(ctx.service.to_string());
            s.source = Some(DEMO_SOURCE.to_string());
            s.user_id = ctx.user.clone();
            s.session_id = ctx.session.clone();
            s.tags = ctx.tags.clone();
            s.metadata = ctx.metadata.clone();
            s.resource = resource.clone();
        }
        propagate_agent_names(&mut self.spans);
        let catalog = PriceCatalog::builtin();
        for s in &mut self.spans {
            if ctx.service == GATEWAY_SERVICE {
                gateway_bill(s, catalog);
            }
            price_span(s, catalog);
        }
        self.spans
    }
}

/// Sets the cost the gateway reported for a model call: the catalog's price of what the provider
/// actually billed, which for [`ONE_HOUR_CACHE_MODEL`] includes one-hour cache writes the span's
/// usage does not show. Calls that failed (no usage) were not billed and report nothing.
fn gateway_bill(s: &mut Span, catalog: &PriceCatalog) {
    let Some(usage) = s.usage.as_ref().filter(|_| s.kind == SpanKind::Llm) else {
        return;
    };
    let Some(model) = s.response_model.as_deref() else {
        return;
    };
    let Some(entry) = catalog.lookup(model, s.provider.as_deref(), Some(s.start_time)) else {
        return;
    };
    let mut billed = usage.clone();
    if model == ONE_HOUR_CACHE_MODEL && billed.cache_write_tokens > 0 {
        billed
            .extra
            .insert(Usage::CACHE_WRITE_1H.to_string(), billed.cache_write_tokens);
    }
    // A gateway reports the total it charged, not the catalog's breakdown.
    s.cost = Some(Cost {
        source: CostSource::Reported,
        amounts: CostBreakdown {
            total: compute_cost(entry, &billed).total,
            ..Default::default()
        },
        pricing_id: None,
        pricing_version: None,
        computed: None,
    });
    s.attributes
        .insert("server.address".into(), json!("openrouter.ai"));
    s.attributes
        .insert("llm.gateway".into(), json!("openrouter"));
}

fn msg(role: &str, content: impl Into<String>) -> Message {
    Message {
        role: Some(role.to_string()),
        content: Some(content.into()),
        ..Default::default()
    }
}

fn tool_call(id: &str, name: &str, args: &Value) -> ToolCallRef {
    ToolCallRef {
        id: Some(id.to_string()),
        name: Some(name.to_string()),
        arguments: Some(args.to_string()),
    }
}

fn tool_result(id: &str, name: &str, result: &Value) -> Message {
    Message {
        role: Some("tool".into()),
        content: Some(result.to_string()),
        name: Some(name.to_string()),
        tool_call_id: Some(id.to_string()),
        ..Default::default()
    }
}

fn template(name: &str, version: &str, text: &str, vars: Value) -> PromptTemplate {
    PromptTemplate {
        name: Some(name.to_string()),
        template: Some(text.to_string()),
        version: Some(version.to_string()),
        variables: match vars {
            Value::Object(m) => m.into_iter().collect(),
            _ => Attributes::new(),
        },
    }
}

fn meta(v: Value) -> Attributes {
    match v {
        Value::Object(m) => m.into_iter().collect(),
        _ => Attributes::new(),
    }
}

fn tags(xs: &[&str]) -> Vec<String> {
    xs.iter().map(|s| s.to_string()).collect()
}

// ---------------------------------------------------------------------------------------------
// Content

const USERS: [&str; 10] = [
    "maria.garcia",
    "james.wilson",
    "li.wei",
    "fatima.khan",
    "lucas.silva",
    "emma.johnson",
    "noah.mueller",
    "aisha.bello",
    "kenji.sato",
    "olivia.brown",
];

/// A support ticket and how its thread goes. Every text answers the message before it: the
/// help article and the billing agent's finding are about this ticket, and the follow-ups come
/// in the order a customer would send them, each with the reply that answers it.
struct Ticket {
    message: &'static str,
    category: &'static str,
    priority: &'static str,
    /// Index in [`KB_ARTICLES`] of the article that answers the ticket.
    article: usize,
    /// What the billing agent concludes from the customer's invoices.
    billing: &'static str,
    /// The answer to the ticket itself.
    reply: &'static str,
    /// (customer's follow-up, support's answer), in thread order.
    follow_ups: [(&'static str, &'static str); 3],
}

const TICKETS: [Ticket; 10] = [
    Ticket {
        message: "I was charged twice for my March invoice (INV-20931, $49.00). Please refund the duplicate charge.",
        category: "billing",
        priority: "high",
        article: 0,
        billing: "Two charges of $49.00 for INV-20931 in the same period: a duplicate charge; propose a refund of one for approval.",
        reply: "I can see the second $49.00 charge for INV-20931, and our billing team has approved a refund of the duplicate; it will show on your statement within 5–10 business days.",
        follow_ups: [
            ("Can you confirm the refund went through? I don't see it on my statement yet.", "The $49.00 refund was issued on our side yesterday (reference RF-20931); banks take 5–10 business days to show it."),
            ("Will this happen again next month?", "No: the duplicate came from a payment retry while your card was being updated, and your billing profile is fixed, so next month's invoice is charged once."),
            ("Thanks, I can see it now.", "Great to hear it arrived! I'll close this ticket; reply here if anything else comes up."),
        ],
    },
    Ticket {
        message: "Since yesterday's update the 'Export to CSV' button on the reports page does nothing.",
        category: "bug",
        priority: "normal",
        article: 4,
        billing: "No billing issue: the invoices are regular and paid; nothing to refund.",
        reply: "Our engineers reproduced the broken 'Export to CSV' button from yesterday's update and a fix is rolling out today; until then, Reports → ⋯ → Download as XLSX works.",
        follow_ups: [
            ("Is the fix out yet? The button still does nothing for me.", "The fix went out at 14:00 UTC; reload the reports page with Ctrl+Shift+R so your browser picks up the new version."),
            ("It works after the reload, but the dates in the CSV are in UTC. Can they be local?", "Yes: Settings → Workspace → Time zone sets the zone exports use, and the CSV dates follow it."),
            ("Perfect, thanks.", "You're welcome — closing this ticket now."),
        ],
    },
    Ticket {
        message: "How do I add a second admin to our workspace? Settings only lets me invite members.",
        category: "how_to",
        priority: "low",
        article: 2,
        billing: "No billing issue: admins take no extra seat on this plan.",
        reply: "Invite the person as a member first, then open Settings → Members, click their name and change the role to Admin. Only the workspace owner can change roles.",
        follow_ups: [
            ("The role menu is greyed out for me.", "That means you are an admin rather than the owner: only the owner can promote members. Settings → Members marks the owner with a crown."),
            ("Our owner left the company. How do we transfer ownership?", "We can transfer it for you: reply from a company address with the new owner's email, and we'll verify the request and move ownership within one business day."),
            ("The new owner is dana@example.com.", "Done: dana@example.com now owns the workspace and can promote admins under Settings → Members."),
        ],
    },
    Ticket {
        message: "We're billed for 25 seats but only 18 people are active. Can you adjust our plan?",
        category: "billing",
        priority: "normal",
        article: 1,
        billing: "25 seats billed, 18 active users: reduce the plan to 18 seats; the 7 unused seats are credited pro rata.",
        reply: "I've reduced your plan to 18 seats; the 7 unused seats for the rest of this period come back as a prorated credit on your next invoice.",
        follow_ups: [
            ("How much will the credit be?", "7 seats at $12 a month for the 19 days left in the period: $53.20, shown as a credit line on your next invoice."),
            ("Can we add seats back later if we hire?", "Yes: add seats any time under Settings → Billing; a new seat is prorated from the day you add it."),
            ("Great, thanks!", "Happy to help — closing this ticket."),
        ],
    },
    Ticket {
        message: "Order A-77120 has shown 'label created' for six days. Where is my package?",
        category: "shipping",
        priority: "normal",
        article: 9,
        billing: "No billing issue: order A-77120 is paid.",
        reply: "The carrier confirmed that order A-77120 was picked up late and is now in transit; it should arrive within two business days.",
        follow_ups: [
            ("Tracking still says 'label created'.", "The carrier scanned the parcel at their depot this morning; their tracking page updates overnight, so it should read 'in transit' tomorrow."),
            ("Three more days and nothing has arrived.", "I'm sorry: the carrier has lost the parcel. We shipped a replacement by express today (tracking 1Z-88412) at no charge."),
            ("The replacement arrived, thank you.", "Glad it's there! Closing this ticket now."),
        ],
    },
    Ticket {
        message: "Can we switch from monthly to annual billing mid-cycle and still get the annual discount?",
        category: "billing",
        priority: "low",
        article: 6,
        billing: "Monthly plan, paid up: a switch to annual now credits the unused part of the month and gets the annual discount.",
        reply: "Yes: switch under Settings → Billing → Billing period. The unused part of this month is credited and the annual plan starts today with the 20% annual discount.",
        follow_ups: [
            ("Will we be charged for the full year today?", "Yes: the annual price is charged today, minus the credit for the unused part of this month."),
            ("Can we pay the annual invoice by bank transfer?", "Yes: choose 'Invoice' as the payment method when you switch, and the invoice is payable by transfer within 30 days."),
            ("Switched, thanks!", "Thanks for switching — your annual plan is active. Closing this ticket."),
        ],
    },
    Ticket {
        message: "SSO login fails for everyone with 'invalid SAML response' since 09:00 UTC.",
        category: "bug",
        priority: "urgent",
        article: 3,
        billing: "No billing issue: the enterprise plan with SSO is active and paid.",
        reply: "We found the cause: our SAML signing certificate was rotated at 09:00 UTC and your identity provider still trusts the old one. Upload the new certificate from Settings → Security → SSO and logins work again.",
        follow_ups: [
            ("We uploaded the new certificate but still get the error.", "Your identity provider caches our metadata: re-import it from the metadata URL (Settings → Security → SSO → Copy metadata URL), then try again."),
            ("That fixed it. Why weren't we warned about the rotation?", "You should have been: the notice only went to your billing contact. We've added your IT admins to security notices, so the next rotation reaches them 30 days ahead."),
            ("Thanks for the quick help.", "Thanks for your patience — closing this incident ticket."),
        ],
    },
    Ticket {
        message: "Please cancel our subscription at the end of the current period and send a final invoice.",
        category: "account",
        priority: "normal",
        article: 8,
        billing: "Subscription paid up to the end of the period: no refund due; the final invoice is issued on its last day.",
        reply: "Your subscription is set to end with the current period, and the final invoice will be emailed to you on its last day.",
        follow_ups: [
            ("Can we still export our data after the cancellation?", "Yes: for 30 days after the period ends you can export everything from Settings → Data → Export; after that it is deleted."),
            ("Actually, can we pause instead of cancelling?", "Yes: I've turned the cancellation into a three-month pause. You won't be billed during it and your data stays as it is."),
            ("Great, thank you.", "You're welcome — the pause is in place. Closing this ticket."),
        ],
    },
    Ticket {
        message: "The API returns 429 for us at only 20 requests per minute; our plan says 600.",
        category: "bug",
        priority: "high",
        article: 5,
        billing: "No billing issue: the plan with 600 requests per minute is active and paid.",
        reply: "Your API key kept the free tier's limit of 20 requests per minute after your upgrade; we've moved it to your plan's 600 per minute, effective now.",
        follow_ups: [
            ("Still seeing 429s on one of our keys.", "That key belongs to a second project that is still on the free plan: move it into your paid workspace under Settings → API keys and it gets 600 per minute too."),
            ("Can we get a higher limit for a launch next week?", "Yes: both keys get 1,500 requests per minute from Monday to Sunday next week, then return to 600."),
            ("Thanks, that's everything.", "You're welcome — good luck with the launch! Closing this ticket."),
        ],
    },
    Ticket {
        message: "Our VAT ID is missing from the last three invoices; accounting needs corrected copies.",
        category: "billing",
        priority: "normal",
        article: 7,
        billing: "The VAT ID was added after the last three invoices were issued: reissue them with it; no amount changes.",
        reply: "I've added your VAT ID to the last three invoices and reissued them; the corrected copies are under Settings → Billing → Invoices.",
        follow_ups: [
            ("Could you send the corrected invoices as PDF to finance@ as well?", "Done: the three corrected invoices went to finance@ as PDFs a minute ago."),
            ("Will future invoices include the VAT ID automatically?", "Yes: the VAT ID is now on your billing profile, so every future invoice carries it."),
            ("Thanks, that's all.", "You're welcome — closing this ticket."),
        ],
    },
];

const KB_ARTICLES: [&str; 10] = [
    "Refunds for duplicate charges",
    "Changing seat counts and proration",
    "Workspace roles: owners, admins, members",
    "Troubleshooting SAML SSO",
    "Exporting reports (CSV, XLSX)",
    "API rate limits by plan",
    "Switching billing periods",
    "Tax IDs on invoices",
    "Cancelling a subscription",
    "Shipping delays and tracking",
];

const REPOS: [&str; 4] = [
    "acme/payments-api",
    "acme/web-app",
    "acme/infra",
    "acme/ml-pipelines",
];

const PR_TITLES: [&str; 8] = [
    "Add idempotency keys to the refund endpoint",
    "Migrate the session store to a Redis cluster",
    "Fix race in the webhook retry scheduler",
    "Paginate /v2/invoices with cursors",
    "Cache feature flags per request",
    "Split the VPC module per region",
    "Vectorise feature extraction in the ranker",
    "Drop async-trait now that the MSRV allows it",
];

const FILES: [&str; 8] = [
    "src/refunds/handler.rs",
    "src/webhooks/scheduler.rs",
    "migrations/0042_idempotency_keys.sql",
    "web/src/pages/Reports.tsx",
    "modules/vpc/main.tf",
    "pipelines/ranker/features.py",
    "tests/integration/refunds_test.rs",
    "src/flags/cache.rs",
];

const FINDINGS: [&str; 6] = [
    "The idempotency check runs after the charge lookup and outside the transaction: two concurrent refunds can both pass.",
    "The new cursor query needs an index on invoices(customer_id, created_at).",
    "The retry loop has no jitter, so every webhook fires again in the same second after an outage.",
    "This Vec grows without bound on the batch path; cap it or stream the rows.",
    "Error from the cache lookup is swallowed; log it at least once per minute.",
    "Looks good overall; add a test for the empty-page case.",
];

/// (question, relevant articles)
const QUESTIONS: [(&str, [&str; 2]); 10] = [
    (
        "How do I rotate an API key without downtime?",
        ["Authentication › Key rotation", "Authentication › API keys"],
    ),
    (
        "What's the maximum payload size for webhook events?",
        [
            "Webhooks › Payload limits",
            "Webhooks › Delivery and retries",
        ],
    ),
    (
        "Can I export traces to S3 on a schedule?",
        ["Exports › Scheduled exports", "Exports › Destinations"],
    ),
    (
        "How are seats counted for guest users?",
        ["Billing › Seats and guests", "Workspace › Guests"],
    ),
    (
        "Does the Python SDK support HTTP proxies?",
        ["SDK › Networking and proxies", "SDK › Configuration"],
    ),
    (
        "Where is data stored for EU customers?",
        ["Security › Data residency", "Security › Sub-processors"],
    ),
    (
        "How do I set up SAML SSO with Okta?",
        ["SSO › Okta SAML setup", "SSO › Troubleshooting"],
    ),
    (
        "Why do my webhooks arrive out of order?",
        [
            "Webhooks › Ordering guarantees",
            "Webhooks › Delivery and retries",
        ],
    ),
    (
        "What changed in the 2.14 release?",
        ["Changelog › 2.14", "Changelog › Deprecations"],
    ),
    (
        "How long are audit logs retained?",
        ["Security › Audit logs", "Plans › Retention"],
    ),
];

const OTHER_DOCS: [&str; 6] = [
    "Getting started › Quickstart",
    "API reference › Pagination",
    "Billing › Invoices",
    "SDK › Logging",
    "Workspace › Roles",
    "Integrations › Slack",
];

const VENDORS: [&str; 6] = [
    "Northwind Traders",
    "Globex GmbH",
    "Initech Ltd",
    "Umbrella Supplies",
    "Stark Logistics",
    "Wayne Office Co.",
];

/// (topic, turns as (user, assistant))
const CHATS: [(&str, [(&str, &str); 7]); 4] = [
    ("travel", [
        ("I'm planning four days in Lisbon in May. Which neighbourhoods should I stay in?", "For a first visit, Baixa/Chiado is central and walkable; Príncipe Real is quieter and leafy; Alfama is atmospheric but hilly."),
        ("Which of those is easiest without a car?", "Baixa/Chiado: the metro, trams 28 and 15 and the train to Belém and Cascais are all a short walk away."),
        ("Can you draft a day-by-day plan with one day trip?", "Day 1 Baixa and Alfama, day 2 Belém, day 3 Sintra (train from Rossio), day 4 LX Factory and a sunset at Miradouro da Senhora do Monte."),
        ("What's the weather usually like then?", "Mid-May averages 22 °C by day and 14 °C at night with little rain; bring a light jacket for the evenings."),
        ("Any restaurants near Príncipe Real for a birthday dinner?", "Try Cervejaria Ramiro for seafood or a tasting menu at Prado; book a week ahead for a Saturday."),
        ("How much should I budget per day?", "About €110–150 per person per day for a mid-range hotel share, meals, transport and one paid sight."),
        ("Great — summarise the plan as a checklist.", "☐ Book Baixa hotel ☐ Viva Viagem card ☐ Sintra train + Pena tickets ☐ Dinner reservation ☐ Light jacket."),
    ]),
    ("rust", [
        ("Why does the borrow checker complain when I push to a Vec while iterating over it?", "Iterating borrows the Vec immutably; push needs a mutable borrow and may reallocate, invalidating the iterator."),
        ("Show me the idiomatic fix.", "Collect what to add first (`let extra: Vec<_> = v.iter().filter(..).cloned().collect(); v.extend(extra);`), or loop over indices."),
        ("What about removing items while iterating?", "Use `v.retain(|x| keep(x))`, or `retain_mut` when you also need to modify the kept items."),
        ("Is retain O(n)?", "Yes: one pass, each kept element is moved at most once."),
        ("And for a HashMap?", "`HashMap::retain` works the same way; `extract_if` is there when you need the removed entries."),
        ("Can you write a test for that?", "Here is one: a #[test] that builds a map, retains the even keys and asserts the remaining keys and the length."),
        ("Thanks, that compiles now.", "Great! Consider clippy's `manual_retain` lint to catch the old pattern elsewhere."),
    ]),
    ("finance", [
        ("What's the difference between a Roth and a traditional IRA?", "Traditional: contributions may be deductible now and withdrawals are taxed. Roth: contributions are after-tax and qualified withdrawals are tax-free."),
        ("Which one makes sense if I expect a higher income later?", "Usually the Roth: you pay tax at today's lower rate."),
        ("What are this year's contribution limits?", "I checked the current IRS figures: the limit is $7,000, or $8,000 if you are 50 or older."),
        ("Can I have both?", "Yes, but the limit is shared across all your IRAs."),
        ("What if I earn too much for a Roth?", "A backdoor Roth (non-deductible traditional contribution, then conversion) is the common route; watch the pro-rata rule."),
        ("Summarise this for my notes.", "Roth if you expect higher taxes later, shared $7k limit, backdoor Roth above the income limit, mind pro-rata."),
        ("Thanks!", "You're welcome — not financial advice; a tax professional can check your situation."),
    ]),
    ("writing", [
        ("Help me write a short email declining a meeting politely.", "Hi Sam, thanks for the invite. I can't make Thursday's meeting, but I'm happy to review the notes and follow up by Friday."),
        ("Make it a bit warmer.", "Hi Sam, thank you so much for including me! Unfortunately Thursday doesn't work for me, but I'd love to catch up on the notes and share thoughts by Friday."),
        ("Now a version for a client.", "Dear Ms Patel, thank you for the invitation. I am unable to attend on Thursday; may I propose Monday at 10:00 instead?"),
        ("Translate the client version into German.", "Sehr geehrte Frau Patel, vielen Dank für die Einladung. Am Donnerstag kann ich leider nicht; darf ich Montag um 10:00 Uhr vorschlagen?"),
        ("Shorter please.", "Sehr geehrte Frau Patel, Donnerstag passt mir leider nicht – ginge Montag, 10:00 Uhr?"),
        ("Add a subject line.", "Betreff: Terminvorschlag – Montag, 10:00 Uhr"),
        ("Perfect.", "Glad it helps!"),
    ]),
];

// ---------------------------------------------------------------------------------------------
// Workflows

struct Gen {
    rng: Rng,
    window_start: u64,
    traffic: Traffic,
    spans: Vec<Span>,
}

impl Gen {
    /// A start offset for instance `k` of `n` of a workflow lasting `length` ms, so that it
    /// lies within the window, drawn with the density of [`traffic_weight`].
    ///
    /// Stratified: instance `k` gets its own `1/n` slice of the traffic (slices handed out in a
    /// scrambled order, so the instance number says nothing about the time), which keeps each
    /// day's volume close to its expected share instead of adding sampling noise that a
    /// 25-traces-a-day demo could not average out. Always exactly one draw, so the ids (which
    /// come from the same generator) never depend on `now`.
    fn place(&mut self, k: usize, n: usize, length: u64) -> u64 {
        let latest = WINDOW_MS - LATE_MS - length.min(WINDOW_MS / 2);
        let n = n.max(1);
        // 7919 is prime and larger than any `n`, so this visits every slice once.
        let slice = (k * 7919) % n;
        let u = (slice as f64 + self.rng.unit()) / n as f64;
        self.traffic.place(EARLY_MS, latest, u)
    }

    fn trace(&mut self, t0: u64) -> Trace<'_> {
        let trace_id = self.rng.trace_id();
        Trace {
            rng: &mut self.rng,
            window_start: self.window_start,
            t0,
            trace_id,
            spans: Vec::new(),
        }
    }

    /// Customer support: a ticket thread of 2–4 messages, one trace each.
    fn support_thread(&mut self, k: usize) {
        let user = USERS[(k * 3 + 1) % USERS.len()];
        let ticket_no = 48_000 + k as u64 * 700 + self.rng.below(700); // unique per thread
        let ticket = &TICKETS[self.rng.index(TICKETS.len())];
        let (category, priority) = (ticket.category, ticket.priority);
        let tier = self.rng.pick(&["free", "pro", "pro", "enterprise"]);
        let channel = self.rng.pick(&["email", "web_chat", "slack"]);
        let customer = format!("cus_{}", self.rng.hex(14));
        let n = self.rng.range(2, 4);
        let gaps: Vec<u64> = (1..n)
            .map(|_| self.rng.range(20 * MINUTE, 8 * HOUR))
            .collect();
        let mut at = self.place(k, SUPPORT_THREADS, gaps.iter().sum());
        let mut asked = 0;
        for turn in 0..n as usize {
            if turn > 0 {
                at += gaps[turn - 1];
            }
            // The ticket, then its follow-ups in order, each answered as such; a message the
            // bot failed to answer is sent again rather than followed up as if answered.
            let (message, answer) = if asked == 0 {
                (
                    ticket.message,
                    format!(
                        "Hi, thanks for contacting us about this. {} Let us know if anything else comes up. — Acme Support",
                        ticket.reply
                    ),
                )
            } else {
                let (q, a) = ticket.follow_ups[asked - 1];
                (q, format!("Hi again! {a} — Acme Support"))
            };
            let mut t = vec!["support", category, "prod"];
            if matches!(priority, "high" | "urgent") {
                t.push("escalated");
            }
            let ctx = Ctx {
                service: "support-bot",
                user: Some(user.to_string()),
                session: Some(format!("ticket-{ticket_no}")),
                tags: tags(&t),
                metadata: meta(json!({
                    "ticket_id": format!("T-{ticket_no}"),
                    "channel": channel,
                    "customer_tier": tier,
                    "customer_id": customer,
                    "priority": priority,
                    "message_index": turn,
                })),
                incident: k == 2 && turn == 0,
            };
            if self.support_trace(at, &ctx, ticket, message, &answer, turn > 0) {
                asked += 1;
            }
        }
    }

    fn support_trace(
        &mut self,
        t0: u64,
        ctx: &Ctx,
        ticket: &Ticket,
        message: &str,
        reply: &str,
        warm: bool,
    ) -> bool {
        let (category, priority) = (ticket.category, ticket.priority);
        let mut t = self.trace(t0);
        let root = t.open(None, "support.handle_ticket", SpanKind::Pipeline, 0);
        t.input(
            root,
            json!({"ticket_id": ctx.metadata["ticket_id"], "message": message}),
        );
        let pii = t.rng.range(8, 35);
        let g = t.guardrail(
            root,
            2,
            "pii_redaction",
            pii,
            true,
            "no personal data beyond the account email",
        );

        // Triage.
        let triage = t.open(Some(root), "triage_agent", SpanKind::Agent, g.end + 1);
        let needs_billing = category == "billing" || t.rng.chance(0.4);
        let verdict =
            json!({"category": category, "priority": priority, "needs_billing": needs_billing});
        let mut c = Call::new(
            "triage.classify",
            GPT_4O_MINI,
            t.rng.range(520, 900),
            t.rng.range(30, 60),
        );
        c.temperature = 0.0;
        c.max_tokens = 200;
        c.json_schema = Some("triage_result");
        c.messages = vec![
            msg("system", "You are a support triage classifier. Answer with JSON {category, priority, needs_billing}."),
            msg("user", message),
        ];
        c.reply = msg("assistant", verdict.to_string());
        c.prompt = Some(template(
            "support/triage",
            "v4",
            "Classify the ticket below.\nCategories: billing, bug, how_to, shipping, account.\n\nTicket: {{ticket}}",
            json!({"ticket": message}),
        ));
        let cls = t.llm(triage, g.end + 3, c);
        let mut h_at = cls.end + 1;
        for to in ["researcher_agent", "billing_agent"] {
            let h = t.open(
                Some(triage),
                &format!("handoff → {to}"),
                SpanKind::Handoff,
                h_at,
            );
            t.attr(h, "handoff.from", json!("triage_agent"));
            t.attr(h, "handoff.to", json!(to));
            t.close(h, h_at + 1);
            h_at += 1;
        }
        t.output(triage, verdict);
        t.close(triage, h_at + 1);
        let fork = h_at + 2;

        // Researcher and billing agents run in parallel.
        let research_end = {
            let r = t.open(Some(root), "researcher_agent", SpanKind::Agent, fork);
            let system = 2_100;
            let lookup = if category == "shipping" {
                "orders.get_status"
            } else {
                "accounts.get_profile"
            };
            let (id1, id2) = (
                format!("toolu_{}", t.rng.hex(20)),
                format!("toolu_{}", t.rng.hex(20)),
            );
            let q = json!({"query": message, "top_k": 5});
            let look_args = json!({"customer_id": ctx.metadata["customer_id"]});
            let mut c = Call::new(
                "researcher.plan",
                CLAUDE_SONNET_4,
                system + t.rng.range(350, 900),
                t.rng.range(90, 180),
            );
            c.prefix = system;
            c.warm = warm || t.rng.chance(0.5);
            c.messages = vec![
                msg(
                    "system",
                    "You research support tickets using the knowledge base and account tools.",
                ),
                msg("user", message),
            ];
            c.reply = Message {
                content: Some("I'll check the knowledge base and the customer's account.".into()),
                tool_calls: vec![
                    tool_call(&id1, "kb.search", &q),
                    tool_call(&id2, lookup, &look_args),
                ],
                ..Default::default()
            };
            let plan = t.llm(r, fork + 2, c);
            let a = ticket.article;
            let hits = json!({"hits": [
                {"id": format!("kb-{}", 100 + a), "title": KB_ARTICLES[a], "score": 0.91},
                {"id": format!("kb-{}", 100 + (a + 3) % 10), "title": KB_ARTICLES[(a + 3) % 10], "score": 0.74},
            ]});
            let kb = t.tool(
                r,
                plan.end + 1,
                ToolCall {
                    name: "kb.search",
                    description: "Semantic search over help-centre articles",
                    args: q,
                    result: hits.clone(),
                    duration_ms: (120, 420),
                    call_id: Some(id1.clone()),
                    retry: None,
                },
            );
            let flaky = t.rng.chance(0.15);
            let fails = 1 + u64::from(t.rng.chance(0.3));
            let profile = json!({"plan": ctx.metadata["customer_tier"], "seats": t.rng.range(3, 40), "status": "active", "open_orders": t.rng.below(3)});
            let look = t.tool(
                r,
                plan.end + 2,
                ToolCall {
                    name: lookup,
                    description: "Reads the customer's account or order from the CRM",
                    args: look_args,
                    result: profile.clone(),
                    duration_ms: (60, 260),
                    call_id: Some(id2.clone()),
                    retry: flaky.then(|| Retry {
                        fails,
                        exhausted: false,
                        error_type: "TimeoutError",
                        message: "crm.internal: read timed out after 2000 ms".into(),
                        attempt_ms: (2000, 2000),
                        backoff_ms: 250,
                        retry_after_ms: None,
                    }),
                },
            );
            let after = kb.end.max(look.end) + 2;
            let prev = 2_100 + 900 + 180;
            let mut c = Call::new(
                "researcher.summarize",
                CLAUDE_SONNET_4,
                prev + t.rng.range(400, 1400),
                t.rng.range(150, 330),
            );
            c.prefix = system;
            c.warm = true;
            c.messages = vec![
                msg("user", message),
                tool_result(&id1, "kb.search", &hits),
                tool_result(&id2, lookup, &profile),
            ];
            c.reply = msg(
                "assistant",
                format!(
                    "Relevant article: \"{}\". Account is active; no blockers found.",
                    KB_ARTICLES[a]
                ),
            );
            let sum = t.llm(r, after, c);
            t.close(r, sum.end + 1);
            sum.end + 1
        };
        let billing_end = {
            let start = fork + t.rng.range(3, 25);
            let b = t.open(Some(root), "billing_agent", SpanKind::Agent, start);
            let id = format!("call_{}", t.rng.hex(24));
            let args = json!({"customer": ctx.metadata["customer_id"], "limit": 3});
            let mut c = Call::new(
                "billing.plan",
                GPT_4O,
                t.rng.range(1_100, 1_800),
                t.rng.range(30, 80),
            );
            c.prefix = 1_050;
            c.warm = warm || t.rng.chance(0.6);
            c.messages = vec![msg("system", "You are the billing specialist. Use Stripe tools; never issue refunds yourself."), msg("user", message)];
            c.reply = Message {
                tool_calls: vec![tool_call(&id, "stripe.list_invoices", &args)],
                ..Default::default()
            };
            let plan = t.llm(b, start + 2, c);
            let roll = t.rng.unit();
            let retry = if roll < 0.08 {
                Some(Retry {
                    fails: 3,
                    exhausted: true,
                    error_type: "TimeoutError",
                    message: "stripe: request to /v1/invoices timed out after 5000 ms".into(),
                    attempt_ms: (5000, 5000),
                    backoff_ms: 400,
                    retry_after_ms: None,
                })
            } else if roll < 0.20 {
                Some(Retry {
                    fails: 1,
                    exhausted: false,
                    error_type: "RateLimitError",
                    message: "stripe: 429 Too Many Requests (rate_limit)".into(),
                    attempt_ms: (40, 120),
                    backoff_ms: 1000,
                    retry_after_ms: Some(1000),
                })
            } else {
                None
            };
            let amount = t.rng.range(1_900, 49_900);
            let invoices = json!({"data": [
                {"id": format!("in_{}", t.rng.hex(12)), "amount_due": amount, "currency": "usd", "status": "paid"},
                {"id": format!("in_{}", t.rng.hex(12)), "amount_due": amount, "currency": "usd", "status": "paid"},
            ]});
            let inv = t.tool(
                b,
                plan.end + 1,
                ToolCall {
                    name: "stripe.list_invoices",
                    description: "Lists the customer's recent Stripe invoices",
                    args,
                    result: invoices.clone(),
                    duration_ms: (180, 900),
                    call_id: Some(id.clone()),
                    retry,
                },
            );
            if inv.ok {
                let mut c = Call::new(
                    "billing.assess",
                    GPT_4O,
                    t.rng.range(1_500, 2_400),
                    t.rng.range(80, 200),
                );
                c.prefix = 1_050;
                c.warm = true;
                c.messages = vec![
                    msg("user", message),
                    tool_result(&id, "stripe.list_invoices", &invoices),
                ];
                c.reply = msg("assistant", ticket.billing);
                let a = t.llm(b, inv.end + 2, c);
                t.close(b, a.end + 1);
                a.end + 1
            } else {
                t.fail(
                    b,
                    "ToolError",
                    "stripe.list_invoices failed after 3 attempts; continuing without billing data",
                );
                t.close(b, inv.end + 1);
                inv.end + 1
            }
        };

        // Responder drafts the reply once both are done.
        let join = research_end.max(billing_end) + 2;
        let resp = t.open(Some(root), "responder_agent", SpanKind::Agent, join);
        // One thread hits a rate-limit incident for sure, so the demo always shows one.
        let roll = t.rng.unit();
        let roll = if ctx.incident { 0.0 } else { roll };
        let retry = if roll < 0.05 {
            Some(Retry {
                fails: 4,
                exhausted: true,
                error_type: "RateLimitError",
                message: "anthropic: 429 rate_limit_error: output tokens per minute exceeded"
                    .into(),
                attempt_ms: (150, 400),
                backoff_ms: 2000,
                retry_after_ms: Some(t.rng.range(4, 12) * SEC),
            })
        } else if roll < 0.14 {
            Some(Retry {
                fails: 1,
                exhausted: false,
                error_type: "RateLimitError",
                message: "anthropic: 429 rate_limit_error: requests per minute exceeded".into(),
                attempt_ms: (150, 400),
                backoff_ms: 2000,
                retry_after_ms: Some(t.rng.range(2, 8) * SEC),
            })
        } else {
            None
        };
        let mut c = Call::new(
            "responder.draft_reply",
            CLAUDE_SONNET_4,
            t.rng.range(3_000, 6_000),
            t.rng.range(220, 480),
        );
        c.prefix = 2_600;
        c.warm = warm || t.rng.chance(0.7);
        c.temperature = 0.5;
        c.max_tokens = 800;
        c.messages = vec![msg("system", "Write a friendly, accurate reply. Do not promise refunds that billing did not propose."), msg("user", message)];
        c.reply = msg("assistant", reply);
        c.prompt = Some(template(
            "support/reply",
            "v7",
            "You are Acme's support agent. Research notes: {{research}}\nBilling notes: {{billing}}\nCustomer tier: {{tier}}\nWrite the reply to: {{ticket}}",
            json!({"research": "…", "billing": "…", "tier": ctx.metadata["customer_tier"], "ticket": message}),
        ));
        c.retry = retry;
        let draft = t.llm(resp, join + 2, c);
        let end = if draft.ok {
            let check = t.open(
                Some(resp),
                "policy_check",
                SpanKind::Guardrail,
                draft.end + 1,
            );
            let mut c = Call::new(
                "policy_check.judge",
                GPT_4O_MINI,
                t.rng.range(700, 1_100),
                t.rng.range(12, 30),
            );
            c.temperature = 0.0;
            c.messages = vec![
                msg(
                    "system",
                    "Does the reply follow the support policy? Answer PASS or FAIL with a reason.",
                ),
                msg("user", reply),
            ];
            let passed = t.rng.chance(0.93);
            c.reply = msg(
                "assistant",
                if passed {
                    "PASS"
                } else {
                    "FAIL: promises a refund timeline without approval"
                },
            );
            let j = t.llm(check, draft.end + 2, c);
            t.event(check, j.end + 1, "guardrail.verdict", json!({
                "guardrail.name": "policy_check",
                "guardrail.passed": passed,
                "guardrail.reason": if passed { "reply follows policy" } else { "promises a refund timeline without approval" },
            }));
            t.attr(check, "spanlens.guardrail.passed", json!(passed));
            t.close(check, j.end + 1);
            t.output(resp, json!(reply));
            t.close(resp, j.end + 2);
            t.output(root, json!({"reply": reply, "policy_passed": passed}));
            j.end + 3
        } else {
            t.fail(
                resp,
                "RateLimitError",
                "could not draft a reply: the model stayed rate limited",
            );
            t.close(resp, draft.end + 1);
            t.fail(root, "RateLimitError", "anthropic: 429 rate_limit_error: output tokens per minute exceeded (gave up after 4 attempts)");
            draft.end + 2
        };
        t.close(root, end);
        let spans = t.finish(ctx);
        self.spans.extend(spans);
        draft.ok
    }

    /// Code review: a reviewer agent loops model → tool until it can post its review.
    fn code_review(&mut self, k: usize) {
        let repo = self.rng.pick(&REPOS);
        let pr = self.rng.range(1_200, 4_800);
        let title = self.rng.pick(&PR_TITLES);
        let user = self.rng.pick(&USERS);
        let sha = self.rng.hex(40);
        let t0 = self.place(k, CODE_REVIEWS, 20 * MINUTE);
        let use_o4 = self.rng.chance(0.6);
        let ctx = Ctx {
            service: "code-review-agent",
            user: Some(user.to_string()),
            session: None,
            tags: tags(&[
                "code-review",
                repo,
                if use_o4 { "o4-mini" } else { "claude" },
            ]),
            metadata: meta(
                json!({"repo": repo, "pr_number": pr, "base_branch": "main", "head_sha": sha, "trigger": "pull_request.opened"}),
            ),
            incident: false,
        };
        let mut t = self.trace(t0);
        let root = t.open(None, "review_pull_request", SpanKind::Pipeline, 0);
        t.input(root, json!({"repo": repo, "pr": pr, "title": title}));
        let files = t.rng.range(2, 9);
        let meta_pr = json!({"title": title, "author": user, "files_changed": files, "additions": t.rng.range(20, 600), "deletions": t.rng.range(0, 250)});
        let fetch = t.tool(
            root,
            3,
            ToolCall {
                name: "github.get_pull_request",
                description: "Fetches the pull request and its diff",
                args: json!({"repo": repo, "number": pr}),
                result: meta_pr,
                duration_ms: (150, 600),
                call_id: None,
                retry: None,
            },
        );
        let agent = t.open(Some(root), "reviewer_agent", SpanKind::Agent, fetch.end + 1);
        let model = if use_o4 { O4_MINI } else { CLAUDE_SONNET_4 };
        let steps = t.rng.range(3, 7);
        let tests_at = t.rng.range(1, steps - 1);
        let mut at = fetch.end + 3;
        let mut context = 4_200 + t.rng.range(0, 2_000);
        let mut failed = None;
        let mut findings = Vec::new();
        for step in 0..steps {
            let (tool, args, result, dur, desc): (
                &'static str,
                Value,
                Value,
                (u64, u64),
                &'static str,
            ) = if step == tests_at {
                (
                    "ci.run_tests",
                    json!({"repo": repo, "sha": sha, "suite": "integration"}),
                    json!({"passed": t.rng.range(180, 900), "failed": 0, "skipped": t.rng.range(0, 12)}),
                    (20 * SEC, 90 * SEC),
                    "Runs the test suite in CI and waits for the result",
                )
            } else {
                match t.rng.below(3) {
                    0 => {
                        let f = t.rng.pick(&FILES);
                        (
                            "repo.read_file",
                            json!({"path": f, "ref": sha}),
                            json!({"path": f, "lines": t.rng.range(40, 900), "truncated": false}),
                            (20, 120),
                            "Reads a file at the PR's head commit",
                        )
                    }
                    1 => (
                        "repo.grep",
                        json!({"pattern": "fn refund|idempotency_key", "path": "src/"}),
                        json!({"matches": t.rng.range(1, 14)}),
                        (40, 300),
                        "Searches the repository",
                    ),
                    _ => (
                        "github.get_diff",
                        json!({"repo": repo, "number": pr, "file": t.rng.pick(&FILES)}),
                        json!({"hunks": t.rng.range(1, 6)}),
                        (100, 400),
                        "Reads one file's diff",
                    ),
                }
            };
            let id = format!("call_{}", t.rng.hex(24));
            let mut c = Call::new("reviewer.step", model, context, t.rng.range(60, 260));
            c.prefix = context.saturating_sub(1_500);
            c.warm = step > 0;
            c.max_tokens = 4_096;
            c.temperature = if use_o4 { 1.0 } else { 0.2 };
            c.messages = vec![msg(
                "user",
                format!("Review {repo}#{pr}: {title}. Step {}.", step + 1),
            )];
            c.reply = Message {
                content: Some(format!("Next I'll use {tool}.")),
                tool_calls: vec![tool_call(&id, tool, &args)],
                ..Default::default()
            };
            if step == 0 {
                c.prompt = Some(template(
                    "code-review/system",
                    "v12",
                    "You review pull requests for {{repo}}. Focus on correctness, concurrency and security. Use tools to read code and run tests before commenting.",
                    json!({"repo": repo}),
                ));
            }
            let call = t.llm(agent, at, c);
            let retry = if tool == "ci.run_tests" {
                // The first review always shows a flaky run, so the demo has a retry to look at.
                let roll = if k == 0 { 0.2 } else { t.rng.unit() };
                if roll < 0.10 {
                    Some(Retry {
                        fails: 3,
                        exhausted: true,
                        error_type: "TimeoutError",
                        message: "ci: integration suite did not finish within 120 s".into(),
                        attempt_ms: (120 * SEC, 120 * SEC),
                        backoff_ms: 2_000,
                        retry_after_ms: None,
                    })
                } else if roll < 0.40 {
                    Some(Retry {
                        fails: 1 + u64::from(t.rng.chance(0.4)),
                        exhausted: false,
                        error_type: "TestFlakeError",
                        message:
                            "ci: test refunds::concurrent_refunds failed (flaky: passed on retry)"
                                .into(),
                        attempt_ms: (15 * SEC, 40 * SEC),
                        backoff_ms: 2_000,
                        retry_after_ms: None,
                    })
                } else {
                    None
                }
            } else {
                None
            };
            let done = t.tool(
                agent,
                call.end + 1,
                ToolCall {
                    name: tool,
                    description: desc,
                    args,
                    result,
                    duration_ms: dur,
                    call_id: Some(id),
                    retry,
                },
            );
            at = done.end + 2;
            context += t.rng.range(800, 2_200);
            if !done.ok {
                failed = Some(done);
                break;
            }
            if step % 2 == 0 {
                findings.push(t.rng.pick(&FINDINGS));
            }
        }
        let end = if let Some(f) = failed {
            t.fail(
                agent,
                "TimeoutError",
                "review aborted: the integration tests never finished",
            );
            t.close(agent, f.end + 1);
            t.fail(
                root,
                "TimeoutError",
                "ci: integration suite did not finish within 120 s (gave up after 3 attempts)",
            );
            f.end + 2
        } else {
            let review = json!({"verdict": if findings.len() > 2 { "request_changes" } else { "comment" }, "comments": findings});
            let mut c = Call::new("reviewer.summarize", model, context, t.rng.range(300, 700));
            c.prefix = context.saturating_sub(1_500);
            c.warm = true;
            c.max_tokens = 4_096;
            c.json_schema = Some("review");
            c.messages = vec![msg("user", "Summarise your findings as review comments.")];
            c.reply = msg("assistant", review.to_string());
            let s = t.llm(agent, at, c);
            let limited = t.rng.chance(0.15);
            let review_id = t.rng.range(1_000_000, 9_999_999);
            let wait = t.rng.range(3, 30) * SEC;
            let post = t.tool(agent, s.end + 1, ToolCall {
                name: "github.post_review",
                description: "Posts the review on the pull request",
                args: json!({"repo": repo, "number": pr, "event": review["verdict"], "comments": findings.len()}),
                result: json!({"id": review_id, "state": "COMMENTED"}),
                duration_ms: (200, 700),
                call_id: None,
                retry: limited.then(|| Retry {
                    fails: 1,
                    exhausted: false,
                    error_type: "RateLimitError",
                    message: "github: 403 You have exceeded a secondary rate limit".into(),
                    attempt_ms: (100, 300),
                    backoff_ms: 3_000,
                    retry_after_ms: Some(wait),
                }),
            });
            t.output(agent, review.clone());
            t.close(agent, post.end + 1);
            t.output(root, review);
            post.end + 2
        };
        t.close(root, end);
        let spans = t.finish(&ctx);
        self.spans.extend(spans);
    }

    /// RAG: embed the question, search two indexes in parallel, rerank, answer, judge.
    fn rag_question(&mut self, k: usize) {
        let (question, relevant) = self.rng.pick(&QUESTIONS);
        let user = self.rng.pick(&USERS);
        let area = relevant[0]
            .split(' ')
            .next()
            .unwrap_or("docs")
            .to_lowercase();
        let locale = self.rng.pick(&["en", "en", "en", "de", "fr"]);
        let t0 = self.place(k, RAG_QUESTIONS, 2 * MINUTE);
        let ctx = Ctx {
            service: "docs-qa",
            user: Some(user.to_string()),
            session: None,
            tags: tags(&["rag", "docs", &area]),
            metadata: meta(
                json!({"index": "docs-v7", "top_k": 20, "locale": locale, "app_version": "2.14.0"}),
            ),
            // One question always meets a provider outage, so the demo always shows a timeout.
            incident: k == 9,
        };
        let mut t = self.trace(t0);
        let root = t.open(None, "rag.answer_question", SpanKind::Pipeline, 0);
        t.input(root, json!(question));
        let q_tokens = 8 + question.len() as u64 / 4;
        let emb = t.llm(
            root,
            2,
            Call::new("embed_query", EMBEDDING_SMALL, q_tokens, 0),
        );
        t.attr(emb.span, "embedding.dimensions", json!(1536));
        t.input(emb.span, json!(question));

        // Vector and keyword search overlap.
        let fork = emb.end + 1;
        let docs = |t: &mut Trace, n: usize| -> Vec<Value> {
            let mut v: Vec<Value> = relevant
                .iter()
                .map(|d| json!({"title": d, "score": 0.80 + t.rng.unit() * 0.15}))
                .collect();
            for _ in 0..n {
                let d = t.rng.pick(&OTHER_DOCS);
                v.push(json!({"title": d, "score": 0.35 + t.rng.unit() * 0.35}));
            }
            v
        };
        let vec_span = t.open(Some(root), "vector_search", SpanKind::Retriever, fork);
        t.attr(vec_span, "db.system", json!("pgvector"));
        t.attr(vec_span, "retrieval.top_k", json!(20));
        t.input(
            vec_span,
            json!({"query": question, "top_k": 20, "index": "docs-v7"}),
        );
        let v_docs = docs(&mut t, 4);
        t.output(vec_span, json!({"documents": v_docs}));
        let v_end = fork + t.rng.range(30, 140);
        t.close(vec_span, v_end);
        let kw_start = fork + t.rng.range(0, 4);
        let kw = t.open(Some(root), "keyword_search", SpanKind::Retriever, kw_start);
        t.attr(kw, "db.system", json!("opensearch"));
        t.input(
            kw,
            json!({"query": question, "top_k": 20, "analyzer": locale}),
        );
        let k_docs = docs(&mut t, 3);
        t.output(kw, json!({"documents": k_docs}));
        let k_end = kw_start + t.rng.range(10, 60);
        t.close(kw, k_end);

        let rr_start = v_end.max(k_end) + 1;
        let rr = t.open(Some(root), "rerank", SpanKind::Reranker, rr_start);
        t.attr(rr, "reranker.model_name", json!("rerank-v3.5"));
        t.attr(rr, "reranker.top_k", json!(5));
        // Candidates scored: the analysis reports the reranker's throughput from it.
        t.attr(rr, "spanlens.items", json!(v_docs.len() + k_docs.len()));
        t.input(
            rr,
            json!({"query": question, "candidates": v_docs.len() + k_docs.len()}),
        );
        t.output(
            rr,
            json!({"documents": relevant.iter().map(|d| json!({"title": d})).collect::<Vec<_>>()}),
        );
        let rr_end = rr_start + t.rng.range(60, 220);
        t.close(rr, rr_end);

        let roll = t.rng.unit();
        let model = if roll < 0.5 {
            GEMINI_FLASH
        } else if roll < 0.85 {
            GPT_4O_MINI
        } else {
            MISTRAL_LARGE
        };
        let err = t.rng.unit();
        let err = if ctx.incident { 0.0 } else { err };
        let answer = format!(
            "According to \"{}\": {} (see also \"{}\").",
            relevant[0],
            match relevant[0] {
                d if d.contains("rotation") => "create a second key, deploy it, then revoke the old one — both keys work during the overlap",
                d if d.contains("Payload") => "events are capped at 256 KB; larger objects are sent as a reference you fetch with the API",
                d if d.contains("Scheduled") => "yes, scheduled exports can write Parquet or JSONL to S3 hourly or daily",
                d if d.contains("Seats") => "guests are free up to 5 per paid seat and are not counted as seats",
                d if d.contains("proxies") => "yes, set HTTPS_PROXY or pass proxy= to the client",
                d if d.contains("residency") => "EU workspaces are stored in Frankfurt (eu-central-1) with backups in Ireland",
                d if d.contains("Okta") => "add the Acme app from the Okta catalogue, paste the metadata URL and map the email attribute",
                d if d.contains("Ordering") => "delivery is at-least-once without ordering; use the event's sequence number",
                d if d.contains("2.14") => "2.14 adds scheduled exports, SCIM groups and faster search",
                _ => "audit logs are kept for 365 days on Enterprise and 90 days on Pro",
            },
            relevant[1]
        );
        let mut c = Call::new(
            "generate_answer",
            model,
            t.rng.range(2_400, 6_000),
            t.rng.range(120, 420),
        );
        c.prefix = 1_400;
        c.warm = t.rng.chance(0.6);
        c.temperature = 0.1;
        c.max_tokens = 700;
        c.messages = vec![
            msg(
                "system",
                "Answer only from the provided documentation. Cite article titles.",
            ),
            msg(
                "user",
                format!("Context: {} …\n\nQuestion: {question}", relevant.join("; ")),
            ),
        ];
        c.reply = msg("assistant", answer.clone());
        c.prompt = Some(template(
            "rag/answer",
            "v12",
            "Answer the question using only these documents:\n{{documents}}\n\nQuestion: {{question}}\nCite the titles you used.",
            json!({"question": question, "documents": 5}),
        ));
        if err < 0.06 {
            c.retry = Some(Retry {
                fails: 2,
                exhausted: true,
                error_type: "TimeoutError",
                message: format!("{}: request timed out after 30 s", model.provider),
                attempt_ms: (30 * SEC, 30 * SEC),
                backoff_ms: 500,
                retry_after_ms: None,
            });
        } else if err < 0.14 && model.rpm > 0 {
            c.retry = Some(Retry {
                fails: 1,
                exhausted: false,
                error_type: "RateLimitError",
                message: "openai: 429 Rate limit reached for gpt-4o-mini on tokens per min (TPM)"
                    .into(),
                attempt_ms: (80, 200),
                backoff_ms: 1_000,
                retry_after_ms: Some(t.rng.range(1, 6) * SEC),
            });
        }
        let gen = t.llm(root, rr_end + 1, c);
        let end = if gen.ok {
            let ev = t.open(
                Some(root),
                "groundedness_check",
                SpanKind::Evaluator,
                gen.end + 1,
            );
            let score = ((0.55 + t.rng.unit() * 0.45) * 100.0).round() / 100.0;
            let mut c = Call::new(
                "judge.groundedness",
                GPT_4O_MINI,
                t.rng.range(900, 1_600),
                t.rng.range(20, 60),
            );
            c.temperature = 0.0;
            c.json_schema = Some("groundedness");
            c.messages = vec![
                msg(
                    "system",
                    "Rate how well the answer is supported by the context, 0 to 1.",
                ),
                msg("user", answer.clone()),
            ];
            c.reply = msg(
                "assistant",
                json!({"score": score, "unsupported_claims": []}).to_string(),
            );
            let j = t.llm(ev, gen.end + 2, c);
            t.attr(ev, "eval.name", json!("groundedness"));
            t.attr(ev, "eval.score", json!(score));
            t.output(ev, json!({"score": score, "passed": score >= 0.7}));
            t.close(ev, j.end + 1);
            t.output(root, json!(answer));
            j.end + 2
        } else {
            t.fail(
                root,
                "TimeoutError",
                format!(
                    "{}: request timed out after 30 s (gave up after 2 attempts)",
                    model.provider
                ),
            );
            gen.end + 1
        };
        t.close(root, end);
        let spans = t.finish(&ctx);
        self.spans.extend(spans);
    }

    /// Document extraction: fetch, OCR, structured extraction, schema validation (with a repair
    /// pass), then an ERP upsert.
    fn extraction(&mut self, k: usize) {
        let doc_type = self
            .rng
            .pick(&["invoice", "invoice", "receipt", "purchase_order"]);
        let vendor = self.rng.pick(&VENDORS);
        let currency = self.rng.pick(&["EUR", "USD", "GBP"]);
        let doc_id = format!("doc_{}", self.rng.hex(10));
        let batch = format!("batch-{:04}", self.rng.range(300, 420));
        let pages = self.rng.range(1, 6);
        let t0 = self.place(k, EXTRACTIONS, 5 * MINUTE);
        let ctx = Ctx {
            service: "invoice-extractor",
            user: None,
            session: None,
            tags: tags(&["extraction", doc_type, "batch"]),
            metadata: meta(
                json!({"batch_id": batch, "document_id": doc_id, "pages": pages, "source": "s3://acme-inbox/ap/"}),
            ),
            incident: false,
        };
        let mut t = self.trace(t0);
        let root = t.open(None, "extract_document", SpanKind::Pipeline, 0);
        let bytes = t.rng.range(40_000, 2_400_000);
        t.input(root, json!({"document_id": doc_id, "type": doc_type}));
        let fetch = t.tool(
            root,
            2,
            ToolCall {
                name: "storage.fetch_pdf",
                description: "Downloads the document from object storage",
                args: json!({"bucket": "acme-inbox", "key": format!("ap/{doc_id}.pdf")}),
                result: json!({"bytes": bytes, "content_type": "application/pdf"}),
                duration_ms: (40, 220),
                call_id: None,
                retry: None,
            },
        );
        let chars = pages * t.rng.range(1_200, 3_600);
        let tables = t.rng.range(0, 3);
        let ocr = t.tool(
            root,
            fetch.end + 1,
            ToolCall {
                name: "ocr.extract_text",
                description: "OCR with layout (Textract AnalyzeDocument)",
                args: json!({"document_id": doc_id, "features": ["TABLES", "FORMS"]}),
                result: json!({"pages": pages, "characters": chars, "tables": tables}),
                duration_ms: (700 * pages, 1_400 * pages),
                call_id: None,
                retry: None,
            },
        );
        let roll = t.rng.unit();
        let model = if k == UNPRICED_EXTRACTION {
            SELF_HOSTED
        } else if roll < 0.45 {
            GPT_4O
        } else if roll < 0.75 {
            MISTRAL_LARGE
        } else {
            CLAUDE_HAIKU
        };
        let total = t.rng.range(1_500, 250_000) as f64 / 100.0;
        let fields = json!({
            "vendor_name": vendor,
            "document_number": format!("{}-{}", &doc_type[..3].to_uppercase(), t.rng.range(10_000, 99_999)),
            "issue_date": format!("2025-{:02}-{:02}", t.rng.range(1, 12), t.rng.range(1, 28)),
            "currency": currency,
            "total_amount": total,
            "line_items": t.rng.range(1, 14),
        });
        let mut c = Call::new(
            "extract_fields",
            model,
            900 + chars / 4,
            t.rng.range(180, 520),
        );
        c.prefix = 1_200;
        c.warm = t.rng.chance(0.8);
        c.temperature = 0.0;
        c.max_tokens = 2_048;
        c.json_schema = Some(doc_type);
        c.messages = vec![
            msg("system", format!("Extract the {doc_type} fields as JSON matching the schema. Use null for missing values.")),
            msg("user", format!("[OCR text of {pages} page(s), {chars} characters]")),
        ];
        c.reply = msg("assistant", fields.to_string());
        c.prompt = Some(template(
            "extraction/fields",
            "v5",
            "Extract {{doc_type}} fields per schema {{schema}} from:\n{{ocr_text}}",
            json!({"doc_type": doc_type, "schema": format!("{doc_type}.v3"), "ocr_text": "…"}),
        ));
        let ex = t.llm(root, ocr.end + 1, c);
        let v = t.rng.unit();
        let (first_ok, repair_ok) = (v >= 0.17, v >= 0.05);
        let reason = if first_ok {
            "valid"
        } else {
            "invoice.total_amount: expected number, got string \"1.234,50 €\""
        };
        let dur = t.rng.range(2, 9);
        let check = t.guardrail(root, ex.end + 1, "validate_schema", dur, first_ok, reason);
        let mut last = check.end;
        if !first_ok {
            let mut c = Call::new(
                "repair_json",
                GPT_4O_MINI,
                t.rng.range(900, 1_600),
                t.rng.range(150, 400),
            );
            c.temperature = 0.0;
            c.json_schema = Some(doc_type);
            c.messages = vec![
                msg(
                    "system",
                    "Fix the JSON so it validates. Change nothing else.",
                ),
                msg("user", format!("Error: {reason}")),
            ];
            c.reply = msg("assistant", fields.to_string());
            let rep = t.llm(root, check.end + 1, c);
            let dur = t.rng.range(2, 9);
            let again = t.guardrail(
                root,
                rep.end + 1,
                "validate_schema",
                dur,
                repair_ok,
                if repair_ok {
                    "valid after repair"
                } else {
                    "issue_date: \"31/02/2025\" is not a valid date"
                },
            );
            last = again.end;
        }
        let end = if first_ok || repair_ok {
            let glitch = t.rng.chance(0.08);
            let erp_id = format!("AP-{}", t.rng.range(100_000, 999_999));
            let up = t.tool(root, last + 1, ToolCall {
                name: "erp.upsert_invoice",
                description: "Creates or updates the document in the ERP",
                args: json!({"document_id": doc_id, "vendor": vendor, "total": total, "currency": currency}),
                result: json!({"erp_id": erp_id, "created": true}),
                duration_ms: (90, 400),
                call_id: None,
                retry: glitch.then(|| Retry {
                    fails: 1,
                    exhausted: false,
                    error_type: "ConnectionError",
                    message: "erp: connection reset by peer".into(),
                    attempt_ms: (5, 40),
                    backoff_ms: 200,
                    retry_after_ms: None,
                }),
            });
            t.output(root, fields);
            up.end + 1
        } else {
            t.fail(
                root,
                "ValidationError",
                "issue_date: \"31/02/2025\" is not a valid date (after one repair attempt)",
            );
            last + 1
        };
        t.close(root, end);
        let spans = t.finish(&ctx);
        self.spans.extend(spans);
    }

    /// A multi-turn chat session: 3–7 turns, one trace each, with a growing cached prefix.
    fn chat_session(&mut self, k: usize) {
        let user = USERS[k % USERS.len()];
        let (topic, turns) = self.rng.pick(&CHATS);
        let roll = self.rng.unit();
        let model = if roll < 0.4 {
            CLAUDE_HAIKU
        } else if roll < 0.7 {
            CLAUDE_SONNET_4
        } else if roll < 0.9 {
            GPT_4O
        } else {
            GEMINI_FLASH
        };
        let plan = self.rng.pick(&["free", "pro", "pro"]);
        let client = self.rng.pick(&["web", "ios", "android"]);
        let session = format!("chat_{}", self.rng.hex(12));
        let n = self.rng.range(3, 7) as usize;
        let gaps: Vec<u64> = (1..n)
            .map(|_| self.rng.range(20 * SEC, 6 * MINUTE))
            .collect();
        let mut at = self.place(k, CHAT_SESSIONS, gaps.iter().sum::<u64>() + 5 * MINUTE);
        let mut history: Vec<Message> = vec![msg(
            "system",
            "You are Acme Assistant, a concise and friendly helper.",
        )];
        let mut prev: Option<(TraceId, SpanId)> = None;
        let system_tokens = 1_450;
        let mut history_tokens = 0;
        // The question a turn asks: the next one after an answer, the same one again after a
        // failed turn (the user retries; the conversation never goes on past a missing answer).
        let mut asked = 0;
        for turn in 0..n {
            let (question, answer) = &turns[asked];
            if turn > 0 {
                at += gaps[turn - 1];
            }
            let ctx = Ctx {
                service: "assistant-chat",
                user: Some(user.to_string()),
                session: Some(session.clone()),
                tags: tags(&["chat", topic, plan]),
                metadata: meta(
                    json!({"plan": plan, "client": client, "turn": turn + 1, "app_version": "2.14.0"}),
                ),
                incident: false,
            };
            let mut t = self.trace(at);
            let root = t.open(None, "chat.turn", SpanKind::Agent, 0);
            if let Some((tid, sid)) = prev {
                t.spans[root].links.push(Link {
                    trace_id: tid,
                    span_id: sid,
                    attributes: meta(json!({"link.type": "previous_turn"})),
                });
            }
            t.input(root, json!(question));
            let dur = t.rng.range(20, 90);
            let g = t.guardrail(
                root,
                1,
                "input_moderation",
                dur,
                true,
                "no policy categories flagged",
            );
            history.push(msg("user", *question));
            let q_tokens = 10 + question.len() as u64 / 4;
            let input = system_tokens + history_tokens + q_tokens;
            let searches = t.rng.chance(0.3) || answer.contains("check");
            let mut c = Call::new(
                "chat.completion",
                model,
                input,
                10 + answer.len() as u64 / 3,
            );
            c.prefix = system_tokens + history_tokens;
            c.warm = turn > 0;
            c.temperature = 0.7;
            c.max_tokens = 1_024;
            c.messages = history.clone();
            c.prompt = (turn == 0).then(|| {
                template(
                    "chat/system",
                    "v3",
                    "You are Acme Assistant, a concise and friendly helper. The user is on the {{plan}} plan.",
                    json!({"plan": plan}),
                )
            });
            let roll = t.rng.unit();
            if roll < 0.04 {
                c.retry = Some(Retry {
                    fails: 3,
                    exhausted: true,
                    error_type: if model.provider == "anthropic" {
                        "OverloadedError"
                    } else {
                        "APIConnectionError"
                    },
                    message: if model.provider == "anthropic" {
                        "anthropic: 529 overloaded_error: Overloaded".into()
                    } else {
                        format!(
                            "{}: connection error: server closed the connection",
                            model.provider
                        )
                    },
                    attempt_ms: (400, 1_500),
                    backoff_ms: 500,
                    retry_after_ms: None,
                });
            }
            let first_end;
            let ok;
            if searches {
                let id = format!("call_{}", t.rng.hex(24));
                let args = json!({"query": question, "num_results": 5});
                c.output = t.rng.range(25, 60);
                c.reply = Message {
                    tool_calls: vec![tool_call(&id, "web_search", &args)],
                    ..Default::default()
                };
                let first = t.llm(root, g.end + 1, c);
                if first.ok {
                    let results = json!({"results": [
                        {"title": format!("{topic} guide"), "url": "https://example.com/guide"},
                        {"title": format!("{topic} FAQ"), "url": "https://example.org/faq"},
                    ]});
                    let s = t.tool(
                        root,
                        first.end + 1,
                        ToolCall {
                            name: "web_search",
                            description: "Searches the web",
                            args,
                            result: results.clone(),
                            duration_ms: (300, 1_500),
                            call_id: Some(id.clone()),
                            retry: None,
                        },
                    );
                    let mut c2 = Call::new(
                        "chat.completion",
                        model,
                        input + 120 + 400,
                        10 + answer.len() as u64 / 3,
                    );
                    c2.prefix = input;
                    c2.warm = true;
                    c2.temperature = 0.7;
                    c2.messages = vec![tool_result(&id, "web_search", &results)];
                    c2.reply = msg("assistant", *answer);
                    let second = t.llm(root, s.end + 1, c2);
                    first_end = second.end;
                    ok = second.ok;
                } else {
                    first_end = first.end;
                    ok = false;
                }
            } else {
                c.reply = msg("assistant", *answer);
                let d = t.llm(root, g.end + 1, c);
                first_end = d.end;
                ok = d.ok;
            }
            if ok {
                t.output(root, json!(answer));
                history.push(msg("assistant", *answer));
                asked += 1;
            } else {
                let (ty, m) = match model.provider {
                    "anthropic" => ("OverloadedError", "anthropic: 529 overloaded_error: Overloaded (gave up after 3 attempts)".to_string()),
                    p => ("APIConnectionError", format!("{p}: connection error: server closed the connection (gave up after 3 attempts)")),
                };
                t.fail(root, ty, m);
                history.pop();
            }
            history_tokens += q_tokens + if ok { 10 + answer.len() as u64 / 3 } else { 0 };
            t.close(root, first_end + 2);
            prev = Some((t.trace_id, t.spans[root].span_id));
            let spans = t.finish(&ctx);
            self.spans.extend(spans);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

    const NOW: Timestamp = Timestamp(1_767_225_600_000_000_000); // 2026-01-01T00:00:00Z

    fn by_trace(spans: &[Span]) -> BTreeMap<TraceId, Vec<&Span>> {
        let mut m: BTreeMap<TraceId, Vec<&Span>> = BTreeMap::new();
        for s in spans {
            m.entry(s.trace_id).or_default().push(s);
        }
        m
    }

    #[test]
    fn same_seed_same_output_and_ids_do_not_depend_on_now() {
        let a = generate(7, NOW);
        let b = generate(7, NOW);
        assert_eq!(a, b);
        let later = generate(7, Timestamp(NOW.0 + 3 * 3_600 * 1_000_000_000));
        let ids = |v: &[Span]| {
            v.iter()
                .map(|s| (s.trace_id, s.span_id))
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&a), ids(&later));
        assert_ne!(ids(&a), ids(&generate(8, NOW)));
        let traces: Vec<TraceId> = by_trace(&a).into_keys().collect();
        let mut listed = trace_ids(7);
        listed.sort();
        assert_eq!(listed, traces);
    }

    #[test]
    fn ids_are_unique_and_parents_are_in_their_trace() {
        for seed in [1, 42, 2024] {
            let spans = generate(seed, NOW);
            let mut seen = HashSet::new();
            for s in &spans {
                assert!(
                    seen.insert((s.trace_id, s.span_id)),
                    "duplicate span {}",
                    s.span_id
                );
            }
            for (tid, list) in by_trace(&spans) {
                let ids: HashMap<SpanId, &Span> = list.iter().map(|s| (s.span_id, *s)).collect();
                let roots = list.iter().filter(|s| s.parent_span_id.is_none()).count();
                assert_eq!(roots, 1, "trace {tid} has {roots} roots");
                for s in &list {
                    if let Some(p) = s.parent_span_id {
                        let parent = ids
                            .get(&p)
                            .unwrap_or_else(|| panic!("{} has no parent in {tid}", s.name));
                        assert!(
                            parent.start_time <= s.start_time,
                            "{} starts before its parent",
                            s.name
                        );
                        assert!(
                            parent.end_time >= s.end_time,
                            "{} ends after its parent {}",
                            s.name,
                            parent.name
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn every_span_lies_within_the_window() {
        for seed in [1, 42, 2024, 99_999] {
            let spans = generate(seed, NOW);
            let from = NOW.0 - DEMO_DAYS * 24 * 3_600 * 1_000_000_000;
            for s in &spans {
                let end = s.end_time.expect("every demo span has ended");
                assert!(
                    s.start_time.0 >= from && end.0 <= NOW.0,
                    "{} outside the window",
                    s.name
                );
                assert!(end >= s.start_time);
                assert_eq!(s.source.as_deref(), Some(DEMO_SOURCE));
                assert!(SERVICES.contains(&s.service.as_deref().unwrap_or("")));
            }
        }
    }

    #[test]
    fn llm_spans_are_priced_except_the_self_hosted_model() {
        let spans = generate(42, NOW);
        let mut unpriced = 0;
        let mut priced = 0;
        for s in spans
            .iter()
            .filter(|s| matches!(s.kind, SpanKind::Llm | SpanKind::Embedding))
        {
            let Some(u) = &s.usage else {
                assert_eq!(
                    s.status,
                    Status::Error,
                    "{} without usage must be a failed call",
                    s.name
                );
                continue;
            };
            assert!(u.cache_read_tokens + u.cache_write_tokens <= u.input_tokens);
            assert!(u.reasoning_tokens <= u.output_tokens);
            if s.request_model.as_deref() == Some(UNPRICED_MODEL) {
                assert!(s.cost.is_none());
                assert!(s
                    .unpriced_reason
                    .as_deref()
                    .is_some_and(|r| r.contains(UNPRICED_MODEL)));
                unpriced += 1;
            } else {
                let c = s.cost.as_ref().unwrap_or_else(|| {
                    panic!(
                        "{} ({:?}) unpriced: {:?}",
                        s.name, s.request_model, s.unpriced_reason
                    )
                });
                assert!(c.amounts.total.0 > 0, "{} costs nothing", s.name);
                assert!(s.unpriced_reason.is_none());
                priced += 1;
            }
            if s.kind == SpanKind::Llm {
                let ttft = s.ttft_ns.expect("LLM spans carry TTFT");
                assert!(ttft <= s.duration_ns().unwrap_or(0));
            }
        }
        assert_eq!(unpriced, 1);
        assert!(priced > 500, "{priced} priced calls");
    }

    #[test]
    fn counts_are_in_the_expected_ranges() {
        for seed in [1, 42, 2024, 7_777] {
            let spans = generate(seed, NOW);
            let traces = by_trace(&spans);
            assert!(
                (600..=800).contains(&traces.len()),
                "{} traces",
                traces.len()
            );
            let users: BTreeSet<_> = spans.iter().filter_map(|s| s.user_id.as_deref()).collect();
            assert_eq!(users.len(), 10);
            let sessions: BTreeSet<_> = spans
                .iter()
                .filter_map(|s| s.session_id.as_deref())
                .collect();
            assert_eq!(sessions.len(), CHAT_SESSIONS + SUPPORT_THREADS);
            let services: BTreeSet<_> = spans.iter().filter_map(|s| s.service.as_deref()).collect();
            assert_eq!(services.len(), 5);
            let providers: BTreeSet<_> =
                spans.iter().filter_map(|s| s.provider.as_deref()).collect();
            for p in ["openai", "anthropic", "google", "mistral", "vllm"] {
                assert!(providers.contains(p), "no {p} call");
            }
            let models: BTreeSet<_> = spans
                .iter()
                .filter_map(|s| s.request_model.as_deref())
                .collect();
            assert!(models.len() >= 8, "{models:?}");
            let errors = traces
                .values()
                .filter(|t| {
                    t.iter()
                        .any(|s| s.parent_span_id.is_none() && s.status == Status::Error)
                })
                .count();
            assert!((10..=150).contains(&errors), "{errors} failed traces");
            let cache_write = spans
                .iter()
                .filter_map(|s| s.usage.as_ref())
                .any(|u| u.cache_write_tokens > 0);
            let cache_read = spans
                .iter()
                .filter_map(|s| s.usage.as_ref())
                .any(|u| u.cache_read_tokens > 0);
            let reasoning = spans
                .iter()
                .filter_map(|s| s.usage.as_ref())
                .any(|u| u.reasoning_tokens > 0);
            assert!(cache_write && cache_read && reasoning);
            assert!(spans.iter().any(|s| s.rate_limits.is_some()));
            assert!(spans.iter().any(|s| s.prompt.is_some()));
            assert!(spans
                .iter()
                .any(|s| s.error_type.as_deref() == Some("RateLimitError")));
            assert!(spans
                .iter()
                .any(|s| s.error_type.as_deref() == Some("TimeoutError")));
            // Multi-turn sessions: some session has at least three traces.
            let mut per_session: HashMap<&str, BTreeSet<TraceId>> = HashMap::new();
            for s in &spans {
                if let Some(sid) = s.session_id.as_deref() {
                    per_session.entry(sid).or_default().insert(s.trace_id);
                }
            }
            assert!(per_session.values().any(|t| t.len() >= 3));
        }
    }

    /// The root spans of each session's traces in time order, as (input, output or None).
    fn session_turns(
        spans: &[Span],
        prefix: &str,
    ) -> BTreeMap<String, Vec<(Value, Option<Value>)>> {
        let mut roots: Vec<&Span> = spans
            .iter()
            .filter(|s| s.parent_span_id.is_none())
            .filter(|s| {
                s.session_id
                    .as_deref()
                    .is_some_and(|id| id.starts_with(prefix))
            })
            .collect();
        roots.sort_by_key(|s| s.start_time);
        let mut out: BTreeMap<String, Vec<(Value, Option<Value>)>> = BTreeMap::new();
        for r in roots {
            out.entry(r.session_id.clone().unwrap()).or_default().push((
                r.input.as_ref().unwrap().value.clone(),
                r.output.as_ref().map(|p| p.value.clone()),
            ));
        }
        out
    }

    #[test]
    fn each_turn_of_a_session_answers_its_own_question() {
        for seed in [DEFAULT_SEED, 1, 42] {
            let spans = generate(seed, NOW);
            // Chat: each answer is the one written for its question, and after a failed turn
            // the user asks the same question again; otherwise the next one of the same chat.
            let chats = session_turns(&spans, "chat_");
            assert_eq!(chats.len(), CHAT_SESSIONS);
            for (id, turns) in &chats {
                let first = turns[0].0.as_str().unwrap();
                let (_, script) = CHATS
                    .iter()
                    .find(|(_, t)| t[0].0 == first)
                    .unwrap_or_else(|| panic!("{id} opens with {first:?}"));
                let mut asked = 0;
                for (question, answer) in turns {
                    assert_eq!(question, script[asked].0, "{id}");
                    if let Some(a) = answer {
                        assert_eq!(a, script[asked].1, "{id}: the answer to {question}");
                        asked += 1;
                    }
                }
            }
            // Support: the ticket, then its follow-ups in order, each reply answering it; a
            // message left unanswered is sent again.
            let threads = session_turns(&spans, "ticket-");
            assert_eq!(threads.len(), SUPPORT_THREADS);
            let mut resent = 0;
            for (id, turns) in &threads {
                let first = turns[0].0["message"].as_str().unwrap();
                let ticket = TICKETS
                    .iter()
                    .find(|t| t.message == first)
                    .unwrap_or_else(|| panic!("{id} opens with {first:?}"));
                let mut asked = 0;
                for (k, (message, reply)) in turns.iter().enumerate() {
                    let (question, answer) = if asked == 0 {
                        (ticket.message, ticket.reply)
                    } else {
                        ticket.follow_ups[asked - 1]
                    };
                    assert_eq!(message["message"], question, "{id} turn {k}");
                    match reply {
                        Some(r) => {
                            let text = r["reply"].as_str().unwrap();
                            assert!(
                                text.contains(answer),
                                "{id} turn {k}: {question:?} answered with {text:?}"
                            );
                            asked += 1;
                        }
                        None => resent += usize::from(k + 1 < turns.len()),
                    }
                }
            }
            // The demo's rate-limit incident fails a thread's first message, which is then sent
            // again.
            assert!(resent > 0, "seed {seed}: no message was sent again");
        }
    }

    #[test]
    fn there_are_parallel_agents_and_retries() {
        let spans = generate(42, NOW);
        let overlapping = by_trace(&spans).values().any(|list| {
            let agents: Vec<&&Span> = list.iter().filter(|s| s.kind == SpanKind::Agent).collect();
            agents.iter().enumerate().any(|(i, a)| {
                agents[i + 1..].iter().any(|b| {
                    a.parent_span_id == b.parent_span_id
                        && a.start_time < b.end_time.unwrap()
                        && b.start_time < a.end_time.unwrap()
                })
            })
        });
        assert!(overlapping, "no trace with overlapping sibling agents");
        let retried: Vec<&Span> = spans
            .iter()
            .filter(|s| s.events.iter().any(|e| e.name == "retry"))
            .collect();
        assert!(!retried.is_empty());
        for s in &retried {
            let r = s.events.iter().find(|e| e.name == "retry").unwrap();
            for key in [
                "retry.attempt",
                "error.type",
                "error.message",
                "retry.backoff_ms",
            ] {
                assert!(r.attributes.contains_key(key), "retry event without {key}");
            }
            assert!(
                s.events.iter().any(|e| e.name == "retry.outcome"),
                "{} has no retry.outcome",
                s.name
            );
        }
        let exhausted = spans.iter().any(|s| {
            s.status == Status::Error
                && s.events.iter().any(|e| {
                    e.name == "retry.outcome"
                        && e.attributes.get("retry.succeeded") == Some(&json!(false))
                })
        });
        assert!(exhausted);
        // Agent names are propagated to the agents' children.
        assert!(spans.iter().any(
            |s| s.kind == SpanKind::Llm && s.agent_name.as_deref() == Some("researcher_agent")
        ));
    }

    /// Traces per UTC day (the days the window covers entirely) and the day's cost.
    fn per_day(spans: &[Span], now: Timestamp) -> BTreeMap<u64, (usize, i64)> {
        const DAY: u64 = 86_400_000_000_000;
        let first = (now.0 - DEMO_DAYS * DAY) / DAY + 1;
        let last = now.0 / DAY - 1;
        let mut days: BTreeMap<u64, (usize, i64)> = (first..=last).map(|d| (d, (0, 0))).collect();
        for s in spans {
            let Some(d) = days.get_mut(&(s.start_time.0 / DAY)) else {
                continue;
            };
            if s.parent_span_id.is_none() {
                d.0 += 1;
            }
            d.1 += s.cost.as_ref().map_or(0, |c| c.amounts.total.0);
        }
        days
    }

    #[test]
    fn traffic_has_a_weekly_pattern_and_grows() {
        // Noon, and midnight: the window's partial first and last days fall differently.
        for now in [Timestamp(NOW.0 + 12 * 3_600 * 1_000_000_000), NOW] {
            for seed in [1, 42, 2024] {
                let days = per_day(&generate(seed, now), now);
                assert!(days.len() >= 26, "{} complete days", days.len());
                let (mut weekday, mut weekend) = ((0usize, 0i64, 0usize), (0usize, 0i64, 0usize));
                for (d, (traces, cost)) in &days {
                    // 1970-01-01 was a Thursday; Saturday and Sunday are 5 and 6 from Monday.
                    let acc = if (d + 3) % 7 >= 5 {
                        &mut weekend
                    } else {
                        &mut weekday
                    };
                    acc.0 += traces;
                    acc.1 += cost;
                    acc.2 += 1;
                    assert!(*traces > 0, "day {d} has no trace");
                }
                let per =
                    |a: (usize, i64, usize)| (a.0 as f64 / a.2 as f64, a.1 as f64 / a.2 as f64);
                let (wd, we) = (per(weekday), per(weekend));
                assert!(
                    wd.0 > 2.0 * we.0,
                    "traces per weekday {} vs weekend day {}",
                    wd.0,
                    we.0
                );
                assert!(
                    wd.1 > 1.5 * we.1,
                    "cost per weekday {} vs weekend day {}",
                    wd.1,
                    we.1
                );
                // Growth: the last two weeks are busier than the two before.
                let v: Vec<usize> = days.values().map(|d| d.0).collect();
                let half = v.len() / 2;
                let (early, late) = (
                    v[..half].iter().sum::<usize>(),
                    v[v.len() - half..].iter().sum::<usize>(),
                );
                assert!(
                    late > early,
                    "first half {early} traces, second half {late}"
                );
            }
        }
    }

    #[test]
    fn traffic_placement_stays_in_its_bounds() {
        let t = Traffic::new(NOW.0 - WINDOW_MS * NS_PER_MS);
        for (lo, hi) in [
            (EARLY_MS, WINDOW_MS - LATE_MS),
            (5 * HOUR + 17, 5 * HOUR + 18),
            (0, 1),
        ] {
            for u in [0.0, 0.25, 0.5, 0.999_999, 1.0] {
                let at = t.place(lo, hi, u);
                assert!(
                    at >= lo && at < hi.max(lo + 1),
                    "{at} outside {lo}..{hi} for u={u}"
                );
            }
        }
        // Monotone in u: more weight before means later.
        let a = t.place(EARLY_MS, WINDOW_MS - LATE_MS, 0.3);
        let b = t.place(EARLY_MS, WINDOW_MS - LATE_MS, 0.6);
        assert!(a < b);
    }

    #[test]
    fn gateway_calls_report_their_bill_and_one_model_differs() {
        let spans = generate(42, NOW);
        let catalog = PriceCatalog::builtin();
        let mut rec = spanlens_core::Reconciliation::default();
        let mut calls = 0;
        for s in spans.iter().filter(|s| s.kind == SpanKind::Llm) {
            let reported = s
                .cost
                .as_ref()
                .is_some_and(|c| c.source == CostSource::Reported);
            let through_gateway =
                s.service.as_deref() == Some(GATEWAY_SERVICE) && s.usage.is_some();
            assert_eq!(reported, through_gateway, "{} of {:?}", s.name, s.service);
            if reported {
                // The catalog's own price is kept beside the bill.
                assert!(s.cost.as_ref().unwrap().computed.is_some());
            }
            calls += 1;
            rec.add(s, catalog);
        }
        let rows = rec.rows();
        assert!(rows.len() >= 3, "{rows:?}");
        let total = rec.total();
        assert!(
            total.spans * 20 > calls && total.spans * 4 < calls,
            "{} of {calls} calls report a cost",
            total.spans
        );
        for r in &rows {
            let pct = r.difference_pct().unwrap();
            if r.model == ONE_HOUR_CACHE_MODEL {
                assert!((5.0..30.0).contains(&pct), "{}: {pct}%", r.model);
            } else {
                assert_eq!(r.difference().0, 0, "{}: {pct}%", r.model);
            }
        }
        assert!(rows.iter().any(|r| r.model == ONE_HOUR_CACHE_MODEL));
    }
}
