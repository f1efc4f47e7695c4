//! The HTTP side: OTLP/HTTP, OpenAI Agents and Langfuse ingest, the JSON query API, the live
//! stream, the OpenAPI document and the web UI.

use crate::ingest::{self, otlp_encoding, Encoding, IngestError, IngestOutcome, Received};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::StreamExt;
use prost::Message;
use serde_json::{json, Value};
use spanlens_core::analysis::SpanTiming;
use spanlens_core::otlp::proto::{
    ExportLogsPartialSuccess, ExportLogsServiceResponse, ExportTracePartialSuccess,
    ExportTraceServiceResponse,
};
use spanlens_core::recovery::Buckets;
use spanlens_core::{
    analyze, InputFormat, NanoUsd, PriceCatalog, Span, SpanId, SpanKind, Status, Timestamp, TraceId,
};
use spanlens_store::{
    GroupBy, ListQuery, MetricsQuery, SessionQuery, SortField, SortOrder, StoreError,
    TraceDetailJson, TraceSummary, UnreadableSpan, DEFAULT_PROJECT, MAX_PAGE_SIZE,
};
use std::collections::HashMap;

/// Largest compressed body read before decompression (the decompressed cap is checked after).
const MAX_WIRE_BYTES: usize = ingest::MAX_BODY_BYTES;

/// Largest body of a scores request (scores are small; a million of them fit).
const MAX_SCORES_BYTES: usize = 16 * 1024 * 1024;

/// The OpenAPI document of the JSON API.
pub const OPENAPI_JSON: &str = include_str!("openapi.json");

/// Every HTTP route of the server.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/traces", post(otlp_traces))
        .route("/api/public/otel/v1/traces", post(otlp_traces))
        .route("/v1/traces/ingest", post(agents_ingest))
        .route("/v1/logs", post(otlp_logs))
        .route("/api/v1/traces", get(list_traces))
        .route("/api/v1/traces/outcomes", get(trace_outcomes))
        .route("/api/v1/traces/{trace_id}", get(get_trace))
        .route("/api/v1/traces/{trace_id}/export", get(export_trace))
        .route("/api/v1/traces/{trace_id}/tree", get(trace_tree))
        .route("/api/v1/traces/{trace_id}/spans/{span_id}", get(trace_span))
        .route("/api/v1/sessions", get(list_sessions))
        .route("/api/v1/sessions/{session_id}", get(get_session))
        .route("/api/v1/metrics", get(metrics))
        .route("/api/v1/metrics/{group_by}", get(metrics_grouped))
        .route("/api/v1/recovery", get(recovery))
        .route("/api/v1/models", get(models))
        .route("/api/v1/forecast", get(crate::insight::forecast_handler))
        .route(
            "/api/v1/reconciliation",
            get(crate::insight::reconciliation_handler),
        )
        .route("/api/v1/projects", get(projects))
        .route("/api/v1/stats", get(stats))
        .route("/api/v1/live", get(live))
        .route("/api/v1/alerts", get(alerts))
        .route("/api/v1/scores", get(list_scores).post(create_scores))
        .route("/api/v1/scores/trends", get(score_trends))
        .route("/api/v1/openapi.json", get(openapi))
        .route("/healthz", get(|| async { "ok" }))
        .layer(DefaultBodyLimit::max(MAX_WIRE_BYTES))
        .with_state(state.clone())
        // The web UI's pages and assets; its paths never overlap the API's, so nothing is shadowed.
        .merge(spanlens_ui::router())
        // Outermost, so the UI is covered too: a rebound host name must not read it either.
        .layer(axum::middleware::from_fn_with_state(
            state.access().clone(),
            crate::access::guard,
        ))
}

// ---------------------------------------------------------------------------------------------
// Ingest

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn project_header(h: &HeaderMap) -> Option<String> {
    header_str(h, "x-project-name")
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_string)
}

fn content_length(h: &HeaderMap) -> Option<u64> {
    header_str(h, "content-length").and_then(|v| v.trim().parse().ok())
}

/// Reads an ingest body under the server's limits (size, time, in-flight budget).
async fn receive(st: &AppState, headers: &HeaderMap, body: Body) -> Result<Received, IngestError> {
    let (body, held) = ingest::read_body(st, content_length(headers), body, MAX_WIRE_BYTES).await?;
    Ok(Received {
        body,
        content_encoding: header_str(headers, "content-encoding").map(str::to_string),
        held,
    })
}

/// An OTLP error body: a `google.rpc.Status` in the request's encoding.
fn otlp_error(enc: Encoding, e: &IngestError) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let code = match e.status() {
        400 => 3, // INVALID_ARGUMENT
        408 => 4, // DEADLINE_EXCEEDED
        413 => 8, // RESOURCE_EXHAUSTED
        415 => 3,
        503 => 14, // UNAVAILABLE
        _ => 13,   // INTERNAL
    };
    let mut resp = match enc {
        Encoding::Json => (
            status,
            Json(json!({"code": code, "message": e.to_string()})),
        )
            .into_response(),
        Encoding::Protobuf => {
            // `google.rpc.Status`, the error body OTLP/HTTP prescribes.
            let body = crate::grpc::RpcStatus {
                code,
                message: e.to_string(),
                details: Vec::new(),
            }
            .encode_to_vec();
            (
                status,
                [(header::CONTENT_TYPE, "application/x-protobuf")],
                body,
            )
                .into_response()
        }
    };
    if e.is_retryable() {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    resp
}

async fn otlp_traces(State(st): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let enc = match otlp_encoding(header_str(&headers, "content-type")) {
        Ok(e) => e,
        Err(e) => return otlp_error(Encoding::Json, &e),
    };
    let result = async {
        let received = receive(&st, &headers, body).await?;
        let format = match enc {
            Encoding::Protobuf => InputFormat::OtlpProtobuf,
            Encoding::Json => InputFormat::OtlpJson,
        };
        ingest::ingest(&st, format, received, project_header(&headers)).await
    }
    .await;
    match result {
        Ok(outcome) => otlp_success(enc, &outcome),
        Err(e) => otlp_error(enc, &e),
    }
}

/// OTLP/HTTP logs: the GenAI events among the records are kept for their spans.
async fn otlp_logs(State(st): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let enc = match otlp_encoding(header_str(&headers, "content-type")) {
        Ok(e) => e,
        Err(e) => return otlp_error(Encoding::Json, &e),
    };
    let result = async {
        let received = receive(&st, &headers, body).await?;
        ingest::ingest_logs(&st, enc, received, project_header(&headers)).await
    }
    .await;
    let o = match result {
        Ok(o) => o,
        Err(e) => return otlp_error(enc, &e),
    };
    let partial = (o.rejected > 0).then(|| ExportLogsPartialSuccess {
        rejected_log_records: o.rejected as i64,
        error_message: o.message.clone(),
    });
    match enc {
        Encoding::Protobuf => {
            let body = ExportLogsServiceResponse {
                partial_success: partial,
            }
            .encode_to_vec();
            ([(header::CONTENT_TYPE, "application/x-protobuf")], body).into_response()
        }
        Encoding::Json => match partial {
            Some(p) => Json(json!({"partialSuccess": {
                "rejectedLogRecords": p.rejected_log_records.to_string(),
                "errorMessage": p.error_message}}))
            .into_response(),
            None => Json(json!({})).into_response(),
        },
    }
}

fn otlp_success(enc: Encoding, o: &IngestOutcome) -> Response {
    let partial = (o.rejected > 0).then(|| ExportTracePartialSuccess {
        rejected_spans: o.rejected as i64,
        error_message: o.message.clone(),
    });
    match enc {
        Encoding::Protobuf => {
            let body = ExportTraceServiceResponse {
                partial_success: partial,
            }
            .encode_to_vec();
            ([(header::CONTENT_TYPE, "application/x-protobuf")], body).into_response()
        }
        Encoding::Json => match partial {
            Some(p) => Json(json!({"partialSuccess": {
                "rejectedSpans": p.rejected_spans.to_string(), "errorMessage": p.error_message}}))
            .into_response(),
            None => Json(json!({})).into_response(),
        },
    }
}

async fn agents_ingest(State(st): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let result = async {
        // No content type is refused too: a browser sends a body without one (or as
        // text/plain) cross-origin without asking first, JSON it must ask for.
        match ingest::media_type(header_str(&headers, "content-type")).as_str() {
            "application/json" => {}
            other => return Err(IngestError::UnsupportedMediaType(other.to_string())),
        }
        let received = receive(&st, &headers, body).await?;
        ingest::ingest(
            &st,
            InputFormat::OpenAiAgents,
            received,
            project_header(&headers),
        )
        .await
    }
    .await;
    match result {
        Ok(o) => Json(json!({"accepted": o.accepted, "rejected": o.rejected, "errors": o.message}))
            .into_response(),
        Err(e) => otlp_error(Encoding::Json, &e),
    }
}

// ---------------------------------------------------------------------------------------------
// Query API

/// A 4xx/5xx JSON error of the query API.
pub(crate) struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1}))).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::Busy { .. } => ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
            StoreError::InvalidQuery(_) | StoreError::InvalidCursor(_) => {
                ApiError(StatusCode::BAD_REQUEST, e.to_string())
            }
            other => ApiError(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
        }
    }
}

pub(crate) fn bad(param: &str, value: &str, why: &str) -> ApiError {
    ApiError(
        StatusCode::BAD_REQUEST,
        format!("invalid {param}={value:?}: {why}"),
    )
}

/// Query parameters, repeated keys kept (`tag=a&tag=b`).
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    pub(crate) fn parse(raw: Option<String>) -> Result<Params, ApiError> {
        let raw = raw.unwrap_or_default();
        serde_urlencoded::from_str::<Vec<(String, String)>>(&raw)
            .map(Params)
            .map_err(|e| {
                ApiError(
                    StatusCode::BAD_REQUEST,
                    format!("invalid query string: {e}"),
                )
            })
    }

    pub(crate) fn get(&self, keys: &[&str]) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| keys.contains(&k.as_str()))
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    pub(crate) fn string(&self, keys: &[&str]) -> Option<String> {
        self.get(keys).map(str::to_string)
    }

    pub(crate) fn project(&self) -> String {
        self.string(&["project"])
            .unwrap_or_else(|| DEFAULT_PROJECT.to_string())
    }

    /// A time as RFC 3339 or integer nanoseconds since the epoch.
    pub(crate) fn time(&self, key: &str) -> Result<Option<Timestamp>, ApiError> {
        let Some(v) = self.get(&[key]) else {
            return Ok(None);
        };
        if let Ok(ns) = v.parse::<u64>() {
            return Ok(Some(Timestamp(ns)));
        }
        Timestamp::parse_rfc3339(v)
            .map(Some)
            .map_err(|e| bad(key, v, &format!("{e}; use RFC 3339 or nanoseconds")))
    }

    fn number<T: std::str::FromStr>(&self, key: &str) -> Result<Option<T>, ApiError> {
        match self.get(&[key]) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| bad(key, v, "not a number")),
        }
    }

    /// An amount in USD (a non-negative decimal) as exact nano-USD.
    fn usd(&self, key: &str) -> Result<Option<NanoUsd>, ApiError> {
        match self.number::<f64>(key)? {
            None => Ok(None),
            Some(usd) if usd >= 0.0 => NanoUsd::from_usd_f64(usd)
                .map(Some)
                .ok_or_else(|| bad(key, &usd.to_string(), "not an amount")),
            Some(usd) => Err(bad(key, &usd.to_string(), "a cost cannot be negative")),
        }
    }

    fn ms_as_ns(&self, key: &str) -> Result<Option<u64>, ApiError> {
        Ok(self
            .number::<f64>(key)?
            .filter(|v| v.is_finite() && *v >= 0.0)
            .map(|ms| (ms * 1e6) as u64))
    }

    fn kind(&self) -> Result<Option<SpanKind>, ApiError> {
        match self.get(&["kind"]) {
            None => Ok(None),
            Some(v) => SpanKind::parse(v)
                .map(Some)
                .ok_or_else(|| bad("kind", v, "unknown kind")),
        }
    }

    fn limit(&self) -> Result<u32, ApiError> {
        let n = self
            .number::<u32>("limit")?
            .unwrap_or(spanlens_store::DEFAULT_PAGE_SIZE);
        if n == 0 || n > MAX_PAGE_SIZE {
            return Err(bad(
                "limit",
                &n.to_string(),
                &format!("must be 1..={MAX_PAGE_SIZE}"),
            ));
        }
        Ok(n)
    }
}

/// A trace-list row with the field names the API promises (see openapi.json, TraceRow).
fn trace_row(t: &TraceSummary) -> Value {
    json!({
        "trace_id": t.trace_id,
        "project": t.project,
        "name": t.name,
        "start_time": t.start_time,
        "end_time": t.end_time,
        "duration_ms": t.duration_ns as f64 / 1e6,
        "status": t.status,
        "span_count": t.span_count,
        "error_count": t.error_count,
        "input_tokens": t.input_tokens,
        "output_tokens": t.output_tokens,
        "total_tokens": t.total_tokens,
        "total_cost_usd": t.total_cost.as_usd_f64(),
        "total_cost_nano_usd": t.total_cost.0,
        "unpriced_span_count": t.unpriced_span_count,
        "user_id": t.user_id,
        "session_id": t.session_id,
        "tags": t.tags,
        "root_span_id": t.root_span_id,
        "service": t.service,
    })
}

async fn list_traces(
    State(st): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let query = list_query(&Params::parse(q)?)?;
    let page = st.store.list_traces(&query).await?;
    Ok(Json(json!({
        "items": page.items.iter().map(trace_row).collect::<Vec<_>>(),
        "next_cursor": page.next_cursor,
    })))
}

/// `GET /api/v1/traces/outcomes`: how many of the traces the list's filters match failed and
/// how many recovered from errors (the status filter is ignored: these are its choices).
async fn trace_outcomes(
    State(st): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<Json<spanlens_store::TraceOutcomes>, ApiError> {
    let query = list_query(&Params::parse(q)?)?;
    Ok(Json(st.store.trace_outcomes(&query).await?))
}

/// The trace list's query parameters as a store query.
fn list_query(p: &Params) -> Result<ListQuery, ApiError> {
    let mut query = ListQuery::new(p.project());
    let f = &mut query.filter;
    f.from = p.time("from")?;
    f.to = p.time("to")?;
    f.name = p.string(&["name"]);
    f.kind = p.kind()?;
    f.status = match p.get(&["status"]) {
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
    f.model = p.string(&["model"]);
    f.provider = p.string(&["provider"]);
    f.user_id = p.string(&["user", "user_id"]);
    f.session_id = p.string(&["session", "session_id"]);
    f.tags = p.all("tag");
    f.min_duration_ns = p.ms_as_ns("min_duration_ms")?;
    f.max_duration_ns = p.ms_as_ns("max_duration_ms")?;
    f.min_cost = p.usd("min_cost")?;
    f.max_cost = p.usd("max_cost")?;
    if let Some(name) = p.string(&["score_name", "score"]) {
        f.score = Some(spanlens_store::ScoreFilter {
            name,
            min: p.number::<f64>("score_min")?,
            max: p.number::<f64>("score_max")?,
            label: p.string(&["score_label"]),
        });
    } else if let Some(k) = ["score_min", "score_max", "score_label"]
        .into_iter()
        .find(|k| p.get(&[k]).is_some())
    {
        return Err(bad(k, p.get(&[k]).unwrap_or(""), "needs score_name"));
    }
    f.text = p.string(&["q", "text"]);
    if let Some(s) = p.get(&["sort"]) {
        query.sort = SortField::parse(s).ok_or_else(|| {
            bad(
                "sort",
                s,
                "use start_time, duration, cost, tokens, span_count, name, status or user",
            )
        })?;
    }
    if let Some(o) = p.get(&["order"]) {
        query.order = SortOrder::parse(o).ok_or_else(|| bad("order", o, "use asc or desc"))?;
    }
    query.limit = p.limit()?;
    query.cursor = p.string(&["cursor"]);
    Ok(query)
}

fn trace_id(raw: &str) -> Result<TraceId, ApiError> {
    TraceId::from_hex(raw).map_err(|e| bad("trace_id", raw, &e.to_string()))
}

/// `{"trace": summary, "spans": [...]}` built from the stored span JSON without re-encoding it,
/// with `"analysis"` (see `spanlens_core::analysis`) when `with_analysis` is set.
async fn trace_body(
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
    out.push_str(&trace_row(&detail.summary).to_string());
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

/// Adds `"unreadable_spans": [...]` to an answer being built, when a stored span had to be
/// left out: the reader learns what is missing instead of getting a 500 for the whole trace.
fn push_unreadable(out: &mut String, unreadable: &[UnreadableSpan]) -> Result<(), ApiError> {
    if !unreadable.is_empty() {
        out.push_str(",\"unreadable_spans\":");
        out.push_str(&serde_json::to_string(unreadable).map_err(internal)?);
    }
    Ok(())
}

/// Keeps the items at `keep` (ascending indices), in order.
fn retain_indices<T>(items: &mut Vec<T>, keep: &[usize]) {
    let mut next = keep.iter().peekable();
    let mut i = 0;
    items.retain(|_| {
        let hit = next.peek() == Some(&&i);
        if hit {
            next.next();
        }
        i += 1;
        hit
    });
}

/// The stored spans of a trace that parse as canonical spans, each with its index in
/// `detail.spans`, its tree row source and the span the analysis needs; the others are
/// reported as unreadable (a body from a damaged database or a build with other rules).
fn readable_spans(
    detail: &TraceDetailJson,
) -> (Vec<(usize, TreeSource<'_>, Span)>, Vec<UnreadableSpan>) {
    let mut readable = Vec::with_capacity(detail.spans.len());
    let mut unreadable = Vec::new();
    let trace_id = detail.summary.trace_id.to_hex();
    for (i, raw) in detail.spans.iter().enumerate() {
        let parsed = serde_json::from_str::<TreeSource>(raw)
            .map_err(|e| e.to_string())
            .and_then(|src| analysis_span(&src).map(|span| (src, span)));
        match parsed {
            Ok((src, span)) => readable.push((i, src, span)),
            Err(reason) => unreadable.push(UnreadableSpan {
                span_id: None,
                trace_id: trace_id.clone(),
                reason: format!("stored span is not canonical JSON: {reason}"),
            }),
        }
    }
    (readable, unreadable)
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

async fn get_trace(
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

async fn export_trace(
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

/// The fields of a stored span that a waterfall row needs; everything else in the span's
/// JSON (payloads, messages, attributes) is skipped by the parser without being built.
#[derive(serde::Deserialize)]
struct TreeSource<'a> {
    #[serde(borrow)]
    span_id: std::borrow::Cow<'a, str>,
    #[serde(borrow, default)]
    parent_span_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    name: std::borrow::Cow<'a, str>,
    #[serde(default)]
    kind: SpanKind,
    start_time: Timestamp,
    #[serde(default)]
    end_time: Option<Timestamp>,
    #[serde(default)]
    status: Status,
    #[serde(borrow, default)]
    status_message: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    error_type: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    request_model: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    response_model: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    usage: Option<TreeUsage>,
    #[serde(default)]
    cost: Option<TreeCost>,
    /// Only whether it is set matters; the reason is not read.
    #[serde(default)]
    unpriced_reason: Option<serde::de::IgnoredAny>,
    #[serde(borrow, default)]
    agent_name: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    events: Vec<TreeEvent>,
    #[serde(default)]
    attributes: TreeAttributes,
    #[serde(borrow, default)]
    duplicate_of: Option<std::borrow::Cow<'a, str>>,
}

/// The time of an event: the analysis needs it to find the latest known time of a trace.
#[derive(serde::Deserialize)]
struct TreeEvent {
    time: Timestamp,
}

/// The attributes the analysis reads (item counts); all others are skipped unbuilt.
#[derive(serde::Deserialize, Default)]
struct TreeAttributes {
    #[serde(rename = "spanlens.items", default)]
    items: Option<Value>,
    #[serde(rename = "items.count", default)]
    items_count: Option<Value>,
}

/// The span the analysis needs, rebuilt from the fields a tree row parses.
fn analysis_span(s: &TreeSource<'_>) -> Result<Span, String> {
    let id = |hex: &str| SpanId::from_hex(hex).map_err(|e| format!("span id {hex:?}: {e}"));
    let mut attributes = spanlens_core::Attributes::new();
    for (k, v) in [
        ("spanlens.items", &s.attributes.items),
        ("items.count", &s.attributes.items_count),
    ] {
        if let Some(v) = v {
            attributes.insert(k.to_string(), v.clone());
        }
    }
    Ok(Span {
        span_id: id(&s.span_id)?,
        parent_span_id: s.parent_span_id.as_deref().map(id).transpose()?,
        name: s.name.to_string(),
        kind: s.kind,
        start_time: s.start_time,
        end_time: s.end_time,
        status: s.status,
        agent_name: s.agent_name.as_deref().map(str::to_string),
        events: s
            .events
            .iter()
            .map(|e| spanlens_core::Event {
                name: String::new(),
                time: e.time,
                attributes: Default::default(),
            })
            .collect(),
        attributes,
        ..Default::default()
    })
}

#[derive(serde::Deserialize)]
struct TreeUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
}

#[derive(serde::Deserialize)]
struct TreeCost {
    #[serde(default)]
    total_usd: NanoUsd,
}

/// One span of the `tree` view (documented as `TreeNode` in openapi.json).
#[derive(serde::Serialize)]
struct TreeNode<'a> {
    span_id: std::borrow::Cow<'a, str>,
    parent_span_id: Option<std::borrow::Cow<'a, str>>,
    name: std::borrow::Cow<'a, str>,
    kind: &'static str,
    status: Status,
    start_ms: f64,
    duration_ms: Option<f64>,
    model: Option<std::borrow::Cow<'a, str>>,
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cost_usd: Option<f64>,
    /// A model call the catalog could not price: no cost, and not $0 either.
    unpriced: bool,
    error: bool,
    /// A failed span's error, `type: message`, cut to [`TREE_ERROR_CHARS`] (the row's tooltip and
    /// the trace header's "first error" read it without opening the span).
    #[serde(skip_serializing_if = "Option::is_none")]
    error_message: Option<String>,
    /// Duration not covered by any child, ms (an unclosed span runs to the trace's latest time).
    self_ms: Option<f64>,
    /// On the critical path.
    critical: bool,
    /// The span has no end time yet.
    unclosed: bool,
    /// The span recorded the same provider call as this one, which is counted in its place.
    #[serde(skip_serializing_if = "Option::is_none")]
    duplicate_of: Option<std::borrow::Cow<'a, str>>,
}

impl<'a> TreeNode<'a> {
    fn of(s: TreeSource<'a>, trace_start: u64, timing: Option<&SpanTiming>) -> TreeNode<'a> {
        TreeNode {
            self_ms: timing.map(|t| t.self_ms),
            critical: timing.is_some_and(|t| t.critical),
            unclosed: s.end_time.is_none(),
            span_id: s.span_id,
            parent_span_id: s.parent_span_id,
            name: s.name,
            kind: s.kind.as_str(),
            start_ms: s.start_time.0.saturating_sub(trace_start) as f64 / 1e6,
            duration_ms: s
                .end_time
                .map(|e| e.0.saturating_sub(s.start_time.0) as f64 / 1e6),
            model: s.response_model.or(s.request_model),
            input_tokens: s.usage.as_ref().map(|u| u.input_tokens),
            output_tokens: s.usage.as_ref().map(|u| u.output_tokens),
            cost_usd: s.cost.map(|c| c.total_usd.as_usd_f64()),
            unpriced: s.unpriced_reason.is_some(),
            error: s.status == Status::Error,
            error_message: (s.status == Status::Error)
                .then(|| error_summary(s.error_type.as_deref(), s.status_message.as_deref())),
            status: s.status,
            duplicate_of: s.duplicate_of,
        }
    }
}

/// Characters of a failed span's error kept in the tree view (the span panel has all of it).
const TREE_ERROR_CHARS: usize = 300;

/// `type: message` of a failed span, cut on a character boundary to [`TREE_ERROR_CHARS`].
fn error_summary(error_type: Option<&str>, message: Option<&str>) -> String {
    let text = match (error_type, message) {
        (Some(t), Some(m)) => format!("{t}: {m}"),
        (Some(t), None) => t.to_string(),
        (None, Some(m)) => m.to_string(),
        (None, None) => "error".to_string(),
    };
    match text.char_indices().nth(TREE_ERROR_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// The trace's shape without payloads: a waterfall of 10,000 spans paints from this, and a
/// span's full record is fetched only when it is opened (`/spans/{span_id}`). Built from the
/// stored JSON with a parser that skips the payloads, which is most of each span's bytes.
async fn trace_tree(
    State(st): State<AppState>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let p = Params::parse(q)?;
    let (project, tid) = (p.project(), trace_id(&id)?);
    let detail = st
        .store
        .get_trace_json(&project, tid)
        .await?
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no trace {tid}")))?;
    // Parsing the spans is CPU work: off the async workers.
    let body = tokio::task::spawn_blocking(move || -> Result<String, ApiError> {
        let start = detail.summary.start_time.0;
        let (readable, mut unreadable) = readable_spans(&detail);
        unreadable.extend(detail.unreadable.iter().cloned());
        let (sources, spans): (Vec<TreeSource>, Vec<Span>) = readable
            .into_iter()
            .map(|(_, src, span)| (src, span))
            .unzip();
        let analysis = analyze(&spans);
        let timings: HashMap<&str, &SpanTiming> = analysis
            .spans
            .iter()
            .map(|t| (t.span_id.as_str(), t))
            .collect();
        let nodes: Vec<TreeNode> = sources
            .into_iter()
            .map(|s| {
                let t = timings.get(&*s.span_id).copied();
                TreeNode::of(s, start, t)
            })
            .collect();
        let summary = json!({
            "wall_ms": analysis.wall_ms,
            "critical_path": analysis.critical_path.iter().map(|c| &c.span_id).collect::<Vec<_>>(),
            "critical_path_ms": analysis.critical_path_ms,
            "coordination_overhead_ms": analysis.coordination_overhead_ms,
            "parallelism_efficiency": analysis.parallelism_efficiency,
            "parallel_groups": analysis.parallel_groups.len(),
            "unclosed_span_ids": analysis.unclosed_span_ids,
            "orphan_span_ids": analysis.orphan_span_ids,
            "clock_skew_span_ids": analysis.clock_skew_span_ids,
        });
        let spans = serde_json::to_string(&nodes).map_err(internal)?;
        let mut out = format!(
            "{{\"trace\":{},\"spans\":{spans},\"analysis\":{summary}",
            trace_row(&detail.summary)
        );
        push_unreadable(&mut out, &unreadable)?;
        out.push('}');
        Ok(out)
    })
    .await
    .map_err(internal)??;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// One canonical span of a trace, with all its payloads, answered with the stored JSON as is.
async fn trace_span(
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

async fn list_sessions(
    State(st): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let p = Params::parse(q)?;
    let mut query = SessionQuery::new(p.project());
    query.from = p.time("from")?;
    query.to = p.time("to")?;
    query.user_id = p.string(&["user", "user_id"]);
    query.limit = p.limit()?;
    query.cursor = p.string(&["cursor"]);
    let page = st.store.list_sessions(&query).await?;
    Ok(Json(
        json!({"items": page.items, "next_cursor": page.next_cursor}),
    ))
}

async fn get_session(
    State(st): State<AppState>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let p = Params::parse(q)?;
    let project = p.project();
    let detail = st
        .store
        .get_session(&project, &id)
        .await?
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no session {id:?}")))?;
    Ok(Json(json!({
        "session": detail.session,
        "traces": detail.traces.iter().map(trace_row).collect::<Vec<_>>(),
    })))
}

async fn metrics_query(
    st: AppState,
    p: Params,
    group: Option<String>,
) -> Result<Json<Value>, ApiError> {
    let group_by = match group.as_deref().or(p.get(&["group_by"])) {
        None => GroupBy::All,
        Some(g) => GroupBy::parse(g).ok_or_else(|| {
            bad(
                "group_by",
                g,
                "use all, model, provider, agent, user, day, kind or tool",
            )
        })?,
    };
    let mut query = MetricsQuery::new(p.project(), group_by);
    query.from = p.time("from")?;
    query.to = p.time("to")?;
    query.kind = p.kind()?;
    query.model = p.string(&["model"]);
    query.provider = p.string(&["provider"]);
    let buckets = p.number::<u32>("buckets")?;
    let Some(n) = buckets else {
        let rows = st.store.metrics(&query).await?;
        return Ok(Json(json!({"group_by": group_by.as_str(), "rows": rows})));
    };
    // Time series (the dashboard's cost over time by model): the same grouping for each equal
    // slice of [from, to), answered by the store in one pass.
    let (Some(from), Some(to)) = (query.from, query.to) else {
        return Err(bad("buckets", &n.to_string(), "needs both from and to"));
    };
    if n == 0 || n > MAX_BUCKETS || to.0 <= from.0 {
        return Err(bad(
            "buckets",
            &n.to_string(),
            &format!("must be 1..={MAX_BUCKETS}, with from before to"),
        ));
    }
    let step = (to.0 - from.0).div_ceil(u64::from(n));
    let mut bounds = vec![from];
    for i in 0..u64::from(n) {
        let start = from.0 + i * step;
        let end = (start + step).min(to.0);
        if start >= end {
            break;
        }
        bounds.push(Timestamp(end));
    }
    let all = st.store.metrics_series(&query, &bounds).await?;
    let series: Vec<Value> = bounds
        .windows(2)
        .zip(all.slices)
        .map(|(w, rows)| json!({"from": w[0].to_rfc3339(), "to": w[1].to_rfc3339(), "rows": rows}))
        .collect();
    let rows = all.rows;
    Ok(Json(json!({
        "group_by": group_by.as_str(),
        "rows": rows,
        "buckets": series,
    })))
}

/// Most time slices one metrics request may ask for.
const MAX_BUCKETS: u32 = 200;

async fn metrics(
    State(st): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    metrics_query(st, Params::parse(q)?, None).await
}

async fn metrics_grouped(
    State(st): State<AppState>,
    Path(group): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    metrics_query(st, Params::parse(q)?, Some(group)).await
}

async fn models() -> Json<Value> {
    let c = PriceCatalog::builtin();
    let rows: Vec<Value> = c
        .entries()
        .iter()
        .map(|e| {
            let per_m = |n: i64| n as f64 / 1e9;
            json!({
                "id": e.id, "provider": e.provider, "kind": e.kind, "match": e.pattern,
                "valid_from": e.valid_from,
                "input_per_million_usd": per_m(e.rates.input),
                "output_per_million_usd": per_m(e.rates.output),
                "cache_read_per_million_usd": e.rates.cache_read.map(per_m),
                "cache_write_per_million_usd": e.rates.cache_write.map(per_m),
                "cache_write_1h_per_million_usd": e.rates.cache_write_1h.map(per_m),
                "reasoning_per_million_usd": e.rates.reasoning.map(per_m),
                "tiers": e.tiers.iter().map(|t| json!({
                    "above_input_tokens": t.above_input_tokens,
                    "input_per_million_usd": per_m(t.rates.input),
                    "output_per_million_usd": per_m(t.rates.output),
                })).collect::<Vec<_>>(),
                "source": e.source, "checked": e.checked,
            })
        })
        .collect();
    Json(json!({"version": c.version(), "models": rows}))
}

async fn projects(State(st): State<AppState>) -> Result<Json<Value>, ApiError> {
    let list = st.store.projects().await?;
    Ok(Json(json!({"projects": list})))
}

async fn stats(State(st): State<AppState>, RawQuery(q): RawQuery) -> Result<Json<Value>, ApiError> {
    let p = Params::parse(q)?;
    let project = p.project();
    let spans = st.store.count_spans(&project).await?;
    Ok(Json(json!({"project": project, "span_count": spans})))
}

/// Alert rules with their state: what was measured last, what was announced, delivery errors.
async fn alerts(State(state): State<AppState>) -> Json<Value> {
    Json(match state.alerts() {
        Some(views) => json!({"configured": true, "alerts": views}),
        None => json!({"configured": false, "alerts": []}),
    })
}

async fn live(
    State(st): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<Sse<impl futures_util::Stream<Item = Result<Event, std::convert::Infallible>>>, ApiError>
{
    let p = Params::parse(q)?;
    let project = p.string(&["project"]);
    let rx = st.subscribe();
    let stopped = st.stopped();
    let stream = tokio_stream::wrappers::BroadcastStream::new(rx)
        .take_until(stopped)
        .filter_map(move |item| {
            let project = project.clone();
            async move {
                match item {
                    Ok(span) if project.as_deref().is_none_or(|p| p == span.project) => {
                        Some(Ok(Event::default()
                            .event("span")
                            .json_data(&*span)
                            .unwrap_or_else(|_| {
                                Event::default().comment("unserialisable span")
                            })))
                    }
                    Ok(_) => None,
                    // A slow client missed events: say so instead of silently skipping them.
                    Err(tokio_stream::wrappers::errors::BroadcastStreamRecvError::Lagged(n)) => {
                        Some(Ok(Event::default().event("lagged").data(n.to_string())))
                    }
                }
            }
        });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON).into_response()
}

/// `POST /api/v1/scores`: one score object or an array; `source` defaults to `api`.
async fn create_scores(
    State(st): State<AppState>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
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
    let project = headers
        .get("x-project-name")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| p.project());
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
    let ids = st.store.add_scores(&project, &scores).await?;
    Ok((StatusCode::CREATED, Json(json!({"ids": ids}))))
}

/// `GET /api/v1/scores?trace_id=&span_id=&session_id=&name=&limit=`
async fn list_scores(
    State(st): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
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
    let scores = st.store.list_scores(&query).await?;
    Ok(Json(json!({"items": scores})))
}

/// `GET /api/v1/scores/trends?from=&to=`: per score name and day, count and mean (pass rate).
async fn score_trends(
    State(st): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let p = Params::parse(q)?;
    let (project, from, to) = (p.project(), p.time("from")?, p.time("to")?);
    let rows = st.store.score_trends(&project, from, to).await?;
    Ok(Json(json!({"rows": rows})))
}

/// Default look-back of the recovery report when `from` is not given.
const RECOVERY_DEFAULT_NS: u64 = 7 * 24 * 3_600 * 1_000_000_000;

/// Error recovery over a time range (see `spanlens_core::recovery`), exact over the whole
/// range: the store reads the retried spans and the rate-limit snapshots of the spans that
/// started in `[from, to)` from typed rows and rollups, and decodes only the bodies of the
/// timelines it shows.
async fn recovery(
    State(st): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let p = Params::parse(q)?;
    let to = p.time("to")?.unwrap_or_else(ingest::now);
    let from = p
        .time("from")?
        .unwrap_or(Timestamp(to.0.saturating_sub(RECOVERY_DEFAULT_NS)));
    if from.0 >= to.0 {
        return Err(bad(
            "from",
            &from.to_rfc3339(),
            &format!("must be before to={}", to.to_rfc3339()),
        ));
    }
    let buckets = p.number::<u32>("buckets")?.unwrap_or(24);
    if buckets == 0 || buckets > MAX_BUCKETS {
        return Err(bad(
            "buckets",
            &buckets.to_string(),
            &format!("must be 1..={MAX_BUCKETS}"),
        ));
    }
    let project = p.project();
    let buckets = Buckets {
        from,
        to,
        count: buckets,
    };
    let report = st.store.recovery_report(&project, buckets).await?;
    let mut body = serde_json::to_value(&report)
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    if let Value::Object(m) = &mut body {
        m.insert("project".into(), json!(project));
        m.insert("from".into(), json!(from));
        m.insert("to".into(), json!(to));
    }
    Ok(Json(body))
}
