//! Evaluation scores: written on their own connection (they are few and must not wait behind
//! span batches), read from the pool.

use super::prepare::to_i64;
use super::project_name;
use super::schema::now_ns;
use crate::error::StoreError;
use crate::facts::scores::{parse_source, parse_type, score_limit, type_str};
use crate::types::{ScoreQuery, ScoreTrendRow};
use rusqlite::types::Value;
use rusqlite::{params, Connection, OptionalExtension};
use spanlens_core::evals::Score;
use spanlens_core::{SpanId, Timestamp, TraceId};

fn db(what: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |e| StoreError::database(what, e)
}

/// Validates and inserts `scores` in one transaction. A score from a GenAI event or a rule
/// identical to one already stored is not stored again; its id is returned
/// (`facts::scores::kept_once`).
pub fn add(conn: &mut Connection, project: &str, scores: &[Score]) -> Result<Vec<i64>, StoreError> {
    for s in scores {
        s.validate()
            .map_err(|e| StoreError::InvalidQuery(e.to_string()))?;
    }
    let project = project_name(project);
    let tx = conn.transaction().map_err(db("storing scores"))?;
    tx.execute(
        "INSERT INTO projects (name, created_ns) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
        params![project, now_ns()],
    )
    .map_err(db("storing scores"))?;
    let pid: i64 = tx
        .query_row("SELECT id FROM projects WHERE name = ?1", [&project], |r| {
            r.get(0)
        })
        .map_err(db("storing scores"))?;
    let mut ids = Vec::with_capacity(scores.len());
    {
        let mut st = tx
            .prepare(
                "INSERT INTO scores (project_id, trace_id, span_id, session_id, name, data_type, \
                 value, label, source, comment, created_ns, author) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )
            .map_err(db("storing scores"))?;
        let mut existing = tx
            .prepare(
                "SELECT id FROM scores WHERE project_id = ?1 AND trace_id IS ?2 \
                 AND span_id IS ?3 AND name = ?4 AND source = ?8 AND value IS ?5 \
                 AND label IS ?6 AND comment IS ?7 LIMIT 1",
            )
            .map_err(db("storing scores"))?;
        for s in scores {
            // A span or log record sent again repeats its evaluation events, and a span taken
            // twice gets a rule's verdict twice: an identical score is the same score.
            if crate::facts::scores::kept_once(s.source) {
                let found: Option<i64> = existing
                    .query_row(
                        params![
                            pid,
                            s.trace_id.map(|t| t.0.to_vec()),
                            s.span_id.map(|t| t.0.to_vec()),
                            s.name.trim(),
                            s.value,
                            s.label,
                            s.comment,
                            s.source.as_str(),
                        ],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(db("storing scores"))?;
                if let Some(id) = found {
                    ids.push(id);
                    continue;
                }
            }
            st.execute(params![
                pid,
                s.trace_id.map(|t| t.0.to_vec()),
                s.span_id.map(|t| t.0.to_vec()),
                s.session_id,
                s.name.trim(),
                type_str(s.data_type),
                s.value,
                s.label,
                s.source.as_str(),
                s.comment,
                now_ns(),
                s.author,
            ])
            .map_err(db("storing scores"))?;
            ids.push(tx.last_insert_rowid());
        }
    }
    tx.commit().map_err(db("storing scores"))?;
    Ok(ids)
}

/// Scores matching the query, newest first.
pub fn list(conn: &Connection, q: &ScoreQuery) -> Result<Vec<Score>, StoreError> {
    let limit = score_limit(q)?;
    let Some(pid) = super::query::project_id(conn, &project_name(&q.project))? else {
        return Ok(Vec::new());
    };
    let mut sql = String::from(
        "SELECT id, trace_id, span_id, session_id, name, data_type, value, label, source, comment, \
         author, created_ns FROM scores WHERE project_id = ?1",
    );
    let mut args: Vec<Value> = vec![Value::Integer(pid)];
    let mut add = |cond: &str, v: Value| {
        args.push(v);
        sql.push_str(&format!(" AND {cond} = ?{}", args.len()));
    };
    if let Some(t) = q.trace_id {
        add("trace_id", Value::Blob(t.0.to_vec()));
    }
    if let Some(s) = q.span_id {
        add("span_id", Value::Blob(s.0.to_vec()));
    }
    if let Some(s) = &q.session_id {
        add("session_id", Value::Text(s.clone()));
    }
    if let Some(n) = &q.name {
        add("name", Value::Text(n.clone()));
    }
    match q.after_id {
        Some(after) => {
            args.push(Value::Integer(after));
            sql.push_str(&format!(
                " AND id > ?{} ORDER BY id LIMIT {limit}",
                args.len()
            ));
        }
        None => sql.push_str(&format!(" ORDER BY created_ns DESC, id DESC LIMIT {limit}")),
    }
    let mut st = conn.prepare_cached(&sql).map_err(db("listing scores"))?;
    let mut rows = st
        .query(rusqlite::params_from_iter(args.iter()))
        .map_err(db("listing scores"))?;
    let mut out = Vec::new();
    let corrupt = |reason: String| StoreError::Corrupt {
        table: "scores",
        reason,
    };
    while let Some(r) = rows.next().map_err(db("listing scores"))? {
        let e = db("listing scores");
        let trace_id = match r.get::<_, Option<Vec<u8>>>(1).map_err(&e)? {
            Some(b) => Some(TraceId::from_bytes(&b).map_err(|x| corrupt(x.to_string()))?),
            None => None,
        };
        let span_id = match r.get::<_, Option<Vec<u8>>>(2).map_err(&e)? {
            Some(b) => Some(SpanId::from_bytes(&b).map_err(|x| corrupt(x.to_string()))?),
            None => None,
        };
        let data_type: String = r.get(5).map_err(&e)?;
        let source: String = r.get(8).map_err(&e)?;
        out.push(Score {
            id: Some(r.get(0).map_err(&e)?),
            trace_id,
            span_id,
            session_id: r.get(3).map_err(&e)?,
            name: r.get(4).map_err(&e)?,
            data_type: parse_type(&data_type)?,
            value: r.get(6).map_err(&e)?,
            label: r.get(7).map_err(&e)?,
            source: parse_source(&source),
            comment: r.get(9).map_err(&e)?,
            author: r.get(10).map_err(&e)?,
            created_ns: Some(r.get::<_, i64>(11).map_err(&e)?.max(0) as u64),
        });
    }
    Ok(out)
}

/// Daily count and mean per numeric or boolean score name.
pub fn trends(
    conn: &Connection,
    project: &str,
    from: Option<Timestamp>,
    to: Option<Timestamp>,
) -> Result<Vec<ScoreTrendRow>, StoreError> {
    let Some(pid) = super::query::project_id(conn, &project_name(project))? else {
        return Ok(Vec::new());
    };
    let mut st = conn
        .prepare_cached(
            "SELECT name, data_type, strftime('%Y-%m-%d', created_ns / 1000000000, 'unixepoch') AS day, \
             count(*), avg(value) FROM scores \
             WHERE project_id = ?1 AND created_ns >= ?2 AND created_ns < ?3 AND data_type != 'categorical' \
             GROUP BY name, data_type, day ORDER BY name, day",
        )
        .map_err(db("score trends"))?;
    let from = from.map_or(0, |t| to_i64(t.0));
    let to = to.map_or(i64::MAX, |t| to_i64(t.0));
    let mut rows = st
        .query(params![pid, from, to])
        .map_err(db("score trends"))?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().map_err(db("score trends"))? {
        let e = db("score trends");
        let data_type: String = r.get(1).map_err(&e)?;
        out.push(ScoreTrendRow {
            name: r.get(0).map_err(&e)?,
            data_type: parse_type(&data_type)?,
            day: r.get(2).map_err(&e)?,
            count: r.get::<_, i64>(3).map_err(&e)?.max(0) as u64,
            mean: r.get::<_, Option<f64>>(4).map_err(&e)?.unwrap_or(0.0),
        });
    }
    Ok(out)
}

/// Deletes the scores given to a session (a session's erasure); how many.
pub fn delete_of_session(
    conn: &Connection,
    project: &str,
    session: &str,
) -> Result<u64, StoreError> {
    let n = conn
        .prepare_cached(
            "DELETE FROM scores WHERE session_id = ?2 \
             AND project_id = (SELECT id FROM projects WHERE name = ?1)",
        )
        .and_then(|mut st| st.execute(params![project, session]))
        .map_err(db("deleting scores"))?;
    Ok(n as u64)
}
