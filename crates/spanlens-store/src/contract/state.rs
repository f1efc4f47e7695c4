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
