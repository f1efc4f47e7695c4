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
    /// Which key namespaces ([`ns`]) occur, so a convention with none of its keys present is
    /// skipped without dozens of failed lookups.
    namespaces: u32,
}

/// Key namespaces (the text before a key's first dot) the conventions test for.
pub(crate) mod ns {
    pub(crate) const GEN_AI: u32 = 1 << 0;
    pub(crate) const LLM: u32 = 1 << 1;
    pub(crate) const LANGFUSE: u32 = 1 << 2;
    pub(crate) const TRACELOOP: u32 = 1 << 3;
    pub(crate) const OPENINFERENCE: u32 = 1 << 4;
    pub(crate) const EMBEDDING: u32 = 1 << 5;
    pub(crate) const INPUT: u32 = 1 << 6;
    pub(crate) const OUTPUT: u32 = 1 << 7;
    pub(crate) const TOOL: u32 = 1 << 8;
    pub(crate) const TOOL_CALL: u32 = 1 << 9;
    pub(crate) const TAG: u32 = 1 << 10;
    pub(crate) const METADATA: u32 = 1 << 11;
    /// Any key outside the namespaces above.
    pub(crate) const OTHER: u32 = 1 << 31;

    pub(crate) fn of(key: &str) -> u32 {
        let head = key.split_once('.').map_or(key, |(h, _)| h);
        match head {
            "gen_ai" => GEN_AI,
            "llm" => LLM,
            "langfuse" => LANGFUSE,
            "traceloop" => TRACELOOP,
            "openinference" => OPENINFERENCE,
            "embedding" => EMBEDDING,
            "input" => INPUT,
            "output" => OUTPUT,
            "tool" => TOOL,
            "tool_call" => TOOL_CALL,
            "tag" => TAG,
            "metadata" => METADATA,
            _ => OTHER,
        }
    }
}

impl<'a> Attrs<'a> {
    pub(crate) fn new(map: &'a Attributes) -> Self {
        let namespaces = map.keys().fold(0, |acc, k| acc | ns::of(k));
        Attrs { map, namespaces }
    }

    /// True when any key is in one of the namespaces of `mask` (see [`ns`]).
    pub(crate) fn has_namespace(&self, mask: u32) -> bool {
        self.namespaces & mask != 0
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
