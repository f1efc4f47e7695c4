//! Who may do what on a Spanlens server.
//!
//! - [`Scope`]: what a credential allows in its project: `ingest` (send spans, logs and
//!   scores), `read` (the query API and the UI), `admin` (everything, and the project's keys and
//!   settings).
//! - [`keys`]: API keys. A key belongs to one project and decides it: what it sends is stored
//!   there whatever a header or resource attribute says. Only a SHA-256 of its secret is kept;
//!   the secret is shown once, when the key is made.
//! - [`accounts`]: people who sign in to the UI, with an Argon2id password and a role per
//!   project (viewer, member, admin), and their sessions.
//! - [`audit`]: the log of admin actions (keys, people, deletions, settings), per project.
//! - [`directory`]: where keys, accounts and sessions live: documents of the store's shared
//!   state, so every server on one store knows the same ones.

pub mod accounts;
pub mod audit;
pub mod directory;
pub mod keys;
mod scope;

pub use accounts::{Account, AccountView, Role, Session};
pub use audit::AuditEntry;
pub use directory::{Directory, DirectoryError};
pub use keys::{ApiKey, Credential, KeyView, NewKey};
pub use scope::{Quota, Scope};

/// Now, nanoseconds since the epoch.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
