//! The storage traits on ClickHouse.

use super::read::{self, ScanKind};
use super::writer::{prepare_rows, Job};
use super::{rollups, side, ClickHouseStore};
use crate::error::StoreError;
use crate::facts::read::project_name;
use crate::queue::{Admitted, Refused};
use crate::store::{
    check_state, Analytics, Lease, ScoreStore, SharedState, SpanBatches, SpanWriter, TraceReader,
};
use crate::ticket::CommitTicket;
use crate::types::{
    DailyCost, ListQuery, LogEventsReceipt, MetricRow, MetricSeries, MetricsQuery, Page,
    ScoreQuery, ScoreTrendRow, SessionDetail, SessionQuery, SessionSummary, SpanScan, TraceDetail,
    TraceDetailJson, TraceOutcomes, TraceSummary, WriteReceipt,
};
use async_trait::async_trait;
use spanlens_core::evals::Score;
use spanlens_core::otlp::logs::LogEvent;
use spanlens_core::{Span, Timestamp, TraceId};
use tokio::sync::mpsc::error::TrySendError;

impl ClickHouseStore {
    /// Rebuilds the rollups first when the store was opened to (`refresh_before_reads`).
    async fn before_read(&self) -> Result<(), StoreError> {
        if self.refresh_before_reads {
            self.refresh_rollups().await?;
        }
        Ok(())
    }

    fn start_scan(&self, scan: &SpanScan, kind: ScanKind) -> SpanBatches {
        let (tx, batches) = SpanBatches::channel();
        tokio::spawn(read::scan(self.client.clone(), scan.clone(), kind, tx));
        batches
    }
}

#[async_trait]
impl SpanWriter for ClickHouseStore {
    fn submit(&self, project: &str, spans: Vec<Span>) -> Result<CommitTicket, StoreError> {
        if spans.is_empty() {
            return Ok(CommitTicket::ready(Ok(WriteReceipt::default())));
        }
        let admitted = Admitted::admit(&self.pending, spans.len(), self.max_pending_spans)?;
        let project = project_name(project);
        let rows = prepare_rows(spans, &project)?;
        let (ticket, completer) = CommitTicket::pair();
        let job = Job {
            project,
            rows,
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
        side::add_log_events(&self.client, project, events).await
    }
}

#[async_trait]
impl TraceReader for ClickHouseStore {
    async fn list_traces(&self, query: &ListQuery) -> Result<Page<TraceSummary>, StoreError> {
        read::list_traces(&self.client, query).await
    }

    async fn trace_outcomes(&self, query: &ListQuery) -> Result<TraceOutcomes, StoreError> {
        read::trace_outcomes(&self.client, query).await
    }

    async fn get_trace(
        &self,
        project: &str,
        trace_id: TraceId,
    ) -> Result<Option<TraceDetail>, StoreError> {
        let Some(stored) = read::read_trace(&self.client, &project_name(project), trace_id).await?
        else {
            return Ok(None);
        };
        // Decoding a large trace is CPU work: off the async workers.
        tokio::task::spawn_blocking(move || stored.decode())
            .await
            .map_err(|e| StoreError::database("reading a trace", e))?
            .map(Some)
    }

    async fn get_trace_json(
        &self,
        project: &str,
        trace_id: TraceId,
    ) -> Result<Option<TraceDetailJson>, StoreError> {
        Ok(
            read::read_trace(&self.client, &project_name(project), trace_id)
                .await?
                .map(|t| t.into_json()),
        )
    }

    async fn list_sessions(
        &self,
        query: &SessionQuery,
    ) -> Result<Page<SessionSummary>, StoreError> {
        read::list_sessions(&self.client, query).await
    }

    async fn get_session(
        &self,
        project: &str,
        session_id: &str,
    ) -> Result<Option<SessionDetail>, StoreError> {
        read::get_session(&self.client, &project_name(project), session_id).await
    }

    async fn count_spans(&self, project: &str) -> Result<u64, StoreError> {
        read::count_spans(&self.client, &project_name(project)).await
    }

    async fn projects(&self) -> Result<Vec<String>, StoreError> {
        read::projects(&self.client).await
    }
}

#[async_trait]
impl Analytics for ClickHouseStore {
    async fn metrics(&self, query: &MetricsQuery) -> Result<Vec<MetricRow>, StoreError> {
        self.before_read().await?;
        rollups::metrics(&self.client, query).await
    }

    async fn metrics_series(
        &self,
        query: &MetricsQuery,
        bounds: &[Timestamp],
    ) -> Result<MetricSeries, StoreError> {
        self.before_read().await?;
        rollups::metrics_series(&self.client, query, bounds).await
    }

    async fn daily_cost(&self, query: &MetricsQuery) -> Result<Vec<DailyCost>, StoreError> {
        self.before_read().await?;
        rollups::daily_cost(&self.client, query).await
    }

    async fn scan_model_spans(&self, scan: &SpanScan) -> Result<SpanBatches, StoreError> {
        Ok(self.start_scan(scan, ScanKind::Models))
    }

    async fn scan_recovery_spans(&self, scan: &SpanScan) -> Result<SpanBatches, StoreError> {
        Ok(self.start_scan(scan, ScanKind::Recovery))
    }
}

#[async_trait]
impl ScoreStore for ClickHouseStore {
    async fn add_scores(&self, project: &str, scores: &[Score]) -> Result<Vec<i64>, StoreError> {
        side::add_scores(&self.client, project, scores).await
    }

    async fn list_scores(&self, query: &ScoreQuery) -> Result<Vec<Score>, StoreError> {
        side::list_scores(&self.client, query).await
    }

    async fn score_trends(
        &self,
        project: &str,
        from: Option<Timestamp>,
        to: Option<Timestamp>,
    ) -> Result<Vec<ScoreTrendRow>, StoreError> {
        side::score_trends(&self.client, project, from, to).await
    }
}

#[async_trait]
impl SharedState for ClickHouseStore {
    async fn load_state(&self, key: &str) -> Result<Option<String>, StoreError> {
        check_state(key, None)?;
        side::load_state(&self.client, key).await
    }

    async fn save_state(&self, key: &str, value: &str) -> Result<(), StoreError> {
        check_state(key, Some(value))?;
        side::save_state(&self.client, key, value).await
    }

    async fn list_state(&self, prefix: &str) -> Result<Vec<(String, String)>, StoreError> {
        crate::store::check_prefix(prefix)?;
        side::list_state(&self.client, prefix, crate::MAX_LISTED_STATE).await
    }

    async fn delete_state(&self, key: &str) -> Result<(), StoreError> {
        check_state(key, None)?;
        side::delete_state(&self.client, key).await
    }

    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<bool, StoreError> {
        let key = Lease::key(name);
        check_state(&key, None)?;
        let ttl = i64::try_from(ttl.as_nanos()).unwrap_or(i64::MAX / 2);
        side::acquire_lease(&self.client, &key, holder, ttl).await
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        let key = Lease::key(name);
        check_state(&key, None)?;
        side::release_lease(&self.client, &key, holder).await
    }
}
