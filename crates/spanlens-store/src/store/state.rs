//! Small named documents that every server on one store shares (alert states), so a fleet
//! of collectors behind one database agrees on them and a restart keeps them.

use crate::error::StoreError;
use async_trait::async_trait;

/// Longest key accepted, bytes.
pub const MAX_STATE_KEY: usize = 200;
/// Largest document accepted, bytes: states are small; a runaway caller gets an error.
pub const MAX_STATE_VALUE: usize = 4 << 20;

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

    /// Saves `value` under `key`, replacing what was there.
    async fn save_state(&self, key: &str, value: &str) -> Result<(), StoreError>;
}

/// Checks a key and a document against the limits every backend applies.
pub fn check_state(key: &str, value: Option<&str>) -> Result<(), StoreError> {
    if key.is_empty() || key.len() > MAX_STATE_KEY {
        return Err(StoreError::InvalidQuery(format!(
            "state key of {} bytes: use 1 to {MAX_STATE_KEY}",
            key.len()
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
