//! OTLP/gRPC: `opentelemetry.proto.collector.trace.v1.TraceService/Export` and
//! `opentelemetry.proto.collector.logs.v1.LogsService/Export`, served by tonic.
//!
//! The request message is taken as raw bytes and decoded by the same path as OTLP/HTTP
//! protobuf, so a malformed message is `INVALID_ARGUMENT` naming what is wrong (a decoding
//! codec would answer `INTERNAL`, which OTLP reserves for server faults) and nothing is decoded,
//! re-encoded and decoded again. Status codes follow OTLP's rules: `INVALID_ARGUMENT` for bad
//! data (not retried), `RESOURCE_EXHAUSTED` with `RetryInfo` when the server is busy (retried
//! after the delay), `UNAVAILABLE` with `RetryInfo` when the store cannot write for now.

use crate::ingest::{self, IngestError, Received};
use crate::state::AppState;
use bytes::{Buf, Bytes};
use prost::Message;
use spanlens_core::otlp::proto::{
    ExportLogsPartialSuccess, ExportLogsServiceResponse, ExportTracePartialSuccess,
    ExportTraceServiceResponse,
};
use spanlens_core::InputFormat;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::{Code, Request, Response, Status};

/// The gRPC method path of OTLP trace export.
pub const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// The gRPC method path of OTLP logs export.
pub const LOGS_EXPORT_PATH: &str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";

/// How long a client is asked to wait before retrying a busy or unavailable server.
const RETRY_DELAY_SECONDS: i64 = 1;

/// The OTLP `TraceService` as a tower service tonic's router can host.
#[derive(Clone)]
pub struct TraceService {
    state: AppState,
}

impl TraceService {
    /// A service committing into `state`'s store.
    pub fn new(state: AppState) -> TraceService {
        TraceService { state }
    }
}

impl NamedService for TraceService {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}

/// The OTLP `LogsService`: GenAI events sent as log records.
#[derive(Clone)]
pub struct LogsService {
    state: AppState,
}

impl LogsService {
    /// A service keeping log events in `state`'s store.
    pub fn new(state: AppState) -> LogsService {
        LogsService { state }
    }
}

impl NamedService for LogsService {
    const NAME: &'static str = "opentelemetry.proto.collector.logs.v1.LogsService";
}

/// Requests as the bytes of the message; responses as prost messages of type `R`.
struct RawRequests<R>(std::marker::PhantomData<R>);

impl<R> Default for RawRequests<R> {
    fn default() -> Self {
        RawRequests(std::marker::PhantomData)
    }
}

impl<R: Message + Send + 'static> Codec for RawRequests<R> {
    type Encode = R;
    type Decode = Bytes;
    type Encoder = ResponseEncoder<R>;
    type Decoder = BytesDecoder;

    fn encoder(&mut self) -> ResponseEncoder<R> {
        ResponseEncoder(std::marker::PhantomData)
    }

    fn decoder(&mut self) -> BytesDecoder {
        BytesDecoder
    }
}

struct ResponseEncoder<R>(std::marker::PhantomData<R>);

impl<R: Message> Encoder for ResponseEncoder<R> {
    type Item = R;
    type Error = Status;

    fn encode(&mut self, item: Self::Item, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst)
            .map_err(|e| Status::internal(format!("encoding the response: {e}")))
    }
}

struct BytesDecoder;

impl Decoder for BytesDecoder {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// The project a call writes to: with `--auth required`, its key's (from `authorization` or
/// `x-api-key` metadata, needing the ingest scope; another `x-project-name` is refused);
/// otherwise its `x-project-name` metadata, if set.
async fn project_of<T>(state: &AppState, req: &Request<T>) -> Result<ingest::Origin, Status> {
    let text = |name: &str| req.metadata().get(name).and_then(|v| v.to_str().ok());
    let named = text("x-project-name")
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_string);
    let presented = crate::auth::credential(text("authorization"), text("x-api-key"));
    match state
        .auth()
        .check(presented, spanlens_auth::Scope::Ingest)
        .await
        .map_err(|d| d.grpc())?
    {
        None => Ok(ingest::Origin::project(named)),
        Some(key) => match named {
            Some(other) if other != key.project => {
                Err(crate::auth::Denied::project(&key, &other).grpc())
            }
            _ => Ok(ingest::Origin {
                project: Some(key.project.clone()),
                key: Some(key),
            }),
        },
    }
}

/// A message tonic has already read (and inflated), held in the in-flight budget from here on.
fn received(state: &AppState, body: Bytes) -> Result<Received, Status> {
    state.note_request();
    let mut held = state.budget().reservation();
    held.grow(body.len()).map_err(|e| status(&e.into()))?;
    Ok(Received {
        body,
        content_encoding: None,
        held,
    })
}

struct Export(AppState);

impl UnaryService<Bytes> for Export {
    type Response = ExportTraceServiceResponse;
    type Future =
        Pin<Box<dyn Future<Output = Result<Response<ExportTraceServiceResponse>, Status>> + Send>>;

    fn call(&mut self, req: Request<Bytes>) -> Self::Future {
        let state = self.0.clone();
        Box::pin(async move {
            let project = project_of(&state, &req).await?;
            let received = received(&state, req.into_inner())?;
            match ingest::ingest(&state, InputFormat::OtlpProtobuf, received, project).await {
                Ok(o) => Ok(Response::new(ExportTraceServiceResponse {
                    partial_success: (o.rejected > 0).then_some(ExportTracePartialSuccess {
                        rejected_spans: o.rejected as i64,
                        error_message: o.message,
                    }),
                })),
                Err(e) => Err(status(&e)),
            }
        })
    }
}

struct ExportLogs(AppState);

impl UnaryService<Bytes> for ExportLogs {
    type Response = ExportLogsServiceResponse;
    type Future =
        Pin<Box<dyn Future<Output = Result<Response<ExportLogsServiceResponse>, Status>> + Send>>;

    fn call(&mut self, req: Request<Bytes>) -> Self::Future {
        let state = self.0.clone();
        Box::pin(async move {
            let project = project_of(&state, &req).await?;
            let received = received(&state, req.into_inner())?;
            let encoding = ingest::Encoding::Protobuf;
            match ingest::ingest_logs(&state, encoding, received, project).await {
                Ok(o) => Ok(Response::new(ExportLogsServiceResponse {
                    partial_success: (o.rejected > 0).then_some(ExportLogsPartialSuccess {
                        rejected_log_records: o.rejected as i64,
                        error_message: o.message,
                    }),
                })),
                Err(e) => Err(status(&e)),
            }
        })
    }
}

/// The gRPC status for an ingest error, by OTLP's rules.
pub fn status(e: &IngestError) -> Status {
    let message = e.to_string();
    match e {
        IngestError::BadRequest(_)
        | IngestError::UnsupportedMediaType(_)
        | IngestError::UnsupportedEncoding(_) => Status::invalid_argument(message),
        // Too large is final: no retry info, so the client does not send it again.
        IngestError::TooLarge { .. } => Status::resource_exhausted(message),
        IngestError::Timeout(_) => Status::deadline_exceeded(message),
        IngestError::Busy(_) => with_retry_info(Code::ResourceExhausted, message, 1),
        IngestError::OverQuota { retry_after_s, .. } => {
            with_retry_info(Code::ResourceExhausted, message, *retry_after_s as i64)
        }
        IngestError::Unavailable(_) => with_retry_info(Code::Unavailable, message, 1),
        IngestError::Store(_) => Status::internal(message),
    }
}

/// A status carrying `google.rpc.RetryInfo`, which OTLP clients read to know when to retry.
fn with_retry_info(code: Code, message: String, seconds: i64) -> Status {
    let retry = RetryInfo {
        retry_delay: Some(ProtoDuration {
            seconds: seconds.max(RETRY_DELAY_SECONDS),
            nanos: 0,
        }),
    };
    let details = RpcStatus {
        code: code as i32,
        message: message.clone(),
        details: vec![ProtoAny {
            type_url: "type.googleapis.com/google.rpc.RetryInfo".into(),
            value: retry.encode_to_vec(),
        }],
    };
    Status::with_details(code, message, Bytes::from(details.encode_to_vec()))
}

/// `google.rpc.Status`, as carried in `grpc-status-details-bin`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcStatus {
    /// The gRPC code.
    #[prost(int32, tag = "1")]
    pub code: i32,
    /// The message.
    #[prost(string, tag = "2")]
    pub message: String,
    /// Typed details.
    #[prost(message, repeated, tag = "3")]
    pub details: Vec<ProtoAny>,
}

/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ProtoAny {
    /// The type of `value`.
    #[prost(string, tag = "1")]
    pub type_url: String,
    /// The encoded message.
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

/// `google.rpc.RetryInfo`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RetryInfo {
    /// How long to wait.
    #[prost(message, optional, tag = "1")]
    pub retry_delay: Option<ProtoDuration>,
}

/// `google.protobuf.Duration`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ProtoDuration {
    /// Seconds.
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    /// Nanoseconds.
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

/// Serves one unary OTLP export at `path` with `export`, under the message-size limit and with
/// gzip both ways; any other path is `UNIMPLEMENTED`.
async fn serve<S>(
    req: http::Request<tonic::body::Body>,
    path: &str,
    export: S,
) -> http::Response<tonic::body::Body>
where
    S: UnaryService<Bytes>,
    S::Response: Message + Send + 'static,
{
    if req.uri().path() != path {
        return Status::unimplemented(format!("no method {}", req.uri().path())).into_http();
    }
    let mut grpc = Grpc::new(RawRequests::<S::Response>::default())
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(GRPC_MAX_MESSAGE_BYTES);
    grpc.unary(export, req).await
}

impl tower_service::Service<http::Request<tonic::body::Body>> for TraceService {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        let state = self.state.clone();
        Box::pin(async move { Ok(serve(req, EXPORT_PATH, Export(state)).await) })
    }
}

impl tower_service::Service<http::Request<tonic::body::Body>> for LogsService {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        let state = self.state.clone();
        Box::pin(async move { Ok(serve(req, LOGS_EXPORT_PATH, ExportLogs(state)).await) })
    }
}

/// Largest gRPC message (after gzip). tonic buffers a message whole before the service sees it,
/// so this bounds what one call can hold outside the in-flight budget; OTel SDKs batch far
/// less (the Collector's default receive limit is 4 MiB).
pub const GRPC_MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_otlp_grpc_codes() {
        let bad = status(&IngestError::BadRequest("x".into()));
        assert_eq!(bad.code(), Code::InvalidArgument);
        assert!(bad.details().is_empty());
        let busy = status(&IngestError::Busy("queue full".into()));
        assert_eq!(busy.code(), Code::ResourceExhausted);
        let details = RpcStatus::decode(busy.details()).unwrap();
        assert_eq!(details.code, Code::ResourceExhausted as i32);
        assert_eq!(
            details.details[0].type_url,
            "type.googleapis.com/google.rpc.RetryInfo"
        );
        let retry = RetryInfo::decode(&details.details[0].value[..]).unwrap();
        assert_eq!(retry.retry_delay.unwrap().seconds, 1);
        let full = status(&IngestError::Unavailable("disk full".into()));
        assert_eq!(full.code(), Code::Unavailable);
        assert!(!full.details().is_empty());
        let big = status(&IngestError::TooLarge { limit: 1 });
        assert_eq!(big.code(), Code::ResourceExhausted);
        assert!(
            big.details().is_empty(),
            "too large is final: no retry info"
        );
    }
}
