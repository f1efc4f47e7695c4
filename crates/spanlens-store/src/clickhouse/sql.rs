//! Values written into ClickHouse statements as literals. Every string from a span is
//! untrusted: a literal escapes the quote, the backslash and every byte outside printable
//! ASCII, so no value can end its literal early or smuggle in a control byte, on any server.

use std::fmt::Write;

/// `'…'`: a string literal holding exactly `s`.
pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for b in s.bytes() {
        match b {
            b'\'' => out.push_str("\\'"),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(b as char),
            _ => {
                let _ = write!(out, "\\x{b:02X}");
            }
        }
    }
    out.push('\'');
    out
}

/// `unhex('…')`: bytes (ids) as a literal, comparable with a `FixedString` column.
pub fn bytes(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len() * 2 + 9);
    out.push_str("unhex('");
    for x in b {
        let _ = write!(out, "{x:02X}");
    }
    out.push_str("')");
    out
}

/// `[a, b, …]` of string literals (`[]` when empty, which ClickHouse types as `Array(Nothing)`:
/// compare with `has` or `hasAll`, which accept it).
pub fn strings<S: AsRef<str>>(v: &[S]) -> String {
    let items: Vec<String> = v.iter().map(|s| string(s.as_ref())).collect();
    format!("[{}]", items.join(", "))
}

/// `(x, y, …)` of byte literals, for `IN`; `None` when empty (`IN ()` is not SQL).
pub fn byte_set<B: AsRef<[u8]>>(v: &[B]) -> Option<String> {
    if v.is_empty() {
        return None;
    }
    let items: Vec<String> = v.iter().map(|b| bytes(b.as_ref())).collect();
    Some(format!("({})", items.join(", ")))
}

/// A statement's conditions, joined by `AND`.
#[derive(Debug, Default)]
pub struct Conditions(Vec<String>);

impl Conditions {
    /// Adds one condition (already a well-formed expression).
    pub fn push(&mut self, condition: impl Into<String>) {
        self.0.push(condition.into());
    }

    /// `WHERE a AND b …`, or nothing.
    pub fn clause(&self) -> String {
        if self.0.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.0.join(" AND "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{byte_set, bytes, string, strings};

    #[test]
    fn literals_escape_quotes_backslashes_and_every_unprintable_byte() {
        assert_eq!(string("it's"), r"'it\'s'");
        assert_eq!(string(r"a\b"), r"'a\\b'");
        assert_eq!(string("tab\there\n\0"), r"'tab\x09here\x0A\x00'");
        assert_eq!(string("é"), r"'\xC3\xA9'");
        assert_eq!(
            string("'; DROP TABLE spans; --"),
            r"'\'; DROP TABLE spans; --'"
        );
        assert_eq!(bytes(&[0, 0xab, 0x10]), "unhex('00AB10')");
        assert_eq!(strings(&["a", "b'"]), r"['a', 'b\'']");
        assert_eq!(strings::<&str>(&[]), "[]");
        assert_eq!(byte_set::<[u8; 1]>(&[]), None);
        assert_eq!(byte_set(&[[1u8]]).unwrap(), "(unhex('01'))");
    }
}
