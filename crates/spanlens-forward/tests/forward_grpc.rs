//! The forwarder over OTLP/gRPC against a real tonic receiver on 127.0.0.1.

use bytes::{Buf, BufMut, Bytes};
use prost::Message;
use spanlens_forward::{
    DiskQueue, Forwarder, GrpcConfig, GrpcTransport, QueueConfig, RetryPolicy, TRACE_EXPORT_PATH,
};
use std::convert::Infallible;
use std::future::{ready, Future, Ready};
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::thread;
use std::time::{Duration, Instant};
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::MetadataMap;
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::{Code, Request, Response, Status};

/// One call as the receiver saw it.
#[derive(Debug, Clone)]
struct Call {
    body: Bytes,
    metadata: MetadataMap,
    at: Instant,
}

type Script = Box<dyn FnMut(usize) -> Result<(), Status> + Send>;

struct State {
    calls: Vec<Call>,
    script: Script,
}

/// The OTLP trace service, answering each call as its script says.
#[derive(Clone)]
struct Receiver {
    state: Arc<Mutex<State>>,
}

impl NamedService for Receiver {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}

impl Receiver {
    /// Serves on `listener` from a thread of its own.
    fn start(listener: std::net::TcpListener, script: Script) -> Receiver {
        let receiver = Receiver {
            state: Arc::new(Mutex::new(State {
                calls: Vec::new(),
                script,
            })),
        };
        let service = receiver.clone();
        listener.set_nonblocking(true).unwrap();
        thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                tonic::transport::Server::builder()
                    .add_service(service)
                    .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
                    .await
                    .unwrap();
            });
        });
        receiver
    }

    fn calls(&self) -> Vec<Call> {
        self.state.lock().unwrap().calls.clone()
    }
}

impl tower_service::Service<http::Request<tonic::body::Body>> for Receiver {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        let export = Export(self.clone());
        Box::pin(async move {
            if req.uri().path() != TRACE_EXPORT_PATH {
                return Ok(Status::unimplemented(req.uri().path().to_string()).into_http());
            }
            let mut grpc = Grpc::new(Raw)
                .accept_compressed(CompressionEncoding::Gzip)
                .send_compressed(CompressionEncoding::Gzip);
            Ok(grpc.unary(export, req).await)
        })
    }
}

struct Export(Receiver);

impl UnaryService<Bytes> for Export {
    type Response = Bytes;
    type Future = Ready<Result<Response<Bytes>, Status>>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let mut state = self.0.state.lock().unwrap();
        state.calls.push(Call {
            body: request.get_ref().clone(),
            metadata: request.metadata().clone(),
            at: Instant::now(),
        });
        let index = state.calls.len() - 1;
        // An empty ExportTraceServiceResponse.
        ready((state.script)(index).map(|()| Response::new(Bytes::new())))
    }
}

/// Messages as their bytes, both ways.
struct Raw;

impl Codec for Raw {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = Raw;
    type Decoder = Raw;
    fn encoder(&mut self) -> Raw {
        Raw
    }
    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Bytes;
    type Error = Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Bytes;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// `google.rpc.Status`, `google.protobuf.Any`, `google.rpc.RetryInfo` and
/// `google.protobuf.Duration`, to answer with a retry delay.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<Any>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Any {
    #[prost(string, tag = "1")]
    type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct RetryInfo {
    #[prost(message, optional, tag = "1")]
    retry_delay: Option<ProtoDuration>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ProtoDuration {
    #[prost(int64, tag = "1")]
    seconds: i64,
    #[prost(int32, tag = "2")]
    nanos: i32,
}

fn busy_for(seconds: i64) -> Status {
    let details = RpcStatus {
        code: Code::ResourceExhausted as i32,
        message: "busy".into(),
        details: vec![Any {
            type_url: "type.googleapis.com/google.rpc.RetryInfo".into(),
            value: RetryInfo {
                retry_delay: Some(ProtoDuration { seconds, nanos: 0 }),
            }
            .encode_to_vec(),
        }],
    };
    Status::with_details(
        Code::ResourceExhausted,
        "busy",
        details.encode_to_vec().into(),
    )
}

fn loopback() -> std::net::TcpListener {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap()
}

fn quick_policy() -> RetryPolicy {
    RetryPolicy {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(200),
        max_retry_after: Duration::from_secs(5),
    }
}

fn forwarder(dir: &Path, addr: SocketAddr, configure: impl FnOnce(&mut GrpcConfig)) -> Forwarder {
    let mut config = GrpcConfig::new(format!("http://{addr}"));
    config.timeout = Duration::from_secs(3);
    configure(&mut config);
    let queue = DiskQueue::open(QueueConfig::new(dir)).unwrap();
    let transport = GrpcTransport::new(config).unwrap();
    Forwarder::spawn(
        "grpc-test".into(),
        queue,
        Box::new(transport),
        quick_policy(),
    )
    .unwrap()
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(15);
    while !done() {
        assert!(Instant::now() < end, "timed out waiting until {what}");
        thread::sleep(Duration::from_millis(5));
    }
}

/// Opaque stand-ins for encoded ExportTraceServiceRequests: the transport must not look inside.
fn message(i: u8) -> Vec<u8> {
    let mut body = vec![0x0a, 0x03, i, 0xff, 0x00];
    body.extend(std::iter::repeat_n(i, 300));
    body
}

#[test]
fn grpc_delivers_the_bodies_as_they_are_with_metadata_and_gzip() {
    let dir = tempfile::tempdir().unwrap();
    let listener = loopback();
    let addr = listener.local_addr().unwrap();
    let receiver = Receiver::start(listener, Box::new(|_| Ok(())));
    let fwd = forwarder(dir.path(), addr, |config| {
        config.gzip = true;
        config.headers.push(("X-Api-Key".into(), "key-1".into()));
    });
    for i in 0..3 {
        fwd.enqueue(message(i));
    }
    wait_until("3 delivered", || fwd.counters().sent == 3);
    let calls = receiver.calls();
    let bodies: Vec<Vec<u8>> = calls.iter().map(|c| c.body.to_vec()).collect();
    assert_eq!(bodies, (0..3).map(message).collect::<Vec<_>>());
    let metadata = &calls[0].metadata;
    assert_eq!(metadata.get("x-api-key").unwrap(), "key-1");
    assert_eq!(metadata.get("grpc-encoding").unwrap(), "gzip");
    let counters = fwd.counters();
    assert_eq!((counters.retried, counters.rejected), (0, 0));
    fwd.shutdown(Duration::from_secs(2));
}

#[test]
fn grpc_unavailable_is_retried_until_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let listener = loopback();
    let addr = listener.local_addr().unwrap();
    let receiver = Receiver::start(
        listener,
        Box::new(|index| {
            if index < 2 {
                Err(Status::unavailable("store down"))
            } else {
                Ok(())
            }
        }),
    );
    let fwd = forwarder(dir.path(), addr, |_| {});
    fwd.enqueue(message(9));
    wait_until("delivered", || fwd.counters().sent == 1);
    let calls = receiver.calls();
    assert_eq!(calls.len(), 3);
    assert!(calls.iter().all(|c| c.body.as_ref() == message(9)));
    let counters = fwd.counters();
    assert_eq!((counters.retried, counters.rejected), (2, 0));
    assert_eq!(
        counters.last_error.as_deref(),
        Some("gRPC Unavailable: store down")
    );
    fwd.shutdown(Duration::from_secs(2));
}

#[test]
fn grpc_retry_info_sets_the_wait() {
    let dir = tempfile::tempdir().unwrap();
    let listener = loopback();
    let addr = listener.local_addr().unwrap();
    let receiver = Receiver::start(
        listener,
        Box::new(|index| if index == 0 { Err(busy_for(1)) } else { Ok(()) }),
    );
    let fwd = forwarder(dir.path(), addr, |_| {});
    fwd.enqueue(message(1));
    wait_until("delivered", || fwd.counters().sent == 1);
    let calls = receiver.calls();
    let gap = calls[1].at - calls[0].at;
    assert!(gap >= Duration::from_secs(1), "retried after {gap:?}");
    fwd.shutdown(Duration::from_secs(2));
}

#[test]
fn grpc_invalid_argument_is_rejected_and_the_next_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let listener = loopback();
    let addr = listener.local_addr().unwrap();
    let receiver = Receiver::start(
        listener,
        Box::new(|index| {
            if index == 0 {
                Err(Status::invalid_argument("bad trace id"))
            } else {
                Ok(())
            }
        }),
    );
    let fwd = forwarder(dir.path(), addr, |_| {});
    fwd.enqueue(message(1));
    fwd.enqueue(message(2));
    wait_until("both answered", || {
        let c = fwd.counters();
        c.sent + c.rejected == 2
    });
    let counters = fwd.counters();
    assert_eq!(
        (counters.sent, counters.rejected, counters.retried),
        (1, 1, 0)
    );
    assert_eq!(
        counters.last_error.as_deref(),
        Some("gRPC InvalidArgument: bad trace id")
    );
    assert_eq!(receiver.calls().len(), 2);
}

#[test]
fn grpc_a_server_down_at_first_gets_everything_once_it_is_up() {
    let dir = tempfile::tempdir().unwrap();
    let addr = loopback().local_addr().unwrap();
    let fwd = forwarder(dir.path(), addr, |_| {});
    for i in 0..5 {
        fwd.enqueue(message(i));
    }
    wait_until("refused twice", || fwd.counters().retried >= 2);
    assert_eq!(fwd.counters().sent, 0);
    let listener = (0..100)
        .find_map(|_| {
            std::net::TcpListener::bind(addr).ok().or_else(|| {
                thread::sleep(Duration::from_millis(20));
                None
            })
        })
        .expect("the address again");
    let receiver = Receiver::start(listener, Box::new(|_| Ok(())));
    wait_until("5 delivered", || fwd.counters().sent == 5);
    let bodies: Vec<Vec<u8>> = receiver.calls().iter().map(|c| c.body.to_vec()).collect();
    assert_eq!(bodies, (0..5).map(message).collect::<Vec<_>>());
    fwd.shutdown(Duration::from_secs(2));
}
