//! The SQLite backend: one file in WAL mode, one writer thread doing group commit, and a small
//! pool of read-only connections that read concurrently with it.

mod calls;
mod checkpoint;
mod contract;
mod log_events;
mod media;
mod query;
mod rollups;
mod schema;
mod scores;
mod search;
mod state;
mod writer;
mod writers;

// The backend-neutral parts, under the names the SQLite modules use.
use crate::facts::read::project_name;
use crate::facts::{chunk, prepare, summary};

use crate::error::StoreError;
use checkpoint::CheckpointShared;
use prepare::PreparedSpan;
use rusqlite::{Connection, OpenFlags};
use spanlens_core::Span;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use writer::{EraseJob, EraseRequest, Job, Work, Writer, WriterShared};

pub use schema::APPLICATION_ID;

/// How hard a commit works to survive a power cut, traded against ingest speed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `synchronous=NORMAL`: a committed batch survives a crash or `kill -9` of the process; a
    /// power loss or OS crash may roll back the last commits since the previous checkpoint
    /// (the database stays consistent).
    #[default]
    Normal,
    /// `synchronous=FULL`: every commit is fsynced before it is acknowledged, so it survives a
    /// power loss too, at a large cost in commits per second.
    Full,
}

/// Tuning of the SQLite backend; the defaults suit one server on a small machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteOptions {
    /// Read-only connections in the pool (queries beyond this wait for a free one).
    pub read_connections: usize,
    /// Spans accepted but not yet committed before `submit` answers `Busy`; bounds memory.
    pub max_pending_spans: usize,
    /// Submissions waiting in the queue before `submit` answers `Busy`.
    pub max_pending_batches: usize,
    /// Largest number of spans the writer puts in one transaction.
    pub max_spans_per_transaction: usize,
    /// Commit durability.
    pub durability: Durability,
    /// Page cache of the write connection, MiB.
    pub writer_cache_mib: usize,
    /// Page cache of each read connection, MiB.
    pub reader_cache_mib: usize,
    /// WAL size past which the writer checkpoints itself, MiB (bounds the `-wal` file).
    pub wal_limit_mib: usize,
    /// Page size of a new database file, bytes (a power of two from 512 to 65536; ignored for
    /// an existing file). Large pages suit this append-heavy, scan-heavy workload.
    pub page_size: u32,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            read_connections: 4,
            max_pending_spans: 100_000,
            max_pending_batches: 4096,
            max_spans_per_transaction: 50_000,
            durability: Durability::Normal,
            writer_cache_mib: 64,
            reader_cache_mib: 32,
            wal_limit_mib: 256,
            page_size: 16384,
        }
    }
}

/// How far opening an older database has come in upgrading it: migration 5 reads every span
/// once to build the rollups, which takes minutes on tens of millions of spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpgradeProgress {
    /// The schema version being built.
    pub version: i64,
    /// What is being done, with the unit of `done` and `total` in parentheses.
    pub step: &'static str,
    /// Items done so far.
    pub done: u64,
    /// Items in all.
    pub total: u64,
}

/// Counters of the writer, so operators and tests can see group commit and backlog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriterStats {
    /// Transactions committed.
    pub transactions: u64,
    /// Submissions committed.
    pub batches: u64,
    /// Spans committed.
    pub spans: u64,
    /// Submissions whose transaction failed.
    pub failed_batches: u64,
    /// Spans accepted and not yet committed.
    pub pending_spans: usize,
}

/// The SQLite implementation of [`crate::Store`]: the embedded default of `spanlens serve`.
pub struct SqliteStore {
    path: PathBuf,
    sender: Option<SyncSender<Work>>,
    writer: Option<JoinHandle<()>>,
    checkpointer: Option<JoinHandle<()>>,
    checkpoint: Arc<CheckpointShared>,
    shared: Arc<WriterShared>,
    max_pending_spans: usize,
    /// What reads (and the small writes beside spans) need, shared with the blocking tasks
    /// that run them.
    readers: Arc<Readers>,
    /// This store's place among the processes writing the file (last: left after the writer
    /// thread has stopped).
    _writers: writers::Writers,
}

/// The read pool and the side writer, behind an `Arc` so a blocking task can own a handle.
struct Readers {
    pool: ReadPool,
    /// Scores, GenAI log events and shared state are written here, apart from the span writer
    /// (SQLite serialises the two).
    side_writer: Mutex<Connection>,
}

impl Readers {
    /// The side writer, locked (a panic while it was held does not poison it for good).
    fn side(&self) -> MutexGuard<'_, Connection> {
        self.side_writer.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .field("stats", &self.writer_stats())
            .finish()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` with default options.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_with(path, SqliteOptions::default())
    }

    /// Opens (creating if needed) the database at `path`: sets WAL and the pragmas, applies
    /// pending migrations, refuses a newer schema, and starts the writer thread.
    pub fn open_with(
        path: impl AsRef<Path>,
        options: SqliteOptions,
    ) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_with_progress(path, options, &mut |_| {})
    }

    /// Like [`open_with`](SqliteStore::open_with), telling `progress` how far an upgrade of an
    /// older database has come (every million spans or hundred thousand traces).
    pub fn open_with_progress(
        path: impl AsRef<Path>,
        options: SqliteOptions,
        progress: &mut dyn FnMut(UpgradeProgress),
    ) -> Result<SqliteStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        let open_err = |reason: String| StoreError::Open {
            path: path.clone(),
            reason,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| open_err(format!("cannot create {}: {e}", dir.display())))?;
        }
        let mut conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| open_err(e.to_string()))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(|e| open_err(e.to_string()))?;
        let page_size = options.page_size;
        if !(512..=65536).contains(&page_size) || !page_size.is_power_of_two() {
            return Err(open_err(format!(
                "page size {page_size} is not a power of two from 512 to 65536"
            )));
        }
        // Only takes effect on a new, empty file.
        conn.pragma_update(None, "page_size", page_size)
            .map_err(|e| open_err(e.to_string()))?;
        // So that deletions and expiry can give freed pages back (`incremental_vacuum`). It can
        // only be chosen before the first table exists: a file made without it reuses freed
        // pages but keeps them until an operator runs `VACUUM` (which then switches it over).
        let objects: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
            .map_err(|e| open_err(e.to_string()))?;
        if objects == 0 {
            conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")
                .map_err(|e| open_err(e.to_string()))?;
        }
        // Identify the file before touching it, so a foreign database is never switched to WAL.
        schema::migrate(&mut conn, &path, &mut |version, p| {
            progress(UpgradeProgress {
                version,
                step: p.step,
                done: p.done,
                total: p.total,
            })
        })?;
        // Words a stopped process had not put into the full-text index yet go in now, unless
        // another process writes the file: its words are still in its memory.
        let lock = writers::lock_path(&path);
        let (writers, alone) = writers::Writers::join(&path)
            .map_err(|e| open_err(format!("cannot lock {}: {e}", lock.display())))?;
        if alone {
            match search::backlog::recover(&conn) {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    "full-text search: indexed {n} spans a stopped writer had left out"
                ),
                // The mark stays for the next open; the store works meanwhile, and search
                // misses those spans until then.
                Err(e) => tracing::warn!(
                    "full-text search: could not index the spans a stopped writer left out: {e}"
                ),
            }
            writers
                .share()
                .map_err(|e| open_err(format!("cannot lock {}: {e}", lock.display())))?;
        }
        schema::configure_writer(
            &conn,
            options.durability == Durability::Full,
            mib_to_kib(options.writer_cache_mib),
            mib_to_kib(options.wal_limit_mib).saturating_mul(1024),
        )
        .map_err(open_err)?;

        let pool = ReadPool {
            path: path.clone(),
            cache_kib: mib_to_kib(options.reader_cache_mib),
            max: options.read_connections.max(1),
            state: Mutex::new(PoolState::default()),
            cond: Condvar::new(),
        };
        // Open one reader now so a problem shows at open time, not on the first query.
        drop(pool.get()?);

        let ckpt_conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .and_then(|c| {
            c.busy_timeout(std::time::Duration::from_secs(10))
                .map(|()| c)
        })
        .map_err(|e| open_err(format!("checkpoint connection: {e}")))?;
        let page_size: i64 = conn
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .map_err(|e| open_err(e.to_string()))?;
        let ckpt_shared = Arc::new(CheckpointShared::default());
        let ckpt_for_thread = ckpt_shared.clone();
        let checkpointer = std::thread::Builder::new()
            .name("spanlens-ckpt".into())
            .spawn(move || {
                checkpoint::run(
                    ckpt_conn,
                    ckpt_for_thread,
                    std::time::Duration::from_millis(250),
                )
            })
            .map_err(|e| open_err(format!("cannot start the checkpoint thread: {e}")))?;

        let shared = Arc::new(WriterShared::default());
        let (sender, receiver) = sync_channel::<Work>(options.max_pending_batches.max(1));
        let wal_limit_frames = i64::try_from(options.wal_limit_mib.saturating_mul(1 << 20))
            .unwrap_or(i64::MAX)
            / page_size.max(512);
        let mut writer = Writer::new(
            conn,
            shared.clone(),
            options.max_spans_per_transaction,
            ckpt_shared.clone(),
            wal_limit_frames,
        );
        writer
            .load_coarse_state()
            .map_err(|e| open_err(format!("reading the rollups: {e}")))?;
        let handle = std::thread::Builder::new()
            .name("spanlens-writer".into())
            .spawn(move || writer.run(receiver))
            .map_err(|e| open_err(format!("cannot start the writer thread: {e}")))?;
        let score_writer = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .and_then(|c| {
            c.busy_timeout(std::time::Duration::from_secs(10))?;
            Ok(c)
        })
        .map_err(|e| open_err(e.to_string()))?;
        Ok(SqliteStore {
            readers: Arc::new(Readers {
                pool,
                side_writer: Mutex::new(score_writer),
            }),
            path,
            sender: Some(sender),
            writer: Some(handle),
            checkpointer: Some(checkpointer),
            checkpoint: ckpt_shared,
            shared,
            max_pending_spans: options.max_pending_spans.max(1),
            _writers: writers,
        })
    }

    /// The database file this store writes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A snapshot of the writer's counters.
    pub fn writer_stats(&self) -> WriterStats {
        WriterStats {
            transactions: self.shared.transactions.load(Ordering::Relaxed),
            batches: self.shared.batches.load(Ordering::Relaxed),
            spans: self.shared.spans.load(Ordering::Relaxed),
            failed_batches: self.shared.failed_batches.load(Ordering::Relaxed),
            pending_spans: self.shared.pending_spans.load(Ordering::Relaxed),
        }
    }

    /// Newest schema version this build writes.
    pub fn latest_schema_version() -> i64 {
        schema::latest_version()
    }

    /// The schema version of the database file at `path`, read without migrating it; `None`
    /// when there is no such file or it cannot be read. Lets a caller say that an upgrade,
    /// which rewrites tables and may take a while on a large database, is about to run.
    pub fn schema_version_of(path: impl AsRef<Path>) -> Option<i64> {
        let path = path.as_ref();
        if !path.is_file() {
            return None;
        }
        let conn =
            Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).ok()?;
        schema::current_version(&conn)
    }

    /// The schema version of the open database and the `(version, applied_ns)` of each
    /// applied migration, so an operator (or a test) can see what was migrated when.
    pub fn schema_info(&self) -> Result<(i64, Vec<(i64, i64)>), StoreError> {
        let conn = self.readers.pool.get()?;
        let version = schema::current_version(&conn).unwrap_or(0);
        let applied = schema::applied_migrations(&conn)
            .map_err(|e| StoreError::database("reading migrations", e))?;
        Ok((version, applied))
    }

    /// Stops accepting writes, commits everything queued, and waits for the writer to finish.
    pub fn close(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.sender.take();
        if let Some(h) = self.writer.take() {
            let _ = h.join();
        }
        self.checkpoint.stop();
        if let Some(h) = self.checkpointer.take() {
            let _ = h.join();
        }
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn mib_to_kib(mib: usize) -> i64 {
    i64::try_from(mib.saturating_mul(1024)).unwrap_or(i64::MAX)
}

/// An engine error as the caller should see it: a full disk, an I/O failure or a lock that
/// outlived the busy timeout are transient (`Unavailable`: answer 503 and retry later, the
/// store recovers by itself once space or the lock returns); anything else is a database error.
pub(crate) fn sqlite_error(op: &'static str, err: &rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode as C;
    let code = match err {
        rusqlite::Error::SqliteFailure(e, _) => Some(e.code),
        _ => None,
    };
    match code {
        Some(C::DiskFull) => StoreError::Unavailable {
            op,
            reason: "disk full".into(),
            disk_full: true,
        },
        Some(C::SystemIoFailure | C::DatabaseBusy | C::DatabaseLocked | C::OutOfMemory) => {
            StoreError::Unavailable {
                op,
                reason: err.to_string(),
                disk_full: false,
            }
        }
        _ => StoreError::database(op, err),
    }
}

#[derive(Default)]
struct PoolState {
    idle: Vec<Connection>,
    open: usize,
}

/// Read-only connections, opened lazily up to `max`; WAL lets them read while the writer commits.
struct ReadPool {
    path: PathBuf,
    cache_kib: i64,
    max: usize,
    state: Mutex<PoolState>,
    cond: Condvar,
}

impl ReadPool {
    fn lock(&self) -> MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self) -> Result<PooledConn<'_>, StoreError> {
        let mut st = self.lock();
        loop {
            if let Some(conn) = st.idle.pop() {
                return Ok(PooledConn {
                    pool: self,
                    conn: Some(conn),
                });
            }
            if st.open < self.max {
                st.open += 1;
                drop(st);
                return match self.open_reader() {
                    Ok(conn) => Ok(PooledConn {
                        pool: self,
                        conn: Some(conn),
                    }),
                    Err(e) => {
                        self.lock().open -= 1;
                        self.cond.notify_one();
                        Err(e)
                    }
                };
            }
            st = self.cond.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn open_reader(&self) -> Result<Connection, StoreError> {
        let err = |e: rusqlite::Error| StoreError::Open {
            path: self.path.clone(),
            reason: format!("read connection: {e}"),
        };
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(err)?;
        schema::configure_reader(&conn, self.cache_kib).map_err(err)?;
        Ok(conn)
    }
}

/// A connection borrowed from the pool; it goes back when dropped.
struct PooledConn<'a> {
    pool: &'a ReadPool,
    conn: Option<Connection>,
}

impl Deref for PooledConn<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        // Only `Drop` takes the connection out, so it is always present here.
        self.conn
            .as_ref()
            .expect("pooled connection present until drop")
    }
}

impl Drop for PooledConn<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool.lock().idle.push(conn);
            self.pool.cond.notify_one();
        }
    }
}

/// Writes the bodies of each trace's spans into one chunk and flattens the spans into rows, on
/// the submitting thread, so the writer only inserts.
fn chunk_by_trace(
    mut spans: Vec<Span>,
    project: &str,
) -> Result<(Vec<PreparedSpan>, Vec<chunk::Chunk>), StoreError> {
    let traces: Vec<[u8; 16]> = spans.iter().map(|s| s.trace_id.0).collect();
    let mut order: Vec<usize> = (0..spans.len()).collect();
    order.sort_by_key(|&i| traces[i]);
    let mut chunks = Vec::new();
    for group in order.chunk_by(|&a, &b| traces[a] == traces[b]) {
        let mut framer = chunk::Framer::new();
        for &i in group {
            let span = &mut spans[i];
            // Which span of a call is counted is the store's to decide (`calls.rs`).
            prepare::own(span, project);
            framer.push(&span.span_id.0, |buf| prepare::write_body(span, buf))?;
        }
        chunks.push(framer.finish(traces[group[0]]));
    }
    let rows = spans.into_iter().map(prepare::prepare).collect();
    Ok((rows, chunks))
}
