//! Deletions and expiry on PostgreSQL, each in one short transaction that takes the advisory
//! locks of the traces it changes (in ascending order, as the writer does), so a collector
//! writing one of them waits for it and then sees what is left.
//!
//! Rollups follow the way every other change does: the hours the deleted spans started in are
//! marked in `rollup_dirty` in the same transaction, so a reader takes those hours from the
//! spans (exact at once) until the lease holder rebuilds their rows.

use super::read::{body_of, read_chunks};
use super::side::find_project;
use super::writer::{lock_traces, trace_lock};
use super::{db, rollups, PostgresStore};
use crate::domain::erase::StepEraser;
use crate::error::StoreError;
use crate::facts::chunk::{self, ChunkReader};
use crate::facts::erase::{clear_body, clear_log_event};
use crate::facts::prepare::to_i64;
use crate::facts::read::project_name;
use crate::store::{Erased, Expiry};
use spanlens_core::TraceId;
use std::collections::HashMap;
use tokio_postgres::Transaction;

#[async_trait::async_trait]
impl StepEraser for PostgresStore {
    /// Deletes `ids` (at most a batch) of `project` in one transaction.
    async fn delete_batch(&self, project: &str, ids: &[TraceId]) -> Result<Erased, StoreError> {
        let e = db("deleting traces");
        let mut client = self.client("deleting traces").await?;
        let tx = client.transaction().await.map_err(&e)?;
        let Some(pid) = find_project(&*tx, &project_name(project)).await? else {
            return Ok(Erased::default());
        };
        let ids: Vec<Vec<u8>> = ids.iter().map(|t| t.0.to_vec()).collect();
        let erased = delete_locked(&tx, pid, &ids).await?;
        super::media::forget(&tx, &project_name(project), &ids).await?;
        tx.commit().await.map_err(&e)?;
        Ok(erased)
    }

    /// One step of a retention rule.
    async fn expire_step(
        &self,
        project: &str,
        rule: Expiry,
        limit: usize,
    ) -> Result<Erased, StoreError> {
        let e = db("expiring traces");
        let mut client = self.client("expiring traces").await?;
        let tx = client.transaction().await.map_err(&e)?;
        let Some(pid) = find_project(&*tx, &project_name(project)).await? else {
            return Ok(Erased::default());
        };
        let before = to_i64(rule.before().0);
        let limit = to_i64(limit as u64);
        let erased = match rule {
            Expiry::Everything { .. } => {
                let ids: Vec<Vec<u8>> = tx
                    .query(
                        "SELECT trace_id FROM traces WHERE project_id = $1 AND end_ns < $2 \
                         ORDER BY end_ns LIMIT $3",
                        &[&pid, &before, &limit],
                    )
                    .await
                    .map_err(&e)?
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                let erased = delete_locked(&tx, pid, &ids).await?;
                super::media::forget(&tx, &project_name(project), &ids).await?;
                erased
            }
            Expiry::Payloads { .. } => {
                let erased = clear_payloads(&tx, pid, before, limit).await?;
                super::media::forget(&tx, &project_name(project), &erased.1).await?;
                erased.0
            }
        };
        tx.commit().await.map_err(&e)?;
        Ok(erased)
    }

    /// Deletes the scores given to a session itself.
    async fn delete_session_scores(&self, project: &str, session: &str) -> Result<u64, StoreError> {
        let client = self.client("deleting scores").await?;
        let Some(pid) = find_project(&**client, &project_name(project)).await? else {
            return Ok(0);
        };
        client
            .execute(
                "DELETE FROM scores WHERE project_id = $1 AND session_id = $2",
                &[&pid, &session],
            )
            .await
            .map_err(db("deleting scores"))
    }
}

/// Deletes the traces `ids` of project `pid` and everything kept for them, under their locks,
/// marking the hours their spans started in for the rollups.
async fn delete_locked(
    tx: &Transaction<'_>,
    pid: i64,
    ids: &[Vec<u8>],
) -> Result<Erased, StoreError> {
    if ids.is_empty() {
        return Ok(Erased::default());
    }
    let e = db("deleting traces");
    lock_traces(tx, ids.iter().map(|t| trace_lock(pid, t)).collect()).await?;
    let starts: Vec<i64> = tx
        .query(
            "DELETE FROM spans WHERE project_id = $1 AND trace_id = ANY($2) RETURNING start_ns",
            &[&pid, &ids],
        )
        .await
        .map_err(&e)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    rollups::mark(tx, pid, rollups::hours_of_starts(starts.iter().copied())).await?;
    let traces = tx
        .execute(
            "DELETE FROM traces WHERE project_id = $1 AND trace_id = ANY($2)",
            &[&pid, &ids],
        )
        .await
        .map_err(&e)?;
    for table in ["llm_calls", "span_recovery", "trace_chunks", "log_events"] {
        tx.execute(
            &format!("DELETE FROM {table} WHERE project_id = $1 AND trace_id = ANY($2)"),
            &[&pid, &ids],
        )
        .await
        .map_err(&e)?;
    }
    let scores = tx
        .execute(
            "DELETE FROM scores WHERE project_id = $1 AND trace_id = ANY($2)",
            &[&pid, &ids],
        )
        .await
        .map_err(&e)?;
    Ok(Erased {
        traces,
        spans: starts.len() as u64,
        scores,
        payloads: 0,
    })
}

/// Clears the payloads of the oldest traces that ended before `before` and still hold theirs,
/// while their spans fit in `limit` (at least one trace): each trace's bodies are written
/// again, cleared, into one new chunk that its span rows name, its older chunks are deleted
/// and its log events lose their content. Typed columns, summaries and rollups stay.
async fn clear_payloads(
    tx: &Transaction<'_>,
    pid: i64,
    before: i64,
    limit: i64,
) -> Result<(Erased, Vec<Vec<u8>>), StoreError> {
    let e = db("clearing payloads");
    let old: Vec<(Vec<u8>, i64)> = tx
        .query(
            "SELECT trace_id, span_count FROM traces \
             WHERE project_id = $1 AND end_ns < $2 AND NOT payloads_cleared \
             ORDER BY end_ns LIMIT $3",
            &[&pid, &before, &limit],
        )
        .await
        .map_err(&e)?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let mut take = Vec::new();
    let mut spans = 0i64;
    for (tid, n) in old {
        if !take.is_empty() && spans.saturating_add(n) > limit {
            break;
        }
        spans = spans.saturating_add(n);
        take.push(tid);
    }
    if take.is_empty() {
        return Ok((Erased::default(), take));
    }
    lock_traces(tx, take.iter().map(|t| trace_lock(pid, t)).collect()).await?;
    let mut reader = ChunkReader::new();
    let mut payloads = 0u64;
    for tid in &take {
        // Read under the lock: a span written meanwhile is cleared with the rest.
        payloads += clear_trace(tx, pid, tid, &mut reader).await?;
        let events: Vec<(i64, String)> = tx
            .query(
                "SELECT id, event FROM log_events WHERE project_id = $1 AND trace_id = $2",
                &[&pid, tid],
            )
            .await
            .map_err(&e)?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        for (id, text) in events {
            match clear_log_event(&text) {
                Ok(None) => {
                    tx.execute("DELETE FROM log_events WHERE id = $1", &[&id])
                        .await
                        .map_err(&e)?;
                }
                Ok(Some(cleared)) => {
                    tx.execute(
                        "UPDATE log_events SET event = $2 WHERE id = $1",
                        &[&id, &cleared],
                    )
                    .await
                    .map_err(&e)?;
                }
                Err(()) => {}
            }
        }
        tx.execute(
            "UPDATE traces SET payloads_cleared = TRUE WHERE project_id = $1 AND trace_id = $2",
            &[&pid, tid],
        )
        .await
        .map_err(&e)?;
    }
    Ok((
        Erased {
            payloads,
            ..Erased::default()
        },
        take,
    ))
}

/// Writes a trace's span bodies again without payloads, in one new chunk; its spans.
async fn clear_trace(
    tx: &Transaction<'_>,
    pid: i64,
    tid: &[u8],
    reader: &mut ChunkReader,
) -> Result<u64, StoreError> {
    let e = db("clearing payloads");
    let rows = tx
        .query(
            "SELECT span_id, chunk_id, body_codec, body FROM spans \
             WHERE project_id = $1 AND trace_id = $2",
            &[&pid, &tid],
        )
        .await
        .map_err(&e)?;
    let mut chunks = read_chunks(tx, rows.iter().filter_map(|r| r.get(1)), reader).await?;
    let mut bodies: HashMap<[u8; 8], String> = HashMap::new();
    for r in &rows {
        let id: Vec<u8> = r.get(0);
        let Ok(id) = <[u8; 8]>::try_from(id.as_slice()) else {
            continue;
        };
        // A damaged body cannot be cleared: it is dropped with its chunk below (reads
        // already report it unreadable).
        if let Ok(Some(text)) = body_of(r, 1, &mut chunks, reader, id) {
            let text = clear_body(&text).unwrap_or(text);
            bodies.insert(id, text);
        }
    }
    let chunk_id: i64 = tx
        .query_one("SELECT nextval('trace_chunk_ids')", &[])
        .await
        .map_err(&e)?
        .get(0);
    let trace_id: [u8; 16] = tid.try_into().unwrap_or([0; 16]);
    let mut ids: Vec<&[u8; 8]> = bodies.keys().collect();
    ids.sort_unstable();
    let c = chunk::encode(
        trace_id,
        ids.into_iter().map(|id| (id, bodies[id].as_str())),
    );
    // Codecs are 0 and 1.
    let codec = c.codec as i16;
    tx.execute(
        "INSERT INTO trace_chunks (chunk_id, project_id, trace_id, codec, body) \
         VALUES ($1, $2, $3, $4, $5)",
        &[&chunk_id, &pid, &tid, &codec, &c.body],
    )
    .await
    .map_err(&e)?;
    // The update trigger marks the spans' hours; their rows do not change what they count.
    tx.execute(
        // Full-text search keeps finding the spans by their names (split on ASCII
        // punctuation as `spanlens_core::content` splits).
        "UPDATE spans SET chunk_id = $3, body = NULL, body_codec = NULL, \
         words = ARRAY(SELECT DISTINCT w FROM unnest(regexp_split_to_array(lower(name), \
         '[\\x01-\\x2f\\x3a-\\x40\\x5b-\\x60\\x7b-\\x7f]+')) AS w WHERE w <> '') \
         WHERE project_id = $1 AND trace_id = $2",
        &[&pid, &tid, &chunk_id],
    )
    .await
    .map_err(&e)?;
    tx.execute(
        "DELETE FROM trace_chunks WHERE project_id = $1 AND trace_id = $2 AND chunk_id <> $3",
        &[&pid, &tid, &chunk_id],
    )
    .await
    .map_err(&e)?;
    Ok(rows.len() as u64)
}
