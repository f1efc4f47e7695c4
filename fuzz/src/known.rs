//! Known defects, told apart from new findings: those being fixed elsewhere (`K*`) and those
//! this fuzzing found and reported without fixing them here (`F*`, see fuzz/README.md).
//!
//! A target that meets one of these panics with a message that starts with its tag (e.g.
//! `[K1]`), so the replay test can check that a reproducer listed in `known.txt` still fails
//! for the listed reason and no other. While fuzzing, `SPANLENS_FUZZ_KNOWN=skip` makes the
//! targets return instead, so libFuzzer keeps searching for new defects rather than stopping
//! at the first input of a known class (see fuzz/README.md); the replay test skips them the
//! same way on the corpus ([`set_skipping`]), where many inputs reach a known class.

use spanlens_core::Span;
use std::cell::Cell;
use std::sync::OnceLock;

/// A known defect class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    /// Times of 2^63 ns or later are accepted, and a span carrying one cannot be read back
    /// (its stored JSON does not deserialise: `GET /api/v1/traces/{id}` answers 500).
    K1,
    /// A malformed OTLP/gRPC protobuf message gets `INTERNAL` instead of `INVALID_ARGUMENT`.
    K3,
    /// A double attribute value changes by a few units in the last place through the span's
    /// JSON: serde_json, without its `float_roundtrip` feature, does not parse every shortest
    /// float text back to the same double (found by this fuzzing).
    F1,
    /// `spanlens_core::analyze` adds span durations in `u64` without saturating (the parallel
    /// groups' `sum`, analysis.rs): a trace whose sibling spans' durations add up past 2^64 ns
    /// makes `GET /api/v1/traces/{id}` and `/tree` panic in debug builds (500) and report a
    /// wrapped sum in release builds (found by this fuzzing).
    F2,
    /// A computed cost that saturates at the largest nano-USD amount (about 9.2 billion USD,
    /// from token counts near `u64::MAX`) is written to JSON as a double that `NanoUsd`'s
    /// deserialiser refuses (it takes amounts below 9.2e18 nano-USD only): the span's JSON does
    /// not read back and `GET /api/v1/traces/{id}` answers 500 (found by this fuzzing).
    F3,
}

impl Known {
    /// The tag the panic message starts with.
    pub fn tag(self) -> &'static str {
        match self {
            Known::K1 => "[K1]",
            Known::K3 => "[K3]",
            Known::F1 => "[F1]",
            Known::F2 => "[F2]",
            Known::F3 => "[F3]",
        }
    }
}

thread_local! {
    static SKIP_HERE: Cell<Option<bool>> = const { Cell::new(None) };
}

/// True when the known classes are skipped rather than reported: as set for this thread by
/// [`set_skipping`], else as `SPANLENS_FUZZ_KNOWN=skip` says.
pub fn skipping() -> bool {
    static SKIP: OnceLock<bool> = OnceLock::new();
    SKIP_HERE.with(Cell::get).unwrap_or_else(|| {
        *SKIP.get_or_init(|| std::env::var("SPANLENS_FUZZ_KNOWN").is_ok_and(|v| v == "skip"))
    })
}

/// Skips (true) or reports (false) the known classes on this thread, whatever the environment.
pub fn set_skipping(skip: bool) {
    SKIP_HERE.with(|s| s.set(Some(skip)));
}

/// Reports a known defect: returns (to skip the rest of the input) when skipping, else panics
/// with the class's tag.
pub fn hit(k: Known, what: &str) {
    if !skipping() {
        panic!("{} known defect: {what}", k.tag());
    }
}

/// First time on or after 2^63 ns (2262-04-11T23:47:16.854775808Z).
pub const TIME_LIMIT: u64 = 1 << 63;

/// True when the span carries a time of 2^63 ns or later anywhere a time is kept
/// (start, end, events, rate-limit resets): the condition of [`Known::K1`].
pub fn has_far_time(s: &Span) -> bool {
    let far = |t: spanlens_core::Timestamp| t.0 >= TIME_LIMIT;
    far(s.start_time)
        || s.end_time.is_some_and(far)
        || s.events.iter().any(|e| far(e.time))
        || s.rate_limits.as_ref().is_some_and(|r| {
            [&r.requests, &r.tokens, &r.input_tokens, &r.output_tokens]
                .into_iter()
                .flatten()
                .any(|w| w.reset.is_some_and(far))
        })
}

/// True when the spans of one trace could make the analysis add durations past `u64::MAX`:
/// the number of spans times the trace's time spread (starts, ends, events) reaches 2^64 ns,
/// the condition of [`Known::F2`].
pub fn may_overflow_analysis<'a>(spans: impl IntoIterator<Item = &'a Span>) -> bool {
    let (mut lo, mut hi, mut n) = (u64::MAX, 0u64, 0u128);
    for s in spans {
        n += 1;
        let times = std::iter::once(s.start_time)
            .chain(s.end_time)
            .chain(s.events.iter().map(|e| e.time));
        for t in times {
            lo = lo.min(t.0);
            hi = hi.max(t.0);
        }
    }
    n * u128::from(hi.saturating_sub(lo)) >= 1u128 << 64
}

/// Two finite doubles of the same sign at most 16 units in the last place apart: the error of
/// serde_json's default float parsing (the condition of [`Known::F1`]).
pub fn few_ulps(x: f64, y: f64) -> bool {
    x.is_finite()
        && y.is_finite()
        && x.is_sign_negative() == y.is_sign_negative()
        && x.to_bits().abs_diff(y.to_bits()) <= 16
}

/// True when one of the span's cost amounts does not survive its JSON form (a double of USD
/// read back through `NanoUsd::from_usd_f64`): the condition of [`Known::F3`].
pub fn has_unreadable_cost(s: &Span) -> bool {
    let Some(c) = &s.cost else {
        return false;
    };
    std::iter::once(&c.amounts)
        .chain(&c.computed)
        .flat_map(|b| {
            [
                b.input,
                b.output,
                b.cache_read,
                b.cache_write,
                b.reasoning,
                b.total,
            ]
        })
        .any(|n| spanlens_core::NanoUsd::from_usd_f64(n.as_usd_f64()).is_none())
}
