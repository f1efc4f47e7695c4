//! `/api/v1/traces`: the list and its outcome counts, one trace (with its analysis), its
//! export, and one span.

use super::error::{bad, internal, ApiError};
use super::params::{kind, limit, ms_as_ns, time, usd, Params};
use super::rows::trace_id;
use super::stored::{push_unreadable, readable_spans, retain_indices, TreeSource};
use crate::state::AppState;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use spanlens_api::{TraceListQuery, TracePage, TraceRow};
use spanlens_core::{analyze, Span, SpanId, Status, TraceId};
use spanlens_store::{ListQuery, SortField, SortOrder, DEFAULT_PROJECT};

pub(super) async fn list_traces(
    State(st): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<Json<TracePage>, ApiError> {
    let query = list_query(&Params::parse(q)?)?;
    let page = st.store.list_traces(&query).await?;
    let mut items: Vec<TraceRow> = page.items.iter().map(TraceRow::from).collect();
    if let Some(words) = spanlens_store::domain::content::filter_words(&query.filter)? {
        // Snippets read the listed traces' spans: a page reads at most HIT_SPANS_PER_PAGE.
        let mut budget = HIT_SPANS_PER_PAGE;
        for row in &mut items {
            if row.span_count > MAX_SPANS_FOR_HIT || row.span_count > budget {
                continue;
            }
            budget -= row.span_count;
            row.hit = search_hit(&st, &query.project, row, &words).await?;
        }
    }
    Ok(Json(TracePage {
        items,
        next_cursor: page.next_cursor,
    }))
}

/// Traces wider than this get no snippet in a search's list: reading them would cost more than
/// the page.
const MAX_SPANS_FOR_HIT: u64 = 5_000;

/// Spans a page of a search's list reads at most for its snippets (in list order; a trace
/// that no longer fits gets none).
const HIT_SPANS_PER_PAGE: u64 = 20_000;

/// Bytes of text a snippet shows around the first word found.
const SNIPPET_BYTES: usize = 160;

/// The first span (in start order) of a listed trace holding every word, with its snippet.
async fn search_hit(
    st: &AppState,
    project: &str,
    row: &TraceRow,
    words: &[String],
) -> Result<Option<spanlens_api::SearchHit>, ApiError> {
    let Some(detail) = st.store.get_trace(project, row.trace_id).await? else {
        return Ok(None);
    };
    Ok(detail.spans.iter().find_map(|s| {
        let raw = spanlens_core::content::raw_text(s);
        if !spanlens_core::content::matches(&raw.to_lowercase(), words) {
            return None;
        }
        Some(spanlens_api::SearchHit {
            span_id: s.span_id,
            span_name: s.name.clone(),
            snippet: spanlens_core::content::snippet(&raw, words, SNIPPET_BYTES)?,
        })
    }))
}

/// `GET /api/v1/traces/outcomes`: how many of the traces the list's filters match failed and
/// how many recovered from errors (the status filter is ignored: these are its choices).
pub(super) async fn trace_outcomes(
    State(st): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<Json<spanlens_api::TraceOutcomes>, ApiError> {
    let query = list_query(&Params::parse(q)?)?;
    Ok(Json(st.store.trace_outcomes(&query).await?))
}

/// The trace list's query parameters (`spanlens_api::TraceListQuery`) as a store query.
pub(super) fn list_query(p: &Params) -> Result<ListQuery, ApiError> {
    let q = TraceListQuery::from_pairs(p.pairs().0)?;
    let mut query = ListQuery::new(q.project.as_deref().unwrap_or(DEFAULT_PROJECT));
    let f = &mut query.filter;
    f.from = time("from", q.from.as_deref())?;
    f.to = time("to", q.to.as_deref())?;
    f.name = q.name;
    f.kind = kind(q.kind.as_deref())?;
    f.status = match q.status.as_deref() {
        None => None,
        Some("ok") => Some(Status::Ok),
        Some("error") => Some(Status::Error),
        Some("unset") => Some(Status::Unset),
        Some("recovered") => {
            f.recovered = true;
            None
        }
        Some(v) => return Err(bad("status", v, "use ok, error, unset or recovered")),
    };
    f.model = q.model;
    f.provider = q.provider;
    f.user_id = q.user;
    f.session_id = q.session;
    f.tags = q.tags;
    f.min_duration_ns = ms_as_ns(q.min_duration_ms);
    f.max_duration_ns = ms_as_ns(q.max_duration_ms);
    f.min_cost = usd("min_cost", q.min_cost)?;
    f.max_cost = usd("max_cost", q.max_cost)?;
    if let Some(name) = q.score_name {
        f.score = Some(spanlens_store::ScoreFilter {
            name,
            min: q.score_min,
            max: q.score_max,
            label: q.score_label,
        });
    } else if let Some(k) = ["score_min", "score_max", "score_label"]
        .into_iter()
        .find(|k| p.get(&[k]).is_some())
    {
        return Err(bad(k, p.get(&[k]).unwrap_or(""), "needs score_name"));
    }
    f.text = q.text;
    f.content = q.content;
    if let Some(s) = q.sort.as_deref() {
        query.sort = SortField::parse(s).ok_or_else(|| {
            bad(
                "sort",
                s,
                "use start_time, duration, cost, tokens, span_count, name, status or user",
            )
        })?;
    }
    if let Some(o) = q.order.as_deref() {
        query.order = SortOrder::parse(o).ok_or_else(|| bad("order", o, "use asc or desc"))?;
    }
    query.limit = limit(q.limit)?;
    query.cursor = q.cursor;
    if let (None, Some(v)) = (&q.prompt, &q.prompt_version) {
        return Err(bad("prompt_version", v, "needs prompt"));
    }
    query.filter.prompt = q.prompt;
    query.filter.prompt_version = q.prompt_version;
    Ok(query)
}

/// `{"trace": summary, "spans": [...]}` built from the stored span JSON without re-encoding it,
/// with `"analysis"` (see `spanlens_core::analysis`) when `with_analysis` is set.
pub(super) async fn trace_body(
    st: &AppState,
    project: String,
    id: TraceId,
    with_analysis: bool,
) -> Result<String, ApiError> {
    let mut detail = st
        .store
        .get_trace_json(&project, id)
        .await?
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no trace {id}")))?;
    // Parsing every span for the analysis is CPU work: off the async workers.
    let (detail, analysis) = tokio::task::spawn_blocking(move || {
        let analysis = if with_analysis {
            let (readable, unreadable) = readable_spans(&detail);
            let spans: Vec<Span> = readable.iter().map(|(_, _, s)| s.clone()).collect();
            let keep: Vec<usize> = readable.iter().map(|(i, _, _)| *i).collect();
            drop(readable);
            retain_indices(&mut detail.spans, &keep);
            detail.unreadable.extend(unreadable);
            Some(serde_json::to_string(&analyze(&spans)).map_err(internal)?)
        } else {
            None
        };
        Ok::<_, ApiError>((detail, analysis))
    })
    .await
    .map_err(internal)??;
    let mut out =
        String::with_capacity(detail.spans.iter().map(|s| s.len() + 1).sum::<usize>() + 512);
    out.push_str("{\"trace\":");
    out.push_str(&serde_json::to_string(&TraceRow::from(&detail.summary)).map_err(internal)?);
    out.push_str(",\"spans\":[");
    for (i, s) in detail.spans.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(s);
    }
    out.push(']');
    if let Some(a) = analysis {
        out.push_str(",\"analysis\":");
        out.push_str(&a);
    }
    push_unreadable(&mut out, &detail.unreadable)?;
    out.push('}');
    Ok(out)
}

pub(super) async fn get_trace(
    State(st): State<AppState>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let p = Params::parse(q)?;
    // `analysis=false` skips the second pass over the spans, for clients that only want them.
    let with_analysis = match p.get(&["analysis"]) {
        None | Some("true") => true,
        Some("false") => false,
        Some(v) => return Err(bad("analysis", v, "use true or false")),
    };
    let body = trace_body(&st, p.project(), trace_id(&id)?, with_analysis).await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

pub(super) async fn export_trace(
    State(st): State<AppState>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let p = Params::parse(q)?;
    let tid = trace_id(&id)?;
    let body = trace_body(&st, p.project(), tid, false).await?;
    let disposition = format!("attachment; filename=\"trace-{tid}.json\"");
    Ok((
        [
            (header::CONTENT_TYPE, "application/json".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response())
}

/// One canonical span of a trace, with all its payloads, answered with the stored JSON as is.
pub(super) async fn trace_span(
    State(st): State<AppState>,
    Path((id, span)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let p = Params::parse(q)?;
    let (project, tid) = (p.project(), trace_id(&id)?);
    let sid = SpanId::from_hex(&span).map_err(|e| bad("span_id", &span, &e.to_string()))?;
    let detail = st
        .store
        .get_trace_json(&project, tid)
        .await?
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no trace {tid}")))?;
    // Parsing the spans is CPU work: off the async workers.
    let body = tokio::task::spawn_blocking(move || -> Result<String, ApiError> {
        let hex = sid.to_hex();
        // A cheap substring test finds the candidates (a link may name the id too); the
        // parsed id decides.
        let needle = format!("\"span_id\":\"{hex}\"");
        for raw in detail.spans.into_iter().filter(|r| r.contains(&needle)) {
            // A body that does not parse is not the span asked for, whatever it contains.
            if serde_json::from_str::<TreeSource>(&raw).is_ok_and(|s| s.span_id == hex) {
                return Ok(raw);
            }
        }
        if let Some(u) = detail
            .unreadable
            .iter()
            .find(|u| u.span_id.as_deref() == Some(hex.as_str()))
        {
            return Err(ApiError(
                StatusCode::NOT_FOUND,
                format!(
                    "span {sid} of trace {tid} is stored but cannot be read: {}",
                    u.reason
                ),
            ));
        }
        Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no span {sid} in trace {tid}"),
        ))
    })
    .await
    .map_err(internal)??;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}
