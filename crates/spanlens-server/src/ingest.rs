//! Turning an ingest request (OTLP/HTTP, OpenAI Agents, Langfuse) into committed canonical spans.
//!
//! The rules are the OTLP/HTTP spec's: 415 for a content type we do not read, 413 when the body
//! (after gzip) exceeds the cap, 400 with a message naming what is wrong, partial success when some
//! spans were rejected, and 503 with `Retry-After` when the store's queue is full. A request is
//! answered only after its spans are committed.

use crate::state::AppState;
use bytes::Bytes;
use spanlens_core::{
    normalize, InputFormat, NormalizeOptions, Normalized, PriceCatalog, Span, Timestamp,
};
use spanlens_store::StoreError;
use std::collections::BTreeMap;
use std::io::Read;

/// Largest request body accepted, after decompression (OTLP collectors use the same order).
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Which wire format a request body is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// `application/x-protobuf`
    Protobuf,
    /// `application/json`
    Json,
}

/// Why a request was refused, with the HTTP status it maps to.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// 415: a content type this endpoint does not read.
    #[error("unsupported content type {0:?}: send application/x-protobuf or application/json")]
    UnsupportedMediaType(String),
    /// 415: a content encoding other than gzip or identity.
    #[error("unsupported content encoding {0:?}: send gzip or no encoding")]
    UnsupportedEncoding(String),
    /// 413: the (decompressed) body is over the cap.
    #[error("request body exceeds {limit} bytes after decompression")]
    TooLarge {
        /// The cap.
        limit: usize,
    },
    /// 400: the body could not be read.
    #[error("{0}")]
    BadRequest(String),
    /// 503: the store's write queue is full.
    #[error("{0}")]
    Busy(String),
    /// 500: the store failed.
    #[error("store error: {0}")]
    Store(String),
}

impl IngestError {
    /// The HTTP status for this error.
    pub fn status(&self) -> u16 {
        match self {
            IngestError::UnsupportedMediaType(_) | IngestError::UnsupportedEncoding(_) => 415,
            IngestError::TooLarge { .. } => 413,
            IngestError::BadRequest(_) => 400,
            IngestError::Busy(_) => 503,
            IngestError::Store(_) => 500,
        }
    }
}

/// The content type's media type, lowercased, without parameters.
pub fn media_type(content_type: Option<&str>) -> String {
    content_type
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Reads an OTLP content type.
pub fn otlp_encoding(content_type: Option<&str>) -> Result<Encoding, IngestError> {
    match media_type(content_type).as_str() {
        "application/x-protobuf" | "application/protobuf" => Ok(Encoding::Protobuf),
        "application/json" => Ok(Encoding::Json),
        other => Err(IngestError::UnsupportedMediaType(other.to_string())),
    }
}

/// The body with any gzip encoding removed, refusing more than [`MAX_BODY_BYTES`].
pub fn decode_body(content_encoding: Option<&str>, body: Bytes) -> Result<Bytes, IngestError> {
    let enc = content_encoding.unwrap_or("").trim().to_ascii_lowercase();
    match enc.as_str() {
        "" | "identity" => {
            if body.len() > MAX_BODY_BYTES {
                return Err(IngestError::TooLarge {
                    limit: MAX_BODY_BYTES,
                });
            }
            Ok(body)
        }
        "gzip" | "x-gzip" => {
            let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(MAX_BODY_BYTES));
            let mut reader =
                flate2::read::MultiGzDecoder::new(&body[..]).take(MAX_BODY_BYTES as u64 + 1);
            reader
                .read_to_end(&mut out)
                .map_err(|e| IngestError::BadRequest(format!("invalid gzip body: {e}")))?;
            if out.len() > MAX_BODY_BYTES {
                return Err(IngestError::TooLarge {
                    limit: MAX_BODY_BYTES,
                });
            }
            Ok(Bytes::from(out))
        }
        other => Err(IngestError::UnsupportedEncoding(other.to_string())),
    }
}

/// What an accepted request came to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestOutcome {
    /// Spans committed.
    pub accepted: usize,
    /// Spans rejected (bad ids, missing times, …).
    pub rejected: usize,
    /// Why, for the partial-success message (first few reasons).
    pub message: String,
}

/// The current time.
pub(crate) fn now() -> Timestamp {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp(d.as_secs() * 1_000_000_000 + u64::from(d.subsec_nanos()))
}

/// Decodes, normalises, prices and commits one request body; answers after the commit.
pub async fn ingest(
    state: &AppState,
    format: InputFormat,
    body: Bytes,
    project_header: Option<String>,
) -> Result<IngestOutcome, IngestError> {
    // Decoding, normalising and preparing rows are CPU work: keep them off the async workers.
    let worker = state.clone();
    let (tickets, accepted, rejected, message) = tokio::task::spawn_blocking(move || {
        let opts = NormalizeOptions {
            received_at: now(),
            default_project: None,
        };
        let normalized: Normalized = normalize(format, &body, &opts, PriceCatalog::builtin())
            .map_err(|e| IngestError::BadRequest(e.to_string()))?;
        drop(body);
        let rejected = normalized.rejected.len();
        let message = normalized
            .rejected
            .iter()
            .take(5)
            .map(|r| r.to_string())
            .collect::<Vec<_>>()
            .join("; ");
        // The header wins over the resource attribute; without either the span goes to `default`.
        let mut by_project: BTreeMap<String, Vec<Span>> = BTreeMap::new();
        match &project_header {
            // One project for the whole request: no per-span lookup or copy of its name.
            Some(p) => {
                if !normalized.spans.is_empty() {
                    by_project.insert(p.clone(), normalized.spans);
                }
            }
            None => {
                for s in normalized.spans {
                    let project = s
                        .project
                        .as_deref()
                        .unwrap_or(spanlens_store::DEFAULT_PROJECT);
                    match by_project.get_mut(project) {
                        Some(v) => v.push(s),
                        None => {
                            by_project.insert(project.to_string(), vec![s]);
                        }
                    }
                }
            }
        }
        let mut accepted = 0;
        let mut tickets = Vec::new();
        for (project, spans) in by_project {
            accepted += spans.len();
            let live: Vec<Span> = if worker.live_subscribers() > 0 {
                spans.clone()
            } else {
                Vec::new()
            };
            let to_evaluate = worker.evaluators().map(|_| spans.clone());
            let ticket = worker.store.submit(&project, spans).map_err(store_error)?;
            tickets.push((ticket, project, live, to_evaluate));
        }
        Ok::<_, IngestError>((tickets, accepted, rejected, message))
    })
    .await
    .map_err(|e| IngestError::Store(format!("normaliser task failed: {e}")))??;

    for (ticket, project, live, to_evaluate) in tickets {
        ticket.await.map_err(store_error)?;
        state.publish(&project, live);
        if let (Some(ev), Some(spans)) = (state.evaluators(), to_evaluate) {
            evaluate_later(state.store.clone(), ev, project, spans);
        }
    }
    Ok(IngestOutcome {
        accepted,
        rejected,
        message,
    })
}

/// Scores committed spans in the background: the request is already answered, and a slow
/// LLM judge must not hold up ingest.
fn evaluate_later(
    store: std::sync::Arc<dyn spanlens_store::Store>,
    ev: std::sync::Arc<crate::evaluators::EvaluatorConfig>,
    project: String,
    spans: Vec<Span>,
) {
    tokio::task::spawn_blocking(move || {
        let (scores, errors) = ev.evaluate(&spans);
        for e in errors.iter().take(3) {
            eprintln!("spanlens: evaluator: {e}");
        }
        if !scores.is_empty() {
            if let Err(e) = store.add_scores(&project, &scores) {
                eprintln!("spanlens: evaluator scores not stored: {e}");
            }
        }
    });
}

fn store_error(e: StoreError) -> IngestError {
    match e {
        StoreError::Busy { .. } => IngestError::Busy(e.to_string()),
        other => IngestError::Store(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn content_types_and_encodings() {
        assert_eq!(
            otlp_encoding(Some("application/x-protobuf")).unwrap(),
            Encoding::Protobuf
        );
        assert_eq!(
            otlp_encoding(Some("Application/JSON; charset=utf-8")).unwrap(),
            Encoding::Json
        );
        assert_eq!(otlp_encoding(Some("text/plain")).unwrap_err().status(), 415);
        assert_eq!(otlp_encoding(None).unwrap_err().status(), 415);
        assert_eq!(
            decode_body(Some("br"), Bytes::new()).unwrap_err().status(),
            415
        );
    }

    #[test]
    fn gzip_is_decoded_and_capped() {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(b"hello").unwrap();
        let gz = Bytes::from(enc.finish().unwrap());
        assert_eq!(&decode_body(Some("gzip"), gz).unwrap()[..], b"hello");
        assert_eq!(
            decode_body(Some("gzip"), Bytes::from_static(b"nope"))
                .unwrap_err()
                .status(),
            400
        );
        // A small bomb: 65 MiB of zeros compresses to ~65 KiB.
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let zeros = vec![0u8; 1024 * 1024];
        for _ in 0..65 {
            enc.write_all(&zeros).unwrap();
        }
        let bomb = Bytes::from(enc.finish().unwrap());
        assert_eq!(decode_body(Some("gzip"), bomb).unwrap_err().status(), 413);
    }
}
