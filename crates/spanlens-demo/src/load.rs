//! The load shape: priced canonical traces at any volume and any start time, for load
//! generators and benchmarks (`spanlens bench ingest`, the store's `ingest_bench` example).
//!
//! Every trace has the shape of a support agent pipeline, built with the demo's models and its
//! trace-building code (`trace.rs`), so the spans look like the demo's and are priced the same
//! way:
//!
//! ```text
//! handle_ticket (pipeline, status left unset as most SDKs leave a root's)
//! ├─ planner (agent): 2–6 × [model call, then a tool call half of the time], vector_search
//! ├─ writer (agent):  the same
//! └─ moderation (guardrail)
//! ```
//!
//! That is about 18 spans a trace: 44% model calls, 22% tool calls. 2% of the model calls fail
//! (a 429 the client does not retry) and 5% of the tool calls are retried once after a timeout.
//! With [`LoadOptions::rate_limits`], about 60% of the model calls also carry the rate-limit
//! headers of their provider and 3% are retried once or twice (rate limited or timed out)
//! before they succeed or give up, which is what the error-recovery report reads.
//!
//! Trace number `n` of a workload belongs to session `n / traces_per_session`, whose one user is
//! drawn from the session number alone, so generators with different seeds (one per thread)
//! still agree on who a session's user is. Every tenth trace is tagged `beta`, the others
//! `prod`.

use crate::models::{
    Model, CLAUDE_HAIKU, CLAUDE_SONNET_4, GEMINI_FLASH, GPT_4O, GPT_4O_MINI, O4_MINI,
};
use crate::rng::Rng;
use crate::trace::{meta, msg, Call, Ctx, Done, Retry, ToolCall, Trace};
use serde_json::{json, Value};
use spanlens_core::{Span, SpanKind, Status, Timestamp, TraceId};

/// The service every load trace comes from.
pub const LOAD_SERVICE: &str = "support-bot";

/// The models a load trace calls, each with its span name (`&'static`, as `Call` needs).
const MODELS: [(Model, &str); 6] = [
    (GPT_4O, "chat gpt-4o"),
    (GPT_4O_MINI, "chat gpt-4o-mini"),
    (CLAUDE_SONNET_4, "chat claude-sonnet-4"),
    (CLAUDE_HAIKU, "chat claude-3-5-haiku"),
    (GEMINI_FLASH, "chat gemini-2.5-flash"),
    (O4_MINI, "chat o4-mini"),
];

/// Tools an agent calls: name and description.
const TOOLS: [(&str, &str); 5] = [
    ("search_docs", "Full-text search over the help center"),
    ("get_weather", "Current weather at the delivery address"),
    (
        "lookup_order",
        "Order status and carrier tracking by order number",
    ),
    ("send_email", "Sends an email to the customer"),
    ("sql_query", "Read-only SQL over the orders database"),
];

const SYSTEM_PROMPT: &str = "You are a helpful support agent. Answer briefly, cite the docs you \
                             used, and never invent order numbers.";
const REPLY: &str = "Your order left our warehouse on Monday and is with the carrier; the \
                     tracking page updates within 24 hours of the first scan. I have sent you \
                     the carrier link by email.";

/// What a [`LoadGen`] adds beyond the basic shape, and how its traffic is spread.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Rate-limit headers on about 60% of the model calls and retried model calls (3%), with
    /// error types and outcomes: what the error-recovery report reads. Off by default.
    pub rate_limits: bool,
    /// Distinct end users (`user-0`, `user-1`, …) the sessions are spread over.
    pub users: u64,
    /// Consecutive traces that make one session.
    pub traces_per_session: u64,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            rate_limits: false,
            users: 1000,
            traces_per_session: 4,
        }
    }
}

/// Generates load traces from one seed: the same seed and calls give the same spans.
#[derive(Debug, Clone)]
pub struct LoadGen {
    rng: Rng,
    opts: LoadOptions,
}

impl LoadGen {
    /// A generator for `seed`; give each thread of a load generator its own seed.
    pub fn new(seed: u64, opts: LoadOptions) -> LoadGen {
        LoadGen {
            rng: Rng::new(seed),
            opts,
        }
    }

    /// Trace number `n` of the workload (which names its session, user and tag), starting at
    /// `start`: about 18 priced spans in the order an OTel SDK exports them, each when it ends,
    /// so children come before their parents and the root comes last.
    ///
    /// Its trace id begins with `start` in nanoseconds (as AWS X-Ray's begin with the time), so
    /// traces generated in time order have ascending ids, which keeps a store's index inserts
    /// local as real ingest mostly is; the other 8 bytes are random.
    pub fn trace(&mut self, n: u64, start: Timestamp) -> Vec<Span> {
        let session = n / self.opts.traces_per_session.max(1);
        // Drawn from the session alone, not from this generator, so every thread agrees.
        let user = Rng::new(session).below(self.opts.users.max(1));
        let ctx = Ctx {
            service: LOAD_SERVICE,
            user: Some(format!("user-{user}")),
            session: Some(format!("session-{session}")),
            tags: vec![if n % 10 == 0 { "beta" } else { "prod" }.to_string()],
            metadata: meta(json!({"tenant": format!("tenant-{}", user % 50)})),
            incident: false,
        };
        let opts = &self.opts;
        let mut t = start_trace(&mut self.rng, start, None);
        let root = t.open(None, "handle_ticket", SpanKind::Pipeline, 0);
        let mut at = 1;
        for agent in ["planner", "writer"] {
            let a = t.open(Some(root), agent, SpanKind::Agent, at);
            for _ in 0..t.rng.range(2, 6) {
                at = model_call(&mut t, opts, a, at).end + 1;
                if t.rng.chance(0.5) {
                    at = tool_call(&mut t, a, at).end + 1;
                }
            }
            let r = t.open(Some(a), "vector_search", SpanKind::Retriever, at);
            t.close(r, at + 30);
            at += 31;
            t.close(a, at);
            at += 1;
        }
        at = t
            .guardrail(root, at, "moderation", 15, true, "no policy violation")
            .end
            + 1;
        t.close(root, at);
        // Like most SDKs, the root leaves its status unset: the trace's follows its spans.
        t.spans[root].status = Status::Unset;
        exported(t.finish(&ctx))
    }

    /// One very wide trace with id `trace_id` and `spans` spans (at least 3): a pipeline, one
    /// agent (`bulk`) and under it model and tool calls starting 300 ms apart, a tool call
    /// every third; for timing the detail view of a huge trace.
    pub fn wide_trace(&mut self, trace_id: TraceId, start: Timestamp, spans: usize) -> Vec<Span> {
        let ctx = Ctx {
            service: LOAD_SERVICE,
            user: None,
            session: None,
            tags: Vec::new(),
            metadata: Default::default(),
            incident: false,
        };
        let opts = &self.opts;
        let mut t = start_trace(&mut self.rng, start, Some(trace_id));
        let root = t.open(None, "bulk_pipeline", SpanKind::Pipeline, 0);
        let agent = t.open(Some(root), "bulk", SpanKind::Agent, 0);
        let mut end = 0;
        for i in 0..spans.saturating_sub(2).max(1) as u64 {
            let at = i * 300;
            let done = if i % 3 == 0 {
                tool_call(&mut t, agent, at)
            } else {
                model_call(&mut t, opts, agent, at)
            };
            end = end.max(done.end);
        }
        t.close(agent, end + 1);
        t.close(root, end + 2);
        exported(t.finish(&ctx))
    }
}

/// A trace starting at `start`, with `id` or else one that begins with the start time.
fn start_trace(rng: &mut Rng, start: Timestamp, id: Option<TraceId>) -> Trace<'_> {
    let trace_id = id.unwrap_or_else(|| {
        let mut b = rng.trace_id().0;
        b[..8].copy_from_slice(&start.0.to_be_bytes());
        TraceId(b)
    });
    Trace {
        rng,
        window_start: start.0,
        t0: 0,
        trace_id,
        spans: Vec::with_capacity(24),
    }
}

/// Spans in the order they end (stable: every parent ends after its children here).
fn exported(mut spans: Vec<Span>) -> Vec<Span> {
    spans.sort_by_key(|s| s.end_time);
    spans
}

/// One model call under `parent` at `at`, with the failures and headers `opts` asks for.
fn model_call(t: &mut Trace<'_>, opts: &LoadOptions, parent: usize, at: u64) -> Done {
    let (mut model, name) = t.rng.pick(&MODELS);
    let input = t.rng.range(200, 6200);
    let output = t.rng.range(20, 820);
    // A model without requests-per-minute sends no rate-limit headers (see `Trace::rate_limits`).
    if !(opts.rate_limits && t.rng.chance(0.7)) {
        model.rpm = 0;
    }
    let mut c = Call::new(name, model, input, output);
    // Half the prompt is a stable prefix (system prompt, tools), cached a third of the time.
    c.prefix = input / 2;
    c.warm = t.rng.below(3) == 0;
    let order = t.rng.range(100_000, 999_999);
    c.messages = vec![
        msg("system", SYSTEM_PROMPT),
        msg(
            "user",
            format!(
                "Where is my order #{order}? It was supposed to arrive yesterday and the \
                 tracking page shows nothing."
            ),
        ),
    ];
    c.reply = msg("assistant", REPLY);
    c.retry = if t.rng.chance(0.02) {
        // Refused outright by a client that does not retry.
        Some(Retry {
            fails: 1,
            exhausted: true,
            error_type: "RateLimitError",
            message: "429 Too Many Requests".into(),
            attempt_ms: (40, 400),
            backoff_ms: 0,
            retry_after_ms: None,
        })
    } else if opts.rate_limits && t.rng.chance(0.03) {
        let limited = t.rng.chance(2.0 / 3.0);
        let retry_after = t.rng.range(1000, 8000);
        Some(Retry {
            fails: t.rng.range(1, 2),
            exhausted: t.rng.chance(0.1),
            error_type: if limited {
                "RateLimitError"
            } else {
                "APITimeoutError"
            },
            message: if limited {
                "429 Too Many Requests: rate limit reached for requests"
            } else {
                "Request timed out."
            }
            .into(),
            attempt_ms: if limited { (40, 400) } else { (5000, 15000) },
            backoff_ms: 500,
            retry_after_ms: limited.then_some(retry_after),
        })
    } else {
        None
    };
    t.llm(parent, at, c)
}

/// One tool execution under `parent` at `at`; 5% time out once and succeed when retried.
fn tool_call(t: &mut Trace<'_>, parent: usize, at: u64) -> Done {
    let (name, description) = t.rng.pick(&TOOLS);
    let call_id = format!("call_{}", t.rng.hex(24));
    let retry = t.rng.chance(0.05).then(|| Retry {
        fails: 1,
        exhausted: false,
        error_type: "TimeoutError",
        message: format!("{name} timed out"),
        attempt_ms: (50, 300),
        backoff_ms: 200,
        retry_after_ms: None,
    });
    let result: Value = json!({"results": [
        {"id": "doc-17", "title": "Shipping times", "score": 0.83},
        {"id": "doc-4", "title": "Tracking", "score": 0.71}
    ]});
    t.tool(
        parent,
        at,
        ToolCall {
            name,
            description,
            args: json!({"query": "order status carrier tracking", "limit": 5}),
            result,
            duration_ms: (5, 805),
            call_id: Some(call_id),
            retry,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use spanlens_core::SpanId;
    use std::collections::{HashMap, HashSet};

    const T0: Timestamp = Timestamp(1_767_225_600_000_000_000); // 2026-01-01T00:00:00Z
    const SECOND: u64 = 1_000_000_000;

    fn workload(opts: LoadOptions, traces: u64) -> Vec<Span> {
        let mut g = LoadGen::new(9, opts);
        (0..traces)
            .flat_map(|n| g.trace(n, Timestamp(T0.0 + n * 60 * SECOND)))
            .collect()
    }

    fn share(spans: &[Span], f: impl Fn(&Span) -> bool) -> f64 {
        spans.iter().filter(|s| f(s)).count() as f64 / spans.len() as f64
    }

    #[test]
    fn same_seed_same_traces() {
        let a = workload(LoadOptions::default(), 20);
        assert_eq!(a, workload(LoadOptions::default(), 20));
        let first = |seed| LoadGen::new(seed, LoadOptions::default()).trace(0, T0);
        assert_ne!(first(9), first(10));
    }

    #[test]
    fn traces_have_the_load_shape() {
        let spans = workload(LoadOptions::default(), 2000);
        let traces: HashSet<TraceId> = spans.iter().map(|s| s.trace_id).collect();
        let per_trace = spans.len() as f64 / traces.len() as f64;
        assert!(
            (17.0..19.0).contains(&per_trace),
            "{per_trace} spans a trace"
        );
        let llm = share(&spans, |s| s.kind == SpanKind::Llm);
        let tool = share(&spans, |s| s.kind == SpanKind::Tool);
        assert!((0.41..0.47).contains(&llm), "{llm} model calls");
        assert!((0.20..0.25).contains(&tool), "{tool} tool calls");
        let failed = share(&spans, |s| {
            s.kind == SpanKind::Llm && s.status == Status::Error
        });
        assert!((0.004..0.014).contains(&failed), "{failed} failed calls");
        // Every answered model call is priced; no headers without the option.
        for s in spans.iter().filter(|s| s.kind == SpanKind::Llm) {
            assert_eq!(s.cost.is_some(), s.status == Status::Ok, "{}", s.name);
            assert!(s.rate_limits.is_none());
        }
        assert!(spans
            .iter()
            .all(|s| s.service.as_deref() == Some(LOAD_SERVICE)));
    }

    #[test]
    fn ids_are_unique_and_children_come_before_their_parents() {
        let spans = workload(LoadOptions::default(), 300);
        let mut seen: HashMap<(TraceId, SpanId), usize> = HashMap::new();
        for (i, s) in spans.iter().enumerate() {
            assert!(seen.insert((s.trace_id, s.span_id), i).is_none());
        }
        for (i, s) in spans.iter().enumerate() {
            match s.parent_span_id {
                Some(p) => {
                    let j = seen[&(s.trace_id, p)];
                    assert!(j > i, "{} is exported after its parent", s.name);
                    assert!(spans[j].start_time <= s.start_time);
                    assert!(spans[j].end_time > s.end_time);
                }
                None => assert_eq!(s.status, Status::Unset),
            }
        }
        // Trace ids ascend with the start time.
        let mut ids: Vec<TraceId> = spans.iter().map(|s| s.trace_id).collect();
        ids.dedup();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn a_session_has_one_user_whatever_the_seed() {
        let opts = LoadOptions::default();
        let (mut a, mut b) = (LoadGen::new(1, opts.clone()), LoadGen::new(2, opts));
        let users = |spans: Vec<Span>| (spans[0].session_id.clone(), spans[0].user_id.clone());
        // Traces 4–7 are one session, generated by different threads.
        let first = users(a.trace(4, T0));
        assert_eq!(first, users(b.trace(5, T0)));
        assert_eq!(first, users(a.trace(7, T0)));
        assert_ne!(first.0, users(b.trace(8, T0)).0);
        let spans = workload(LoadOptions::default(), 4000);
        let users: HashSet<_> = spans.iter().filter_map(|s| s.user_id.clone()).collect();
        assert!((600..=1000).contains(&users.len()), "{} users", users.len());
    }

    #[test]
    fn rate_limits_add_headers_and_retried_calls() {
        let opts = LoadOptions {
            rate_limits: true,
            ..Default::default()
        };
        let spans = workload(opts, 2000);
        let calls: Vec<&Span> = spans.iter().filter(|s| s.kind == SpanKind::Llm).collect();
        let headers = calls.iter().filter(|s| s.rate_limits.is_some()).count();
        let share = headers as f64 / calls.len() as f64;
        assert!((0.52..0.64).contains(&share), "{share} with headers");
        let retried: Vec<&&Span> = calls
            .iter()
            .filter(|s| s.events.iter().any(|e| e.name == "retry"))
            .collect();
        let share = retried.len() as f64 / calls.len() as f64;
        assert!((0.015..0.045).contains(&share), "{share} retried");
        assert!(retried
            .iter()
            .all(|s| s.events.iter().any(|e| e.name == "retry.outcome")));
        assert!(retried.iter().any(|s| s.status == Status::Ok));
    }

    #[test]
    fn wide_traces_have_the_asked_size() {
        let mut g = LoadGen::new(3, LoadOptions::default());
        let id = TraceId([0xbb; 16]);
        let spans = g.wide_trace(id, T0, 1000);
        assert_eq!(spans.len(), 1000);
        assert!(spans.iter().all(|s| s.trace_id == id));
        let root = spans.last().unwrap();
        assert_eq!(
            (root.name.as_str(), root.parent_span_id),
            ("bulk_pipeline", None)
        );
        let bulk = spans
            .iter()
            .filter(|s| s.agent_name.as_deref() == Some("bulk"));
        assert_eq!(bulk.count(), 999);
    }
}
