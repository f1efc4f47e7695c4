//! Normalisation targets: `spanlens_core::normalize` with each `InputFormat`.
//!
//! The input's first byte is a [`Mode`]: a raw body, or a request built by [`gen`] from the
//! rest. Invariants checked on every accepted request ([`check_spans`]):
//! - every item of the request is accounted for, as a span or as a rejection;
//! - every span serialises to JSON and deserialises back to an equal span (times of 2^63 ns
//!   or later: known defect K1; doubles a few units in the last place apart: finding F1; a time to
//!   first token over 2^53 ns within the precision of its JSON form, milliseconds as a double;
//!   a cost at the nano-USD saturation limit: finding F3);
//! - ids are not all-zero;
//! - usage keeps its canonical semantics: cached tokens within input, reasoning within output,
//!   total at least input plus output;
//! - costs are non-negative, a computed total is the sum of its parts, and a span has either a
//!   cost or an unpriced reason, never both.

use crate::{gen, Mode};
use arbitrary::Unstructured;
use prost::Message;
use serde_json::Value;
use spanlens_core::{
    normalize, otlp, CostBreakdown, CostSource, InputFormat, NormalizeOptions, Normalized,
    PriceCatalog, Span, Timestamp,
};

/// Options as the server passes them, with a fixed arrival time so a run is reproducible.
pub fn options() -> NormalizeOptions {
    NormalizeOptions {
        received_at: Timestamp(1_700_000_000_000_000_000),
        default_project: None,
    }
}

/// The body a normalisation or ingest target sends for `format`, from its input after the
/// mode byte; `None` when the bytes run out before a request is built.
pub fn body(format: InputFormat, mode: Mode, rest: &[u8]) -> Option<Vec<u8>> {
    if !mode.built() {
        return Some(rest.to_vec());
    }
    let mut u = Unstructured::new(rest);
    match format {
        InputFormat::OtlpProtobuf => Some(gen::otlp_request(&mut u).ok()?.encode_to_vec()),
        InputFormat::OtlpJson => {
            let req = gen::otlp_request(&mut u).ok()?;
            let style = gen::JsonStyle::arbitrary(&mut u).unwrap_or_default();
            // What the generator writes must read back as what it built.
            crate::decoders::assert_json_round_trip(&req, &style);
            Some(gen::otlp_json(&req, &style).to_string().into_bytes())
        }
        InputFormat::OpenAiAgents => {
            Some(gen::agents_export(&mut u).ok()?.to_string().into_bytes())
        }
    }
}

/// Number of spans (OTLP) or items (Agents) in a body the decoder accepted.
pub fn items_in(format: InputFormat, body: &[u8]) -> usize {
    let spans = |r: otlp::proto::ExportTraceServiceRequest| {
        r.resource_spans
            .iter()
            .flat_map(|rs| &rs.scope_spans)
            .map(|ss| ss.spans.len())
            .sum()
    };
    match format {
        InputFormat::OtlpProtobuf => otlp::decode_protobuf(body).map_or(0, spans),
        InputFormat::OtlpJson => otlp::decode_json(body).map_or(0, spans),
        InputFormat::OpenAiAgents => serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v["data"].as_array().map(Vec::len))
            .unwrap_or(0),
    }
}

fn run(format: InputFormat, data: &[u8]) {
    let (mode, rest) = Mode::split(data);
    let Some(body) = body(format, mode, rest) else {
        return;
    };
    let Ok(n) = normalize(format, &body, &options(), PriceCatalog::builtin()) else {
        return;
    };
    check_spans(format, &body, &n);
}

/// `normalize(InputFormat::OtlpProtobuf, …)`.
pub fn normalize_otlp_proto(data: &[u8]) {
    run(InputFormat::OtlpProtobuf, data);
}

/// `normalize(InputFormat::OtlpJson, …)`.
pub fn normalize_otlp_json(data: &[u8]) {
    run(InputFormat::OtlpJson, data);
}

/// `normalize(InputFormat::OpenAiAgents, …)`.
pub fn normalize_agents(data: &[u8]) {
    run(InputFormat::OpenAiAgents, data);
}

/// The invariants of a normalised request (see the module documentation).
pub fn check_spans(format: InputFormat, body: &[u8], n: &Normalized) {
    assert_eq!(
        n.spans.len() + n.rejected.len(),
        items_in(format, body),
        "every item of the request is a span or a rejection"
    );
    for s in &n.spans {
        check_span(s);
    }
}

/// A span deserialises from its JSON to an equal span.
pub fn check_json_round_trip(s: &Span) {
    let json = serde_json::to_string(s).expect("a canonical span serialises");
    let mut back = match serde_json::from_str::<Span>(&json) {
        Ok(back) => back,
        Err(e) => panic!("a canonical span's JSON does not deserialise: {e}\n{json}"),
    };
    // `ttft_ms` is a double of milliseconds by design: exact to the nanosecond below 2^53 ns
    // (about 104 days), within the double's precision above.
    if let (Some(a), Some(b)) = (s.ttft_ns, back.ttft_ns) {
        if a.abs_diff(b) <= (a >> 51).max(1) {
            back.ttft_ns = s.ttft_ns;
        }
    }
    if back == *s {
        return;
    }
    let before = serde_json::to_value(s).expect("a canonical span serialises");
    let after = serde_json::to_value(&back).expect("a canonical span serialises");
    let mut diffs = Vec::new();
    differences(&before, &after, "", &mut diffs);
    match diffs.first() {
        Some(d) => panic!(
            "a span changes through its JSON: {}: {} became {}\njson: {json}",
            d.path, d.before, d.after
        ),
        None => panic!("a span changes through its JSON, which stays the same\n{json}"),
    }
}

/// One place where two JSON values differ.
pub struct Difference {
    /// JSON path.
    pub path: String,
    /// The value before.
    pub before: Value,
    /// The value after.
    pub after: Value,
}

/// Every place where two JSON values differ.
pub fn differences(a: &Value, b: &Value, path: &str, out: &mut Vec<Difference>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, va) in x {
                let p = format!("{path}.{k}");
                differences(va, y.get(k).unwrap_or(&Value::Null), &p, out);
            }
            for (k, vb) in y {
                if !x.contains_key(k) {
                    differences(&Value::Null, vb, &format!("{path}.{k}"), out);
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                differences(va, vb, &format!("{path}[{i}]"), out);
            }
        }
        _ if a == b => {}
        _ => out.push(Difference {
            path: path.to_string(),
            before: a.clone(),
            after: b.clone(),
        }),
    }
}

fn check_span(s: &Span) {
    assert!(
        s.trace_id.0.iter().any(|b| *b != 0),
        "all-zero trace id accepted"
    );
    assert!(
        s.span_id.0.iter().any(|b| *b != 0),
        "all-zero span id accepted"
    );
    check_json_round_trip(s);
    if let Some(u) = &s.usage {
        assert!(
            u.cache_read_tokens.saturating_add(u.cache_write_tokens) <= u.input_tokens,
            "cached tokens exceed input tokens: {u:?}"
        );
        assert!(
            u.reasoning_tokens <= u.output_tokens,
            "reasoning tokens exceed output tokens: {u:?}"
        );
        assert!(
            u.input_tokens.saturating_add(u.output_tokens) <= u.total_tokens,
            "total below input plus output: {u:?}"
        );
    }
    if let Some(c) = &s.cost {
        assert!(
            s.unpriced_reason.is_none(),
            "a span with a cost is also unpriced: {:?}",
            s.unpriced_reason
        );
        check_amounts(&c.amounts, c.source == CostSource::Computed);
        if let Some(computed) = &c.computed {
            check_amounts(computed, true);
        }
    }
}

fn check_amounts(b: &CostBreakdown, computed: bool) {
    for (part, v) in [
        ("input", b.input),
        ("output", b.output),
        ("cache_read", b.cache_read),
        ("cache_write", b.cache_write),
        ("reasoning", b.reasoning),
        ("total", b.total),
    ] {
        assert!(v.0 >= 0, "negative {part} cost: {b:?}");
    }
    if computed {
        let sum = b.input + b.output + b.cache_read + b.cache_write + b.reasoning;
        assert_eq!(b.total, sum, "computed total is not the sum of its parts");
    }
}
