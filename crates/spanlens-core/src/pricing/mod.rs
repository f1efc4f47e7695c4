//! Pricing: the catalog of model prices and the cost engine.
//!
//! Cost = (input − cache_read − cache_write) × input rate + cache_read × cache-read rate
//!      + cache_write × cache-write rate (1-hour writes at their own rate) + output × output rate,
//! with reasoning at its own rate where the model has one, and the tier chosen by input tokens.
//! Every component is rounded to the nearest nano-USD; the total is the sum of the components.

mod catalog;

pub use catalog::{
    name_variants, CatalogError, PriceCatalog, PriceEntry, Rates, Tier, BUILTIN_CATALOG_TOML,
};

use crate::money::NanoUsd;
use crate::span::{Cost, CostBreakdown, CostSource, Span, SpanKind, Usage};

/// `tokens × rate` where the rate is nano-USD per million tokens, rounded half up.
fn charge(tokens: u64, rate_per_million: i64) -> NanoUsd {
    let v = (i128::from(tokens) * i128::from(rate_per_million) + 500_000) / 1_000_000;
    NanoUsd(i64::try_from(v).unwrap_or(i64::MAX))
}

/// The cost of `usage` under `entry`'s prices.
pub fn compute_cost(entry: &PriceEntry, usage: &Usage) -> CostBreakdown {
    let r = entry.rates_for(usage.input_tokens);
    let cached = usage
        .cache_read_tokens
        .saturating_add(usage.cache_write_tokens);
    let uncached = usage.input_tokens.saturating_sub(cached);
    let write_1h = usage
        .extra
        .get(Usage::CACHE_WRITE_1H)
        .copied()
        .unwrap_or(0)
        .min(usage.cache_write_tokens);
    let write_5m = usage.cache_write_tokens - write_1h;
    let write_rate = r.cache_write.unwrap_or(r.input);
    let (output, reasoning) = match r.reasoning {
        Some(rr) => (
            charge(
                usage.output_tokens.saturating_sub(usage.reasoning_tokens),
                r.output,
            ),
            charge(usage.reasoning_tokens, rr),
        ),
        None => (charge(usage.output_tokens, r.output), NanoUsd::ZERO),
    };
    CostBreakdown {
        input: charge(uncached, r.input),
        output,
        cache_read: charge(usage.cache_read_tokens, r.cache_read.unwrap_or(r.input)),
        cache_write: charge(write_5m, write_rate)
            + charge(write_1h, r.cache_write_1h.unwrap_or(write_rate)),
        reasoning,
        total: NanoUsd::ZERO,
    }
    .with_total()
}

/// Prices an LLM or embedding span in place.
///
/// A reported cost stays the displayed one and the computed cost is kept beside it; with no
/// reported cost the computed one is shown. A span whose model matches no catalog entry gets
/// `unpriced_reason` instead of a cost: it is never silently $0.
pub fn price_span(span: &mut Span, catalog: &PriceCatalog) {
    if !matches!(span.kind, SpanKind::Llm | SpanKind::Embedding) {
        return;
    }
    let Some(usage) = span.usage.as_ref().filter(|u| !u.is_empty()) else {
        return;
    };
    let models: Vec<&str> = [
        span.response_model.as_deref(),
        span.request_model.as_deref(),
    ]
    .into_iter()
    .flatten()
    .collect();
    let found = models
        .iter()
        .find_map(|m| catalog.lookup(m, span.provider.as_deref(), Some(span.start_time)));
    let Some(entry) = found else {
        if span.cost.is_none() {
            span.unpriced_reason = Some(match models.first() {
                Some(m) => format!("no price in catalog {} for model {m:?}", catalog.version()),
                None => "no model name on the span".to_string(),
            });
        }
        return;
    };
    let computed = compute_cost(entry, usage);
    span.unpriced_reason = None;
    if span.provider.is_none() {
        span.provider = Some(entry.provider.clone());
    }
    match span.cost.as_mut() {
        Some(c) if c.source == CostSource::Reported => {
            c.computed = Some(computed);
            c.pricing_id = Some(entry.id.clone());
            c.pricing_version = Some(catalog.version().to_string());
        }
        _ => {
            span.cost = Some(Cost {
                source: CostSource::Computed,
                amounts: computed,
                pricing_id: Some(entry.id.clone()),
                pricing_version: Some(catalog.version().to_string()),
                computed: None,
            })
        }
    }
}

/// Re-computes the computed cost of an LLM or embedding span under `catalog`, for `reprice`.
///
/// Returns `None` when the span is left as it is: not a model call, no usage, or a cost the
/// provider reported (that one is the bill; re-pricing only replaces our own estimate).
/// Otherwise returns whether the span changed. A span that was unpriced and now matches an
/// entry loses its `unpriced_reason`; running it twice with the same catalog changes nothing.
pub fn reprice_span(span: &mut Span, catalog: &PriceCatalog) -> Option<bool> {
    if !matches!(span.kind, SpanKind::Llm | SpanKind::Embedding)
        || span.usage.as_ref().is_none_or(|u| u.is_empty())
        || span
            .cost
            .as_ref()
            .is_some_and(|c| c.source == CostSource::Reported)
    {
        return None;
    }
    let before = (
        span.cost.take(),
        span.unpriced_reason.take(),
        span.provider.clone(),
    );
    price_span(span, catalog);
    // Only the price matters: a span priced the same under a new catalog label is not rewritten.
    let same_price = |a: &Option<Cost>, b: &Option<Cost>| match (a, b) {
        (Some(a), Some(b)) => a.amounts == b.amounts && a.pricing_id == b.pricing_id,
        (None, None) => true,
        _ => false,
    };
    // The unpriced reason names the catalog version, so only whether it is set counts.
    if same_price(&before.0, &span.cost)
        && before.1.is_some() == span.unpriced_reason.is_some()
        && before.2 == span.provider
    {
        span.cost = before.0;
        span.unpriced_reason = before.1;
        return Some(false);
    }
    Some(true)
}

/// The model a span is reported under: the request model, else the response model (the same
/// choice as the metrics' `model` grouping).
pub fn span_model(span: &Span) -> Option<&str> {
    [
        span.request_model.as_deref(),
        span.response_model.as_deref(),
    ]
    .into_iter()
    .flatten()
    .find(|m| !m.trim().is_empty())
}

/// Provider-reported against catalog-computed cost, per model.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconciliation {
    rows: std::collections::BTreeMap<String, ReconciliationRow>,
}

/// One model's reconciliation. `reported` and `computed` cover the same spans (those the
/// catalog can price); spans it cannot price are counted apart with their reported cost.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconciliationRow {
    /// Model name as the spans carry it.
    pub model: String,
    /// Spans with a reported cost that the catalog also prices.
    pub spans: u64,
    /// Reported cost of those spans.
    pub reported: NanoUsd,
    /// Catalog cost of those spans.
    pub computed: NanoUsd,
    /// Spans with a reported cost the catalog cannot price.
    pub unpriced_spans: u64,
    /// Reported cost of the unpriced spans.
    pub unpriced_reported: NanoUsd,
}

impl ReconciliationRow {
    /// Reported minus computed (positive: the provider billed more than the catalog says).
    pub fn difference(&self) -> NanoUsd {
        NanoUsd(self.reported.0.saturating_sub(self.computed.0))
    }

    /// The difference as a percentage of the computed cost; `None` when that is zero.
    pub fn difference_pct(&self) -> Option<f64> {
        (self.computed.0 != 0).then(|| self.difference().0 as f64 / self.computed.0 as f64 * 100.0)
    }
}

impl Reconciliation {
    /// Adds a span if the provider reported its cost; other spans are ignored.
    pub fn add(&mut self, span: &Span, catalog: &PriceCatalog) {
        let Some(cost) = span
            .cost
            .as_ref()
            .filter(|c| c.source == CostSource::Reported)
        else {
            return;
        };
        // Price a bare copy (no payloads) with no cost on it, so the catalog's answer is fresh.
        let mut bare = Span {
            kind: span.kind,
            start_time: span.start_time,
            usage: span.usage.clone(),
            request_model: span.request_model.clone(),
            response_model: span.response_model.clone(),
            provider: span.provider.clone(),
            ..Default::default()
        };
        price_span(&mut bare, catalog);
        let model = span_model(span).unwrap_or("(no model)").to_string();
        let row = self
            .rows
            .entry(model.clone())
            .or_insert_with(|| ReconciliationRow {
                model,
                ..Default::default()
            });
        match bare.cost {
            Some(c) => {
                row.spans += 1;
                row.reported += cost.amounts.total;
                row.computed += c.amounts.total;
            }
            None => {
                row.unpriced_spans += 1;
                row.unpriced_reported += cost.amounts.total;
            }
        }
    }

    /// The rows, largest reported cost first.
    pub fn rows(&self) -> Vec<ReconciliationRow> {
        let mut rows: Vec<_> = self.rows.values().cloned().collect();
        rows.sort_by(|a, b| {
            (b.reported + b.unpriced_reported)
                .cmp(&(a.reported + a.unpriced_reported))
                .then_with(|| a.model.cmp(&b.model))
        });
        rows
    }

    /// The sum of every row (its `model` is empty).
    pub fn total(&self) -> ReconciliationRow {
        let mut t = ReconciliationRow::default();
        for r in self.rows.values() {
            t.spans += r.spans;
            t.reported += r.reported;
            t.computed += r.computed;
            t.unpriced_spans += r.unpriced_spans;
            t.unpriced_reported += r.unpriced_reported;
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(rates: Rates, tiers: Vec<Tier>) -> PriceEntry {
        PriceEntry {
            id: "t".into(),
            provider: "p".into(),
            kind: "chat".into(),
            pattern: "t".into(),
            valid_from: "2025-01-01".into(),
            rates,
            tiers,
            source: "https://example.com".into(),
            checked: "2025-01-01".into(),
        }
    }

    const M: i64 = 1_000_000_000; // $1 per million tokens

    #[test]
    fn cached_tokens_are_priced_once_at_their_own_rate() {
        // gpt-4o style: $2.50 in, $1.25 cached, $10 out.
        let e = entry(
            Rates {
                input: 2 * M + M / 2,
                output: 10 * M,
                cache_read: Some(M + M / 4),
                ..Default::default()
            },
            vec![],
        );
        let u = Usage {
            input_tokens: 2006,
            cache_read_tokens: 1920,
            output_tokens: 300,
            ..Default::default()
        }
        .normalized();
        let c = compute_cost(&e, &u);
        assert_eq!(c.input, NanoUsd(215_000)); // 86 × $2.50/M
        assert_eq!(c.cache_read, NanoUsd(2_400_000)); // 1920 × $1.25/M
        assert_eq!(c.output, NanoUsd(3_000_000));
        assert_eq!(c.total, NanoUsd(5_615_000));
    }

    #[test]
    fn anthropic_cache_writes_with_one_hour_part_and_tier() {
        // Sonnet 4 style: $3 / $15, read $0.30, write 5m $3.75, write 1h $6; above 200k: $6 / $22.50.
        let base = Rates {
            input: 3 * M,
            output: 15 * M,
            cache_read: Some(3 * M / 10),
            cache_write: Some(3 * M + 3 * M / 4),
            cache_write_1h: Some(6 * M),
            reasoning: None,
        };
        let long = Rates {
            input: 6 * M,
            output: 22 * M + M / 2,
            cache_read: Some(6 * M / 10),
            cache_write: Some(7 * M + M / 2),
            cache_write_1h: Some(12 * M),
            reasoning: None,
        };
        let e = entry(
            base,
            vec![Tier {
                above_input_tokens: 200_000,
                rates: long,
            }],
        );
        let mut u = Usage {
            input_tokens: 21_050,
            cache_read_tokens: 20_000,
            cache_write_tokens: 1_000,
            output_tokens: 400,
            ..Default::default()
        };
        u.extra.insert(Usage::CACHE_WRITE_1H.into(), 400);
        let c = compute_cost(&e, &u);
        assert_eq!(c.input, NanoUsd(150_000)); // 50 × $3/M
        assert_eq!(c.cache_read, NanoUsd(6_000_000)); // 20000 × $0.30/M
        assert_eq!(c.cache_write, NanoUsd(2_250_000 + 2_400_000)); // 600 × 3.75 + 400 × 6
        assert_eq!(c.output, NanoUsd(6_000_000));
        assert_eq!(c.total, NanoUsd(16_800_000));
        let big = Usage {
            input_tokens: 250_000,
            output_tokens: 1_000,
            ..Default::default()
        };
        let c = compute_cost(&e, &big);
        assert_eq!(c.input, NanoUsd(1_500_000_000));
        assert_eq!(c.output, NanoUsd(22_500_000));
    }

    #[test]
    fn distinct_reasoning_rate() {
        let e = entry(
            Rates {
                input: M,
                output: 2 * M,
                reasoning: Some(5 * M),
                ..Default::default()
            },
            vec![],
        );
        let u = Usage {
            output_tokens: 1_000,
            reasoning_tokens: 600,
            ..Default::default()
        };
        let c = compute_cost(&e, &u);
        assert_eq!(
            (c.output, c.reasoning),
            (NanoUsd(800_000), NanoUsd(3_000_000))
        );
    }

    #[test]
    fn unmatched_model_is_unpriced_not_zero() {
        let mut s = Span {
            kind: SpanKind::Llm,
            request_model: Some("my-finetune".into()),
            ..Default::default()
        };
        s.usage = Some(Usage {
            input_tokens: 10,
            output_tokens: 5,
            total_tokens: 15,
            ..Default::default()
        });
        price_span(&mut s, PriceCatalog::builtin());
        assert!(s.cost.is_none());
        assert!(s
            .unpriced_reason
            .as_deref()
            .unwrap()
            .contains("my-finetune"));
    }

    fn llm(model: &str, input: u64, output: u64) -> Span {
        Span {
            kind: SpanKind::Llm,
            request_model: Some(model.into()),
            usage: Some(Usage {
                input_tokens: input,
                output_tokens: output,
                total_tokens: input + output,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn catalog(model: &str, input_usd: f64) -> PriceCatalog {
        PriceCatalog::from_toml(&format!(
            "version = \"o\"\n[[model]]\nid = \"{model}\"\nprovider = \"p\"\nmatch = '{model}'\n\
             valid_from = \"2000-01-01\"\ninput = {input_usd}\noutput = 0.0\n\
             source = \"https://example.com\"\nchecked = \"2025-01-01\"\n"
        ))
        .unwrap()
    }

    #[test]
    fn repricing_replaces_computed_cost_keeps_reported_and_is_idempotent() {
        let old = catalog("m", 1.0);
        let new = catalog("m", 3.0);
        let mut s = llm("m", 1_000_000, 0);
        price_span(&mut s, &old);
        assert_eq!(
            s.cost.as_ref().unwrap().amounts.total,
            NanoUsd(1_000_000_000)
        );
        assert_eq!(reprice_span(&mut s, &new), Some(true));
        assert_eq!(
            s.cost.as_ref().unwrap().amounts.total,
            NanoUsd(3_000_000_000)
        );
        assert_eq!(reprice_span(&mut s, &new), Some(false));

        let mut unpriced = llm("x", 10, 10);
        price_span(&mut unpriced, &old);
        assert!(unpriced.unpriced_reason.is_some());
        // Still unpriced under another catalog version: not a change.
        assert_eq!(reprice_span(&mut unpriced, &new), Some(false));
        assert_eq!(reprice_span(&mut unpriced, &catalog("x", 1.0)), Some(true));
        assert!(unpriced.unpriced_reason.is_none() && unpriced.cost.is_some());

        let mut reported = llm("m", 1_000_000, 0);
        reported.cost = Some(Cost {
            source: CostSource::Reported,
            amounts: CostBreakdown {
                total: NanoUsd(7),
                ..Default::default()
            },
            pricing_id: None,
            pricing_version: None,
            computed: None,
        });
        let before = reported.clone();
        assert_eq!(reprice_span(&mut reported, &new), None);
        assert_eq!(reported, before);
        assert_eq!(reprice_span(&mut Span::default(), &new), None);
    }

    #[test]
    fn reconciliation_compares_reported_and_computed_per_model() {
        let c = catalog("m", 2.0);
        let mut r = Reconciliation::default();
        for (model, reported) in [("m", 2_100_000_000), ("m", 2_100_000_000), ("z", 5)] {
            let mut s = llm(model, 1_000_000, 0);
            s.cost = Some(Cost {
                source: CostSource::Reported,
                amounts: CostBreakdown {
                    total: NanoUsd(reported),
                    ..Default::default()
                },
                pricing_id: None,
                pricing_version: None,
                computed: None,
            });
            r.add(&s, &c);
        }
        let mut computed_only = llm("m", 1_000_000, 0);
        price_span(&mut computed_only, &c);
        r.add(&computed_only, &c);
        let rows = r.rows();
        assert_eq!(rows.len(), 2);
        let m = &rows[0];
        assert_eq!((m.model.as_str(), m.spans), ("m", 2));
        assert_eq!(m.reported, NanoUsd(4_200_000_000));
        assert_eq!(m.computed, NanoUsd(4_000_000_000));
        assert_eq!(m.difference(), NanoUsd(200_000_000));
        assert!((m.difference_pct().unwrap() - 5.0).abs() < 1e-9);
        assert_eq!(
            (rows[1].unpriced_spans, rows[1].unpriced_reported),
            (1, NanoUsd(5))
        );
        assert_eq!(rows[1].difference_pct(), None);
        assert_eq!(r.total().spans, 2);
    }
}
