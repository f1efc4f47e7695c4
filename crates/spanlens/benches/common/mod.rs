//! The span the overhead benchmark measures, shared with `examples/span_loop.rs` (which runs it
//! in a loop for a profiler), so that both time the same work.

use std::hint::black_box;

/// `builder` as an LLM span with five attributes.
#[inline(always)]
pub fn five_attributes(builder: spanlens::SpanBuilder) -> spanlens::SpanBuilder {
    builder
        .kind(spanlens::SpanKind::Llm)
        .attr("gen_ai.request.model", "gpt-4o-mini")
        .attr("gen_ai.usage.input_tokens", black_box(1200))
        .attr("gen_ai.usage.output_tokens", black_box(300))
        .attr("retry", black_box(false))
        .attr("temperature", black_box(0.2))
}

/// The benchmark's span, started on `tracer`; it ends when dropped.
#[inline(always)]
pub fn five_attribute_span(tracer: &spanlens::Tracer) -> spanlens::Span {
    five_attributes(tracer.span("llm call")).start()
}
