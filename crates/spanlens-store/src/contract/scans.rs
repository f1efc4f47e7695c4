//! Span scans: spans handed over a trace at a time, and scans that stop cleanly when their
//! consumer goes away without holding on to what they read with.

use super::build::*;
use super::{fresh, StoreHarness};
use crate::prelude::*;
use crate::{ListQuery, SpanScan, StoreError};
use std::time::Duration;

/// `traces` traces of one model call each, in project `p`.
async fn many_model_traces(store: &dyn Store, traces: u64) {
    let spans: Vec<_> = (0..traces)
        .map(|t| llm(t, 1, None, "gpt-4o", "openai", t, 10, 100, 10, 1_000))
        .collect();
    store.write("p", spans).await.unwrap();
}

/// Every span of project `p`.
fn whole_project() -> SpanScan {
    SpanScan {
        project: "p".into(),
        ..Default::default()
    }
}

/// A model-span scan hands every span over, one trace per batch, then reports nothing
/// unreadable.
pub async fn a_scan_hands_over_every_span_in_batches(h: &dyn StoreHarness) {
    let (_db, store) = fresh(h).await;
    many_model_traces(&*store, 50).await;
    let mut batches = store.scan_model_spans(&whole_project()).await.unwrap();
    let (mut n, mut count) = (0, 0);
    while let Some(b) = batches.next().await {
        n += 1;
        count += b.len();
    }
    assert_eq!(batches.finish().await.unwrap().count, 0);
    assert_eq!((n, count), (50, 50), "one batch per trace");
}

/// Scans abandoned after one batch, or before any, end (reporting that their consumer went)
/// and give back what they held: reads afterwards are answered.
pub async fn a_scan_whose_consumer_stops_early_ends_and_frees_its_connection(h: &dyn StoreHarness) {
    let (_db, store) = fresh(h).await;
    many_model_traces(&*store, 50).await;
    let scan = whole_project();
    // More abandoned scans than a read pool has connections: each must give its connection
    // back, or the reads below would wait forever.
    for _ in 0..8 {
        let mut batches = store.scan_model_spans(&scan).await.unwrap();
        assert!(batches.next().await.is_some());
        // `finish` drops what is left and reports why the producer stopped.
        assert!(matches!(batches.finish().await, Err(StoreError::Closed)));
    }
    for _ in 0..8 {
        let batches = store.scan_model_spans(&scan).await.unwrap();
        drop(batches);
    }
    let page = tokio::time::timeout(
        Duration::from_secs(10),
        store.list_traces(&ListQuery::new("p")),
    )
    .await
    .expect("reads still get a connection")
    .unwrap();
    assert_eq!(page.items.len(), 50);
}
