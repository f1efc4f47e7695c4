//! Every recognised provider against the mock LLM, streamed and not: the span's kind, models,
//! canonical tokens, cost at the catalog's price, TTFT, parameters, nesting, and the caller's
//! body byte for byte.

mod common;

use common::*;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use serde_json::{json, Value};
use spanlens_core::{SpanKind, Status};
use spanlens_reqwest::SpanlensMiddleware;

fn client() -> ClientWithMiddleware {
    ClientBuilder::new(reqwest::Client::new())
        .with(SpanlensMiddleware::new().capture_messages(false))
        .build()
}

/// Sends `body` to `path` through `client` and returns the status and the whole body.
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

/// The same request without the middleware: what the caller must get unchanged.
async fn post_plain(path: &str, body: &Value) -> String {
    reqwest::Client::new()
        .post(format!("{}{path}", mock_url()))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

struct Expect {
    provider: &'static str,
    request_model: &'static str,
    response_model: &'static str,
    /// Canonical (input, output, cache_read, cache_write, reasoning).
    tokens: (u64, u64, u64, u64, u64),
    cost_usd: f64,
    finish: &'static str,
    stream: bool,
}

/// Runs one call under a root span and checks its span against `e` and its body against a
/// plain client's.
async fn check(path: &str, body: Value, e: Expect) -> spanlens_core::Span {
    let (t, mem) = tracer();
    let ((status, text), root) = under_root(&t, post(&client(), path, &body)).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        mask_ids(&text),
        mask_ids(&post_plain(path, &body).await),
        "the caller gets the provider's body unchanged"
    );
    let spans = llm_spans(&mem);
    assert_eq!(spans.len(), 1, "one llm span: {spans:#?}");
    let s = spans.into_iter().next().unwrap();
    assert_eq!(s.kind, SpanKind::Llm);
    assert_eq!(
        s.parent_span_id,
        Some(root),
        "nested under the current span"
    );
    assert_eq!(s.status, Status::Ok, "{:?}", s.status_message);
    assert_eq!(s.provider.as_deref(), Some(e.provider));
    assert_eq!(s.request_model.as_deref(), Some(e.request_model));
    assert_eq!(s.response_model.as_deref(), Some(e.response_model));
    let u = s.usage.clone().expect("usage");
    assert_eq!(
        (
            u.input_tokens,
            u.output_tokens,
            u.cache_read_tokens,
            u.cache_write_tokens,
            u.reasoning_tokens
        ),
        e.tokens,
        "canonical tokens"
    );
    assert_eq!(u.total_tokens, e.tokens.0 + e.tokens.1);
    let cost = s.cost.as_ref().expect("cost").amounts.total.as_usd_f64();
    assert!(cost > 0.0);
    assert!(
        (cost - e.cost_usd).abs() < 1e-9,
        "cost {cost} != catalog price {}",
        e.cost_usd
    );
    assert_eq!(s.finish_reasons, [e.finish]);
    assert!(
        s.input_messages.is_empty() && s.output_messages.is_empty(),
        "not opted in"
    );
    if e.stream {
        let ttft = s.ttft_ns.expect("ttft of a stream");
        assert!(
            ttft >= FIRST_CHUNK_DELAY_NS,
            "ttft {ttft} ns below the mock's delay"
        );
        assert!(ttft <= s.duration_ns().unwrap());
    }
    s
}

#[tokio::test]
async fn openai_chat_completions() {
    let body = json!({"model": "gpt-4o-mini", "temperature": 0.2, "max_tokens": 300,
        "messages": [{"role": "user", "content": "hello"}]});
    let s = check(
        "/v1/chat/completions",
        body,
        Expect {
            provider: "openai",
            request_model: "gpt-4o-mini",
            response_model: "gpt-4o-mini-2024-07-18",
            // prompt_tokens include the cached ones, completion_tokens the reasoning ones.
            tokens: (2006, 300, 1920, 0, 128),
            cost_usd: usd(2006 - 1920, 0.15) + usd(1920, 0.075) + usd(300, 0.60),
            finish: "stop",
            stream: false,
        },
    )
    .await;
    assert_eq!(s.name, "chat gpt-4o-mini");
    assert_eq!(s.model_parameters["temperature"], json!(0.2));
    assert_eq!(s.model_parameters["max_tokens"], json!(300));
    assert_eq!(s.ttft_ns, None, "no TTFT for a whole answer");
}

#[tokio::test]
async fn openai_chat_completions_streamed() {
    let body = json!({"model": "gpt-4o-mini", "stream": true,
        "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "tell me a story"}]});
    check(
        "/v1/chat/completions",
        body,
        Expect {
            provider: "openai",
            request_model: "gpt-4o-mini",
            response_model: "gpt-4o-mini-2024-07-18",
            tokens: (1544, 212, 1280, 0, 64),
            cost_usd: usd(1544 - 1280, 0.15) + usd(1280, 0.075) + usd(212, 0.60),
            finish: "stop",
            stream: true,
        },
    )
    .await;
}

#[tokio::test]
async fn openai_responses() {
    let body = json!({"model": "gpt-4o-mini", "input": "hello", "max_output_tokens": 500});
    let s = check(
        "/v1/responses",
        body,
        Expect {
            provider: "openai",
            request_model: "gpt-4o-mini",
            response_model: "gpt-4o-mini-2024-07-18",
            tokens: (980, 120, 768, 0, 32),
            cost_usd: usd(980 - 768, 0.15) + usd(768, 0.075) + usd(120, 0.60),
            finish: "completed",
            stream: false,
        },
    )
    .await;
    assert_eq!(s.model_parameters["max_tokens"], json!(500));
}

#[tokio::test]
async fn openai_responses_streamed() {
    let body = json!({"model": "gpt-4o-mini", "input": "hello", "stream": true});
    check(
        "/v1/responses",
        body,
        Expect {
            provider: "openai",
            request_model: "gpt-4o-mini",
            response_model: "gpt-4o-mini-2024-07-18",
            tokens: (980, 120, 768, 0, 32),
            cost_usd: usd(980 - 768, 0.15) + usd(768, 0.075) + usd(120, 0.60),
            finish: "completed",
            stream: true,
        },
    )
    .await;
}

#[tokio::test]
async fn anthropic_messages() {
    let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 1024, "top_k": 5,
        "messages": [{"role": "user", "content": "hello"}]});
    let s = check(
        "/v1/messages",
        body,
        Expect {
            provider: "anthropic",
            request_model: "claude-sonnet-4-5",
            response_model: "claude-sonnet-4-5-20250929",
            // input_tokens EXCLUDE the cache: canonical input adds reads and both writes.
            tokens: (312 + 2048 + 1024 + 512, 187, 2048, 1536, 0),
            cost_usd: usd(312, 3.0)
                + usd(2048, 0.30)
                + usd(1024, 3.75)
                + usd(512, 6.0)
                + usd(187, 15.0),
            finish: "end_turn",
            stream: false,
        },
    )
    .await;
    assert_eq!(s.usage.unwrap().extra["cache_write_1h_tokens"], 512);
    assert_eq!(s.model_parameters["top_k"], json!(5));
}

#[tokio::test]
async fn anthropic_messages_streamed() {
    let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 1024, "stream": true,
        "messages": [{"role": "user", "content": "hello"}]});
    check(
        "/v1/messages",
        body,
        Expect {
            provider: "anthropic",
            request_model: "claude-sonnet-4-5",
            response_model: "claude-sonnet-4-5-20250929",
            tokens: (145 + 1536 + 256, 96, 1536, 256, 0),
            cost_usd: usd(145, 3.0) + usd(1536, 0.30) + usd(256, 3.75) + usd(96, 15.0),
            finish: "end_turn",
            stream: true,
        },
    )
    .await;
}

fn gemini_body(text: &str) -> Value {
    json!({"contents": [{"role": "user", "parts": [{"text": text}]}],
        "generationConfig": {"temperature": 0.5, "maxOutputTokens": 400,
                             "thinkingConfig": {"thinkingBudget": 256}}})
}

/// promptTokenCount INCLUDES the cached tokens; candidatesTokenCount EXCLUDES the thoughts.
fn gemini_expect(prompt: u64, cached: u64, candidates: u64, thoughts: u64, stream: bool) -> Expect {
    Expect {
        provider: "google",
        request_model: "gemini-2.5-flash",
        response_model: "gemini-2.5-flash",
        tokens: (prompt, candidates + thoughts, cached, 0, thoughts),
        cost_usd: usd(prompt - cached, 0.30) + usd(cached, 0.03) + usd(candidates + thoughts, 2.50),
        finish: "STOP",
        stream,
    }
}

#[tokio::test]
async fn gemini_generate_content() {
    let s = check(
        "/v1beta/models/gemini-2.5-flash:generateContent",
        gemini_body("hello"),
        gemini_expect(1830, 1024, 210, 96, false),
    )
    .await;
    assert_eq!(s.name, "generate_content gemini-2.5-flash");
    assert_eq!(s.model_parameters["temperature"], json!(0.5));
    assert_eq!(s.model_parameters["max_tokens"], json!(400));
    assert_eq!(s.model_parameters["thinking_budget"], json!(256));
}

#[tokio::test]
async fn gemini_stream_generate_content_sse() {
    check(
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
        gemini_body("tell me more"),
        gemini_expect(1240, 512, 150, 64, true),
    )
    .await;
}

#[tokio::test]
async fn gemini_stream_generate_content_json_array() {
    // Without `alt=sse` Gemini streams one JSON array: read whole, its last chunk has the totals.
    check(
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
        gemini_body("tell me more"),
        Expect {
            stream: false,
            ..gemini_expect(1240, 512, 150, 64, false)
        },
    )
    .await;
}

#[tokio::test]
async fn openai_embeddings() {
    let (t, mem) = tracer();
    let body = json!({"model": "text-embedding-3-small", "input": ["a", "b"]});
    let ((status, text), _) = under_root(&t, post(&client(), "/v1/embeddings", &body)).await;
    assert_eq!(status, 200);
    assert_eq!(text, post_plain("/v1/embeddings", &body).await);
    let s = llm_spans(&mem).remove(0);
    assert_eq!(s.name, "embeddings text-embedding-3-small");
    assert_eq!(s.attributes["gen_ai.operation.name"], json!("embeddings"));
    let u = s.usage.unwrap();
    assert_eq!((u.input_tokens, u.output_tokens), (24, 0));
    let cost = s.cost.unwrap().amounts.total.as_usd_f64();
    assert!((cost - usd(24, 0.02)).abs() < 1e-12, "{cost}");
}

#[tokio::test]
async fn other_requests_pass_through_unrecorded() {
    let (t, mem) = tracer();
    let (resp, _) = under_root(&t, async {
        client()
            .get(format!("{}/v1/models", mock_url()))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    })
    .await;
    assert!(resp.contains("gpt-4o-mini"));
    let spans = mem.spans();
    assert_eq!(spans.len(), 1, "only the root: {spans:#?}");
}

#[tokio::test]
async fn nothing_is_recorded_without_a_tracer_or_current_span() {
    // No global tracer is installed in this test binary and no span is current.
    let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]});
    let (status, text) = post(&client(), "/v1/chat/completions", &body).await;
    assert_eq!(status, 200);
    assert!(text.contains("Mock answer to: hello"));
}
