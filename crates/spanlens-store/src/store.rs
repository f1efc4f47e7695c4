//! The `Store` contract: what the server needs from a database, independent of which one.

use crate::error::StoreError;
use crate::ticket::CommitTicket;
use crate::types::{
    ListQuery, MetricRow, MetricsQuery, Page, ScoreQuery, ScoreTrendRow, SessionDetail,
    SessionQuery, SessionSummary, TraceDetail, TraceDetailJson, TraceSummary, WriteReceipt,
};
use spanlens_core::evals::Score;
use spanlens_core::{Span, Timestamp, TraceId};

/// A span database, so the server can run on SQLite today and PostgreSQL or ClickHouse later
/// behind the same contract tests.
///
/// Every method is synchronous and takes `&self`; implementations are `Send + Sync` and are
/// shared as `Arc<dyn Store>`. Writes never block an async runtime: `submit` only queues the
/// batch (or refuses it with `StoreError::Busy`) and returns a [`CommitTicket`] that can be
/// `.await`ed. Reads do blocking I/O, so an async server calls them inside `spawn_blocking`.
pub trait Store: Send + Sync {
    /// Queues canonical spans for `project` (empty means [`crate::DEFAULT_PROJECT`]); the ticket
    /// resolves once the transaction containing them has committed. The batch's project
    /// overrides `Span::project`. The same `(project, trace_id, span_id)` written twice is stored
    /// once: the later write wins. Refuses with `StoreError::Busy` when the queue is full.
    fn submit(&self, project: &str, spans: Vec<Span>) -> Result<CommitTicket, StoreError>;

    /// Submits and blocks until committed: the convenience form for threads and tests.
    fn write(&self, project: &str, spans: Vec<Span>) -> Result<WriteReceipt, StoreError> {
        self.submit(project, spans)?.wait()
    }

    /// One page of trace summaries matching the query's filters, in its sort order.
    fn list_traces(&self, query: &ListQuery) -> Result<Page<TraceSummary>, StoreError>;

    /// A trace's summary and all its spans, or `None` when the project has no such trace.
    fn get_trace(
        &self,
        project: &str,
        trace_id: TraceId,
    ) -> Result<Option<TraceDetail>, StoreError>;

    /// Like `get_trace`, but with each span as its stored canonical JSON, so a server can
    /// stream a large trace without decoding and re-encoding every span.
    fn get_trace_json(
        &self,
        project: &str,
        trace_id: TraceId,
    ) -> Result<Option<TraceDetailJson>, StoreError>;

    /// One page of sessions (traces grouped by `session_id`), most recently active first.
    fn list_sessions(&self, query: &SessionQuery) -> Result<Page<SessionSummary>, StoreError>;

    /// A session's rollup and its traces, or `None` when the project has no such session.
    fn get_session(
        &self,
        project: &str,
        session_id: &str,
    ) -> Result<Option<SessionDetail>, StoreError>;

    /// Span metrics (counts, tokens, cost, latency and TTFT percentiles) grouped as asked.
    fn metrics(&self, query: &MetricsQuery) -> Result<Vec<MetricRow>, StoreError>;

    /// Number of distinct spans stored for a project (0 for an unknown project).
    fn count_spans(&self, project: &str) -> Result<u64, StoreError>;

    /// Every project that has received spans, sorted by name.
    fn projects(&self) -> Result<Vec<String>, StoreError>;

    /// Stores validated scores for `project`; returns their ids in order. All or none are stored.
    fn add_scores(&self, project: &str, scores: &[Score]) -> Result<Vec<i64>, StoreError>;

    /// Scores matching the query, newest first.
    fn list_scores(&self, query: &ScoreQuery) -> Result<Vec<Score>, StoreError>;

    /// Daily count and mean per numeric or boolean score name, created in `[from, to)`.
    fn score_trends(
        &self,
        project: &str,
        from: Option<Timestamp>,
        to: Option<Timestamp>,
    ) -> Result<Vec<ScoreTrendRow>, StoreError>;
}
