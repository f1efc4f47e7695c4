//! GenAI events that arrived as OTLP log records, kept apart from their span.
//!
//! A log record names its span by trace and span id, and the span may be stored before or after
//! it. The events wait here, keyed by `(project, trace, span)`, and a read of the trace merges
//! them into their spans with `spanlens_core::conventions::merge_log_events`, the function
//! that reads span events at ingest: the answer is the same whichever arrived first. Rollups and
//! trace summaries are written when spans are, so what a log event adds (usage from operation
//! details, say) is shown on its span but not counted in them.
//!
//! Written on the scores connection, apart from the span writer: log events are few per call,
//! and a span batch never waits behind them.

use super::project_name;
use super::schema::now_ns;
use crate::error::StoreError;
use crate::facts::read::file_log_event;
use crate::types::{LogEventsReceipt, UnreadableSpan};
use rusqlite::{params, Connection};
use spanlens_core::otlp::logs::LogEvent;
use spanlens_core::{Event, TraceId};
use std::collections::HashMap;

fn db(what: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |e| StoreError::database(what, e)
}

/// Stores `events` under `project` in one transaction: an event already stored for its span
/// (same digest) is skipped, and a span holds at most `spanlens_core::limits::MAX_EVENTS`.
pub fn add(
    conn: &mut Connection,
    project: &str,
    events: &[LogEvent],
) -> Result<LogEventsReceipt, StoreError> {
    let mut receipt = LogEventsReceipt::default();
    if events.is_empty() {
        return Ok(receipt);
    }
    let project = project_name(project);
    let e = db("storing log events");
    let tx = conn.transaction().map_err(&e)?;
    tx.execute(
        "INSERT INTO projects (name, created_ns) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
        params![project, now_ns()],
    )
    .map_err(&e)?;
    let pid: i64 = tx
        .query_row("SELECT id FROM projects WHERE name = ?1", [&project], |r| {
            r.get(0)
        })
        .map_err(&e)?;
    {
        let mut count = tx
            .prepare_cached(
                "SELECT count(*) FROM log_events \
                 WHERE project_id = ?1 AND trace_id = ?2 AND span_id = ?3",
            )
            .map_err(&e)?;
        let mut insert = tx
            .prepare_cached(
                "INSERT INTO log_events \
                 (project_id, trace_id, span_id, digest, time_ns, event, received_ns) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING",
            )
            .map_err(&e)?;
        let mut held: HashMap<([u8; 16], [u8; 8]), usize> = HashMap::new();
        let now = now_ns();
        for ev in events {
            let key = (ev.trace_id.0, ev.span_id.0);
            let n = match held.get(&key) {
                Some(n) => *n,
                None => {
                    let n: i64 = count
                        .query_row(params![pid, &key.0[..], &key.1[..]], |r| r.get(0))
                        .map_err(&e)?;
                    usize::try_from(n).unwrap_or(usize::MAX)
                }
            };
            if n >= spanlens_core::limits::MAX_EVENTS {
                receipt.over_limit += 1;
                held.insert(key, n);
                continue;
            }
            let text = serde_json::to_string(&ev.event)
                .map_err(|x| StoreError::database("storing log events", x))?;
            let added = insert
                .execute(params![
                    pid,
                    &key.0[..],
                    &key.1[..],
                    // The digest's bits as SQLite's signed integer.
                    ev.digest() as i64,
                    i64::try_from(ev.event.time.0).unwrap_or(i64::MAX),
                    text,
                    now,
                ])
                .map_err(&e)?;
            if added == 0 {
                receipt.duplicates += 1;
            } else {
                receipt.stored += 1;
            }
            held.insert(key, n + added);
        }
    }
    tx.commit().map_err(&e)?;
    Ok(receipt)
}

/// The stored log events of a trace by span, oldest first. A row that does not decode is
/// reported against its span instead of failing the read.
pub fn of_trace(
    conn: &Connection,
    project_id: i64,
    trace_id: TraceId,
    unreadable: &mut Vec<UnreadableSpan>,
) -> Result<HashMap<[u8; 8], Vec<Event>>, StoreError> {
    let e = db("reading log events");
    let mut st = conn
        .prepare_cached(
            "SELECT span_id, event FROM log_events WHERE project_id = ?1 AND trace_id = ?2 \
             ORDER BY time_ns, id",
        )
        .map_err(&e)?;
    let mut rows = st.query(params![project_id, &trace_id.0[..]]).map_err(&e)?;
    let mut out: HashMap<[u8; 8], Vec<Event>> = HashMap::new();
    while let Some(row) = rows.next().map_err(&e)? {
        let id: Vec<u8> = row.get(0).map_err(&e)?;
        let text: String = row.get(1).map_err(&e)?;
        file_log_event(&mut out, unreadable, trace_id, &id, &text);
    }
    Ok(out)
}
