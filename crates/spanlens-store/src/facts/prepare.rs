//! Turns a canonical span into the row the writer inserts, on the submitting thread, so the one
//! writer thread spends its time in SQLite and not in JSON encoding.

use crate::error::StoreError;
use crate::facts::body_json;
use crate::facts::summary::SpanFacts;
use crate::rollup::headroom::RateSample;
use crate::rollup::metrics::SpanStats;
use crate::rollup::retries::RetryFacts;
use crate::rollup::time::Level;
use spanlens_core::dedup::Call;
use spanlens_core::{Span, SpanKind, Status};

/// Event name the SDK records for each failed attempt that is retried.
const RETRY_EVENT: &str = "retry";
/// Attribute where tool instrumentation records how often a call was retried.
const TOOL_RETRY_ATTR: &str = "spanlens.tool.retry_count";

/// A span flattened into the typed columns of `spans` plus its canonical JSON.
#[derive(Debug, Clone)]
pub struct PreparedSpan {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent_span_id: Option<[u8; 8]>,
    pub start_ns: i64,
    pub end_ns: Option<i64>,
    pub duration_ns: Option<i64>,
    pub kind: &'static str,
    pub status: &'static str,
    pub name: String,
    pub model: Option<String>,
    pub request_model: Option<String>,
    pub response_model: Option<String>,
    pub provider: Option<String>,
    pub agent_name: Option<String>,
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    pub service: Option<String>,
    pub tool_name: Option<String>,
    pub error_type: Option<String>,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_read_tokens: i64,
    pub cache_write_tokens: i64,
    pub reasoning_tokens: i64,
    pub total_tokens: i64,
    pub cost_nano: Option<i64>,
    /// The span is a model call the catalog could not price.
    pub unpriced: bool,
    pub ttft_ns: Option<i64>,
    pub retry_count: i64,
    /// Tags as a JSON array (`None` when there are none).
    pub tags_json: Option<String>,
    /// Tags, deduplicated, for the facet table.
    pub tags: Vec<String>,
    /// The rate-limit snapshot the recovery report reads, if the span has one it reads (boxed,
    /// like `retry`: most spans have neither, and every row is moved along the write path).
    pub rate: Option<Box<PreparedRate>>,
    /// The prompt template the span used and its version (`spanlens_core::prompts`).
    pub prompt_name: Option<String>,
    pub prompt_version: Option<String>,
    /// What the same-call rule reads of an LLM span with usage (boxed: most spans are not).
    pub call: Option<Box<Call>>,
    /// What the recovery report reads of a retried span.
    pub retry: Option<Box<RetryFacts>>,
    /// A failed span's status message, its first [`crate::STATUS_MESSAGE_PREFIX_CHARS`]
    /// characters, `""` when it has none; `None` for a span that did not fail.
    pub status_message: Option<String>,
    /// The span reported token usage (its token columns are zeros otherwise).
    pub has_usage: bool,
    /// The text full-text search finds the span by (`spanlens_core::content::text`: lowered),
    /// made on the submitting thread. Not reduced to distinct words here: SQLite's index keeps
    /// each word once a span by itself, and finding the distinct words first cost ingest more
    /// than tokenizing the repeats (PostgreSQL's writer takes its distinct words from it).
    pub search_text: String,
}

/// A rate-limit snapshot ready to store: typed, encoded, and when it was taken.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedRate {
    /// Snapshot time: the span's end, else its start (what the report buckets by).
    pub at_ns: i64,
    pub sample: RateSample,
    /// `sample` as stored in `spans.rate_limits`.
    pub bytes: Vec<u8>,
}

/// True when a snapshot was taken in another quarter-hour bucket than its span started in:
/// such snapshots stay out of the headroom rollups, which are kept by snapshot time, so a
/// rollup bucket only holds spans that also started in it (see `rollups.rs`).
pub fn straddles(start_ns: i64, at_ns: i64) -> bool {
    Level::Leaf.bucket_of(start_ns) != Level::Leaf.bucket_of(at_ns)
}

impl PreparedSpan {
    /// What the span adds to its trace's summary, as stored.
    pub fn facts(&self) -> SpanFacts<'_> {
        SpanFacts {
            span_id: self.span_id,
            is_root: self.parent_span_id.is_none(),
            name: &self.name,
            kind: self.kind,
            status: self.status,
            start: self.start_ns,
            end: self.end_ns,
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            total_tokens: self.total_tokens,
            cost: self.cost_nano,
            unpriced: self.unpriced,
            user: self.user_id.as_deref(),
            session: self.session_id.as_deref(),
            service: self.service.as_deref(),
            request_model: self.request_model.as_deref(),
            response_model: self.response_model.as_deref(),
            provider: self.provider.as_deref(),
            tags: &self.tags,
            prompt_name: self.prompt_name.as_deref(),
            prompt_version: self.prompt_version.as_deref(),
        }
    }

    /// What the span contributes to the metrics rollups.
    pub fn stats(&self) -> SpanStats<'_> {
        SpanStats {
            start_ns: self.start_ns,
            kind: self.kind,
            error: self.status == "error",
            duration_ns: self.duration_ns,
            ttft_ns: self.ttft_ns,
            tokens: [
                self.input_tokens,
                self.output_tokens,
                self.cache_read_tokens,
                self.cache_write_tokens,
                self.reasoning_tokens,
                self.total_tokens,
            ],
            cost_nano: self.cost_nano,
            unpriced: self.unpriced,
            retry_count: self.retry_count,
            request_model: self.request_model.as_deref(),
            response_model: self.response_model.as_deref(),
            provider: self.provider.as_deref(),
            agent: self.agent_name.as_deref(),
            user: self.user_id.as_deref(),
            tool: self.tool_name.as_deref(),
        }
    }
}

/// Stored text of a status.
pub fn status_str(s: Status) -> &'static str {
    match s {
        Status::Ok => "ok",
        Status::Error => "error",
        Status::Unset => "unset",
    }
}

/// Reads a stored status back; unknown text reads as `unset`.
pub fn parse_status(s: &str) -> Status {
    match s {
        "ok" => Status::Ok,
        "error" => Status::Error,
        _ => Status::Unset,
    }
}

/// Converts an unsigned count to SQLite's signed integer, saturating instead of wrapping.
pub fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|v| !v.trim().is_empty())
}

/// Appends the canonical JSON of `span` (every field) to `out`: the bytes `serde_json` would
/// write, by a writer that is faster on long strings (`body_json`).
pub fn write_body(span: &Span, out: &mut Vec<u8>) -> Result<(), StoreError> {
    body_json::write(span, out).map_err(|e| StoreError::Encode {
        trace_id: span.trace_id.to_hex(),
        span_id: span.span_id.to_hex(),
        reason: e.to_string(),
    })
}

/// Makes `span` the copy a store keeps: of `project` (the batch's project overrides the
/// span's), and without `duplicate_of`, which the store decides itself on reading (the same
/// provider call recorded by two spans is counted once).
pub fn own(span: &mut Span, project: &str) {
    if span.project.as_deref() != Some(project) {
        span.project = Some(project.to_string());
    }
    span.duplicate_of = None;
}

/// Replaces NUL characters in the strings that become typed columns: PostgreSQL's text
/// refuses them (one NUL in a user id failed the whole submission), and a list shows nothing
/// useful for one. The body keeps the span as sent.
fn without_nul(span: &mut Span) {
    replace_nul(&mut span.name);
    for s in [
        &mut span.request_model,
        &mut span.response_model,
        &mut span.response_id,
        &mut span.provider,
        &mut span.agent_name,
        &mut span.user_id,
        &mut span.session_id,
        &mut span.service,
        &mut span.error_type,
    ]
    .into_iter()
    .flatten()
    {
        replace_nul(s);
    }
    if let Some(name) = span.tool.as_mut().and_then(|t| t.name.as_mut()) {
        replace_nul(name);
    }
    span.tags.iter_mut().for_each(replace_nul);
}

/// Replaces each NUL character of `s` with U+FFFD, the replacement character.
pub fn replace_nul(s: &mut String) {
    if s.contains('\0') {
        *s = s.replace('\0', "\u{FFFD}");
    }
}

/// Flattens `span` into the typed columns of its row (its body is written by [`write_body`]).
pub fn prepare(mut span: Span) -> PreparedSpan {
    without_nul(&mut span);
    let call = Call::of(&span).map(Box::new);
    let retry_events = span
        .events
        .iter()
        .filter(|e| e.name.eq_ignore_ascii_case(RETRY_EVENT))
        .count() as u64;
    let retry_attr = span
        .attributes
        .get(TOOL_RETRY_ATTR)
        .and_then(|v| v.as_u64())
        .unwrap_or(0);
    let duration_ns = span.duration_ns().map(to_i64);
    let retry_count = to_i64(retry_events.max(retry_attr));
    // Read before the fields are moved out: the report reads them as sent.
    let retry = if retry_count > 0 {
        RetryFacts::of(&span).map(Box::new)
    } else {
        None
    };
    let model_call = matches!(span.kind, SpanKind::Llm | SpanKind::Embedding);
    let has_provider = span
        .provider
        .as_deref()
        .is_some_and(|p| !p.trim().is_empty());
    // The spans the recovery report reads snapshots of: model calls, spans naming a provider,
    // retried spans.
    let rate = span
        .rate_limits
        .as_ref()
        .filter(|_| model_call || has_provider || retry_count > 0)
        .and_then(|rl| RateSample::of(span.provider.as_deref(), rl))
        .map(|sample| {
            Box::new(PreparedRate {
                at_ns: to_i64(span.end_time.unwrap_or(span.start_time).0),
                bytes: sample.encode(),
                sample,
            })
        });
    let search_text = spanlens_core::content::text(&span);
    let has_usage = span.usage.is_some();
    let usage = span.usage.take().unwrap_or_default();
    let status_message = (span.status == Status::Error).then(|| {
        let m = span.status_message.as_deref().unwrap_or("");
        match m.char_indices().nth(crate::STATUS_MESSAGE_PREFIX_CHARS) {
            Some((cut, _)) => m[..cut].to_string(),
            None => m.to_string(),
        }
    });
    let mut tags: Vec<String> = std::mem::take(&mut span.tags)
        .into_iter()
        .filter(|t| !t.trim().is_empty())
        .collect();
    tags.sort();
    tags.dedup();
    let tags_json = if tags.is_empty() {
        None
    } else {
        serde_json::to_string(&tags).ok()
    };
    let prompt = spanlens_core::prompts::prompt_of(&span).map(|p| {
        let clean = |mut s: String| {
            replace_nul(&mut s);
            s
        };
        (clean(p.name), p.version.map(clean))
    });
    let (prompt_name, prompt_version) = match prompt {
        Some((n, v)) => (Some(n), v),
        None => (None, None),
    };
    let request_model = non_empty(span.request_model.take());
    let response_model = non_empty(span.response_model.take());
    let tool_name = if span.kind == SpanKind::Tool {
        non_empty(span.tool.take().and_then(|t| t.name)).or_else(|| Some(span.name.clone()))
    } else {
        None
    };
    PreparedSpan {
        trace_id: span.trace_id.0,
        span_id: span.span_id.0,
        parent_span_id: span.parent_span_id.map(|p| p.0),
        start_ns: to_i64(span.start_time.0),
        end_ns: span.end_time.map(|t| to_i64(t.0)),
        duration_ns,
        kind: span.kind.as_str(),
        status: status_str(span.status),
        model: request_model.clone().or_else(|| response_model.clone()),
        request_model,
        response_model,
        provider: non_empty(span.provider.take()),
        agent_name: non_empty(span.agent_name.take()),
        user_id: non_empty(span.user_id.take()),
        session_id: non_empty(span.session_id.take()),
        service: non_empty(span.service.take()),
        tool_name,
        error_type: non_empty(span.error_type.take()),
        input_tokens: to_i64(usage.input_tokens),
        output_tokens: to_i64(usage.output_tokens),
        cache_read_tokens: to_i64(usage.cache_read_tokens),
        cache_write_tokens: to_i64(usage.cache_write_tokens),
        reasoning_tokens: to_i64(usage.reasoning_tokens),
        total_tokens: to_i64(usage.total_tokens),
        cost_nano: span.cost.as_ref().map(|c| c.amounts.total.0),
        unpriced: span.unpriced_reason.is_some(),
        ttft_ns: span.ttft_ns.map(to_i64),
        retry_count,
        tags_json,
        tags,
        name: std::mem::take(&mut span.name),
        prompt_name,
        prompt_version,
        rate,
        call,
        retry,
        status_message,
        has_usage,
        search_text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spanlens_core::{Event, SpanId, Timestamp, TraceId, Usage};

    #[test]
    fn columns_follow_the_span() {
        let span = Span {
            trace_id: TraceId([1; 16]),
            span_id: SpanId([2; 8]),
            name: "search".into(),
            kind: SpanKind::Tool,
            start_time: Timestamp(10),
            end_time: Some(Timestamp(5)),
            request_model: Some(" ".into()),
            response_model: Some("gpt-4o-2024-08-06".into()),
            tags: vec!["b".into(), "a".into(), "b".into(), "".into()],
            usage: Some(Usage {
                input_tokens: u64::MAX,
                ..Default::default()
            }),
            events: vec![
                Event {
                    name: "retry".into(),
                    ..Default::default()
                },
                Event {
                    name: "retry".into(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let mut body = Vec::new();
        write_body(&span, &mut body).unwrap();
        let p = prepare(span);
        assert_eq!(p.duration_ns, Some(0));
        assert_eq!(p.model.as_deref(), Some("gpt-4o-2024-08-06"));
        assert_eq!(p.request_model, None);
        assert_eq!(p.tags, vec!["a", "b"]);
        assert_eq!(p.tags_json.as_deref(), Some(r#"["a","b"]"#));
        assert_eq!(p.input_tokens, i64::MAX);
        assert_eq!(p.tool_name.as_deref(), Some("search"));
        assert_eq!(p.retry_count, 2);
        let back: Span = serde_json::from_slice(&body).unwrap();
        assert_eq!(back.tags, vec!["b", "a", "b", ""]);
    }
}
