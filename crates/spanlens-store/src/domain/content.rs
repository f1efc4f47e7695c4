//! Full-text search, the part every store shares: the words of a filter's search, checked and
//! lowered by `spanlens_core::content`. Each store then looks them up in its own index (SQLite
//! FTS5, PostgreSQL a GIN index of word arrays, ClickHouse a text index).

use crate::error::StoreError;
use crate::types::TraceFilter;
use spanlens_core::content;

/// The words of the filter's full-text condition, `None` when it has none.
pub fn filter_words(f: &TraceFilter) -> Result<Option<Vec<String>>, StoreError> {
    match f.content.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(c) => content::query_words(c)
            .map(Some)
            .map_err(|e| StoreError::InvalidQuery(e.to_string())),
    }
}
