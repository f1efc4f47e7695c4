//! Pricing: the catalog of model prices and the cost engine (DESIGN §3).
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
}
