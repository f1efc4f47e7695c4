//! Media blobs: stored once per project and content hash, read back with their type, absent
//! from every other project, kept while a trace refers to them and freed with the last one
//! (deleted by id, session, user or retention, or its payloads cleared).

use super::build::*;
use super::{fresh, open, StoreHarness};
use crate::prelude::*;
use crate::{Expiry, MediaUsage, StoreError};
use spanlens_core::media::{content_hash, media_ref, MediaBlob, MAX_MEDIA_BYTES};
use spanlens_core::{Payload, Span, Timestamp, TraceId};

/// A PNG-shaped blob of `n` bytes (the signature, then filler drawn from `seed`), hashed.
fn png(n: usize, seed: u8) -> MediaBlob {
    let mut bytes = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    bytes.extend((0..n - bytes.len()).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)));
    let hash = content_hash(&bytes);
    MediaBlob {
        hash,
        mime: "image/png".into(),
        bytes,
    }
}

/// A span of trace `t` whose input refers to `blob`, in `session` for `user`.
fn referring(t: u64, s: u64, blob: &MediaBlob, session: &str, user: &str) -> Span {
    let mut sp = span(t, s, None, "look", 10 * t, 5);
    sp.input = Some(Payload::from_text(&media_ref(&blob.hash), None));
    sp.session_id = Some(session.into());
    sp.user_id = Some(user.into());
    sp
}

/// Stores `blob` for trace `t` and the span referring to it, as ingest does (blob first).
async fn ingest(store: &dyn Store, project: &str, t: u64, blob: &MediaBlob, who: &str) -> u64 {
    let stored = store
        .put_media(
            project,
            std::slice::from_ref(blob),
            &[(tid(t), blob.hash.clone())],
        )
        .await
        .unwrap();
    store
        .write(project, vec![referring(t, 1, blob, who, who)])
        .await
        .unwrap();
    stored
}

/// Put twice stores once; get returns bytes and type; another project sees nothing; usage
/// counts distinct blobs; bad hashes and oversized or mistyped blobs are refused.
pub async fn media_are_stored_once_per_project_and_hash(h: &dyn StoreHarness) {
    let (db, store) = fresh(h).await;
    let a = png(4096, 1);
    let b = png(8192, 2);
    assert_eq!(store.media_usage("p").await.unwrap(), MediaUsage::default());
    let first = store
        .put_media("p", &[a.clone(), b.clone()], &[(tid(1), a.hash.clone())])
        .await
        .unwrap();
    assert_eq!(first, 4096 + 8192);
    let again = store
        .put_media("p", std::slice::from_ref(&a), &[(tid(2), a.hash.clone())])
        .await
        .unwrap();
    assert_eq!(again, 0, "a hash already stored is not written again");
    let got = store
        .get_media("p", &a.hash)
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(got.mime, "image/png");
    assert_eq!(got.bytes, a.bytes);
    assert_eq!(
        store.media_usage("p").await.unwrap(),
        MediaUsage {
            blobs: 2,
            bytes: 4096 + 8192
        }
    );
    // Another project has none of it, and stores its own copy.
    assert_eq!(store.get_media("q", &a.hash).await.unwrap(), None);
    assert_eq!(store.media_usage("q").await.unwrap(), MediaUsage::default());
    assert_eq!(
        store
            .put_media("q", std::slice::from_ref(&a), &[])
            .await
            .unwrap(),
        4096
    );
    // A second handle (another server) reads it.
    let other = open(&*db).await;
    assert_eq!(
        other.get_media("p", &b.hash).await.unwrap().unwrap().bytes,
        b.bytes
    );
    // Refused with a reason, nothing written.
    for bad in ["", "ABC", &a.hash.to_uppercase(), &format!("{}0", a.hash)] {
        assert!(
            matches!(
                store.get_media("p", bad).await,
                Err(StoreError::InvalidQuery(_))
            ),
            "{bad:?}"
        );
    }
    let mut big = png(MAX_MEDIA_BYTES + 1, 3);
    big.hash = "0".repeat(64);
    let mut liar = png(2048, 4);
    liar.mime = "audio/wav".into();
    let mut badhash = png(2048, 5);
    badhash.hash = "xyz".into();
    for blob in [big, liar, badhash] {
        match store.put_media("p", &[blob], &[]).await {
            Err(StoreError::InvalidQuery(why)) => assert!(!why.is_empty()),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(store.media_usage("p").await.unwrap().blobs, 2);
}

/// A blob goes with the last trace referring to it, whichever way the traces go.
pub async fn media_are_freed_with_the_last_trace_referring_to_them(h: &dyn StoreHarness) {
    let (_db, store) = fresh(h).await;
    let shared = png(4096, 7);
    let alone = png(4096, 8);
    // Traces 1 and 2 refer to `shared`, trace 3 to `alone`; project q holds `shared` too.
    ingest(&*store, "p", 1, &shared, "ann").await;
    ingest(&*store, "p", 2, &shared, "bob").await;
    ingest(&*store, "p", 3, &alone, "cat").await;
    ingest(&*store, "q", 1, &shared, "ann").await;
    assert_eq!(store.media_usage("p").await.unwrap().blobs, 2);

    // Deleting the only trace referring to `alone` frees it.
    store.delete_traces("p", &[tid(3)]).await.unwrap();
    assert_eq!(store.get_media("p", &alone.hash).await.unwrap(), None);
    // Deleting one of two keeps `shared`.
    store.delete_traces("p", &[tid(1)]).await.unwrap();
    assert!(store.get_media("p", &shared.hash).await.unwrap().is_some());
    assert_eq!(
        store.media_usage("p").await.unwrap(),
        MediaUsage {
            blobs: 1,
            bytes: 4096
        }
    );
    // The last one, erased with its user, frees it; project q keeps its own.
    store.delete_user("p", "bob").await.unwrap();
    assert_eq!(store.get_media("p", &shared.hash).await.unwrap(), None);
    assert_eq!(store.media_usage("p").await.unwrap(), MediaUsage::default());
    assert!(store.get_media("q", &shared.hash).await.unwrap().is_some());

    // A session erased, then retention: each frees what only it referred to.
    ingest(&*store, "p", 4, &alone, "dan").await;
    store.delete_session("p", "dan").await.unwrap();
    assert_eq!(store.get_media("p", &alone.hash).await.unwrap(), None);
    store
        .expire(
            "q",
            Expiry::Everything {
                before: Timestamp(T0 + 3_600_000 * MS),
            },
            100,
        )
        .await
        .unwrap();
    assert_eq!(store.get_media("q", &shared.hash).await.unwrap(), None);
    assert_eq!(store.media_usage("q").await.unwrap(), MediaUsage::default());

    // Clearing a trace's payloads removes its references too.
    ingest(&*store, "p", 5, &shared, "eve").await;
    let erased = store
        .expire(
            "p",
            Expiry::Payloads {
                before: Timestamp(T0 + 3_600_000 * MS),
            },
            100,
        )
        .await
        .unwrap();
    assert_eq!(erased.payloads, 1);
    assert_eq!(store.get_media("p", &shared.hash).await.unwrap(), None);
    // Deleting a trace that never referred to anything frees nothing else.
    ingest(&*store, "p", 6, &shared, "fay").await;
    store.delete_traces("p", &[TraceId([9; 16])]).await.unwrap();
    assert!(store.get_media("p", &shared.hash).await.unwrap().is_some());
}
