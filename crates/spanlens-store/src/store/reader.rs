//! Reading traces and sessions: the list pages, one trace, one session.

use crate::error::StoreError;
use crate::types::{
    ListQuery, Page, SessionDetail, SessionQuery, SessionSummary, TraceDetail, TraceDetailJson,
    TraceOutcomes, TraceRows, TraceSummary,
};
use async_trait::async_trait;
use spanlens_core::TraceId;

/// Reads traces and sessions.
///
/// What callers observe: a read sees every write whose ticket resolved before it started; a
/// trace's summary always agrees with its stored spans; a page cursor resumes exactly after the
/// last row of its page even while new traces arrive; one span that cannot be read is left out
/// and reported, never a reason to fail the read.
#[async_trait]
pub trait TraceReader: Send + Sync {
    /// One page of trace summaries matching the query's filters, in its sort order.
    async fn list_traces(&self, query: &ListQuery) -> Result<Page<TraceSummary>, StoreError>;

    /// How many of the traces matching the query's filters (its sort, limit and cursor are
    /// ignored) failed, and how many recovered from errors; the `status` and `recovered`
    /// conditions are ignored too, so the counts describe the list they would narrow.
    async fn trace_outcomes(&self, query: &ListQuery) -> Result<TraceOutcomes, StoreError>;

    /// A trace's summary and all its spans (with the GenAI log events stored for them merged
    /// in), or `None` when the project has no such trace.
    async fn get_trace(
        &self,
        project: &str,
        trace_id: TraceId,
    ) -> Result<Option<TraceDetail>, StoreError>;

    /// Like `get_trace`, but with each span as its stored canonical JSON, so a server can
    /// stream a large trace without decoding and re-encoding every span.
    async fn get_trace_json(
        &self,
        project: &str,
        trace_id: TraceId,
    ) -> Result<Option<TraceDetailJson>, StoreError>;

    /// A trace's spans as typed rows, read without their bodies, for the waterfall; `None`
    /// when the caller should read the bodies instead (`get_trace_json`): the backend keeps no
    /// such rows, the trace has an unclosed span (whose end is the trace's latest event time,
    /// which only the bodies hold), a row predates the columns, or there is no such trace.
    async fn get_trace_rows(
        &self,
        _project: &str,
        _trace_id: TraceId,
    ) -> Result<Option<TraceRows>, StoreError> {
        Ok(None)
    }

    /// One page of sessions (traces grouped by `session_id`), most recently active first.
    async fn list_sessions(&self, query: &SessionQuery)
        -> Result<Page<SessionSummary>, StoreError>;

    /// A session's rollup and its traces, or `None` when the project has no such session.
    async fn get_session(
        &self,
        project: &str,
        session_id: &str,
    ) -> Result<Option<SessionDetail>, StoreError>;

    /// Number of distinct spans stored for a project (0 for an unknown project).
    async fn count_spans(&self, project: &str) -> Result<u64, StoreError>;

    /// Every project that has received spans, sorted by name.
    async fn projects(&self) -> Result<Vec<String>, StoreError>;
}
