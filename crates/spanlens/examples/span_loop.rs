//! A tight loop of the overhead benchmark's span (five attributes into a batch processor with a
//! no-op exporter), for profiling the hot path with `perf` or callgrind:
//! `cargo build --release -p spanlens --example span_loop && perf record -g target/release/examples/span_loop 20000000`.
//! Prints the time per span and the processor's counters.

#[path = "../benches/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::time::Instant;

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("a span count"))
        .unwrap_or(10_000_000);
    let tracer = spanlens::Tracer::builder()
        .with_processor(spanlens::processor::BatchProcessor::new(
            spanlens::export::NoopExporter,
            spanlens::processor::BatchConfig::default(),
        ))
        .build();
    let started = Instant::now();
    for _ in 0..n {
        drop(black_box(common::five_attribute_span(&tracer)));
    }
    let per_span = started.elapsed().as_nanos() as f64 / n as f64;
    tracer.shutdown();
    let s = tracer.stats().expect("a batch processor");
    println!(
        "{per_span:.1} ns per span; {} exported, {} dropped",
        s.exported, s.dropped
    );
}
