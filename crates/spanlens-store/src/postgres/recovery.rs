//! The error-recovery report from `span_recovery`: one small row per retried span or rate-limit
//! snapshot, so the report reads those rows and the bodies of the few most recent retried
//! spans (for their timelines) instead of decoding every span it might concern. At 10M spans
//! the scan-based report took 7–8.5 s over 30 days.
//!
//! Spans stored before the table existed (`spans.for_recovery` unknown) have no row: a range
//! holding any is answered by the scan, as before.

use super::db;
use super::read::{body_of, read_chunks, snapshot};
use super::side::find_project;
use crate::error::StoreError;
use crate::facts::chunk::ChunkReader;
use crate::facts::prepare::to_i64;
use crate::rollup::headroom::{HeadroomReport, RateSample};
use crate::rollup::retries::{RetryBody, RetryFacts, RetryRow};
use deadpool_postgres::Object;
use spanlens_core::recovery::{Buckets, RecoveryReport, MAX_TIMELINES};
use spanlens_core::{retry_timeline, Span};
use std::cmp::Reverse;

fn corrupt(reason: String) -> StoreError {
    StoreError::Corrupt {
        table: "span_recovery",
        reason,
    }
}

/// The report over the spans of `project` that started in `[b.from, b.to)`; `None` when spans
/// of that range were stored before `span_recovery` existed (the caller scans then).
pub async fn report(
    client: &mut Object,
    project: &str,
    b: Buckets,
) -> Result<Option<RecoveryReport>, StoreError> {
    let e = db("reading the recovery report");
    let tx = snapshot(client).await?;
    let mut headroom = HeadroomReport::new(b);
    let mut sums = RetryBody::default();
    let Some(pid) = find_project(&*tx, project).await? else {
        return Ok(Some(sums.finish(Vec::new(), headroom.finish())));
    };
    let (from, to) = (to_i64(b.from.0), to_i64(b.to.0));
    if from >= to {
        return Ok(Some(sums.finish(Vec::new(), headroom.finish())));
    }
    let old = tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM spans WHERE project_id = $1 AND start_ns >= $2 \
             AND start_ns < $3 AND for_recovery IS NOT FALSE AND for_recovery IS NULL)",
            &[&pid, &from, &to],
        )
        .await
        .map_err(&e)?;
    if old.get::<_, bool>(0) {
        return Ok(None);
    }
    let rows = tx
        .query(
            "SELECT start_ns, trace_id, span_id, provider, tool, retries, recovered, \
             recovery_ms, errors, rate_at_ns, rate_sample FROM span_recovery \
             WHERE project_id = $1 AND start_ns >= $2 AND start_ns < $3",
            &[&pid, &from, &to],
        )
        .await
        .map_err(&e)?;
    // Newest retried spans first, then by trace and span id, as the report lists them.
    let mut recent: Vec<(Reverse<i64>, Vec<u8>, Vec<u8>)> = Vec::new();
    for r in &rows {
        let start: i64 = r.get(0);
        if let Some(retries) = r.get::<_, Option<i64>>(5) {
            let row = RetryRow {
                start_ns: start,
                provider: r.get(3),
                tool: r.get(4),
                retries: u64::try_from(retries).unwrap_or(0),
                recovered: r.get::<_, Option<bool>>(6).unwrap_or(false),
                recovery_ms: r.get(7),
                errors: r.get::<_, Option<&[u8]>>(8).unwrap_or_default(),
            };
            sums.add(&RetryFacts::of_row(&row).map_err(|x| corrupt(x.0))?, 1);
            recent.push((Reverse(start), r.get(1), r.get(2)));
        }
        if let (Some(at), Some(bytes)) = (r.get::<_, Option<i64>>(9), r.get::<_, Option<&[u8]>>(10))
        {
            let sample = RateSample::decode(bytes).map_err(|x| corrupt(x.0))?;
            headroom.add_sample(u64::try_from(at).unwrap_or(0), &sample);
        }
    }
    recent.sort();
    recent.truncate(MAX_TIMELINES);
    let timelines = timelines(&tx, pid, &recent).await?;
    tx.commit().await.map_err(&e)?;
    Ok(Some(sums.finish(timelines, headroom.finish())))
}

/// The retry timelines of the given spans, from their bodies (a body that cannot be read is
/// left out, as a scan leaves it out).
async fn timelines(
    tx: &tokio_postgres::Transaction<'_>,
    pid: i64,
    spans: &[(Reverse<i64>, Vec<u8>, Vec<u8>)],
) -> Result<Vec<spanlens_core::recovery::RetryTimeline>, StoreError> {
    if spans.is_empty() {
        return Ok(Vec::new());
    }
    let traces: Vec<&Vec<u8>> = spans.iter().map(|s| &s.1).collect();
    let ids: Vec<&Vec<u8>> = spans.iter().map(|s| &s.2).collect();
    let rows = tx
        .query(
            "SELECT s.span_id, s.chunk_id, s.body_codec, s.body FROM spans s \
             JOIN unnest($2::BYTEA[], $3::BYTEA[]) AS x(t, i) \
             ON s.project_id = $1 AND s.trace_id = x.t AND s.span_id = x.i",
            &[&pid, &traces, &ids],
        )
        .await
        .map_err(db("reading retried spans' bodies"))?;
    let mut reader = ChunkReader::new();
    let mut chunks = read_chunks(tx, rows.iter().filter_map(|r| r.get(1)), &mut reader).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let Ok(id) = <[u8; 8]>::try_from(r.get::<_, &[u8]>(0)) else {
            continue;
        };
        let Ok(Some(text)) = body_of(r, 1, &mut chunks, &mut reader, id) else {
            continue;
        };
        if let Ok(span) = serde_json::from_str::<Span>(&text) {
            out.extend(retry_timeline(&span));
        }
    }
    Ok(out)
}
