//! `SPANLENS_DISABLED=true` turns every span into a no-op (own test binary: it flips global state).

use spanlens::processor::InMemoryProcessor;
use spanlens::{Config, SpanKind, Tracer};

#[test]
fn disabled_config_makes_every_span_a_noop() {
    let cfg = Config::from_lookup(|k| (k == "SPANLENS_DISABLED").then(|| "true".to_string()));
    assert!(cfg.disabled);
    let guard = spanlens::init(cfg);
    assert!(guard.tracer().is_none());
    // Even an explicit tracer records nothing while disabled.
    let mem = InMemoryProcessor::new();
    let t = Tracer::builder().with_processor(mem.clone()).build();
    {
        let s = t.span("x").kind(SpanKind::Llm).attr("a", 1).start();
        assert!(!s.is_recording());
        s.set_attribute("b", 2);
        let _c = spanlens::span("child").start();
    }
    assert!(mem.spans().is_empty());
    spanlens::set_disabled(false);
    drop(t.span("after").start());
    assert_eq!(mem.spans().len(), 1, "re-enabled");
}
