//! The error-recovery report built from a recovery scan, for backends without aggregates of
//! their own.

use crate::error::StoreError;
use crate::store::Analytics;
use crate::types::SpanScan;
use spanlens_core::recovery::{Buckets, RecoveryBuilder, RecoveryReport};

/// The recovery report over `project`'s spans in `[buckets.from, buckets.to)`, from
/// [`Analytics::scan_recovery_spans`].
pub async fn from_scan<A: Analytics + ?Sized>(
    store: &A,
    project: &str,
    buckets: Buckets,
) -> Result<RecoveryReport, StoreError> {
    let mut builder = RecoveryBuilder::new(buckets);
    let scan = SpanScan {
        project: project.to_string(),
        from: Some(buckets.from),
        to: Some(buckets.to),
        model: None,
    };
    let mut batches = store.scan_recovery_spans(&scan).await?;
    while let Some(spans) = batches.next().await {
        for s in &spans {
            builder.add(s);
        }
    }
    batches.finish().await?;
    Ok(builder.finish())
}
