//! Shared state on SQLite: one row per key in `shared_state`.

use crate::error::StoreError;
use rusqlite::{params, Connection, OptionalExtension};

/// The document saved under `key`, if any.
pub fn load(conn: &Connection, key: &str) -> Result<Option<String>, StoreError> {
    conn.prepare_cached("SELECT value FROM shared_state WHERE key = ?1")
        .and_then(|mut st| st.query_row([key], |r| r.get(0)).optional())
        .map_err(|e| StoreError::database("reading shared state", e))
}

/// Saves `value` under `key` in one statement, so a reader sees the old or the new document.
pub fn save(conn: &Connection, key: &str, value: &str) -> Result<(), StoreError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    conn.prepare_cached(
        "INSERT INTO shared_state (key, value, updated_ns) VALUES (?1, ?2, ?3) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_ns = excluded.updated_ns",
    )
    .and_then(|mut st| st.execute(params![key, value, now]))
    .map(drop)
    .map_err(|e| super::sqlite_error("saving shared state", &e))
}
