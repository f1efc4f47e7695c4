//! SDK overhead, measured against peers in the same run (budgets in ARCHITECTURE.md):
//! one span with five attributes, started and ended, into a batch processor with a no-op exporter —
//! spanlens vs `opentelemetry_sdk` (BatchSpanProcessor) vs `tracing` + `tracing-subscriber` Registry —
//! and a disabled spanlens span. Budget: spanlens ≤ 100 ns and ≤ 0.4× opentelemetry_sdk, below
//! `tracing` + Registry; disabled ≤ 5 ns (figures per run in the crate README).
//!
//! A batch processor that cannot keep up drops spans, which makes its figure cheaper than the
//! work it claims: each batch benchmark counts the spans it started (a plain counter, the same
//! in both) and prints how many of them reached the exporter beside its time.

mod common;

use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Prints how many of the spans a benchmark started were exported, and how many were lost.
fn report_drops(who: &str, started: u64, exported: u64) {
    let lost = started.saturating_sub(exported);
    println!(
        "{who}: {started} spans started, {exported} exported, {lost} dropped ({:.2}%)",
        100.0 * lost as f64 / started.max(1) as f64
    );
}

fn spanlens_batch(c: &mut Criterion) {
    let tracer = spanlens::Tracer::builder()
        .with_processor(spanlens::processor::BatchProcessor::new(
            spanlens::export::NoopExporter,
            spanlens::processor::BatchConfig::default(),
        ))
        .build();
    let mut started = 0u64;
    c.bench_function("spanlens span + 5 attrs → batch", |b| {
        b.iter(|| {
            started += 1;
            drop(black_box(common::five_attribute_span(&tracer)));
        })
    });
    tracer.shutdown();
    let stats = tracer.stats().expect("a batch processor");
    assert_eq!(stats.exported + stats.dropped, started, "{stats:?}");
    report_drops("spanlens", started, stats.exported);
}

/// Discards batches, counting their spans.
#[derive(Debug, Default)]
struct OtelNoop(Arc<AtomicU64>);

impl opentelemetry_sdk::trace::SpanExporter for OtelNoop {
    async fn export(
        &self,
        batch: Vec<opentelemetry_sdk::trace::SpanData>,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.fetch_add(batch.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

fn otel_batch(c: &mut Criterion) {
    use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
    use opentelemetry::KeyValue;
    let exported = Arc::new(AtomicU64::new(0));
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_span_processor(
            opentelemetry_sdk::trace::BatchSpanProcessor::builder(OtelNoop(exported.clone()))
                .build(),
        )
        .build();
    let tracer = provider.tracer("bench");
    let mut started = 0u64;
    c.bench_function("opentelemetry_sdk span + 5 attrs → batch", |b| {
        b.iter(|| {
            started += 1;
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
    report_drops(
        "opentelemetry_sdk",
        started,
        exported.load(Ordering::Relaxed),
    );
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
            let s = common::five_attributes(spanlens::span("llm call")).start();
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
