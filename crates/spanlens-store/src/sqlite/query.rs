//! The read side: trace list, trace detail, sessions and metrics, each on one pooled read-only
//! connection.

use super::chunk;
use super::prepare::{parse_status, status_str, to_i64};
use super::project_name;
use super::schema::facet;
use crate::cursor::{SessionCursor, SortKey, TraceCursor};
use crate::error::StoreError;
use crate::types::{
    DailyCost, GroupBy, ListQuery, MetricRow, MetricsQuery, Page, Percentiles, SessionDetail,
    SessionQuery, SessionSummary, SortField, SortOrder, SpanScan, TraceDetail, TraceDetailJson,
    TraceSummary, Unreadable, UnreadableSpan, MAX_PAGE_SIZE,
};
use rusqlite::types::Value;
use rusqlite::{params, Connection, OptionalExtension, Row};
use spanlens_core::{NanoUsd, Span, SpanId, Timestamp, TraceId};
use std::collections::HashMap;

/// Most traces returned with one session, so a runaway session cannot exhaust memory.
pub const MAX_SESSION_TRACES: usize = 10_000;

const NS_PER_DAY: i64 = 86_400_000_000_000;

fn db(op: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |e| super::sqlite_error(op, &e)
}

fn nonneg(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// A SQL text and its positional parameters, built together so numbering never drifts.
struct Sql {
    text: String,
    params: Vec<Value>,
}

impl Sql {
    fn new(text: impl Into<String>) -> Sql {
        Sql {
            text: text.into(),
            params: Vec::new(),
        }
    }

    /// Adds a parameter and returns its placeholder.
    fn bind(&mut self, v: impl Into<Value>) -> String {
        self.params.push(v.into());
        format!("?{}", self.params.len())
    }

    fn push(&mut self, s: &str) {
        self.text.push_str(s);
    }
}

fn check_limit(limit: u32) -> Result<usize, StoreError> {
    if limit == 0 || limit > MAX_PAGE_SIZE {
        return Err(StoreError::InvalidQuery(format!(
            "limit {limit} is outside 1..={MAX_PAGE_SIZE}"
        )));
    }
    Ok(limit as usize)
}

/// The id of a project, or `None` when it has never received a span.
pub(super) fn project_id(conn: &Connection, project: &str) -> Result<Option<i64>, StoreError> {
    conn.prepare_cached("SELECT id FROM projects WHERE name = ?1")
        .and_then(|mut st| st.query_row([project], |r| r.get(0)).optional())
        .map_err(db("looking up the project"))
}

const SUMMARY_COLS: &str = "trace_id, name, start_ns, end_ns, duration_ns, status, span_count, \
     error_count, input_tokens, output_tokens, total_tokens, cost_nano, user_id, session_id, tags, \
     root_span_id, service, unpriced_count";

/// Columns in `SUMMARY_COLS`, so a query may select more after them.
const SUMMARY_COL_COUNT: usize = 18;

fn corrupt(reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        table: "traces",
        reason: reason.into(),
    }
}

fn read_summary(row: &Row<'_>, project: &str) -> Result<TraceSummary, StoreError> {
    let e = db("reading a trace summary");
    let tid_bytes = row.get_ref(0).and_then(|v| Ok(v.as_blob()?)).map_err(&e)?;
    let trace_id =
        TraceId::from_bytes(tid_bytes).map_err(|err| corrupt(format!("bad trace id: {err}")))?;
    let root_span_id = match row
        .get_ref(15)
        .and_then(|v| Ok(v.as_blob_or_null()?))
        .map_err(&e)?
    {
        Some(b) => {
            Some(SpanId::from_bytes(b).map_err(|err| corrupt(format!("bad root span id: {err}")))?)
        }
        None => None,
    };
    let tags_text: String = row.get(14).map_err(&e)?;
    let tags: Vec<String> =
        serde_json::from_str(&tags_text).map_err(|err| corrupt(format!("bad tags: {err}")))?;
    let user: String = row.get(12).map_err(&e)?;
    let session: String = row.get(13).map_err(&e)?;
    let status: String = row.get(5).map_err(&e)?;
    Ok(TraceSummary {
        trace_id,
        project: project.to_string(),
        name: row.get(1).map_err(&e)?,
        start_time: Timestamp(nonneg(row.get(2).map_err(&e)?)),
        end_time: Timestamp(nonneg(row.get(3).map_err(&e)?)),
        duration_ns: nonneg(row.get(4).map_err(&e)?),
        status: parse_status(&status),
        span_count: nonneg(row.get(6).map_err(&e)?),
        error_count: nonneg(row.get(7).map_err(&e)?),
        input_tokens: nonneg(row.get(8).map_err(&e)?),
        output_tokens: nonneg(row.get(9).map_err(&e)?),
        total_tokens: nonneg(row.get(10).map_err(&e)?),
        total_cost: NanoUsd(row.get(11).map_err(&e)?),
        user_id: Some(user).filter(|u| !u.is_empty()),
        session_id: Some(session).filter(|s| !s.is_empty()),
        tags,
        root_span_id,
        service: row.get(16).map_err(&e)?,
        unpriced_span_count: nonneg(row.get(17).map_err(&e)?),
    })
}

fn sort_column(field: SortField) -> &'static str {
    match field {
        SortField::StartTime => "start_ns",
        SortField::Duration => "duration_ns",
        SortField::Cost => "cost_nano",
        SortField::Tokens => "total_tokens",
        SortField::SpanCount => "span_count",
        SortField::Name => "name",
        SortField::Status => "status",
        SortField::User => "user_id",
    }
}

/// The sort key of a row, exactly as stored, for the next page's cursor.
fn sort_key(field: SortField, s: &TraceSummary) -> SortKey {
    match field {
        SortField::StartTime => SortKey::Int(to_i64(s.start_time.0)),
        SortField::Duration => SortKey::Int(to_i64(s.duration_ns)),
        SortField::Cost => SortKey::Int(s.total_cost.0),
        SortField::Tokens => SortKey::Int(to_i64(s.total_tokens)),
        SortField::SpanCount => SortKey::Int(to_i64(s.span_count)),
        SortField::Name => SortKey::Text(s.name.clone()),
        SortField::Status => SortKey::Text(status_str(s.status).to_string()),
        SortField::User => SortKey::Text(s.user_id.clone().unwrap_or_default()),
    }
}

fn facet_filter(sql: &mut Sql, code: i64, value: &str) {
    let v = sql.bind(value.to_string());
    // A point lookup per candidate trace in the primary key (project, trace, facet, value):
    // cheap while the list walks its sort index and stops at the page size.
    sql.push(&format!(
        " AND EXISTS (SELECT 1 FROM trace_facets f WHERE f.trace_ref = traces.id \
         AND f.facet = {code} AND f.value = {v})"
    ));
}

/// One page of the trace list.
pub fn list_traces(conn: &Connection, q: &ListQuery) -> Result<Page<TraceSummary>, StoreError> {
    let limit = check_limit(q.limit)?;
    let cursor = match q.cursor.as_deref().map(str::trim) {
        Some(c) if !c.is_empty() => Some(TraceCursor::decode(c, q.sort, q.order)?),
        _ => None,
    };
    let project = project_name(&q.project);
    let Some(pid) = project_id(conn, &project)? else {
        return Ok(Page {
            items: Vec::new(),
            next_cursor: None,
        });
    };
    let f = &q.filter;
    let mut sql = Sql::new(format!(
        "SELECT {SUMMARY_COLS} FROM traces WHERE project_id = "
    ));
    let p = sql.bind(pid);
    sql.push(&p);
    let cond = |sql: &mut Sql, template: &str, v: Value| {
        let p = sql.bind(v);
        sql.push(&format!(" AND {}", template.replace('?', &p)));
    };
    if let Some(t) = f.from {
        cond(&mut sql, "start_ns >= ?", Value::Integer(to_i64(t.0)));
    }
    if let Some(t) = f.to {
        cond(&mut sql, "start_ns < ?", Value::Integer(to_i64(t.0)));
    }
    if let Some(n) = &f.name {
        cond(&mut sql, "name = ?", Value::Text(n.clone()));
    }
    if let Some(s) = f.status {
        cond(&mut sql, "status = ?", Value::Text(status_str(s).into()));
    }
    if let Some(u) = &f.user_id {
        cond(&mut sql, "user_id = ?", Value::Text(u.clone()));
    }
    if let Some(s) = &f.session_id {
        cond(&mut sql, "session_id = ?", Value::Text(s.clone()));
    }
    if let Some(d) = f.min_duration_ns {
        cond(&mut sql, "duration_ns >= ?", Value::Integer(to_i64(d)));
    }
    if let Some(d) = f.max_duration_ns {
        cond(&mut sql, "duration_ns <= ?", Value::Integer(to_i64(d)));
    }
    if let Some(c) = f.min_cost {
        cond(&mut sql, "cost_nano >= ?", Value::Integer(c.0));
    }
    if let Some(c) = f.max_cost {
        cond(&mut sql, "cost_nano <= ?", Value::Integer(c.0));
    }
    if let Some(sf) = &f.score {
        let name = sql.bind(Value::Text(sf.name.clone()));
        let mut sub = format!(
            "EXISTS (SELECT 1 FROM scores s WHERE s.project_id = traces.project_id \
             AND s.trace_id = traces.trace_id AND s.name = {name}"
        );
        if let Some(min) = sf.min {
            sub.push_str(&format!(" AND s.value >= {}", sql.bind(Value::Real(min))));
        }
        if let Some(max) = sf.max {
            sub.push_str(&format!(" AND s.value <= {}", sql.bind(Value::Real(max))));
        }
        if let Some(label) = &sf.label {
            sub.push_str(&format!(
                " AND s.label = {}",
                sql.bind(Value::Text(label.clone()))
            ));
        }
        sql.push(&format!(" AND {sub})"));
    }
    if let Some(t) = f.text.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        cond(
            &mut sql,
            "instr(search, ?) > 0",
            Value::Text(t.to_lowercase()),
        );
    }
    if let Some(k) = f.kind {
        facet_filter(&mut sql, facet::KIND, k.as_str());
    }
    if let Some(m) = &f.model {
        facet_filter(&mut sql, facet::MODEL, m);
    }
    if let Some(p) = &f.provider {
        facet_filter(&mut sql, facet::PROVIDER, p);
    }
    for t in &f.tags {
        facet_filter(&mut sql, facet::TAG, t);
    }
    let col = sort_column(q.sort);
    let (dir, op) = match q.order {
        SortOrder::Desc => ("DESC", "<"),
        SortOrder::Asc => ("ASC", ">"),
    };
    if let Some(c) = cursor {
        let numeric = matches!(
            q.sort,
            SortField::StartTime
                | SortField::Duration
                | SortField::Cost
                | SortField::Tokens
                | SortField::SpanCount
        );
        let key = match (c.key, numeric) {
            (SortKey::Int(i), true) => Value::Integer(i),
            (SortKey::Text(s), false) => Value::Text(s),
            _ => {
                return Err(StoreError::InvalidCursor(
                    "cursor key does not match the sort column".into(),
                ))
            }
        };
        let k = sql.bind(key);
        let t = sql.bind(c.trace_id.0.to_vec());
        sql.push(&format!(" AND ({col}, trace_id) {op} ({k}, {t})"));
    }
    let l = sql.bind(limit as i64 + 1);
    sql.push(&format!(" ORDER BY {col} {dir}, trace_id {dir} LIMIT {l}"));

    let mut items = Vec::with_capacity(limit + 1);
    {
        let mut st = conn
            .prepare_cached(&sql.text)
            .map_err(db("listing traces"))?;
        let mut rows = st
            .query(rusqlite::params_from_iter(sql.params.iter()))
            .map_err(db("listing traces"))?;
        while let Some(row) = rows.next().map_err(db("listing traces"))? {
            items.push(read_summary(row, &project)?);
        }
    }
    let next_cursor = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|last| {
            TraceCursor {
                sort: q.sort,
                order: q.order,
                key: sort_key(q.sort, last),
                trace_id: last.trace_id,
            }
            .encode()
        })
    } else {
        None
    };
    Ok(Page { items, next_cursor })
}

/// A trace's summary, the stored JSON of its spans in start order, and the spans whose body
/// could not be found or decompressed.
type TraceBodies = (TraceSummary, Vec<([u8; 8], String)>, Vec<UnreadableSpan>);

/// A trace's summary and its spans' stored JSON, in start order. A span whose body is missing
/// or sits in a damaged chunk is reported, not a reason to fail the whole trace.
fn read_trace(
    conn: &Connection,
    project: &str,
    trace_id: TraceId,
) -> Result<Option<TraceBodies>, StoreError> {
    let Some(pid) = project_id(conn, project)? else {
        return Ok(None);
    };
    // One read transaction, so the summary and the spans come from the same snapshot.
    let tx = conn
        .unchecked_transaction()
        .map_err(db("reading a trace"))?;
    let (summary, trace_ref) = {
        let mut st = tx
            .prepare_cached(&format!(
                "SELECT {SUMMARY_COLS}, id FROM traces WHERE project_id = ?1 AND trace_id = ?2"
            ))
            .map_err(db("reading a trace"))?;
        let mut rows = st
            .query(params![pid, &trace_id.0[..]])
            .map_err(db("reading a trace"))?;
        match rows.next().map_err(db("reading a trace"))? {
            Some(row) => (
                read_summary(row, project)?,
                row.get::<_, i64>(SUMMARY_COL_COUNT)
                    .map_err(db("reading a trace"))?,
            ),
            None => return Ok(None),
        }
    };
    // The stored count only sizes the first allocation; a damaged row must not make it huge.
    let cap = usize::try_from(summary.span_count.min(100_000)).unwrap_or(0);
    // Span order and membership come from the rows; bodies from the trace's chunks, oldest
    // first so the newest copy of a re-sent span wins.
    let mut order: Vec<[u8; 8]> = Vec::with_capacity(cap);
    {
        let mut st = tx
            .prepare_cached(
                // Pinned to the trace's index: without statistics SQLite may prefer walking the
                // project's time index to avoid the sort, which reads every span of the project.
                "SELECT span_id FROM spans INDEXED BY spans_trace \
                 WHERE trace_ref = ?1 ORDER BY start_ns, span_id",
            )
            .map_err(db("reading spans"))?;
        let mut rows = st.query([trace_ref]).map_err(db("reading spans"))?;
        while let Some(row) = rows.next().map_err(db("reading spans"))? {
            let id = row.get_ref(0).map_err(db("reading spans"))?;
            let id = id.as_blob().map_err(|e| StoreError::Corrupt {
                table: "spans",
                reason: format!("span id: {e}"),
            })?;
            order.push(id.try_into().map_err(|_| StoreError::Corrupt {
                table: "spans",
                reason: format!("span id of {} bytes", id.len()),
            })?);
        }
    }
    let mut bodies: HashMap<[u8; 8], String> = HashMap::with_capacity(cap);
    let damaged = {
        let e = db("reading span bodies");
        let mut st = tx.prepare_cached(CHUNKS_OF_TRACE).map_err(&e)?;
        read_bodies(&mut st, trace_ref, &e, &mut bodies)?
    };
    let mut spans = Vec::with_capacity(order.len());
    let mut unreadable = Vec::new();
    for id in order {
        match bodies.remove(&id) {
            Some(text) => spans.push((id, text)),
            None => unreadable.push(no_body(trace_id, id, damaged.as_deref())),
        }
    }
    tx.finish().map_err(db("reading a trace"))?;
    Ok(Some((summary, spans, unreadable)))
}

/// A span whose row exists but whose body was not found (`damaged`: why a chunk of its trace
/// could not be read, the likely cause).
fn no_body(trace_id: TraceId, id: [u8; 8], damaged: Option<&str>) -> UnreadableSpan {
    UnreadableSpan {
        span_id: Some(SpanId(id).to_hex()),
        trace_id: trace_id.to_hex(),
        reason: match damaged {
            Some(why) => format!("its body is in a damaged chunk ({why})"),
            None => "its body is missing".into(),
        },
    }
}

/// A span whose stored body does not decode.
fn undecodable(trace_id: TraceId, id: [u8; 8], e: &serde_json::Error) -> UnreadableSpan {
    UnreadableSpan {
        span_id: Some(SpanId(id).to_hex()),
        trace_id: trace_id.to_hex(),
        reason: format!("its stored body does not decode: {e}"),
    }
}

/// Spans per decoding thread below which a trace is decoded on the calling thread.
const PARALLEL_DECODE_MIN: usize = 2_000;

/// A trace with its spans decoded; large traces are decoded on several threads.
pub fn get_trace(
    conn: &Connection,
    project: &str,
    trace_id: TraceId,
) -> Result<Option<TraceDetail>, StoreError> {
    let Some((summary, bodies, mut unreadable)) = read_trace(conn, project, trace_id)? else {
        return Ok(None);
    };
    /// Each body decoded, or why it could not be.
    type Decoded = Vec<Result<Span, UnreadableSpan>>;
    let decode = |chunk: &[([u8; 8], String)]| -> Decoded {
        chunk
            .iter()
            .map(|(id, text)| {
                serde_json::from_str::<Span>(text).map_err(|e| undecodable(trace_id, *id, &e))
            })
            .collect()
    };
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(bodies.len() / PARALLEL_DECODE_MIN)
        .max(1);
    let decoded = if threads == 1 {
        decode(&bodies)
    } else {
        let per = bodies.len().div_ceil(threads);
        let parts: Vec<Result<Decoded, StoreError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = bodies
                .chunks(per)
                .map(|chunk| scope.spawn(move || decode(chunk)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().map_err(|_| {
                        StoreError::database("reading spans", "decode thread panicked")
                    })
                })
                .collect()
        });
        let mut all = Vec::with_capacity(bodies.len());
        for p in parts {
            all.extend(p?);
        }
        all
    };
    let mut spans = Vec::with_capacity(decoded.len());
    for d in decoded {
        match d {
            Ok(s) => spans.push(s),
            Err(u) => unreadable.push(u),
        }
    }
    Ok(Some(TraceDetail {
        summary,
        spans,
        unreadable,
    }))
}

/// A trace with its spans as stored JSON. Each body is checked to be well-formed JSON (a
/// server splices them into its answer as they are); one that is not is reported instead.
pub fn get_trace_json(
    conn: &Connection,
    project: &str,
    trace_id: TraceId,
) -> Result<Option<TraceDetailJson>, StoreError> {
    let Some((summary, bodies, mut unreadable)) = read_trace(conn, project, trace_id)? else {
        return Ok(None);
    };
    let mut spans = Vec::with_capacity(bodies.len());
    for (id, text) in bodies {
        // Syntax only, without building anything: ~2 GB/s, a few ms for a 10,000-span trace.
        match serde_json::from_str::<serde::de::IgnoredAny>(&text) {
            Ok(_) => spans.push(text),
            Err(e) => unreadable.push(undecodable(trace_id, id, &e)),
        }
    }
    Ok(Some(TraceDetailJson {
        summary,
        spans,
        unreadable,
    }))
}

const SESSION_COLS: &str = "session_id, max(NULLIF(user_id, '')), count(*), sat_sum(span_count), \
     sat_sum(error_count), sat_sum(input_tokens), sat_sum(output_tokens), sat_sum(total_tokens), \
     sat_sum(cost_nano), min(start_ns), max(end_ns) AS last_ns, sat_sum(unpriced_count)";

fn read_session(row: &Row<'_>) -> Result<SessionSummary, StoreError> {
    let e = db("reading a session");
    let int = |i: usize| -> Result<i64, StoreError> {
        Ok(row.get::<_, Option<i64>>(i).map_err(&e)?.unwrap_or(0))
    };
    Ok(SessionSummary {
        session_id: row.get(0).map_err(&e)?,
        user_id: row.get(1).map_err(&e)?,
        trace_count: nonneg(int(2)?),
        span_count: nonneg(int(3)?),
        error_count: nonneg(int(4)?),
        input_tokens: nonneg(int(5)?),
        output_tokens: nonneg(int(6)?),
        total_tokens: nonneg(int(7)?),
        total_cost: NanoUsd(int(8)?),
        first_time: Timestamp(nonneg(int(9)?)),
        last_time: Timestamp(nonneg(int(10)?)),
        unpriced_span_count: nonneg(int(11)?),
    })
}

/// One page of sessions, most recently active first.
pub fn list_sessions(
    conn: &Connection,
    q: &SessionQuery,
) -> Result<Page<SessionSummary>, StoreError> {
    let limit = check_limit(q.limit)?;
    let cursor = match q.cursor.as_deref().map(str::trim) {
        Some(c) if !c.is_empty() => Some(SessionCursor::decode(c)?),
        _ => None,
    };
    let project = project_name(&q.project);
    let Some(pid) = project_id(conn, &project)? else {
        return Ok(Page {
            items: Vec::new(),
            next_cursor: None,
        });
    };
    let mut sql = Sql::new(format!(
        "SELECT {SESSION_COLS} FROM traces WHERE session_id <> '' AND project_id = "
    ));
    let p = sql.bind(pid);
    sql.push(&p);
    if let Some(t) = q.from {
        let p = sql.bind(to_i64(t.0));
        sql.push(&format!(" AND start_ns >= {p}"));
    }
    if let Some(t) = q.to {
        let p = sql.bind(to_i64(t.0));
        sql.push(&format!(" AND start_ns < {p}"));
    }
    if let Some(u) = &q.user_id {
        let p = sql.bind(u.clone());
        sql.push(&format!(" AND user_id = {p}"));
    }
    sql.push(" GROUP BY session_id");
    if let Some(c) = &cursor {
        let n = sql.bind(c.last_ns);
        let s = sql.bind(c.session_id.clone());
        sql.push(&format!(
            " HAVING (last_ns < {n} OR (last_ns = {n} AND session_id < {s}))"
        ));
    }
    let l = sql.bind(limit as i64 + 1);
    sql.push(&format!(
        " ORDER BY last_ns DESC, session_id DESC LIMIT {l}"
    ));
    let mut items = Vec::with_capacity(limit + 1);
    {
        let mut st = conn
            .prepare_cached(&sql.text)
            .map_err(db("listing sessions"))?;
        let mut rows = st
            .query(rusqlite::params_from_iter(sql.params.iter()))
            .map_err(db("listing sessions"))?;
        while let Some(row) = rows.next().map_err(db("listing sessions"))? {
            items.push(read_session(row)?);
        }
    }
    let next_cursor = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|s| {
            SessionCursor {
                last_ns: to_i64(s.last_time.0),
                session_id: s.session_id.clone(),
            }
            .encode()
        })
    } else {
        None
    };
    Ok(Page { items, next_cursor })
}

/// A session's rollup and its traces (oldest first, at most `MAX_SESSION_TRACES`).
pub fn get_session(
    conn: &Connection,
    project: &str,
    session_id: &str,
) -> Result<Option<SessionDetail>, StoreError> {
    if session_id.is_empty() {
        return Ok(None);
    }
    let Some(pid) = project_id(conn, project)? else {
        return Ok(None);
    };
    let tx = conn
        .unchecked_transaction()
        .map_err(db("reading a session"))?;
    let session = {
        let mut st = tx
            .prepare_cached(&format!(
                "SELECT {SESSION_COLS} FROM traces WHERE project_id = ?1 AND session_id = ?2 \
                 GROUP BY session_id"
            ))
            .map_err(db("reading a session"))?;
        let mut rows = st
            .query(params![pid, session_id])
            .map_err(db("reading a session"))?;
        match rows.next().map_err(db("reading a session"))? {
            Some(row) => read_session(row)?,
            None => return Ok(None),
        }
    };
    let mut traces = Vec::new();
    {
        let mut st = tx
            .prepare_cached(&format!(
                "SELECT {SUMMARY_COLS} FROM traces WHERE project_id = ?1 AND session_id = ?2 \
                 ORDER BY start_ns, trace_id LIMIT ?3"
            ))
            .map_err(db("reading a session"))?;
        let mut rows = st
            .query(params![pid, session_id, MAX_SESSION_TRACES as i64])
            .map_err(db("reading a session"))?;
        while let Some(row) = rows.next().map_err(db("reading a session"))? {
            traces.push(read_summary(row, project)?);
        }
    }
    tx.finish().map_err(db("reading a session"))?;
    Ok(Some(SessionDetail { session, traces }))
}

/// Running totals of one metric group.
#[derive(Default)]
struct Acc {
    span_count: u64,
    error_count: u64,
    retry_count: u64,
    tokens: [u64; 6],
    cost: i64,
    durations: Vec<u64>,
    ttfts: Vec<u64>,
}

impl Acc {
    fn add(&mut self, row: &Row<'_>) -> rusqlite::Result<()> {
        self.span_count += 1;
        if row.get_ref(1)?.as_str()? == "error" {
            self.error_count += 1;
        }
        if let Some(d) = row.get_ref(2)?.as_i64_or_null()? {
            self.durations.push(nonneg(d));
        }
        if let Some(t) = row.get_ref(3)?.as_i64_or_null()? {
            self.ttfts.push(nonneg(t));
        }
        for (i, slot) in self.tokens.iter_mut().enumerate() {
            *slot = slot.saturating_add(nonneg(row.get_ref(4 + i)?.as_i64()?));
        }
        if let Some(c) = row.get_ref(10)?.as_i64_or_null()? {
            self.cost = self.cost.saturating_add(c);
        }
        self.retry_count = self
            .retry_count
            .saturating_add(nonneg(row.get_ref(11)?.as_i64()?));
        Ok(())
    }

    fn merge(&mut self, other: Acc) {
        self.span_count += other.span_count;
        self.error_count += other.error_count;
        self.retry_count = self.retry_count.saturating_add(other.retry_count);
        for (a, b) in self.tokens.iter_mut().zip(other.tokens) {
            *a = a.saturating_add(b);
        }
        self.cost = self.cost.saturating_add(other.cost);
        self.durations.extend(other.durations);
        self.ttfts.extend(other.ttfts);
    }

    fn into_row(mut self, key: Option<String>) -> MetricRow {
        MetricRow {
            key,
            span_count: self.span_count,
            error_count: self.error_count,
            retry_count: self.retry_count,
            input_tokens: self.tokens[0],
            output_tokens: self.tokens[1],
            cache_read_tokens: self.tokens[2],
            cache_write_tokens: self.tokens[3],
            reasoning_tokens: self.tokens[4],
            total_tokens: self.tokens[5],
            cost: NanoUsd(self.cost),
            latency: Percentiles::of(&mut self.durations),
            ttft: Percentiles::of(&mut self.ttfts),
        }
    }
}

/// Groups of a metrics scan: by text key, by day number, and the group of spans without a key.
#[derive(Default)]
struct Groups {
    text: HashMap<String, Acc>,
    days: HashMap<i64, Acc>,
    none: Option<Acc>,
}

fn day_label(day: i64) -> String {
    let ns = u64::try_from(day.saturating_mul(NS_PER_DAY)).unwrap_or(0);
    let s = Timestamp(ns).to_rfc3339();
    s.get(..10).unwrap_or(&s).to_string()
}

/// How a metrics scan is split between connections.
enum Part {
    /// A slice of the project's time index: `start_ns` in `[from, to)`.
    Time(i64, i64),
    /// A slice of the table in rowid order (no time bound: a plain scan beats index lookups).
    Rows(i64, i64),
}

/// Span metrics grouped as asked; sums and percentiles are computed here, exactly, from the
/// grouped values (SQLite has no percentile function). The scan is split across the given
/// connections, one thread each, and the partial groups are merged.
pub fn metrics<C>(conns: Vec<C>, q: &MetricsQuery) -> Result<Vec<MetricRow>, StoreError>
where
    C: std::ops::Deref<Target = Connection> + Send,
{
    let Some(first) = conns.first() else {
        return Ok(Vec::new());
    };
    let project = project_name(&q.project);
    let Some(pid) = project_id(first, &project)? else {
        return Ok(Vec::new());
    };
    if q.group_by == GroupBy::Tool && q.kind.is_some_and(|k| k.as_str() != "tool") {
        return Ok(Vec::new());
    }
    let key_col = match q.group_by {
        GroupBy::All => "NULL",
        GroupBy::Model => "model",
        GroupBy::Provider => "provider",
        GroupBy::Agent => "agent_name",
        GroupBy::User => "user_id",
        GroupBy::Day => "start_ns",
        GroupBy::Kind => "kind",
        GroupBy::Tool => "tool_name",
    };
    let parts = plan_parts(first, pid, q, conns.len())?;
    let kind = metrics_kind(q);
    let build = |part: &Part| -> Sql {
        let mut sql = Sql::new(format!(
            "SELECT {key_col}, status, duration_ns, ttft_ns, input_tokens, output_tokens, \
             cache_read_tokens, cache_write_tokens, reasoning_tokens, total_tokens, cost_nano, \
             retry_count FROM spans "
        ));
        let p = sql.bind(pid);
        match part {
            Part::Time(from, to) => {
                let f = sql.bind(*from);
                let t = sql.bind(*to);
                sql.push(&format!(
                    "INDEXED BY spans_time WHERE project_id = {p} AND start_ns >= {f} AND start_ns < {t}"
                ));
            }
            Part::Rows(lo, hi) => {
                let l = sql.bind(*lo);
                let h = sql.bind(*hi);
                sql.push(&format!(
                    "NOT INDEXED WHERE id >= {l} AND id < {h} AND project_id = {p}"
                ));
            }
        }
        push_span_filters(&mut sql, kind, q);
        sql
    };
    let is_day = q.group_by == GroupBy::Day;
    let mut groups = if parts.len() <= 1 {
        let mut g = Groups::default();
        for part in &parts {
            scan_into(first, &build(part), is_day, &mut g)?;
        }
        g
    } else {
        let results: Vec<Result<Groups, StoreError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = conns
                .into_iter()
                .zip(parts.iter())
                .map(|(conn, part)| {
                    let sql = build(part);
                    scope.spawn(move || {
                        let mut g = Groups::default();
                        scan_into(&conn, &sql, is_day, &mut g).map(|()| g)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(StoreError::database(
                            "computing metrics",
                            "scan thread panicked",
                        ))
                    })
                })
                .collect()
        });
        let mut merged = Groups::default();
        for r in results {
            merge_groups(&mut merged, r?);
        }
        merged
    };

    let mut out: Vec<MetricRow> = Vec::new();
    if is_day {
        let mut days: Vec<_> = groups.days.drain().collect();
        days.sort_by_key(|(d, _)| *d);
        out.extend(
            days.into_iter()
                .map(|(d, acc)| acc.into_row(Some(day_label(d)))),
        );
    } else {
        out.extend(groups.text.drain().map(|(k, acc)| acc.into_row(Some(k))));
        if let Some(acc) = groups.none.take() {
            out.push(acc.into_row(None));
        }
        out.sort_by(|a, b| {
            b.cost
                .cmp(&a.cost)
                .then(b.span_count.cmp(&a.span_count))
                .then_with(|| match (&a.key, &b.key) {
                    (Some(x), Some(y)) => x.cmp(y),
                    (Some(_), None) => std::cmp::Ordering::Less,
                    (None, Some(_)) => std::cmp::Ordering::Greater,
                    (None, None) => std::cmp::Ordering::Equal,
                })
        });
    }
    Ok(out)
}

/// Splits a metrics scan into at most `n` parts of similar size.
fn plan_parts(
    conn: &Connection,
    pid: i64,
    q: &MetricsQuery,
    n: usize,
) -> Result<Vec<Part>, StoreError> {
    let n = n.max(1) as i64;
    let split = |lo: i64, hi: i64, make: fn(i64, i64) -> Part| -> Vec<Part> {
        if hi <= lo {
            return Vec::new();
        }
        let step = ((hi - lo) / n).max(1);
        let mut out = Vec::new();
        let mut a = lo;
        while a < hi {
            let b = if out.len() as i64 == n - 1 {
                hi
            } else {
                a.saturating_add(step).min(hi)
            };
            out.push(make(a, b));
            a = b;
        }
        out
    };
    if q.from.is_none() && q.to.is_none() {
        let (lo, hi): (Option<i64>, Option<i64>) = conn
            .query_row("SELECT min(id), max(id) FROM spans", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .map_err(db("computing metrics"))?;
        return Ok(match (lo, hi) {
            (Some(lo), Some(hi)) => split(lo, hi.saturating_add(1), Part::Rows),
            _ => Vec::new(),
        });
    }
    // Clamp the asked range to the project's data so the parts carry similar amounts of it.
    // Two queries: SQLite answers a lone min() or max() from the index edge, but not both at once.
    let edge = |sql: &str| -> Result<Option<i64>, StoreError> {
        conn.query_row(sql, [pid], |r| r.get(0))
            .map_err(db("computing metrics"))
    };
    let lo = edge("SELECT min(start_ns) FROM spans INDEXED BY spans_time WHERE project_id = ?1")?;
    let hi = edge("SELECT max(start_ns) FROM spans INDEXED BY spans_time WHERE project_id = ?1")?;
    let (Some(lo), Some(hi)) = (lo, hi) else {
        return Ok(Vec::new());
    };
    let from = q.from.map_or(lo, |t| to_i64(t.0).max(lo));
    let to = q.to.map_or(hi.saturating_add(1), |t| {
        to_i64(t.0).min(hi.saturating_add(1))
    });
    Ok(split(from, to, Part::Time))
}

fn scan_into(
    conn: &Connection,
    sql: &Sql,
    is_day: bool,
    groups: &mut Groups,
) -> Result<(), StoreError> {
    let mut run = || -> rusqlite::Result<()> {
        let mut st = conn.prepare_cached(&sql.text)?;
        let mut rows = st.query(rusqlite::params_from_iter(sql.params.iter()))?;
        while let Some(row) = rows.next()? {
            let key = row.get_ref(0)?;
            let acc = if is_day {
                let day = key.as_i64()?.div_euclid(NS_PER_DAY);
                groups.days.entry(day).or_default()
            } else {
                match key.as_str_or_null()? {
                    None => groups.none.get_or_insert_with(Acc::default),
                    Some(k) => {
                        if !groups.text.contains_key(k) {
                            groups.text.insert(k.to_string(), Acc::default());
                        }
                        match groups.text.get_mut(k) {
                            Some(a) => a,
                            None => continue,
                        }
                    }
                }
            };
            acc.add(row)?;
        }
        Ok(())
    };
    run().map_err(db("computing metrics"))
}

/// Spans stored for a project.
pub fn count_spans(conn: &Connection, project: &str) -> Result<u64, StoreError> {
    let n: Option<i64> = conn
        .prepare_cached("SELECT span_count FROM projects WHERE name = ?1")
        .and_then(|mut st| st.query_row([project], |r| r.get(0)).optional())
        .map_err(db("counting spans"))?;
    Ok(n.map(nonneg).unwrap_or(0))
}

/// Every project, sorted by name.
pub fn projects(conn: &Connection) -> Result<Vec<String>, StoreError> {
    let mut st = conn
        .prepare_cached("SELECT name FROM projects ORDER BY name")
        .map_err(db("listing projects"))?;
    let rows = st
        .query_map([], |r| r.get(0))
        .map_err(db("listing projects"))?;
    rows.collect::<rusqlite::Result<Vec<String>>>()
        .map_err(db("listing projects"))
}

/// The span kind a metrics query reads: tool spans for the per-tool grouping, else its filter.
fn metrics_kind(q: &MetricsQuery) -> Option<&'static str> {
    if q.group_by == GroupBy::Tool {
        Some("tool")
    } else {
        q.kind.map(|k| k.as_str())
    }
}

/// The kind, model and provider conditions of a metrics query, appended to its `WHERE`.
fn push_span_filters(sql: &mut Sql, kind: Option<&str>, q: &MetricsQuery) {
    if let Some(k) = kind {
        let p = sql.bind(k.to_string());
        sql.push(&format!(" AND kind = {p}"));
    }
    if let Some(m) = &q.model {
        let p = sql.bind(m.clone());
        sql.push(&format!(
            " AND (request_model = {p} OR response_model = {p})"
        ));
    }
    if let Some(pr) = &q.provider {
        let p = sql.bind(pr.clone());
        sql.push(&format!(" AND provider = {p}"));
    }
}

fn merge_groups(into: &mut Groups, from: Groups) {
    for (k, v) in from.text {
        into.text.entry(k).or_default().merge(v);
    }
    for (k, v) in from.days {
        into.days.entry(k).or_default().merge(v);
    }
    if let Some(n) = from.none {
        into.none.get_or_insert_with(Acc::default).merge(n);
    }
}

/// Cost per group and UTC day: one grouped scan of the project's time index.
pub fn daily_cost(conn: &Connection, q: &MetricsQuery) -> Result<Vec<DailyCost>, StoreError> {
    let project = project_name(&q.project);
    let Some(pid) = project_id(conn, &project)? else {
        return Ok(Vec::new());
    };
    let key_col = match q.group_by {
        GroupBy::All | GroupBy::Day => "NULL",
        GroupBy::Model => "model",
        GroupBy::Provider => "provider",
        GroupBy::Agent => "agent_name",
        GroupBy::User => "user_id",
        GroupBy::Kind => "kind",
        GroupBy::Tool => "tool_name",
    };
    let mut sql = Sql::new(format!(
        "SELECT {key_col}, start_ns / {NS_PER_DAY}, sat_sum(cost_nano) FROM spans INDEXED BY spans_time "
    ));
    let p = sql.bind(pid);
    sql.push(&format!(
        "WHERE project_id = {p} AND start_ns >= 0 AND cost_nano IS NOT NULL"
    ));
    if let Some(f) = q.from {
        let f = sql.bind(to_i64(f.0));
        sql.push(&format!(" AND start_ns >= {f}"));
    }
    if let Some(t) = q.to {
        let t = sql.bind(to_i64(t.0));
        sql.push(&format!(" AND start_ns < {t}"));
    }
    push_span_filters(&mut sql, metrics_kind(q), q);
    sql.push(" GROUP BY 1, 2 ORDER BY 1, 2");
    let mut st = conn
        .prepare(&sql.text)
        .map_err(db("computing daily cost"))?;
    let rows = st
        .query_map(rusqlite::params_from_iter(sql.params.iter()), |r| {
            Ok(DailyCost {
                key: r.get(0)?,
                day: r.get(1)?,
                cost: NanoUsd(r.get(2)?),
            })
        })
        .map_err(db("computing daily cost"))?;
    rows.collect::<rusqlite::Result<Vec<_>>>()
        .map_err(db("computing daily cost"))
}

/// `SELECT trace_ref, trace_id, span_id{extra} FROM spans … WHERE {condition}` over the spans of
/// the scan's project that started in its range, walking the time index; `None` when the
/// project does not exist.
fn span_scan_sql(
    conn: &Connection,
    scan: &SpanScan,
    extra: &str,
    condition: &str,
) -> Result<Option<Sql>, StoreError> {
    let Some(pid) = project_id(conn, &project_name(&scan.project))? else {
        return Ok(None);
    };
    let mut sql = Sql::new(format!(
        "SELECT trace_ref, trace_id, span_id{extra} FROM spans INDEXED BY spans_time "
    ));
    let p = sql.bind(pid);
    sql.push(&format!("WHERE project_id = {p} AND ({condition})"));
    if let Some(f) = scan.from {
        let f = sql.bind(to_i64(f.0));
        sql.push(&format!(" AND start_ns >= {f}"));
    }
    if let Some(t) = scan.to {
        let t = sql.bind(to_i64(t.0));
        sql.push(&format!(" AND start_ns < {t}"));
    }
    Ok(Some(sql))
}

/// A trace as the scans group spans by: its row id (which keys its chunks) and its id.
type TraceKey = (i64, [u8; 16]);

/// What [`read_keys`] calls with each row's (trace row id, trace id), span id and the row.
type KeyRowFn<'a> = dyn FnMut(TraceKey, [u8; 8], &Row<'_>) -> rusqlite::Result<()> + 'a;

/// Runs `sql`, whose first three columns are a span's trace row id, trace id and span id, and
/// hands each row's keys and the row to `row_fn`. Keys are read first (they are small) so a
/// visitor may write while the bodies are read.
fn read_keys(
    conn: &Connection,
    sql: &Sql,
    e: &dyn Fn(rusqlite::Error) -> StoreError,
    row_fn: &mut KeyRowFn<'_>,
) -> Result<(), StoreError> {
    let mut st = conn.prepare(&sql.text).map_err(e)?;
    let mut rows = st
        .query(rusqlite::params_from_iter(sql.params.iter()))
        .map_err(e)?;
    while let Some(row) = rows.next().map_err(e)? {
        let trace_ref: i64 = row.get(0).map_err(e)?;
        let t = row
            .get_ref(1)
            .map_err(e)?
            .as_blob()
            .map_err(|x| corrupt(x.to_string()))?;
        let s = row
            .get_ref(2)
            .map_err(e)?
            .as_blob()
            .map_err(|x| corrupt(x.to_string()))?;
        let (Ok(t), Ok(s)) = (<[u8; 16]>::try_from(t), <[u8; 8]>::try_from(s)) else {
            return Err(corrupt("span key of the wrong length"));
        };
        row_fn((trace_ref, t), s, row).map_err(e)?;
    }
    Ok(())
}

const CHUNKS_OF_TRACE: &str =
    "SELECT codec, body FROM trace_chunks WHERE trace_ref = ?1 ORDER BY id";

/// Decodes every chunk of one trace into `bodies` (the newest copy of a re-sent span wins).
/// A chunk that does not decode is skipped, and why is returned: the spans it held are then
/// reported as unreadable by the caller instead of failing the whole read.
fn read_bodies(
    st: &mut rusqlite::CachedStatement<'_>,
    trace_ref: i64,
    e: &dyn Fn(rusqlite::Error) -> StoreError,
    bodies: &mut HashMap<[u8; 8], String>,
) -> Result<Option<String>, StoreError> {
    let mut damaged = None;
    for_each_chunk(st, trace_ref, e, &mut |codec, body| {
        if let Err(why) = chunk::decode_into(codec, body, bodies) {
            damaged = Some(why.to_string());
        }
        Ok(())
    })?;
    Ok(damaged)
}

/// What [`for_each_chunk`] calls with each chunk's codec and stored bytes.
type ChunkFn<'a> = dyn FnMut(i64, &[u8]) -> Result<(), StoreError> + 'a;

/// Calls `f` with the codec and stored bytes of each chunk of one trace, oldest first.
fn for_each_chunk(
    st: &mut rusqlite::CachedStatement<'_>,
    trace_ref: i64,
    e: &dyn Fn(rusqlite::Error) -> StoreError,
    f: &mut ChunkFn<'_>,
) -> Result<(), StoreError> {
    let mut rows = st.query([trace_ref]).map_err(e)?;
    while let Some(row) = rows.next().map_err(e)? {
        let codec: i64 = row.get(0).map_err(e)?;
        let body = row.get_ref(1).map_err(e)?;
        let body = body.as_blob().map_err(|x| StoreError::Corrupt {
            table: "trace_chunks",
            reason: format!("chunk body: {x}"),
        })?;
        f(codec, body)?;
    }
    Ok(())
}

/// Visits the selected LLM and embedding spans trace by trace: their keys come from the rows,
/// their bodies from the trace's chunks (the newest copy of a re-sent span wins).
pub fn scan_model_spans(
    conn: &Connection,
    scan: &SpanScan,
    visit: &mut dyn FnMut(Vec<Span>) -> Result<(), StoreError>,
) -> Result<Unreadable, StoreError> {
    let mut unreadable = Unreadable::default();
    let Some(mut sql) = span_scan_sql(conn, scan, "", "kind IN ('llm', 'embedding')")? else {
        return Ok(unreadable);
    };
    if let Some(m) = &scan.model {
        let p = sql.bind(m.clone());
        sql.push(&format!(
            " AND (request_model = {p} OR response_model = {p})"
        ));
    }
    let e = db("scanning model spans");
    let mut by_trace: std::collections::BTreeMap<TraceKey, Vec<[u8; 8]>> = Default::default();
    read_keys(conn, &sql, &e, &mut |key, s, _| {
        by_trace.entry(key).or_default().push(s);
        Ok(())
    })?;
    let mut st = conn.prepare_cached(CHUNKS_OF_TRACE).map_err(&e)?;
    for ((trace_ref, tid), ids) in by_trace {
        let mut bodies: HashMap<[u8; 8], String> = HashMap::new();
        let damaged = read_bodies(&mut st, trace_ref, &e, &mut bodies)?;
        let mut spans = Vec::with_capacity(ids.len());
        for id in ids {
            let Some(text) = bodies.remove(&id) else {
                unreadable.add(no_body(TraceId(tid), id, damaged.as_deref()));
                continue;
            };
            match serde_json::from_str::<Span>(&text) {
                Ok(span) => spans.push(span),
                Err(x) => unreadable.add(undecodable(TraceId(tid), id, &x)),
            }
        }
        visit(spans)?;
    }
    Ok(unreadable)
}

/// The fields of a stored span that rate-limit headroom needs; the rest of the body is skipped
/// by the parser without being built.
#[derive(serde::Deserialize)]
struct RateLimitView {
    start_time: Timestamp,
    #[serde(default)]
    end_time: Option<Timestamp>,
    #[serde(default)]
    provider: Option<String>,
    #[serde(default)]
    rate_limits: Option<spanlens_core::RateLimits>,
}

/// Spans handed to the visitor at once (a few traces' worth), so its cost per call is amortised.
const RECOVERY_BATCH: usize = 512;

/// Visits what the error-recovery report reads of the spans that started in the scan's range:
/// every span with retries (`retry_count > 0`), whole; and every model call (LLM or embedding
/// span, or any span naming a provider) whose body carries rate limits, with only its ids,
/// times, provider and rate limits set. Other spans are never decoded.
///
/// Keys come from the span rows (the `retry_count`, `kind` and `provider` columns), bodies
/// from each selected trace's chunks, so the cost follows the spans selected, not the range.
pub fn scan_recovery_spans(
    conn: &Connection,
    scan: &SpanScan,
    visit: &mut dyn FnMut(Vec<Span>) -> Result<(), StoreError>,
) -> Result<Unreadable, StoreError> {
    let mut unreadable = Unreadable::default();
    let Some(sql) = span_scan_sql(
        conn,
        scan,
        ", retry_count > 0",
        "retry_count > 0 OR kind IN ('llm', 'embedding') OR provider IS NOT NULL",
    )?
    else {
        return Ok(unreadable);
    };
    let e = db("scanning spans for the recovery report");
    let mut by_trace: std::collections::BTreeMap<TraceKey, Vec<([u8; 8], bool)>> =
        Default::default();
    read_keys(conn, &sql, &e, &mut |key, s, row| {
        let retried: bool = row.get(3)?;
        by_trace.entry(key).or_default().push((s, retried));
        Ok(())
    })?;
    let mut st = conn.prepare_cached(CHUNKS_OF_TRACE).map_err(&e)?;
    let mut reader = chunk::ChunkReader::new();
    let mut batch: Vec<Span> = Vec::new();
    // Per selected span of the trace: retried or not, and what its newest body gave (a span,
    // or why its body does not decode).
    type Slot = Option<Result<Option<Span>, UnreadableSpan>>;
    let mut wanted: HashMap<[u8; 8], (bool, Slot)> = HashMap::new();
    for ((trace_ref, tid), keys) in by_trace {
        wanted.clear();
        wanted.extend(keys.iter().map(|(id, retried)| (*id, (*retried, None))));
        let trace = TraceId(tid);
        let mut damaged = None;
        // Chunks come oldest first: a later copy of a span replaces the earlier one.
        for_each_chunk(&mut st, trace_ref, &e, &mut |codec, body| {
            let read = reader.for_each(codec, body, &mut |id, text| {
                let Some((retried, slot)) = wanted.get_mut(&id) else {
                    return Ok(());
                };
                let bad = |x: serde_json::Error| undecodable(trace, id, &x);
                *slot = Some(if *retried {
                    serde_json::from_str::<Span>(text).map(Some).map_err(bad)
                } else if text.contains("\"rate_limits\"") {
                    serde_json::from_str::<RateLimitView>(text)
                        .map(|v| {
                            v.rate_limits.map(|rl| Span {
                                trace_id: trace,
                                span_id: SpanId(id),
                                start_time: v.start_time,
                                end_time: v.end_time,
                                provider: v.provider,
                                rate_limits: Some(rl),
                                ..Default::default()
                            })
                        })
                        .map_err(bad)
                } else {
                    Ok(None)
                });
                Ok(())
            });
            if let Err(why) = read {
                damaged = Some(why.to_string());
            }
            Ok(())
        })?;
        // In row order, so the report's sums do not depend on hashing.
        for (id, _) in keys {
            match wanted.remove(&id).and_then(|(_, slot)| slot) {
                Some(Ok(span)) => batch.extend(span),
                Some(Err(u)) => unreadable.add(u),
                None => unreadable.add(no_body(trace, id, damaged.as_deref())),
            }
        }
        if batch.len() >= RECOVERY_BATCH {
            visit(std::mem::take(&mut batch))?;
        }
    }
    if !batch.is_empty() {
        visit(batch)?;
    }
    Ok(unreadable)
}
