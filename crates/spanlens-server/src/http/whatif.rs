//! `GET /api/v1/whatif`: the model calls of a trace or a session priced as another catalog
//! model, beside their cost as stored (the arithmetic is `spanlens_core::whatif`). Nothing
//! stored changes.

use super::error::{bad, ApiError};
use super::params::Params;
use super::rows::trace_id;
use crate::state::AppState;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::Json;
use spanlens_api as api;
use spanlens_core::whatif::{what_if, CallWhatIf, WhatIfOptions};
use spanlens_core::{NanoUsd, Span};

/// Traces of one session read at most (each is read whole).
pub(super) const MAX_SESSION_TRACES: usize = 1_000;

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

pub(super) async fn whatif(
    State(st): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<Json<api::WhatIfAnswer>, ApiError> {
    let p = Params::parse(q)?;
    let project = p.project();
    let opts = options(&p)?;
    let not_found = |what: String| ApiError(StatusCode::NOT_FOUND, what);
    let (scope, id, traces) = match (p.get(&["trace_id"]), p.get(&["session_id"])) {
        (Some(t), None) => {
            let detail = st
                .store
                .get_trace(&project, trace_id(t)?)
                .await?
                .ok_or_else(|| not_found(format!("no trace {t}")))?;
            ("trace", t.to_string(), vec![detail])
        }
        (None, Some(s)) => {
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
            let mut details = Vec::with_capacity(session.traces.len());
            for t in &session.traces {
                // A trace erased since the session was read is simply not there any more.
                if let Some(d) = st.store.get_trace(&project, t.trace_id).await? {
                    details.push(d);
                }
            }
            ("session", s.to_string(), details)
        }
        _ => {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                "name what to price: trace_id=ID or session_id=ID (one of them)".into(),
            ))
        }
    };
    let count = traces.len();
    let spans: Vec<Span> = traces.into_iter().flat_map(|d| d.spans).collect();
    let catalog = st.catalog();
    let w = what_if(&spans, &opts, catalog).map_err(|e| bad("as", &opts.model, &e.to_string()))?;
    Ok(Json(api::WhatIfAnswer {
        model: opts.model.clone(),
        pricing_version: catalog.version().to_string(),
        cache_reads: opts.cache_reads,
        scope: scope.into(),
        id,
        traces: count,
        note: TOKEN_NOTE.into(),
        calls: w.calls.iter().map(call).collect(),
        total: api::WhatIfTotal {
            stored_usd: w.stored.as_usd_f64(),
            stored_nano_usd: w.stored.0,
            whatif_usd: w.whatif.as_usd_f64(),
            whatif_nano_usd: w.whatif.0,
            difference_usd: NanoUsd(w.whatif.0.saturating_sub(w.stored.0)).as_usd_f64(),
            calls: w.calls.len(),
            repriced: w.repriced,
            stored_unpriced: w.stored_unpriced,
            whatif_unpriced: w.whatif_unpriced,
        },
    }))
}
