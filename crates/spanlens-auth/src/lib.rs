//! Who may do what on a Spanlens server.
//!
//! - [`Scope`]: what a credential allows in its project: `ingest` (send spans, logs and
//!   scores), `read` (the query API and the UI), `admin` (everything, and the project's keys and
//!   settings).
//! - [`keys`]: API keys. A key belongs to one project and decides it: what it sends is stored
//!   there whatever a header or resource attribute says. Only a SHA-256 of its secret is kept;
//!   the secret is shown once, when the key is made.
//! - [`directory`]: where keys live: documents of the store's shared state, so every server
//!   on one store knows the same keys.

pub mod directory;
pub mod keys;
mod scope;

pub use directory::{Directory, DirectoryError};
pub use keys::{ApiKey, Credential, KeyView, NewKey};
pub use scope::Scope;

/// Now, nanoseconds since the epoch.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
