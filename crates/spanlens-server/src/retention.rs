//! Retention: each project's days (shared-state documents `retention:{project}`, set by its
//! admins) applied by a sweeper.
//!
//! One server of a fleet sweeps at a time (the `retention` lease). A sweep asks the store to
//! expire at most [`BATCH`] traces per call — each call one short transaction — and pauses
//! [`PAUSE`] between calls, so ingest never waits long for the writer; the store keeps rollups
//! exact and (SQLite) gives freed pages back as it goes. What each sweep did is saved beside
//! the settings (`retention-sweep:{project}`) and logged.

use crate::state::AppState;
use spanlens_api::{RetentionSettings, SweepReport};
use spanlens_core::Timestamp;
use spanlens_store::{Erased, Expiry, Store, StoreError};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Traces one expiry call handles at most.
pub const BATCH: usize = 200;
/// Pause between expiry calls, leaving the writer to ingest.
pub const PAUSE: Duration = Duration::from_millis(20);
/// How often the sweeper looks for work (a settings change wakes it at once).
pub const EVERY: Duration = Duration::from_secs(60);
/// Longest retention accepted, days (100 years).
pub const MAX_DAYS: u32 = 36_500;
const LEASE: &str = "retention";
const LEASE_TTL: Duration = Duration::from_secs(120);
const KEY: &str = "retention:";
const REPORT: &str = "retention-sweep:";
const DAY_NS: u64 = 86_400_000_000_000;

/// Checks settings an admin sent.
pub fn check(s: &RetentionSettings) -> Result<(), String> {
    for (name, v) in [("days", s.days), ("payload_days", s.payload_days)] {
        if let Some(d) = v {
            if d == 0 || d > MAX_DAYS {
                return Err(format!(
                    "{name}={d}: use 1 to {MAX_DAYS} days, or null for no limit"
                ));
            }
        }
    }
    Ok(())
}

/// A project's retention (none set: keep everything).
pub async fn settings(store: &dyn Store, project: &str) -> Result<RetentionSettings, StoreError> {
    Ok(match store.load_state(&format!("{KEY}{project}")).await? {
        Some(doc) => serde_json::from_str(&doc).unwrap_or_else(|e| {
            tracing::error!(project, error = %e, "saved retention unreadable; nothing is swept");
            RetentionSettings::default()
        }),
        None => RetentionSettings::default(),
    })
}

/// Saves a project's retention (no limits: removes it).
pub async fn save(
    store: &dyn Store,
    project: &str,
    s: RetentionSettings,
) -> Result<(), StoreError> {
    let key = format!("{KEY}{project}");
    if s == RetentionSettings::default() {
        return store.delete_state(&key).await;
    }
    let doc = serde_json::to_string(&s).map_err(|e| StoreError::InvalidQuery(e.to_string()))?;
    store.save_state(&key, &doc).await
}

/// The last sweep of `project` that did something.
pub async fn last_sweep(
    store: &dyn Store,
    project: &str,
) -> Result<Option<SweepReport>, StoreError> {
    Ok(store
        .load_state(&format!("{REPORT}{project}"))
        .await?
        .and_then(|doc| serde_json::from_str(&doc).ok()))
}

/// The rules of `s` as of `now`.
fn rules(s: &RetentionSettings, now: Timestamp) -> Vec<Expiry> {
    let cutoff = |days: u32| Timestamp(now.0.saturating_sub(u64::from(days) * DAY_NS));
    let mut out = Vec::new();
    if let Some(d) = s.days {
        out.push(Expiry::Everything { before: cutoff(d) });
    }
    // Payloads within the kept days only: past `days` the traces are gone anyway.
    if let Some(d) = s.payload_days.filter(|p| s.days.is_none_or(|d| p < &d)) {
        out.push(Expiry::Payloads { before: cutoff(d) });
    }
    out
}

/// Sweeps one project until nothing is left to expire (or the server stops).
pub async fn sweep(
    store: &dyn Store,
    project: &str,
    s: &RetentionSettings,
    stopping: &tokio::sync::watch::Receiver<bool>,
) -> Result<Erased, StoreError> {
    let started_ns = crate::ingest::now().0 as i64;
    let mut total = Erased::default();
    for rule in rules(s, crate::ingest::now()) {
        let mut calls = 0u64;
        loop {
            if *stopping.borrow() {
                return Ok(total);
            }
            let done = store.expire(project, rule, BATCH).await?;
            if done.is_empty() {
                break;
            }
            total.add(done);
            calls += 1;
            if calls % 50 == 0 {
                tracing::info!(
                    project,
                    traces = total.traces,
                    spans = total.spans,
                    payloads = total.payloads,
                    "retention sweep in progress"
                );
            }
            tokio::time::sleep(PAUSE).await;
        }
    }
    if !total.is_empty() {
        let report = SweepReport {
            started_ns,
            finished_ns: crate::ingest::now().0 as i64,
            erased: total,
        };
        tracing::info!(
            project,
            traces = total.traces,
            spans = total.spans,
            payloads = total.payloads,
            seconds = (report.finished_ns - started_ns) as f64 / 1e9,
            "retention sweep done"
        );
        let doc =
            serde_json::to_string(&report).map_err(|e| StoreError::InvalidQuery(e.to_string()))?;
        store
            .save_state(&format!("{REPORT}{project}"), &doc)
            .await?;
    }
    Ok(total)
}

/// Sweeps every project with retention every [`EVERY`] (or when `wake` is notified), while
/// this server holds the `retention` lease, until the server stops.
pub async fn run(state: AppState, wake: Arc<Notify>, holder: String) {
    let store = state.store.clone();
    let mut stopping = state.stopping();
    loop {
        let waited = async {
            tokio::select! {
                () = tokio::time::sleep(EVERY) => {}
                () = wake.notified() => {}
            }
        };
        tokio::select! {
            () = waited => {}
            _ = stopping.wait_for(|s| *s) => break,
        }
        match store.acquire_lease(LEASE, &holder, LEASE_TTL).await {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "retention lease not taken; sweeping later");
                continue;
            }
        }
        let projects = match store.list_state(KEY).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "retention settings not read; sweeping later");
                continue;
            }
        };
        for (key, doc) in projects {
            let project = &key[KEY.len()..];
            let Ok(s) = serde_json::from_str::<RetentionSettings>(&doc) else {
                tracing::error!(project, "saved retention unreadable; not swept");
                continue;
            };
            // Renewed per project, so a long sweep keeps it.
            let _ = store.acquire_lease(LEASE, &holder, LEASE_TTL).await;
            if let Err(e) = sweep(&*store, project, &s, &stopping).await {
                tracing::warn!(project, error = %e, "retention sweep stopped; trying again later");
            }
        }
    }
    let _ = store.release_lease(LEASE, &holder).await;
}
