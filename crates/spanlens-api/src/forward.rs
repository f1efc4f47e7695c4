//! Forwarding: where a server sends on what it ingested, and how each destination is doing.

use serde::{Deserialize, Serialize};
use spanlens_core::SpanKind;
use std::collections::BTreeMap;

/// What a destination speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DestinationKind {
    /// Any OTLP receiver (HTTP or gRPC).
    Otlp,
    /// Langfuse, through its OTLP endpoint.
    Langfuse,
    /// LangSmith, through its OTLP endpoint.
    Langsmith,
}

/// How an OTLP destination is reached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OtlpProtocol {
    /// OTLP/HTTP protobuf (`/v1/traces` under the endpoint).
    #[default]
    Http,
    /// OTLP/gRPC (the endpoint is `http://host:port`).
    Grpc,
}

/// The mask shown, and accepted back, in place of a secret the server holds.
pub const SECRET_MASK: &str = "********";

/// One destination: a `[[destination]]` table of the forwarding file, or an entry a project's
/// admin saved through the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationConfig {
    /// Unique name (letters, digits, `-`, `_`, `.`); names its queue directory.
    pub name: String,
    /// `otlp`, `langfuse` or `langsmith`.
    pub kind: DestinationKind,
    /// Base URL (`http://collector:4318`, `https://cloud.langfuse.com`,
    /// `https://api.smith.langchain.com`); the kind's path is appended unless present.
    pub endpoint: String,
    /// `otlp` only: `http` (default) or `grpc`.
    #[serde(default, skip_serializing_if = "is_default")]
    pub protocol: OtlpProtocol,
    /// `otlp` only: headers sent with every request (values are secrets).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// `langfuse`: the project's public key (`pk-lf-…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// `langfuse`: the project's secret key (`sk-lf-…`), or `secret_key_env`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key: Option<String>,
    /// `langfuse`: the environment variable holding the secret key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_env: Option<String>,
    /// `langsmith`: the API key, or `api_key_env`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    /// `langsmith`: the environment variable holding the API key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    /// `langsmith`: the tracing project the runs go to (LangSmith's `default` when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Filter: the Spanlens projects forwarded (all when empty; a project's own destinations
    /// take its spans only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub projects: Vec<String>,
    /// Filter: the span kinds forwarded (all when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<SpanKind>,
    /// Filter: the share of traces forwarded, `0 < rate ≤ 1`, decided per trace id so a trace
    /// goes whole or not at all (default 1).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub sample_rate: f64,
    /// Compress requests with gzip (default true).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub gzip: bool,
    /// The most the destination's on-disk queue holds; past it, the oldest requests are
    /// dropped and counted (default 256 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_bytes: Option<u64>,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}
fn one() -> f64 {
    1.0
}
fn is_one(v: &f64) -> bool {
    *v == 1.0
}
fn yes() -> bool {
    true
}
fn is_true(v: &bool) -> bool {
    *v
}

impl DestinationConfig {
    /// The same destination with every secret replaced by [`SECRET_MASK`], for showing.
    pub fn masked(&self) -> DestinationConfig {
        let mask = |s: &Option<String>| s.as_ref().map(|_| SECRET_MASK.to_string());
        DestinationConfig {
            headers: self
                .headers
                .keys()
                .map(|k| (k.clone(), SECRET_MASK.to_string()))
                .collect(),
            secret_key: mask(&self.secret_key),
            api_key: mask(&self.api_key),
            ..self.clone()
        }
    }
}

/// The forwarding file (`serve --forward FILE`), TOML: `[[destination]]` tables.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardConfig {
    /// The destinations.
    #[serde(default)]
    pub destination: Vec<DestinationConfig>,
}

/// Where a destination's settings come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DestinationSource {
    /// The server's forwarding file: read-only through the API.
    File,
    /// Saved by a project's admin through the API.
    Project,
}

/// How a destination's delivery is doing on the server that answers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeliveryCounters {
    /// Spans handed to the destination (after its filters).
    pub spans: u64,
    /// Requests delivered.
    pub sent: u64,
    /// Attempts that failed and were retried.
    pub retried: u64,
    /// Requests the destination refused for good (a 4xx other than 408 and 429); not retried.
    pub rejected: u64,
    /// Requests dropped because the queue was full (the oldest go first).
    pub dropped: u64,
    /// Batches dropped before the queue because the server could not keep up.
    pub dropped_overflow: u64,
    /// Requests waiting in the queue.
    pub queued: u64,
    /// Their bytes.
    pub queued_bytes: u64,
    /// Age of the oldest waiting request, seconds (0 when none waits).
    pub lag_seconds: f64,
    /// The last failure, if the last attempt failed.
    pub last_error: Option<String>,
    /// When a request was last delivered (RFC 3339).
    pub last_success: Option<String>,
}

/// One destination and its counters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DestinationStatus {
    /// Its settings, secrets masked.
    pub config: DestinationConfig,
    /// Where they come from.
    pub source: DestinationSource,
    /// Delivery so far (since this server started; the queue's counts are on disk).
    pub counters: DeliveryCounters,
}

/// `GET` and `PUT /api/v1/projects/{project}/forwarding`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForwardingAnswer {
    /// The project.
    pub project: String,
    /// Every destination its spans go to: the server's file destinations that take them, then
    /// its own.
    pub destinations: Vec<DestinationStatus>,
}

/// The body of `PUT /api/v1/projects/{project}/forwarding`: the project's own destinations,
/// replacing those it had. A secret given as [`SECRET_MASK`] keeps the saved one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectForwarding {
    /// The destinations.
    pub destinations: Vec<DestinationConfig>,
}
