//! The shipped price catalog: coverage, sanity of every price, and model-name matching on
//! names as instrumentations really report them (`tests/fixtures/model_names.toml`).

use serde::Deserialize;
use spanlens_core::pricing::PriceCatalog;
use std::collections::BTreeSet;

#[derive(Deserialize)]
struct Cases {
    case: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    model: String,
    provider: Option<String>,
    expect: String,
}

#[test]
fn model_names_resolve_to_the_expected_entry() {
    let text = include_str!("fixtures/model_names.toml");
    let cases: Cases = toml::from_str(text).expect("fixture parses");
    let catalog = PriceCatalog::builtin();
    let mut failures = Vec::new();
    for c in &cases.case {
        let got = catalog
            .lookup(&c.model, c.provider.as_deref(), None)
            .map(|e| e.id.as_str());
        let want = (!c.expect.is_empty()).then_some(c.expect.as_str());
        if got != want {
            failures.push(format!(
                "{:?} (provider {:?}): got {got:?}, want {want:?}",
                c.model, c.provider
            ));
        }
    }
    assert!(cases.case.len() >= 60, "only {} cases", cases.case.len());
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn catalog_covers_the_required_providers_and_models() {
    let catalog = PriceCatalog::builtin();
    let entries = catalog.entries();
    assert!(entries.len() >= 40, "{} models", entries.len());
    let providers: BTreeSet<&str> = entries.iter().map(|e| e.provider.as_str()).collect();
    for p in [
        "openai",
        "anthropic",
        "google",
        "mistral",
        "deepseek",
        "xai",
        "cohere",
    ] {
        assert!(providers.contains(p), "no {p} model");
    }
    assert!(entries.iter().filter(|e| e.kind == "embedding").count() >= 3);
    for (model, threshold) in [
        ("gemini-2.5-pro", 200_000),
        ("claude-sonnet-4-20250514", 200_000),
    ] {
        let e = catalog.lookup(model, None, None).expect(model);
        assert!(
            e.tiers.iter().any(|t| t.above_input_tokens == threshold),
            "{model} lacks its >{threshold} tier"
        );
        assert!(e.rates_for(threshold + 1).input > e.rates_for(threshold).input);
    }
    let sonnet = catalog
        .lookup("claude-sonnet-4-5", None, None)
        .expect("sonnet 4.5");
    assert!(
        sonnet.rates.cache_write_1h > sonnet.rates.cache_write,
        "1h writes cost more than 5m writes"
    );
}

#[test]
fn every_price_is_plausible_and_sourced() {
    for e in PriceCatalog::builtin().entries() {
        let r = e.rates;
        assert!(r.input > 0, "{}: zero input price", e.id);
        if e.kind == "chat" {
            assert!(r.output >= r.input, "{}: output cheaper than input", e.id);
        }
        if let Some(cr) = r.cache_read {
            assert!(cr < r.input, "{}: cache read not cheaper than input", e.id);
        }
        if let Some(cw) = r.cache_write {
            assert!(cw >= r.input, "{}: cache write cheaper than input", e.id);
        }
        assert!(e.source.starts_with("https://"), "{}: no source", e.id);
        for t in &e.tiers {
            assert!(t.rates.input >= r.input, "{}: tier cheaper than base", e.id);
        }
    }
}

#[test]
fn dated_snapshots_use_the_price_in_force() {
    let c = PriceCatalog::builtin();
    let old = c.lookup("gpt-4o-2024-05-13", None, None).unwrap();
    let new = c.lookup("gpt-4o-2024-08-06", None, None).unwrap();
    assert!(
        old.rates.input > new.rates.input,
        "the May 2024 snapshot kept its launch price"
    );
}
