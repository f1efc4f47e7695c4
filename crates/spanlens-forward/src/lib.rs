//! At-least-once forwarding of opaque request bodies to an outside destination.
//!
//! Bodies go into a [`DiskQueue`] (bounded, crash-safe, append-only segment files) through a
//! [`Forwarder`], whose writer thread takes them off the caller's path and whose delivery
//! thread sends the head record with a [`Transport`] until it is delivered or rejected.
//! [`HttpTransport`] posts over HTTP; [`GrpcTransport`] calls OTLP/gRPC trace export. See the
//! README beside this crate for the guarantees, the on-disk format and the retry rules.

mod forwarder;
mod grpc;
mod http;
mod queue;

pub use forwarder::{
    Counters, Forwarder, Outcome, RetryPolicy, Transport, DEFAULT_CHANNEL_CAPACITY,
};
pub use grpc::{GrpcConfig, GrpcTransport, TRACE_EXPORT_PATH};
pub use http::{parse_retry_after, HttpConfig, HttpTransport, TransportError};
pub use queue::{
    DiskQueue, QueueConfig, QueueError, QueueStats, Record, DEFAULT_MAX_BYTES,
    DEFAULT_SEGMENT_BYTES, RECORD_HEADER,
};

#[cfg(test)]
mod tests {
    /// The server shares a forwarder between request handlers, and a queue between threads.
    #[test]
    fn handles_can_be_shared_between_threads() {
        fn shared<T: Send + Sync>() {}
        shared::<super::DiskQueue>();
        shared::<super::Forwarder>();
        fn sent<T: Send>() {}
        sent::<super::HttpTransport>();
        sent::<super::GrpcTransport>();
    }
}

/// Compiles the README's example as a doctest, so it keeps to the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
