//! OTLP/gRPC: `opentelemetry.proto.collector.trace.v1.TraceService/Export`, served by tonic with
//! the hand-declared prost messages of `spanlens-core` (no protoc, no generated code).

use crate::ingest::{self, IngestError};
use crate::state::AppState;
use bytes::Bytes;
use prost::Message;
use spanlens_core::otlp::proto::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use spanlens_core::InputFormat;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tonic::codec::CompressionEncoding;
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::{Request, Response, Status};

/// The gRPC method path of OTLP trace export.
pub const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

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

struct Export(AppState);

impl UnaryService<ExportTraceServiceRequest> for Export {
    type Response = ExportTraceServiceResponse;
    type Future =
        Pin<Box<dyn Future<Output = Result<Response<ExportTraceServiceResponse>, Status>> + Send>>;

    fn call(&mut self, req: Request<ExportTraceServiceRequest>) -> Self::Future {
        let state = self.0.clone();
        Box::pin(async move {
            let project = req
                .metadata()
                .get("x-project-name")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            // Re-encoding keeps one normalisation path for every transport; it costs far less
            // than normalising and committing the spans.
            let body = Bytes::from(req.into_inner().encode_to_vec());
            match ingest::ingest(&state, InputFormat::OtlpProtobuf, body, project).await {
                Ok(o) => Ok(Response::new(ExportTraceServiceResponse {
                    partial_success: (o.rejected > 0).then_some(ExportTracePartialSuccess {
                        rejected_spans: o.rejected as i64,
                        error_message: o.message,
                    }),
                })),
                Err(e @ IngestError::Busy(_)) => Err(Status::unavailable(e.to_string())),
                Err(e @ IngestError::BadRequest(_)) => Err(Status::invalid_argument(e.to_string())),
                Err(e @ IngestError::TooLarge { .. }) => {
                    Err(Status::resource_exhausted(e.to_string()))
                }
                Err(e) => Err(Status::internal(e.to_string())),
            }
        })
    }
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
        Box::pin(async move {
            if req.uri().path() != EXPORT_PATH {
                return Ok(
                    Status::unimplemented(format!("no method {}", req.uri().path())).into_http(),
                );
            }
            let codec = tonic_prost::ProstCodec::<
                ExportTraceServiceResponse,
                ExportTraceServiceRequest,
            >::default();
            let mut grpc = Grpc::new(codec)
                .accept_compressed(CompressionEncoding::Gzip)
                .send_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(ingest::MAX_BODY_BYTES);
            Ok(grpc.unary(Export(state), req).await)
        })
    }
}
