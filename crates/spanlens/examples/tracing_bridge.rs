//! An application instrumented with `tracing` (spans, `#[instrument]`, events), exported by
//! Spanlens through the bridge layer: one `#[spanlens::traced]` function in the middle of it, and
//! an LLM call described only by `gen_ai.*` fields, which comes out as a priced `llm` span.
//!
//! ```sh
//! cargo run -p spanlens --features tracing --example tracing_bridge        # console tree
//! SPANLENS_ENDPOINT=http://127.0.0.1:4318 cargo run -p spanlens --features tracing --example tracing_bridge
//! ```

use std::time::Duration;
use tracing::field::Empty;
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The whole request: `spanlens.kind` makes this `tracing` span a pipeline.
#[tracing::instrument(name = "handle question", fields(spanlens.kind = "pipeline"))]
async fn handle(customer: &'static str, question: &'static str) -> String {
    tracing::info!(customer, "question received");
    let docs = search_docs(question);
    let invoice = lookup_invoice(customer).await;
    answer(question, &docs, invoice.as_deref()).await
}

/// A `#[traced]` function called inside `tracing` spans: it hangs under them, and the `tracing`
/// span it opens hangs under it.
#[spanlens::traced(kind = "retriever", capture_args)]
fn search_docs(query: &str) -> Vec<&'static str> {
    let candidates = ["refund policy", "billing FAQ", "shipping times"];
    let _rank = tracing::info_span!("rank", candidates = candidates.len()).entered();
    tracing::debug!(kept = 2, query_len = query.len(), "ranked");
    candidates[..2].to_vec()
}

/// A tool that fails: the `ERROR` event marks its span failed, the caller carries on.
async fn lookup_invoice(customer: &str) -> Option<String> {
    let span = tracing::info_span!("lookup_invoice", spanlens.kind = "tool", customer);
    async {
        tokio::time::sleep(Duration::from_millis(15)).await;
        tracing::warn!(attempt = 1, "invoice service slow");
        tokio::time::sleep(Duration::from_millis(10)).await;
        tracing::error!(error.type = "Timeout", "invoice service timed out");
        None
    }
    .instrument(span)
    .await
}

/// The LLM call, described with OTel GenAI fields; the usage is recorded when the answer comes.
async fn answer(question: &str, docs: &[&str], invoice: Option<&str>) -> String {
    let model = "gpt-4o-mini";
    let call = tracing::info_span!(
        "chat",
        otel.name = format!("chat {model}").as_str(),
        gen_ai.operation.name = "chat",
        gen_ai.provider.name = "openai",
        gen_ai.request.model = model,
        gen_ai.request.temperature = 0.2,
        gen_ai.response.model = Empty,
        gen_ai.usage.input_tokens = Empty,
        gen_ai.usage.output_tokens = Empty,
        gen_ai.usage.cache_read.input_tokens = Empty,
        gen_ai.response.finish_reasons = Empty,
    );
    let prompt = format!("{question} | docs: {docs:?} | invoice: {invoice:?}");
    async {
        // Stand-in for the provider: time to first token, then the rest of the stream.
        tokio::time::sleep(Duration::from_millis(40)).await;
        tracing::info!("first token");
        tokio::time::sleep(Duration::from_millis(25)).await;
        let span = tracing::Span::current();
        span.record("gen_ai.response.model", "gpt-4o-mini-2024-07-18");
        span.record("gen_ai.usage.input_tokens", 1_240 + prompt.len() as u64);
        span.record("gen_ai.usage.cache_read.input_tokens", 1_024u64);
        span.record("gen_ai.usage.output_tokens", 96u64);
        span.record("gen_ai.response.finish_reasons", "[\"stop\"]");
        format!("You were charged twice because of a retried payment; a refund is on its way. ({} docs)", docs.len())
    }
    .instrument(call)
    .await
}

#[tokio::main]
async fn main() {
    let mut config = spanlens::Config::from_env();
    config.console = true;
    if config.resource.attributes[0].1 == "unknown_service" {
        config.resource = config
            .resource
            .with("service.name", "tracing-bridge-example");
    }
    let guard = spanlens::init(config);
    tracing_subscriber::registry()
        .with(spanlens::tracing_layer())
        .init();

    let reply = handle("cust_4711", "why was I charged twice?").await;
    println!("{reply}");
    drop(guard); // flushes the console tree (and the OTLP exporter, when configured)
}
