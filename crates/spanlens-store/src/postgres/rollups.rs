//! Rollups on PostgreSQL: metrics and daily cost read hour and day rows instead of every span.
//!
//! At 10M spans, cost by model over 30 days summed every span of the range and took 7.7–8.3 s.
//! SQLite keeps its rows exact by adding each commit's sums to them; here several collectors
//! commit at once, and adding to shared rows would make their commits queue on the same row
//! locks. So writers only *mark* what they changed, and rows are rebuilt from the spans later:
//!
//! - A commit appends to `rollup_dirty` one mark per hour its spans start in, and a statement
//!   trigger on `spans` marks the hours that rows it updates started in before (a span sent
//!   again may move to another hour; the same-call rule rewrites spans already stored).
//!   Appending takes no lock another commit waits on.
//! - One collector at a time (the `rollups` lease) rebuilds marked hours once they have had no
//!   new mark for a while: in one REPEATABLE READ transaction it reads the hour's spans, writes
//!   the hour's rows (`crate::rollup`'s encoding, as on SQLite) and deletes the marks *it saw*.
//!   A span committed after its snapshot left a mark it did not see, so that hour stays marked.
//!   A day row is the merge of its hours' rows, kept only while none of them is marked.
//! - A reader takes one snapshot and answers from rows where an hour (or day) has no mark, and
//!   from the spans themselves where it has one, plus the spans of the range's partial edges.
//!   Marked or not, every answer equals a recomputation from the spans.

use super::db;
use super::read::snapshot;
use super::side::find_project;
use crate::error::StoreError;
use crate::facts::prepare::to_i64;
use crate::facts::read::project_name;
use crate::rollup::answer::{add_to_groups, corrupt, row_items, span_item, DailySums, Item};
use crate::rollup::delta::{Delta, RowKey};
use crate::rollup::metrics::{Family, Groups, Select, SpanStats};
use crate::rollup::time::{signed_cover, Level};
use crate::types::{DailyCost, MetricRow, MetricsQuery};
use deadpool_postgres::Object;
use spanlens_core::Timestamp;
use std::collections::{BTreeMap, BTreeSet};
use tokio_postgres::{IsolationLevel, Row, Transaction};

/// The levels kept, finest first.
const LEVELS: [Level; 2] = [Level::Hour, Level::Day];
const HOUR_NS: i64 = 3_600_000_000_000;
const DAY_NS: i64 = 24 * HOUR_NS;
/// The families kept (the headroom and retry rollups of SQLite are not kept here).
const FAMILIES: [Family; 2] = [Family::Classes, Family::Users];
/// Their stored codes.
const FAMILY_CODES: [i16; 2] = [1, 2];

/// The start of the hour holding `t` (also before the epoch).
fn hour_of(t: i64) -> i64 {
    Level::Hour.bucket_of(t)
}

/// The last nanosecond of a bucket (inclusive, so the bucket holding `i64::MAX` has one).
fn last_ns(start: i64, width: i64) -> i64 {
    start.saturating_add(width - 1)
}

// ---------------------------------------------------------------------------------------------
// Writing: the marks of a commit

/// Marks `hours` of project `pid` changed, in the commit's transaction.
pub async fn mark(
    tx: &Transaction<'_>,
    pid: i64,
    hours: impl IntoIterator<Item = i64>,
) -> Result<(), StoreError> {
    let hours: Vec<i64> = hours.into_iter().collect();
    if hours.is_empty() {
        return Ok(());
    }
    tx.execute(
        "INSERT INTO rollup_dirty (project_id, hour_ns) SELECT $1, h FROM unnest($2::BIGINT[]) AS h",
        &[&pid, &hours],
    )
    .await
    .map_err(db("marking changed hours"))?;
    Ok(())
}

/// The start hours of spans, as [`mark`] takes them.
pub fn hours_of_starts(starts: impl IntoIterator<Item = i64>) -> BTreeSet<i64> {
    starts.into_iter().map(hour_of).collect()
}

// ---------------------------------------------------------------------------------------------
// Rebuilding

/// The span columns a metrics scan reads, in [`stats_of`]'s order.
const STATS_COLS: &str = crate::rollup::metrics::STATS_COLUMNS;

fn stats_of(r: &Row) -> SpanStats<'_> {
    SpanStats {
        start_ns: r.get(0),
        kind: r.get(1),
        error: r.get::<_, &str>(2) == "error",
        duration_ns: r.get(3),
        ttft_ns: r.get(4),
        tokens: [r.get(5), r.get(6), r.get(7), r.get(8), r.get(9), r.get(10)],
        cost_nano: r.get(11),
        retry_count: r.get(12),
        request_model: r.get(13),
        response_model: r.get(14),
        provider: r.get(15),
        agent: r.get(16),
        user: r.get(17),
        tool: r.get(18),
        unpriced: r.get(19),
    }
}

/// Rows fetched at a time from a span range, so an hour of any size is read in bounded memory.
const FETCH: i32 = 10_000;

/// Calls `f` with every span of `pid` that started in `[a, b]` (inclusive), of kind `kind`
/// when given, a page of rows at a time.
async fn for_each_span(
    tx: &Transaction<'_>,
    pid: i64,
    (a, b): (i64, i64),
    kind: Option<&str>,
    f: &mut (dyn FnMut(SpanStats<'_>) -> Result<(), StoreError> + Send),
) -> Result<(), StoreError> {
    let e = db("reading spans for metrics");
    let mut sql = format!(
        "SELECT {STATS_COLS} FROM spans WHERE project_id = $1 AND start_ns >= $2 \
         AND start_ns <= $3"
    );
    if kind.is_some() {
        sql.push_str(" AND kind = $4");
    }
    let statement = tx.prepare(&sql).await.map_err(&e)?;
    let portal = match kind {
        Some(k) => tx.bind(&statement, &[&pid, &a, &b, &k]).await,
        None => tx.bind(&statement, &[&pid, &a, &b]).await,
    }
    .map_err(&e)?;
    loop {
        let rows = tx.query_portal(&portal, FETCH).await.map_err(&e)?;
        for r in &rows {
            f(stats_of(r))?;
        }
        if rows.len() < FETCH as usize {
            return Ok(());
        }
    }
}

/// Rows to write: `(family, level, bucket, body)`.
type NewRows = Vec<(Family, Level, i64, Vec<u8>)>;

/// Replaces the rows of `level` and bucket `bucket` of project `pid` by `rows`.
async fn replace_rows(
    tx: &Transaction<'_>,
    pid: i64,
    level: Level,
    bucket: i64,
    rows: &NewRows,
) -> Result<(), StoreError> {
    let e = db("writing rollups");
    tx.execute(
        "DELETE FROM rollups WHERE project_id = $1 AND family = ANY($4) AND level = $2 \
         AND bucket_ns = $3",
        &[
            &pid,
            &(level.code() as i16),
            &bucket,
            &FAMILY_CODES.to_vec(),
        ],
    )
    .await
    .map_err(&e)?;
    if rows.is_empty() {
        return Ok(());
    }
    let families: Vec<i16> = rows.iter().map(|r| r.0.code() as i16).collect();
    let levels: Vec<i16> = rows.iter().map(|r| r.1.code() as i16).collect();
    let buckets: Vec<i64> = rows.iter().map(|r| r.2).collect();
    let bodies: Vec<&[u8]> = rows.iter().map(|r| r.3.as_slice()).collect();
    tx.execute(
        "INSERT INTO rollups (project_id, family, level, bucket_ns, body) \
         SELECT $1, f, l, b, d FROM unnest($2::SMALLINT[], $3::SMALLINT[], $4::BIGINT[], \
         $5::BYTEA[]) AS x(f, l, b, d)",
        &[&pid, &families, &levels, &buckets, &bodies],
    )
    .await
    .map_err(&e)?;
    Ok(())
}

/// The rows of `level` that `delta` holds.
fn rows_at(delta: &Delta, level: Level) -> NewRows {
    delta
        .encoded_rows()
        .into_iter()
        .filter(|(k, _)| k.level == level && FAMILIES.contains(&k.family))
        .map(|(k, b)| (k.family, k.level, k.bucket, b))
        .collect()
}

fn family_of(code: i16) -> Option<Family> {
    FAMILIES.into_iter().find(|f| f.code() == i64::from(code))
}

/// Rebuilds the marked hours of one project and UTC day, then the day's row, in one
/// transaction. Returns the hours rebuilt (none when another collector got there first).
///
/// Rebuilders of one day take turns on a session advisory lock taken *before* the transaction
/// starts, so each one's snapshot holds what the one before committed. (Two at once, say a
/// lease that moved while its old holder was still at work, or `refresh_rollups` beside the
/// background task, both inserted the day's rows, and the second failed on the key.)
async fn rebuild_day(client: &mut Object, pid: i64, day: i64) -> Result<usize, StoreError> {
    let e = db("rebuilding rollups");
    let key = super::writer::trace_lock(pid, &[&b"rollup-day:"[..], &day.to_le_bytes()].concat());
    client
        .execute("SELECT pg_advisory_lock($1)", &[&key])
        .await
        .map_err(&e)?;
    let rebuilt = rebuild_day_locked(client, pid, day).await;
    // Released whatever happened (a broken connection releases it too).
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&key])
        .await
        .map_err(&e);
    let rebuilt = rebuilt?;
    unlocked?;
    Ok(rebuilt)
}

async fn rebuild_day_locked(client: &mut Object, pid: i64, day: i64) -> Result<usize, StoreError> {
    let e = db("rebuilding rollups");
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .start()
        .await
        .map_err(&e)?;
    let day_end = last_ns(day, DAY_NS);
    let marks = tx
        .query(
            "SELECT id, hour_ns FROM rollup_dirty WHERE project_id = $1 \
             AND hour_ns >= $2 AND hour_ns <= $3",
            &[&pid, &day, &day_end],
        )
        .await
        .map_err(&e)?;
    let ids: Vec<i64> = marks.iter().map(|r| r.get(0)).collect();
    let hours: BTreeSet<i64> = marks.iter().map(|r| r.get(1)).collect();
    for &hour in &hours {
        let mut delta = Delta::default();
        let range = (hour, last_ns(hour, HOUR_NS));
        for_each_span(&tx, pid, range, None, &mut |s| {
            delta.add_span(&s, 1);
            Ok(())
        })
        .await?;
        replace_rows(&tx, pid, Level::Hour, hour, &rows_at(&delta, Level::Hour)).await?;
    }
    tx.execute("DELETE FROM rollup_dirty WHERE id = ANY($1)", &[&ids])
        .await
        .map_err(&e)?;
    // The day: the merge of its hour rows (every hour of it is unmarked in this snapshot).
    let hour_rows = tx
        .query(
            "SELECT family, body FROM rollups WHERE project_id = $1 AND family = ANY($5) \
             AND level = $2 AND bucket_ns >= $3 AND bucket_ns <= $4",
            &[
                &pid,
                &(Level::Hour.code() as i16),
                &day,
                &day_end,
                &FAMILY_CODES.to_vec(),
            ],
        )
        .await
        .map_err(&e)?;
    let mut delta = Delta::default();
    for r in &hour_rows {
        let Some(family) = family_of(r.get(0)) else {
            continue;
        };
        let key = RowKey {
            family,
            level: Level::Day,
            bucket: day,
        };
        delta.merge_encoded(key, r.get(1)).map_err(corrupt)?;
    }
    replace_rows(&tx, pid, Level::Day, day, &rows_at(&delta, Level::Day)).await?;
    match tx.commit().await {
        Ok(()) => Ok(hours.len()),
        // Another collector rebuilt the same rows meanwhile (a lease that moved): theirs stand.
        Err(x) if x.code() == Some(&tokio_postgres::error::SqlState::T_R_SERIALIZATION_FAILURE) => {
            Ok(0)
        }
        Err(x) => Err(e(x)),
    }
}

/// Rebuilds the rows of up to `max_days` (project, UTC day) pairs that have marked hours whose
/// newest mark is `settle` old by the database's clock (`None`: any marked hour); returns the
/// hours rebuilt and whether marked days were left for later.
pub async fn refresh(
    client: &mut Object,
    settle: Option<std::time::Duration>,
    max_days: usize,
) -> Result<(usize, bool), StoreError> {
    let settle_ns = settle.map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX / 2));
    let e = db("rebuilding rollups");
    let limit = i64::try_from(max_days)
        .unwrap_or(i64::MAX)
        .saturating_add(1);
    let due = client
        .query(
            "SELECT project_id, hour_ns - ((hour_ns % 86400000000000) + 86400000000000) \
             % 86400000000000 AS day FROM rollup_dirty GROUP BY project_id, hour_ns \
             HAVING $3 OR max(marked_ns) \
                < (extract(epoch FROM clock_timestamp()) * 1000000000)::BIGINT - $1 \
             ORDER BY 1, 2 LIMIT $2",
            &[&settle_ns, &(limit * 24), &settle.is_none()],
        )
        .await
        .map_err(&e)?;
    let days: BTreeSet<(i64, i64)> = due.iter().map(|r| (r.get(0), r.get(1))).collect();
    let more = days.len() > max_days || due.len() as i64 >= limit * 24;
    let mut rebuilt = 0;
    for (pid, day) in days.into_iter().take(max_days) {
        rebuilt += rebuild_day(client, pid, day).await?;
    }
    Ok((rebuilt, more))
}

/// The lease of the collector rebuilding rollups.
const LEASE: &str = "rollups";
/// Days rebuilt per round before the lease is renewed.
const DAYS_PER_ROUND: usize = 4;

/// The rollup task of a collector: every `every`, if it holds (or takes) the rollup lease,
/// rebuilds the hours settled for `settle`, until the store is dropped (`alive` gone). Errors
/// are logged and the next round tries again (the marks stay until a rebuild commits).
pub async fn keep_rebuilding(
    pool: deadpool_postgres::Pool,
    alive: std::sync::Weak<()>,
    every: std::time::Duration,
    settle: std::time::Duration,
) {
    let holder = format!("{}-{:016x}", std::process::id(), rand_id());
    let key = crate::store::Lease::key(LEASE);
    // Long enough for a round; a holder that dies frees the lease this soon.
    let ttl = i64::try_from((every * 10).as_nanos()).unwrap_or(i64::MAX / 2);
    loop {
        tokio::time::sleep(every).await;
        if alive.strong_count() == 0 {
            return;
        }
        let Ok(mut client) = pool.get().await else {
            continue;
        };
        loop {
            match super::side::acquire_lease(&client, &key, &holder, ttl).await {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "rollup lease not taken");
                    break;
                }
            }
            match refresh(&mut client, Some(settle), DAYS_PER_ROUND).await {
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

/// A random id for a lease holder.
fn rand_id() -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(super::schema::now_ns())
}

// ---------------------------------------------------------------------------------------------
// Reading

/// What is called with each row class and span that a range yields (`Send`: it is called
/// between reads).
type SendItemFn<'f> = dyn FnMut(Item<'_>) -> Result<(), StoreError> + Send + 'f;

/// `[from, to)` of a query clamped to the project's spans (`None`: no span in it), as SQLite
/// clamps it.
async fn range_of(
    tx: &Transaction<'_>,
    pid: i64,
    from: Option<Timestamp>,
    to: Option<Timestamp>,
) -> Result<Option<(i64, i64)>, StoreError> {
    let r = tx
        .query_one(
            "SELECT min(start_ns), max(start_ns) FROM spans WHERE project_id = $1",
            &[&pid],
        )
        .await
        .map_err(db("reading the time range"))?;
    let (Some(lo), Some(hi)) = (r.get::<_, Option<i64>>(0), r.get::<_, Option<i64>>(1)) else {
        return Ok(None);
    };
    let from = from.map_or(lo, |t| to_i64(t.0).max(lo));
    let to = to.map_or(hi.saturating_add(1), |t| {
        to_i64(t.0).min(hi.saturating_add(1))
    });
    Ok((from < to).then_some((from, to)))
}

/// Hands `f` what covers `[from, to)` for the selection: rows of unmarked hours and days, and
/// the spans of marked hours and of the partial edges, as they are read.
async fn cover(
    tx: &Transaction<'_>,
    pid: i64,
    sel: &Select,
    (from, to): (i64, i64),
    f: &mut SendItemFn<'_>,
) -> Result<(), StoreError> {
    let e = db("reading rollups");
    let c = signed_cover(from, to, &LEVELS);
    let family = sel.family().code() as i16;
    let lo = c.runs.iter().map(|r| r.1).min().unwrap_or(from);
    let hi = c.runs.iter().map(|r| r.2).max().unwrap_or(to);
    let marked: BTreeSet<i64> = tx
        .query(
            "SELECT DISTINCT hour_ns FROM rollup_dirty WHERE project_id = $1 \
             AND hour_ns >= $2 AND hour_ns < $3",
            &[&pid, &hour_of(lo), &hi],
        )
        .await
        .map_err(&e)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let rows_of = |level: Level, a: i64, b: i64| async move {
        tx.query(
            "SELECT bucket_ns, body FROM rollups WHERE project_id = $1 AND family = $2 \
             AND level = $3 AND bucket_ns >= $4 AND bucket_ns < $5",
            &[&pid, &family, &(level.code() as i16), &a, &b],
        )
        .await
        .map_err(db("reading rollups"))
    };
    // Whole hours to read, by sign: days with a mark (or no row) are read hour by hour.
    let mut hours: Vec<(i64, i64, i64)> = Vec::new();
    for &(level, a, b, sign) in &c.runs {
        if level == Level::Hour {
            hours.push((a, b, sign));
            continue;
        }
        let mut present: BTreeMap<i64, Row> = rows_of(Level::Day, a, b)
            .await?
            .into_iter()
            .map(|r| (r.get(0), r))
            .collect();
        let mut d = a;
        while d < b {
            let clean = marked.range(d..d.saturating_add(DAY_NS)).next().is_none();
            match present.remove(&d) {
                Some(row) if clean => row_items(sel, d, row.get(1), sign, f)?,
                _ => hours.push((d, d.saturating_add(DAY_NS), sign)),
            }
            d = d.saturating_add(DAY_NS);
        }
    }
    for (a, b, sign) in hours {
        for r in rows_of(Level::Hour, a, b).await? {
            let h: i64 = r.get(0);
            if !marked.contains(&h) {
                row_items(sel, h, r.get(1), sign, f)?;
            }
        }
        // Marked hours from their spans, neighbours in one read.
        let mut runs: Vec<(i64, i64)> = Vec::new();
        for &h in marked.range(a..b) {
            match runs.last_mut() {
                Some((_, last)) if last.saturating_add(1) == h => *last = last_ns(h, HOUR_NS),
                _ => runs.push((h, last_ns(h, HOUR_NS))),
            }
        }
        for range in runs {
            for_each_span(tx, pid, range, sel.kind(), &mut |s| {
                span_item(sel, s, sign, f)
            })
            .await?;
        }
    }
    for &(a, b, sign) in &c.scans {
        if a < b {
            let range = (a, b - 1);
            for_each_span(tx, pid, range, sel.kind(), &mut |s| {
                span_item(sel, s, sign, f)
            })
            .await?;
        }
    }
    Ok(())
}

/// Reads what covers the query's range in one snapshot (marks, rows and spans agree), handing
/// it to `f`; false when nothing can match (unknown project, no span in the range).
async fn read(
    client: &mut Object,
    q: &MetricsQuery,
    sel: &Select,
    f: &mut SendItemFn<'_>,
) -> Result<bool, StoreError> {
    if sel.matches_nothing() {
        return Ok(false);
    }
    let e = db("computing metrics");
    let tx = snapshot(client).await?;
    let Some(pid) = find_project(&*tx, &project_name(&q.project)).await? else {
        return Ok(false);
    };
    let Some(range) = range_of(&tx, pid, q.from, q.to).await? else {
        return Ok(false);
    };
    cover(&tx, pid, sel, range, f).await?;
    tx.commit().await.map_err(&e)?;
    Ok(true)
}

/// Span metrics grouped as the query asks.
pub async fn metrics(client: &mut Object, q: &MetricsQuery) -> Result<Vec<MetricRow>, StoreError> {
    let sel = Select::new(q);
    let mut groups = Groups::default();
    if !read(client, q, &sel, &mut |item| {
        add_to_groups(&mut groups, &sel, item)
    })
    .await?
    {
        return Ok(Vec::new());
    }
    groups.into_rows().map_err(corrupt)
}

/// Cost per group and UTC day; a group's day with no priced and no unpriced call is absent.
pub async fn daily_cost(
    client: &mut Object,
    q: &MetricsQuery,
) -> Result<Vec<DailyCost>, StoreError> {
    let sel = Select::new(q);
    let mut sums = DailySums::new(q);
    if !read(client, q, &sel, &mut |item| sums.add(item)).await? {
        return Ok(Vec::new());
    }
    Ok(sums.finish())
}
