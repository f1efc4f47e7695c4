//! `/api/v1/sessions`: sessions and one session's traces.

use crate::traces::TraceRow;
use serde::{Deserialize, Serialize};
use spanlens_store::{Page, SessionSummary};

/// `GET /api/v1/sessions`: one page of sessions, most recently active first.
pub type SessionPage = Page<SessionSummary>;

/// `GET /api/v1/sessions/{id}`: the session's rollup and its traces.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionAnswer {
    /// The rollup (`SessionRow` in openapi.json).
    pub session: SessionSummary,
    /// Its traces, oldest first.
    pub traces: Vec<TraceRow>,
}
