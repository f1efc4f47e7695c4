//! Answers built from what a range yields — classes of stored rollup rows and spans read raw —
//! whichever backend read them: each backend decides which rows and spans cover a range, this
//! module turns them into metric groups and daily cost the same way for all.

use super::codec::{CodecError, Reader};
use super::metrics::SpanStats;
use super::metrics::{for_each_metrics_entry, Agg, DimsRef, EncodedCost, Groups, KeyRef, Select};
use super::time::day_of;
use crate::error::StoreError;
use crate::types::{DailyCost, GroupBy, MetricsQuery};
use spanlens_core::NanoUsd;
use std::collections::HashMap;

/// A rollup row that cannot be decoded.
pub fn corrupt(e: CodecError) -> StoreError {
    StoreError::Corrupt {
        table: "rollups",
        reason: e.to_string(),
    }
}

/// One thing a range yields, to be added (`sign` 1) or taken away (-1).
pub enum Item<'a> {
    /// A class of a rollup row whose bucket lies in UTC day `day`, its aggregate still encoded.
    Row {
        day: i64,
        dims: DimsRef<'a>,
        agg: &'a [u8],
        sign: i64,
    },
    /// A span read raw.
    Span(SpanStats<'a>, i64),
}

/// What is called with each item.
pub type ItemFn<'f> = dyn FnMut(Item<'_>) -> Result<(), StoreError> + 'f;

/// Calls `f` with each class of the row of `bucket` that the selection counts.
pub fn row_items(
    sel: &Select,
    bucket: i64,
    body: &[u8],
    sign: i64,
    f: &mut ItemFn<'_>,
) -> Result<(), StoreError> {
    let day = day_of(bucket);
    let mut failure = None;
    for_each_metrics_entry(body, &mut |dims, agg| {
        if sel.accepts(&dims) {
            if let Err(x) = f(Item::Row {
                day,
                dims,
                agg,
                sign,
            }) {
                failure = Some(x);
                return Err(CodecError("stopped".into()));
            }
        }
        Ok(())
    })
    .map_err(|x| failure.take().unwrap_or_else(|| corrupt(x)))
}

/// Calls `f` with a span read raw when the selection counts it.
pub fn span_item(
    sel: &Select,
    s: SpanStats<'_>,
    sign: i64,
    f: &mut ItemFn<'_>,
) -> Result<(), StoreError> {
    if sel.accepts(&s.dims(sel.family())) {
        f(Item::Span(s, sign))?;
    }
    Ok(())
}

/// Adds an item to the metric groups of a selection.
pub fn add_to_groups(groups: &mut Groups, sel: &Select, item: Item<'_>) -> Result<(), StoreError> {
    match item {
        Item::Row {
            day,
            dims,
            agg,
            sign,
        } => groups
            .add_encoded(sel.key(&dims, day), agg, sign)
            .map_err(corrupt),
        Item::Span(s, sign) => {
            let dims = s.dims(sel.family());
            groups
                .slot(sel.key(&dims, day_of(s.start_ns)))
                .add(&s, sign);
            Ok(())
        }
    }
}

/// Cost per group and UTC day while items are added.
pub struct DailySums {
    sel: Select,
    /// The grouping key: a `day` grouping is none (every answer row is a day already).
    keyed: Select,
    sums: HashMap<(Option<String>, i64), EncodedCost>,
}

impl DailySums {
    /// Empty sums for a daily-cost query.
    pub fn new(q: &MetricsQuery) -> DailySums {
        let mut keyed = q.clone();
        if keyed.group_by == GroupBy::Day {
            keyed.group_by = GroupBy::All;
        }
        DailySums {
            sel: Select::new(q),
            keyed: Select::new(&keyed),
            sums: HashMap::new(),
        }
    }

    fn key(&self, dims: &DimsRef<'_>, day: i64) -> Option<String> {
        match self.keyed.key(dims, day) {
            KeyRef::Text(t) => Some(t.to_string()),
            _ => None,
        }
    }

    fn add_cost(&mut self, key: Option<String>, day: i64, c: EncodedCost, sign: i64) {
        let slot = self.sums.entry((key, day)).or_default();
        slot.cost = slot
            .cost
            .saturating_add(c.cost.saturating_mul(i128::from(sign)));
        slot.priced = slot.priced.saturating_add(c.priced.saturating_mul(sign));
        slot.unpriced = slot
            .unpriced
            .saturating_add(c.unpriced.saturating_mul(sign));
    }

    /// Adds an item's cost.
    pub fn add(&mut self, item: Item<'_>) -> Result<(), StoreError> {
        match item {
            Item::Row {
                day,
                dims,
                agg,
                sign,
            } => {
                let c = Agg::encoded_cost(&mut Reader::new(agg)).map_err(corrupt)?;
                let key = self.key(&dims, day);
                self.add_cost(key, day, c, sign);
            }
            Item::Span(s, sign) => {
                if s.cost_nano.is_some() || s.unpriced {
                    let day = day_of(s.start_ns);
                    let key = self.key(&s.dims(self.sel.family()), day);
                    let c = EncodedCost {
                        cost: s.cost_nano.map_or(0, i128::from),
                        priced: i64::from(s.cost_nano.is_some()),
                        unpriced: i64::from(s.unpriced),
                    };
                    self.add_cost(key, day, c, sign);
                }
            }
        }
        Ok(())
    }

    /// The answer: a group's day with no priced and no unpriced call is absent; spans without
    /// the key first, then by key and day (as SQL's `ORDER BY key, day`).
    pub fn finish(self) -> Vec<DailyCost> {
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        let mut out: Vec<DailyCost> = self
            .sums
            .into_iter()
            .filter(|(_, c)| c.priced > 0 || c.unpriced > 0)
            .map(|((key, day), c)| DailyCost {
                key,
                day,
                cost: NanoUsd(i64::try_from(c.cost).unwrap_or(if c.cost < 0 {
                    i64::MIN
                } else {
                    i64::MAX
                })),
                priced_span_count: count(c.priced),
                unpriced_span_count: count(c.unpriced),
            })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key).then(a.day.cmp(&b.day)));
        out
    }
}
