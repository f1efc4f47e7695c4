//! Full-text search: the words of a span's name and of what it said and was told (its input
//! and output payloads, its messages and the tool calls in them), whether a query's words are
//! among them, and where (for highlighting).
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

/// The searchable text of `span`: its name, the string values of its input and output, its
/// messages' content and tool-call arguments, one per line, cut to [`MAX_CONTENT_BYTES`] on a
/// character boundary and lowered.
pub fn text(span: &Span) -> String {
    raw_text(span).to_lowercase()
}

/// [`text`] as written, not lowered: what a snippet shows.
pub fn raw_text(span: &Span) -> String {
    let mut out = String::new();
    push(&mut out, Some(&span.name));
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
    out
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

/// Distinct words a span's index entry keeps at most (a store indexing words one by one);
/// a payload with more distinct words is found by its first ones.
pub const MAX_INDEXED_WORDS: usize = 8_192;

/// The distinct words of `text` (from [`text`]), in order of first appearance, at most
/// [`MAX_INDEXED_WORDS`]: what a store that indexes words one by one keeps for a span.
pub fn distinct_words(text: &str) -> Vec<&str> {
    let mut seen = std::collections::HashSet::with_hasher(WordHasher::default());
    words_of(text)
        .filter(|w| seen.insert(*w))
        .take(MAX_INDEXED_WORDS)
        .collect()
}

/// FNV-1a over a word's bytes: every span PostgreSQL ingests has its words pass through
/// [`distinct_words`], and the standard SipHash (built against deliberate collisions, which a
/// span's own words cannot cause beyond slowing that one span) took a few percent of ingest's
/// CPU there.
type WordHasher = std::hash::BuildHasherDefault<Fnv1a>;

/// The FNV-1a 64-bit hash state.
struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
}

impl std::hash::Hasher for Fnv1a {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A piece of a span's text around the first word of a query found in it, with where each
/// word of the query sits in that piece: what a result list shows, highlighted.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Snippet {
    /// The piece, as written (on one line).
    pub text: String,
    /// Byte ranges `[start, end)` of `text` that are words of the query.
    pub marks: Vec<(usize, usize)>,
    /// Whether text was cut off before the piece.
    pub cut_before: bool,
    /// Whether text was cut off after the piece.
    pub cut_after: bool,
}

/// The snippet of `raw` (from [`raw_text`]) for `words` (from [`query_words`]): about
/// `width` bytes around the first word of the query found, `None` when none is.
pub fn snippet(raw: &str, words: &[String], width: usize) -> Option<Snippet> {
    let is_hit = |w: &str| words.iter().any(|q| w.to_lowercase() == *q);
    let offset = |w: &str| w.as_ptr() as usize - raw.as_ptr() as usize;
    let first = words_of(raw).find(|w| is_hit(w))?;
    let at = offset(first);
    let start = crate::limits::floor_char_boundary(raw, at.saturating_sub(width / 3));
    let end = crate::limits::floor_char_boundary(raw, (start + width).max(at + first.len()));
    // Start and end on word boundaries when the cut falls inside a word.
    let piece = &raw[start..end];
    let lead = if start > 0 {
        piece.find(|c: char| !in_word(c)).map_or(0, |i| i + 1)
    } else {
        0
    }
    .min(at - start);
    let tail = if end < raw.len() {
        piece
            .rfind(|c: char| !in_word(c))
            .filter(|i| start + i >= at + first.len())
            .unwrap_or(piece.len())
    } else {
        piece.len()
    };
    let piece = &piece[lead..tail];
    let base = start + lead;
    // Control characters become spaces, one byte for one, so word offsets stay valid.
    let text: String = piece
        .chars()
        .map(|c| if c.is_ascii_control() { ' ' } else { c })
        .collect();
    let marks = words_of(piece)
        .filter(|w| is_hit(w))
        .map(|w| {
            let from = w.as_ptr() as usize - piece.as_ptr() as usize;
            (from, from + w.len())
        })
        .collect();
    Some(Snippet {
        text,
        marks,
        cut_before: base > 0,
        cut_after: base + piece.len() < raw.len(),
    })
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
        let named = text(&Span {
            name: "Refund-Lookup".into(),
            ..span.clone()
        });
        assert!(matches(&named, &query_words("lookup refund").unwrap()));
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

    #[test]
    fn a_snippet_marks_the_query_words_around_the_first_found() {
        let raw = format!(
            "{}The Refund policy:\nrefunds take thirty days. REFUND now.{}",
            "lorem ipsum ".repeat(40),
            " tail".repeat(40)
        );
        let words = query_words("refund days").unwrap();
        let s = snippet(&raw, &words, 80).unwrap();
        assert!(s.cut_before && s.cut_after, "{s:?}");
        assert!(!s.text.contains('\n'));
        let marked: Vec<&str> = s.marks.iter().map(|(a, b)| &s.text[*a..*b]).collect();
        assert_eq!(marked, ["Refund", "days", "REFUND"], "{s:?}");
        assert!(s.text.len() <= 80 + 6, "{}", s.text.len());
        assert!(
            !s.text.starts_with("orem"),
            "starts on a word: {:?}",
            s.text
        );
        assert_eq!(snippet(&raw, &query_words("absent").unwrap(), 80), None);
        let short = snippet("Über café", &query_words("CAFÉ").unwrap(), 80).unwrap();
        assert_eq!(short.marks, [(6, 11)]);
        assert!(!short.cut_before && !short.cut_after);
    }

    #[test]
    fn distinct_words_keep_first_appearance_order() {
        assert_eq!(distinct_words("b a b c a"), ["b", "a", "c"]);
    }
}
