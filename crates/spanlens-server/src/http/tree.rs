//! `/api/v1/traces/{id}/tree`: a trace's shape without payloads, for the waterfall.

use super::error::{bad, internal, ApiError};
use super::params::Params;
use super::rows::trace_id;
use super::stored::{readable_spans, row_shape, row_source, TreeSource};
use super::tree_columns::TreeColumns;
use crate::state::AppState;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use spanlens_api::{TraceRow, TreeAnswer, TreeNode, TreeSummary};
use spanlens_core::analysis::{SpanShape, Timeline};
use spanlens_core::Status;
use spanlens_store::{TraceDetailJson, TraceRows};
use std::borrow::Cow;
use std::time::Instant;

/// Where a tree is read from.
enum Read {
    /// The spans' typed columns.
    Rows(TraceRows),
    /// The spans' stored JSON.
    Bodies(TraceDetailJson),
}

/// Span `i` of the `tree` view from its source and the trace's timeline.
fn tree_node<'a>(
    i: usize,
    s: TreeSource<'a>,
    trace_start: u64,
    timeline: &Timeline,
) -> TreeNode<'a> {
    TreeNode {
        self_ms: Some(timeline.self_ms(i)),
        critical: timeline.critical(i),
        unclosed: s.end_time.is_none(),
        span_id: s.span_id,
        parent_span_id: s.parent_span_id,
        name: s.name,
        kind: s.kind,
        start_ms: s.start_time.0.saturating_sub(trace_start) as f64 / 1e6,
        duration_ms: s
            .end_time
            .map(|e| e.0.saturating_sub(s.start_time.0) as f64 / 1e6),
        // Blank names read as none, as the stores' typed columns hold them.
        model: nonblank(s.response_model).or(nonblank(s.request_model)),
        input_tokens: s.usage.as_ref().map(|u| u.input_tokens),
        output_tokens: s.usage.as_ref().map(|u| u.output_tokens),
        cost_usd: s.cost.map(|c| c.total_usd.as_usd_f64()),
        unpriced: s.unpriced_reason.is_some(),
        error: s.status == Status::Error,
        error_message: (s.status == Status::Error).then(|| {
            error_summary(
                nonblank(s.error_type).as_deref(),
                s.status_message.as_deref(),
            )
        }),
        status: s.status,
        duplicate_of: s.duplicate_of,
    }
}

fn nonblank(s: Option<Cow<'_, str>>) -> Option<Cow<'_, str>> {
    s.filter(|v| !v.trim().is_empty())
}

/// Characters of a failed span's error kept in the tree view (the span panel has all of it).
pub(super) const TREE_ERROR_CHARS: usize = 300;

/// `type: message` of a failed span, cut on a character boundary to [`TREE_ERROR_CHARS`].
pub(super) fn error_summary(error_type: Option<&str>, message: Option<&str>) -> String {
    let text = match (error_type, message) {
        (Some(t), Some(m)) => format!("{t}: {m}"),
        (Some(t), None) => t.to_string(),
        (None, Some(m)) => m.to_string(),
        (None, None) => "error".to_string(),
    };
    match text.char_indices().nth(TREE_ERROR_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// The trace's shape without payloads: a waterfall of 10,000 spans paints from this, and a
/// span's full record is fetched only when it is opened (`/spans/{span_id}`). Built from the
/// stored JSON with a parser that skips the payloads, which is most of each span's bytes.
pub(super) async fn trace_tree(
    State(st): State<AppState>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let p = Params::parse(q)?;
    let (project, tid) = (p.project(), trace_id(&id)?);
    let columns = match p.get(&["format"]) {
        None | Some("rows") => false,
        Some("columns") => true,
        Some(other) => return Err(bad("format", other, "expected `rows` or `columns`")),
    };
    let began = Instant::now();
    // The typed rows when the store offers them (no body decoded), else the bodies.
    let read = match st.store.get_trace_rows(&project, tid).await? {
        Some(rows) => Read::Rows(rows),
        None => Read::Bodies(
            st.store
                .get_trace_json(&project, tid)
                .await?
                .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no trace {tid}")))?,
        ),
    };
    let read_ms = began.elapsed().as_secs_f64() * 1e3;
    let source = match read {
        Read::Rows(_) => "rows",
        Read::Bodies(_) => "bodies",
    };
    // Parsing the spans is CPU work: off the async workers.
    let (body, build_ms, encode_ms, parse_ms, analyze_ms) =
        tokio::task::spawn_blocking(move || build_tree(&read, columns))
            .await
            .map_err(internal)??;
    // Where the time went, for the browser's resource timing (and anyone measuring).
    let timing = format!(
        "read;dur={read_ms:.1};desc={source}, parse;dur={parse_ms:.1}, analyze;dur={analyze_ms:.1}, build;dur={build_ms:.1}, encode;dur={encode_ms:.1}"
    );
    Ok((
        [
            (header::CONTENT_TYPE, "application/json".to_string()),
            (header::HeaderName::from_static("server-timing"), timing),
        ],
        body,
    )
        .into_response())
}

/// The `tree` answer from what was read, and where its time went: (body, build, encode,
/// parse, analyze) in milliseconds.
fn build_tree(read: &Read, columns: bool) -> Result<(String, f64, f64, f64, f64), ApiError> {
    let began = Instant::now();
    // The timeline needs only ids and times: from the typed rows no span is made at all.
    let (summary, sources, shapes, unreadable) = match read {
        Read::Bodies(detail) => {
            let (readable, mut unreadable) = readable_spans(detail);
            unreadable.extend(detail.unreadable.iter().cloned());
            let (sources, shapes): (Vec<TreeSource>, Vec<SpanShape>) = readable
                .into_iter()
                .map(|(_, src, span)| (src, SpanShape::from(&span)))
                .unzip();
            (&detail.summary, sources, shapes, unreadable)
        }
        Read::Rows(rows) => {
            let sources = rows.spans.iter().map(row_source).collect();
            let shapes = rows.spans.iter().map(row_shape).collect();
            (&rows.summary, sources, shapes, Vec::new())
        }
    };
    let start = summary.start_time.0;
    let parsed_ms = began.elapsed().as_secs_f64() * 1e3;
    let timeline = Timeline::new(&shapes);
    let analyzed_ms = began.elapsed().as_secs_f64() * 1e3;
    let nodes: Vec<TreeNode> = sources
        .into_iter()
        .enumerate()
        .map(|(i, s)| tree_node(i, s, start, &timeline))
        .collect();
    let analysis = TreeSummary {
        wall_ms: timeline.wall_ms(),
        critical_path: timeline.critical_path_ids(),
        critical_path_ms: timeline.critical_path_ms(),
        coordination_overhead_ms: timeline.coordination_overhead_ms(),
        parallelism_efficiency: timeline.parallelism_efficiency(),
        parallel_groups: timeline.parallel_group_count(),
        unclosed_span_ids: timeline.unclosed_span_ids(),
        orphan_span_ids: timeline.orphan_span_ids(),
        clock_skew_span_ids: timeline.clock_skew_span_ids(),
    };
    let trace = TraceRow::from(summary);
    let built = began.elapsed().as_secs_f64() * 1e3;
    let body = if columns {
        serde_json::to_string(&TreeColumns::new(trace, analysis, unreadable, &nodes))
    } else {
        serde_json::to_string(&TreeAnswer {
            trace,
            spans: nodes,
            analysis,
            unreadable_spans: unreadable,
        })
    }
    .map_err(internal)?;
    Ok((
        body,
        built,
        began.elapsed().as_secs_f64() * 1e3 - built,
        parsed_ms,
        analyzed_ms - parsed_ms,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use spanlens_core::{Cost, NanoUsd, Span, SpanId, SpanKind, Timestamp};
    use spanlens_core::{TraceId, Usage};
    use spanlens_store::prelude::*;
    use spanlens_store::SqliteStore;

    const TRACE: TraceId = TraceId([9; 16]);

    fn span(n: u8, parent: Option<u8>, name: &str, start: u64, end: Option<u64>) -> Span {
        Span {
            trace_id: TRACE,
            span_id: SpanId([n; 8]),
            parent_span_id: parent.map(|p| SpanId([p; 8])),
            name: name.into(),
            start_time: Timestamp(1_000_000 + start),
            end_time: end.map(|e| Timestamp(1_000_000 + e)),
            ..Default::default()
        }
    }

    fn cost(nano: i64) -> Cost {
        Cost::computed_total(NanoUsd(nano))
    }

    /// Spans with everything a waterfall row shows, and the awkward cases of each.
    fn varied() -> Vec<Span> {
        let mut root = span(1, None, "pipeline", 0, Some(90_000));
        root.kind = SpanKind::Pipeline;
        root.agent_name = Some("planner".into());
        let mut call = span(2, Some(1), "chat", 1_000, Some(40_000));
        call.kind = SpanKind::Llm;
        call.request_model = Some("gpt-4o".into());
        call.response_model = Some("gpt-4o-2024-08-06".into());
        call.provider = Some("openai".into());
        call.usage = Some(Usage {
            input_tokens: 120,
            output_tokens: 30,
            total_tokens: 150,
            ..Default::default()
        });
        call.cost = Some(cost(1_234_567));
        // The SDK's own span of the same call: a duplicate of it.
        let mut inner = call.clone();
        inner.span_id = SpanId([3; 8]);
        inner.parent_span_id = Some(SpanId([2; 8]));
        inner.name = "openai.chat".into();
        inner.start_time = Timestamp(1_000_000 + 1_500);
        inner.end_time = Some(Timestamp(1_000_000 + 39_000));
        inner.cost = Some(cost(1_000_000));
        let mut unpriced = span(4, Some(1), "chat", 41_000, Some(50_000));
        unpriced.kind = SpanKind::Llm;
        unpriced.request_model = Some("house-model".into());
        unpriced.unpriced_reason = Some("no price for house-model".into());
        unpriced.usage = Some(Usage::default());
        let mut failed = span(5, Some(1), "tool", 50_000, Some(60_000));
        failed.kind = SpanKind::Tool;
        failed.status = Status::Error;
        failed.error_type = Some("TimeoutError".into());
        failed.status_message = Some("ü".repeat(1_500));
        let mut bare = span(6, Some(1), "tool", 60_000, Some(61_000));
        bare.status = Status::Error;
        let mut blank = span(7, Some(1), "step", 61_000, Some(62_000));
        blank.status = Status::Error;
        blank.error_type = Some("  ".into());
        blank.status_message = Some("went wrong".into());
        blank.request_model = Some("claude".into());
        blank.response_model = Some(" ".into());
        let mut ok = span(8, Some(1), "done", 62_000, Some(63_000));
        ok.status = Status::Ok;
        ok.status_message = Some("not shown".into());
        let orphan = span(9, Some(42), "late", 70_000, Some(95_000));
        vec![root, call, inner, unpriced, failed, bare, blank, ok, orphan]
    }

    fn tree(read: &Read, columns: bool) -> String {
        match build_tree(read, columns) {
            Ok(built) => built.0,
            Err(e) => panic!("{}", e.1),
        }
    }

    async fn reads(spans: Vec<Span>) -> (tempfile::TempDir, Option<TraceRows>, TraceDetailJson) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("t.db")).unwrap();
        store.write("p", spans).await.unwrap();
        let rows = store.get_trace_rows("p", TRACE).await.unwrap();
        let json = store.get_trace_json("p", TRACE).await.unwrap().unwrap();
        (dir, rows, json)
    }

    /// The tree from the typed rows is the tree from the bodies, byte for byte, in both formats.
    #[tokio::test]
    async fn rows_and_bodies_build_the_same_tree() {
        let (_dir, rows, json) = reads(varied()).await;
        let rows = Read::Rows(rows.expect("a closed trace is offered as rows"));
        let bodies = Read::Bodies(json);
        for columns in [false, true] {
            let from_rows = tree(&rows, columns);
            let from_bodies = tree(&bodies, columns);
            assert_eq!(from_rows, from_bodies, "columns: {columns}");
        }
        let tree: serde_json::Value = serde_json::from_str(&tree(&rows, false)).unwrap();
        let by_id = |n: u8| {
            tree["spans"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["span_id"] == SpanId([n; 8]).to_hex())
                .unwrap()
                .clone()
        };
        assert_eq!(by_id(3)["duplicate_of"], SpanId([2; 8]).to_hex());
        assert_eq!(
            by_id(3)["input_tokens"],
            120,
            "a duplicate shows what it reported"
        );
        assert_eq!(by_id(3)["cost_usd"], 0.001);
        assert_eq!(by_id(2)["input_tokens"], 120);
        assert_eq!(by_id(2)["model"], "gpt-4o-2024-08-06");
        assert_eq!(by_id(4)["unpriced"], true);
        assert_eq!(by_id(1)["input_tokens"], serde_json::Value::Null);
        let long = by_id(5)["error_message"].as_str().unwrap().to_string();
        assert!(
            long.starts_with("TimeoutError: üü") && long.ends_with('…'),
            "{long}"
        );
        assert_eq!(long.chars().count(), TREE_ERROR_CHARS + 1);
        assert_eq!(by_id(6)["error_message"], "error");
        assert_eq!(by_id(7)["error_message"], "went wrong");
        assert_eq!(by_id(7)["model"], "claude");
        assert!(by_id(8).get("error_message").is_none());
    }

    /// A trace with an unclosed span is read from its bodies: its end is the trace's latest
    /// event time, which the rows do not hold.
    #[tokio::test]
    async fn an_unclosed_span_sends_the_tree_to_the_bodies() {
        let mut spans = varied();
        spans[3].end_time = None;
        spans[3].events.push(spanlens_core::Event {
            name: "token".into(),
            time: Timestamp(1_000_000 + 99_000),
            attributes: Default::default(),
        });
        let (_dir, rows, json) = reads(spans).await;
        assert!(rows.is_none());
        let tree: serde_json::Value =
            serde_json::from_str(&tree(&Read::Bodies(json), false)).unwrap();
        assert_eq!(
            tree["analysis"]["wall_ms"], 0.099,
            "the event's time ends the trace"
        );
    }

    /// Rows stored before the waterfall's columns existed, or damaged ones, are not offered:
    /// the tree is read from the bodies.
    #[tokio::test]
    async fn old_or_damaged_rows_send_the_tree_to_the_bodies() {
        for damage in [
            "UPDATE spans SET status_message = NULL WHERE status = 'error'",
            "UPDATE spans SET has_usage = NULL",
            "UPDATE spans SET kind = 'bogus' WHERE name = 'done'",
            "UPDATE spans SET span_id = x'01' WHERE name = 'done'",
        ] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("t.db");
            let store = SqliteStore::open(&path).unwrap();
            store.write("p", varied()).await.unwrap();
            assert!(store.get_trace_rows("p", TRACE).await.unwrap().is_some());
            drop(store);
            rusqlite::Connection::open(&path)
                .unwrap()
                .execute_batch(damage)
                .unwrap();
            let store = SqliteStore::open(&path).unwrap();
            assert!(
                store.get_trace_rows("p", TRACE).await.unwrap().is_none(),
                "{damage}"
            );
            assert!(store
                .get_trace_rows("p", TraceId([1; 16]))
                .await
                .unwrap()
                .is_none());
        }
    }
}
