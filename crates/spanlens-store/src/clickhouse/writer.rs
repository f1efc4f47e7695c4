//! The writer tasks: each inserts every submission waiting in the queue with one insert, then
//! recomputes the summary of every trace the insert touched from the spans stored for it, then
//! resolves the submissions' tickets.
//!
//! ClickHouse has no transactions, so the summaries are made safe by versions instead of locks.
//! A synchronous insert is visible to every query that starts after it returns, and each span
//! row's `version` is the server's clock at its insert. A summary is written with the highest
//! span version its computation read. When two collectors write spans of one trace at once, the
//! one whose insert finished last reads the other's spans too, so the summary that saw every
//! span has the highest version, and `ReplacingMergeTree` (and reads with `FINAL`) keep it.

use super::rowread::RowReader;
use super::{ch_error, sql, Client};
use crate::clickhouse::RowBinary;
use crate::error::StoreError;
use crate::facts::prepare::{self, PreparedSpan};
use crate::facts::summary::{facet, SpanFacts, TraceState};
use crate::queue::gather;
use crate::ticket::Completer;
use crate::types::WriteReceipt;
use spanlens_core::dedup::{duplicates, Call};
use spanlens_core::{Span, SpanId};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

/// A span ready for the writer: its typed columns, its canonical JSON and the text content
/// search reads.
pub struct Row {
    pub span: PreparedSpan,
    pub body: Vec<u8>,
    pub content: String,
}

/// One submission waiting for the writer.
pub struct Job {
    /// Project name (already defaulted).
    pub project: String,
    pub rows: Vec<Row>,
    pub completer: Completer,
}

/// Prepares a submission on the submitting thread, so the writer only talks to the server.
pub fn prepare_rows(spans: Vec<Span>, project: &str) -> Result<Vec<Row>, StoreError> {
    let mut rows = Vec::with_capacity(spans.len());
    for mut span in spans {
        prepare::own(&mut span, project);
        let mut body = Vec::with_capacity(512);
        prepare::write_body(&span, &mut body)?;
        let content = spanlens_core::content::text(&span);
        rows.push(Row {
            span: prepare::prepare(span),
            body,
            content,
        });
    }
    Ok(rows)
}

/// Columns of an inserted span row, in the order [`encode_span`] writes them.
pub const SPAN_INSERT: &str = "INSERT INTO spans (project, trace_id, span_id, parent_span_id, \
     start_ns, end_ns, duration_ns, kind, status, name, request_model, response_model, provider, \
     agent_name, user_id, session_id, service, tool_name, error_type, input_tokens, \
     output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens, total_tokens, \
     cost_nano, unpriced, ttft_ns, retry_count, tags, call_response_id, call_detail, body, content, \
     prompt_name, prompt_version) FORMAT RowBinary";

fn encode_span(out: &mut RowBinary, project: &str, r: &Row) {
    let s = &r.span;
    out.str(project).fixed(&s.trace_id).fixed(&s.span_id);
    match &s.parent_span_id {
        Some(p) => out.u8(0).fixed(p),
        None => out.u8(1),
    };
    out.i64(s.start_ns)
        .opt_i64(s.end_ns)
        .opt_i64(s.duration_ns)
        .str(s.kind)
        .str(s.status)
        .str(&s.name)
        .opt_str(s.request_model.as_deref())
        .opt_str(s.response_model.as_deref())
        .opt_str(s.provider.as_deref())
        .opt_str(s.agent_name.as_deref())
        .opt_str(s.user_id.as_deref())
        .opt_str(s.session_id.as_deref())
        .opt_str(s.service.as_deref())
        .opt_str(s.tool_name.as_deref())
        .opt_str(s.error_type.as_deref())
        .i64(s.input_tokens)
        .i64(s.output_tokens)
        .i64(s.cache_read_tokens)
        .i64(s.cache_write_tokens)
        .i64(s.reasoning_tokens)
        .i64(s.total_tokens)
        .opt_i64(s.cost_nano)
        .bool(s.unpriced)
        .opt_i64(s.ttft_ns)
        .i64(s.retry_count)
        .strs(&s.tags);
    match s.call.as_deref() {
        Some(c) => {
            out.opt_str(c.response_id.as_deref()).u8(0).u32(c.detail);
        }
        None => {
            out.u8(1).u8(1);
        }
    }
    out.bytes(&r.body).str(&r.content);
    out.opt_str(s.prompt_name.as_deref())
        .opt_str(s.prompt_version.as_deref());
}

/// Columns of an inserted `span_times` row, in the order [`encode_time`] writes them.
const TIME_INSERT: &str = "INSERT INTO span_times (project, hour, trace_id, span_id, start_ns, \
     kind, status, duration_ns, ttft_ns, input_tokens, output_tokens, cache_read_tokens, \
     cache_write_tokens, reasoning_tokens, total_tokens, cost_nano, unpriced, retry_count, \
     request_model, response_model, provider, agent_name, user_id, tool_name) FORMAT RowBinary";

fn encode_time(out: &mut RowBinary, project: &str, s: &PreparedSpan) {
    out.str(project)
        .i64(super::rollups::mark_hour(s.start_ns))
        .fixed(&s.trace_id)
        .fixed(&s.span_id)
        .i64(s.start_ns)
        .str(s.kind)
        .str(s.status)
        .opt_i64(s.duration_ns)
        .opt_i64(s.ttft_ns)
        .i64(s.input_tokens)
        .i64(s.output_tokens)
        .i64(s.cache_read_tokens)
        .i64(s.cache_write_tokens)
        .i64(s.reasoning_tokens)
        .i64(s.total_tokens)
        .opt_i64(s.cost_nano)
        .bool(s.unpriced)
        .i64(s.retry_count)
        .opt_str(s.request_model.as_deref())
        .opt_str(s.response_model.as_deref())
        .opt_str(s.provider.as_deref())
        .opt_str(s.agent_name.as_deref())
        .opt_str(s.user_id.as_deref())
        .opt_str(s.tool_name.as_deref());
}

/// A writer's state, one per writer task (they share the client, the counter and the queue).
#[derive(Clone)]
pub struct Writer {
    pub client: Client,
    pub pending: Arc<AtomicUsize>,
    pub max_spans: usize,
}

/// Traces per statement that names them in an `IN` list.
const TRACES_PER_QUERY: usize = 2_000;

impl Writer {
    /// Runs until every sender is gone and the queue is drained.
    pub async fn run(self, rx: Arc<tokio::sync::Mutex<mpsc::Receiver<Job>>>) {
        loop {
            let (jobs, queued) = {
                let mut rx = rx.lock().await;
                let Some(first) = rx.recv().await else { break };
                gather(
                    first,
                    self.max_spans,
                    |j| j.rows.len(),
                    || rx.try_recv().ok(),
                )
            };
            match self.commit(&jobs).await {
                Ok(counts) => self.finish(jobs, counts, queued),
                // One bad batch must not sink the others: retry each on its own (unless the
                // server is away, when each would fail the same way).
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
            let e = err.take().unwrap_or_else(|| StoreError::Database {
                op: "writing spans",
                message: text.clone(),
            });
            job.completer.complete(Err(e));
        }
    }

    /// Inserts the jobs' spans and recomputes the touched traces' summaries; returns
    /// (inserted, replaced) per job.
    async fn commit(&self, jobs: &[Job]) -> Result<Vec<(usize, usize)>, StoreError> {
        // The same span twice in the insert: the last copy is written, the others count as
        // replaced.
        let mut counts = vec![(0usize, 0usize); jobs.len()];
        let mut index: HashMap<(&str, [u8; 16], [u8; 8]), usize> = HashMap::new();
        let mut slots: Vec<(usize, &Row, usize)> = Vec::new(); // (job, row, first job)
        for (j, job) in jobs.iter().enumerate() {
            for row in &job.rows {
                let key = (job.project.as_str(), row.span.trace_id, row.span.span_id);
                match index.get(&key) {
                    Some(&i) => {
                        slots[i].0 = j;
                        slots[i].1 = row;
                        counts[j].1 += 1;
                    }
                    None => {
                        index.insert(key, slots.len());
                        slots.push((j, row, j));
                    }
                }
            }
        }
        // Traces touched, per project.
        let mut touched: BTreeMap<&str, Vec<[u8; 16]>> = BTreeMap::new();
        for (j, row, _) in &slots {
            touched
                .entry(jobs[*j].project.as_str())
                .or_default()
                .push(row.span.trace_id);
        }
        for traces in touched.values_mut() {
            traces.sort_unstable();
            traces.dedup();
        }
        let mut stored: HashSet<(&str, [u8; 16], [u8; 8])> = HashSet::new();
        // The hours whose rollups this insert changes: where the copies it replaces started,
        // and (below) where the touched traces' spans start now.
        let mut marks = BTreeSet::new();
        // Copies stored in another hour than the one their span is written to now.
        let mut moved: Vec<(&str, i64, [u8; 16], [u8; 8])> = Vec::new();
        let new_hour: HashMap<(&str, [u8; 16], [u8; 8]), i64> = slots
            .iter()
            .map(|(j, row, _)| {
                let key = (
                    jobs[*j].project.as_str(),
                    row.span.trace_id,
                    row.span.span_id,
                );
                (key, super::rollups::mark_hour(row.span.start_ns))
            })
            .collect();
        for (project, traces) in &touched {
            for part in traces.chunks(TRACES_PER_QUERY) {
                for (t, s, start) in self.stored_spans(project, part).await? {
                    let hour = super::rollups::mark_hour(start);
                    let key = (*project, t, s);
                    if new_hour.get(&key).is_some_and(|h| *h != hour) {
                        moved.push((project, hour, t, s));
                    }
                    stored.insert(key);
                    marks.insert((project.to_string(), hour));
                }
            }
        }
        let mut rows = RowBinary::with_capacity(slots.iter().map(|s| s.1.body.len() + 256).sum());
        let mut times = RowBinary::with_capacity(slots.len() * 128);
        for (j, row, _) in &slots {
            encode_span(&mut rows, &jobs[*j].project, row);
            encode_time(&mut times, &jobs[*j].project, &row.span);
        }
        self.client
            .insert(SPAN_INSERT, &rows.finish(), &[])
            .await
            .map_err(|e| ch_error("writing spans", e))?;
        self.client
            .insert(TIME_INSERT, &times.finish(), &[])
            .await
            .map_err(|e| ch_error("writing spans", e))?;
        if !moved.is_empty() {
            let mut gone = RowBinary::new();
            for (project, hour, t, s) in &moved {
                gone.str(project)
                    .i64(*hour)
                    .fixed(t)
                    .fixed(s)
                    .str("")
                    .str("")
                    .u8(1);
            }
            // A deleted row at the old key: `FINAL` drops the old copy there.
            self.client
                .insert(
                    "INSERT INTO span_times (project, hour, trace_id, span_id, kind, status, \
                     deleted) FORMAT RowBinary",
                    &gone.finish(),
                    &[],
                )
                .await
                .map_err(|e| ch_error("writing spans", e))?;
        }
        // (A span sent now can make a call in another hour of its trace count for nothing.)
        for (project, traces) in &touched {
            for part in traces.chunks(TRACES_PER_QUERY) {
                self.summarise(project, part, &mut marks).await?;
            }
        }
        super::rollups::mark(&self.client, &marks).await?;
        for (j, row, first) in &slots {
            let key = (
                jobs[*j].project.as_str(),
                row.span.trace_id,
                row.span.span_id,
            );
            if stored.contains(&key) {
                counts[*first].1 += 1;
            } else {
                counts[*first].0 += 1;
            }
        }
        Ok(counts)
    }

    /// The span copies already stored for these traces, as (trace id, span id, start).
    async fn stored_spans(
        &self,
        project: &str,
        traces: &[[u8; 16]],
    ) -> Result<Vec<([u8; 16], [u8; 8], i64)>, StoreError> {
        let Some(set) = sql::byte_set(traces) else {
            return Ok(Vec::new());
        };
        let e = |x| ch_error("looking for stored spans", x);
        let out = self
            .client
            .query(
                &format!(
                    "SELECT DISTINCT trace_id, span_id, start_ns FROM spans WHERE project = {} \
                     AND trace_id IN {set} FORMAT RowBinary",
                    sql::string(project)
                ),
                &[],
            )
            .await
            .map_err(e)?;
        let mut r = RowReader::new(&out);
        let mut keys = Vec::new();
        while !r.is_empty() {
            keys.push((r.fixed()?, r.fixed()?, r.i64()?));
        }
        Ok(keys)
    }

    /// Recomputes the summaries of `traces` from their stored spans and writes them.
    async fn summarise(
        &self,
        project: &str,
        traces: &[[u8; 16]],
        marks: &mut BTreeSet<(String, i64)>,
    ) -> Result<(), StoreError> {
        let facts = read_facts(&self.client, project, traces).await?;
        let mut rows = RowBinary::new();
        for (trace_id, spans) in &facts {
            for s in spans {
                marks.insert((project.to_string(), super::rollups::mark_hour(s.start_ns)));
            }
            let summary = Summary::of(spans);
            summary.encode(&mut rows, project, trace_id);
        }
        if rows.is_empty() {
            return Ok(());
        }
        self.client
            .insert(TRACE_INSERT, &rows.finish(), &[])
            .await
            .map_err(|e| ch_error("writing trace summaries", e))
    }
}

/// What a trace's summary needs of one stored span (its newest copy).
pub struct StoredFacts {
    pub span_id: [u8; 8],
    pub parent_span_id: Option<[u8; 8]>,
    pub name: String,
    pub kind: String,
    pub status: String,
    pub start_ns: i64,
    pub end_ns: Option<i64>,
    /// Input, output, cache read, cache write, reasoning and total tokens.
    pub tokens: [i64; 6],
    pub cost_nano: Option<i64>,
    pub unpriced: bool,
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    pub service: Option<String>,
    pub request_model: Option<String>,
    pub response_model: Option<String>,
    pub provider: Option<String>,
    pub tags: Vec<String>,
    pub call_response_id: Option<String>,
    /// Set when the span is an LLM call with usage.
    pub call_detail: Option<u32>,
    pub version: i64,
    pub prompt_name: Option<String>,
    pub prompt_version: Option<String>,
}

const FACT_COLUMNS: &str = "trace_id, span_id, parent_span_id, name, kind, status, start_ns, \
     end_ns, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, \
     reasoning_tokens, total_tokens, cost_nano, unpriced, user_id, session_id, service, \
     request_model, response_model, provider, tags, call_response_id, call_detail, version, \
     prompt_name, prompt_version";

impl StoredFacts {
    fn read(r: &mut RowReader<'_>) -> Result<([u8; 16], StoredFacts), StoreError> {
        let trace_id = r.fixed()?;
        let f = StoredFacts {
            span_id: r.fixed()?,
            parent_span_id: r.nullable(|r| r.fixed())?,
            name: r.string()?,
            kind: r.string()?,
            status: r.string()?,
            start_ns: r.i64()?,
            end_ns: r.nullable(|r| r.i64())?,
            tokens: [r.i64()?, r.i64()?, r.i64()?, r.i64()?, r.i64()?, r.i64()?],
            cost_nano: r.nullable(|r| r.i64())?,
            unpriced: r.bool()?,
            user_id: r.nullable(|r| r.string())?,
            session_id: r.nullable(|r| r.string())?,
            service: r.nullable(|r| r.string())?,
            request_model: r.nullable(|r| r.string())?,
            response_model: r.nullable(|r| r.string())?,
            provider: r.nullable(|r| r.string())?,
            tags: r.strings()?,
            call_response_id: r.nullable(|r| r.string())?,
            call_detail: r.nullable(|r| r.u32())?,
            version: r.i64()?,
            prompt_name: r.nullable(|r| r.string())?,
            prompt_version: r.nullable(|r| r.string())?,
        };
        Ok((trace_id, f))
    }

    /// The call the same-call rule reads, as the other backends index it.
    fn call(&self) -> Option<Call> {
        let detail = self.call_detail?;
        let nonneg = |v: i64| u64::try_from(v).unwrap_or(0);
        Some(Call {
            span_id: SpanId(self.span_id),
            parent_span_id: self.parent_span_id.map(SpanId),
            response_id: self.call_response_id.clone(),
            provider: self.provider.clone(),
            request_model: self.request_model.clone(),
            response_model: self.response_model.clone(),
            start_ns: nonneg(self.start_ns),
            end_ns: nonneg(self.end_ns.unwrap_or(self.start_ns).max(self.start_ns)),
            tokens: self.tokens.map(nonneg),
            priced: self.cost_nano.is_some(),
            detail,
        })
    }

    /// The span's facts; a duplicate of another call counts no tokens and no cost.
    fn facts(&self, counted: bool) -> SpanFacts<'_> {
        SpanFacts {
            span_id: self.span_id,
            is_root: self.parent_span_id.is_none(),
            name: &self.name,
            kind: &self.kind,
            status: &self.status,
            start: self.start_ns,
            end: self.end_ns,
            input_tokens: if counted { self.tokens[0] } else { 0 },
            output_tokens: if counted { self.tokens[1] } else { 0 },
            total_tokens: if counted { self.tokens[5] } else { 0 },
            cost: self.cost_nano.filter(|_| counted),
            unpriced: self.unpriced && counted,
            user: self.user_id.as_deref(),
            session: self.session_id.as_deref(),
            service: self.service.as_deref(),
            request_model: self.request_model.as_deref(),
            response_model: self.response_model.as_deref(),
            provider: self.provider.as_deref(),
            tags: &self.tags,
            prompt_name: self.prompt_name.as_deref(),
            prompt_version: self.prompt_version.as_deref(),
        }
    }
}

/// The newest copy of every stored span of `traces`, by trace.
pub async fn read_facts(
    client: &Client,
    project: &str,
    traces: &[[u8; 16]],
) -> Result<BTreeMap<[u8; 16], Vec<StoredFacts>>, StoreError> {
    let mut by_trace: BTreeMap<[u8; 16], Vec<StoredFacts>> = BTreeMap::new();
    let Some(set) = sql::byte_set(traces) else {
        return Ok(by_trace);
    };
    let out = client
        .query(
            &format!(
                "SELECT {FACT_COLUMNS} FROM spans WHERE project = {} AND trace_id IN {set} \
                 ORDER BY trace_id, span_id, version DESC LIMIT 1 BY trace_id, span_id \
                 FORMAT RowBinary",
                sql::string(project)
            ),
            &[],
        )
        .await
        .map_err(|e| ch_error("reading spans for trace summaries", e))?;
    let mut r = RowReader::new(&out);
    while !r.is_empty() {
        let (t, f) = StoredFacts::read(&mut r)?;
        by_trace.entry(t).or_default().push(f);
    }
    Ok(by_trace)
}

/// Which spans of a trace are duplicates of another span's call: span → the span counted.
pub fn duplicate_calls(spans: &[StoredFacts]) -> Vec<([u8; 8], [u8; 8])> {
    let calls: Vec<Call> = spans.iter().filter_map(StoredFacts::call).collect();
    duplicates(&calls)
        .into_iter()
        .enumerate()
        .filter_map(|(i, of)| of.map(|j| (calls[i].span_id.0, calls[j].span_id.0)))
        .collect()
}

/// A trace's summary computed from its stored spans.
pub struct Summary {
    pub state: TraceState,
    pub duplicates: Vec<([u8; 8], [u8; 8])>,
    pub version: i64,
}

impl Summary {
    /// Folds every span in (duplicates of a call counting nothing).
    pub fn of(spans: &[StoredFacts]) -> Summary {
        let duplicates = duplicate_calls(spans);
        let dup: HashSet<[u8; 8]> = duplicates.iter().map(|(s, _)| *s).collect();
        let mut state = TraceState::default();
        let mut ignored = Vec::new();
        for s in spans {
            state.add(&s.facts(!dup.contains(&s.span_id)), &mut ignored);
        }
        Summary {
            state,
            duplicates,
            version: spans.iter().map(|s| s.version).max().unwrap_or(0),
        }
    }

    fn encode(&self, out: &mut RowBinary, project: &str, trace_id: &[u8; 16]) {
        let row = self.state.summary(trace_id);
        let n = self.state.numbers();
        out.str(project)
            .fixed(trace_id)
            .str(&row.name)
            .str(row.status);
        for v in [
            n.start_ns,
            n.end_ns,
            n.duration_ns,
            n.span_count,
            n.error_count,
            n.input_tokens,
            n.output_tokens,
            n.total_tokens,
            n.cost_nano,
            n.unpriced_count,
        ] {
            out.i64(v);
        }
        out.str(&row.user_id).str(&row.session_id);
        match &row.root_span_id {
            Some(id) => out.u8(0).fixed(id),
            None => out.u8(1),
        };
        out.opt_str(row.service.as_deref());
        let facets = self.state.all_facets();
        let of = |code: i64| -> Vec<&str> {
            facets
                .iter()
                .filter(|(c, _)| *c == code)
                .map(|(_, v)| v.as_str())
                .collect()
        };
        out.strs(&of(facet::TAG))
            .strs(&of(facet::KIND))
            .strs(&of(facet::MODEL))
            .strs(&of(facet::PROVIDER))
            .str(&row.search);
        out.array_len(self.duplicates.len());
        for (span, of) in &self.duplicates {
            out.fixed(span).fixed(of);
        }
        out.i64(self.version);
        out.strs(&of(facet::PROMPT))
            .strs(&of(facet::PROMPT_VERSION));
    }
}

/// Columns of an inserted summary row, in the order [`Summary::encode`] writes them.
const TRACE_INSERT: &str = "INSERT INTO traces (project, trace_id, name, status, start_ns, \
     end_ns, duration_ns, span_count, error_count, input_tokens, output_tokens, total_tokens, \
     cost_nano, unpriced_count, user_id, session_id, root_span_id, service, tags, kinds, models, \
     providers, search, duplicates, version, prompts, prompt_versions) FORMAT RowBinary";
