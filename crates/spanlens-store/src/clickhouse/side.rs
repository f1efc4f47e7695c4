//! What is written beside spans: scores, GenAI log events, shared state and leases.
//!
//! Without transactions, each write is one insert, and what must be decided once (a lease's
//! holder) is decided by the server's insert deduplication.

use super::read::rows;
use super::rowread::RowReader;
use super::{ch_error, sql, Client, RowBinary};
use crate::error::StoreError;
use crate::facts::read::project_name;
use crate::facts::scores::{parse_source, parse_type, score_limit, type_str};
use crate::store::Lease;
use crate::types::{LogEventsReceipt, ScoreQuery, ScoreTrendRow};
use spanlens_core::evals::Score;
use spanlens_core::otlp::logs::LogEvent;
use spanlens_core::{SpanId, Timestamp, TraceId};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// Ids of new scores: microseconds since the epoch times 1,024 plus a random part, kept
/// increasing within a process, so ids grow with time across collectors (a page by `after_id`
/// walks oldest first) and two collectors rarely meet on one.
fn next_ids(n: usize) -> Vec<i64> {
    static LAST: AtomicI64 = AtomicI64::new(0);
    let seed = (now_ns() / 1_000).saturating_mul(1_024) + i64::from(rand_u16() % 1_024);
    let mut first = 0;
    let _ = LAST.fetch_update(Ordering::AcqRel, Ordering::Acquire, |last| {
        first = seed.max(last + 1);
        Some(first + n as i64 - 1)
    });
    (0..n as i64).map(|i| first + i).collect()
}

fn rand_u16() -> u16 {
    random_u64() as u16
}

/// A random number (seeded per call by the standard library's hasher keys).
pub fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_i64(now_ns());
    h.finish()
}

/// Validates and stores `scores` in one insert; an identical score from a GenAI event is kept
/// once (its id is returned again).
pub async fn add_scores(
    client: &Client,
    project: &str,
    scores: &[Score],
) -> Result<Vec<i64>, StoreError> {
    for s in scores {
        s.validate()
            .map_err(|e| StoreError::InvalidQuery(e.to_string()))?;
    }
    let project = project_name(project);
    let mut ids = Vec::with_capacity(scores.len());
    let mut rows_out = RowBinary::new();
    let new_ids = next_ids(scores.len());
    let created = now_ns();
    // Scores of this batch kept once, by their identity.
    let mut in_batch: HashMap<String, i64> = HashMap::new();
    for (s, id) in scores.iter().zip(new_ids) {
        let s = &crate::facts::scores::storable(s.clone());
        let name = s.name.trim();
        if crate::facts::scores::kept_once(s.source) {
            let identity = format!(
                "{:?}|{:?}|{name}|{}|{:?}|{:?}|{:?}",
                s.trace_id,
                s.span_id,
                s.source.as_str(),
                s.value.map(f64::to_bits),
                s.label,
                s.comment
            );
            if let Some(found) = in_batch.get(&identity) {
                ids.push(*found);
                continue;
            }
            if let Some(found) = stored_score(client, &project, s, name).await? {
                ids.push(found);
                continue;
            }
            in_batch.insert(identity, id);
        }
        rows_out.str(&project).i64(id);
        match s.trace_id {
            Some(t) => rows_out.u8(0).fixed(&t.0),
            None => rows_out.u8(1),
        };
        match s.span_id {
            Some(t) => rows_out.u8(0).fixed(&t.0),
            None => rows_out.u8(1),
        };
        rows_out
            .opt_str(s.session_id.as_deref())
            .str(name)
            .str(type_str(s.data_type));
        match s.value {
            Some(v) => rows_out.u8(0).f64(v),
            None => rows_out.u8(1),
        };
        rows_out
            .opt_str(s.label.as_deref())
            .str(s.source.as_str())
            .opt_str(s.comment.as_deref())
            .i64(created)
            .opt_str(s.author.as_deref());
        ids.push(id);
    }
    if !rows_out.is_empty() {
        client
            .insert(
                "INSERT INTO scores (project, id, trace_id, span_id, session_id, name, data_type, \
                 value, label, source, comment, created_ns, author) FORMAT RowBinary",
                &rows_out.finish(),
                &[],
            )
            .await
            .map_err(|e| ch_error("storing scores", e))?;
    }
    Ok(ids)
}

/// The id of a stored score identical to `s`, if any.
async fn stored_score(
    client: &Client,
    project: &str,
    s: &Score,
    name: &str,
) -> Result<Option<i64>, StoreError> {
    let opt_bytes = |b: Option<&[u8]>| match b {
        Some(b) => format!("= {}", sql::bytes(b)),
        None => "IS NULL".into(),
    };
    let opt_str = |v: Option<&str>| match v {
        Some(v) => format!("= {}", sql::string(v)),
        None => "IS NULL".into(),
    };
    let value = match s.value {
        Some(v) => format!("= reinterpretAsFloat64(toUInt64({}))", v.to_bits()),
        None => "IS NULL".into(),
    };
    let out = rows(
        client,
        &format!(
            "SELECT id FROM scores WHERE project = {} AND trace_id {} AND span_id {} \
             AND name = {} AND source = {} AND value {value} AND label {} AND comment {} \
             ORDER BY id LIMIT 1",
            sql::string(project),
            opt_bytes(s.trace_id.as_ref().map(|t| &t.0[..])),
            opt_bytes(s.span_id.as_ref().map(|t| &t.0[..])),
            sql::string(name),
            sql::string(s.source.as_str()),
            opt_str(s.label.as_deref()),
            opt_str(s.comment.as_deref()),
        ),
        "storing scores",
    )
    .await?;
    let mut r = RowReader::new(&out);
    Ok(if r.is_empty() { None } else { Some(r.i64()?) })
}

/// Scores matching the query, newest first (oldest first after `after_id`).
pub async fn list_scores(client: &Client, q: &ScoreQuery) -> Result<Vec<Score>, StoreError> {
    let limit = score_limit(q)?;
    let project = project_name(&q.project);
    let mut c = sql::Conditions::default();
    c.push(format!("project = {}", sql::string(&project)));
    if let Some(t) = q.trace_id {
        c.push(format!("trace_id = {}", sql::bytes(&t.0)));
    }
    if let Some(s) = q.span_id {
        c.push(format!("span_id = {}", sql::bytes(&s.0)));
    }
    if let Some(s) = &q.session_id {
        c.push(format!("session_id = {}", sql::string(s)));
    }
    if let Some(n) = &q.name {
        c.push(format!("name = {}", sql::string(n)));
    }
    let order = match q.after_id {
        Some(after) => {
            c.push(format!("id > {after}"));
            "id"
        }
        None => "created_ns DESC, id DESC",
    };
    let out = rows(
        client,
        &format!(
            "SELECT id, trace_id, span_id, session_id, name, data_type, value, label, source, \
             comment, created_ns, author FROM scores{} ORDER BY {order} LIMIT {limit}",
            c.clause()
        ),
        "listing scores",
    )
    .await?;
    let mut r = RowReader::new(&out);
    let mut list = Vec::new();
    while !r.is_empty() {
        list.push(Score {
            id: Some(r.i64()?),
            trace_id: r.nullable(|r| r.fixed::<16>())?.map(TraceId),
            span_id: r.nullable(|r| r.fixed::<8>())?.map(SpanId),
            session_id: r.nullable(|r| r.string())?,
            name: r.string()?,
            data_type: parse_type(&r.string()?)?,
            value: r.nullable(|r| r.f64())?,
            label: r.nullable(|r| r.string())?,
            source: parse_source(&r.string()?),
            comment: r.nullable(|r| r.string())?,
            created_ns: Some(r.i64()?.max(0) as u64),
            author: r.nullable(|r| r.string())?,
        });
    }
    Ok(list)
}

/// Daily count and mean per numeric or boolean score name, created in `[from, to)`.
pub async fn score_trends(
    client: &Client,
    project: &str,
    from: Option<Timestamp>,
    to: Option<Timestamp>,
) -> Result<Vec<ScoreTrendRow>, StoreError> {
    let ts =
        |t: Option<Timestamp>, none: i64| t.map_or(none, |t| crate::facts::prepare::to_i64(t.0));
    let out = rows(
        client,
        &format!(
            "SELECT name, toString(data_type), intDiv(created_ns, 86400000000000) AS day, \
             toUInt64(count()), avgOrNull(value) FROM scores WHERE project = {} \
             AND created_ns >= {} AND created_ns < {} AND data_type != 'categorical' \
             GROUP BY name, data_type, day ORDER BY name, day",
            sql::string(&project_name(project)),
            ts(from, 0),
            ts(to, i64::MAX)
        ),
        "score trends",
    )
    .await?;
    let mut r = RowReader::new(&out);
    let mut trend = Vec::new();
    while !r.is_empty() {
        trend.push(ScoreTrendRow {
            name: r.string()?,
            data_type: parse_type(&r.string()?)?,
            day: crate::rollup::metrics::day_label(r.i64()?),
            count: r.u64()?,
            mean: r.nullable(|r| r.f64())?.unwrap_or(0.0),
        });
    }
    Ok(trend)
}

/// Keeps GenAI log events for their spans (see [`crate::SpanWriter::add_log_events`]): a
/// record already stored (same span and digest) is not stored again, and a span holds at most
/// `spanlens_core::limits::MAX_EVENTS`. One insert, so all or none are stored. (Two collectors
/// filling one span's last places at the same instant could pass the limit by a few; reads
/// cap it.)
pub async fn add_log_events(
    client: &Client,
    project: &str,
    events: &[LogEvent],
) -> Result<LogEventsReceipt, StoreError> {
    let mut receipt = LogEventsReceipt::default();
    if events.is_empty() {
        return Ok(receipt);
    }
    let project = project_name(project);
    let traces: Vec<[u8; 16]> = {
        let mut t: Vec<[u8; 16]> = events.iter().map(|e| e.trace_id.0).collect();
        t.sort_unstable();
        t.dedup();
        t
    };
    let mut held: HashMap<([u8; 16], [u8; 8]), usize> = HashMap::new();
    let mut known: HashSet<([u8; 16], [u8; 8], i64)> = HashSet::new();
    for part in traces.chunks(2_000) {
        let Some(set) = sql::byte_set(part) else {
            continue;
        };
        let out = rows(
            client,
            &format!(
                "SELECT DISTINCT trace_id, span_id, digest FROM log_events \
                 WHERE project = {} AND trace_id IN {set}",
                sql::string(&project)
            ),
            "storing log events",
        )
        .await?;
        let mut r = RowReader::new(&out);
        while !r.is_empty() {
            let key = (r.fixed::<16>()?, r.fixed::<8>()?, r.i64()?);
            *held.entry((key.0, key.1)).or_insert(0) += 1;
            known.insert(key);
        }
    }
    let now = now_ns();
    let mut out = RowBinary::new();
    for ev in events {
        // The digest's bits as a signed integer.
        let key = (ev.trace_id.0, ev.span_id.0, ev.digest() as i64);
        if known.contains(&key) {
            receipt.duplicates += 1;
            continue;
        }
        let n = held.entry((key.0, key.1)).or_insert(0);
        if *n >= spanlens_core::limits::MAX_EVENTS {
            receipt.over_limit += 1;
            continue;
        }
        let text = serde_json::to_string(&ev.event)
            .map_err(|x| StoreError::database("storing log events", x))?;
        out.str(&project)
            .fixed(&key.0)
            .fixed(&key.1)
            .i64(key.2)
            .i64(crate::facts::prepare::to_i64(ev.event.time.0))
            .str(&text)
            .i64(now);
        known.insert(key);
        *n += 1;
        receipt.stored += 1;
    }
    if !out.is_empty() {
        client
            .insert(
                "INSERT INTO log_events (project, trace_id, span_id, digest, time_ns, event, \
                 received_ns) FORMAT RowBinary",
                &out.finish(),
                &[],
            )
            .await
            .map_err(|e| ch_error("storing log events", e))?;
    }
    Ok(receipt)
}

/// The document saved under `key`, if any (the newest save).
pub async fn load_state(client: &Client, key: &str) -> Result<Option<String>, StoreError> {
    let out = rows(
        client,
        &format!(
            "SELECT argMax(value, version) FROM shared_state WHERE key = {} GROUP BY key",
            sql::string(key)
        ),
        "reading shared state",
    )
    .await?;
    let mut r = RowReader::new(&out);
    Ok(if r.is_empty() {
        None
    } else {
        // A deletion is an empty document (rows are not removed at once here).
        Some(r.string()?).filter(|v| !v.is_empty())
    })
}

/// Every key starting with `prefix` and its newest document, in key order, at most `limit`
/// (deleted keys, whose newest document is empty, left out).
pub async fn list_state(
    client: &Client,
    prefix: &str,
    limit: usize,
) -> Result<Vec<(String, String)>, StoreError> {
    let out = rows(
        client,
        &format!(
            "SELECT key, argMax(value, version) AS v FROM shared_state \
             WHERE startsWith(key, {}) GROUP BY key HAVING v != '' ORDER BY key LIMIT {limit}",
            sql::string(prefix)
        ),
        "listing shared state",
    )
    .await?;
    let mut r = RowReader::new(&out);
    let mut found = Vec::new();
    while !r.is_empty() {
        found.push((r.string()?, r.string()?));
    }
    Ok(found)
}

/// Removes the document under `key`: saves an empty one, which reads as none.
pub async fn delete_state(client: &Client, key: &str) -> Result<(), StoreError> {
    let mut out = RowBinary::new();
    out.str(key).str("");
    client
        .insert(
            "INSERT INTO shared_state (key, value) FORMAT RowBinary",
            &out.finish(),
            &[],
        )
        .await
        .map_err(|e| ch_error("deleting shared state", e))
}

/// Saves `value` under `key` in one insert, so a reader sees the old or the new document.
pub async fn save_state(client: &Client, key: &str, value: &str) -> Result<(), StoreError> {
    let mut out = RowBinary::new();
    out.str(key).str(value);
    client
        .insert(
            "INSERT INTO shared_state (key, value) FORMAT RowBinary",
            &out.finish(),
            &[],
        )
        .await
        .map_err(|e| ch_error("saving shared state", e))
}

/// The newest epoch of a lease chain and the server's clock now.
async fn lease_head(client: &Client, key: &str) -> Result<(Option<(u64, Lease)>, i64), StoreError> {
    let out = rows(
        client,
        &format!(
            "SELECT toUnixTimestamp64Nano(now64(9)), epoch, holder, expires_ns FROM leases \
             WHERE name = {} ORDER BY epoch DESC, taken_ns ASC LIMIT 1",
            sql::string(key)
        ),
        "reading a lease",
    )
    .await?;
    let mut r = RowReader::new(&out);
    if r.is_empty() {
        let out = rows(
            client,
            "SELECT toUnixTimestamp64Nano(now64(9))",
            "reading a lease",
        )
        .await?;
        return Ok((None, RowReader::new(&out).i64()?));
    }
    let now = r.i64()?;
    let epoch = r.u64()?;
    let holder = r.string()?;
    let expires_ns = r.i64()?;
    Ok((Some((epoch, Lease { holder, expires_ns })), now))
}

/// Inserts epoch `epoch` of the chain `key` with a deduplication token naming it, then reads
/// who holds that epoch: the first insert of an epoch is kept, later ones are dropped.
async fn claim(
    client: &Client,
    key: &str,
    epoch: u64,
    lease: &Lease,
) -> Result<String, StoreError> {
    let mut out = RowBinary::new();
    out.str(key)
        .u64(epoch)
        .str(&lease.holder)
        .i64(lease.expires_ns);
    let token = format!("lease:{}:{epoch}", hex(key.as_bytes()));
    client
        .insert(
            "INSERT INTO leases (name, epoch, holder, expires_ns) FORMAT RowBinary",
            &out.finish(),
            &[
                ("insert_deduplicate", "1"),
                ("insert_deduplication_token", &token),
            ],
        )
        .await
        .map_err(|e| ch_error("taking a lease", e))?;
    let out = rows(
        client,
        &format!(
            "SELECT holder FROM leases WHERE name = {} AND epoch = {epoch} \
             ORDER BY taken_ns LIMIT 1",
            sql::string(key)
        ),
        "taking a lease",
    )
    .await?;
    let mut r = RowReader::new(&out);
    Ok(if r.is_empty() {
        String::new()
    } else {
        r.string()?
    })
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Takes or renews the lease `key` for `holder` until `ttl_ns` from now by the server's clock:
/// the next epoch of its chain is claimed when the lease is free, run out or `holder`'s own,
/// and of concurrent claims of one epoch the server keeps one.
pub async fn acquire_lease(
    client: &Client,
    key: &str,
    holder: &str,
    ttl_ns: i64,
) -> Result<bool, StoreError> {
    let (head, now) = lease_head(client, key).await?;
    let current = head.as_ref().map(|(_, l)| l);
    let Some(lease) = Lease::decide(current, holder, now, ttl_ns) else {
        return Ok(false);
    };
    let epoch = head.map_or_else(|| first_epoch(now), |(e, _)| e + 1);
    Ok(claim(client, key, epoch, &lease).await? == holder)
}

/// The epoch a chain starts at when the lease has no rows (never taken, or its rows expired
/// after a day unused): numbered from the server's day, so a new chain never repeats an epoch
/// (and deduplication token) of an earlier one that the server may still remember. Collectors
/// racing to start a chain on the same day claim the same epoch, and the server keeps one.
fn first_epoch(now_ns: i64) -> u64 {
    let day = u64::try_from(now_ns.div_euclid(86_400_000_000_000)).unwrap_or(0);
    (day << 32) + 1
}

/// Gives the lease `key` up if `holder` holds it: the next epoch is claimed for nobody.
pub async fn release_lease(client: &Client, key: &str, holder: &str) -> Result<(), StoreError> {
    let (head, _) = lease_head(client, key).await?;
    if let Some((epoch, _)) = head.filter(|(_, l)| l.holder == holder) {
        let free = Lease {
            holder: String::new(),
            expires_ns: i64::MIN,
        };
        claim(client, key, epoch + 1, &free).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::first_epoch;

    #[test]
    fn a_chain_started_on_a_later_day_starts_past_every_earlier_epoch() {
        const DAY: i64 = 86_400_000_000_000;
        assert_eq!(first_epoch(0), 1);
        assert_eq!(first_epoch(DAY - 1), 1, "one day, one first epoch");
        let today = first_epoch(20_000 * DAY + 5);
        // A chain renewed every second for the day before stays below the next day's start.
        assert!(first_epoch(20_001 * DAY) > today + 86_400 * 1000);
        assert_eq!(
            first_epoch(-5),
            1,
            "a clock before 1970 still gives an epoch"
        );
    }
}
