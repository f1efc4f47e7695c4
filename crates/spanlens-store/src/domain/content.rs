//! Content search for stores that keep no index of span content (SQLite, PostgreSQL): the
//! trace list without its content condition, read a page at a time, keeping each trace one of
//! whose spans holds every word of the query (`spanlens_core::content`).
//!
//! Reading a trace's spans is the cost, so a page examines at most [`EXAMINED_PER_PAGE`]
//! traces or [`SPANS_PER_PAGE`] spans: a rare word costs one bounded request per page, and such
//! a page may be short (even empty) and still have a next cursor. Counting outcomes has no
//! pages, so it refuses a filter that leaves more than [`EXAMINED_FOR_COUNTS`] traces to read,
//! and says to narrow it.

use crate::error::StoreError;
use crate::facts::read::cursor_after;
use crate::store::TraceReader;
use crate::types::{ListQuery, Page, TraceFilter, TraceOutcomes, TraceSummary, MAX_PAGE_SIZE};
use spanlens_core::content;
use spanlens_core::{Status, TraceId};

/// Traces a page of a content search reads at most.
pub const EXAMINED_PER_PAGE: usize = 2_000;

/// Spans a page of a content search reads at most (past the trace that crosses it), so a page
/// of very wide traces stays bounded too.
pub const SPANS_PER_PAGE: u64 = 100_000;

/// Traces the outcome counts of a content search read at most.
pub const EXAMINED_FOR_COUNTS: usize = 20_000;

/// The words of the filter's content condition, `None` when it has none.
pub fn filter_words(f: &TraceFilter) -> Result<Option<Vec<String>>, StoreError> {
    match f.content.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(c) => content::query_words(c)
            .map(Some)
            .map_err(|e| StoreError::InvalidQuery(e.to_string())),
    }
}

/// The query without its content condition, reading full pages.
fn base(q: &ListQuery) -> ListQuery {
    let mut base = q.clone();
    base.filter.content = None;
    base.limit = MAX_PAGE_SIZE;
    base
}

/// Whether one span of the trace holds every one of `words`.
async fn trace_matches<R: TraceReader + ?Sized>(
    reader: &R,
    project: &str,
    trace_id: TraceId,
    words: &[String],
) -> Result<bool, StoreError> {
    let Some(detail) = reader.get_trace(project, trace_id).await? else {
        return Ok(false);
    };
    Ok(detail
        .spans
        .iter()
        .any(|s| content::matches(&content::text(s), words)))
}

/// A page of the trace list of `q`, whose content condition has `words`.
pub async fn list_traces<R: TraceReader + ?Sized>(
    reader: &R,
    q: &ListQuery,
    words: &[String],
) -> Result<Page<TraceSummary>, StoreError> {
    let limit = q.limit.clamp(1, MAX_PAGE_SIZE) as usize;
    let mut base = base(q);
    let mut items = Vec::new();
    let (mut examined, mut spans) = (0, 0);
    loop {
        let page = reader.list_traces(&base).await?;
        let n = page.items.len();
        for (i, t) in page.items.iter().enumerate() {
            examined += 1;
            spans += t.span_count;
            if trace_matches(reader, &q.project, t.trace_id, words).await? {
                items.push(t.clone());
            }
            if items.len() == limit || examined >= EXAMINED_PER_PAGE || spans >= SPANS_PER_PAGE {
                let at_end = i + 1 == n && page.next_cursor.is_none();
                return Ok(Page {
                    items,
                    next_cursor: (!at_end).then(|| cursor_after(q, t)),
                });
            }
        }
        match page.next_cursor {
            Some(c) => base.cursor = Some(c),
            None => {
                return Ok(Page {
                    items,
                    next_cursor: None,
                })
            }
        }
    }
}

/// The outcome counts of `q`, whose content condition has `words`.
pub async fn trace_outcomes<R: TraceReader + ?Sized>(
    reader: &R,
    q: &ListQuery,
    words: &[String],
) -> Result<TraceOutcomes, StoreError> {
    let mut base = base(q);
    base.filter.status = None;
    base.filter.recovered = false;
    base.cursor = None;
    let mut counts = TraceOutcomes::default();
    let mut examined = 0;
    loop {
        let page = reader.list_traces(&base).await?;
        for t in &page.items {
            examined += 1;
            if examined > EXAMINED_FOR_COUNTS {
                return Err(StoreError::InvalidQuery(format!(
                    "counting a content search reads every trace of the filter, and more than \
                     {EXAMINED_FOR_COUNTS} match the rest of it on this store: narrow the time \
                     range or add conditions"
                )));
            }
            if trace_matches(reader, &q.project, t.trace_id, words).await? {
                counts.traces += 1;
                if t.status == Status::Error {
                    counts.failed += 1;
                } else if t.error_count > 0 {
                    counts.recovered += 1;
                }
            }
        }
        match page.next_cursor {
            Some(c) => base.cursor = Some(c),
            None => return Ok(counts),
        }
    }
}
