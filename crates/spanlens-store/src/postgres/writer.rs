//! The writer task: it commits every submission waiting in the queue in one transaction (group
//! commit), then resolves each submission's ticket.
//!
//! Inside the transaction it takes an advisory lock per trace touched (sorted, so two
//! collectors never wait on each other in a cycle), writes the rows with one statement per
//! table (the spans of traces that arrive whole, the usual case, with a binary `COPY`; others
//! are upserted), applies the same-call rule to the touched traces' LLM calls, and rebuilds each
//! touched trace's summary from every span stored for it (a trace that arrives whole, from the
//! rows in hand). Because the lock is
//! held until COMMIT and each statement of a READ COMMITTED transaction sees what committed
//! before it, a second collector writing the same trace waits, then sees the first one's spans:
//! the summary comes out as if one collector had written them all.

use super::rollups;
use super::sql::{args, Param};
use super::{db, pool_reason};
use crate::error::StoreError;
use crate::facts::chunk::{Chunk, Framer};
use crate::facts::prepare::{self, PreparedSpan};
use crate::facts::summary::{facet, SpanFacts, TraceState};
use crate::queue::gather;
use crate::rollup::retries::RetryFacts;
use crate::ticket::Completer;
use crate::types::WriteReceipt;
use spanlens_core::dedup::{duplicates, Call};
use spanlens_core::{Span, SpanId};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::Transaction;

/// A span ready for the writer: its typed columns, and which chunk of its submission holds its
/// body.
pub struct Row {
    pub span: PreparedSpan,
    pub chunk: usize,
}

/// One submission waiting for the writer.
pub struct Job {
    /// Project name (already defaulted).
    pub project: String,
    pub rows: Vec<Row>,
    /// The bodies, one chunk per trace of the submission.
    pub chunks: Vec<Chunk>,
    pub completer: Completer,
}

/// Prepares a submission on the submitting thread, so the writer only talks to the database:
/// the typed columns of each span, and the bodies of each trace's spans framed and compressed
/// together in one chunk. (Compressed one by one, a span body took 1.1 kB and its compression
/// a sixth of the collector's time.)
pub fn prepare_rows(spans: Vec<Span>, project: &str) -> Result<(Vec<Row>, Vec<Chunk>), StoreError> {
    let mut framers: Vec<([u8; 16], Framer)> = Vec::new();
    let mut by_trace: HashMap<[u8; 16], usize> = HashMap::new();
    let mut rows = Vec::with_capacity(spans.len());
    for mut span in spans {
        prepare::own(&mut span, project);
        let trace = span.trace_id.0;
        let chunk = *by_trace.entry(trace).or_insert_with(|| {
            framers.push((trace, Framer::new()));
            framers.len() - 1
        });
        framers[chunk]
            .1
            .push(&span.span_id.0, |buf| prepare::write_body(&span, buf))?;
        rows.push(Row {
            span: prepare::prepare(span),
            chunk,
        });
    }
    let chunks = framers.into_iter().map(|(t, f)| f.finish(t)).collect();
    Ok((rows, chunks))
}

/// A writer's state, one per writer task (they share the pool, the counters and the queue).
#[derive(Clone)]
pub struct Writer {
    pub pool: deadpool_postgres::Pool,
    pub pending: Arc<AtomicUsize>,
    pub projects: Arc<Mutex<HashMap<String, i64>>>,
    pub max_txn_spans: usize,
}

/// The advisory-lock key of a trace: a 64-bit FNV-1a hash of its project id and trace id.
/// Two traces that collide only wait for each other.
pub fn trace_lock(pid: i64, trace_id: &[u8]) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in pid.to_le_bytes().iter().chain(trace_id) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h as i64
}

/// Takes the transaction-scoped advisory locks `keys` (from [`trace_lock`]) in ascending
/// order, so two collectors never wait on each other in a cycle.
pub async fn lock_traces(tx: &Transaction<'_>, mut keys: Vec<i64>) -> Result<(), StoreError> {
    keys.sort_unstable();
    keys.dedup();
    // `unnest` hands the keys out in array order, and each is locked as its row is made.
    tx.execute(
        "SELECT pg_advisory_xact_lock(k) FROM unnest($1::BIGINT[]) AS k",
        &[&keys],
    )
    .await
    .map_err(db("locking traces"))?;
    Ok(())
}

/// How a commit writes the span rows of traces that have no summary row yet.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Inserts {
    /// Plain inserts: no row can be in the way.
    Plain,
    /// Upserts, as for every other span (the fallback should a row be in the way after all).
    Upsert,
}

/// A span of the transaction, after the copies of one span within it were merged.
#[derive(Clone)]
struct Slot<'a> {
    pid: i64,
    row: &'a Row,
    /// The submission the span first came in (later copies count as replacements).
    first_job: usize,
    /// The submission `row` (the copy written) came in, whose chunk holds its body.
    job: usize,
}

impl Writer {
    /// Runs until every sender is gone and the queue is drained.
    ///
    /// Several writers may share one queue: each takes whatever is waiting when its turn comes
    /// and commits it while the next takes the following batches, so transactions overlap
    /// (PostgreSQL's time is mostly waiting on one connection). The per-trace advisory locks
    /// keep writers of one trace in line, as they do across collectors; a write issued after
    /// another was acknowledged still commits after it.
    pub async fn run(self, rx: Arc<tokio::sync::Mutex<mpsc::Receiver<Job>>>) {
        loop {
            let (jobs, queued) = {
                let mut rx = rx.lock().await;
                let Some(first) = rx.recv().await else { break };
                // Whatever queued up meanwhile rides along in this commit.
                gather(
                    first,
                    self.max_txn_spans,
                    |j| j.rows.len(),
                    || rx.try_recv().ok(),
                )
            };
            match self.commit(&jobs).await {
                Ok(counts) => self.finish(jobs, counts, queued),
                // One bad batch must not sink the others: retry each on its own (unless the
                // database is away, when each would fail the same way).
                Err(e) if jobs.len() > 1 && !e.is_retryable() => {
                    for job in jobs {
                        let n = job.rows.len();
                        let one = vec![job];
                        match self.commit(&one).await {
                            Ok(counts) => self.finish(one, counts, n),
                            Err(e) => self.fail(one, e, n),
                        }
                    }
                }
                Err(e) => self.fail(jobs, e, queued),
            }
        }
    }

    fn finish(&self, jobs: Vec<Job>, counts: Vec<(usize, usize)>, queued: usize) {
        self.pending.fetch_sub(queued, Ordering::AcqRel);
        let together = jobs.len();
        for (job, (inserted, replaced)) in jobs.into_iter().zip(counts) {
            job.completer.complete(Ok(WriteReceipt {
                spans: job.rows.len(),
                inserted,
                replaced,
                batches_in_transaction: together,
            }));
        }
    }

    fn fail(&self, jobs: Vec<Job>, err: StoreError, queued: usize) {
        self.pending.fetch_sub(queued, Ordering::AcqRel);
        let text = err.to_string();
        let mut err = Some(err);
        for job in jobs {
            // The first ticket gets the error itself, the others its copy.
            let e = err.take().unwrap_or_else(|| match &text {
                t if t.is_empty() => StoreError::Closed,
                t => StoreError::Database {
                    op: "committing spans",
                    message: t.clone(),
                },
            });
            job.completer.complete(Err(e));
        }
    }

    /// The id of a project, created if new (outside the span transaction, so collectors
    /// creating it at once do not hold each other's locks).
    async fn project_id(
        &self,
        client: &tokio_postgres::Client,
        name: &str,
    ) -> Result<i64, StoreError> {
        if let Some(id) = lock(&self.projects).get(name) {
            return Ok(*id);
        }
        let id = super::side::project_id(client, name).await?;
        lock(&self.projects).insert(name.to_string(), id);
        Ok(id)
    }

    /// Writes the jobs in one transaction; returns (inserted, replaced) per job.
    async fn commit(&self, jobs: &[Job]) -> Result<Vec<(usize, usize)>, StoreError> {
        match self.try_commit(jobs, Inserts::Plain).await? {
            Some(counts) => Ok(counts),
            // A span row of a trace without a summary row: not written by this writer (every
            // commit writes both), but handled rather than refused.
            None => self
                .try_commit(jobs, Inserts::Upsert)
                .await?
                // Upserts make no plain inserts, so this cannot be `None`.
                .ok_or(StoreError::Database {
                    op: "committing spans",
                    message: "a stored span was in the way of an upsert".into(),
                }),
        }
    }

    /// [`Writer::commit`] with span rows of new traces written as `inserts` says; `None` when a
    /// plain insert met a stored row (the transaction is rolled back).
    async fn try_commit(
        &self,
        jobs: &[Job],
        inserts: Inserts,
    ) -> Result<Option<Vec<(usize, usize)>>, StoreError> {
        let mut client = self.pool.get().await.map_err(|e| StoreError::Unavailable {
            op: "committing spans",
            reason: pool_reason(&e),
            disk_full: false,
        })?;
        let mut pids = Vec::with_capacity(jobs.len());
        for job in jobs {
            pids.push(self.project_id(&client, &job.project).await?);
        }
        // The same span twice in the transaction: the last copy is written, the others count
        // as replaced.
        let mut counts = vec![(0usize, 0usize); jobs.len()];
        let mut index: HashMap<(i64, [u8; 16], [u8; 8]), usize> = HashMap::new();
        let mut slots: Vec<Slot<'_>> = Vec::new();
        for (j, (job, pid)) in jobs.iter().zip(&pids).enumerate() {
            for row in &job.rows {
                let key = (*pid, row.span.trace_id, row.span.span_id);
                match index.get(&key) {
                    Some(&i) => {
                        slots[i].row = row;
                        slots[i].job = j;
                        counts[j].1 += 1;
                    }
                    None => {
                        index.insert(key, slots.len());
                        slots.push(Slot {
                            pid: *pid,
                            row,
                            first_job: j,
                            job: j,
                        });
                    }
                }
            }
        }
        slots.sort_by_key(|s| (s.pid, s.row.span.trace_id, s.row.span.span_id));
        let e = db("committing spans");
        let tx = client.transaction().await.map_err(&e)?;
        let locks = slots
            .iter()
            .map(|s| trace_lock(s.pid, &s.row.span.trace_id));
        lock_traces(&tx, locks.collect()).await?;
        let chunk_ids = write_chunks(&tx, jobs, &pids, &slots).await?;
        let mut inserted: HashMap<(i64, [u8; 16], [u8; 8]), bool> = HashMap::new();
        for group in slots.chunk_by(|a, b| a.pid == b.pid) {
            let pid = group[0].pid;
            let traces: Vec<Vec<u8>> = {
                let mut t: Vec<Vec<u8>> =
                    group.iter().map(|s| s.row.span.trace_id.to_vec()).collect();
                t.dedup();
                t
            };
            // The hours whose rollups this commit changes where spans start now (a trigger
            // marks where rows it updates started before).
            let hours = rollups::hours_of_starts(group.iter().map(|s| s.row.span.start_ns));
            let mut stored = stored_traces(&tx, pid, &traces).await?;
            if inserts == Inserts::Upsert {
                stored.extend(traces.iter().cloned());
            }
            // A trace without a summary row has no span row either (every commit writes both,
            // and its lock is held): its spans are inserted without looking for rows to
            // replace, which cost more than the rest of the insert.
            let (old, new): (Vec<Slot<'_>>, Vec<Slot<'_>>) = group
                .iter()
                .cloned()
                .partition(|s| stored.contains(&s.row.span.trace_id[..]));
            let mut written = upsert_spans(&tx, pid, &old, &chunk_ids).await?;
            match insert_spans(&tx, pid, &new, &chunk_ids).await {
                Ok(mut keys) => written.append(&mut keys),
                Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => return Ok(None),
                Err(e) => return Err(db("writing spans")(e)),
            }
            // Spans stored before this commit: their old call-index rows go.
            let mut replaced: (Vec<Vec<u8>>, Vec<Vec<u8>>) = Default::default();
            for (t, s, new) in written {
                if !new {
                    replaced.0.push(t.to_vec());
                    replaced.1.push(s.to_vec());
                }
                inserted.insert((pid, t, s), new);
            }
            index_calls(&tx, pid, group, &replaced).await?;
            write_recovery(&tx, pid, group, &replaced).await?;
            let folded = fold_new_traces(group, &stored);
            let reread: Vec<Vec<u8>> = traces
                .into_iter()
                .filter(|t| !folded.contains_key(t))
                .collect();
            resolve_calls(&tx, pid, &reread).await?;
            write_summaries(&tx, pid, &reread, folded, &stored).await?;
            rollups::mark(&tx, pid, hours).await?;
        }
        tx.commit().await.map_err(&e)?;
        for s in &slots {
            let key = (s.pid, s.row.span.trace_id, s.row.span.span_id);
            let c = &mut counts[s.first_job];
            if inserted.get(&key).copied().unwrap_or(false) {
                c.0 += 1;
            } else {
                c.1 += 1;
            }
        }
        Ok(Some(counts))
    }
}

/// Locks a mutex, whatever a panicking holder left (the map stays valid).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Columns written from arrays: `(name, element type)`, in the order their arrays are bound.
const SPAN_COLUMNS: &[(&str, &str)] = &[
    ("trace_id", "BYTEA"),
    ("span_id", "BYTEA"),
    ("parent_span_id", "BYTEA"),
    ("start_ns", "BIGINT"),
    ("end_ns", "BIGINT"),
    ("duration_ns", "BIGINT"),
    ("kind", "TEXT"),
    ("status", "TEXT"),
    ("name", "TEXT"),
    ("request_model", "TEXT"),
    ("response_model", "TEXT"),
    ("provider", "TEXT"),
    ("agent_name", "TEXT"),
    ("user_id", "TEXT"),
    ("session_id", "TEXT"),
    ("service", "TEXT"),
    ("tool_name", "TEXT"),
    ("error_type", "TEXT"),
    ("input_tokens", "BIGINT"),
    ("output_tokens", "BIGINT"),
    ("cache_read_tokens", "BIGINT"),
    ("cache_write_tokens", "BIGINT"),
    ("reasoning_tokens", "BIGINT"),
    ("total_tokens", "BIGINT"),
    ("cost_nano", "BIGINT"),
    ("unpriced", "BOOLEAN"),
    ("ttft_ns", "BIGINT"),
    ("retry_count", "BIGINT"),
    ("tags", TEXT_ARRAY),
    ("chunk_id", "BIGINT"),
    ("for_recovery", "BOOLEAN"),
    ("words", TEXT_ARRAY),
    ("prompt_name", "TEXT"),
    ("prompt_version", "TEXT"),
];

// `copy_spans` writes a row of exactly these columns plus the project id.
const _: () = assert!(SPAN_COLUMNS.len() == 34);

/// Column type of a `TEXT[]` column whose values arrive as array literals ([`text_array`]): an
/// array per row cannot be unnested row by row. (Sent as JSON and unpacked with a subquery per
/// row, tags cost a tenth of the span insert.)
const TEXT_ARRAY: &str = "TEXT_ARRAY";
/// Column type of a `BIGINT[]` column whose values arrive as array literals.
const INT_ARRAY: &str = "INT_ARRAY";

/// `INSERT INTO table (project_id, cols…) SELECT $1, … FROM unnest($2::type[], …)`; with
/// `keys`, an upsert on `(project_id, keys…)` that replaces every other column; then `tail`.
fn unnest_upsert(table: &str, cols: &[(&str, &str)], keys: &[&str], tail: &str) -> String {
    let names: Vec<&str> = cols.iter().map(|c| c.0).collect();
    let mut arrays = Vec::new();
    let mut values = Vec::new();
    for (i, (n, ty)) in cols.iter().enumerate() {
        let (array, value) = match *ty {
            TEXT_ARRAY => ("TEXT", format!("x.{n}::TEXT[]")),
            INT_ARRAY => ("TEXT", format!("x.{n}::BIGINT[]")),
            other => (other, format!("x.{n}")),
        };
        arrays.push(format!("${}::{array}[]", i + 2));
        values.push(value);
    }
    let conflict = if keys.is_empty() {
        String::new()
    } else {
        let set: Vec<String> = names
            .iter()
            .filter(|n| !keys.contains(n))
            .map(|n| format!("{n} = EXCLUDED.{n}"))
            .collect();
        format!(
            "ON CONFLICT (project_id, {}) DO UPDATE SET {}",
            keys.join(", "),
            set.join(", ")
        )
    };
    format!(
        "INSERT INTO {table} (project_id, {}) SELECT $1, {} FROM unnest({}) AS x({}) {conflict} \
         {tail}",
        names.join(", "),
        values.join(", "),
        arrays.join(", "),
        names.join(", "),
    )
}

/// Writes the chunks that hold the body of a span written by this commit (a chunk whose every
/// span came again later in the same commit is left out); returns each one's id by
/// (submission, chunk).
async fn write_chunks(
    tx: &Transaction<'_>,
    jobs: &[Job],
    pids: &[i64],
    slots: &[Slot<'_>],
) -> Result<HashMap<(usize, usize), i64>, StoreError> {
    let e = db("writing span bodies");
    let mut used: Vec<(usize, usize)> = slots.iter().map(|s| (s.job, s.row.chunk)).collect();
    used.sort_unstable();
    used.dedup();
    let n = i64::try_from(used.len()).unwrap_or(i64::MAX);
    let ids: Vec<i64> = tx
        .query(
            "SELECT nextval('trace_chunk_ids') FROM generate_series(1, $1::BIGINT)",
            &[&n],
        )
        .await
        .map_err(&e)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let (mut project, mut trace, mut codec, mut body) = (vec![], vec![], vec![], vec![]);
    for &(j, c) in &used {
        let chunk = &jobs[j].chunks[c];
        project.push(pids[j]);
        trace.push(chunk.trace_id.to_vec());
        // Codecs are 0 and 1.
        codec.push(chunk.codec as i16);
        body.push(chunk.body.as_slice());
    }
    tx.execute(
        "INSERT INTO trace_chunks (chunk_id, project_id, trace_id, codec, body) \
         SELECT * FROM unnest($1::BIGINT[], $2::BIGINT[], $3::BYTEA[], $4::SMALLINT[], \
         $5::BYTEA[])",
        &[&ids, &project, &trace, &codec, &body],
    )
    .await
    .map_err(&e)?;
    Ok(used.into_iter().zip(ids).collect())
}

/// A PostgreSQL array literal of `values`, each element quoted (`{"a","b\"c"}`), so any text
/// (commas, braces, quotes, backslashes, `NULL`) reads back as itself.
fn text_array<S: AsRef<str>>(values: &[S]) -> String {
    let mut out = String::from("{");
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        for c in v.as_ref().chars() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
    }
    out.push('}');
    out
}

/// Inserts the spans of one project's new traces with a binary `COPY`; returns each span's
/// key, all new. (`INSERT … SELECT FROM unnest(…)` cost PostgreSQL more per row: it gathers the
/// arrays into a tuple store and parses the tags' array literals.)
async fn insert_spans(
    tx: &Transaction<'_>,
    pid: i64,
    slots: &[Slot<'_>],
    chunk_ids: &HashMap<(usize, usize), i64>,
) -> Result<Vec<([u8; 16], [u8; 8], bool)>, tokio_postgres::Error> {
    if slots.is_empty() {
        return Ok(Vec::new());
    }
    copy_spans(tx, "spans", pid, slots, chunk_ids).await?;
    Ok(slots
        .iter()
        .map(|s| (s.row.span.trace_id, s.row.span.span_id, true))
        .collect())
}

/// Upserts the spans of one project: copied into a temporary table first (the same rows as
/// [`insert_spans`] writes), then moved into `spans` replacing stored copies. Returns each
/// span's key and whether it was new.
async fn upsert_spans(
    tx: &Transaction<'_>,
    pid: i64,
    slots: &[Slot<'_>],
    chunk_ids: &HashMap<(usize, usize), i64>,
) -> Result<Vec<([u8; 16], [u8; 8], bool)>, StoreError> {
    if slots.is_empty() {
        return Ok(Vec::new());
    }
    let e = db("writing spans");
    // Per connection, emptied by every commit or rollback.
    tx.batch_execute(
        "CREATE TEMP TABLE IF NOT EXISTS span_upserts (LIKE spans) ON COMMIT DELETE ROWS",
    )
    .await
    .map_err(&e)?;
    copy_spans(tx, "span_upserts", pid, slots, chunk_ids)
        .await
        .map_err(&e)?;
    let names: Vec<&str> = SPAN_COLUMNS.iter().map(|c| c.0).collect();
    let set: Vec<String> = names
        .iter()
        .filter(|n| !["trace_id", "span_id"].contains(n))
        .map(|n| format!("{n} = EXCLUDED.{n}"))
        .collect();
    let cols = names.join(", ");
    let out = tx
        .query(
            &format!(
                "INSERT INTO spans (project_id, {cols}) SELECT project_id, {cols} FROM span_upserts \
                 ON CONFLICT (project_id, trace_id, span_id) DO UPDATE SET {} \
                 RETURNING trace_id, span_id, (xmax = 0)",
                set.join(", ")
            ),
            &[],
        )
        .await
        .map_err(&e)?;
    tx.batch_execute("DELETE FROM span_upserts")
        .await
        .map_err(&e)?;
    let mut keys = Vec::with_capacity(out.len());
    for r in out {
        let t: Vec<u8> = r.get(0);
        let s: Vec<u8> = r.get(1);
        if let (Ok(t), Ok(s)) = (t.try_into(), s.try_into()) {
            keys.push((t, s, r.get(2)));
        }
    }
    Ok(keys)
}

/// Writes the rows of `slots` into `table` (`spans` or a table like it) with a binary `COPY`
/// of the project id and [`SPAN_COLUMNS`].
async fn copy_spans(
    tx: &Transaction<'_>,
    table: &str,
    pid: i64,
    slots: &[Slot<'_>],
    chunk_ids: &HashMap<(usize, usize), i64>,
) -> Result<(), tokio_postgres::Error> {
    let names: Vec<&str> = SPAN_COLUMNS.iter().map(|c| c.0).collect();
    let sink = tx
        .copy_in(&format!(
            "COPY {table} (project_id, {}) FROM STDIN (FORMAT binary)",
            names.join(", ")
        ))
        .await?;
    let types: Vec<Type> = std::iter::once(Type::INT8)
        .chain(SPAN_COLUMNS.iter().map(|(_, ty)| match *ty {
            "BYTEA" => Type::BYTEA,
            "BIGINT" => Type::INT8,
            "BOOLEAN" => Type::BOOL,
            TEXT_ARRAY => Type::TEXT_ARRAY,
            _ => Type::TEXT,
        }))
        .collect();
    let mut writer = std::pin::pin!(BinaryCopyInWriter::new(sink, &types));
    for s in slots {
        let r = &s.row.span;
        let parent = r.parent_span_id.as_ref().map(|p| &p[..]);
        let chunk = chunk_ids.get(&(s.job, s.row.chunk)).copied();
        let for_recovery = for_recovery(r);
        let words = spanlens_core::content::distinct_words(&r.search_text);
        // In SPAN_COLUMNS order, after the project id.
        let row: [&(dyn ToSql + Sync); 35] = [
            &pid,
            &&r.trace_id[..],
            &&r.span_id[..],
            &parent,
            &r.start_ns,
            &r.end_ns,
            &r.duration_ns,
            &r.kind,
            &r.status,
            &r.name,
            &r.request_model,
            &r.response_model,
            &r.provider,
            &r.agent_name,
            &r.user_id,
            &r.session_id,
            &r.service,
            &r.tool_name,
            &r.error_type,
            &r.input_tokens,
            &r.output_tokens,
            &r.cache_read_tokens,
            &r.cache_write_tokens,
            &r.reasoning_tokens,
            &r.total_tokens,
            &r.cost_nano,
            &r.unpriced,
            &r.ttft_ns,
            &r.retry_count,
            &r.tags,
            &chunk,
            &for_recovery,
            &words,
            &r.prompt_name,
            &r.prompt_version,
        ];
        writer.as_mut().write(&row).await?;
    }
    writer.finish().await?;
    Ok(())
}

/// What the recovery report reads: a retried span, or a rate-limit snapshot.
fn for_recovery(r: &PreparedSpan) -> bool {
    r.retry_count > 0 || r.retry.is_some() || r.rate.is_some()
}

/// Columns of `llm_calls` written from arrays, as [`SPAN_COLUMNS`].
const CALL_COLUMNS: &[(&str, &str)] = &[
    ("trace_id", "BYTEA"),
    ("span_id", "BYTEA"),
    ("parent_span_id", "BYTEA"),
    ("response_id", "TEXT"),
    ("provider", "TEXT"),
    ("request_model", "TEXT"),
    ("response_model", "TEXT"),
    ("start_ns", "BIGINT"),
    ("end_ns", "BIGINT"),
    ("counts", INT_ARRAY),
    ("cost_nano", "BIGINT"),
    ("unpriced", "BOOLEAN"),
    ("detail", "BIGINT"),
];

/// Keeps what the recovery report reads of the written spans in `span_recovery` (a retried
/// span's facts, a rate-limit snapshot), after taking out the rows of the `replaced` spans.
async fn write_recovery(
    tx: &Transaction<'_>,
    pid: i64,
    slots: &[Slot<'_>],
    replaced: &(Vec<Vec<u8>>, Vec<Vec<u8>>),
) -> Result<(), StoreError> {
    let e = db("writing retried spans");
    if !replaced.0.is_empty() {
        tx.execute(
            "DELETE FROM span_recovery r USING unnest($2::BYTEA[], $3::BYTEA[]) AS x(t, s) \
             WHERE r.project_id = $1 AND r.trace_id = x.t AND r.span_id = x.s",
            &[&pid, &replaced.0, &replaced.1],
        )
        .await
        .map_err(&e)?;
    }
    let rows: Vec<&PreparedSpan> = slots
        .iter()
        .map(|s| &s.row.span)
        .filter(|s| s.retry.is_some() || s.rate.is_some())
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    fn retry<'a>(r: &&'a PreparedSpan) -> Option<&'a RetryFacts> {
        r.retry.as_deref()
    }
    let params: Vec<Param> = vec![
        Box::new(pid),
        Box::new(rows.iter().map(|r| r.trace_id.to_vec()).collect::<Vec<_>>()),
        Box::new(rows.iter().map(|r| r.span_id.to_vec()).collect::<Vec<_>>()),
        Box::new(rows.iter().map(|r| r.start_ns).collect::<Vec<_>>()),
        Box::new(
            rows.iter()
                .map(|r| retry(r).and_then(|f| f.provider.clone()))
                .collect::<Vec<_>>(),
        ),
        Box::new(
            rows.iter()
                .map(|r| retry(r).and_then(|f| f.tool.clone()))
                .collect::<Vec<_>>(),
        ),
        Box::new(
            rows.iter()
                .map(|r| retry(r).map(|f| i64::try_from(f.retries).unwrap_or(i64::MAX)))
                .collect::<Vec<_>>(),
        ),
        Box::new(
            rows.iter()
                .map(|r| retry(r).map(|f| f.recovered))
                .collect::<Vec<_>>(),
        ),
        Box::new(
            rows.iter()
                .map(|r| retry(r).and_then(|f| f.recovery_ms))
                .collect::<Vec<_>>(),
        ),
        Box::new(
            rows.iter()
                .map(|r| retry(r).map(|f| f.encode_errors()))
                .collect::<Vec<_>>(),
        ),
        Box::new(
            rows.iter()
                .map(|r| r.rate.as_ref().map(|x| x.at_ns))
                .collect::<Vec<_>>(),
        ),
        Box::new(
            rows.iter()
                .map(|r| r.rate.as_ref().map(|x| x.bytes.clone()))
                .collect::<Vec<_>>(),
        ),
    ];
    tx.execute(
        "INSERT INTO span_recovery (project_id, trace_id, span_id, start_ns, provider, tool, \
         retries, recovered, recovery_ms, errors, rate_at_ns, rate_sample) \
         SELECT $1, * FROM unnest($2::BYTEA[], $3::BYTEA[], $4::BIGINT[], $5::TEXT[], \
         $6::TEXT[], $7::BIGINT[], $8::BOOLEAN[], $9::FLOAT8[], $10::BYTEA[], $11::BIGINT[], \
         $12::BYTEA[])",
        &args(&params),
    )
    .await
    .map_err(&e)?;
    Ok(())
}

/// Records the written LLM calls in the call index with their own counts, after taking out
/// the index rows of the `replaced` spans (trace ids, span ids), which were stored before and
/// may no longer be calls (the same-call rule is applied next).
async fn index_calls(
    tx: &Transaction<'_>,
    pid: i64,
    slots: &[Slot<'_>],
    replaced: &(Vec<Vec<u8>>, Vec<Vec<u8>>),
) -> Result<(), StoreError> {
    let e = db("indexing LLM calls");
    // Only spans seen before can have index rows. Most commits replace none, and a join of
    // every written span against the index took half of ingest's database time (the planner
    // scanned the whole index table for it).
    if !replaced.0.is_empty() {
        tx.execute(
            "DELETE FROM llm_calls c WHERE c.project_id = $1 AND (c.trace_id, c.span_id) IN \
             (SELECT t, s FROM unnest($2::BYTEA[], $3::BYTEA[]) AS x(t, s))",
            &[&pid, &replaced.0, &replaced.1],
        )
        .await
        .map_err(&e)?;
    }
    let calls: Vec<(&PreparedSpan, &Call)> = slots
        .iter()
        .filter_map(|s| s.row.span.call.as_deref().map(|c| (&s.row.span, c)))
        .collect();
    if calls.is_empty() {
        return Ok(());
    }
    let text = |f: fn(&Call) -> Option<&str>| -> Param {
        Box::new(
            calls
                .iter()
                .map(|(_, c)| f(c).map(str::to_string))
                .collect::<Vec<_>>(),
        )
    };
    let int = |f: fn(&PreparedSpan) -> i64| -> Param {
        Box::new(calls.iter().map(|(r, _)| f(r)).collect::<Vec<_>>())
    };
    let params: Vec<Param> = vec![
        Box::new(pid),
        Box::new(
            calls
                .iter()
                .map(|(r, _)| r.trace_id.to_vec())
                .collect::<Vec<_>>(),
        ),
        Box::new(
            calls
                .iter()
                .map(|(r, _)| r.span_id.to_vec())
                .collect::<Vec<_>>(),
        ),
        Box::new(
            calls
                .iter()
                .map(|(r, _)| r.parent_span_id.map(|p| p.to_vec()))
                .collect::<Vec<_>>(),
        ),
        text(|c| c.response_id.as_deref()),
        text(|c| c.provider.as_deref()),
        text(|c| c.request_model.as_deref()),
        text(|c| c.response_model.as_deref()),
        int(|r| r.start_ns),
        int(call_end),
        // Array literals: an array per row cannot be unnested row by row.
        Box::new(
            calls
                .iter()
                .map(|(r, _)| {
                    let t = r.stats().tokens.map(|v| v.to_string());
                    format!("{{{}}}", t.join(","))
                })
                .collect::<Vec<_>>(),
        ),
        Box::new(calls.iter().map(|(r, _)| r.cost_nano).collect::<Vec<_>>()),
        Box::new(calls.iter().map(|(r, _)| r.unpriced).collect::<Vec<_>>()),
        Box::new(
            calls
                .iter()
                .map(|(_, c)| i64::from(c.detail))
                .collect::<Vec<_>>(),
        ),
    ];
    let sql = unnest_upsert("llm_calls", CALL_COLUMNS, &[], "");
    let args = args(&params);
    tx.execute(&sql, &args).await.map_err(&e)?;
    Ok(())
}

/// The touched traces that have a summary row, that is, spans stored by an earlier commit.
/// (Called under the traces' locks, so no other writer adds one before this commit ends.)
async fn stored_traces(
    tx: &Transaction<'_>,
    pid: i64,
    traces: &[Vec<u8>],
) -> Result<HashSet<Vec<u8>>, StoreError> {
    let rows = tx
        .query(
            "SELECT trace_id FROM traces WHERE project_id = $1 AND trace_id = ANY($2)",
            &[&pid, &traces],
        )
        .await
        .map_err(db("reading trace summaries"))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// The summaries of the traces this commit brings in whole, folded from the rows in hand: no
/// span of them was stored before (`stored` lacks them), and no call among them is counted in
/// another's place, so the rows are stored as written. The others are read back from the
/// database. (Reading back rows just written took about a fifth of PostgreSQL's time at
/// ingest, where almost every trace arrives whole.)
fn fold_new_traces(slots: &[Slot<'_>], stored: &HashSet<Vec<u8>>) -> BTreeMap<Vec<u8>, TraceState> {
    let mut out = BTreeMap::new();
    let mut ignored = Vec::new();
    for trace in slots.chunk_by(|a, b| a.row.span.trace_id == b.row.span.trace_id) {
        let id = trace[0].row.span.trace_id.to_vec();
        if stored.contains(&id) {
            continue;
        }
        let calls: Vec<Call> = trace
            .iter()
            .filter_map(|s| {
                s.row
                    .span
                    .call
                    .as_deref()
                    .map(|c| indexed_call(&s.row.span, c))
            })
            .collect();
        if duplicates(&calls).iter().any(Option::is_some) {
            continue;
        }
        let mut state = TraceState::default();
        for s in trace {
            state.add(&s.row.span.facts(), &mut ignored);
        }
        out.insert(id, state);
    }
    out
}

/// A call as [`index_calls`] stores it and [`resolve_calls`] reads it back, so the same-call
/// rule gives the same answer on rows in hand as on rows read.
fn indexed_call(r: &PreparedSpan, c: &Call) -> Call {
    Call {
        span_id: SpanId(r.span_id),
        parent_span_id: r.parent_span_id.map(SpanId),
        response_id: c.response_id.clone(),
        provider: c.provider.clone(),
        request_model: c.request_model.clone(),
        response_model: c.response_model.clone(),
        start_ns: nonneg(r.start_ns),
        end_ns: nonneg(call_end(r)),
        tokens: r.stats().tokens.map(nonneg),
        priced: r.cost_nano.is_some(),
        detail: c.detail,
    }
}

/// The end the call index stores: the span's end, not before its start.
fn call_end(r: &PreparedSpan) -> i64 {
    r.end_ns.unwrap_or(r.start_ns).max(r.start_ns)
}

/// A call of the index and the span it is marked a duplicate of now.
type Marked = (Call, Option<[u8; 8]>);

fn nonneg(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Applies the same-call rule to every call of the touched traces (`spanlens_core::dedup`),
/// then makes each call's span row count its own tokens and cost, or none when another span is
/// counted for its call. The rule is remade from all of a trace's calls each time, so the
/// outcome does not depend on arrival order.
async fn resolve_calls(
    tx: &Transaction<'_>,
    pid: i64,
    traces: &[Vec<u8>],
) -> Result<(), StoreError> {
    let e = db("counting each LLM call once");
    if traces.is_empty() {
        return Ok(());
    }
    let rows = tx
        .query(
            "SELECT trace_id, span_id, parent_span_id, response_id, provider, request_model, \
             response_model, start_ns, end_ns, counts, cost_nano, detail, duplicate_of \
             FROM llm_calls WHERE project_id = $1 AND trace_id = ANY($2) ORDER BY trace_id",
            &[&pid, &traces],
        )
        .await
        .map_err(&e)?;
    if rows.is_empty() {
        return Ok(());
    }
    let id8 = |b: Option<Vec<u8>>| b.and_then(|b| <[u8; 8]>::try_from(b).ok());
    // Per trace: each call and the duplicate mark it has now.
    let mut by_trace: BTreeMap<Vec<u8>, Vec<Marked>> = BTreeMap::new();
    for r in rows {
        let counts: Vec<i64> = r.get(9);
        let mut tokens = [0u64; 6];
        for (t, c) in tokens.iter_mut().zip(counts) {
            *t = nonneg(c);
        }
        let call = Call {
            span_id: SpanId(id8(r.get(1)).unwrap_or_default()),
            parent_span_id: id8(r.get(2)).map(SpanId),
            response_id: r.get(3),
            provider: r.get(4),
            request_model: r.get(5),
            response_model: r.get(6),
            start_ns: nonneg(r.get(7)),
            end_ns: nonneg(r.get(8)),
            tokens,
            priced: r.get::<_, Option<i64>>(10).is_some(),
            detail: u32::try_from(r.get::<_, i64>(11)).unwrap_or(0),
        };
        by_trace
            .entry(r.get(0))
            .or_default()
            .push((call, id8(r.get(12))));
    }
    let (mut t, mut s, mut d) = (Vec::new(), Vec::new(), Vec::new());
    for (trace, calls) in by_trace {
        let only: Vec<Call> = calls.iter().map(|(c, _)| c.clone()).collect();
        for ((call, now), want) in calls.iter().zip(duplicates(&only)) {
            let want = want.map(|j| only[j].span_id.0);
            if want != *now {
                t.push(trace.clone());
                s.push(call.span_id.0.to_vec());
                d.push(want.map(|w| w.to_vec()));
            }
        }
    }
    if !t.is_empty() {
        tx.execute(
            "UPDATE llm_calls c SET duplicate_of = x.d \
             FROM unnest($2::BYTEA[], $3::BYTEA[], $4::BYTEA[]) AS x(t, s, d) \
             WHERE c.project_id = $1 AND c.trace_id = x.t AND c.span_id = x.s",
            &[&pid, &t, &s, &d],
        )
        .await
        .map_err(&e)?;
    }
    // A span row written by this commit counts its own tokens, and its call's index row was
    // written anew, unmarked: a row that must count nothing has its mark changed here. So
    // with no mark changed every row is right already.
    if t.is_empty() {
        return Ok(());
    }
    // The counted columns of every call's span row, from its own counts in the index. Only
    // rows whose values change are written: a call that is no one's duplicate keeps what its
    // insert wrote, so it is not rewritten (a rewrite leaves a dead row and index entries
    // behind on every commit of its trace).
    let mut columns: Vec<(&str, String)> = [
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "reasoning_tokens",
        "total_tokens",
    ]
    .iter()
    .enumerate()
    .map(|(k, c)| {
        let counted = format!(
            "CASE WHEN c.duplicate_of IS NULL THEN c.counts[{}] ELSE 0 END",
            k + 1
        );
        (*c, counted)
    })
    .collect();
    columns.push((
        "cost_nano",
        "CASE WHEN c.duplicate_of IS NULL THEN c.cost_nano END".into(),
    ));
    columns.push(("unpriced", "c.unpriced AND c.duplicate_of IS NULL".into()));
    let set: Vec<String> = columns.iter().map(|(c, v)| format!("{c} = {v}")).collect();
    let now: Vec<String> = columns.iter().map(|(c, _)| format!("s.{c}")).collect();
    let want: Vec<&str> = columns.iter().map(|(_, v)| v.as_str()).collect();
    tx.execute(
        &format!(
            "UPDATE spans s SET {} \
             FROM llm_calls c WHERE c.project_id = $1 AND c.trace_id = ANY($2) \
             AND s.project_id = c.project_id AND s.trace_id = c.trace_id \
             AND s.span_id = c.span_id AND ({}) IS DISTINCT FROM ({})",
            set.join(", "),
            now.join(", "),
            want.join(", ")
        ),
        &[&pid, &traces],
    )
    .await
    .map_err(&e)?;
    Ok(())
}

/// A stored span's summary facts, owned (they are read from rows).
struct StoredFacts {
    span_id: [u8; 8],
    is_root: bool,
    name: String,
    kind: String,
    status: String,
    start: i64,
    end: Option<i64>,
    tokens: [i64; 3],
    cost: Option<i64>,
    unpriced: bool,
    context: [Option<String>; 6],
    tags: Vec<String>,
    prompt: [Option<String>; 2],
}

impl StoredFacts {
    fn of(r: &tokio_postgres::Row) -> StoredFacts {
        let id: Vec<u8> = r.get(1);
        StoredFacts {
            span_id: id.try_into().unwrap_or_default(),
            is_root: r.get(2),
            name: r.get(3),
            kind: r.get(4),
            status: r.get(5),
            start: r.get(6),
            end: r.get(7),
            tokens: [r.get(8), r.get(9), r.get(10)],
            cost: r.get(11),
            unpriced: r.get(12),
            context: [
                r.get(13),
                r.get(14),
                r.get(15),
                r.get(16),
                r.get(17),
                r.get(18),
            ],
            tags: r.get(19),
            prompt: [r.get(20), r.get(21)],
        }
    }

    fn facts(&self) -> SpanFacts<'_> {
        let [user, session, service, request, response, provider] = &self.context;
        SpanFacts {
            span_id: self.span_id,
            is_root: self.is_root,
            name: &self.name,
            kind: &self.kind,
            status: &self.status,
            start: self.start,
            end: self.end,
            input_tokens: self.tokens[0],
            output_tokens: self.tokens[1],
            total_tokens: self.tokens[2],
            cost: self.cost,
            unpriced: self.unpriced,
            user: user.as_deref(),
            session: session.as_deref(),
            service: service.as_deref(),
            request_model: request.as_deref(),
            response_model: response.as_deref(),
            provider: provider.as_deref(),
            tags: &self.tags,
            prompt_name: self.prompt[0].as_deref(),
            prompt_version: self.prompt[1].as_deref(),
        }
    }
}

/// Writes the summary rows of the touched traces: those `folded` from the rows in hand, and
/// the `reread` ones rebuilt from every span stored for them. Rows of traces not in `stored`
/// are inserted plainly (under the traces' locks no other writer makes them meanwhile).
async fn write_summaries(
    tx: &Transaction<'_>,
    pid: i64,
    reread: &[Vec<u8>],
    folded: BTreeMap<Vec<u8>, TraceState>,
    stored: &HashSet<Vec<u8>>,
) -> Result<(), StoreError> {
    let e = db("writing trace summaries");
    let mut states = folded;
    let rows = if reread.is_empty() {
        Vec::new()
    } else {
        tx.query(
            "SELECT trace_id, span_id, parent_span_id IS NULL, name, kind, status, start_ns, \
             end_ns, input_tokens, output_tokens, total_tokens, cost_nano, unpriced, user_id, \
             session_id, service, request_model, response_model, provider, tags, prompt_name, \
             prompt_version FROM spans WHERE project_id = $1 AND trace_id = ANY($2) ORDER BY trace_id",
            &[&pid, &reread],
        )
        .await
        .map_err(&e)?
    };
    let mut ignored = Vec::new();
    for r in &rows {
        let f = StoredFacts::of(r);
        states
            .entry(r.get(0))
            .or_default()
            .add(&f.facts(), &mut ignored);
    }
    let (mut old, mut new) = (SummaryColumns::default(), SummaryColumns::default());
    for (tid, state) in &states {
        if stored.contains(tid) {
            &mut old
        } else {
            &mut new
        }
        .push(tid, state);
    }
    // A trace written again may hold payloads again: payload expiry is to look at it anew.
    for (cols, keys, tail) in [
        (old, &["trace_id"][..], ", payloads_cleared = FALSE"),
        (new, &[][..], ""),
    ] {
        if cols.trace_id.is_empty() {
            continue;
        }
        let params = cols.params(pid);
        let sql = unnest_upsert("traces", SUMMARY_COLUMNS, keys, tail);
        tx.execute(&sql, &args(&params)).await.map_err(&e)?;
    }
    Ok(())
}

/// Columns of `traces` written from arrays, as [`SPAN_COLUMNS`]; the sets arrive as array
/// literals.
const SUMMARY_COLUMNS: &[(&str, &str)] = &[
    ("trace_id", "BYTEA"),
    ("name", "TEXT"),
    ("start_ns", "BIGINT"),
    ("end_ns", "BIGINT"),
    ("duration_ns", "BIGINT"),
    ("status", "TEXT"),
    ("span_count", "BIGINT"),
    ("error_count", "BIGINT"),
    ("input_tokens", "BIGINT"),
    ("output_tokens", "BIGINT"),
    ("total_tokens", "BIGINT"),
    ("cost_nano", "BIGINT"),
    ("unpriced_count", "BIGINT"),
    ("user_id", "TEXT"),
    ("session_id", "TEXT"),
    ("root_span_id", "BYTEA"),
    ("service", "TEXT"),
    ("tags", TEXT_ARRAY),
    ("kinds", TEXT_ARRAY),
    ("models", TEXT_ARRAY),
    ("providers", TEXT_ARRAY),
    ("search", "TEXT"),
    ("prompts", TEXT_ARRAY),
    ("prompt_versions", TEXT_ARRAY),
];

/// The summary rows of a commit, column by column.
#[derive(Default)]
struct SummaryColumns {
    trace_id: Vec<Vec<u8>>,
    text: [Vec<String>; 4],
    ints: [Vec<i64>; 10],
    root: Vec<Option<Vec<u8>>>,
    service: Vec<Option<String>>,
    sets: [Vec<String>; 6],
    search: Vec<String>,
}

impl SummaryColumns {
    fn push(&mut self, tid: &[u8], state: &TraceState) {
        let id: [u8; 16] = tid.try_into().unwrap_or_default();
        let s = state.summary(&id);
        self.trace_id.push(tid.to_vec());
        for (col, v) in
            self.text
                .iter_mut()
                .zip([s.name, s.status.to_string(), s.user_id, s.session_id])
        {
            col.push(v);
        }
        for (col, v) in self.ints.iter_mut().zip(state.numbers().in_order()) {
            col.push(v);
        }
        self.root.push(s.root_span_id.map(|r| r.to_vec()));
        self.service.push(s.service);
        let mut sets: [Vec<String>; 6] = Default::default();
        for (code, v) in state.all_facets() {
            let at = match code {
                facet::TAG => 0,
                facet::KIND => 1,
                facet::MODEL => 2,
                facet::PROMPT => 4,
                facet::PROMPT_VERSION => 5,
                _ => 3,
            };
            sets[at].push(v);
        }
        for (col, values) in self.sets.iter_mut().zip(sets) {
            col.push(text_array(&values));
        }
        self.search.push(s.search);
    }

    /// The parameters in [`SUMMARY_COLUMNS`] order, after the project id.
    fn params(self, pid: i64) -> Vec<Param> {
        let [name, status, user, session] = self.text;
        let [start, end, duration, spans, errors, input, output, total, cost, unpriced] = self.ints;
        let [tags, kinds, models, providers, prompts, prompt_versions] = self.sets;
        vec![
            Box::new(pid),
            Box::new(self.trace_id),
            Box::new(name),
            Box::new(start),
            Box::new(end),
            Box::new(duration),
            Box::new(status),
            Box::new(spans),
            Box::new(errors),
            Box::new(input),
            Box::new(output),
            Box::new(total),
            Box::new(cost),
            Box::new(unpriced),
            Box::new(user),
            Box::new(session),
            Box::new(self.root),
            Box::new(self.service),
            Box::new(tags),
            Box::new(kinds),
            Box::new(models),
            Box::new(providers),
            Box::new(self.search),
            Box::new(prompts),
            Box::new(prompt_versions),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::text_array;

    #[test]
    fn text_array_quotes_every_element() {
        assert_eq!(text_array::<&str>(&[]), "{}");
        assert_eq!(
            text_array(&["a", "b,c", "NULL", "{x}", r#"q"t"#, r"back\slash", ""]),
            r#"{"a","b,c","NULL","{x}","q\"t","back\\slash",""}"#
        );
    }
}
