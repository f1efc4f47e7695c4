//! `/api/v1/metrics`, `/api/v1/models`, `/api/v1/projects` and `/api/v1/stats`.

use serde::{Deserialize, Serialize};
use spanlens_core::Timestamp;
use spanlens_store::MetricRow;

/// `GET /api/v1/metrics[/{group_by}]`: one row per group over the range, and with `buckets=N`
/// the same grouping for each of N equal slices of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsAnswer {
    /// The grouping: all, model, provider, agent, user, day, kind or tool.
    pub group_by: String,
    /// One row per group over the whole range.
    pub rows: Vec<MetricRow>,
    /// The time slices, when `buckets` was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buckets: Option<Vec<MetricBucket>>,
}

/// One time slice of a metrics series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricBucket {
    /// Start, inclusive.
    pub from: Timestamp,
    /// End, exclusive.
    pub to: Timestamp,
    /// One row per group in the slice.
    pub rows: Vec<MetricRow>,
}

/// `GET /api/v1/models`: the price catalog in force.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelsAnswer {
    /// Catalog version.
    pub version: String,
    /// Its entries.
    pub models: Vec<ModelPrice>,
}

/// One catalog entry, with rates in USD per million tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelPrice {
    /// Entry id.
    pub id: String,
    /// Provider.
    pub provider: String,
    /// What it prices (`chat`, `embedding`, …).
    pub kind: String,
    /// The pattern model names are matched against.
    #[serde(rename = "match")]
    pub pattern: String,
    /// First day the price applies.
    pub valid_from: String,
    /// Input tokens.
    pub input_per_million_usd: f64,
    /// Output tokens.
    pub output_per_million_usd: f64,
    /// Tokens read from the prompt cache.
    pub cache_read_per_million_usd: Option<f64>,
    /// Tokens written to the prompt cache (five-minute TTL).
    pub cache_write_per_million_usd: Option<f64>,
    /// Tokens written to the prompt cache with the one-hour TTL.
    pub cache_write_1h_per_million_usd: Option<f64>,
    /// Reasoning tokens, when billed apart from output.
    pub reasoning_per_million_usd: Option<f64>,
    /// Prices above an input size.
    pub tiers: Vec<PriceTier>,
    /// Where the price was read.
    pub source: String,
    /// When it was last checked.
    pub checked: String,
}

/// A price that applies above an input size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriceTier {
    /// Applies to calls with more input tokens than this.
    pub above_input_tokens: u64,
    /// Input tokens.
    pub input_per_million_usd: f64,
    /// Output tokens.
    pub output_per_million_usd: f64,
}

/// `GET /api/v1/projects`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectsAnswer {
    /// Every project that has received spans, by name.
    pub projects: Vec<String>,
}

/// `GET /api/v1/stats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsAnswer {
    /// Project.
    pub project: String,
    /// Distinct spans stored (acknowledged spans only: a load generator's check).
    pub span_count: u64,
    /// Media blobs (images, audio) taken out of the project's spans, each stored once.
    #[serde(default)]
    pub media_blobs: u64,
    /// Their bytes, added up.
    #[serde(default)]
    pub media_bytes: u64,
}

/// `GET /api/v1/sdk/health`: what each service's SDK said about its own export, so that a
/// service dropping spans shows. Kept in the server's memory: see the README.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SdkHealthAnswer {
    /// Project.
    pub project: String,
    /// Services that sent export counters, those that lost spans first, then by name.
    pub services: Vec<SdkServiceHealth>,
}

/// One service's export counters: the latest of each SDK instance (process), summed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SdkServiceHealth {
    /// `service.name` of the resource (empty when it had none).
    pub service: String,
    /// SDK instances (processes) that reported.
    pub instances: u64,
    /// Spans the SDKs exported.
    pub exported: u64,
    /// Spans the SDKs dropped because their queue was full.
    pub dropped: u64,
    /// Spans the SDKs lost because exporting them failed.
    pub failed: u64,
    /// Spans waiting in the SDKs when they last reported.
    pub queued: u64,
    /// When the latest report arrived, ns since the Unix epoch.
    pub last_report_ns: u64,
}
