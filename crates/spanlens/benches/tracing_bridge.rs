//! The `tracing` bridge against its peer, in one run: a `tracing` span with five fields, created,
//! entered, exited and closed, through
//! - `registry().with(spanlens::tracing_layer())` into a batch processor with a no-op exporter
//!   (what an application would run);
//! - `registry().with(tracing_opentelemetry::layer())` on an `opentelemetry_sdk` tracer, once
//!   with a `BatchSpanProcessor` and a no-op exporter (the same shape), once with a processor
//!   that drops every span (the least the OTel path can do);
//! - the bare `Registry`, as the floor both layers add to.
//!
//! Each subscriber is installed with `with_default` around its own benchmark, so all run in one
//! process and one criterion run:
//! `cargo bench -p spanlens --features tracing --bench tracing_bridge`.

use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use tracing_subscriber::layer::SubscriberExt;

/// One span, always from this callsite, so every subscriber sees the same metadata.
#[inline(never)]
fn one_span() {
    let span = tracing::info_span!(
        "llm call",
        gen_ai.request.model = "gpt-4o-mini",
        gen_ai.usage.input_tokens = black_box(1200),
        gen_ai.usage.output_tokens = black_box(300),
        retry = black_box(false),
        temperature = black_box(0.2)
    );
    let _in = span.enter();
}

fn spanlens_layer(c: &mut Criterion) {
    let tracer = spanlens::Tracer::builder()
        .with_processor(spanlens::processor::BatchProcessor::new(
            spanlens::export::NoopExporter,
            spanlens::processor::BatchConfig::default(),
        ))
        .build();
    let subscriber =
        tracing_subscriber::registry().with(spanlens::tracing_layer().with_tracer(tracer));
    tracing::subscriber::with_default(subscriber, || {
        c.bench_function(
            "tracing span + 5 fields → spanlens layer → batch",
            |b| b.iter(one_span),
        );
    });
    tracer.shutdown();
}

#[derive(Debug)]
struct OtelNoopExporter;

impl opentelemetry_sdk::trace::SpanExporter for OtelNoopExporter {
    async fn export(
        &self,
        _batch: Vec<opentelemetry_sdk::trace::SpanData>,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        Ok(())
    }
}

/// Drops every span: the cheapest processor an `opentelemetry_sdk` tracer can have.
#[derive(Debug)]
struct OtelDrop;

impl opentelemetry_sdk::trace::SpanProcessor for OtelDrop {
    fn on_start(&self, _span: &mut opentelemetry_sdk::trace::Span, _cx: &opentelemetry::Context) {}
    fn on_end(&self, span: opentelemetry_sdk::trace::SpanData) {
        drop(black_box(span));
    }
    fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
        Ok(())
    }
    fn shutdown_with_timeout(
        &self,
        _timeout: std::time::Duration,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        Ok(())
    }
}

fn otel_layer(
    c: &mut Criterion,
    name: &str,
    provider: opentelemetry_sdk::trace::SdkTracerProvider,
) {
    use opentelemetry::trace::TracerProvider as _;
    let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("bench"));
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        c.bench_function(name, |b| b.iter(one_span));
    });
    let _ = provider.shutdown();
}

fn otel_batch(c: &mut Criterion) {
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_span_processor(
            opentelemetry_sdk::trace::BatchSpanProcessor::builder(OtelNoopExporter).build(),
        )
        .build();
    otel_layer(
        c,
        "tracing span + 5 fields → tracing-opentelemetry → BatchSpanProcessor",
        provider,
    );
}

fn otel_drop(c: &mut Criterion) {
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_span_processor(OtelDrop)
        .build();
    otel_layer(
        c,
        "tracing span + 5 fields → tracing-opentelemetry → dropping processor",
        provider,
    );
}

fn registry_only(c: &mut Criterion) {
    tracing::subscriber::with_default(tracing_subscriber::registry(), || {
        c.bench_function("tracing span + 5 fields → Registry only", |b| {
            b.iter(one_span)
        });
    });
}

criterion_group!(
    benches,
    spanlens_layer,
    otel_batch,
    otel_drop,
    registry_only
);
criterion_main!(benches);
