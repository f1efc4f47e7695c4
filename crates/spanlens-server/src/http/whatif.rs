//! `GET /api/v1/whatif`: the model calls of a trace, a session or a time range priced as
//! another catalog model, beside their cost as stored (the arithmetic is
//! `spanlens_core::whatif`). Nothing stored changes.

use super::error::{bad, ApiError};
use super::params::Params;
use super::rows::trace_id;
use crate::state::AppState;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::Json;
use spanlens_api as api;
use spanlens_core::whatif::{what_if, CallWhatIf, WhatIf, WhatIfOptions};
use spanlens_core::{NanoUsd, Span};
use spanlens_store::SpanScan;
use std::collections::BTreeMap;

/// Traces of one session, or matching a trace-list filter, read at most (each is read whole).
pub(super) const MAX_SESSION_TRACES: usize = 1_000;

/// The trace list's filters (`GET /api/v1/traces`) that choose a set of traces to price; `from`
/// and `to` alone choose a range of calls instead.
const LIST_FILTERS: [&str; 19] = [
    "name",
    "kind",
    "status",
    "model",
    "provider",
    "user",
    "user_id",
    "tag",
    "min_duration_ms",
    "max_duration_ms",
    "min_cost",
    "max_cost",
    "score_name",
    "score",
    "text",
    "q",
    "content",
    "prompt",
    "prompt_version",
];

/// What every answer says about its token counts.
pub(super) const TOKEN_NOTE: &str = "Token counts are as measured with the models the calls \
     ran on; another model's tokenizer would count the same text differently, so this is the \
     price of these tokens at the other model's rates.";

fn usd(n: Option<NanoUsd>) -> Option<f64> {
    n.map(NanoUsd::as_usd_f64)
}

fn call(c: &CallWhatIf<'_>) -> api::WhatIfCall {
    let usage = c.span.usage.clone().unwrap_or_default();
    api::WhatIfCall {
        trace_id: c.span.trace_id.to_hex(),
        span_id: c.span.span_id.to_hex(),
        name: c.span.name.clone(),
        model: c.model.map(str::to_string),
        agent: c.span.agent_name.clone(),
        input_tokens: usage.input_tokens,
        cache_read_tokens: usage.cache_read_tokens,
        output_tokens: usage.output_tokens,
        stored_usd: usd(c.stored),
        whatif_usd: usd(c.whatif),
        repriced: c.repriced,
        pricing_id: c.pricing_id.clone(),
    }
}

/// The options a request names: `as` (the model), `only_model`, `only_agent`,
/// `only_provider` and `cache_reads` (default true).
fn options(p: &Params) -> Result<WhatIfOptions, ApiError> {
    let model = p
        .string(&["as"])
        .filter(|m| !m.trim().is_empty())
        .ok_or_else(|| {
            bad(
                "as",
                "",
                "name the catalog model to price the calls as, e.g. as=claude-sonnet-4-5",
            )
        })?;
    let cache_reads = match p.get(&["cache_reads"]) {
        None | Some("true") | Some("1") => true,
        Some("false") | Some("0") => false,
        Some(other) => return Err(bad("cache_reads", other, "expected true or false")),
    };
    Ok(WhatIfOptions {
        model,
        only_model: p.string(&["only_model"]),
        only_agent: p.string(&["only_agent"]),
        only_provider: p.string(&["only_provider"]),
        cache_reads,
    })
}

/// One model's calls: count, repriced, stored and what-if nano-USD, and the unpriced of each.
#[derive(Default)]
struct ModelSums {
    calls: usize,
    repriced: usize,
    stored: i64,
    whatif: i64,
    stored_unpriced: usize,
    whatif_unpriced: usize,
}

/// Running totals over the calls priced so far (a range is priced a trace at a time).
#[derive(Default)]
struct Sums {
    stored: i64,
    whatif: i64,
    calls: usize,
    repriced: usize,
    stored_unpriced: usize,
    whatif_unpriced: usize,
    /// Per model the calls ran on.
    by_model: BTreeMap<Option<String>, ModelSums>,
}

impl Sums {
    fn add(&mut self, w: &WhatIf<'_>) {
        self.stored = self.stored.saturating_add(w.stored.0);
        self.whatif = self.whatif.saturating_add(w.whatif.0);
        self.calls += w.calls.len();
        self.repriced += w.repriced;
        self.stored_unpriced += w.stored_unpriced;
        self.whatif_unpriced += w.whatif_unpriced;
        for c in &w.calls {
            let row = self
                .by_model
                .entry(c.model.map(str::to_string))
                .or_default();
            row.calls += 1;
            row.repriced += usize::from(c.repriced);
            row.stored = row.stored.saturating_add(c.stored.map_or(0, |n| n.0));
            row.whatif = row.whatif.saturating_add(c.whatif.map_or(0, |n| n.0));
            row.stored_unpriced += usize::from(c.stored.is_none());
            row.whatif_unpriced += usize::from(c.whatif.is_none());
        }
    }
}

pub(super) async fn whatif(
    State(st): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<Json<api::WhatIfAnswer>, ApiError> {
    let p = Params::parse(q)?;
    let project = p.project();
    let opts = options(&p)?;
    let catalog = st.catalog();
    let price = |spans: &[Span], sums: &mut Sums, calls: Option<&mut Vec<api::WhatIfCall>>| {
        let w =
            what_if(spans, &opts, catalog).map_err(|e| bad("as", &opts.model, &e.to_string()))?;
        sums.add(&w);
        if let Some(out) = calls {
            out.extend(w.calls.iter().map(call));
        }
        Ok::<_, ApiError>(())
    };
    // An unknown model is refused even where there is nothing to price.
    price(&[], &mut Sums::default(), None)?;
    let not_found = |what: String| ApiError(StatusCode::NOT_FOUND, what);
    let mut sums = Sums::default();
    let mut calls = Vec::new();
    let range = p.get(&["from"]).is_some() || p.get(&["to"]).is_some();
    let filtered = LIST_FILTERS.iter().any(|k| p.get(&[k]).is_some());
    let (scope, id, traces) = match (p.get(&["trace_id"]), p.get(&["session_id"]), range) {
        (None, None, _) if filtered => {
            // The traces the trace list shows for these filters (its `from`/`to` included).
            let mut query = super::traces::list_query(&p)?;
            query.limit = MAX_SESSION_TRACES as u32;
            query.cursor = None;
            let page = st.store.list_traces(&query).await?;
            if page.next_cursor.is_some() {
                return Err(ApiError(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "more than {MAX_SESSION_TRACES} traces match these filters: narrow them, \
                         or price a time range alone (from=&to=), answered by model"
                    ),
                ));
            }
            let mut read = 0;
            for t in &page.items {
                if let Some(d) = st.store.get_trace(&project, t.trace_id).await? {
                    price(&d.spans, &mut sums, Some(&mut calls))?;
                    read += 1;
                }
            }
            let filters: Vec<String> = p
                .pairs()
                .0
                .iter()
                .filter(|(k, _)| {
                    LIST_FILTERS.contains(&k.as_str()) || k == "from" || k == "to"
                })
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            ("traces", filters.join("&"), read)
        }
        (Some(t), None, false) => {
            let detail = st
                .store
                .get_trace(&project, trace_id(t)?)
                .await?
                .ok_or_else(|| not_found(format!("no trace {t}")))?;
            price(&detail.spans, &mut sums, Some(&mut calls))?;
            ("trace", t.to_string(), 1)
        }
        (None, Some(s), false) => {
            let session = st
                .store
                .get_session(&project, s)
                .await?
                .ok_or_else(|| not_found(format!("no session {s:?}")))?;
            if session.traces.len() > MAX_SESSION_TRACES {
                return Err(bad(
                    "session_id",
                    s,
                    &format!(
                        "the session has {} traces; a what-if reads at most {MAX_SESSION_TRACES}",
                        session.traces.len()
                    ),
                ));
            }
            let mut read = 0;
            for t in &session.traces {
                // A trace erased since the session was read is simply not there any more.
                if let Some(d) = st.store.get_trace(&project, t.trace_id).await? {
                    price(&d.spans, &mut sums, Some(&mut calls))?;
                    read += 1;
                }
            }
            ("session", s.to_string(), read)
        }
        (None, None, true) => {
            // Every model call that started in the range, a trace at a time: totals and the
            // rows per model, not each call.
            let scan = SpanScan {
                project: project.clone(),
                from: p.time("from")?,
                to: p.time("to")?,
                model: None,
            };
            let mut batches = st.store.scan_model_spans(&scan).await?;
            let mut traces = std::collections::HashSet::new();
            while let Some(spans) = batches.next().await {
                traces.extend(spans.iter().map(|s| s.trace_id));
                price(&spans, &mut sums, None)?;
            }
            batches.finish().await?;
            let edge = |t: Option<spanlens_core::Timestamp>| t.map(|t| t.to_rfc3339()).unwrap_or_default();
            (
                "range",
                format!("{}/{}", edge(scan.from), edge(scan.to)),
                traces.len(),
            )
        }
        _ => {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                "name what to price: trace_id=ID, session_id=ID, the trace list's filters (name=, tag=, user=, …), or a time range from=&to= (one of them)".into(),
            ))
        }
    };
    let mut by_model: Vec<api::WhatIfModelRow> = sums
        .by_model
        .iter()
        .map(|(model, m)| api::WhatIfModelRow {
            model: model.clone(),
            calls: m.calls,
            repriced: m.repriced,
            stored_usd: NanoUsd(m.stored).as_usd_f64(),
            stored_unpriced: m.stored_unpriced,
            whatif_usd: NanoUsd(m.whatif).as_usd_f64(),
            whatif_unpriced: m.whatif_unpriced,
        })
        .collect();
    by_model.sort_by(|a, b| b.stored_usd.total_cmp(&a.stored_usd));
    Ok(Json(api::WhatIfAnswer {
        model: opts.model.clone(),
        pricing_version: catalog.version().to_string(),
        cache_reads: opts.cache_reads,
        scope: scope.into(),
        id,
        traces,
        note: TOKEN_NOTE.into(),
        calls,
        by_model,
        total: api::WhatIfTotal {
            stored_usd: NanoUsd(sums.stored).as_usd_f64(),
            stored_nano_usd: sums.stored,
            whatif_usd: NanoUsd(sums.whatif).as_usd_f64(),
            whatif_nano_usd: sums.whatif,
            difference_usd: NanoUsd(sums.whatif.saturating_sub(sums.stored)).as_usd_f64(),
            calls: sums.calls,
            repriced: sums.repriced,
            stored_unpriced: sums.stored_unpriced,
            whatif_unpriced: sums.whatif_unpriced,
        },
    }))
}
