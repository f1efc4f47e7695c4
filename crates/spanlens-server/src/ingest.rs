//! Turning an ingest request (OTLP/HTTP, OpenAI Agents, Langfuse) into committed canonical spans.
//!
//! The rules are the OTLP/HTTP spec's: 415 for a content type we do not read, 413 when the body
//! (after gzip) exceeds the cap, 400 with a message naming what is wrong, partial success when some
//! spans were rejected, and 503 with `Retry-After` when the store's queue is full. A request is
//! answered only after its spans are committed.

use crate::budget::{OverBudget, Reservation};
use crate::state::AppState;
use bytes::Bytes;
use futures_util::StreamExt;
use spanlens_core::conventions::events::EVALUATION_RESULT;
use spanlens_core::otlp::logs::LogEvent;
use spanlens_core::{normalize, InputFormat, NormalizeOptions, Normalized, Span, Timestamp};
use spanlens_store::{FailureKind, StoreError};
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
    /// 408: the body did not arrive within the body-read timeout.
    #[error("request body not received within {0} s")]
    Timeout(u64),
    /// 429: a key or project is over its quota.
    #[error("{reason}; retry in {retry_after_s} s")]
    OverQuota {
        /// Why.
        reason: String,
        /// Seconds to wait.
        retry_after_s: u64,
    },
    /// 503: the store's write queue is full, or too many request bytes are in flight.
    #[error("{0}")]
    Busy(String),
    /// 503: the store cannot write for now (disk full, I/O error); it recovers by itself.
    #[error("{0}")]
    Unavailable(String),
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
            IngestError::Timeout(_) => 408,
            IngestError::OverQuota { .. } => 429,
            IngestError::Busy(_) | IngestError::Unavailable(_) => 503,
            IngestError::Store(_) => 500,
        }
    }

    /// True when the client should send the same request again later (`Retry-After`).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            IngestError::Busy(_) | IngestError::Unavailable(_) | IngestError::OverQuota { .. }
        )
    }

    /// Seconds a client should wait before sending it again (`Retry-After`).
    pub fn retry_after_s(&self) -> u64 {
        match self {
            IngestError::OverQuota { retry_after_s, .. } => *retry_after_s,
            _ => 1,
        }
    }
}

impl From<crate::quota::Throttled> for IngestError {
    fn from(t: crate::quota::Throttled) -> IngestError {
        IngestError::OverQuota {
            reason: t.reason,
            retry_after_s: t.retry_after_s,
        }
    }
}

/// Where a request comes from: the project it names (a key's, or its `x-project-name`), and
/// the key that sent it, whose quota it is held to.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    /// The project for every span of the request; `None`: each span's resource decides.
    pub project: Option<String>,
    /// The key that sent it.
    pub key: Option<std::sync::Arc<spanlens_auth::ApiKey>>,
}

impl Origin {
    /// A request naming `project` (or none), without a key.
    pub fn project(project: Option<String>) -> Origin {
        Origin { project, key: None }
    }

    /// The quota limits of a request to `project`.
    fn limits(&self, state: &AppState, project: &str) -> Vec<crate::quota::Limit> {
        let key = self
            .key
            .as_deref()
            .map(|k| (k.id.as_str(), k.quota, k.prefix()));
        state.quotas().limits(
            project,
            key.as_ref()
                .map(|(id, q, prefix)| (*id, *q, prefix.as_str())),
        )
    }
}

impl From<OverBudget> for IngestError {
    fn from(e: OverBudget) -> IngestError {
        IngestError::Busy(e.to_string())
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

/// The body with any gzip encoding removed, refusing more than [`MAX_BODY_BYTES`]
/// (unbudgeted: for callers outside a server, such as tools and tests).
pub fn decode_body(content_encoding: Option<&str>, body: Bytes) -> Result<Bytes, IngestError> {
    let mut unlimited = crate::budget::ByteBudget::new(usize::MAX).reservation();
    decode_body_within(content_encoding, body, &mut unlimited)
}

/// Bytes decompressed between two checks of the budget.
const INFLATE_STEP: usize = 1024 * 1024;

/// [`decode_body`], holding every decompressed byte in `held` as it is produced, so a gzip
/// bomb is refused by the in-flight budget before it is expanded, not after. The compressed
/// bytes, once decompressed and freed, are given back.
pub fn decode_body_within(
    content_encoding: Option<&str>,
    body: Bytes,
    held: &mut Reservation,
) -> Result<Bytes, IngestError> {
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
            let wire = body.len();
            let mut out: Vec<u8> = Vec::new();
            let mut reader = flate2::read::MultiGzDecoder::new(&body[..]);
            loop {
                held.grow(INFLATE_STEP)?;
                let before = out.len();
                let got = (&mut reader)
                    .take(INFLATE_STEP as u64)
                    .read_to_end(&mut out)
                    .map_err(|e| IngestError::BadRequest(format!("invalid gzip body: {e}")))?;
                held.shrink(INFLATE_STEP - (out.len() - before));
                if out.len() > MAX_BODY_BYTES {
                    return Err(IngestError::TooLarge {
                        limit: MAX_BODY_BYTES,
                    });
                }
                if got == 0 {
                    break;
                }
            }
            drop(reader);
            drop(body);
            held.shrink(wire);
            out.shrink_to_fit();
            Ok(Bytes::from(out))
        }
        other => Err(IngestError::UnsupportedEncoding(other.to_string())),
    }
}

/// Reads a request body as it arrives: at most `max` bytes (413 past it), within the
/// body-read timeout (408), and holding its bytes in the server's in-flight budget (503 with
/// `Retry-After` when too much is already held). A declared `Content-Length` is checked and
/// held before a byte is read.
pub async fn read_body(
    state: &AppState,
    content_length: Option<u64>,
    body: axum::body::Body,
    max: usize,
) -> Result<(Bytes, Reservation), IngestError> {
    state.note_request();
    let limits = state.limits();
    let mut held = state.budget().reservation();
    let declared = match content_length {
        Some(n) if n > max as u64 => return Err(IngestError::TooLarge { limit: max }),
        Some(n) => n as usize,
        None => 0,
    };
    held.grow(declared)?;
    let deadline = tokio::time::Instant::now() + limits.body_read_timeout;
    let mut stream = body.into_data_stream();
    // Frames are copied into one buffer as they arrive (sized by the declared length), so a
    // large body is held once, not as frames plus a joined copy.
    let mut body = bytes::BytesMut::with_capacity(declared);
    loop {
        let next = tokio::time::timeout_at(deadline, stream.next())
            .await
            .map_err(|_| IngestError::Timeout(limits.body_read_timeout.as_secs()))?;
        let Some(part) = next else { break };
        let part =
            part.map_err(|e| IngestError::BadRequest(format!("reading the request body: {e}")))?;
        let total = body.len() + part.len();
        if total > max {
            return Err(IngestError::TooLarge { limit: max });
        }
        if total > held.bytes() {
            held.grow(total - held.bytes())?;
        }
        if body.is_empty() && declared == 0 && part.len() == total {
            // One frame of unknown length: keep it as it is.
            body = bytes::BytesMut::from(part);
        } else {
            body.extend_from_slice(&part);
        }
    }
    held.shrink(held.bytes().saturating_sub(body.len()));
    Ok((body.freeze(), held))
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

/// A request body as received, with what the server holds for it.
pub struct Received {
    /// The bytes on the wire.
    pub body: Bytes,
    /// Its `Content-Encoding` (gzip or none).
    pub content_encoding: Option<String>,
    /// The in-flight budget it holds until the request is answered.
    pub held: Reservation,
}

/// Decompresses, decodes, normalises, prices and commits one request body; answers after the
/// commit. The body's bytes stay held in the in-flight budget until then.
pub async fn ingest(
    state: &AppState,
    format: InputFormat,
    received: Received,
    origin: Origin,
) -> Result<IngestOutcome, IngestError> {
    let project_header = origin.project.clone();
    if let Some(p) = &project_header {
        spanlens_core::limits::check_project(p)
            .map_err(|why| IngestError::BadRequest(format!("x-project-name: {why}")))?;
    }
    let (result, held) = decoded(state, received, move |worker, body| {
        let opts = NormalizeOptions {
            received_at: now(),
            default_project: None,
        };
        let normalized: Normalized = normalize(format, &body, &opts, worker.catalog())
            .map_err(|e| IngestError::BadRequest(e.to_string()))?;
        let body_len = body.len() as u64;
        drop(body);
        // What SDKs said about their own export: kept per project, service and instance.
        for r in &normalized.sdk_reports {
            let project = project_header
                .as_deref()
                .or(r.project.as_deref())
                .unwrap_or(spanlens_store::DEFAULT_PROJECT);
            if spanlens_core::limits::check_project(project).is_ok() {
                worker.sdk_health().record(project, r, now().0);
            }
        }
        // Media taken out of the spans (#19 item 9), stored per project before its spans.
        let media = normalized.media;
        let media_refs = normalized.media_refs;
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
        // Quotas: every project of the request (and its key) must be under its quota, or
        // nothing is stored.
        let limits: Vec<_> = by_project
            .iter()
            .map(|(p, spans)| (origin.limits(&worker, p), spans.len() as u64))
            .collect();
        let spans_total: u64 = limits.iter().map(|(_, n)| n).sum();
        for (l, n) in &limits {
            let share = body_len.saturating_mul(*n) / spans_total.max(1);
            worker.quotas().admit(l, *n, share)?;
        }
        let mut accepted = 0;
        let mut tickets = Vec::new();
        for (project, mut spans) in by_project {
            accepted += spans.len();
            // Before anything is stored or shown: the store, the live feed and scores all
            // take the redacted spans.
            let mut redacted = false;
            if let Some(policy) = worker.redactions().for_project(&project) {
                policy.apply(&mut spans);
                redacted = true;
            }
            // A copy for what follows the commit, only when a subscriber wants one.
            let after_commit = worker.commits().wanted().then(|| spans.clone());
            // Evaluation results sent as span events become scores (a cheap name test per
            // event; almost no span has one).
            let event_scores: Vec<spanlens_core::evals::Score> = spans
                .iter()
                .filter(|s| s.events.iter().any(|e| e.name == EVALUATION_RESULT))
                .flat_map(spanlens_core::conventions::span_scores)
                .collect();
            // The blobs first: a reader must never see a reference whose blob is missing.
            if !media.is_empty() {
                // A redaction may have dropped a reference: its blob is then not kept.
                let (blobs, refs) = media_of(&spans, &media, (!redacted).then_some(&media_refs));
                if !refs.is_empty() {
                    tokio::runtime::Handle::current()
                        .block_on(worker.store.put_media(&project, &blobs, &refs))
                        .map_err(|e| worker.store_failed(e))?;
                }
            }
            let ticket = worker
                .store
                .submit(&project, spans)
                .map_err(|e| worker.store_failed(e))?;
            tickets.push((ticket, project, after_commit, event_scores));
        }
        Ok::<_, IngestError>((tickets, accepted, rejected, message))
    })
    .await?;
    let (tickets, accepted, rejected, message) = result;

    for (ticket, project, after_commit, event_scores) in tickets {
        ticket.await.map_err(|e| state.store_failed(e))?;
        state.store_wrote();
        if !event_scores.is_empty() {
            // Before the answer, like the spans: a client that retries after a failure here
            // sends spans and scores again, and both are stored once.
            state
                .store
                .add_scores(&project, &event_scores)
                .await
                .map_err(store_error)?;
        }
        if let Some(spans) = after_commit {
            state.commits().announce(&crate::commits::Committed {
                project,
                spans: std::sync::Arc::new(spans),
            });
        }
    }
    drop(held);
    Ok(IngestOutcome {
        accepted,
        rejected,
        message,
    })
}

/// The media one project's `spans` refer to: the blobs and the (trace, hash) references of
/// its traces, taken from the request's `refs` when the spans are as normalised, else found
/// in the spans again. Blobs are stored per project, so a request whose spans go to two
/// projects stores an image they share in each.
fn media_of(
    spans: &[Span],
    media: &[spanlens_core::media::MediaBlob],
    refs: Option<&Vec<(spanlens_core::TraceId, String)>>,
) -> (
    Vec<spanlens_core::media::MediaBlob>,
    Vec<(spanlens_core::TraceId, String)>,
) {
    let refs: Vec<_> = match refs {
        Some(refs) => {
            let traces: std::collections::BTreeSet<_> = spans.iter().map(|s| s.trace_id).collect();
            refs.iter()
                .filter(|(t, _)| traces.contains(t))
                .cloned()
                .collect()
        }
        None => spanlens_core::media::refs_of(spans, media),
    };
    let blobs = media
        .iter()
        .filter(|m| refs.iter().any(|(_, h)| *h == m.hash))
        .cloned()
        .collect();
    (blobs, refs)
}

/// Runs `work` on the decompressed body off the async workers, holding one of the few
/// normalising turns (see `AppState::normalizers`): decompressing and decoding are CPU work,
/// and a request's decoded form takes several times its bytes. Returns what `work` returned
/// and the in-flight budget the body holds until the request is answered.
async fn decoded<T: Send + 'static>(
    state: &AppState,
    received: Received,
    work: impl FnOnce(AppState, Bytes) -> Result<T, IngestError> + Send + 'static,
) -> Result<(T, Reservation), IngestError> {
    let worker = state.clone();
    let Received {
        body,
        content_encoding,
        mut held,
    } = received;
    let turn = state
        .normalizers()
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| IngestError::Unavailable("server is shutting down".into()))?;
    tokio::task::spawn_blocking(move || {
        let _turn = turn;
        let body = decode_body_within(content_encoding.as_deref(), body, &mut held)?;
        Ok((work(worker, body)?, held))
    })
    .await
    .map_err(|e| IngestError::Store(format!("normaliser task failed: {e}")))?
}

/// What an accepted logs request came to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogsOutcome {
    /// GenAI events kept for their spans (a record sent again counts, though stored once).
    pub accepted: usize,
    /// Scores taken from `gen_ai.evaluation.result` events.
    pub scores: usize,
    /// Log records not taken.
    pub rejected: usize,
    /// Why, for the partial-success message.
    pub message: String,
}

/// Decompresses and decodes an OTLP logs request, keeps its GenAI events for their spans (in
/// the store's side table; a read merges them into the span whichever arrived first) and its
/// evaluation results as scores, and answers after both are committed. Records that are not
/// GenAI events of a span are counted, and named in the partial-success message.
pub async fn ingest_logs(
    state: &AppState,
    encoding: Encoding,
    received: Received,
    origin: Origin,
) -> Result<LogsOutcome, IngestError> {
    let project_header = origin.project.clone();
    if let Some(p) = &project_header {
        spanlens_core::limits::check_project(p)
            .map_err(|why| IngestError::BadRequest(format!("x-project-name: {why}")))?;
    }
    let (decoded_events, held) = decoded(state, received, move |worker, body| {
        let req = match encoding {
            Encoding::Protobuf => spanlens_core::otlp::logs::decode_protobuf(&body),
            Encoding::Json => spanlens_core::otlp::logs::decode_json(&body),
        }
        .map_err(|e| IngestError::BadRequest(e.to_string()))?;
        drop(body);
        let opts = NormalizeOptions {
            received_at: now(),
            default_project: None,
        };
        let out = spanlens_core::otlp::logs::to_events(req, &opts);
        let mut by_project: BTreeMap<String, Vec<LogEvent>> = BTreeMap::new();
        for mut e in out.events {
            let project = project_header
                .clone()
                .or_else(|| e.project.clone())
                .unwrap_or_else(|| spanlens_store::DEFAULT_PROJECT.to_string());
            if let Some(policy) = worker.redactions().for_project(&project) {
                policy.apply_attributes(&mut e.event.attributes);
            }
            by_project.entry(project).or_default().push(e);
        }
        // Log events count as spans against the quotas.
        for (p, events) in &by_project {
            worker
                .quotas()
                .admit(&origin.limits(&worker, p), events.len() as u64, 0)?;
        }
        Ok((by_project, out.rejected))
    })
    .await?;
    let (by_project, mut rejected) = decoded_events;
    let mut outcome = LogsOutcome::default();
    for (project, events) in by_project {
        let receipt = state
            .store
            .add_log_events(&project, &events)
            .await
            .map_err(store_error)?;
        outcome.accepted += receipt.stored + receipt.duplicates;
        rejected.over_limit += receipt.over_limit;
        let scores: Vec<spanlens_core::evals::Score> = events
            .iter()
            .filter(|e| e.event.name == EVALUATION_RESULT)
            .filter_map(|e| {
                spanlens_core::conventions::event_score(e.trace_id, e.span_id, &e.event).ok()
            })
            .collect();
        if !scores.is_empty() {
            state
                .store
                .add_scores(&project, &scores)
                .await
                .map_err(store_error)?;
            outcome.scores += scores.len();
        }
    }
    outcome.rejected = rejected.count();
    outcome.message = rejected.message();
    drop(held);
    Ok(outcome)
}

/// A store failure as ingest answers it.
pub(crate) fn store_error(e: StoreError) -> IngestError {
    match (e.kind(), &e) {
        (FailureKind::Retry, StoreError::Busy { .. }) => IngestError::Busy(e.to_string()),
        (FailureKind::Retry, _) => IngestError::Unavailable(e.to_string()),
        // Ingest sends no query: any other store failure is the server's.
        (FailureKind::BadRequest | FailureKind::Internal, _) => IngestError::Store(e.to_string()),
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
