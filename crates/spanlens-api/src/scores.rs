//! `/api/v1/scores`: evaluation scores. The request body of `POST` is one
//! `spanlens_core::evals::Score` or an array of them.

use serde::{Deserialize, Serialize};
use spanlens_core::evals::Score;
use spanlens_store::ScoreTrendRow;

/// `GET /api/v1/scores`: matching scores, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreList {
    /// The scores.
    pub items: Vec<Score>,
}

/// `POST /api/v1/scores` (201): the stored scores' ids, in request order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScoreIds {
    /// Ids.
    pub ids: Vec<i64>,
}

/// `GET /api/v1/scores/trends`: per score name and UTC day, count and mean.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreTrends {
    /// Rows by name, then day.
    pub rows: Vec<ScoreTrendRow>,
}
