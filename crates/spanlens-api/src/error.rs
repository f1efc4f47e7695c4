//! The body of every 4xx and 5xx answer of the query API.

use serde::{Deserialize, Serialize};

/// `{"error": "…"}`: what was wrong, naming the parameter or value at fault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The message.
    pub error: String,
}
