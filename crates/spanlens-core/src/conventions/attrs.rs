//! Typed, lenient access to raw attributes: instrumentations disagree on whether a count is an
//! int, a float or a string, and whether a list is an array or a JSON-encoded string.

use crate::span::Attributes;
use crate::time::Timestamp;
use crate::usage::json_u64;
use serde_json::Value;
use std::collections::BTreeMap;

/// A read-only view of a span's attributes.
pub(crate) struct Attrs<'a> {
    map: &'a Attributes,
}

impl<'a> Attrs<'a> {
    pub(crate) fn new(map: &'a Attributes) -> Self {
        Attrs { map }
    }

    pub(crate) fn has(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    pub(crate) fn has_prefix(&self, prefix: &str) -> bool {
        self.prefixed(prefix).next().is_some()
    }

    pub(crate) fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// A non-empty string value.
    pub(crate) fn str(&self, key: &str) -> Option<&'a str> {
        self.get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    }

    /// A string, or a number/bool rendered as text.
    pub(crate) fn string(&self, key: &str) -> Option<String> {
        match self.get(key)? {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    pub(crate) fn first_string(&self, keys: &[&str]) -> Option<String> {
        keys.iter().find_map(|k| self.string(k))
    }

    pub(crate) fn u64(&self, key: &str) -> Option<u64> {
        self.get(key).and_then(json_u64)
    }

    pub(crate) fn first_u64(&self, keys: &[&str]) -> Option<u64> {
        keys.iter().find_map(|k| self.u64(k))
    }

    pub(crate) fn f64(&self, key: &str) -> Option<f64> {
        match self.get(key)? {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// A time given as RFC 3339 text (possibly JSON-quoted) or as integer nanoseconds.
    pub(crate) fn time(&self, key: &str) -> Option<Timestamp> {
        match self.get(key)? {
            Value::String(s) => Timestamp::parse_rfc3339(s.trim().trim_matches('"')).ok(),
            v => json_u64(v).map(Timestamp),
        }
    }

    /// A structured value: kept as is, or parsed when it is JSON text.
    pub(crate) fn json(&self, key: &str) -> Option<Value> {
        match self.get(key)? {
            Value::String(s) => serde_json::from_str(s).ok(),
            v => Some(v.clone()),
        }
    }

    /// A list of strings: an array, a JSON-encoded array, or a single string.
    pub(crate) fn strings(&self, key: &str) -> Vec<String> {
        let scalar = |v: &Value| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        match self.get(key) {
            Some(Value::Array(a)) => a.iter().filter_map(scalar).collect(),
            Some(Value::String(s)) if s.trim_start().starts_with('[') => {
                match serde_json::from_str::<Vec<Value>>(s) {
                    Ok(a) => a.iter().filter_map(scalar).collect(),
                    Err(_) => vec![s.clone()],
                }
            }
            Some(Value::String(s)) if !s.is_empty() => vec![s.clone()],
            _ => Vec::new(),
        }
    }

    /// Entries whose key starts with `prefix`, with the prefix removed.
    pub(crate) fn prefixed<'p>(
        &'p self,
        prefix: &'p str,
    ) -> impl Iterator<Item = (&'a str, &'a Value)> + 'p {
        self.map
            .range::<str, _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .take_while(move |(k, _)| k.starts_with(prefix))
            .map(move |(k, v)| (&k[prefix.len()..], v))
    }

    /// Flattened lists (`prefix.0.rest`, `prefix.1.rest`, …) grouped by index, in index order.
    pub(crate) fn indexed(&self, prefix: &str) -> BTreeMap<usize, Attributes> {
        let mut out: BTreeMap<usize, Attributes> = BTreeMap::new();
        for (rest, v) in self.prefixed(prefix) {
            let Some((idx, tail)) = rest.split_once('.') else {
                continue;
            };
            if let Ok(i) = idx.parse::<usize>() {
                out.entry(i)
                    .or_default()
                    .insert(tail.to_string(), v.clone());
            }
        }
        out
    }
}
