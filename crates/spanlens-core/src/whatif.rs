//! What spans would have cost on another model: every model call (or those of one model, agent
//! or provider) priced as a catalog model it did not run on, beside the cost as stored, without
//! changing anything stored.
//!
//! Token counts stay as measured: another model's tokenizer would count the same text
//! differently, so the answer is the price of *these* tokens at the other model's rates. Cache
//! reads and writes are priced at the other model's cache rates when `cache_reads` is on, and as
//! plain input when it is off (the call as if nothing had been cached).

use crate::money::NanoUsd;
use crate::pricing::{compute_cost, span_model, PriceCatalog, PriceEntry};
use crate::span::{Span, SpanKind, Usage};
use crate::time::Timestamp;

/// What to price, and as what.
#[derive(Debug, Clone, Default)]
pub struct WhatIfOptions {
    /// The catalog model every selected call is priced as.
    pub model: String,
    /// Only calls of this model (request or response model, case-insensitive).
    pub only_model: Option<String>,
    /// Only calls made by this agent.
    pub only_agent: Option<String>,
    /// Only calls to this provider.
    pub only_provider: Option<String>,
    /// Price cache reads and writes at the model's cache rates (on), or as plain input (off).
    pub cache_reads: bool,
}

/// Why a what-if cannot be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WhatIfError {
    /// The model to price as is not in the catalog.
    #[error(
        "no price for model {model:?} in catalog {version}: pick a model `spanlens models` lists"
    )]
    UnknownModel {
        /// The model asked for.
        model: String,
        /// The catalog's version.
        version: String,
    },
}

/// One model call, as stored and as priced on the other model.
#[derive(Debug, Clone, PartialEq)]
pub struct CallWhatIf<'a> {
    /// The span.
    pub span: &'a Span,
    /// The model it ran on, as reported.
    pub model: Option<&'a str>,
    /// Its cost as stored (`None`: the catalog could not price it).
    pub stored: Option<NanoUsd>,
    /// Its cost on the other model (the stored one when the call was not selected).
    pub whatif: Option<NanoUsd>,
    /// Whether the call was priced as the other model.
    pub repriced: bool,
    /// The catalog entry it was priced with (when repriced).
    pub pricing_id: Option<String>,
}

/// The answer for a set of spans.
#[derive(Debug, Clone, PartialEq)]
pub struct WhatIf<'a> {
    /// The model calls, in the order given (duplicates of another span's call left out).
    pub calls: Vec<CallWhatIf<'a>>,
    /// Sum of the stored costs that are known.
    pub stored: NanoUsd,
    /// Sum of the what-if costs.
    pub whatif: NanoUsd,
    /// Calls priced as the other model.
    pub repriced: usize,
    /// Calls whose stored cost is unknown (unpriced): they are in `whatif`, not in `stored`.
    pub stored_unpriced: usize,
    /// Calls left as stored whose cost is unknown: in neither sum.
    pub whatif_unpriced: usize,
}

fn eq(a: Option<&str>, b: &str) -> bool {
    a.is_some_and(|a| a.trim().eq_ignore_ascii_case(b.trim()))
}

/// Whether `span` is one of the calls `opts` selects.
fn selected(span: &Span, opts: &WhatIfOptions) -> bool {
    opts.only_model.as_deref().is_none_or(|m| {
        eq(span.request_model.as_deref(), m) || eq(span.response_model.as_deref(), m)
    }) && opts
        .only_agent
        .as_deref()
        .is_none_or(|a| eq(span.agent_name.as_deref(), a))
        && opts.only_provider.as_deref().is_none_or(|p| {
            span.provider.as_deref().is_some_and(|sp| {
                crate::conventions::canonical_provider(sp)
                    == crate::conventions::canonical_provider(p)
            })
        })
}

/// The usage priced: as measured, or with cached tokens as plain input.
fn priced_usage(usage: &Usage, cache_reads: bool) -> Usage {
    if cache_reads {
        return usage.clone();
    }
    let mut u = usage.clone();
    u.cache_read_tokens = 0;
    u.cache_write_tokens = 0;
    u.extra.remove(Usage::CACHE_WRITE_1H);
    u
}

/// The catalog entry `model` names, in force at `at`: an entry id (what `GET /api/v1/models`
/// lists, some of which no reported model name would match), else a model name as an
/// instrumentation reports it.
pub fn entry_for<'c>(
    catalog: &'c PriceCatalog,
    model: &str,
    at: Option<Timestamp>,
) -> Option<&'c PriceEntry> {
    let model = model.trim();
    let by_id: Vec<&PriceEntry> = catalog
        .entries()
        .iter()
        .filter(|e| e.id.eq_ignore_ascii_case(model))
        .collect();
    if by_id.is_empty() {
        return catalog.lookup(model, None, at);
    }
    let day = at.map(|t| t.to_rfc3339()[..10].to_string());
    // The latest version in force (an override listed first wins a tie), else the earliest.
    by_id
        .iter()
        .rev()
        .filter(|e| day.as_deref().is_none_or(|d| e.valid_from.as_str() <= d))
        .max_by(|a, b| a.valid_from.cmp(&b.valid_from))
        .or_else(|| by_id.iter().min_by(|a, b| a.valid_from.cmp(&b.valid_from)))
        .copied()
}

/// Prices the model calls among `spans` as `opts.model` (see the module docs). Spans that are
/// not model calls, have no usage, or record another span's call (`duplicate_of`) are left out.
pub fn what_if<'a>(
    spans: &'a [Span],
    opts: &WhatIfOptions,
    catalog: &PriceCatalog,
) -> Result<WhatIf<'a>, WhatIfError> {
    let unknown = || WhatIfError::UnknownModel {
        model: opts.model.clone(),
        version: catalog.version().to_string(),
    };
    if opts.model.trim().is_empty() || entry_for(catalog, &opts.model, None).is_none() {
        return Err(unknown());
    }
    let mut out = WhatIf {
        calls: Vec::new(),
        stored: NanoUsd::ZERO,
        whatif: NanoUsd::ZERO,
        repriced: 0,
        stored_unpriced: 0,
        whatif_unpriced: 0,
    };
    for span in spans {
        let Some(usage) = span.usage.as_ref().filter(|u| !u.is_empty()) else {
            continue;
        };
        if span.kind != SpanKind::Llm || span.duplicate_of.is_some() {
            continue;
        }
        let stored = span.cost.as_ref().map(|c| c.amounts.total);
        let call = if selected(span, opts) {
            // The price in force when the call was made.
            let entry =
                entry_for(catalog, &opts.model, Some(span.start_time)).ok_or_else(unknown)?;
            let cost = compute_cost(entry, &priced_usage(usage, opts.cache_reads)).total;
            out.repriced += 1;
            CallWhatIf {
                span,
                model: span_model(span),
                stored,
                whatif: Some(cost),
                repriced: true,
                pricing_id: Some(entry.id.clone()),
            }
        } else {
            CallWhatIf {
                span,
                model: span_model(span),
                stored,
                whatif: stored,
                repriced: false,
                pricing_id: None,
            }
        };
        match call.stored {
            Some(c) => out.stored += c,
            None => out.stored_unpriced += 1,
        }
        match call.whatif {
            Some(c) => out.whatif += c,
            None => out.whatif_unpriced += 1,
        }
        out.calls.push(call);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::SpanId;
    use crate::span::Cost;

    /// An LLM call of `model` with these tokens and a stored cost.
    fn call(n: u8, model: &str, input: u64, cached: u64, output: u64, cost: Option<i64>) -> Span {
        Span {
            span_id: SpanId([n; 8]),
            name: "chat".into(),
            kind: SpanKind::Llm,
            request_model: Some(model.into()),
            provider: Some(
                if model.starts_with("claude") {
                    "anthropic"
                } else {
                    "openai"
                }
                .into(),
            ),
            start_time: crate::time::Timestamp(1_767_225_600_000_000_000), // 2026-01-01
            usage: Some(Usage {
                input_tokens: input,
                cache_read_tokens: cached,
                output_tokens: output,
                total_tokens: input + output,
                ..Default::default()
            }),
            cost: cost.map(|c| Cost::computed_total(NanoUsd(c))),
            ..Default::default()
        }
    }

    fn opts(model: &str) -> WhatIfOptions {
        WhatIfOptions {
            model: model.into(),
            cache_reads: true,
            ..Default::default()
        }
    }

    /// Hand-computed from the built-in catalog's list prices for claude-sonnet-4-5: $3 input,
    /// $0.30 cache read, $15 output per million tokens, and $6 input past 200,000 input tokens
    /// (Anthropic's long-context tier).
    #[test]
    fn calls_are_priced_at_the_other_models_list_prices() {
        let spans = vec![
            call(1, "gpt-4o", 10_000, 2_000, 1_000, Some(32_500_000)),
            call(2, "gpt-4o-mini", 1_000_000, 0, 0, Some(150_000_000)),
        ];
        let w = what_if(&spans, &opts("claude-sonnet-4-5"), PriceCatalog::builtin()).unwrap();
        // 8,000 × $3/M + 2,000 × $0.30/M + 1,000 × $15/M = $0.024 + $0.0006 + $0.015
        assert_eq!(w.calls[0].whatif, Some(NanoUsd(39_600_000)));
        // 1,000,000 input tokens: the long-context tier, 1,000,000 × $6/M = $6
        assert_eq!(w.calls[1].whatif, Some(NanoUsd(6_000_000_000)));
        assert_eq!(w.stored, NanoUsd(182_500_000));
        assert_eq!(w.whatif, NanoUsd(6_039_600_000));
        assert_eq!(w.repriced, 2);
        // Without cache reads the 2,000 cached tokens cost full input: 10,000 × $3/M + $0.015.
        let no_cache = WhatIfOptions {
            cache_reads: false,
            ..opts("claude-sonnet-4-5")
        };
        let w = what_if(&spans, &no_cache, PriceCatalog::builtin()).unwrap();
        assert_eq!(w.calls[0].whatif, Some(NanoUsd(45_000_000)));
    }

    #[test]
    fn only_the_chosen_calls_change_and_duplicates_and_other_spans_are_left_out() {
        let mut dup = call(3, "gpt-4o", 5, 0, 5, Some(7));
        dup.duplicate_of = Some(SpanId([1; 8]));
        let tool = Span {
            kind: SpanKind::Tool,
            ..call(4, "gpt-4o", 5, 0, 5, Some(9))
        };
        let mut agent_call = call(5, "gpt-4o-mini", 1_000_000, 0, 0, None);
        agent_call.agent_name = Some("Planner".into());
        let spans = vec![
            call(1, "gpt-4o", 1_000_000, 0, 0, Some(2_500_000_000)),
            dup,
            tool,
            agent_call,
        ];
        let only = WhatIfOptions {
            only_model: Some("GPT-4O".into()),
            ..opts("claude-sonnet-4-5")
        };
        let w = what_if(&spans, &only, PriceCatalog::builtin()).unwrap();
        assert_eq!(
            w.calls.len(),
            2,
            "the duplicate and the tool span are not calls to price"
        );
        assert!(w.calls[0].repriced && !w.calls[1].repriced);
        assert_eq!(w.calls[1].whatif, None, "an unpriced call left as it was");
        assert_eq!((w.stored_unpriced, w.whatif_unpriced), (1, 1));
        assert_eq!(w.whatif, NanoUsd(6_000_000_000));
        let by_agent = WhatIfOptions {
            only_agent: Some("planner".into()),
            ..opts("gpt-4o")
        };
        let w = what_if(&spans, &by_agent, PriceCatalog::builtin()).unwrap();
        // gpt-4o's $2.50 input per million, for the Planner's call only.
        assert_eq!(w.calls[1].whatif, Some(NanoUsd(2_500_000_000)));
        assert_eq!((w.stored_unpriced, w.whatif_unpriced), (1, 0));
        let by_provider = WhatIfOptions {
            only_provider: Some("anthropic".into()),
            ..opts("gpt-4o")
        };
        assert_eq!(
            what_if(&spans, &by_provider, PriceCatalog::builtin())
                .unwrap()
                .repriced,
            0
        );
    }

    /// A catalog id is accepted even where no model name would match it (`command-r` prices
    /// `command-r-08-2024` only): $0.15 input per million.
    #[test]
    fn a_catalog_id_names_its_entry() {
        let spans = vec![call(1, "gpt-4o", 1_000_000, 0, 0, Some(2_500_000_000))];
        let w = what_if(&spans, &opts("command-r"), PriceCatalog::builtin()).unwrap();
        assert_eq!(w.whatif, NanoUsd(150_000_000));
        assert_eq!(w.calls[0].pricing_id.as_deref(), Some("command-r"));
    }

    #[test]
    fn an_unknown_model_is_refused_by_name() {
        let e = what_if(&[], &opts("gpt-17-ultra"), PriceCatalog::builtin()).unwrap_err();
        assert!(e.to_string().contains("gpt-17-ultra"), "{e}");
        assert!(what_if(&[], &opts(" "), PriceCatalog::builtin()).is_err());
    }
}
