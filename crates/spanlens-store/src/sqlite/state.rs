//! Shared state on SQLite: one row per key in `shared_state`.

use crate::error::StoreError;
use crate::store::Lease;
use rusqlite::{params, Connection, OptionalExtension};

/// The document saved under `key`, if any.
pub fn load(conn: &Connection, key: &str) -> Result<Option<String>, StoreError> {
    conn.prepare_cached("SELECT value FROM shared_state WHERE key = ?1")
        .and_then(|mut st| st.query_row([key], |r| r.get(0)).optional())
        .map_err(|e| StoreError::database("reading shared state", e))
}

/// Every key starting with `prefix` and its document, in key order, at most `limit`.
pub fn list(
    conn: &Connection,
    prefix: &str,
    limit: usize,
) -> Result<Vec<(String, String)>, StoreError> {
    let fail = |e| StoreError::database("listing shared state", e);
    let mut st = conn
        .prepare_cached(
            "SELECT key, value FROM shared_state WHERE substr(key, 1, length(?1)) = ?1 \
             ORDER BY key LIMIT ?2",
        )
        .map_err(fail)?;
    let rows = st
        .query_map(params![prefix, limit as i64], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .map_err(fail)?;
    rows.collect::<Result<_, _>>().map_err(fail)
}

/// Removes the document under `key`.
pub fn delete(conn: &Connection, key: &str) -> Result<(), StoreError> {
    conn.prepare_cached("DELETE FROM shared_state WHERE key = ?1")
        .and_then(|mut st| st.execute([key]))
        .map(drop)
        .map_err(|e| super::sqlite_error("deleting shared state", &e))
}

/// Now, nanoseconds since the epoch.
fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Saves `value` under `key` in one statement, so a reader sees the old or the new document.
pub fn save(conn: &Connection, key: &str, value: &str) -> Result<(), StoreError> {
    let now = now_ns();
    conn.prepare_cached(
        "INSERT INTO shared_state (key, value, updated_ns) VALUES (?1, ?2, ?3) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_ns = excluded.updated_ns",
    )
    .and_then(|mut st| st.execute(params![key, value, now]))
    .map(drop)
    .map_err(|e| super::sqlite_error("saving shared state", &e))
}

/// Takes, extends or (with `ttl_ns` None) gives up the lease `name` for `holder` in one
/// immediate transaction, so two callers never both get it. Returns whether `holder` holds it
/// afterwards.
pub fn lease(
    conn: &Connection,
    name: &str,
    holder: &str,
    ttl_ns: Option<i64>,
) -> Result<bool, StoreError> {
    let fail = |e: rusqlite::Error| super::sqlite_error("taking a lease", &e);
    let key = Lease::key(name);
    conn.execute_batch("BEGIN IMMEDIATE").map_err(fail)?;
    let outcome = (|| {
        let current = match load(conn, &key)? {
            Some(text) => serde_json::from_str::<Lease>(&text).ok(),
            None => None,
        };
        let now = now_ns();
        match ttl_ns {
            Some(ttl) => match Lease::decide(current.as_ref(), holder, now, ttl) {
                Some(next) => {
                    let text = serde_json::to_string(&next)
                        .map_err(|e| StoreError::InvalidQuery(e.to_string()))?;
                    save(conn, &key, &text)?;
                    Ok(true)
                }
                None => Ok(false),
            },
            None => {
                if current.is_some_and(|c| c.holder == holder) {
                    conn.execute("DELETE FROM shared_state WHERE key = ?1", [&key])
                        .map_err(fail)?;
                }
                Ok(false)
            }
        }
    })();
    let end = if outcome.is_ok() {
        "COMMIT"
    } else {
        "ROLLBACK"
    };
    conn.execute_batch(end).map_err(fail)?;
    outcome
}
