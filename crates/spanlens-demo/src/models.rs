//! The models the demo's workflows call: provider, names, latency, caching and rate limits.

use crate::UNPRICED_MODEL;

/// How a provider caches prompts.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cache {
    /// No prompt caching.
    None,
    /// Automatic prefix caching, reads only (OpenAI, Gemini implicit caching).
    Implicit,
    /// Explicit cache breakpoints, reads and writes billed apart (Anthropic).
    Explicit,
}

#[derive(Clone, Copy)]
pub(crate) struct Model {
    pub(crate) provider: &'static str,
    pub(crate) request: &'static str,
    pub(crate) response: &'static str,
    pub(crate) ttft_ms: (u64, u64),
    pub(crate) tokens_per_s: u64,
    pub(crate) cache: Cache,
    pub(crate) reasoning: bool,
    /// Requests per minute of the account's rate limit (0: the provider sends no headers).
    pub(crate) rpm: u64,
    /// Tokens per minute of the account's rate limit.
    pub(crate) tpm: u64,
}

pub(crate) const GPT_4O: Model = Model {
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
pub(crate) const GPT_4O_MINI: Model = Model {
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
pub(crate) const O4_MINI: Model = Model {
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
pub(crate) const CLAUDE_SONNET_4: Model = Model {
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
pub(crate) const CLAUDE_HAIKU: Model = Model {
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
pub(crate) const GEMINI_FLASH: Model = Model {
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
pub(crate) const MISTRAL_LARGE: Model = Model {
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
pub(crate) const EMBEDDING_SMALL: Model = Model {
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
pub(crate) const SELF_HOSTED: Model = Model {
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
    pub(crate) fn cached(&self, prefix: u64, input: u64, warm: bool) -> (u64, u64) {
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
