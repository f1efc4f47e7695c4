//! The SQLite side of the rollups (`crate::rollup` holds what a row means): writing each group
//! commit's changes, and answering metrics, time series, daily cost and the recovery report
//! from rows plus the spans of a range's partial edges.
//!
//! Tables (migration 5):
//! - `rollups (project_id, family, level, bucket_ns, seq) → body`. A commit *appends* one row
//!   per bucket it changed instead of rewriting the bucket's row: a day row of the `Users`
//!   family holds every user of the day (about 1 MB at 40M spans a month), and rewriting it
//!   for each commit would cost more than the commit. When a bucket has [`COMPACT_AT`] rows
//!   they are merged into one, so a reader merges at most that many per bucket.
//!
//!   Commits write the *finest* bucket of each family (a quarter-hour, or an hour for users).
//!   An hour or day row is built once its bucket has gone cold — traffic has moved a finest
//!   bucket past its end — from the finest rows inside it, and from then on receives the
//!   changes of its bucket like any row. Until then readers use the finer rows. Summing every
//!   span into three levels per commit, and later merging the day's many delta rows, cost more
//!   than the rest of the rollups together.
//! - `span_retries`: one row per retried span, what the recovery report reads of it.
//! - `spans.rate_limits`: a model call's rate-limit snapshot, typed; `rate_limit_straddlers`
//!   repeats the few snapshots taken in another quarter-hour bucket than their span started in.

use super::chunk;
use super::prepare::PreparedSpan;
use super::prepare::{straddles, to_i64};
use super::query::project_id;
use crate::error::StoreError;
use crate::rollup::answer::{add_to_groups, corrupt, row_items, span_item, DailySums, ItemFn};
use crate::rollup::codec::{CodecError, Reader};
use crate::rollup::delta::{
    compact as merge_compaction, derive, CommitRows, Compaction, Delta, Derivation, RowKey,
};
use crate::rollup::headroom::{
    add_sample, encode_headroom, for_each_headroom_entry, HeadroomBody, HeadroomReport, RateSample,
};
use crate::rollup::metrics::{for_each_metrics_entry, Agg, Family, Groups, Select, SpanStats};
use crate::rollup::retries::{RetryBody, RetryFacts, RetryRow};
use crate::rollup::time::{cover, day_of, signed_cover, Level};
use crate::types::{DailyCost, MetricRow, MetricsQuery};
use rusqlite::{params, Connection, Row};
use spanlens_core::recovery::{Buckets, RecoveryReport, MAX_TIMELINES};
use spanlens_core::{retry_timeline, Span, SpanId, Timestamp};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Rows a bucket may hold before they are merged into one. A commit adds one; at 40M spans a
/// month a day bucket receives about 220 commits, so its row (about 1 MB for the users family)
/// is rewritten about 14 times a day instead of 220, and a reader merges at most 16 rows.
pub const COMPACT_AT: i64 = 16;

fn db(op: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |e| super::sqlite_error(op, &e)
}

/// A codec error as an engine error, for code that runs inside a write transaction.
fn codec_to_sql(e: CodecError) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(std::io::Error::other(format!(
        "rollup row: {e}"
    ))))
}

// ---------------------------------------------------------------------------------------------
// Writing

/// The CPU-heavy part of a commit's rollups, done beside the writer rather than by it: sums
/// the commit's spans per project, bucket and class, encodes one row per changed bucket, and
/// merges the buckets due for compaction. It runs on a helper thread while the writer inserts
/// the same spans: the writer is the serial part of ingest, and summing the spans there (or
/// per submission, then merging) made ingest 20–35% slower.
pub fn prepare_commit(
    jobs: &[(i64, &[PreparedSpan])],
    work: Maintenance,
    coarse: &BTreeSet<(i64, RowKey)>,
    by_project: &mut BTreeMap<i64, Delta>,
) -> Result<CommitRows, CodecError> {
    let mut out = CommitRows::default();
    let mut per_project: BTreeMap<i64, Vec<&PreparedSpan>> = BTreeMap::new();
    for (pid, rows) in jobs {
        per_project.entry(*pid).or_default().extend(rows.iter());
    }
    for (pid, d) in by_project.iter_mut() {
        if work.forget {
            d.clear_pending();
        }
        if d.clear_sums() {
            out.pending_lost.push(*pid);
        }
    }
    for (pid, rows) in &per_project {
        let has = |k: RowKey| coarse.contains(&(*pid, k));
        let d = by_project.entry(*pid).or_default();
        d.sum_spans(rows.iter().map(|r| r.stats()), &has);
        for r in rows {
            if let Some(p) = r.rate.as_ref().filter(|p| !straddles(r.start_ns, p.at_ns)) {
                d.add_sample_where(p.at_ns, &p.sample, &has);
            }
            if let Some(f) = &r.retry {
                d.add_retry_where(r.start_ns, f, 1, &has);
            }
        }
    }
    for pid in per_project.keys() {
        if let Some(d) = by_project.get(pid) {
            out.append
                .extend(d.encoded_rows().into_iter().map(|(k, b)| (*pid, k, b)));
        }
    }
    for c in work.compact {
        let body = merge_compaction(&c)?;
        out.compacted.push((c, body));
    }
    // Coarse rows built from the sums kept in memory, or else from their finest rows.
    for (pid, key) in work.from_memory {
        let body = by_project.get_mut(&pid).and_then(|d| d.take_pending(key));
        out.derived.push((pid, key, body));
    }
    for d in work.derive {
        if let Some(mine) = by_project.get_mut(&d.project) {
            mine.take_pending(d.key);
        }
        let body = derive(&d)?;
        out.derived.push((d.project, d.key, body));
    }
    Ok(out)
}

/// Row merging a commit does beside the writer: compactions, and coarse rows to build.
#[derive(Debug, Default)]
pub struct Maintenance {
    pub compact: Vec<Compaction>,
    /// Coarse rows to build from their finest rows (their sums in memory may be incomplete).
    pub derive: Vec<Derivation>,
    /// Coarse rows to build from the sums kept in memory (complete: every commit since the
    /// bucket's first span went through them).
    pub from_memory: Vec<(i64, RowKey)>,
    /// Drop the sums kept in memory first (a commit failed after adding to them).
    pub forget: bool,
}

/// Rollup buckets, by project.
pub type BucketSet = BTreeSet<(i64, RowKey)>;

/// The start of the newest finest bucket written, per project and family.
pub type Newest = BTreeMap<(i64, Family), i64>;

/// The coarse buckets (hour and day) a commit's spans fall in, and the start of the newest
/// finest bucket, per project and family.
pub fn buckets_of(jobs: &[(i64, &[PreparedSpan])]) -> (BucketSet, Newest) {
    let mut coarse = BTreeSet::new();
    let mut newest: BTreeMap<(i64, Family), i64> = BTreeMap::new();
    // Spans come in runs of one trace: a finest bucket seen just before is skipped.
    let mut last: [Option<(i64, i64)>; 4] = [None; 4];
    let mut see = |pid: i64, f: usize, family: Family, t: i64| {
        let finest = family.levels()[0].bucket_of(t);
        if last[f] == Some((pid, finest)) {
            return;
        }
        last[f] = Some((pid, finest));
        let n = newest.entry((pid, family)).or_insert(finest);
        *n = (*n).max(finest);
        for level in &family.levels()[1..] {
            coarse.insert((
                pid,
                RowKey {
                    family,
                    level: *level,
                    bucket: level.bucket_of(t),
                },
            ));
        }
    };
    for (pid, rows) in jobs {
        for r in rows.iter() {
            see(*pid, 0, Family::Classes, r.start_ns);
            see(*pid, 1, Family::Users, r.start_ns);
            if let Some(p) = r.rate.as_ref().filter(|p| !straddles(r.start_ns, p.at_ns)) {
                see(*pid, 2, Family::Headroom, p.at_ns);
            }
            if r.retry.is_some() {
                see(*pid, 3, Family::Retries, r.start_ns);
            }
        }
    }
    (coarse, newest)
}

/// Which of `keys` have rows.
pub fn existing(
    conn: &Connection,
    keys: &BTreeSet<(i64, RowKey)>,
) -> rusqlite::Result<BTreeSet<(i64, RowKey)>> {
    let mut out = BTreeSet::new();
    let mut st = conn.prepare_cached(
        "SELECT 1 FROM rollups WHERE project_id = ?1 AND family = ?2 AND level = ?3 \
         AND bucket_ns = ?4 LIMIT 1",
    )?;
    for (pid, k) in keys {
        if st.exists(params![pid, k.family.code(), k.level.code(), k.bucket])? {
            out.insert((*pid, *k));
        }
    }
    Ok(out)
}

/// The rows that make up coarse buckets due to be built.
pub fn read_derivations(
    conn: &Connection,
    due: &BTreeSet<(i64, RowKey)>,
) -> rusqlite::Result<Vec<Derivation>> {
    let mut out = Vec::new();
    for (pid, key) in due {
        out.push(Derivation {
            project: *pid,
            key: *key,
            rows: read_children(conn, *pid, *key)?,
        });
    }
    Ok(out)
}

/// The rows of the level just below a coarse bucket, and where a bucket there has no row yet,
/// the rows below that: a week of users is then its seven day rows (about 20 MB) rather than
/// its 168 hours of rows.
fn read_children(conn: &Connection, pid: i64, key: RowKey) -> rusqlite::Result<Vec<Vec<u8>>> {
    let levels = key.family.levels();
    let mut out = Vec::new();
    let Some(at) = levels.iter().position(|l| *l == key.level) else {
        return Ok(out);
    };
    let mut st = conn.prepare_cached(
        "SELECT bucket_ns, body FROM rollups WHERE project_id = ?1 AND family = ?2 \
         AND level = ?3 AND bucket_ns >= ?4 AND bucket_ns < ?5",
    )?;
    let end = key.bucket.saturating_add(key.level.width_ns());
    let mut todo: Vec<(usize, i64, i64)> = at
        .checked_sub(1)
        .map(|i| (i, key.bucket, end))
        .into_iter()
        .collect();
    while let Some((i, a, b)) = todo.pop() {
        let level = levels[i];
        let mut present = BTreeSet::new();
        let mut rows = st.query(params![pid, key.family.code(), level.code(), a, b])?;
        while let Some(r) = rows.next()? {
            present.insert(r.get::<_, i64>(0)?);
            out.push(r.get(1)?);
        }
        let Some(finer) = i.checked_sub(1) else {
            continue;
        };
        let w = level.width_ns();
        let mut p = a;
        while p < b {
            if present.contains(&p) {
                p += w;
                continue;
            }
            let start = p;
            while p < b && !present.contains(&p) {
                p += w;
            }
            todo.push((finer, start, p));
        }
    }
    Ok(out)
}

/// Migration 7: builds the week rows of the users family from the rows inside each week.
pub fn build_weeks(
    conn: &Connection,
    progress: &mut dyn FnMut(BuildProgress),
) -> rusqlite::Result<()> {
    const STEP: &str = "building week rows of the users family (weeks)";
    let mut weeks = BTreeSet::new();
    {
        let mut st = conn.prepare(
            "SELECT DISTINCT project_id, bucket_ns FROM rollups WHERE family = ?1 AND level = ?2",
        )?;
        let mut rows = st.query(params![Family::Users.code(), Level::Hour.code()])?;
        while let Some(r) = rows.next()? {
            let (pid, b): (i64, i64) = (r.get(0)?, r.get(1)?);
            weeks.insert((
                pid,
                RowKey {
                    family: Family::Users,
                    level: Level::Week,
                    bucket: Level::Week.bucket_of(b),
                },
            ));
        }
    }
    let total = weeks.len() as u64;
    for (done, (pid, key)) in weeks.into_iter().enumerate() {
        progress(BuildProgress {
            step: STEP,
            done: done as u64,
            total,
        });
        let d = Derivation {
            project: pid,
            key,
            rows: read_children(conn, pid, key)?,
        };
        if let Some(body) = derive(&d).map_err(codec_to_sql)? {
            replace_bucket(conn, pid, &key, Some(&body))?;
        }
    }
    progress(BuildProgress {
        step: STEP,
        done: total,
        total,
    });
    Ok(())
}

/// Coarse buckets that have finest rows but no row of their own, and the start of the newest
/// finest bucket per project and family: what a writer opened on an existing database still
/// has to build.
pub fn unbuilt_coarse(conn: &Connection) -> rusqlite::Result<(BucketSet, Newest)> {
    let mut built = BTreeSet::new();
    let mut finest = Vec::new();
    let mut st =
        conn.prepare("SELECT DISTINCT project_id, family, level, bucket_ns FROM rollups")?;
    let mut rows = st.query([])?;
    while let Some(r) = rows.next()? {
        let (pid, f, l, b): (i64, i64, i64, i64) = (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
        let (Some(family), Some(level)) = (
            family_of(f),
            Level::EVERY.into_iter().find(|x| x.code() == l),
        ) else {
            continue;
        };
        let key = RowKey {
            family,
            level,
            bucket: b,
        };
        if family.levels()[0] == level {
            finest.push((pid, key));
        } else {
            built.insert((pid, key));
        }
    }
    let mut missing = BTreeSet::new();
    let mut newest: BTreeMap<(i64, Family), i64> = BTreeMap::new();
    for (pid, k) in finest {
        let n = newest.entry((pid, k.family)).or_insert(k.bucket);
        *n = (*n).max(k.bucket);
        for level in &k.family.levels()[1..] {
            let up = RowKey {
                family: k.family,
                level: *level,
                bucket: level.bucket_of(k.bucket),
            };
            if !built.contains(&(pid, up)) {
                missing.insert((pid, up));
            }
        }
    }
    Ok((missing, newest))
}

fn family_of(code: i64) -> Option<Family> {
    [
        Family::Classes,
        Family::Users,
        Family::Headroom,
        Family::Retries,
    ]
    .into_iter()
    .find(|f| f.code() == code)
}

/// Writes changes for one project at once, compacting as it goes (the upgrade, which builds
/// every level; commits go through [`write_commit`]).
pub fn write_delta(conn: &Connection, pid: i64, delta: &Delta) -> rusqlite::Result<()> {
    for key in append(conn, pid, delta.encoded_rows())? {
        compact(conn, pid, &key)?;
    }
    Ok(())
}

/// Writes changes to the finest rows, and to the coarse rows that exist (the others will be
/// built from the finest rows): the old copies of replaced spans.
pub fn write_delta_built(conn: &Connection, pid: i64, delta: &Delta) -> rusqlite::Result<()> {
    let mut rows = Vec::new();
    for (key, body) in delta.encoded_rows() {
        let finest = key.family.levels()[0] == key.level;
        if finest || row_count(conn, pid, &key)?.0 > 0 {
            rows.push((key, body));
        }
    }
    for key in append(conn, pid, rows)? {
        compact(conn, pid, &key)?;
    }
    Ok(())
}

/// Appends rows of one project; returns the buckets that now have [`COMPACT_AT`] rows.
fn append<B: AsRef<[u8]>>(
    conn: &Connection,
    pid: i64,
    rows: Vec<(RowKey, B)>,
) -> rusqlite::Result<Vec<RowKey>> {
    let mut full = Vec::new();
    // In key order, so the appends walk the table's index in order.
    for (key, body) in rows {
        let (n, next) = row_count(conn, pid, &key)?;
        conn.prepare_cached(
            "INSERT INTO rollups (project_id, family, level, bucket_ns, seq, body) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            pid,
            key.family.code(),
            key.level.code(),
            key.bucket,
            next,
            body.as_ref()
        ])?;
        if n + 1 >= COMPACT_AT {
            full.push(key);
        }
    }
    Ok(full)
}

/// Writes a commit's prepared rollups: the compacted buckets first (their merged rows replace
/// the rows that were merged), then the appended rows. Returns the buckets due for compaction,
/// which the next commit merges beside the writer.
pub fn write_commit(
    conn: &Connection,
    rows: &CommitRows,
) -> rusqlite::Result<BTreeSet<(i64, RowKey)>> {
    for (pid, key, body) in &rows.derived {
        let (pid, key) = (*pid, *key);
        if let Some(body) = body {
            let (_, next) = row_count(conn, pid, &key)?;
            conn.prepare_cached(
                "INSERT INTO rollups (project_id, family, level, bucket_ns, seq, body) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                pid,
                key.family.code(),
                key.level.code(),
                key.bucket,
                next,
                body
            ])?;
        }
    }
    for (c, body) in &rows.compacted {
        let mut del = conn.prepare_cached(
            "DELETE FROM rollups WHERE project_id = ?1 AND family = ?2 AND level = ?3 \
             AND bucket_ns = ?4 AND seq = ?5",
        )?;
        for seq in &c.seqs {
            del.execute(params![
                c.project,
                c.key.family.code(),
                c.key.level.code(),
                c.key.bucket,
                seq
            ])?;
        }
        if let (Some(body), Some(seq)) = (body, c.seqs.iter().min()) {
            conn.prepare_cached(
                "INSERT INTO rollups (project_id, family, level, bucket_ns, seq, body) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                c.project,
                c.key.family.code(),
                c.key.level.code(),
                c.key.bucket,
                seq,
                body
            ])?;
        }
    }
    let mut by_project: BTreeMap<i64, Vec<(RowKey, &[u8])>> = BTreeMap::new();
    for (pid, key, body) in &rows.append {
        by_project.entry(*pid).or_default().push((*key, body));
    }
    let mut due = BTreeSet::new();
    for (pid, rows) in by_project {
        due.extend(append(conn, pid, rows)?.into_iter().map(|k| (pid, k)));
    }
    Ok(due)
}

/// The stored rows of buckets due for compaction (those with fewer than two rows left out).
pub fn read_compactions(
    conn: &Connection,
    due: &BTreeSet<(i64, RowKey)>,
) -> rusqlite::Result<Vec<Compaction>> {
    let mut out = Vec::new();
    let mut st = conn.prepare_cached(
        "SELECT seq, body FROM rollups WHERE project_id = ?1 AND family = ?2 AND level = ?3 \
         AND bucket_ns = ?4",
    )?;
    for (pid, key) in due {
        let mut c = Compaction {
            project: *pid,
            key: *key,
            seqs: Vec::new(),
            rows: Vec::new(),
        };
        let mut rows = st.query(params![
            pid,
            key.family.code(),
            key.level.code(),
            key.bucket
        ])?;
        while let Some(r) = rows.next()? {
            c.seqs.push(r.get(0)?);
            c.rows.push(r.get(1)?);
        }
        if c.seqs.len() >= 2 {
            out.push(c);
        }
    }
    Ok(out)
}

/// Rows of a bucket and the next free `seq`.
fn row_count(conn: &Connection, pid: i64, key: &RowKey) -> rusqlite::Result<(i64, i64)> {
    conn.prepare_cached(
        "SELECT count(*), IFNULL(max(seq), -1) + 1 FROM rollups \
         WHERE project_id = ?1 AND family = ?2 AND level = ?3 AND bucket_ns = ?4",
    )?
    .query_row(
        params![pid, key.family.code(), key.level.code(), key.bucket],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

/// Merges the rows of `child` level in `[from, to)` into `into` as the row `key`.
fn read_rows(
    conn: &Connection,
    pid: i64,
    key: RowKey,
    child: Level,
    from: i64,
    to: i64,
    into: &mut Delta,
) -> rusqlite::Result<()> {
    let mut st = conn.prepare_cached(
        "SELECT body FROM rollups WHERE project_id = ?1 AND family = ?2 AND level = ?3 \
         AND bucket_ns >= ?4 AND bucket_ns < ?5",
    )?;
    let mut rows = st.query(params![pid, key.family.code(), child.code(), from, to])?;
    while let Some(r) = rows.next()? {
        into.merge_encoded(key, r.get_ref(0)?.as_blob()?)
            .map_err(codec_to_sql)?;
    }
    Ok(())
}

/// Replaces every row of a bucket by `body` (none when `None`).
fn replace_bucket(
    conn: &Connection,
    pid: i64,
    key: &RowKey,
    body: Option<&[u8]>,
) -> rusqlite::Result<()> {
    let (_, next) = row_count(conn, pid, key)?;
    conn.prepare_cached(
        "DELETE FROM rollups WHERE project_id = ?1 AND family = ?2 AND level = ?3 AND bucket_ns = ?4",
    )?
    .execute(params![
        pid,
        key.family.code(),
        key.level.code(),
        key.bucket
    ])?;
    let Some(body) = body else {
        return Ok(());
    };
    conn.prepare_cached(
        "INSERT INTO rollups (project_id, family, level, bucket_ns, seq, body) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        pid,
        key.family.code(),
        key.level.code(),
        key.bucket,
        next,
        body
    ])?;
    Ok(())
}

/// Merges a bucket's rows into one.
fn compact(conn: &Connection, pid: i64, key: &RowKey) -> rusqlite::Result<()> {
    let mut merged = Delta::default();
    let end = key.bucket + key.level.width_ns();
    read_rows(conn, pid, *key, key.level, key.bucket, end, &mut merged)?;
    replace_bucket(conn, pid, key, merged.encoded_row(*key).as_deref())
}

const RATE_COLS: &str = "start_ns, end_ns, rate_limits";

/// A span row's rate-limit snapshot: `(start, snapshot time, sample)`.
fn rate_of(r: &Row<'_>) -> rusqlite::Result<Option<(i64, i64, RateSample)>> {
    let start: i64 = r.get(0)?;
    let end: Option<i64> = r.get(1)?;
    let Some(bytes) = r.get_ref(2)?.as_blob_or_null()? else {
        return Ok(None);
    };
    let sample = RateSample::decode(bytes).map_err(codec_to_sql)?;
    Ok(Some((start, end.unwrap_or(start), sample)))
}

/// Rebuilds the headroom rows of quarter-hour buckets whose snapshots changed in a way rows
/// cannot take back (a re-sent span with another snapshot): each bucket from its spans, then
/// its hour from the hour's buckets and its day from the day's hours.
pub fn rebuild_headroom(conn: &Connection, leaves: &BTreeSet<(i64, i64)>) -> rusqlite::Result<()> {
    let mut hours = BTreeSet::new();
    for &(pid, leaf) in leaves {
        let mut body = HeadroomBody::new();
        let mut st = conn.prepare_cached(&format!(
            "SELECT {RATE_COLS} FROM spans INDEXED BY spans_time WHERE project_id = ?1 \
             AND start_ns >= ?2 AND start_ns < ?3 AND rate_limits IS NOT NULL"
        ))?;
        let mut rows = st.query(params![pid, leaf, leaf + Level::Leaf.width_ns()])?;
        while let Some(r) = rows.next()? {
            if let Some((start, at, sample)) = rate_of(r)? {
                if !straddles(start, at) {
                    add_sample(&mut body, &sample);
                }
            }
        }
        let key = RowKey {
            family: Family::Headroom,
            level: Level::Leaf,
            bucket: leaf,
        };
        let bytes = (!body.is_empty()).then(|| encode_headroom(&body));
        replace_bucket(conn, pid, &key, bytes.as_deref())?;
        hours.insert((pid, Level::Hour.bucket_of(leaf)));
    }
    let mut days = BTreeSet::new();
    for &(pid, hour) in &hours {
        merge_children(conn, pid, Level::Hour, hour, Level::Leaf)?;
        days.insert((pid, Level::Day.bucket_of(hour)));
    }
    for &(pid, day) in &days {
        merge_children(conn, pid, Level::Day, day, Level::Leaf)?;
    }
    Ok(())
}

/// Replaces a built headroom bucket by the merge of the finer buckets inside it (a bucket not
/// built yet is left to be built).
fn merge_children(
    conn: &Connection,
    pid: i64,
    level: Level,
    bucket: i64,
    child: Level,
) -> rusqlite::Result<()> {
    let key = RowKey {
        family: Family::Headroom,
        level,
        bucket,
    };
    if row_count(conn, pid, &key)?.0 == 0 {
        return Ok(());
    }
    let mut merged = Delta::default();
    read_rows(
        conn,
        pid,
        key,
        child,
        bucket,
        bucket + level.width_ns(),
        &mut merged,
    )?;
    replace_bucket(conn, pid, &key, merged.encoded_row(key).as_deref())
}

// ---------------------------------------------------------------------------------------------
// Reading

/// The span columns a metrics scan reads, in [`stats_of`]'s order.
pub(super) const STATS_COLS: &str = crate::rollup::metrics::STATS_COLUMNS;

fn stats_of<'r>(r: &'r Row<'_>) -> rusqlite::Result<SpanStats<'r>> {
    let text =
        |i: usize| -> rusqlite::Result<Option<&'r str>> { Ok(r.get_ref(i)?.as_str_or_null()?) };
    Ok(SpanStats {
        start_ns: r.get(0)?,
        kind: r.get_ref(1)?.as_str()?,
        error: r.get_ref(2)?.as_str()? == "error",
        duration_ns: r.get(3)?,
        ttft_ns: r.get(4)?,
        tokens: [
            r.get(5)?,
            r.get(6)?,
            r.get(7)?,
            r.get(8)?,
            r.get(9)?,
            r.get(10)?,
        ],
        cost_nano: r.get(11)?,
        retry_count: r.get(12)?,
        request_model: text(13)?,
        response_model: text(14)?,
        provider: text(15)?,
        agent: text(16)?,
        user: text(17)?,
        tool: text(18)?,
        unpriced: r.get::<_, i64>(19)? != 0,
    })
}

/// What [`read_runs`] calls with each row's bucket and body.
type RowFn<'a> = dyn FnMut(i64, &[u8]) -> Result<(), StoreError> + 'a;

/// Calls `f` with `(bucket, body)` of every row of `family` covering the runs of whole
/// buckets; where a coarse bucket's row has not been built yet, its finer rows instead.
fn read_runs(
    conn: &Connection,
    pid: i64,
    family: Family,
    runs: &[(Level, i64, i64)],
    f: &mut RowFn<'_>,
) -> Result<(), StoreError> {
    let e = db("reading rollups");
    let mut st = conn
        .prepare_cached(
            "SELECT bucket_ns, body FROM rollups WHERE project_id = ?1 AND family = ?2 \
             AND level = ?3 AND bucket_ns >= ?4 AND bucket_ns < ?5",
        )
        .map_err(&e)?;
    let levels = family.levels();
    let mut todo: Vec<(Level, i64, i64)> = runs.to_vec();
    while let Some((level, a, b)) = todo.pop() {
        let mut present = BTreeSet::new();
        let mut rows = st
            .query(params![pid, family.code(), level.code(), a, b])
            .map_err(&e)?;
        while let Some(r) = rows.next().map_err(&e)? {
            let bucket: i64 = r.get(0).map_err(&e)?;
            let body = r
                .get_ref(1)
                .map_err(&e)?
                .as_blob()
                .map_err(|x| corrupt(CodecError(format!("body: {x}"))))?;
            f(bucket, body)?;
            present.insert(bucket);
        }
        // Buckets without a row: not built yet (or empty); read the next finer level there.
        let Some(finer) = levels
            .iter()
            .position(|l| *l == level)
            .and_then(|i| i.checked_sub(1))
            .and_then(|i| levels.get(i))
        else {
            continue;
        };
        let w = level.width_ns();
        let mut p = a;
        while p < b {
            if present.contains(&p) {
                p += w;
                continue;
            }
            let start = p;
            while p < b && !present.contains(&p) {
                p += w;
            }
            todo.push((*finer, start, p));
        }
    }
    Ok(())
}

/// Calls `f` with the matching classes of the rows of `runs` (`(level, from, to, sign)`).
fn fold_rows(
    conn: &Connection,
    pid: i64,
    sel: &Select,
    runs: &[(Level, i64, i64, i64)],
    f: &mut ItemFn<'_>,
) -> Result<(), StoreError> {
    for sign in [1, -1] {
        let mine: Vec<(Level, i64, i64)> = runs
            .iter()
            .filter(|r| r.3 == sign)
            .map(|r| (r.0, r.1, r.2))
            .collect();
        if mine.is_empty() {
            continue;
        }
        read_runs(conn, pid, sel.family(), &mine, &mut |bucket, body| {
            row_items(sel, bucket, body, sign, f)
        })?;
    }
    Ok(())
}

/// Calls `f` with the matching spans that started in `[a, b)`, with `sign`.
fn fold_spans(
    conn: &Connection,
    pid: i64,
    sel: &Select,
    (a, b, sign): (i64, i64, i64),
    f: &mut ItemFn<'_>,
) -> Result<(), StoreError> {
    let e = db("scanning the edges of a range");
    let mut sql = format!(
        "SELECT {STATS_COLS} FROM spans INDEXED BY spans_time WHERE project_id = ?1 \
         AND start_ns >= ?2 AND start_ns < ?3"
    );
    if let Some(k) = sel.kind() {
        // Kinds are fixed lowercase words, so the literal needs no escaping; quoting it keeps
        // the statement cacheable per kind.
        if k.chars().all(|c| c.is_ascii_lowercase()) {
            sql.push_str(&format!(" AND kind = '{k}'"));
        }
    }
    let mut st = conn.prepare_cached(&sql).map_err(&e)?;
    let mut rows = st.query(params![pid, a, b]).map_err(&e)?;
    while let Some(r) = rows.next().map_err(&e)? {
        span_item(sel, stats_of(r).map_err(&e)?, sign, f)?;
    }
    Ok(())
}

/// Calls `f` with everything the selection counts in `[from, to)`, signed.
fn fold(
    conn: &Connection,
    pid: i64,
    sel: &Select,
    from: i64,
    to: i64,
    f: &mut ItemFn<'_>,
) -> Result<(), StoreError> {
    let c = signed_cover(from, to, sel.family().levels());
    fold_rows(conn, pid, sel, &c.runs, f)?;
    for scan in &c.scans {
        fold_spans(conn, pid, sel, *scan, f)?;
    }
    Ok(())
}

/// `[from, to)` of a query, clamped to the project's spans (`None`: no span in it).
fn range_of(
    conn: &Connection,
    pid: i64,
    from: Option<Timestamp>,
    to: Option<Timestamp>,
) -> Result<Option<(i64, i64)>, StoreError> {
    // Two queries: SQLite answers a lone min() or max() from the index edge, not both at once.
    let edge = |sql: &str| -> Result<Option<i64>, StoreError> {
        conn.query_row(sql, [pid], |r| r.get(0))
            .map_err(db("reading the time range"))
    };
    let lo = edge("SELECT min(start_ns) FROM spans INDEXED BY spans_time WHERE project_id = ?1")?;
    let hi = edge("SELECT max(start_ns) FROM spans INDEXED BY spans_time WHERE project_id = ?1")?;
    let (Some(lo), Some(hi)) = (lo, hi) else {
        return Ok(None);
    };
    let from = from.map_or(lo, |t| to_i64(t.0).max(lo));
    let to = to.map_or(hi.saturating_add(1), |t| {
        to_i64(t.0).min(hi.saturating_add(1))
    });
    Ok((from < to).then_some((from, to)))
}

/// Span metrics grouped as asked, from rollups and the spans of the range's partial edges.
pub fn metrics(conn: &Connection, q: &MetricsQuery) -> Result<Vec<MetricRow>, StoreError> {
    let sel = Select::new(q);
    if sel.matches_nothing() {
        return Ok(Vec::new());
    }
    let Some(pid) = project_id(conn, &super::project_name(&q.project))? else {
        return Ok(Vec::new());
    };
    let Some((from, to)) = range_of(conn, pid, q.from, q.to)? else {
        return Ok(Vec::new());
    };
    let mut groups = Groups::default();
    fold(conn, pid, &sel, from, to, &mut |item| {
        add_to_groups(&mut groups, &sel, item)
    })?;
    groups.into_rows().map_err(corrupt)
}

/// Metrics of each slice `[bounds[i], bounds[i + 1])` and of their union, in one pass.
/// Neighbouring slices round their shared bound to the same bucket edge, so the spans between
/// the two are scanned once and added to one slice, taken from the other.
pub fn metrics_series(
    conn: &Connection,
    q: &MetricsQuery,
    bounds: &[Timestamp],
) -> Result<crate::types::MetricSeries, StoreError> {
    let slices = bounds.len().saturating_sub(1);
    let empty = || crate::types::MetricSeries {
        rows: Vec::new(),
        slices: vec![Vec::new(); slices],
    };
    let sel = Select::new(q);
    if sel.matches_nothing() || slices == 0 {
        return Ok(empty());
    }
    if bounds.windows(2).any(|w| w[0].0 > w[1].0) {
        return Err(StoreError::InvalidQuery(
            "time series bounds must not decrease".into(),
        ));
    }
    let Some(pid) = project_id(conn, &super::project_name(&q.project))? else {
        return Ok(empty());
    };
    let mut total = Groups::default();
    let mut out = Vec::with_capacity(slices);
    let mut scanned: HashMap<(i64, i64), Groups> = HashMap::new();
    for w in bounds.windows(2) {
        let mut groups = Groups::default();
        if let Some((from, to)) = range_of(conn, pid, Some(w[0]), Some(w[1]))? {
            let c = signed_cover(from, to, sel.family().levels());
            fold_rows(conn, pid, &sel, &c.runs, &mut |item| {
                add_to_groups(&mut groups, &sel, item)
            })?;
            groups.flush().map_err(corrupt)?;
            for &(a, b, sign) in &c.scans {
                if let std::collections::hash_map::Entry::Vacant(slot) = scanned.entry((a, b)) {
                    let mut g = Groups::default();
                    fold_spans(conn, pid, &sel, (a, b, 1), &mut |item| {
                        add_to_groups(&mut g, &sel, item)
                    })?;
                    slot.insert(g);
                }
                if let Some(g) = scanned.get(&(a, b)) {
                    groups.merge(g, sign);
                }
            }
        }
        total.merge(&groups, 1);
        out.push(groups.into_rows().map_err(corrupt)?);
    }
    Ok(crate::types::MetricSeries {
        rows: total.into_rows().map_err(corrupt)?,
        slices: out,
    })
}

/// Cost per group and UTC day, from rollups and the spans of the range's partial edges.
pub fn daily_cost(conn: &Connection, q: &MetricsQuery) -> Result<Vec<DailyCost>, StoreError> {
    let sel = Select::new(q);
    if sel.matches_nothing() {
        return Ok(Vec::new());
    }
    let Some(pid) = project_id(conn, &super::project_name(&q.project))? else {
        return Ok(Vec::new());
    };
    let Some((from, to)) = range_of(conn, pid, q.from, q.to)? else {
        return Ok(Vec::new());
    };
    let mut sums = DailySums::new(q);
    fold(conn, pid, &sel, from, to, &mut |item| sums.add(item))?;
    Ok(sums.finish())
}

/// The error-recovery report over spans that started in `[b.from, b.to)`: retries from the
/// retry rollups plus the `span_retries` rows of the range's edges, timelines from the bodies
/// of the 200 most recent retried spans only, rate-limit headroom from rollups plus the
/// snapshots of the partial edges.
pub fn recovery_report(
    conn: &Connection,
    project: &str,
    b: Buckets,
) -> Result<RecoveryReport, StoreError> {
    let mut headroom = HeadroomReport::new(b);
    let Some(pid) = project_id(conn, project)? else {
        return Ok(RetryBody::default().finish(Vec::new(), headroom.finish()));
    };
    let (from, to) = (to_i64(b.from.0), to_i64(b.to.0));
    let mut sums = RetryBody::default();
    if from < to {
        let c = signed_cover(from, to, Family::Retries.levels());
        for sign in [1, -1] {
            let runs: Vec<(Level, i64, i64)> = c
                .runs
                .iter()
                .filter(|r| r.3 == sign)
                .map(|r| (r.0, r.1, r.2))
                .collect();
            if !runs.is_empty() {
                read_runs(conn, pid, Family::Retries, &runs, &mut |_, body| {
                    sums.merge_encoded(body, sign).map_err(corrupt)
                })?;
            }
        }
        for &(a, z, sign) in &c.scans {
            for_each_retry_row(conn, pid, a, z, &mut |r| {
                let f = RetryFacts::of_row(r).map_err(|x| retry_corrupt(x.0))?;
                sums.add(&f, sign);
                Ok(())
            })?;
        }
    }
    let timelines = recent_timelines(conn, &recent_retried(conn, pid, from, to)?)?;
    headroom_into(conn, pid, from, to, &mut headroom)?;
    Ok(sums.finish(timelines, headroom.finish()))
}

/// Calls `f` with each `span_retries` row of spans that started in `[from, to)`.
fn for_each_retry_row(
    conn: &Connection,
    pid: i64,
    from: i64,
    to: i64,
    f: &mut dyn FnMut(&RetryRow<'_>) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let e = db("reading retried spans");
    let mut st = conn
        .prepare_cached(
            "SELECT start_ns, provider, tool, retries, recovered, recovery_ms, errors \
             FROM span_retries WHERE project_id = ?1 AND start_ns >= ?2 AND start_ns < ?3",
        )
        .map_err(&e)?;
    let mut rows = st.query(params![pid, from, to]).map_err(&e)?;
    while let Some(r) = rows.next().map_err(&e)? {
        let text = |i: usize| -> Result<Option<&str>, StoreError> {
            r.get_ref(i)
                .map_err(&e)?
                .as_str_or_null()
                .map_err(|x| retry_corrupt(x.to_string()))
        };
        f(&RetryRow {
            start_ns: r.get(0).map_err(&e)?,
            provider: text(1)?,
            tool: text(2)?,
            retries: u64::try_from(r.get::<_, i64>(3).map_err(&e)?).unwrap_or(0),
            recovered: r.get(4).map_err(&e)?,
            recovery_ms: r.get(5).map_err(&e)?,
            errors: r
                .get_ref(6)
                .map_err(&e)?
                .as_blob()
                .map_err(|x| retry_corrupt(x.to_string()))?,
        })?;
    }
    Ok(())
}

/// The `(trace row id, span id)` of the most recent retried spans of `[from, to)` (at most
/// `MAX_TIMELINES`: latest start first, then by trace and span id), read newest first from
/// the table's key.
fn recent_retried(
    conn: &Connection,
    pid: i64,
    from: i64,
    to: i64,
) -> Result<Vec<(i64, [u8; 8])>, StoreError> {
    let e = db("reading retried spans");
    let mut st = conn
        .prepare_cached(
            "SELECT start_ns, trace_ref, span_id, trace_id FROM span_retries \
             WHERE project_id = ?1 AND start_ns >= ?2 AND start_ns < ?3 \
             ORDER BY start_ns DESC",
        )
        .map_err(&e)?;
    let mut rows = st.query(params![pid, from, to]).map_err(&e)?;
    // Newest first: (start, trace id, span id, trace row).
    type Found = (std::cmp::Reverse<i64>, [u8; 16], [u8; 8], i64);
    let mut found: Vec<Found> = Vec::new();
    while let Some(r) = rows.next().map_err(&e)? {
        let start: i64 = r.get(0).map_err(&e)?;
        // Spans starting together with the last one kept may sort before it: read them all.
        if found.len() >= MAX_TIMELINES && found.last().is_some_and(|l| l.0 .0 != start) {
            break;
        }
        let id = |i: usize| -> Result<&[u8], StoreError> {
            r.get_ref(i)
                .map_err(&e)?
                .as_blob()
                .map_err(|x| retry_corrupt(x.to_string()))
        };
        let (Ok(trace_id), Ok(span_id)) =
            (<[u8; 16]>::try_from(id(3)?), <[u8; 8]>::try_from(id(2)?))
        else {
            return Err(retry_corrupt("ids of the wrong length".into()));
        };
        found.push((
            std::cmp::Reverse(start),
            trace_id,
            span_id,
            r.get(1).map_err(&e)?,
        ));
    }
    found.sort();
    found.truncate(MAX_TIMELINES);
    Ok(found.into_iter().map(|r| (r.3, r.2)).collect())
}

fn retry_corrupt(reason: String) -> StoreError {
    StoreError::Corrupt {
        table: "span_retries",
        reason,
    }
}

/// The retry timelines of the given spans, decoded from their traces' chunks.
fn recent_timelines(
    conn: &Connection,
    spans: &[(i64, [u8; 8])],
) -> Result<Vec<spanlens_core::recovery::RetryTimeline>, StoreError> {
    let mut by_trace: BTreeMap<i64, Vec<[u8; 8]>> = BTreeMap::new();
    for (t, s) in spans {
        by_trace.entry(*t).or_default().push(*s);
    }
    let e = db("reading retried spans' bodies");
    let mut st = conn
        .prepare_cached("SELECT codec, body FROM trace_chunks WHERE trace_ref = ?1 ORDER BY id")
        .map_err(&e)?;
    let mut out = Vec::with_capacity(spans.len());
    for (trace_ref, ids) in by_trace {
        let mut bodies: HashMap<[u8; 8], String> = HashMap::new();
        let mut rows = st.query([trace_ref]).map_err(&e)?;
        while let Some(r) = rows.next().map_err(&e)? {
            let codec: i64 = r.get(0).map_err(&e)?;
            let body = r
                .get_ref(1)
                .map_err(&e)?
                .as_blob()
                .map_err(|x| StoreError::Corrupt {
                    table: "trace_chunks",
                    reason: format!("chunk body: {x}"),
                })?;
            chunk::decode_into(codec, body, &mut bodies)?;
        }
        for id in ids {
            let text = bodies.get(&id).ok_or_else(|| StoreError::Corrupt {
                table: "trace_chunks",
                reason: format!("no body for retried span {}", SpanId(id)),
            })?;
            let span: Span = serde_json::from_str(text).map_err(|x| StoreError::Corrupt {
                table: "trace_chunks",
                reason: format!("span {}: {x}", SpanId(id)),
            })?;
            out.extend(retry_timeline(&span));
        }
    }
    Ok(out)
}

/// Adds the snapshots taken in `[from, to)` by spans that started in it to the report's
/// buckets: whole quarter-hour, hour and day rows where a report bucket covers them, the spans
/// of the partial ones, and the snapshots kept apart because they were taken in another
/// quarter-hour bucket than their span started in.
fn headroom_into(
    conn: &Connection,
    pid: i64,
    from: i64,
    to: i64,
    report: &mut HeadroomReport,
) -> Result<(), StoreError> {
    let e = db("reading rate-limit headroom");
    // The partial pieces of every report bucket, by the quarter-hour bucket holding them: two
    // neighbouring report buckets cut one quarter-hour in two, and its spans are read once.
    let mut pieces: BTreeMap<i64, Vec<(i64, i64)>> = BTreeMap::new();
    for i in 0..report.len() {
        let (a, z) = report.bounds(i);
        let (a, z) = (to_i64(a), to_i64(z));
        if a >= z {
            continue;
        }
        let c = cover(a, z, Family::Headroom.levels());
        read_runs(conn, pid, Family::Headroom, &c.runs, &mut |_, body| {
            for_each_headroom_entry(body, &mut |p, w, agg| report.add(i, p, w, &agg))
                .map_err(corrupt)
        })?;
        for (lo, hi) in &c.scans {
            pieces
                .entry(Level::Leaf.bucket_of(*lo))
                .or_default()
                .push((*lo, *hi));
        }
    }
    let mut scan_st = conn
        .prepare_cached(&format!(
            "SELECT {RATE_COLS} FROM spans INDEXED BY spans_time WHERE project_id = ?1 \
             AND start_ns >= ?2 AND start_ns < ?3 AND rate_limits IS NOT NULL"
        ))
        .map_err(&e)?;
    for (leaf, parts) in &pieces {
        // A kept snapshot was taken in the quarter-hour bucket its span started in.
        let end = parts.iter().map(|p| p.1).max().unwrap_or(*leaf);
        let mut rows = scan_st.query(params![pid, leaf, end]).map_err(&e)?;
        while let Some(r) = rows.next().map_err(&e)? {
            let Some((start, at, sample)) = rate_of(r).map_err(&e)? else {
                continue;
            };
            let wanted = parts.iter().any(|(lo, hi)| at >= *lo && at < *hi);
            if wanted && !straddles(start, at) && start >= from && start < to {
                report.add_sample(at as u64, &sample);
            }
        }
    }
    let mut st = conn
        .prepare_cached(
            "SELECT at_ns, sample FROM rate_limit_straddlers WHERE project_id = ?1 \
             AND at_ns >= ?2 AND at_ns < ?3 AND start_ns >= ?2 AND start_ns < ?3",
        )
        .map_err(&e)?;
    let mut rows = st.query(params![pid, from, to]).map_err(&e)?;
    while let Some(r) = rows.next().map_err(&e)? {
        let at: i64 = r.get(0).map_err(&e)?;
        let bytes = r
            .get_ref(1)
            .map_err(&e)?
            .as_blob()
            .map_err(|x| corrupt(CodecError(format!("sample: {x}"))))?;
        let sample = RateSample::decode(bytes).map_err(corrupt)?;
        if at >= 0 {
            report.add_sample(at as u64, &sample);
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Building the rollups of an existing database (migration 5)

/// How far the build of migration 5 has come, for an operator watching a large database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildProgress {
    /// What is being done.
    pub step: &'static str,
    /// Items done.
    pub done: u64,
    /// Items in all.
    pub total: u64,
}

/// Spans summed per progress report (traces read: a tenth of it).
const PROGRESS_EVERY: u64 = 1_000_000;
const STEP_BODIES: &str = "reading retries and rate limits from span bodies (traces)";
const STEP_SUMS: &str = "summing spans into rollups (spans)";

/// The fields of a stored span that the retry and rate-limit tables need; the rest of the
/// body is skipped by the parser.
#[derive(serde::Deserialize)]
struct RateLimitView {
    #[serde(default)]
    provider: Option<String>,
    #[serde(default)]
    rate_limits: Option<spanlens_core::RateLimits>,
}

/// Fills what migration 5 adds from the spans already stored: the typed rate limits and retry
/// rows (from the bodies of the model calls and retried spans, decoded once), the largest trace
/// duration per project, then every rollup row (from the span rows, in time order).
pub fn build_all(
    conn: &Connection,
    progress: &mut dyn FnMut(BuildProgress),
) -> rusqlite::Result<()> {
    conn.execute_batch(
        "UPDATE projects SET max_trace_ns = \
         IFNULL((SELECT max(duration_ns) FROM traces WHERE traces.project_id = projects.id), 0)",
    )?;
    fill_typed_columns(conn, progress)?;
    let total = rows_in(conn, "spans")?;
    let pids = project_ids(conn)?;
    let mut done = 0u64;
    progress(BuildProgress {
        step: STEP_SUMS,
        done,
        total,
    });
    for pid in pids {
        build_project(conn, pid, total, &mut done, progress)?;
    }
    progress(BuildProgress {
        step: STEP_SUMS,
        done,
        total,
    });
    Ok(())
}

/// Rows in `table` (a name from this module, never from input), for progress reports.
fn rows_in(conn: &Connection, table: &str) -> rusqlite::Result<u64> {
    let n: i64 = conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Every project's id, in order.
fn project_ids(conn: &Connection) -> rusqlite::Result<Vec<i64>> {
    conn.prepare("SELECT id FROM projects ORDER BY id")?
        .query_map([], |r| r.get(0))?
        .collect()
}

/// Migration 6: sums the stored retried spans into retry rollups, a day at a time.
pub fn build_retries(
    conn: &Connection,
    progress: &mut dyn FnMut(BuildProgress),
) -> rusqlite::Result<()> {
    const STEP: &str = "summing retried spans into rollups (spans)";
    let total = rows_in(conn, "span_retries")?;
    let pids = project_ids(conn)?;
    let mut done = 0u64;
    progress(BuildProgress {
        step: STEP,
        done,
        total,
    });
    for pid in pids {
        let mut delta = Delta::default();
        let mut day: Option<i64> = None;
        let mut failure = None;
        let r = for_each_retry_row(conn, pid, i64::MIN, i64::MAX, &mut |r| {
            let d = day_of(r.start_ns);
            if day.is_some_and(|x| x != d) {
                if let Err(x) = write_delta(conn, pid, &std::mem::take(&mut delta)) {
                    failure = Some(x);
                    return Err(retry_corrupt("stopped".into()));
                }
            }
            day = Some(d);
            match RetryFacts::of_row(r) {
                Ok(f) => delta.add_retry(r.start_ns, &f, 1),
                Err(x) => {
                    failure = Some(codec_to_sql(x));
                    return Err(retry_corrupt("stopped".into()));
                }
            }
            done += 1;
            if done % PROGRESS_EVERY == 0 {
                progress(BuildProgress {
                    step: STEP,
                    done,
                    total,
                });
            }
            Ok(())
        });
        if let Some(x) = failure {
            return Err(x);
        }
        r.map_err(|x| codec_to_sql(CodecError(x.to_string())))?;
        write_delta(conn, pid, &delta)?;
    }
    progress(BuildProgress {
        step: STEP,
        done,
        total,
    });
    Ok(())
}

/// Migration 8: counts the stored unpriced model calls into the metrics rollups, so a group's
/// cost comes with how many of its calls had no price. Rows written before counted such a span
/// in everything but that count, so each one is taken back as it was counted and added again
/// with it: the rows change by the count only. Finest rows always receive it, coarse rows where
/// they are built (the others are built from the finest ones later). A project whose rows
/// already hold the counts (built from the spans by migration 5 of this build, in the same
/// upgrade) is left alone.
pub fn build_unpriced(
    conn: &Connection,
    progress: &mut dyn FnMut(BuildProgress),
) -> rusqlite::Result<()> {
    const STEP: &str = "counting unpriced model calls into rollups (spans)";
    let total: i64 = conn.query_row("SELECT count(*) FROM spans WHERE unpriced != 0", [], |r| {
        r.get(0)
    })?;
    let total = u64::try_from(total).unwrap_or(0);
    let mut done = 0u64;
    progress(BuildProgress {
        step: STEP,
        done,
        total,
    });
    for pid in project_ids(conn)? {
        let mut st = conn.prepare(&format!(
            "SELECT {STATS_COLS} FROM spans INDEXED BY spans_time \
             WHERE project_id = ?1 AND unpriced != 0 ORDER BY start_ns"
        ))?;
        let mut rows = st.query([pid])?;
        let mut delta = Delta::default();
        let mut day: Option<i64> = None;
        while let Some(r) = rows.next()? {
            let s = stats_of(r)?;
            if day.is_none() && unpriced_counted(conn, pid, s.start_ns)? {
                break;
            }
            let d = day_of(s.start_ns);
            if day.is_some_and(|x| x != d) {
                write_delta_built(conn, pid, &std::mem::take(&mut delta))?;
            }
            day = Some(d);
            delta.add_span(
                &SpanStats {
                    unpriced: false,
                    ..s
                },
                -1,
            );
            delta.add_span(&s, 1);
            done += 1;
            if done % PROGRESS_EVERY == 0 {
                progress(BuildProgress {
                    step: STEP,
                    done,
                    total,
                });
            }
        }
        write_delta_built(conn, pid, &delta)?;
    }
    progress(BuildProgress {
        step: STEP,
        done: total,
        total,
    });
    Ok(())
}

/// True when the finest classes rows of the bucket holding `start_ns`, where an unpriced span
/// started, already count an unpriced call.
fn unpriced_counted(conn: &Connection, pid: i64, start_ns: i64) -> rusqlite::Result<bool> {
    let level = Family::Classes.levels()[0];
    let mut st = conn.prepare_cached(
        "SELECT body FROM rollups WHERE project_id = ?1 AND family = ?2 AND level = ?3 \
         AND bucket_ns = ?4",
    )?;
    let mut rows = st.query(params![
        pid,
        Family::Classes.code(),
        level.code(),
        level.bucket_of(start_ns)
    ])?;
    let mut unpriced = 0i64;
    while let Some(r) = rows.next()? {
        for_each_metrics_entry(r.get_ref(0)?.as_blob()?, &mut |_, agg| {
            unpriced += Agg::encoded_cost(&mut Reader::new(agg))?.unpriced;
            Ok(())
        })
        .map_err(codec_to_sql)?;
    }
    Ok(unpriced > 0)
}

/// Decodes the bodies of the spans the recovery report reads, trace by trace, and stores their
/// retry facts and rate-limit snapshots in typed form.
fn fill_typed_columns(
    conn: &Connection,
    progress: &mut dyn FnMut(BuildProgress),
) -> rusqlite::Result<()> {
    use crate::rollup::retries::RetryFacts;
    let total = rows_in(conn, "traces")?;
    let mut traces_st = conn.prepare("SELECT id, project_id, trace_id FROM traces ORDER BY id")?;
    let mut spans_st = conn.prepare(
        "SELECT span_id, start_ns, end_ns, retry_count FROM spans WHERE trace_ref = ?1 \
         AND (retry_count > 0 OR kind IN ('llm', 'embedding') OR provider IS NOT NULL)",
    )?;
    let mut chunks_st =
        conn.prepare("SELECT codec, body FROM trace_chunks WHERE trace_ref = ?1 ORDER BY id")?;
    let mut rows = traces_st.query([])?;
    let mut done = 0u64;
    let mut reader = chunk::ChunkReader::new();
    progress(BuildProgress {
        step: STEP_BODIES,
        done,
        total,
    });
    while let Some(t) = rows.next()? {
        done += 1;
        if done % (PROGRESS_EVERY / 10) == 0 {
            progress(BuildProgress {
                step: STEP_BODIES,
                done,
                total,
            });
        }
        let trace_ref: i64 = t.get(0)?;
        let pid: i64 = t.get(1)?;
        let tid: Vec<u8> = t.get(2)?;
        let wanted: Vec<([u8; 8], i64, Option<i64>, i64)> = spans_st
            .query_map([trace_ref], |r| {
                let id = r.get_ref(0)?.as_blob()?;
                Ok((
                    <[u8; 8]>::try_from(id).unwrap_or([0; 8]),
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                ))
            })?
            .collect::<rusqlite::Result<_>>()?;
        if wanted.is_empty() {
            continue;
        }
        let ids: HashMap<[u8; 8], usize> =
            wanted.iter().enumerate().map(|(i, w)| (w.0, i)).collect();
        // The newest chunk holding a span has its current body.
        let mut bodies: HashMap<usize, String> = HashMap::new();
        let mut chunk_rows = chunks_st.query([trace_ref])?;
        while let Some(c) = chunk_rows.next()? {
            let codec: i64 = c.get(0)?;
            let body = c.get_ref(1)?.as_blob()?;
            reader
                .for_each(codec, body, &mut |id, text| {
                    if let Some(i) = ids.get(&id) {
                        bodies.insert(*i, text.to_string());
                    }
                    Ok(())
                })
                .map_err(|e| codec_to_sql(CodecError(e.to_string())))?;
        }
        drop(chunk_rows);
        for (i, text) in bodies {
            let (span_id, start, end, retry_count) = wanted[i];
            if retry_count > 0 {
                if let Ok(span) = serde_json::from_str::<Span>(&text) {
                    if let Some(f) = RetryFacts::of(&span) {
                        insert_retry(conn, pid, start, trace_ref, &span_id, &tid, &f)?;
                    }
                }
            }
            if !text.contains("\"rate_limits\"") {
                continue;
            }
            let Ok(v) = serde_json::from_str::<RateLimitView>(&text) else {
                continue;
            };
            let Some(sample) = v
                .rate_limits
                .as_ref()
                .and_then(|rl| RateSample::of(v.provider.as_deref(), rl))
            else {
                continue;
            };
            let bytes = sample.encode();
            conn.prepare_cached(
                "UPDATE spans SET rate_limits = ?3 WHERE trace_ref = ?1 AND span_id = ?2",
            )?
            .execute(params![trace_ref, &span_id[..], bytes])?;
            let at = end.unwrap_or(start);
            if straddles(start, at) {
                insert_straddler(conn, pid, at, trace_ref, &span_id, start, &bytes)?;
            }
        }
    }
    progress(BuildProgress {
        step: STEP_BODIES,
        done,
        total,
    });
    Ok(())
}

/// Stores what the recovery report reads of a retried span.
pub fn insert_retry(
    conn: &Connection,
    pid: i64,
    start_ns: i64,
    trace_ref: i64,
    span_id: &[u8; 8],
    trace_id: &[u8],
    f: &crate::rollup::retries::RetryFacts,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO span_retries (project_id, start_ns, trace_ref, span_id, trace_id, \
         provider, tool, retries, recovered, recovery_ms, errors) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        pid,
        start_ns,
        trace_ref,
        &span_id[..],
        trace_id,
        f.provider,
        f.tool,
        to_i64(f.retries),
        f.recovered,
        f.recovery_ms,
        f.encode_errors()
    ])?;
    Ok(())
}

/// Stores a snapshot taken in another quarter-hour bucket than its span started in.
pub fn insert_straddler(
    conn: &Connection,
    pid: i64,
    at_ns: i64,
    trace_ref: i64,
    span_id: &[u8; 8],
    start_ns: i64,
    sample: &[u8],
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO rate_limit_straddlers (project_id, at_ns, trace_ref, span_id, \
         start_ns, sample) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        pid,
        at_ns,
        trace_ref,
        &span_id[..],
        start_ns,
        sample
    ])?;
    Ok(())
}

/// A span row's metrics columns and snapshot, owned: what a replaced copy contributed.
pub(super) struct OwnedStats {
    pub start_ns: i64,
    kind: String,
    error: bool,
    duration_ns: Option<i64>,
    ttft_ns: Option<i64>,
    tokens: [i64; 6],
    cost_nano: Option<i64>,
    unpriced: bool,
    pub retry_count: i64,
    text: [Option<String>; 6],
    /// Snapshot time and sample of the span's rate limits.
    pub rate: Option<(i64, RateSample)>,
}

impl OwnedStats {
    /// Reads a row of `STATS_COLS, end_ns, rate_limits`.
    pub fn of(r: &Row<'_>) -> rusqlite::Result<OwnedStats> {
        let s = stats_of(r)?;
        let o = |v: Option<&str>| v.map(str::to_string);
        Ok(OwnedStats {
            start_ns: s.start_ns,
            kind: s.kind.to_string(),
            error: s.error,
            duration_ns: s.duration_ns,
            ttft_ns: s.ttft_ns,
            tokens: s.tokens,
            cost_nano: s.cost_nano,
            unpriced: s.unpriced,
            retry_count: s.retry_count,
            text: [
                o(s.request_model),
                o(s.response_model),
                o(s.provider),
                o(s.agent),
                o(s.user),
                o(s.tool),
            ],
            rate: rate_at(r, s.start_ns)?,
        })
    }

    pub fn stats(&self) -> SpanStats<'_> {
        let t = |i: usize| self.text[i].as_deref();
        SpanStats {
            start_ns: self.start_ns,
            kind: &self.kind,
            error: self.error,
            duration_ns: self.duration_ns,
            ttft_ns: self.ttft_ns,
            tokens: self.tokens,
            cost_nano: self.cost_nano,
            unpriced: self.unpriced,
            retry_count: self.retry_count,
            request_model: t(0),
            response_model: t(1),
            provider: t(2),
            agent: t(3),
            user: t(4),
            tool: t(5),
        }
    }
}

/// The snapshot of a row of `STATS_COLS, end_ns, rate_limits`: its time and sample.
fn rate_at(r: &Row<'_>, start: i64) -> rusqlite::Result<Option<(i64, RateSample)>> {
    let end: Option<i64> = r.get(20)?;
    match r.get_ref(21)?.as_blob_or_null()? {
        Some(bytes) => Ok(Some((
            end.unwrap_or(start),
            RateSample::decode(bytes).map_err(codec_to_sql)?,
        ))),
        None => Ok(None),
    }
}

/// Builds one project's rollup rows from its spans in start order, writing a day's rows once
/// the scan has passed it, so memory holds about a day of rows.
fn build_project(
    conn: &Connection,
    pid: i64,
    total: u64,
    done: &mut u64,
    progress: &mut dyn FnMut(BuildProgress),
) -> rusqlite::Result<()> {
    let mut st = conn.prepare(&format!(
        "SELECT {STATS_COLS}, end_ns, rate_limits FROM spans INDEXED BY spans_time \
         WHERE project_id = ?1 ORDER BY start_ns"
    ))?;
    let mut rows = st.query([pid])?;
    let mut delta = Delta::default();
    let mut day: Option<i64> = None;
    while let Some(r) = rows.next()? {
        let s = stats_of(r)?;
        let d = day_of(s.start_ns);
        if day.is_some_and(|x| x != d) {
            write_delta(conn, pid, &std::mem::take(&mut delta))?;
        }
        day = Some(d);
        delta.add_span(&s, 1);
        if let Some((at, sample)) = rate_at(r, s.start_ns)? {
            if !straddles(s.start_ns, at) {
                delta.add_sample(at, &sample);
            }
        }
        *done += 1;
        if *done % PROGRESS_EVERY == 0 {
            progress(BuildProgress {
                step: STEP_SUMS,
                done: *done,
                total,
            });
        }
    }
    write_delta(conn, pid, &delta)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollup::metrics::SpanStats;

    fn stats(start: i64, model: &str) -> SpanStats<'_> {
        SpanStats {
            start_ns: start,
            kind: "llm",
            error: false,
            duration_ns: Some(1_000 + start % 7),
            ttft_ns: None,
            tokens: [1, 1, 0, 0, 0, 2],
            cost_nano: Some(3),
            unpriced: false,
            retry_count: 0,
            request_model: Some(model),
            response_model: None,
            provider: None,
            agent: None,
            user: None,
            tool: None,
        }
    }

    /// Forty commits to one bucket leave fewer than `COMPACT_AT` rows, holding the same sums as
    /// one delta of every span.
    #[test]
    fn a_bucket_written_many_times_is_compacted() {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::schema::migrate_to(&mut conn, std::path::Path::new(":memory:"), 0, 5)
            .unwrap();
        let mut all = Delta::default();
        for i in 0..40i64 {
            let s = stats(i, if i % 2 == 0 { "a" } else { "b" });
            let mut d = Delta::default();
            d.add_span(&s, 1);
            all.add_span(&s, 1);
            write_delta(&conn, 1, &d).unwrap();
        }
        let rows = all.encoded_rows();
        assert_eq!(
            rows.len(),
            6,
            "one bucket of every kept level, two families"
        );
        for (key, body) in rows {
            let (n, _) = row_count(&conn, 1, &key).unwrap();
            assert!(n < COMPACT_AT, "{key:?}: {n} rows");
            let mut stored = Delta::default();
            let end = key.bucket + key.level.width_ns();
            read_rows(&conn, 1, key, key.level, key.bucket, end, &mut stored).unwrap();
            let mut want = Delta::default();
            want.merge_encoded(key, &body).unwrap();
            assert_eq!(stored, want);
        }
    }
}
