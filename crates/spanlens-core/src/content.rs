//! Content search: the words of what a span said and was told (its input and output payloads,
//! its messages and the tool calls in them), and whether a query's words are among them.
//!
//! Every store matches the same way, so a search answers alike on each: a *word* is a maximal
//! run of ASCII letters and digits and of non-ASCII characters, compared in lower case (what
//! ClickHouse's `splitByNonAlpha` text index keeps, over text this module has already
//! lowered). A span matches a query when every word of the query is a word of the span's
//! content.

use crate::span::{Payload, Span};
use serde_json::Value;

/// Bytes of a span's content that are searched; the rest of a huge payload is not.
pub const MAX_CONTENT_BYTES: usize = 256 * 1024;

/// Words a query may hold; more are an error, not a slow search.
pub const MAX_QUERY_WORDS: usize = 16;

/// The searchable text of `span`: the string values of its input and output, its messages'
/// content and tool-call arguments, one per line, cut to [`MAX_CONTENT_BYTES`] on a character
/// boundary and lowered.
pub fn text(span: &Span) -> String {
    let mut out = String::new();
    for p in [&span.input, &span.output].into_iter().flatten() {
        payload_text(p, &mut out);
    }
    for m in span.input_messages.iter().chain(&span.output_messages) {
        push(&mut out, m.content.as_deref());
        for call in &m.tool_calls {
            push(&mut out, call.arguments.as_deref());
        }
    }
    out.truncate(crate::limits::floor_char_boundary(&out, MAX_CONTENT_BYTES));
    out.to_lowercase()
}

fn payload_text(p: &Payload, out: &mut String) {
    fn walk(v: &Value, out: &mut String) {
        if out.len() > MAX_CONTENT_BYTES {
            return;
        }
        match v {
            Value::String(s) => push(out, Some(s)),
            Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            Value::Object(map) => map.values().for_each(|i| walk(i, out)),
            _ => {}
        }
    }
    walk(&p.value, out);
}

fn push(out: &mut String, s: Option<&str>) {
    if let Some(s) = s.filter(|s| !s.is_empty()) {
        if out.len() <= MAX_CONTENT_BYTES {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(s);
        }
    }
}

/// Whether `c` belongs to a word.
fn in_word(c: char) -> bool {
    !c.is_ascii() || c.is_ascii_alphanumeric()
}

/// The words of `text`, in order, as written (lower it first to compare).
pub fn words_of(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !in_word(c)).filter(|w| !w.is_empty())
}

/// A content query that cannot be searched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// The query has no word to look for (only spaces and punctuation).
    #[error("the content search {0:?} has no word in it (letters or digits)")]
    NoWords(String),
    /// The query has more words than [`MAX_QUERY_WORDS`].
    #[error("the content search has {found} words; at most {max} are searched")]
    TooManyWords {
        /// Words found.
        found: usize,
        /// The limit.
        max: usize,
    },
}

/// The distinct words of a query, lowered, in order of first appearance.
pub fn query_words(query: &str) -> Result<Vec<String>, QueryError> {
    let mut found: Vec<String> = Vec::new();
    for w in words_of(query) {
        let w = w.to_lowercase();
        if !found.contains(&w) {
            found.push(w);
        }
    }
    if found.is_empty() {
        return Err(QueryError::NoWords(query.chars().take(100).collect()));
    }
    if found.len() > MAX_QUERY_WORDS {
        return Err(QueryError::TooManyWords {
            found: found.len(),
            max: MAX_QUERY_WORDS,
        });
    }
    Ok(found)
}

/// Whether every one of `words` (from [`query_words`]) is a word of `text` (from [`text`]).
pub fn matches(text: &str, words: &[String]) -> bool {
    let mut left: Vec<&str> = words.iter().map(String::as_str).collect();
    for w in words_of(text) {
        left.retain(|x| *x != w);
        if left.is_empty() {
            return true;
        }
    }
    left.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::span::Message;

    #[test]
    fn words_split_on_ascii_punctuation_and_keep_other_scripts() {
        let w: Vec<&str> = words_of("Refund-policy, 30 days; café über_alles").collect();
        assert_eq!(
            w,
            ["Refund", "policy", "30", "days", "café", "über", "alles"]
        );
        assert_eq!(
            query_words("  Refund REFUND policy ").unwrap(),
            ["refund", "policy"]
        );
        assert!(matches!(query_words(" -- "), Err(QueryError::NoWords(_))));
        let many = (0..17)
            .map(|i| format!("w{i}"))
            .collect::<Vec<_>>()
            .join(" ");
        assert!(matches!(
            query_words(&many),
            Err(QueryError::TooManyWords { found: 17, .. })
        ));
    }

    #[test]
    fn a_span_matches_when_every_word_is_in_its_content() {
        let span = Span {
            input: Some(Payload::from_text(
                r#"{"question": "What is the REFUND policy?", "n": 3}"#,
                None,
            )),
            output_messages: vec![Message {
                role: Some("assistant".into()),
                content: Some("Thirty days.".into()),
                ..Default::default()
            }],
            ..Default::default()
        };
        let t = text(&span);
        assert!(!t.contains("question"), "keys are not content: {t}");
        let q = |s: &str| matches(&t, &query_words(s).unwrap());
        assert!(q("refund"));
        assert!(q("Refund thirty"));
        assert!(!q("refunds"), "whole words only");
        assert!(!q("refund assistant"), "roles are not content");
        assert!(
            !q("refund 3"),
            "numbers that are not strings are not content"
        );
    }

    #[test]
    fn content_is_cut_on_a_character_boundary() {
        let span = Span {
            output: Some(Payload {
                value: Value::String("é".repeat(MAX_CONTENT_BYTES)),
                ..Default::default()
            }),
            ..Default::default()
        };
        let t = text(&span);
        assert!(t.len() <= MAX_CONTENT_BYTES && t.len() > MAX_CONTENT_BYTES - 4);
        assert!(matches(
            &text(&Span {
                input: Some(Payload::from_text("Über Café", Some("text/plain"))),
                ..Default::default()
            }),
            &query_words("über CAFÉ").unwrap()
        ));
    }
}
