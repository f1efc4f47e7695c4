//! The single writer thread: it owns the write connection and commits every batch waiting in
//! the queue in one transaction (group commit), then recomputes the summaries of the traces it
//! touched inside that same transaction.

use super::checkpoint::{self, CheckpointShared};
use super::chunk::Chunk;
use super::prepare::{to_i64, PreparedSpan};
use super::schema::now_ns;
use super::summary::{SpanFacts, TraceState};
use crate::ticket::Completer;
use crate::types::WriteReceipt;
use rusqlite::{params, Connection, ToSql};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::Arc;

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
        }
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
    pub fn run(mut self, rx: Receiver<Job>) {
        while let Ok(first) = rx.recv() {
            // Take the write lock first, then drain: whatever queued up while we waited for it
            // (or for the previous commit) rides along in this transaction.
            let begin = self.conn.execute_batch("BEGIN IMMEDIATE");
            let mut queued = first.rows.len();
            let mut jobs = vec![first];
            while queued < self.max_txn_spans {
                match rx.try_recv() {
                    Ok(job) => {
                        queued += job.rows.len();
                        jobs.push(job);
                    }
                    Err(_) => break,
                }
            }
            let outcome = begin.and_then(|()| self.apply_and_commit(&jobs));
            match outcome {
                Ok(counts) => self.finish(jobs, counts, queued),
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
                                Ok(counts) => self.finish(jobs, counts, n),
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

    fn finish(&mut self, jobs: Vec<Job>, counts: Vec<(usize, usize)>, queued: usize) {
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
        for (job, (inserted, replaced)) in jobs.into_iter().zip(counts) {
            let receipt = WriteReceipt {
                spans: job.rows.len(),
                inserted,
                replaced,
                batches_in_transaction: together,
            };
            // The rows go back with the ticket, so the submitting thread frees them, not the writer.
            job.completer.complete_with(Ok(receipt), Box::new(job.rows));
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
    fn apply_and_commit(&mut self, jobs: &[Job]) -> rusqlite::Result<Vec<(usize, usize)>> {
        let mut new_projects = HashMap::new();
        let counts = self.apply(jobs, &mut new_projects)?;
        self.conn.execute_batch("COMMIT")?;
        self.after_commit();
        // Only ids whose creating transaction committed may be reused.
        self.projects.extend(new_projects);
        Ok(counts)
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

    fn apply(
        &self,
        jobs: &[Job],
        staged: &mut HashMap<String, i64>,
    ) -> rusqlite::Result<Vec<(usize, usize)>> {
        // Every span of the transaction grouped by trace, ordered by (project, trace) so the
        // probes of the traces' key index walk it in order.
        let mut touched: BTreeMap<TraceKey, Touched<'_>> = BTreeMap::new();
        let mut job_projects = Vec::with_capacity(jobs.len());
        for (j, job) in jobs.iter().enumerate() {
            let pid = self.project_id(&job.project, staged)?;
            job_projects.push(pid);
            for row in &job.rows {
                touched
                    .entry((pid, row.trace_id))
                    .or_default()
                    .rows
                    .push((j, row));
            }
        }
        let mut counts = vec![(0usize, 0usize); jobs.len()];
        let mut new_spans: HashMap<i64, i64> = HashMap::new();
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
            for &(j, row) in &t.rows {
                if self.upsert_span(&mut st, key.0, t.trace_ref, row)? {
                    t.rebuild = true;
                    counts[j].1 += 1;
                } else {
                    counts[j].0 += 1;
                    *new_spans.entry(key.0).or_default() += 1;
                }
            }
            t.stored = Some(stored);
        }
        drop(st);
        // Bodies after rows, in submission order: the newest chunk holding a span is its body.
        let mut chunk_st = self.conn.prepare_cached(
            "INSERT INTO trace_chunks (trace_ref, codec, spans, body) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for (job, pid) in jobs.iter().zip(&job_projects) {
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
                        state.add(&facts_of(row), &mut new_facets);
                    }
                    *state
                }
                (false, Some(Stored::Missing)) => {
                    let mut state = TraceState::default();
                    for (_, row) in &t.rows {
                        state.add(&facts_of(row), &mut new_facets);
                    }
                    state
                }
                // A replaced span may have changed or dropped anything: rebuild from all spans.
                // (Also the way out when a stored state cannot be read.)
                _ => {
                    let state = self.state_from_spans(t.trace_ref)?;
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
        }
        let mut st = self
            .conn
            .prepare_cached("UPDATE projects SET span_count = span_count + ?2 WHERE id = ?1")?;
        for (pid, n) in new_spans {
            st.execute(params![pid, n])?;
        }
        Ok(counts)
    }

    /// Inserts the span, or overwrites the stored copy (last write wins); true when it replaced one.
    fn upsert_span(
        &self,
        st: &mut SpanStatements<'_>,
        pid: i64,
        trace_ref: i64,
        r: &PreparedSpan,
    ) -> rusqlite::Result<bool> {
        let values: [&dyn ToSql; 32] = [
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
        ];
        if st.insert.execute(&values[..])? == 1 {
            Ok(false)
        } else {
            st.update.execute(&values[..])?;
            Ok(true)
        }
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

    /// Recomputes a trace's state from every stored span of it.
    fn state_from_spans(&self, trace_ref: i64) -> rusqlite::Result<TraceState> {
        let mut state = TraceState::default();
        let mut ignored = Vec::new();
        let mut st = self.conn.prepare_cached(
            "SELECT span_id, parent_span_id, name, kind, status, start_ns, end_ns, input_tokens, \
             output_tokens, total_tokens, cost_nano, user_id, session_id, service, request_model, \
             response_model, provider, tags, unpriced FROM spans WHERE trace_ref = ?1",
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
            };
            state.add(&facts, &mut ignored);
        }
        Ok(state)
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
             state = ?21, unpriced_count = ?22 WHERE id = ?1 AND project_id = ?2 AND trace_id = ?3"
        };
        self.conn.prepare_cached(sql)?.execute(params![
            t.trace_ref,
            pid,
            &tid[..],
            s.name,
            state.start_ns,
            state.end_ns,
            state.end_ns.saturating_sub(state.start_ns).max(0),
            s.status,
            to_i64(state.span_count),
            to_i64(state.error_count),
            to_i64(state.input_tokens),
            to_i64(state.output_tokens),
            to_i64(state.total_tokens),
            state.cost_nano,
            s.user_id,
            s.session_id,
            s.root_span_id.as_ref().map(|r| &r[..]),
            s.service,
            s.tags_json,
            s.search,
            state_json,
            to_i64(state.unpriced_count),
        ])?;
        Ok(())
    }
}

const INSERT_SPAN: &str = "INSERT INTO spans (project_id, trace_id, span_id, start_ns, kind, status, duration_ns, \
                 ttft_ns, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, \
                 reasoning_tokens, total_tokens, cost_nano, retry_count, model, provider, agent_name, \
                 user_id, tool_name, request_model, response_model, parent_span_id, end_ns, name, \
                 session_id, service, error_type, tags, unpriced, trace_ref) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, \
                 ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32) \
                 ON CONFLICT (trace_ref, span_id) DO NOTHING";

const UPDATE_SPAN: &str = "UPDATE spans SET start_ns = ?4, kind = ?5, status = ?6, duration_ns = ?7, \
                     ttft_ns = ?8, input_tokens = ?9, output_tokens = ?10, cache_read_tokens = ?11, \
                     cache_write_tokens = ?12, reasoning_tokens = ?13, total_tokens = ?14, \
                     cost_nano = ?15, retry_count = ?16, model = ?17, provider = ?18, \
                     agent_name = ?19, user_id = ?20, tool_name = ?21, request_model = ?22, \
                     response_model = ?23, parent_span_id = ?24, end_ns = ?25, name = ?26, \
                     session_id = ?27, service = ?28, error_type = ?29, tags = ?30, unpriced = ?31 \
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

/// The statements that write spans, held for the length of a transaction.
struct SpanStatements<'c> {
    insert: rusqlite::CachedStatement<'c>,
    update: rusqlite::CachedStatement<'c>,
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
}

fn facts_of(r: &PreparedSpan) -> SpanFacts<'_> {
    SpanFacts {
        span_id: r.span_id,
        is_root: r.parent_span_id.is_none(),
        name: &r.name,
        kind: r.kind,
        status: r.status,
        start: r.start_ns,
        end: r.end_ns,
        input_tokens: r.input_tokens,
        output_tokens: r.output_tokens,
        total_tokens: r.total_tokens,
        cost: r.cost_nano,
        unpriced: r.unpriced,
        user: r.user_id.as_deref(),
        session: r.session_id.as_deref(),
        service: r.service.as_deref(),
        request_model: r.request_model.as_deref(),
        response_model: r.response_model.as_deref(),
        provider: r.provider.as_deref(),
        tags: &r.tags,
    }
}
