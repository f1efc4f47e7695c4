//! Golden test for the OpenAI Agents SDK export mapping.
//!
//! `tests/fixtures/openai_agents_export.json` is a hand-written `BackendSpanExporter` payload;
//! `tests/fixtures/openai_agents_export.expected.jsonl` holds the canonical spans it must
//! produce, one JSON object per line, in output order.
//!
//! To regenerate the expected file after an intended mapping change, run
//! `SPANLENS_BLESS=1 cargo test -p spanlens-core --test openai_agents`, then review the diff of
//! the `.jsonl` file by hand before committing it.

mod golden;

use serde_json::Value;
use spanlens_core::normalize::NormalizeOptions;
use spanlens_core::openai_agents::normalize_export;
use spanlens_core::{Span, Timestamp};
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn normalized_fixture() -> Vec<Span> {
    let text = std::fs::read_to_string(fixture("openai_agents_export.json")).unwrap();
    let body: Value = serde_json::from_str(&text).unwrap();
    let opts = NormalizeOptions {
        received_at: Timestamp::parse_rfc3339("2025-03-14T10:15:12.500000Z").unwrap(),
        default_project: Some("support-bot".into()),
    };
    let out = normalize_export(&body, &opts).unwrap();
    assert!(
        out.rejected.is_empty(),
        "unexpected rejections: {:?}",
        out.rejected
    );
    out.spans
}

#[test]
fn export_matches_expected_canonical_spans() {
    let got: Vec<Value> = normalized_fixture()
        .iter()
        .map(|s| serde_json::to_value(s).unwrap())
        .collect();
    let problems = golden::compare(&fixture("openai_agents_export.expected.jsonl"), &got);
    assert!(
        problems.is_empty(),
        "canonical spans differ (SPANLENS_BLESS=1 regenerates them):\n{}",
        problems.join("\n")
    );
}

#[test]
fn canonical_spans_round_trip_through_json() {
    for span in normalized_fixture() {
        let json = serde_json::to_value(&span).unwrap();
        let back: Span = serde_json::from_value(json.clone())
            .unwrap_or_else(|e| panic!("span {:?} does not deserialise: {e}\n{json}", span.name));
        assert_eq!(
            back, span,
            "span {:?} changed in a JSON round trip",
            span.name
        );
    }
}

#[test]
fn fixture_token_counts_follow_the_canonical_rule() {
    let spans = normalized_fixture();
    let by_name = |n: &str| spans.iter().find(|s| s.name == n).unwrap();
    let u = by_name("generation").usage.clone().unwrap();
    assert_eq!((u.input_tokens, u.cache_read_tokens), (1850, 1024));
    assert_eq!(
        (u.output_tokens, u.reasoning_tokens, u.total_tokens),
        (220, 0, 2070)
    );
    let u = by_name("response").usage.clone().unwrap();
    assert_eq!((u.input_tokens, u.cache_read_tokens), (900, 512));
    assert_eq!(
        (u.output_tokens, u.reasoning_tokens, u.total_tokens),
        (300, 64, 1200)
    );
    assert!(spans.iter().all(|s| s.cost.is_none()));
}
