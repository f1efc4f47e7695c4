//! The `Store` contract: what the server needs from a database, independent of which one.

use crate::error::StoreError;
use crate::ticket::CommitTicket;
use crate::types::{
    DailyCost, ListQuery, MetricRow, MetricSeries, MetricsQuery, Page, RepriceModel, RepriceReport,
    ScoreQuery, ScoreTrendRow, SessionDetail, SessionQuery, SessionSummary, SpanScan, TraceDetail,
    TraceDetailJson, TraceOutcomes, TraceSummary, Unreadable, WriteReceipt,
};
use spanlens_core::evals::Score;
use spanlens_core::pricing::span_model;
use spanlens_core::recovery::{Buckets, RecoveryBuilder, RecoveryReport};
use spanlens_core::{reprice_span, CostSource, NanoUsd, PriceCatalog, Span, Timestamp, TraceId};
use std::collections::BTreeMap;

/// Spans re-submitted per write while re-pricing, so memory stays bounded on large ranges.
const REPRICE_BATCH: usize = 5_000;

/// A span database, so the server can run on SQLite today and PostgreSQL or ClickHouse later
/// behind the same contract tests.
///
/// Every method is synchronous and takes `&self`; implementations are `Send + Sync` and are
/// shared as `Arc<dyn Store>`. Writes never block an async runtime: `submit` only queues the
/// batch (or refuses it with `StoreError::Busy`) and returns a [`CommitTicket`] that can be
/// `.await`ed. Reads do blocking I/O, so an async server calls them inside `spawn_blocking`.
pub trait Store: Send + Sync {
    /// Queues canonical spans for `project` (empty means [`crate::DEFAULT_PROJECT`]); the ticket
    /// resolves once the transaction containing them has committed. The batch's project
    /// overrides `Span::project`. The same `(project, trace_id, span_id)` written twice is stored
    /// once: the later write wins. Refuses with `StoreError::Busy` when the queue is full.
    fn submit(&self, project: &str, spans: Vec<Span>) -> Result<CommitTicket, StoreError>;

    /// Submits and blocks until committed: the convenience form for threads and tests.
    fn write(&self, project: &str, spans: Vec<Span>) -> Result<WriteReceipt, StoreError> {
        self.submit(project, spans)?.wait()
    }

    /// One page of trace summaries matching the query's filters, in its sort order.
    fn list_traces(&self, query: &ListQuery) -> Result<Page<TraceSummary>, StoreError>;

    /// How many of the traces matching the query's filters (its sort, limit and cursor are
    /// ignored) failed, and how many recovered from errors; the `status` and `recovered`
    /// conditions are ignored too, so the counts describe the list they would narrow.
    fn trace_outcomes(&self, query: &ListQuery) -> Result<TraceOutcomes, StoreError>;

    /// A trace's summary and all its spans (with the GenAI log events stored for them merged
    /// in), or `None` when the project has no such trace.
    fn get_trace(
        &self,
        project: &str,
        trace_id: TraceId,
    ) -> Result<Option<TraceDetail>, StoreError>;

    /// Like `get_trace`, but with each span as its stored canonical JSON, so a server can
    /// stream a large trace without decoding and re-encoding every span.
    fn get_trace_json(
        &self,
        project: &str,
        trace_id: TraceId,
    ) -> Result<Option<TraceDetailJson>, StoreError>;

    /// One page of sessions (traces grouped by `session_id`), most recently active first.
    fn list_sessions(&self, query: &SessionQuery) -> Result<Page<SessionSummary>, StoreError>;

    /// A session's rollup and its traces, or `None` when the project has no such session.
    fn get_session(
        &self,
        project: &str,
        session_id: &str,
    ) -> Result<Option<SessionDetail>, StoreError>;

    /// Span metrics (counts, tokens, cost, latency and TTFT percentiles) grouped as asked.
    fn metrics(&self, query: &MetricsQuery) -> Result<Vec<MetricRow>, StoreError>;

    /// Metrics of the range `[bounds[0], bounds[last])` and of each slice `[bounds[i],
    /// bounds[i + 1])` in it, grouped as asked (the query's `from` and `to` are ignored): a
    /// time series in one call. `bounds` must not decrease.
    fn metrics_series(
        &self,
        query: &MetricsQuery,
        bounds: &[Timestamp],
    ) -> Result<MetricSeries, StoreError> {
        let (Some(first), Some(last)) = (bounds.first(), bounds.last()) else {
            return Ok(MetricSeries {
                rows: Vec::new(),
                slices: Vec::new(),
            });
        };
        let mut whole = query.clone();
        whole.from = Some(*first);
        whole.to = Some(*last);
        let rows = self.metrics(&whole)?;
        let mut slices = Vec::with_capacity(bounds.len().saturating_sub(1));
        for w in bounds.windows(2) {
            let mut q = query.clone();
            q.from = Some(w[0]);
            q.to = Some(w[1]);
            slices.push(self.metrics(&q)?);
        }
        Ok(MetricSeries { rows, slices })
    }

    /// Number of distinct spans stored for a project (0 for an unknown project).
    fn count_spans(&self, project: &str) -> Result<u64, StoreError>;

    /// Every project that has received spans, sorted by name.
    fn projects(&self) -> Result<Vec<String>, StoreError>;

    /// Stores validated scores for `project`; returns their ids in order. All or none are stored.
    fn add_scores(&self, project: &str, scores: &[Score]) -> Result<Vec<i64>, StoreError>;

    /// Keeps GenAI events that arrived as OTLP log records (`spanlens_core::otlp::logs`) for
    /// their spans, which may be stored before or after them: [`get_trace`](Store::get_trace)
    /// and [`get_trace_json`](Store::get_trace_json) merge them into their spans. An event
    /// already stored for its span is not stored again; a span holds at most
    /// `spanlens_core::limits::MAX_EVENTS` of them. All or none are stored.
    fn add_log_events(
        &self,
        project: &str,
        events: &[spanlens_core::otlp::logs::LogEvent],
    ) -> Result<crate::types::LogEventsReceipt, StoreError>;

    /// Scores matching the query, newest first.
    fn list_scores(&self, query: &ScoreQuery) -> Result<Vec<Score>, StoreError>;

    /// Daily count and mean per numeric or boolean score name, created in `[from, to)`.
    fn score_trends(
        &self,
        project: &str,
        from: Option<Timestamp>,
        to: Option<Timestamp>,
    ) -> Result<Vec<ScoreTrendRow>, StoreError>;

    /// Cost per group and UTC day (only `from`, `to`, `group_by`, `kind`, `model` and `provider`
    /// of the query apply), so forecasting gets a day series per group in one scan. Days on
    /// which a group cost nothing are absent.
    fn daily_cost(&self, query: &MetricsQuery) -> Result<Vec<DailyCost>, StoreError>;

    /// Calls `visit` with the stored LLM and embedding spans the scan selects, a trace's spans
    /// at a time, for re-pricing and reconciliation. An error from `visit` stops the scan. A
    /// stored span that cannot be read is left out and counted in the answer, so one damaged
    /// span never fails a whole report.
    fn scan_model_spans(
        &self,
        scan: &SpanScan,
        visit: &mut dyn FnMut(Vec<Span>) -> Result<(), StoreError>,
    ) -> Result<Unreadable, StoreError>;

    /// Calls `visit` with what the error-recovery report reads of the spans that started in
    /// the scan's range (its `model` is ignored), a few traces at a time: every span with
    /// retries, whole, and every model call that carries rate limits, with only its ids, times,
    /// provider and rate limits. Covers the whole range; the cost follows the spans selected.
    /// Spans that cannot be read are left out and counted in the answer.
    fn scan_recovery_spans(
        &self,
        scan: &SpanScan,
        visit: &mut dyn FnMut(Vec<Span>) -> Result<(), StoreError>,
    ) -> Result<Unreadable, StoreError>;

    /// The error-recovery report (`spanlens_core::recovery`) over the spans of `project` that
    /// started in `[buckets.from, buckets.to)`, with rate-limit headroom in `buckets.count`
    /// time buckets. Exact over the whole range; the default builds it from
    /// [`scan_recovery_spans`](Store::scan_recovery_spans).
    fn recovery_report(
        &self,
        project: &str,
        buckets: Buckets,
    ) -> Result<RecoveryReport, StoreError> {
        let mut builder = RecoveryBuilder::new(buckets);
        let scan = SpanScan {
            project: project.to_string(),
            from: Some(buckets.from),
            to: Some(buckets.to),
            model: None,
        };
        self.scan_recovery_spans(&scan, &mut |spans| {
            for s in &spans {
                builder.add(s);
            }
            Ok(())
        })?;
        Ok(builder.finish())
    }

    /// Re-computes the computed cost of the selected spans with `catalog` and, unless
    /// `dry_run`, writes the changed ones back through [`submit`](Store::submit): they replace
    /// the stored copies (last write wins) and their traces' summaries are rebuilt in the same
    /// transaction. Spans with a provider-reported cost are left as they are. Idempotent: a
    /// second run with the same catalog changes nothing.
    fn reprice(
        &self,
        scan: &SpanScan,
        catalog: &PriceCatalog,
        dry_run: bool,
    ) -> Result<RepriceReport, StoreError> {
        let mut report = RepriceReport {
            catalog_version: catalog.version().to_string(),
            dry_run,
            ..Default::default()
        };
        let mut models: BTreeMap<String, RepriceModel> = BTreeMap::new();
        let mut pending: Vec<Span> = Vec::new();
        let flush = |pending: &mut Vec<Span>| -> Result<(), StoreError> {
            if !pending.is_empty() && !dry_run {
                self.write(&scan.project, std::mem::take(pending))?;
            }
            pending.clear();
            Ok(())
        };
        let unreadable = self.scan_model_spans(scan, &mut |spans| {
            for mut span in spans {
                if span
                    .cost
                    .as_ref()
                    .is_some_and(|c| c.source == CostSource::Reported)
                {
                    report.reported_skipped += 1;
                    continue;
                }
                let before = span.cost.as_ref().map(|c| c.amounts.total);
                let was_unpriced = span.unpriced_reason.is_some();
                let Some(changed) = reprice_span(&mut span, catalog) else {
                    continue;
                };
                let after = span.cost.as_ref().map(|c| c.amounts.total);
                let model = span_model(&span).unwrap_or("(no model)").to_string();
                let row = models.entry(model.clone()).or_insert_with(|| RepriceModel {
                    model,
                    ..Default::default()
                });
                report.examined += 1;
                row.spans += 1;
                row.cost_before += before.unwrap_or(NanoUsd::ZERO);
                row.cost_after += after.unwrap_or(NanoUsd::ZERO);
                row.unpriced_before += u64::from(before.is_none());
                row.unpriced_after += u64::from(after.is_none());
                if changed {
                    report.changed += 1;
                    row.changed += 1;
                    if was_unpriced && span.unpriced_reason.is_none() {
                        report.newly_priced += 1;
                    }
                    pending.push(span);
                }
            }
            if pending.len() >= REPRICE_BATCH {
                flush(&mut pending)?;
            }
            Ok(())
        })?;
        report.unreadable = unreadable.count;
        flush(&mut pending)?;
        report.models = models.into_values().collect();
        report.models.sort_by(|a, b| {
            b.cost_after
                .cmp(&a.cost_after)
                .then_with(|| a.model.cmp(&b.model))
        });
        Ok(report)
    }
}
