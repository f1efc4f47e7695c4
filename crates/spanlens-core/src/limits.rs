//! Limits every canonical span is held to before it is stored.
//!
//! Every string in a span comes from whoever can reach the ingest port, so each one is capped:
//! a 60 MiB span name used to be stored about five times over (trace name, trace state, span
//! row) and took the server to 1.25 GB of memory. Oversized text is cut on a character boundary
//! and the cut is recorded in [`Span::truncated`], so a reader always knows what was shortened.
//!
//! Values the store could not hold at all are refused instead: a time at or after 2^63 ns (year
//! 2262) does not fit the signed 64-bit columns every backend sorts on, and once stored it made
//! the whole trace unreadable. Such a span is rejected with a message naming the field, and the
//! rest of its request is kept (OTLP partial success). Derived values that are out of range (a
//! time-to-first-token or a token count no real call can have) are dropped and recorded instead,
//! since the raw attribute they came from is kept verbatim.

use crate::span::{Attributes, Span, Truncation};
use crate::time::Timestamp;
use serde_json::Value;
use std::fmt::{Display, Write as _};

/// The latest time a span may carry: `i64::MAX` nanoseconds, 2262-04-11T23:47:16.854775807Z.
/// Every backend stores times as signed 64-bit nanoseconds.
pub const MAX_TIME_NS: u64 = i64::MAX as u64;
/// Span, event and trace names (a trace is named after its root span).
pub const MAX_NAME_BYTES: usize = 2 * 1024;
/// Project names (from the `x-project-name` header or a resource attribute). Longer names are
/// refused, not cut: a cut name would file the spans under another project.
pub const MAX_PROJECT_BYTES: usize = 128;
/// User, session, service, agent, provider, model, tool and error-type names, tags and finish
/// reasons: values that are indexed, grouped on and sent back in query strings.
pub const MAX_ID_BYTES: usize = 256;
/// Attribute keys (raw attributes, resource, metadata, parameters, event and link attributes).
pub const MAX_ATTRIBUTE_KEY_BYTES: usize = 256;
/// One string value inside attributes: the same as a payload's cap.
pub const MAX_ATTRIBUTE_VALUE_BYTES: usize = crate::span::MAX_PAYLOAD_BYTES;
/// Entries of one attribute map; OpenTelemetry SDKs keep 128 by default, so this is generous.
pub const MAX_ATTRIBUTES: usize = 1024;
/// Elements of one array value inside attributes.
pub const MAX_ARRAY_ITEMS: usize = 1024;
/// All attribute text of one span together (raw attributes, metadata, parameters, prompt
/// variables, event and link attributes). Past it, each further string keeps
/// [`SMALL_VALUE_BYTES`]: a span can still say what it carried, but not 256 MiB of it.
pub const MAX_SPAN_ATTRIBUTE_BYTES: usize = 2 * 1024 * 1024;
/// What a string keeps once its span's attribute budget is spent.
pub const SMALL_VALUE_BYTES: usize = 1024;
/// Free text: status message, error stack, tool description, message contents, tool-call
/// arguments, prompt template text.
pub const MAX_TEXT_BYTES: usize = crate::span::MAX_PAYLOAD_BYTES;
/// Chat messages kept per direction (input, output).
pub const MAX_MESSAGES: usize = 1024;
/// Events per span (OpenTelemetry SDKs keep 128 by default).
pub const MAX_EVENTS: usize = 1024;
/// Links per span (OpenTelemetry SDKs keep 128 by default).
pub const MAX_LINKS: usize = 128;
/// Tags per span.
pub const MAX_TAGS: usize = 64;
/// Truncation notes kept per span; more are summed up in one last note.
pub const MAX_TRUNCATION_NOTES: usize = 32;
/// The largest token count one call may report (4.3 billion; real calls are millions at most).
/// Keeps every sum over a project far inside 64 bits.
pub const MAX_TOKENS: u64 = u32::MAX as u64;
/// The largest cost one span may report, in nano-USD ($10 million: a call priced from
/// [`MAX_TOKENS`] tokens at the dearest catalog price stays below it).
pub const MAX_COST_NANO_USD: u64 = 10_000_000 * 1_000_000_000;

/// Why a span was refused: the canonical field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitError {
    /// The canonical field, e.g. `end_time` or `events[3].time`.
    pub field: String,
    /// What is wrong, naming the value.
    pub reason: String,
}

/// Checks a time a span is placed by.
pub fn check_time(field: &(impl Display + ?Sized), ns: u64) -> Result<(), LimitError> {
    if ns > MAX_TIME_NS {
        return Err(LimitError {
            field: field.to_string(),
            reason: format!(
                "{ns} ns is after {}, the latest time a span can hold",
                Timestamp(MAX_TIME_NS)
            ),
        });
    }
    Ok(())
}

/// Checks a project name.
pub fn check_project(name: &str) -> Result<(), String> {
    if name.len() > MAX_PROJECT_BYTES {
        return Err(format!(
            "project name is {} bytes, longer than the {MAX_PROJECT_BYTES} allowed",
            name.len()
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(format!(
            "project name {:?} contains control characters",
            short(name)
        ));
    }
    Ok(())
}

/// Holds one span to every limit: refuses it when a time it is placed by cannot be stored,
/// otherwise cuts what is too large and records each cut in `span.truncated`. The shared
/// resource map is not touched here (see [`cap_resource`]): it is capped once per resource.
pub fn enforce(span: &mut Span) -> Result<(), LimitError> {
    check_time("start_time", span.start_time.0)?;
    if let Some(end) = span.end_time {
        check_time("end_time", end.0)?;
    }
    for (i, e) in span.events.iter().enumerate() {
        check_time(&format_args!("events[{i}].time"), e.time.0)?;
    }
    if let Some(p) = &span.project {
        check_project(p).map_err(|reason| LimitError {
            field: "project".into(),
            reason,
        })?;
    }
    let mut c = Cutter::default();
    c.cut(&mut span.name, "name", MAX_NAME_BYTES);
    c.cut_opt(&mut span.status_message, "status_message", MAX_TEXT_BYTES);
    c.cut_opt(&mut span.error_type, "error_type", MAX_ID_BYTES);
    c.cut_opt(&mut span.error_stack, "error_stack", MAX_TEXT_BYTES);
    c.cut_opt(&mut span.service, "service", MAX_ID_BYTES);
    c.cut_opt(&mut span.source, "source", MAX_ID_BYTES);
    c.id(&mut span.session_id, "session_id");
    c.id(&mut span.user_id, "user_id");
    c.cut_opt(&mut span.agent_name, "agent_name", MAX_ID_BYTES);
    c.cut_opt(&mut span.provider, "provider", MAX_ID_BYTES);
    c.cut_opt(&mut span.request_model, "request_model", MAX_ID_BYTES);
    c.cut_opt(&mut span.response_model, "response_model", MAX_ID_BYTES);
    c.id(&mut span.response_id, "response_id");
    c.cut_opt(&mut span.unpriced_reason, "unpriced_reason", MAX_TEXT_BYTES);
    c.list(&mut span.tags, "tags", MAX_TAGS, MAX_ID_BYTES);
    c.list(
        &mut span.finish_reasons,
        "finish_reasons",
        MAX_TAGS,
        MAX_ID_BYTES,
    );
    if span.ttft_ns.is_some_and(|t| t > MAX_TIME_NS) {
        let t = span.ttft_ns.take().unwrap_or_default();
        c.note("ttft_ms", format!("{t} ns is out of range, dropped"));
    }
    if let Some(u) = &span.usage {
        let counts = [
            ("input_tokens", u.input_tokens),
            ("output_tokens", u.output_tokens),
            ("cache_read_tokens", u.cache_read_tokens),
            ("cache_write_tokens", u.cache_write_tokens),
            ("reasoning_tokens", u.reasoning_tokens),
            ("total_tokens", u.total_tokens),
        ];
        let extra = u.extra.iter().map(|(k, v)| (k.as_str(), *v));
        let too_big = counts
            .into_iter()
            .chain(extra)
            .find(|(_, n)| *n > MAX_TOKENS);
        if let Some((name, n)) = too_big {
            c.note(
                "usage",
                format!("{name} {n} is above the {MAX_TOKENS} one call can report; usage dropped"),
            );
            span.usage = None;
        }
    }
    if let Some(cost) = &span.cost {
        let parts = |b: &crate::span::CostBreakdown| {
            [
                b.input,
                b.output,
                b.cache_read,
                b.cache_write,
                b.reasoning,
                b.total,
            ]
        };
        let mut all = parts(&cost.amounts).to_vec();
        if let Some(c) = &cost.computed {
            all.extend(parts(c));
        }
        if let Some(bad) = all.iter().find(|n| n.0.unsigned_abs() > MAX_COST_NANO_USD) {
            c.note(
                "cost",
                format!(
                    "{bad} is beyond the ±{} one span may cost; reported cost dropped",
                    crate::money::NanoUsd(MAX_COST_NANO_USD as i64)
                ),
            );
            span.cost = None;
        }
    }
    if let Some(rl) = &mut span.rate_limits {
        for (name, w) in [
            ("requests", &mut rl.requests),
            ("tokens", &mut rl.tokens),
            ("input_tokens", &mut rl.input_tokens),
            ("output_tokens", &mut rl.output_tokens),
        ] {
            if let Some(w) = w {
                if w.reset.is_some_and(|r| r.0 > MAX_TIME_NS) {
                    w.reset = None;
                    c.note(
                        &format_args!("rate_limits.{name}.reset"),
                        "out of range, dropped".into(),
                    );
                }
            }
        }
        if rl
            .retry_after_ms
            .is_some_and(|ms| ms > MAX_TIME_NS / 1_000_000)
        {
            rl.retry_after_ms = None;
            c.note("rate_limits.retry_after_ms", "out of range, dropped".into());
        }
    }
    for (field, msgs) in [
        ("input_messages", &mut span.input_messages),
        ("output_messages", &mut span.output_messages),
    ] {
        if msgs.len() > MAX_MESSAGES {
            c.note(
                field,
                format!("{} messages, kept {MAX_MESSAGES}", msgs.len()),
            );
            msgs.truncate(MAX_MESSAGES);
        }
        for (i, m) in msgs.iter_mut().enumerate() {
            // Paths are formatted only for a note (`Indexed`): most spans have none.
            let at = |what: &'static str| Indexed(field, i, what);
            c.cut_opt(&mut m.role, &at(".role"), MAX_ID_BYTES);
            c.cut_opt(&mut m.name, &at(".name"), MAX_ID_BYTES);
            c.cut_opt(&mut m.tool_call_id, &at(".tool_call_id"), MAX_ID_BYTES);
            c.cut_opt(&mut m.finish_reason, &at(".finish_reason"), MAX_ID_BYTES);
            c.budgeted_opt(&mut m.content, &at(".content"));
            if m.tool_calls.len() > MAX_MESSAGES {
                c.note(
                    &at(".tool_calls"),
                    format!("{} calls, kept {MAX_MESSAGES}", m.tool_calls.len()),
                );
                m.tool_calls.truncate(MAX_MESSAGES);
            }
            for (j, t) in m.tool_calls.iter_mut().enumerate() {
                let call = |what: &'static str| Indexed(at(".tool_calls"), j, what);
                c.cut_opt(&mut t.id, &call(".id"), MAX_ID_BYTES);
                c.cut_opt(&mut t.name, &call(".name"), MAX_ID_BYTES);
                c.budgeted_opt(&mut t.arguments, &call(".arguments"));
            }
        }
    }
    if let Some(t) = &mut span.tool {
        c.cut_opt(&mut t.name, "tool.name", MAX_ID_BYTES);
        c.cut_opt(&mut t.call_id, "tool.call_id", MAX_ID_BYTES);
        c.cut_opt(&mut t.description, "tool.description", MAX_TEXT_BYTES);
    }
    if let Some(p) = &mut span.prompt {
        c.cut_opt(&mut p.name, "prompt.name", MAX_ID_BYTES);
        c.cut_opt(&mut p.version, "prompt.version", MAX_ID_BYTES);
        c.budgeted_opt(&mut p.template, "prompt.template");
        c.attributes(&mut p.variables, "prompt.variables");
    }
    c.attributes(&mut span.attributes, "attributes");
    c.attributes(&mut span.metadata, "metadata");
    c.attributes(&mut span.model_parameters, "model_parameters");
    if span.events.len() > MAX_EVENTS {
        c.note(
            "events",
            format!("{} events, kept the first {MAX_EVENTS}", span.events.len()),
        );
        span.events.truncate(MAX_EVENTS);
    }
    for (i, e) in span.events.iter_mut().enumerate() {
        c.cut(&mut e.name, &Indexed("events", i, ".name"), MAX_NAME_BYTES);
        c.attributes(&mut e.attributes, &Indexed("events", i, ".attributes"));
    }
    if span.links.len() > MAX_LINKS {
        c.note(
            "links",
            format!("{} links, kept the first {MAX_LINKS}", span.links.len()),
        );
        span.links.truncate(MAX_LINKS);
    }
    for (i, l) in span.links.iter_mut().enumerate() {
        c.attributes(&mut l.attributes, &Indexed("links", i, ".attributes"));
    }
    c.finish(&mut span.truncated);
    Ok(())
}

/// Caps a resource's attributes once, before the map is shared by the resource's spans. The
/// notes go on every span of the resource through `notes`.
pub fn cap_resource(resource: &mut Attributes) -> Vec<Truncation> {
    let mut c = Cutter::default();
    c.attributes(resource, "resource");
    let mut notes = Vec::new();
    c.finish(&mut notes);
    notes
}

/// Holds one event that arrives apart from its span (an OTLP log record) to the limits of a
/// span's events: name cut to [`MAX_NAME_BYTES`], attributes (a log body is kept among them)
/// to the attribute limits with a budget of their own. Returns the cuts made.
pub fn cap_event(event: &mut crate::span::Event) -> Vec<Truncation> {
    let mut c = Cutter::default();
    c.cut(&mut event.name, "name", MAX_NAME_BYTES);
    c.attributes(&mut event.attributes, "attributes");
    let mut notes = Vec::new();
    c.finish(&mut notes);
    notes
}

/// The path `{0}[{1}]{2}` (`input_messages[3].content`), formatted only if a note needs it:
/// building every message's and event's path up front was a few percent of ingest's CPU.
#[derive(Clone, Copy)]
struct Indexed<P>(P, usize, &'static str);

impl<P: Display> Display for Indexed<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}[{}]{}", self.0, self.1, self.2)
    }
}

/// Applies the cuts of one span and keeps their notes, spending one attribute budget.
#[derive(Default)]
struct Cutter {
    notes: Vec<Truncation>,
    spent: usize,
    more: usize,
}

impl Cutter {
    fn note(&mut self, field: &(impl Display + ?Sized), reason: String) {
        if self.notes.len() < MAX_TRUNCATION_NOTES {
            self.notes.push(Truncation {
                field: field.to_string(),
                reason,
            });
        } else {
            self.more += 1;
        }
    }

    fn finish(self, into: &mut Vec<Truncation>) {
        into.extend(self.notes);
        if self.more > 0 {
            into.push(Truncation {
                field: "…".into(),
                reason: format!("{} more fields were cut", self.more),
            });
        }
    }

    /// Cuts `s` to `max` bytes on a character boundary, noting the original size.
    fn cut(&mut self, s: &mut String, field: &(impl Display + ?Sized), max: usize) {
        if s.len() > max {
            let was = size(s);
            s.truncate(floor_char_boundary(s, max));
            self.note(field, format!("{was}, kept {}", s.len()));
        }
    }

    fn cut_opt(&mut self, s: &mut Option<String>, field: &(impl Display + ?Sized), max: usize) {
        if let Some(s) = s {
            self.cut(s, field, max);
        }
    }

    /// An identifier (user, session, response) that is grouped on: cut long ones to a prefix plus a
    /// hash of the whole, so two long ids that share a prefix stay two ids.
    fn id(&mut self, s: &mut Option<String>, field: &(impl Display + ?Sized)) {
        let Some(v) = s else { return };
        if v.len() <= MAX_ID_BYTES {
            return;
        }
        let was = v.len();
        let hash = fnv1a(v.as_bytes());
        v.truncate(floor_char_boundary(v, MAX_ID_BYTES - 20));
        let _ = write!(v, "…{hash:016x}");
        self.note(
            field,
            format!("{was} bytes, kept a prefix and a hash of the whole"),
        );
    }

    fn list(
        &mut self,
        items: &mut Vec<String>,
        field: &(impl Display + ?Sized),
        max_items: usize,
        max_bytes: usize,
    ) {
        if items.len() > max_items {
            self.note(
                field,
                format!("{} items, kept the first {max_items}", items.len()),
            );
            items.truncate(max_items);
        }
        for (i, s) in items.iter_mut().enumerate() {
            self.cut(s, &Indexed(field, i, ""), max_bytes);
        }
    }

    /// Free text that counts against the span's attribute budget.
    fn budgeted_opt(&mut self, s: &mut Option<String>, field: &(impl Display + ?Sized)) {
        if let Some(s) = s {
            let max = self.allowance(MAX_TEXT_BYTES);
            self.cut(s, field, max);
            self.spent = self.spent.saturating_add(s.len());
        }
    }

    /// The most a string may keep now: `max`, or less once the span's budget is spent.
    fn allowance(&self, max: usize) -> usize {
        let left = MAX_SPAN_ATTRIBUTE_BYTES.saturating_sub(self.spent);
        max.min(left.max(SMALL_VALUE_BYTES))
    }

    fn attributes(&mut self, attrs: &mut Attributes, field: &(impl Display + ?Sized)) {
        if attrs.len() > MAX_ATTRIBUTES {
            let was = attrs.len();
            // Keep the first keys in key order: the map has no arrival order to go by.
            while attrs.len() > MAX_ATTRIBUTES {
                attrs.pop_last();
            }
            self.note(field, format!("{was} entries, kept {MAX_ATTRIBUTES}"));
        }
        let long_keys: Vec<String> = attrs
            .keys()
            .filter(|k| k.len() > MAX_ATTRIBUTE_KEY_BYTES)
            .cloned()
            .collect();
        for key in long_keys {
            if let Some(v) = attrs.remove(&key) {
                let mut short_key = key.clone();
                short_key.truncate(floor_char_boundary(&key, MAX_ATTRIBUTE_KEY_BYTES - 3));
                short_key.push('…');
                self.note(
                    &format_args!("{field}[{:?}]", short(&key)),
                    format!("key of {} bytes, kept {}", key.len(), short_key.len()),
                );
                attrs.entry(short_key).or_insert(v);
            }
        }
        for (k, v) in attrs.iter_mut() {
            self.value(v, field, k);
        }
    }

    fn value(&mut self, v: &mut Value, field: &(impl Display + ?Sized), key: &str) {
        match v {
            Value::String(s) => {
                let max = self.allowance(MAX_ATTRIBUTE_VALUE_BYTES);
                if s.len() > max {
                    let was = size(s);
                    s.truncate(floor_char_boundary(s, max));
                    self.note(
                        &format_args!("{field}[{:?}]", short(key)),
                        format!("{was}, kept {}", s.len()),
                    );
                }
                self.spent = self.spent.saturating_add(s.len());
            }
            Value::Array(items) => {
                if items.len() > MAX_ARRAY_ITEMS {
                    self.note(
                        &format_args!("{field}[{:?}]", short(key)),
                        format!("{} items, kept {MAX_ARRAY_ITEMS}", items.len()),
                    );
                    items.truncate(MAX_ARRAY_ITEMS);
                }
                for item in items {
                    self.value(item, field, key);
                }
            }
            Value::Object(map) => {
                if map.len() > MAX_ATTRIBUTES {
                    self.note(
                        &format_args!("{field}[{:?}]", short(key)),
                        format!("{} entries, kept {MAX_ATTRIBUTES}", map.len()),
                    );
                    let keep: Vec<String> = map.keys().take(MAX_ATTRIBUTES).cloned().collect();
                    map.retain(|k, _| keep.contains(k));
                }
                for (k, item) in map.iter_mut() {
                    self.spent = self.spent.saturating_add(k.len());
                    self.value(item, field, key);
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
}

/// A string's original size for a note: exact, or a lower bound when it was already cut
/// while the request was read.
fn size(s: &str) -> String {
    if crate::otlp::read_cap::was_cut_while_reading(s) {
        format!(
            "more than {} bytes (cut while reading)",
            crate::otlp::read_cap::READ_CAP_BYTES
        )
    } else {
        format!("{} bytes", s.len())
    }
}

/// The largest index `<= max` that is a character boundary of `s`.
pub(crate) fn floor_char_boundary(s: &str, max: usize) -> usize {
    if max >= s.len() {
        return s.len();
    }
    let mut i = max;
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The first 64 characters of a value, for naming it in a message.
fn short(s: &str) -> String {
    let mut out: String = s.chars().take(64).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

/// A stable 64-bit hash (FNV-1a) for shortened identifiers and stored-event digests: the same
/// bytes hash the same in every build, unlike `std`'s hasher.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::span::{Event, Message, Usage};

    fn span() -> Span {
        Span {
            name: "ok".into(),
            start_time: Timestamp(1_700_000_000_000_000_000),
            ..Default::default()
        }
    }

    #[test]
    fn times_past_2262_are_refused_naming_the_field() {
        let mut s = span();
        s.end_time = Some(Timestamp(1 << 63));
        let e = enforce(&mut s).unwrap_err();
        assert_eq!(e.field, "end_time");
        assert!(e.reason.contains("2262-04-11"), "{}", e.reason);
        let mut s = span();
        s.start_time = Timestamp(u64::MAX);
        assert_eq!(enforce(&mut s).unwrap_err().field, "start_time");
        let mut s = span();
        s.events.push(Event {
            name: "x".into(),
            time: Timestamp(u64::MAX),
            ..Default::default()
        });
        assert_eq!(enforce(&mut s).unwrap_err().field, "events[0].time");
        let mut s = span();
        s.end_time = Some(Timestamp(MAX_TIME_NS));
        enforce(&mut s).unwrap();
        assert!(s.truncated.is_empty());
    }

    /// Notes name the place of what was cut inside messages, tool calls, lists and events
    /// (those paths are only formatted when a cut is noted).
    #[test]
    fn cuts_inside_messages_lists_and_events_name_their_place() {
        use crate::span::ToolCallRef;
        let long = |n: usize| "x".repeat(n);
        let mut s = span();
        s.tags = vec!["a".into(), long(MAX_ID_BYTES + 1)];
        s.input_messages = vec![
            Message::default(),
            Message {
                role: Some(long(MAX_ID_BYTES + 1)),
                ..Default::default()
            },
        ];
        s.output_messages = vec![Message {
            tool_calls: vec![
                ToolCallRef::default(),
                ToolCallRef {
                    name: Some(long(MAX_ID_BYTES + 1)),
                    ..Default::default()
                },
            ],
            ..Default::default()
        }];
        s.events = vec![
            Event::default(),
            Event {
                name: long(MAX_NAME_BYTES + 1),
                ..Default::default()
            },
        ];
        enforce(&mut s).unwrap();
        let fields: Vec<&str> = s.truncated.iter().map(|t| t.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "tags[1]",
                "input_messages[1].role",
                "output_messages[0].tool_calls[1].name",
                "events[1].name"
            ]
        );
    }

    #[test]
    fn long_names_and_ids_are_cut_and_noted() {
        let mut s = span();
        s.name = "é".repeat(10_000);
        s.user_id = Some("u".repeat(1000));
        s.session_id = Some("s".repeat(300));
        s.response_id = Some("r".repeat(500));
        s.tags = (0..100).map(|i| format!("t{i}")).collect();
        enforce(&mut s).unwrap();
        assert!(s.name.len() <= MAX_NAME_BYTES);
        assert!(s.user_id.as_ref().unwrap().len() <= MAX_ID_BYTES);
        assert_eq!(s.tags.len(), MAX_TAGS);
        let fields: Vec<&str> = s.truncated.iter().map(|t| t.field.as_str()).collect();
        assert_eq!(
            fields,
            ["name", "session_id", "user_id", "response_id", "tags"]
        );
        assert!(s.response_id.as_ref().unwrap().len() <= MAX_ID_BYTES);
        assert_eq!(s.truncated[0].reason, "20000 bytes, kept 2048");
        // Two long ids with one prefix stay apart.
        let mut a = span();
        a.user_id = Some(format!("{}a", "x".repeat(400)));
        let mut b = span();
        b.user_id = Some(format!("{}b", "x".repeat(400)));
        enforce(&mut a).unwrap();
        enforce(&mut b).unwrap();
        assert_ne!(a.user_id, b.user_id);
    }

    #[test]
    fn long_project_names_are_refused() {
        let mut s = span();
        s.project = Some("p".repeat(MAX_PROJECT_BYTES + 1));
        assert_eq!(enforce(&mut s).unwrap_err().field, "project");
        assert!(check_project("team-a").is_ok());
        assert!(check_project("a\nb").is_err());
    }

    #[test]
    fn attributes_are_capped_by_key_value_count_and_budget() {
        let mut s = span();
        s.attributes
            .insert("k".repeat(1000), Value::String("v".into()));
        s.attributes.insert(
            "big".into(),
            Value::String("x".repeat(MAX_ATTRIBUTE_VALUE_BYTES + 10)),
        );
        for i in 0..20 {
            s.attributes.insert(
                format!("n{i:02}"),
                Value::String("y".repeat(MAX_ATTRIBUTE_VALUE_BYTES)),
            );
        }
        s.attributes.insert(
            "list".into(),
            Value::Array(vec![Value::Bool(true); MAX_ARRAY_ITEMS * 2]),
        );
        enforce(&mut s).unwrap();
        let total: usize = s
            .attributes
            .values()
            .filter_map(Value::as_str)
            .map(str::len)
            .sum();
        assert!(
            total <= MAX_SPAN_ATTRIBUTE_BYTES + 20 * SMALL_VALUE_BYTES,
            "{total}"
        );
        assert!(s
            .attributes
            .keys()
            .all(|k| k.len() <= MAX_ATTRIBUTE_KEY_BYTES));
        assert_eq!(
            s.attributes["list"].as_array().unwrap().len(),
            MAX_ARRAY_ITEMS
        );
        assert!(!s.truncated.is_empty());
        assert!(s.truncated.len() <= MAX_TRUNCATION_NOTES + 1);
        // Many keys: the count is capped.
        let mut s = span();
        for i in 0..(MAX_ATTRIBUTES + 5) {
            s.metadata.insert(format!("m{i:05}"), Value::Bool(true));
        }
        enforce(&mut s).unwrap();
        assert_eq!(s.metadata.len(), MAX_ATTRIBUTES);
        assert_eq!(s.truncated[0].field, "metadata");
    }

    #[test]
    fn out_of_range_derived_numbers_are_dropped_and_noted() {
        let mut s = span();
        s.ttft_ns = Some(u64::MAX);
        s.usage = Some(Usage {
            input_tokens: u64::MAX,
            ..Default::default()
        });
        enforce(&mut s).unwrap();
        assert_eq!(s.ttft_ns, None);
        assert_eq!(s.usage, None);
        assert_eq!(s.truncated.len(), 2);
        let mut s = span();
        s.usage = Some(Usage {
            input_tokens: MAX_TOKENS,
            ..Default::default()
        });
        enforce(&mut s).unwrap();
        assert!(s.usage.is_some());
    }

    #[test]
    fn events_links_and_messages_are_counted() {
        let mut s = span();
        s.events = vec![
            Event {
                name: "e".into(),
                time: s.start_time,
                ..Default::default()
            };
            MAX_EVENTS + 3
        ];
        s.input_messages = vec![
            Message {
                content: Some("c".repeat(10)),
                ..Default::default()
            };
            MAX_MESSAGES + 1
        ];
        enforce(&mut s).unwrap();
        assert_eq!(s.events.len(), MAX_EVENTS);
        assert_eq!(s.input_messages.len(), MAX_MESSAGES);
    }
}
