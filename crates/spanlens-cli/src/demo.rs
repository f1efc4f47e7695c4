//! `spanlens demo`: loads realistic demo traces into a data directory (also `serve --demo`).

use anyhow::Context;
use clap::Args;
use spanlens_core::{Span, Timestamp};
use spanlens_demo::{generate, trace_ids, DEFAULT_SEED};
use spanlens_store::StoreUri;
use spanlens_store::{Store, StoreError, DEFAULT_PROJECT};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Arguments of `spanlens demo`.
#[derive(Args)]
pub struct DemoArgs {
    #[command(flatten)]
    store: crate::store_args::StoreArgs,
    /// Seed of the generated data: the same seed always gives the same traces and ids.
    #[arg(long, default_value_t = DEFAULT_SEED)]
    seed: u64,
}

/// What loading the demo wrote.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadReport {
    /// Traces written.
    pub traces: usize,
    /// Spans written.
    pub spans: usize,
    /// Spans that were new.
    pub inserted: usize,
    /// Spans that replaced a copy from an earlier load.
    pub replaced: usize,
}

/// Spans per store submission (whole traces are never split).
const BATCH_SPANS: usize = 1_000;

/// Writes the demo for `seed`, timed to end now, into the default project. Loading it again
/// writes the same ids, so the store keeps one copy (with the newer timestamps).
pub async fn load(store: &dyn Store, seed: u64) -> anyhow::Result<LoadReport> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the system clock is before 1970")?;
    let spans = generate(seed, Timestamp(now.as_nanos() as u64));
    let mut report = LoadReport {
        traces: count_traces(&spans),
        spans: spans.len(),
        ..Default::default()
    };
    let mut batch: Vec<Span> = Vec::with_capacity(BATCH_SPANS + 64);
    let mut iter = spans.into_iter().peekable();
    while let Some(s) = iter.next() {
        let trace = s.trace_id;
        batch.push(s);
        let trace_ends = iter.peek().is_none_or(|n| n.trace_id != trace);
        if trace_ends && (batch.len() >= BATCH_SPANS || iter.peek().is_none()) {
            let r = write_patiently(store, std::mem::take(&mut batch)).await?;
            report.inserted += r.inserted;
            report.replaced += r.replaced;
        }
    }
    Ok(report)
}

/// True when the demo for `seed` is already in the store (its first and last traces are there).
pub async fn is_loaded(store: &dyn Store, seed: u64) -> anyhow::Result<bool> {
    let ids = trace_ids(seed);
    for id in [ids.first(), ids.last()].into_iter().flatten() {
        if store.get_trace(DEFAULT_PROJECT, *id).await?.is_none() {
            return Ok(false);
        }
    }
    Ok(!ids.is_empty())
}

fn count_traces(spans: &[Span]) -> usize {
    let mut ids: Vec<_> = spans.iter().map(|s| s.trace_id).collect();
    ids.sort_unstable();
    ids.dedup();
    ids.len()
}

/// Writes a batch, waiting while the store's queue is full (the server may be ingesting too).
async fn write_patiently(
    store: &dyn Store,
    spans: Vec<Span>,
) -> anyhow::Result<spanlens_store::WriteReceipt> {
    let mut wait = Duration::from_millis(50);
    for _ in 0..40 {
        match store.write(DEFAULT_PROJECT, spans.clone()).await {
            Err(StoreError::Busy { .. }) => {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(1));
            }
            other => return other.context("writing demo spans"),
        }
    }
    anyhow::bail!("the store stayed busy; try again when the server is less loaded")
}

/// Runs `spanlens demo`.
pub fn run(args: DemoArgs) -> anyhow::Result<crate::Outcome> {
    let uri = args.store.uri()?;
    let store = args.store.open()?;
    let r = crate::block_on(load(&*store, args.seed))??;
    drop(store); // commits and closes the database before we report success
    println!(
        "wrote {} demo traces ({} spans: {} new, {} replaced) to project \"{}\" in {}",
        r.traces,
        r.spans,
        r.inserted,
        r.replaced,
        DEFAULT_PROJECT,
        match &uri {
            StoreUri::Sqlite { dir } => dir.display().to_string(),
            other => other.to_string(),
        }
    );
    println!(
        "start the server:  spanlens serve {}",
        match &uri {
            StoreUri::Sqlite { dir } => format!("--data-dir {}", shell_path(dir)),
            other => format!("--store '{other}'"),
        }
    );
    println!("then open http://127.0.0.1:4318 or run `spanlens traces`");
    Ok(crate::Outcome::Done)
}

/// A path as it can be pasted into a shell.
fn shell_path(p: &std::path::Path) -> String {
    let s = p.display().to_string();
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+:@".contains(c))
    {
        s
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}
