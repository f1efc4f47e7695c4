//! Aggregates over spans: metrics, daily cost, and the span scans that re-pricing,
//! reconciliation and the recovery report read.

use crate::error::StoreError;
use crate::types::{DailyCost, MetricRow, MetricSeries, MetricsQuery, SpanScan, Unreadable};
use async_trait::async_trait;
use spanlens_core::recovery::{Buckets, RecoveryReport};
use spanlens_core::{Span, Timestamp};
use tokio::sync::{mpsc, oneshot};

/// Metrics, cost series and span scans.
///
/// What callers observe: aggregates are exact over the range asked (no sampling) and agree
/// with the stored spans once their write tickets resolved; an LLM call recorded twice (same
/// provider response) is counted once; calls the catalog could not price are counted as such,
/// never as $0. A scan hands over spans a few traces at a time with bounded memory, and a span
/// that cannot be read is left out and counted, never a reason to fail the scan.
#[async_trait]
pub trait Analytics: Send + Sync {
    /// Span metrics (counts, tokens, cost, latency and TTFT percentiles) grouped as asked.
    async fn metrics(&self, query: &MetricsQuery) -> Result<Vec<MetricRow>, StoreError>;

    /// Metrics of the range `[bounds[0], bounds[last])` and of each slice `[bounds[i],
    /// bounds[i + 1])` in it, grouped as asked (the query's `from` and `to` are ignored): a
    /// time series in one call. `bounds` must not decrease.
    async fn metrics_series(
        &self,
        query: &MetricsQuery,
        bounds: &[Timestamp],
    ) -> Result<MetricSeries, StoreError> {
        let mut answers = Vec::new();
        for q in MetricSeries::queries(query, bounds) {
            answers.push(self.metrics(&q).await?);
        }
        Ok(MetricSeries::from_answers(answers))
    }

    /// Cost per group and UTC day (only `from`, `to`, `group_by`, `kind`, `model` and `provider`
    /// of the query apply), so forecasting gets a day series per group in one scan. Days on
    /// which a group cost nothing are absent.
    async fn daily_cost(&self, query: &MetricsQuery) -> Result<Vec<DailyCost>, StoreError>;

    /// The stored LLM and embedding spans the scan selects, a trace's spans at a time, for
    /// re-pricing and reconciliation.
    async fn scan_model_spans(&self, scan: &SpanScan) -> Result<SpanBatches, StoreError>;

    /// What the error-recovery report reads of the spans that started in the scan's range (its
    /// `model` is ignored), a few traces at a time: every span with retries, whole, and every
    /// model call that carries rate limits, with only its ids, times, provider and rate limits.
    async fn scan_recovery_spans(&self, scan: &SpanScan) -> Result<SpanBatches, StoreError>;

    /// The error-recovery report (`spanlens_core::recovery`) over the spans of `project` that
    /// started in `[buckets.from, buckets.to)`, with rate-limit headroom in `buckets.count`
    /// time buckets. Exact over the whole range; the default builds it from
    /// [`scan_recovery_spans`](Analytics::scan_recovery_spans), a backend may answer from its
    /// own aggregates.
    async fn recovery_report(
        &self,
        project: &str,
        buckets: Buckets,
    ) -> Result<RecoveryReport, StoreError> {
        crate::domain::recovery::from_scan(self, project, buckets).await
    }
}

/// Batches a scan has in flight between its producer and its consumer: the producer waits
/// when the consumer is this far behind, so a scan never holds more than a few batches.
const SCAN_DEPTH: usize = 2;

/// The spans of a scan, batch by batch, then how many could not be read.
///
/// ```no_run
/// # async fn f(store: &dyn spanlens_store::Store, scan: &spanlens_store::SpanScan) -> Result<(), spanlens_store::StoreError> {
/// let mut batches = store.scan_model_spans(scan).await?;
/// while let Some(spans) = batches.next().await {
///     // … use spans …
/// #   drop(spans);
/// }
/// let unreadable = batches.finish().await?; // the scan's error, if it failed
/// # let _ = unreadable; Ok(()) }
/// ```
#[derive(Debug)]
pub struct SpanBatches {
    batches: mpsc::Receiver<Vec<Span>>,
    outcome: oneshot::Receiver<Result<Unreadable, StoreError>>,
}

/// The producing end of a [`SpanBatches`], for backends.
#[derive(Debug)]
pub struct ScanSender {
    batches: mpsc::Sender<Vec<Span>>,
    outcome: oneshot::Sender<Result<Unreadable, StoreError>>,
}

impl SpanBatches {
    /// A scan and the sender that feeds it.
    pub fn channel() -> (ScanSender, SpanBatches) {
        let (btx, brx) = mpsc::channel(SCAN_DEPTH);
        let (otx, orx) = oneshot::channel();
        (
            ScanSender {
                batches: btx,
                outcome: otx,
            },
            SpanBatches {
                batches: brx,
                outcome: orx,
            },
        )
    }

    /// The next batch; `None` once the scan is over (call [`finish`](Self::finish) then).
    pub async fn next(&mut self) -> Option<Vec<Span>> {
        self.batches.recv().await
    }

    /// Every remaining span at once, and how many could not be read (small scans, tests).
    pub async fn collect(mut self) -> Result<(Vec<Span>, Unreadable), StoreError> {
        let mut all = Vec::new();
        while let Some(batch) = self.next().await {
            all.extend(batch);
        }
        Ok((all, self.finish().await?))
    }

    /// Waits for the end of the scan: the spans that could not be read, or the error that
    /// stopped it. Batches not taken yet are dropped.
    pub async fn finish(self) -> Result<Unreadable, StoreError> {
        drop(self.batches);
        self.outcome.await.unwrap_or(Err(StoreError::Closed))
    }
}

impl ScanSender {
    /// Hands a batch over from a blocking thread, waiting while the consumer is behind; an
    /// error when the consumer has gone (stop scanning then).
    pub fn send_blocking(&self, spans: Vec<Span>) -> Result<(), StoreError> {
        if spans.is_empty() {
            return Ok(());
        }
        self.batches
            .blocking_send(spans)
            .map_err(|_| StoreError::Closed)
    }

    /// Hands a batch over from async code, waiting while the consumer is behind.
    pub async fn send(&self, spans: Vec<Span>) -> Result<(), StoreError> {
        if spans.is_empty() {
            return Ok(());
        }
        self.batches
            .send(spans)
            .await
            .map_err(|_| StoreError::Closed)
    }

    /// Ends the scan with its outcome.
    pub fn finish(self, outcome: Result<Unreadable, StoreError>) {
        drop(self.batches);
        let _ = self.outcome.send(outcome);
    }
}
