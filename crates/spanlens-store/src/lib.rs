//! Storage for Spanlens: the [`Store`] trait the server writes spans to and queries, and its
//! embedded SQLite backend ([`SqliteStore`]).
//!
//! Spans arrive already normalised and priced by `spanlens-core`. The store keeps one wide row
//! per `(project, trace_id, span_id)` (the same span sent twice is stored once, last write wins),
//! the full canonical span as JSON for the detail view, and a summary row per trace that is
//! recomputed whenever one of its spans is written, so it stays right when spans arrive late,
//! out of order or twice.
//!
//! Every backend must pass the contract suite: `spanlens_store::contract` (feature
//! `contract-suite`), run for a backend by `store_contract_suite!` (see the README).
//!
//! ```no_run
//! use spanlens_store::{ListQuery, SpanWriter, SqliteStore, TraceReader};
//! # async fn f() -> Result<(), spanlens_store::StoreError> {
//! let store = SqliteStore::open("spanlens-data/spanlens.db")?;
//! let receipt = store.write("default", Vec::new()).await?; // resolves once committed
//! let page = store.list_traces(&ListQuery::new("default")).await?;
//! # let _ = (receipt, page); Ok(()) }
//! ```
#![deny(missing_docs)]

#[cfg(feature = "contract-suite")]
pub mod contract;
mod cursor;
pub mod domain;

/// The storage traits in one import, for code that calls a concrete backend's methods.
pub mod prelude {
    pub use crate::store::{
        Analytics, Eraser, MediaStore, ScoreStore, SharedState, SpanWriter, Store, TraceReader,
    };
}
#[cfg(feature = "clickhouse")]
pub mod clickhouse;
mod error;
mod facts;
#[cfg(feature = "postgres")]
mod postgres;
mod queue;
mod rollup;
mod sqlite;
mod store;
mod ticket;
#[cfg(any(feature = "postgres", feature = "clickhouse"))]
mod tls_roots;
mod types;
mod uri;

#[cfg(feature = "clickhouse")]
pub use clickhouse::{ClickHouseOptions, ClickHouseStore};
pub use error::{FailureKind, StoreError, StoreResult};
#[cfg(feature = "postgres")]
pub use postgres::{PostgresOptions, PostgresStore};
pub use sqlite::{
    Durability, SqliteOptions, SqliteStore, UpgradeProgress, WriterStats, APPLICATION_ID,
};
pub use store::{
    check_media_hash, check_state, is_media_hash, Analytics, Erased, Eraser, Expiry, Lease,
    MediaStore, MediaUsage, ScanSender, ScoreStore, SharedState, SpanBatches, SpanWriter, Store,
    StoredMedia, TraceReader, ERASE_BATCH, MAX_EXPIRE_LIMIT, MAX_LISTED_STATE, MAX_STATE_KEY,
    MAX_STATE_VALUE,
};
pub use ticket::CommitTicket;
pub use types::{
    percentile_nearest_rank, DailyCost, GroupBy, ListQuery, LogEventsReceipt, MetricRow,
    MetricSeries, MetricsQuery, Page, Percentiles, RepriceModel, RepriceReport, ScoreFilter,
    ScoreQuery, ScoreTrendRow, SessionDetail, SessionQuery, SessionSummary, SortField, SortOrder,
    SpanRow, SpanScan, TraceDetail, TraceDetailJson, TraceFilter, TraceOutcomes, TraceRows,
    TraceSummary, Unreadable, UnreadableSpan, WriteReceipt, DEFAULT_PAGE_SIZE, DEFAULT_PROJECT,
    MAX_PAGE_SIZE, MAX_PERCENTILE_ERROR, STATUS_MESSAGE_PREFIX_CHARS,
};
pub use uri::{redact, StoreUri, StoreUriError};
