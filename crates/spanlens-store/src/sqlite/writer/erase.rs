//! Deletions and expiry on the writer thread, each in one short transaction between commits of
//! spans: the writer owns the rollups and the sums it keeps in memory for coarse rows not built
//! yet, so only it can take a deleted span's share out of them, the way it takes a replaced
//! span's old copy out (`take_back`).

use super::{Changes, Writer};
use crate::error::StoreError;
use crate::facts::chunk::{self, ChunkReader};
use crate::facts::erase::{clear_body, clear_log_event};
use crate::store::{Erased, Expiry};
use rusqlite::{params, OptionalExtension};
use spanlens_core::TraceId;
use std::collections::HashMap;

/// Pages given back to the file system per `incremental_vacuum` step after an erasure, and
/// the most steps one erasure takes: each step holds the write lock only briefly, and what is
/// left is given back after the next erasure (a sweeper makes many).
const VACUUM_PAGES: i64 = 256;
const VACUUM_STEPS: usize = 8;

/// What to erase.
#[derive(Debug)]
pub enum EraseRequest {
    /// These traces of the project (at most `ERASE_BATCH`, the caller splits).
    Traces {
        /// Project name (already defaulted).
        project: String,
        /// The traces.
        ids: Vec<TraceId>,
    },
    /// One step of a retention rule.
    Expire {
        /// Project name (already defaulted).
        project: String,
        /// The rule.
        rule: Expiry,
        /// Traces (or spans, for payloads) this step may take.
        limit: usize,
    },
}

/// An erasure waiting for the writer, and where its outcome goes.
pub struct EraseJob {
    /// What to erase.
    pub request: EraseRequest,
    /// Receives the outcome once committed (or failed).
    pub reply: tokio::sync::oneshot::Sender<Result<Erased, StoreError>>,
}

impl Writer {
    /// Runs one erasure in its own transaction and answers it; then gives some freed pages
    /// back to the file system.
    pub(super) fn erase(&mut self, job: EraseJob) {
        self.backlog.begin();
        // Waiting words go into the index first, so the erasure takes them out with the rest.
        let outcome = self
            .conn
            .execute_batch("BEGIN IMMEDIATE")
            .and_then(|()| self.backlog.flush(&self.conn))
            .and_then(|()| self.erase_in_transaction(&job.request));
        let outcome = match outcome {
            Ok((erased, coarse)) => match self.conn.execute_batch("COMMIT") {
                Ok(()) => {
                    self.backlog.committed();
                    self.after_erase_commit(coarse);
                    Ok(erased)
                }
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        let outcome = outcome.map_err(|e| {
            let _ = self.conn.execute_batch("ROLLBACK");
            self.backlog.rolled_back();
            super::super::sqlite_error("erasing", &e)
        });
        let changed = outcome.as_ref().is_ok_and(|e| !e.is_empty());
        let _ = job.reply.send(outcome);
        if changed {
            self.give_back_pages();
        }
    }

    /// The coarse rollup buckets a deletion changed are built from their rows from now on,
    /// never from the sums kept in memory, which still count the deleted spans.
    fn after_erase_commit(&mut self, coarse: Vec<(i64, crate::rollup::delta::RowKey)>) {
        for k in coarse {
            self.coarse.in_memory.remove(&k);
        }
        self.after_commit();
    }

    /// A few steps of `incremental_vacuum` (a no-op on a database made without
    /// `auto_vacuum = INCREMENTAL`, whose free pages are reused but kept in the file).
    fn give_back_pages(&self) {
        for _ in 0..VACUUM_STEPS {
            let free: i64 = self
                .conn
                .query_row("PRAGMA freelist_count", [], |r| r.get(0))
                .unwrap_or(0);
            if free == 0 {
                return;
            }
            // Each step of the statement frees one page: run it to the end.
            let step = format!("PRAGMA incremental_vacuum({VACUUM_PAGES})");
            let done = self.conn.prepare(&step).and_then(|mut st| {
                let mut rows = st.query([])?;
                while rows.next()?.is_some() {}
                Ok(())
            });
            if done.is_err() {
                return;
            }
        }
    }

    /// The erasure inside the open transaction: what it did, and the coarse rollup buckets it
    /// changed.
    fn erase_in_transaction(
        &mut self,
        request: &EraseRequest,
    ) -> rusqlite::Result<(Erased, Vec<(i64, crate::rollup::delta::RowKey)>)> {
        let project = match request {
            EraseRequest::Traces { project, .. } | EraseRequest::Expire { project, .. } => project,
        };
        let Some(pid) = self
            .conn
            .prepare_cached("SELECT id FROM projects WHERE name = ?1")?
            .query_row([project], |r| r.get::<_, i64>(0))
            .optional()?
        else {
            return Ok((Erased::default(), Vec::new()));
        };
        let mut changes = Changes::default();
        // The traces removed or cleared: their media references go, and the blobs left bare.
        let mut touched: Vec<[u8; 16]> = Vec::new();
        let erased = match request {
            EraseRequest::Traces { ids, .. } => {
                let mut erased = Erased::default();
                touched.extend(ids.iter().map(|t| t.0));
                for id in ids {
                    let trace_ref = self
                        .conn
                        .prepare_cached(
                            "SELECT id FROM traces WHERE project_id = ?1 AND trace_id = ?2",
                        )?
                        .query_row(params![pid, &id.0[..]], |r| r.get::<_, i64>(0))
                        .optional()?;
                    erased.add(self.delete_trace(pid, trace_ref, &id.0, &mut changes)?);
                }
                erased
            }
            EraseRequest::Expire {
                rule: Expiry::Everything { before },
                limit,
                ..
            } => {
                let old: Vec<(i64, Vec<u8>)> = self
                    .conn
                    .prepare_cached(
                        "SELECT id, trace_id FROM traces WHERE project_id = ?1 AND end_ns < ?2 \
                         ORDER BY end_ns LIMIT ?3",
                    )?
                    .query_map(params![pid, to_i64(before.0), to_i64(*limit as u64)], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })?
                    .collect::<rusqlite::Result<_>>()?;
                let mut erased = Erased::default();
                for (trace_ref, tid) in old {
                    let tid: [u8; 16] = tid.as_slice().try_into().unwrap_or([0; 16]);
                    touched.push(tid);
                    erased.add(self.delete_trace(pid, Some(trace_ref), &tid, &mut changes)?);
                }
                erased
            }
            EraseRequest::Expire {
                rule: Expiry::Payloads { before },
                limit,
                ..
            } => self.clear_payloads(pid, to_i64(before.0), *limit, &mut touched)?,
        };
        super::super::media::forget(&self.conn, project, &touched)?;
        for (pid, delta) in &changes.deltas {
            super::rollups::write_delta_built(&self.conn, *pid, delta)?;
        }
        super::rollups::rebuild_headroom(&self.conn, &changes.dirty_headroom)?;
        Ok((erased, changes.replaced_in.into_iter().collect()))
    }

    /// Deletes one trace (`trace_ref`: its summary row, when it has one) and everything kept
    /// for it, taking its spans' sums out of the rollups.
    fn delete_trace(
        &self,
        pid: i64,
        trace_ref: Option<i64>,
        trace_id: &[u8; 16],
        changes: &mut Changes,
    ) -> rusqlite::Result<Erased> {
        let mut erased = Erased::default();
        if let Some(r) = trace_ref {
            let spans: Vec<Vec<u8>> = self
                .conn
                .prepare_cached("SELECT span_id FROM spans WHERE trace_ref = ?1")?
                .query_map([r], |row| row.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            for s in &spans {
                if let Ok(id) = <[u8; 8]>::try_from(s.as_slice()) {
                    // Rollup sums, retry and straddling rate-limit rows, headroom to rebuild.
                    self.take_back(pid, r, &id, changes)?;
                }
            }
            super::search::forget_trace(&self.conn, r)?;
            for sql in [
                "DELETE FROM spans WHERE trace_ref = ?1",
                "DELETE FROM trace_chunks WHERE trace_ref = ?1",
                "DELETE FROM trace_facets WHERE trace_ref = ?1",
                "DELETE FROM llm_calls WHERE trace_ref = ?1",
                "DELETE FROM traces WHERE id = ?1",
            ] {
                self.conn.prepare_cached(sql)?.execute([r])?;
            }
            erased.traces = 1;
            erased.spans = spans.len() as u64;
            self.conn
                .prepare_cached(
                    "UPDATE projects SET span_count = max(span_count - ?2, 0) WHERE id = ?1",
                )?
                .execute(params![pid, spans.len() as i64])?;
        }
        // Also for an id without spans: log events and scores may arrive before their spans.
        self.conn
            .prepare_cached("DELETE FROM log_events WHERE project_id = ?1 AND trace_id = ?2")?
            .execute(params![pid, &trace_id[..]])?;
        erased.scores = self
            .conn
            .prepare_cached("DELETE FROM scores WHERE project_id = ?1 AND trace_id = ?2")?
            .execute(params![pid, &trace_id[..]])? as u64;
        Ok(erased)
    }

    /// Clears the payloads of the oldest traces that ended before `before` and still hold
    /// theirs, while their spans fit in `limit` (at least one trace): each trace's bodies are
    /// rewritten into one chunk without payloads (older copies of re-sent spans go too) and
    /// its log events lose their content. Rows, summaries and rollups do not change.
    fn clear_payloads(
        &self,
        pid: i64,
        before: i64,
        limit: usize,
        cleared: &mut Vec<[u8; 16]>,
    ) -> rusqlite::Result<Erased> {
        let old: Vec<(i64, Vec<u8>, i64)> = self
            .conn
            .prepare_cached(
                "SELECT id, trace_id, span_count FROM traces \
                 WHERE project_id = ?1 AND end_ns < ?2 AND payloads_cleared = 0 \
                 ORDER BY end_ns LIMIT ?3",
            )?
            .query_map(params![pid, before, to_i64(limit as u64)], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        let mut erased = Erased::default();
        let mut reader = ChunkReader::new();
        for (trace_ref, trace_id, span_count) in old {
            let span_count = u64::try_from(span_count).unwrap_or(0);
            if erased.payloads > 0 && erased.payloads.saturating_add(span_count) > limit as u64 {
                break;
            }
            let tid: [u8; 16] = trace_id.as_slice().try_into().unwrap_or([0; 16]);
            cleared.push(tid);
            self.clear_trace_chunks(trace_ref, tid, &mut reader)?;
            super::search::keep_names_only(&self.conn, trace_ref)?;
            self.clear_log_events(pid, &trace_id)?;
            self.conn
                .prepare_cached("UPDATE traces SET payloads_cleared = 1 WHERE id = ?1")?
                .execute([trace_ref])?;
            erased.payloads += span_count;
        }
        Ok(erased)
    }

    /// Rewrites a trace's chunks as one chunk of its spans' current bodies without payloads.
    fn clear_trace_chunks(
        &self,
        trace_ref: i64,
        trace_id: [u8; 16],
        reader: &mut ChunkReader,
    ) -> rusqlite::Result<()> {
        let mut bodies: HashMap<[u8; 8], String> = HashMap::new();
        let mut chunks = 0;
        {
            let mut st = self.conn.prepare_cached(
                "SELECT codec, body FROM trace_chunks WHERE trace_ref = ?1 ORDER BY id",
            )?;
            let mut rows = st.query([trace_ref])?;
            while let Some(r) = rows.next()? {
                chunks += 1;
                let codec: i64 = r.get(0)?;
                let body = r.get_ref(1)?.as_blob()?;
                // A damaged chunk is dropped: what cannot be read cannot be cleared either,
                // and reads already report its spans as unreadable.
                let _ = reader.for_each(codec, body, &mut |id, text| {
                    bodies.insert(id, text.to_string());
                    Ok(())
                });
            }
        }
        let mut changed = false;
        for text in bodies.values_mut() {
            if let Some(cleared) = clear_body(text) {
                *text = cleared;
                changed = true;
            }
        }
        if !changed && chunks <= 1 {
            return Ok(());
        }
        self.conn
            .prepare_cached("DELETE FROM trace_chunks WHERE trace_ref = ?1")?
            .execute([trace_ref])?;
        if bodies.is_empty() {
            return Ok(());
        }
        let mut ids: Vec<&[u8; 8]> = bodies.keys().collect();
        ids.sort_unstable();
        let c = chunk::encode(
            trace_id,
            ids.into_iter().map(|id| (id, bodies[id].as_str())),
        );
        self.conn
            .prepare_cached(
                "INSERT INTO trace_chunks (trace_ref, codec, spans, body) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![trace_ref, c.codec, c.spans, c.body])?;
        Ok(())
    }

    /// Deletes a trace's log events that are only content and clears the content of the rest.
    fn clear_log_events(&self, pid: i64, trace_id: &[u8]) -> rusqlite::Result<()> {
        let events: Vec<(i64, String)> = self
            .conn
            .prepare_cached(
                "SELECT id, event FROM log_events WHERE project_id = ?1 AND trace_id = ?2",
            )?
            .query_map(params![pid, trace_id], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        for (id, text) in events {
            match clear_log_event(&text) {
                Ok(None) => {
                    self.conn
                        .prepare_cached("DELETE FROM log_events WHERE id = ?1")?
                        .execute([id])?;
                }
                Ok(Some(cleared)) => {
                    self.conn
                        .prepare_cached("UPDATE log_events SET event = ?2 WHERE id = ?1")?
                        .execute(params![id, cleared])?;
                }
                Err(()) => {}
            }
        }
        Ok(())
    }
}

/// A time or count as SQLite's integer, saturating.
fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
