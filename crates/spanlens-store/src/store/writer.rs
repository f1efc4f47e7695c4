//! Writing spans and the GenAI events that arrive apart from them.

use crate::error::StoreError;
use crate::ticket::CommitTicket;
use crate::types::{LogEventsReceipt, WriteReceipt};
use async_trait::async_trait;
use spanlens_core::otlp::logs::LogEvent;
use spanlens_core::Span;

/// Takes canonical spans in.
///
/// What callers observe, whatever the backend:
/// - [`submit`](SpanWriter::submit) never blocks: it queues the batch or refuses it at once
///   with [`StoreError::Busy`] (memory stays bounded; answer 503 and let the client retry).
/// - Once the [`CommitTicket`] resolves `Ok`, every span of the batch is durable and every read
///   that starts afterwards sees it, with its trace's summary, facets and rollups updated.
/// - The same `(project, trace_id, span_id)` written twice is stored once; the later write
///   wins, and the summaries come out as if only it had been sent.
/// - Spans of one trace may arrive in any order, in any number of batches: the trace's summary
///   is the same as if they had arrived together.
#[async_trait]
pub trait SpanWriter: Send + Sync {
    /// Queues canonical spans for `project` (empty means [`crate::DEFAULT_PROJECT`]); the ticket
    /// resolves once they are committed. The batch's project overrides `Span::project`.
    fn submit(&self, project: &str, spans: Vec<Span>) -> Result<CommitTicket, StoreError>;

    /// Submits and waits until committed.
    async fn write(&self, project: &str, spans: Vec<Span>) -> Result<WriteReceipt, StoreError> {
        self.submit(project, spans)?.await
    }

    /// Keeps GenAI events that arrived as OTLP log records (`spanlens_core::otlp::logs`) for
    /// their spans, which may be stored before or after them: trace reads merge them into
    /// their spans. An event already stored for its span is not stored again; a span holds at
    /// most `spanlens_core::limits::MAX_EVENTS` of them. All or none are stored, and a read
    /// after this returns sees them.
    async fn add_log_events(
        &self,
        project: &str,
        events: &[LogEvent],
    ) -> Result<LogEventsReceipt, StoreError>;
}
