//! Metrics on ClickHouse: sums and latency histograms per span class and *slot* (an hour, a
//! UTC day or a week), kept in `rollup_slot_rows` by one collector at a time and read with the
//! raw spans of the hours they do not cover, so every answer is exact whatever is rebuilt.
//!
//! Each insert marks the hours its traces' spans start in (`rollup_marks`, the server's clock
//! at the mark). A rebuild takes the server's clock `built`, then aggregates an hour's spans
//! into rows of generation `built` with one `INSERT … SELECT`, then records `built` for the
//! hour in `rollup_slots`. A mark is written after its spans, so a mark no later than `built`
//! means its spans were committed before the rebuild read: an hour is *clean* when its newest
//! build is at least its newest mark.
//!
//! A day's rows are summed from the rows of its marked hours once all of them are clean, and a
//! week's from its days'; such a slot records the hour generations it holds (`parts`), and is
//! clean while every marked hour in it is still clean at the generation it holds. A query takes
//! the widest clean slots that fit in its range (weeks only when it needs no day), and
//! aggregates the spans of every other hour, and of the partial hours at its ends, from spans:
//! reading 30 days is then four weeks and a few days of rows rather than 720 hours of them.

use super::read::{rows, started_in};
use super::rowread::RowReader;
use super::{ch_error, sql, Client, RowBinary};
use crate::error::StoreError;
use crate::facts::read::project_name;
use crate::rollup::answer::{add_to_groups, corrupt, DailySums, Item};
use crate::rollup::metrics::{Agg, DimsRef, Family, Groups, Select};
use crate::types::{DailyCost, GroupBy, MetricRow, MetricSeries, MetricsQuery};
use spanlens_core::Timestamp;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const HOUR: i64 = 3_600_000_000_000;
const DAY: i64 = 86_400_000_000_000;

/// The name of the rebuilders' lease.
const LEASE: &str = "rollups";

/// `floor(x / width)` in SQL, for signed nanoseconds.
fn floor_div(x: &str, width: i64) -> String {
    format!("(intDiv({x}, {width}) - ({x} < 0 AND {x} % {width} != 0))")
}

fn hour_of(t: i64) -> i64 {
    t.div_euclid(HOUR)
}

/// The SQL of `hist::bucket_of` over a non-negative `Int64` expression: exact below 64, then 64
/// buckets per power of two. The power comes from a float logarithm, corrected down where the
/// float rounded the value up to the next power (tested against `bucket_of`).
pub fn bucket_sql(v: &str) -> String {
    let v = format!("toUInt64({v})");
    // Shifts by unsigned amounts: a signed one makes the result signed, and 1 << 63 negative.
    let e0 = format!("toUInt8(floor(log2(toFloat64({v}))))");
    let e = format!("toUInt8({e0} - (bitShiftLeft(toUInt64(1), {e0}) > {v}))");
    format!(
        "toUInt16(if({v} < 64, {v}, bitOr(bitShiftLeft(toUInt64({e} - 5), toUInt8(6)), \
         bitAnd(bitShiftRight({v}, toUInt8({e} - 6)), 63))))"
    )
}

/// The class columns of a family: agent and tool, or the user.
fn class_columns(family: Family) -> [&'static str; 7] {
    let users = family == Family::Users;
    [
        "toString(kind)",
        "toNullable(toString(request_model))",
        "toNullable(toString(response_model))",
        "toNullable(toString(provider))",
        if users {
            "CAST(NULL, 'Nullable(String)')"
        } else {
            "toNullable(agent_name)"
        },
        if users {
            "CAST(NULL, 'Nullable(String)')"
        } else {
            "toNullable(tool_name)"
        },
        if users {
            "toNullable(user_id)"
        } else {
            "CAST(NULL, 'Nullable(String)')"
        },
    ]
}

/// The sums of a group of rollup rows, in the order [`read_class_days`] reads them.
const SLOT_SUMS: &str = "toInt64(sum(spans)), toInt64(sum(errors)), sum(retries), \
     toInt64(sum(priced)), sum(cost), toInt64(sum(unpriced)), sum(input_tokens), \
     sum(output_tokens), sum(cache_read_tokens), sum(cache_write_tokens), sum(reasoning_tokens), \
     sum(total_tokens), sumMap(duration.1, duration.2), sumMap(ttft.1, ttft.2)";

/// The sums of a group of spans, in the order [`read_class_days`] reads them.
fn span_sums() -> String {
    let token = |col: &str| format!("sumIf(toInt128(greatest({col}, 0)), counted)");
    format!(
        "toInt64(count()), toInt64(countIf(status = 'error')), \
         sum(toInt128(greatest(retry_count, 0))), \
         toInt64(countIf(counted AND cost_nano IS NOT NULL)), \
         sumIf(toInt128(ifNull(cost_nano, 0)), counted AND cost_nano IS NOT NULL), \
         toInt64(countIf(counted AND unpriced)), {}, {}, {}, {}, {}, {}, \
         sumMapIf([{}], [toInt64(1)], duration_ns IS NOT NULL), \
         sumMapIf([{}], [toInt64(1)], ttft_ns IS NOT NULL)",
        token("input_tokens"),
        token("output_tokens"),
        token("cache_read_tokens"),
        token("cache_write_tokens"),
        token("reasoning_tokens"),
        token("total_tokens"),
        bucket_sql("greatest(ifNull(duration_ns, 0), 0)"),
        bucket_sql("greatest(ifNull(ttft_ns, 0), 0)"),
    )
}

/// The newest copy of each span of `project` matching `conditions`, with `counted`: false for
/// a span that records another span's call (it counts no tokens and no cost).
fn counted_spans(project: &str, conditions: &str) -> String {
    format!(
        "(SELECT *, (trace_id, span_id) NOT IN (SELECT trace_id, d.1 FROM traces FINAL \
         ARRAY JOIN duplicates AS d WHERE project = {project}) AS counted \
         FROM span_times FINAL WHERE project = {project}{conditions})"
    )
}

/// `hour` conditions selecting every hour but the `covered` ones (by the table's key, so only
/// those hours are read).
fn hours_except(covered: &BTreeSet<i64>) -> String {
    let mut ranges: Vec<String> = Vec::new();
    let mut from: Option<i64> = None; // first hour of the open range; None: unbounded below
    let mut prev: Option<i64> = None;
    for &h in covered {
        let lo = prev.map(|p| p + 1).or(from);
        match lo {
            Some(lo) if lo > h - 1 => {}
            Some(lo) => ranges.push(format!("(hour >= {lo} AND hour <= {})", h - 1)),
            None => ranges.push(format!("hour <= {}", h - 1)),
        }
        prev = Some(h);
        from = Some(h + 1);
    }
    match prev {
        Some(p) => ranges.push(format!("hour >= {}", p + 1)),
        None => return "1".into(),
    }
    format!("({})", ranges.join(" OR "))
}

/// Slot widths in hours, widest first: a week (counted from the epoch, a Thursday: where weeks
/// start matters only in that readers and builders agree), a UTC day, an hour.
const WIDTHS: [i64; 3] = [168, 24, 1];

/// The first hour of the slot of `width` holding `hour`.
fn slot_start(hour: i64, width: i64) -> i64 {
    hour.div_euclid(width) * width
}

/// A slot's rows of one generation: (width, first hour, generation).
type Slot = (i64, i64, i64);

/// The hour generations a day or week holds: (hour, generation).
type Parts = Vec<(i64, i64)>;

/// One build of a slot: its generation, and for a day or week the hour generations it holds.
#[derive(Debug, Clone, Default)]
struct Build {
    built: i64,
    parts: Parts,
}

/// What decides which slots of one project are clean: the newest mark of each hour and the
/// newest build of each slot.
#[derive(Debug, Default)]
struct Ledger {
    marks: BTreeMap<i64, i64>,
    builds: BTreeMap<(i64, i64), Build>,
}

impl Ledger {
    /// The generation to read of slot `(width, start)` when its rows hold the newest spans of
    /// every hour in it.
    fn clean(&self, width: i64, start: i64) -> Option<i64> {
        let b = self.builds.get(&(width, start))?;
        let mut marked = self.marks.range(start..start + width);
        let current = if width == 1 {
            marked.all(|(_, m)| *m <= b.built)
        } else {
            marked.all(|(h, m)| {
                b.parts
                    .binary_search_by_key(h, |p| p.0)
                    .is_ok_and(|i| *m <= b.parts[i].1)
            })
        };
        current.then_some(b.built)
    }

    /// What a day (from its hours) or a week (from its days) starting at `start` is summed from:
    /// the slots below it holding marked hours, with their generations, and the hour
    /// generations those hold; `None` while one of them is not clean.
    fn sources(&self, width: i64, start: i64) -> Option<(Vec<Slot>, Parts)> {
        let below = if width == 168 { 24 } else { 1 };
        let subs: BTreeSet<i64> = self
            .marks
            .range(start..start + width)
            .map(|(h, _)| slot_start(*h, below))
            .collect();
        let mut sources = Vec::new();
        let mut parts = Vec::new();
        for sub in subs {
            let built = self.clean(below, sub)?;
            sources.push((below, sub, built));
            match below {
                1 => parts.push((sub, built)),
                _ => parts.extend_from_slice(&self.builds.get(&(below, sub))?.parts),
            }
        }
        Some((sources, parts))
    }

    /// The clean slots that cover `[first, last]` (whole hours), widest first where they fit
    /// (weeks only when `weeks`); what no slot covers is left to raw spans.
    fn cover(&self, first: i64, last: i64, weeks: bool) -> Vec<Slot> {
        let (Some(lo), Some(hi)) = (
            self.builds.keys().map(|k| k.1).min(),
            self.builds.keys().map(|k| k.1 + k.0 - 1).max(),
        ) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut h = first.max(lo);
        let end = last.min(hi);
        'hours: while h <= end {
            for w in WIDTHS {
                if (w == 168 && !weeks) || slot_start(h, w) != h || h + w - 1 > last {
                    continue;
                }
                if let Some(built) = self.clean(w, h) {
                    out.push((w, h, built));
                    h += w;
                    continue 'hours;
                }
            }
            h += 1;
        }
        out
    }
}

/// The whole hours inside the query's range, first and last; `None` when it holds none.
fn whole_hours(q: &MetricsQuery) -> Option<(i64, i64)> {
    let ns = |t: Timestamp| crate::facts::prepare::to_i64(t.0);
    let first = q
        .from
        .map_or(i64::MIN / HOUR, |f| hour_of(ns(f).saturating_add(HOUR - 1)));
    let last = q.to.map_or(i64::MAX / HOUR, |t| hour_of(ns(t)) - 1);
    (first <= last).then_some((first, last))
}

/// The marks and builds of the query's project over the whole hours of its range.
async fn project_ledger(client: &Client, q: &MetricsQuery) -> Result<Ledger, StoreError> {
    let Some(hours) = whole_hours(q) else {
        return Ok(Ledger::default());
    };
    let project = sql::string(&project_name(&q.project));
    Ok(ledgers(client, Some(&project), hours)
        .await?
        .into_values()
        .next()
        .unwrap_or_default())
}

/// The marks and builds of `project` (every project when `None`) in hours `[a, b]`.
async fn ledgers(
    client: &Client,
    project: Option<&str>,
    (a, b): (i64, i64),
) -> Result<BTreeMap<String, Ledger>, StoreError> {
    let which = match project {
        Some(p) => format!("project = {p} AND "),
        None => String::new(),
    };
    let out = rows(
        client,
        &format!(
            "SELECT toString(project), hour, max(marked_ns) FROM rollup_marks              WHERE {which}hour >= {a} AND hour <= {b} GROUP BY project, hour"
        ),
        "reading rollup marks",
    )
    .await?;
    let mut found: BTreeMap<String, Ledger> = BTreeMap::new();
    let mut r = RowReader::new(&out);
    while !r.is_empty() {
        let project = r.string()?;
        let (hour, mark) = (r.i64()?, r.i64()?);
        found.entry(project).or_default().marks.insert(hour, mark);
    }
    let out = rows(
        client,
        &format!(
            "SELECT toString(project), toInt64(width), hour, max(built_ns),              argMax(parts, built_ns) FROM rollup_slots              WHERE {which}hour >= {a} AND hour + width - 1 <= {b} GROUP BY project, width, hour"
        ),
        "reading rollup slots",
    )
    .await?;
    let mut r = RowReader::new(&out);
    while !r.is_empty() {
        let project = r.string()?;
        let (width, hour, built) = (r.i64()?, r.i64()?, r.i64()?);
        let mut parts = r.array_of(|r| Ok((r.i64()?, r.i64()?)))?;
        parts.sort_unstable();
        found
            .entry(project)
            .or_default()
            .builds
            .insert((width, hour), Build { built, parts });
    }
    Ok(found)
}

/// Sums of one span class on one UTC day.
struct ClassDay {
    dims: [Option<String>; 7],
    day: i64,
    agg: Agg,
}

fn read_class_days(out: &[u8]) -> Result<Vec<ClassDay>, StoreError> {
    let mut r = RowReader::new(out);
    let mut found = Vec::new();
    while !r.is_empty() {
        let mut dims: [Option<String>; 7] = Default::default();
        dims[0] = Some(r.string()?);
        for d in dims.iter_mut().skip(1) {
            *d = r.nullable(|r| r.string())?;
        }
        let day = r.i64()?;
        let mut agg = Agg {
            spans: r.i64()?,
            errors: r.i64()?,
            retries: r.i128()?,
            priced: r.i64()?,
            cost: r.i128()?,
            unpriced: r.i64()?,
            ..Default::default()
        };
        for t in &mut agg.tokens {
            *t = r.i128()?;
        }
        for hist in [&mut agg.duration, &mut agg.ttft] {
            let buckets = r.array_of(|r| r.u16())?;
            let counts = r.array_of(|r| r.i64())?;
            for (b, n) in buckets.into_iter().zip(counts) {
                hist.add_at(b, n);
            }
        }
        found.push(ClassDay { dims, day, agg });
    }
    Ok(found)
}

/// The class days of the query's range: clean whole slots from rollup rows, the rest from
/// spans. With `weeks` a week's rows may stand for its days (all on its first day), for an
/// answer that does not tell days apart.
async fn class_days(
    client: &Client,
    q: &MetricsQuery,
    sel: &Select,
    weeks: bool,
    known: Option<&Ledger>,
) -> Result<Vec<ClassDay>, StoreError> {
    let project = sql::string(&project_name(&q.project));
    let family = sel.family();
    let dims = class_columns(family).join(", ");
    let kind = match sel.kind() {
        Some(k) => format!(" AND kind = {}", sql::string(k)),
        None => String::new(),
    };
    let from = q.from.map(|t| crate::facts::prepare::to_i64(t.0));
    let to = q.to.map(|t| crate::facts::prepare::to_i64(t.0));
    let mut found = Vec::new();
    let mut raw = sql::Conditions::default();
    started_in(&mut raw, q.from, q.to);
    // The hours of the range, by the table's key, so a range reads only its own hours.
    if let Some(f) = from {
        raw.push(format!("hour >= {}", hour_of(f)));
    }
    if let Some(t) = to {
        raw.push(format!("hour <= {}", hour_of(t.saturating_sub(1))));
    }
    let slots = match (whole_hours(q), known) {
        (None, _) => Vec::new(),
        (Some((first, last)), Some(l)) => l.cover(first, last, weeks),
        (Some((first, last)), None) => project_ledger(client, q).await?.cover(first, last, weeks),
    };
    if !slots.is_empty() {
        let covered: BTreeSet<i64> = slots.iter().flat_map(|&(w, h, _)| h..h + w).collect();
        raw.push(hours_except(&covered));
        let generations: Vec<String> = slots
            .iter()
            .map(|(w, h, b)| format!("({w}, {h}, {b})"))
            .collect();
        let out = rows(
            client,
            &format!(
                "SELECT kind, request_model, response_model, provider, agent, tool, user, \
                 {} AS day, {SLOT_SUMS} FROM rollup_slot_rows \
                 WHERE project = {project} AND family = {}{kind} \
                 AND (width, hour, built_ns) IN ({}) GROUP BY 1, 2, 3, 4, 5, 6, 7, day",
                floor_div("hour", 24),
                family_code(family),
                generations.join(", ")
            ),
            "reading rollups",
        )
        .await?;
        found.extend(read_class_days(&out)?);
    }
    let conditions = format!("{}{kind}", raw.clause().replacen(" WHERE ", " AND ", 1));
    let out = rows(
        client,
        &format!(
            "SELECT {dims}, {} AS day, {} FROM {} GROUP BY 1, 2, 3, 4, 5, 6, 7, day",
            floor_div("start_ns", DAY),
            span_sums(),
            counted_spans(&project, &conditions)
        ),
        "computing metrics",
    )
    .await?;
    found.extend(read_class_days(&out)?);
    Ok(found)
}

fn family_code(f: Family) -> u8 {
    u8::from(f == Family::Users)
}

/// Hands every span class and day the metrics query covers to `f` as an item.
async fn metric_items(
    client: &Client,
    q: &MetricsQuery,
    sel: &Select,
    weeks: bool,
    known: Option<&Ledger>,
    f: &mut (dyn FnMut(Item<'_>) -> Result<(), StoreError> + Send),
) -> Result<(), StoreError> {
    if sel.matches_nothing() {
        return Ok(());
    }
    for cd in class_days(client, q, sel, weeks, known).await? {
        let [kind, request_model, response_model, provider, agent, tool, user] = &cd.dims;
        let dims = DimsRef {
            kind: kind.as_deref().unwrap_or_default(),
            request_model: request_model.as_deref(),
            response_model: response_model.as_deref(),
            provider: provider.as_deref(),
            agent: agent.as_deref(),
            tool: tool.as_deref(),
            user: user.as_deref(),
        };
        if !sel.accepts(&dims) {
            continue;
        }
        let mut w = crate::rollup::codec::Writer::default();
        cd.agg.encode(&mut w);
        f(Item::Row {
            day: cd.day,
            dims,
            agg: &w.buf,
            sign: 1,
        })?;
    }
    Ok(())
}

/// Span metrics grouped as the query asks.
pub async fn metrics(client: &Client, q: &MetricsQuery) -> Result<Vec<MetricRow>, StoreError> {
    metrics_with(client, q, None).await
}

/// Metrics of the range `[bounds[0], bounds[last])` and of each slice between bounds, reading
/// which slots are clean once for all of them.
pub async fn metrics_series(
    client: &Client,
    q: &MetricsQuery,
    bounds: &[Timestamp],
) -> Result<MetricSeries, StoreError> {
    let queries = MetricSeries::queries(q, bounds);
    let ledger = match queries.first() {
        Some(whole) => project_ledger(client, whole).await?,
        None => Ledger::default(),
    };
    let mut answers = Vec::with_capacity(queries.len());
    for q in &queries {
        answers.push(metrics_with(client, q, Some(&ledger)).await?);
    }
    Ok(MetricSeries::from_answers(answers))
}

async fn metrics_with(
    client: &Client,
    q: &MetricsQuery,
    known: Option<&Ledger>,
) -> Result<Vec<MetricRow>, StoreError> {
    let sel = Select::new(q);
    let mut groups = Groups::default();
    let weeks = q.group_by != GroupBy::Day;
    metric_items(client, q, &sel, weeks, known, &mut |item| {
        add_to_groups(&mut groups, &sel, item)
    })
    .await?;
    groups.into_rows().map_err(corrupt)
}

/// Cost per group and UTC day.
pub async fn daily_cost(client: &Client, q: &MetricsQuery) -> Result<Vec<DailyCost>, StoreError> {
    let sel = Select::new(q);
    let mut sums = DailySums::new(q);
    metric_items(client, q, &sel, false, None, &mut |item| sums.add(item)).await?;
    Ok(sums.finish())
}

/// Marks the hours where `starts` fall as written to, for `project` (after the spans and
/// summaries that changed them are stored).
pub async fn mark(client: &Client, marks: &BTreeSet<(String, i64)>) -> Result<(), StoreError> {
    if marks.is_empty() {
        return Ok(());
    }
    let mut out = RowBinary::new();
    for (project, hour) in marks {
        out.str(project).i64(*hour);
    }
    client
        .insert(
            "INSERT INTO rollup_marks (project, hour) FORMAT RowBinary",
            &out.finish(),
            &[],
        )
        .await
        .map_err(|e| ch_error("marking rollup hours", e))
}

/// The hour of a span start, for marks.
pub fn mark_hour(start_ns: i64) -> i64 {
    hour_of(start_ns)
}

/// Rebuilds up to `max` marked hours (only those not written to for `settle` when given), then
/// the days and weeks whose marked hours are all clean; returns how many hours, and whether
/// more wait.
pub async fn refresh(
    client: &Client,
    settle: Option<Duration>,
    max: usize,
) -> Result<(usize, bool), StoreError> {
    let built = server_now(client).await?;
    let settled_before = match settle {
        Some(d) => built.saturating_sub(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX / 2)),
        None => i64::MAX,
    };
    let mut done = 0;
    let mut more = false;
    for (project, mut ledger) in ledgers(client, None, (i64::MIN / HOUR, i64::MAX / HOUR)).await? {
        let dirty: Vec<i64> = ledger
            .marks
            .iter()
            .filter(|&(&h, &m)| m < settled_before && ledger.clean(1, h).is_none())
            .map(|(h, _)| *h)
            .collect();
        let take = dirty.len().min(max - done);
        more |= take < dirty.len();
        if take > 0 {
            rebuild_hours(client, &project, &dirty[..take], built).await?;
            for h in &dirty[..take] {
                ledger.builds.insert(
                    (1, *h),
                    Build {
                        built,
                        parts: Vec::new(),
                    },
                );
            }
            done += take;
        }
        for width in [24, 168] {
            let slots: BTreeSet<i64> = ledger.marks.keys().map(|h| slot_start(*h, width)).collect();
            for start in slots {
                if ledger.clean(width, start).is_some() {
                    continue;
                }
                let Some((sources, parts)) = ledger.sources(width, start) else {
                    continue;
                };
                sum_slot(client, &project, (width, start), &sources, built).await?;
                record_slots(client, &project, (width, &[start]), &parts, built).await?;
                ledger.builds.insert((width, start), Build { built, parts });
            }
        }
        if done >= max {
            more = true;
            break;
        }
    }
    Ok((done, more))
}

/// The server's clock, in nanoseconds.
async fn server_now(client: &Client) -> Result<i64, StoreError> {
    let out = rows(
        client,
        "SELECT toUnixTimestamp64Nano(now64(9))",
        "rebuilding rollups",
    )
    .await?;
    Ok(RowReader::new(&out).i64()?)
}

/// Rebuilds the rows of `hours` of `project` from their spans as generation `built` (taken
/// before the spans are read).
async fn rebuild_hours(
    client: &Client,
    project: &str,
    hours: &[i64],
    built: i64,
) -> Result<(), StoreError> {
    let p = sql::string(project);
    let list: Vec<String> = hours.iter().map(i64::to_string).collect();
    let conditions = format!(" AND hour IN ({})", list.join(", "));
    for family in [Family::Classes, Family::Users] {
        client
            .query(
                &format!(
                    "INSERT INTO rollup_slot_rows (project, hour, width, built_ns, family, kind, \
                     request_model, response_model, provider, agent, tool, user, {SUM_COLUMNS}) \
                     SELECT {p}, hour AS h, 1, {built}, {}, {}, {} FROM {} \
                     GROUP BY h, 6, 7, 8, 9, 10, 11, 12",
                    family_code(family),
                    class_columns(family).join(", "),
                    span_sums(),
                    counted_spans(&p, &conditions)
                ),
                &[],
            )
            .await
            .map_err(|e| ch_error("rebuilding rollups", e))?;
    }
    record_slots(client, project, (1, hours), &[], built).await
}

/// The sum columns of `rollup_slot_rows`, in the order of [`span_sums`] and [`SLOT_SUMS`].
const SUM_COLUMNS: &str = "spans, errors, retries, priced, cost, unpriced, input_tokens, \
     output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens, total_tokens, \
     duration, ttft";

/// Sums the rows of the `sources` slots (width, first hour, generation) into slot `(width,
/// start)` as generation `built`.
async fn sum_slot(
    client: &Client,
    project: &str,
    (width, start): (i64, i64),
    sources: &[Slot],
    built: i64,
) -> Result<(), StoreError> {
    let p = sql::string(project);
    let list: Vec<String> = sources
        .iter()
        .map(|(w, h, b)| format!("({w}, {h}, {b})"))
        .collect();
    client
        .query(
            &format!(
                "INSERT INTO rollup_slot_rows (project, hour, width, built_ns, family, kind, \
                 request_model, response_model, provider, agent, tool, user, {SUM_COLUMNS}) \
                 SELECT {p}, {start}, {width}, {built}, family, kind, request_model, \
                 response_model, provider, agent, tool, user, {SLOT_SUMS} \
                 FROM rollup_slot_rows WHERE project = {p} AND (width, hour, built_ns) IN ({}) \
                 GROUP BY family, kind, request_model, response_model, provider, agent, tool, user",
                list.join(", ")
            ),
            &[],
        )
        .await
        .map_err(|e| ch_error("summing rollups", e))?;
    Ok(())
}

/// Records the slots of `width` starting at `starts` of `project` as built at `built`, holding
/// the hour generations `parts` (none for hours), after their rows are in.
async fn record_slots(
    client: &Client,
    project: &str,
    (width, starts): (i64, &[i64]),
    parts: &[(i64, i64)],
    built: i64,
) -> Result<(), StoreError> {
    let mut out = RowBinary::new();
    for start in starts {
        out.str(project)
            .i64(*start)
            .u16(u16::try_from(width).unwrap_or(1))
            .i64(built)
            .array_len(parts.len());
        for (h, b) in parts {
            out.i64(*h).i64(*b);
        }
    }
    client
        .insert(
            "INSERT INTO rollup_slots (project, hour, width, built_ns, parts) FORMAT RowBinary",
            &out.finish(),
            &[],
        )
        .await
        .map_err(|e| ch_error("rebuilding rollups", e))
}

/// Hours rebuilt per round of the background task.
const HOURS_PER_ROUND: usize = 48;

/// Rebuilds settled hours every `every`, one collector at a time (the one holding the lease),
/// until the store is dropped.
pub async fn keep_rebuilding(
    client: Client,
    alive: std::sync::Weak<()>,
    every: Duration,
    settle: Duration,
) {
    let holder = format!("{}-{:x}", std::process::id(), super::side::random_u64());
    let key = crate::store::Lease::key(LEASE);
    // Long enough for a round; a holder that dies frees the lease this soon.
    let ttl = i64::try_from((every * 30).as_nanos()).unwrap_or(i64::MAX / 2);
    loop {
        tokio::time::sleep(every).await;
        if alive.strong_count() == 0 {
            return;
        }
        loop {
            match super::side::acquire_lease(&client, &key, &holder, ttl).await {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "rollup lease not taken");
                    break;
                }
            }
            match refresh(&client, Some(settle), HOURS_PER_ROUND).await {
                Ok((_, true)) if alive.strong_count() > 0 => continue,
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "rollups not rebuilt; trying again later");
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{hours_except, Build, Ledger};
    use std::collections::BTreeSet;

    #[test]
    fn every_hour_but_the_clean_ones_is_selected() {
        let covered = |hs: &[i64]| hs.iter().copied().collect::<BTreeSet<i64>>();
        assert_eq!(hours_except(&covered(&[])), "1");
        assert_eq!(
            hours_except(&covered(&[5, 6, 9])),
            "(hour <= 4 OR (hour >= 7 AND hour <= 8) OR hour >= 10)"
        );
        assert_eq!(hours_except(&covered(&[5, 6])), "(hour <= 4 OR hour >= 7)");
    }

    #[test]
    fn a_slot_is_clean_while_its_marked_hours_are_and_reads_take_the_widest() {
        let mut l = Ledger::default();
        // Hours 0..48 written at time 10, all built at 20.
        for h in 0..48 {
            l.marks.insert(h, 10);
            l.builds.insert(
                (1, h),
                Build {
                    built: 20,
                    parts: Vec::new(),
                },
            );
        }
        let parts: Vec<(i64, i64)> = (0..24).map(|h| (h, 20)).collect();
        l.builds.insert((24, 0), Build { built: 30, parts });
        assert_eq!(l.clean(24, 0), Some(30));
        assert_eq!(l.clean(24, 24), None, "never summed");
        assert_eq!(l.cover(0, 47, true), {
            let mut want = vec![(24, 0, 30)];
            want.extend((24..48).map(|h| (1, h, 20)));
            want
        });
        // Only whole slots inside the range count.
        assert_eq!(l.cover(1, 23, true).len(), 23);
        // A later mark on hour 5 makes hour 5 and its day stale: the rest is read by hour.
        l.marks.insert(5, 25);
        assert_eq!(l.clean(24, 0), None);
        let cover = l.cover(0, 47, true);
        assert_eq!(cover.len(), 47);
        assert!(cover.iter().all(|&(w, h, _)| w == 1 && h != 5));
        // An hour marked that the day's parts do not hold makes it stale too.
        l.marks.insert(5, 10);
        assert_eq!(l.clean(24, 0), Some(30));
        l.marks.insert(30, 10);
        l.builds.insert(
            (24, 24),
            Build {
                built: 40,
                parts: vec![(24, 20)],
            },
        );
        assert_eq!(l.clean(24, 24), None);
    }
}
