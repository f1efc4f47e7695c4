//! A support pipeline of three agents — a triage agent, then a researcher and a billing agent
//! running in parallel — calling an in-process mock LLM and tools, one of which fails twice and
//! succeeds after backoff.
//!
//! ```sh
//! cargo run -p spanlens --features tokio --example agent_pipeline                 # console tree
//! cargo run -p spanlens --features tokio --example agent_pipeline -- --jsonl spans.jsonl
//! SPANLENS_ENDPOINT=http://127.0.0.1:4318 cargo run -p spanlens --features tokio --example agent_pipeline
//! ```

use serde_json::json;
use spanlens::record::{self, LlmCall, ToolCall, Verdict};
use spanlens::retry::{self, RetryError, RetryPolicy};
use spanlens::FutureExt;
use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// The mock provider's answer: text and the raw usage object the real API would return.
struct Completion {
    text: String,
    usage: serde_json::Value,
    model: &'static str,
}

/// An in-process stand-in for a chat-completions API: waits like a network call, streams a first
/// token after a delay, and reports realistic usage including cached prompt tokens.
async fn mock_llm(call: &LlmCall, model: &'static str, prompt: &str, cached: u64) -> Completion {
    tokio::time::sleep(Duration::from_millis(40)).await; // time to first token
    call.first_token();
    let words = 24 + prompt.len() as u64 % 17;
    for _ in 0..words {
        tokio::time::sleep(Duration::from_millis(1)).await;
        call.token();
    }
    let prompt_tokens = 1_200 + prompt.len() as u64 * 3 + cached;
    Completion {
        text: format!("answer to: {prompt}"),
        model,
        usage: if model.starts_with("claude") {
            // Anthropic semantics: input_tokens exclude the cache.
            json!({"input_tokens": prompt_tokens - cached, "cache_read_input_tokens": cached,
                   "cache_creation_input_tokens": 0, "output_tokens": words})
        } else {
            json!({"prompt_tokens": prompt_tokens, "completion_tokens": words,
                   "total_tokens": prompt_tokens + words,
                   "prompt_tokens_details": {"cached_tokens": cached},
                   "completion_tokens_details": {"reasoning_tokens": 0}})
        },
    }
}

/// One traced LLM call through the mock provider.
async fn chat(provider: &str, model: &'static str, prompt: &str, cached: u64) -> String {
    let call = LlmCall::start(provider, model);
    call.param("temperature", 0.2).param("max_tokens", 512);
    call.messages_input(&json!([{"role": "user", "content": prompt}]));
    let ctx = call.context();
    let out = ctx.wrap(mock_llm(&call, model, prompt, cached)).await;
    call.usage_json(&out.usage)
        .response_model(out.model)
        .finish_reason("stop");
    call.rate_limit_headers([
        ("x-ratelimit-limit-requests", "5000"),
        ("x-ratelimit-remaining-requests", "4987"),
        ("x-ratelimit-reset-requests", "12ms"),
        ("x-ratelimit-limit-tokens", "800000"),
        ("x-ratelimit-remaining-tokens", "771200"),
        ("x-ratelimit-reset-tokens", "2.1s"),
    ]);
    call.messages_output(&json!([{"role": "assistant", "content": out.text}]));
    call.finish();
    out.text
}

/// A flaky upstream error (the invoice service answers 503 twice before it recovers).
#[derive(Debug)]
struct Unavailable;

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invoice service unavailable (503)")
    }
}

impl RetryError for Unavailable {
    fn retry_after(&self) -> Option<Duration> {
        Some(Duration::from_millis(30))
    }
}

static INVOICE_CALLS: AtomicU32 = AtomicU32::new(0);

#[spanlens::traced(kind = "tool", capture_args)]
async fn lookup_invoice(customer: &str) -> Result<String, Unavailable> {
    let policy = RetryPolicy {
        max_attempts: 4,
        initial_backoff: Duration::from_millis(20),
        ..RetryPolicy::default()
    };
    retry::run_async(policy, |_attempt| async {
        tokio::time::sleep(Duration::from_millis(5)).await;
        if INVOICE_CALLS.fetch_add(1, Ordering::SeqCst) < 2 {
            Err(Unavailable)
        } else {
            Ok(format!(
                "{{\"customer\":\"{customer}\",\"invoice\":\"INV-2291\",\"amount\":149.0}}"
            ))
        }
    })
    .await
}

async fn search_docs(query: &str) -> String {
    let tool = ToolCall::start("search_docs");
    tool.call_id("call_7")
        .arguments(json!({"query": query, "k": 3}));
    let result = tool
        .context()
        .wrap(async {
            tokio::time::sleep(Duration::from_millis(15)).await;
            json!([{"title": "Refund policy", "score": 0.91}, {"title": "Billing FAQ", "score": 0.84}])
        })
        .await;
    tool.result(result.clone()).success();
    tool.finish();
    result.to_string()
}

async fn triage(question: &str) -> String {
    let agent = record::agent("triage").start();
    async {
        record::guardrail("input_moderation", Verdict::pass().with_score(0.02));
        chat(
            "openai",
            "gpt-4o-mini",
            &format!("classify: {question}"),
            1024,
        )
        .await
    }
    .instrument(agent)
    .await
}

async fn researcher(question: &str) -> String {
    let agent = record::agent("researcher").start();
    async {
        let docs = search_docs(question).await;
        chat(
            "anthropic",
            "claude-sonnet-4-20250514",
            &format!("answer {question} with {docs}"),
            2048,
        )
        .await
    }
    .instrument(agent)
    .await
}

async fn billing(customer: &str) -> String {
    let agent = record::agent("billing").start();
    async {
        let invoice = lookup_invoice(customer)
            .await
            .unwrap_or_else(|e| format!("unavailable: {e}"));
        chat("openai", "gpt-4o", &format!("explain invoice {invoice}"), 0).await
    }
    .instrument(agent)
    .await
}

#[spanlens::traced(kind = "pipeline", name = "support_pipeline")]
async fn support_pipeline(customer: &'static str, question: &'static str) -> String {
    let route = triage(question).await;
    record::handoff("triage", "researcher+billing");
    // The two specialists work in parallel; both hang under the pipeline span.
    let (answer, invoice) = tokio::join!(researcher(question), billing(customer));
    format!("{route}\n{answer}\n{invoice}")
}

#[tokio::main]
async fn main() {
    let mut config = spanlens::Config::from_env();
    config.console = true;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--jsonl" => match args.next() {
                Some(path) => config.jsonl = Some(path.into()),
                None => {
                    eprintln!("error: --jsonl needs a FILE");
                    std::process::exit(2);
                }
            },
            other => {
                eprintln!(
                    "error: unknown argument {other:?} (usage: agent_pipeline [--jsonl FILE])"
                );
                std::process::exit(2);
            }
        }
    }
    if config.resource.attributes[0].1 == "unknown_service" {
        config.resource = config
            .resource
            .with("service.name", "agent-pipeline-example");
    }
    let guard = spanlens::init(config);
    let answer = spanlens::scope()
        .user("cust_4711")
        .session("conv_2025_11_22")
        .tag("example")
        .wrap(support_pipeline("cust_4711", "why was I charged twice?"))
        .await;
    println!("{answer}");
    drop(guard); // flushes the console tree, the JSONL file and the OTLP exporter
}
