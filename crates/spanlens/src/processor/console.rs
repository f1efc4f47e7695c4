//! Prints each trace as a tree — durations, tokens, cost, errors — once all its spans have ended.

use super::{ProcessorError, SpanProcessor};
use crate::convert::to_canonical;
use crate::span::SpanData;
use crate::tracer::Resource;
use spanlens_core::{NanoUsd, SpanId, Status, TraceId};
use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;

#[derive(Default)]
struct TraceBuf {
    open: usize,
    spans: Vec<Box<SpanData>>,
}

struct State {
    traces: HashMap<TraceId, TraceBuf>,
    out: Box<dyn Write + Send>,
}

/// Buffers spans per trace and prints the tree when the trace's last open span ends.
pub struct ConsoleProcessor {
    state: Mutex<State>,
    resource: Resource,
}

impl ConsoleProcessor {
    /// Prints to standard error.
    pub fn stderr(resource: Resource) -> ConsoleProcessor {
        Self::to_writer(std::io::stderr(), resource)
    }

    /// Prints to any writer.
    pub fn to_writer(w: impl Write + Send + 'static, resource: Resource) -> ConsoleProcessor {
        ConsoleProcessor {
            state: Mutex::new(State {
                traces: HashMap::new(),
                out: Box::new(w),
            }),
            resource,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl SpanProcessor for ConsoleProcessor {
    fn on_start(&self, span: &SpanData) {
        self.lock().traces.entry(span.trace_id).or_default().open += 1;
    }

    fn on_end(&self, span: Box<SpanData>) {
        let mut st = self.lock();
        let trace = span.trace_id;
        let buf = st.traces.entry(trace).or_default();
        buf.open = buf.open.saturating_sub(1);
        buf.spans.push(span);
        if buf.open == 0 {
            if let Some(done) = st.traces.remove(&trace) {
                let text = render(&to_canonical(&done.spans, &self.resource));
                let _ = st.out.write_all(text.as_bytes());
                let _ = st.out.flush();
            }
        }
    }

    fn force_flush(&self) -> Result<(), ProcessorError> {
        let mut st = self.lock();
        let pending: Vec<TraceBuf> = st
            .traces
            .drain()
            .map(|(_, b)| b)
            .filter(|b| !b.spans.is_empty())
            .collect();
        for b in pending {
            let text = render(&to_canonical(&b.spans, &self.resource));
            let _ = st.out.write_all(text.as_bytes());
        }
        st.out
            .flush()
            .map_err(|e| ProcessorError::Failed(e.to_string()))
    }
}

fn fmt_duration(ns: u64) -> String {
    match ns {
        n if n >= 1_000_000_000 => format!("{:.2}s", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.1}ms", n as f64 / 1e6),
        n => format!("{:.0}µs", n as f64 / 1e3),
    }
}

/// The text of one trace: a header line, then one line per span in tree order.
pub(crate) fn render(spans: &[spanlens_core::Span]) -> String {
    let ids: HashMap<SpanId, usize> = spans
        .iter()
        .enumerate()
        .map(|(i, s)| (s.span_id, i))
        .collect();
    let mut children: HashMap<Option<SpanId>, Vec<usize>> = HashMap::new();
    for (i, s) in spans.iter().enumerate() {
        let parent = s.parent_span_id.filter(|p| ids.contains_key(p));
        children.entry(parent).or_default().push(i);
    }
    for v in children.values_mut() {
        v.sort_by_key(|i| spans[*i].start_time);
    }
    let start = spans.iter().map(|s| s.start_time.0).min().unwrap_or(0);
    let end = spans
        .iter()
        .filter_map(|s| s.end_time.map(|e| e.0))
        .max()
        .unwrap_or(start);
    let (tin, tout) = spans
        .iter()
        .filter_map(|s| s.usage.as_ref())
        .fold((0, 0), |(a, b), u| {
            (a + u.input_tokens, b + u.output_tokens)
        });
    let cost: NanoUsd = spans
        .iter()
        .filter_map(|s| s.cost.as_ref())
        .map(|c| c.amounts.total)
        .sum();
    let errors = spans.iter().filter(|s| s.status == Status::Error).count();
    let mut out = format!(
        "trace {} · {} spans · {} · {} in / {} out tokens · {}{}\n",
        spans
            .first()
            .map(|s| s.trace_id.to_hex())
            .unwrap_or_default(),
        spans.len(),
        fmt_duration(end.saturating_sub(start)),
        tin,
        tout,
        cost,
        if errors > 0 {
            format!(" · {errors} error(s)")
        } else {
            String::new()
        }
    );
    fn walk(
        spans: &[spanlens_core::Span],
        children: &HashMap<Option<SpanId>, Vec<usize>>,
        parent: Option<SpanId>,
        prefix: &str,
        out: &mut String,
    ) {
        let Some(kids) = children.get(&parent) else {
            return;
        };
        for (n, i) in kids.iter().enumerate() {
            let last = n + 1 == kids.len();
            let s = &spans[*i];
            let mut line = format!(
                "{prefix}{} {} [{}] {}",
                if last { "└─" } else { "├─" },
                s.name,
                s.kind.as_str(),
                s.duration_ns()
                    .map(fmt_duration)
                    .unwrap_or_else(|| "open".into())
            );
            if let Some(m) = s.response_model.as_ref().or(s.request_model.as_ref()) {
                line.push_str(&format!(" · {m}"));
            }
            if let Some(u) = &s.usage {
                line.push_str(&format!(" · {}→{} tok", u.input_tokens, u.output_tokens));
                if u.cache_read_tokens > 0 {
                    line.push_str(&format!(" ({} cached)", u.cache_read_tokens));
                }
            }
            if let Some(t) = s.ttft_ns {
                line.push_str(&format!(" · ttft {}", fmt_duration(t)));
            }
            if let Some(c) = &s.cost {
                line.push_str(&format!(" · {}", c.amounts.total));
            } else if s.unpriced_reason.is_some() {
                line.push_str(" · unpriced");
            }
            let retries = s.events.iter().filter(|e| e.name == "retry").count();
            if retries > 0 {
                line.push_str(&format!(
                    " · {retries} retr{}",
                    if retries == 1 { "y" } else { "ies" }
                ));
            }
            if s.status == Status::Error {
                line.push_str(&format!(
                    " · ERROR {}",
                    s.status_message.as_deref().unwrap_or("")
                ));
            }
            out.push_str(line.trim_end());
            out.push('\n');
            let next = format!("{prefix}{}", if last { "   " } else { "│  " });
            walk(spans, children, Some(s.span_id), &next, out);
        }
    }
    walk(spans, &children, None, "", &mut out);
    out
}
