//! Metrics on ClickHouse: sums and latency histograms per span class and hour, kept in
//! `rollup_rows` by one collector at a time and read with the raw spans of the hours they do
//! not cover, so every answer is exact whatever is rebuilt.
//!
//! Each insert marks the hours its traces' spans start in (`rollup_marks`, the server's clock
//! at the mark). A rebuild takes the server's clock `built`, then aggregates an hour's spans
//! into rows of generation `built` with one `INSERT … SELECT`, then records `built` for the
//! hour in `rollup_hours`. A mark is written after its spans, so a mark no later than `built`
//! means its spans were committed before the rebuild read: an hour is *clean* when its newest
//! build is at least its newest mark, and only clean hours are read from rows (their newest
//! generation); the others, and the partial hours at a range's ends, are aggregated from spans.

use super::read::{rows, started_in};
use super::rowread::RowReader;
use super::{ch_error, sql, Client, RowBinary};
use crate::error::StoreError;
use crate::facts::read::project_name;
use crate::rollup::answer::{add_to_groups, corrupt, DailySums, Item};
use crate::rollup::metrics::{Agg, DimsRef, Family, Groups, Select};
use crate::types::{DailyCost, MetricRow, MetricsQuery};
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

/// `hour` conditions selecting every hour but the `clean` ones (by the table's key, so only
/// those hours are read), `None` when no hour is left.
fn hours_except(clean: &BTreeMap<i64, i64>) -> Option<String> {
    let mut ranges: Vec<String> = Vec::new();
    let mut from: Option<i64> = None; // first hour of the open range; None: unbounded below
    let mut prev: Option<i64> = None;
    for &h in clean.keys() {
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
        None => return Some("1".into()),
    }
    Some(format!("({})", ranges.join(" OR ")))
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

/// The hours of `project` in `[a, b]` (hour numbers) whose rollup rows are current, with the
/// generation to read.
async fn clean_hours(
    client: &Client,
    project: &str,
    (a, b): (i64, i64),
) -> Result<BTreeMap<i64, i64>, StoreError> {
    let out = rows(
        client,
        &format!(
            "SELECT h.hour, h.built FROM (SELECT hour, max(built_ns) AS built FROM rollup_hours \
             WHERE project = {project} AND hour >= {a} AND hour <= {b} GROUP BY hour) AS h \
             LEFT JOIN (SELECT hour, max(marked_ns) AS marked FROM rollup_marks \
             WHERE project = {project} AND hour >= {a} AND hour <= {b} GROUP BY hour) AS m \
             ON h.hour = m.hour WHERE m.marked <= h.built"
        ),
        "reading rollup hours",
    )
    .await?;
    let mut r = RowReader::new(&out);
    let mut clean = BTreeMap::new();
    while !r.is_empty() {
        clean.insert(r.i64()?, r.i64()?);
    }
    Ok(clean)
}

/// The class days of the query's range: clean whole hours from rollup rows, the rest from
/// spans.
async fn class_days(
    client: &Client,
    q: &MetricsQuery,
    sel: &Select,
) -> Result<Vec<ClassDay>, StoreError> {
    let project = sql::string(&project_name(&q.project));
    let family = sel.family();
    let dims = class_columns(family).join(", ");
    let kind = match sel.kind() {
        Some(k) => format!(" AND kind = {}", sql::string(k)),
        None => String::new(),
    };
    // Whole hours inside the range.
    let from = q.from.map(|t| crate::facts::prepare::to_i64(t.0));
    let to = q.to.map(|t| crate::facts::prepare::to_i64(t.0));
    let first = from.map_or(i64::MIN / HOUR, |f| hour_of(f.saturating_add(HOUR - 1)));
    let last = to.map_or(i64::MAX / HOUR, |t| hour_of(t) - 1);
    let clean = if first <= last {
        clean_hours(client, &project, (first, last)).await?
    } else {
        BTreeMap::new()
    };
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
    if !clean.is_empty() {
        if let Some(rest) = hours_except(&clean) {
            raw.push(rest);
        }
        let generations: Vec<String> = clean.iter().map(|(h, b)| format!("({h}, {b})")).collect();
        let out = rows(
            client,
            &format!(
                "SELECT kind, request_model, response_model, provider, agent, tool, user, \
                 {} AS day, toInt64(sum(spans)), toInt64(sum(errors)), sum(retries), \
                 toInt64(sum(priced)), sum(cost), toInt64(sum(unpriced)), sum(input_tokens), \
                 sum(output_tokens), sum(cache_read_tokens), sum(cache_write_tokens), \
                 sum(reasoning_tokens), sum(total_tokens), sumMap(duration.1, duration.2), \
                 sumMap(ttft.1, ttft.2) FROM rollup_rows \
                 WHERE project = {project} AND family = {}{kind} \
                 AND (hour, built_ns) IN ({}) GROUP BY 1, 2, 3, 4, 5, 6, 7, day",
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
    f: &mut (dyn FnMut(Item<'_>) -> Result<(), StoreError> + Send),
) -> Result<(), StoreError> {
    if sel.matches_nothing() {
        return Ok(());
    }
    for cd in class_days(client, q, sel).await? {
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
    let sel = Select::new(q);
    let mut groups = Groups::default();
    metric_items(client, q, &sel, &mut |item| {
        add_to_groups(&mut groups, &sel, item)
    })
    .await?;
    groups.into_rows().map_err(corrupt)
}

/// Cost per group and UTC day.
pub async fn daily_cost(client: &Client, q: &MetricsQuery) -> Result<Vec<DailyCost>, StoreError> {
    let sel = Select::new(q);
    let mut sums = DailySums::new(q);
    metric_items(client, q, &sel, &mut |item| sums.add(item)).await?;
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

/// Rebuilds up to `max` marked hours (only those not written to for `settle` when given);
/// returns how many, and whether more wait.
pub async fn refresh(
    client: &Client,
    settle: Option<Duration>,
    max: usize,
) -> Result<(usize, bool), StoreError> {
    let settled = match settle {
        Some(d) => format!(
            " AND m.marked < toUnixTimestamp64Nano(now64(9)) - {}",
            i64::try_from(d.as_nanos()).unwrap_or(i64::MAX / 2)
        ),
        None => String::new(),
    };
    let out = rows(
        client,
        &format!(
            "SELECT toString(m.project), m.hour FROM (SELECT project, hour, max(marked_ns) AS marked \
             FROM rollup_marks GROUP BY project, hour) AS m \
             LEFT JOIN (SELECT project, hour, max(built_ns) AS built FROM rollup_hours \
             GROUP BY project, hour) AS h ON m.project = h.project AND m.hour = h.hour \
             WHERE m.marked > h.built{settled} ORDER BY m.project, m.hour LIMIT {}",
            max + 1
        ),
        "finding rollup hours to rebuild",
    )
    .await?;
    let mut r = RowReader::new(&out);
    let mut todo: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut n = 0;
    while !r.is_empty() {
        let project = r.string()?;
        let hour = r.i64()?;
        if n < max {
            todo.entry(project).or_default().push(hour);
        }
        n += 1;
    }
    let more = n > max;
    let mut done = 0;
    for (project, hours) in todo {
        done += rebuild(client, &project, &hours).await?;
    }
    Ok((done, more))
}

/// Rebuilds the rows of `hours` of `project` from their spans.
async fn rebuild(client: &Client, project: &str, hours: &[i64]) -> Result<usize, StoreError> {
    let out = rows(
        client,
        "SELECT toUnixTimestamp64Nano(now64(9))",
        "rebuilding rollups",
    )
    .await?;
    let built = RowReader::new(&out).i64()?;
    let p = sql::string(project);
    let list: Vec<String> = hours.iter().map(i64::to_string).collect();
    let conditions = format!(" AND hour IN ({})", list.join(", "));
    for family in [Family::Classes, Family::Users] {
        client
            .query(
                &format!(
                    "INSERT INTO rollup_rows (project, hour, built_ns, family, kind, \
                     request_model, response_model, provider, agent, tool, user, spans, errors, \
                     retries, priced, cost, unpriced, input_tokens, output_tokens, \
                     cache_read_tokens, cache_write_tokens, reasoning_tokens, total_tokens, \
                     duration, ttft) \
                     SELECT {p}, hour AS h, {built}, {}, {}, {} FROM {} \
                     GROUP BY h, 5, 6, 7, 8, 9, 10, 11",
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
    let mut out = RowBinary::new();
    for h in hours {
        out.str(project).i64(*h).i64(built);
    }
    client
        .insert(
            "INSERT INTO rollup_hours (project, hour, built_ns) FORMAT RowBinary",
            &out.finish(),
            &[],
        )
        .await
        .map_err(|e| ch_error("rebuilding rollups", e))?;
    Ok(hours.len())
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
    use super::hours_except;
    use std::collections::BTreeMap;

    #[test]
    fn every_hour_but_the_clean_ones_is_selected() {
        let clean = |hs: &[i64]| hs.iter().map(|h| (*h, 1)).collect::<BTreeMap<i64, i64>>();
        assert_eq!(hours_except(&clean(&[])).unwrap(), "1");
        assert_eq!(
            hours_except(&clean(&[5, 6, 9])).unwrap(),
            "(hour <= 4 OR (hour >= 7 AND hour <= 8) OR hour >= 10)"
        );
        assert_eq!(
            hours_except(&clean(&[5, 6])).unwrap(),
            "(hour <= 4 OR hour >= 7)"
        );
    }
}
