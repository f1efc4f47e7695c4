//! Shared state: one document per key, the last one saved, seen by every handle on the store
//! and after a restart; keys and documents out of bounds are refused.

use super::{fresh, open, StoreHarness};
use crate::{StoreError, MAX_STATE_KEY, MAX_STATE_VALUE};

/// A key holds the last document saved under it, read by a second handle on the same database
/// (another server) and by one opened after every handle was dropped (a restart).
pub async fn shared_state_is_one_document_per_key_seen_by_every_handle(h: &dyn StoreHarness) {
    let (db, store) = fresh(h).await;
    assert_eq!(store.load_state("alerts").await.unwrap(), None);
    store.save_state("alerts", r#"{"v":1}"#).await.unwrap();
    store.save_state("other", "x").await.unwrap();
    store.save_state("alerts", r#"{"v":2}"#).await.unwrap();
    assert_eq!(
        store.load_state("alerts").await.unwrap().as_deref(),
        Some(r#"{"v":2}"#)
    );
    // A second store on the same database (another server) reads what the first saved.
    let other = open(&*db).await;
    assert_eq!(
        other.load_state("other").await.unwrap().as_deref(),
        Some("x")
    );
    drop(other);
    // Reopened, it is still there.
    drop(store);
    let again = open(&*db).await;
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

/// Keys are listed by prefix in key order (a prefix's `%` and `_` are plain characters),
/// deleted keys are gone for every reader, and an empty document is refused.
pub async fn shared_state_lists_by_prefix_and_deletes(h: &dyn StoreHarness) {
    let (db, store) = fresh(h).await;
    for (k, v) in [
        ("apikey:b", "2"),
        ("apikey:a", "1"),
        ("apikeys", "x"),
        ("api%key:c", "3"),
        ("user:a", "u"),
        ("apikey:é", "4"),
    ] {
        store.save_state(k, v).await.unwrap();
    }
    let listed = store.list_state("apikey:").await.unwrap();
    let want: Vec<(String, String)> = [("apikey:a", "1"), ("apikey:b", "2"), ("apikey:é", "4")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(listed, want);
    assert_eq!(store.list_state("api%").await.unwrap().len(), 1);
    assert_eq!(store.list_state("api_").await.unwrap().len(), 0);
    // Everything (a backend may keep documents of its own too).
    assert!(store.list_state("").await.unwrap().len() >= 6);
    store.delete_state("apikey:a").await.unwrap();
    store.delete_state("never:saved").await.unwrap();
    let other = open(&*db).await;
    assert_eq!(other.load_state("apikey:a").await.unwrap(), None);
    assert_eq!(other.list_state("apikey:").await.unwrap().len(), 2);
    // Saved again after a deletion, it is back.
    other.save_state("apikey:a", "again").await.unwrap();
    assert_eq!(
        store.load_state("apikey:a").await.unwrap().as_deref(),
        Some("again")
    );
    match store.save_state("apikey:b", "").await {
        Err(StoreError::InvalidQuery(why)) => assert!(why.contains("empty"), "{why}"),
        other => panic!("an empty document: {other:?}"),
    }
    assert_eq!(
        store.load_state("apikey:b").await.unwrap().as_deref(),
        Some("2")
    );
}

/// A lease is held by one holder at a time across store handles: others are refused while it
/// runs, its holder renews it, it passes to another when it runs out or is given up, and of
/// many asking at once exactly one gets it.
pub async fn a_lease_has_one_holder_until_it_runs_out_or_is_given_up(h: &dyn StoreHarness) {
    use std::time::Duration;
    let (db, a) = fresh(h).await;
    let b = open(&*db).await;
    let long = Duration::from_secs(60);
    assert!(a.acquire_lease("alerts", "a", long).await.unwrap());
    assert!(!b.acquire_lease("alerts", "b", long).await.unwrap());
    assert!(
        a.acquire_lease("alerts", "a", long).await.unwrap(),
        "renewed"
    );
    // Another lease name is another lease.
    assert!(b.acquire_lease("retention", "b", long).await.unwrap());
    // Given up, it is free at once; giving up a lease one does not hold changes nothing.
    b.release_lease("alerts", "b").await.unwrap();
    assert!(!b.acquire_lease("alerts", "b", long).await.unwrap());
    a.release_lease("alerts", "a").await.unwrap();
    assert!(b.acquire_lease("alerts", "b", long).await.unwrap());
    // A short lease runs out and passes to the next asker; the old holder then is refused.
    let short = Duration::from_millis(300);
    assert!(a.acquire_lease("short", "a", short).await.unwrap());
    assert!(!b.acquire_lease("short", "b", short).await.unwrap());
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(b.acquire_lease("short", "b", long).await.unwrap());
    assert!(!a.acquire_lease("short", "a", long).await.unwrap());
    // Many asking at once, on several handles: exactly one gets it.
    let handles = [a.clone(), b.clone(), open(&*db).await, open(&*db).await];
    let asks = (0..16).map(|i| {
        let store = handles[i % handles.len()].clone();
        tokio::spawn(async move {
            store
                .acquire_lease("race", &format!("h{i}"), long)
                .await
                .unwrap()
        })
    });
    let mut won = 0;
    for ask in asks.collect::<Vec<_>>() {
        won += usize::from(ask.await.unwrap());
    }
    assert_eq!(won, 1);
}
