//! `/api/v1/alerts`: alert rules and their state.

use serde::{Deserialize, Serialize};
use spanlens_core::alerts::{AlertRule, AlertState};

/// One rule as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertView {
    /// The rule.
    pub rule: AlertRule,
    /// Its state.
    pub state: AlertState,
    /// Why the last measurement or delivery failed, if it did.
    pub last_error: Option<String>,
    /// Notifications delivered so far.
    pub notifications: u64,
}

/// `GET /api/v1/alerts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertsAnswer {
    /// Whether the server was started with alert rules.
    pub configured: bool,
    /// Every rule (none when not configured).
    pub alerts: Vec<AlertView>,
}
