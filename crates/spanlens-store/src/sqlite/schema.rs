//! The SQLite schema as versioned migrations, and the connection settings every connection uses.

use crate::error::StoreError;
use rusqlite::{Connection, OptionalExtension};
use std::path::Path;

/// `PRAGMA application_id` of a Spanlens database ("SPLN"), so another program's file is refused.
pub const APPLICATION_ID: i64 = 0x5350_4C4E;

/// Facet codes of `trace_facets.facet`: span-level values a trace is filtered by.
pub mod facet {
    /// A span kind present in the trace.
    pub const KIND: i64 = 1;
    /// A request or response model used in the trace.
    pub const MODEL: i64 = 2;
    /// A provider called in the trace.
    pub const PROVIDER: i64 = 3;
    /// A tag of any span of the trace.
    pub const TAG: i64 = 4;
}

/// Migrations in order; migration `i` brings the schema to version `i + 1`. Never edit a shipped
/// entry: append a new one.
const MIGRATIONS: &[(&str, &str)] = &[(
    "spans, bodies, trace summaries, facets, projects",
    r#"
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
)];

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
    Ok(())
}

/// Connection settings for a read-only pool connection.
pub fn configure_reader(conn: &Connection, cache_kib: i64) -> Result<(), rusqlite::Error> {
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "cache_size", -cache_kib)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.pragma_update(None, "mmap_size", 1_i64 << 30)?;
    conn.pragma_update(None, "query_only", true)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

/// Checks the file belongs to Spanlens and applies pending migrations, each in its own
/// transaction; refuses a database written by a newer schema.
pub fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
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
    for (i, (description, sql)) in MIGRATIONS.iter().enumerate() {
        let target = i as i64 + 1;
        if target <= version {
            continue;
        }
        let tx = conn.transaction().map_err(db)?;
        tx.execute_batch(sql).map_err(db)?;
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
