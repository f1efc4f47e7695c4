//! Errors, retries, message capture and streams dropped early, against the mock LLM.

mod common;

use common::*;
use futures_util::StreamExt;
use http::Extensions;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware, Middleware, Next};
use reqwest_retry::policies::ExponentialBackoff;
use reqwest_retry::RetryTransientMiddleware;
use serde_json::{json, Value};
use spanlens_core::{SpanKind, Status};
use spanlens_reqwest::SpanlensMiddleware;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn client(mw: SpanlensMiddleware) -> ClientWithMiddleware {
    ClientBuilder::new(reqwest::Client::new()).with(mw).build()
}

async fn post(client: &ClientWithMiddleware, path: &str, body: &Value) -> (u16, String) {
    let resp = client
        .post(format!("{}{path}", mock_url()))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("request to the mock");
    let status = resp.status().as_u16();
    (status, resp.text().await.expect("body"))
}

fn chat(text: &str, stream: bool) -> Value {
    json!({"model": "gpt-4o-mini", "stream": stream,
        "messages": [{"role": "user", "content": text}]})
}

/// (path, body, the provider's error type) for a message `text` in each API.
fn failing_calls(text: &str) -> Vec<(&'static str, Value, &'static str, &'static str)> {
    vec![
        (
            "/v1/chat/completions",
            chat(text, false),
            "429-type-openai",
            "requests",
        ),
        (
            "/v1/messages",
            json!({"model": "claude-sonnet-4-5", "max_tokens": 10,
                   "messages": [{"role": "user", "content": text}]}),
            "429-type-anthropic",
            "rate_limit_error",
        ),
        (
            "/v1beta/models/gemini-2.5-flash:generateContent",
            json!({"contents": [{"role": "user", "parts": [{"text": text}]}]}),
            "429-type-gemini",
            "RESOURCE_EXHAUSTED",
        ),
    ]
}

#[tokio::test]
async fn rate_limited_calls_are_error_spans_with_rate_limits() {
    for (path, body, label, provider_type) in failing_calls("please FAIL_429") {
        let (t, mem) = tracer();
        let ((status, text), _) =
            under_root(&t, post(&client(SpanlensMiddleware::new()), path, &body)).await;
        assert_eq!(status, 429, "{label}");
        assert!(
            text.contains("Rate limit reached (mock)"),
            "caller gets the body: {text}"
        );
        let s = llm_spans(&mem).remove(0);
        assert_eq!(s.status, Status::Error, "{label}");
        let msg = s.status_message.as_deref().unwrap_or("");
        assert!(
            msg.contains("429") && msg.contains("Rate limit reached (mock)"),
            "{label}: {msg}"
        );
        assert_eq!(s.error_type.as_deref(), Some(provider_type), "{label}");
        assert_eq!(s.attributes["http.response.status_code"], json!(429));
        let rl = s.rate_limits.expect("rate limits");
        assert_eq!(rl.retry_after_ms, Some(1000), "{label}");
        let req = rl.requests.expect("request window");
        // The mock sends both OpenAI's and Anthropic's headers; the later (Anthropic) wins.
        assert_eq!(req.remaining, Some(0), "{label}");
        assert!(matches!(req.limit, Some(500) | Some(50)), "{label}");
        assert!(s.usage.is_none() && s.cost.is_none());
    }
}

#[tokio::test]
async fn server_errors_are_error_spans() {
    for (path, body, label, _) in failing_calls("please FAIL_500") {
        let (t, mem) = tracer();
        let ((status, _), _) =
            under_root(&t, post(&client(SpanlensMiddleware::new()), path, &body)).await;
        assert_eq!(status, 500, "{label}");
        let s = llm_spans(&mem).remove(0);
        assert_eq!(s.status, Status::Error);
        assert!(
            s.status_message
                .as_deref()
                .unwrap()
                .contains("Internal server error (mock)"),
            "{label}: {:?}",
            s.status_message
        );
        assert!(s.rate_limits.is_none());
    }
}

fn retrying(max_retries: u32, inner: Option<FailFirst>) -> ClientWithMiddleware {
    let policy = ExponentialBackoff::builder()
        .retry_bounds(Duration::from_millis(1), Duration::from_millis(5))
        .build_with_max_retries(max_retries);
    let b = ClientBuilder::new(reqwest::Client::new())
        .with(RetryTransientMiddleware::new_with_policy(policy))
        .with(SpanlensMiddleware::new());
    match inner {
        Some(f) => b.with(f).build(),
        None => b.build(),
    }
}

#[tokio::test]
async fn every_attempt_of_a_retried_call_is_recorded_and_marked() {
    let (t, mem) = tracer();
    let ((status, _), root) = under_root(
        &t,
        post(
            &retrying(2, None),
            "/v1/chat/completions",
            &chat("FAIL_500", false),
        ),
    )
    .await;
    assert_eq!(status, 500);
    let spans = llm_spans(&mem);
    assert_eq!(spans.len(), 3, "three attempts");
    for (i, s) in spans.iter().enumerate() {
        let n = i as u64 + 1;
        assert_eq!(s.parent_span_id, Some(root));
        assert_eq!(s.status, Status::Error);
        assert_eq!(s.attributes["spanlens.llm.attempt"], json!(n));
        let retries: Vec<&spanlens_core::Event> =
            s.events.iter().filter(|e| e.name == "retry").collect();
        assert_eq!(
            retries.len() as u64,
            n - 1,
            "attempt {n} carries the failures before it"
        );
        for (k, e) in retries.iter().enumerate() {
            assert_eq!(e.attributes["retry.attempt"], json!(k + 1));
            assert_eq!(e.attributes["error.type"], json!("server_error"));
            assert!(e.attributes["error.message"]
                .as_str()
                .unwrap()
                .contains("Internal server error (mock)"));
            assert!(e.attributes.contains_key("retry.backoff_ms"));
        }
        if n > 1 {
            assert_eq!(s.attributes["http.request.resend_count"], json!(n - 1));
            let tl = spanlens_core::retry_timeline(s).expect("a retried span");
            assert_eq!(tl.retries, n - 1);
            assert_eq!(tl.outcome, "failed");
        } else {
            assert!(!s.attributes.contains_key("http.request.resend_count"));
        }
    }
}

/// Answers the first attempt of each call itself with a 503 and a `retry-after-ms`, then lets
/// the following attempts through to the mock.
#[derive(Clone, Default)]
struct FailFirst(Arc<AtomicU32>);

#[async_trait::async_trait]
impl Middleware for FailFirst {
    async fn handle(
        &self,
        req: reqwest::Request,
        ext: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        if self.0.fetch_add(1, Ordering::SeqCst) == 0 {
            let resp = http::Response::builder()
                .status(503)
                .header("content-type", "application/json")
                .header("retry-after-ms", "2")
                .body(r#"{"error":{"message":"overloaded (test)","type":"overloaded"}}"#)
                .unwrap();
            return Ok(reqwest::Response::from(resp));
        }
        next.run(req, ext).await
    }
}

#[tokio::test]
async fn a_call_that_recovers_after_a_retry_says_so() {
    let (t, mem) = tracer();
    let ((status, text), _) = under_root(
        &t,
        post(
            &retrying(2, Some(FailFirst::default())),
            "/v1/chat/completions",
            &chat("hello", false),
        ),
    )
    .await;
    assert_eq!(status, 200);
    assert!(text.contains("Mock answer to: hello"));
    let spans = llm_spans(&mem);
    assert_eq!(spans.len(), 2);
    assert_eq!(spans[0].status, Status::Error);
    assert_eq!(spans[0].error_type.as_deref(), Some("overloaded"));
    let ok = &spans[1];
    assert_eq!(ok.status, Status::Ok);
    assert_eq!(ok.usage.as_ref().unwrap().input_tokens, 2006);
    let retry = ok.events.iter().find(|e| e.name == "retry").unwrap();
    assert_eq!(retry.attributes["retry.retry_after_ms"], json!(2));
    assert_eq!(retry.attributes["error.type"], json!("overloaded"));
    let outcome = ok
        .events
        .iter()
        .find(|e| e.name == "retry.outcome")
        .unwrap();
    assert_eq!(outcome.attributes["retry.attempts"], json!(2));
    assert_eq!(outcome.attributes["retry.succeeded"], json!(true));
    let tl = spanlens_core::retry_timeline(ok).unwrap();
    assert_eq!((tl.retries, tl.outcome.as_ref()), (1, "recovered"));
}

#[tokio::test]
async fn messages_are_recorded_only_when_opted_in() {
    let cases = [
        ("/v1/chat/completions", chat("capture me", true)),
        ("/v1/chat/completions", chat("capture me", false)),
        (
            "/v1/responses",
            json!({"model": "gpt-4o-mini", "input": "capture me", "stream": true}),
        ),
        (
            "/v1/messages",
            json!({"model": "claude-sonnet-4-5", "max_tokens": 10, "stream": true,
                   "system": "be brief", "messages": [{"role": "user", "content": "capture me"}]}),
        ),
        (
            "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
            json!({"contents": [{"role": "user", "parts": [{"text": "capture me"}]}]}),
        ),
    ];
    for (path, body) in cases {
        for on in [true, false] {
            let (t, mem) = tracer();
            let mw = SpanlensMiddleware::new().capture_messages(on);
            let ((status, _), _) = under_root(&t, post(&client(mw), path, &body)).await;
            assert_eq!(status, 200);
            let s = llm_spans(&mem).remove(0);
            if !on {
                assert!(
                    s.input_messages.is_empty(),
                    "{path}: {:?}",
                    s.input_messages
                );
                assert!(s.output_messages.is_empty(), "{path}");
                continue;
            }
            let user = s
                .input_messages
                .iter()
                .find(|m| m.role.as_deref() == Some("user"))
                .unwrap_or_else(|| panic!("{path}: {:?}", s.input_messages));
            assert_eq!(user.content.as_deref(), Some("capture me"), "{path}");
            let out = &s.output_messages[0];
            assert_eq!(out.role.as_deref(), Some("assistant"));
            assert_eq!(
                out.content.as_deref(),
                Some("Mock answer to: capture me"),
                "{path}"
            );
        }
    }
}

#[tokio::test]
async fn a_stream_dropped_early_still_ends_its_span() {
    let (t, mem) = tracer();
    let body = chat("a long answer please", true);
    let (first, _) = under_root(&t, async {
        let resp = client(SpanlensMiddleware::new())
            .post(format!("{}/v1/chat/completions", mock_url()))
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.url().path(),
            "/v1/chat/completions",
            "the URL survives the wrapping"
        );
        let mut stream = resp.bytes_stream();
        let first = stream.next().await.unwrap().unwrap();
        assert!(
            llm_spans(&mem).is_empty(),
            "the span is open while the stream is"
        );
        drop(stream);
        first
    })
    .await;
    assert!(first.starts_with(b"data: "));
    let spans = llm_spans(&mem);
    assert_eq!(spans.len(), 1);
    let s = &spans[0];
    assert_eq!(s.kind, SpanKind::Llm);
    assert!(s.ttft_ns.unwrap() >= FIRST_CHUNK_DELAY_NS);
    assert_eq!(
        s.attributes["spanlens.reqwest.body_incomplete"],
        json!(true)
    );
}
