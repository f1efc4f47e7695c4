//! Re-pricing stored spans with another price catalog, through the storage traits.

use crate::error::StoreError;
use crate::store::Store;
use crate::types::{RepriceModel, RepriceReport, SpanScan};
use spanlens_core::pricing::span_model;
use spanlens_core::{reprice_span, CostSource, NanoUsd, PriceCatalog, Span};
use std::collections::BTreeMap;

/// Spans re-submitted per write while re-pricing, so memory stays bounded on large ranges.
const REPRICE_BATCH: usize = 5_000;

/// Re-computes the computed cost of the selected spans with `catalog` and, unless `dry_run`,
/// writes the changed ones back: they replace the stored copies (last write wins) and their
/// traces' summaries and rollups follow. Spans with a provider-reported cost are left as they
/// are. Idempotent: a second run with the same catalog changes nothing.
pub async fn reprice<S: Store + ?Sized>(
    store: &S,
    scan: &SpanScan,
    catalog: &PriceCatalog,
    dry_run: bool,
) -> Result<RepriceReport, StoreError> {
    let mut report = RepriceReport {
        catalog_version: catalog.version().to_string(),
        dry_run,
        ..Default::default()
    };
    let mut models: BTreeMap<String, RepriceModel> = BTreeMap::new();
    let mut pending: Vec<Span> = Vec::new();
    let mut batches = store.scan_model_spans(scan).await?;
    while let Some(spans) = batches.next().await {
        for mut span in spans {
            if span
                .cost
                .as_ref()
                .is_some_and(|c| c.source == CostSource::Reported)
            {
                report.reported_skipped += 1;
                continue;
            }
            let before = span.cost.as_ref().map(|c| c.amounts.total);
            let was_unpriced = span.unpriced_reason.is_some();
            let Some(changed) = reprice_span(&mut span, catalog) else {
                continue;
            };
            let after = span.cost.as_ref().map(|c| c.amounts.total);
            let model = span_model(&span).unwrap_or("(no model)").to_string();
            let row = models.entry(model.clone()).or_insert_with(|| RepriceModel {
                model,
                ..Default::default()
            });
            report.examined += 1;
            row.spans += 1;
            row.cost_before += before.unwrap_or(NanoUsd::ZERO);
            row.cost_after += after.unwrap_or(NanoUsd::ZERO);
            row.unpriced_before += u64::from(before.is_none());
            row.unpriced_after += u64::from(after.is_none());
            if changed {
                report.changed += 1;
                row.changed += 1;
                if was_unpriced && span.unpriced_reason.is_none() {
                    report.newly_priced += 1;
                }
                pending.push(span);
            }
        }
        if pending.len() >= REPRICE_BATCH {
            flush(store, &scan.project, &mut pending, dry_run).await?;
        }
    }
    report.unreadable = batches.finish().await?.count;
    flush(store, &scan.project, &mut pending, dry_run).await?;
    report.models = models.into_values().collect();
    report.models.sort_by(|a, b| {
        b.cost_after
            .cmp(&a.cost_after)
            .then_with(|| a.model.cmp(&b.model))
    });
    Ok(report)
}

/// Writes the changed spans collected so far (none on a dry run).
async fn flush<S: Store + ?Sized>(
    store: &S,
    project: &str,
    pending: &mut Vec<Span>,
    dry_run: bool,
) -> Result<(), StoreError> {
    if !pending.is_empty() && !dry_run {
        store.write(project, std::mem::take(pending)).await?;
    }
    pending.clear();
    Ok(())
}
