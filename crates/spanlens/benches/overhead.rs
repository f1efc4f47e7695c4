//! SDK overhead, measured against peers in the same run (budgets in ARCHITECTURE.md):
//! one span with five attributes, started and ended, into a batch processor with a no-op exporter —
//! spanlens vs `opentelemetry_sdk` (BatchSpanProcessor) vs `tracing` + `tracing-subscriber` Registry —
//! and a disabled spanlens span. Budget: spanlens ≤ 0.5× opentelemetry_sdk; disabled ≤ 5 ns.

use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;

fn spanlens_batch(c: &mut Criterion) {
    let tracer = spanlens::Tracer::builder()
        .with_processor(spanlens::processor::BatchProcessor::new(
            spanlens::export::NoopExporter,
            spanlens::processor::BatchConfig::default(),
        ))
        .build();
    c.bench_function("spanlens span + 5 attrs → batch", |b| {
        b.iter(|| {
            let s = tracer
                .span("llm call")
                .kind(spanlens::SpanKind::Llm)
                .attr("gen_ai.request.model", "gpt-4o-mini")
                .attr("gen_ai.usage.input_tokens", black_box(1200))
                .attr("gen_ai.usage.output_tokens", black_box(300))
                .attr("retry", black_box(false))
                .attr("temperature", black_box(0.2))
                .start();
            drop(black_box(s));
        })
    });
    tracer.shutdown();
}

#[derive(Debug)]
struct OtelNoop;

impl opentelemetry_sdk::trace::SpanExporter for OtelNoop {
    async fn export(
        &self,
        _batch: Vec<opentelemetry_sdk::trace::SpanData>,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        Ok(())
    }
}

fn otel_batch(c: &mut Criterion) {
    use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
    use opentelemetry::KeyValue;
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_span_processor(
            opentelemetry_sdk::trace::BatchSpanProcessor::builder(OtelNoop).build(),
        )
        .build();
    let tracer = provider.tracer("bench");
    c.bench_function("opentelemetry_sdk span + 5 attrs → batch", |b| {
        b.iter(|| {
            let mut s = tracer
                .span_builder("llm call")
                .with_attributes([
                    KeyValue::new("gen_ai.request.model", "gpt-4o-mini"),
                    KeyValue::new("gen_ai.usage.input_tokens", black_box(1200i64)),
                    KeyValue::new("gen_ai.usage.output_tokens", black_box(300i64)),
                    KeyValue::new("retry", black_box(false)),
                    KeyValue::new("temperature", black_box(0.2)),
                ])
                .start(&tracer);
            s.end();
        })
    });
    let _ = provider.shutdown();
}

fn tracing_registry(c: &mut Criterion) {
    let subscriber = tracing_subscriber::registry();
    tracing::subscriber::with_default(subscriber, || {
        c.bench_function("tracing span + 5 fields → Registry", |b| {
            b.iter(|| {
                let s = tracing::info_span!(
                    "llm call",
                    model = "gpt-4o-mini",
                    input_tokens = black_box(1200),
                    output_tokens = black_box(300),
                    retry = black_box(false),
                    temperature = black_box(0.2)
                );
                let _e = s.enter();
            })
        });
    });
}

fn spanlens_disabled(c: &mut Criterion) {
    spanlens::set_disabled(true);
    c.bench_function("spanlens disabled span + 5 attrs", |b| {
        b.iter(|| {
            let s = spanlens::span("llm call")
                .kind(spanlens::SpanKind::Llm)
                .attr("gen_ai.request.model", "gpt-4o-mini")
                .attr("gen_ai.usage.input_tokens", black_box(1200))
                .attr("gen_ai.usage.output_tokens", black_box(300))
                .attr("retry", black_box(false))
                .attr("temperature", black_box(0.2))
                .start();
            drop(black_box(s));
        })
    });
    spanlens::set_disabled(false);
}

criterion_group!(
    benches,
    spanlens_batch,
    otel_batch,
    tracing_registry,
    spanlens_disabled
);
criterion_main!(benches);
