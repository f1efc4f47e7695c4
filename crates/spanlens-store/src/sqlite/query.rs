//! The read side: trace list, trace detail, sessions and the span scans, each on one pooled
//! read-only connection (metrics are in `rollups.rs`).

use super::chunk;
use super::prepare::{status_str, to_i64};
use super::project_name;
use super::schema::facet;
use crate::cursor::{SessionCursor, SortKey, TraceCursor};
use crate::error::StoreError;
use crate::facts::read::{
    check_limit, no_body, session_page, sort_column, sort_is_numeric, sort_sessions, trace_page,
    undecodable, Bodies, StoredSummary, StoredTrace,
};
use crate::facts::summary::{prompt_version_key, SummaryNumbers};
use crate::types::{
    ListQuery, Page, SessionDetail, SessionQuery, SessionSummary, SortOrder, SpanRow, SpanScan,
    TraceDetail, TraceDetailJson, TraceFilter, TraceOutcomes, TraceRows, TraceSummary, Unreadable,
    UnreadableSpan,
};
use rusqlite::types::Value;
use rusqlite::{params, Connection, OptionalExtension, Row};
use spanlens_core::{NanoUsd, Span, SpanId, SpanKind, Status, Timestamp, TraceId};
use std::collections::HashMap;

/// Most traces returned with one session, so a runaway session cannot exhaust memory.
pub const MAX_SESSION_TRACES: usize = 10_000;

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

/// The id of a project, or `None` when it has never received a span.
pub(super) fn project_id(conn: &Connection, project: &str) -> Result<Option<i64>, StoreError> {
    conn.prepare_cached("SELECT id FROM projects WHERE name = ?1")
        .and_then(|mut st| st.query_row([project], |r| r.get(0)).optional())
        .map_err(db("looking up the project"))
}

const SUMMARY_COLS: &str = "trace_id, name, status, start_ns, end_ns, duration_ns, span_count, \
     error_count, input_tokens, output_tokens, total_tokens, cost_nano, unpriced_count, user_id, \
     session_id, tags, root_span_id, service";

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
    let tags_text: String = row.get(15).map_err(&e)?;
    let tags: Vec<String> =
        serde_json::from_str(&tags_text).map_err(|err| corrupt(format!("bad tags: {err}")))?;
    let mut numbers = [0i64; 10];
    for (k, v) in numbers.iter_mut().enumerate() {
        *v = row.get(3 + k).map_err(&e)?;
    }
    StoredSummary {
        trace_id: row.get(0).map_err(&e)?,
        name: row.get(1).map_err(&e)?,
        status: row.get(2).map_err(&e)?,
        numbers: SummaryNumbers::from_order(numbers),
        user_id: row.get(13).map_err(&e)?,
        session_id: row.get(14).map_err(&e)?,
        tags,
        root_span_id: row.get(16).map_err(&e)?,
        service: row.get(17).map_err(&e)?,
    }
    .into_summary(project, "traces")
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

/// Appends `project_id = pid` and the filter's conditions to a `WHERE` clause. Without
/// `with_outcome` the status and recovered conditions are left out (for the outcome counts).
fn filter_conditions(
    sql: &mut Sql,
    pid: i64,
    f: &TraceFilter,
    with_outcome: bool,
    search: Option<(&str, super::search::Plan)>,
) -> Result<(), StoreError> {
    let p = sql.bind(pid);
    sql.push(&p);
    let cond = |sql: &mut Sql, template: &str, v: Value| {
        let p = sql.bind(v);
        sql.push(&format!(" AND {}", template.replace('?', &p)));
    };
    if let Some(t) = f.from {
        cond(sql, "start_ns >= ?", Value::Integer(to_i64(t.0)));
    }
    if let Some(t) = f.to {
        cond(sql, "start_ns < ?", Value::Integer(to_i64(t.0)));
    }
    if let Some(n) = &f.name {
        cond(sql, "name = ?", Value::Text(n.clone()));
    }
    if let (Some(s), true) = (f.status, with_outcome) {
        cond(sql, "status = ?", Value::Text(status_str(s).into()));
    }
    if f.recovered && with_outcome {
        sql.push(" AND status <> 'error' AND error_count > 0");
    }
    if let Some(u) = &f.user_id {
        cond(sql, "user_id = ?", Value::Text(u.clone()));
    }
    if let Some(s) = &f.session_id {
        cond(sql, "session_id = ?", Value::Text(s.clone()));
    }
    if let Some(d) = f.min_duration_ns {
        cond(sql, "duration_ns >= ?", Value::Integer(to_i64(d)));
    }
    if let Some(d) = f.max_duration_ns {
        cond(sql, "duration_ns <= ?", Value::Integer(to_i64(d)));
    }
    if let Some(c) = f.min_cost {
        cond(sql, "cost_nano >= ?", Value::Integer(c.0));
    }
    if let Some(c) = f.max_cost {
        cond(sql, "cost_nano <= ?", Value::Integer(c.0));
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
        cond(sql, "instr(search, ?) > 0", Value::Text(t.to_lowercase()));
    }
    if let Some(k) = f.kind {
        facet_filter(sql, facet::KIND, k.as_str());
    }
    if let Some(m) = &f.model {
        facet_filter(sql, facet::MODEL, m);
    }
    if let Some(p) = &f.provider {
        facet_filter(sql, facet::PROVIDER, p);
    }
    for t in &f.tags {
        facet_filter(sql, facet::TAG, t);
    }
    match (&f.prompt, &f.prompt_version) {
        (Some(n), Some(v)) => facet_filter(sql, facet::PROMPT_VERSION, &prompt_version_key(n, v)),
        (Some(n), None) => facet_filter(sql, facet::PROMPT, n),
        _ => {}
    }
    if f.has_prompt {
        sql.push(&format!(
            " AND EXISTS (SELECT 1 FROM trace_facets f WHERE f.trace_ref = traces.id \
             AND f.facet = {})",
            facet::PROMPT
        ));
    }
    if let Some((expr, plan)) = search {
        let m = sql.bind(Value::Text(expr.to_string()));
        sql.push(&format!(
            " AND {}",
            super::search::traces_matching(&m, plan)
        ));
    }
    Ok(())
}

/// The FTS5 query of the filter's full-text condition, if it has one.
fn search_expr(f: &TraceFilter) -> Result<Option<String>, StoreError> {
    Ok(crate::domain::content::filter_words(f)?.map(|w| super::search::match_expr(&w)))
}

/// How the traces matching a query's filters ended (see [`Store::trace_outcomes`]).
///
/// [`Store::trace_outcomes`]: crate::Store::trace_outcomes
pub fn trace_outcomes(conn: &Connection, q: &ListQuery) -> Result<TraceOutcomes, StoreError> {
    let project = project_name(&q.project);
    let Some(pid) = project_id(conn, &project)? else {
        return Ok(TraceOutcomes::default());
    };
    let mut sql = Sql::new(
        "SELECT count(*), coalesce(sum(status = 'error'), 0), \
         coalesce(sum(status <> 'error' AND error_count > 0), 0) FROM traces WHERE project_id = ",
    );
    // Counting reads every match: the traces of every hit, collected once.
    let expr = search_expr(&q.filter)?;
    let search = expr.as_deref().map(|e| (e, super::search::Plan::Collect));
    filter_conditions(&mut sql, pid, &q.filter, false, search)?;
    let e = db("counting trace outcomes");
    let mut st = conn.prepare_cached(&sql.text).map_err(&e)?;
    let (traces, failed, recovered): (i64, i64, i64) = st
        .query_row(rusqlite::params_from_iter(sql.params.iter()), |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .map_err(&e)?;
    Ok(TraceOutcomes {
        traces: nonneg(traces),
        failed: nonneg(failed),
        recovered: nonneg(recovered),
    })
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
    let mut sql = Sql::new(format!(
        "SELECT {SUMMARY_COLS} FROM traces WHERE project_id = "
    ));
    let expr = search_expr(&q.filter)?;
    let search = match expr.as_deref() {
        Some(e) => Some((
            e,
            super::search::plan(conn, e).map_err(db("planning a full-text search"))?,
        )),
        None => None,
    };
    filter_conditions(&mut sql, pid, &q.filter, true, search)?;
    let col = sort_column(q.sort);
    let (dir, op) = match q.order {
        SortOrder::Desc => ("DESC", "<"),
        SortOrder::Asc => ("ASC", ">"),
    };
    if let Some(c) = cursor {
        let key = match (c.key, sort_is_numeric(q.sort)) {
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
    Ok(trace_page(items, limit, q))
}

/// A trace's summary and its row id.
fn trace_head(
    conn: &Connection,
    pid: i64,
    project: &str,
    trace_id: TraceId,
) -> Result<Option<(TraceSummary, i64)>, StoreError> {
    let mut st = conn
        .prepare_cached(&format!(
            "SELECT {SUMMARY_COLS}, id FROM traces WHERE project_id = ?1 AND trace_id = ?2"
        ))
        .map_err(db("reading a trace"))?;
    let mut rows = st
        .query(params![pid, &trace_id.0[..]])
        .map_err(db("reading a trace"))?;
    match rows.next().map_err(db("reading a trace"))? {
        Some(row) => Ok(Some((
            read_summary(row, project)?,
            row.get::<_, i64>(SUMMARY_COL_COUNT)
                .map_err(db("reading a trace"))?,
        ))),
        None => Ok(None),
    }
}

/// The typed columns [`get_trace_rows`] reads, in [`span_row`]'s order.
const SPAN_ROW_COLS: &str = "span_id, parent_span_id, name, kind, status, start_ns, end_ns, \
     error_type, status_message, request_model, response_model, agent_name, has_usage, \
     input_tokens, output_tokens, cost_nano, unpriced";

/// One row of [`SPAN_ROW_COLS`] as a [`SpanRow`]; `None` when the row cannot describe its span
/// alone (unclosed, stored before the columns existed, or not as this build writes it).
fn span_row(r: &Row<'_>) -> rusqlite::Result<Option<SpanRow>> {
    let id = |i: usize| -> rusqlite::Result<Option<Option<SpanId>>> {
        Ok(match r.get_ref(i)? {
            rusqlite::types::ValueRef::Null => Some(None),
            v => v
                .as_blob()
                .ok()
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(|b| Some(SpanId(b))),
        })
    };
    let text = |i: usize| -> rusqlite::Result<Option<String>> { r.get(i) };
    let (Some(Some(span_id)), Some(parent_span_id)) = (id(0)?, id(1)?) else {
        return Ok(None);
    };
    let (Some(end), Some(has_usage)) = (r.get::<_, Option<i64>>(6)?, r.get::<_, Option<bool>>(12)?)
    else {
        return Ok(None);
    };
    let Some(kind) = SpanKind::parse(&r.get::<_, String>(3)?) else {
        return Ok(None);
    };
    let status = super::prepare::parse_status(&r.get::<_, String>(4)?);
    let status_message = text(8)?;
    if status == Status::Error && status_message.is_none() {
        return Ok(None);
    }
    let start: i64 = r.get(5)?;
    Ok(Some(SpanRow {
        span_id,
        parent_span_id,
        name: r.get(2)?,
        kind,
        status,
        start_time: Timestamp(nonneg(start)),
        end_time: Timestamp(nonneg(end)),
        error_type: text(7)?,
        status_message: status_message.filter(|m| !m.is_empty()),
        request_model: text(9)?,
        response_model: text(10)?,
        agent_name: text(11)?,
        usage: has_usage.then_some((nonneg(r.get(13)?), nonneg(r.get(14)?))),
        cost: r.get::<_, Option<i64>>(15)?.map(NanoUsd),
        unpriced: r.get(16)?,
        duplicate_of: None,
    }))
}

/// A trace's spans from their typed columns (see [`crate::TraceReader::get_trace_rows`]).
pub fn get_trace_rows(
    conn: &Connection,
    project: &str,
    trace_id: TraceId,
) -> Result<Option<TraceRows>, StoreError> {
    let Some(pid) = project_id(conn, project)? else {
        return Ok(None);
    };
    let e = db("reading a trace's span rows");
    let tx = conn.unchecked_transaction().map_err(&e)?;
    let Some((summary, trace_ref)) = trace_head(&tx, pid, project, trace_id)? else {
        return Ok(None);
    };
    let cap = usize::try_from(summary.span_count.min(100_000)).unwrap_or(0);
    let mut spans = Vec::with_capacity(cap);
    {
        let mut st = tx
            .prepare_cached(&format!(
                "SELECT {SPAN_ROW_COLS} FROM spans INDEXED BY spans_trace WHERE trace_ref = ?1"
            ))
            .map_err(&e)?;
        let mut rows = st.query([trace_ref]).map_err(&e)?;
        while let Some(row) = rows.next().map_err(&e)? {
            // A row of another shape (SQLite converts types freely) is the bodies' to answer.
            match span_row(row) {
                Ok(Some(s)) => spans.push(s),
                Ok(None) | Err(_) => return Ok(None),
            }
        }
    }
    // A duplicate call's row counts nothing (`calls.rs`); what it reported is in its call row.
    // A call row that cannot be read leaves the trace to its bodies.
    let Ok(duplicates) = super::calls::duplicate_calls(&tx, trace_ref) else {
        return Ok(None);
    };
    tx.finish().map_err(&e)?;
    // Sorted here rather than by SQLite, whose sorter copies every row's record once more.
    spans.sort_unstable_by_key(|s| (s.start_time, s.span_id.0));
    for s in &mut spans {
        if let Some(d) = duplicates.get(&s.span_id.0) {
            s.duplicate_of = Some(d.of);
            s.usage = s.usage.map(|_| d.tokens);
            s.cost = d.cost;
            s.unpriced = d.unpriced;
        }
    }
    Ok(Some(TraceRows { summary, spans }))
}

/// A trace's summary and its spans' stored JSON, in start order. A span whose body is missing
/// or sits in a damaged chunk is reported, not a reason to fail the whole trace.
fn read_trace(
    conn: &Connection,
    project: &str,
    trace_id: TraceId,
) -> Result<Option<StoredTrace>, StoreError> {
    let Some(pid) = project_id(conn, project)? else {
        return Ok(None);
    };
    // One read transaction, so the summary and the spans come from the same snapshot.
    let tx = conn
        .unchecked_transaction()
        .map_err(db("reading a trace"))?;
    let Some((summary, trace_ref)) = trace_head(&tx, pid, project, trace_id)? else {
        return Ok(None);
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
    let mut unreadable = Vec::new();
    // Same snapshot as the spans: an event stored with its span is seen with it.
    let events = super::log_events::of_trace(&tx, pid, trace_id, &mut unreadable)?;
    // The spans that recorded a call another span is counted for (`calls.rs`).
    let duplicates = super::calls::duplicates_of(&tx, trace_ref)
        .map_err(db("reading a trace's duplicate calls"))?
        .into_iter()
        .collect();
    tx.finish().map_err(db("reading a trace"))?;
    let bodies = Bodies {
        order,
        text: bodies,
        damaged,
    };
    Ok(Some(StoredTrace::assemble(
        summary, bodies, events, unreadable, duplicates,
    )))
}

/// A trace with its spans decoded; large traces are decoded on several threads.
pub fn get_trace(
    conn: &Connection,
    project: &str,
    trace_id: TraceId,
) -> Result<Option<TraceDetail>, StoreError> {
    read_trace(conn, project, trace_id)?
        .map(StoredTrace::decode)
        .transpose()
}

/// A trace with its spans as stored JSON. Each body is checked to be well-formed JSON (a
/// server splices them into its answer as they are); one that is not is reported instead.
pub fn get_trace_json(
    conn: &Connection,
    project: &str,
    trace_id: TraceId,
) -> Result<Option<TraceDetailJson>, StoreError> {
    Ok(read_trace(conn, project, trace_id)?.map(StoredTrace::into_json))
}

/// The trace columns a session is summed from, in [`SessionAcc::add`]'s order.
const SESSION_TRACE_COLS: &str = "session_id, user_id, span_count, error_count, input_tokens, \
     output_tokens, total_tokens, cost_nano, start_ns, end_ns, unpriced_count";

/// A session's totals while its traces are added. The sums saturate (SQLite's `sum()` stops
/// with an error once a total passes i64, which one span with a huge token count can cause).
struct SessionAcc(SessionSummary);

impl SessionAcc {
    fn new(session_id: &str) -> SessionAcc {
        SessionAcc(SessionSummary {
            session_id: session_id.to_string(),
            user_id: None,
            trace_count: 0,
            span_count: 0,
            error_count: 0,
            input_tokens: 0,
            output_tokens: 0,
            total_tokens: 0,
            total_cost: NanoUsd(0),
            unpriced_span_count: 0,
            first_time: Timestamp(u64::MAX),
            last_time: Timestamp(0),
        })
    }

    /// Adds a row of `SESSION_TRACE_COLS`.
    fn add(&mut self, row: &Row<'_>) -> Result<(), StoreError> {
        let e = db("reading a session");
        let int = |i: usize| -> Result<i64, StoreError> { row.get(i).map_err(&e) };
        let s = &mut self.0;
        let user = row
            .get_ref(1)
            .map_err(&e)?
            .as_str()
            .map_err(|x| corrupt(format!("user id: {x}")))?;
        if !user.is_empty() && s.user_id.as_deref().is_none_or(|u| user > u) {
            s.user_id = Some(user.to_string());
        }
        s.trace_count += 1;
        s.span_count = s.span_count.saturating_add(nonneg(int(2)?));
        s.error_count = s.error_count.saturating_add(nonneg(int(3)?));
        s.input_tokens = s.input_tokens.saturating_add(nonneg(int(4)?));
        s.output_tokens = s.output_tokens.saturating_add(nonneg(int(5)?));
        s.total_tokens = s.total_tokens.saturating_add(nonneg(int(6)?));
        s.total_cost = NanoUsd(s.total_cost.0.saturating_add(int(7)?));
        s.first_time = s.first_time.min(Timestamp(nonneg(int(8)?)));
        s.last_time = s.last_time.max(Timestamp(nonneg(int(9)?)));
        s.unpriced_span_count = s.unpriced_span_count.saturating_add(nonneg(int(10)?));
        Ok(())
    }

    /// The session, `None` when no trace was added.
    fn finish(self) -> Option<SessionSummary> {
        (self.0.trace_count > 0).then_some(self.0)
    }
}

/// Sums the rows of `SESSION_TRACE_COLS` a statement returns into one session.
fn sum_session(
    rows: &mut rusqlite::Rows<'_>,
    session_id: &str,
) -> Result<Option<SessionSummary>, StoreError> {
    let mut acc = SessionAcc::new(session_id);
    while let Some(row) = rows.next().map_err(db("reading a session"))? {
        acc.add(row)?;
    }
    Ok(acc.finish())
}

/// A user with at most this many traces in a range has their sessions summed from those
/// traces directly; above it the list walks traces by end time (see [`list_sessions`]).
const DIRECT_USER_TRACES: i64 = 20_000;

/// One page of sessions, most recently active first.
///
/// A session's last activity is the latest end of the traces that count (started in the range,
/// of the user asked for). Walking those traces by end time, newest first (`traces_end`), meets
/// each session first at exactly that end, so the walk finds the sessions in page order and
/// stops after a page; only those sessions' traces are then summed, through the session
/// index. The first page of a 30-day range over 40M spans reads a few hundred traces instead
/// of all 2.4 million (5.8 s before).
pub fn list_sessions(
    conn: &Connection,
    q: &SessionQuery,
) -> Result<Page<SessionSummary>, StoreError> {
    list_sessions_with(conn, q, DIRECT_USER_TRACES)
}

/// [`list_sessions`], summing a user's sessions directly when they have at most `direct`
/// traces in the range (a parameter so tests can take either way).
fn list_sessions_with(
    conn: &Connection,
    q: &SessionQuery,
    direct: i64,
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
    let e = db("listing sessions");
    // One read transaction: the walk and the sums see the same snapshot.
    let tx = conn.unchecked_transaction().map_err(&e)?;
    let from = q.from.map_or(i64::MIN, |t| to_i64(t.0));
    let to = q.to.map_or(i64::MAX, |t| to_i64(t.0));
    let after = |s: &SessionSummary| match &cursor {
        None => true,
        Some(c) => {
            let l = to_i64(s.last_time.0);
            l < c.last_ns || (l == c.last_ns && s.session_id < c.session_id)
        }
    };
    let mut found: Vec<SessionSummary> = Vec::with_capacity(limit + 1);
    let direct = match &q.user_id {
        Some(u) => {
            let n: i64 = tx
                .prepare_cached(
                    "SELECT count(*) FROM (SELECT 1 FROM traces INDEXED BY traces_user \
                     WHERE project_id = ?1 AND user_id = ?2 AND start_ns >= ?3 AND start_ns < ?4 \
                     LIMIT ?5)",
                )
                .and_then(|mut st| {
                    st.query_row(params![pid, u, from, to, direct.saturating_add(1)], |r| {
                        r.get(0)
                    })
                })
                .map_err(&e)?;
            n <= direct
        }
        None => false,
    };
    if let (true, Some(u)) = (direct, &q.user_id) {
        // Few traces: sum them all by session.
        let mut st = tx
            .prepare_cached(&format!(
                "SELECT {SESSION_TRACE_COLS} FROM traces INDEXED BY traces_user \
                 WHERE project_id = ?1 AND user_id = ?2 AND start_ns >= ?3 AND start_ns < ?4 \
                 AND session_id <> ''"
            ))
            .map_err(&e)?;
        let mut rows = st.query(params![pid, u, from, to]).map_err(&e)?;
        let mut by_session: HashMap<String, SessionAcc> = HashMap::new();
        while let Some(row) = rows.next().map_err(&e)? {
            let sid = row
                .get_ref(0)
                .map_err(&e)?
                .as_str()
                .map_err(|x| corrupt(format!("session id: {x}")))?;
            if !by_session.contains_key(sid) {
                by_session.insert(sid.to_string(), SessionAcc::new(sid));
            }
            if let Some(acc) = by_session.get_mut(sid) {
                acc.add(row)?;
            }
        }
        found.extend(
            by_session
                .into_values()
                .filter_map(SessionAcc::finish)
                .filter(|s| after(s)),
        );
    } else {
        // Traces that started before `to` end before `to` plus the longest trace.
        let longest: i64 = tx
            .prepare_cached("SELECT max_trace_ns FROM projects WHERE id = ?1")
            .and_then(|mut st| st.query_row([pid], |r| r.get(0)))
            .map_err(&e)?;
        let mut hi = to.saturating_add(longest.max(0));
        if let Some(c) = &cursor {
            hi = hi.min(c.last_ns);
        }
        let mut walk = tx
            .prepare_cached(
                "SELECT end_ns, start_ns, session_id, user_id FROM traces INDEXED BY traces_end \
                 WHERE project_id = ?1 AND end_ns <= ?2 AND end_ns >= ?3 ORDER BY end_ns DESC",
            )
            .map_err(&e)?;
        let mut sum = tx
            .prepare_cached(&format!(
                "SELECT {SESSION_TRACE_COLS} FROM traces INDEXED BY traces_session \
                 WHERE project_id = ?1 AND session_id = ?2 AND start_ns >= ?3 AND start_ns < ?4 \
                 AND (?5 IS NULL OR user_id = ?5)"
            ))
            .map_err(&e)?;
        let mut seen: std::collections::HashSet<String> = Default::default();
        let mut rows = walk.query(params![pid, hi, from]).map_err(&e)?;
        let mut stop_at: Option<i64> = None;
        while let Some(row) = rows.next().map_err(&e)? {
            let end: i64 = row.get(0).map_err(&e)?;
            if stop_at.is_some_and(|x| end < x) {
                break;
            }
            let start: i64 = row.get(1).map_err(&e)?;
            let session = row
                .get_ref(2)
                .map_err(&e)?
                .as_str()
                .map_err(|x| corrupt(format!("session id: {x}")))?;
            if session.is_empty() || start < from || start >= to || seen.contains(session) {
                continue;
            }
            if let Some(u) = &q.user_id {
                let user = row
                    .get_ref(3)
                    .map_err(&e)?
                    .as_str()
                    .map_err(|x| corrupt(format!("user id: {x}")))?;
                if user != u {
                    continue;
                }
            }
            seen.insert(session.to_string());
            let mut summed = sum
                .query(params![pid, session, from, to, q.user_id])
                .map_err(&e)?;
            let Some(s) = sum_session(&mut summed, session)? else {
                continue;
            };
            if !after(&s) {
                continue;
            }
            found.push(s);
            // Sessions come in order of last activity; those that tie with the last one of the
            // page are all read, then their order is settled by id.
            if found.len() > limit && stop_at.is_none() {
                stop_at = Some(end);
            }
        }
    }
    tx.finish().map_err(&e)?;
    sort_sessions(&mut found);
    Ok(session_page(found, limit))
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
                "SELECT {SESSION_TRACE_COLS} FROM traces INDEXED BY traces_session \
                 WHERE project_id = ?1 AND session_id = ?2"
            ))
            .map_err(db("reading a session"))?;
        let mut rows = st
            .query(params![pid, session_id])
            .map_err(db("reading a session"))?;
        match sum_session(&mut rows, session_id)? {
            Some(s) => s,
            None => return Ok(None),
        }
    };
    let mut traces = Vec::new();
    {
        // Left to itself SQLite walks traces_start to avoid sorting, i.e. the whole project
        // (2.2 s over 40M spans); the session's own traces are few and sort in no time.
        let mut st = tx
            .prepare_cached(&format!(
                "SELECT {SUMMARY_COLS} FROM traces INDEXED BY traces_session \
                 WHERE project_id = ?1 AND session_id = ?2 ORDER BY start_ns, trace_id LIMIT ?3"
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prelude::*;
    use spanlens_core::{Span, SpanId, TraceId};

    /// A user's sessions listed by walking traces by end time agree with summing the user's
    /// traces directly, page by page, with and without a time range; sessions that end at the
    /// same instant come in session-id order across page boundaries.
    #[tokio::test]
    async fn both_ways_of_listing_a_users_sessions_agree() {
        let dir = tempfile::tempdir().unwrap();
        let store = super::super::SqliteStore::open(dir.path().join("s.db")).unwrap();
        let t0 = 1_700_000_000_000_000_000u64;
        let mut x = 7u64;
        let mut next = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let mut spans = Vec::new();
        for t in 0..300u64 {
            // Many traces end at one of a few instants, so sessions tie on last activity.
            let start = t0 + next(50) * 1_000_000_000;
            let end = t0 + (60 + next(3)) * 1_000_000_000;
            spans.push(Span {
                trace_id: TraceId((u128::from(t) + 1).to_be_bytes()),
                span_id: SpanId([1; 8]),
                start_time: spanlens_core::Timestamp(start),
                end_time: Some(spanlens_core::Timestamp(end.max(start))),
                session_id: Some(format!("s{}", next(40))),
                user_id: Some(format!("u{}", next(3))),
                ..Default::default()
            });
        }
        let meta: Vec<(u64, String, String)> = spans
            .iter()
            .map(|s| {
                let sid = s.session_id.clone().unwrap_or_default();
                let uid = s.user_id.clone().unwrap_or_default();
                (s.start_time.0, sid, uid)
            })
            .collect();
        store.write("p", spans).await.unwrap();
        let conn = store.readers.pool.get().unwrap();
        for (from, to) in [
            (None, None),
            (Some(t0 + 10_000_000_000), Some(t0 + 40_000_000_000)),
        ] {
            for user in [None, Some("u1")] {
                for limit in [1u32, 2, 7] {
                    let walk = |direct: i64| {
                        let mut q = SessionQuery::new("p");
                        q.from = from.map(spanlens_core::Timestamp);
                        q.to = to.map(spanlens_core::Timestamp);
                        q.user_id = user.map(str::to_string);
                        q.limit = limit;
                        let mut all = Vec::new();
                        loop {
                            let p = list_sessions_with(&conn, &q, direct).unwrap();
                            all.extend(p.items);
                            match p.next_cursor {
                                Some(c) => q.cursor = Some(c),
                                None => break,
                            }
                        }
                        all
                    };
                    let (walked, direct) = (walk(0), walk(i64::MAX));
                    assert_eq!(walked, direct, "{from:?} {user:?} limit {limit}");
                    assert!(walked
                        .windows(2)
                        .all(|w| (w[0].last_time, &w[0].session_id)
                            > (w[1].last_time, &w[1].session_id)));
                    // Every session with a trace that counts, once, ties included.
                    let mut want: Vec<&String> = meta
                        .iter()
                        .filter(|(start, _, u)| {
                            from.is_none_or(|f| *start >= f)
                                && to.is_none_or(|t| *start < t)
                                && user.is_none_or(|x| x == u)
                        })
                        .map(|(_, s, _)| s)
                        .collect();
                    want.sort();
                    want.dedup();
                    let mut ids: Vec<&String> = walked.iter().map(|s| &s.session_id).collect();
                    ids.sort();
                    assert_eq!(ids, want);
                }
            }
        }
    }
}
