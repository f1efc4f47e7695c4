//! The SQLite schema as versioned migrations, and the connection settings every connection uses.

use super::rollups::{build_all, build_retries, build_unpriced, build_weeks, BuildProgress};
use crate::error::StoreError;
use rusqlite::{Connection, OptionalExtension};
use std::path::Path;

/// `PRAGMA application_id` of a Spanlens database ("SPLN"), so another program's file is refused.
pub const APPLICATION_ID: i64 = 0x5350_4C4E;

/// Facet codes of `trace_facets.facet` (the trace summary state names them).
pub use crate::facts::summary::facet;

/// What a migration's Rust step reports while it works through a large database.
type Progress<'a> = &'a mut dyn FnMut(BuildProgress);

/// One schema step: SQL, then an optional step in Rust for what SQL cannot express.
struct Migration {
    description: &'static str,
    sql: &'static str,
    then: Option<fn(&Connection, Progress<'_>) -> rusqlite::Result<()>>,
}

/// Migrations in order; migration `i` brings the schema to version `i + 1`. Never edit a shipped
/// entry: append a new one.
const MIGRATIONS: &[Migration] = &[
    Migration {
        description: "spans, bodies, trace summaries, facets, projects",
        sql: r#"
CREATE TABLE schema_migrations (
    version     INTEGER PRIMARY KEY,
    description TEXT NOT NULL,
    applied_ns  INTEGER NOT NULL
);

CREATE TABLE projects (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    span_count INTEGER NOT NULL DEFAULT 0,
    created_ns INTEGER NOT NULL
);

-- One row per (project, trace, span); typed columns for every filter and metric. The columns
-- scanned by metrics come first so SQLite decodes as little of each row as possible.
CREATE TABLE spans (
    id                 INTEGER PRIMARY KEY,
    project_id         INTEGER NOT NULL,
    trace_id           BLOB NOT NULL,
    span_id            BLOB NOT NULL,
    start_ns           INTEGER NOT NULL,
    kind               TEXT NOT NULL,
    status             TEXT NOT NULL,
    duration_ns        INTEGER,
    ttft_ns            INTEGER,
    input_tokens       INTEGER NOT NULL,
    output_tokens      INTEGER NOT NULL,
    cache_read_tokens  INTEGER NOT NULL,
    cache_write_tokens INTEGER NOT NULL,
    reasoning_tokens   INTEGER NOT NULL,
    total_tokens       INTEGER NOT NULL,
    cost_nano          INTEGER,
    retry_count        INTEGER NOT NULL,
    model              TEXT,
    provider           TEXT,
    agent_name         TEXT,
    user_id            TEXT,
    tool_name          TEXT,
    request_model      TEXT,
    response_model     TEXT,
    parent_span_id     BLOB,
    end_ns             INTEGER,
    name               TEXT NOT NULL,
    session_id         TEXT,
    service            TEXT,
    error_type         TEXT,
    tags               TEXT
);
CREATE UNIQUE INDEX spans_key ON spans (project_id, trace_id, span_id);
CREATE INDEX spans_time ON spans (project_id, start_ns);

-- The canonical span as JSON, apart from the typed columns so scans never read payloads.
-- span_bodies.id = spans.id.
CREATE TABLE span_bodies (
    id   INTEGER PRIMARY KEY,
    body BLOB NOT NULL
);

-- One row per trace, updated in the transaction that writes any of its spans; `state` holds what
-- is needed to fold new spans in (a replaced span makes the writer rebuild it from `spans`).
CREATE TABLE traces (
    id            INTEGER PRIMARY KEY,
    project_id    INTEGER NOT NULL,
    trace_id      BLOB NOT NULL,
    name          TEXT NOT NULL,
    start_ns      INTEGER NOT NULL,
    end_ns        INTEGER NOT NULL,
    duration_ns   INTEGER NOT NULL,
    status        TEXT NOT NULL,
    span_count    INTEGER NOT NULL,
    error_count   INTEGER NOT NULL,
    input_tokens  INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    total_tokens  INTEGER NOT NULL,
    cost_nano     INTEGER NOT NULL,
    user_id       TEXT NOT NULL,
    session_id    TEXT NOT NULL,
    root_span_id  BLOB,
    service       TEXT,
    tags          TEXT NOT NULL,
    search        TEXT NOT NULL,
    state         TEXT NOT NULL
);
CREATE UNIQUE INDEX traces_key ON traces (project_id, trace_id);
CREATE INDEX traces_start ON traces (project_id, start_ns, trace_id);
CREATE INDEX traces_duration ON traces (project_id, duration_ns, trace_id);
CREATE INDEX traces_cost ON traces (project_id, cost_nano, trace_id);
CREATE INDEX traces_user ON traces (project_id, user_id, trace_id);
CREATE INDEX traces_session ON traces (project_id, session_id, start_ns);

-- Span-level values a trace is filtered by (kind, model, provider, tag), one row per distinct value.
CREATE TABLE trace_facets (
    project_id INTEGER NOT NULL,
    trace_id   BLOB NOT NULL,
    facet      INTEGER NOT NULL,
    value      TEXT NOT NULL,
    PRIMARY KEY (project_id, trace_id, facet, value)
) WITHOUT ROWID;
"#,
        then: None,
    },
    Migration {
        description: "span bodies stored per trace chunk, compressed; unpriced span counts",
        sql: r#"
-- The canonical JSON of the spans of one trace that arrived together, framed and compressed as
-- one value (see chunk.rs); the newest chunk holding a span id has its current body.
CREATE TABLE trace_chunks (
    id         INTEGER PRIMARY KEY,
    project_id INTEGER NOT NULL,
    trace_id   BLOB NOT NULL,
    codec      INTEGER NOT NULL,
    spans      INTEGER NOT NULL,
    body       BLOB NOT NULL
);
CREATE INDEX trace_chunks_trace ON trace_chunks (project_id, trace_id, id);

-- Model calls the price catalog could not price, so a trace's cost reads as a lower bound
-- instead of a silent $0. (Spans stored before this version count as priced.)
ALTER TABLE spans ADD COLUMN unpriced INTEGER NOT NULL DEFAULT 0;
ALTER TABLE traces ADD COLUMN unpriced_count INTEGER NOT NULL DEFAULT 0;
"#,
        then: Some(|conn, _| move_bodies_into_chunks(conn)),
    },
    Migration {
        description: "evaluation scores",
        sql: r#"
-- Scores of traces, spans and sessions (numeric, categorical, boolean) from the API, rule
-- evaluators, LLM judges and people.
CREATE TABLE scores (
    id         INTEGER PRIMARY KEY,
    project_id INTEGER NOT NULL,
    trace_id   BLOB,
    span_id    BLOB,
    session_id TEXT,
    name       TEXT NOT NULL,
    data_type  TEXT NOT NULL,
    value      REAL,
    label      TEXT,
    source     TEXT NOT NULL,
    comment    TEXT,
    created_ns INTEGER NOT NULL
);
CREATE INDEX scores_trace ON scores (project_id, trace_id, name);
CREATE INDEX scores_session ON scores (project_id, session_id);
CREATE INDEX scores_name ON scores (project_id, name, created_ns);
"#,
        then: None,
    },
    Migration {
        description: "spans, chunks and facets keyed by the trace's row id",
        sql: r#"
-- Trace ids are random, so an index led by them takes every new span on a random page, and each
-- commit rewrote thousands of pages. Keyed by the trace's row id (assigned in arrival order), the
-- spans, chunks and facets of new traces append at the end of their indexes instead.
ALTER TABLE spans ADD COLUMN trace_ref INTEGER NOT NULL DEFAULT 0;
-- A span without a summary row (never written by Spanlens) gets a unique negative reference.
UPDATE spans SET trace_ref = IFNULL(
    (SELECT t.id FROM traces t WHERE t.project_id = spans.project_id AND t.trace_id = spans.trace_id),
    -id);
DROP INDEX spans_key;
CREATE UNIQUE INDEX spans_trace ON spans (trace_ref, span_id);

CREATE TABLE trace_chunks_by_ref (
    id        INTEGER PRIMARY KEY,
    trace_ref INTEGER NOT NULL,
    codec     INTEGER NOT NULL,
    spans     INTEGER NOT NULL,
    body      BLOB NOT NULL
);
INSERT INTO trace_chunks_by_ref (id, trace_ref, codec, spans, body)
    SELECT c.id, t.id, c.codec, c.spans, c.body FROM trace_chunks c
    JOIN traces t ON t.project_id = c.project_id AND t.trace_id = c.trace_id;
DROP TABLE trace_chunks;
ALTER TABLE trace_chunks_by_ref RENAME TO trace_chunks;
CREATE INDEX trace_chunks_trace ON trace_chunks (trace_ref, id);

CREATE TABLE trace_facets_by_ref (
    trace_ref INTEGER NOT NULL,
    facet     INTEGER NOT NULL,
    value     TEXT NOT NULL,
    PRIMARY KEY (trace_ref, facet, value)
) WITHOUT ROWID;
INSERT INTO trace_facets_by_ref (trace_ref, facet, value)
    SELECT t.id, f.facet, f.value FROM trace_facets f
    JOIN traces t ON t.project_id = f.project_id AND t.trace_id = f.trace_id;
DROP TABLE trace_facets;
ALTER TABLE trace_facets_by_ref RENAME TO trace_facets;

-- A user's traces in time order: new traces of a user append, and "this user's traces, newest
-- first" reads the index in order instead of sorting.
DROP INDEX traces_user;
CREATE INDEX traces_user ON traces (project_id, user_id, start_ns, trace_id);

-- Duration and cost indexes took each new trace on two random pages, a third of what ingest
-- wrote. The time index now carries both, so duration and cost filters are answered from it
-- without reading rows, and new traces append; sorting a whole project by duration or cost
-- scans its traces (about 25 ms over 1,000,000 spans).
DROP INDEX traces_duration;
DROP INDEX traces_cost;
DROP INDEX traces_start;
CREATE INDEX traces_start ON traces (project_id, start_ns, trace_id, duration_ns, cost_nano);
"#,
        then: None,
    },
    Migration {
        description:
            "rollups for the dashboards, typed retries and rate limits, sessions by last activity",
        sql: r#"
-- Sums of spans per family, bucket size and bucket (see rollup/ and sqlite/rollups.rs), so a
-- 30-day metrics query over 40M spans reads about a hundred rows instead of every span. Each
-- commit appends one row per bucket it changed (`seq` orders them); a bucket's rows are merged
-- into one when there are 16.
CREATE TABLE rollups (
    project_id INTEGER NOT NULL,
    family     INTEGER NOT NULL,
    level      INTEGER NOT NULL,
    bucket_ns  INTEGER NOT NULL,
    seq        INTEGER NOT NULL,
    body       BLOB NOT NULL,
    PRIMARY KEY (project_id, family, level, bucket_ns, seq)
) WITHOUT ROWID;

-- What the recovery report reads of each retried span, so it decodes only the bodies of the
-- 200 timelines it shows. In start order, so a range is one sequential read.
CREATE TABLE span_retries (
    project_id  INTEGER NOT NULL,
    start_ns    INTEGER NOT NULL,
    trace_ref   INTEGER NOT NULL,
    span_id     BLOB NOT NULL,
    trace_id    BLOB NOT NULL,
    provider    TEXT,
    tool        TEXT,
    retries     INTEGER NOT NULL,
    recovered   INTEGER NOT NULL,
    recovery_ms REAL,
    errors      BLOB NOT NULL,
    PRIMARY KEY (project_id, start_ns, trace_ref, span_id)
) WITHOUT ROWID;

-- A model call's rate-limit snapshot, typed (rollup/headroom.rs); NULL for other spans.
ALTER TABLE spans ADD COLUMN rate_limits BLOB;

-- The few snapshots taken in another quarter-hour bucket than their span started in: the
-- headroom rollups leave them out so each of their buckets holds only spans that started in it.
CREATE TABLE rate_limit_straddlers (
    project_id INTEGER NOT NULL,
    at_ns      INTEGER NOT NULL,
    trace_ref  INTEGER NOT NULL,
    span_id    BLOB NOT NULL,
    start_ns   INTEGER NOT NULL,
    sample     BLOB NOT NULL,
    PRIMARY KEY (project_id, at_ns, trace_ref, span_id)
) WITHOUT ROWID;

-- Sessions are listed by their last activity (the latest end of their traces): walking the
-- traces by end finds them in that order, so the first page reads a few hundred traces.
CREATE INDEX traces_end ON traces (project_id, end_ns);

-- The longest trace of the project so far (an upper bound: it never shrinks), so the session
-- list knows how far past a range's end its traces can end.
ALTER TABLE projects ADD COLUMN max_trace_ns INTEGER NOT NULL DEFAULT 0;
"#,
        then: Some(build_all),
    },
    Migration {
        description: "retry rollups for the recovery report",
        sql: r#"
-- Retried spans summed per bucket in `rollups` (family 4), so the recovery report no longer
-- reads every span_retries row of its range (750 ms for 978k over 30 days of 40M spans).
"#,
        then: Some(build_retries),
    },
    Migration {
        description: "week rows of the users family",
        sql: r#"
-- Users rows per week (level 3), so a 30-day by-user query merges four weeks and a few days
-- instead of 30 day rows of every user.
"#,
        then: Some(build_weeks),
    },
    Migration {
        description: "unpriced model calls counted in the rollups",
        sql: r#"
-- Each rollup class also counts its model calls the catalog could not price (bit 13 of an
-- aggregate), so cost by model, day, user or agent tells "unpriced" from a genuine $0.
"#,
        then: Some(build_unpriced),
    },
    Migration {
        description: "one count per provider call: the LLM call index",
        sql: r#"
-- One row per LLM span with usage (sqlite/calls.rs): what the same-call rule of
-- spanlens_core::dedup reads, the span's own tokens and cost, and the span counted in its place
-- when two instrumentations recorded one provider call. Such a duplicate's row in `spans` counts
-- zero tokens and no cost, so trace summaries, sessions and rollups count the call once.
CREATE TABLE llm_calls (
    trace_ref          INTEGER NOT NULL,
    span_id            BLOB NOT NULL,
    parent_span_id     BLOB,
    response_id        TEXT,
    provider           TEXT,
    request_model      TEXT,
    response_model     TEXT,
    start_ns           INTEGER NOT NULL,
    end_ns             INTEGER NOT NULL,
    input_tokens       INTEGER NOT NULL,
    output_tokens      INTEGER NOT NULL,
    cache_read_tokens  INTEGER NOT NULL,
    cache_write_tokens INTEGER NOT NULL,
    reasoning_tokens   INTEGER NOT NULL,
    total_tokens       INTEGER NOT NULL,
    cost_nano          INTEGER,
    unpriced           INTEGER NOT NULL,
    duplicate_of       BLOB,
    usage_detail       INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (trace_ref, span_id)
) WITHOUT ROWID;
"#,
        then: Some(super::calls::index_stored),
    },
    Migration {
        description: "GenAI events from OTLP logs, kept for their spans",
        sql: r#"
-- GenAI events that arrived as OTLP log records, keyed by the span they name. The span may be
-- stored before or after them; a read merges them into it. `digest` (FNV-1a of the event's
-- JSON) keeps a record sent twice from being stored twice. `IF NOT EXISTS`: the tests mark a
-- current database as an older one to migrate it again.
CREATE TABLE IF NOT EXISTS log_events (
    id          INTEGER PRIMARY KEY,
    project_id  INTEGER NOT NULL,
    trace_id    BLOB NOT NULL,
    span_id     BLOB NOT NULL,
    digest      INTEGER NOT NULL,
    time_ns     INTEGER NOT NULL,
    event       TEXT NOT NULL,
    received_ns INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS log_events_key ON log_events (project_id, trace_id, span_id, digest);
"#,
        then: None,
    },
    Migration {
        description: "a trace fails by its root: errors it recovered from are not a failure",
        sql: r#"
-- A trace's status was `error` whenever any span failed. Now it is `error` only when the trace
-- failed (its root in error, a failed agent run under a root without a status, or any error
-- while the root is missing); a tool that failed and was recovered from leaves the root's
-- status. Only rows marked `error` can change.
"#,
        then: Some(restate_failed_traces),
    },
    Migration {
        description: "state shared by every server on the store",
        sql: r#"
-- Small named documents (alert states) that every server on this store reads and writes, so
-- a restart or a second server agrees on them (they lived in a side file of the data dir).
CREATE TABLE IF NOT EXISTS shared_state (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_ns INTEGER NOT NULL
) WITHOUT ROWID;
"#,
        then: None,
    },
    Migration {
        description: "which traces have had their payloads expired",
        sql: r#"
-- `traces.payloads_cleared` (added by the step below, which a test may run twice) is 1 once
-- payload expiry cleared the trace's bodies, and back to 0 when a span of it arrives again.
-- The partial index holds only traces still holding payloads, oldest end first, so each step
-- of the sweeper reads the next traces to clear instead of skipping the ones it cleared.
"#,
        then: Some(add_payload_marks),
    },
    Migration {
        description: "full-text index of span names and content",
        sql: r#"
-- `spans.text_key` (added by the step below) is the span's row id in the FTS5 table
-- `span_text` (see sqlite/search.rs): its trace's row id and its ordinal in the trace. The step
-- indexes every stored span from its body, reporting progress.
"#,
        then: Some(add_search_index),
    },
    Migration {
        description: "who gave a score (a reviewer in a review queue)",
        sql: r#"
-- `scores.author` (added by the step below, which a test may run twice): the account or key of
-- the person who gave a score; NULL for scores from rules, judges and the API without one.
"#,
        then: Some(add_score_authors),
    },
    Migration {
        description: "the prompt template and version of each span",
        sql: r#"
-- `spans.prompt_name` and `prompt_version` (added by the step below, which a test may run
-- twice) keep the template a span used, so a trace rebuilt from its rows keeps its prompt
-- facets (`trace_facets` codes 5 and 6). Spans stored before have none: the trace list's
-- prompt filter finds their traces once a span of them is written again.
"#,
        then: Some(add_prompt_columns),
    },
    Migration {
        description: "the span columns the waterfall reads instead of the bodies",
        sql: r#"
-- `spans.status_message` (a failed span's message, its first 1,000 characters; '' when it has
-- none) and `spans.has_usage` (1 when the span reported token usage), added by the step below,
-- complete what the waterfall of a trace needs from its rows, so a 100,000-span trace is drawn
-- without decoding its bodies. Rows stored before hold NULL there: the waterfall of their
-- traces is read from the bodies, as before.
"#,
        then: Some(add_tree_columns),
    },
    Migration {
        description: "media blobs stored once per project and content hash, and their referrers",
        sql: r#"
-- Images and audio taken out of span payloads (spanlens_core::media), one row per project and
-- SHA-256; `media_refs` names the traces referring to each, and a blob goes once none does.
-- Keyed by project name: a blob is written before the spans that create the project row. A
-- rowid table: large rows sit badly in a WITHOUT ROWID b-tree.
CREATE TABLE IF NOT EXISTS media_blobs (
    project    TEXT NOT NULL,
    hash       TEXT NOT NULL,
    mime       TEXT NOT NULL,
    bytes      BLOB NOT NULL,
    size       INTEGER NOT NULL,
    created_ns INTEGER NOT NULL,
    PRIMARY KEY (project, hash)
);
CREATE TABLE IF NOT EXISTS media_refs (
    project  TEXT NOT NULL,
    trace_id BLOB NOT NULL,
    hash     TEXT NOT NULL,
    PRIMARY KEY (project, trace_id, hash)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS media_refs_hash ON media_refs (project, hash);
"#,
        then: None,
    },
    Migration {
        description: "where the spans not yet in the full-text index begin",
        sql: r#"
-- The writer inserts new spans' words into `span_text` many commits at a time (see
-- sqlite/search/backlog.rs). While some wait, this one row holds the row id of the first span
-- they belong to; opening the store indexes the spans from there again if a process stopped
-- before inserting them.
CREATE TABLE IF NOT EXISTS search_backlog (
    from_span INTEGER NOT NULL
);
"#,
        then: None,
    },
];

/// Migration 14: the full-text index, filled from the stored spans.
fn add_search_index(conn: &Connection, progress: Progress<'_>) -> rusqlite::Result<()> {
    const STEP: &str = "indexing span text for full-text search (traces)";
    super::search::backfill(conn, &mut |done, total| {
        progress(BuildProgress {
            step: STEP,
            done,
            total,
        })
    })
}

/// Migration 15: the `author` column of scores.
fn add_score_authors(conn: &Connection, _: Progress<'_>) -> rusqlite::Result<()> {
    let has: i64 = conn.query_row(
        "SELECT count(*) FROM pragma_table_info('scores') WHERE name = 'author'",
        [],
        |r| r.get(0),
    )?;
    if has == 0 {
        conn.execute_batch("ALTER TABLE scores ADD COLUMN author TEXT")?;
    }
    Ok(())
}

/// Migration 16: the span columns of the prompt template and version, unless present.
fn add_prompt_columns(conn: &Connection, _: Progress<'_>) -> rusqlite::Result<()> {
    add_span_columns(conn, &[("prompt_name", "TEXT"), ("prompt_version", "TEXT")])
}

/// Migration 17: the waterfall's span columns, unless present.
fn add_tree_columns(conn: &Connection, _: Progress<'_>) -> rusqlite::Result<()> {
    add_span_columns(
        conn,
        &[("status_message", "TEXT"), ("has_usage", "INTEGER")],
    )
}

/// Adds each `(name, type)` column to `spans` that it lacks (a test may run a step twice).
fn add_span_columns(conn: &Connection, columns: &[(&str, &str)]) -> rusqlite::Result<()> {
    for (col, ty) in columns {
        let has: i64 = conn.query_row(
            "SELECT count(*) FROM pragma_table_info('spans') WHERE name = ?1",
            [col],
            |r| r.get(0),
        )?;
        if has == 0 {
            conn.execute_batch(&format!("ALTER TABLE spans ADD COLUMN {col} {ty}"))?;
        }
    }
    Ok(())
}

/// Migration 13: the payload-expiry mark of each trace and the index of those not cleared.
fn add_payload_marks(conn: &Connection, _: Progress<'_>) -> rusqlite::Result<()> {
    let has: i64 = conn.query_row(
        "SELECT count(*) FROM pragma_table_info('traces') WHERE name = 'payloads_cleared'",
        [],
        |r| r.get(0),
    )?;
    if has == 0 {
        conn.execute_batch(
            "ALTER TABLE traces ADD COLUMN payloads_cleared INTEGER NOT NULL DEFAULT 0",
        )?;
    }
    conn.execute_batch(
        "CREATE INDEX IF NOT EXISTS traces_payloads ON traces (project_id, end_ns) \
         WHERE payloads_cleared = 0",
    )
}

/// Migration 11: re-decides the status of every trace marked `error` by the rule of
/// [`super::summary::TraceState::failed`], counting its failed agent spans (which older states
/// did not keep) from the span rows.
fn restate_failed_traces(conn: &Connection, progress: Progress<'_>) -> rusqlite::Result<()> {
    const STEP: &str = "telling failed traces from recovered errors (traces)";
    let ids: Vec<(i64, Vec<u8>, String)> = conn
        .prepare("SELECT id, trace_id, state FROM traces WHERE status = 'error'")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let total = ids.len() as u64;
    let mut agents = conn.prepare(
        "SELECT count(*) FROM spans WHERE trace_ref = ?1 AND kind = 'agent' AND status = 'error'",
    )?;
    let mut update = conn.prepare("UPDATE traces SET status = ?2, state = ?3 WHERE id = ?1")?;
    for (done, (id, trace_id, state)) in ids.into_iter().enumerate() {
        if done % 4096 == 0 {
            progress(BuildProgress {
                step: STEP,
                done: done as u64,
                total,
            });
        }
        // An unreadable state is rebuilt from the spans by the next write to the trace.
        let Ok(mut st) = serde_json::from_str::<super::summary::TraceState>(&state) else {
            continue;
        };
        let Ok(tid) = <[u8; 16]>::try_from(trace_id.as_slice()) else {
            continue;
        };
        let failed: i64 = agents.query_row([id], |r| r.get(0))?;
        st.failed_agents = u64::try_from(failed).unwrap_or(0);
        let json = serde_json::to_string(&st).unwrap_or(state);
        update.execute(rusqlite::params![id, st.summary(&tid).status, json])?;
    }
    progress(BuildProgress {
        step: STEP,
        done: total,
        total,
    });
    Ok(())
}

/// A blob column of exactly `N` bytes; anything else is an error, never a made-up id.
fn fixed<const N: usize>(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<[u8; N]> {
    let b = r.get_ref(i)?.as_blob()?;
    b.try_into().map_err(|_| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Blob,
            format!("id of {} bytes where {N} are expected", b.len()).into(),
        )
    })
}

/// Migration 2: re-stores the per-span bodies of version 1 as one chunk per trace.
fn move_bodies_into_chunks(conn: &Connection) -> rusqlite::Result<()> {
    let mut read = conn.prepare(
        "SELECT s.project_id, s.trace_id, s.span_id, b.body FROM spans s \
         JOIN span_bodies b ON b.id = s.id ORDER BY s.project_id, s.trace_id",
    )?;
    let mut write = conn.prepare(
        "INSERT INTO trace_chunks (project_id, trace_id, codec, spans, body) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    let mut flush = |key: (i64, [u8; 16]), spans: &[([u8; 8], String)]| {
        if spans.is_empty() {
            return Ok(());
        }
        let c = super::chunk::encode(key.1, spans.iter().map(|(id, b)| (id, b.as_str())));
        write
            .execute(rusqlite::params![
                key.0,
                &key.1[..],
                c.codec,
                c.spans,
                c.body
            ])
            .map(|_| ())
    };
    let mut rows = read.query([])?;
    let mut current: Option<(i64, [u8; 16])> = None;
    let mut spans: Vec<([u8; 8], String)> = Vec::new();
    while let Some(r) = rows.next()? {
        let key = (r.get::<_, i64>(0)?, fixed::<16>(r, 1)?);
        let span_id = fixed::<8>(r, 2)?;
        let body = match r.get_ref(3)? {
            rusqlite::types::ValueRef::Text(b) | rusqlite::types::ValueRef::Blob(b) => {
                String::from_utf8_lossy(b).into_owned()
            }
            _ => continue,
        };
        if current != Some(key) {
            if let Some(prev) = current {
                flush(prev, &spans)?;
            }
            spans.clear();
            current = Some(key);
        }
        spans.push((span_id, body));
    }
    if let Some(prev) = current {
        flush(prev, &spans)?;
    }
    drop(rows);
    conn.execute_batch("DROP TABLE span_bodies")
}

/// Newest schema version this build knows.
pub fn latest_version() -> i64 {
    MIGRATIONS.len() as i64
}

/// Connection settings for the writer: WAL, `synchronous` as configured, a large page cache.
pub fn configure_writer(
    conn: &Connection,
    full_sync: bool,
    cache_kib: i64,
    wal_limit_bytes: i64,
) -> Result<(), String> {
    let e = |e: rusqlite::Error| e.to_string();
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(e)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(e)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(format!("journal_mode is {mode}, WAL could not be enabled"));
    }
    let sync = if full_sync { "FULL" } else { "NORMAL" };
    conn.pragma_update(None, "synchronous", sync).map_err(e)?;
    conn.pragma_update(None, "cache_size", -cache_kib)
        .map_err(e)?;
    conn.pragma_update(None, "temp_store", "MEMORY")
        .map_err(e)?;
    // The checkpointer thread copies the WAL into the database; the writer only steps in when
    // the WAL grows past its limit.
    conn.pragma_update(None, "wal_autocheckpoint", 0)
        .map_err(e)?;
    // When the WAL restarts, give back disk space beyond the limit.
    conn.pragma_update(None, "journal_size_limit", wal_limit_bytes)
        .map_err(e)?;
    conn.pragma_update(None, "foreign_keys", false).map_err(e)?;
    conn.set_prepared_statement_cache_capacity(64);
    add_functions(conn).map_err(e)?;
    Ok(())
}

/// `sat_sum(x)`: the sum of integers, saturating at the 64-bit bounds. SQLite's `sum()` fails
/// the whole query with "integer overflow" instead, so spans whose costs or token counts add
/// up past 2^63 (a thousand spans at the largest cost one may report) made the sessions list
/// and the daily cost answer 500 for the whole project. NULL for no rows, like `sum()`.
struct SatSum;

impl rusqlite::functions::Aggregate<Option<i64>, Option<i64>> for SatSum {
    fn init(&self, _: &mut rusqlite::functions::Context<'_>) -> rusqlite::Result<Option<i64>> {
        Ok(None)
    }

    fn step(
        &self,
        ctx: &mut rusqlite::functions::Context<'_>,
        acc: &mut Option<i64>,
    ) -> rusqlite::Result<()> {
        if let Some(v) = ctx.get::<Option<i64>>(0)? {
            *acc = Some(acc.unwrap_or(0).saturating_add(v));
        }
        Ok(())
    }

    fn finalize(
        &self,
        _: &mut rusqlite::functions::Context<'_>,
        acc: Option<Option<i64>>,
    ) -> rusqlite::Result<Option<i64>> {
        Ok(acc.flatten())
    }
}

/// Registers the functions the queries use on a connection.
pub fn add_functions(conn: &Connection) -> rusqlite::Result<()> {
    use rusqlite::functions::FunctionFlags;
    conn.create_aggregate_function(
        "sat_sum",
        1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        SatSum,
    )
}

/// Connection settings for a read-only pool connection.
pub fn configure_reader(conn: &Connection, cache_kib: i64) -> Result<(), rusqlite::Error> {
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "cache_size", -cache_kib)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.pragma_update(None, "mmap_size", 1_i64 << 30)?;
    conn.pragma_update(None, "query_only", true)?;
    conn.set_prepared_statement_cache_capacity(64);
    add_functions(conn)
}

/// Checks the file belongs to Spanlens and applies pending migrations, each in its own
/// transaction; refuses a database written by a newer schema. `progress` hears from the
/// migrations that work through every span (`version`, what, done, total).
pub fn migrate(
    conn: &mut Connection,
    path: &Path,
    progress: &mut dyn FnMut(i64, BuildProgress),
) -> Result<(), StoreError> {
    let db = |e: rusqlite::Error| StoreError::Open {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let app_id: i64 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(db)?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(db)?;
    if app_id != 0 && app_id != APPLICATION_ID {
        return Err(StoreError::NotSpanlens {
            path: path.to_path_buf(),
            application_id: app_id,
        });
    }
    if app_id == 0 {
        let objects: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
            .map_err(db)?;
        if objects > 0 {
            return Err(StoreError::NotSpanlens {
                path: path.to_path_buf(),
                application_id: 0,
            });
        }
    }
    let latest = latest_version();
    if version > latest {
        return Err(StoreError::SchemaTooNew {
            path: path.to_path_buf(),
            found: version,
            supported: latest,
        });
    }
    migrate_with(conn, path, version, latest, progress)
}

/// Applies the migrations after `from` up to and including version `to`.
#[cfg(test)]
pub fn migrate_to(
    conn: &mut Connection,
    path: &Path,
    from: i64,
    to: i64,
) -> Result<(), StoreError> {
    migrate_with(conn, path, from, to, &mut |_, _| {})
}

/// Applies the migrations after `from` up to and including version `to`, reporting progress.
fn migrate_with(
    conn: &mut Connection,
    path: &Path,
    from: i64,
    to: i64,
    progress: &mut dyn FnMut(i64, BuildProgress),
) -> Result<(), StoreError> {
    let db = |e: rusqlite::Error| StoreError::Open {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    for (i, m) in MIGRATIONS.iter().enumerate() {
        let target = i as i64 + 1;
        if target <= from || target > to {
            continue;
        }
        let description = m.description;
        let tx = conn.transaction().map_err(db)?;
        tx.execute_batch(m.sql).map_err(db)?;
        if let Some(step) = m.then {
            step(&tx, &mut |p| progress(target, p)).map_err(db)?;
        }
        tx.execute(
            "INSERT INTO schema_migrations (version, description, applied_ns) VALUES (?1, ?2, ?3)",
            rusqlite::params![target, description, now_ns()],
        )
        .map_err(db)?;
        tx.pragma_update(None, "application_id", APPLICATION_ID)
            .map_err(db)?;
        tx.pragma_update(None, "user_version", target).map_err(db)?;
        tx.commit().map_err(db)?;
    }
    Ok(())
}

/// Applied migrations as `(version, applied_ns)`, for diagnostics and tests.
pub fn applied_migrations(conn: &Connection) -> Result<Vec<(i64, i64)>, rusqlite::Error> {
    let mut st =
        conn.prepare("SELECT version, applied_ns FROM schema_migrations ORDER BY version")?;
    let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

/// The schema version recorded in an open database, if it is readable.
pub fn current_version(conn: &Connection) -> Option<i64> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
        .optional()
        .ok()
        .flatten()
}

/// Wall-clock nanoseconds, for bookkeeping columns.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prelude::*;
    use std::collections::HashMap;

    #[test]
    fn version_1_bodies_move_into_chunks() {
        let mut conn = Connection::open_in_memory().unwrap();
        let path = Path::new(":memory:");
        migrate_to(&mut conn, path, 0, 1).unwrap();
        conn.execute_batch(
            "INSERT INTO projects (id, name, created_ns) VALUES (1, 'p', 0);
             INSERT INTO spans (id, project_id, trace_id, span_id, start_ns, kind, status,
                 input_tokens, output_tokens, cache_read_tokens, cache_write_tokens,
                 reasoning_tokens, total_tokens, retry_count, name)
             VALUES (1, 1, x'01010101010101010101010101010101', x'0202020202020202', 1, 'llm', 'ok', 0, 0, 0, 0, 0, 0, 0, 'a'),
                    (2, 1, x'01010101010101010101010101010101', x'0303030303030303', 2, 'tool', 'ok', 0, 0, 0, 0, 0, 0, 0, 'b'),
                    (3, 1, x'09090909090909090909090909090909', x'0404040404040404', 3, 'span', 'ok', 0, 0, 0, 0, 0, 0, 0, 'c');
             INSERT INTO span_bodies (id, body) VALUES (1, '{\"n\":\"a\"}'), (2, '{\"n\":\"b\"}'), (3, '{\"n\":\"c\"}');",
        )
        .unwrap();
        migrate_to(&mut conn, path, 1, 2).unwrap();
        let mut st = conn
            .prepare("SELECT trace_id, codec, spans, body FROM trace_chunks ORDER BY id")
            .unwrap();
        let chunks: Vec<(Vec<u8>, i64, i64, Vec<u8>)> = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(chunks.len(), 2, "one chunk per trace");
        assert_eq!(chunks[0].2, 2);
        let mut bodies = HashMap::new();
        for (_, codec, _, body) in &chunks {
            super::super::chunk::decode_into(*codec, body, &mut bodies).unwrap();
        }
        assert_eq!(bodies[&[3u8; 8]], "{\"n\":\"b\"}");
        assert_eq!(bodies[&[4u8; 8]], "{\"n\":\"c\"}");
        let gone: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE name = 'span_bodies'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(gone, 0);
    }

    #[test]
    fn version_3_spans_chunks_and_facets_get_the_trace_row_id() {
        let mut conn = Connection::open_in_memory().unwrap();
        let path = Path::new(":memory:");
        migrate_to(&mut conn, path, 0, 3).unwrap();
        conn.execute_batch(
            "INSERT INTO projects (id, name, created_ns) VALUES (1, 'p', 0);
             INSERT INTO traces (id, project_id, trace_id, name, start_ns, end_ns, duration_ns, status,
                 span_count, error_count, input_tokens, output_tokens, total_tokens, cost_nano,
                 user_id, session_id, tags, search, state)
             VALUES (7, 1, x'01010101010101010101010101010101', 'a', 1, 2, 1, 'ok', 2, 0, 0, 0, 0, 0, '', '', '[]', '', '{}');
             INSERT INTO spans (id, project_id, trace_id, span_id, start_ns, kind, status,
                 input_tokens, output_tokens, cache_read_tokens, cache_write_tokens,
                 reasoning_tokens, total_tokens, retry_count, name)
             VALUES (1, 1, x'01010101010101010101010101010101', x'0202020202020202', 1, 'llm', 'ok', 0, 0, 0, 0, 0, 0, 0, 'a'),
                    (2, 1, x'01010101010101010101010101010101', x'0303030303030303', 2, 'tool', 'ok', 0, 0, 0, 0, 0, 0, 0, 'b'),
                    (3, 1, x'09090909090909090909090909090909', x'0202020202020202', 3, 'span', 'ok', 0, 0, 0, 0, 0, 0, 0, 'orphan');
             INSERT INTO trace_chunks (project_id, trace_id, codec, spans, body)
             VALUES (1, x'01010101010101010101010101010101', 0, 2, x'00');
             INSERT INTO trace_facets (project_id, trace_id, facet, value)
             VALUES (1, x'01010101010101010101010101010101', 2, 'gpt-4o');",
        )
        .unwrap();
        migrate_to(&mut conn, path, 3, 4).unwrap();
        let refs: Vec<(i64, i64)> = conn
            .prepare("SELECT id, trace_ref FROM spans ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        // The span without a summary row keeps a reference of its own instead of colliding.
        assert_eq!(refs, vec![(1, 7), (2, 7), (3, -3)]);
        let chunk: (i64, i64) = conn
            .query_row("SELECT trace_ref, spans FROM trace_chunks", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!(chunk, (7, 2));
        let facet: (i64, String) = conn
            .query_row("SELECT trace_ref, value FROM trace_facets", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!(facet, (7, "gpt-4o".to_string()));
    }

    #[tokio::test]
    async fn a_version_3_database_reads_the_same_through_the_store_after_migration_4() {
        use crate::types::{ListQuery, SortField};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spanlens.db");
        let mut conn = Connection::open(&path).unwrap();
        migrate_to(&mut conn, &path, 0, 3).unwrap();
        let tid = [7u8; 16];
        let span = spanlens_core::Span {
            trace_id: spanlens_core::TraceId(tid),
            span_id: spanlens_core::SpanId([2; 8]),
            name: "chat gpt-4o".into(),
            start_time: spanlens_core::Timestamp(1_700_000_000_000_000_000),
            request_model: Some("gpt-4o".into()),
            ..Default::default()
        };
        let body = serde_json::to_string(&span).unwrap();
        let c = super::super::chunk::encode(tid, [(&[2u8; 8], body.as_str())]);
        conn.execute_batch(
            "INSERT INTO projects (id, name, created_ns) VALUES (1, 'p', 0);
             INSERT INTO traces (id, project_id, trace_id, name, start_ns, end_ns, duration_ns, status,
                 span_count, error_count, input_tokens, output_tokens, total_tokens, cost_nano,
                 user_id, session_id, tags, search, state)
             VALUES (5, 1, x'07070707070707070707070707070707', 'chat gpt-4o', 1700000000000000000,
                 1700000000000000000, 0, 'unset', 1, 0, 0, 0, 0, 0, '', '', '[]', 'chat gpt-4o', 'not json');
             INSERT INTO spans (project_id, trace_id, span_id, start_ns, kind, status, input_tokens,
                 output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens, total_tokens,
                 retry_count, name, request_model, model)
             VALUES (1, x'07070707070707070707070707070707', x'0202020202020202', 1700000000000000000,
                 'span', 'unset', 0, 0, 0, 0, 0, 0, 0, 'chat gpt-4o', 'gpt-4o', 'gpt-4o');
             INSERT INTO trace_facets (project_id, trace_id, facet, value)
             VALUES (1, x'07070707070707070707070707070707', 2, 'gpt-4o');",
        )
        .unwrap();
        conn.execute(
            "INSERT INTO trace_chunks (project_id, trace_id, codec, spans, body) VALUES (1, ?1, ?2, ?3, ?4)",
            rusqlite::params![&tid[..], c.codec, c.spans, c.body],
        )
        .unwrap();
        drop(conn);

        let store = super::super::SqliteStore::open(&path).unwrap();
        let mut q = ListQuery::new("p");
        q.filter.model = Some("gpt-4o".into());
        q.sort = SortField::Cost;
        let page = store.list_traces(&q).await.unwrap();
        assert_eq!(page.items.len(), 1);
        let detail = store
            .get_trace("p", spanlens_core::TraceId(tid))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(detail.spans.len(), 1);
        assert_eq!(detail.spans[0].name, "chat gpt-4o");
        // A span sent again after the upgrade lands in the same trace (its stored state is
        // unreadable here, so the summary is rebuilt from the spans).
        let mut again = span.clone();
        again.name = "chat gpt-4o (again)".into();
        store.write("p", vec![again]).await.unwrap();
        let detail = store
            .get_trace("p", spanlens_core::TraceId(tid))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(detail.spans.len(), 1);
        assert_eq!(detail.spans[0].name, "chat gpt-4o (again)");
        assert_eq!(detail.summary.span_count, 1);
    }

    /// Spans of every shape the rollups read, over three days: model calls with rate limits
    /// (some taken in another quarter-hour bucket than they started in, some unpriced), retried
    /// tools, sessions, users, unfinished spans.
    fn varied_spans() -> Vec<spanlens_core::Span> {
        use serde_json::json;
        use spanlens_core::{
            Cost, CostBreakdown, CostSource, Event, NanoUsd, RateLimitWindow, RateLimits, Span,
            SpanId, SpanKind, Status, Timestamp, TraceId, Usage,
        };
        let t0 = 1_735_689_600_000_000_000u64 + 3_600_000_000_000 * 21;
        let mut x = 0x9e37_79b9u64;
        let mut next = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let mut out = Vec::new();
        for t in 0..120u64 {
            let start = t0 + next(3 * 86_400) * 1_000_000_000;
            for k in 0..(1 + next(6)) {
                let s0 = start + k * 1_000_000_000 * next(600);
                let kind = [SpanKind::Llm, SpanKind::Tool, SpanKind::Agent][next(3) as usize];
                let mut s = Span {
                    trace_id: TraceId((u128::from(t) + 1).to_be_bytes()),
                    span_id: SpanId((k + 1).to_be_bytes()),
                    parent_span_id: (k > 0).then_some(SpanId(1u64.to_be_bytes())),
                    name: format!("s{k}"),
                    kind,
                    start_time: Timestamp(s0),
                    end_time: (next(10) > 0).then(|| Timestamp(s0 + next(400) * 1_000_000_000)),
                    status: if next(8) == 0 {
                        Status::Error
                    } else {
                        Status::Ok
                    },
                    user_id: Some(format!("u{}", next(4))),
                    session_id: (next(5) > 0).then(|| format!("s{}", next(20))),
                    agent_name: Some(["a", "b"][next(2) as usize].into()),
                    ..Default::default()
                };
                if kind == SpanKind::Llm {
                    s.request_model = Some(["m1", "m2"][next(2) as usize].into());
                    s.provider = Some(["openai", "anthropic"][next(2) as usize].into());
                    s.ttft_ns = Some(next(900) * 1_000_000);
                    s.usage = Some(Usage {
                        input_tokens: next(5000),
                        output_tokens: next(500),
                        total_tokens: next(5500),
                        ..Default::default()
                    });
                    s.cost = Some(Cost {
                        source: CostSource::Computed,
                        amounts: CostBreakdown {
                            total: NanoUsd(next(1_000_000) as i64),
                            ..Default::default()
                        },
                        pricing_id: None,
                        pricing_version: None,
                        computed: None,
                    });
                    // Some calls of a model the catalog does not know (no draw from `next`,
                    // so the other spans stay as they were).
                    if t % 7 == 3 {
                        s.request_model = Some("self-hosted-ft".into());
                        s.cost = None;
                        s.unpriced_reason = Some("no price for \"self-hosted-ft\"".into());
                    }
                    if next(2) == 0 {
                        let limit = 1 + next(1000);
                        s.rate_limits = Some(RateLimits {
                            requests: Some(RateLimitWindow {
                                limit: Some(limit),
                                remaining: Some(next(limit + 1)),
                                reset: None,
                            }),
                            retry_after_ms: (next(4) == 0).then_some(100),
                            ..Default::default()
                        });
                    }
                }
                if next(6) == 0 {
                    s.events.push(Event {
                        name: "retry".into(),
                        time: Timestamp(s0 + 1),
                        attributes: [("error.type".to_string(), json!("Timeout"))]
                            .into_iter()
                            .collect(),
                    });
                }
                out.push(s);
            }
        }
        out
    }

    /// What migration 5 (and the call-index and log-events migrations) adds, taken away again:
    /// a database written by this build becomes a version-4 one with the same spans.
    const BACK_TO_4: &str = "DROP TABLE span_text; ALTER TABLE spans DROP COLUMN text_key; DROP TABLE llm_calls; DROP TABLE log_events; DROP TABLE shared_state; DROP TABLE rollups; DROP TABLE span_retries; \
        DROP TABLE rate_limit_straddlers; DROP INDEX traces_end; DROP INDEX traces_payloads; \
        ALTER TABLE traces DROP COLUMN payloads_cleared; ALTER TABLE scores DROP COLUMN author; ALTER TABLE spans DROP COLUMN rate_limits; ALTER TABLE projects DROP COLUMN max_trace_ns; \
        ALTER TABLE spans DROP COLUMN prompt_name; ALTER TABLE spans DROP COLUMN prompt_version; \
        ALTER TABLE spans DROP COLUMN status_message; ALTER TABLE spans DROP COLUMN has_usage; \
        DROP TABLE media_refs; DROP TABLE media_blobs; DROP TABLE search_backlog; \
        DELETE FROM schema_migrations WHERE version >= 5; PRAGMA user_version = 4;";

    fn schema_of(conn: &Connection) -> Vec<(String, String, Option<String>)> {
        conn.prepare("SELECT type, name, sql FROM sqlite_schema ORDER BY name")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// JSON equal but for floats, which may differ in the last bits (means summed in another
    /// order).
    fn same_json(a: &serde_json::Value, b: &serde_json::Value) -> bool {
        use serde_json::Value;
        match (a, b) {
            (Value::Number(x), Value::Number(y)) => {
                let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
                (x - y).abs() <= 1e-9 * x.abs().max(1.0)
            }
            (Value::Array(x), Value::Array(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same_json(p, q))
            }
            (Value::Object(x), Value::Object(y)) => {
                x.len() == y.len()
                    && x.iter()
                        .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
            }
            _ => a == b,
        }
    }

    /// Marks a current database as one at `version` (for migrations that add no table).
    fn mark_as_version(conn: &Connection, version: u32) {
        // The call index came with version 8 (these tests' spans record no call twice, so
        // their rows count as written before it).
        if version < 9 {
            conn.execute_batch("DROP TABLE IF EXISTS llm_calls")
                .unwrap();
        }
        conn.execute(
            "DELETE FROM schema_migrations WHERE version > ?1",
            [version],
        )
        .unwrap();
        conn.pragma_update(None, "user_version", version).unwrap();
    }

    /// Migration 6 adds no table, so a current database without its retry rows, marked
    /// version 5, is a version-5 database: migrated, it answers as one written at version 6.
    #[tokio::test]
    async fn a_version_5_database_gets_its_retry_rollups_from_migration_6() {
        use spanlens_core::recovery::Buckets;
        use spanlens_core::Timestamp;
        let spans = varied_spans();
        let dir = tempfile::tempdir().unwrap();
        let write = async |store: &super::super::SqliteStore| {
            store.write("p", spans.clone()).await.unwrap();
            let again: Vec<_> = spans.iter().step_by(5).cloned().collect();
            store.write("p", again).await.unwrap();
        };
        let fresh = super::super::SqliteStore::open(dir.path().join("fresh.db")).unwrap();
        write(&fresh).await;
        let path = dir.path().join("five.db");
        write(&super::super::SqliteStore::open(&path).unwrap()).await;
        let conn = Connection::open(&path).unwrap();
        let removed = conn
            .execute(
                "DELETE FROM rollups WHERE family = ?1",
                [crate::rollup::metrics::Family::Retries.code()],
            )
            .unwrap();
        assert!(removed > 0, "the spans have retries");
        mark_as_version(&conn, 5);
        drop(conn);
        let old = super::super::SqliteStore::open(&path).unwrap();
        assert_eq!(old.schema_info().unwrap().0, latest_version());
        let t0 = 1_735_689_600_000_000_000u64;
        let h = 3_600_000_000_000u64;
        for (from, to, count) in [(t0, t0 + 96 * h, 4), (t0 + 22 * h + 17, t0 + 70 * h + 5, 5)] {
            let b = Buckets {
                from: Timestamp(from),
                to: Timestamp(to),
                count,
            };
            let a = serde_json::to_value(old.recovery_report("p", b).await.unwrap()).unwrap();
            let f = serde_json::to_value(fresh.recovery_report("p", b).await.unwrap()).unwrap();
            assert!(a["spans_with_retries"].as_u64().unwrap() > 0);
            assert!(same_json(&a, &f), "{a}\n{f}");
        }
    }

    #[tokio::test]
    async fn a_version_4_database_answers_the_same_after_migrations_5_and_6() {
        use crate::types::{GroupBy, MetricsQuery, SessionQuery};
        use spanlens_core::recovery::Buckets;
        use spanlens_core::Timestamp;
        let spans = varied_spans();
        let write = async |store: &super::super::SqliteStore| {
            store.write("p", spans.clone()).await.unwrap();
            // Some spans sent again, changed: the old copies are replaced.
            let mut again: Vec<_> = spans.iter().step_by(7).cloned().collect();
            for s in &mut again {
                s.user_id = Some("late".into());
            }
            store.write("p", again).await.unwrap();
            store.write("q", spans[..50].to_vec()).await.unwrap();
        };
        let dir = tempfile::tempdir().unwrap();
        let fresh = super::super::SqliteStore::open(dir.path().join("fresh.db")).unwrap();
        write(&fresh).await;
        let path = dir.path().join("old.db");
        write(&super::super::SqliteStore::open(&path).unwrap()).await;
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(BACK_TO_4).unwrap();
        let mut v4 = Connection::open(dir.path().join("v4.db")).unwrap();
        migrate_to(&mut v4, &dir.path().join("v4.db"), 0, 4).unwrap();
        assert_eq!(
            schema_of(&conn),
            schema_of(&v4),
            "a faithful version-4 database"
        );
        drop(conn);

        let mut heard = Vec::new();
        let old = super::super::SqliteStore::open_with_progress(
            &path,
            super::super::SqliteOptions::default(),
            &mut |p| heard.push(p),
        )
        .unwrap();
        assert_eq!(old.schema_info().unwrap().0, latest_version());
        let t0 = 1_735_689_600_000_000_000u64;
        let h = 3_600_000_000_000u64;
        let ranges = [
            (None, None),
            (Some(t0 + 22 * h + 17), Some(t0 + 70 * h + 5)),
            (Some(t0 + 24 * h), Some(t0 + 48 * h)),
        ];
        for project in ["p", "q"] {
            for (from, to) in ranges {
                for g in GroupBy::ALL {
                    let mut q = MetricsQuery::new(project, g);
                    q.from = from.map(Timestamp);
                    q.to = to.map(Timestamp);
                    assert_eq!(
                        old.metrics(&q).await.unwrap(),
                        fresh.metrics(&q).await.unwrap(),
                        "{q:?}"
                    );
                    assert_eq!(
                        old.daily_cost(&q).await.unwrap(),
                        fresh.daily_cost(&q).await.unwrap()
                    );
                }
                let mut sq = SessionQuery::new(project);
                sq.from = from.map(Timestamp);
                sq.to = to.map(Timestamp);
                sq.limit = 3;
                for _ in 0..4 {
                    let (a, b) = (
                        old.list_sessions(&sq).await.unwrap(),
                        fresh.list_sessions(&sq).await.unwrap(),
                    );
                    assert_eq!(a, b);
                    sq.cursor = a.next_cursor;
                }
                if let (Some(from), Some(to)) = (from, to) {
                    let b = Buckets {
                        from: Timestamp(from),
                        to: Timestamp(to),
                        count: 6,
                    };
                    let a = serde_json::to_value(old.recovery_report(project, b).await.unwrap())
                        .unwrap();
                    let f = serde_json::to_value(fresh.recovery_report(project, b).await.unwrap())
                        .unwrap();
                    assert!(a["spans_with_retries"].as_u64().unwrap() > 0 || project == "q");
                    assert!(same_json(&a, &f), "{a}\n{f}");
                }
            }
        }
        // The snapshots taken in another quarter-hour bucket than their span started in were
        // found again.
        let count = |s: &super::super::SqliteStore, table: &str| -> i64 {
            s.readers
                .pool
                .get()
                .unwrap()
                .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
                .unwrap()
        };
        for table in ["rate_limit_straddlers", "span_retries"] {
            assert!(count(&fresh, table) > 0, "{table}");
            assert_eq!(count(&old, table), count(&fresh, table), "{table}");
        }
        // Every step says where it starts and that it finished.
        for (version, step) in [
            (
                5,
                "reading retries and rate limits from span bodies (traces)",
            ),
            (5, "summing spans into rollups (spans)"),
            (6, "summing retried spans into rollups (spans)"),
        ] {
            let of: Vec<_> = heard.iter().filter(|p| p.step == step).collect();
            assert!(of.len() >= 2, "{step}: {heard:?}");
            assert!(of.iter().all(|p| p.version == version));
            let last = of[of.len() - 1];
            assert!(last.total > 0 && last.done == last.total, "{last:?}");
        }
    }

    /// Migration 7 adds no table either: a database without its users week rows, marked
    /// version 6, gets them built from the day and hour rows and answers by user over weeks as
    /// one written at version 7.
    #[tokio::test]
    async fn a_version_6_database_gets_its_week_rows_from_migration_7() {
        use crate::rollup::metrics::Family;
        use crate::rollup::time::Level;
        use crate::types::{GroupBy, MetricsQuery};
        use spanlens_core::Timestamp;
        // The varied spans spread over three weeks instead of three days.
        let t0 = 1_735_689_600_000_000_000u64;
        let mut spans = varied_spans();
        for s in &mut spans {
            let shift = (s.start_time.0 - t0) * 6;
            s.start_time = Timestamp(s.start_time.0 + shift);
            s.end_time = s.end_time.map(|e| Timestamp(e.0 + shift));
            for e in &mut s.events {
                e.time = Timestamp(e.time.0 + shift);
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let fresh = super::super::SqliteStore::open(dir.path().join("fresh.db")).unwrap();
        fresh.write("p", spans.clone()).await.unwrap();
        let path = dir.path().join("six.db");
        super::super::SqliteStore::open(&path)
            .unwrap()
            .write("p", spans)
            .await
            .unwrap();
        let conn = Connection::open(&path).unwrap();
        let removed = conn
            .execute(
                "DELETE FROM rollups WHERE family = ?1 AND level = ?2",
                [Family::Users.code(), Level::Week.code()],
            )
            .unwrap();
        assert!(removed >= 3, "the spans cover three weeks: {removed}");
        mark_as_version(&conn, 6);
        drop(conn);
        let old = super::super::SqliteStore::open(&path).unwrap();
        assert_eq!(old.schema_info().unwrap().0, latest_version());
        let weeks = |s: &super::super::SqliteStore| -> i64 {
            s.readers
                .pool
                .get()
                .unwrap()
                .query_row(
                    "SELECT count(*) FROM rollups WHERE family = ?1 AND level = ?2",
                    [Family::Users.code(), Level::Week.code()],
                    |r| r.get(0),
                )
                .unwrap()
        };
        // Every week is built by the migration; the writer of the fresh one keeps the newest week
        // unbuilt until traffic moves past it (its queries read the day rows instead).
        assert!(weeks(&old) >= weeks(&fresh) && weeks(&old) >= 3);
        let day = 86_400_000_000_000u64;
        let thursday = t0 + day;
        for (from, to) in [
            (None, None),
            (Some(thursday), Some(thursday + 14 * day)),
            (Some(thursday + 3), Some(thursday + 20 * day - 5)),
        ] {
            for g in [GroupBy::User, GroupBy::All] {
                let mut q = MetricsQuery::new("p", g);
                q.from = from.map(Timestamp);
                q.to = to.map(Timestamp);
                assert_eq!(
                    old.metrics(&q).await.unwrap(),
                    fresh.metrics(&q).await.unwrap(),
                    "{q:?}"
                );
            }
        }
    }

    /// A version-7 database counted a call recorded by two spans twice everywhere; migration 9
    /// indexes its calls and makes it answer as one written with the call index.
    #[tokio::test]
    async fn a_version_7_database_counts_each_call_once_after_migration_9() {
        use crate::types::{GroupBy, MetricsQuery, SessionQuery};
        use spanlens_core::{Cost, NanoUsd, Span, SpanId, SpanKind};
        use spanlens_core::{Timestamp, TraceId, Usage};
        let t0 = 1_735_689_600_000_000_000u64;
        let ms = 1_000_000u64;
        let call = |t: u8, s: u8, parent: u8, start: u64, rid: Option<&str>| Span {
            trace_id: TraceId([t; 16]),
            span_id: SpanId([s; 8]),
            parent_span_id: Some(SpanId([parent; 8])),
            name: format!("chat {s}"),
            kind: SpanKind::Llm,
            start_time: Timestamp(t0 + start * ms),
            end_time: Some(Timestamp(t0 + (start + 500) * ms)),
            session_id: Some("s".into()),
            request_model: Some("gpt-4o".into()),
            provider: Some("openai".into()),
            response_id: rid.map(str::to_string),
            usage: Some(Usage {
                input_tokens: 40,
                output_tokens: 2,
                total_tokens: 42,
                ..Default::default()
            }),
            cost: Some(Cost::computed_total(NanoUsd(700))),
            ..Default::default()
        };
        let mut spans = Vec::new();
        for t in 1..=3u8 {
            let start = u64::from(t) * 3_600_000;
            spans.push(Span {
                trace_id: TraceId([t; 16]),
                span_id: SpanId([1; 8]),
                name: "agent".into(),
                start_time: Timestamp(t0 + start * ms),
                end_time: Some(Timestamp(t0 + (start + 2_000) * ms)),
                session_id: Some("s".into()),
                ..Default::default()
            });
            spans.push(call(t, 2, 1, start + 10, None));
            spans.push(call(t, 3, 2, start + 20, Some("chatcmpl-x")));
        }
        // Trace 3's second span is another call (no overlap).
        spans[8].start_time = Timestamp(spans[8].start_time.0 + 1_000 * ms);
        spans[8].end_time = Some(Timestamp(spans[8].start_time.0 + 100 * ms));
        let answers = async |s: &super::super::SqliteStore| {
            let mut out = Vec::new();
            for t in 1..=3u8 {
                let d = s.get_trace("p", TraceId([t; 16])).await.unwrap().unwrap();
                out.push(serde_json::to_value(&d.summary).unwrap());
                let dups: Vec<_> = d.spans.iter().map(|x| x.duplicate_of).collect();
                out.push(serde_json::to_value(dups).unwrap());
            }
            let sessions = s
                .list_sessions(&SessionQuery::new("p"))
                .await
                .unwrap()
                .items;
            out.push(serde_json::to_value(sessions).unwrap());
            for (from, to) in [
                (None, None),
                (
                    Some(t0 - 86_400 * 1_000 * ms),
                    Some(t0 + 86_400 * 2_000 * ms),
                ),
            ] {
                let mut q = MetricsQuery::new("p", GroupBy::Model);
                q.from = from.map(Timestamp);
                q.to = to.map(Timestamp);
                out.push(serde_json::to_value(s.metrics(&q).await.unwrap()).unwrap());
                out.push(serde_json::to_value(s.daily_cost(&q).await.unwrap()).unwrap());
            }
            out
        };
        let dir = tempfile::tempdir().unwrap();
        let fresh = super::super::SqliteStore::open(dir.path().join("fresh.db")).unwrap();
        fresh.write("p", spans.clone()).await.unwrap();
        let want = answers(&fresh).await;
        assert_eq!(
            want[0]["total_cost_usd"],
            serde_json::json!(0.0000007),
            "{}",
            want[0]
        );
        // A version-7 database: the same spans, every call counted, no call index.
        let path = dir.path().join("seven.db");
        super::super::SqliteStore::open(&path)
            .unwrap()
            .write("p", spans)
            .await
            .unwrap();
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "UPDATE spans SET input_tokens = c.input_tokens, output_tokens = c.output_tokens, \
             total_tokens = c.total_tokens, cost_nano = c.cost_nano, unpriced = c.unpriced \
             FROM llm_calls c WHERE spans.trace_ref = c.trace_ref AND spans.span_id = c.span_id; \
             DROP TABLE llm_calls; DELETE FROM rollups;",
        )
        .unwrap();
        let refs: Vec<i64> = conn
            .prepare("SELECT id FROM traces")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        for r in refs {
            let st = super::super::writer::state_from_spans(&conn, r).unwrap();
            conn.execute(
                "UPDATE traces SET input_tokens = ?2, output_tokens = ?3, total_tokens = ?4, \
                 cost_nano = ?5, state = ?6 WHERE id = ?1",
                rusqlite::params![
                    r,
                    st.input_tokens as i64,
                    st.output_tokens as i64,
                    st.total_tokens as i64,
                    st.cost_nano,
                    serde_json::to_string(&st).unwrap()
                ],
            )
            .unwrap();
        }
        build_all(&conn, &mut |_| {}).unwrap();
        build_retries(&conn, &mut |_| {}).unwrap();
        build_weeks(&conn, &mut |_| {}).unwrap();
        mark_as_version(&conn, 7);
        let doubled: i64 = conn
            .query_row("SELECT sum(cost_nano) FROM traces", [], |r| r.get(0))
            .unwrap();
        assert_eq!(doubled, 6 * 700, "version 7 counts every span");
        drop(conn);
        let old = super::super::SqliteStore::open(&path).unwrap();
        assert_eq!(old.schema_info().unwrap().0, latest_version());
        assert_eq!(answers(&old).await, want);
    }

    /// Migration 8 adds no table: a database whose rollups were summed without unpriced counts
    /// (as version 7 wrote them), marked version 7, gets the counts from its spans and answers
    /// as one written at version 8; rows that already hold them are not counted twice (the
    /// version-4 test above goes through migrations 5 and 8 in one upgrade).
    #[tokio::test]
    async fn a_version_7_database_gets_its_unpriced_counts_from_migration_8() {
        use super::super::rollups::{write_delta, OwnedStats, STATS_COLS};
        use crate::rollup::delta::Delta;
        use crate::rollup::metrics::Family;
        use crate::types::{GroupBy, MetricsQuery};
        use spanlens_core::Timestamp;
        let spans = varied_spans();
        let write = async |store: &super::super::SqliteStore| {
            store.write("p", spans.clone()).await.unwrap();
            let again: Vec<_> = spans.iter().step_by(5).cloned().collect();
            store.write("p", again).await.unwrap();
        };
        let dir = tempfile::tempdir().unwrap();
        let fresh = super::super::SqliteStore::open(dir.path().join("fresh.db")).unwrap();
        write(&fresh).await;
        let path = dir.path().join("seven.db");
        write(&super::super::SqliteStore::open(&path).unwrap()).await;

        // The metrics rows summed again as version 7 did: without the unpriced flag.
        let conn = Connection::open(&path).unwrap();
        let unpriced: Vec<i64> = conn
            .prepare("SELECT id FROM spans WHERE unpriced != 0")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(unpriced.len() >= 3, "{unpriced:?}");
        conn.execute_batch("UPDATE spans SET unpriced = 0").unwrap();
        conn.execute(
            "DELETE FROM rollups WHERE family IN (?1, ?2)",
            [Family::Classes.code(), Family::Users.code()],
        )
        .unwrap();
        let mut delta = Delta::default();
        let mut st = conn
            .prepare(&format!(
                "SELECT {STATS_COLS}, end_ns, rate_limits FROM spans WHERE project_id = 1"
            ))
            .unwrap();
        let mut rows = st.query([]).unwrap();
        while let Some(r) = rows.next().unwrap() {
            delta.add_span(&OwnedStats::of(r).unwrap().stats(), 1);
        }
        drop(rows);
        drop(st);
        write_delta(&conn, 1, &delta).unwrap();
        for id in &unpriced {
            conn.execute("UPDATE spans SET unpriced = 1 WHERE id = ?1", [id])
                .unwrap();
        }
        mark_as_version(&conn, 7);
        drop(conn);

        let mut heard = Vec::new();
        let old = super::super::SqliteStore::open_with_progress(
            &path,
            super::super::SqliteOptions::default(),
            &mut |p| heard.push(p),
        )
        .unwrap();
        assert_eq!(old.schema_info().unwrap().0, latest_version());
        let last = heard.iter().rev().find(|p| p.version == 8).unwrap();
        assert_eq!(
            (last.version, last.done, last.total),
            (8, unpriced.len() as u64, unpriced.len() as u64)
        );
        let t0 = 1_735_689_600_000_000_000u64;
        let h = 3_600_000_000_000u64;
        let mut seen = 0;
        for (from, to) in [
            (None, None),
            (Some(t0 + 22 * h + 17), Some(t0 + 70 * h + 5)),
            (Some(t0 + 24 * h), Some(t0 + 48 * h)),
        ] {
            for g in GroupBy::ALL {
                let mut q = MetricsQuery::new("p", g);
                q.from = from.map(Timestamp);
                q.to = to.map(Timestamp);
                let rows = old.metrics(&q).await.unwrap();
                seen += rows.iter().map(|r| r.unpriced_span_count).sum::<u64>();
                assert_eq!(rows, fresh.metrics(&q).await.unwrap(), "{q:?}");
                assert_eq!(
                    old.daily_cost(&q).await.unwrap(),
                    fresh.daily_cost(&q).await.unwrap()
                );
            }
        }
        assert!(seen > 0, "the unpriced calls are counted");
        // Opened again, nothing is counted twice.
        drop(old);
        let again = super::super::SqliteStore::open(&path).unwrap();
        let q = MetricsQuery::new("p", GroupBy::Model);
        assert_eq!(
            again.metrics(&q).await.unwrap(),
            fresh.metrics(&q).await.unwrap()
        );
    }

    /// The log-events migration: a database written before it (the table dropped, marked as
    /// the version before) gets the side table, keeps its spans, and takes log events that a
    /// read merges into them.
    #[tokio::test]
    async fn the_log_events_migration_adds_the_side_table() {
        use spanlens_core::otlp::logs::LogEvent;
        let spans = varied_spans();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("before.db");
        super::super::SqliteStore::open(&path)
            .unwrap()
            .write("p", spans.clone())
            .await
            .unwrap();
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("DROP TABLE log_events").unwrap();
        mark_as_version(&conn, 9);
        drop(conn);
        let store = super::super::SqliteStore::open(&path).unwrap();
        assert_eq!(store.schema_info().unwrap().0, latest_version());
        let target = &spans[0];
        let before = store
            .get_trace("p", target.trace_id)
            .await
            .unwrap()
            .unwrap();
        let event = LogEvent {
            project: None,
            trace_id: target.trace_id,
            span_id: target.span_id,
            event: spanlens_core::Event {
                name: "gen_ai.user.message".into(),
                time: target.start_time,
                attributes: serde_json::from_value(
                    serde_json::json!({"gen_ai.event.content": {"content": "hello"}}),
                )
                .unwrap(),
            },
        };
        assert_eq!(store.add_log_events("p", &[event]).await.unwrap().stored, 1);
        let after = store
            .get_trace("p", target.trace_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(before.spans.len(), after.spans.len());
        let merged = after
            .spans
            .iter()
            .find(|s| s.span_id == target.span_id)
            .unwrap();
        assert!(merged
            .events
            .iter()
            .any(|e| e.name == "gen_ai.user.message"));
    }

    /// Migration 11: a version-10 database marked every trace with a failed span `error`. After
    /// it, a trace whose root went on past a failed tool keeps the root's status, while a run
    /// whose agent failed under a root without a status (the OpenAI Agents shape, whose stored
    /// state predates the agent-parent record) stays failed.
    #[tokio::test]
    async fn a_version_10_database_tells_failed_traces_from_recovered_errors() {
        use spanlens_core::{Span, SpanId, SpanKind, Status, Timestamp, TraceId};
        let span = |t: u8, id: u64, parent: Option<u64>, kind: SpanKind, status: Status| Span {
            trace_id: TraceId([t; 16]),
            span_id: SpanId(id.to_be_bytes()),
            parent_span_id: parent.map(|p| SpanId(p.to_be_bytes())),
            name: format!("s{id}"),
            kind,
            start_time: Timestamp(1_000 + id),
            end_time: Some(Timestamp(2_000 + id)),
            status,
            ..Default::default()
        };
        let spans = vec![
            // Trace 1: the agent's tool failed, the agent and the root went on.
            span(1, 1, None, SpanKind::Pipeline, Status::Unset),
            span(1, 2, Some(1), SpanKind::Agent, Status::Ok),
            span(1, 3, Some(2), SpanKind::Tool, Status::Error),
            // Trace 2: the agent run failed directly under a root without a status.
            span(2, 1, None, SpanKind::Pipeline, Status::Unset),
            span(2, 2, Some(1), SpanKind::Agent, Status::Error),
            span(2, 3, Some(2), SpanKind::Llm, Status::Error),
            // Trace 3: the root itself failed.
            span(3, 1, None, SpanKind::Pipeline, Status::Error),
            span(3, 2, Some(1), SpanKind::Tool, Status::Error),
        ];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("before.db");
        super::super::SqliteStore::open(&path)
            .unwrap()
            .write("p", spans)
            .await
            .unwrap();
        let conn = Connection::open(&path).unwrap();
        // What version 10 stored: `error` for any failed span, and states without `fa`.
        let states: Vec<(i64, String)> = conn
            .prepare("SELECT id, state FROM traces")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        for (id, state) in states {
            let mut v: serde_json::Value = serde_json::from_str(&state).unwrap();
            v.as_object_mut().unwrap().remove("fa");
            conn.execute(
                "UPDATE traces SET status = 'error', state = ?2 WHERE id = ?1",
                rusqlite::params![id, v.to_string()],
            )
            .unwrap();
        }
        mark_as_version(&conn, 10);
        drop(conn);
        let store = super::super::SqliteStore::open(&path).unwrap();
        assert_eq!(store.schema_info().unwrap().0, latest_version());
        let status = async |t: u8| {
            let d = store
                .get_trace("p", TraceId([t; 16]))
                .await
                .unwrap()
                .unwrap();
            (d.summary.status, d.summary.error_count)
        };
        assert_eq!(
            status(1).await,
            (Status::Unset, 1),
            "recovered from its tool's error"
        );
        assert_eq!(status(2).await, (Status::Error, 2), "its agent run failed");
        assert_eq!(status(3).await, (Status::Error, 2), "its root failed");
        let mut q = crate::ListQuery::new("p");
        let counts = store.trace_outcomes(&q).await.unwrap();
        assert_eq!((counts.traces, counts.failed, counts.recovered), (3, 2, 1));
        q.filter.recovered = true;
        let page = store.list_traces(&q).await.unwrap();
        assert_eq!(page.items.len(), 1);
        assert_eq!(page.items[0].trace_id, TraceId([1; 16]));
    }

    /// New files are made with `auto_vacuum = INCREMENTAL`, so an erasure gives its pages
    /// back; a version-12 file made without it opens, gets the payload marks of migration 13,
    /// keeps its vacuum mode (it cannot change without a `VACUUM`) and erases all the same.
    #[tokio::test]
    async fn erasure_gives_pages_back_and_a_version_12_database_erases_too() {
        use crate::store::{Eraser, Expiry};
        use spanlens_core::Timestamp;
        let pragma = |path: &Path, name: &str| -> i64 {
            Connection::open(path)
                .unwrap()
                .query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
                .unwrap()
        };
        let spans = varied_spans();
        let ids: std::collections::BTreeSet<_> = spans.iter().map(|s| s.trace_id).collect();
        let ids: Vec<_> = ids.into_iter().collect();
        let dir = tempfile::tempdir().unwrap();

        let path = dir.path().join("new.db");
        let store = super::super::SqliteStore::open(&path).unwrap();
        // Text that does not compress, so the bodies take pages.
        let mut seed = 0x9e37_79b9_u64;
        let mut noise = || -> String {
            (0..4000)
                .map(|_| {
                    seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    char::from(b'a' + (seed >> 59) as u8 % 26)
                })
                .collect()
        };
        for round in 0..20u8 {
            let mut batch = spans.clone();
            for s in &mut batch {
                s.trace_id.0[0] = round;
                s.input = Some(spanlens_core::Payload::from_text(&noise(), None));
            }
            store.write("p", batch).await.unwrap();
        }
        assert_eq!(pragma(&path, "auto_vacuum"), 2, "incremental");
        let full = pragma(&path, "page_count");
        let all = Expiry::Everything {
            before: Timestamp(u64::MAX / 2),
        };
        // In steps, as the sweeper erases: each gives back a bounded number of pages.
        while !store.expire("p", all, 1_000).await.unwrap().is_empty() {}
        assert_eq!(store.count_spans("p").await.unwrap(), 0);
        let after = pragma(&path, "page_count");
        assert!(after * 2 < full, "{full} pages before, {after} after");
        drop(store);

        let path = dir.path().join("old.db");
        let store = super::super::SqliteStore::open(&path).unwrap();
        store.write("p", spans.clone()).await.unwrap();
        drop(store);
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "DROP INDEX traces_payloads; ALTER TABLE traces DROP COLUMN payloads_cleared; \
             PRAGMA auto_vacuum = NONE; VACUUM;",
        )
        .unwrap();
        mark_as_version(&conn, 12);
        drop(conn);
        assert_eq!(pragma(&path, "auto_vacuum"), 0);
        let store = super::super::SqliteStore::open(&path).unwrap();
        assert_eq!(store.schema_info().unwrap().0, latest_version());
        assert_eq!(
            pragma(&path, "auto_vacuum"),
            0,
            "unchanged without a VACUUM"
        );
        let cleared = Expiry::Payloads {
            before: Timestamp(u64::MAX / 2),
        };
        let step = store.expire("p", cleared, 10_000).await.unwrap();
        assert_eq!(step.payloads, spans.len() as u64);
        assert!(store.expire("p", cleared, 10_000).await.unwrap().is_empty());
        let gone = store.delete_traces("p", &ids).await.unwrap();
        assert_eq!(gone.spans, spans.len() as u64);
        assert_eq!(store.count_spans("p").await.unwrap(), 0);
    }

    /// A version-13 file gets its full-text index from migration 14: every stored span found
    /// by its name and content words; payload expiry then leaves the names only.
    #[tokio::test]
    async fn a_version_13_database_gets_its_full_text_index_from_migration_14() {
        use crate::store::{Eraser, Expiry};
        use crate::ListQuery;
        use spanlens_core::Timestamp;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        let mut spans = varied_spans();
        spans[0].input = Some(spanlens_core::Payload::from_text(
            "Needle in a haystack",
            None,
        ));
        spans[1].name = "Distinct-Name".into();
        let named = "name DISTINCT".to_string();
        let store = super::super::SqliteStore::open(&path).unwrap();
        store.write("p", spans.clone()).await.unwrap();
        drop(store);
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("DROP TABLE span_text; ALTER TABLE spans DROP COLUMN text_key;")
            .unwrap();
        mark_as_version(&conn, 13);
        drop(conn);
        let store = super::super::SqliteStore::open(&path).unwrap();
        assert_eq!(store.schema_info().unwrap().0, latest_version());
        let found = |q: &str| {
            let mut lq = ListQuery::new("p");
            lq.filter.content = Some(q.to_string());
            let store = &store;
            async move {
                store
                    .list_traces(&lq)
                    .await
                    .unwrap()
                    .items
                    .into_iter()
                    .map(|t| t.trace_id)
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(found("HAYSTACK needle").await, [spans[0].trace_id]);
        assert_eq!(found(&named).await, [spans[1].trace_id]);
        let cleared = Expiry::Payloads {
            before: Timestamp(u64::MAX / 2),
        };
        store.expire("p", cleared, 10_000).await.unwrap();
        assert!(found("needle").await.is_empty(), "payloads are gone");
        assert_eq!(found(&named).await, [spans[1].trace_id]);
        // New spans of a stored trace are keyed after its backfilled ones.
        let mut later = spans[0].clone();
        later.span_id = spanlens_core::SpanId([0x77; 8]);
        later.input = Some(spanlens_core::Payload::from_text("second needle", None));
        store.write("p", vec![later]).await.unwrap();
        assert_eq!(found("needle").await, [spans[0].trace_id]);
    }
}
