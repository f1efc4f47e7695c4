//! Queries and results of the `Store` contract, shared by every backend and serialised as the
//! JSON API returns them.

use serde::{Deserialize, Serialize};
use spanlens_core::{NanoUsd, Span, SpanId, SpanKind, Status, Timestamp, TraceId};

/// Project a batch lands in when the request names none.
pub const DEFAULT_PROJECT: &str = "default";

/// Page size used when a query does not ask for one.
pub const DEFAULT_PAGE_SIZE: u32 = 50;

/// Largest page a query may ask for, so one request cannot pull the whole database.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// What one committed submission did, so ingest can report counts and tests can see upserts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct WriteReceipt {
    /// Spans in the submission.
    pub spans: usize,
    /// Spans that were new.
    pub inserted: usize,
    /// Spans that replaced an earlier copy with the same `(project, trace_id, span_id)`.
    pub replaced: usize,
    /// Submissions committed together in the same transaction (group commit at work).
    pub batches_in_transaction: usize,
}

/// What storing GenAI log events did (see [`crate::SpanWriter::add_log_events`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LogEventsReceipt {
    /// Events stored.
    pub stored: usize,
    /// Events already stored for their span (a record sent again), not stored twice.
    pub duplicates: usize,
    /// Events refused because their span already holds `spanlens_core::limits::MAX_EVENTS`.
    pub over_limit: usize,
}

/// One row of the trace list: the trace's root and its rollups, kept current as spans arrive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceSummary {
    /// Trace id.
    pub trace_id: TraceId,
    /// Project the trace belongs to.
    pub project: String,
    /// Root span name (the earliest span's name until the root arrives).
    pub name: String,
    /// Earliest start of any span.
    pub start_time: Timestamp,
    /// Latest end (or start, for open spans) of any span.
    pub end_time: Timestamp,
    /// `end_time - start_time`.
    #[serde(rename = "duration_ms", with = "ms")]
    pub duration_ns: u64,
    /// `error` when the trace failed: its root failed, an agent run under a root without a
    /// status failed, or (root not arrived) any span failed. Otherwise the root's
    /// status, even over errors the trace recovered from (see `error_count`).
    pub status: Status,
    /// Spans stored for the trace.
    pub span_count: u64,
    /// Spans with status `error`; with a status other than `error`, errors it recovered from.
    pub error_count: u64,
    /// Sum of input tokens (cached included).
    pub input_tokens: u64,
    /// Sum of output tokens (reasoning included).
    pub output_tokens: u64,
    /// Sum of total tokens.
    pub total_tokens: u64,
    /// Sum of span costs, exact.
    #[serde(rename = "total_cost_usd")]
    pub total_cost: NanoUsd,
    /// Model calls the catalog could not price; when non-zero, `total_cost` is a lower bound.
    #[serde(default)]
    pub unpriced_span_count: u64,
    /// End user (the root's, else the earliest span's that has one).
    pub user_id: Option<String>,
    /// Session (the root's, else the earliest span's that has one).
    pub session_id: Option<String>,
    /// Union of the tags of every span, sorted.
    pub tags: Vec<String>,
    /// The root span; `None` while the root has not arrived (the trace is incomplete).
    pub root_span_id: Option<SpanId>,
    /// Emitting service of the root (else of the earliest span).
    pub service: Option<String>,
}

/// A trace with all its spans, for the detail view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceDetail {
    /// The trace's summary row.
    #[serde(rename = "trace")]
    pub summary: TraceSummary,
    /// Canonical spans ordered by start time (then span id).
    pub spans: Vec<Span>,
    /// Stored spans that could not be read back; the rest of the trace is still answered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unreadable: Vec<UnreadableSpan>,
}

/// A trace whose spans are left as the stored JSON, so a server can answer without re-encoding.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceDetailJson {
    /// The trace's summary row.
    pub summary: TraceSummary,
    /// Each span's canonical JSON (checked to be well-formed JSON), ordered by start time
    /// (then span id).
    pub spans: Vec<String>,
    /// Stored spans that could not be read back.
    pub unreadable: Vec<UnreadableSpan>,
}

/// A trace's spans as the typed columns a waterfall needs, read without decoding one body:
/// what lets a 100,000-span trace paint in well under a second.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceRows {
    /// The trace's summary row.
    pub summary: TraceSummary,
    /// Every span, ordered by start time (then span id); all of them are closed.
    pub spans: Vec<SpanRow>,
}

/// One span of [`TraceRows`].
#[derive(Debug, Clone, PartialEq)]
pub struct SpanRow {
    /// Span id.
    pub span_id: SpanId,
    /// Parent span id.
    pub parent_span_id: Option<SpanId>,
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: SpanKind,
    /// Status.
    pub status: Status,
    /// Start time.
    pub start_time: Timestamp,
    /// End time.
    pub end_time: Timestamp,
    /// Error type (blank ones read as none).
    pub error_type: Option<String>,
    /// A failed span's status message, its first [`STATUS_MESSAGE_PREFIX_CHARS`] characters
    /// (`None` for a span that did not fail or failed without one).
    pub status_message: Option<String>,
    /// Model asked for (blank ones read as none).
    pub request_model: Option<String>,
    /// Model that answered (blank ones read as none).
    pub response_model: Option<String>,
    /// Agent name.
    pub agent_name: Option<String>,
    /// Input and output tokens, when the span reported usage.
    pub usage: Option<(u64, u64)>,
    /// Total cost, when the span has one.
    pub cost: Option<NanoUsd>,
    /// A model call the catalog could not price.
    pub unpriced: bool,
    /// The span recorded the same provider call as this one, which is counted in its place.
    pub duplicate_of: Option<SpanId>,
}

/// Characters of a failed span's status message kept beside its typed columns: more than any
/// summary of it a list or waterfall shows (the span's body keeps all of it).
pub const STATUS_MESSAGE_PREFIX_CHARS: usize = 1_000;

/// A stored span a read had to leave out (a damaged or hand-edited database, or a body written
/// by a build with other rules): reported in the answer instead of failing the whole read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnreadableSpan {
    /// The span's id, when its row could be read.
    pub span_id: Option<String>,
    /// The trace it belongs to.
    pub trace_id: String,
    /// Why it could not be read.
    pub reason: String,
}

/// What a scan over stored spans had to leave out.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Unreadable {
    /// Spans left out.
    pub count: u64,
    /// The first few of them, with the reason.
    pub examples: Vec<UnreadableSpan>,
}

impl Unreadable {
    /// Examples kept; the count goes on.
    pub const MAX_EXAMPLES: usize = 20;

    /// Records one span left out.
    pub fn add(&mut self, span: UnreadableSpan) {
        self.count += 1;
        if self.examples.len() < Self::MAX_EXAMPLES {
            self.examples.push(span);
        }
    }
}

/// A page of results plus the cursor that continues after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    /// The rows of this page.
    pub items: Vec<T>,
    /// Opaque cursor for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// Which column orders the trace list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SortField {
    /// Trace start time (the default).
    #[default]
    StartTime,
    /// Trace duration.
    Duration,
    /// Total cost.
    Cost,
    /// Total tokens.
    Tokens,
    /// Number of spans.
    SpanCount,
    /// Trace name.
    Name,
    /// Trace status.
    Status,
    /// End user.
    User,
}

impl SortField {
    /// Every sort field, so tests and the API can enumerate them.
    pub const ALL: [SortField; 8] = [
        SortField::StartTime,
        SortField::Duration,
        SortField::Cost,
        SortField::Tokens,
        SortField::SpanCount,
        SortField::Name,
        SortField::Status,
        SortField::User,
    ];

    /// The name used in query strings and cursors.
    pub fn as_str(self) -> &'static str {
        match self {
            SortField::StartTime => "start_time",
            SortField::Duration => "duration",
            SortField::Cost => "cost",
            SortField::Tokens => "tokens",
            SortField::SpanCount => "span_count",
            SortField::Name => "name",
            SortField::Status => "status",
            SortField::User => "user",
        }
    }

    /// Parses a query-string sort name (case-insensitive).
    pub fn parse(s: &str) -> Option<SortField> {
        SortField::ALL
            .into_iter()
            .find(|f| f.as_str().eq_ignore_ascii_case(s))
    }
}

/// Direction of a sort.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SortOrder {
    /// Largest / latest first (the default: newest traces on top).
    #[default]
    Desc,
    /// Smallest / earliest first.
    Asc,
}

impl SortOrder {
    /// The name used in query strings and cursors.
    pub fn as_str(self) -> &'static str {
        match self {
            SortOrder::Desc => "desc",
            SortOrder::Asc => "asc",
        }
    }

    /// Parses `asc` / `desc` (case-insensitive).
    pub fn parse(s: &str) -> Option<SortOrder> {
        [SortOrder::Desc, SortOrder::Asc]
            .into_iter()
            .find(|o| o.as_str().eq_ignore_ascii_case(s))
    }
}

/// Conditions a trace must meet to be listed; every set field must hold (AND).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TraceFilter {
    /// Trace started at or after this time.
    pub from: Option<Timestamp>,
    /// Trace started before this time.
    pub to: Option<Timestamp>,
    /// Trace name equals this.
    pub name: Option<String>,
    /// Trace contains a span of this kind.
    pub kind: Option<SpanKind>,
    /// Trace status equals this.
    pub status: Option<Status>,
    /// Only traces that did not fail but hold errors they recovered from (status not `error`,
    /// `error_count` above 0).
    #[serde(default)]
    pub recovered: bool,
    /// Trace contains a span whose request or response model equals this.
    pub model: Option<String>,
    /// Trace contains a span of this provider.
    pub provider: Option<String>,
    /// Trace user equals this.
    pub user_id: Option<String>,
    /// Trace session equals this.
    pub session_id: Option<String>,
    /// Trace carries every one of these tags.
    pub tags: Vec<String>,
    /// Duration at least this many nanoseconds.
    pub min_duration_ns: Option<u64>,
    /// Duration at most this many nanoseconds.
    pub max_duration_ns: Option<u64>,
    /// Total cost at least this much.
    pub min_cost: Option<NanoUsd>,
    /// Total cost at most this much.
    #[serde(default)]
    pub max_cost: Option<NanoUsd>,
    /// Trace (or one of its spans) carries a score matching this.
    #[serde(default)]
    pub score: Option<ScoreFilter>,
    /// Case-insensitive substring of the trace id, trace or span names, user, session, service or tags.
    pub text: Option<String>,
    /// Words that one span of the trace holds all of in its input, output or messages (whole
    /// words, case-insensitive: `spanlens_core::content`).
    #[serde(default)]
    pub content: Option<String>,
    /// Trace contains a span that used this prompt template (`spanlens_core::prompts`).
    #[serde(default)]
    pub prompt: Option<String>,
    /// With `prompt`: a span used this version of it.
    #[serde(default)]
    pub prompt_version: Option<String>,
    /// Trace contains a span that used any prompt template.
    #[serde(default)]
    pub has_prompt: bool,
}

/// How the traces matching a filter ended: the counts behind the trace list's "failed" and
/// "recovered errors" figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceOutcomes {
    /// Traces matching the filter.
    pub traces: u64,
    /// Of them, traces with status `error`.
    pub failed: u64,
    /// Of them, traces that did not fail but hold errors they recovered from.
    pub recovered: u64,
}

/// A score condition of the trace list: a score of this name, within the bounds and with the
/// label given.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScoreFilter {
    /// Score name.
    pub name: String,
    /// Value at least this (booleans: 1 pass, 0 fail).
    pub min: Option<f64>,
    /// Value at most this.
    pub max: Option<f64>,
    /// Categorical label equal to this.
    pub label: Option<String>,
}

/// Which scores to list.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScoreQuery {
    /// Project.
    pub project: String,
    /// Scores of this trace (and of its spans).
    pub trace_id: Option<TraceId>,
    /// Scores of this span.
    pub span_id: Option<SpanId>,
    /// Scores of this session.
    pub session_id: Option<String>,
    /// Scores of this name.
    pub name: Option<String>,
    /// At most this many, newest first (default 100, at most 1000).
    pub limit: Option<usize>,
    /// Only scores stored after the one with this id, oldest first instead: pages through every
    /// score of a project (a copy of the store) by passing the last id of each page.
    #[serde(default)]
    pub after_id: Option<i64>,
}

/// One score name on one UTC day: how many, their mean (a boolean's mean is its pass rate).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreTrendRow {
    /// Score name.
    pub name: String,
    /// `numeric` or `boolean`.
    pub data_type: spanlens_core::evals::ScoreType,
    /// UTC day of the score's creation, `YYYY-MM-DD`.
    pub day: String,
    /// Scores that day.
    pub count: u64,
    /// Mean value (pass rate for booleans).
    pub mean: f64,
}

/// A request for one page of the trace list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListQuery {
    /// Project to list.
    pub project: String,
    /// Conditions on the traces.
    pub filter: TraceFilter,
    /// Sort column.
    pub sort: SortField,
    /// Sort direction.
    pub order: SortOrder,
    /// Rows per page (1..=`MAX_PAGE_SIZE`).
    pub limit: u32,
    /// Cursor from the previous page's `next_cursor`.
    pub cursor: Option<String>,
}

impl Default for ListQuery {
    fn default() -> Self {
        ListQuery {
            project: DEFAULT_PROJECT.to_string(),
            filter: TraceFilter::default(),
            sort: SortField::default(),
            order: SortOrder::default(),
            limit: DEFAULT_PAGE_SIZE,
            cursor: None,
        }
    }
}

impl ListQuery {
    /// The first page of a project's traces, newest first, with no filter.
    pub fn new(project: impl Into<String>) -> Self {
        ListQuery {
            project: project.into(),
            ..Default::default()
        }
    }
}

/// A request for one page of sessions (traces grouped by `session_id`), most recent activity first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionQuery {
    /// Project to list.
    pub project: String,
    /// Only traces that started at or after this time count.
    pub from: Option<Timestamp>,
    /// Only traces that started before this time count.
    pub to: Option<Timestamp>,
    /// Only traces of this user count.
    pub user_id: Option<String>,
    /// Rows per page (1..=`MAX_PAGE_SIZE`).
    pub limit: u32,
    /// Cursor from the previous page's `next_cursor`.
    pub cursor: Option<String>,
}

impl SessionQuery {
    /// The first page of a project's sessions with no filter.
    pub fn new(project: impl Into<String>) -> Self {
        SessionQuery {
            project: project.into(),
            from: None,
            to: None,
            user_id: None,
            limit: DEFAULT_PAGE_SIZE,
            cursor: None,
        }
    }
}

/// One session: the rollup of its traces.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionSummary {
    /// Session id.
    pub session_id: String,
    /// A user seen in the session (the greatest id, when several).
    pub user_id: Option<String>,
    /// Traces in the session.
    pub trace_count: u64,
    /// Spans over all its traces.
    pub span_count: u64,
    /// Failed spans over all its traces.
    pub error_count: u64,
    /// Input tokens over all its traces.
    pub input_tokens: u64,
    /// Output tokens over all its traces.
    pub output_tokens: u64,
    /// Total tokens over all its traces.
    pub total_tokens: u64,
    /// Cost over all its traces, exact.
    #[serde(rename = "total_cost_usd")]
    pub total_cost: NanoUsd,
    /// Model calls the catalog could not price; when non-zero, `total_cost` is a lower bound.
    #[serde(default)]
    pub unpriced_span_count: u64,
    /// Start of its first trace.
    pub first_time: Timestamp,
    /// End of its last trace.
    pub last_time: Timestamp,
}

/// A session with its traces, for the session view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionDetail {
    /// The session rollup.
    pub session: SessionSummary,
    /// Its traces, oldest first.
    pub traces: Vec<TraceSummary>,
}

/// How metric rows are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    /// One row for everything.
    #[default]
    All,
    /// By model (request model, else response model).
    Model,
    /// By provider.
    Provider,
    /// By agent name.
    Agent,
    /// By end user.
    User,
    /// By UTC day of the span start (`YYYY-MM-DD`).
    Day,
    /// By span kind.
    Kind,
    /// By tool name, over tool spans only.
    Tool,
}

impl GroupBy {
    /// Every grouping, so tests and the API can enumerate them.
    pub const ALL: [GroupBy; 8] = [
        GroupBy::All,
        GroupBy::Model,
        GroupBy::Provider,
        GroupBy::Agent,
        GroupBy::User,
        GroupBy::Day,
        GroupBy::Kind,
        GroupBy::Tool,
    ];

    /// The name used in query strings.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupBy::All => "all",
            GroupBy::Model => "model",
            GroupBy::Provider => "provider",
            GroupBy::Agent => "agent",
            GroupBy::User => "user",
            GroupBy::Day => "day",
            GroupBy::Kind => "kind",
            GroupBy::Tool => "tool",
        }
    }

    /// Parses a query-string grouping name (case-insensitive).
    pub fn parse(s: &str) -> Option<GroupBy> {
        GroupBy::ALL
            .into_iter()
            .find(|g| g.as_str().eq_ignore_ascii_case(s))
    }
}

/// A request for span metrics over a time range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsQuery {
    /// Project to measure.
    pub project: String,
    /// Spans that started at or after this time.
    pub from: Option<Timestamp>,
    /// Spans that started before this time.
    pub to: Option<Timestamp>,
    /// Grouping of the rows.
    pub group_by: GroupBy,
    /// Only spans of this kind.
    pub kind: Option<SpanKind>,
    /// Only spans whose request or response model equals this.
    pub model: Option<String>,
    /// Only spans of this provider.
    pub provider: Option<String>,
}

impl MetricsQuery {
    /// Metrics of a whole project, grouped as asked, with no filter.
    pub fn new(project: impl Into<String>, group_by: GroupBy) -> Self {
        MetricsQuery {
            project: project.into(),
            from: None,
            to: None,
            group_by,
            kind: None,
            model: None,
            provider: None,
        }
    }
}

/// p50 / p95 / p99 of a set of durations (nearest-rank; `None` when there are no values).
///
/// The metrics queries take them from histograms (see [`MAX_PERCENTILE_ERROR`]): each is the
/// midpoint of the histogram bucket that holds the exact nearest-rank value, so it is within
/// 0.79% of it (exact below 64 ns). `count` is exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Percentiles {
    /// Median, nanoseconds (JSON: `p50_ms`).
    #[serde(rename = "p50_ms", with = "spanlens_core::time::opt_ms")]
    pub p50: Option<u64>,
    /// 95th percentile, nanoseconds (JSON: `p95_ms`).
    #[serde(rename = "p95_ms", with = "spanlens_core::time::opt_ms")]
    pub p95: Option<u64>,
    /// 99th percentile, nanoseconds (JSON: `p99_ms`).
    #[serde(rename = "p99_ms", with = "spanlens_core::time::opt_ms")]
    pub p99: Option<u64>,
    /// Values the percentiles were taken over.
    pub count: u64,
}

impl Percentiles {
    /// The percentiles the metrics queries report for `values`: each is the midpoint of the
    /// histogram bucket that holds the exact nearest-rank value (see [`MAX_PERCENTILE_ERROR`]),
    /// so a backend or a test can compute the same answer from raw values.
    pub fn bucketed(values: &[u64]) -> Percentiles {
        let mut h = crate::rollup::hist::Hist::default();
        for v in values {
            h.add(*v, 1);
        }
        Percentiles {
            p50: h.percentile(50.0),
            p95: h.percentile(95.0),
            p99: h.percentile(99.0),
            count: values.len() as u64,
        }
    }

    /// Computes the exact percentiles of `values` (sorted in place).
    pub fn of(values: &mut [u64]) -> Percentiles {
        values.sort_unstable();
        Percentiles {
            p50: percentile_nearest_rank(values, 50.0),
            p95: percentile_nearest_rank(values, 95.0),
            p99: percentile_nearest_rank(values, 99.0),
            count: values.len() as u64,
        }
    }
}

/// Largest relative error of a latency or TTFT percentile returned by the metrics queries,
/// against the exact nearest-rank value of the same spans: 1/128 (0.79%).
pub const MAX_PERCENTILE_ERROR: f64 = crate::rollup::hist::MAX_RELATIVE_ERROR;

/// The nearest-rank percentile of sorted values: the smallest value with at least `p`% of the
/// values at or below it (the same definition as SQL `percentile_disc`), so backends agree.
pub fn percentile_nearest_rank(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() || !p.is_finite() {
        return None;
    }
    let n = sorted.len();
    let p = p.clamp(0.0, 100.0);
    // rank = ceil(p * n / 100), 1-based, at least 1; multiplying first keeps whole
    // percentages exact (0.99 * 200 is not exactly 198 in floating point, 99 * 200 / 100 is).
    let rank = (p * n as f64 / 100.0).ceil() as usize;
    let idx = rank.clamp(1, n) - 1;
    sorted.get(idx).copied()
}

/// One group of span metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricRow {
    /// The group (model, provider, day, …); `None` for spans that lack it (and for `GroupBy::All`).
    pub key: Option<String>,
    /// Spans in the group.
    pub span_count: u64,
    /// Spans with status `error`.
    pub error_count: u64,
    /// Retries recorded on the spans (`retry` events, or a tool's retry count).
    pub retry_count: u64,
    /// Input tokens (cached included).
    pub input_tokens: u64,
    /// Output tokens (reasoning included).
    pub output_tokens: u64,
    /// Tokens read from the prompt cache.
    pub cache_read_tokens: u64,
    /// Tokens written to the prompt cache.
    pub cache_write_tokens: u64,
    /// Reasoning tokens.
    pub reasoning_tokens: u64,
    /// Total tokens.
    pub total_tokens: u64,
    /// Cost, exact.
    #[serde(rename = "cost_usd")]
    pub cost: NanoUsd,
    /// Model calls of the group the catalog could not price: when above 0, `cost` is a lower
    /// bound (only what was priced), never a genuine $0.
    #[serde(default)]
    pub unpriced_span_count: u64,
    /// Span duration percentiles (ended spans only).
    pub latency: Percentiles,
    /// Time-to-first-token percentiles (spans that report one).
    pub ttft: Percentiles,
}

/// Metrics of a time range cut into consecutive slices (the dashboard's time series).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricSeries {
    /// The whole range, grouped as asked.
    pub rows: Vec<MetricRow>,
    /// Each slice, in order, grouped as asked.
    pub slices: Vec<Vec<MetricRow>>,
}

impl MetricSeries {
    /// The metrics queries a series of `query` over `bounds` is made of: the whole range
    /// `[bounds[0], bounds[last])`, then each slice between consecutive bounds; none without
    /// bounds.
    pub fn queries(query: &MetricsQuery, bounds: &[Timestamp]) -> Vec<MetricsQuery> {
        let within = |from: Timestamp, to: Timestamp| MetricsQuery {
            from: Some(from),
            to: Some(to),
            ..query.clone()
        };
        let (Some(first), Some(last)) = (bounds.first(), bounds.last()) else {
            return Vec::new();
        };
        std::iter::once(within(*first, *last))
            .chain(bounds.windows(2).map(|w| within(w[0], w[1])))
            .collect()
    }

    /// The series from the answers to [`MetricSeries::queries`], in their order.
    pub fn from_answers(answers: Vec<Vec<MetricRow>>) -> MetricSeries {
        let mut answers = answers.into_iter();
        MetricSeries {
            rows: answers.next().unwrap_or_default(),
            slices: answers.collect(),
        }
    }
}

/// The cost of one group on one UTC day, for forecasting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DailyCost {
    /// The group (model, agent, user, …), `None` for spans that lack it and for `GroupBy::All`.
    pub key: Option<String>,
    /// Day number: days since 1970-01-01, UTC.
    pub day: i64,
    /// Cost of the group's spans that started that day.
    #[serde(rename = "cost_usd")]
    pub cost: NanoUsd,
    /// Spans that day with a cost (a day of only unpriced calls has none: its $0 is not a cost).
    #[serde(default)]
    pub priced_span_count: u64,
    /// Model calls that day the catalog could not price.
    #[serde(default)]
    pub unpriced_span_count: u64,
}

/// Which model-call spans (LLM and embedding) to visit, for re-pricing and reconciliation.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SpanScan {
    /// Project (empty means the default project).
    pub project: String,
    /// Spans that started at or after this time.
    pub from: Option<Timestamp>,
    /// Spans that started before this time.
    pub to: Option<Timestamp>,
    /// Only spans whose request or response model equals this.
    pub model: Option<String>,
}

/// What a re-pricing run did (or, dry, would do).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RepriceReport {
    /// Catalog version the spans were priced with.
    pub catalog_version: String,
    /// True when nothing was written.
    pub dry_run: bool,
    /// Model-call spans with usage and a cost of our own (candidates for re-pricing).
    pub examined: u64,
    /// Spans whose cost changed (and were rewritten unless dry).
    pub changed: u64,
    /// Spans that were unpriced and now have a cost.
    pub newly_priced: u64,
    /// Spans left alone because the provider reported their cost.
    pub reported_skipped: u64,
    /// Stored spans that could not be read (left as they are).
    #[serde(default)]
    pub unreadable: u64,
    /// Per model (request model, else response model), largest cost after first.
    pub models: Vec<RepriceModel>,
}

/// One model's share of a re-pricing run.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RepriceModel {
    /// Model name as the spans carry it.
    pub model: String,
    /// Spans examined.
    pub spans: u64,
    /// Spans whose cost changed.
    pub changed: u64,
    /// Cost of the examined spans before.
    #[serde(rename = "cost_before_usd")]
    pub cost_before: NanoUsd,
    /// Cost of the examined spans after.
    #[serde(rename = "cost_after_usd")]
    pub cost_after: NanoUsd,
    /// Examined spans without a cost before.
    pub unpriced_before: u64,
    /// Examined spans without a cost after.
    pub unpriced_after: u64,
}

/// Serde helper writing a nanosecond `u64` as fractional milliseconds.
mod ms {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(*v as f64 / 1e6)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let ms = f64::deserialize(d)?;
        if ms.is_finite() && ms >= 0.0 {
            Ok((ms * 1e6).round() as u64)
        } else {
            Err(serde::de::Error::custom(format!(
                "invalid duration {ms} ms"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_matches_hand_computation() {
        let v: Vec<u64> = (1..=10).collect();
        assert_eq!(percentile_nearest_rank(&v, 50.0), Some(5));
        assert_eq!(percentile_nearest_rank(&v, 95.0), Some(10));
        assert_eq!(percentile_nearest_rank(&v, 0.0), Some(1));
        assert_eq!(percentile_nearest_rank(&v, 100.0), Some(10));
        assert_eq!(percentile_nearest_rank(&[], 50.0), None);
        assert_eq!(percentile_nearest_rank(&[7], 99.0), Some(7));
        let v: Vec<u64> = (1..=200).collect();
        assert_eq!(percentile_nearest_rank(&v, 99.0), Some(198));
        assert_eq!(percentile_nearest_rank(&v, f64::NAN), None);
    }

    #[test]
    fn names_round_trip() {
        for f in SortField::ALL {
            assert_eq!(SortField::parse(f.as_str()), Some(f));
        }
        for g in GroupBy::ALL {
            assert_eq!(GroupBy::parse(g.as_str()), Some(g));
        }
        assert_eq!(SortOrder::parse("ASC"), Some(SortOrder::Asc));
        assert_eq!(SortField::parse("nope"), None);
    }
}
