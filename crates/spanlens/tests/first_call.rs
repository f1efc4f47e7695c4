//! The first model call of a process: its span ends when the call ended, not after the price
//! catalog (parsed on first use) was loaded to price it. Its own test binary, so that nothing
//! has loaded the catalog before the call below.

use spanlens::processor::InMemoryProcessor;
use spanlens::record::LlmCall;
use spanlens::Tracer;
use std::time::{Duration, Instant};

#[test]
fn a_recorders_duration_does_not_include_pricing_work() {
    let mem = InMemoryProcessor::new();
    let tracer = Tracer::builder().with_processor(mem.clone()).build();
    let root = tracer.span("root").start();
    let _in = root.enter();

    let started = Instant::now();
    let call = LlmCall::start("openai", "gpt-4o-mini");
    std::thread::sleep(Duration::from_millis(30)); // the provider answers
    call.usage_json(&serde_json::json!({"prompt_tokens": 1200, "completion_tokens": 80}));
    let answered = started.elapsed();
    let finishing = Instant::now();
    call.finish(); // prices the call: the first time, this parses the whole catalog
    let bookkeeping = finishing.elapsed();

    let spans = mem.spans();
    let span = spans
        .iter()
        .find(|s| s.name.starts_with("chat"))
        .expect("the call's span");
    assert!(
        span.attribute("spanlens.cost.total_usd").is_some(),
        "the call was priced: {:?}",
        span.attributes
    );
    let duration = Duration::from_nanos(span.end_time.unwrap().0 - span.start_time.0);
    assert!(duration >= Duration::from_millis(30), "{duration:?}");
    // The span ends when `finish` began its work, plus at most a sliver of it: never after the
    // catalog was parsed (which takes milliseconds the first time, more in a debug build).
    let allowed = answered + bookkeeping / 4 + Duration::from_micros(500);
    assert!(
        duration <= allowed,
        "the span lasted {duration:?}; the call answered after {answered:?} and pricing took {bookkeeping:?}"
    );
}
