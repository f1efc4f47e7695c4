//! Full-text search through the API: `GET /api/v1/traces?q=` finds traces by the words of one
//! span's name, input, output or messages, and gives each listed trace its hit (the first span
//! holding the words) with a snippet whose marks are the words; `content=` is the same search,
//! `text=` the substring filter of names and ids; a query with no word is a 400 naming it.

use serde_json::Value;
use spanlens_core::span::{Message, Payload};
use spanlens_core::{Span, SpanId, Timestamp, TraceId};

mod common;

use common::client::Server;

const T0: u64 = 1_700_000_000_000_000_000;

fn span(trace: u8, n: u8, name: &str) -> Span {
    Span {
        trace_id: TraceId([trace; 16]),
        span_id: SpanId([trace, n, 0, 0, 0, 0, 0, 1]),
        parent_span_id: (n > 0).then_some(SpanId([trace, 0, 0, 0, 0, 0, 0, 1])),
        name: name.into(),
        start_time: Timestamp(T0 + u64::from(trace) * 1_000_000_000 + u64::from(n)),
        end_time: Some(Timestamp(T0 + u64::from(trace) * 1_000_000_000 + 1_000_000)),
        ..Default::default()
    }
}

fn spans() -> Vec<Span> {
    let mut out = Vec::new();
    for t in 1..=3u8 {
        out.push(span(t, 0, &format!("support run {t}")));
        let mut call = span(t, 1, "chat");
        call.input_messages = vec![Message {
            role: Some("user".into()),
            content: Some(format!(
                "{} Where is my <b>Refund</b>? Order {t}.",
                "Earlier words. ".repeat(20)
            )),
            ..Default::default()
        }];
        out.push(call);
    }
    let mut tool = span(2, 2, "Lookup-Orders");
    tool.output = Some(Payload::from_text(r#"{"status": "shipped"}"#, None));
    out.push(tool);
    out
}

fn ids(answer: &Value) -> Vec<String> {
    answer["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["trace_id"].as_str().unwrap()[..2].to_string())
        .collect()
}

#[test]
fn q_finds_traces_by_words_and_marks_them_in_a_snippet() {
    let s = Server::start_with(spans());
    let (status, page) = s.get("/api/v1/traces?q=REFUND%20order");
    assert_eq!(status, 200, "{page}");
    assert_eq!(ids(&page), ["03", "02", "01"]);
    let hit = &page["items"][0]["hit"];
    assert_eq!(hit["span_name"], "chat");
    assert_eq!(hit["span_id"], "0301000000000001");
    let text = hit["snippet"]["text"].as_str().unwrap();
    assert!(
        text.contains("<b>Refund</b>"),
        "as written, not lowered: {text}"
    );
    assert_eq!(hit["snippet"]["cut_before"], true, "{hit}");
    let marked: Vec<&str> = hit["snippet"]["marks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &text[m[0].as_u64().unwrap() as usize..m[1].as_u64().unwrap() as usize])
        .collect();
    assert_eq!(marked, ["Refund", "Order"], "{hit}");

    // A name and the output of one span; the same search under `content`.
    let (_, page) = s.get("/api/v1/traces?content=orders+shipped");
    assert_eq!(ids(&page), ["02"]);
    assert_eq!(page["items"][0]["hit"]["span_name"], "Lookup-Orders");
    // Whole words, in one span.
    let (_, page) = s.get("/api/v1/traces?q=refun");
    assert_eq!(ids(&page), Vec::<String>::new());
    let (_, page) = s.get("/api/v1/traces?q=support+refund");
    assert_eq!(ids(&page), Vec::<String>::new(), "words of two spans");
    // The substring filter is `text`, and lists no hits.
    let (_, page) = s.get("/api/v1/traces?text=run%202");
    assert_eq!(ids(&page), ["02"]);
    assert!(page["items"][0].get("hit").is_none());
    // Outcome counts take the same search.
    let (_, counts) = s.get("/api/v1/traces/outcomes?q=refund");
    assert_eq!(counts["traces"], 3);

    for bad in ["%20--%20", "a+b+c+d+e+f+g+h+i+j+k+l+m+n+o+p+q"] {
        let (status, answer) = s.get(&format!("/api/v1/traces?q={bad}"));
        assert_eq!(status, 400, "{bad}: {answer}");
        assert!(
            answer["error"]
                .as_str()
                .is_some_and(|e| e.contains("content search")),
            "{answer}"
        );
    }
}
