//! Deleting traces (the right to erasure) and expiring old data (retention).

use crate::error::StoreError;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use spanlens_core::{Timestamp, TraceId};

/// Traces one transaction of [`Eraser::delete_session`] and [`Eraser::delete_user`] removes at
/// most: a user with 100,000 traces is erased in 200 short transactions, so ingest waits for
/// one of them at a time and neither side holds every trace in memory.
pub const ERASE_BATCH: usize = 500;

/// Largest `limit` one [`Eraser::expire`] call takes; more is clamped to it, so a caller's
/// mistake cannot hold the writer for long.
pub const MAX_EXPIRE_LIMIT: usize = 10_000;

/// What a deletion or an expiry removed or cleared. Counts are of what existed: deleting an
/// unknown trace, or one already deleted, counts nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Erased {
    /// Traces removed whole (summary, spans and everything derived from them).
    pub traces: u64,
    /// Spans removed with those traces.
    pub spans: u64,
    /// Scores removed: those attached to the traces or their spans (and, for a session, to the
    /// session itself).
    pub scores: u64,
    /// Spans whose payloads were cleared ([`Expiry::Payloads`]: every span of each trace it
    /// cleared); the spans themselves stay.
    pub payloads: u64,
}

impl Erased {
    /// True when nothing was removed or cleared: a sweeper calling
    /// [`expire`](Eraser::expire) in a loop stops then.
    pub fn is_empty(&self) -> bool {
        *self == Erased::default()
    }

    /// Adds another call's counts to these (saturating).
    pub fn add(&mut self, other: Erased) {
        self.traces = self.traces.saturating_add(other.traces);
        self.spans = self.spans.saturating_add(other.spans);
        self.scores = self.scores.saturating_add(other.scores);
        self.payloads = self.payloads.saturating_add(other.payloads);
    }
}

/// A retention rule applied by [`Eraser::expire`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "expire", rename_all = "snake_case")]
pub enum Expiry {
    /// Delete whole traces whose last activity (the latest end of their spans, the trace
    /// summary's end) is before `before`, as [`Eraser::delete_traces`] does. A trace still
    /// receiving spans after the cutoff is kept whole rather than cut in two.
    Everything {
        /// The cutoff.
        before: Timestamp,
    },
    /// Keep the spans (timings, tokens, cost, metrics stay as they are) but clear what they
    /// said: inputs, outputs, input and output messages, tool definitions, prompt variables,
    /// the source attributes those were read from, GenAI content events (stored with the span
    /// or apart as log events) and the content-search text. Applied to whole traces whose last
    /// activity is before `before`, so every span cleared ended before it.
    Payloads {
        /// The cutoff.
        before: Timestamp,
    },
}

impl Expiry {
    /// The cutoff of the rule.
    pub fn before(&self) -> Timestamp {
        match self {
            Expiry::Everything { before } | Expiry::Payloads { before } => *before,
        }
    }
}

/// Deletes traces and expires old data.
///
/// What callers observe, whatever the backend:
/// - Once a call returns, no read shows what it removed: trace lists and outcome counts,
///   sessions, metrics, time series, daily cost, facets, span counts, scores, log events and
///   content search are exact over what is left, as if the removed spans had never arrived.
/// - Only the named project is touched; an id that does not exist (or no longer does) counts
///   nothing and is not an error. A span that arrives later for a deleted trace id starts a new
///   trace like any other.
/// - Each call works in short transactions of at most [`ERASE_BATCH`] traces (or the `limit`
///   given), so ingest keeps going meanwhile.
#[async_trait]
pub trait Eraser: Send + Sync {
    /// Removes the given traces of `project` entirely: spans, summary, facets, scores attached
    /// to them or their spans, log events, call index and retry rows, bodies, and their share
    /// of the metric rollups. At most [`ERASE_BATCH`] ids are taken in one transaction.
    async fn delete_traces(&self, project: &str, traces: &[TraceId]) -> Result<Erased, StoreError>;

    /// Removes every trace of the session (and the scores given to the session itself), a
    /// batch of [`ERASE_BATCH`] traces per transaction. An empty id, which would name every
    /// trace without a session, is refused.
    async fn delete_session(&self, project: &str, session_id: &str) -> Result<Erased, StoreError>;

    /// Removes every trace of the user (a trace's user is its summary's), a batch of
    /// [`ERASE_BATCH`] traces per transaction. An empty id is refused.
    async fn delete_user(&self, project: &str, user_id: &str) -> Result<Erased, StoreError>;

    /// Applies `rule` to the oldest traces of `project` it selects, in one short transaction,
    /// and says what it did; a sweeper calls it again until it returns [`Erased::is_empty`].
    /// `limit` (clamped to [`MAX_EXPIRE_LIMIT`]; 0 does nothing) bounds the traces deleted by
    /// [`Expiry::Everything`], and the spans cleared by [`Expiry::Payloads`] (whole traces
    /// while their spans fit in it, and always at least one trace).
    async fn expire(&self, project: &str, rule: Expiry, limit: usize)
        -> Result<Erased, StoreError>;
}
