//! `/api/v1/recovery`: the error-recovery report over a time range.

use super::error::{bad, ApiError};
use super::params::{Params, MAX_BUCKETS};
use crate::ingest;
use crate::state::AppState;
use axum::extract::{RawQuery, State};
use axum::Json;
use spanlens_api::RecoveryAnswer;
use spanlens_core::recovery::Buckets;
use spanlens_core::Timestamp;

/// Default look-back of the recovery report when `from` is not given.
pub(super) const RECOVERY_DEFAULT_NS: u64 = 7 * 24 * 3_600 * 1_000_000_000;

/// Error recovery over a time range (see `spanlens_core::recovery`), exact over the whole
/// range: the store reads the retried spans and the rate-limit snapshots of the spans that
/// started in `[from, to)` from typed rows and rollups, and decodes only the bodies of the
/// timelines it shows.
pub(super) async fn recovery(
    State(st): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<Json<RecoveryAnswer>, ApiError> {
    let p = Params::parse(q)?;
    let to = p.time("to")?.unwrap_or_else(ingest::now);
    let from = p
        .time("from")?
        .unwrap_or(Timestamp(to.0.saturating_sub(RECOVERY_DEFAULT_NS)));
    if from.0 >= to.0 {
        return Err(bad(
            "from",
            &from.to_rfc3339(),
            &format!("must be before to={}", to.to_rfc3339()),
        ));
    }
    let buckets = p.number::<u32>("buckets")?.unwrap_or(24);
    if buckets == 0 || buckets > MAX_BUCKETS {
        return Err(bad(
            "buckets",
            &buckets.to_string(),
            &format!("must be 1..={MAX_BUCKETS}"),
        ));
    }
    let project = p.project();
    let buckets = Buckets {
        from,
        to,
        count: buckets,
    };
    let report = st.store.recovery_report(&project, buckets).await?;
    Ok(Json(RecoveryAnswer {
        project,
        from,
        to,
        report,
    }))
}
