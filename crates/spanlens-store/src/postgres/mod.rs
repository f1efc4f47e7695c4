//! The PostgreSQL backend: several collectors may share one database.
//!
//! Everything runs on the caller's tokio runtime over a small connection pool (no blocking
//! hand-off). `submit` queues a batch for one writer task per store, which commits every batch
//! waiting into one transaction (group commit). Inside it, the writer takes a transaction-scoped
//! advisory lock per trace it touches, in a fixed order, then upserts the spans and rebuilds each
//! touched trace's summary from the spans stored for it: two collectors writing one trace queue
//! on that trace only, and the summary is the one a single collector would write.
//!
//! Pure logic (a span's facts, the summary state, the same-call rule, cursors, metric rows) is
//! shared with SQLite through `crate::facts`, `crate::rollup` and `spanlens_core`.

mod erase;
mod media;
mod read;
mod recovery;
mod rollups;
mod schema;
mod side;
mod sql;
mod store;
mod tls;
mod writer;

use crate::error::StoreError;
use crate::uri::redact;
use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// Tuning of the PostgreSQL backend; the defaults suit one collector beside others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresOptions {
    /// Connections in the pool, shared by reads, scans and the writers.
    pub connections: usize,
    /// Writer tasks committing from the one queue at once (each holds a connection while it
    /// commits): one collector's transactions overlap instead of waiting in a line.
    pub writers: usize,
    /// Spans accepted but not yet committed before `submit` answers `Busy`; bounds memory.
    pub max_pending_spans: usize,
    /// Submissions waiting in the queue before `submit` answers `Busy`.
    pub max_pending_batches: usize,
    /// Largest number of spans the writer puts in one transaction.
    pub max_spans_per_transaction: usize,
    /// How long to wait for the server when connecting.
    pub connect_timeout: Duration,
    /// How often this collector offers to rebuild metric rollups (one collector at a time
    /// does, under a lease); `None`: never (another collector or
    /// [`PostgresStore::refresh_rollups`] does).
    pub rollup_interval: Option<Duration>,
    /// An hour's rollups are rebuilt once no span has been written to it for this long, so the
    /// hour being written is not rebuilt over and over. (Until then reads take its spans.)
    pub rollup_settle: Duration,
    /// Rebuild every marked hour before each metrics read, so every answer comes from rollup
    /// rows where the range allows (tests; costs a write per read).
    pub refresh_before_reads: bool,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            connections: 12,
            writers: 4,
            max_pending_spans: 100_000,
            max_pending_batches: 4096,
            max_spans_per_transaction: 20_000,
            connect_timeout: Duration::from_secs(10),
            rollup_interval: Some(Duration::from_secs(2)),
            rollup_settle: Duration::from_secs(10),
            refresh_before_reads: false,
        }
    }
}

/// The PostgreSQL implementation of [`crate::Store`], opened from
/// `postgres://user:password@host:port/db`.
pub struct PostgresStore {
    /// The URI, password hidden, for messages.
    uri: String,
    pool: deadpool_postgres::Pool,
    sender: mpsc::Sender<writer::Job>,
    pending: Arc<AtomicUsize>,
    max_pending_spans: usize,
    refresh_before_reads: bool,
    /// Dropped with the store, which stops its rollup task.
    _alive: Arc<()>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("uri", &self.uri)
            .finish()
    }
}

impl PostgresStore {
    /// Connects with default options (see [`connect_with`](Self::connect_with)).
    pub async fn connect(uri: &str) -> Result<PostgresStore, StoreError> {
        PostgresStore::connect_with(uri, PostgresOptions::default()).await
    }

    /// Connects to the database `uri` names, applies pending migrations (one collector at a
    /// time: they wait on an advisory lock) and starts the writer task on the current tokio
    /// runtime. A server that cannot be reached is [`StoreError::Connect`], naming the URI
    /// with its password hidden.
    pub async fn connect_with(
        uri: &str,
        options: PostgresOptions,
    ) -> Result<PostgresStore, StoreError> {
        let shown = redact(uri.trim());
        let fail = |reason: String| StoreError::Connect {
            uri: shown.clone(),
            reason,
        };
        let tls = tls::parse(uri.trim()).map_err(&fail)?;
        let mut config: tokio_postgres::Config = tls
            .uri
            .parse()
            .map_err(|e| fail(format!("not a PostgreSQL URI: {e}")))?;
        let connector = tls::connector(&tls).map_err(&fail)?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(options.connect_timeout);
        }
        if config.get_application_name().is_none() {
            config.application_name("spanlens");
        }
        let manager = deadpool_postgres::Manager::from_config(
            config,
            connector,
            deadpool_postgres::ManagerConfig {
                recycling_method: deadpool_postgres::RecyclingMethod::Fast,
            },
        );
        let pool = deadpool_postgres::Pool::builder(manager)
            .max_size(options.connections.max(2))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| fail(e.to_string()))?;
        // Connect now, so a wrong host or password shows at open time, not on the first query.
        let mut client = pool.get().await.map_err(|e| fail(pool_reason(&e)))?;
        schema::migrate(&mut client, &shown).await?;
        drop(client);
        let pending = Arc::new(AtomicUsize::new(0));
        let (sender, receiver) = mpsc::channel(options.max_pending_batches.max(1));
        let w = writer::Writer {
            pool: pool.clone(),
            pending: pending.clone(),
            // Project ids already looked up (a project row is never deleted).
            projects: Arc::new(Mutex::new(HashMap::new())),
            max_txn_spans: options.max_spans_per_transaction.max(1),
        };
        let receiver = Arc::new(tokio::sync::Mutex::new(receiver));
        for _ in 0..options.writers.max(1) {
            tokio::spawn(w.clone().run(receiver.clone()));
        }
        let alive = Arc::new(());
        if let Some(every) = options.rollup_interval {
            tokio::spawn(rollups::keep_rebuilding(
                pool.clone(),
                Arc::downgrade(&alive),
                every,
                options.rollup_settle,
            ));
        }
        Ok(PostgresStore {
            uri: shown,
            pool,
            sender,
            pending,
            max_pending_spans: options.max_pending_spans.max(1),
            refresh_before_reads: options.refresh_before_reads,
            _alive: alive,
        })
    }

    /// Rebuilds the rollups of every hour written to so far, settled or not, whoever holds the
    /// rollup lease (for benchmarks and tests; collectors do it in the background). Returns
    /// the hours rebuilt.
    pub async fn refresh_rollups(&self) -> Result<usize, StoreError> {
        let mut client = self.client("rebuilding rollups").await?;
        let mut total = 0;
        loop {
            let (n, more) = rollups::refresh(&mut client, None, 16).await?;
            total += n;
            if !more {
                return Ok(total);
            }
        }
    }

    /// The URI of the database, password hidden.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// Newest schema version this build writes.
    pub fn latest_schema_version() -> i64 {
        schema::latest_version()
    }

    /// A pooled connection, or why none could be had (the server is unreachable: retry).
    async fn client(&self, op: &'static str) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(|e| StoreError::Unavailable {
            op,
            reason: pool_reason(&e),
            disk_full: false,
        })
    }
}

/// Why the pool could not hand out a connection, readable.
fn pool_reason(e: &deadpool_postgres::PoolError) -> String {
    match e {
        deadpool_postgres::PoolError::Backend(b) => error_text(b),
        other => other.to_string(),
    }
}

/// An engine error's text with the server's message, detail and hint when there are some.
fn error_text(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = format!("{}: {}", db.severity(), db.message());
            if let Some(d) = db.detail() {
                s.push_str(&format!(" ({d})"));
            }
            s
        }
        None => match std::error::Error::source(e) {
            Some(src) => format!("{e}: {src}"),
            None => e.to_string(),
        },
    }
}

/// An engine error as the caller should see it: a lost connection, a server shutting down or
/// short of resources, a deadlock or a serialisation failure are transient (`Unavailable`:
/// answer 503 and retry later); anything else is a database error.
pub(crate) fn pg_error(op: &'static str, e: &tokio_postgres::Error) -> StoreError {
    use tokio_postgres::error::SqlState;
    let transient = match e.code() {
        None => true,
        Some(code) => {
            let c = code.code();
            // 08: connection exception; 53: insufficient resources; 57P: operator intervention.
            c.starts_with("08")
                || c.starts_with("53")
                || c.starts_with("57P")
                || *code == SqlState::T_R_SERIALIZATION_FAILURE
                || *code == SqlState::T_R_DEADLOCK_DETECTED
                || *code == SqlState::LOCK_NOT_AVAILABLE
        }
    };
    if transient {
        StoreError::Unavailable {
            op,
            reason: error_text(e),
            disk_full: e.code() == Some(&SqlState::DISK_FULL),
        }
    } else {
        StoreError::database(op, error_text(e))
    }
}

/// Maps an engine error for `op` (for `map_err`).
fn db(op: &'static str) -> impl Fn(tokio_postgres::Error) -> StoreError {
    move |e| pg_error(op, &e)
}
