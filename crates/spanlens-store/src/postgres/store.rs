//! The storage traits on PostgreSQL.

use super::read::{self, ScanKind};
use super::writer::{prepare_rows, Job};
use super::{recovery, rollups, side, PostgresStore};
use crate::domain::erase::{delete_owned, Owner};
use crate::error::StoreError;
use crate::facts::read::project_name;
use crate::queue::{Admitted, Refused};
use crate::store::{
    check_state, Analytics, Erased, Eraser, Expiry, ScoreStore, SharedState, SpanBatches,
    SpanWriter, TraceReader, ERASE_BATCH, MAX_EXPIRE_LIMIT,
};
use crate::ticket::CommitTicket;
use crate::types::{
    DailyCost, ListQuery, LogEventsReceipt, MetricRow, MetricsQuery, Page, ScoreQuery,
    ScoreTrendRow, SessionDetail, SessionQuery, SessionSummary, SpanScan, TraceDetail,
    TraceDetailJson, TraceOutcomes, TraceSummary, WriteReceipt,
};
use async_trait::async_trait;
use spanlens_core::evals::Score;
use spanlens_core::otlp::logs::LogEvent;
use spanlens_core::recovery::{Buckets, RecoveryReport};
use spanlens_core::{Span, Timestamp, TraceId};
use tokio::sync::mpsc::error::TrySendError;

impl PostgresStore {
    /// Rebuilds the rollups first when the store was opened to (`refresh_before_reads`).
    async fn before_read(&self) -> Result<(), StoreError> {
        if self.refresh_before_reads {
            self.refresh_rollups().await?;
        }
        Ok(())
    }

    /// Starts a scan on a task of its own, on a connection of its own.
    async fn start_scan(&self, scan: &SpanScan, kind: ScanKind) -> Result<SpanBatches, StoreError> {
        let client = self.client("starting a scan").await?;
        let (tx, batches) = SpanBatches::channel();
        tokio::spawn(read::scan(client, scan.clone(), kind, tx));
        Ok(batches)
    }
}

#[async_trait]
impl SpanWriter for PostgresStore {
    fn submit(&self, project: &str, spans: Vec<Span>) -> Result<CommitTicket, StoreError> {
        if spans.is_empty() {
            return Ok(CommitTicket::ready(Ok(WriteReceipt::default())));
        }
        let admitted = Admitted::admit(&self.pending, spans.len(), self.max_pending_spans)?;
        let project = project_name(project);
        let (rows, chunks) = prepare_rows(spans, &project)?;
        let (ticket, completer) = CommitTicket::pair();
        let job = Job {
            project,
            rows,
            chunks,
            completer,
        };
        let queued = self.sender.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) => Refused::Full,
            TrySendError::Closed(_) => Refused::Closed,
        });
        admitted.settle(queued, ticket)
    }

    async fn add_log_events(
        &self,
        project: &str,
        events: &[LogEvent],
    ) -> Result<LogEventsReceipt, StoreError> {
        let mut client = self.client("storing log events").await?;
        side::add_log_events(&mut client, project, events).await
    }
}

#[async_trait]
impl TraceReader for PostgresStore {
    async fn list_traces(&self, query: &ListQuery) -> Result<Page<TraceSummary>, StoreError> {
        let client = self.client("listing traces").await?;
        read::list_traces(&**client, query).await
    }

    async fn trace_outcomes(&self, query: &ListQuery) -> Result<TraceOutcomes, StoreError> {
        let client = self.client("counting trace outcomes").await?;
        read::trace_outcomes(&**client, query).await
    }

    async fn get_trace(
        &self,
        project: &str,
        trace_id: TraceId,
    ) -> Result<Option<TraceDetail>, StoreError> {
        let mut client = self.client("reading a trace").await?;
        let Some(stored) = read::read_trace(&mut client, &project_name(project), trace_id).await?
        else {
            return Ok(None);
        };
        drop(client);
        // Decoding a large trace is CPU work: off the async workers when the runtime has
        // a blocking pool.
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => rt
                .spawn_blocking(move || stored.decode())
                .await
                .map_err(|e| StoreError::database("reading a trace", e))?
                .map(Some),
            Err(_) => stored.decode().map(Some),
        }
    }

    async fn get_trace_json(
        &self,
        project: &str,
        trace_id: TraceId,
    ) -> Result<Option<TraceDetailJson>, StoreError> {
        let mut client = self.client("reading a trace").await?;
        Ok(
            read::read_trace(&mut client, &project_name(project), trace_id)
                .await?
                .map(|t| t.into_json()),
        )
    }

    async fn list_sessions(
        &self,
        query: &SessionQuery,
    ) -> Result<Page<SessionSummary>, StoreError> {
        let mut client = self.client("listing sessions").await?;
        read::list_sessions(&mut client, query).await
    }

    async fn get_session(
        &self,
        project: &str,
        session_id: &str,
    ) -> Result<Option<SessionDetail>, StoreError> {
        let mut client = self.client("reading a session").await?;
        read::get_session(&mut client, &project_name(project), session_id).await
    }

    async fn count_spans(&self, project: &str) -> Result<u64, StoreError> {
        let client = self.client("counting spans").await?;
        read::count_spans(&**client, &project_name(project)).await
    }

    async fn projects(&self) -> Result<Vec<String>, StoreError> {
        let client = self.client("listing projects").await?;
        read::projects(&**client).await
    }
}

#[async_trait]
impl Analytics for PostgresStore {
    async fn metrics(&self, query: &MetricsQuery) -> Result<Vec<MetricRow>, StoreError> {
        self.before_read().await?;
        let mut client = self.client("computing metrics").await?;
        rollups::metrics(&mut client, query).await
    }

    async fn daily_cost(&self, query: &MetricsQuery) -> Result<Vec<DailyCost>, StoreError> {
        self.before_read().await?;
        let mut client = self.client("computing daily cost").await?;
        rollups::daily_cost(&mut client, query).await
    }

    async fn scan_model_spans(&self, scan: &SpanScan) -> Result<SpanBatches, StoreError> {
        self.start_scan(scan, ScanKind::Models).await
    }

    async fn scan_recovery_spans(&self, scan: &SpanScan) -> Result<SpanBatches, StoreError> {
        self.start_scan(scan, ScanKind::Recovery).await
    }

    async fn recovery_report(
        &self,
        project: &str,
        buckets: Buckets,
    ) -> Result<RecoveryReport, StoreError> {
        let mut client = self.client("reading the recovery report").await?;
        match recovery::report(&mut client, &project_name(project), buckets).await? {
            Some(report) => Ok(report),
            None => {
                drop(client);
                crate::domain::recovery::from_scan(self, project, buckets).await
            }
        }
    }
}

#[async_trait]
impl ScoreStore for PostgresStore {
    async fn add_scores(&self, project: &str, scores: &[Score]) -> Result<Vec<i64>, StoreError> {
        let mut client = self.client("storing scores").await?;
        side::add_scores(&mut client, project, scores).await
    }

    async fn list_scores(&self, query: &ScoreQuery) -> Result<Vec<Score>, StoreError> {
        let client = self.client("listing scores").await?;
        side::list_scores(&client, query).await
    }

    async fn score_trends(
        &self,
        project: &str,
        from: Option<Timestamp>,
        to: Option<Timestamp>,
    ) -> Result<Vec<ScoreTrendRow>, StoreError> {
        let client = self.client("reading score trends").await?;
        side::score_trends(&client, project, from, to).await
    }
}

#[async_trait]
impl SharedState for PostgresStore {
    async fn load_state(&self, key: &str) -> Result<Option<String>, StoreError> {
        check_state(key, None)?;
        let client = self.client("reading shared state").await?;
        side::load_state(&client, key).await
    }

    async fn save_state(&self, key: &str, value: &str) -> Result<(), StoreError> {
        check_state(key, Some(value))?;
        let client = self.client("saving shared state").await?;
        side::save_state(&client, key, value).await
    }

    async fn list_state(&self, prefix: &str) -> Result<Vec<(String, String)>, StoreError> {
        crate::store::check_prefix(prefix)?;
        let client = self.client("listing shared state").await?;
        side::list_state(&client, prefix, crate::MAX_LISTED_STATE).await
    }

    async fn delete_state(&self, key: &str) -> Result<(), StoreError> {
        check_state(key, None)?;
        let client = self.client("deleting shared state").await?;
        side::delete_state(&client, key).await
    }

    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<bool, StoreError> {
        let key = crate::store::Lease::key(name);
        check_state(&key, None)?;
        let ttl = i64::try_from(ttl.as_nanos()).unwrap_or(i64::MAX / 2);
        let client = self.client("taking a lease").await?;
        side::acquire_lease(&client, &key, holder, ttl).await
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        let key = crate::store::Lease::key(name);
        check_state(&key, None)?;
        let client = self.client("giving a lease up").await?;
        side::release_lease(&client, &key, holder).await
    }
}

#[async_trait]
impl Eraser for PostgresStore {
    async fn delete_traces(&self, project: &str, traces: &[TraceId]) -> Result<Erased, StoreError> {
        let mut total = Erased::default();
        for ids in traces.chunks(ERASE_BATCH) {
            total.add(self.delete_batch(project, ids).await?);
        }
        Ok(total)
    }

    async fn delete_session(&self, project: &str, session_id: &str) -> Result<Erased, StoreError> {
        let mut total = delete_owned(self, project, Owner::Session(session_id)).await?;
        total.scores += self.delete_session_scores(project, session_id).await?;
        Ok(total)
    }

    async fn delete_user(&self, project: &str, user_id: &str) -> Result<Erased, StoreError> {
        delete_owned(self, project, Owner::User(user_id)).await
    }

    async fn expire(
        &self,
        project: &str,
        rule: Expiry,
        limit: usize,
    ) -> Result<Erased, StoreError> {
        if limit == 0 {
            return Ok(Erased::default());
        }
        self.expire_step(project, rule, limit.min(MAX_EXPIRE_LIMIT))
            .await
    }
}
