//! The PostgreSQL schema as versioned migrations recorded in `schema_migrations`.
//!
//! Collectors that start together migrate once: each takes a session-level advisory lock
//! before reading which versions are applied. A migration's tables are made in one
//! transaction; its indexes are made afterwards with `CREATE INDEX CONCURRENTLY`, one statement
//! at a time outside any transaction, so a later migration that indexes a large table does not
//! stop ingest while it builds. The version is recorded once its indexes exist.

use super::{db, error_text};
use crate::error::StoreError;
use std::path::PathBuf;
use tokio_postgres::Client;

/// Key of the advisory lock held while migrating ("SPLN" + 1).
const MIGRATION_LOCK: i64 = 0x5350_4C4E_0000_0001;

/// One schema step.
struct Migration {
    version: i64,
    description: &'static str,
    /// Run in one transaction.
    tables: &'static str,
    /// `(name, definition)`: each run as `CREATE INDEX CONCURRENTLY name ON definition`.
    indexes: &'static [(&'static str, &'static str)],
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description:
            "projects, spans, trace summaries, call index, log events, scores, shared state",
        // Text that is sorted or compared for ordering is `COLLATE "C"`, so PostgreSQL orders it
        // byte by byte as Rust and SQLite do, whatever the database's locale.
        tables: r#"
CREATE TABLE projects (
    id          BIGSERIAL PRIMARY KEY,
    name        TEXT COLLATE "C" NOT NULL UNIQUE,
    created_ns  BIGINT NOT NULL
);
CREATE TABLE spans (
    project_id          BIGINT NOT NULL REFERENCES projects (id),
    trace_id            BYTEA NOT NULL,
    span_id             BYTEA NOT NULL,
    parent_span_id      BYTEA,
    start_ns            BIGINT NOT NULL,
    end_ns              BIGINT,
    duration_ns         BIGINT,
    kind                TEXT COLLATE "C" NOT NULL,
    status              TEXT COLLATE "C" NOT NULL,
    name                TEXT COLLATE "C" NOT NULL,
    request_model       TEXT COLLATE "C",
    response_model      TEXT COLLATE "C",
    provider            TEXT COLLATE "C",
    agent_name          TEXT COLLATE "C",
    user_id             TEXT COLLATE "C",
    session_id          TEXT COLLATE "C",
    service             TEXT COLLATE "C",
    tool_name           TEXT COLLATE "C",
    error_type          TEXT,
    input_tokens        BIGINT NOT NULL,
    output_tokens       BIGINT NOT NULL,
    cache_read_tokens   BIGINT NOT NULL,
    cache_write_tokens  BIGINT NOT NULL,
    reasoning_tokens    BIGINT NOT NULL,
    total_tokens        BIGINT NOT NULL,
    cost_nano           BIGINT,
    unpriced            BOOLEAN NOT NULL,
    ttft_ns             BIGINT,
    retry_count         BIGINT NOT NULL,
    tags                TEXT[] NOT NULL,
    body_codec          SMALLINT NOT NULL,
    body                BYTEA NOT NULL,
    PRIMARY KEY (project_id, trace_id, span_id)
);
-- Bodies are zstd-compressed already: PostgreSQL need not try again.
ALTER TABLE spans ALTER COLUMN body SET STORAGE EXTERNAL;
CREATE TABLE traces (
    project_id      BIGINT NOT NULL REFERENCES projects (id),
    trace_id        BYTEA NOT NULL,
    name            TEXT COLLATE "C" NOT NULL,
    start_ns        BIGINT NOT NULL,
    end_ns          BIGINT NOT NULL,
    duration_ns     BIGINT NOT NULL,
    status          TEXT COLLATE "C" NOT NULL,
    span_count      BIGINT NOT NULL,
    error_count     BIGINT NOT NULL,
    input_tokens    BIGINT NOT NULL,
    output_tokens   BIGINT NOT NULL,
    total_tokens    BIGINT NOT NULL,
    cost_nano       BIGINT NOT NULL,
    unpriced_count  BIGINT NOT NULL,
    user_id         TEXT COLLATE "C" NOT NULL,
    session_id      TEXT COLLATE "C" NOT NULL,
    root_span_id    BYTEA,
    service         TEXT COLLATE "C",
    tags            TEXT[] NOT NULL,
    kinds           TEXT[] NOT NULL,
    models          TEXT[] NOT NULL,
    providers       TEXT[] NOT NULL,
    search          TEXT NOT NULL,
    PRIMARY KEY (project_id, trace_id)
);
CREATE TABLE llm_calls (
    project_id          BIGINT NOT NULL,
    trace_id            BYTEA NOT NULL,
    span_id             BYTEA NOT NULL,
    parent_span_id      BYTEA,
    response_id         TEXT,
    provider            TEXT,
    request_model       TEXT,
    response_model      TEXT,
    start_ns            BIGINT NOT NULL,
    end_ns              BIGINT NOT NULL,
    -- The span's own input, output, cache read, cache write, reasoning and total tokens,
    -- cost and unpriced mark, given back to its row when it is counted again.
    counts              BIGINT[] NOT NULL,
    cost_nano           BIGINT,
    unpriced            BOOLEAN NOT NULL,
    detail              BIGINT NOT NULL,
    duplicate_of        BYTEA,
    PRIMARY KEY (project_id, trace_id, span_id)
);
CREATE TABLE log_events (
    id           BIGSERIAL PRIMARY KEY,
    project_id   BIGINT NOT NULL,
    trace_id     BYTEA NOT NULL,
    span_id      BYTEA NOT NULL,
    digest       BIGINT NOT NULL,
    time_ns      BIGINT NOT NULL,
    event        TEXT NOT NULL,
    received_ns  BIGINT NOT NULL,
    UNIQUE (project_id, trace_id, span_id, digest)
);
CREATE TABLE scores (
    id          BIGSERIAL PRIMARY KEY,
    project_id  BIGINT NOT NULL,
    trace_id    BYTEA,
    span_id     BYTEA,
    session_id  TEXT,
    name        TEXT COLLATE "C" NOT NULL,
    data_type   TEXT NOT NULL,
    value       DOUBLE PRECISION,
    label       TEXT,
    source      TEXT NOT NULL,
    comment     TEXT,
    created_ns  BIGINT NOT NULL
);
CREATE TABLE shared_state (
    key         TEXT PRIMARY KEY,
    value       TEXT NOT NULL,
    updated_ns  BIGINT NOT NULL
);
"#,
        indexes: &[
            ("spans_time", "spans (project_id, start_ns)"),
            ("traces_start", "traces (project_id, start_ns, trace_id)"),
            ("traces_end", "traces (project_id, end_ns)"),
            (
                "traces_duration",
                "traces (project_id, duration_ns, trace_id)",
            ),
            ("traces_cost", "traces (project_id, cost_nano, trace_id)"),
            (
                "traces_tokens",
                "traces (project_id, total_tokens, trace_id)",
            ),
            (
                "traces_span_count",
                "traces (project_id, span_count, trace_id)",
            ),
            ("traces_name", "traces (project_id, name, trace_id)"),
            ("traces_status", "traces (project_id, status, trace_id)"),
            ("traces_user", "traces (project_id, user_id, trace_id)"),
            (
                "traces_session",
                "traces (project_id, session_id, start_ns)",
            ),
            ("traces_tags", "traces USING gin (tags)"),
            ("traces_kinds", "traces USING gin (kinds)"),
            ("traces_models", "traces USING gin (models)"),
            ("traces_providers", "traces USING gin (providers)"),
            ("scores_trace", "scores (project_id, trace_id, name)"),
            ("scores_session", "scores (project_id, session_id)"),
            ("scores_name", "scores (project_id, name, created_ns)"),
        ],
    },
    Migration {
        version: 2,
        description: "span bodies in one chunk per trace and submission",
        // A span row names the chunk holding its body; rows written before keep their own body.
        // Adding a column without a default and dropping NOT NULL change the catalog only, so
        // the lock on `spans` is short whatever its size.
        tables: r#"
CREATE SEQUENCE trace_chunk_ids;
CREATE TABLE trace_chunks (
    chunk_id    BIGINT PRIMARY KEY,
    project_id  BIGINT NOT NULL,
    trace_id    BYTEA NOT NULL,
    codec       SMALLINT NOT NULL,
    body        BYTEA NOT NULL
);
-- Chunks are zstd-compressed already: PostgreSQL need not try again.
ALTER TABLE trace_chunks ALTER COLUMN body SET STORAGE EXTERNAL;
ALTER TABLE spans ADD COLUMN chunk_id BIGINT;
ALTER TABLE spans ALTER COLUMN body DROP NOT NULL;
ALTER TABLE spans ALTER COLUMN body_codec DROP NOT NULL;
"#,
        indexes: &[],
    },
    Migration {
        version: 3,
        description: "metric rollups per hour and day, the marks of hours to rebuild, and \
                      the spans the recovery report reads",
        // Every hour that holds spans starts marked, so the rows are built in the background
        // (reads are exact meanwhile, from the spans). The scan takes no lock writers wait on.
        tables: r#"
CREATE TABLE rollups (
    project_id  BIGINT NOT NULL,
    family      SMALLINT NOT NULL,
    level       SMALLINT NOT NULL,
    bucket_ns   BIGINT NOT NULL,
    body        BYTEA NOT NULL,
    PRIMARY KEY (project_id, family, level, bucket_ns)
);
-- Marked by the database's clock, which every collector shares.
CREATE TABLE rollup_dirty (
    id          BIGSERIAL PRIMARY KEY,
    project_id  BIGINT NOT NULL,
    hour_ns     BIGINT NOT NULL,
    marked_ns   BIGINT NOT NULL
        DEFAULT (extract(epoch FROM clock_timestamp()) * 1000000000)::BIGINT
);
INSERT INTO rollup_dirty (project_id, hour_ns)
SELECT project_id, start_ns - ((start_ns % 3600000000000) + 3600000000000) % 3600000000000
FROM spans GROUP BY 1, 2;
-- Any statement that updates span rows (a span sent again, the same-call rule, an operator's
-- UPDATE) marks the hours the rows started in before it; writers mark where new rows start.
CREATE FUNCTION spanlens_mark_updated_hours() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO rollup_dirty (project_id, hour_ns)
    SELECT DISTINCT project_id,
        start_ns - ((start_ns % 3600000000000) + 3600000000000) % 3600000000000
    FROM updated_before;
    RETURN NULL;
END
$$;
-- What the recovery report reads (a retried span, a rate-limit snapshot), so it skips the
-- other model calls; unknown (NULL) on rows written before, which it reads as before.
ALTER TABLE spans ADD COLUMN for_recovery BOOLEAN;
-- What the report reads of each such span: its retry facts and its rate-limit snapshot.
CREATE TABLE span_recovery (
    project_id   BIGINT NOT NULL,
    trace_id     BYTEA NOT NULL,
    span_id      BYTEA NOT NULL,
    start_ns     BIGINT NOT NULL,
    provider     TEXT,
    tool         TEXT,
    retries      BIGINT,
    recovered    BOOLEAN,
    recovery_ms  DOUBLE PRECISION,
    errors       BYTEA,
    rate_at_ns   BIGINT,
    rate_sample  BYTEA,
    PRIMARY KEY (project_id, trace_id, span_id)
);
CREATE TRIGGER spans_mark_updated_hours AFTER UPDATE ON spans
    REFERENCING OLD TABLE AS updated_before
    FOR EACH STATEMENT EXECUTE FUNCTION spanlens_mark_updated_hours();
"#,
        indexes: &[
            ("rollup_dirty_hour", "rollup_dirty (project_id, hour_ns)"),
            (
                "spans_recovery",
                "spans (project_id, start_ns) WHERE for_recovery IS NOT FALSE",
            ),
            ("span_recovery_time", "span_recovery (project_id, start_ns)"),
        ],
    },
    Migration {
        version: 4,
        description: "span and summary rows without a foreign key to their project",
        // The key's check ran per inserted row and share-locked the project's row from every
        // writer at once (multixacts); the writer takes a project's id from `projects` before it
        // writes, and nothing deletes projects. Dropping a constraint changes the catalog only.
        tables: r#"
ALTER TABLE spans DROP CONSTRAINT IF EXISTS spans_project_id_fkey;
ALTER TABLE traces DROP CONSTRAINT IF EXISTS traces_project_id_fkey;
"#,
        indexes: &[],
    },
    Migration {
        version: 5,
        description: "deletion and retention: chunks by trace, payload expiry marks",
        // A column with a constant default changes the catalog only. Deleting a trace deletes
        // its chunks by trace (older copies of re-sent spans are named by no span row), and
        // payload expiry reads the oldest traces still holding payloads from a partial index.
        tables: r#"
ALTER TABLE traces ADD COLUMN IF NOT EXISTS payloads_cleared BOOLEAN NOT NULL DEFAULT FALSE;
"#,
        indexes: &[
            ("trace_chunks_trace", "trace_chunks (project_id, trace_id)"),
            (
                "traces_payloads",
                "traces (project_id, end_ns) WHERE NOT payloads_cleared",
            ),
        ],
    },
    Migration {
        version: 6,
        description: "full-text search: each span's distinct words",
        // The words of `spanlens_core::content` (name, payloads, messages), lowered, as an
        // array the GIN index keeps word by word: a search is an array containment. Spans
        // stored before this version have none (they are not found by full-text search).
        tables: r#"
ALTER TABLE spans ADD COLUMN IF NOT EXISTS words TEXT[] NOT NULL DEFAULT '{}';
"#,
        indexes: &[("spans_words", "spans USING gin (words)")],
    },
    Migration {
        version: 7,
        description: "who gave a score (a reviewer in a review queue)",
        // A nullable column without a default changes the catalog only.
        tables: r#"
ALTER TABLE scores ADD COLUMN IF NOT EXISTS author TEXT;
"#,
        indexes: &[],
    },
    Migration {
        version: 8,
        description: "prompt templates: each span's, and each trace's sets for the list filter",
        // Columns without a default (spans) or with a constant one (traces) change the catalog
        // only. Rows written before have none: their traces are found by the prompt filter once
        // a span of them is written again.
        tables: r#"
ALTER TABLE spans ADD COLUMN IF NOT EXISTS prompt_name TEXT;
ALTER TABLE spans ADD COLUMN IF NOT EXISTS prompt_version TEXT;
ALTER TABLE traces ADD COLUMN IF NOT EXISTS prompts TEXT[] NOT NULL DEFAULT '{}';
ALTER TABLE traces ADD COLUMN IF NOT EXISTS prompt_versions TEXT[] NOT NULL DEFAULT '{}';
"#,
        indexes: &[
            ("traces_prompts", "traces USING gin (prompts)"),
            (
                "traces_prompt_versions",
                "traces USING gin (prompt_versions)",
            ),
        ],
    },
    Migration {
        version: 9,
        description: "media blobs stored once per project and content hash, and their referrers",
        // New tables: nothing existing changes. A blob is kept while a row of `media_refs`
        // names its hash; erasing a trace deletes its rows there and then the blobs left bare.
        tables: r#"
CREATE TABLE IF NOT EXISTS media_blobs (
    project    TEXT NOT NULL,
    hash       TEXT NOT NULL,
    mime       TEXT NOT NULL,
    bytes      BYTEA NOT NULL,
    size       BIGINT NOT NULL,
    created_ns BIGINT NOT NULL,
    PRIMARY KEY (project, hash)
);
CREATE TABLE IF NOT EXISTS media_refs (
    project  TEXT NOT NULL,
    trace_id BYTEA NOT NULL,
    hash     TEXT NOT NULL,
    PRIMARY KEY (project, trace_id, hash)
);
"#,
        indexes: &[("media_refs_hash", "media_refs (project, hash)")],
    },
];

/// Newest schema version this build writes.
pub fn latest_version() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// Applies the pending migrations under the migration lock; refuses a database whose schema is
/// newer than this build's.
pub async fn migrate(client: &mut Client, shown_uri: &str) -> Result<(), StoreError> {
    let e = db("migrating the schema");
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(&e)?;
    let result = migrate_locked(client, shown_uri).await;
    // Released whatever happened (a failed migration leaves the lock to the next collector).
    let unlock = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(&e);
    result.and(unlock.map(drop))
}

async fn migrate_locked(client: &mut Client, shown_uri: &str) -> Result<(), StoreError> {
    let e = db("migrating the schema");
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version     BIGINT PRIMARY KEY,
                description TEXT NOT NULL,
                applied_ns  BIGINT NOT NULL
            )",
        )
        .await
        .map_err(&e)?;
    let current: i64 = client
        .query_one(
            "SELECT coalesce(max(version), 0) FROM schema_migrations",
            &[],
        )
        .await
        .map_err(&e)?
        .get(0);
    if current > latest_version() {
        return Err(StoreError::SchemaTooNew {
            path: PathBuf::from(shown_uri),
            found: current,
            supported: latest_version(),
        });
    }
    for m in MIGRATIONS.iter().filter(|m| m.version > current) {
        let fail = |what: &str, err: tokio_postgres::Error| StoreError::Open {
            path: PathBuf::from(shown_uri),
            reason: format!(
                "migration {} ({}): {what}: {}",
                m.version,
                m.description,
                error_text(&err)
            ),
        };
        // A migration whose tables were made but whose indexes were not (a collector stopped
        // half-way) goes on with the indexes.
        let tx = client.transaction().await.map_err(&e)?;
        let tables_done: bool = tx
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = -($1::BIGINT))",
                &[&m.version],
            )
            .await
            .map_err(&e)?
            .get(0);
        if !tables_done {
            tx.batch_execute(m.tables)
                .await
                .map_err(|x| fail("tables", x))?;
            // Marked with the negated version until its indexes exist.
            tx.execute(
                "INSERT INTO schema_migrations (version, description, applied_ns) \
                 VALUES (-($1::BIGINT), $2, $3)",
                &[&m.version, &m.description, &now_ns()],
            )
            .await
            .map_err(&e)?;
        }
        tx.commit().await.map_err(&e)?;
        for (name, def) in m.indexes {
            create_index(client, name, def)
                .await
                .map_err(|x| fail(name, x))?;
        }
        client
            .execute(
                "UPDATE schema_migrations SET version = $1, applied_ns = $2 WHERE version = -($1::BIGINT)",
                &[&m.version, &now_ns()],
            )
            .await
            .map_err(&e)?;
    }
    Ok(())
}

/// `CREATE INDEX CONCURRENTLY`, dropping first an invalid copy a failed build left behind.
async fn create_index(client: &Client, name: &str, def: &str) -> Result<(), tokio_postgres::Error> {
    let valid: Option<bool> = client
        .query_opt(
            "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
             WHERE c.relname = $1 AND pg_table_is_visible(c.oid)",
            &[&name],
        )
        .await?
        .map(|r| r.get(0));
    match valid {
        Some(true) => return Ok(()),
        Some(false) => {
            client
                .batch_execute(&format!("DROP INDEX CONCURRENTLY IF EXISTS {name}"))
                .await?
        }
        None => {}
    }
    // One statement per call: a multi-statement string would run as one transaction, where
    // CONCURRENTLY is refused.
    client
        .batch_execute(&format!("CREATE INDEX CONCURRENTLY {name} ON {def}"))
        .await
}

/// Now, ns since the epoch.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
