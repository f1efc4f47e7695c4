//! Rollup rows in memory: a batch of spans summed into the rows it changes (built per
//! submission on the submitting thread, merged per group commit by the writer, written once
//! per row), and the rows read back to be compacted or rebuilt.
//!
//! Span classes are interned: each is packed into one byte string, looked up once, and sums
//! are keyed by `(row, class id)`. Merging a submission into its commit maps its few class
//! ids and adds sums by reference. (Owned classes of seven strings, hashed field by field and
//! cloned per submission, made the rollups cost about half of the writer's time.)

use super::codec::{CodecError, Reader};
use super::headroom::{add_sample, encode_headroom, merge_headroom, HeadroomBody, RateSample};
use super::metrics::{decode_metrics, encode_metrics, Agg, ClassRefs, DimsRef, Family, SpanStats};
use super::retries::{RetryBody, RetryFacts};
use super::time::Level;
use std::collections::{BTreeMap, HashMap};

/// Which row a sum belongs to (the backend adds the project).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RowKey {
    pub family: Family,
    pub level: Level,
    /// Start of the bucket, ns.
    pub bucket: i64,
}

/// Sums per rollup row and span class, and headroom per row.
#[derive(Debug, Clone, Default)]
pub struct Delta {
    /// Distinct field values of the classes; value `i` has id `i + 1` (0 is none).
    strings: Vec<Box<str>>,
    string_ids: HashMap<Box<str>, u32>,
    /// Per field, the id of the last value seen: spans of one trace repeat most values, and
    /// comparing with it saves hashing.
    last_value: [u32; 7],
    /// Classes as field ids; a class's id is its index.
    classes: Vec<ClassRefs>,
    class_ids: HashMap<ClassRefs, u32, RefsHash>,
    /// Per family, the last class seen and its id.
    last_class: [Option<(ClassRefs, u32)>; 2],
    /// Index into `aggs` per row and class (std's keyed hash: bucket starts come from spans,
    /// and a hash a sender could aim at would be theirs to slow down). Sorted once when
    /// encoded. The sums themselves (about 200 bytes each) live in `aggs`.
    sums: HashMap<(RowKey, u32), u32, RefsHash>,
    aggs: Vec<Agg>,
    headroom: HashMap<RowKey, HeadroomBody>,
    retries: HashMap<RowKey, RetryBody>,
    /// Running sums of coarse buckets whose rows are not built yet, kept from commit to commit
    /// so a bucket's row is encoded from memory when it is built (see `sqlite/rollups.rs`).
    pending: HashMap<(RowKey, u32), Agg, RefsHash>,
    pending_headroom: HashMap<RowKey, HeadroomBody>,
    pending_retries: HashMap<RowKey, RetryBody>,
    /// Per family and class: the finest bucket its last span fell in, and that span's slots
    /// in `aggs` at each level. Spans come roughly in time order, so most skip the map. (Per
    /// family: a class without agent, tool and user is the same in both.)
    recent: [Vec<Recent>; 2],
}

/// The finest bucket a class's last span fell in, and its slots at each level.
type Recent = Option<(i64, [u32; 3])>;

/// Hashes small integer keys (a class's seven field ids, a row and class): multiplied and
/// rotated with two keys drawn at random per delta. They are looked up several times per span,
/// and SipHash was the largest cost of summing; random keys still keep a sender from choosing
/// values that collide.
#[derive(Debug, Clone)]
pub struct RefsHash(u64, u64);

impl Default for RefsHash {
    fn default() -> RefsHash {
        use std::hash::BuildHasher;
        let s = std::collections::hash_map::RandomState::new();
        RefsHash(s.hash_one(1u8) | 1, s.hash_one(2u8))
    }
}

impl std::hash::BuildHasher for RefsHash {
    type Hasher = RefsHasher;
    fn build_hasher(&self) -> RefsHasher {
        RefsHasher {
            h: self.1,
            k: self.0,
        }
    }
}

/// The state of [`RefsHash`].
#[derive(Debug)]
pub struct RefsHasher {
    h: u64,
    k: u64,
}

impl std::hash::Hasher for RefsHasher {
    fn write(&mut self, bytes: &[u8]) {
        // An array of ids arrives as one write of its bytes: taken eight at a time.
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.write_u64(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.write_u64(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 56));
        }
    }

    fn write_u32(&mut self, v: u32) {
        self.write_u64(u64::from(v));
    }

    fn write_u64(&mut self, v: u64) {
        self.h = (self.h ^ v).wrapping_mul(self.k).rotate_left(29);
    }

    fn write_usize(&mut self, v: usize) {
        self.write_u64(v as u64);
    }

    fn write_u8(&mut self, v: u8) {
        self.write_u64(u64::from(v));
    }

    fn write_i64(&mut self, v: i64) {
        self.write_u64(v as u64);
    }

    fn write_isize(&mut self, v: isize) {
        self.write_u64(v as u64);
    }

    fn finish(&self) -> u64 {
        (self.h ^ (self.h >> 31)).wrapping_mul(self.k)
    }
}

/// Equal when every row holds the same sums, however they were built.
impl PartialEq for Delta {
    fn eq(&self, other: &Delta) -> bool {
        self.canonical() == other.canonical()
    }
}

type Canonical<'a> = (
    BTreeMap<(RowKey, [Option<&'a str>; 7]), &'a Agg>,
    BTreeMap<RowKey, &'a HeadroomBody>,
    BTreeMap<RowKey, &'a RetryBody>,
);

impl Delta {
    /// The field values of class `id`.
    fn values(&self, id: u32) -> Option<[Option<&str>; 7]> {
        let refs = self.classes.get(id as usize)?;
        let mut out = [None; 7];
        for (o, r) in out.iter_mut().zip(refs) {
            if *r != 0 {
                *o = Some(self.strings.get(*r as usize - 1)?.as_ref());
            }
        }
        Some(out)
    }

    fn canonical(&self) -> Canonical<'_> {
        let sums = self
            .sums
            .iter()
            .filter_map(|((k, id), i)| {
                let a = self.aggs.get(*i as usize).filter(|a| !a.is_zero())?;
                Some(((*k, self.values(*id)?), a))
            })
            .collect();
        let headroom = self
            .headroom
            .iter()
            .filter(|(_, h)| !h.is_empty())
            .map(|(k, h)| (*k, h))
            .collect();
        let retries = self
            .retries
            .iter()
            .filter(|(_, r)| !r.is_empty())
            .map(|(k, r)| (*k, r))
            .collect();
        (sums, headroom, retries)
    }

    /// The id of a field value.
    fn string_id(&mut self, s: &str) -> u32 {
        if let Some(id) = self.string_ids.get(s) {
            return *id;
        }
        self.strings.push(s.into());
        let id = self.strings.len() as u32;
        self.string_ids.insert(s.into(), id);
        id
    }

    /// The id of field `f`'s value, checking the field's last value first.
    fn field(&mut self, f: usize, v: Option<&str>) -> u32 {
        let Some(s) = v else { return 0 };
        let last = self.last_value[f];
        if last != 0
            && self
                .strings
                .get(last as usize - 1)
                .is_some_and(|x| **x == *s)
        {
            return last;
        }
        let id = self.string_id(s);
        self.last_value[f] = id;
        id
    }

    fn class_id(&mut self, refs: ClassRefs) -> u32 {
        if let Some(id) = self.class_ids.get(&refs) {
            return *id;
        }
        let id = self.classes.len() as u32;
        self.classes.push(refs);
        self.class_ids.insert(refs, id);
        id
    }

    fn intern(&mut self, family: usize, d: &DimsRef<'_>) -> u32 {
        let refs = [
            self.field(0, Some(d.kind)),
            self.field(1, d.request_model),
            self.field(2, d.response_model),
            self.field(3, d.provider),
            self.field(4, d.agent),
            self.field(5, d.tool),
            self.field(6, d.user),
        ];
        if let Some((last, id)) = self.last_class[family] {
            if last == refs {
                return id;
            }
        }
        let id = self.class_id(refs);
        self.last_class[family] = Some((refs, id));
        id
    }

    /// Where the sums of a class in a row are kept, created empty when new.
    fn slot_index(&mut self, key: RowKey, class: u32) -> u32 {
        let next = self.aggs.len() as u32;
        let i = *self.sums.entry((key, class)).or_insert(next);
        if i == next {
            self.aggs.push(Agg::default());
        }
        i
    }

    /// The sums of a class in a row, created empty when new.
    fn slot(&mut self, key: RowKey, class: u32) -> &mut Agg {
        let i = self.slot_index(key, class);
        &mut self.aggs[i as usize]
    }

    /// The sums of many spans (a commit's): each span is added to the finest bucket of each
    /// family, and the finest buckets are then added into the coarser buckets for which
    /// `coarse` says yes (those whose rows exist; see `sqlite/rollups.rs`).
    #[cfg(test)]
    pub fn of_spans<'a>(
        spans: impl ExactSizeIterator<Item = SpanStats<'a>>,
        coarse: &dyn Fn(RowKey) -> bool,
    ) -> Delta {
        let mut d = Delta::default();
        d.sum_spans(spans, coarse);
        d.clear_pending();
        d
    }

    /// Like [`Delta::of_spans`], into this delta: a writer keeps one per project, so its
    /// tables (field values, classes), its memory and its pending sums serve the next commit.
    /// Call [`Delta::clear_sums`] first. Sums of coarse buckets `coarse` says no to go to the
    /// pending sums.
    pub fn sum_spans<'a>(
        &mut self,
        spans: impl ExactSizeIterator<Item = SpanStats<'a>>,
        coarse: &dyn Fn(RowKey) -> bool,
    ) {
        self.sums.reserve(spans.len());
        self.aggs.reserve(spans.len());
        for s in spans {
            self.add_to_levels(&s, 1, 1);
        }
        self.roll_up(coarse);
    }

    /// Values and classes kept between commits before the tables start over.
    const MAX_KEPT_CLASSES: usize = 200_000;

    /// Drops every sum of the last commit, keeping the allocations, and the tables unless they
    /// grew large. Returns true when the tables started over, which also drops the pending
    /// sums (their classes were in them).
    pub fn clear_sums(&mut self) -> bool {
        self.sums.clear();
        self.aggs.clear();
        self.headroom.clear();
        self.retries.clear();
        for r in &mut self.recent {
            r.clear();
        }
        if self.classes.len() > Self::MAX_KEPT_CLASSES {
            self.strings.clear();
            self.string_ids.clear();
            self.classes.clear();
            self.class_ids.clear();
            self.last_value = [0; 7];
            self.last_class = [None; 2];
            self.clear_pending();
            return true;
        }
        false
    }

    /// Drops every pending sum.
    pub fn clear_pending(&mut self) {
        self.pending.clear();
        self.pending_headroom.clear();
        self.pending_retries.clear();
    }

    /// Removes the pending sums of bucket `key` and returns them as its encoded row (`None`
    /// when they add up to nothing).
    pub fn take_pending(&mut self, key: RowKey) -> Option<Vec<u8>> {
        if key.family == Family::Headroom {
            return self
                .pending_headroom
                .remove(&key)
                .filter(|h| !h.is_empty())
                .map(|h| encode_headroom(&h));
        }
        if key.family == Family::Retries {
            return self
                .pending_retries
                .remove(&key)
                .filter(|r| !r.is_empty())
                .map(|r| r.encode());
        }
        let ids: Vec<u32> = self
            .pending
            .keys()
            .filter(|(k, _)| *k == key)
            .map(|(_, id)| *id)
            .collect();
        let mut row: Vec<(ClassRefs, Agg)> = Vec::with_capacity(ids.len());
        for id in ids {
            if let (Some(a), Some(refs)) = (
                self.pending.remove(&(key, id)),
                self.classes.get(id as usize),
            ) {
                row.push((*refs, a));
            }
        }
        let entries: Vec<(ClassRefs, &Agg)> = row
            .iter()
            .filter(|(_, a)| !a.is_zero())
            .map(|(r, a)| (*r, a))
            .collect();
        if entries.is_empty() {
            return None;
        }
        let table: Vec<&str> = self.strings.iter().map(|s| s.as_ref()).collect();
        Some(encode_metrics(&table, &entries))
    }

    /// Adds the sums of each finest bucket into the coarser buckets holding it (those for
    /// which `coarse` says yes).
    fn roll_up(&mut self, coarse: &dyn Fn(RowKey) -> bool) {
        let finest: Vec<(RowKey, u32, u32)> = self
            .sums
            .iter()
            .filter(|((k, _), _)| k.family.levels().first() == Some(&k.level))
            .map(|((k, id), i)| (*k, *id, *i))
            .collect();
        for (key, id, src) in finest {
            for level in &key.family.levels()[1..] {
                let up = RowKey {
                    family: key.family,
                    level: *level,
                    bucket: level.bucket_of(key.bucket),
                };
                if !coarse(up) {
                    // Not built yet: kept until it is.
                    let src = &self.aggs[src as usize];
                    match self.pending.get_mut(&(up, id)) {
                        Some(p) => p.merge(src, 1),
                        None => {
                            self.pending.insert((up, id), src.clone());
                        }
                    }
                    continue;
                }
                let dst = self.slot_index(up, id) as usize;
                let src = src as usize;
                // Distinct slots: different rows.
                if dst == src {
                    continue;
                }
                let (a, b) = if src < dst {
                    let (lo, hi) = self.aggs.split_at_mut(dst);
                    (&lo[src], &mut hi[0])
                } else {
                    let (lo, hi) = self.aggs.split_at_mut(src);
                    (&hi[0], &mut lo[dst])
                };
                b.merge(a, 1);
            }
        }
    }

    /// Counts (`sign` +1) or takes back (-1) one span in the classes and users rows of every
    /// level.
    pub fn add_span(&mut self, s: &SpanStats<'_>, sign: i64) {
        self.add_to_levels(s, sign, 3);
    }

    /// Adds a span to the first `levels` levels of each family.
    fn add_to_levels(&mut self, s: &SpanStats<'_>, sign: i64, levels: usize) {
        for (f, family) in [Family::Classes, Family::Users].into_iter().enumerate() {
            let id = self.intern(f, &s.dims(family));
            let all = family.levels();
            let levels = &all[..levels.min(all.len())];
            // Buckets nest, so the finest one determines the others.
            let finest = levels[0].bucket_of(s.start_ns);
            if self.recent[f].len() <= id as usize {
                self.recent[f].resize(id as usize + 1, None);
            }
            let slots = match self.recent[f][id as usize] {
                Some((b, slots)) if b == finest => slots,
                _ => {
                    let mut slots = [0u32; 3];
                    for (slot, level) in slots.iter_mut().zip(levels) {
                        let key = RowKey {
                            family,
                            level: *level,
                            bucket: level.bucket_of(s.start_ns),
                        };
                        *slot = self.slot_index(key, id);
                    }
                    self.recent[f][id as usize] = Some((finest, slots));
                    slots
                }
            };
            for i in &slots[..levels.len()] {
                self.aggs[*i as usize].add(s, sign);
            }
        }
    }

    /// Counts a rate-limit snapshot taken at `at` into the headroom rows of every level.
    pub fn add_sample(&mut self, at: i64, s: &RateSample) {
        self.add_sample_where(at, s, &|_| true);
    }

    /// Counts a rate-limit snapshot taken at `at` into the finest headroom row, and into the
    /// coarser ones for which `coarse` says yes.
    pub fn add_sample_where(&mut self, at: i64, s: &RateSample, coarse: &dyn Fn(RowKey) -> bool) {
        for (k, level) in Family::Headroom.levels().iter().enumerate() {
            let key = RowKey {
                family: Family::Headroom,
                level: *level,
                bucket: level.bucket_of(at),
            };
            if k == 0 || coarse(key) {
                add_sample(self.headroom.entry(key).or_default(), s);
            } else {
                add_sample(self.pending_headroom.entry(key).or_default(), s);
            }
        }
    }

    /// Counts a retried span that started at `start` into the retry rows of every level
    /// (`sign` -1 takes it back).
    pub fn add_retry(&mut self, start: i64, f: &RetryFacts, sign: i64) {
        self.add_retry_where(start, f, sign, &|_| true);
    }

    /// Counts a retried span into the finest retry row, and into the coarser ones for which
    /// `coarse` says yes (the others keep it pending, like the metrics sums).
    pub fn add_retry_where(
        &mut self,
        start: i64,
        f: &RetryFacts,
        sign: i64,
        coarse: &dyn Fn(RowKey) -> bool,
    ) {
        for (k, level) in Family::Retries.levels().iter().enumerate() {
            let key = RowKey {
                family: Family::Retries,
                level: *level,
                bucket: level.bucket_of(start),
            };
            let map = if k == 0 || coarse(key) {
                &mut self.retries
            } else {
                &mut self.pending_retries
            };
            map.entry(key).or_default().add(f, sign);
        }
    }

    /// Adds every sum of `other`.
    #[cfg(test)]
    pub fn merge(&mut self, other: &Delta) {
        let ids: Vec<u32> = (0..other.classes.len() as u32)
            .map(|i| {
                other.values(i).map_or(u32::MAX, |v| {
                    let mut refs: ClassRefs = [0; 7];
                    for (k, (r, x)) in refs.iter_mut().zip(v).enumerate() {
                        *r = self.field(k, x);
                    }
                    self.class_id(refs)
                })
            })
            .collect();
        for ((key, id), i) in &other.sums {
            if let (Some(mine), Some(agg)) = (ids.get(*id as usize), other.aggs.get(*i as usize)) {
                if *mine != u32::MAX {
                    self.slot(*key, *mine).merge(agg, 1);
                }
            }
        }
        for (key, body) in &other.retries {
            self.retries.entry(*key).or_default().merge(body, 1);
        }
        for (key, body) in &other.headroom {
            let into = self.headroom.entry(*key).or_default();
            for (k, a) in body {
                match into.get_mut(k) {
                    Some(x) => x.merge(a),
                    None => {
                        into.insert(k.clone(), a.clone());
                    }
                }
            }
        }
    }

    /// Adds a stored row, read as the row `key` (a coarser bucket may take in finer ones).
    pub fn merge_encoded(&mut self, key: RowKey, bytes: &[u8]) -> Result<(), CodecError> {
        if key.family == Family::Headroom {
            return merge_headroom(self.headroom.entry(key).or_default(), bytes);
        }
        if key.family == Family::Retries {
            return self.retries.entry(key).or_default().merge_encoded(bytes, 1);
        }
        // The row's strings are looked up once; its classes then map by array lookups.
        let mut local: Option<Vec<u32>> = None;
        decode_metrics(bytes, &mut |strings, refs, agg| {
            let map = match &local {
                Some(m) => m,
                None => local.insert(
                    std::iter::once(0)
                        .chain(strings.iter().map(|s| self.string_id(s)))
                        .collect(),
                ),
            };
            let mine = refs.map(|r| map.get(r as usize).copied().unwrap_or(0));
            let id = self.class_id(mine);
            self.slot(key, id).merge_encoded(&mut Reader::new(agg), 1)
        })
    }

    /// Every row that holds something, encoded, in key order (sums that came to nothing are
    /// left out).
    pub fn encoded_rows(&self) -> Vec<(RowKey, Vec<u8>)> {
        // Classes are already references into `strings`.
        let table: Vec<&str> = self.strings.iter().map(|s| s.as_ref()).collect();
        let mut out: Vec<(RowKey, Vec<u8>)> = Vec::new();
        let mut row: Vec<(ClassRefs, &Agg)> = Vec::new();
        let mut current: Option<RowKey> = None;
        let mut sums: Vec<(&(RowKey, u32), &u32)> = self.sums.iter().collect();
        sums.sort_unstable_by_key(|(k, _)| **k);
        for ((key, id), i) in sums {
            let Some(agg) = self.aggs.get(*i as usize) else {
                continue;
            };
            if current != Some(*key) {
                if let Some(k) = current.take() {
                    if !row.is_empty() {
                        out.push((k, encode_metrics(&table, &row)));
                        row.clear();
                    }
                }
                current = Some(*key);
            }
            if agg.is_zero() {
                continue;
            }
            if let Some(refs) = self.classes.get(*id as usize) {
                row.push((*refs, agg));
            }
        }
        if let Some(k) = current {
            if !row.is_empty() {
                out.push((k, encode_metrics(&table, &row)));
            }
        }
        out.extend(
            self.headroom
                .iter()
                .filter(|(_, h)| !h.is_empty())
                .map(|(k, h)| (*k, encode_headroom(h))),
        );
        out.extend(
            self.retries
                .iter()
                .filter(|(_, r)| !r.is_empty())
                .map(|(k, r)| (*k, r.encode())),
        );
        out.sort_by_key(|(k, _)| *k);
        out
    }

    /// The one row `key` encoded, `None` when it holds nothing.
    pub fn encoded_row(&self, key: RowKey) -> Option<Vec<u8>> {
        self.encoded_rows()
            .into_iter()
            .find(|(k, _)| *k == key)
            .map(|(_, b)| b)
    }

    /// True when writing it would change nothing.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.aggs.iter().all(Agg::is_zero)
            && self.headroom.values().all(|h| h.is_empty())
            && self.retries.values().all(RetryBody::is_empty)
    }
}

/// Stored rows of one bucket to merge into one.
#[derive(Debug, Clone, PartialEq)]
pub struct Compaction {
    pub project: i64,
    pub key: RowKey,
    /// The rows' `seq`s (the merged row takes the smallest).
    pub seqs: Vec<i64>,
    pub rows: Vec<Vec<u8>>,
}

/// A commit's rollup writes, encoded: rows to append, buckets compacted, coarse rows derived.
#[derive(Debug, Default)]
pub struct CommitRows {
    /// `(project, row, body)` to append.
    pub append: Vec<(i64, RowKey, Vec<u8>)>,
    /// `(compaction, merged body)`; `None` when the rows added up to nothing.
    pub compacted: Vec<(Compaction, Option<Vec<u8>>)>,
    /// `(project, coarse row, body)` built from the finest rows inside it.
    pub derived: Vec<(i64, RowKey, Option<Vec<u8>>)>,
    /// Projects whose pending sums were dropped (their tables started over).
    pub pending_lost: Vec<i64>,
}

/// A coarse bucket to build from the finest rows inside it.
#[derive(Debug, Clone, PartialEq)]
pub struct Derivation {
    pub project: i64,
    pub key: RowKey,
    pub rows: Vec<Vec<u8>>,
}

/// The row of a coarse bucket: its finest rows, merged as the coarse row.
pub fn derive(d: &Derivation) -> Result<Option<Vec<u8>>, CodecError> {
    let mut merged = Delta::default();
    for r in &d.rows {
        merged.merge_encoded(d.key, r)?;
    }
    Ok(merged.encoded_row(d.key))
}

/// Merges the rows of a bucket due for compaction into one.
pub fn compact(c: &Compaction) -> Result<Option<Vec<u8>>, CodecError> {
    let mut merged = Delta::default();
    for r in &c.rows {
        merged.merge_encoded(c.key, r)?;
    }
    Ok(merged.encoded_row(c.key))
}

#[cfg(test)]
mod tests {
    use super::super::metrics::for_each_metrics_entry;
    use super::*;

    fn s<'a>(start: i64, model: &'a str, user: &'a str) -> SpanStats<'a> {
        SpanStats {
            start_ns: start,
            kind: "llm",
            error: false,
            duration_ns: Some(5),
            ttft_ns: Some(1),
            tokens: [1, 2, 3, 4, 5, 6],
            cost_nano: Some(9),
            unpriced: false,
            retry_count: 1,
            request_model: Some(model),
            response_model: None,
            provider: Some("p"),
            agent: Some("a"),
            user: Some(user),
            tool: None,
        }
    }

    #[test]
    fn one_span_lands_in_six_rows() {
        let mut d = Delta::default();
        d.add_span(&s(3_600_000_000_000 + 7, "m", "u"), 1);
        let rows = d.encoded_rows();
        // Classes: quarter-hour, hour, day; users: hour, day, week.
        assert_eq!(rows.len(), 6);
        let key = RowKey {
            family: Family::Users,
            level: Level::Hour,
            bucket: 3_600_000_000_000,
        };
        let mut n = 0;
        for_each_metrics_entry(&d.encoded_row(key).unwrap(), &mut |dims, _| {
            assert_eq!((dims.user, dims.agent), (Some("u"), None));
            n += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(n, 1);
    }

    #[test]
    fn summing_a_batch_at_the_finest_level_and_rolling_up_equals_adding_each() {
        let spans = [
            s(0, "m", "u"),
            s(1, "m", "v"),
            s(400_000_000_000, "n", "u"),
            s(90_000_000_000_000, "m", "u"),
        ];
        let mut each = Delta::default();
        for x in &spans {
            each.add_span(x, 1);
        }
        assert_eq!(Delta::of_spans(spans.iter().copied(), &|_| true), each);
        // Without the coarse buckets, only the finest rows.
        let finest = Delta::of_spans(spans.iter().copied(), &|_| false);
        assert!(finest
            .encoded_rows()
            .iter()
            .all(|(k, _)| k.family.levels()[0] == k.level));
    }

    #[test]
    fn merged_batches_encoded_rows_and_taking_back_agree() {
        let spans = [s(0, "m", "u"), s(1, "m", "v"), s(400_000_000_000, "n", "u")];
        let mut one = Delta::default();
        for x in &spans {
            one.add_span(x, 1);
        }
        let (mut a, mut b) = (Delta::default(), Delta::default());
        a.add_span(&spans[2], 1);
        b.add_span(&spans[0], 1);
        b.add_span(&spans[1], 1);
        a.merge(&b);
        assert_eq!(a, one);
        let mut back = Delta::default();
        for (k, bytes) in one.encoded_rows() {
            back.merge_encoded(k, &bytes).unwrap();
        }
        assert_eq!(back, one);
        for x in &spans {
            one.add_span(x, -1);
        }
        assert!(one.is_empty());
        assert!(one.encoded_rows().is_empty());
    }
}
