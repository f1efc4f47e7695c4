//! Demo and load spans as the OTLP requests a GenAI instrumentation sends
//! (`spanlens_core::otlp::encode`), without costs, so a load generator exercises the server's
//! whole decode, normalise and price path the way real traffic does.

use spanlens_core::otlp::encode::{self, Encoding, Flavor};
use spanlens_core::otlp::proto;
use spanlens_core::Span;

/// The instrumentation scope the spans are sent under.
pub const SCOPE_NAME: &str = "spanlens-demo";

/// `spans` as one OTLP `ExportTraceServiceRequest`, in the order given: consecutive spans of
/// the same resource and service share a `ResourceSpans`.
pub fn export_request(spans: &[Span]) -> proto::ExportTraceServiceRequest {
    let enc = Encoding {
        flavor: Flavor::Otlp,
        cost: false,
        scope: SCOPE_NAME,
    };
    encode::export_request(spans, &enc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{generate, LoadGen, LoadOptions};
    use spanlens_core::{price_span, PriceCatalog, Timestamp};

    const T0: Timestamp = Timestamp(1_767_225_600_000_000_000); // 2026-01-01T00:00:00Z

    /// Decodes what `spans` encode to and checks each span comes back whole, but for what is
    /// not sent (raw attributes, detected source, reported costs, prompt templates, stacks).
    fn assert_round_trip(spans: &[Span]) {
        let req = export_request(spans);
        let back = spanlens_core::otlp::to_canonical(&req, &Default::default());
        assert!(back.rejected.is_empty(), "{:?}", back.rejected);
        assert_eq!(back.spans.len(), spans.len());
        for (want, got) in spans.iter().zip(back.spans) {
            let mut got = Span {
                attributes: want.attributes.clone(),
                source: want.source.clone(),
                prompt: want.prompt.clone(),
                error_stack: want.error_stack.clone(),
                ..got
            };
            match want.cost.as_ref().map(|c| c.source) {
                Some(spanlens_core::CostSource::Reported) => got.cost = want.cost.clone(),
                _ => price_span(&mut got, PriceCatalog::builtin()),
            }
            assert_eq!(&got, want, "{} {}", want.kind.as_str(), want.name);
        }
    }

    #[test]
    fn load_traces_round_trip_through_the_normaliser() {
        let opts = LoadOptions {
            rate_limits: true,
            ..Default::default()
        };
        let mut g = LoadGen::new(5, opts);
        let spans: Vec<Span> = (0..200)
            .flat_map(|n| g.trace(n, Timestamp(T0.0 + n * 1_000_000_000)))
            .collect();
        assert!(spans.iter().any(|s| s.rate_limits.is_some()));
        assert_round_trip(&spans);
        let req = export_request(&spans);
        assert_eq!(req.resource_spans.len(), 1, "one resource");
    }

    #[test]
    fn demo_traces_round_trip_through_the_normaliser() {
        assert_round_trip(&generate(crate::DEFAULT_SEED, T0));
    }
}
