//! `GET /api/v1/compare`: two traces side by side.

use crate::traces::TraceRow;
use serde::{Deserialize, Serialize};
pub use spanlens_core::compare::{
    CompareRow, CompareTotals, Comparison, DiffOp, DiffPiece, Granularity, SpanDelta, SpanFacts,
    TextDiff, TotalsDelta, TraceTotals,
};
use spanlens_store::UnreadableSpan;

/// The value of `b` that asks for A's previous run: the latest trace of the same name in the
/// same project that started before A.
pub const PREVIOUS: &str = "previous";

/// `GET /api/v1/compare?a=…&b=…`: both traces' rows, and their spans aligned with B minus A
/// (`spanlens_core::compare`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompareAnswer {
    /// Trace A's row.
    pub a: TraceRow,
    /// Trace B's row.
    pub b: TraceRow,
    /// B was found as A's previous run (`b=previous`), not named.
    pub b_is_previous: bool,
    /// Aligned rows, totals and notes.
    #[serde(flatten)]
    pub comparison: Comparison,
    /// Stored spans of either trace left out because they cannot be read; absent when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unreadable_spans: Vec<UnreadableSpan>,
}
