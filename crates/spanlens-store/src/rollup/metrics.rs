//! What a rollup row holds for the metrics queries, how rows merge and subtract, and how a
//! [`MetricsQuery`] reads them.
//!
//! A row (one family, one time bucket) maps a span *class* — the values the queries group and
//! filter on — to the sums of its spans ([`Agg`]): counts, the six token sums, cost in nano-USD,
//! retries, and latency and TTFT histograms. Two families keep different classes, because a
//! class that kept every value would be one row per span:
//!
//! - [`Family::Classes`]: kind, request and response model, provider, agent and tool. Tens of
//!   classes per bucket; answers every grouping but `user`.
//! - [`Family::Users`]: kind, request and response model, provider and user. One class per user
//!   and model; answers the `user` grouping with the kind, model and provider filters. Kept per
//!   hour and day only (the hour's spans are scanned at a range's edges): quarter-hour rows would
//!   hold about one span per user.
//!
//! Sums are exact (`i128`, clamped only when an answer is built, as the old scan clamped), so
//! any split of the spans into rows merges to the same answer, and subtracting a span's
//! contribution undoes adding it.

use super::codec::{CodecError, Reader, Writer};
use super::hist::Hist;
use super::time::Level;
use crate::types::{GroupBy, MetricRow, MetricsQuery, Percentiles};
use spanlens_core::{NanoUsd, Timestamp};
use std::collections::{BTreeMap, HashMap};

/// A group of rollup rows, each keeping its own span classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// Span classes without the user (see the module docs).
    Classes,
    /// Span classes with the user, without agent and tool.
    Users,
    /// Rate-limit headroom per provider and window (see `headroom`), by snapshot time.
    Headroom,
    /// Retried spans' figures for the recovery report (see `retries`), by span start.
    Retries,
}

impl Family {
    /// The stored code of the family.
    pub fn code(self) -> i64 {
        match self {
            Family::Classes => 1,
            Family::Users => 2,
            Family::Headroom => 3,
            Family::Retries => 4,
        }
    }

    /// The bucket sizes kept for the family, finest first.
    pub fn levels(self) -> &'static [Level] {
        match self {
            Family::Classes | Family::Headroom | Family::Retries => &Level::ALL,
            Family::Users => &[Level::Hour, Level::Day, Level::Week],
        }
    }
}

fn nonneg(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// The `spans` columns a [`SpanStats`] is read from, in its field order (the same on every
/// backend's schema).
pub const STATS_COLUMNS: &str = "start_ns, kind, status, duration_ns, ttft_ns, input_tokens, \
     output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens, total_tokens, \
     cost_nano, retry_count, request_model, response_model, provider, agent_name, user_id, \
     tool_name, unpriced";

/// What a span contributes to the metrics: its typed columns, as stored in `spans`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanStats<'a> {
    /// Start, ns since the epoch.
    pub start_ns: i64,
    /// Span kind (`llm`, `tool`, …).
    pub kind: &'a str,
    /// Status is `error`.
    pub error: bool,
    /// Duration of an ended span.
    pub duration_ns: Option<i64>,
    /// Time to first token.
    pub ttft_ns: Option<i64>,
    /// Input, output, cache read, cache write, reasoning and total tokens.
    pub tokens: [i64; 6],
    /// Cost in nano-USD (`None` when the span has none).
    pub cost_nano: Option<i64>,
    /// A model call the catalog could not price (`spans.unpriced`), counted so a group's cost
    /// never reads as a silent $0.
    pub unpriced: bool,
    /// Retries recorded on the span.
    pub retry_count: i64,
    /// Requested model.
    pub request_model: Option<&'a str>,
    /// Model the response names.
    pub response_model: Option<&'a str>,
    /// Model provider.
    pub provider: Option<&'a str>,
    /// Agent name.
    pub agent: Option<&'a str>,
    /// End user.
    pub user: Option<&'a str>,
    /// Tool name (tool spans).
    pub tool: Option<&'a str>,
}

impl<'a> SpanStats<'a> {
    /// The span's class in a family.
    pub fn dims(&self, family: Family) -> DimsRef<'a> {
        let users = family == Family::Users;
        DimsRef {
            kind: self.kind,
            request_model: self.request_model,
            response_model: self.response_model,
            provider: self.provider,
            agent: if users { None } else { self.agent },
            tool: if users { None } else { self.tool },
            user: if users { self.user } else { None },
        }
    }
}

/// A span class, borrowed (from a span at ingest, from a stored body when it is read).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DimsRef<'a> {
    pub kind: &'a str,
    pub request_model: Option<&'a str>,
    pub response_model: Option<&'a str>,
    pub provider: Option<&'a str>,
    pub agent: Option<&'a str>,
    pub tool: Option<&'a str>,
    pub user: Option<&'a str>,
}

/// The sums of the spans of one class in one bucket. Signed, so a delta can take spans back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Agg {
    /// Spans.
    pub spans: i64,
    /// Spans with status `error`.
    pub errors: i64,
    /// Spans that have a cost (so a day with only $0 spans still has a cost row).
    pub priced: i64,
    /// Model calls the catalog could not price: the cost is a lower bound when above 0.
    pub unpriced: i64,
    /// Retries.
    pub retries: i128,
    /// Cost, nano-USD.
    pub cost: i128,
    /// Input, output, cache read, cache write, reasoning and total tokens.
    pub tokens: [i128; 6],
    /// Durations of ended spans.
    pub duration: Hist,
    /// Times to first token.
    pub ttft: Hist,
}

impl Agg {
    /// Counts one span (`sign` +1) or takes it back (-1). Negative tokens, durations and
    /// retries count as 0, as the scan they replace did.
    pub fn add(&mut self, s: &SpanStats<'_>, sign: i64) {
        let w = i128::from(sign);
        self.spans += sign;
        self.errors += if s.error { sign } else { 0 };
        self.retries += w * i128::from(nonneg(s.retry_count));
        if let Some(c) = s.cost_nano {
            self.priced += sign;
            self.cost += w * i128::from(c);
        }
        if s.unpriced {
            self.unpriced += sign;
        }
        for (sum, t) in self.tokens.iter_mut().zip(s.tokens) {
            *sum += w * i128::from(nonneg(t));
        }
        if let Some(d) = s.duration_ns {
            self.duration.add(nonneg(d), sign);
        }
        if let Some(t) = s.ttft_ns {
            self.ttft.add(nonneg(t), sign);
        }
    }

    /// Adds `other` times `sign`.
    pub fn merge(&mut self, o: &Agg, sign: i64) {
        let w = i128::from(sign);
        self.spans = self.spans.saturating_add(o.spans.saturating_mul(sign));
        self.errors = self.errors.saturating_add(o.errors.saturating_mul(sign));
        self.priced = self.priced.saturating_add(o.priced.saturating_mul(sign));
        self.unpriced = self
            .unpriced
            .saturating_add(o.unpriced.saturating_mul(sign));
        self.retries = self.retries.saturating_add(o.retries.saturating_mul(w));
        self.cost = self.cost.saturating_add(o.cost.saturating_mul(w));
        for (a, b) in self.tokens.iter_mut().zip(o.tokens) {
            *a = a.saturating_add(b.saturating_mul(w));
        }
        self.duration.merge(&o.duration, sign);
        self.ttft.merge(&o.ttft, sign);
    }

    /// True when nothing is left (every span counted was taken back).
    pub fn is_zero(&self) -> bool {
        self.spans == 0
            && self.errors == 0
            && self.priced == 0
            && self.unpriced == 0
            && self.retries == 0
            && self.cost == 0
            && self.tokens.iter().all(|t| *t == 0)
            && self.duration.is_empty()
            && self.ttft.is_empty()
    }

    /// Writes a mask of the fields that are not zero, then those fields: tokens and cost are
    /// zero for most spans that are not model calls, and a span class without retries or
    /// TTFT leaves those out. The unpriced count (bit 13, added by migration 8) is written
    /// right after the other counts, so [`Agg::encoded_cost`] finds it without skipping the
    /// histograms; rows written before it have no bit 13 and read as 0.
    pub fn encode(&self, w: &mut Writer) {
        let mut mask = 0u64;
        let ints = [self.spans, self.errors, self.priced];
        let wide = [
            self.retries,
            self.cost,
            self.tokens[0],
            self.tokens[1],
            self.tokens[2],
            self.tokens[3],
            self.tokens[4],
            self.tokens[5],
        ];
        for (k, v) in ints.iter().enumerate() {
            if *v != 0 {
                mask |= 1 << k;
            }
        }
        for (k, v) in wide.iter().enumerate() {
            if *v != 0 {
                mask |= 1 << (3 + k);
            }
        }
        if !self.duration.is_empty() {
            mask |= 1 << 11;
        }
        if !self.ttft.is_empty() {
            mask |= 1 << 12;
        }
        if self.unpriced != 0 {
            mask |= 1 << UNPRICED_BIT;
        }
        w.u64(mask);
        for (k, v) in ints.iter().enumerate() {
            if mask & (1 << k) != 0 {
                w.i64(*v);
            }
        }
        if mask & (1 << UNPRICED_BIT) != 0 {
            w.i64(self.unpriced);
        }
        for (k, v) in wide.iter().enumerate() {
            if mask & (1 << (3 + k)) != 0 {
                w.i128(*v);
            }
        }
        if mask & (1 << 11) != 0 {
            self.duration.encode(w);
        }
        if mask & (1 << 12) != 0 {
            self.ttft.encode(w);
        }
    }

    /// Adds an encoded aggregate times `sign`.
    pub fn merge_encoded(&mut self, r: &mut Reader<'_>, sign: i64) -> Result<(), CodecError> {
        let w = i128::from(sign);
        let mask = r.u64()?;
        if mask >> (UNPRICED_BIT + 1) != 0 {
            return Err(CodecError(format!("unknown aggregate fields {mask:#x}")));
        }
        let on = |k: u32| mask & (1 << k) != 0;
        let int = |k: u32, r: &mut Reader<'_>| -> Result<i64, CodecError> {
            Ok(if on(k) {
                r.i64()?.saturating_mul(sign)
            } else {
                0
            })
        };
        self.spans = self.spans.saturating_add(int(0, r)?);
        self.errors = self.errors.saturating_add(int(1, r)?);
        self.priced = self.priced.saturating_add(int(2, r)?);
        self.unpriced = self.unpriced.saturating_add(int(UNPRICED_BIT, r)?);
        let wide = |k: u32, r: &mut Reader<'_>| -> Result<i128, CodecError> {
            Ok(if on(k) {
                r.i128()?.saturating_mul(w)
            } else {
                0
            })
        };
        self.retries = self.retries.saturating_add(wide(3, r)?);
        self.cost = self.cost.saturating_add(wide(4, r)?);
        for (k, t) in self.tokens.iter_mut().enumerate() {
            *t = t.saturating_add(wide(5 + k as u32, r)?);
        }
        if on(11) {
            self.duration.merge_encoded(r, sign)?;
        }
        if on(12) {
            self.ttft.merge_encoded(r, sign)?;
        }
        Ok(())
    }

    /// Reads only the cost and the numbers of priced and unpriced spans of an encoded
    /// aggregate.
    pub fn encoded_cost(r: &mut Reader<'_>) -> Result<EncodedCost, CodecError> {
        let mask = r.u64()?;
        let on = |k: u32| mask & (1 << k) != 0;
        for k in 0..2 {
            if on(k) {
                r.i64()?;
            }
        }
        let priced = if on(2) { r.i64()? } else { 0 };
        let unpriced = if on(UNPRICED_BIT) { r.i64()? } else { 0 };
        if on(3) {
            r.i128()?;
        }
        let cost = if on(4) { r.i128()? } else { 0 };
        Ok(EncodedCost {
            cost,
            priced,
            unpriced,
        })
    }

    /// The answer row of the group.
    pub fn into_row(self, key: Option<String>) -> MetricRow {
        let u = |v: i128| u64::try_from(v.max(0)).unwrap_or(u64::MAX);
        let pct = |h: &Hist| Percentiles {
            p50: h.percentile(50.0),
            p95: h.percentile(95.0),
            p99: h.percentile(99.0),
            count: nonneg(h.total()),
        };
        MetricRow {
            key,
            span_count: nonneg(self.spans),
            error_count: nonneg(self.errors),
            retry_count: u(self.retries),
            input_tokens: u(self.tokens[0]),
            output_tokens: u(self.tokens[1]),
            cache_read_tokens: u(self.tokens[2]),
            cache_write_tokens: u(self.tokens[3]),
            reasoning_tokens: u(self.tokens[4]),
            total_tokens: u(self.tokens[5]),
            cost: NanoUsd(clamp_i64(self.cost)),
            unpriced_span_count: nonneg(self.unpriced),
            latency: pct(&self.duration),
            ttft: pct(&self.ttft),
        }
    }
}

/// Mask bit of the unpriced count in an encoded aggregate.
const UNPRICED_BIT: u32 = 13;

/// What [`Agg::encoded_cost`] reads of an encoded aggregate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EncodedCost {
    /// Cost, nano-USD.
    pub cost: i128,
    /// Spans that have a cost.
    pub priced: i64,
    /// Model calls without a price.
    pub unpriced: i64,
}

fn clamp_i64(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

const BODY_VERSION: u8 = 1;

/// A class as string references: the 1-based index of each field's value in a string list
/// (kind first), 0 for none.
pub type ClassRefs = [u32; 7];

/// Encodes a metrics row: a string table, then per class its seven string references and its
/// length-prefixed aggregate (so a query skips the classes it filters out without decoding).
/// `strings` is a list the entries' references point into; the row keeps only the strings
/// it uses. Local indexes are found by array lookups, not hashing, so encoding costs little
/// per entry.
pub fn encode_metrics(strings: &[&str], entries: &[(ClassRefs, &Agg)]) -> Vec<u8> {
    let mut local: Vec<u32> = vec![0; strings.len() + 1];
    let mut used: Vec<u32> = Vec::new();
    let mut out = Writer::default();
    let mut agg = Writer::default();
    let mut live = 0u64;
    for (refs, a) in entries {
        if a.is_zero() {
            continue;
        }
        live += 1;
        for r in refs {
            let g = *r as usize;
            if g == 0 || g >= local.len() {
                out.u64(0);
                continue;
            }
            if local[g] == 0 {
                used.push(*r);
                local[g] = used.len() as u32;
            }
            out.u64(u64::from(local[g]));
        }
        agg.buf.clear();
        a.encode(&mut agg);
        out.bytes(&agg.buf);
    }
    let mut w = Writer::default();
    w.buf.push(BODY_VERSION);
    w.u64(used.len() as u64);
    for g in &used {
        w.str(strings[*g as usize - 1]);
    }
    w.u64(live);
    w.buf.extend_from_slice(&out.buf);
    w.buf
}

/// What [`decode_metrics`] calls with a row's string table, a class and its aggregate.
pub type EntryFn<'a, 'b> =
    dyn FnMut(&[&'b str], ClassRefs, &'b [u8]) -> Result<(), CodecError> + 'a;

/// Reads an encoded metrics row: calls `entry` with the row's string table, each class as
/// references into it (1-based, 0 for none; every reference checked) and its encoded
/// aggregate.
pub fn decode_metrics<'b>(body: &'b [u8], entry: &mut EntryFn<'_, 'b>) -> Result<(), CodecError> {
    let mut r = Reader::new(body);
    let version = r.u8()?;
    if version != BODY_VERSION {
        return Err(CodecError(format!("unknown rollup body version {version}")));
    }
    let n = r.len()?;
    let mut strings = Vec::with_capacity(n);
    for _ in 0..n {
        strings.push(r.str()?);
    }
    let entries = r.len()?;
    for _ in 0..entries {
        let mut refs: ClassRefs = [0; 7];
        for slot in refs.iter_mut() {
            let i = r.u64()?;
            if i > strings.len() as u64 {
                return Err(CodecError(format!("string {i} of {}", strings.len())));
            }
            *slot = i as u32;
        }
        if refs[0] == 0 {
            return Err(CodecError("class without a kind".into()));
        }
        entry(&strings, refs, r.bytes()?)?;
    }
    Ok(())
}

/// Calls `f` with each class of an encoded metrics row and its encoded aggregate.
pub fn for_each_metrics_entry<'b>(
    body: &'b [u8],
    f: &mut dyn FnMut(DimsRef<'b>, &'b [u8]) -> Result<(), CodecError>,
) -> Result<(), CodecError> {
    let mut r = Reader::new(body);
    let version = r.u8()?;
    if version != BODY_VERSION {
        return Err(CodecError(format!("unknown rollup body version {version}")));
    }
    let n = r.len()?;
    let mut strings = Vec::with_capacity(n);
    for _ in 0..n {
        strings.push(r.str()?);
    }
    let get = |i: u64| -> Result<Option<&'b str>, CodecError> {
        match i {
            0 => Ok(None),
            i => strings
                .get((i - 1) as usize)
                .copied()
                .map(Some)
                .ok_or_else(|| CodecError(format!("string {i} of {}", strings.len()))),
        }
    };
    let entries = r.len()?;
    for _ in 0..entries {
        let kind = get(r.u64()?)?.ok_or_else(|| CodecError("class without a kind".into()))?;
        let d = DimsRef {
            kind,
            request_model: get(r.u64()?)?,
            response_model: get(r.u64()?)?,
            provider: get(r.u64()?)?,
            agent: get(r.u64()?)?,
            tool: get(r.u64()?)?,
            user: get(r.u64()?)?,
        };
        let agg = r.bytes()?;
        f(d, agg)?;
    }
    Ok(())
}

/// Which spans a metrics query reads and how it groups them, on span classes.
#[derive(Debug, Clone)]
pub struct Select {
    group_by: GroupBy,
    kind: Option<String>,
    model: Option<String>,
    provider: Option<String>,
    /// The query can match nothing (tools grouped under a kind other than `tool`).
    nothing: bool,
}

/// A group of a metrics answer, borrowed while it is looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRef<'a> {
    /// Spans without the grouping value (and everything for `GroupBy::All`).
    None,
    /// A grouping value.
    Text(&'a str),
    /// A UTC day number.
    Day(i64),
}

impl Select {
    /// The selection of a query: its filters, and for the per-tool grouping only tool spans.
    pub fn new(q: &MetricsQuery) -> Select {
        let mut kind = q.kind.map(|k| k.as_str().to_string());
        let mut nothing = false;
        if q.group_by == GroupBy::Tool {
            nothing = kind.as_deref().is_some_and(|k| k != "tool");
            kind = Some("tool".into());
        }
        Select {
            group_by: q.group_by,
            kind,
            model: q.model.clone(),
            provider: q.provider.clone(),
            nothing,
        }
    }

    /// True when the query cannot match any span.
    pub fn matches_nothing(&self) -> bool {
        self.nothing
    }

    /// The family whose classes carry the grouping value.
    pub fn family(&self) -> Family {
        if self.group_by == GroupBy::User {
            Family::Users
        } else {
            Family::Classes
        }
    }

    /// The kind the query is limited to, if any.
    pub fn kind(&self) -> Option<&str> {
        self.kind.as_deref()
    }

    /// True when spans of this class are counted.
    pub fn accepts(&self, d: &DimsRef<'_>) -> bool {
        !self.nothing
            && self.kind.as_deref().is_none_or(|k| d.kind == k)
            && self
                .model
                .as_deref()
                .is_none_or(|m| d.request_model == Some(m) || d.response_model == Some(m))
            && self
                .provider
                .as_deref()
                .is_none_or(|p| d.provider == Some(p))
    }

    /// The group of a class whose spans started on UTC day `day`.
    pub fn key<'a>(&self, d: &DimsRef<'a>, day: i64) -> KeyRef<'a> {
        let text = |v: Option<&'a str>| v.map_or(KeyRef::None, KeyRef::Text);
        match self.group_by {
            GroupBy::All => KeyRef::None,
            GroupBy::Model => text(d.request_model.or(d.response_model)),
            GroupBy::Provider => text(d.provider),
            GroupBy::Agent => text(d.agent),
            GroupBy::User => text(d.user),
            GroupBy::Day => KeyRef::Day(day),
            GroupBy::Kind => KeyRef::Text(d.kind),
            GroupBy::Tool => text(d.tool),
        }
    }
}

/// Encoded aggregates a [`Groups`] holds before merging them (then it merges them group by
/// group and starts again).
const WAITING_BYTES: usize = 32 << 20;

/// The groups of a metrics answer while rows and spans are merged into them.
///
/// Encoded aggregates from rows wait in an arena and are merged group by group: merged as
/// read, each entry of a day row of the users family lands in another user's histograms
/// (about 15 MB of them for 1,000 users), so half of a 30-day metrics-by-user query was
/// waiting on cache misses.
#[derive(Debug, Default)]
pub struct Groups {
    text: HashMap<String, usize>,
    days: BTreeMap<i64, usize>,
    none: Option<usize>,
    slots: Vec<Slot>,
    arena: Vec<u8>,
}

#[derive(Debug, Default)]
struct Slot {
    agg: Agg,
    /// `(start, end, sign)` of encoded aggregates in the arena.
    waiting: Vec<(usize, usize, i64)>,
}

impl Groups {
    fn index(&mut self, key: KeyRef<'_>) -> usize {
        let next = self.slots.len();
        let i = match key {
            KeyRef::None => *self.none.get_or_insert(next),
            KeyRef::Day(d) => *self.days.entry(d).or_insert(next),
            KeyRef::Text(k) => match self.text.get(k) {
                Some(i) => *i,
                None => {
                    self.text.insert(k.to_string(), next);
                    next
                }
            },
        };
        if i == next {
            self.slots.push(Slot::default());
        }
        i
    }

    /// The running sums of a group.
    pub fn slot(&mut self, key: KeyRef<'_>) -> &mut Agg {
        let i = self.index(key);
        &mut self.slots[i].agg
    }

    /// Adds an encoded aggregate times `sign` to a group (merged later, see the type's docs).
    pub fn add_encoded(
        &mut self,
        key: KeyRef<'_>,
        agg: &[u8],
        sign: i64,
    ) -> Result<(), CodecError> {
        let i = self.index(key);
        let start = self.arena.len();
        self.arena.extend_from_slice(agg);
        self.slots[i].waiting.push((start, self.arena.len(), sign));
        if self.arena.len() >= WAITING_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    /// Merges every waiting aggregate into its group.
    pub fn flush(&mut self) -> Result<(), CodecError> {
        let arena = &self.arena;
        for slot in &mut self.slots {
            for (a, b, sign) in slot.waiting.drain(..) {
                let bytes = arena.get(a..b).unwrap_or_default();
                slot.agg.merge_encoded(&mut Reader::new(bytes), sign)?;
            }
        }
        self.arena.clear();
        Ok(())
    }

    /// Adds every group of `other` (flushed) times `sign`.
    pub fn merge(&mut self, other: &Groups, sign: i64) {
        for (k, i) in &other.text {
            self.slot(KeyRef::Text(k)).merge(&other.slots[*i].agg, sign);
        }
        for (d, i) in &other.days {
            self.slot(KeyRef::Day(*d)).merge(&other.slots[*i].agg, sign);
        }
        if let Some(i) = other.none {
            self.slot(KeyRef::None).merge(&other.slots[i].agg, sign);
        }
    }

    /// The answer rows: by day in day order, otherwise most costly first, then most spans,
    /// then by key with the group without a key last. Groups left with no span (every span of
    /// them re-sent elsewhere) are not rows.
    pub fn into_rows(mut self) -> Result<Vec<MetricRow>, CodecError> {
        self.flush()?;
        let mut slots: Vec<Option<Agg>> = self.slots.into_iter().map(|s| Some(s.agg)).collect();
        let mut take = |i: usize| slots.get_mut(i).and_then(Option::take).unwrap_or_default();
        let mut out: Vec<MetricRow> = Vec::new();
        if !self.days.is_empty() {
            for (d, i) in self.days {
                let a = take(i);
                if a.spans > 0 {
                    out.push(a.into_row(Some(day_label(d))));
                }
            }
            return Ok(out);
        }
        for (k, i) in self.text {
            let a = take(i);
            if a.spans > 0 {
                out.push(a.into_row(Some(k)));
            }
        }
        if let Some(a) = self.none.map(&mut take).filter(|a| a.spans > 0) {
            out.push(a.into_row(None));
        }
        order_rows(&mut out);
        Ok(out)
    }
}

/// Puts the rows of an answer not grouped by day in its order: most costly first, then most
/// spans, then by key with the group without a key last.
pub fn order_rows(rows: &mut [MetricRow]) {
    rows.sort_by(|a, b| {
        b.cost
            .cmp(&a.cost)
            .then(b.span_count.cmp(&a.span_count))
            .then_with(|| match (&a.key, &b.key) {
                (Some(x), Some(y)) => x.cmp(y),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            })
    });
}

/// `YYYY-MM-DD` of a UTC day number.
pub fn day_label(day: i64) -> String {
    let ns = u64::try_from(day.saturating_mul(Level::Day.width_ns())).unwrap_or(0);
    let s = Timestamp(ns).to_rfc3339();
    s.get(..10).unwrap_or(&s).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use spanlens_core::SpanKind;

    fn stats<'a>(kind: &'a str, model: Option<&'a str>, user: Option<&'a str>) -> SpanStats<'a> {
        SpanStats {
            start_ns: 0,
            kind,
            error: false,
            duration_ns: Some(1_000_000),
            ttft_ns: None,
            tokens: [10, 5, 0, 0, 0, 15],
            cost_nano: Some(7),
            unpriced: false,
            retry_count: 0,
            request_model: model,
            response_model: None,
            provider: None,
            agent: Some("a"),
            user,
            tool: None,
        }
    }

    #[test]
    fn adding_and_taking_back_cancels() {
        let s = stats("llm", Some("m"), Some("u"));
        let mut a = Agg::default();
        a.add(&s, 1);
        a.add(&s, 1);
        a.add(&s, -1);
        let mut one = Agg::default();
        one.add(&s, 1);
        assert_eq!(a.clone().into_row(None), one.clone().into_row(None));
        a.add(&s, -1);
        assert!(a.is_zero());
    }

    /// The unpriced count rides after the other counts: it round-trips, the cost reader finds
    /// it, and an aggregate of only an unpriced count is not empty.
    #[test]
    fn unpriced_counts_are_encoded_and_read_back() {
        let s = SpanStats {
            cost_nano: None,
            unpriced: true,
            ..stats("llm", Some("ft"), None)
        };
        let mut a = Agg::default();
        a.add(&s, 1);
        a.add(&stats("llm", Some("m"), None), 1);
        assert_eq!((a.unpriced, a.priced), (1, 1));
        let mut w = Writer::default();
        a.encode(&mut w);
        let mut back = Agg::default();
        back.merge_encoded(&mut Reader::new(&w.buf), 1).unwrap();
        assert_eq!(back, a);
        assert_eq!(back.into_row(None).unpriced_span_count, 1);
        let c = Agg::encoded_cost(&mut Reader::new(&w.buf)).unwrap();
        assert_eq!((c.cost, c.priced, c.unpriced), (7, 1, 1));
        // Taken back as counted without the flag and added with it: only the count is left.
        let mut only = Agg::default();
        only.add(
            &SpanStats {
                unpriced: false,
                ..s
            },
            -1,
        );
        only.add(&s, 1);
        assert!(!only.is_zero());
        assert_eq!(only.unpriced, 1);
        assert_eq!(only.spans, 0);
    }

    /// A body written before the unpriced count existed (no bit 13) reads as 0 unpriced.
    #[test]
    fn aggregates_without_the_unpriced_bit_read_as_none_unpriced() {
        let mut w = Writer::default();
        w.u64(0b101); // spans and priced
        w.i64(3);
        w.i64(2);
        let mut a = Agg::default();
        a.merge_encoded(&mut Reader::new(&w.buf), 1).unwrap();
        assert_eq!((a.spans, a.priced, a.unpriced), (3, 2, 0));
        let mut w = Writer::default();
        w.u64(1 << 14);
        assert!(Agg::default()
            .merge_encoded(&mut Reader::new(&w.buf), 1)
            .is_err());
    }

    #[test]
    fn bodies_round_trip_and_drop_empty_classes() {
        let s1 = stats("llm", Some("m"), Some("u"));
        let s2 = stats("tool", None, None);
        let (mut a1, mut a2) = (Agg::default(), Agg::default());
        a1.add(&s1, 1);
        a2.add(&s2, 1);
        let empty = Agg::default();
        let dims = [
            s1.dims(Family::Users),
            s2.dims(Family::Users),
            s2.dims(Family::Classes),
        ];
        // Strings 1 "llm", 2 "m", 3 "u", 4 "tool", 5 "a" (the agent).
        let strings = ["llm", "m", "u", "tool", "a"];
        let refs: [ClassRefs; 3] = [
            [1, 2, 0, 0, 0, 0, 3],
            [4, 0, 0, 0, 0, 0, 0],
            [4, 0, 0, 0, 5, 0, 0],
        ];
        let entries = vec![(refs[0], &a1), (refs[1], &a2), (refs[2], &empty)];
        let bytes = encode_metrics(&strings, &entries);
        let mut back = Vec::new();
        for_each_metrics_entry(&bytes, &mut |d, agg| {
            let mut a = Agg::default();
            a.merge_encoded(&mut Reader::new(agg), 1)?;
            back.push((d, a));
            Ok(())
        })
        .unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!((back[0].0, &back[0].1), (dims[0], &a1));
        assert_eq!((back[1].0, &back[1].1), (dims[1], &a2));
        assert!(for_each_metrics_entry(&bytes[..bytes.len() - 1], &mut |_, _| Ok(())).is_err());
        assert!(for_each_metrics_entry(&[9, 0, 0], &mut |_, _| Ok(())).is_err());
    }

    #[test]
    fn select_filters_and_groups_classes() {
        let mut q = MetricsQuery::new("p", GroupBy::Tool);
        q.kind = Some(SpanKind::Llm);
        assert!(Select::new(&q).matches_nothing());
        let mut q = MetricsQuery::new("p", GroupBy::Model);
        q.model = Some("m-2024".into());
        let sel = Select::new(&q);
        let s = SpanStats {
            response_model: Some("m-2024"),
            ..stats("llm", Some("m"), None)
        };
        let d = s.dims(Family::Classes);
        assert!(sel.accepts(&d));
        assert_eq!(sel.key(&d, 0), KeyRef::Text("m"));
        assert!(!sel.accepts(&stats("llm", Some("x"), None).dims(Family::Classes)));
        assert_eq!(
            Select::new(&MetricsQuery::new("p", GroupBy::User)).family(),
            Family::Users
        );
    }
}
