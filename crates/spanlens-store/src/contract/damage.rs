//! What a backend's own test of a damaged body writes and expects, whatever the damage: each
//! backend breaks its stored bytes with its own SQL, then both check the same answers.

use super::build::{llm, sid, span, tid};
use crate::store::Store;
use crate::SpanScan;
use spanlens_core::SpanKind;

/// Writes trace 1 in two submissions, so its bodies sit in two chunks: the root and an LLM call
/// (span 2) in the first, a tool span (span 3) in the second.
pub async fn write_root_and_call_then_tool(store: &dyn Store) {
    let mut root = span(1, 1, None, "root", 0, 100);
    root.kind = SpanKind::Pipeline;
    let call = llm(1, 2, Some(1), "gpt-4o", "openai", 5, 50, 100, 10, 1_000);
    store.write("default", vec![root, call]).await.unwrap();
    store
        .write("default", vec![span(1, 3, Some(1), "tool", 60, 10)])
        .await
        .unwrap();
}

/// With the first chunk unreadable, the trace (decoded and as stored JSON) holds the tool span
/// alone and reports the other two, its summary still counts three, and the model-span scan
/// skips the call and says so.
pub async fn assert_only_the_tool_span_reads(store: &dyn Store) {
    let d = store.get_trace("default", tid(1)).await.unwrap().unwrap();
    assert_eq!(d.spans.len(), 1);
    assert_eq!(d.spans[0].name, "tool");
    assert_eq!(d.unreadable.len(), 2, "{:?}", d.unreadable);
    assert!(
        d.unreadable[0].reason.contains("damaged"),
        "{:?}",
        d.unreadable
    );
    assert_eq!(d.summary.span_count, 3);

    let j = store
        .get_trace_json("default", tid(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((j.spans.len(), j.unreadable.len()), (1, 2));

    let (spans, skipped) = store
        .scan_model_spans(&SpanScan::default())
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!((spans.len(), skipped.count), (0, 1));
    assert_eq!(
        skipped.examples[0].span_id.as_deref(),
        Some(&*sid(2).to_hex())
    );
}
