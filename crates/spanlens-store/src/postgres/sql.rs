//! A statement built with its parameters, so `$n` numbering never drifts from the values.

use super::db;
use crate::error::StoreError;
use crate::facts::prepare::to_i64;
use spanlens_core::Timestamp;
use tokio_postgres::types::ToSql;
use tokio_postgres::{GenericClient, Row};

/// One parameter of a built statement.
pub type Param = Box<dyn ToSql + Sync + Send>;

/// SQL text and its positional parameters.
#[derive(Default)]
pub struct Sql {
    pub text: String,
    pub params: Vec<Param>,
}

impl Sql {
    /// A statement starting with `text`.
    pub fn new(text: impl Into<String>) -> Sql {
        Sql {
            text: text.into(),
            params: Vec::new(),
        }
    }

    /// Adds a parameter and returns its placeholder (`$n`).
    pub fn bind(&mut self, v: impl ToSql + Sync + Send + 'static) -> String {
        self.params.push(Box::new(v));
        format!("${}", self.params.len())
    }

    /// Appends text.
    pub fn push(&mut self, s: &str) {
        self.text.push_str(s);
    }

    /// Appends ` AND ` and `template`, its `?` replaced by a new parameter holding `v`.
    pub fn and(&mut self, template: &str, v: impl ToSql + Sync + Send + 'static) {
        let p = self.bind(v);
        self.push(" AND ");
        self.push(&template.replace('?', &p));
    }

    /// Spans or traces that started in `[from, to)` (either end open).
    pub fn started_in(&mut self, from: Option<Timestamp>, to: Option<Timestamp>) {
        if let Some(t) = from {
            self.and("start_ns >= ?", to_i64(t.0));
        }
        if let Some(t) = to {
            self.and("start_ns < ?", to_i64(t.0));
        }
    }

    /// Spans whose request or response model is `model`.
    pub fn model_is(&mut self, model: &str) {
        let p = self.bind(model.to_string());
        self.push(&format!(
            " AND (request_model = {p} OR response_model = {p})"
        ));
    }

    /// A page in `order`: one row more than `limit`, which says another page follows.
    pub fn page(&mut self, order: &str, limit: usize) {
        self.push(&format!(" ORDER BY {order} LIMIT {}", limit + 1));
    }

    /// Runs the statement, `op` naming it in errors.
    pub async fn rows(
        &self,
        client: &impl GenericClient,
        op: &'static str,
    ) -> Result<Vec<Row>, StoreError> {
        client.query(&self.text, &self.args()).await.map_err(db(op))
    }

    /// The parameters as the driver takes them.
    pub fn args(&self) -> Vec<&(dyn ToSql + Sync)> {
        args(&self.params)
    }
}

/// Parameters as the driver takes them.
pub fn args(params: &[Param]) -> Vec<&(dyn ToSql + Sync)> {
    params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect()
}
