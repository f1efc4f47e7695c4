//! The pure core of Spanlens: the canonical span model, normalisation of every supported
//! source into it, the price catalog with its cost engine, and the analyses of stored spans
//! (where a trace's time went, how retried calls recovered, how two runs differ).
//!
//! No I/O and no async runtime live here, so the SDK, the server and the CLI can all share it.

pub mod alerts;
pub mod analysis;
pub mod compare;
pub mod content;
pub mod conventions;
pub mod dedup;
pub mod evals;
pub mod forecast;
pub mod graph;
pub mod ids;
pub mod limits;
pub mod media;
pub mod money;
pub mod normalize;
pub mod openai_agents;
pub mod otlp;
pub mod pricing;
pub mod projection;
pub mod prompts;
pub mod recovery;
pub mod redact;
pub mod sdk_report;
pub mod span;
pub mod time;
pub mod usage;
pub mod whatif;

pub use analysis::{analyze, TraceAnalysis};
pub use compare::{compare, Comparison};
pub use ids::{IdError, SpanId, TraceId};
pub use money::NanoUsd;
pub use normalize::{
    detect_json_format, normalize, DecodeError, InputFormat, NormalizeOptions, Normalized,
    Rejection,
};
pub use pricing::{
    compute_cost, price_span, reprice_span, PriceCatalog, Reconciliation, ReconciliationRow,
};
pub use recovery::{recovery_report, retry_timeline, RecoveryBuilder, RecoveryReport};
pub use span::{
    Attributes, Cost, CostBreakdown, CostSource, Event, Link, Message, Payload, PromptTemplate,
    RateLimitWindow, RateLimits, Span, SpanKind, Status, ToolCallRef, ToolInfo, Truncation, Usage,
};
pub use time::Timestamp;
pub use usage::{parse_provider_usage, UsageError, UsageFormat};
