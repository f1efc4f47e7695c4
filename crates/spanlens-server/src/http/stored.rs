//! The stored span JSON as the answers read it: the fields a waterfall row and the analysis
//! need (the payloads are skipped unbuilt), and which stored spans parse at all.

use super::error::{internal, ApiError};
use serde_json::Value;
use spanlens_core::analysis::SpanShape;
use spanlens_core::{NanoUsd, Span, SpanId, SpanKind, Status, Timestamp};
use spanlens_store::{SpanRow, TraceDetailJson, UnreadableSpan};

/// The fields of a stored span that a waterfall row needs; everything else in the span's
/// JSON (payloads, messages, attributes) is skipped by the parser without being built.
#[derive(serde::Deserialize)]
pub(super) struct TreeSource<'a> {
    #[serde(borrow)]
    pub(super) span_id: std::borrow::Cow<'a, str>,
    #[serde(borrow, default)]
    pub(super) parent_span_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    pub(super) name: std::borrow::Cow<'a, str>,
    #[serde(default)]
    pub(super) kind: SpanKind,
    pub(super) start_time: Timestamp,
    #[serde(default)]
    pub(super) end_time: Option<Timestamp>,
    #[serde(default)]
    pub(super) status: Status,
    #[serde(borrow, default)]
    pub(super) status_message: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) error_type: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) request_model: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) response_model: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    pub(super) usage: Option<TreeUsage>,
    #[serde(default)]
    pub(super) cost: Option<TreeCost>,
    /// Only whether it is set matters; the reason is not read.
    #[serde(default)]
    pub(super) unpriced_reason: Option<serde::de::IgnoredAny>,
    #[serde(borrow, default)]
    pub(super) agent_name: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    pub(super) events: Vec<TreeEvent>,
    #[serde(default)]
    pub(super) attributes: TreeAttributes,
    #[serde(borrow, default)]
    pub(super) duplicate_of: Option<std::borrow::Cow<'a, str>>,
}

/// The time of an event: the analysis needs it to find the latest known time of a trace.
#[derive(serde::Deserialize)]
pub(super) struct TreeEvent {
    pub(super) time: Timestamp,
}

/// The attributes the analysis reads (item counts); all others are skipped unbuilt.
#[derive(serde::Deserialize, Default)]
pub(super) struct TreeAttributes {
    #[serde(rename = "spanlens.items", default)]
    pub(super) items: Option<Value>,
    #[serde(rename = "items.count", default)]
    pub(super) items_count: Option<Value>,
}

/// The span the analysis needs, rebuilt from the fields a tree row parses.
pub(super) fn analysis_span(s: &TreeSource<'_>) -> Result<Span, String> {
    let id = |hex: &str| SpanId::from_hex(hex).map_err(|e| format!("span id {hex:?}: {e}"));
    let mut attributes = spanlens_core::Attributes::new();
    for (k, v) in [
        ("spanlens.items", &s.attributes.items),
        ("items.count", &s.attributes.items_count),
    ] {
        if let Some(v) = v {
            attributes.insert(k.to_string(), v.clone());
        }
    }
    Ok(Span {
        span_id: id(&s.span_id)?,
        parent_span_id: s.parent_span_id.as_deref().map(id).transpose()?,
        name: s.name.to_string(),
        kind: s.kind,
        start_time: s.start_time,
        end_time: s.end_time,
        status: s.status,
        agent_name: s.agent_name.as_deref().map(str::to_string),
        events: s
            .events
            .iter()
            .map(|e| spanlens_core::Event {
                name: String::new(),
                time: e.time,
                attributes: Default::default(),
            })
            .collect(),
        attributes,
        ..Default::default()
    })
}

/// A waterfall row's fields from a span's typed columns (a store's `get_trace_rows`): what
/// [`readable_spans`] makes from a body, without one.
pub(super) fn row_source(r: &SpanRow) -> TreeSource<'_> {
    fn text(t: &Option<String>) -> Option<std::borrow::Cow<'_, str>> {
        t.as_deref().map(std::borrow::Cow::Borrowed)
    }
    TreeSource {
        span_id: r.span_id.to_hex().into(),
        parent_span_id: r.parent_span_id.map(|p| p.to_hex().into()),
        name: r.name.as_str().into(),
        kind: r.kind,
        start_time: r.start_time,
        end_time: Some(r.end_time),
        status: r.status,
        status_message: text(&r.status_message),
        error_type: text(&r.error_type),
        request_model: text(&r.request_model),
        response_model: text(&r.response_model),
        usage: r.usage.map(|(input_tokens, output_tokens)| TreeUsage {
            input_tokens,
            output_tokens,
        }),
        cost: r.cost.map(|total_usd| TreeCost { total_usd }),
        unpriced_reason: r.unpriced.then_some(serde::de::IgnoredAny),
        agent_name: text(&r.agent_name),
        // Rows are only offered for traces whose spans all ended: events cannot move an end.
        events: Vec::new(),
        // The item counts feed only the throughput analysis, which a waterfall does not show.
        attributes: TreeAttributes::default(),
        duplicate_of: r.duplicate_of.map(|d| d.to_hex().into()),
    }
}

/// What the timeline needs of a span, from its typed columns.
pub(super) fn row_shape(r: &SpanRow) -> SpanShape {
    SpanShape {
        span_id: r.span_id,
        parent_span_id: r.parent_span_id,
        start: r.start_time.0,
        end: Some(r.end_time.0),
        // Rows are only offered for traces whose spans all ended: events cannot move an end.
        last_event: None,
    }
}

#[derive(serde::Deserialize)]
pub(super) struct TreeUsage {
    #[serde(default)]
    pub(super) input_tokens: u64,
    #[serde(default)]
    pub(super) output_tokens: u64,
}

#[derive(serde::Deserialize)]
pub(super) struct TreeCost {
    #[serde(default)]
    pub(super) total_usd: NanoUsd,
}

impl TreeCost {
    /// A span's cost holding only its total: what the analyses that read this much need.
    pub(super) fn into_cost(self) -> spanlens_core::Cost {
        spanlens_core::Cost::computed_total(self.total_usd)
    }
}

/// Adds `"unreadable_spans": [...]` to an answer being built, when a stored span had to be
/// left out: the reader learns what is missing instead of getting a 500 for the whole trace.
pub(super) fn push_unreadable(
    out: &mut String,
    unreadable: &[UnreadableSpan],
) -> Result<(), ApiError> {
    if !unreadable.is_empty() {
        out.push_str(",\"unreadable_spans\":");
        out.push_str(&serde_json::to_string(unreadable).map_err(internal)?);
    }
    Ok(())
}

/// Keeps the items at `keep` (ascending indices), in order.
pub(super) fn retain_indices<T>(items: &mut Vec<T>, keep: &[usize]) {
    let mut next = keep.iter().peekable();
    let mut i = 0;
    items.retain(|_| {
        let hit = next.peek() == Some(&&i);
        if hit {
            next.next();
        }
        i += 1;
        hit
    });
}

/// The stored spans of a trace that parse as canonical spans, each with its index in
/// `detail.spans`, its tree row source and the span the analysis needs; the others are
/// reported as unreadable (a body from a damaged database or a build with other rules).
/// A large trace is parsed on several threads (100,000 spans are most of a second on one).
pub(super) fn readable_spans(
    detail: &TraceDetailJson,
) -> (Vec<(usize, TreeSource<'_>, Span)>, Vec<UnreadableSpan>) {
    let trace_id = detail.summary.trace_id.to_hex();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(detail.spans.len() / PARALLEL_PARSE_MIN)
        .max(1);
    if threads == 1 {
        return parse_some(&detail.spans, 0, &trace_id);
    }
    let per = detail.spans.len().div_ceil(threads);
    let parts: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = detail
            .spans
            .chunks(per)
            .enumerate()
            .map(|(k, chunk)| {
                let trace_id = &trace_id;
                scope.spawn(move || parse_some(chunk, k * per, trace_id))
            })
            .collect();
        handles
            .into_iter()
            // A panic in a parse thread is a bug: carry it on as the handler's panic.
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut readable = Vec::with_capacity(detail.spans.len());
    let mut unreadable = Vec::new();
    for (r, u) in parts {
        readable.extend(r);
        unreadable.extend(u);
    }
    (readable, unreadable)
}

/// Spans per parse thread below which one thread parses the whole trace.
const PARALLEL_PARSE_MIN: usize = 8_192;

/// [`readable_spans`] of `raws`, the stored spans from index `first` on.
fn parse_some<'a>(
    raws: &'a [String],
    first: usize,
    trace_id: &str,
) -> (Vec<(usize, TreeSource<'a>, Span)>, Vec<UnreadableSpan>) {
    let mut readable = Vec::with_capacity(raws.len());
    let mut unreadable = Vec::new();
    for (i, raw) in raws.iter().enumerate() {
        let parsed = serde_json::from_str::<TreeSource>(raw)
            .map_err(|e| e.to_string())
            .and_then(|src| analysis_span(&src).map(|span| (src, span)));
        match parsed {
            Ok((src, span)) => readable.push((first + i, src, span)),
            Err(reason) => unreadable.push(UnreadableSpan {
                span_id: None,
                trace_id: trace_id.to_string(),
                reason: format!("stored span is not canonical JSON: {reason}"),
            }),
        }
    }
    (readable, unreadable)
}
