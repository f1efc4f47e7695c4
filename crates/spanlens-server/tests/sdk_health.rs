//! The SDK's export counters end to end: the Rust SDK's batch processor drops spans on a full
//! queue, its OTLP exporter sends the counters with its batches, and the server shows what the
//! service lost at `/api/v1/sdk/health`, without storing the counters on any span.

mod common;

use common::client::Server;
use spanlens::export::otlp::{OtlpConfig, OtlpHttpExporter};
use spanlens::processor::{BatchConfig, BatchProcessor};
use spanlens::{Resource, Tracer};
use std::time::Duration;

#[test]
fn a_service_that_drops_spans_shows_it() {
    let s = Server::start();
    let exporter = OtlpHttpExporter::new(OtlpConfig {
        endpoint: format!("http://{}/v1/traces", s.bound.http),
        resource: Resource::new("checkout"),
        ..Default::default()
    });
    let config = BatchConfig {
        max_queue: 5,
        batch_size: 100,
        flush_interval: Duration::from_secs(60),
    };
    let t = Tracer::builder()
        .with_processor(BatchProcessor::new(exporter, config))
        .build();
    let (_, none) = s.get("/api/v1/sdk/health");
    assert_eq!(none["services"], serde_json::json!([]));

    // Five fit; the sixth is refused (and wakes the export thread, so some later ones may fit
    // again): at least one is dropped, and the server must show exactly what the SDK counted.
    for _ in 0..12 {
        drop(t.span("step").start());
    }
    t.force_flush();
    let mine = t.stats().unwrap();
    assert!(mine.dropped >= 1, "{mine:?}");
    assert_eq!(mine.exported + mine.dropped, 12, "{mine:?}");
    let (status, health) = s.get("/api/v1/sdk/health");
    assert_eq!(status, 200, "{health}");
    let svc = &health["services"][0];
    assert_eq!(svc["service"], "checkout");
    assert_eq!(svc["instances"], 1);
    assert_eq!(svc["dropped"], mine.dropped, "{health}");
    assert!(
        svc["queued"].as_u64().unwrap() <= 5,
        "counted as the batch left"
    );
    assert!(svc["last_report_ns"].as_u64().unwrap() > 0);

    for _ in 0..8 {
        drop(t.span("step").start());
    }
    t.force_flush();
    let mine = t.stats().unwrap();
    assert!(mine.dropped >= 2, "one more refusal at least: {mine:?}");
    assert_eq!(mine.exported + mine.dropped, 20, "{mine:?}");
    let (_, health) = s.get("/api/v1/sdk/health");
    let svc = &health["services"][0];
    assert_eq!(svc["dropped"], mine.dropped, "{health}");
    // Exports are counted as each batch leaves, so the report lags by the last one at most.
    let shown = svc["exported"].as_u64().unwrap();
    assert!(
        shown <= mine.exported && shown + 5 >= mine.exported,
        "{health} {mine:?}"
    );

    // The stored spans do not carry the counters.
    let (_, list) = s.get("/api/v1/traces?limit=1");
    let trace = list["items"][0]["trace_id"].as_str().unwrap().to_string();
    let (status, detail) = s.get(&format!("/api/v1/traces/{trace}"));
    assert_eq!(status, 200);
    assert!(detail.to_string().contains("checkout"));
    assert!(!detail.to_string().contains("spanlens.sdk."), "{detail}");
    t.shutdown();
}
