//! The read side on ClickHouse: the trace list and sessions from the summary table (`FINAL`,
//! so each trace's newest summary), one trace from its span rows (the newest copy of each
//! span), and metrics and scans from span rows read a page at a time in key order, so memory
//! stays bounded however large the range.

use super::rowread::RowReader;
use super::{ch_error, sql, Client};
use crate::cursor::{SessionCursor, SortKey, TraceCursor};
use crate::error::StoreError;
use crate::facts::prepare::{status_str, to_i64};
use crate::facts::read::{
    check_limit, file_log_event, no_body, project_name, session_page, sort_column, sort_is_numeric,
    sort_sessions, trace_page, undecodable, Bodies, StoredSummary, StoredTrace,
};
use crate::facts::summary::{prompt_version_key, SummaryNumbers};
use crate::store::ScanSender;
use crate::types::{
    ListQuery, Page, SessionDetail, SessionQuery, SessionSummary, SortOrder, SpanScan, TraceFilter,
    TraceOutcomes, TraceSummary, Unreadable, UnreadableSpan,
};
use spanlens_core::{Event, NanoUsd, Span, Timestamp, TraceId};
use std::collections::HashMap;

/// Most traces returned with one session, so a runaway session cannot exhaust memory.
const MAX_SESSION_TRACES: usize = 10_000;

const SUMMARY_COLS: &str = "trace_id, name, status, start_ns, end_ns, duration_ns, span_count, \
     error_count, input_tokens, output_tokens, total_tokens, cost_nano, unpriced_count, user_id, \
     session_id, tags, root_span_id, service";

fn read_summary(r: &mut RowReader<'_>, project: &str) -> Result<TraceSummary, StoreError> {
    let trace_id = r.fixed::<16>()?.to_vec();
    let name = r.string()?;
    let status = r.string()?;
    let mut n = [0i64; 10];
    for v in &mut n {
        *v = r.i64()?;
    }
    StoredSummary {
        trace_id,
        name,
        status,
        numbers: SummaryNumbers::from_order(n),
        user_id: r.string()?,
        session_id: r.string()?,
        tags: r.strings()?,
        root_span_id: r.nullable(|r| r.fixed::<8>())?.map(|b| b.to_vec()),
        service: r.nullable(|r| r.string())?,
    }
    .into_summary(project, "traces")
}

/// Runs a query whose answer is `RowBinary` rows.
pub(super) async fn rows(
    client: &Client,
    sql: &str,
    op: &'static str,
) -> Result<bytes::Bytes, StoreError> {
    client
        .query(&format!("{sql} FORMAT RowBinary"), &[])
        .await
        .map_err(|e| ch_error(op, e))
}

pub(super) fn started_in(c: &mut sql::Conditions, from: Option<Timestamp>, to: Option<Timestamp>) {
    if let Some(t) = from {
        c.push(format!("start_ns >= {}", to_i64(t.0)));
    }
    if let Some(t) = to {
        c.push(format!("start_ns < {}", to_i64(t.0)));
    }
}

/// The conditions of a trace filter on `traces` (project included). Without `with_outcome` the
/// status and recovered conditions are left out.
fn filter_conditions(
    project: &str,
    f: &TraceFilter,
    with_outcome: bool,
) -> Result<sql::Conditions, StoreError> {
    let mut c = sql::Conditions::default();
    c.push(format!("project = {}", sql::string(project)));
    started_in(&mut c, f.from, f.to);
    if let Some(n) = &f.name {
        c.push(format!("name = {}", sql::string(n)));
    }
    if let (Some(s), true) = (f.status, with_outcome) {
        c.push(format!("status = {}", sql::string(status_str(s))));
    }
    if f.recovered && with_outcome {
        c.push("status != 'error' AND error_count > 0");
    }
    if let Some(u) = &f.user_id {
        c.push(format!("user_id = {}", sql::string(u)));
    }
    if let Some(s) = &f.session_id {
        c.push(format!("session_id = {}", sql::string(s)));
    }
    if let Some(d) = f.min_duration_ns {
        c.push(format!("duration_ns >= {}", to_i64(d)));
    }
    if let Some(d) = f.max_duration_ns {
        c.push(format!("duration_ns <= {}", to_i64(d)));
    }
    if let Some(x) = f.min_cost {
        c.push(format!("cost_nano >= {}", x.0));
    }
    if let Some(x) = f.max_cost {
        c.push(format!("cost_nano <= {}", x.0));
    }
    if let Some(t) = f.text.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        c.push(format!(
            "position(search, {}) > 0",
            sql::string(&t.to_lowercase())
        ));
    }
    let sets = [
        ("kinds", f.kind.map(|k| vec![k.as_str().to_string()])),
        ("models", f.model.clone().map(|m| vec![m])),
        ("providers", f.provider.clone().map(|p| vec![p])),
        ("tags", Some(f.tags.clone()).filter(|t| !t.is_empty())),
    ];
    for (column, values) in sets {
        if let Some(v) = values {
            c.push(format!("hasAll({column}, {})", sql::strings(&v)));
        }
    }
    if let Some(sf) = &f.score {
        let mut s = format!(
            "trace_id IN (SELECT assumeNotNull(trace_id) FROM scores WHERE project = {} \
             AND trace_id IS NOT NULL AND name = {}",
            sql::string(project),
            sql::string(&sf.name)
        );
        if let Some(min) = sf.min {
            s.push_str(&format!(" AND value >= {}", float(min)));
        }
        if let Some(max) = sf.max {
            s.push_str(&format!(" AND value <= {}", float(max)));
        }
        if let Some(label) = &sf.label {
            s.push_str(&format!(" AND label = {}", sql::string(label)));
        }
        s.push(')');
        c.push(s);
    }
    if let Some(words) = crate::domain::content::filter_words(f)? {
        // `hasToken` is served by the text index where there is one; a span's lower start
        // bound (a trace's spans start no earlier than it) prunes partitions.
        let mut s = format!(
            "trace_id IN (SELECT trace_id FROM spans FINAL WHERE project = {}",
            sql::string(project)
        );
        if let Some(from) = f.from {
            s.push_str(&format!(" AND start_ns >= {}", to_i64(from.0)));
        }
        for w in words {
            s.push_str(&format!(" AND hasToken(content, {})", sql::string(&w)));
        }
        s.push(')');
        c.push(s);
    }
    match (&f.prompt, &f.prompt_version) {
        (Some(n), Some(v)) => c.push(format!(
            "has(prompt_versions, {})",
            sql::string(&prompt_version_key(n, v))
        )),
        (Some(n), None) => c.push(format!("has(prompts, {})", sql::string(n))),
        _ => {}
    }
    if f.has_prompt {
        c.push("notEmpty(prompts)".to_string());
    }
    Ok(c)
}

/// A float literal ClickHouse reads back exactly (`inf` and `nan` as functions).
fn float(v: f64) -> String {
    if v.is_nan() {
        "nan".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        }
    } else {
        format!("{v:?}")
    }
}

/// How the traces matching a query's filters ended.
pub async fn trace_outcomes(client: &Client, q: &ListQuery) -> Result<TraceOutcomes, StoreError> {
    let project = project_name(&q.project);
    let c = filter_conditions(&project, &q.filter, false)?;
    let out = rows(
        client,
        &format!(
            "SELECT toInt64(count()), toInt64(countIf(status = 'error')), \
             toInt64(countIf(status != 'error' AND error_count > 0)) FROM traces FINAL{}",
            c.clause()
        ),
        "counting trace outcomes",
    )
    .await?;
    let mut r = RowReader::new(&out);
    let n = |v: i64| u64::try_from(v).unwrap_or(0);
    Ok(TraceOutcomes {
        traces: n(r.i64()?),
        failed: n(r.i64()?),
        recovered: n(r.i64()?),
    })
}

/// One page of the trace list (keyset pagination on the sort column and the trace id).
pub async fn list_traces(client: &Client, q: &ListQuery) -> Result<Page<TraceSummary>, StoreError> {
    let limit = check_limit(q.limit)?;
    let cursor = match q.cursor.as_deref().map(str::trim) {
        Some(c) if !c.is_empty() => Some(TraceCursor::decode(c, q.sort, q.order)?),
        _ => None,
    };
    let project = project_name(&q.project);
    let mut c = filter_conditions(&project, &q.filter, true)?;
    let col = sort_column(q.sort);
    let (dir, op) = match q.order {
        SortOrder::Desc => ("DESC", "<"),
        SortOrder::Asc => ("ASC", ">"),
    };
    if let Some(cur) = cursor {
        let k = match (cur.key, sort_is_numeric(q.sort)) {
            (SortKey::Int(i), true) => i.to_string(),
            (SortKey::Text(s), false) => sql::string(&s),
            _ => {
                return Err(StoreError::InvalidCursor(
                    "cursor key does not match the sort column".into(),
                ))
            }
        };
        c.push(format!(
            "({col}, trace_id) {op} ({k}, {})",
            sql::bytes(&cur.trace_id.0)
        ));
    }
    let out = rows(
        client,
        &format!(
            "SELECT {SUMMARY_COLS} FROM traces FINAL{} ORDER BY {col} {dir}, trace_id {dir} \
             LIMIT {}",
            c.clause(),
            limit + 1
        ),
        "listing traces",
    )
    .await?;
    let mut r = RowReader::new(&out);
    let mut items = Vec::new();
    while !r.is_empty() {
        items.push(read_summary(&mut r, &project)?);
    }
    Ok(trace_page(items, limit, q))
}

/// A trace's summary and its spans' stored JSON in start order.
pub async fn read_trace(
    client: &Client,
    project: &str,
    trace_id: TraceId,
) -> Result<Option<StoredTrace>, StoreError> {
    let p = sql::string(project);
    let t = sql::bytes(&trace_id.0);
    let out = rows(
        client,
        &format!(
            "SELECT {SUMMARY_COLS}, duplicates FROM traces FINAL \
             WHERE project = {p} AND trace_id = {t}"
        ),
        "reading a trace",
    )
    .await?;
    let mut r = RowReader::new(&out);
    if r.is_empty() {
        return Ok(None);
    }
    let summary = read_summary(&mut r, project)?;
    let duplicates: HashMap<[u8; 8], [u8; 8]> = r
        .array_of(|r| Ok((r.fixed::<8>()?, r.fixed::<8>()?)))?
        .into_iter()
        .collect();
    let out = rows(
        client,
        &format!(
            "SELECT span_id, body FROM (SELECT span_id, start_ns, body FROM spans \
             WHERE project = {p} AND trace_id = {t} \
             ORDER BY span_id, version DESC LIMIT 1 BY span_id) ORDER BY start_ns, span_id"
        ),
        "reading spans",
    )
    .await?;
    let mut r = RowReader::new(&out);
    let mut bodies = Bodies::default();
    while !r.is_empty() {
        let id = r.fixed::<8>()?;
        let body = r.bytes()?;
        bodies.order.push(id);
        // A body dropped by the payload TTL reads as empty: the span is reported, not guessed.
        if !body.is_empty() {
            bodies
                .text
                .insert(id, String::from_utf8_lossy(body).into_owned());
        }
    }
    let mut unreadable = Vec::new();
    let events = log_events_of(client, project, trace_id, &mut unreadable).await?;
    Ok(Some(StoredTrace::assemble(
        summary, bodies, events, unreadable, duplicates,
    )))
}

/// The stored log events of a trace by span, oldest first.
async fn log_events_of(
    client: &Client,
    project: &str,
    trace_id: TraceId,
    unreadable: &mut Vec<UnreadableSpan>,
) -> Result<HashMap<[u8; 8], Vec<Event>>, StoreError> {
    let out = rows(
        client,
        &format!(
            "SELECT span_id, event FROM log_events FINAL WHERE project = {} AND trace_id = {} \
             ORDER BY time_ns, received_ns, digest",
            sql::string(project),
            sql::bytes(&trace_id.0)
        ),
        "reading log events",
    )
    .await?;
    let mut r = RowReader::new(&out);
    let mut events = HashMap::new();
    while !r.is_empty() {
        let id = r.fixed::<8>()?;
        let text = r.string()?;
        file_log_event(&mut events, unreadable, trace_id, &id, &text);
    }
    Ok(events)
}

/// The sums a session is made of, over its traces' summaries (exact: 128-bit sums, clamped).
const SESSION_SUMS: &str = "session_id, maxIf(user_id, user_id != ''), count(), \
     sum(toInt128(span_count)), sum(toInt128(error_count)), sum(toInt128(input_tokens)), \
     sum(toInt128(output_tokens)), sum(toInt128(total_tokens)), sum(toInt128(cost_nano)), \
     sum(toInt128(unpriced_count)), min(start_ns), max(end_ns)";

fn read_session(r: &mut RowReader<'_>) -> Result<SessionSummary, StoreError> {
    let session_id = r.string()?;
    let user = r.string()?;
    let traces = r.u64()?;
    let mut sums = [0i128; 7];
    for s in &mut sums {
        *s = r.i128()?;
    }
    let count = |v: i128| u64::try_from(v.max(0)).unwrap_or(u64::MAX);
    let cost = sums[5];
    Ok(SessionSummary {
        session_id,
        user_id: Some(user).filter(|u| !u.is_empty()),
        trace_count: traces,
        span_count: count(sums[0]),
        error_count: count(sums[1]),
        input_tokens: count(sums[2]),
        output_tokens: count(sums[3]),
        total_tokens: count(sums[4]),
        total_cost: NanoUsd(i64::try_from(cost).unwrap_or(if cost < 0 {
            i64::MIN
        } else {
            i64::MAX
        })),
        unpriced_span_count: count(sums[6]),
        first_time: Timestamp(u64::try_from(r.i64()?).unwrap_or(0)),
        last_time: Timestamp(u64::try_from(r.i64()?).unwrap_or(0)),
    })
}

/// One page of sessions, most recently active first.
pub async fn list_sessions(
    client: &Client,
    q: &SessionQuery,
) -> Result<Page<SessionSummary>, StoreError> {
    let limit = check_limit(q.limit)?;
    let cursor = match q.cursor.as_deref().map(str::trim) {
        Some(c) if !c.is_empty() => Some(SessionCursor::decode(c)?),
        _ => None,
    };
    let project = project_name(&q.project);
    let mut c = sql::Conditions::default();
    c.push(format!("project = {}", sql::string(&project)));
    c.push("session_id != ''");
    started_in(&mut c, q.from, q.to);
    if let Some(u) = &q.user_id {
        c.push(format!("user_id = {}", sql::string(u)));
    }
    let having = match &cursor {
        Some(cur) => format!(
            " HAVING (max(end_ns), session_id) < ({}, {})",
            cur.last_ns,
            sql::string(&cur.session_id)
        ),
        None => String::new(),
    };
    let out = rows(
        client,
        &format!(
            "SELECT {SESSION_SUMS} FROM traces FINAL{} GROUP BY session_id{having} \
             ORDER BY max(end_ns) DESC, session_id DESC LIMIT {}",
            c.clause(),
            limit + 1
        ),
        "listing sessions",
    )
    .await?;
    let mut r = RowReader::new(&out);
    let mut found = Vec::new();
    while !r.is_empty() {
        found.push(read_session(&mut r)?);
    }
    sort_sessions(&mut found);
    Ok(session_page(found, limit))
}

/// A session's rollup and its traces (oldest first, at most [`MAX_SESSION_TRACES`]).
pub async fn get_session(
    client: &Client,
    project: &str,
    session_id: &str,
) -> Result<Option<SessionDetail>, StoreError> {
    if session_id.is_empty() {
        return Ok(None);
    }
    let wh = format!(
        " WHERE project = {} AND session_id = {}",
        sql::string(project),
        sql::string(session_id)
    );
    let out = rows(
        client,
        &format!("SELECT {SESSION_SUMS} FROM traces FINAL{wh} GROUP BY session_id"),
        "reading a session",
    )
    .await?;
    let mut r = RowReader::new(&out);
    if r.is_empty() {
        return Ok(None);
    }
    let session = read_session(&mut r)?;
    let out = rows(
        client,
        &format!(
            "SELECT {SUMMARY_COLS} FROM traces FINAL{wh} ORDER BY start_ns, trace_id \
             LIMIT {MAX_SESSION_TRACES}"
        ),
        "reading a session",
    )
    .await?;
    let mut r = RowReader::new(&out);
    let mut traces = Vec::new();
    while !r.is_empty() {
        traces.push(read_summary(&mut r, project)?);
    }
    Ok(Some(SessionDetail { session, traces }))
}

/// Distinct spans stored for a project.
pub async fn count_spans(client: &Client, project: &str) -> Result<u64, StoreError> {
    let out = rows(
        client,
        &format!(
            "SELECT toUInt64(count()) FROM (SELECT DISTINCT trace_id, span_id FROM spans \
             WHERE project = {})",
            sql::string(project)
        ),
        "counting spans",
    )
    .await?;
    Ok(RowReader::new(&out).u64()?)
}

/// Every project that has spans, sorted by name.
pub async fn projects(client: &Client) -> Result<Vec<String>, StoreError> {
    let out = rows(
        client,
        "SELECT DISTINCT toString(project) AS p FROM traces ORDER BY p",
        "listing projects",
    )
    .await?;
    let mut r = RowReader::new(&out);
    let mut names = Vec::new();
    while !r.is_empty() {
        names.push(r.string()?);
    }
    Ok(names)
}

/// Which spans a scan hands over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanKind {
    /// LLM and embedding spans (re-pricing, reconciliation).
    Models,
    /// What the recovery report reads: retried spans, model calls and spans naming a provider.
    Recovery,
}

/// Runs a scan, handing the spans over a trace at a time (a trace's spans may span two pages:
/// the batch is cut at trace boundaries), and ends it with the outcome.
pub async fn scan(client: Client, scan: SpanScan, kind: ScanKind, tx: ScanSender) {
    let outcome = run_scan(&client, &scan, kind, &tx).await;
    tx.finish(outcome);
}

async fn run_scan(
    client: &Client,
    scan: &SpanScan,
    kind: ScanKind,
    out: &ScanSender,
) -> Result<Unreadable, StoreError> {
    let project = project_name(&scan.project);
    let mut c = sql::Conditions::default();
    c.push(format!("project = {}", sql::string(&project)));
    c.push(match kind {
        ScanKind::Models => "kind IN ('llm', 'embedding')",
        // Retried spans, and model calls that carry rate limits (bodies are read for those
        // alone: `has_rate_limits` is computed from the body at insert).
        ScanKind::Recovery => {
            "(retry_count > 0 OR (has_rate_limits AND (kind IN ('llm', 'embedding') \
             OR provider IS NOT NULL)))"
        }
    });
    started_in(&mut c, scan.from, scan.to);
    if let (Some(m), ScanKind::Models) = (&scan.model, kind) {
        let m = sql::string(m);
        c.push(format!("(request_model = {m} OR response_model = {m})"));
    }
    let mut unreadable = Unreadable::default();
    // First the traces holding a selected span (ids only, in key order), then their spans a
    // few traces at a time by primary key: a keyset page over the selected spans themselves
    // would scan the rest of the table once per page. A trace whose spans changed in between
    // is read as it is then.
    let ids = rows(
        client,
        &format!(
            "SELECT DISTINCT trace_id FROM spans{} ORDER BY trace_id",
            c.clause()
        ),
        "scanning spans",
    )
    .await?;
    let mut r = RowReader::new(&ids);
    let mut traces: Vec<[u8; 16]> = Vec::new();
    while !r.is_empty() {
        traces.push(r.fixed::<16>()?);
    }
    for chunk in traces.chunks(SCAN_TRACES) {
        let list: Vec<String> = chunk.iter().map(|t| sql::bytes(t)).collect();
        // Read whole before the spans are handed over, so the consumer's pace holds the next
        // query back (bounded memory), and a consumer that goes away ends the scan.
        let page = rows(
            client,
            &format!(
                "SELECT trace_id, span_id, body FROM spans FINAL{} AND trace_id IN ({}) \
                 ORDER BY trace_id, span_id",
                c.clause(),
                list.join(", ")
            ),
            "scanning spans",
        )
        .await?;
        let mut r = RowReader::new(&page);
        let mut batch: Vec<Span> = Vec::new();
        let mut current: Option<[u8; 16]> = None;
        while !r.is_empty() {
            let t = r.fixed::<16>()?;
            let s = r.fixed::<8>()?;
            let body = r.bytes()?;
            if current.is_some_and(|c| c != t) && !batch.is_empty() {
                out.send(std::mem::take(&mut batch)).await?;
            }
            current = Some(t);
            let trace_id = TraceId(t);
            let span = if body.is_empty() {
                Err(no_body(trace_id, s, None))
            } else {
                serde_json::from_slice::<Span>(body).map_err(|x| undecodable(trace_id, s, &x))
            };
            match span {
                Ok(s) => batch.push(s),
                Err(u) => unreadable.add(u),
            }
        }
        if !batch.is_empty() {
            out.send(batch).await?;
        }
    }
    Ok(unreadable)
}

/// Traces whose spans are read per query of a scan.
const SCAN_TRACES: usize = 1_000;
