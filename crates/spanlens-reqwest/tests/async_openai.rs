//! async-openai sending through the middleware (`--features async-openai,async-openai/chat-completion`).

mod common;

use async_openai::config::OpenAIConfig;
use async_openai::types::chat::{
    ChatCompletionRequestUserMessageArgs, ChatCompletionStreamOptions,
    CreateChatCompletionRequestArgs,
};
use common::*;
use futures_util::StreamExt;
use reqwest_middleware::ClientBuilder;
use spanlens_core::Status;
use spanlens_reqwest::SpanlensMiddleware;

fn openai() -> async_openai::Client<OpenAIConfig> {
    let http = ClientBuilder::new(reqwest::Client::new())
        .with(SpanlensMiddleware::new())
        .build();
    let config = OpenAIConfig::new()
        .with_api_base(format!("{}/v1", mock_url()))
        .with_api_key("test");
    spanlens_reqwest::openai::client(config, http)
}

fn request(text: &str, stream: bool) -> async_openai::types::chat::CreateChatCompletionRequest {
    let mut b = CreateChatCompletionRequestArgs::default();
    b.model("gpt-4o-mini")
        .messages([ChatCompletionRequestUserMessageArgs::default()
            .content(text)
            .build()
            .unwrap()
            .into()]);
    if stream {
        b.stream(true).stream_options(ChatCompletionStreamOptions {
            include_usage: Some(true),
            include_obfuscation: None,
        });
    }
    b.build().unwrap()
}

#[tokio::test]
async fn async_openai_calls_are_recorded() {
    let (t, mem) = tracer();
    let (answer, root) = under_root(&t, async {
        openai()
            .chat()
            .create(request("hello", false))
            .await
            .unwrap()
    })
    .await;
    assert_eq!(
        answer.choices[0].message.content.as_deref(),
        Some("Mock answer to: hello")
    );
    let s = llm_spans(&mem).remove(0);
    assert_eq!(s.parent_span_id, Some(root));
    assert_eq!(s.usage.unwrap().input_tokens, 2006);
    assert!(s.cost.is_some());
}

#[tokio::test]
async fn async_openai_streams_are_recorded() {
    let (t, mem) = tracer();
    let (text, _) = under_root(&t, async {
        let mut stream = openai()
            .chat()
            .create_stream(request("stream please", true))
            .await
            .unwrap();
        let mut text = String::new();
        while let Some(chunk) = stream.next().await {
            for c in chunk.unwrap().choices {
                text.push_str(c.delta.content.as_deref().unwrap_or(""));
            }
        }
        text
    })
    .await;
    assert_eq!(text, "Mock answer to: stream please");
    let s = llm_spans(&mem).remove(0);
    assert_eq!(s.usage.unwrap().input_tokens, 1544);
    assert!(s.ttft_ns.unwrap() >= FIRST_CHUNK_DELAY_NS);
}

#[tokio::test]
async fn async_openai_errors_are_recorded() {
    let (t, mem) = tracer();
    let (res, _) = under_root(&t, async {
        openai().chat().create(request("FAIL_500", false)).await
    })
    .await;
    assert!(res.is_err());
    let spans = llm_spans(&mem);
    assert!(!spans.is_empty());
    assert!(spans.iter().all(|s| s.status == Status::Error));
}
