//! Builders the contract tests share: deterministic ids, plain spans and priced LLM spans, all
//! timed from [`T0`]. Public so a backend's own tests can build the same fixtures.

use spanlens_core::{
    Cost, CostBreakdown, CostSource, NanoUsd, Span, SpanId, SpanKind, Status, Timestamp, TraceId,
    Usage,
};

/// Base time of every test span: 2025-01-01T00:00:00Z, in nanoseconds since the epoch.
pub const T0: u64 = 1_735_689_600_000_000_000;

/// One millisecond in nanoseconds.
pub const MS: u64 = 1_000_000;

/// The trace id numbered `n` (never all zeros).
pub fn tid(n: u64) -> TraceId {
    TraceId((u128::from(n) + 1).to_be_bytes())
}

/// The span id numbered `n` (never all zeros).
pub fn sid(n: u64) -> SpanId {
    SpanId((n + 1).to_be_bytes())
}

/// A span of trace `t`, id `s`, child of `parent`, starting `start_ms` after [`T0`] and lasting
/// `dur_ms`, with status OK.
pub fn span(t: u64, s: u64, parent: Option<u64>, name: &str, start_ms: u64, dur_ms: u64) -> Span {
    Span {
        trace_id: tid(t),
        span_id: sid(s),
        parent_span_id: parent.map(sid),
        name: name.to_string(),
        kind: SpanKind::Span,
        start_time: Timestamp(T0 + start_ms * MS),
        end_time: Some(Timestamp(T0 + (start_ms + dur_ms) * MS)),
        status: Status::Ok,
        ..Default::default()
    }
}

/// An LLM span (named `chat {model}`) with `input` and `output` tokens and a computed cost of
/// `cost_nano` nano-USD, all of it on input.
#[allow(clippy::too_many_arguments)]
pub fn llm(
    t: u64,
    s: u64,
    parent: Option<u64>,
    model: &str,
    provider: &str,
    start_ms: u64,
    dur_ms: u64,
    input: u64,
    output: u64,
    cost_nano: i64,
) -> Span {
    let mut sp = span(t, s, parent, &format!("chat {model}"), start_ms, dur_ms);
    sp.kind = SpanKind::Llm;
    sp.request_model = Some(model.to_string());
    sp.provider = Some(provider.to_string());
    sp.usage = Some(Usage {
        input_tokens: input,
        output_tokens: output,
        total_tokens: input + output,
        ..Default::default()
    });
    let amounts = CostBreakdown {
        input: NanoUsd(cost_nano),
        total: NanoUsd(cost_nano),
        ..Default::default()
    };
    sp.cost = Some(Cost {
        source: CostSource::Computed,
        amounts,
        pricing_id: None,
        pricing_version: None,
        computed: None,
    });
    sp
}

/// A test price catalog (version `test`, provider `p`): one model per `(id, match pattern,
/// input $ per million, output $ per million)`.
pub fn test_catalog(models: &[(&str, &str, f64, f64)]) -> spanlens_core::PriceCatalog {
    let mut toml = String::from("version = \"test\"\n");
    for (id, pattern, input, output) in models {
        toml.push_str(&format!(
            "[[model]]\nid = \"{id}\"\nprovider = \"p\"\nmatch = '{pattern}'\nvalid_from = \"2000-01-01\"\n\
             input = {input:?}\noutput = {output:?}\nsource = \"https://example.com\"\nchecked = \"2025-01-01\"\n"
        ));
    }
    spanlens_core::PriceCatalog::from_toml(&toml).unwrap()
}
