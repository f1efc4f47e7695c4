//! Metrics and daily cost as SQL aggregates over the typed span columns: exact over the range
//! asked. Sums are taken as exact numerics and clamped as the shared rollup rows clamp them;
//! percentiles are the exact nearest-rank values (`percentile_disc`) reported as the midpoint
//! of their histogram bucket, the figure every backend returns (see `MAX_PERCENTILE_ERROR`).
//!
//! The selection and grouping rules are the shared ones (`rollup::metrics::Select`), so rollup
//! tables can take over later without changing an answer.

use super::side::find_project;
use super::sql::Sql;
use crate::error::StoreError;
use crate::facts::read::project_name;
use crate::rollup::hist::{bucket_of, representative};
use crate::rollup::metrics::{day_label, order_rows};
use crate::types::{DailyCost, GroupBy, MetricRow, MetricsQuery, Percentiles};
use spanlens_core::NanoUsd;
use tokio_postgres::{GenericClient, Row};

/// Nanoseconds in a UTC day.
const DAY_NS: i64 = 86_400_000_000_000;

/// The SQL of a query's group key over `spans`.
fn key_sql(g: GroupBy) -> &'static str {
    match g {
        GroupBy::All => "NULL::TEXT",
        GroupBy::Model => "COALESCE(request_model, response_model)",
        GroupBy::Provider => "provider",
        GroupBy::Agent => "agent_name",
        GroupBy::User => "user_id",
        GroupBy::Day => "(start_ns / 86400000000000)::TEXT",
        GroupBy::Kind => "kind",
        GroupBy::Tool => "tool_name",
    }
}

/// The rows of `SELECT {select} FROM spans WHERE` the project, range and filters of `q`, then
/// `tail`; none when nothing can match (unknown project, tools under another kind).
async fn grouped(
    client: &impl GenericClient,
    q: &MetricsQuery,
    select: &str,
    tail: &str,
    op: &'static str,
) -> Result<Vec<Row>, StoreError> {
    let sel = crate::rollup::metrics::Select::new(q);
    if sel.matches_nothing() {
        return Ok(Vec::new());
    }
    let Some(pid) = find_project(client, &project_name(&q.project)).await? else {
        return Ok(Vec::new());
    };
    let mut sql = Sql::new(format!("SELECT {select} FROM spans WHERE project_id = "));
    let p = sql.bind(pid);
    sql.push(&p);
    sql.started_in(q.from, q.to);
    if let Some(k) = sel.kind() {
        sql.and("kind = ?", k.to_string());
    }
    if let Some(m) = &q.model {
        sql.model_is(m);
    }
    if let Some(p) = &q.provider {
        sql.and("provider = ?", p.clone());
    }
    sql.push(tail);
    sql.rows(client, op).await
}

/// An exact sum read as text (`numeric` has no fixed width).
fn sum(r: &Row, i: usize) -> i128 {
    r.get::<_, Option<String>>(i)
        .and_then(|t| t.parse().ok())
        .unwrap_or(0)
}

fn count(r: &Row, i: usize) -> u64 {
    u64::try_from(r.get::<_, i64>(i)).unwrap_or(0)
}

fn clamp_u64(v: i128) -> u64 {
    u64::try_from(v.max(0)).unwrap_or(u64::MAX)
}

fn clamp_i64(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

/// Percentiles from `count` and the exact p50/p95/p99, each reported as its bucket's midpoint.
fn percentiles(r: &Row, count_at: usize, values_at: usize) -> Percentiles {
    let values: Option<Vec<Option<i64>>> = r.get(values_at);
    let at = |k: usize| {
        values
            .as_ref()
            .and_then(|v| v.get(k).copied().flatten())
            .map(|v| representative(bucket_of(u64::try_from(v).unwrap_or(0))))
    };
    Percentiles {
        p50: at(0),
        p95: at(1),
        p99: at(2),
        count: count(r, count_at),
    }
}

const METRIC_AGGREGATES: &str = "count(*), count(*) FILTER (WHERE status = 'error'), \
     sum(retry_count)::TEXT, sum(input_tokens)::TEXT, sum(output_tokens)::TEXT, \
     sum(cache_read_tokens)::TEXT, sum(cache_write_tokens)::TEXT, sum(reasoning_tokens)::TEXT, \
     sum(total_tokens)::TEXT, sum(cost_nano)::TEXT, count(*) FILTER (WHERE unpriced), \
     count(duration_ns), \
     percentile_disc(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY duration_ns), \
     count(ttft_ns), percentile_disc(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY ttft_ns)";

/// Span metrics grouped as the query asks.
pub async fn metrics(
    client: &impl GenericClient,
    q: &MetricsQuery,
) -> Result<Vec<MetricRow>, StoreError> {
    let select = format!("{} AS k, {METRIC_AGGREGATES}", key_sql(q.group_by));
    let rows = grouped(client, q, &select, " GROUP BY k", "computing metrics").await?;
    let mut out: Vec<(Option<i64>, MetricRow)> = rows
        .iter()
        .map(|r| {
            let key: Option<String> = r.get(0);
            let day = (q.group_by == GroupBy::Day)
                .then(|| key.as_deref().and_then(|k| k.parse::<i64>().ok()))
                .flatten();
            let row = MetricRow {
                key: match day {
                    Some(d) => Some(day_label(d)),
                    None => key,
                },
                span_count: count(r, 1),
                error_count: count(r, 2),
                retry_count: clamp_u64(sum(r, 3)),
                input_tokens: clamp_u64(sum(r, 4)),
                output_tokens: clamp_u64(sum(r, 5)),
                cache_read_tokens: clamp_u64(sum(r, 6)),
                cache_write_tokens: clamp_u64(sum(r, 7)),
                reasoning_tokens: clamp_u64(sum(r, 8)),
                total_tokens: clamp_u64(sum(r, 9)),
                cost: NanoUsd(clamp_i64(sum(r, 10))),
                unpriced_span_count: count(r, 11),
                latency: percentiles(r, 12, 13),
                ttft: percentiles(r, 14, 15),
            };
            (day, row)
        })
        .collect();
    if q.group_by == GroupBy::Day {
        out.sort_by_key(|(day, _)| *day);
        return Ok(out.into_iter().map(|(_, r)| r).collect());
    }
    let mut rows: Vec<MetricRow> = out.into_iter().map(|(_, r)| r).collect();
    order_rows(&mut rows);
    Ok(rows)
}

/// Cost per group and UTC day; a group's day with no priced and no unpriced call is absent.
pub async fn daily_cost(
    client: &impl GenericClient,
    q: &MetricsQuery,
) -> Result<Vec<DailyCost>, StoreError> {
    // The day series ignores a `day` grouping (every row is a day already).
    let group = match q.group_by {
        GroupBy::Day => GroupBy::All,
        g => g,
    };
    let select = format!(
        "{} AS k, start_ns / {DAY_NS} AS day, sum(cost_nano)::TEXT, count(cost_nano), \
         count(*) FILTER (WHERE unpriced)",
        key_sql(group)
    );
    let tail = " AND (cost_nano IS NOT NULL OR unpriced) GROUP BY k, day";
    let rows = grouped(client, q, &select, tail, "computing daily cost").await?;
    let mut out: Vec<DailyCost> = rows
        .iter()
        .map(|r| DailyCost {
            key: r.get(0),
            day: r.get(1),
            cost: NanoUsd(clamp_i64(sum(r, 2))),
            priced_span_count: count(r, 3),
            unpriced_span_count: count(r, 4),
        })
        .collect();
    // Spans without the key first, then by key and day (byte order, as the other backends).
    out.sort_by(|a, b| a.key.cmp(&b.key).then(a.day.cmp(&b.day)));
    Ok(out)
}
