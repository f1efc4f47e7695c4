//! How scores are stored, the same on every backend: the text of their type and source, and
//! the limits of a listing.

use crate::error::StoreError;
use crate::types::ScoreQuery;
use spanlens_core::evals::{Score, ScoreSource, ScoreType};

/// Most scores one listing returns.
const MAX_SCORES: usize = 1000;

/// The number of scores a listing asks for (100 unless it says), refused outside 1..=1000.
pub fn score_limit(q: &ScoreQuery) -> Result<usize, StoreError> {
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_SCORES {
        return Err(StoreError::InvalidQuery(format!(
            "limit {limit} is outside 1..={MAX_SCORES}"
        )));
    }
    Ok(limit)
}

/// Stored text of a score type.
pub fn type_str(t: ScoreType) -> &'static str {
    match t {
        ScoreType::Numeric => "numeric",
        ScoreType::Categorical => "categorical",
        ScoreType::Boolean => "boolean",
    }
}

/// Reads a stored score type back.
pub fn parse_type(s: &str) -> Result<ScoreType, StoreError> {
    match s {
        "numeric" => Ok(ScoreType::Numeric),
        "categorical" => Ok(ScoreType::Categorical),
        "boolean" => Ok(ScoreType::Boolean),
        other => Err(StoreError::Corrupt {
            table: "scores",
            reason: format!("unknown data_type {other:?}"),
        }),
    }
}

/// Reads a stored score source back (unknown text is `api`).
pub fn parse_source(s: &str) -> ScoreSource {
    match s {
        "rule" => ScoreSource::Rule,
        "llm" => ScoreSource::Llm,
        "human" => ScoreSource::Human,
        "otel_event" => ScoreSource::OtelEvent,
        _ => ScoreSource::Api,
    }
}

/// A score as stored: NUL characters in its text replaced (PostgreSQL's text refuses them, and
/// an evaluator's comment quoting a model's output may hold one), the same on every backend.
pub fn storable(mut score: Score) -> Score {
    use super::prepare::replace_nul;
    replace_nul(&mut score.name);
    for text in [
        &mut score.session_id,
        &mut score.label,
        &mut score.comment,
        &mut score.author,
    ]
    .into_iter()
    .flatten()
    {
        replace_nul(text);
    }
    score
}

/// Whether a score identical to one stored is not stored again (its id is returned instead):
/// scores from GenAI events, which a span or log record sent again repeats, and rule verdicts,
/// which a span taken by two collectors (or sent twice) gets from each. A rule gives the same
/// span the same verdict, so one copy is the whole truth. Scores from the API, people and LLM
/// judges are each a new judgement.
pub fn kept_once(source: ScoreSource) -> bool {
    matches!(source, ScoreSource::OtelEvent | ScoreSource::Rule)
}
