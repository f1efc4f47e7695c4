//! `/api/v1/recovery`: the error-recovery report.

use serde::{Deserialize, Serialize};
use spanlens_core::recovery::RecoveryReport;
use spanlens_core::Timestamp;

/// `GET /api/v1/recovery`: the report over `[from, to)` of a project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecoveryAnswer {
    /// Project.
    pub project: String,
    /// Start of the range.
    pub from: Timestamp,
    /// End of the range (exclusive).
    pub to: Timestamp,
    /// The report.
    #[serde(flatten)]
    pub report: RecoveryReport,
}
