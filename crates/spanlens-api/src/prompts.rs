//! `/api/v1/prompts`: the prompt templates and versions spans used in a time range, with the
//! figures of each version.

use serde::{Deserialize, Serialize};
use spanlens_core::prompts::{TemplateFigures, VersionFigures};
use spanlens_core::Timestamp;

pub use spanlens_core::prompts::ScoreMean;

/// One version of a template and its figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptVersionRow {
    /// The version (`null`: calls that named none).
    pub version: Option<String>,
    /// Spans that used it.
    pub calls: u64,
    /// Of them, spans in error.
    pub errors: u64,
    /// `errors / calls`.
    pub error_rate: f64,
    /// Summed cost in USD (for display).
    pub cost_usd: f64,
    /// Summed cost, exact, in nano-USD (a span recording the same call as another counts none).
    pub cost_nano_usd: i64,
    /// Calls the catalog could not price: when above 0 the cost is a lower bound.
    pub unpriced_span_count: u64,
    /// Median span duration (nearest rank), milliseconds; `null` when no call has ended.
    pub p50_ms: Option<f64>,
    /// 95th percentile of the span durations (nearest rank), milliseconds.
    pub p95_ms: Option<f64>,
    /// Traces the calls are in.
    pub traces: u64,
    /// Start of the first call.
    pub first_call: Timestamp,
    /// Start of the last call.
    pub last_call: Timestamp,
    /// Mean of each score name on these calls (a span's score) or their traces (a trace's
    /// score), by name.
    pub scores: Vec<ScoreMean>,
}

impl From<VersionFigures> for PromptVersionRow {
    fn from(v: VersionFigures) -> PromptVersionRow {
        let ms = |ns: Option<u64>| ns.map(|n| n as f64 / 1e6);
        PromptVersionRow {
            version: v.version,
            calls: v.calls,
            errors: v.errors,
            error_rate: v.error_rate,
            cost_usd: v.cost_usd.as_usd_f64(),
            cost_nano_usd: v.cost_usd.0,
            unpriced_span_count: v.unpriced_count,
            p50_ms: ms(v.p50_ns),
            p95_ms: ms(v.p95_ns),
            traces: v.traces,
            first_call: Timestamp(v.first_ns),
            last_call: Timestamp(v.last_ns),
            scores: v.scores,
        }
    }
}

/// A template and its versions, the most recently used first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptTemplateRow {
    /// The template's name (a template its source does not name: the name of the spans that
    /// used it).
    pub name: String,
    /// Calls over every version.
    pub calls: u64,
    /// Its versions.
    pub versions: Vec<PromptVersionRow>,
}

impl From<TemplateFigures> for PromptTemplateRow {
    fn from(t: TemplateFigures) -> PromptTemplateRow {
        PromptTemplateRow {
            name: t.name,
            calls: t.calls,
            versions: t.versions.into_iter().map(Into::into).collect(),
        }
    }
}

/// `GET /api/v1/prompts`: the templates used in the most recent traces of a range that hold a
/// prompt (at most `trace_cap` of them; `matched_traces` says how many there were).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptsAnswer {
    /// The project.
    pub project: String,
    /// Range start (traces that started at or after it).
    pub from: Timestamp,
    /// Range end (traces that started before it).
    pub to: Timestamp,
    /// Traces of the range holding a prompt.
    pub matched_traces: u64,
    /// Of them, the traces read (the most recent).
    pub used_traces: u64,
    /// Most traces read.
    pub trace_cap: u64,
    /// The templates, by name.
    pub templates: Vec<PromptTemplateRow>,
    /// Stored spans that could not be read (left out of the figures).
    pub unreadable_span_count: u64,
}
