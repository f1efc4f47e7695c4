//! The SQLite writer: group commit, backpressure, shutdown, reopening and schema versions (the
//! behaviour every backend shares is in the contract suite, `tests/sqlite_contract.rs`).

mod common;

use common::*;
use spanlens_core::Span;
use spanlens_store::prelude::*;
use spanlens_store::{CommitTicket, SqliteOptions, SqliteStore, StoreError};
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread;

/// Holds SQLite's write lock from another connection until dropped, so the writer must wait.
struct WriteLock(rusqlite::Connection);

impl WriteLock {
    fn take(path: &Path) -> WriteLock {
        let c = rusqlite::Connection::open(path).unwrap();
        c.execute_batch("BEGIN IMMEDIATE").unwrap();
        WriteLock(c)
    }
    fn release(self) {
        self.0.execute_batch("COMMIT").unwrap();
    }
}

fn batch(thread: u64, b: u64, n: u64) -> Vec<Span> {
    (0..n)
        .map(|i| span(thread * 1000 + b, i, None, "op", i, 1))
        .collect()
}

#[tokio::test]
async fn many_concurrent_submitters_are_all_acknowledged() {
    let (_d, store) = temp_store();
    let store = Arc::new(store);
    let (threads, batches, per) = (8u64, 40u64, 25u64);
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let store = store.clone();
            thread::spawn(move || {
                let mut acked = 0;
                for b in 0..batches {
                    let r = store
                        .submit("p", batch(t, b, per))
                        .and_then(|ticket| ticket.wait())
                        .expect("write");
                    assert_eq!(r.inserted, per as usize);
                    acked += r.spans;
                }
                acked
            })
        })
        .collect();
    let acked: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(acked as u64, threads * batches * per);
    assert_eq!(
        store.count_spans("p").await.unwrap(),
        threads * batches * per
    );
    let stats = store.writer_stats();
    assert_eq!(stats.batches, threads * batches);
    assert_eq!(stats.spans, threads * batches * per);
    assert_eq!(stats.pending_spans, 0);
    assert!(stats.transactions <= stats.batches);
}

#[tokio::test]
async fn batches_waiting_for_the_lock_commit_in_one_transaction() {
    let (dir, store) = temp_store();
    let store = Arc::new(store);
    let lock = WriteLock::take(&dir.path().join("spanlens.db"));
    // Ten submitters queue while the writer cannot begin its transaction.
    let tickets: Vec<CommitTicket> = (0..10u64)
        .map(|b| {
            let store = store.clone();
            thread::spawn(move || store.submit("p", batch(1, b, 5)).unwrap())
        })
        .map(|h| h.join().unwrap())
        .collect();
    assert!(
        tickets.iter().all(|t| !t.is_ready()),
        "nothing commits while locked"
    );
    lock.release();
    for t in tickets {
        let r = t.wait().unwrap();
        assert_eq!(r.batches_in_transaction, 10, "one group commit");
    }
    let stats = store.writer_stats();
    assert_eq!(
        (stats.transactions, stats.batches, stats.spans),
        (1, 10, 50)
    );
    assert_eq!(store.count_spans("p").await.unwrap(), 50);
}

#[tokio::test]
async fn a_full_queue_answers_busy() {
    let (dir, store) = temp_store_with(SqliteOptions {
        max_pending_spans: 10,
        max_pending_batches: 1,
        ..Default::default()
    });
    let lock = WriteLock::take(&dir.path().join("spanlens.db"));
    let first = store.submit("p", batch(1, 0, 10)).unwrap();
    let e = store.submit("p", batch(1, 1, 1)).unwrap_err();
    assert!(
        matches!(
            e,
            StoreError::Busy {
                pending_spans: 10,
                limit_spans: 10
            }
        ),
        "{e}"
    );
    assert!(e.is_retryable());
    assert!(e.to_string().contains("busy"), "{e}");
    lock.release();
    assert_eq!(first.wait().unwrap().spans, 10);
    // Room again once committed.
    store.write("p", batch(1, 1, 1)).await.unwrap();
    assert_eq!(store.count_spans("p").await.unwrap(), 11);

    // The batch-count bound: the writer holds one batch, the queue one more, the third is refused.
    let (dir, store) = temp_store_with(SqliteOptions {
        max_pending_batches: 1,
        ..Default::default()
    });
    let lock = WriteLock::take(&dir.path().join("spanlens.db"));
    let mut tickets = Vec::new();
    let mut busy = 0;
    for b in 0..3 {
        match store.submit("p", batch(2, b, 1)) {
            Ok(t) => tickets.push(t),
            Err(StoreError::Busy { .. }) => busy += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(busy >= 1, "a third batch cannot fit");
    lock.release();
    for t in tickets {
        t.wait().unwrap();
    }
}

#[tokio::test]
async fn a_single_batch_larger_than_the_limit_is_still_written() {
    let (_d, store) = temp_store_with(SqliteOptions {
        max_pending_spans: 5,
        ..Default::default()
    });
    assert_eq!(store.write("p", batch(1, 0, 50)).await.unwrap().spans, 50);
}

#[tokio::test]
async fn dropping_the_store_commits_what_was_queued() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spanlens.db");
    let store = SqliteStore::open(&path).unwrap();
    let tickets: Vec<_> = (0..20)
        .map(|b| store.submit("p", batch(1, b, 10)).unwrap())
        .collect();
    drop(store);
    for t in tickets {
        assert_eq!(t.wait().unwrap().spans, 10);
    }
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.count_spans("p").await.unwrap(), 200);
}

struct Unpark(thread::Thread);
impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// A minimal executor: enough to show a ticket is an ordinary future.
fn block_on<F: Future>(f: F) -> F::Output {
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(v) = Pin::as_mut(&mut f).poll(&mut cx) {
            return v;
        }
        thread::park();
    }
}

#[test]
fn a_ticket_can_be_awaited() {
    let (_d, store) = temp_store();
    let ticket = store.submit("p", batch(1, 0, 3)).unwrap();
    let r = block_on(ticket).unwrap();
    assert_eq!(r.inserted, 3);
}

#[tokio::test]
async fn reopening_keeps_data_and_does_not_rerun_migrations() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dir/spanlens.db");
    let store = SqliteStore::open(&path).unwrap();
    store.write("p", batch(1, 0, 4)).await.unwrap();
    let (version, applied) = store.schema_info().unwrap();
    assert_eq!(version, SqliteStore::latest_schema_version());
    assert_eq!(applied.len() as i64, version);
    drop(store);

    // The version can be read without opening (and migrating) the store.
    assert_eq!(SqliteStore::schema_version_of(&path), Some(version));
    assert_eq!(
        SqliteStore::schema_version_of(dir.path().join("none.db")),
        None
    );
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.count_spans("p").await.unwrap(), 4);
    assert!(store.get_trace("p", tid(1000)).await.unwrap().is_some());
    let (version2, applied2) = store.schema_info().unwrap();
    assert_eq!(version2, version);
    assert_eq!(applied2, applied, "same migrations, same application times");
    store.write("p", batch(1, 0, 4)).await.unwrap();
    assert_eq!(
        store.count_spans("p").await.unwrap(),
        4,
        "still idempotent after reopen"
    );

    // The file is in WAL mode with synchronous=NORMAL on the writer.
    let c = rusqlite::Connection::open(&path).unwrap();
    let mode: String = c
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn a_database_from_a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spanlens.db");
    SqliteStore::open(&path).unwrap().close();
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.pragma_update(None, "user_version", 99).unwrap();
    }
    let e = SqliteStore::open(&path).unwrap_err();
    match &e {
        StoreError::SchemaTooNew {
            found, supported, ..
        } => {
            assert_eq!(*found, 99);
            assert_eq!(*supported, SqliteStore::latest_schema_version());
        }
        other => panic!("unexpected {other}"),
    }
    let msg = e.to_string();
    assert!(
        msg.contains("schema version 99") && msg.contains("upgrade"),
        "{msg}"
    );
}

#[test]
fn a_foreign_database_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.db");
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1);")
            .unwrap();
    }
    let e = SqliteStore::open(&path).unwrap_err();
    assert!(matches!(e, StoreError::NotSpanlens { .. }), "{e}");
    let c = rusqlite::Connection::open(&path).unwrap();
    let mode: String = c
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "delete", "not switched to WAL");
    let e = SqliteStore::open(dir.path()).unwrap_err();
    assert!(matches!(e, StoreError::Open { .. }), "{e}");
}
