//! Batch, console and JSONL processors.

use spanlens::export::{ExportError, SpanExporter};
use spanlens::processor::{
    BatchConfig, BatchProcessor, ConsoleProcessor, JsonlProcessor, SpanProcessor,
};
use spanlens::{Resource, SpanData, SpanKind, Tracer};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<usize>>>, Arc<Mutex<()>>);

impl SpanExporter for Collect {
    fn export(&mut self, batch: &[Box<SpanData>]) -> Result<(), ExportError> {
        let _hold = self.1.lock().unwrap();
        self.0.lock().unwrap().push(batch.len());
        Ok(())
    }
}

#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn one_span() -> SpanData {
    let mem = spanlens::processor::InMemoryProcessor::new();
    let t = Tracer::builder().with_processor(mem.clone()).build();
    drop(t.span("s").start());
    mem.spans().remove(0)
}

#[test]
fn batch_processor_batches_and_flushes() {
    let exp = Collect::default();
    let p = BatchProcessor::new(
        exp.clone(),
        BatchConfig {
            max_queue: 1000,
            batch_size: 4,
            flush_interval: Duration::from_secs(60),
        },
    );
    for _ in 0..10 {
        p.on_end(Box::new(one_span()));
    }
    p.force_flush().unwrap();
    let sizes = exp.0.lock().unwrap().clone();
    assert_eq!(sizes.iter().sum::<usize>(), 10);
    assert!(sizes.iter().all(|n| *n <= 4), "{sizes:?}");
    assert_eq!(p.stats().exported, 10);
    p.shutdown().unwrap();
    assert!(p.force_flush().is_err(), "flush after shutdown is refused");
}

#[test]
fn full_queue_drops_and_counts_without_blocking() {
    let exp = Collect::default();
    let hold = exp.1.lock().unwrap(); // the exporter blocks until released
    let p = BatchProcessor::new(
        exp.clone(),
        BatchConfig {
            max_queue: 8,
            batch_size: 1,
            flush_interval: Duration::from_millis(1),
        },
    );
    let start = std::time::Instant::now();
    for _ in 0..200 {
        p.on_end(Box::new(one_span()));
    }
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "on_end never blocks"
    );
    drop(hold);
    p.shutdown().unwrap();
    let s = p.stats();
    assert!(s.dropped > 0, "{s:?}");
    assert_eq!(
        s.dropped + s.exported,
        200,
        "every span is either exported or counted as dropped: {s:?}"
    );
}

#[test]
fn flush_interval_exports_without_an_explicit_flush() {
    let exp = Collect::default();
    let p = BatchProcessor::new(
        exp.clone(),
        BatchConfig {
            max_queue: 100,
            batch_size: 100,
            flush_interval: Duration::from_millis(20),
        },
    );
    p.on_end(Box::new(one_span()));
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while p.stats().exported == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(p.stats().exported, 1);
}

#[test]
fn console_prints_the_tree_when_the_trace_ends() {
    let out = Shared::default();
    let t = Tracer::builder()
        .with_processor(ConsoleProcessor::to_writer(out.clone(), Resource::new("c")))
        .build();
    {
        let root = t.span("support pipeline").kind(SpanKind::Pipeline).start();
        let _r = root.enter();
        let agent = spanlens::span("triage").kind(SpanKind::Agent).start();
        agent.in_scope(|| {
            let llm = spanlens::span("chat gpt-4o-mini")
                .kind(SpanKind::Llm)
                .attr("gen_ai.request.model", "gpt-4o-mini")
                .attr("gen_ai.usage.input_tokens", 1000)
                .attr("gen_ai.usage.output_tokens", 200)
                .start();
            drop(llm);
            let tool = spanlens::span("lookup").kind(SpanKind::Tool).start();
            tool.set_error("boom", Some("IoError"));
        });
        assert!(
            out.0.lock().unwrap().is_empty(),
            "nothing printed before the trace ends"
        );
    }
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    assert!(text.starts_with("trace "), "{text}");
    assert!(text.contains("4 spans"), "{text}");
    assert!(text.contains("1000 in / 200 out tokens"), "{text}");
    assert!(text.contains("└─ support pipeline [pipeline]"), "{text}");
    assert!(text.contains("   └─ triage [agent]"), "{text}");
    assert!(
        text.contains("chat gpt-4o-mini [llm]") && text.contains("1000→200 tok"),
        "{text}"
    );
    // 1000 × $0.15/M + 200 × $0.60/M = $0.00027
    assert!(text.contains("$0.00027"), "{text}");
    assert!(text.contains("ERROR boom"), "{text}");
}

#[test]
fn jsonl_lines_are_canonical_spans() {
    let out = Shared::default();
    let t = Tracer::builder()
        .with_processor(JsonlProcessor::to_writer(
            out.clone(),
            Resource::new("jsonl-svc"),
        ))
        .build();
    {
        let root = t.span("root").kind(SpanKind::Pipeline).start();
        let _r = root.enter();
        let _llm = spanlens::span("chat")
            .kind(SpanKind::Llm)
            .attr("gen_ai.request.model", "gpt-4o-mini")
            .attr("gen_ai.usage.input_tokens", 1000)
            .attr("gen_ai.usage.output_tokens", 200)
            .start();
    }
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<spanlens_core::Span> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("canonical span JSON"))
        .collect();
    assert_eq!(lines.len(), 2);
    let llm = lines
        .iter()
        .find(|s| s.kind == spanlens_core::SpanKind::Llm)
        .unwrap();
    assert_eq!(llm.service.as_deref(), Some("jsonl-svc"));
    assert_eq!(
        llm.cost.as_ref().unwrap().amounts.total,
        spanlens_core::NanoUsd(270_000)
    );
    assert_eq!(llm.source.as_deref(), Some("spanlens"));
}

/// A tracer sums its queueing processors' counters; one without any has none to give.
#[test]
fn a_tracer_reports_its_batch_counters() {
    let only_memory = Tracer::builder()
        .with_processor(spanlens::processor::InMemoryProcessor::new())
        .build();
    assert_eq!(only_memory.stats(), None);
    let config = BatchConfig {
        max_queue: 3,
        batch_size: 100,
        flush_interval: Duration::from_secs(60),
    };
    let t = Tracer::builder()
        .with_processor(BatchProcessor::new(Collect::default(), config))
        .with_processor(BatchProcessor::new(Collect::default(), config))
        .build();
    for _ in 0..5 {
        drop(t.span("s").start());
    }
    // Each processor holds three and refuses the fourth (a refusal wakes its export thread,
    // which may then make room for the fifth): every span of the two is counted once.
    let s = t.stats().unwrap();
    assert!(s.dropped >= 2 && s.queued <= 6, "{s:?}");
    // A batch being exported right now may be counted twice for a moment, never missed.
    assert!(s.queued + s.dropped + s.exported >= 10, "{s:?}");
    t.force_flush();
    let s = t.stats().unwrap();
    assert_eq!(s.queued, 0, "{s:?}");
    assert!(s.dropped >= 2, "{s:?}");
    assert_eq!(s.dropped + s.exported, 10, "{s:?}");
    t.shutdown();
}
