//! `/api/v1/scores`: create, list and trend evaluation scores.

use super::error::{bad, ApiError};
use super::params::{content_length, header_str, Params};
use crate::ingest::{self, IngestError};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Value};
use spanlens_api::{ScoreIds, ScoreList, ScoreTrends};
use spanlens_core::{SpanId, TraceId};

/// Largest body of a scores request (scores are small; a million of them fit).
pub(super) const MAX_SCORES_BYTES: usize = 16 * 1024 * 1024;

/// `POST /api/v1/scores`: one score object or an array; `source` defaults to `api`.
pub(super) async fn create_scores(
    State(st): State<AppState>,
    caller: Option<axum::Extension<crate::auth::Caller>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<ScoreIds>), ApiError> {
    let p = Params::parse(q)?;
    let ingest_error = |e: IngestError| {
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
        ApiError(status, e.to_string())
    };
    match ingest::media_type(header_str(&headers, "content-type")).as_str() {
        "application/json" => {}
        other => {
            return Err(ingest_error(IngestError::UnsupportedMediaType(
                other.to_string(),
            )))
        }
    }
    let (body, _held) = ingest::read_body(&st, content_length(&headers), body, MAX_SCORES_BYTES)
        .await
        .map_err(ingest_error)?;
    let project = super::collect::project_header(&headers, &caller).unwrap_or_else(|| p.project());
    let v: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("invalid JSON: {e}")))?;
    let items = match v {
        Value::Array(a) => a,
        obj @ Value::Object(_) => vec![obj],
        other => {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                format!("expected a score object or an array of them, got {other}"),
            ))
        }
    };
    let mut scores = Vec::with_capacity(items.len());
    for (i, mut item) in items.into_iter().enumerate() {
        if let Value::Object(m) = &mut item {
            m.entry("source").or_insert_with(|| json!("api"));
        }
        let s: spanlens_core::evals::Score = serde_json::from_value(item)
            .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("score [{i}]: {e}")))?;
        s.validate()
            .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("score [{i}]: {e}")))?;
        scores.push(s);
    }
    if let Some(policy) = st.redactions().for_project(&project) {
        for s in &mut scores {
            policy.apply_score(s);
        }
    }
    let ids = st.store.add_scores(&project, &scores).await?;
    Ok((StatusCode::CREATED, Json(ScoreIds { ids })))
}

/// `GET /api/v1/scores?trace_id=&span_id=&session_id=&name=&limit=`
pub(super) async fn list_scores(
    State(st): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<Json<ScoreList>, ApiError> {
    let p = Params::parse(q)?;
    let mut query = spanlens_store::ScoreQuery {
        project: p.project(),
        session_id: p.string(&["session_id", "session"]),
        name: p.string(&["name"]),
        limit: p.number::<usize>("limit")?,
        ..Default::default()
    };
    if let Some(t) = p.get(&["trace_id"]) {
        query.trace_id =
            Some(TraceId::from_hex(t).map_err(|e| bad("trace_id", t, &e.to_string()))?);
    }
    if let Some(s) = p.get(&["span_id"]) {
        query.span_id = Some(SpanId::from_hex(s).map_err(|e| bad("span_id", s, &e.to_string()))?);
    }
    let items = st.store.list_scores(&query).await?;
    Ok(Json(ScoreList { items }))
}

/// `GET /api/v1/scores/trends?from=&to=`: per score name and day, count and mean (pass rate).
pub(super) async fn score_trends(
    State(st): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<Json<ScoreTrends>, ApiError> {
    let p = Params::parse(q)?;
    let (project, from, to) = (p.project(), p.time("from")?, p.time("to")?);
    let rows = st.store.score_trends(&project, from, to).await?;
    Ok(Json(ScoreTrends { rows }))
}
