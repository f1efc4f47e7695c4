//! Review queues: traces or spans picked by a trace-list filter or by failed scores, which
//! people walk one by one and score by the queue's score definitions (source `human`).

use serde::{Deserialize, Serialize};
use spanlens_core::evals::ScoreType;

/// Where a queue's items come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum QueueSource {
    /// The traces the trace list shows for `query` (its query string: filters and sort).
    Filter {
        /// E.g. `model=gpt-4o&status=error`.
        query: String,
    },
    /// The traces or spans whose score `score` failed: a value at most `fail_at_most`, at
    /// least `fail_at_least`, or a label among `fail_labels` (one of them at least is given).
    /// A score of a span makes a span item; a score of a trace, a trace item.
    FailedScores {
        /// The score's name, e.g. `valid_json`.
        score: String,
        /// A value at most this fails (a boolean's failure: 0).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fail_at_most: Option<f64>,
        /// A value at least this fails.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fail_at_least: Option<f64>,
        /// A label among these fails.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        fail_labels: Vec<String>,
    },
}

/// One score a reviewer gives each item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreDefinition {
    /// The score's name (1–100 characters, unique in the queue).
    pub name: String,
    /// Numeric, boolean or categorical.
    pub data_type: ScoreType,
    /// A numeric score's least value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// A numeric score's greatest value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// A categorical score's labels (1–20).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
}

/// The body of `POST /api/v1/queues`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueInput {
    /// The name (1–100 characters, unique in the project).
    pub name: String,
    /// Where its items come from.
    pub source: QueueSource,
    /// The scores a reviewer gives each item (1–20).
    pub scores: Vec<ScoreDefinition>,
}

/// A queue as defined.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewQueue {
    /// Its id (16 hex digits).
    pub id: String,
    /// Its name.
    pub name: String,
    /// Where its items come from.
    pub source: QueueSource,
    /// The scores a reviewer gives each item.
    pub scores: Vec<ScoreDefinition>,
    /// Who made it (`account NAME`, `key slk_… (name)`, `local (auth off)`).
    pub created_by: String,
    /// When it was made, ns since the epoch.
    pub created_ns: u64,
    /// When its source was last read (made or refreshed), ns since the epoch.
    pub refreshed_ns: u64,
    /// Whether the source yielded more items than a queue holds (the rest were left out).
    pub capped: bool,
}

/// Where an item stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemState {
    /// Nobody has scored or skipped it.
    Pending,
    /// Scored.
    Done,
    /// Skipped by a reviewer.
    Skipped,
}

/// One item of a queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueItem {
    /// Its place in the queue (from 0): the `{item}` of its routes.
    pub index: usize,
    /// The trace reviewed (or the span's trace).
    pub trace_id: String,
    /// The span reviewed, for an item from a failed span score.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span_id: Option<String>,
    /// The trace's name when the item was taken (or the failed score's comment, cut).
    pub label: String,
    /// Pending, done or skipped.
    pub state: ItemState,
    /// Who did or skipped it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// When, ns since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_ns: Option<u64>,
}

/// One reviewer's counts in a queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewerCount {
    /// The reviewer (as in `QueueItem::by`).
    pub reviewer: String,
    /// Items they scored.
    pub done: usize,
    /// Items they skipped.
    pub skipped: usize,
}

/// How far a queue is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueProgress {
    /// Items.
    pub total: usize,
    /// Scored.
    pub done: usize,
    /// Skipped.
    pub skipped: usize,
    /// Neither.
    pub pending: usize,
    /// Per reviewer, most done first.
    pub reviewers: Vec<ReviewerCount>,
}

/// A queue and its progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueSummary {
    /// The queue.
    pub queue: ReviewQueue,
    /// Its progress.
    pub progress: QueueProgress,
}

/// `GET /api/v1/queues`: the project's queues, by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueList {
    /// The project.
    pub project: String,
    /// Its queues.
    pub queues: Vec<QueueSummary>,
}

/// `GET /api/v1/queues/{queue_id}`: a queue, its progress and its items.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueDetail {
    /// The queue.
    pub queue: ReviewQueue,
    /// Its progress.
    pub progress: QueueProgress,
    /// Its items, in order.
    pub items: Vec<QueueItem>,
}

/// `POST /api/v1/queues/{queue_id}/next`: the item the caller reviews now (claimed for them
/// for a few minutes), none when every item is done, skipped or being reviewed by another.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NextItem {
    /// The item, claimed for the caller.
    pub item: Option<QueueItem>,
    /// Until when the claim holds, ns since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed_until_ns: Option<u64>,
    /// The queue's progress.
    pub progress: QueueProgress,
}

/// One score given to an item: `value` for numeric and boolean (1 or 0) scores, `label` for
/// categorical ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewScore {
    /// A score definition's name.
    pub name: String,
    /// The value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// The label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// The body of `POST /api/v1/queues/{queue_id}/items/{item}`: scores, or a skip.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewInput {
    /// The scores (at least one unless skipping; each definition at most once).
    #[serde(default)]
    pub scores: Vec<ReviewScore>,
    /// A note kept as each score's comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Skip the item instead of scoring it.
    #[serde(default)]
    pub skip: bool,
}

/// The answer to a review: the item as it now stands and the scores stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewAnswer {
    /// The item.
    pub item: QueueItem,
    /// The stored scores' ids (none for a skip).
    pub score_ids: Vec<i64>,
    /// The queue's progress.
    pub progress: QueueProgress,
}
