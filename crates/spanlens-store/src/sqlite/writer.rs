//! The single writer thread: it owns the write connection and commits every batch waiting in
//! the queue in one transaction (group commit), then recomputes the summaries of the traces it
//! touched inside that same transaction.

use super::calls;
use super::checkpoint::{self, CheckpointShared};
use super::chunk::Chunk;
use super::prepare::{straddles, PreparedSpan};
use super::rollups::{self, OwnedStats, STATS_COLS};
use super::schema::now_ns;
use super::search::{self, backlog::Backlog};
use super::summary::{SpanFacts, TraceState};
use crate::queue::gather;
use crate::rollup::delta::{Delta, RowKey};
use crate::rollup::metrics::Family;
use crate::rollup::retries::{RetryFacts, RetryRow};
use crate::rollup::time::Level;
use crate::ticket::Completer;
use crate::types::WriteReceipt;
use rusqlite::{params, Connection, ToSql};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;

mod erase;
pub use erase::{EraseJob, EraseRequest};

/// One submission waiting for the writer.
pub struct Job {
    /// Project name (already defaulted).
    pub project: String,
    /// Prepared rows (their bodies already moved into `chunks`).
    pub rows: Vec<PreparedSpan>,
    /// The span bodies, one chunk per trace.
    pub chunks: Vec<Chunk>,
    /// Resolves the submitter's ticket.
    pub completer: Completer,
}

/// What the writer thread is given: spans to commit, or an erasure to run between commits.
pub enum Work {
    /// A submission of spans.
    Spans(Job),
    /// A deletion or an expiry (`writer/erase.rs`).
    Erase(EraseJob),
}

/// Counters shared between the store handle and the writer thread.
#[derive(Default)]
pub struct WriterShared {
    /// Spans accepted by `submit` and not yet committed (the queue bound counts these).
    pub pending_spans: AtomicUsize,
    /// Transactions committed.
    pub transactions: AtomicU64,
    /// Submissions committed.
    pub batches: AtomicU64,
    /// Spans committed (inserted or replaced).
    pub spans: AtomicU64,
    /// Submissions that failed.
    pub failed_batches: AtomicU64,
}

type TraceKey = (i64, [u8; 16]);

/// The writer's state: its connection and the project ids it has already resolved.
pub struct Writer {
    conn: Connection,
    projects: HashMap<String, i64>,
    shared: Arc<WriterShared>,
    max_txn_spans: usize,
    checkpoint: Arc<CheckpointShared>,
    /// WAL size (frames) past which the writer checkpoints itself so the WAL can restart.
    wal_limit_frames: i64,
    /// Commits since the writer last checkpointed itself.
    commits_since_checkpoint: u32,
    /// Committed spans' words not in the full-text index yet (`search/backlog.rs`).
    backlog: Backlog,
    /// Rollup buckets with enough rows to be merged; the next commit merges them.
    compact_due: BTreeSet<(i64, RowKey)>,
    /// What is known of the coarse rollup rows (see `rollups.rs`).
    coarse: CoarseState,
    /// Each project's rollup sums, reused from commit to commit (lent to the helper thread).
    sums: BTreeMap<i64, Delta>,
}

/// Hour and day rollup rows not built yet, and how far each project's traffic has come.
#[derive(Debug, Clone, Default)]
struct CoarseState {
    /// Coarse buckets that have finest rows but no row of their own.
    unbuilt: BTreeSet<(i64, RowKey)>,
    /// Of those, the ones whose sums the helper holds completely in memory (every commit
    /// since their first span went through it); the others are built from their rows.
    in_memory: BTreeSet<(i64, RowKey)>,
    /// Start of the newest finest bucket written, per project and family.
    newest: BTreeMap<(i64, Family), i64>,
    /// The last commit failed after the helper added to its sums: they must be dropped.
    forget: bool,
}

impl CoarseState {
    /// The unbuilt buckets that have gone cold: traffic has moved a finest bucket past them.
    fn cold(&self) -> BTreeSet<(i64, RowKey)> {
        self.unbuilt
            .iter()
            .filter(|(pid, k)| {
                let finest = k.family.levels()[0].width_ns();
                self.newest.get(&(*pid, k.family)).is_some_and(|n| {
                    k.bucket
                        .saturating_add(k.level.width_ns())
                        .saturating_add(finest)
                        <= *n
                })
            })
            .copied()
            .collect()
    }
}

/// Commits after which the writer checkpoints itself even if the WAL looks small.
const INLINE_CHECKPOINT_EVERY: u32 = 256;

impl Writer {
    /// A writer over a configured and migrated connection.
    pub fn new(
        conn: Connection,
        shared: Arc<WriterShared>,
        max_txn_spans: usize,
        checkpoint: Arc<CheckpointShared>,
        wal_limit_frames: i64,
    ) -> Writer {
        Writer {
            conn,
            projects: HashMap::new(),
            shared,
            max_txn_spans: max_txn_spans.max(1),
            checkpoint,
            wal_limit_frames: wal_limit_frames.max(1),
            commits_since_checkpoint: 0,
            backlog: Backlog::default(),
            compact_due: BTreeSet::new(),
            coarse: CoarseState::default(),
            sums: BTreeMap::new(),
        }
    }

    /// Reads which coarse rollup rows an existing database has not built yet, so they are
    /// built as the writer goes on (readers use the finer rows meanwhile).
    pub fn load_coarse_state(&mut self) -> rusqlite::Result<()> {
        let (unbuilt, newest) = rollups::unbuilt_coarse(&self.conn)?;
        self.coarse = CoarseState {
            unbuilt,
            newest,
            ..CoarseState::default()
        };
        Ok(())
    }

    /// After a commit: wake the checkpointer, and checkpoint here when the WAL has grown past
    /// its limit (the background checkpoint has copied most frames, so this one is short).
    fn after_commit(&mut self) {
        self.commits_since_checkpoint += 1;
        // The commit count is a fallback should the checkpointer thread ever stop reporting.
        if self.checkpoint.wal_frames() > self.wal_limit_frames
            || self.commits_since_checkpoint >= INLINE_CHECKPOINT_EVERY
        {
            let _ = checkpoint::passive_checkpoint(&self.conn);
            self.checkpoint.set_wal_frames(0);
            self.commits_since_checkpoint = 0;
        }
        self.checkpoint.poke();
    }

    /// Runs until every sender is gone and the queue is drained.
    pub fn run(mut self, rx: Receiver<Work>) {
        // An erasure met while gathering spans: it runs after their transaction.
        let mut held: Option<Work> = None;
        loop {
            let next = match held.take() {
                Some(work) => Some(work),
                // Words wait for the index: they go in when nothing comes in time.
                None => match self.backlog.due_in() {
                    Some(wait) => match rx.recv_timeout(wait) {
                        Ok(work) => Some(work),
                        Err(RecvTimeoutError::Timeout) => {
                            self.flush_backlog();
                            continue;
                        }
                        Err(RecvTimeoutError::Disconnected) => None,
                    },
                    None => rx.recv().ok(),
                },
            };
            let first = match next {
                Some(Work::Spans(job)) => job,
                Some(Work::Erase(job)) => {
                    self.erase(job);
                    continue;
                }
                None => {
                    self.flush_backlog();
                    break;
                }
            };
            // Take the write lock first, then drain: whatever queued up while we waited for it
            // (or for the previous commit) rides along in this transaction.
            let begin = self.conn.execute_batch("BEGIN IMMEDIATE");
            let (jobs, queued) = gather(
                first,
                self.max_txn_spans,
                |j| j.rows.len(),
                || match rx.try_recv().ok()? {
                    Work::Spans(job) => Some(job),
                    other => {
                        held = Some(other);
                        None
                    }
                },
            );
            let outcome = begin.and_then(|()| self.apply_and_commit(&jobs));
            match outcome {
                Ok((counts, garbage)) => self.finish(jobs, counts, queued, garbage),
                Err(e) => {
                    let _ = self.conn.execute_batch("ROLLBACK");
                    if jobs.len() == 1 {
                        self.fail(jobs, &e, queued);
                    } else {
                        // One bad batch must not sink the others: retry each on its own.
                        for job in jobs {
                            let n = job.rows.len();
                            let one = [job];
                            let r = self
                                .conn
                                .execute_batch("BEGIN IMMEDIATE")
                                .and_then(|()| self.apply_and_commit(&one));
                            let jobs = Vec::from(one);
                            match r {
                                Ok((counts, garbage)) => self.finish(jobs, counts, n, garbage),
                                Err(e) => {
                                    let _ = self.conn.execute_batch("ROLLBACK");
                                    self.fail(jobs, &e, n);
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Inserts the waiting words into the full-text index in a transaction of their own (a
    /// failure leaves them waiting, for the next commit).
    fn flush_backlog(&mut self) {
        if self.backlog.due_in().is_none() {
            return;
        }
        self.backlog.begin();
        let done = self
            .conn
            .execute_batch("BEGIN IMMEDIATE")
            .and_then(|()| self.backlog.flush(&self.conn))
            .and_then(|()| self.conn.execute_batch("COMMIT"));
        match done {
            Ok(()) => {
                self.backlog.committed();
                self.after_commit();
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                self.backlog.rolled_back();
                // Not at once again: a full disk would have the writer spin on it.
                self.backlog.postpone();
                tracing::warn!("full-text index: waiting words not inserted yet: {e}");
            }
        }
    }

    fn finish(
        &mut self,
        jobs: Vec<Job>,
        counts: Vec<(usize, usize)>,
        queued: usize,
        garbage: Box<dyn Send>,
    ) {
        self.shared
            .pending_spans
            .fetch_sub(queued, Ordering::AcqRel);
        self.shared.transactions.fetch_add(1, Ordering::Relaxed);
        self.shared
            .batches
            .fetch_add(jobs.len() as u64, Ordering::Relaxed);
        self.shared
            .spans
            .fetch_add(queued as u64, Ordering::Relaxed);
        let together = jobs.len();
        let mut garbage = Some(garbage);
        for (job, (inserted, replaced)) in jobs.into_iter().zip(counts) {
            let receipt = WriteReceipt {
                spans: job.rows.len(),
                inserted,
                replaced,
                batches_in_transaction: together,
            };
            // The rows go back with the ticket, so the submitting thread frees them, not the
            // writer; so do the commit's encoded rollups, with the first ticket.
            job.completer
                .complete_with(Ok(receipt), Box::new((job.rows, garbage.take())));
        }
    }

    fn fail(&mut self, jobs: Vec<Job>, err: &rusqlite::Error, queued: usize) {
        self.shared
            .pending_spans
            .fetch_sub(queued, Ordering::AcqRel);
        self.shared
            .failed_batches
            .fetch_add(jobs.len() as u64, Ordering::Relaxed);
        for job in jobs {
            job.completer
                .complete(Err(super::sqlite_error("committing spans", err)));
        }
    }

    /// Applies the jobs inside the open transaction and commits; returns (inserted, replaced) per job.
    /// Returns (inserted, replaced) per job, and memory the helper thread allocated for the
    /// commit, to be freed by a submitting thread rather than the writer.
    fn apply_and_commit(&mut self, jobs: &[Job]) -> rusqlite::Result<Committed> {
        self.backlog.begin();
        let mut new_projects = HashMap::new();
        let applied = self.apply(jobs, &mut new_projects).and_then(|applied| {
            // Nothing else has been submitted: the index takes what waits now, so a lone
            // writer finds its spans as soon as its write is acknowledged.
            let spans: usize = jobs.iter().map(|j| j.rows.len()).sum();
            let idle = self.shared.pending_spans.load(Ordering::Acquire) <= spans;
            self.backlog.before_commit(&self.conn, idle)?;
            Ok(applied)
        });
        let (counts, due, coarse, garbage) = match applied {
            Ok(applied) => applied,
            Err(e) => {
                self.backlog.rolled_back();
                return Err(e);
            }
        };
        if let Err(e) = self.conn.execute_batch("COMMIT") {
            // The helper's sums in memory hold this commit's spans: drop them.
            self.coarse.forget = true;
            self.coarse.in_memory.clear();
            self.backlog.rolled_back();
            return Err(e);
        }
        self.backlog.committed();
        self.after_commit();
        // Only ids whose creating transaction committed may be reused.
        self.projects.extend(new_projects);
        // What this commit merged and built is done; after a failure the old state stays.
        self.compact_due = due;
        self.coarse = coarse;
        Ok((counts, garbage))
    }

    fn project_id(&self, name: &str, staged: &mut HashMap<String, i64>) -> rusqlite::Result<i64> {
        if let Some(id) = self.projects.get(name).or_else(|| staged.get(name)) {
            return Ok(*id);
        }
        self.conn
            .prepare_cached(
                "INSERT INTO projects (name, created_ns) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
            )?
            .execute(params![name, now_ns()])?;
        let id: i64 = self
            .conn
            .prepare_cached("SELECT id FROM projects WHERE name = ?1")?
            .query_row([name], |r| r.get(0))?;
        staged.insert(name.to_string(), id);
        Ok(id)
    }

    /// Applies the jobs inside the open transaction; returns (inserted, replaced) per job and
    /// the rollup buckets due for compaction.
    ///
    /// The rollups of the jobs are summed and encoded on a helper thread meanwhile (with the
    /// buckets due for compaction), and written here at the end: the writer is the serial part
    /// of ingest, and the process has a core to spare beside it.
    fn apply(
        &mut self,
        jobs: &[Job],
        staged: &mut HashMap<String, i64>,
    ) -> rusqlite::Result<Applied> {
        let mut job_projects = Vec::with_capacity(jobs.len());
        for job in jobs {
            job_projects.push(self.project_id(&job.project, staged)?);
        }
        let rows: Vec<(i64, &[PreparedSpan])> = job_projects
            .iter()
            .zip(jobs)
            .map(|(pid, job)| (*pid, &job.rows[..]))
            .collect();
        // Coarse rows this commit touches: those built get its changes; the others wait, and
        // the ones gone cold are built now from their finest rows.
        let (touched, newest) = rollups::buckets_of(&rows);
        let mut built = rollups::existing(&self.conn, &touched)?;
        let mut coarse = self.coarse.clone();
        let forget = std::mem::take(&mut coarse.forget);
        if forget {
            coarse.in_memory.clear();
        }
        for k in touched.iter().filter(|k| !built.contains(k)) {
            // A bucket first seen now: its sums in memory start complete.
            if coarse.unbuilt.insert(*k) {
                coarse.in_memory.insert(*k);
            }
        }
        for (key, t) in newest {
            let n = coarse.newest.entry(key).or_insert(t);
            *n = (*n).max(t);
        }
        let build = coarse.cold();
        let (from_memory, from_rows): (Vec<_>, BTreeSet<_>) = {
            let mut mem = Vec::new();
            let mut rows = BTreeSet::new();
            for k in &build {
                coarse.unbuilt.remove(k);
                if coarse.in_memory.remove(k) {
                    mem.push(*k);
                } else {
                    rows.insert(*k);
                }
            }
            (mem, rows)
        };
        built.extend(build.iter().copied());
        let work = rollups::Maintenance {
            compact: rollups::read_compactions(&self.conn, &self.compact_due)?,
            derive: rollups::read_derivations(&self.conn, &from_rows)?,
            from_memory,
            forget,
        };
        let mut sums = std::mem::take(&mut self.sums);
        let mut backlog = std::mem::take(&mut self.backlog);
        let this = &*self;
        let result = std::thread::scope(|scope| {
            let built = &built;
            let sums = &mut sums;
            let helper = std::thread::Builder::new()
                .name("spanlens-rollup".into())
                .spawn_scoped(scope, move || {
                    rollups::prepare_commit(&rows, work, built, sums)
                })
                .map_err(|e| helper_failed(&e.to_string()))?;
            let (counts, changes) = this.apply_spans(jobs, &job_projects, &mut backlog)?;
            let prepared = helper
                .join()
                .map_err(|_| helper_failed("the rollup thread panicked"))?
                .map_err(|e| helper_failed(&e.to_string()))?;
            for pid in &prepared.pending_lost {
                coarse.in_memory.retain(|(p, _)| p != pid);
            }
            for k in &changes.replaced_in {
                coarse.in_memory.remove(k);
            }
            let due = rollups::write_commit(&this.conn, &prepared)?;
            // Replaced spans' old copies, taken back (rare, so written here).
            for (pid, delta) in &changes.deltas {
                rollups::write_delta_built(&this.conn, *pid, delta)?;
            }
            rollups::rebuild_headroom(&this.conn, &changes.dirty_headroom)?;
            Ok((counts, due, coarse, Box::new(prepared) as Box<dyn Send>))
        });
        self.sums = sums;
        self.backlog = backlog;
        if result.is_err() {
            // The helper may have added this commit's spans to the sums it keeps.
            self.coarse.forget = true;
            self.coarse.in_memory.clear();
        }
        result
    }

    /// Writes the spans, bodies, summaries and facets of the jobs; returns (inserted,
    /// replaced) per job and what else the transaction changes.
    fn apply_spans(
        &self,
        jobs: &[Job],
        job_projects: &[i64],
        backlog: &mut Backlog,
    ) -> rusqlite::Result<(Vec<(usize, usize)>, Changes)> {
        // Every span of the transaction grouped by trace, ordered by (project, trace) so the
        // probes of the traces' key index walk it in order.
        let mut touched: BTreeMap<TraceKey, Touched<'_>> = BTreeMap::new();
        for (j, (job, pid)) in jobs.iter().zip(job_projects).enumerate() {
            for row in &job.rows {
                touched
                    .entry((*pid, row.trace_id))
                    .or_default()
                    .rows
                    .push((j, row));
            }
        }
        let mut counts = vec![(0usize, 0usize); jobs.len()];
        let mut new_spans: HashMap<i64, i64> = HashMap::new();
        // What replaced spans take back from the rollups, and what else changes.
        let mut changes = Changes::default();
        // The writer is the only one creating traces, so it hands out their row ids itself:
        // spans, chunks and facets are keyed by that id and a new trace's rows go in at the end.
        let mut next_ref: i64 =
            self.conn
                .query_row("SELECT IFNULL(max(id), 0) + 1 FROM traces", [], |r| {
                    r.get(0)
                })?;
        // Prepared once per transaction: the statement cache hashes the whole SQL text per lookup.
        let mut st = SpanStatements {
            insert: self.conn.prepare_cached(INSERT_SPAN)?,
            update: self.conn.prepare_cached(UPDATE_SPAN)?,
            backlog,
        };
        for (key, t) in touched.iter_mut() {
            let stored = self.load_state(*key)?;
            t.trace_ref = match &stored {
                Stored::Missing => {
                    next_ref += 1;
                    next_ref - 1
                }
                Stored::State(id, _) | Stored::Unreadable(id) => *id,
            };
            t.is_new = matches!(stored, Stored::Missing);
            let mut calls_changed = false;
            // New spans are keyed in the full-text index by their ordinal in the trace.
            let mut ord = if t.is_new {
                0
            } else {
                search::next_ord(&self.conn, t.trace_ref)?
            };
            for &(j, row) in &t.rows {
                let text_key = search::key(t.trace_ref, ord);
                let replaced =
                    self.upsert_span(&mut st, key.0, t.trace_ref, row, text_key, &mut changes)?;
                if !replaced {
                    ord += 1;
                }
                if replaced {
                    t.rebuild = true;
                    counts[j].1 += 1;
                } else {
                    counts[j].0 += 1;
                    *new_spans.entry(key.0).or_default() += 1;
                }
                calls_changed |= calls::index(&self.conn, t.trace_ref, row, replaced)?;
            }
            if calls_changed {
                self.count_calls_once(key.0, t, &mut changes)?;
            }
            t.stored = Some(stored);
        }
        drop(st);
        // Bodies after rows, in submission order: the newest chunk holding a span is its body.
        let mut chunk_st = self.conn.prepare_cached(
            "INSERT INTO trace_chunks (trace_ref, codec, spans, body) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for (job, pid) in jobs.iter().zip(job_projects) {
            for c in &job.chunks {
                // Every chunk's trace has rows in the same job, so it is always in `touched`.
                let Some(t) = touched.get(&(*pid, c.trace_id)) else {
                    continue;
                };
                chunk_st.execute(params![t.trace_ref, c.codec, c.spans, c.body])?;
            }
        }
        drop(chunk_st);
        let mut new_facets = Vec::new();
        for (key, t) in &mut touched {
            new_facets.clear();
            let state = match (t.rebuild, t.stored.take()) {
                (false, Some(Stored::State(_, mut state))) => {
                    for (_, row) in &t.rows {
                        state.add(&t.facts(row), &mut new_facets);
                    }
                    *state
                }
                (false, Some(Stored::Missing)) => {
                    let mut state = TraceState::default();
                    for (_, row) in &t.rows {
                        state.add(&t.facts(row), &mut new_facets);
                    }
                    state
                }
                // A replaced span may have changed or dropped anything: rebuild from all spans.
                // (Also the way out when a stored state cannot be read.)
                _ => {
                    let state = state_from_spans(&self.conn, t.trace_ref)?;
                    self.conn
                        .prepare_cached("DELETE FROM trace_facets WHERE trace_ref = ?1")?
                        .execute([t.trace_ref])?;
                    new_facets = state.all_facets();
                    state
                }
            };
            let mut st = self.conn.prepare_cached(
                "INSERT OR IGNORE INTO trace_facets (trace_ref, facet, value) VALUES (?1, ?2, ?3)",
            )?;
            for (f, v) in &new_facets {
                st.execute(params![t.trace_ref, f, v])?;
            }
            self.write_summary(*key, t, &state)?;
            let longest = changes.longest_trace.entry(key.0).or_insert(0);
            *longest = (*longest).max(state.end_ns.saturating_sub(state.start_ns));
        }
        let mut st = self
            .conn
            .prepare_cached("UPDATE projects SET span_count = span_count + ?2 WHERE id = ?1")?;
        for (pid, n) in new_spans {
            st.execute(params![pid, n])?;
        }
        let mut st = self.conn.prepare_cached(
            "UPDATE projects SET max_trace_ns = max(max_trace_ns, ?2) WHERE id = ?1",
        )?;
        for (pid, longest) in &changes.longest_trace {
            st.execute(params![pid, longest])?;
        }
        Ok((counts, changes))
    }

    /// Inserts the span, or overwrites the stored copy (last write wins); true when it replaced
    /// one. A replaced copy's rollup sums are taken back, and its retry and rate-limit rows
    /// removed, before the new copy's are written.
    fn upsert_span(
        &self,
        st: &mut SpanStatements<'_>,
        pid: i64,
        trace_ref: i64,
        r: &PreparedSpan,
        text_key: Option<i64>,
        changes: &mut Changes,
    ) -> rusqlite::Result<bool> {
        let rate = r.rate.as_ref().map(|p| &p.bytes);
        let values: [&dyn ToSql; 38] = [
            &pid,
            &&r.trace_id[..],
            &&r.span_id[..],
            &r.start_ns,
            &r.kind,
            &r.status,
            &r.duration_ns,
            &r.ttft_ns,
            &r.input_tokens,
            &r.output_tokens,
            &r.cache_read_tokens,
            &r.cache_write_tokens,
            &r.reasoning_tokens,
            &r.total_tokens,
            &r.cost_nano,
            &r.retry_count,
            &r.model,
            &r.provider,
            &r.agent_name,
            &r.user_id,
            &r.tool_name,
            &r.request_model,
            &r.response_model,
            &r.parent_span_id.as_ref().map(|p| &p[..]),
            &r.end_ns,
            &r.name,
            &r.session_id,
            &r.service,
            &r.error_type,
            &r.tags_json,
            &r.unpriced,
            &trace_ref,
            &rate,
            &r.prompt_name,
            &r.prompt_version,
            &r.status_message,
            &r.has_usage,
            &text_key,
        ];
        let replaced = if st.insert.execute(&values[..])? == 1 {
            if let Some(k) = text_key {
                st.backlog
                    .push(k, &r.search_text, self.conn.last_insert_rowid());
            }
            false
        } else {
            self.take_back(pid, trace_ref, &r.span_id, changes)?;
            // The replaced copy keeps its key (`text_key` is not among the updated columns).
            st.update.execute(&values[..37])?;
            let stored_key: Option<i64> = self
                .conn
                .prepare_cached("SELECT text_key FROM spans WHERE trace_ref = ?1 AND span_id = ?2")?
                .query_row(params![trace_ref, &r.span_id[..]], |row| row.get(0))?;
            if let Some(k) = stored_key {
                // Waiting entries go in first: the replaced copy's may be among them.
                st.backlog.flush(&self.conn)?;
                search::put(&self.conn, k, &r.search_text)?;
            }
            true
        };
        if let Some(f) = &r.retry {
            rollups::insert_retry(
                &self.conn,
                pid,
                r.start_ns,
                trace_ref,
                &r.span_id,
                &r.trace_id,
                f,
            )?;
        }
        if let Some(p) = r.rate.as_ref().filter(|p| straddles(r.start_ns, p.at_ns)) {
            rollups::insert_straddler(
                &self.conn, pid, p.at_ns, trace_ref, &r.span_id, r.start_ns, &p.bytes,
            )?;
        }
        Ok(replaced)
    }

    /// Applies the same-call rule to a trace whose LLM calls changed (`calls.rs`). Spans of
    /// this transaction that became duplicates are folded into the summary without their
    /// counts; a stored span whose counts changed makes the summary be rebuilt.
    fn count_calls_once(
        &self,
        pid: i64,
        t: &mut Touched<'_>,
        changes: &mut Changes,
    ) -> rusqlite::Result<()> {
        let flipped = calls::resolve(&self.conn, t.trace_ref, changes.delta(pid))?;
        for f in flipped {
            // The rollup sums kept in memory for unbuilt coarse buckets still count the old
            // figures: those buckets are built from their rows instead.
            changes.mark_coarse(pid, Family::Classes, f.start_ns);
            changes.mark_coarse(pid, Family::Users, f.start_ns);
            let inserted_now = t.rows.iter().any(|(_, r)| r.span_id == f.span_id) && !t.rebuild;
            if inserted_now {
                // New in this transaction, so not folded in yet: it is a duplicate now (a
                // span only starts counting again after a stored span changed, which rebuilds).
                t.not_counted.insert(f.span_id);
            } else {
                t.rebuild = true;
            }
        }
        Ok(())
    }

    /// Before a span is overwritten: takes its stored copy's sums out of the rollups and
    /// deletes its retry and rate-limit rows. Headroom cannot be taken back (it keeps
    /// minimums), so the quarter-hour bucket of the old snapshot is rebuilt from the spans.
    fn take_back(
        &self,
        pid: i64,
        trace_ref: i64,
        span_id: &[u8; 8],
        changes: &mut Changes,
    ) -> rusqlite::Result<()> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {STATS_COLS}, end_ns, rate_limits FROM spans WHERE trace_ref = ?1 AND span_id = ?2"
        ))?;
        let mut rows = st.query(params![trace_ref, &span_id[..]])?;
        let Some(row) = rows.next()? else {
            return Ok(());
        };
        let old = OwnedStats::of(row)?;
        drop(rows);
        changes.delta(pid).add_span(&old.stats(), -1);
        let mut coarse_of = |family: Family, t: i64| changes.mark_coarse(pid, family, t);
        coarse_of(Family::Classes, old.start_ns);
        coarse_of(Family::Users, old.start_ns);
        if let Some((at, _)) = &old.rate {
            coarse_of(Family::Headroom, *at);
        }
        if old.retry_count > 0 {
            // The old copy's retry facts leave the retry rollups too.
            let mut st = self.conn.prepare_cached(
                "SELECT provider, tool, retries, recovered, recovery_ms, errors FROM span_retries \
                 WHERE project_id = ?1 AND start_ns = ?2 AND trace_ref = ?3 AND span_id = ?4",
            )?;
            let mut rows = st.query(params![pid, old.start_ns, trace_ref, &span_id[..]])?;
            if let Some(r) = rows.next()? {
                let errors = r.get_ref(5)?.as_blob()?;
                let row = RetryRow {
                    start_ns: old.start_ns,
                    provider: r.get_ref(0)?.as_str_or_null()?,
                    tool: r.get_ref(1)?.as_str_or_null()?,
                    retries: u64::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
                    recovered: r.get(3)?,
                    recovery_ms: r.get(4)?,
                    errors,
                };
                let facts = RetryFacts::of_row(&row).map_err(|e| {
                    rusqlite::Error::ToSqlConversionFailure(Box::new(std::io::Error::other(
                        format!("span_retries row: {e}"),
                    )))
                })?;
                coarse_of(Family::Retries, old.start_ns);
                changes.delta(pid).add_retry(old.start_ns, &facts, -1);
            }
            drop(rows);
            self.conn
                .prepare_cached(
                    "DELETE FROM span_retries WHERE project_id = ?1 AND start_ns = ?2 \
                     AND trace_ref = ?3 AND span_id = ?4",
                )?
                .execute(params![pid, old.start_ns, trace_ref, &span_id[..]])?;
        }
        if let Some((at, _)) = &old.rate {
            if straddles(old.start_ns, *at) {
                self.conn
                    .prepare_cached(
                        "DELETE FROM rate_limit_straddlers WHERE project_id = ?1 AND at_ns = ?2 \
                         AND trace_ref = ?3 AND span_id = ?4",
                    )?
                    .execute(params![pid, at, trace_ref, &span_id[..]])?;
            } else {
                changes
                    .dirty_headroom
                    .insert((pid, Level::Leaf.bucket_of(*at)));
            }
        }
        // The new snapshot needs nothing more: the job counted it once, in its own bucket, and
        // if that is the old one's bucket the rebuild reads it from the span row.
        Ok(())
    }

    /// The stored row id and state of a trace, in one index probe.
    fn load_state(&self, (pid, tid): TraceKey) -> rusqlite::Result<Stored> {
        let mut st = self.conn.prepare_cached(
            "SELECT id, state FROM traces WHERE project_id = ?1 AND trace_id = ?2",
        )?;
        let mut rows = st.query(params![pid, &tid[..]])?;
        let Some(row) = rows.next()? else {
            return Ok(Stored::Missing);
        };
        let id: i64 = row.get(0)?;
        let text = row.get_ref(1)?.as_str()?;
        Ok(match serde_json::from_str(text) {
            Ok(state) => Stored::State(id, Box::new(state)),
            Err(_) => Stored::Unreadable(id),
        })
    }

    /// Inserts a new trace's summary row under the id its spans were written with, or updates
    /// the stored one.
    fn write_summary(
        &self,
        (pid, tid): TraceKey,
        t: &Touched<'_>,
        state: &TraceState,
    ) -> rusqlite::Result<()> {
        let s = state.summary(&tid);
        let n = state.numbers();
        let state_json = serde_json::to_string(state).unwrap_or_default();
        let sql = if t.is_new {
            "INSERT INTO traces (id, project_id, trace_id, name, start_ns, end_ns, duration_ns, \
             status, span_count, error_count, input_tokens, output_tokens, total_tokens, cost_nano, \
             user_id, session_id, root_span_id, service, tags, search, state, unpriced_count) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, \
             ?18, ?19, ?20, ?21, ?22)"
        } else {
            "UPDATE traces SET name = ?4, start_ns = ?5, end_ns = ?6, duration_ns = ?7, \
             status = ?8, span_count = ?9, error_count = ?10, input_tokens = ?11, \
             output_tokens = ?12, total_tokens = ?13, cost_nano = ?14, user_id = ?15, \
             session_id = ?16, root_span_id = ?17, service = ?18, tags = ?19, search = ?20, \
             state = ?21, unpriced_count = ?22, payloads_cleared = 0 WHERE id = ?1 AND project_id = ?2 AND trace_id = ?3"
        };
        self.conn.prepare_cached(sql)?.execute(params![
            t.trace_ref,
            pid,
            &tid[..],
            s.name,
            n.start_ns,
            n.end_ns,
            n.duration_ns,
            s.status,
            n.span_count,
            n.error_count,
            n.input_tokens,
            n.output_tokens,
            n.total_tokens,
            n.cost_nano,
            s.user_id,
            s.session_id,
            s.root_span_id.as_ref().map(|r| &r[..]),
            s.service,
            s.tags_json,
            s.search,
            state_json,
            n.unpriced_count,
        ])?;
        Ok(())
    }
}

/// Recomputes a trace's state from every stored span of it.
pub(super) fn state_from_spans(conn: &Connection, trace_ref: i64) -> rusqlite::Result<TraceState> {
    let mut state = TraceState::default();
    let mut ignored = Vec::new();
    let mut st = conn.prepare_cached(
        "SELECT span_id, parent_span_id, name, kind, status, start_ns, end_ns, input_tokens, \
         output_tokens, total_tokens, cost_nano, user_id, session_id, service, request_model, \
         response_model, provider, tags, unpriced, prompt_name, prompt_version FROM spans \
         WHERE trace_ref = ?1",
    )?;
    let mut rows = st.query([trace_ref])?;
    while let Some(r) = rows.next()? {
        let tags: Vec<String> = match r.get_ref(17)?.as_str_or_null()? {
            Some(t) => serde_json::from_str(t).unwrap_or_default(),
            None => Vec::new(),
        };
        let facts = SpanFacts {
            span_id: r.get_ref(0)?.as_blob()?.try_into().unwrap_or([0; 8]),
            is_root: r.get_ref(1)?.as_blob_or_null()?.is_none(),
            name: r.get_ref(2)?.as_str()?,
            kind: r.get_ref(3)?.as_str()?,
            status: r.get_ref(4)?.as_str()?,
            start: r.get(5)?,
            end: r.get(6)?,
            input_tokens: r.get(7)?,
            output_tokens: r.get(8)?,
            total_tokens: r.get(9)?,
            cost: r.get(10)?,
            unpriced: r.get(18)?,
            user: r.get_ref(11)?.as_str_or_null()?,
            session: r.get_ref(12)?.as_str_or_null()?,
            service: r.get_ref(13)?.as_str_or_null()?,
            request_model: r.get_ref(14)?.as_str_or_null()?,
            response_model: r.get_ref(15)?.as_str_or_null()?,
            provider: r.get_ref(16)?.as_str_or_null()?,
            tags: &tags,
            prompt_name: r.get_ref(19)?.as_str_or_null()?,
            prompt_version: r.get_ref(20)?.as_str_or_null()?,
        };
        state.add(&facts, &mut ignored);
    }
    Ok(state)
}

const INSERT_SPAN: &str = "INSERT INTO spans (project_id, trace_id, span_id, start_ns, kind, status, duration_ns, \
                 ttft_ns, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, \
                 reasoning_tokens, total_tokens, cost_nano, retry_count, model, provider, agent_name, \
                 user_id, tool_name, request_model, response_model, parent_span_id, end_ns, name, \
                 session_id, service, error_type, tags, unpriced, trace_ref, rate_limits, prompt_name, \
                 prompt_version, status_message, has_usage, text_key) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, \
                 ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32, ?33, \
                 ?34, ?35, ?36, ?37, ?38) \
                 ON CONFLICT (trace_ref, span_id) DO NOTHING";

const UPDATE_SPAN: &str = "UPDATE spans SET start_ns = ?4, kind = ?5, status = ?6, duration_ns = ?7, \
                     ttft_ns = ?8, input_tokens = ?9, output_tokens = ?10, cache_read_tokens = ?11, \
                     cache_write_tokens = ?12, reasoning_tokens = ?13, total_tokens = ?14, \
                     cost_nano = ?15, retry_count = ?16, model = ?17, provider = ?18, \
                     agent_name = ?19, user_id = ?20, tool_name = ?21, request_model = ?22, \
                     response_model = ?23, parent_span_id = ?24, end_ns = ?25, name = ?26, \
                     session_id = ?27, service = ?28, error_type = ?29, tags = ?30, unpriced = ?31, \
                     rate_limits = ?33, prompt_name = ?34, prompt_version = ?35, \
                     status_message = ?36, has_usage = ?37 \
                     WHERE trace_ref = ?32 AND span_id = ?3";

/// What the `traces` table holds for a trace.
enum Stored {
    /// No row: the trace is new.
    Missing,
    /// The row id and the state to fold new spans into.
    State(i64, Box<TraceState>),
    /// The row id of a row whose state cannot be read: rebuild it from the spans.
    Unreadable(i64),
}

/// A committed transaction: (inserted, replaced) per job, and memory to free off the writer.
type Committed = (Vec<(usize, usize)>, Box<dyn Send>);

/// An applied transaction: (inserted, replaced) per job, the rollup buckets due for
/// compaction, the coarse-row state after it, and memory to free off the writer.
type Applied = (
    Vec<(usize, usize)>,
    BTreeSet<(i64, RowKey)>,
    CoarseState,
    Box<dyn Send>,
);

/// An engine error for a failure of the rollup helper thread, so the transaction rolls back.
fn helper_failed(why: &str) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(std::io::Error::other(format!(
        "rollups: {why}"
    ))))
}

/// What a transaction changes besides spans and summaries.
#[derive(Default)]
struct Changes {
    /// Rollup changes per project.
    deltas: HashMap<i64, Delta>,
    /// Quarter-hour headroom buckets to rebuild from their spans, `(project, bucket)`.
    dirty_headroom: BTreeSet<(i64, i64)>,
    /// Per project, the longest trace written.
    longest_trace: HashMap<i64, i64>,
    /// Coarse buckets that held a replaced span's old copy: sums kept in memory for them
    /// still count it, so they are built from rows instead.
    replaced_in: BTreeSet<(i64, RowKey)>,
}

impl Changes {
    fn delta(&mut self, pid: i64) -> &mut Delta {
        self.deltas.entry(pid).or_default()
    }

    /// Marks the coarse buckets of `family` holding time `t` as changed outside the commit's
    /// sums, so the helper does not build them from the sums it keeps in memory.
    fn mark_coarse(&mut self, pid: i64, family: Family, t: i64) {
        for level in &family.levels()[1..] {
            self.replaced_in.insert((
                pid,
                RowKey {
                    family,
                    level: *level,
                    bucket: level.bucket_of(t),
                },
            ));
        }
    }
}

/// The statements that write spans, held for the length of a transaction.
struct SpanStatements<'c> {
    insert: rusqlite::CachedStatement<'c>,
    update: rusqlite::CachedStatement<'c>,
    /// New spans' words, waiting to go into the full-text index together.
    backlog: &'c mut Backlog,
}

/// The spans of one trace written in the current transaction.
#[derive(Default)]
struct Touched<'a> {
    /// Rows written, in submission order, with the index of the job each came in.
    rows: Vec<(usize, &'a PreparedSpan)>,
    /// The trace's row id in `traces`, which keys its spans, chunks and facets.
    trace_ref: i64,
    /// True when the trace has no summary row yet.
    is_new: bool,
    /// What `traces` held before this transaction (taken when the summary is rebuilt).
    stored: Option<Stored>,
    /// True when any of them replaced a stored span (the state must be rebuilt).
    rebuild: bool,
    /// Spans of this transaction that recorded a call another span is counted for: folded
    /// into the summary without their tokens and cost (their rows hold none either).
    not_counted: HashSet<[u8; 8]>,
}

impl Touched<'_> {
    /// What a span of this transaction adds to the trace's summary.
    fn facts<'r>(&self, r: &'r PreparedSpan) -> SpanFacts<'r> {
        let mut f = r.facts();
        if !self.not_counted.is_empty() && self.not_counted.contains(&r.span_id) {
            f.input_tokens = 0;
            f.output_tokens = 0;
            f.total_tokens = 0;
            f.cost = None;
            f.unpriced = false;
        }
        f
    }
}
