//! The storage traits on SQLite: spans go to the writer thread, reads (and the small writes
//! beside spans) run on tokio's blocking pool over the read pool, so async callers never block.

use super::{
    chunk_by_trace, log_events, project_name, query, rollups, scores, state, EraseJob,
    EraseRequest, Job, Readers, SqliteStore, Work,
};
use crate::domain::erase::StepEraser;
use crate::error::StoreError;
use crate::queue::{Admitted, Refused};
use crate::store::{
    check_state, Analytics, Erased, Expiry, Lease, ScoreStore, SharedState, SpanBatches,
    SpanWriter, TraceReader,
};
use crate::ticket::CommitTicket;
use crate::types::{
    DailyCost, ListQuery, LogEventsReceipt, MetricRow, MetricSeries, MetricsQuery, Page,
    ScoreQuery, ScoreTrendRow, SessionDetail, SessionQuery, SessionSummary, SpanScan, TraceDetail,
    TraceDetailJson, TraceOutcomes, TraceRows, TraceSummary, Unreadable, WriteReceipt,
};
use async_trait::async_trait;
use rusqlite::Connection;
use spanlens_core::evals::Score;
use spanlens_core::otlp::logs::LogEvent;
use spanlens_core::recovery::{Buckets, RecoveryReport};
use spanlens_core::{Span, Timestamp, TraceId};
use std::sync::mpsc::TrySendError;

/// A scan over a read connection that hands spans to a visitor (see `query.rs`).
type ScanFn = fn(
    &Connection,
    &SpanScan,
    &mut dyn FnMut(Vec<Span>) -> Result<(), StoreError>,
) -> Result<Unreadable, StoreError>;

impl SqliteStore {
    /// Runs blocking work on tokio's blocking pool (inline when no runtime is running, e.g.
    /// under another executor), so an async caller's worker thread never waits on SQLite.
    async fn blocking<T: Send + 'static>(
        &self,
        op: &'static str,
        f: impl FnOnce(&Readers) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let readers = self.readers.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => rt
                .spawn_blocking(move || f(&readers))
                .await
                .map_err(|e| StoreError::database(op, e))?,
            Err(_) => f(&readers),
        }
    }

    /// Runs `f` on a pooled read connection, off the async workers.
    async fn read<T: Send + 'static>(
        &self,
        op: &'static str,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.blocking(op, move |r| f(&*r.pool.get()?)).await
    }

    /// Runs `f` inside one read transaction, so everything it reads is the same snapshot.
    async fn read_snapshot<T: Send + 'static>(
        &self,
        op: &'static str,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.read(op, move |conn| {
            let tx = conn
                .unchecked_transaction()
                .map_err(|e| StoreError::database(op, e))?;
            f(&tx)
        })
        .await
    }

    /// Starts a scan on a blocking thread that feeds the returned batches as the consumer
    /// takes them.
    fn scan(&self, scan: &SpanScan, run: ScanFn) -> Result<SpanBatches, StoreError> {
        let (tx, batches) = SpanBatches::channel();
        let readers = self.readers.clone();
        let scan = scan.clone();
        let work = move || {
            let outcome = readers
                .pool
                .get()
                .and_then(|conn| run(&conn, &scan, &mut |spans| tx.send_blocking(spans)));
            tx.finish(outcome);
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => drop(rt.spawn_blocking(work)),
            Err(_) => std::thread::Builder::new()
                .name("spanlens-scan".into())
                .spawn(work)
                .map(drop)
                .map_err(|e| StoreError::database("starting a scan", e))?,
        }
        Ok(batches)
    }
}

#[async_trait]
impl SpanWriter for SqliteStore {
    fn submit(&self, project: &str, spans: Vec<Span>) -> Result<CommitTicket, StoreError> {
        if spans.is_empty() {
            return Ok(CommitTicket::ready(Ok(WriteReceipt::default())));
        }
        let Some(sender) = &self.sender else {
            return Err(StoreError::Closed);
        };
        let admitted = Admitted::admit(
            &self.shared.pending_spans,
            spans.len(),
            self.max_pending_spans,
        )?;
        let project = project_name(project);
        let (rows, chunks) = chunk_by_trace(spans, &project)?;
        let (ticket, completer) = CommitTicket::pair();
        let job = Job {
            project,
            rows,
            chunks,
            completer,
        };
        let queued = sender.try_send(Work::Spans(job)).map_err(|e| match e {
            TrySendError::Full(_) => Refused::Full,
            TrySendError::Disconnected(_) => Refused::Closed,
        });
        admitted.settle(queued, ticket)
    }

    async fn add_log_events(
        &self,
        project: &str,
        events: &[LogEvent],
    ) -> Result<LogEventsReceipt, StoreError> {
        let (project, events) = (project.to_string(), events.to_vec());
        self.blocking("storing log events", move |r| {
            log_events::add(&mut r.side(), &project, &events)
        })
        .await
    }
}

#[async_trait]
impl TraceReader for SqliteStore {
    async fn list_traces(&self, query: &ListQuery) -> Result<Page<TraceSummary>, StoreError> {
        let q = query.clone();
        self.read("listing traces", move |c| query::list_traces(c, &q))
            .await
    }

    async fn trace_outcomes(&self, query: &ListQuery) -> Result<TraceOutcomes, StoreError> {
        let q = query.clone();
        self.read("counting trace outcomes", move |c| {
            query::trace_outcomes(c, &q)
        })
        .await
    }

    async fn get_trace(
        &self,
        project: &str,
        trace_id: TraceId,
    ) -> Result<Option<TraceDetail>, StoreError> {
        let project = project_name(project);
        self.read("reading a trace", move |c| {
            query::get_trace(c, &project, trace_id)
        })
        .await
    }

    async fn get_trace_json(
        &self,
        project: &str,
        trace_id: TraceId,
    ) -> Result<Option<TraceDetailJson>, StoreError> {
        let project = project_name(project);
        self.read("reading a trace", move |c| {
            query::get_trace_json(c, &project, trace_id)
        })
        .await
    }

    async fn get_trace_rows(
        &self,
        project: &str,
        trace_id: TraceId,
    ) -> Result<Option<TraceRows>, StoreError> {
        let project = project_name(project);
        self.read("reading a trace's span rows", move |c| {
            query::get_trace_rows(c, &project, trace_id)
        })
        .await
    }

    async fn list_sessions(
        &self,
        query: &SessionQuery,
    ) -> Result<Page<SessionSummary>, StoreError> {
        let q = query.clone();
        self.read("listing sessions", move |c| query::list_sessions(c, &q))
            .await
    }

    async fn get_session(
        &self,
        project: &str,
        session_id: &str,
    ) -> Result<Option<SessionDetail>, StoreError> {
        let (project, id) = (project_name(project), session_id.to_string());
        self.read("reading a session", move |c| {
            query::get_session(c, &project, &id)
        })
        .await
    }

    async fn count_spans(&self, project: &str) -> Result<u64, StoreError> {
        let project = project_name(project);
        self.read("counting spans", move |c| query::count_spans(c, &project))
            .await
    }

    async fn projects(&self) -> Result<Vec<String>, StoreError> {
        self.read("listing projects", query::projects).await
    }
}

#[async_trait]
impl Analytics for SqliteStore {
    async fn metrics(&self, query: &MetricsQuery) -> Result<Vec<MetricRow>, StoreError> {
        let q = query.clone();
        // One read transaction, so the rows and the edge spans are the same snapshot.
        self.read_snapshot("computing metrics", move |c| rollups::metrics(c, &q))
            .await
    }

    async fn metrics_series(
        &self,
        query: &MetricsQuery,
        bounds: &[Timestamp],
    ) -> Result<MetricSeries, StoreError> {
        let (q, b) = (query.clone(), bounds.to_vec());
        self.read_snapshot("computing metrics", move |c| {
            rollups::metrics_series(c, &q, &b)
        })
        .await
    }

    async fn daily_cost(&self, query: &MetricsQuery) -> Result<Vec<DailyCost>, StoreError> {
        let q = query.clone();
        self.read_snapshot("computing daily cost", move |c| rollups::daily_cost(c, &q))
            .await
    }

    async fn scan_model_spans(&self, scan: &SpanScan) -> Result<SpanBatches, StoreError> {
        self.scan(scan, query::scan_model_spans)
    }

    async fn scan_recovery_spans(&self, scan: &SpanScan) -> Result<SpanBatches, StoreError> {
        self.scan(scan, query::scan_recovery_spans)
    }

    /// From the retry rollups and the spans with rate limits, not a scan of every span.
    async fn recovery_report(
        &self,
        project: &str,
        buckets: Buckets,
    ) -> Result<RecoveryReport, StoreError> {
        let project = project_name(project);
        self.read_snapshot("building the recovery report", move |c| {
            rollups::recovery_report(c, &project, buckets)
        })
        .await
    }
}

#[async_trait]
impl ScoreStore for SqliteStore {
    async fn add_scores(&self, project: &str, scores: &[Score]) -> Result<Vec<i64>, StoreError> {
        let project = project.to_string();
        let scores: Vec<Score> = scores
            .iter()
            .cloned()
            .map(crate::facts::scores::storable)
            .collect();
        self.blocking("storing scores", move |r| {
            scores::add(&mut r.side(), &project, &scores)
        })
        .await
    }

    async fn list_scores(&self, query: &ScoreQuery) -> Result<Vec<Score>, StoreError> {
        let q = query.clone();
        self.read("listing scores", move |c| scores::list(c, &q))
            .await
    }

    async fn score_trends(
        &self,
        project: &str,
        from: Option<Timestamp>,
        to: Option<Timestamp>,
    ) -> Result<Vec<ScoreTrendRow>, StoreError> {
        let project = project.to_string();
        self.read("reading score trends", move |c| {
            scores::trends(c, &project, from, to)
        })
        .await
    }
}

#[async_trait]
impl SharedState for SqliteStore {
    async fn load_state(&self, key: &str) -> Result<Option<String>, StoreError> {
        check_state(key, None)?;
        let key = key.to_string();
        self.read("reading shared state", move |c| state::load(c, &key))
            .await
    }

    async fn save_state(&self, key: &str, value: &str) -> Result<(), StoreError> {
        check_state(key, Some(value))?;
        let (key, value) = (key.to_string(), value.to_string());
        self.blocking("saving shared state", move |r| {
            state::save(&r.side(), &key, &value)
        })
        .await
    }

    async fn list_state(&self, prefix: &str) -> Result<Vec<(String, String)>, StoreError> {
        crate::store::check_prefix(prefix)?;
        let prefix = prefix.to_string();
        self.read("listing shared state", move |c| {
            state::list(c, &prefix, crate::MAX_LISTED_STATE)
        })
        .await
    }

    async fn delete_state(&self, key: &str) -> Result<(), StoreError> {
        check_state(key, None)?;
        let key = key.to_string();
        self.blocking("deleting shared state", move |r| {
            state::delete(&r.side(), &key)
        })
        .await
    }

    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<bool, StoreError> {
        check_state(&Lease::key(name), None)?;
        let ttl = i64::try_from(ttl.as_nanos()).unwrap_or(i64::MAX);
        let (name, holder) = (name.to_string(), holder.to_string());
        self.blocking("taking a lease", move |r| {
            state::lease(&r.side(), &name, &holder, Some(ttl))
        })
        .await
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        check_state(&Lease::key(name), None)?;
        let (name, holder) = (name.to_string(), holder.to_string());
        self.blocking("giving a lease up", move |r| {
            state::lease(&r.side(), &name, &holder, None).map(drop)
        })
        .await
    }
}

impl SqliteStore {
    /// Hands an erasure to the writer thread (waiting for room in its queue on a blocking
    /// thread: an erasure is not refused as `Busy`) and waits for its outcome.
    async fn erase(&self, request: EraseRequest) -> Result<Erased, StoreError> {
        let Some(sender) = self.sender.clone() else {
            return Err(StoreError::Closed);
        };
        let (reply, outcome) = tokio::sync::oneshot::channel();
        let job = Work::Erase(EraseJob { request, reply });
        self.blocking("erasing", move |_| {
            sender.send(job).map_err(|_| StoreError::Closed)
        })
        .await?;
        outcome.await.unwrap_or(Err(StoreError::Closed))
    }
}

#[async_trait]
impl StepEraser for SqliteStore {
    async fn delete_batch(&self, project: &str, ids: &[TraceId]) -> Result<Erased, StoreError> {
        self.erase(EraseRequest::Traces {
            project: project_name(project),
            ids: ids.to_vec(),
        })
        .await
    }

    // The session's own scores (its traces' go with them), on the side connection.
    async fn delete_session_scores(&self, project: &str, session: &str) -> Result<u64, StoreError> {
        let (project, session) = (project_name(project), session.to_string());
        self.blocking("deleting scores", move |r| {
            scores::delete_of_session(&r.side(), &project, &session)
        })
        .await
    }

    async fn expire_step(
        &self,
        project: &str,
        rule: Expiry,
        limit: usize,
    ) -> Result<Erased, StoreError> {
        self.erase(EraseRequest::Expire {
            project: project_name(project),
            rule,
            limit,
        })
        .await
    }
}

#[async_trait]
impl crate::store::MediaStore for SqliteStore {
    async fn put_media(
        &self,
        project: &str,
        blobs: &[spanlens_core::media::MediaBlob],
        refs: &[(TraceId, String)],
    ) -> Result<u64, StoreError> {
        crate::store::check_media(blobs, refs)?;
        if blobs.is_empty() && refs.is_empty() {
            return Ok(0);
        }
        let (project, blobs, refs) = (project_name(project), blobs.to_vec(), refs.to_vec());
        self.blocking("storing media", move |r| {
            super::media::put(&mut r.side(), &project, &blobs, &refs)
        })
        .await
    }

    async fn get_media(
        &self,
        project: &str,
        hash: &str,
    ) -> Result<Option<crate::store::StoredMedia>, StoreError> {
        crate::store::check_media_hash(hash)?;
        let (project, hash) = (project_name(project), hash.to_string());
        self.read("reading media", move |c| {
            super::media::get(c, &project, &hash)
        })
        .await
    }

    async fn media_usage(&self, project: &str) -> Result<crate::store::MediaUsage, StoreError> {
        let project = project_name(project);
        self.read("reading media usage", move |c| {
            super::media::usage(c, &project)
        })
        .await
    }
}
