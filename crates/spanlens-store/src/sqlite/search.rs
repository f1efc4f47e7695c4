//! Full-text search on SQLite: an FTS5 index of each span's words (`spanlens_core::content`).
//!
//! The index is contentless (it keeps the words' positions, not the text) and tokenizes with
//! FTS5's `ascii` tokenizer over text already lowered, whose words are exactly the content
//! module's: runs of ASCII letters and digits and of non-ASCII characters. `detail=none` keeps
//! only which spans hold a word, all an all-words query needs.
//!
//! A span's row id in the index is its *key*: its trace's row id shifted left by
//! [`ORD_BITS`], plus the span's ordinal in its trace. A search reads the trace of each hit
//! from its key alone, without touching the span rows, and the spans of one trace are one
//! range of keys. Spans past the [`MAX_ORD`]th of a trace are not indexed.

use rusqlite::{params, Connection};
use spanlens_core::content;
use std::collections::HashMap;

pub mod backlog;

/// Bits of a key that number the span within its trace.
pub const ORD_BITS: u32 = 20;

/// Spans of one trace that get a key (the rest are not found by full-text search).
pub const MAX_ORD: i64 = (1 << ORD_BITS) - 1;

/// The index table and how it tokenizes.
pub const CREATE: &str = "CREATE VIRTUAL TABLE IF NOT EXISTS span_text USING fts5(\
     body, content = '', contentless_delete = 1, detail = none, tokenize = 'ascii')";

/// The key of the `ord`th span of the trace whose row id is `trace_ref`.
pub fn key(trace_ref: i64, ord: i64) -> Option<i64> {
    (ord <= MAX_ORD && (0..1 << (62 - ORD_BITS)).contains(&trace_ref))
        .then_some(trace_ref << ORD_BITS | ord)
}

/// The FTS5 query holding every one of `words` (from `content::query_words`): each quoted, so
/// no word is read as an operator (words hold no `"`: it is not a word character).
pub fn match_expr(words: &[String]) -> String {
    words
        .iter()
        .map(|w| format!("\"{w}\""))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Spans holding a query's words past which a search checks each trace the list walks (in its
/// order, stopping at the page) instead of collecting the traces of every hit first.
pub const COMMON_HITS: i64 = 20_000;

/// How a search's condition finds its traces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// The traces of every hit, read from their keys (a rare word: few hits).
    Collect,
    /// Each trace the list walks is looked up in the index by its range of keys (a common
    /// word: the page fills after a few traces, where collecting would read every hit).
    Probe,
}

/// The plan for a page of the list: [`Plan::Probe`] when the query has at least
/// [`COMMON_HITS`] hits (counted no further).
pub fn plan(conn: &Connection, expr: &str) -> rusqlite::Result<Plan> {
    let hits: i64 = conn
        .prepare_cached(
            "SELECT count(*) FROM (SELECT 1 FROM span_text WHERE span_text MATCH ?1 LIMIT ?2)",
        )?
        .query_row(params![expr, COMMON_HITS], |r| r.get(0))?;
    Ok(if hits >= COMMON_HITS {
        Plan::Probe
    } else {
        Plan::Collect
    })
}

/// The `traces` condition of a search whose FTS5 query is bound as `param`: traces with a span
/// holding every word.
pub fn traces_matching(param: &str, plan: Plan) -> String {
    match plan {
        Plan::Collect => format!(
            "traces.id IN (SELECT rowid >> {ORD_BITS} FROM span_text WHERE span_text MATCH {param})"
        ),
        Plan::Probe => format!(
            "EXISTS (SELECT 1 FROM span_text WHERE span_text MATCH {param} \
             AND rowid BETWEEN traces.id << {ORD_BITS} AND (traces.id << {ORD_BITS}) + {MAX_ORD})"
        ),
    }
}

/// Inserts a span's words under its key.
pub const INSERT: &str = "INSERT INTO span_text (rowid, body) VALUES (?1, ?2)";

/// Indexes `text` (lowered) under `key`, replacing what the key held.
pub fn put(conn: &Connection, key: i64, text: &str) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM span_text WHERE rowid = ?1")?
        .execute([key])?;
    if !text.is_empty() {
        conn.prepare_cached(INSERT)?.execute(params![key, text])?;
    }
    Ok(())
}

/// Inserts `text` under a key no span of the index holds yet.
pub fn insert(conn: &Connection, key: i64, text: &str) -> rusqlite::Result<()> {
    if !text.is_empty() {
        conn.prepare_cached(INSERT)?.execute(params![key, text])?;
    }
    Ok(())
}

/// Removes every span of a trace from the index.
pub fn forget_trace(conn: &Connection, trace_ref: i64) -> rusqlite::Result<()> {
    let first = trace_ref << ORD_BITS;
    conn.prepare_cached("DELETE FROM span_text WHERE rowid BETWEEN ?1 AND ?2")?
        .execute([first, first | MAX_ORD])?;
    Ok(())
}

/// After a trace's payloads were cleared: its spans are found by their names only.
pub fn keep_names_only(conn: &Connection, trace_ref: i64) -> rusqlite::Result<()> {
    forget_trace(conn, trace_ref)?;
    let mut st = conn.prepare_cached(
        "SELECT text_key, name FROM spans WHERE trace_ref = ?1 AND text_key IS NOT NULL",
    )?;
    let rows: Vec<(i64, String)> = st
        .query_map([trace_ref], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (key, name) in rows {
        insert(conn, key, &name.to_lowercase())?;
    }
    Ok(())
}

/// The number the next new span of a stored trace is keyed with: its spans so far.
pub fn next_ord(conn: &Connection, trace_ref: i64) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT count(*) FROM spans INDEXED BY spans_trace WHERE trace_ref = ?1")?
        .query_row([trace_ref], |r| r.get(0))
}

/// The migration's step: a key for every stored span and its words in the index, trace by
/// trace, from the bodies in the trace's chunks (a span whose body cannot be read is indexed
/// by its name).
pub fn backfill(conn: &Connection, progress: &mut dyn FnMut(u64, u64)) -> rusqlite::Result<()> {
    let has: i64 = conn.query_row(
        "SELECT count(*) FROM pragma_table_info('spans') WHERE name = 'text_key'",
        [],
        |r| r.get(0),
    )?;
    if has == 0 {
        conn.execute_batch("ALTER TABLE spans ADD COLUMN text_key INTEGER")?;
    }
    // Built from nothing: a file a test marked as older may hold part of an index already.
    conn.execute_batch("DROP TABLE IF EXISTS span_text")?;
    conn.execute_batch(CREATE)?;
    // Deleted spans leave the index at once, not when segments next merge: an erased user's
    // words really go, and an erasure gives its pages back.
    conn.execute_batch("INSERT INTO span_text (span_text, rank) VALUES ('secure-delete', 1)")?;
    // Segments merge eight at a time, not four: each word's entry is rewritten about a third
    // less often as the index grows (merging was most of the index's share of ingest CPU), for
    // a few more segments per query to look in.
    conn.execute_batch("INSERT INTO span_text (span_text, rank) VALUES ('automerge', 8)")?;
    let traces: Vec<i64> = conn
        .prepare("SELECT id FROM traces ORDER BY id")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let total = traces.len() as u64;
    let mut spans = conn.prepare(
        "SELECT id, span_id, name FROM spans INDEXED BY spans_trace WHERE trace_ref = ?1 ORDER BY id",
    )?;
    let mut set_key = conn.prepare("UPDATE spans SET text_key = ?2 WHERE id = ?1")?;
    let mut bodies = TraceBodies::new(conn)?;
    for (done, trace_ref) in traces.into_iter().enumerate() {
        if done % 4096 == 0 {
            progress(done as u64, total);
        }
        bodies.load(trace_ref)?;
        let rows: Vec<(i64, Vec<u8>, String)> = spans
            .query_map([trace_ref], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<_>>()?;
        for (ord, (id, span_id, name)) in rows.into_iter().enumerate() {
            let Some(key) = key(trace_ref, ord as i64) else {
                break;
            };
            set_key.execute(params![id, key])?;
            insert(conn, key, &bodies.text(&span_id, &name))?;
        }
    }
    progress(total, total);
    Ok(())
}

/// The bodies of one trace's spans, read from its chunks, to index the spans' words from.
pub struct TraceBodies<'c> {
    chunks: rusqlite::Statement<'c>,
    bodies: HashMap<[u8; 8], String>,
}

impl<'c> TraceBodies<'c> {
    /// Ready to read the chunks of `conn`'s traces.
    pub fn new(conn: &'c Connection) -> rusqlite::Result<TraceBodies<'c>> {
        Ok(TraceBodies {
            chunks: conn
                .prepare("SELECT codec, body FROM trace_chunks WHERE trace_ref = ?1 ORDER BY id")?,
            bodies: HashMap::new(),
        })
    }

    /// Reads the bodies of the trace whose row id is `trace_ref` (the newest copy of each span).
    pub fn load(&mut self, trace_ref: i64) -> rusqlite::Result<()> {
        self.bodies.clear();
        let mut rows = self.chunks.query([trace_ref])?;
        while let Some(row) = rows.next()? {
            let codec: i64 = row.get(0)?;
            if let Ok(body) = row.get_ref(1)?.as_blob() {
                // A damaged chunk leaves its spans to be found by name.
                let _ = crate::facts::chunk::decode_into(codec, body, &mut self.bodies);
            }
        }
        Ok(())
    }

    /// The text to index for a span of the loaded trace, as the writer indexes it: from its
    /// body, or its name (lowered) when the body is missing or cannot be read.
    pub fn text(&self, span_id: &[u8], name: &str) -> String {
        <[u8; 8]>::try_from(span_id)
            .ok()
            .and_then(|s| self.bodies.get(&s))
            .and_then(|b| serde_json::from_str::<spanlens_core::Span>(b).ok())
            .map(|s| content::text(&s))
            .unwrap_or_else(|| name.to_lowercase())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prelude::*;
    use spanlens_core::{Payload, Span, SpanId, Timestamp, TraceId};

    /// Both plans find the same traces, and a key range holds exactly its trace's spans.
    #[tokio::test]
    async fn collecting_and_probing_find_the_same_traces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let store = crate::SqliteStore::open(&path).unwrap();
        let words = ["alpha", "beta", "gamma", "delta"];
        let mut spans = Vec::new();
        for t in 0..40u8 {
            for n in 0..(1 + t % 4) {
                spans.push(Span {
                    trace_id: TraceId([t + 1; 16]),
                    span_id: SpanId([t + 1, n, 0, 0, 0, 0, 0, 1]),
                    name: format!("step {n}"),
                    start_time: Timestamp(1_000 + u64::from(t)),
                    output: Some(Payload::from_text(
                        &format!(
                            "{} {}",
                            words[usize::from(t % 4)],
                            words[usize::from(n % 4)]
                        ),
                        Some("text/plain"),
                    )),
                    ..Default::default()
                });
            }
        }
        store.write("p", spans).await.unwrap();
        drop(store);
        let conn = Connection::open(&path).unwrap();
        let found = |q: &str, plan: Plan| -> Vec<i64> {
            let words = content::query_words(q).unwrap();
            let sql = format!(
                "SELECT id FROM traces WHERE {} ORDER BY id",
                traces_matching("?1", plan)
            );
            conn.prepare(&sql)
                .unwrap()
                .query_map([match_expr(&words)], |r| r.get(0))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap()
        };
        for q in [
            "alpha",
            "beta gamma",
            "step 3",
            "delta step",
            "absent",
            "gamma gamma",
        ] {
            let collected = found(q, Plan::Collect);
            assert_eq!(collected, found(q, Plan::Probe), "{q}");
            if q != "absent" {
                assert!(!collected.is_empty(), "{q}");
            }
        }
        // Trace `t` (1-based id order) has `1 + (t - 1) % 4` spans, keyed 0.. in its range.
        let keys: Vec<(i64, i64)> = conn
            .prepare("SELECT trace_ref, text_key FROM spans ORDER BY trace_ref, text_key")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        for (trace_ref, key) in &keys {
            assert_eq!(key >> ORD_BITS, *trace_ref);
        }
        assert_eq!(key(1, MAX_ORD + 1), None, "past the last ordinal");
    }
}
