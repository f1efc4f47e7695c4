//! Small named documents that every server on one store shares (alert states), so a fleet
//! of collectors behind one database agrees on them and a restart keeps them.

use crate::error::StoreError;
use async_trait::async_trait;

/// Longest key accepted, bytes.
pub const MAX_STATE_KEY: usize = 200;
/// Largest document accepted, bytes: states are small; a runaway caller gets an error.
pub const MAX_STATE_VALUE: usize = 4 << 20;
/// Most documents one [`SharedState::list_state`] returns: lists are of small things an admin
/// made (keys, users, project settings), never of data.
pub const MAX_LISTED_STATE: usize = 10_000;

/// A key → document map shared by every server on the store.
///
/// What callers observe: `load_state` returns the last document saved under the key by any
/// server (none before the first save); a save replaces the whole document at once, so a
/// reader never sees half of one. Keys longer than [`MAX_STATE_KEY`] or documents larger
/// than [`MAX_STATE_VALUE`] are refused with [`StoreError::InvalidQuery`].
#[async_trait]
pub trait SharedState: Send + Sync {
    /// The document saved under `key`, if any.
    async fn load_state(&self, key: &str) -> Result<Option<String>, StoreError>;

    /// Saves `value` under `key`, replacing what was there. An empty document is refused
    /// (it is how a deletion is recorded where rows cannot be removed at once).
    async fn save_state(&self, key: &str, value: &str) -> Result<(), StoreError>;

    /// Every key that starts with `prefix`, with its document, in key order; at most
    /// [`MAX_LISTED_STATE`] of them (the first ones).
    async fn list_state(&self, prefix: &str) -> Result<Vec<(String, String)>, StoreError>;

    /// Removes the document under `key`; nothing happens when there is none.
    async fn delete_state(&self, key: &str) -> Result<(), StoreError>;

    /// Takes the lease `name` for `holder` until `ttl` from now, or extends it when `holder`
    /// holds it already; false, changing nothing, while another holder's lease runs. Taking
    /// and checking are one atomic step, so of several servers asking at once exactly one gets
    /// it. Servers on one store use it to run a periodic job (alert evaluation) on one of them
    /// at a time: the holder renews it each round, and when it dies another takes over once
    /// `ttl` has passed. Leases live under `lease:{name}` keys of the shared state.
    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<bool, StoreError>;

    /// Gives the lease up if `holder` holds it, so another server can take it at once (a
    /// server that stops hands its jobs over without waiting for the lease to run out).
    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError>;
}

/// A lease as kept in the shared state.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Lease {
    /// Who holds it.
    pub holder: String,
    /// When it runs out, nanoseconds since the epoch (the store's clock).
    pub expires_ns: i64,
}

impl Lease {
    /// The shared-state key of the lease `name`.
    pub fn key(name: &str) -> String {
        format!("lease:{name}")
    }

    /// What `holder` asking for the lease at `now_ns` for `ttl_ns` leaves: the new lease when
    /// it gets it (`current` is free, run out, or its own), `None` when someone else holds it.
    pub fn decide(
        current: Option<&Lease>,
        holder: &str,
        now_ns: i64,
        ttl_ns: i64,
    ) -> Option<Lease> {
        match current {
            Some(c) if c.holder != holder && c.expires_ns > now_ns => None,
            _ => Some(Lease {
                holder: holder.to_string(),
                expires_ns: now_ns.saturating_add(ttl_ns),
            }),
        }
    }
}

/// Checks a key and a document against the limits every backend applies.
pub fn check_state(key: &str, value: Option<&str>) -> Result<(), StoreError> {
    if key.is_empty() || key.len() > MAX_STATE_KEY {
        return Err(StoreError::InvalidQuery(format!(
            "state key of {} bytes: use 1 to {MAX_STATE_KEY}",
            key.len()
        )));
    }
    if value == Some("") {
        return Err(StoreError::InvalidQuery(format!(
            "state {key:?}: an empty document (delete the key instead)"
        )));
    }
    if let Some(v) = value.filter(|v| v.len() > MAX_STATE_VALUE) {
        return Err(StoreError::InvalidQuery(format!(
            "state {key:?} of {} bytes is over the {MAX_STATE_VALUE}-byte limit",
            v.len()
        )));
    }
    Ok(())
}

/// Checks a key prefix for [`SharedState::list_state`]: like a key, but it may be empty.
pub fn check_prefix(prefix: &str) -> Result<(), StoreError> {
    if prefix.is_empty() {
        return Ok(());
    }
    check_state(prefix, None)
}
