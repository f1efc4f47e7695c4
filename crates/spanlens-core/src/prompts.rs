//! Prompt templates and their versions as spans use them: which (template, version) a span
//! belongs to, and the figures of each over many calls (calls, cost, latency percentiles, error
//! rate, mean scores), for `/api/v1/prompts` and `spanlens prompts`. Pure: the caller reads the
//! spans and scores.

use crate::evals::Score;
use crate::money::NanoUsd;
use crate::span::{Span, Status};
use crate::SpanId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The template and version a span used.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PromptRef {
    /// The template's name; a template the source does not name (OpenInference, the SDK's
    /// recorder) is known by the span's name, the operation that rendered it, so its versions
    /// stay together although their texts differ.
    pub name: String,
    /// Its version, when the source gave one.
    pub version: Option<String>,
}

fn non_blank(s: Option<&str>) -> Option<&str> {
    s.map(str::trim).filter(|s| !s.is_empty())
}

/// The template and version `span` used, if it carries a prompt.
pub fn prompt_of(span: &Span) -> Option<PromptRef> {
    let p = span.prompt.as_ref()?;
    prompt_ref(p.name.as_deref(), p.version.as_deref(), &span.name)
}

/// [`prompt_of`] from the parts: the prompt's name and version and the span's name.
pub fn prompt_ref(name: Option<&str>, version: Option<&str>, span_name: &str) -> Option<PromptRef> {
    let name = non_blank(name).or_else(|| non_blank(Some(span_name)))?;
    Some(PromptRef {
        name: name.to_string(),
        version: non_blank(version).map(str::to_string),
    })
}

/// The mean of one score name over the scores counted for a version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreMean {
    /// Score name.
    pub name: String,
    /// Scores with a value counted.
    pub count: u64,
    /// Their mean (a boolean's mean is its pass rate).
    pub mean: f64,
}

/// The figures of one version of a template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionFigures {
    /// The version (`null`: calls that named none).
    pub version: Option<String>,
    /// Spans that used it.
    pub calls: u64,
    /// Of them, spans in error.
    pub errors: u64,
    /// `errors / calls`.
    pub error_rate: f64,
    /// Their cost (a span recording the same provider call as another counts none).
    pub cost_usd: NanoUsd,
    /// Calls whose cost is unknown: `cost_usd` is then a lower bound.
    pub unpriced_count: u64,
    /// Median span duration, nearest rank, in nanoseconds (`null`: no call has ended).
    pub p50_ns: Option<u64>,
    /// 95th percentile of the span durations, nearest rank.
    pub p95_ns: Option<u64>,
    /// Distinct traces the calls are in.
    pub traces: u64,
    /// Start of the first call (Unix ns).
    pub first_ns: u64,
    /// Start of the last call (Unix ns).
    pub last_ns: u64,
    /// Mean of each score name, by name.
    pub scores: Vec<ScoreMean>,
}

/// One template and its versions (the versions sorted by their latest call, newest first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplateFigures {
    /// Template name.
    pub name: String,
    /// Calls over every version.
    pub calls: u64,
    /// Its versions.
    pub versions: Vec<VersionFigures>,
}

/// The value at percentile `p` (0..=100) of `sorted` by nearest rank: the smallest value with
/// at least `p` percent of the values at or below it.
pub fn nearest_rank(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len();
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, n) - 1])
}

#[derive(Default)]
struct Acc {
    calls: u64,
    errors: u64,
    cost: NanoUsd,
    unpriced: u64,
    durations: Vec<u64>,
    traces: std::collections::BTreeSet<[u8; 16]>,
    first: u64,
    last: u64,
    /// Score name → (sum, count).
    scores: BTreeMap<String, (f64, u64)>,
}

/// Sums calls into the figures of each (template, version).
#[derive(Default)]
pub struct PromptStats {
    by: BTreeMap<PromptRef, Acc>,
}

impl PromptStats {
    /// A new, empty sum.
    pub fn new() -> PromptStats {
        PromptStats::default()
    }

    /// Adds one trace's spans and the scores attached to it: each span with a prompt is a call
    /// of its version; a score on such a span counts for that version, a score on the trace
    /// itself (no span) once for each version the trace used, and scores on other spans for
    /// none.
    pub fn add_trace(&mut self, spans: &[Span], scores: &[Score]) {
        let mut used: BTreeMap<PromptRef, ()> = BTreeMap::new();
        let mut of_span: BTreeMap<SpanId, PromptRef> = BTreeMap::new();
        for s in spans {
            let Some(key) = prompt_of(s) else { continue };
            let acc = self.by.entry(key.clone()).or_default();
            let start = s.start_time.0;
            if acc.calls == 0 {
                acc.first = start;
                acc.last = start;
            }
            acc.calls += 1;
            acc.first = acc.first.min(start);
            acc.last = acc.last.max(start);
            acc.errors += u64::from(s.status == Status::Error);
            if s.duplicate_of.is_none() {
                if let Some(c) = &s.cost {
                    acc.cost = NanoUsd(acc.cost.0.saturating_add(c.amounts.total.0));
                }
                acc.unpriced += u64::from(s.unpriced_reason.is_some());
            }
            if let Some(d) = s.duration_ns() {
                acc.durations.push(d);
            }
            acc.traces.insert(s.trace_id.0);
            of_span.insert(s.span_id, key.clone());
            used.insert(key, ());
        }
        for sc in scores {
            let Some(v) = sc.value.filter(|v| v.is_finite()) else {
                continue;
            };
            let targets: Vec<&PromptRef> = match sc.span_id {
                Some(id) => of_span.get(&id).into_iter().collect(),
                None if sc.trace_id.is_some() => used.keys().collect(),
                None => Vec::new(),
            };
            for key in targets {
                if let Some(acc) = self.by.get_mut(key) {
                    let e = acc.scores.entry(sc.name.clone()).or_insert((0.0, 0));
                    e.0 += v;
                    e.1 += 1;
                }
            }
        }
    }

    /// The figures, templates by name, each template's versions newest first.
    pub fn finish(self) -> Vec<TemplateFigures> {
        let mut out: Vec<TemplateFigures> = Vec::new();
        for (key, mut acc) in self.by {
            acc.durations.sort_unstable();
            let v = VersionFigures {
                version: key.version,
                calls: acc.calls,
                errors: acc.errors,
                error_rate: if acc.calls == 0 {
                    0.0
                } else {
                    acc.errors as f64 / acc.calls as f64
                },
                cost_usd: acc.cost,
                unpriced_count: acc.unpriced,
                p50_ns: nearest_rank(&acc.durations, 50.0),
                p95_ns: nearest_rank(&acc.durations, 95.0),
                traces: acc.traces.len() as u64,
                first_ns: acc.first,
                last_ns: acc.last,
                scores: acc
                    .scores
                    .into_iter()
                    .map(|(name, (sum, count))| ScoreMean {
                        name,
                        count,
                        mean: sum / count as f64,
                    })
                    .collect(),
            };
            match out.last_mut() {
                Some(t) if t.name == key.name => {
                    t.calls += v.calls;
                    t.versions.push(v);
                }
                _ => out.push(TemplateFigures {
                    name: key.name,
                    calls: v.calls,
                    versions: vec![v],
                }),
            }
        }
        for t in &mut out {
            t.versions.sort_by(|a, b| {
                b.last_ns
                    .cmp(&a.last_ns)
                    .then_with(|| a.version.cmp(&b.version))
            });
        }
        out
    }
}

#[cfg(test)]
mod tests;
