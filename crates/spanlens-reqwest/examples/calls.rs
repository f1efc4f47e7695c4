//! A few LLM calls through a middleware client, printed as a trace tree.
//!
//! Point it at any OpenAI/Anthropic/Gemini-compatible server, for instance the repository's mock:
//!
//! ```sh
//! python3 tests/e2e/mock_llm.py            # prints "mock LLM on http://127.0.0.1:PORT/v1"
//! cargo run -p spanlens-reqwest --example calls -- http://127.0.0.1:PORT
//! ```

use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use reqwest_retry::{policies::ExponentialBackoff, RetryTransientMiddleware};
use spanlens::processor::ConsoleProcessor;
use spanlens::{Resource, Tracer};
use spanlens_reqwest::SpanlensMiddleware;
use std::time::Duration;

async fn post(client: &ClientWithMiddleware, url: String, body: serde_json::Value) -> String {
    match client
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
    {
        Ok(r) => format!(
            "{} ({} bytes)",
            r.status(),
            r.text().await.unwrap_or_default().len()
        ),
        Err(e) => format!("failed: {e}"),
    }
}

#[spanlens::traced(kind = "agent")]
async fn assistant(client: &ClientWithMiddleware, base: &str) {
    let chat = serde_json::json!({"model": "gpt-4o-mini", "temperature": 0.2,
        "messages": [{"role": "user", "content": "hello"}]});
    println!(
        "chat:      {}",
        post(client, format!("{base}/v1/chat/completions"), chat).await
    );
    let stream = serde_json::json!({"model": "claude-sonnet-4-5", "max_tokens": 256, "stream": true,
        "messages": [{"role": "user", "content": "stream a story"}]});
    println!(
        "anthropic: {}",
        post(client, format!("{base}/v1/messages"), stream).await
    );
    let gemini = serde_json::json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]});
    let url = format!("{base}/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse");
    println!("gemini:    {}", post(client, url, gemini).await);
    let failing = serde_json::json!({"model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "FAIL_500"}]});
    println!(
        "retried:   {}",
        post(client, format!("{base}/v1/chat/completions"), failing).await
    );
}

#[tokio::main]
async fn main() {
    let base = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:8000".to_string());
    let base = base
        .trim_end_matches('/')
        .trim_end_matches("/v1")
        .to_string();
    let resource = Resource::new("spanlens-reqwest-example");
    let tracer = Tracer::builder()
        .with_processor(ConsoleProcessor::stderr(resource.clone()))
        .with_resource(resource)
        .build();
    tracer.install_global();
    let retry = ExponentialBackoff::builder()
        .retry_bounds(Duration::from_millis(10), Duration::from_millis(50))
        .build_with_max_retries(1);
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(RetryTransientMiddleware::new_with_policy(retry))
        .with(SpanlensMiddleware::new())
        .build();
    assistant(&client, &base).await;
    tracer.shutdown();
}
