//! The Spanlens JSON API (`/api/v1/…`) as Rust types: what each route answers, shared by the
//! server, which builds its answers from them, and by clients (the `spanlens` CLI), which parse
//! them back. `openapi.json` in `spanlens-server` documents the same shapes; a test there
//! checks that every route and every field of real answers is in it.
//!
//! Records that the store returns and the API shows unchanged (a session row, a metrics row, a
//! score trend row, the trace outcome counts, an unreadable span) are the store's own types,
//! re-exported here, so each has one definition. Where the API shows a record differently
//! from the store (a trace row has its cost in USD and in nano-USD), the type is defined here
//! with a conversion from the store's.
//!
//! ```
//! use spanlens_api::TracePage;
//! let page: TracePage = serde_json::from_str(r#"{"items": [], "next_cursor": null}"#).unwrap();
//! assert!(page.items.is_empty());
//! ```

mod admin;
mod alerts;
mod compare;
mod erase;
mod error;
mod forward;
mod graph;
mod ingest;
mod insight;
mod live;
mod metrics;
mod params;
mod prompts;
mod queues;
mod recovery;
mod replay;
mod scores;
mod sessions;
mod traces;
mod views;

pub use admin::{
    AccountView, AccountsAnswer, AuditAnswer, AuditEntry, CreateAccount, CreateKey, KeyQuota,
    KeyView, KeysAnswer, NewKey, Quota, QuotaAnswer, QuotaUsage, RedactionAnswer, RedactionRule,
    RedactionSettings, RetentionAnswer, RetentionSettings, RevokedKey, Role, Scope, SetRole,
    SignIn, SignInState, SweepReport,
};
pub use alerts::{AlertView, AlertsAnswer};
pub use compare::{
    CompareAnswer, CompareRow, CompareTotals, Comparison, DiffOp, DiffPiece, Granularity,
    SpanDelta, SpanFacts, TextDiff, TotalsDelta, TraceTotals, PREVIOUS,
};
pub use erase::ErasedAnswer;
pub use error::ErrorBody;
pub use forward::{
    DeliveryCounters, DestinationConfig, DestinationKind, DestinationSource, DestinationStatus,
    ForwardConfig, ForwardingAnswer, OtlpProtocol, ProjectForwarding, SECRET_MASK,
};
pub use graph::{
    GraphEdge, GraphFigures, GraphNode, GraphView, TraceGraphAnswer, WorkflowGraphAnswer,
};
pub use ingest::AgentsIngestAnswer;
pub use insight::{
    DailyCostPoint, ForecastAnswer, ForecastHistory, ForecastPoint, ForecastSeries, ForecastTotal,
    HistoryWindow, ReconciliationAnswer, ReconciliationRow, UnpricedGroup, WeekdayOffsets,
    WhatIfAnswer, WhatIfCall, WhatIfModelRow, WhatIfTotal, WorkflowForecastAnswer, WorkflowHistory,
    WorkflowPerRun, WorkflowProjection,
};
pub use live::{LiveDeleted, LiveSpan};
pub use metrics::{
    MetricBucket, MetricsAnswer, ModelPrice, ModelsAnswer, PriceTier, ProjectsAnswer,
    SdkHealthAnswer, SdkServiceHealth, StatsAnswer,
};
pub use params::{Pairs, ParamError, TraceListQuery};
pub use prompts::{PromptTemplateRow, PromptVersionRow, PromptsAnswer, ScoreMean};
pub use queues::{
    ItemState, NextItem, QueueDetail, QueueInput, QueueItem, QueueList, QueueProgress, QueueSource,
    QueueSummary, ReviewAnswer, ReviewInput, ReviewQueue, ReviewScore, ReviewerCount,
    ScoreDefinition,
};
pub use recovery::RecoveryAnswer;
pub use replay::{
    ReplayAnswer, ReplayDraft, ReplayEndpoint, ReplayEndpoints, ReplayFigures, ReplayMessage,
    ReplayParameters, ReplayRequest,
};
pub use scores::{ScoreIds, ScoreList, ScoreTrends};
pub use sessions::{SessionAnswer, SessionPage};
pub use traces::{SearchHit, TraceDetail, TracePage, TraceRow, TreeAnswer, TreeNode, TreeSummary};
pub use views::{SavedView, ViewInput, ViewList, VIEW_COLUMNS};

pub use spanlens_store::{
    MetricRow, Page, Percentiles, ScoreTrendRow, SessionSummary, TraceOutcomes, Unreadable,
    UnreadableSpan,
};
