//! `/api/v1/projects/{project}/…`: a project's settings, changed by its admins.

use serde::{Deserialize, Serialize};
pub use spanlens_core::redact::{RedactionRule, RedactionSettings};

/// `GET` and `PUT /api/v1/projects/{project}/redaction`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedactionAnswer {
    /// The project.
    pub project: String,
    /// What the project saved (`PUT` replaces it; an empty object removes it).
    pub settings: RedactionSettings,
    /// What the server applies to every project besides (`serve --redact …`).
    pub server: RedactionSettings,
}
