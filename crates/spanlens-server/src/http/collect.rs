//! Ingest over HTTP: OTLP/HTTP traces and logs (protobuf or JSON, gzip), the OpenAI Agents
//! exporter and Langfuse's OTLP path, answered the way each client expects.

use super::params::{content_length, header_str};
use crate::auth::Caller;
use crate::ingest::{self, otlp_encoding, Encoding, IngestError, IngestOutcome, Received};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use axum::Json;
use prost::Message;
use serde_json::json;
use spanlens_core::otlp::proto::{
    ExportLogsPartialSuccess, ExportLogsServiceResponse, ExportTracePartialSuccess,
    ExportTraceServiceResponse,
};
use spanlens_core::InputFormat;

/// Largest compressed body read before decompression (the decompressed cap is checked after).
pub(super) const MAX_WIRE_BYTES: usize = ingest::MAX_BODY_BYTES;

/// Where a request comes from: its key and project (the key's, else its `x-project-name`
/// header; else each span's resource decides).
pub(super) fn origin(h: &HeaderMap, caller: &Option<Extension<Caller>>) -> ingest::Origin {
    let key = match caller {
        Some(Extension(Caller {
            who: crate::auth::Who::Key(k),
            ..
        })) => Some(k.clone()),
        _ => None,
    };
    ingest::Origin {
        project: project_header(h, caller),
        key,
    }
}

/// The project a request writes to: its key's, else its `x-project-name` header (else each
/// span's resource decides).
pub(super) fn project_header(h: &HeaderMap, caller: &Option<Extension<Caller>>) -> Option<String> {
    let named = header_str(h, "x-project-name")
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_string);
    match caller {
        Some(Extension(c)) => c.project_or(named),
        None => named,
    }
}

/// Reads an ingest body under the server's limits (size, time, in-flight budget).
pub(super) async fn receive(
    st: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Received, IngestError> {
    let (body, held) = ingest::read_body(st, content_length(headers), body, MAX_WIRE_BYTES).await?;
    Ok(Received {
        body,
        content_encoding: header_str(headers, "content-encoding").map(str::to_string),
        held,
    })
}

/// An OTLP error body: a `google.rpc.Status` in the request's encoding.
pub(super) fn otlp_error(enc: Encoding, e: &IngestError) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let code = match e.status() {
        400 => 3,       // INVALID_ARGUMENT
        408 => 4,       // DEADLINE_EXCEEDED
        413 | 429 => 8, // RESOURCE_EXHAUSTED
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
            .insert(header::RETRY_AFTER, HeaderValue::from(e.retry_after_s()));
    }
    resp
}

pub(super) async fn otlp_traces(
    State(st): State<AppState>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
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
        ingest::ingest(&st, format, received, origin(&headers, &caller)).await
    }
    .await;
    match result {
        Ok(outcome) => otlp_success(enc, &outcome),
        Err(e) => otlp_error(enc, &e),
    }
}

/// OTLP/HTTP logs: the GenAI events among the records are kept for their spans.
pub(super) async fn otlp_logs(
    State(st): State<AppState>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let enc = match otlp_encoding(header_str(&headers, "content-type")) {
        Ok(e) => e,
        Err(e) => return otlp_error(Encoding::Json, &e),
    };
    let result = async {
        let received = receive(&st, &headers, body).await?;
        ingest::ingest_logs(&st, enc, received, origin(&headers, &caller)).await
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

pub(super) fn otlp_success(enc: Encoding, o: &IngestOutcome) -> Response {
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

pub(super) async fn agents_ingest(
    State(st): State<AppState>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
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
            origin(&headers, &caller),
        )
        .await
    }
    .await;
    match result {
        Ok(o) => Json(spanlens_api::AgentsIngestAnswer {
            accepted: o.accepted as u64,
            rejected: o.rejected as u64,
            errors: o.message,
        })
        .into_response(),
        Err(e) => otlp_error(Encoding::Json, &e),
    }
}
