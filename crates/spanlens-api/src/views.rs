//! Saved views of the trace list: a named set of filters, sort and columns, kept per project.

use serde::{Deserialize, Serialize};

/// The trace list's columns a view may show, in the list's order.
pub const VIEW_COLUMNS: &[&str] = &[
    "name", "start", "duration", "spans", "tokens", "cost", "status", "user",
];

/// A saved view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedView {
    /// Its id (16 hex digits): the link `/?view=ID` opens it.
    pub id: String,
    /// Its name, unique in the project.
    pub name: String,
    /// The trace list's query string (filters and sort), without `project` and `cursor`.
    pub query: String,
    /// The columns shown, in order (every column when empty).
    pub columns: Vec<String>,
    /// Who saved it (`account NAME`, `key slk_… (name)`, `local (auth off)`).
    pub saved_by: String,
    /// When it was last saved, ns since the epoch.
    pub saved_ns: u64,
}

/// `GET /api/v1/views`: the project's views, by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewList {
    /// The project.
    pub project: String,
    /// Its views.
    pub views: Vec<SavedView>,
}

/// The body of `POST /api/v1/views` and `PUT /api/v1/views/{id}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViewInput {
    /// The name (1–100 characters).
    pub name: String,
    /// The trace list's query string, e.g. `model=gpt-4o&status=error&sort=cost&order=desc`.
    #[serde(default)]
    pub query: String,
    /// The columns shown (of [`VIEW_COLUMNS`]); empty: all.
    #[serde(default)]
    pub columns: Vec<String>,
}
