//! One damaged stored span never fails a whole read: the trace detail, its stored-JSON form and
//! the model-span scan answer with what can be read and report what cannot. SQLite only: the
//! damage is done with SQL on the store's own tables.

mod common;

use common::*;
use spanlens_store::contract::damage;
use spanlens_store::prelude::*;

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
    damage::write_root_and_call_then_tool(&store).await;
    // The first chunk (root and call) is overwritten with bytes that are not zstd.
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute(
            "UPDATE trace_chunks SET codec = 1, body = x'00112233' \
             WHERE id = (SELECT min(id) FROM trace_chunks)",
            [],
        )
        .unwrap();
    damage::assert_only_the_tool_span_reads(&store).await;
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
