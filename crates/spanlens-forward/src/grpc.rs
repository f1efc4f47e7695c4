//! Delivery by OTLP/gRPC: the unary `TraceService/Export` call, with the queued body sent as
//! the already-encoded `ExportTraceServiceRequest`.

use crate::forwarder::{Outcome, Transport};
use crate::http::TransportError;
use bytes::{Buf, BufMut, Bytes};
use prost::Message;
use std::error::Error as _;
use std::time::Duration;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue, MetadataMap};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

/// The gRPC method OTLP trace export calls.
pub const TRACE_EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// Where and how [`GrpcTransport`] calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcConfig {
    /// The server, e.g. `http://collector:4317` (or, with the `tls` feature, `https://…`).
    pub endpoint: String,
    /// Metadata sent with every call, e.g. authorization (ASCII values only).
    pub headers: Vec<(String, String)>,
    /// Compress messages with gzip.
    pub gzip: bool,
    /// Limit on a whole call, connecting included.
    pub timeout: Duration,
}

impl GrpcConfig {
    /// Calling `endpoint` uncompressed with a 10 s timeout.
    pub fn new(endpoint: impl Into<String>) -> GrpcConfig {
        GrpcConfig {
            endpoint: endpoint.into(),
            headers: Vec::new(),
            gzip: false,
            timeout: Duration::from_secs(10),
        }
    }
}

/// Calls OTLP/gRPC `Export` with each body. OK is delivered; UNAVAILABLE, RESOURCE_EXHAUSTED
/// (after its `RetryInfo` delay when the server gives one), DEADLINE_EXCEEDED, ABORTED,
/// CANCELLED and failures to connect are retried; any other status is a rejection.
///
/// It owns a current-thread tokio runtime, driven only while a call is in progress, so it can
/// live on the forwarder's plain delivery thread.
pub struct GrpcTransport {
    runtime: tokio::runtime::Runtime,
    client: tonic::client::Grpc<Channel>,
    metadata: MetadataMap,
    timeout: Duration,
}

impl std::fmt::Debug for GrpcTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcTransport").finish_non_exhaustive()
    }
}

impl GrpcTransport {
    /// Checks the endpoint and metadata; connects on the first call.
    pub fn new(config: GrpcConfig) -> Result<GrpcTransport, TransportError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let mut endpoint = Endpoint::from_shared(config.endpoint.clone())
            .map_err(|e| TransportError::Config(format!("endpoint {:?}: {e}", config.endpoint)))?
            .timeout(config.timeout)
            .connect_timeout(config.timeout);
        match endpoint.uri().scheme_str() {
            Some("http") => {}
            Some("https") => endpoint = with_tls(endpoint)?,
            _ => {
                return Err(TransportError::Config(format!(
                    "endpoint {:?} is not http:// or https://",
                    config.endpoint
                )))
            }
        }
        let mut metadata = MetadataMap::new();
        for (name, value) in &config.headers {
            let key: AsciiMetadataKey = name
                .to_ascii_lowercase()
                .parse()
                .map_err(|_| TransportError::Config(format!("bad metadata key {name:?}")))?;
            let value: AsciiMetadataValue = value
                .parse()
                .map_err(|_| TransportError::Config(format!("bad value for metadata {name:?}")))?;
            metadata.append(key, value);
        }
        // The lazy channel starts its worker task on the runtime, so it is made inside it.
        let channel = {
            let _entered = runtime.enter();
            endpoint.connect_lazy()
        };
        let mut client = tonic::client::Grpc::new(channel);
        if config.gzip {
            client = client
                .send_compressed(CompressionEncoding::Gzip)
                .accept_compressed(CompressionEncoding::Gzip);
        }
        Ok(GrpcTransport {
            runtime,
            client,
            metadata,
            timeout: config.timeout,
        })
    }
}

#[cfg(feature = "tls")]
fn with_tls(endpoint: Endpoint) -> Result<Endpoint, TransportError> {
    endpoint
        .tls_config(tonic::transport::ClientTlsConfig::new().with_webpki_roots())
        .map_err(|e| TransportError::Config(format!("TLS: {e}")))
}

#[cfg(not(feature = "tls"))]
fn with_tls(endpoint: Endpoint) -> Result<Endpoint, TransportError> {
    Err(TransportError::Config(format!(
        "endpoint {} needs the `tls` feature",
        endpoint.uri()
    )))
}

impl Transport for GrpcTransport {
    fn send(&mut self, body: &[u8]) -> Outcome {
        let GrpcTransport {
            runtime,
            client,
            metadata,
            timeout,
        } = self;
        let call = async {
            client
                .ready()
                .await
                .map_err(|e| Status::unavailable(format!("connecting: {e}")))?;
            let mut request = tonic::Request::new(Bytes::copy_from_slice(body));
            *request.metadata_mut() = metadata.clone();
            request.set_timeout(*timeout);
            let path = http::uri::PathAndQuery::from_static(TRACE_EXPORT_PATH);
            client.unary(request, path, PassThrough).await
        };
        // A hung connection attempt must not hold the delivery thread past the timeout either.
        let limit = *timeout + Duration::from_millis(500);
        match runtime.block_on(async { tokio::time::timeout(limit, call).await }) {
            Ok(Ok(_)) => Outcome::Delivered,
            Ok(Err(status)) => status_outcome(&status),
            Err(_) => Outcome::Retry {
                after: None,
                reason: format!("gRPC call timed out after {limit:?}"),
            },
        }
    }
}

/// The outcome of a gRPC status other than OK.
fn status_outcome(status: &Status) -> Outcome {
    let reason = format!(
        "gRPC {:?}: {}",
        status.code(),
        status.message().chars().take(200).collect::<String>()
    );
    match status.code() {
        Code::Ok => Outcome::Delivered,
        Code::Unavailable
        | Code::ResourceExhausted
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::Cancelled => Outcome::Retry {
            after: retry_delay(status.details()),
            reason,
        },
        // A status made on this side from an I/O or HTTP/2 failure carries its cause; one sent
        // by the server never does. Transport failures are worth retrying whatever their code.
        _ if status.source().is_some() => Outcome::Retry {
            after: None,
            reason,
        },
        _ => Outcome::Rejected { reason },
    }
}

/// `google.rpc.Status`, for its details.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<Any>,
}

/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, prost::Message)]
struct Any {
    #[prost(string, tag = "1")]
    type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

/// `google.rpc.RetryInfo`.
#[derive(Clone, PartialEq, prost::Message)]
struct RetryInfo {
    #[prost(message, optional, tag = "1")]
    retry_delay: Option<ProtoDuration>,
}

/// `google.protobuf.Duration`.
#[derive(Clone, PartialEq, prost::Message)]
struct ProtoDuration {
    #[prost(int64, tag = "1")]
    seconds: i64,
    #[prost(int32, tag = "2")]
    nanos: i32,
}

/// The `RetryInfo` delay in a status's `grpc-status-details-bin`, if it has one.
fn retry_delay(details: &[u8]) -> Option<Duration> {
    if details.is_empty() {
        return None;
    }
    let status = RpcStatus::decode(details).ok()?;
    let info = status
        .details
        .iter()
        .find(|any| any.type_url.ends_with("/google.rpc.RetryInfo"))?;
    let delay = RetryInfo::decode(info.value.as_slice()).ok()?.retry_delay?;
    let seconds = u64::try_from(delay.seconds).ok()?;
    let nanos = u32::try_from(delay.nanos).ok()?;
    Some(Duration::new(seconds, nanos.min(999_999_999)))
}

/// Sends the body as the message as it is and ignores the answer's content.
struct PassThrough;

impl Codec for PassThrough {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = PassThrough;
    type Decoder = PassThrough;

    fn encoder(&mut self) -> PassThrough {
        PassThrough
    }

    fn decoder(&mut self) -> PassThrough {
        PassThrough
    }
}

impl Encoder for PassThrough {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for PassThrough {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn details_with_delay(seconds: i64, nanos: i32) -> Vec<u8> {
        let info = RetryInfo {
            retry_delay: Some(ProtoDuration { seconds, nanos }),
        };
        RpcStatus {
            code: Code::ResourceExhausted as i32,
            message: "busy".into(),
            details: vec![
                Any {
                    type_url: "type.googleapis.com/google.rpc.DebugInfo".into(),
                    value: vec![1, 2, 3],
                },
                Any {
                    type_url: "type.googleapis.com/google.rpc.RetryInfo".into(),
                    value: info.encode_to_vec(),
                },
            ],
        }
        .encode_to_vec()
    }

    #[test]
    fn retry_info_is_read_from_the_status_details() {
        assert_eq!(
            retry_delay(&details_with_delay(2, 500_000_000)),
            Some(Duration::from_millis(2500))
        );
        assert_eq!(retry_delay(&details_with_delay(-1, 0)), None);
        assert_eq!(retry_delay(b""), None);
        assert_eq!(retry_delay(b"\xff\xff garbage"), None);
    }

    #[test]
    fn codes_map_to_outcomes() {
        for code in [
            Code::Unavailable,
            Code::ResourceExhausted,
            Code::DeadlineExceeded,
            Code::Aborted,
            Code::Cancelled,
        ] {
            assert!(
                matches!(
                    status_outcome(&Status::new(code, "x")),
                    Outcome::Retry { .. }
                ),
                "{code:?}"
            );
        }
        for code in [
            Code::InvalidArgument,
            Code::Unauthenticated,
            Code::PermissionDenied,
            Code::Unimplemented,
            Code::Internal,
        ] {
            assert!(
                matches!(
                    status_outcome(&Status::new(code, "x")),
                    Outcome::Rejected { .. }
                ),
                "{code:?}"
            );
        }
        let busy = Status::with_details(
            Code::ResourceExhausted,
            "busy",
            details_with_delay(3, 0).into(),
        );
        assert_eq!(
            status_outcome(&busy),
            Outcome::Retry {
                after: Some(Duration::from_secs(3)),
                reason: "gRPC ResourceExhausted: busy".into()
            }
        );
        let local = Status::from_error(Box::new(std::io::Error::other("reset")));
        assert!(matches!(status_outcome(&local), Outcome::Retry { .. }));
    }
}
