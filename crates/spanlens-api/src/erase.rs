//! `DELETE /api/v1/traces/{id}`, `/api/v1/sessions/{id}` and `/api/v1/users/{id}`.

use serde::{Deserialize, Serialize};
pub use spanlens_store::Erased;

/// What a deletion removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasedAnswer {
    /// The project.
    pub project: String,
    /// The counts removed (traces, spans, scores).
    pub erased: Erased,
}
