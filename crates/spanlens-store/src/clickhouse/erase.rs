//! Deletions and expiry on ClickHouse, which has no transactions: each step is a short run of
//! statements ordered so that a reader never counts what is gone.
//!
//! - Deleting traces: lightweight `DELETE FROM … WHERE` on every table holding their rows
//!   (spans, `span_times`, summaries, log events, scores, payload marks; the rows are masked at
//!   once and dropped by merges, so the text really goes), then the hours their spans started
//!   in are marked for the rollups. A rebuild records its generation before it reads spans, so
//!   a mark made after the delete is newer than any build that could have read the deleted
//!   rows: those hours are read from the spans until rebuilt.
//! - Clearing payloads: the newest copy of each span is read, cleared and written again through
//!   the writer, as a resend would be (a newer version wins in `FINAL` and `LIMIT 1 BY` reads,
//!   the content column is recomputed: the name only), then the trace's summary version is recorded in
//!   `payload_cleared`; a trace whose summary moved past it (a span arrived) is cleared again.
//!   A span arriving between the rewrite and the record may keep its payload until it is
//!   written again.

use super::rowbinary::RowBinary;
use super::rowread::RowReader;
use super::{ch_error, rollups, sql, ClickHouseStore};
use crate::domain::erase::StepEraser;
use crate::error::StoreError;
use crate::facts::erase::clear_payloads;
use crate::facts::prepare::to_i64;
use crate::facts::read::project_name;
use crate::store::{Erased, Expiry, SpanWriter};
use spanlens_core::{Span, TraceId};
use std::collections::BTreeSet;

/// Tables whose rows name a trace, cleared when it is deleted.
const TRACE_TABLES: [&str; 6] = [
    "spans",
    "span_times",
    "traces",
    "log_events",
    "scores",
    "payload_cleared",
];

impl ClickHouseStore {
    /// A table's name for `DELETE`: the local table on a cluster (a `Distributed` table takes
    /// no deletes), with `ON CLUSTER`.
    pub(super) fn delete_target(&self, table: &str) -> String {
        match &self.cluster {
            Some(c) => format!("{table}_local ON CLUSTER {}", super::schema::ident(c)),
            None => table.to_string(),
        }
    }

    async fn count(&self, sql: &str, op: &'static str) -> Result<u64, StoreError> {
        let out = self
            .client
            .query(&format!("{sql} FORMAT RowBinary"), &[])
            .await
            .map_err(|e| ch_error(op, e))?;
        Ok(RowReader::new(&out).u64()?)
    }
}

#[async_trait::async_trait]
impl StepEraser for ClickHouseStore {
    /// Deletes `ids` (at most a batch) of `project`.
    async fn delete_batch(&self, project: &str, ids: &[TraceId]) -> Result<Erased, StoreError> {
        let ids: Vec<[u8; 16]> = ids.iter().map(|t| t.0).collect();
        let Some(set) = sql::byte_set(&ids) else {
            return Ok(Erased::default());
        };
        let op = "deleting traces";
        let project = project_name(project);
        let p = sql::string(&project);
        let out = self
            .client
            .query(
                &format!(
                    "SELECT DISTINCT trace_id, span_id, start_ns FROM spans WHERE project = {p} \
                     AND trace_id IN {set} FORMAT RowBinary"
                ),
                &[],
            )
            .await
            .map_err(|e| ch_error(op, e))?;
        let mut r = RowReader::new(&out);
        let mut spans = BTreeSet::new();
        let mut marks = BTreeSet::new();
        while !r.is_empty() {
            let (t, s, start): ([u8; 16], [u8; 8], i64) = (r.fixed()?, r.fixed()?, r.i64()?);
            spans.insert((t, s));
            marks.insert((project.clone(), rollups::mark_hour(start)));
        }
        let traces = self
            .count(
                &format!(
                    "SELECT count() FROM traces FINAL WHERE project = {p} AND trace_id IN {set}"
                ),
                op,
            )
            .await?;
        let scores = self
            .count(
                &format!("SELECT count() FROM scores WHERE project = {p} AND trace_id IN {set}"),
                op,
            )
            .await?;
        for table in TRACE_TABLES {
            self.client
                .query(
                    &format!(
                        "DELETE FROM {} WHERE project = {p} AND trace_id IN {set}",
                        self.delete_target(table)
                    ),
                    &[],
                )
                .await
                .map_err(|e| ch_error(op, e))?;
        }
        rollups::mark(&self.client, &marks).await?;
        self.forget_media(&project, &ids).await?;
        Ok(Erased {
            traces,
            spans: spans.len() as u64,
            scores,
            payloads: 0,
        })
    }

    /// One step of a retention rule.
    async fn expire_step(
        &self,
        project: &str,
        rule: Expiry,
        limit: usize,
    ) -> Result<Erased, StoreError> {
        let project = project_name(project);
        let p = sql::string(&project);
        let before = to_i64(rule.before().0);
        let op = "expiring traces";
        let payloads = matches!(rule, Expiry::Payloads { .. });
        let not_cleared = if payloads {
            format!(
                " AND (trace_id, version) NOT IN (SELECT trace_id, version FROM payload_cleared \
                 FINAL WHERE project = {p})"
            )
        } else {
            String::new()
        };
        let out = self
            .client
            .query(
                &format!(
                    "SELECT trace_id, span_count FROM traces FINAL WHERE project = {p} \
                     AND end_ns < {before}{not_cleared} ORDER BY end_ns, trace_id LIMIT {limit} \
                     FORMAT RowBinary"
                ),
                &[],
            )
            .await
            .map_err(|e| ch_error(op, e))?;
        let mut r = RowReader::new(&out);
        let mut old = Vec::new();
        while !r.is_empty() {
            let t: [u8; 16] = r.fixed()?;
            old.push((TraceId(t), r.i64()?));
        }
        if !payloads {
            let ids: Vec<TraceId> = old.into_iter().map(|(t, _)| t).collect();
            return self.delete_batch(&project, &ids).await;
        }
        let mut take = Vec::new();
        let mut spans = 0i64;
        for (t, n) in old {
            if !take.is_empty() && spans.saturating_add(n) > to_i64(limit as u64) {
                break;
            }
            spans = spans.saturating_add(n);
            take.push(t.0);
        }
        let erased = self.clear_traces(&project, &take).await?;
        self.forget_media(&project, &take).await?;
        Ok(erased)
    }

    /// Deletes the scores given to a session itself.
    async fn delete_session_scores(&self, project: &str, session: &str) -> Result<u64, StoreError> {
        let p = sql::string(&project_name(project));
        let s = sql::string(session);
        let op = "deleting scores";
        let n = self
            .count(
                &format!("SELECT count() FROM scores WHERE project = {p} AND session_id = {s}"),
                op,
            )
            .await?;
        if n > 0 {
            self.client
                .query(
                    &format!(
                        "DELETE FROM {} WHERE project = {p} AND session_id = {s}",
                        self.delete_target("scores")
                    ),
                    &[],
                )
                .await
                .map_err(|e| ch_error(op, e))?;
        }
        Ok(n)
    }
}

impl ClickHouseStore {
    /// Writes the newest copy of every span of `traces` again without payloads, deletes their
    /// log events' content, and records each trace as cleared at its summary's version.
    async fn clear_traces(&self, project: &str, traces: &[[u8; 16]]) -> Result<Erased, StoreError> {
        let Some(set) = sql::byte_set(traces) else {
            return Ok(Erased::default());
        };
        let op = "clearing payloads";
        let p = sql::string(project);
        let out = self
            .client
            .query(
                &format!(
                    "SELECT body FROM spans WHERE project = {p} AND trace_id IN {set} \
                     ORDER BY trace_id, span_id, version DESC LIMIT 1 BY trace_id, span_id \
                     FORMAT RowBinary"
                ),
                &[],
            )
            .await
            .map_err(|e| ch_error(op, e))?;
        let mut r = RowReader::new(&out);
        let mut spans: Vec<Span> = Vec::new();
        let mut count = 0u64;
        while !r.is_empty() {
            let body = r.bytes()?;
            count += 1;
            // A body the payload TTL dropped (empty) or that does not decode holds nothing
            // this can clear.
            if let Ok(mut span) = serde_json::from_slice::<Span>(body) {
                if clear_payloads(&mut span) {
                    spans.push(span);
                }
            }
        }
        if !spans.is_empty() {
            self.write(project, spans).await?;
        }
        // Log events: content events go, operation details lose their messages. Few per
        // trace, and ClickHouse rewrites parts for an update: delete and insert instead.
        let out = self
            .client
            .query(
                &format!(
                    "SELECT trace_id, span_id, digest, time_ns, event, received_ns FROM log_events \
                     FINAL WHERE project = {p} AND trace_id IN {set} FORMAT RowBinary"
                ),
                &[],
            )
            .await
            .map_err(|e| ch_error(op, e))?;
        let mut r = RowReader::new(&out);
        let mut changed = RowBinary::new();
        let mut keys = Vec::new();
        while !r.is_empty() {
            let (t, s): ([u8; 16], [u8; 8]) = (r.fixed()?, r.fixed()?);
            let (digest, time, event, received) = (r.i64()?, r.i64()?, r.string()?, r.i64()?);
            let Ok(kept) = crate::facts::erase::clear_log_event(&event) else {
                continue;
            };
            keys.push(format!(
                "({}, {}, {digest})",
                sql::bytes(&t),
                sql::bytes(&s)
            ));
            if let Some(text) = kept {
                changed
                    .str(project)
                    .fixed(&t)
                    .fixed(&s)
                    .i64(digest)
                    .i64(time)
                    .str(&text)
                    .i64(received);
            }
        }
        if !keys.is_empty() {
            self.client
                .query(
                    &format!(
                        "DELETE FROM {} WHERE project = {p} AND (trace_id, span_id, digest) IN ({})",
                        self.delete_target("log_events"),
                        keys.join(", ")
                    ),
                    &[],
                )
                .await
                .map_err(|e| ch_error(op, e))?;
            if !changed.is_empty() {
                self.client
                    .insert(
                        "INSERT INTO log_events (project, trace_id, span_id, digest, time_ns, \
                         event, received_ns) FORMAT RowBinary",
                        &changed.finish(),
                        &[],
                    )
                    .await
                    .map_err(|e| ch_error(op, e))?;
            }
        }
        self.client
            .query(
                &format!(
                    "INSERT INTO payload_cleared (project, trace_id, version) \
                     SELECT project, trace_id, version FROM traces FINAL \
                     WHERE project = {p} AND trace_id IN {set}"
                ),
                &[],
            )
            .await
            .map_err(|e| ch_error(op, e))?;
        Ok(Erased {
            payloads: count,
            ..Erased::default()
        })
    }
}
