//! Answers of the ingest routes that are ours (the OTLP routes answer as OTLP prescribes).

use serde::{Deserialize, Serialize};

/// `POST /v1/traces/ingest` (OpenAI Agents SDK exporter): what was kept and what was not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentsIngestAnswer {
    /// Spans and traces stored.
    pub accepted: u64,
    /// Items refused.
    pub rejected: u64,
    /// Why items were refused (the first few reasons); empty when none were.
    pub errors: String,
}
