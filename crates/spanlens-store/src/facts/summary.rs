//! The running state behind a trace's summary row. New spans fold into it directly; a replaced
//! span (an upsert) makes the writer rebuild it from every stored span instead, so the summary
//! is the same whatever order, grouping or duplication the spans arrived in.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Codes of the span-level values a trace is filtered by (its facets): kind, model, provider,
/// tag. SQLite stores them in `trace_facets.facet`.
pub mod facet {
    /// A span kind present in the trace.
    pub const KIND: i64 = 1;
    /// A request or response model used in the trace.
    pub const MODEL: i64 = 2;
    /// A provider called in the trace.
    pub const PROVIDER: i64 = 3;
    /// A tag of any span of the trace.
    pub const TAG: i64 = 4;
    /// The name of a prompt template a span of the trace used.
    pub const PROMPT: i64 = 5;
    /// A prompt template and version a span used, as [`super::prompt_version_key`] writes it.
    pub const PROMPT_VERSION: i64 = 6;
}

/// The facet value of a prompt template's version: the name's length, `:`, the name, then the
/// version, so no name or version (any text a span sends) can make two pairs share a value.
pub fn prompt_version_key(name: &str, version: &str) -> String {
    format!("{}:{name}{version}", name.len())
}

/// Most distinct span names kept for a trace's text search.
const MAX_SEARCH_NAMES: usize = 64;
/// Longest search text kept per trace, in bytes.
const MAX_SEARCH_BYTES: usize = 4096;

/// Position of a span in a trace for "earliest" choices: (start ns, span id as big-endian u64),
/// so the choice does not depend on arrival order.
type At = (i64, u64);

/// The earliest span that carries some value, and that value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Pick {
    #[serde(rename = "a", default, skip_serializing_if = "Option::is_none")]
    at: Option<At>,
    #[serde(rename = "v", default, skip_serializing_if = "Option::is_none")]
    value: Option<String>,
}

impl Pick {
    fn offer(&mut self, at: At, value: Option<&str>) {
        let Some(v) = value else { return };
        if self.at.is_none_or(|cur| at < cur) {
            self.at = Some(at);
            self.value = Some(v.to_string());
        }
    }
}

/// What the summary needs from the root span.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Root {
    #[serde(rename = "a")]
    at: At,
    #[serde(rename = "n")]
    name: String,
    #[serde(rename = "s")]
    status: String,
    #[serde(rename = "u", default, skip_serializing_if = "Option::is_none")]
    user: Option<String>,
    #[serde(rename = "e", default, skip_serializing_if = "Option::is_none")]
    session: Option<String>,
    #[serde(rename = "v", default, skip_serializing_if = "Option::is_none")]
    service: Option<String>,
}

/// The facts of one span that the trace summary and the trace facets are made of.
pub struct SpanFacts<'a> {
    pub span_id: [u8; 8],
    pub is_root: bool,
    pub name: &'a str,
    pub kind: &'a str,
    pub status: &'a str,
    pub start: i64,
    pub end: Option<i64>,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub total_tokens: i64,
    pub cost: Option<i64>,
    /// A model call the catalog could not price (its cost is unknown, not zero).
    pub unpriced: bool,
    pub user: Option<&'a str>,
    pub session: Option<&'a str>,
    pub service: Option<&'a str>,
    pub request_model: Option<&'a str>,
    pub response_model: Option<&'a str>,
    pub provider: Option<&'a str>,
    pub tags: &'a [String],
    /// The prompt template the span used, and its version.
    pub prompt_name: Option<&'a str>,
    pub prompt_version: Option<&'a str>,
}

/// A facet value a span contributed that the trace did not have yet.
pub type NewFacet = (i64, String);

/// Everything needed to keep a trace's summary (and facets) current, stored with the summary.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TraceState {
    #[serde(rename = "n")]
    pub span_count: u64,
    #[serde(rename = "e")]
    pub error_count: u64,
    #[serde(rename = "i")]
    pub input_tokens: u64,
    #[serde(rename = "o")]
    pub output_tokens: u64,
    #[serde(rename = "t")]
    pub total_tokens: u64,
    #[serde(rename = "c")]
    pub cost_nano: i64,
    /// Spans whose cost is unknown: the trace's cost is then a lower bound.
    #[serde(rename = "up", default)]
    pub unpriced_count: u64,
    #[serde(rename = "s")]
    pub start_ns: i64,
    #[serde(rename = "f")]
    pub end_ns: i64,
    #[serde(rename = "r", default, skip_serializing_if = "Option::is_none")]
    root: Option<Root>,
    #[serde(rename = "fn", default)]
    first_name: Pick,
    #[serde(rename = "u", default)]
    user: Pick,
    #[serde(rename = "se", default)]
    session: Pick,
    #[serde(rename = "sv", default)]
    service: Pick,
    #[serde(rename = "nm", default)]
    names: BTreeSet<String>,
    #[serde(rename = "tg", default)]
    pub tags: BTreeSet<String>,
    #[serde(rename = "k", default)]
    kinds: BTreeSet<String>,
    #[serde(rename = "m", default)]
    models: BTreeSet<String>,
    #[serde(rename = "p", default)]
    providers: BTreeSet<String>,
    /// Prompt template names used in the trace (absent in states written before prompts).
    #[serde(rename = "pn", default, skip_serializing_if = "BTreeSet::is_empty")]
    prompts: BTreeSet<String>,
    /// Prompt template versions used, as [`prompt_version_key`] values.
    #[serde(rename = "pv", default, skip_serializing_if = "BTreeSet::is_empty")]
    prompt_versions: BTreeSet<String>,
    /// Agent spans that failed: under a root that states no outcome, a failed agent run fails
    /// the trace (see [`Self::failed`]).
    #[serde(rename = "fa", default, skip_serializing_if = "is_zero")]
    pub failed_agents: u64,
}

/// The summary columns derived from a state.
pub struct SummaryRow {
    pub name: String,
    pub status: &'static str,
    pub user_id: String,
    pub session_id: String,
    pub service: Option<String>,
    pub root_span_id: Option<[u8; 8]>,
    pub search: String,
    pub tags_json: String,
}

/// The numbers of a trace's summary row, as stored (signed, clamped), in the order backends
/// select them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SummaryNumbers {
    pub start_ns: i64,
    pub end_ns: i64,
    pub duration_ns: i64,
    pub span_count: i64,
    pub error_count: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub total_tokens: i64,
    pub cost_nano: i64,
    pub unpriced_count: i64,
}

impl SummaryNumbers {
    /// The numbers read in the order of the fields.
    pub fn from_order(v: [i64; 10]) -> SummaryNumbers {
        let [start_ns, end_ns, duration_ns, span_count, error_count, input_tokens, output_tokens, total_tokens, cost_nano, unpriced_count] =
            v;
        SummaryNumbers {
            start_ns,
            end_ns,
            duration_ns,
            span_count,
            error_count,
            input_tokens,
            output_tokens,
            total_tokens,
            cost_nano,
            unpriced_count,
        }
    }

    /// The numbers in the order of the fields (the PostgreSQL writer binds them as arrays).
    #[cfg(feature = "postgres")]
    pub fn in_order(&self) -> [i64; 10] {
        [
            self.start_ns,
            self.end_ns,
            self.duration_ns,
            self.span_count,
            self.error_count,
            self.input_tokens,
            self.output_tokens,
            self.total_tokens,
            self.cost_nano,
            self.unpriced_count,
        ]
    }
}

/// For serde: a zero count is left out of the stored state.
fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn nonneg(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn insert_new(set: &mut BTreeSet<String>, v: &str) -> bool {
    if set.contains(v) {
        false
    } else {
        set.insert(v.to_string())
    }
}

impl TraceState {
    /// Folds one span in; returns the facet values the trace did not have before.
    pub fn add(&mut self, f: &SpanFacts<'_>, new_facets: &mut Vec<NewFacet>) {
        if self.span_count == 0 {
            self.start_ns = f.start;
            self.end_ns = f.start;
        }
        self.span_count += 1;
        if f.status == "error" {
            self.error_count += 1;
            if f.kind == "agent" {
                self.failed_agents += 1;
            }
        }
        self.input_tokens = self.input_tokens.saturating_add(nonneg(f.input_tokens));
        self.output_tokens = self.output_tokens.saturating_add(nonneg(f.output_tokens));
        self.total_tokens = self.total_tokens.saturating_add(nonneg(f.total_tokens));
        self.cost_nano = self.cost_nano.saturating_add(f.cost.unwrap_or(0));
        self.unpriced_count += u64::from(f.unpriced);
        self.start_ns = self.start_ns.min(f.start);
        self.end_ns = self.end_ns.max(f.end.unwrap_or(f.start).max(f.start));
        let at = (f.start, u64::from_be_bytes(f.span_id));
        if f.is_root && self.root.as_ref().is_none_or(|r| at < r.at) {
            self.root = Some(Root {
                at,
                name: f.name.to_string(),
                status: f.status.to_string(),
                user: f.user.map(str::to_string),
                session: f.session.map(str::to_string),
                service: f.service.map(str::to_string),
            });
        }
        self.first_name.offer(at, Some(f.name));
        self.user.offer(at, f.user);
        self.session.offer(at, f.session);
        self.service.offer(at, f.service);
        if self.names.len() < MAX_SEARCH_NAMES {
            insert_new(&mut self.names, f.name);
        }
        if insert_new(&mut self.kinds, f.kind) {
            new_facets.push((facet::KIND, f.kind.to_string()));
        }
        for m in [f.request_model, f.response_model].into_iter().flatten() {
            if insert_new(&mut self.models, m) {
                new_facets.push((facet::MODEL, m.to_string()));
            }
        }
        if let Some(p) = f.provider {
            if insert_new(&mut self.providers, p) {
                new_facets.push((facet::PROVIDER, p.to_string()));
            }
        }
        for t in f.tags {
            if insert_new(&mut self.tags, t) {
                new_facets.push((facet::TAG, t.clone()));
            }
        }
        if let Some(name) = f.prompt_name {
            if insert_new(&mut self.prompts, name) {
                new_facets.push((facet::PROMPT, name.to_string()));
            }
            if let Some(v) = f.prompt_version {
                let key = prompt_version_key(name, v);
                if insert_new(&mut self.prompt_versions, &key) {
                    new_facets.push((facet::PROMPT_VERSION, key));
                }
            }
        }
    }

    /// The numbers of the trace's summary row.
    pub fn numbers(&self) -> SummaryNumbers {
        let to_i64 = super::prepare::to_i64;
        SummaryNumbers {
            start_ns: self.start_ns,
            end_ns: self.end_ns,
            duration_ns: self.end_ns.saturating_sub(self.start_ns).max(0),
            span_count: to_i64(self.span_count),
            error_count: to_i64(self.error_count),
            input_tokens: to_i64(self.input_tokens),
            output_tokens: to_i64(self.output_tokens),
            total_tokens: to_i64(self.total_tokens),
            cost_nano: self.cost_nano,
            unpriced_count: to_i64(self.unpriced_count),
        }
    }

    /// Every facet value of the trace, for rebuilding its facet rows.
    pub fn all_facets(&self) -> Vec<NewFacet> {
        let mut out = Vec::new();
        for (code, set) in [
            (facet::KIND, &self.kinds),
            (facet::MODEL, &self.models),
            (facet::PROVIDER, &self.providers),
            (facet::TAG, &self.tags),
            (facet::PROMPT, &self.prompts),
            (facet::PROMPT_VERSION, &self.prompt_versions),
        ] {
            out.extend(set.iter().map(|v| (code, v.clone())));
        }
        out
    }

    /// Whether the trace failed, as its root tells: a root in error failed it; a root that ended
    /// `ok` did not. A root left `unset` states no outcome: the trace failed when one of its agent
    /// runs failed (the OpenAI Agents SDK's trace object carries no status, so a run that raised
    /// shows only on its agent spans), and otherwise its errors were recovered from (a tool
    /// failed, the agent went on). A trace whose root has not arrived fails on any error, since
    /// nothing says it was handled.
    pub fn failed(&self) -> bool {
        match self.root.as_ref() {
            Some(r) => match r.status.as_str() {
                "error" => true,
                "ok" => false,
                _ => self.failed_agents > 0,
            },
            None => self.error_count > 0,
        }
    }

    /// The summary columns: the root's name, status and context when it has arrived, otherwise
    /// the earliest span's name and the earliest values any span carries. The status is `error`
    /// when the trace [failed](Self::failed); errors it recovered from leave the root's status
    /// (and show as the trace's `error_count`).
    pub fn summary(&self, trace_id: &[u8; 16]) -> SummaryRow {
        let root = self.root.as_ref();
        let status = match root.map(|r| r.status.as_str()) {
            _ if self.failed() => "error",
            Some("ok") => "ok",
            _ => "unset",
        };
        let name = root
            .map(|r| r.name.clone())
            .or_else(|| self.first_name.value.clone())
            .unwrap_or_default();
        let user = root
            .and_then(|r| r.user.clone())
            .or_else(|| self.user.value.clone());
        let session = root
            .and_then(|r| r.session.clone())
            .or_else(|| self.session.value.clone());
        let service = root
            .and_then(|r| r.service.clone())
            .or_else(|| self.service.value.clone());
        let hex: String = trace_id.iter().map(|b| format!("{b:02x}")).collect();
        let mut parts: Vec<&str> = vec![&hex, &name];
        parts.extend(user.as_deref());
        parts.extend(session.as_deref());
        parts.extend(service.as_deref());
        parts.extend(self.tags.iter().map(String::as_str));
        parts.extend(self.names.iter().map(String::as_str));
        let mut search = String::new();
        for p in parts {
            if search.len() + p.len() + 1 > MAX_SEARCH_BYTES {
                continue;
            }
            search.push_str(&p.to_lowercase());
            search.push('\n');
        }
        let tags: Vec<&String> = self.tags.iter().collect();
        SummaryRow {
            name,
            status,
            user_id: user.unwrap_or_default(),
            session_id: session.unwrap_or_default(),
            service,
            root_span_id: root.map(|r| r.at.1.to_be_bytes()),
            search,
            tags_json: serde_json::to_string(&tags).unwrap_or_else(|_| "[]".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts<'a>(
        id: u8,
        root: bool,
        name: &'a str,
        start: i64,
        user: Option<&'a str>,
    ) -> SpanFacts<'a> {
        SpanFacts {
            span_id: [id; 8],
            is_root: root,
            name,
            kind: "span",
            status: "ok",
            start,
            end: Some(start + 10),
            input_tokens: 1,
            output_tokens: 2,
            total_tokens: 3,
            cost: Some(5),
            unpriced: false,
            user,
            session: None,
            service: None,
            request_model: None,
            response_model: None,
            provider: None,
            tags: &[],
            prompt_name: None,
            prompt_version: None,
        }
    }

    /// A prompt gives its name and its (name, version) key once each; a version without a
    /// name gives nothing; keys of different pairs never meet.
    #[test]
    fn prompts_are_facets() {
        let mut st = TraceState::default();
        let mut nf = Vec::new();
        let mut f = facts(1, true, "root", 0, None);
        f.prompt_name = Some("answer");
        f.prompt_version = Some("2");
        st.add(&f, &mut nf);
        assert!(nf.contains(&(facet::PROMPT, "answer".into())));
        assert!(nf.contains(&(facet::PROMPT_VERSION, "6:answer2".into())));
        nf.clear();
        f.span_id = [2; 8];
        st.add(&f, &mut nf);
        assert!(!nf.iter().any(|(c, _)| *c >= facet::PROMPT));
        let mut g = facts(3, false, "x", 1, None);
        g.prompt_version = Some("9");
        st.add(&g, &mut nf);
        assert!(!nf.iter().any(|(c, _)| *c >= facet::PROMPT));
        assert_ne!(prompt_version_key("a1", "2"), prompt_version_key("a", "12"));
        // A state written before prompts reads with none.
        let old: TraceState =
            serde_json::from_str(r#"{"n":1,"e":0,"i":0,"o":0,"t":0,"c":0,"s":0,"f":0}"#).unwrap();
        assert!(old.all_facets().iter().all(|(c, _)| *c < facet::PROMPT));
    }

    #[test]
    fn any_arrival_order_gives_the_same_state() {
        let spans = [
            facts(1, true, "root", 0, None),
            facts(2, false, "a", 5, Some("u2")),
            facts(3, false, "b", 3, Some("u3")),
        ];
        let mut orders = vec![[0, 1, 2], [2, 1, 0], [1, 0, 2], [2, 0, 1]];
        let mut states = Vec::new();
        for o in orders.drain(..) {
            let mut st = TraceState::default();
            let mut nf = Vec::new();
            for i in o {
                st.add(&spans[i], &mut nf);
            }
            states.push(st);
        }
        assert!(states.windows(2).all(|w| w[0] == w[1]));
        let s = states[0].summary(&[7; 16]);
        assert_eq!(s.name, "root");
        assert_eq!(s.user_id, "u3", "earliest span with a user");
        assert_eq!(states[0].cost_nano, 15);
        assert_eq!((states[0].start_ns, states[0].end_ns), (0, 15));
    }

    #[test]
    fn state_round_trips_through_json() {
        let mut st = TraceState::default();
        let mut nf = Vec::new();
        st.add(&facts(9, false, "x", 1, Some("u")), &mut nf);
        assert_eq!(nf, vec![(facet::KIND, "span".to_string())]);
        let json = serde_json::to_string(&st).unwrap();
        let back: TraceState = serde_json::from_str(&json).unwrap();
        assert_eq!(back, st);
    }
}
