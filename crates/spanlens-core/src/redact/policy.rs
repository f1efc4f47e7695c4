//! What a project redacts, as an admin saves it ([`RedactionSettings`], plain data) and as
//! ingest applies it to spans ([`Redaction`], compiled): detectors, attribute keys dropped
//! before storage, and attribute keys kept as sent.

use super::{RedactError, Redactor};
use crate::span::{Attributes, Payload, Span};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::Arc;

/// Custom rules one policy may have.
pub const MAX_RULES: usize = 100;
/// Keys one drop or keep list may have.
pub const MAX_KEYS: usize = 500;
/// Longest key pattern, bytes.
const MAX_KEY_BYTES: usize = 256;

/// A named custom detector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedactionRule {
    /// The marker's name (`[REDACTED:name]`): letters, digits, `_` and `-`.
    pub name: String,
    /// A regular expression (Rust `regex` syntax: linear time, no look-around).
    pub pattern: String,
}

/// What to redact, as saved for a project or given on the command line. Attribute keys are
/// exact (`user.email`) or a prefix ending in `*` (`http.request.header.*`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedactionSettings {
    /// Whether the built-in detectors run (secret, email, card, iban, ip, phone).
    #[serde(default)]
    pub builtin: bool,
    /// Custom detectors, after the built-in ones.
    #[serde(default)]
    pub rules: Vec<RedactionRule>,
    /// Attributes removed before anything is stored (span, resource, event and link
    /// attributes, metadata). A drop wins over a keep.
    #[serde(default)]
    pub drop_attributes: Vec<String>,
    /// Attributes stored as sent, without running the detectors on them.
    #[serde(default)]
    pub keep_attributes: Vec<String>,
}

impl RedactionSettings {
    /// The built-in detectors and nothing else (`serve --redact builtin`).
    pub fn builtin() -> RedactionSettings {
        RedactionSettings {
            builtin: true,
            ..Default::default()
        }
    }

    /// True when these settings change nothing.
    pub fn is_off(&self) -> bool {
        !self.builtin && self.rules.is_empty() && self.drop_attributes.is_empty()
    }

    /// Both sets of settings at once: the server's for every project, and a project's own.
    pub fn with(&self, more: &RedactionSettings) -> RedactionSettings {
        fn union<T: Clone + PartialEq>(a: &[T], b: &[T]) -> Vec<T> {
            let mut out = a.to_vec();
            out.extend(b.iter().filter(|x| !a.contains(x)).cloned());
            out
        }
        RedactionSettings {
            builtin: self.builtin || more.builtin,
            rules: union(&self.rules, &more.rules),
            drop_attributes: union(&self.drop_attributes, &more.drop_attributes),
            keep_attributes: union(&self.keep_attributes, &more.keep_attributes),
        }
    }

    /// The policy to apply, or why these settings cannot be used; `None` when they are off.
    pub fn compile(&self) -> Result<Option<Redaction>, RedactError> {
        if self.rules.len() > MAX_RULES {
            return Err(RedactError::TooMany {
                what: "redaction rules",
                limit: MAX_RULES,
            });
        }
        let mut text = if self.builtin {
            Redactor::builtin()
        } else {
            Redactor::empty()
        };
        for r in &self.rules {
            text = text.with_rule(&r.name, &r.pattern)?;
        }
        let drop = KeyMatch::new(&self.drop_attributes, "attributes to drop")?;
        let keep = KeyMatch::new(&self.keep_attributes, "attributes to keep")?;
        if self.is_off() {
            return Ok(None);
        }
        Ok(Some(Redaction {
            text: (!text.is_empty()).then_some(text),
            drop,
            keep,
        }))
    }
}

/// Attribute keys: exact ones, and prefixes (from patterns ending in `*`).
#[derive(Debug, Default)]
struct KeyMatch {
    exact: BTreeSet<String>,
    prefixes: Vec<String>,
}

impl KeyMatch {
    fn new(patterns: &[String], what: &'static str) -> Result<KeyMatch, RedactError> {
        if patterns.len() > MAX_KEYS {
            return Err(RedactError::TooMany {
                what,
                limit: MAX_KEYS,
            });
        }
        let mut m = KeyMatch::default();
        for p in patterns {
            let p = p.trim();
            let (stem, prefix) = match p.strip_suffix('*') {
                Some(stem) => (stem, true),
                None => (p, false),
            };
            if p.is_empty() || p.len() > MAX_KEY_BYTES || stem.contains('*') {
                return Err(RedactError::BadKey(p.chars().take(80).collect()));
            }
            if prefix {
                m.prefixes.push(stem.to_string());
            } else {
                m.exact.insert(stem.to_string());
            }
        }
        Ok(m)
    }

    fn matches(&self, key: &str) -> bool {
        self.exact.contains(key) || self.prefixes.iter().any(|p| key.starts_with(p.as_str()))
    }

    fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.prefixes.is_empty()
    }
}

/// A compiled policy, applied to spans at ingest before they are stored.
#[derive(Debug)]
pub struct Redaction {
    /// The detectors; `None` when the policy only drops attributes.
    text: Option<Redactor>,
    drop: KeyMatch,
    keep: KeyMatch,
}

impl Redaction {
    /// Redacts `text` in place; true when something was found.
    pub fn apply_text(&self, s: &mut String) -> bool {
        let Some(text) = &self.text else { return false };
        match text.redact(s) {
            std::borrow::Cow::Borrowed(_) => false,
            std::borrow::Cow::Owned(out) => {
                *s = out;
                true
            }
        }
    }

    /// Redacts every string in a JSON value (object keys are names, not content, and stay).
    fn apply_value(&self, v: &mut Value) -> bool {
        match v {
            Value::String(s) => self.apply_text(s),
            Value::Array(items) => items.iter_mut().fold(false, |f, i| self.apply_value(i) | f),
            Value::Object(map) => map.values_mut().fold(false, |f, i| self.apply_value(i) | f),
            _ => false,
        }
    }

    /// Whether some string in `v` holds a finding (without changing it).
    fn finds_in(&self, v: &Value) -> bool {
        let Some(text) = &self.text else { return false };
        match v {
            Value::String(s) => matches!(text.redact(s), std::borrow::Cow::Owned(_)),
            Value::Array(items) => items.iter().any(|i| self.finds_in(i)),
            Value::Object(map) => map.values().any(|i| self.finds_in(i)),
            _ => false,
        }
    }

    /// Drops the attributes on the drop list and redacts the others, except those on the
    /// keep list; true when something changed.
    pub fn apply_attributes(&self, a: &mut Attributes) -> bool {
        let before = a.len();
        if !self.drop.is_empty() {
            a.retain(|k, _| !self.drop.matches(k));
        }
        let mut changed = a.len() != before;
        for (k, v) in a.iter_mut() {
            if !self.keep.matches(k) {
                changed |= self.apply_value(v);
            }
        }
        changed
    }

    /// Whether [`Redaction::apply_attributes`] would change `a`.
    fn would_change(&self, a: &Attributes) -> bool {
        a.iter()
            .any(|(k, v)| self.drop.matches(k) || (!self.keep.matches(k) && self.finds_in(v)))
    }

    /// Redacts the text a person may have written on a score: its comment and label.
    pub fn apply_score(&self, score: &mut crate::evals::Score) -> bool {
        [&mut score.comment, &mut score.label]
            .into_iter()
            .flatten()
            .fold(false, |hit, s| self.apply_text(s) | hit)
    }

    fn apply_payload(&self, p: &mut Option<Payload>) -> bool {
        p.as_mut().is_some_and(|p| self.apply_value(&mut p.value))
    }

    /// Applies the policy to each span; returns how many spans changed. Spans of one resource
    /// share it, and it is checked and (when needed) rewritten once for all of them.
    pub fn apply(&self, spans: &mut [Span]) -> usize {
        // (the resource as sent, what it becomes): a request has few resources.
        let mut resources: Vec<(*const Attributes, Arc<Attributes>)> = Vec::new();
        let mut changed = 0;
        for span in spans {
            let sent = Arc::as_ptr(&span.resource);
            let resource = match resources.iter().find(|(p, _)| *p == sent) {
                Some((_, r)) => r.clone(),
                None => {
                    let r = if self.would_change(&span.resource) {
                        let mut copy = (*span.resource).clone();
                        self.apply_attributes(&mut copy);
                        Arc::new(copy)
                    } else {
                        span.resource.clone()
                    };
                    resources.push((sent, r.clone()));
                    r
                }
            };
            let mut hit = !Arc::ptr_eq(&resource, &span.resource);
            span.resource = resource;
            hit |= self.apply_span(span);
            changed += usize::from(hit);
        }
        changed
    }

    /// The policy on one span's own parts (its resource aside): name, error message and stack,
    /// user, session and tags, metadata and attributes, inputs and outputs, messages and the
    /// arguments of their tool calls, the prompt template and its variables, and event and link
    /// attributes. Ids, times, kinds, models and counts are not text a person wrote and stay.
    fn apply_span(&self, span: &mut Span) -> bool {
        let mut hit = self.apply_text(&mut span.name);
        for s in [
            &mut span.status_message,
            &mut span.error_stack,
            &mut span.user_id,
            &mut span.session_id,
        ]
        .into_iter()
        .flatten()
        {
            hit |= self.apply_text(s);
        }
        for t in &mut span.tags {
            hit |= self.apply_text(t);
        }
        hit |= self.apply_attributes(&mut span.metadata);
        hit |= self.apply_attributes(&mut span.attributes);
        hit |= self.apply_payload(&mut span.input);
        hit |= self.apply_payload(&mut span.output);
        for m in span
            .input_messages
            .iter_mut()
            .chain(&mut span.output_messages)
        {
            if let Some(c) = &mut m.content {
                hit |= self.apply_text(c);
            }
            for call in &mut m.tool_calls {
                if let Some(a) = &mut call.arguments {
                    hit |= self.apply_text(a);
                }
            }
        }
        if let Some(p) = &mut span.prompt {
            if let Some(t) = &mut p.template {
                hit |= self.apply_text(t);
            }
            for v in p.variables.values_mut() {
                hit |= self.apply_value(v);
            }
        }
        for e in &mut span.events {
            hit |= self.apply_attributes(&mut e.attributes);
        }
        for l in &mut span.links {
            hit |= self.apply_attributes(&mut l.attributes);
        }
        hit
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::span::{Event, Message, ToolCallRef};

    fn policy(s: RedactionSettings) -> Redaction {
        s.compile().unwrap().expect("on")
    }

    #[test]
    fn a_span_is_redacted_everywhere_a_person_wrote_text() {
        let mut span = Span {
            name: "reply to jane@ex.com".into(),
            user_id: Some("jane@ex.com".into()),
            input: Some(Payload::from_text(
                r#"{"q": "card 4111 1111 1111 1111", "n": 4}"#,
                None,
            )),
            output_messages: vec![Message {
                content: Some("call +1 415 555 0132".into()),
                tool_calls: vec![ToolCallRef {
                    arguments: Some(r#"{"to": "bob@ex.com"}"#.into()),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            events: vec![Event {
                name: "exception".into(),
                attributes: [(
                    "exception.message".to_string(),
                    Value::from("key sk-abcdefghijklmnopqrstuvwx"),
                )]
                .into(),
                ..Default::default()
            }],
            request_model: Some("gpt-4o".into()),
            ..Default::default()
        };
        span.resource = Arc::new([("host.ip".to_string(), Value::from("10.1.2.3"))].into());
        let p = policy(RedactionSettings::builtin());
        assert_eq!(p.apply(std::slice::from_mut(&mut span)), 1);
        assert_eq!(span.name, "reply to [REDACTED:email]");
        assert_eq!(span.user_id.as_deref(), Some("[REDACTED:email]"));
        assert_eq!(
            span.input.as_ref().unwrap().value["q"],
            "card [REDACTED:card]"
        );
        assert_eq!(span.input.as_ref().unwrap().value["n"], 4);
        let m = &span.output_messages[0];
        assert_eq!(m.content.as_deref(), Some("call [REDACTED:phone]"));
        assert_eq!(
            m.tool_calls[0].arguments.as_deref(),
            Some(r#"{"to": "[REDACTED:email]"}"#)
        );
        assert_eq!(
            span.events[0].attributes["exception.message"],
            "key [REDACTED:secret]"
        );
        assert_eq!(span.resource["host.ip"], "[REDACTED:ip]");
        assert_eq!(span.request_model.as_deref(), Some("gpt-4o"));
        assert_eq!(
            p.apply(std::slice::from_mut(&mut span)),
            0,
            "nothing left to find"
        );
    }

    #[test]
    fn dropped_keys_go_kept_keys_stay_and_a_drop_wins() {
        let p = policy(RedactionSettings {
            builtin: true,
            drop_attributes: vec!["http.request.header.*".into(), "user.email".into()],
            keep_attributes: vec!["net.peer.ip".into(), "user.email".into()],
            ..Default::default()
        });
        let mut a: Attributes = [
            ("http.request.header.authorization", "Bearer x"),
            ("user.email", "jane@ex.com"),
            ("net.peer.ip", "10.0.0.1"),
            ("client.ip", "10.0.0.2"),
            ("http.request.method", "POST"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), Value::from(v)))
        .collect();
        assert!(p.apply_attributes(&mut a));
        let keys: Vec<&str> = a.keys().map(String::as_str).collect();
        assert_eq!(keys, ["client.ip", "http.request.method", "net.peer.ip"]);
        assert_eq!(a["net.peer.ip"], "10.0.0.1");
        assert_eq!(a["client.ip"], "[REDACTED:ip]");
    }

    #[test]
    fn spans_of_one_resource_share_its_redacted_copy() {
        let p = policy(RedactionSettings::builtin());
        let dirty = Arc::new(Attributes::from([(
            "host.ip".to_string(),
            Value::from("10.1.2.3"),
        )]));
        let clean = Arc::new(Attributes::from([(
            "service.name".to_string(),
            Value::from("api"),
        )]));
        let mut spans: Vec<Span> = [&dirty, &dirty, &clean]
            .into_iter()
            .map(|r| Span {
                resource: r.clone(),
                ..Default::default()
            })
            .collect();
        assert_eq!(p.apply(&mut spans), 2);
        assert!(Arc::ptr_eq(&spans[0].resource, &spans[1].resource));
        assert_eq!(spans[0].resource["host.ip"], "[REDACTED:ip]");
        assert!(Arc::ptr_eq(&spans[2].resource, &clean), "untouched");
    }

    #[test]
    fn settings_merge_and_bad_ones_are_refused() {
        let server = RedactionSettings::builtin();
        let project = RedactionSettings {
            rules: vec![RedactionRule {
                name: "ticket".into(),
                pattern: r"TCK-\d+".into(),
            }],
            ..Default::default()
        };
        let both = server.with(&project);
        assert!(both.builtin && both.rules.len() == 1);
        assert_eq!(both.with(&project), both, "no duplicates");
        assert!(RedactionSettings::default().compile().unwrap().is_none());
        assert!(RedactionSettings {
            keep_attributes: vec!["a".into()],
            ..Default::default()
        }
        .compile()
        .unwrap()
        .is_none());
        for bad in ["", "a*b", "*x*"] {
            let s = RedactionSettings {
                drop_attributes: vec![bad.into()],
                ..Default::default()
            };
            assert!(matches!(s.compile(), Err(RedactError::BadKey(_))), "{bad}");
        }
        let many = RedactionSettings {
            drop_attributes: vec!["k".into(); MAX_KEYS + 1],
            ..Default::default()
        };
        assert!(matches!(many.compile(), Err(RedactError::TooMany { .. })));
        let json = r#"{"builtin": true, "drop_attributes": ["x.*"], "extra": 1}"#;
        assert!(serde_json::from_str::<RedactionSettings>(json).is_err());
    }
}
