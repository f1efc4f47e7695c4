//! What is written beside spans, each in a short transaction of its own: projects, scores,
//! GenAI log events and shared state.

use super::db;
use super::schema::now_ns;
use super::sql::Sql;
use super::writer::{lock_traces, trace_lock};
use crate::error::StoreError;
use crate::facts::read::{file_log_event, project_name};
use crate::facts::scores::{parse_source, parse_type, score_limit, type_str};
use crate::types::{LogEventsReceipt, ScoreQuery, ScoreTrendRow, UnreadableSpan};
use spanlens_core::evals::Score;
use spanlens_core::otlp::logs::LogEvent;
use spanlens_core::{Event, SpanId, Timestamp, TraceId};
use std::collections::HashMap;
use tokio_postgres::{Client, GenericClient};

/// The id of a project, created when new.
pub async fn project_id(client: &impl GenericClient, name: &str) -> Result<i64, StoreError> {
    let e = db("creating the project");
    client
        .execute(
            "INSERT INTO projects (name, created_ns) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
            &[&name, &now_ns()],
        )
        .await
        .map_err(&e)?;
    let row = client
        .query_one("SELECT id FROM projects WHERE name = $1", &[&name])
        .await
        .map_err(&e)?;
    Ok(row.get(0))
}

/// The id of a project that exists, `None` for one that never received anything.
pub async fn find_project(
    client: &impl GenericClient,
    name: &str,
) -> Result<Option<i64>, StoreError> {
    Ok(client
        .query_opt("SELECT id FROM projects WHERE name = $1", &[&name])
        .await
        .map_err(db("looking up the project"))?
        .map(|r| r.get(0)))
}

fn ts(t: Option<Timestamp>, none: i64) -> i64 {
    t.map_or(none, |t| crate::facts::prepare::to_i64(t.0))
}

/// Validates and stores `scores` in one transaction; an identical score from a GenAI event is
/// kept once (its id is returned again).
pub async fn add_scores(
    client: &mut Client,
    project: &str,
    scores: &[Score],
) -> Result<Vec<i64>, StoreError> {
    for s in scores {
        s.validate()
            .map_err(|e| StoreError::InvalidQuery(e.to_string()))?;
    }
    let e = db("storing scores");
    let pid = project_id(&*client, &project_name(project)).await?;
    let tx = client.transaction().await.map_err(&e)?;
    let mut ids = Vec::with_capacity(scores.len());
    for s in scores {
        let s = &crate::facts::scores::storable(s.clone());
        let trace = s.trace_id.map(|t| t.0.to_vec());
        let span = s.span_id.map(|t| t.0.to_vec());
        let name = s.name.trim();
        // A span or log record sent again repeats its evaluation events, and a span taken
        // twice gets a rule's verdict twice: an identical score is the same score.
        if crate::facts::scores::kept_once(s.source) {
            let found = tx
                .query_opt(
                    "SELECT id FROM scores WHERE project_id = $1 \
                     AND trace_id IS NOT DISTINCT FROM $2 AND span_id IS NOT DISTINCT FROM $3 \
                     AND name = $4 AND source = $8 AND value IS NOT DISTINCT FROM $5 \
                     AND label IS NOT DISTINCT FROM $6 AND comment IS NOT DISTINCT FROM $7 \
                     ORDER BY id LIMIT 1",
                    &[
                        &pid,
                        &trace,
                        &span,
                        &name,
                        &s.value,
                        &s.label,
                        &s.comment,
                        &s.source.as_str(),
                    ],
                )
                .await
                .map_err(&e)?;
            if let Some(r) = found {
                ids.push(r.get(0));
                continue;
            }
        }
        let r = tx
            .query_one(
                "INSERT INTO scores (project_id, trace_id, span_id, session_id, name, data_type, \
                 value, label, source, comment, created_ns, author) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
                &[
                    &pid,
                    &trace,
                    &span,
                    &s.session_id,
                    &name,
                    &type_str(s.data_type),
                    &s.value,
                    &s.label,
                    &s.source.as_str(),
                    &s.comment,
                    &now_ns(),
                    &s.author,
                ],
            )
            .await
            .map_err(&e)?;
        ids.push(r.get(0));
    }
    tx.commit().await.map_err(&e)?;
    Ok(ids)
}

/// Scores matching the query, newest first.
pub async fn list_scores(client: &Client, q: &ScoreQuery) -> Result<Vec<Score>, StoreError> {
    let limit = score_limit(q)?;
    let Some(pid) = find_project(client, &project_name(&q.project)).await? else {
        return Ok(Vec::new());
    };
    let mut sql = Sql::new(
        "SELECT id, trace_id, span_id, session_id, name, data_type, value, label, source, comment, \
         author, created_ns FROM scores WHERE project_id = ",
    );
    let p = sql.bind(pid);
    sql.push(&p);
    if let Some(t) = q.trace_id {
        sql.and("trace_id = ?", t.0.to_vec());
    }
    if let Some(s) = q.span_id {
        sql.and("span_id = ?", s.0.to_vec());
    }
    if let Some(s) = &q.session_id {
        sql.and("session_id = ?", s.clone());
    }
    if let Some(n) = &q.name {
        sql.and("name = ?", n.clone());
    }
    match q.after_id {
        Some(after) => {
            sql.and("id > ?", after);
            sql.push(&format!(" ORDER BY id LIMIT {limit}"));
        }
        None => sql.push(&format!(" ORDER BY created_ns DESC, id DESC LIMIT {limit}")),
    }
    let rows = client
        .query(&sql.text, &sql.args())
        .await
        .map_err(db("listing scores"))?;
    let corrupt = |reason: String| StoreError::Corrupt {
        table: "scores",
        reason,
    };
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let trace_id = match r.get::<_, Option<Vec<u8>>>(1) {
            Some(b) => Some(TraceId::from_bytes(&b).map_err(|x| corrupt(x.to_string()))?),
            None => None,
        };
        let span_id = match r.get::<_, Option<Vec<u8>>>(2) {
            Some(b) => Some(SpanId::from_bytes(&b).map_err(|x| corrupt(x.to_string()))?),
            None => None,
        };
        out.push(Score {
            id: Some(r.get(0)),
            trace_id,
            span_id,
            session_id: r.get(3),
            name: r.get(4),
            data_type: parse_type(r.get(5))?,
            value: r.get(6),
            label: r.get(7),
            source: parse_source(r.get(8)),
            comment: r.get(9),
            author: r.get(10),
            created_ns: Some(r.get::<_, i64>(11).max(0) as u64),
        });
    }
    Ok(out)
}

/// Daily count and mean per numeric or boolean score name, created in `[from, to)`.
pub async fn score_trends(
    client: &Client,
    project: &str,
    from: Option<Timestamp>,
    to: Option<Timestamp>,
) -> Result<Vec<ScoreTrendRow>, StoreError> {
    let Some(pid) = find_project(client, &project_name(project)).await? else {
        return Ok(Vec::new());
    };
    let rows = client
        .query(
            "SELECT name, data_type, created_ns / 86400000000000 AS day, count(*), avg(value) \
             FROM scores WHERE project_id = $1 AND created_ns >= $2 AND created_ns < $3 \
             AND data_type <> 'categorical' GROUP BY name, data_type, day ORDER BY name, day",
            &[&pid, &ts(from, 0), &ts(to, i64::MAX)],
        )
        .await
        .map_err(db("score trends"))?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(ScoreTrendRow {
            name: r.get(0),
            data_type: parse_type(r.get(1))?,
            day: crate::rollup::metrics::day_label(r.get(2)),
            count: u64::try_from(r.get::<_, i64>(3)).unwrap_or(0),
            mean: r.get::<_, Option<f64>>(4).unwrap_or(0.0),
        });
    }
    Ok(out)
}

/// Keeps GenAI log events for their spans, all in one transaction (see
/// [`crate::SpanWriter::add_log_events`]). The events' traces are locked as span writes lock
/// them, so two collectors cannot pass a span's event limit together.
pub async fn add_log_events(
    client: &mut Client,
    project: &str,
    events: &[LogEvent],
) -> Result<LogEventsReceipt, StoreError> {
    if events.is_empty() {
        return Ok(LogEventsReceipt::default());
    }
    let mut receipt = LogEventsReceipt::default();
    let e = db("storing log events");
    let pid = project_id(&*client, &project_name(project)).await?;
    let tx = client.transaction().await.map_err(&e)?;
    let locks = events.iter().map(|ev| trace_lock(pid, &ev.trace_id.0));
    lock_traces(&tx, locks.collect()).await?;
    // How many events each span of the batch holds already.
    let traces: Vec<Vec<u8>> = events.iter().map(|ev| ev.trace_id.0.to_vec()).collect();
    let spans: Vec<Vec<u8>> = events.iter().map(|ev| ev.span_id.0.to_vec()).collect();
    let stored = tx
        .query(
            "SELECT l.trace_id, l.span_id, count(*) FROM log_events l \
             JOIN (SELECT DISTINCT t, s FROM unnest($2::BYTEA[], $3::BYTEA[]) AS x(t, s)) AS x \
             ON l.trace_id = x.t AND l.span_id = x.s WHERE l.project_id = $1 \
             GROUP BY l.trace_id, l.span_id",
            &[&pid, &traces, &spans],
        )
        .await
        .map_err(&e)?;
    let mut held: HashMap<(Vec<u8>, Vec<u8>), usize> = stored
        .iter()
        .map(|r| {
            let n = usize::try_from(r.get::<_, i64>(2)).unwrap_or(usize::MAX);
            ((r.get(0), r.get(1)), n)
        })
        .collect();
    let now = now_ns();
    for (ev, key) in events.iter().zip(traces.into_iter().zip(spans)) {
        let held = held.entry(key).or_insert(0);
        if *held >= spanlens_core::limits::MAX_EVENTS {
            receipt.over_limit += 1;
            continue;
        }
        let text = serde_json::to_string(&ev.event).map_err(|x| e_json(&x))?;
        let added = tx
            .execute(
                "INSERT INTO log_events \
                 (project_id, trace_id, span_id, digest, time_ns, event, received_ns) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
                &[
                    &pid,
                    &&ev.trace_id.0[..],
                    &&ev.span_id.0[..],
                    // The digest's bits as a signed integer.
                    &(ev.digest() as i64),
                    &crate::facts::prepare::to_i64(ev.event.time.0),
                    &text,
                    &now,
                ],
            )
            .await
            .map_err(&e)?;
        if added == 0 {
            receipt.duplicates += 1;
        } else {
            receipt.stored += 1;
            *held += 1;
        }
    }
    tx.commit().await.map_err(&e)?;
    Ok(receipt)
}

fn e_json(x: &serde_json::Error) -> StoreError {
    StoreError::database("storing log events", x)
}

/// The stored log events of a trace by span, oldest first.
pub async fn log_events_of(
    client: &impl GenericClient,
    pid: i64,
    trace_id: TraceId,
    unreadable: &mut Vec<UnreadableSpan>,
) -> Result<HashMap<[u8; 8], Vec<Event>>, StoreError> {
    let rows = client
        .query(
            "SELECT span_id, event FROM log_events WHERE project_id = $1 AND trace_id = $2 \
             ORDER BY time_ns, id",
            &[&pid, &&trace_id.0[..]],
        )
        .await
        .map_err(db("reading log events"))?;
    let mut out = HashMap::new();
    for r in rows {
        let id: Vec<u8> = r.get(0);
        file_log_event(&mut out, unreadable, trace_id, &id, r.get(1));
    }
    Ok(out)
}

/// The document saved under `key`, if any.
pub async fn load_state(client: &Client, key: &str) -> Result<Option<String>, StoreError> {
    Ok(client
        .query_opt("SELECT value FROM shared_state WHERE key = $1", &[&key])
        .await
        .map_err(db("reading shared state"))?
        .map(|r| r.get(0)))
}

/// Saves `value` under `key` in one statement, so a reader sees the old or the new document.
pub async fn save_state(client: &Client, key: &str, value: &str) -> Result<(), StoreError> {
    client
        .execute(
            "INSERT INTO shared_state (key, value, updated_ns) VALUES ($1, $2, $3) \
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_ns = EXCLUDED.updated_ns",
            &[&key, &value, &now_ns()],
        )
        .await
        .map_err(db("saving shared state"))?;
    Ok(())
}

/// Every key starting with `prefix` and its document, in key order, at most `limit`.
pub async fn list_state(
    client: &Client,
    prefix: &str,
    limit: usize,
) -> Result<Vec<(String, String)>, StoreError> {
    let rows = client
        .query(
            "SELECT key, value FROM shared_state WHERE starts_with(key, $1) \
             ORDER BY key COLLATE \"C\" LIMIT $2",
            &[&prefix, &(limit as i64)],
        )
        .await
        .map_err(db("listing shared state"))?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Removes the document under `key`.
pub async fn delete_state(client: &Client, key: &str) -> Result<(), StoreError> {
    client
        .execute("DELETE FROM shared_state WHERE key = $1", &[&key])
        .await
        .map_err(db("deleting shared state"))?;
    Ok(())
}

/// Takes or renews the lease `key` for `holder` until `ttl_ns` from now by the database's
/// clock (every collector reads the same one), in one upsert: the row is replaced only when
/// it is free, run out or `holder`'s own, so of concurrent callers exactly one gets it.
pub async fn acquire_lease(
    client: &Client,
    key: &str,
    holder: &str,
    ttl_ns: i64,
) -> Result<bool, StoreError> {
    let row = client
        .query_opt(
            "WITH now AS (SELECT (extract(epoch FROM clock_timestamp()) * 1000000000)::bigint AS ns) \
             INSERT INTO shared_state (key, value, updated_ns) \
             SELECT $1, json_build_object('holder', $2::text, 'expires_ns', now.ns + $3::bigint)::text, now.ns \
             FROM now \
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_ns = EXCLUDED.updated_ns \
             WHERE shared_state.value::jsonb ->> 'holder' = $2 \
                OR (shared_state.value::jsonb ->> 'expires_ns')::bigint <= EXCLUDED.updated_ns \
             RETURNING 1",
            &[&key, &holder, &ttl_ns],
        )
        .await
        .map_err(db("taking a lease"))?;
    Ok(row.is_some())
}

/// Gives the lease `key` up if `holder` holds it.
pub async fn release_lease(client: &Client, key: &str, holder: &str) -> Result<(), StoreError> {
    client
        .execute(
            "DELETE FROM shared_state WHERE key = $1 AND value::jsonb ->> 'holder' = $2",
            &[&key, &holder],
        )
        .await
        .map_err(db("giving a lease up"))?;
    Ok(())
}
