//! One damaged stored span never fails a whole read: the trace detail, its stored-JSON form and
//! the model-span scan answer with what can be read and report what cannot. SQLite only: the
//! damage is done with SQL on the store's own tables.

mod common;

use common::*;
use spanlens_core::SpanKind;
use spanlens_store::prelude::*;
use spanlens_store::SpanScan;

/// Appends a chunk holding one span body as given (plain frame: id, u32 LE length, bytes),
/// newer than every chunk the trace has, as a damaged or hand-edited database would hold.
fn append_raw_body(db: &std::path::Path, trace: u64, span: u64, body: &[u8]) {
    let conn = rusqlite::Connection::open(db).unwrap();
    let trace_ref: i64 = conn
        .query_row(
            "SELECT id FROM traces WHERE trace_id = ?1",
            [&tid(trace).0[..]],
            |r| r.get(0),
        )
        .unwrap();
    let mut frame = sid(span).0.to_vec();
    frame.extend_from_slice(&(body.len() as u32).to_le_bytes());
    frame.extend_from_slice(body);
    conn.execute(
        "INSERT INTO trace_chunks (trace_ref, codec, spans, body) VALUES (?1, 0, 1, ?2)",
        rusqlite::params![trace_ref, frame],
    )
    .unwrap();
}

#[tokio::test]
async fn a_damaged_chunk_leaves_its_spans_out_and_says_so() {
    let (dir, store) = temp_store();
    let db = dir.path().join("spanlens.db");
    let mut root = span(1, 1, None, "root", 0, 100);
    root.kind = SpanKind::Pipeline;
    let call = llm(1, 2, Some(1), "gpt-4o", "openai", 5, 50, 100, 10, 1_000);
    store.write("default", vec![root, call]).await.unwrap();
    store
        .write("default", vec![span(1, 3, Some(1), "tool", 60, 10)])
        .await
        .unwrap();
    // The first chunk (root and call) is overwritten with bytes that are not zstd.
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute(
            "UPDATE trace_chunks SET codec = 1, body = x'00112233' \
             WHERE id = (SELECT min(id) FROM trace_chunks)",
            [],
        )
        .unwrap();

    let d = store.get_trace("default", tid(1)).await.unwrap().unwrap();
    assert_eq!(d.spans.len(), 1);
    assert_eq!(d.spans[0].name, "tool");
    assert_eq!(d.unreadable.len(), 2, "{:?}", d.unreadable);
    assert!(d.unreadable[0].reason.contains("damaged chunk"));
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
    let seen = spans.len();
    assert_eq!((seen, skipped.count), (0, 1));
    assert_eq!(
        skipped.examples[0].span_id.as_deref(),
        Some(&*sid(2).to_hex())
    );
}

#[tokio::test]
async fn a_body_that_is_not_a_canonical_span_is_reported() {
    let (dir, store) = temp_store();
    let db = dir.path().join("spanlens.db");
    store
        .write(
            "default",
            vec![
                span(1, 1, None, "root", 0, 100),
                span(1, 2, Some(1), "a", 1, 2),
                span(1, 3, Some(1), "b", 3, 4),
            ],
        )
        .await
        .unwrap();
    // Newer copies win: span 2 becomes well-formed JSON that is not a span, span 3 broken JSON.
    append_raw_body(&db, 1, 2, br#"{"span_id": 5}"#);
    append_raw_body(&db, 1, 3, b"{\"span_id\": \"000");

    let d = store.get_trace("default", tid(1)).await.unwrap().unwrap();
    let names: Vec<&str> = d.spans.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["root"]);
    assert_eq!(d.unreadable.len(), 2);
    assert!(d
        .unreadable
        .iter()
        .all(|u| u.reason.contains("does not decode")));

    // The stored-JSON form keeps well-formed bodies (a server decides what it can use) and
    // never hands out text that would break the JSON it is spliced into.
    let j = store
        .get_trace_json("default", tid(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(j.spans.len(), 2);
    assert_eq!(j.unreadable.len(), 1);
    assert_eq!(j.unreadable[0].span_id.as_deref(), Some(&*sid(3).to_hex()));
}
