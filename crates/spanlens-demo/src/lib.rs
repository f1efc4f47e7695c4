//! Demo data: a deterministic set of realistic agent traces over the four weeks before a given
//! time, so a fresh install has something to show in the UI, the API and the CLI
//! (`spanlens demo`, `spanlens serve --demo`).
//!
//! Traffic has the shape of a business workload, so the cost forecast has a weekly pattern to
//! fit: weekdays busier than weekends, working hours (UTC) busier than nights, and a gentle
//! growth over the four weeks (see `traffic::traffic_weight`).
//!
//! Five workflows, each with its own `service` and its own module under `workflows/`:
//! - `support-bot` (`support.rs`): ticket triage, then a researcher and a billing agent
//!   running in parallel, then a responder; tickets are threads of several traces (sessions);
//! - `code-review-agent` (`code_review.rs`): a reviewer agent in a model → tool loop (flaky
//!   test runs are retried);
//! - `docs-qa` (`rag.rs`): RAG question answering (embedding, two retrievers in parallel,
//!   reranker, LLM, LLM-as-judge evaluator);
//! - `invoice-extractor` (`extraction.rs`): document extraction with JSON-schema outputs,
//!   schema validation and repair (and the one call to a self-hosted model that has no price);
//! - `assistant-chat` (`chat.rs`): multi-turn chat sessions with a growing prompt cache,
//!   through an LLM gateway that reports each call's bill (the demo's provider-reported costs).
//!
//! Spans are built in canonical form and priced by the core cost engine. The ids depend only on
//! the seed, never on `now`, so loading the demo twice stores it once (the later copy wins, with
//! fresh timestamps).
//!
//! What the workflows share: `rng.rs` (the seeded random numbers), `models.rs` (the models
//! called, with their latency, caching and rate limits), `traffic.rs` (when traces start) and
//! `trace.rs` (building a trace's spans: model and tool calls, retries, rate limits, pricing).
//!
//! The load generators build on the same code: [`LoadGen`] (`load.rs`) makes traces of one
//! agent-pipeline shape at any volume and start time, [`export_request`] (`otlp.rs`) encodes
//! canonical spans as an OTLP request with GenAI attributes, and the load generators draw from
//! the one [`Rng`].

mod load;
mod models;
mod otlp;
mod rng;
mod trace;
mod traffic;
mod workflows;

pub use crate::load::{LoadGen, LoadOptions, LOAD_SERVICE};
pub use crate::otlp::{export_request, SCOPE_NAME};
pub use crate::rng::Rng;

use spanlens_core::{Span, Timestamp, TraceId};

use crate::traffic::Traffic;
use crate::workflows::Gen;

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

#[cfg(test)]
mod tests;
