//! Shared state (one document per key, seen by every handle on the store) and scans that hand
//! spans over in bounded batches and stop cleanly when their consumer goes away.

mod common;

use common::*;
use spanlens_store::prelude::*;
use spanlens_store::{SpanScan, SqliteStore, StoreError, MAX_STATE_KEY, MAX_STATE_VALUE};

#[tokio::test]
async fn shared_state_is_one_document_per_key_seen_by_every_handle() {
    let (dir, store) = temp_store();
    assert_eq!(store.load_state("alerts").await.unwrap(), None);
    store.save_state("alerts", r#"{"v":1}"#).await.unwrap();
    store.save_state("other", "x").await.unwrap();
    store.save_state("alerts", r#"{"v":2}"#).await.unwrap();
    assert_eq!(
        store.load_state("alerts").await.unwrap().as_deref(),
        Some(r#"{"v":2}"#)
    );
    // A second store on the same file (another server) reads what the first saved.
    let other = SqliteStore::open(dir.path().join("spanlens.db")).unwrap();
    assert_eq!(
        other.load_state("other").await.unwrap().as_deref(),
        Some("x")
    );
    drop(other);
    // Reopened, it is still there.
    drop(store);
    let again = SqliteStore::open(dir.path().join("spanlens.db")).unwrap();
    assert_eq!(
        again.load_state("alerts").await.unwrap().as_deref(),
        Some(r#"{"v":2}"#)
    );
    // Out-of-bounds keys and documents are refused with a reason, and nothing is stored.
    for (key, value) in [
        (String::new(), "x".to_string()),
        ("k".repeat(MAX_STATE_KEY + 1), "x".to_string()),
        ("big".to_string(), "x".repeat(MAX_STATE_VALUE + 1)),
    ] {
        match again.save_state(&key, &value).await {
            Err(StoreError::InvalidQuery(why)) => assert!(why.contains("bytes"), "{why}"),
            other => panic!("{} bytes of key: {other:?}", key.len()),
        }
    }
    assert_eq!(again.load_state("big").await.unwrap(), None);
}

/// Many traces of model calls, one trace per scan batch.
async fn many_model_traces(store: &SqliteStore, traces: u64) {
    let spans: Vec<_> = (0..traces)
        .map(|t| llm(t, 1, None, "gpt-4o", "openai", t, 10, 100, 10, 1_000))
        .collect();
    store.write("p", spans).await.unwrap();
}

#[tokio::test]
async fn a_scan_hands_over_every_span_in_batches() {
    let (_dir, store) = temp_store();
    many_model_traces(&store, 50).await;
    let scan = SpanScan {
        project: "p".into(),
        ..Default::default()
    };
    let mut batches = store.scan_model_spans(&scan).await.unwrap();
    let (mut n, mut count) = (0, 0);
    while let Some(b) = batches.next().await {
        n += 1;
        count += b.len();
    }
    assert_eq!(batches.finish().await.unwrap().count, 0);
    assert_eq!((n, count), (50, 50), "one batch per trace");
}

#[tokio::test]
async fn a_scan_whose_consumer_stops_early_ends_and_frees_its_connection() {
    let (_dir, store) = temp_store();
    many_model_traces(&store, 50).await;
    let scan = SpanScan {
        project: "p".into(),
        ..Default::default()
    };
    // More abandoned scans than the read pool has connections: each must give its connection
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
        std::time::Duration::from_secs(10),
        store.list_traces(&spanlens_store::ListQuery::new("p")),
    )
    .await
    .expect("reads still get a connection")
    .unwrap();
    assert_eq!(page.items.len(), 50);
}
