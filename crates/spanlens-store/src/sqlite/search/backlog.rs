//! Full-text entries of committed spans that wait to go into the index together.
//!
//! FTS5 writes what a transaction inserted as a new segment when it commits, and merges
//! segments as they pile up. Under load the writer commits a few thousand spans at a time, so
//! indexing each commit's spans made many small segments, and writing and merging them was
//! most of what the index cost ingest. The writer keeps the entries here instead and inserts
//! them together, inside one of its transactions, when:
//! - [`FLUSH_SPANS`] entries or [`FLUSH_BYTES`] of text wait, or the oldest has waited
//!   [`FLUSH_AFTER`];
//! - nothing else waits for the writer (so a write is searchable once acknowledged whenever
//!   the store is not under load);
//! - something else is about to change the index (a replaced span, an erasure), so the index
//!   is only ever changed in the order the spans were written.
//!
//! The entries live in the writer's memory. While any wait, the one row of the
//! `search_backlog` table names the first span row they belong to (`from_span`); a process that
//! stops without flushing leaves it, and the next [`recover`] indexes the spans from there
//! again, from their bodies. Other processes may write the file meanwhile (`spanlens reprice`
//! beside a server): a store recovers only when no other writer is alive (`sqlite::writers`),
//! since a live one still holds its entries and will insert them itself.

use rusqlite::Connection;
use std::time::{Duration, Instant};

/// Entries that make the writer insert them all.
pub const FLUSH_SPANS: usize = 16_384;

/// Bytes of waiting text that make the writer insert them all.
pub const FLUSH_BYTES: usize = 32 << 20;

/// The longest an entry waits while the writer is busy (how far search may lag ingest).
pub const FLUSH_AFTER: Duration = Duration::from_secs(1);

/// One span's words, waiting for the index.
#[derive(Debug)]
struct Entry {
    key: i64,
    text: String,
    /// The span's row id (`spans.id`).
    span_row: i64,
}

/// The writer's waiting entries, kept in step with its transactions: entries added in a
/// transaction that rolls back go with it, and entries inserted by one go back to waiting.
#[derive(Debug, Default)]
pub struct Backlog {
    entries: Vec<Entry>,
    bytes: usize,
    /// When the oldest waiting entry was added.
    since: Option<Instant>,
    /// `entries[..inserted]` were inserted into the index by the open transaction.
    inserted: usize,
    /// How many entries waited when the open transaction began.
    at_begin: usize,
    /// Whether the committed `search_backlog` row names waiting entries.
    marked: bool,
    /// What the open transaction did to that row: `Some(true)` wrote it, `Some(false)`
    /// deleted it.
    marking: Option<bool>,
}

impl Backlog {
    /// A transaction of the writer began.
    pub fn begin(&mut self) {
        self.at_begin = self.entries.len();
        self.inserted = 0;
        self.marking = None;
    }

    /// Adds the words of a span just inserted in the open transaction (empty text: nothing).
    pub fn push(&mut self, key: i64, text: &str, span_row: i64) {
        if text.is_empty() {
            return;
        }
        if self.entries.is_empty() {
            self.since = Some(Instant::now());
        }
        self.bytes += text.len();
        self.entries.push(Entry {
            key,
            text: text.to_string(),
            span_row,
        });
    }

    /// Whether entries wait that the open transaction has not inserted.
    pub fn is_waiting(&self) -> bool {
        self.inserted < self.entries.len()
    }

    /// Whether enough waits, or long enough, to insert it all now.
    pub fn is_due(&self) -> bool {
        self.entries.len() - self.inserted >= FLUSH_SPANS
            || self.bytes >= FLUSH_BYTES
            || self.since.is_some_and(|t| t.elapsed() >= FLUSH_AFTER)
    }

    /// How long until [`is_due`](Backlog::is_due) holds by age alone (`None`: nothing waits).
    pub fn due_in(&self) -> Option<Duration> {
        let since = self.since.filter(|_| self.is_waiting())?;
        Some(FLUSH_AFTER.saturating_sub(since.elapsed()))
    }

    /// After a failed attempt to insert them: the entries wait [`FLUSH_AFTER`] again before the
    /// next attempt of their own (a commit of spans may still take them sooner).
    pub fn postpone(&mut self) {
        if !self.entries.is_empty() {
            self.since = Some(Instant::now());
        }
    }

    /// Inserts every waiting entry into the index, inside the open transaction.
    pub fn flush(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        if !self.is_waiting() {
            return Ok(());
        }
        let mut st = conn.prepare_cached(super::INSERT)?;
        for e in &self.entries[self.inserted..] {
            st.execute(rusqlite::params![e.key, e.text])?;
        }
        self.inserted = self.entries.len();
        if self.marking.unwrap_or(self.marked) {
            conn.prepare_cached("DELETE FROM search_backlog")?
                .execute([])?;
            self.marking = Some(false);
        }
        Ok(())
    }

    /// Before the open transaction commits: inserts everything when `idle` (nothing else waits
    /// for the writer) or when it is due; otherwise makes sure the `search_backlog` row names
    /// the entries left waiting.
    pub fn before_commit(&mut self, conn: &Connection, idle: bool) -> rusqlite::Result<()> {
        if idle || self.is_due() {
            return self.flush(conn);
        }
        if self.is_waiting() && !self.marking.unwrap_or(self.marked) {
            let from = self.entries[self.inserted..]
                .iter()
                .map(|e| e.span_row)
                .min()
                .unwrap_or(0);
            conn.prepare_cached("DELETE FROM search_backlog")?
                .execute([])?;
            conn.prepare_cached("INSERT INTO search_backlog (from_span) VALUES (?1)")?
                .execute([from])?;
            self.marking = Some(true);
        }
        Ok(())
    }

    /// The open transaction committed: what it inserted stops waiting.
    pub fn committed(&mut self) {
        if self.inserted > 0 {
            self.entries.drain(..self.inserted);
            self.bytes = self.entries.iter().map(|e| e.text.len()).sum();
            // The rest were added after the oldest, in this transaction: they start now.
            self.since = (!self.entries.is_empty()).then(Instant::now);
        }
        self.marked = self.marking.take().unwrap_or(self.marked);
        self.inserted = 0;
        self.at_begin = self.entries.len();
    }

    /// The open transaction rolled back: its spans are gone, and what it inserted waits again.
    pub fn rolled_back(&mut self) {
        self.entries.truncate(self.at_begin);
        self.bytes = self.entries.iter().map(|e| e.text.len()).sum();
        if self.entries.is_empty() {
            self.since = None;
        }
        self.inserted = 0;
        self.marking = None;
    }
}

/// At open: indexes again, from their bodies, the spans a process that stopped without
/// flushing its backlog left out of the index (every span from `search_backlog.from_span`);
/// returns how many.
pub fn recover(conn: &Connection) -> rusqlite::Result<u64> {
    // `min` answers one row, NULL when no words were left waiting.
    let from: Option<i64> =
        conn.query_row("SELECT min(from_span) FROM search_backlog", [], |r| {
            r.get(0)
        })?;
    let Some(from) = from else {
        return Ok(0);
    };
    // Immediate: the write lock is waited for up front (a read turned write could be refused
    // at once by a writer that committed meanwhile).
    let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)?;
    let rows: Vec<(i64, i64, Vec<u8>, String)> = conn
        .prepare(
            "SELECT trace_ref, text_key, span_id, name FROM spans \
             WHERE id >= ?1 AND text_key IS NOT NULL ORDER BY trace_ref",
        )?
        .query_map([from], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut bodies = super::TraceBodies::new(conn)?;
    let mut loaded = None;
    for (trace_ref, key, span_id, name) in &rows {
        if loaded != Some(*trace_ref) {
            bodies.load(*trace_ref)?;
            loaded = Some(*trace_ref);
        }
        super::put(conn, *key, &bodies.text(span_id, name))?;
    }
    conn.execute_batch("DELETE FROM search_backlog")?;
    tx.commit()?;
    Ok(rows.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prelude::*;
    use crate::types::ListQuery;
    use crate::{SqliteOptions, SqliteStore};
    use rusqlite::OptionalExtension;
    use spanlens_core::{Payload, Span, SpanId, Timestamp, TraceId};
    use std::collections::BTreeSet;

    fn hits(conn: &Connection, word: &str) -> Vec<i64> {
        conn.prepare("SELECT rowid FROM span_text WHERE span_text MATCH ?1 ORDER BY rowid")
            .unwrap()
            .query_map([word], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    fn mark(conn: &Connection) -> Option<i64> {
        conn.query_row("SELECT from_span FROM search_backlog", [], |r| r.get(0))
            .optional()
            .unwrap()
    }

    /// Entries wait across commits with the row naming them, go back to waiting when the
    /// transaction that inserted them rolls back, vanish with a transaction that added them
    /// and rolled back, and all go in when the writer is idle.
    #[test]
    fn entries_follow_the_writers_transactions() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(super::super::CREATE).unwrap();
        conn.execute_batch("CREATE TABLE search_backlog (from_span INTEGER NOT NULL)")
            .unwrap();
        let mut b = Backlog::default();
        assert_eq!(b.due_in(), None);

        conn.execute_batch("BEGIN").unwrap();
        b.begin();
        b.push(1, "alpha", 10);
        b.push(2, "beta", 11);
        b.push(9, "", 12);
        b.before_commit(&conn, false).unwrap();
        conn.execute_batch("COMMIT").unwrap();
        b.committed();
        assert!(hits(&conn, "alpha").is_empty(), "busy: the words wait");
        assert_eq!(mark(&conn), Some(10));
        assert!(b.due_in().is_some_and(|d| d <= FLUSH_AFTER));

        conn.execute_batch("BEGIN").unwrap();
        b.begin();
        b.push(3, "gamma", 13);
        b.flush(&conn).unwrap();
        assert_eq!(hits(&conn, "alpha"), [1]);
        conn.execute_batch("ROLLBACK").unwrap();
        b.rolled_back();
        assert!(hits(&conn, "alpha").is_empty());
        assert_eq!(mark(&conn), Some(10), "the rollback kept the row");

        conn.execute_batch("BEGIN").unwrap();
        b.begin();
        b.before_commit(&conn, true).unwrap();
        conn.execute_batch("COMMIT").unwrap();
        b.committed();
        assert_eq!(hits(&conn, "alpha"), [1]);
        assert_eq!(hits(&conn, "beta"), [2]);
        assert!(hits(&conn, "gamma").is_empty(), "its span was rolled back");
        assert_eq!(mark(&conn), None);
        assert_eq!(b.due_in(), None);

        // A mid-transaction flush (a replaced span) and entries after it: the row names those.
        conn.execute_batch("BEGIN").unwrap();
        b.begin();
        b.push(4, "delta", 14);
        b.flush(&conn).unwrap();
        b.push(5, "epsilon", 15);
        b.before_commit(&conn, false).unwrap();
        conn.execute_batch("COMMIT").unwrap();
        b.committed();
        assert_eq!(hits(&conn, "delta"), [4]);
        assert!(hits(&conn, "epsilon").is_empty());
        assert_eq!(mark(&conn), Some(15));

        // A failed attempt puts the next one a full wait away.
        b.since = Some(Instant::now() - 2 * FLUSH_AFTER);
        assert_eq!(b.due_in(), Some(Duration::ZERO));
        b.postpone();
        assert!(b.due_in().is_some_and(|d| d > FLUSH_AFTER / 2));
    }

    fn span(trace: u64, n: u8, words: &str) -> Span {
        let mut t = [0u8; 16];
        t[8..].copy_from_slice(&(trace + 1).to_be_bytes());
        Span {
            trace_id: TraceId(t),
            span_id: SpanId([n + 1, 0, 0, 0, 0, 0, t[14], t[15]]),
            name: format!("step {n}"),
            start_time: Timestamp(1_700_000_000_000_000_000 + trace * 1_000 + u64::from(n)),
            end_time: Some(Timestamp(
                1_700_000_000_000_000_000 + trace * 1_000 + u64::from(n) + 1,
            )),
            output: Some(Payload::from_text(words, Some("text/plain"))),
            ..Default::default()
        }
    }

    async fn found(store: &SqliteStore, words: &str) -> BTreeSet<u64> {
        let mut q = ListQuery::new("p");
        q.filter.content = Some(words.into());
        q.limit = 500;
        let page = store.list_traces(&q).await.unwrap();
        page.items
            .iter()
            .map(|t| u64::from_be_bytes(t.trace_id.0[8..].try_into().unwrap()) - 1)
            .collect()
    }

    /// Many small commits while more waits (the words wait between them), an erasure among
    /// them: once every write is acknowledged, every kept trace is found and the erased one
    /// is not, and no row is left saying words wait.
    #[tokio::test]
    async fn words_written_under_load_are_found_once_the_writes_are_done() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let store = SqliteStore::open_with(
            &path,
            SqliteOptions {
                max_spans_per_transaction: 3,
                ..SqliteOptions::default()
            },
        )
        .unwrap();
        let batch = |i: u64| {
            vec![
                span(i, 0, &format!("order{i} shipped")),
                span(i, 1, if i % 2 == 0 { "even" } else { "odd" }),
            ]
        };
        // Another connection holds the write lock while the work queues up, so every commit
        // but the last has more waiting behind it and leaves its words waiting.
        let lock = Connection::open(&path).unwrap();
        lock.execute_batch("BEGIN IMMEDIATE").unwrap();
        let first: Vec<_> = (0..30)
            .map(|i| store.submit("p", batch(i)).unwrap())
            .collect();
        // Trace 5, queued behind the first thirty batches (the erasure is handed over on a
        // blocking thread: the rest are submitted a moment later).
        let five = [batch(5)[0].trace_id];
        let erase = store.delete_traces("p", &five);
        let rest = async {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            let mut rest: Vec<_> = (30..60)
                .map(|i| store.submit("p", batch(i)).unwrap())
                .collect();
            // A span of trace 40 sent again, with other words, while its first words wait.
            let again = vec![span(40, 0, "order40 returned")];
            rest.push(store.submit("p", again).unwrap());
            lock.execute_batch("COMMIT").unwrap();
            rest
        };
        let (erased, rest) = tokio::join!(erase, rest);
        assert_eq!(erased.unwrap().traces, 1);
        for t in first.into_iter().chain(rest) {
            t.await.unwrap();
        }
        let all: BTreeSet<u64> = (0..60).filter(|i| *i != 5).collect();
        let shipped = all.iter().copied().filter(|i| *i != 40).collect();
        assert_eq!(
            found(&store, "shipped").await,
            shipped,
            "40's words were replaced"
        );
        assert_eq!(found(&store, "returned").await, [40].into());
        assert_eq!(
            found(&store, "even").await,
            all.iter().copied().filter(|i| i % 2 == 0).collect()
        );
        assert_eq!(found(&store, "order41").await, [41].into());
        assert!(found(&store, "order5").await.is_empty(), "erased");
        drop(store);
        let conn = Connection::open(&path).unwrap();
        assert_eq!(mark(&conn), None);
        assert!(
            hits(&conn, "order5").is_empty(),
            "the erased words left the index"
        );
        assert_eq!(hits(&conn, "shipped").len(), 58);
    }

    /// A process that stopped with words waiting: the next open indexes the spans from the
    /// row on, from their bodies (a span whose body is damaged by its name).
    #[tokio::test]
    async fn spans_left_out_by_a_stopped_writer_are_indexed_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let store = SqliteStore::open(&path).unwrap();
        for i in 0..6 {
            store
                .write(
                    "p",
                    vec![span(i, 0, &format!("parcel{i} late")), span(i, 1, "fine")],
                )
                .await
                .unwrap();
        }
        drop(store);
        let conn = Connection::open(&path).unwrap();
        let from: i64 = conn
            .query_row(
                "SELECT min(id) FROM spans WHERE trace_ref = (SELECT trace_ref FROM spans \
                 WHERE name = 'step 0' ORDER BY id LIMIT 1 OFFSET 3)",
                [],
                |r| r.get(0),
            )
            .unwrap();
        conn.execute(
            "DELETE FROM span_text WHERE rowid IN (SELECT text_key FROM spans WHERE id >= ?1)",
            [from],
        )
        .unwrap();
        conn.execute("INSERT INTO search_backlog (from_span) VALUES (?1)", [from])
            .unwrap();
        // The last trace's bodies are damaged: its spans are found by their names.
        conn.execute(
            "UPDATE trace_chunks SET body = x'00' WHERE trace_ref = (SELECT max(id) FROM traces)",
            [],
        )
        .unwrap();
        drop(conn);
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(found(&store, "late").await, (0..5).collect());
        assert_eq!(found(&store, "parcel4").await, [4].into());
        assert_eq!(found(&store, "step").await, (0..6).collect());
        assert_eq!(found(&store, "fine").await, (0..5).collect());
        drop(store);
        assert_eq!(mark(&Connection::open(&path).unwrap()), None);
    }

    /// While another store writes the file (a server, beside which `spanlens reprice` opens
    /// it), the words its mark names are its own: a second store opens without touching them,
    /// and the first open after both have closed indexes them.
    #[tokio::test]
    async fn a_live_writers_backlog_is_left_to_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let live = SqliteStore::open(&path).unwrap();
        live.write("p", vec![span(1, 0, "crate")]).await.unwrap();
        // As if the live writer still held this span's words: out of the index, marked.
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "DELETE FROM span_text; INSERT INTO search_backlog (from_span) SELECT min(id) FROM spans",
        )
        .unwrap();
        let second = SqliteStore::open(&path).unwrap();
        assert!(
            mark(&conn).is_some(),
            "the live writer's mark is left alone"
        );
        assert!(found(&second, "crate").await.is_empty());
        drop(second);
        drop(live);
        let next = SqliteStore::open(&path).unwrap();
        assert_eq!(found(&next, "crate").await, [1].into());
        assert_eq!(mark(&conn), None);
    }
}
