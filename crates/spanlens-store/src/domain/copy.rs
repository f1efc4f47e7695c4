//! Copying one store into another through the storage traits (`spanlens migrate`), so any pair
//! of backends can be copied the same way, resumably, and checked at the end.
//!
//! Per project, in the order of `projects()`: the traces a page at a time (each page's spans are
//! written with one commit, then the list cursor is saved in the target's shared state), then
//! the scores a page at a time by id. Re-writing a page after an interruption is harmless (a
//! span sent twice is stored once); a score page is all-or-none, and on resume the target's
//! scores after the last recorded one tell whether the page in flight landed. At the end each
//! project's spans, traces, scores, cost and unpriced calls are compared between the stores.
//!
//! The source should be quiet: traces that arrive while it is copied may be missed, and the
//! final check then says so. GenAI log events are copied merged into their spans; events still
//! waiting for a span that never arrived are not copied.

use crate::error::StoreError;
use crate::store::Store;
use crate::types::{GroupBy, ListQuery, MetricsQuery, ScoreQuery, Unreadable, MAX_PAGE_SIZE};
use serde::{Deserialize, Serialize};
use spanlens_core::{NanoUsd, Span};
use std::collections::BTreeMap;

/// Page sizes of a copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyOptions {
    /// Traces read and written per commit.
    pub trace_page: u32,
    /// Scores per `add_scores` call (at most 1000, a `list_scores` page).
    pub score_page: usize,
}

impl Default for CopyOptions {
    fn default() -> CopyOptions {
        CopyOptions {
            trace_page: MAX_PAGE_SIZE,
            score_page: 1000,
        }
    }
}

/// Why a copy stopped.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// Reading the source failed.
    #[error("reading the source store: {0}")]
    Source(StoreError),
    /// Writing or reading the target failed.
    #[error("writing the target store: {0}")]
    Target(StoreError),
    /// The target already holds data of a project and no copy of this source was under way.
    #[error(
        "the target store already holds {what} of project {project:?}: copy into an empty \
         store (or resume the copy that filled it, from the same source)"
    )]
    TargetNotEmpty {
        /// The project.
        project: String,
        /// What it holds (`12 spans`, `scores`).
        what: String,
    },
    /// The caller asked to stop (its progress callback returned false); progress is saved, so
    /// the same copy started again resumes.
    #[error("interrupted; run the same copy again to resume it")]
    Interrupted,
    /// The saved progress of an earlier copy cannot be read.
    #[error("the saved progress of this copy ({key}) is unreadable: {reason}")]
    BadProgress {
        /// Its shared-state key.
        key: String,
        /// Why.
        reason: String,
    },
}

/// Where a copy stands, for a progress display.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyProgress {
    /// Project being copied.
    pub project: String,
    /// Spans in the source, every project (the copy's size).
    pub total_spans: u64,
    /// Spans copied so far, every project (including those of an earlier, resumed run).
    pub spans: u64,
    /// Traces copied so far.
    pub traces: u64,
    /// Scores copied so far.
    pub scores: u64,
}

/// One project compared between the stores after the copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProjectCheck {
    /// The project.
    pub project: String,
    /// What the source holds.
    pub source: Totals,
    /// What the target holds.
    pub target: Totals,
    /// Source spans that could not be read, so were not copied.
    pub unreadable_spans: u64,
}

impl ProjectCheck {
    /// Whether the target holds what the source does. With unreadable source spans only the
    /// span count (less those spans) and the score count are compared: the source's traces,
    /// cost and unpriced calls still count the spans that were left out.
    pub fn matches(&self) -> bool {
        let (s, t) = (&self.source, &self.target);
        if self.unreadable_spans > 0 {
            return t.spans + self.unreadable_spans == s.spans && t.scores == s.scores;
        }
        s == t
    }
}

/// What a store holds of one project.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// Distinct spans.
    pub spans: u64,
    /// Traces.
    pub traces: u64,
    /// Scores.
    pub scores: u64,
    /// Cost of every span, exact.
    pub cost: NanoUsd,
    /// Model calls without a price.
    pub unpriced: u64,
}

/// The outcome of a copy.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CopyReport {
    /// Whether an interrupted copy was resumed.
    pub resumed: bool,
    /// Every project, compared.
    pub projects: Vec<ProjectCheck>,
    /// Source spans left out because they cannot be read.
    pub unreadable: Unreadable,
}

impl CopyReport {
    /// Whether every project matches.
    pub fn matches(&self) -> bool {
        self.projects.iter().all(ProjectCheck::matches)
    }
}

/// Progress saved in the target after each page, under [`progress_key`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Saved {
    /// Projects copied whole.
    done: Vec<String>,
    /// The project under way.
    project: Option<String>,
    /// Its trace list cursor (none: from the start).
    cursor: Option<String>,
    /// Its traces are all copied; its scores are under way.
    traces_done: bool,
    /// The last source score copied.
    source_score: i64,
    /// The last target score written.
    target_score: i64,
    /// Counters for the progress display.
    spans: u64,
    traces: u64,
    scores: u64,
    /// Source spans that could not be read, with examples.
    unreadable: Unreadable,
    /// The same, counted per project.
    unreadable_by_project: BTreeMap<String, u64>,
}

/// The shared-state key of a copy from the source named `source_id`, in the target.
pub fn progress_key(source_id: &str) -> String {
    // Keys are capped (MAX_STATE_KEY); a long URI is cut, which still names it well enough.
    let id: String = source_id.chars().take(150).collect();
    format!("migrate-from:{id}")
}

/// Copies every project of `source` into `target`, resuming the copy of the same `source_id`
/// (the source's URI, password hidden) when one was interrupted, then compares them.
/// `progress` is called after every page, once the page's progress is saved; returning false
/// stops the copy there ([`CopyError::Interrupted`]).
pub async fn copy_store(
    source: &dyn Store,
    target: &dyn Store,
    source_id: &str,
    opts: CopyOptions,
    progress: &mut (dyn FnMut(&CopyProgress) -> bool + Send),
) -> Result<CopyReport, CopyError> {
    let key = progress_key(source_id);
    let saved = target.load_state(&key).await.map_err(CopyError::Target)?;
    let resumed = saved.is_some();
    let mut s: Saved = match saved {
        Some(text) => serde_json::from_str(&text).map_err(|e| CopyError::BadProgress {
            key: key.clone(),
            reason: e.to_string(),
        })?,
        None => Saved::default(),
    };
    let projects = source.projects().await.map_err(CopyError::Source)?;
    let mut total_spans = 0;
    for p in &projects {
        total_spans += source.count_spans(p).await.map_err(CopyError::Source)?;
    }
    if !resumed {
        for p in &projects {
            let spans = target.count_spans(p).await.map_err(CopyError::Target)?;
            let scored = !scores_after(target, p, 0, 1)
                .await
                .map_err(CopyError::Target)?
                .is_empty();
            if spans > 0 || scored {
                return Err(CopyError::TargetNotEmpty {
                    project: p.clone(),
                    what: if spans > 0 {
                        format!("{spans} spans")
                    } else {
                        "scores".into()
                    },
                });
            }
        }
    }
    for p in &projects {
        if s.done.contains(p) {
            continue;
        }
        if s.project.as_deref() != Some(p.as_str()) {
            s.project = Some(p.clone());
            s.cursor = None;
            s.traces_done = false;
            s.source_score = 0;
            s.target_score = 0;
        }
        let mut go_on = |s: &Saved| {
            progress(&CopyProgress {
                project: p.clone(),
                total_spans,
                spans: s.spans,
                traces: s.traces,
                scores: s.scores,
            })
            .then_some(())
            .ok_or(CopyError::Interrupted)
        };
        while !s.traces_done {
            copy_trace_page(source, target, p, opts.trace_page, &mut s).await?;
            save(target, &key, &s).await?;
            go_on(&s)?;
        }
        while copy_score_page(source, target, p, opts.score_page, &mut s).await? {
            save(target, &key, &s).await?;
            go_on(&s)?;
        }
        s.done.push(p.clone());
        s.project = None;
        save(target, &key, &s).await?;
    }
    let mut report = CopyReport {
        resumed,
        projects: Vec::new(),
        unreadable: s.unreadable.clone(),
    };
    for p in &projects {
        report.projects.push(ProjectCheck {
            project: p.clone(),
            source: totals(source, p).await.map_err(CopyError::Source)?,
            target: totals(target, p).await.map_err(CopyError::Target)?,
            unreadable_spans: s.unreadable_by_project.get(p).copied().unwrap_or(0),
        });
    }
    Ok(report)
}

/// Copies the next page of a project's traces; marks the traces done after the last page.
async fn copy_trace_page(
    source: &dyn Store,
    target: &dyn Store,
    project: &str,
    page_size: u32,
    s: &mut Saved,
) -> Result<(), CopyError> {
    let mut q = ListQuery::new(project);
    q.limit = page_size;
    q.cursor = s.cursor.clone();
    let page = source.list_traces(&q).await.map_err(CopyError::Source)?;
    let mut spans: Vec<Span> = Vec::new();
    for t in &page.items {
        let Some(detail) = source
            .get_trace(project, t.trace_id)
            .await
            .map_err(CopyError::Source)?
        else {
            continue; // gone since it was listed
        };
        for u in detail.unreadable {
            s.unreadable.add(u);
            *s.unreadable_by_project
                .entry(project.to_string())
                .or_default() += 1;
        }
        spans.extend(detail.spans);
    }
    let n = spans.len() as u64;
    if !spans.is_empty() {
        target
            .write(project, spans)
            .await
            .map_err(CopyError::Target)?;
    }
    s.spans += n;
    s.traces += page.items.len() as u64;
    s.traces_done = page.next_cursor.is_none() || page.items.is_empty();
    s.cursor = page.next_cursor;
    Ok(())
}

/// Copies the next page of a project's scores; false when there are none left.
async fn copy_score_page(
    source: &dyn Store,
    target: &dyn Store,
    project: &str,
    page_size: usize,
    s: &mut Saved,
) -> Result<bool, CopyError> {
    // A page written before an interruption, whose progress was not saved: the target holds
    // scores after the last one recorded. Count them as copied.
    let landed = scores_after(target, project, s.target_score, page_size)
        .await
        .map_err(CopyError::Target)?;
    if let Some(last) = landed.last() {
        let from_source = scores_after(source, project, s.source_score, landed.len())
            .await
            .map_err(CopyError::Source)?;
        s.source_score = from_source
            .last()
            .and_then(|x| x.id)
            .unwrap_or(s.source_score);
        s.target_score = last.id.unwrap_or(s.target_score);
        s.scores += landed.len() as u64;
        return Ok(true);
    }
    let mut scores = scores_after(source, project, s.source_score, page_size)
        .await
        .map_err(CopyError::Source)?;
    let Some(last) = scores.last().and_then(|x| x.id) else {
        return Ok(false);
    };
    for sc in &mut scores {
        sc.id = None;
    }
    let ids = target
        .add_scores(project, &scores)
        .await
        .map_err(CopyError::Target)?;
    s.source_score = last;
    s.target_score = ids.last().copied().unwrap_or(s.target_score);
    s.scores += scores.len() as u64;
    Ok(true)
}

/// Up to `limit` scores of `project` stored after the one with id `after`, oldest first.
async fn scores_after(
    store: &dyn Store,
    project: &str,
    after: i64,
    limit: usize,
) -> Result<Vec<spanlens_core::evals::Score>, StoreError> {
    store
        .list_scores(&ScoreQuery {
            project: project.to_string(),
            limit: Some(limit),
            after_id: Some(after),
            ..Default::default()
        })
        .await
}

async fn save(target: &dyn Store, key: &str, s: &Saved) -> Result<(), CopyError> {
    let text = serde_json::to_string(s).map_err(|e| CopyError::BadProgress {
        key: key.to_string(),
        reason: e.to_string(),
    })?;
    target
        .save_state(key, &text)
        .await
        .map_err(CopyError::Target)
}

/// What `store` holds of `project`.
pub async fn totals(store: &dyn Store, project: &str) -> Result<Totals, StoreError> {
    let spans = store.count_spans(project).await?;
    let traces = store.trace_outcomes(&ListQuery::new(project)).await?.traces;
    let rows = store
        .metrics(&MetricsQuery::new(project, GroupBy::All))
        .await?;
    let mut t = Totals {
        spans,
        traces,
        ..Totals::default()
    };
    for r in rows {
        t.cost += r.cost;
        t.unpriced += r.unpriced_span_count;
    }
    let mut after = 0;
    loop {
        let page = scores_after(store, project, after, 1000).await?;
        let Some(last) = page.last().and_then(|x| x.id) else {
            break;
        };
        t.scores += page.len() as u64;
        after = last;
    }
    Ok(t)
}
