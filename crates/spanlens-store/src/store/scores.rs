//! Evaluation scores attached to traces and spans.

use crate::error::StoreError;
use crate::types::{ScoreQuery, ScoreTrendRow};
use async_trait::async_trait;
use spanlens_core::evals::Score;
use spanlens_core::Timestamp;

/// Keeps and reads scores. What callers observe: a batch of scores is stored whole or not at
/// all, and a read after `add_scores` returns sees it.
#[async_trait]
pub trait ScoreStore: Send + Sync {
    /// Stores validated scores for `project`; returns their ids in order.
    async fn add_scores(&self, project: &str, scores: &[Score]) -> Result<Vec<i64>, StoreError>;

    /// Scores matching the query, newest first.
    async fn list_scores(&self, query: &ScoreQuery) -> Result<Vec<Score>, StoreError>;

    /// Daily count and mean per numeric or boolean score name, created in `[from, to)`.
    async fn score_trends(
        &self,
        project: &str,
        from: Option<Timestamp>,
        to: Option<Timestamp>,
    ) -> Result<Vec<ScoreTrendRow>, StoreError>;
}
