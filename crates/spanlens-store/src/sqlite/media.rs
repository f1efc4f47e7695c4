//! Media blobs on SQLite: `media_blobs` (one row per project and hash) and `media_refs` (which
//! trace refers to which hash). Written on the side connection; freed by the writer thread in
//! the erasure's own transaction, so the two never interleave (SQLite has one writer at a time).

use crate::error::StoreError;
use crate::store::{MediaUsage, StoredMedia};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use spanlens_core::media::MediaBlob;
use spanlens_core::TraceId;

/// Now, nanoseconds since the epoch.
fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Stores the blobs the project lacks and the references, in one immediate transaction (an
/// erasure cannot free a blob between the check and the reference); the bytes newly stored.
pub fn put(
    conn: &mut Connection,
    project: &str,
    blobs: &[MediaBlob],
    refs: &[(TraceId, String)],
) -> Result<u64, StoreError> {
    let fail = |e: rusqlite::Error| super::sqlite_error("storing media", &e);
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(fail)?;
    let now = now_ns();
    let mut stored = 0u64;
    for (trace, hash) in refs {
        tx.prepare_cached(
            "INSERT OR IGNORE INTO media_refs (project, trace_id, hash) VALUES (?1, ?2, ?3)",
        )
        .and_then(|mut st| st.execute(params![project, &trace.0[..], hash]))
        .map_err(fail)?;
    }
    for b in blobs {
        let added = tx
            .prepare_cached(
                "INSERT OR IGNORE INTO media_blobs (project, hash, mime, bytes, size, created_ns) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    project,
                    b.hash,
                    b.mime,
                    b.bytes,
                    b.bytes.len() as i64,
                    now
                ])
            })
            .map_err(fail)?;
        if added > 0 {
            stored += b.bytes.len() as u64;
        }
    }
    tx.commit().map_err(fail)?;
    Ok(stored)
}

/// The blob of `project` with this hash.
pub fn get(
    conn: &Connection,
    project: &str,
    hash: &str,
) -> Result<Option<StoredMedia>, StoreError> {
    conn.prepare_cached("SELECT mime, bytes FROM media_blobs WHERE project = ?1 AND hash = ?2")
        .and_then(|mut st| {
            st.query_row(params![project, hash], |r| {
                Ok(StoredMedia {
                    mime: r.get(0)?,
                    bytes: r.get(1)?,
                })
            })
            .optional()
        })
        .map_err(|e| StoreError::database("reading media", e))
}

/// Blobs of `project` and their bytes.
pub fn usage(conn: &Connection, project: &str) -> Result<MediaUsage, StoreError> {
    conn.prepare_cached(
        "SELECT count(*), coalesce(sum(size), 0) FROM media_blobs WHERE project = ?1",
    )
    .and_then(|mut st| {
        st.query_row([project], |r| {
            Ok(MediaUsage {
                blobs: r.get::<_, i64>(0)?.max(0) as u64,
                bytes: r.get::<_, i64>(1)?.max(0) as u64,
            })
        })
    })
    .map_err(|e| StoreError::database("reading media usage", e))
}

/// Removes the references of `traces` of `project`, then each blob they named that no
/// reference names any more. Runs inside the caller's transaction.
pub fn forget(conn: &Connection, project: &str, traces: &[[u8; 16]]) -> rusqlite::Result<()> {
    let mut hashes: Vec<String> = Vec::new();
    for t in traces {
        let mut st = conn.prepare_cached(
            "DELETE FROM media_refs WHERE project = ?1 AND trace_id = ?2 RETURNING hash",
        )?;
        let rows = st.query_map(params![project, &t[..]], |r| r.get::<_, String>(0))?;
        for h in rows {
            hashes.push(h?);
        }
    }
    hashes.sort_unstable();
    hashes.dedup();
    for h in hashes {
        conn.prepare_cached(
            "DELETE FROM media_blobs WHERE project = ?1 AND hash = ?2 AND NOT EXISTS \
             (SELECT 1 FROM media_refs WHERE project = ?1 AND hash = ?2)",
        )?
        .execute(params![project, h])?;
    }
    Ok(())
}
