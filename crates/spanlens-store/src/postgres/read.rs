//! The read side on PostgreSQL: the trace list from the summary rows, one trace from its span
//! rows, sessions summed from the summaries, and the span scans.

use super::db;
use super::side::{find_project, log_events_of};
use super::sql::Sql;
use crate::cursor::{SessionCursor, SortKey, TraceCursor};
use crate::error::StoreError;
use crate::facts::chunk::ChunkReader;
use crate::facts::prepare::{status_str, to_i64};
use crate::facts::read::{
    check_limit, no_body, session_page, sort_column, sort_is_numeric, sort_sessions, trace_page,
    undecodable, Bodies, StoredSummary, StoredTrace,
};
use crate::facts::summary::{prompt_version_key, SummaryNumbers};
use crate::store::ScanSender;
use crate::types::{
    ListQuery, Page, SessionDetail, SessionQuery, SessionSummary, SortOrder, SpanScan, TraceFilter,
    TraceOutcomes, TraceSummary, Unreadable,
};
use spanlens_core::{NanoUsd, Span, Timestamp, TraceId};
use std::collections::HashMap;
use tokio_postgres::{GenericClient, IsolationLevel, Row};

/// Most traces returned with one session, so a runaway session cannot exhaust memory.
const MAX_SESSION_TRACES: i64 = 10_000;

const SUMMARY_COLS: &str = "trace_id, name, status, start_ns, end_ns, duration_ns, span_count, \
     error_count, input_tokens, output_tokens, total_tokens, cost_nano, unpriced_count, user_id, \
     session_id, tags, root_span_id, service";

fn read_summary(r: &Row, project: &str) -> Result<TraceSummary, StoreError> {
    StoredSummary {
        trace_id: r.get(0),
        name: r.get(1),
        status: r.get(2),
        numbers: SummaryNumbers::from_order(std::array::from_fn(|k| r.get(3 + k))),
        user_id: r.get(13),
        session_id: r.get(14),
        tags: r.get(15),
        root_span_id: r.get(16),
        service: r.get(17),
    }
    .into_summary(project, "traces")
}

/// Appends the filter's conditions to a `WHERE` clause on `traces` (project already bound).
/// Without `with_outcome` the status and recovered conditions are left out.
fn filter_conditions(sql: &mut Sql, f: &TraceFilter, with_outcome: bool) -> Result<(), StoreError> {
    sql.started_in(f.from, f.to);
    if let Some(n) = &f.name {
        sql.and("name = ?", n.clone());
    }
    if let (Some(s), true) = (f.status, with_outcome) {
        sql.and("status = ?", status_str(s).to_string());
    }
    if f.recovered && with_outcome {
        sql.push(" AND status <> 'error' AND error_count > 0");
    }
    if let Some(u) = &f.user_id {
        sql.and("user_id = ?", u.clone());
    }
    if let Some(s) = &f.session_id {
        sql.and("session_id = ?", s.clone());
    }
    if let Some(d) = f.min_duration_ns {
        sql.and("duration_ns >= ?", to_i64(d));
    }
    if let Some(d) = f.max_duration_ns {
        sql.and("duration_ns <= ?", to_i64(d));
    }
    if let Some(c) = f.min_cost {
        sql.and("cost_nano >= ?", c.0);
    }
    if let Some(c) = f.max_cost {
        sql.and("cost_nano <= ?", c.0);
    }
    if let Some(t) = f.text.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        sql.and("strpos(search, ?) > 0", t.to_lowercase());
    }
    // Span-level values: the trace's sets, each with a GIN index.
    let sets = [
        ("kinds", f.kind.map(|k| vec![k.as_str().to_string()])),
        ("models", f.model.clone().map(|m| vec![m])),
        ("providers", f.provider.clone().map(|p| vec![p])),
        ("tags", Some(f.tags.clone()).filter(|t| !t.is_empty())),
    ];
    for (column, values) in sets {
        if let Some(v) = values {
            sql.and(&format!("{column} @> ?::TEXT[]"), v);
        }
    }
    if let Some(sf) = &f.score {
        let name = sql.bind(sf.name.clone());
        sql.push(&format!(
            " AND EXISTS (SELECT 1 FROM scores s WHERE s.project_id = traces.project_id \
             AND s.trace_id = traces.trace_id AND s.name = {name}"
        ));
        if let Some(min) = sf.min {
            sql.and("s.value >= ?", min);
        }
        if let Some(max) = sf.max {
            sql.and("s.value <= ?", max);
        }
        if let Some(label) = &sf.label {
            sql.and("s.label = ?", label.clone());
        }
        sql.push(")");
    }
    match (&f.prompt, &f.prompt_version) {
        (Some(n), Some(v)) => {
            sql.and(
                "prompt_versions @> ?::TEXT[]",
                vec![prompt_version_key(n, v)],
            );
        }
        (Some(n), None) => sql.and("prompts @> ?::TEXT[]", vec![n.clone()]),
        _ => {}
    }
    if f.has_prompt {
        sql.push(" AND prompts <> '{}'");
    }
    // Full-text search: the spans' word arrays, with a GIN index.
    if let Some(words) = crate::domain::content::filter_words(f)? {
        sql.and(
            "trace_id IN (SELECT s.trace_id FROM spans s \
             WHERE s.project_id = traces.project_id AND s.words @> ?::TEXT[])",
            words,
        );
    }
    Ok(())
}

/// `… FROM traces WHERE project_id = $1` and the filter, or `None` for an unknown project.
async fn traces_where(
    client: &impl GenericClient,
    select: &str,
    project: &str,
    f: &TraceFilter,
    with_outcome: bool,
) -> Result<Option<(i64, Sql)>, StoreError> {
    let Some(pid) = find_project(client, project).await? else {
        return Ok(None);
    };
    let mut sql = Sql::new(format!("SELECT {select} FROM traces WHERE project_id = "));
    let p = sql.bind(pid);
    sql.push(&p);
    filter_conditions(&mut sql, f, with_outcome)?;
    Ok(Some((pid, sql)))
}

/// How the traces matching a query's filters ended.
pub async fn trace_outcomes(
    client: &impl GenericClient,
    q: &ListQuery,
) -> Result<TraceOutcomes, StoreError> {
    let project = crate::facts::read::project_name(&q.project);
    let Some((_, sql)) = traces_where(
        client,
        "count(*), count(*) FILTER (WHERE status = 'error'), \
         count(*) FILTER (WHERE status <> 'error' AND error_count > 0)",
        &project,
        &q.filter,
        false,
    )
    .await?
    else {
        return Ok(TraceOutcomes::default());
    };
    let rows = sql.rows(client, "counting trace outcomes").await?;
    let Some(r) = rows.first() else {
        return Ok(TraceOutcomes::default());
    };
    let n = |i: usize| u64::try_from(r.get::<_, i64>(i)).unwrap_or(0);
    Ok(TraceOutcomes {
        traces: n(0),
        failed: n(1),
        recovered: n(2),
    })
}

/// Matches of a range filter counted before the list decides how to read them.
const FEW_MATCHES: i64 = 2_000;

/// True when a cost or duration range filter matches fewer than [`FEW_MATCHES`] traces of the
/// project (counted on its index) and the list is sorted on another column. Walking the sort
/// column's index and filtering then reads the whole project, and the planner takes that walk
/// when its histogram overestimates the matches: at 10M spans a list of the one trace costing
/// over $2, newest first, took 0.4 s after an ANALYZE and 1 ms before.
async fn few_in_range(
    client: &impl GenericClient,
    pid: i64,
    f: &TraceFilter,
    sort_col: &str,
) -> Result<bool, StoreError> {
    let ranges = [
        (
            "cost_nano",
            f.min_cost.map(|c| c.0),
            f.max_cost.map(|c| c.0),
        ),
        (
            "duration_ns",
            f.min_duration_ns.map(to_i64),
            f.max_duration_ns.map(to_i64),
        ),
    ];
    let Some((col, lo, hi)) = ranges
        .into_iter()
        .find(|(col, lo, hi)| *col != sort_col && (lo.is_some() || hi.is_some()))
    else {
        return Ok(false);
    };
    let mut sql = Sql::new("SELECT count(*) FROM (SELECT 1 FROM traces WHERE project_id = ");
    let p = sql.bind(pid);
    sql.push(&p);
    if let Some(v) = lo {
        sql.and(&format!("{col} >= ?"), v);
    }
    if let Some(v) = hi {
        sql.and(&format!("{col} <= ?"), v);
    }
    sql.push(&format!(" LIMIT {FEW_MATCHES}) AS x"));
    let rows = sql.rows(client, "listing traces").await?;
    Ok(rows.first().map_or(0, |r| r.get::<_, i64>(0)) < FEW_MATCHES)
}

/// One page of the trace list (keyset pagination on the sort column and the trace id).
pub async fn list_traces(
    client: &impl GenericClient,
    q: &ListQuery,
) -> Result<Page<TraceSummary>, StoreError> {
    let limit = check_limit(q.limit)?;
    let cursor = match q.cursor.as_deref().map(str::trim) {
        Some(c) if !c.is_empty() => Some(TraceCursor::decode(c, q.sort, q.order)?),
        _ => None,
    };
    let project = crate::facts::read::project_name(&q.project);
    let Some((pid, mut sql)) =
        traces_where(client, SUMMARY_COLS, &project, &q.filter, true).await?
    else {
        return Ok(Page {
            items: Vec::new(),
            next_cursor: None,
        });
    };
    let col = sort_column(q.sort);
    let (dir, op) = match q.order {
        SortOrder::Desc => ("DESC", "<"),
        SortOrder::Asc => ("ASC", ">"),
    };
    if let Some(c) = cursor {
        let k = match (c.key, sort_is_numeric(q.sort)) {
            (SortKey::Int(i), true) => sql.bind(i),
            (SortKey::Text(s), false) => sql.bind(s),
            _ => {
                return Err(StoreError::InvalidCursor(
                    "cursor key does not match the sort column".into(),
                ))
            }
        };
        let t = sql.bind(c.trace_id.0.to_vec());
        sql.push(&format!(" AND ({col}, trace_id) {op} ({k}, {t})"));
    }
    let order = format!("{col} {dir}, trace_id {dir}");
    if few_in_range(client, pid, &q.filter, col).await? {
        // Sorted and cut after the few matches are found, whatever the planner estimates.
        sql.text = format!("WITH m AS MATERIALIZED ({}) SELECT * FROM m", sql.text);
    }
    sql.page(&order, limit);
    let rows = sql.rows(client, "listing traces").await?;
    let items = rows
        .iter()
        .map(|r| read_summary(r, &project))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(trace_page(items, limit, q))
}

/// A read-only transaction that reads one snapshot throughout.
pub(super) async fn snapshot(
    client: &mut deadpool_postgres::Object,
) -> Result<deadpool_postgres::Transaction<'_>, StoreError> {
    client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(db("starting a read"))
}

/// A trace's summary and its spans' stored JSON in start order, in one snapshot.
pub async fn read_trace(
    client: &mut deadpool_postgres::Object,
    project: &str,
    trace_id: TraceId,
) -> Result<Option<StoredTrace>, StoreError> {
    let e = db("reading a trace");
    let tx = snapshot(client).await?;
    let Some(pid) = find_project(&*tx, project).await? else {
        return Ok(None);
    };
    let tid = trace_id.0.to_vec();
    let Some(row) = tx
        .query_opt(
            &format!("SELECT {SUMMARY_COLS} FROM traces WHERE project_id = $1 AND trace_id = $2"),
            &[&pid, &tid],
        )
        .await
        .map_err(&e)?
    else {
        return Ok(None);
    };
    let summary = read_summary(&row, project)?;
    let rows = tx
        .query(
            "SELECT span_id, chunk_id, body_codec, body FROM spans \
             WHERE project_id = $1 AND trace_id = $2 ORDER BY start_ns, span_id",
            &[&pid, &tid],
        )
        .await
        .map_err(db("reading spans"))?;
    let mut reader = ChunkReader::new();
    let mut chunks = read_chunks(&*tx, rows.iter().filter_map(|r| r.get(1)), &mut reader).await?;
    let mut bodies = Bodies::default();
    for r in &rows {
        let id: Vec<u8> = r.get(0);
        let Ok(id) = <[u8; 8]>::try_from(id.as_slice()) else {
            return Err(StoreError::Corrupt {
                table: "spans",
                reason: format!("span id of {} bytes", id.len()),
            });
        };
        bodies.order.push(id);
        match body_of(r, 1, &mut chunks, &mut reader, id) {
            Ok(Some(text)) => {
                bodies.text.insert(id, text);
            }
            Ok(None) => {}
            Err(why) => bodies.damaged = Some(why),
        }
    }
    let mut unreadable = Vec::new();
    let events = log_events_of(&*tx, pid, trace_id, &mut unreadable).await?;
    let duplicates = tx
        .query(
            "SELECT span_id, duplicate_of FROM llm_calls \
             WHERE project_id = $1 AND trace_id = $2 AND duplicate_of IS NOT NULL",
            &[&pid, &tid],
        )
        .await
        .map_err(db("reading a trace's duplicate calls"))?
        .iter()
        .filter_map(|r| {
            let s: Vec<u8> = r.get(0);
            let d: Vec<u8> = r.get(1);
            Some((s.try_into().ok()?, d.try_into().ok()?))
        })
        .collect();
    tx.commit().await.map_err(&e)?;
    Ok(Some(StoredTrace::assemble(
        summary, bodies, events, unreadable, duplicates,
    )))
}

/// The trace columns a session is summed from: its sums are taken in SQL as exact numerics
/// and clamped here.
const SESSION_SUMS: &str = "session_id, max(NULLIF(user_id, '')), count(*), \
     sum(span_count)::TEXT, sum(error_count)::TEXT, sum(input_tokens)::TEXT, \
     sum(output_tokens)::TEXT, sum(total_tokens)::TEXT, sum(cost_nano)::TEXT, \
     sum(unpriced_count)::TEXT, min(start_ns), max(end_ns)";

/// A session from a row of [`SESSION_SUMS`].
fn read_session(r: &Row) -> SessionSummary {
    let sum = |i: usize| -> i128 {
        r.get::<_, Option<String>>(i)
            .and_then(|t| t.parse().ok())
            .unwrap_or(0)
    };
    let count = |i: usize| u64::try_from(sum(i).max(0)).unwrap_or(u64::MAX);
    let cost = sum(8);
    SessionSummary {
        session_id: r.get(0),
        user_id: r.get(1),
        trace_count: u64::try_from(r.get::<_, i64>(2)).unwrap_or(0),
        span_count: count(3),
        error_count: count(4),
        input_tokens: count(5),
        output_tokens: count(6),
        total_tokens: count(7),
        total_cost: NanoUsd(i64::try_from(cost).unwrap_or(if cost < 0 {
            i64::MIN
        } else {
            i64::MAX
        })),
        unpriced_span_count: count(9),
        first_time: Timestamp(u64::try_from(r.get::<_, i64>(10)).unwrap_or(0)),
        last_time: Timestamp(u64::try_from(r.get::<_, i64>(11)).unwrap_or(0)),
    }
}

/// One page of sessions, most recently active first: the traces that count (started in the
/// range, of the user asked for) grouped by session.
pub async fn list_sessions(
    client: &mut deadpool_postgres::Object,
    q: &SessionQuery,
) -> Result<Page<SessionSummary>, StoreError> {
    let limit = check_limit(q.limit)?;
    let cursor = match q.cursor.as_deref().map(str::trim) {
        Some(c) if !c.is_empty() => Some(SessionCursor::decode(c)?),
        _ => None,
    };
    let project = crate::facts::read::project_name(&q.project);
    let tx = snapshot(client).await?;
    let Some(pid) = find_project(&*tx, &project).await? else {
        return Ok(Page {
            items: Vec::new(),
            next_cursor: None,
        });
    };
    // A user's sessions come from that user's traces by index; the others are found by the
    // walk, which gives up (`None`) where it would read much of the project.
    let walked = match &q.user_id {
        Some(_) => None,
        None => newest_sessions(&tx, pid, q, cursor.as_ref(), limit).await?,
    };
    let mut found = match walked {
        Some(found) => found,
        None => {
            let mut sql = Sql::new(format!(
                "SELECT {SESSION_SUMS} FROM traces WHERE session_id <> '' AND project_id = "
            ));
            let p = sql.bind(pid);
            sql.push(&p);
            sql.started_in(q.from, q.to);
            if let Some(u) = &q.user_id {
                sql.and("user_id = ?", u.clone());
            }
            sql.push(" GROUP BY session_id");
            if let Some(c) = &cursor {
                let l = sql.bind(c.last_ns);
                let s = sql.bind(c.session_id.clone());
                sql.push(&format!(" HAVING (max(end_ns), session_id) < ({l}, {s})"));
            }
            sql.page("max(end_ns) DESC, session_id DESC", limit);
            let rows = sql.rows(&*tx, "listing sessions").await?;
            rows.iter().map(read_session).collect()
        }
    };
    sort_sessions(&mut found);
    Ok(session_page(found, limit))
}

/// Traces the newest-first walk of [`newest_sessions`] reads before it gives up.
const SESSION_WALK_LIMIT: usize = 20_000;
/// Traces it reads at a time.
const SESSION_WALK_PAGE: i64 = 1_000;

/// The first `limit + 1` sessions of a page (no user filter) without grouping every trace of
/// the project (at 10M spans that took a second): traces are walked by end time, newest first,
/// and each session met is summed from its own traces by index. A session's last activity is
/// the end of its newest trace, so once `limit + 1` sessions end after the walk's position no
/// session not yet met can come before them. `None` when the walk would read more than
/// [`SESSION_WALK_LIMIT`] traces (sessions of old traces under a narrow time filter, say).
async fn newest_sessions(
    tx: &tokio_postgres::Transaction<'_>,
    pid: i64,
    q: &SessionQuery,
    cursor: Option<&SessionCursor>,
    limit: usize,
) -> Result<Option<Vec<SessionSummary>>, StoreError> {
    let mut met: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut found: Vec<SessionSummary> = Vec::new();
    let mut after: Option<(i64, Vec<u8>)> = None;
    let mut read = 0usize;
    loop {
        let mut sql =
            Sql::new("SELECT session_id, end_ns, trace_id FROM traces WHERE project_id = ");
        let p = sql.bind(pid);
        sql.push(&p);
        sql.push(" AND session_id <> ''");
        sql.started_in(q.from, q.to);
        if let Some(c) = cursor {
            sql.and("end_ns <= ?", c.last_ns);
        }
        if let Some((end, trace)) = &after {
            let e = sql.bind(*end);
            let t = sql.bind(trace.clone());
            sql.push(&format!(
                " AND end_ns <= {e} AND (end_ns, trace_id) < ({e}, {t})"
            ));
        }
        sql.push(&format!(
            " ORDER BY end_ns DESC, trace_id DESC LIMIT {SESSION_WALK_PAGE}"
        ));
        let rows = sql.rows(tx, "listing sessions").await?;
        read += rows.len();
        let exhausted = rows.len() < SESSION_WALK_PAGE as usize;
        let mut new: Vec<String> = Vec::new();
        for r in &rows {
            let sid: String = r.get(0);
            if met.insert(sid.clone()) {
                new.push(sid);
            }
        }
        if let Some(last) = rows.last() {
            after = Some((last.get(1), last.get(2)));
        }
        if !new.is_empty() {
            let mut sql = Sql::new(format!(
                "SELECT {SESSION_SUMS} FROM traces WHERE project_id = "
            ));
            let p = sql.bind(pid);
            sql.push(&p);
            sql.and("session_id = ANY(?)", new);
            sql.started_in(q.from, q.to);
            sql.push(" GROUP BY session_id");
            for r in sql.rows(tx, "listing sessions").await? {
                let s = read_session(&r);
                // A session active after the cursor was on an earlier page.
                let before_cursor = cursor.is_none_or(|c| {
                    (to_i64(s.last_time.0), s.session_id.as_str())
                        < (c.last_ns, c.session_id.as_str())
                });
                if before_cursor {
                    found.push(s);
                }
            }
            sort_sessions(&mut found);
            found.truncate(limit + 1);
        }
        // Sessions not met yet end at or before the walk's position.
        let settled = match (&after, found.get(limit)) {
            (Some((end, _)), Some(s)) => to_i64(s.last_time.0) > *end,
            _ => false,
        };
        if exhausted || settled {
            return Ok(Some(found));
        }
        if read >= SESSION_WALK_LIMIT {
            return Ok(None);
        }
    }
}

/// A session's rollup and its traces (oldest first, at most [`MAX_SESSION_TRACES`]).
pub async fn get_session(
    client: &mut deadpool_postgres::Object,
    project: &str,
    session_id: &str,
) -> Result<Option<SessionDetail>, StoreError> {
    if session_id.is_empty() {
        return Ok(None);
    }
    let e = db("reading a session");
    let tx = snapshot(client).await?;
    let Some(pid) = find_project(&*tx, project).await? else {
        return Ok(None);
    };
    let Some(row) = tx
        .query_opt(
            &format!(
                "SELECT {SESSION_SUMS} FROM traces WHERE project_id = $1 AND session_id = $2 \
                 GROUP BY session_id"
            ),
            &[&pid, &session_id],
        )
        .await
        .map_err(&e)?
    else {
        return Ok(None);
    };
    let session = read_session(&row);
    let rows = tx
        .query(
            &format!(
                "SELECT {SUMMARY_COLS} FROM traces WHERE project_id = $1 AND session_id = $2 \
                 ORDER BY start_ns, trace_id LIMIT $3"
            ),
            &[&pid, &session_id, &MAX_SESSION_TRACES],
        )
        .await
        .map_err(&e)?;
    let traces = rows
        .iter()
        .map(|r| read_summary(r, project))
        .collect::<Result<Vec<_>, _>>()?;
    tx.commit().await.map_err(&e)?;
    Ok(Some(SessionDetail { session, traces }))
}

/// Spans stored for a project.
pub async fn count_spans(client: &impl GenericClient, project: &str) -> Result<u64, StoreError> {
    let Some(pid) = find_project(client, project).await? else {
        return Ok(0);
    };
    let n: i64 = client
        .query_one("SELECT count(*) FROM spans WHERE project_id = $1", &[&pid])
        .await
        .map_err(db("counting spans"))?
        .get(0);
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Every project, sorted by name.
pub async fn projects(client: &impl GenericClient) -> Result<Vec<String>, StoreError> {
    Ok(client
        .query("SELECT name FROM projects ORDER BY name", &[])
        .await
        .map_err(db("listing projects"))?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// Rows fetched per round trip by a scan (a few traces' worth).
const SCAN_FETCH: i32 = 512;

/// Which spans a scan hands over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanKind {
    /// LLM and embedding spans (re-pricing, reconciliation), a trace per batch.
    Models,
    /// What the recovery report reads: retried spans, model calls and spans naming a
    /// provider, whole.
    Recovery,
}

/// Runs a scan on its own connection, handing the spans over a trace at a time through
/// `tx` (the consumer's pace: rows are fetched a few hundred at a time through a portal), and
/// ends it with the outcome. A consumer that goes away ends the scan and frees the connection.
pub async fn scan(
    mut client: deadpool_postgres::Object,
    scan: SpanScan,
    kind: ScanKind,
    tx: ScanSender,
) {
    let outcome = run_scan(&mut client, &scan, kind, &tx).await;
    drop(client);
    tx.finish(outcome);
}

async fn run_scan(
    client: &mut deadpool_postgres::Object,
    scan: &SpanScan,
    kind: ScanKind,
    out: &ScanSender,
) -> Result<Unreadable, StoreError> {
    let mut unreadable = Unreadable::default();
    let e = db("scanning spans");
    let project = crate::facts::read::project_name(&scan.project);
    let Some(pid) = find_project(&***client, &project).await? else {
        return Ok(unreadable);
    };
    let mut sql = Sql::new(
        "SELECT trace_id, span_id, chunk_id, body_codec, body FROM spans WHERE project_id = ",
    );
    let p = sql.bind(pid);
    sql.push(&p);
    sql.push(match kind {
        ScanKind::Models => " AND kind IN ('llm', 'embedding')",
        // Rows written before `for_recovery` existed (NULL) are read as they were.
        ScanKind::Recovery => {
            " AND for_recovery IS NOT FALSE AND (for_recovery OR retry_count > 0 \
             OR kind IN ('llm', 'embedding') OR provider IS NOT NULL)"
        }
    });
    sql.started_in(scan.from, scan.to);
    if let (Some(m), ScanKind::Models) = (&scan.model, kind) {
        sql.model_is(m);
    }
    sql.push(" ORDER BY trace_id, start_ns, span_id");
    let tx = snapshot(client).await?;
    let statement = tx.prepare(&sql.text).await.map_err(&e)?;
    let portal = tx.bind(&statement, &sql.args()).await.map_err(&e)?;
    let mut reader = ChunkReader::new();
    let mut batch: Vec<Span> = Vec::new();
    let mut current: Option<Vec<u8>> = None;
    loop {
        let rows = tx.query_portal(&portal, SCAN_FETCH).await.map_err(&e)?;
        let done = rows.len() < SCAN_FETCH as usize;
        // The chunks of this page's spans, read at once (a trace's spans may share one).
        let mut chunks =
            read_chunks(&*tx, rows.iter().filter_map(|r| r.get(2)), &mut reader).await?;
        for r in &rows {
            let trace: Vec<u8> = r.get(0);
            if current.as_ref().is_some_and(|c| *c != trace) {
                // A trace per batch: the consumer sees whole traces.
                out.send(std::mem::take(&mut batch)).await?;
            }
            let trace_id = TraceId::from_bytes(&trace).map_err(|x| StoreError::Corrupt {
                table: "spans",
                reason: format!("bad trace id: {x}"),
            })?;
            current = Some(trace);
            let id: Vec<u8> = r.get(1);
            let id: [u8; 8] = id.try_into().unwrap_or_default();
            match body_of(r, 2, &mut chunks, &mut reader, id) {
                Ok(Some(text)) => match serde_json::from_str::<Span>(&text) {
                    Ok(span) => batch.push(span),
                    Err(x) => unreadable.add(undecodable(trace_id, id, &x)),
                },
                Ok(None) => unreadable.add(no_body(trace_id, id, None)),
                Err(why) => unreadable.add(no_body(trace_id, id, Some(&why))),
            }
        }
        if done {
            break;
        }
    }
    out.send(batch).await?;
    tx.commit().await.map_err(&e)?;
    Ok(unreadable)
}

/// Decoded chunks by id: each span's body by span id, or why the chunk could not be read.
pub(super) type Chunks = HashMap<i64, Result<HashMap<[u8; 8], String>, String>>;

/// Reads and decodes the chunks `ids` (repeats allowed) in one statement.
pub(super) async fn read_chunks(
    client: &impl GenericClient,
    ids: impl Iterator<Item = i64>,
    reader: &mut ChunkReader,
) -> Result<Chunks, StoreError> {
    let mut ids: Vec<i64> = ids.collect();
    ids.sort_unstable();
    ids.dedup();
    let mut out = Chunks::new();
    if ids.is_empty() {
        return Ok(out);
    }
    let rows = client
        .query(
            "SELECT chunk_id, codec, body FROM trace_chunks WHERE chunk_id = ANY($1)",
            &[&ids],
        )
        .await
        .map_err(db("reading span bodies"))?;
    for r in &rows {
        let mut spans = HashMap::new();
        let codec: i16 = r.get(1);
        let read = reader.for_each(i64::from(codec), r.get(2), &mut |id, text| {
            spans.insert(id, text.to_string());
            Ok(())
        });
        out.insert(r.get(0), read.map(|()| spans).map_err(|e| e.to_string()));
    }
    Ok(out)
}

/// The body of span `id` from its row: from its chunk when column `at` (`chunk_id`) names one,
/// else from the row's own `body_codec` and `body` (rows written before chunks). `None` when
/// neither holds it; the reason when its chunk or body is damaged. A body is taken out of
/// `chunks` (each span row asks once), not copied.
pub(super) fn body_of(
    r: &Row,
    at: usize,
    chunks: &mut Chunks,
    reader: &mut ChunkReader,
    id: [u8; 8],
) -> Result<Option<String>, String> {
    if let Some(chunk) = r.get::<_, Option<i64>>(at) {
        return match chunks.get_mut(&chunk) {
            Some(Ok(spans)) => Ok(spans.remove(&id)),
            Some(Err(why)) => Err(why.clone()),
            None => Ok(None),
        };
    }
    let (Some(codec), Some(body)) = (
        r.get::<_, Option<i16>>(at + 1),
        r.get::<_, Option<&[u8]>>(at + 2),
    ) else {
        return Ok(None);
    };
    let mut text = None;
    reader
        .for_each(i64::from(codec), body, &mut |_, t| {
            text = Some(t.to_string());
            Ok(())
        })
        .map_err(|e| e.to_string())?;
    Ok(text)
}
