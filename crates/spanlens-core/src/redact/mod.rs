//! PII redaction of text: finds e-mail addresses, phone numbers, payment card numbers, IBANs,
//! IP addresses and secrets (provider API keys, JSON Web Tokens, bearer tokens) and replaces
//! each with a marker naming what it was (`[REDACTED:email]`), so a store never holds them.
//!
//! Each detector is a pattern, and for cards, IBANs and IPv6 addresses a check of the candidate
//! (Luhn, ISO 7064 mod 97, a parse) so that order numbers and timestamps are not taken for
//! them. Where two findings overlap, the one that starts first wins, and of two starting at the
//! same place the detector listed first (secrets before the rest: a key is never half-redacted
//! as a phone number). Custom detectors are regular expressions with a name of their own.
//!
//! [`Redaction`] (in `policy`) is what a project asks for: detectors, and attribute keys to
//! drop or keep as sent; ingest applies it to every free-text part of a span before storing it.

mod policy;

pub use policy::{Redaction, RedactionRule, RedactionSettings};

use regex::{Regex, RegexSet};
use std::borrow::Cow;

/// A test of what a pattern found (a checksum, a parse).
type Check = fn(&str) -> bool;

/// One detector: a name for its marker, a pattern, and an optional check of each match.
struct Detector {
    name: String,
    pattern: Regex,
    check: Option<Check>,
    /// For a number that must stand alone, the separators across which a following or preceding
    /// digit makes it part of a longer number (a card that failed its check is not three phone
    /// numbers, nor `1.2.3.4.5` an address); empty: any match counts.
    standalone: &'static str,
}

/// A set of detectors applied together.
pub struct Redactor {
    detectors: Vec<Detector>,
    /// Every detector's pattern in one automaton: one pass tells which detectors can find
    /// anything, so text with nothing to redact (almost all of it) is read once, not once per
    /// detector.
    any: RegexSet,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.detectors.iter().map(|d| d.name.as_str()).collect();
        write!(f, "Redactor({names:?})")
    }
}

/// A custom detector that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedactError {
    /// The name is empty or not made of letters, digits, `_` and `-`.
    #[error("redaction rule name {0:?}: use letters, digits, '_' and '-'")]
    BadName(String),
    /// The pattern is not a regular expression this engine reads.
    #[error("redaction rule {name:?}: {reason}")]
    BadPattern {
        /// The rule's name.
        name: String,
        /// What the regex engine said.
        reason: String,
    },
    /// The pattern matches the empty string, which would redact between every character.
    #[error("redaction rule {0:?} matches empty text")]
    MatchesEmpty(String),
    /// An attribute key pattern is empty, too long, or has `*` other than at its end.
    #[error("attribute key {0:?}: give a key, or a prefix ending in '*', of at most 256 bytes")]
    BadKey(String),
    /// More rules or keys than a project may have.
    #[error("{what}: at most {limit}")]
    TooMany {
        /// Which list.
        what: &'static str,
        /// Its limit.
        limit: usize,
    },
}

/// The built-in detectors, in the order they win ties: (name, pattern, check).
const BUILTIN: [(&str, &str, Option<Check>); 8] = [
    (
        "secret",
        // OpenAI and Anthropic (`sk-…`), Stripe, AWS access keys, Google API keys, GitHub and
        // Slack tokens, JSON Web Tokens, and bearer tokens in header-like text.
        r"\bsk-[A-Za-z0-9_-]{20,}|\b[rs]k_(?:live|test)_[A-Za-z0-9]{16,}|\b(?:AKIA|ASIA)[0-9A-Z]{16}\b|\bAIza[0-9A-Za-z_-]{35}|\bgh[pousr]_[A-Za-z0-9]{36,}|\bgithub_pat_[A-Za-z0-9_]{22,}|\bxox[abprs]-[A-Za-z0-9-]{10,}|\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}|(?i:\bbearer\s+)[A-Za-z0-9._~+/-]{20,}=*",
        None,
    ),
    (
        "email",
        r"(?i)\b[a-z0-9._%+-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}\b",
        None,
    ),
    ("card", r"\b\d(?:[ -]?\d){12,18}\b", Some(luhn)),
    (
        "iban",
        r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b",
        Some(iban_checksum),
    ),
    (
        "ip",
        r"\b(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\b",
        None,
    ),
    (
        "ip",
        r"(?i)[0-9a-f]{0,4}(?::[0-9a-f]{0,4}){2,7}",
        Some(ipv6),
    ),
    (
        "phone",
        r"\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]?\d{2,4}){1,3}\b|(?:\(\d{2,4}\)[ .-]?|\b\d{2,4}[ .-])\d{3,4}[ .-]\d{3,4}\b",
        Some(phone_digits),
    ),
    ("phone", r"\b0\d{9,10}\b", None),
];

impl Redactor {
    /// The built-in detectors: `secret`, `email`, `card`, `iban`, `ip`, `phone`.
    pub fn builtin() -> Redactor {
        let detectors = BUILTIN
            .iter()
            .map(|(name, pattern, check)| Detector {
                name: (*name).to_string(),
                pattern: Regex::new(pattern).expect("built-in patterns compile (tested)"),
                check: *check,
                standalone: match *name {
                    "phone" | "card" => " -.",
                    "ip" => ".",
                    _ => "",
                },
            })
            .collect();
        Redactor::of(detectors).expect("built-in patterns compile together (tested)")
    }

    /// The detectors with their joint automaton; refused when it is too large (many large
    /// custom rules), naming the last rule added.
    fn of(detectors: Vec<Detector>) -> Result<Redactor, RedactError> {
        let any = regex::RegexSetBuilder::new(detectors.iter().map(|d| d.pattern.as_str()))
            .size_limit(32 << 20)
            .build()
            .map_err(|e| RedactError::BadPattern {
                name: detectors.last().map_or(String::new(), |d| d.name.clone()),
                reason: format!("the rules together are too large: {e}"),
            })?;
        Ok(Redactor { detectors, any })
    }

    /// Whether there is no detector at all.
    pub fn is_empty(&self) -> bool {
        self.detectors.is_empty()
    }

    /// No detector (custom ones are added with [`Redactor::with_rule`]).
    pub fn empty() -> Redactor {
        Redactor::of(Vec::new()).expect("no pattern compiles")
    }

    /// Adds a custom detector `name` matching `pattern`, after the others.
    pub fn with_rule(mut self, name: &str, pattern: &str) -> Result<Redactor, RedactError> {
        let good_name = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !good_name {
            return Err(RedactError::BadName(name.chars().take(80).collect()));
        }
        let pattern = regex::RegexBuilder::new(pattern)
            .size_limit(1 << 20)
            .build()
            .map_err(|e| RedactError::BadPattern {
                name: name.to_string(),
                reason: e.to_string(),
            })?;
        if pattern.is_match("") {
            return Err(RedactError::MatchesEmpty(name.to_string()));
        }
        self.detectors.push(Detector {
            name: name.to_string(),
            pattern,
            check: None,
            standalone: "",
        });
        Redactor::of(self.detectors)
    }

    /// `text` with every finding replaced by `[REDACTED:name]`; borrowed when nothing was found.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        // (start, end, detector) of every finding, then the ones kept: earliest first, the
        // first detector on a tie, none overlapping one kept before it.
        let candidates = self.any.matches(text);
        if !candidates.matched_any() {
            return Cow::Borrowed(text);
        }
        let mut found: Vec<(usize, usize, usize)> = Vec::new();
        for i in candidates.iter() {
            let d = &self.detectors[i];
            for m in d.pattern.find_iter(text) {
                let alone = !runs_on(text, m.start(), m.end(), d.standalone);
                if alone && d.check.is_none_or(|check| check(m.as_str())) {
                    found.push((m.start(), m.end(), i));
                }
            }
        }
        if found.is_empty() {
            return Cow::Borrowed(text);
        }
        found.sort_unstable_by_key(|&(start, _, i)| (start, i));
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for (start, end, i) in found {
            if start < at {
                continue;
            }
            out.push_str(&text[at..start]);
            out.push_str("[REDACTED:");
            out.push_str(&self.detectors[i].name);
            out.push(']');
            at = end;
        }
        out.push_str(&text[at..]);
        Cow::Owned(out)
    }
}

/// Whether the digits at `text[start..end]` continue, before or after, into another digit
/// (directly or across one of `separators`); never when there are no separators.
fn runs_on(text: &str, start: usize, end: usize, separators: &str) -> bool {
    if separators.is_empty() {
        return false;
    }
    let digit_after = |s: &str| {
        let mut c = s.chars();
        match c.next() {
            Some(x) if x.is_ascii_digit() => true,
            Some(x) if separators.contains(x) => c.next().is_some_and(|x| x.is_ascii_digit()),
            _ => false,
        }
    };
    let before: String = text[..start].chars().rev().take(2).collect();
    digit_after(&text[end..]) || digit_after(&before)
}

/// The digits of `s`, as numbers.
fn digits(s: &str) -> Vec<u32> {
    s.chars().filter_map(|c| c.to_digit(10)).collect()
}

/// A payment card number: 13 to 19 digits whose Luhn checksum holds.
fn luhn(s: &str) -> bool {
    let d = digits(s);
    if !(13..=19).contains(&d.len()) || d.iter().all(|x| *x == d[0]) {
        return false;
    }
    let sum: u32 = d
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &x)| match i % 2 {
            0 => x,
            _ if x * 2 > 9 => x * 2 - 9,
            _ => x * 2,
        })
        .sum();
    sum % 10 == 0
}

/// An IBAN: its check digits make the rearranged number 1 modulo 97 (ISO 7064).
fn iban_checksum(s: &str) -> bool {
    let compact: Vec<char> = s.chars().filter(|c| !c.is_whitespace()).collect();
    if !(15..=34).contains(&compact.len()) {
        return false;
    }
    let rearranged = compact[4..].iter().chain(&compact[..4]);
    let mut rest: u32 = 0;
    for c in rearranged {
        let v = match c.to_digit(36) {
            Some(v) => v,
            None => return false,
        };
        for digit in v.to_string().chars() {
            rest = (rest * 10 + digit.to_digit(10).unwrap_or(0)) % 97;
        }
    }
    rest == 1
}

/// An IPv6 address: what the loose pattern found parses as one and has at least three groups
/// (so `a::b` in code, or `::1`, are left as they are).
fn ipv6(s: &str) -> bool {
    s.split(':').filter(|g| !g.is_empty()).count() >= 3 && s.parse::<std::net::Ipv6Addr>().is_ok()
}

/// A phone number has 7 to 15 digits (E.164 allows 15).
fn phone_digits(s: &str) -> bool {
    (7..=15).contains(&digits(s).len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builtin() -> &'static Redactor {
        static R: std::sync::OnceLock<Redactor> = std::sync::OnceLock::new();
        R.get_or_init(Redactor::builtin)
    }

    fn r(text: &str) -> String {
        builtin().redact(text).into_owned()
    }

    #[test]
    fn every_builtin_detector_finds_its_kind() {
        let cases = [
            ("mail jane.doe+x@mail.example.co.uk now", "mail [REDACTED:email] now"),
            ("card 4111 1111 1111 1111.", "card [REDACTED:card]."),
            ("card 4111-1111-1111-1111", "card [REDACTED:card]"),
            ("iban DE89 3704 0044 0532 0130 00 ok", "iban [REDACTED:iban] ok"),
            ("iban GB82WEST12345698765432", "iban [REDACTED:iban]"),
            ("from 192.168.1.20:8080", "from [REDACTED:ip]:8080"),
            ("v6 2001:db8::8a2e:370:7334 end", "v6 [REDACTED:ip] end"),
            ("call +1 415 555 0132 today", "call [REDACTED:phone] today"),
            ("call (415) 555-0132", "call [REDACTED:phone]"),
            ("ruf 030 1234 5678 an", "ruf [REDACTED:phone] an"),
            ("key sk-proj-abcdefghijklmnopqrstuvwx12", "key [REDACTED:secret]"),
            ("key sk-ant-api03-abcdefghijklmnopqrstuv", "key [REDACTED:secret]"),
            ("aws AKIAIOSFODNN7EXAMPLE", "aws [REDACTED:secret]"),
            ("Authorization: Bearer abcdefghijklmnopqrstuvwxyz123", "Authorization: [REDACTED:secret]"),
            (
                "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
                "jwt [REDACTED:secret]",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(r(text), want, "{text}");
        }
    }

    #[test]
    fn look_alikes_are_left_alone() {
        for text in [
            "order #123456 shipped",
            "card 4111 1111 1111 1112 fails Luhn",
            "0000 0000 0000 0000",
            "DE89 3704 0044 0532 0130 01 has a bad check",
            "at 12:30:45 on 2026-12-05",
            "version 1.2.3.4.5 and 300.1.1.1",
            "paths a::b and std::fs, and ::1",
            "f(x) = 12 + 34",
            "no secrets: sk-short",
        ] {
            assert_eq!(r(text), text, "{text}");
        }
    }

    #[test]
    fn nothing_found_borrows_and_overlaps_go_to_the_first() {
        assert!(matches!(
            Redactor::builtin().redact("plain"),
            Cow::Borrowed(_)
        ));
        // A token that holds digit runs is one secret, not a secret and phone numbers.
        let t = "xoxb-1234-5678901234-abcdefghij";
        assert_eq!(r(t), "[REDACTED:secret]");
        // Unicode around a finding is kept whole.
        assert_eq!(r("é jane@ex.com ü"), "é [REDACTED:email] ü");
    }

    #[test]
    fn custom_rules_are_named_and_checked() {
        let red = Redactor::empty().with_rule("ticket", r"TCK-\d{6}").unwrap();
        assert_eq!(
            red.redact("see TCK-004211 and TCK-1"),
            "see [REDACTED:ticket] and TCK-1"
        );
        assert!(matches!(
            Redactor::empty().with_rule("bad name", "x"),
            Err(RedactError::BadName(_))
        ));
        assert!(matches!(
            Redactor::empty().with_rule("x", "("),
            Err(RedactError::BadPattern { .. })
        ));
        assert!(matches!(
            Redactor::empty().with_rule("x", "a*"),
            Err(RedactError::MatchesEmpty(_))
        ));
    }

    proptest::proptest! {
        /// Any text: no panic, and what is left between markers is the text's own.
        #[test]
        fn any_text_is_redacted_without_panicking(text in "[ -~é0-9@.:+()-]{0,200}") {
            let out = builtin().redact(&text).into_owned();
            let kept: String = out.split("[REDACTED:").map(|p| p.split_once(']').map_or(p, |x| x.1)).collect();
            proptest::prop_assert!(kept.len() <= text.len());
        }
    }
}
