//! The shaping of what a read returns, the same on every backend: a trace summary from its
//! stored columns, the page cursors, and a trace's spans from their stored bodies (GenAI log
//! events merged in, duplicates of a provider call marked, damaged bodies reported).

use super::prepare::{parse_status, status_str, to_i64};
use super::summary::SummaryNumbers;
use crate::cursor::{SessionCursor, SortKey, TraceCursor};
use crate::error::StoreError;
use crate::types::{
    ListQuery, Page, SessionSummary, SortField, TraceDetail, TraceDetailJson, TraceSummary,
    UnreadableSpan, DEFAULT_PROJECT, MAX_PAGE_SIZE,
};
use spanlens_core::{Event, NanoUsd, Span, SpanId, Timestamp, TraceId};
use std::collections::HashMap;

/// The project a batch is stored under (and a read looks in): trimmed, `default` when empty.
pub fn project_name(project: &str) -> String {
    let p = project.trim();
    if p.is_empty() {
        DEFAULT_PROJECT.to_string()
    } else {
        p.to_string()
    }
}

/// The page size of a list query, refused outside `1..=MAX_PAGE_SIZE`.
pub fn check_limit(limit: u32) -> Result<usize, StoreError> {
    if limit == 0 || limit > MAX_PAGE_SIZE {
        return Err(StoreError::InvalidQuery(format!(
            "limit {limit} is outside 1..={MAX_PAGE_SIZE}"
        )));
    }
    Ok(limit as usize)
}

fn nonneg(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// A trace summary as a backend stores it: signed integers, `""` for no user or session.
#[derive(Debug, Clone, Default)]
pub struct StoredSummary {
    /// The trace id's 16 bytes.
    pub trace_id: Vec<u8>,
    pub name: String,
    /// `ok`, `error` or `unset`.
    pub status: String,
    pub numbers: SummaryNumbers,
    pub user_id: String,
    pub session_id: String,
    pub tags: Vec<String>,
    /// The root span id's 8 bytes, when the root has arrived.
    pub root_span_id: Option<Vec<u8>>,
    pub service: Option<String>,
}

impl StoredSummary {
    /// The API's summary of a trace of `project`; a malformed id is reported as `table`'s.
    pub fn into_summary(
        self,
        project: &str,
        table: &'static str,
    ) -> Result<TraceSummary, StoreError> {
        let corrupt = |reason: String| StoreError::Corrupt { table, reason };
        let trace_id = TraceId::from_bytes(&self.trace_id)
            .map_err(|e| corrupt(format!("bad trace id: {e}")))?;
        let root_span_id = match self.root_span_id {
            Some(b) => Some(
                SpanId::from_bytes(&b).map_err(|e| corrupt(format!("bad root span id: {e}")))?,
            ),
            None => None,
        };
        let n = self.numbers;
        Ok(TraceSummary {
            trace_id,
            project: project.to_string(),
            name: self.name,
            start_time: Timestamp(nonneg(n.start_ns)),
            end_time: Timestamp(nonneg(n.end_ns)),
            duration_ns: nonneg(n.duration_ns),
            status: parse_status(&self.status),
            span_count: nonneg(n.span_count),
            error_count: nonneg(n.error_count),
            input_tokens: nonneg(n.input_tokens),
            output_tokens: nonneg(n.output_tokens),
            total_tokens: nonneg(n.total_tokens),
            total_cost: NanoUsd(n.cost_nano),
            user_id: Some(self.user_id).filter(|u| !u.is_empty()),
            session_id: Some(self.session_id).filter(|s| !s.is_empty()),
            tags: self.tags,
            root_span_id,
            service: self.service,
            unpriced_span_count: nonneg(n.unpriced_count),
        })
    }
}

/// The stored column a trace-list sort reads (the same names on every backend).
pub fn sort_column(field: SortField) -> &'static str {
    match field {
        SortField::StartTime => "start_ns",
        SortField::Duration => "duration_ns",
        SortField::Cost => "cost_nano",
        SortField::Tokens => "total_tokens",
        SortField::SpanCount => "span_count",
        SortField::Name => "name",
        SortField::Status => "status",
        SortField::User => "user_id",
    }
}

/// True when the sort column holds integers (its cursor key is `SortKey::Int`).
pub fn sort_is_numeric(field: SortField) -> bool {
    matches!(
        field,
        SortField::StartTime
            | SortField::Duration
            | SortField::Cost
            | SortField::Tokens
            | SortField::SpanCount
    )
}

/// The sort key of a row, exactly as stored, for the next page's cursor.
fn sort_key(field: SortField, s: &TraceSummary) -> SortKey {
    match field {
        SortField::StartTime => SortKey::Int(to_i64(s.start_time.0)),
        SortField::Duration => SortKey::Int(to_i64(s.duration_ns)),
        SortField::Cost => SortKey::Int(s.total_cost.0),
        SortField::Tokens => SortKey::Int(to_i64(s.total_tokens)),
        SortField::SpanCount => SortKey::Int(to_i64(s.span_count)),
        SortField::Name => SortKey::Text(s.name.clone()),
        SortField::Status => SortKey::Text(status_str(s.status).to_string()),
        SortField::User => SortKey::Text(s.user_id.clone().unwrap_or_default()),
    }
}

/// The cursor of a page of `q` that ends with `last`.
pub fn cursor_after(q: &ListQuery, last: &TraceSummary) -> String {
    TraceCursor {
        sort: q.sort,
        order: q.order,
        key: sort_key(q.sort, last),
        trace_id: last.trace_id,
    }
    .encode()
}

/// A page of the trace list from up to `limit + 1` rows read in its order: the extra row only
/// says that another page follows, whose cursor starts after the page's last row.
pub fn trace_page(mut items: Vec<TraceSummary>, limit: usize, q: &ListQuery) -> Page<TraceSummary> {
    let next_cursor = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|last| cursor_after(q, last))
    } else {
        None
    };
    Page { items, next_cursor }
}

/// A page of sessions from up to `limit + 1` of them in list order (see [`trace_page`]).
pub fn session_page(mut items: Vec<SessionSummary>, limit: usize) -> Page<SessionSummary> {
    let next_cursor = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|s| {
            SessionCursor {
                last_ns: to_i64(s.last_time.0),
                session_id: s.session_id.clone(),
            }
            .encode()
        })
    } else {
        None
    };
    Page { items, next_cursor }
}

/// Sessions in list order: most recent activity first, then session id, descending.
pub fn sort_sessions(sessions: &mut [SessionSummary]) {
    sessions.sort_by(|a, b| {
        b.last_time
            .cmp(&a.last_time)
            .then_with(|| b.session_id.cmp(&a.session_id))
    });
}

/// A stored body with `"duplicate_of"` set, spliced in as the first member. Stored bodies never
/// carry the field (the store clears it before writing), so the member is not repeated.
pub fn with_duplicate_of(text: String, of: &[u8; 8]) -> String {
    let Some(rest) = text.strip_prefix('{') else {
        return text;
    };
    let sep = if rest.trim_start().starts_with('}') {
        ""
    } else {
        ","
    };
    format!("{{\"duplicate_of\":\"{}\"{sep}{rest}", SpanId(*of).to_hex())
}

/// A stored span's JSON with the GenAI events that arrived for it as log records merged in
/// (`spanlens_core::conventions::merge_log_events`). A body that does not decode is left as it
/// is, for the caller to report.
pub fn with_log_events(text: String, events: Vec<Event>) -> String {
    let Ok(mut span) = serde_json::from_str::<Span>(&text) else {
        return text;
    };
    spanlens_core::conventions::merge_log_events(&mut span, events);
    serde_json::to_string(&span).unwrap_or(text)
}

/// A span whose row exists but whose body was not found (`damaged`: why a stored body of its
/// trace could not be read, the likely cause).
pub fn no_body(trace_id: TraceId, id: [u8; 8], damaged: Option<&str>) -> UnreadableSpan {
    UnreadableSpan {
        span_id: Some(SpanId(id).to_hex()),
        trace_id: trace_id.to_hex(),
        reason: match damaged {
            Some(why) => format!("its body is in a damaged chunk ({why})"),
            None => "its body is missing".into(),
        },
    }
}

/// A span whose stored body does not decode.
pub fn undecodable(trace_id: TraceId, id: [u8; 8], e: &serde_json::Error) -> UnreadableSpan {
    UnreadableSpan {
        span_id: Some(SpanId(id).to_hex()),
        trace_id: trace_id.to_hex(),
        reason: format!("its stored body does not decode: {e}"),
    }
}

/// Files one stored log event of a trace under its span (`out`), or reports it when its span
/// id or its JSON cannot be read.
pub fn file_log_event(
    out: &mut HashMap<[u8; 8], Vec<Event>>,
    unreadable: &mut Vec<UnreadableSpan>,
    trace_id: TraceId,
    span_id: &[u8],
    text: &str,
) {
    let Ok(id) = <[u8; 8]>::try_from(span_id) else {
        unreadable.push(UnreadableSpan {
            span_id: None,
            trace_id: trace_id.to_hex(),
            reason: format!(
                "a stored log event names a span id of {} bytes",
                span_id.len()
            ),
        });
        return;
    };
    match serde_json::from_str::<Event>(text) {
        Ok(ev) => out.entry(id).or_default().push(ev),
        Err(x) => unreadable.push(UnreadableSpan {
            span_id: Some(SpanId(id).to_hex()),
            trace_id: trace_id.to_hex(),
            reason: format!("a stored log event of this span does not decode: {x}"),
        }),
    }
}

/// A trace's stored span bodies: the span order (from the rows), each span's JSON, and why a
/// stored body could not be read when one could not (its spans are then reported).
#[derive(Debug, Default)]
pub struct Bodies {
    pub order: Vec<[u8; 8]>,
    pub text: HashMap<[u8; 8], String>,
    pub damaged: Option<String>,
}

/// A trace as read from storage, before its spans are decoded: the summary, each span's stored
/// JSON in start order (log events merged in), the spans that could not be read, and which
/// span each duplicate of a provider call was counted as.
pub struct StoredTrace {
    pub summary: TraceSummary,
    pub spans: Vec<([u8; 8], String)>,
    pub unreadable: Vec<UnreadableSpan>,
    pub duplicates: HashMap<[u8; 8], [u8; 8]>,
}

impl StoredTrace {
    /// Puts the bodies in the trace's span order, merging the log events stored for each
    /// span; a span without a body is reported.
    pub fn assemble(
        summary: TraceSummary,
        bodies: Bodies,
        mut events: HashMap<[u8; 8], Vec<Event>>,
        mut unreadable: Vec<UnreadableSpan>,
        duplicates: HashMap<[u8; 8], [u8; 8]>,
    ) -> StoredTrace {
        let Bodies {
            order,
            mut text,
            damaged,
        } = bodies;
        let mut spans = Vec::with_capacity(order.len());
        for id in order {
            match text.remove(&id) {
                Some(body) => {
                    let body = match events.remove(&id) {
                        Some(evs) => with_log_events(body, evs),
                        None => body,
                    };
                    spans.push((id, body))
                }
                None => unreadable.push(no_body(summary.trace_id, id, damaged.as_deref())),
            }
        }
        StoredTrace {
            summary,
            spans,
            unreadable,
            duplicates,
        }
    }

    /// The trace with its spans decoded (large traces on several threads), each duplicate
    /// marked; a body that does not decode is reported instead.
    pub fn decode(self) -> Result<TraceDetail, StoreError> {
        let StoredTrace {
            summary,
            spans: bodies,
            mut unreadable,
            duplicates,
        } = self;
        let trace_id = summary.trace_id;
        /// Each body decoded, or why it could not be.
        type Decoded = Vec<Result<Span, UnreadableSpan>>;
        let decode = |chunk: &[([u8; 8], String)]| -> Decoded {
            chunk
                .iter()
                .map(|(id, text)| {
                    serde_json::from_str::<Span>(text).map_err(|e| undecodable(trace_id, *id, &e))
                })
                .collect()
        };
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(bodies.len() / PARALLEL_DECODE_MIN)
            .max(1);
        let decoded = if threads == 1 {
            decode(&bodies)
        } else {
            let per = bodies.len().div_ceil(threads);
            let parts: Vec<Result<Decoded, StoreError>> = std::thread::scope(|scope| {
                let handles: Vec<_> = bodies
                    .chunks(per)
                    .map(|chunk| scope.spawn(move || decode(chunk)))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join().map_err(|_| {
                            StoreError::database("reading spans", "decode thread panicked")
                        })
                    })
                    .collect()
            });
            let mut all = Vec::with_capacity(bodies.len());
            for p in parts {
                all.extend(p?);
            }
            all
        };
        let mut spans = Vec::with_capacity(decoded.len());
        for d in decoded {
            match d {
                Ok(mut s) => {
                    s.duplicate_of = duplicates.get(&s.span_id.0).copied().map(SpanId);
                    spans.push(s)
                }
                Err(u) => unreadable.push(u),
            }
        }
        Ok(TraceDetail {
            summary,
            spans,
            unreadable,
        })
    }

    /// The trace with its spans as stored JSON, each checked to be well-formed (a server
    /// splices them into its answer as they are) and each duplicate marked.
    pub fn into_json(self) -> TraceDetailJson {
        let trace_id = self.summary.trace_id;
        let mut unreadable = self.unreadable;
        let mut spans = Vec::with_capacity(self.spans.len());
        for (id, text) in self.spans {
            // Syntax only, without building anything: ~2 GB/s, a few ms for a 10,000-span trace.
            match serde_json::from_str::<serde::de::IgnoredAny>(&text) {
                Ok(_) => spans.push(match self.duplicates.get(&id) {
                    Some(of) => with_duplicate_of(text, of),
                    None => text,
                }),
                Err(e) => unreadable.push(undecodable(trace_id, id, &e)),
            }
        }
        TraceDetailJson {
            summary: self.summary,
            spans,
            unreadable,
        }
    }
}

/// Spans per decoding thread below which a trace is decoded on the calling thread.
const PARALLEL_DECODE_MIN: usize = 2_000;
