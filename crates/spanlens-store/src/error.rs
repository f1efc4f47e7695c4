//! The one error type every store operation returns, so callers can map failures to HTTP codes.

use std::path::PathBuf;

/// Why a store operation failed; each variant tells the server which status to answer with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The write queue is full: the caller should answer 429/503 with `Retry-After` and try later.
    #[error("store is busy: {pending_spans} spans waiting to be committed (limit {limit_spans}); retry later")]
    Busy {
        /// Spans accepted but not yet committed when the submission was refused.
        pending_spans: usize,
        /// The configured limit on uncommitted spans.
        limit_spans: usize,
    },
    /// The store has shut down (or its writer thread is gone), so nothing more can be written.
    #[error("store is closed")]
    Closed,
    /// The database file was written by a newer Spanlens whose schema this build does not know.
    #[error(
        "database {path} has schema version {found}, newer than the {supported} this build of spanlens supports; \
         upgrade spanlens or use another data directory"
    )]
    SchemaTooNew {
        /// The database file.
        path: PathBuf,
        /// Schema version recorded in the file.
        found: i64,
        /// Newest schema version this build knows.
        supported: i64,
    },
    /// The file is a SQLite database that belongs to some other application.
    #[error("{path} is not a spanlens database (application_id {application_id:#x})")]
    NotSpanlens {
        /// The database file.
        path: PathBuf,
        /// The application id found in the file header.
        application_id: i64,
    },
    /// The database could not be opened or prepared for use.
    #[error("cannot open database {path}: {reason}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A database server could not be reached or refused the connection (a PostgreSQL URI
    /// with a wrong host, port, database or password): the URI is shown with its password
    /// hidden.
    #[error("cannot connect to {uri}: {reason}")]
    Connect {
        /// The URI, password hidden.
        uri: String,
        /// What went wrong.
        reason: String,
    },
    /// A pagination cursor is malformed or belongs to a different sort order.
    #[error("invalid cursor: {0}")]
    InvalidCursor(String),
    /// A query parameter is out of range or inconsistent (the server answers 400).
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    /// A span could not be encoded for storage.
    #[error("cannot encode span {span_id} of trace {trace_id}: {reason}")]
    Encode {
        /// Trace of the offending span.
        trace_id: String,
        /// The offending span.
        span_id: String,
        /// What went wrong.
        reason: String,
    },
    /// A stored row could not be decoded (the database was edited by hand or is damaged).
    #[error("corrupt row in {table}: {reason}")]
    Corrupt {
        /// Table holding the row.
        table: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The database cannot write or read for now (disk full, I/O error, locked) while doing
    /// `op`: the same request may succeed later, so the server answers 503 with `Retry-After`.
    #[error("store unavailable while {op}: {reason}")]
    Unavailable {
        /// What the store was doing.
        op: &'static str,
        /// Why, e.g. `disk full`.
        reason: String,
        /// The failure is a full disk.
        disk_full: bool,
    },
    /// The database engine reported an error while doing `op`.
    #[error("database error while {op}: {message}")]
    Database {
        /// What the store was doing.
        op: &'static str,
        /// The engine's message.
        message: String,
    },
}

/// What a caller should do about a failure, whatever the transport: the one classification
/// every answer (HTTP status, gRPC code, CLI exit status) is derived from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Transient (queue full, disk full, I/O, lock): the same request may succeed later.
    Retry,
    /// The request itself is wrong (a bad cursor or query): sending it again will not help.
    BadRequest,
    /// The store failed in a way the caller cannot fix.
    Internal,
}

impl StoreError {
    /// The failure's class (see [`FailureKind`]).
    pub fn kind(&self) -> FailureKind {
        match self {
            StoreError::Busy { .. }
            | StoreError::Unavailable { .. }
            | StoreError::Connect { .. } => FailureKind::Retry,
            StoreError::InvalidQuery(_) | StoreError::InvalidCursor(_) => FailureKind::BadRequest,
            _ => FailureKind::Internal,
        }
    }

    /// Wraps an engine error with the operation it interrupted, keeping the message readable.
    pub fn database(op: &'static str, err: impl std::fmt::Display) -> StoreError {
        StoreError::Database {
            op,
            message: err.to_string(),
        }
    }

    /// True when the failure is transient and the same request may succeed later (429/503).
    pub fn is_retryable(&self) -> bool {
        self.kind() == FailureKind::Retry
    }
}

/// Shorthand for results of store operations.
pub type StoreResult<T> = Result<T, StoreError>;
