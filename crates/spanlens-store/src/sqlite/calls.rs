//! One count per provider call, in the store: the call index `llm_calls` and the writer's step
//! that applies [`spanlens_core::dedup`] to a trace whenever its calls change.
//!
//! `llm_calls` holds one row per LLM span with usage: what the rule reads, the span's own
//! tokens and cost, and which span is counted in its place. A duplicate's row in `spans` counts
//! zero tokens, no cost and is not unpriced, so every sum made from `spans` — trace summaries,
//! the sessions summed from them, the rollups, and the spans at a dashboard range's edges —
//! counts the call once. Its body keeps its usage and cost, and so does `llm_calls`, to give
//! them back should it become the counted span again (after a span of the trace is re-sent).
//!
//! The decision is remade from every call of the trace each time one arrives, so it does not
//! depend on which span came first or in which commit.

use super::chunk;
use super::prepare::{prepare, to_i64, PreparedSpan};
use super::rollups::{write_delta_built, BuildProgress, OwnedStats, STATS_COLS};
use super::writer::state_from_spans;
use crate::rollup::delta::Delta;
use rusqlite::{params, Connection, Row};
use spanlens_core::dedup::{duplicates, Call};
use spanlens_core::{NanoUsd, Span, SpanId};
use std::collections::{BTreeMap, HashMap};

/// A span whose counted tokens and cost changed in `spans` (and in the rollups' delta).
pub(super) struct Flipped {
    pub span_id: [u8; 8],
    pub start_ns: i64,
}

/// Records the span in its trace's call index, or takes it out (a re-sent span that is no
/// longer an LLM call with usage); true when the index changed.
///
/// The span's row was just written with its own counts, so its entry starts as counted; the
/// trace's [`resolve`] then decides.
pub(super) fn index(
    conn: &Connection,
    trace_ref: i64,
    r: &PreparedSpan,
    replaced: bool,
) -> rusqlite::Result<bool> {
    let Some(c) = &r.call else {
        if !replaced {
            return Ok(false);
        }
        let n = conn
            .prepare_cached("DELETE FROM llm_calls WHERE trace_ref = ?1 AND span_id = ?2")?
            .execute(params![trace_ref, &r.span_id[..]])?;
        return Ok(n > 0);
    };
    conn.prepare_cached(
        "INSERT OR REPLACE INTO llm_calls (trace_ref, span_id, parent_span_id, response_id, \
         provider, request_model, response_model, start_ns, end_ns, input_tokens, output_tokens, \
         cache_read_tokens, cache_write_tokens, reasoning_tokens, total_tokens, cost_nano, \
         unpriced, duplicate_of, usage_detail) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, NULL, ?18)",
    )?
    .execute(params![
        trace_ref,
        &r.span_id[..],
        r.parent_span_id.as_ref().map(|p| &p[..]),
        c.response_id,
        c.provider,
        c.request_model,
        c.response_model,
        r.start_ns,
        r.end_ns.unwrap_or(r.start_ns).max(r.start_ns),
        r.input_tokens,
        r.output_tokens,
        r.cache_read_tokens,
        r.cache_write_tokens,
        r.reasoning_tokens,
        r.total_tokens,
        r.cost_nano,
        r.unpriced,
        c.detail,
    ])?;
    Ok(true)
}

/// A row of `llm_calls`.
struct Indexed {
    call: Call,
    start_ns: i64,
    /// The span's own counts, as its `spans` row holds them while it is counted.
    tokens: [i64; 6],
    cost_nano: Option<i64>,
    unpriced: bool,
    duplicate_of: Option<[u8; 8]>,
}

fn id8(r: &Row<'_>, i: usize) -> rusqlite::Result<Option<[u8; 8]>> {
    match r.get_ref(i)?.as_blob_or_null()? {
        None => Ok(None),
        Some(b) => b.try_into().map(Some).map_err(|_| {
            rusqlite::Error::FromSqlConversionFailure(
                i,
                rusqlite::types::Type::Blob,
                format!("llm_calls: a span id of {} bytes", b.len()).into(),
            )
        }),
    }
}

fn load(conn: &Connection, trace_ref: i64) -> rusqlite::Result<Vec<Indexed>> {
    let mut st = conn.prepare_cached(
        "SELECT span_id, parent_span_id, response_id, provider, request_model, response_model, \
         start_ns, end_ns, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, \
         reasoning_tokens, total_tokens, cost_nano, unpriced, duplicate_of, usage_detail \
         FROM llm_calls WHERE trace_ref = ?1",
    )?;
    let mut rows = st.query([trace_ref])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let span_id = id8(r, 0)?.unwrap_or_default();
        let start_ns: i64 = r.get(6)?;
        let end_ns: i64 = r.get(7)?;
        let mut tokens = [0i64; 6];
        for (k, t) in tokens.iter_mut().enumerate() {
            *t = r.get(8 + k)?;
        }
        let cost_nano: Option<i64> = r.get(14)?;
        let nonneg = |v: i64| u64::try_from(v).unwrap_or(0);
        out.push(Indexed {
            call: Call {
                span_id: SpanId(span_id),
                parent_span_id: id8(r, 1)?.map(SpanId),
                response_id: r.get(2)?,
                provider: r.get(3)?,
                request_model: r.get(4)?,
                response_model: r.get(5)?,
                start_ns: nonneg(start_ns),
                end_ns: nonneg(end_ns),
                tokens: tokens.map(nonneg),
                priced: cost_nano.is_some(),
                detail: r.get(17)?,
            },
            start_ns,
            tokens,
            cost_nano,
            unpriced: r.get(15)?,
            duplicate_of: id8(r, 16)?,
        });
    }
    Ok(out)
}

/// Applies the same-call rule to every call of the trace: a span that became a duplicate stops
/// counting its tokens and cost in `spans`, one that became counted again counts them, and each
/// change goes into `delta` for the rollups. Returns the spans whose counts changed.
pub(super) fn resolve(
    conn: &Connection,
    trace_ref: i64,
    delta: &mut Delta,
) -> rusqlite::Result<Vec<Flipped>> {
    let rows = load(conn, trace_ref)?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let calls: Vec<Call> = rows.iter().map(|r| r.call.clone()).collect();
    let want = duplicates(&calls);
    let mut flipped = Vec::new();
    for (r, w) in rows.iter().zip(want) {
        let want_of = w.map(|j| calls[j].span_id.0);
        if want_of == r.duplicate_of {
            continue;
        }
        let id = &r.call.span_id.0[..];
        if want_of.is_some() != r.duplicate_of.is_some() {
            let (tokens, cost, unpriced) = match want_of {
                Some(_) => ([0; 6], None, false),
                None => (r.tokens, r.cost_nano, r.unpriced),
            };
            let mut st = conn.prepare_cached(&format!(
                "SELECT {STATS_COLS}, end_ns, rate_limits FROM spans \
                 WHERE trace_ref = ?1 AND span_id = ?2"
            ))?;
            let mut found = st.query(params![trace_ref, id])?;
            if let Some(row) = found.next()? {
                let old = OwnedStats::of(row)?;
                drop(found);
                let before = old.stats();
                delta.add_span(&before, -1);
                let mut after = old.stats();
                after.tokens = tokens;
                after.cost_nano = cost;
                delta.add_span(&after, 1);
                conn.prepare_cached(
                    "UPDATE spans SET input_tokens = ?3, output_tokens = ?4, \
                     cache_read_tokens = ?5, cache_write_tokens = ?6, reasoning_tokens = ?7, \
                     total_tokens = ?8, cost_nano = ?9, unpriced = ?10 \
                     WHERE trace_ref = ?1 AND span_id = ?2",
                )?
                .execute(params![
                    trace_ref, id, tokens[0], tokens[1], tokens[2], tokens[3], tokens[4],
                    tokens[5], cost, unpriced
                ])?;
                flipped.push(Flipped {
                    span_id: r.call.span_id.0,
                    start_ns: r.start_ns,
                });
            }
        }
        conn.prepare_cached(
            "UPDATE llm_calls SET duplicate_of = ?3 WHERE trace_ref = ?1 AND span_id = ?2",
        )?
        .execute(params![trace_ref, id, want_of.as_ref().map(|d| &d[..])])?;
    }
    Ok(flipped)
}

/// The duplicates of a trace: (span, the span counted in its place), for reading.
pub(super) fn duplicates_of(
    conn: &Connection,
    trace_ref: i64,
) -> rusqlite::Result<Vec<([u8; 8], [u8; 8])>> {
    let mut st = conn.prepare_cached(
        "SELECT span_id, duplicate_of FROM llm_calls \
         WHERE trace_ref = ?1 AND duplicate_of IS NOT NULL",
    )?;
    let mut rows = st.query([trace_ref])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        if let (Some(s), Some(d)) = (id8(r, 0)?, id8(r, 1)?) {
            out.push((s, d));
        }
    }
    Ok(out)
}

/// What a duplicate call's span reported, kept in its call row (its span row counts nothing).
pub(super) struct DuplicateCall {
    /// The span counted in its place.
    pub of: SpanId,
    /// Input and output tokens.
    pub tokens: (u64, u64),
    /// Its cost, when priced.
    pub cost: Option<NanoUsd>,
    /// A model call the catalog could not price.
    pub unpriced: bool,
}

/// The duplicate calls of a trace by span id, with what each reported.
pub(super) fn duplicate_calls(
    conn: &Connection,
    trace_ref: i64,
) -> rusqlite::Result<HashMap<[u8; 8], DuplicateCall>> {
    let mut st = conn.prepare_cached(
        "SELECT span_id, duplicate_of, input_tokens, output_tokens, cost_nano, unpriced \
         FROM llm_calls WHERE trace_ref = ?1 AND duplicate_of IS NOT NULL",
    )?;
    let mut rows = st.query([trace_ref])?;
    let mut out = HashMap::new();
    let nonneg = |v: i64| u64::try_from(v).unwrap_or(0);
    while let Some(r) = rows.next()? {
        if let (Some(span), Some(of)) = (id8(r, 0)?, id8(r, 1)?) {
            let call = DuplicateCall {
                of: SpanId(of),
                tokens: (nonneg(r.get(2)?), nonneg(r.get(3)?)),
                cost: r.get::<_, Option<i64>>(4)?.map(NanoUsd),
                unpriced: r.get(5)?,
            };
            out.insert(span, call);
        }
    }
    Ok(out)
}

/// Migration 9: indexes the LLM calls already stored and applies the rule to their traces, so
/// a database written before it counts each call once too: the duplicates' rows stop counting,
/// their traces' summaries are rebuilt and the rollups take their counts back.
pub(super) fn index_stored(
    conn: &Connection,
    progress: &mut dyn FnMut(BuildProgress),
) -> rusqlite::Result<()> {
    const STEP: &str = "counting each LLM call once (spans)";
    // The spans `Call::of` takes: LLM spans with some token count.
    let mut st = conn.prepare(
        "SELECT project_id, trace_ref, span_id FROM spans WHERE kind = 'llm' AND \
         (input_tokens > 0 OR output_tokens > 0 OR cache_read_tokens > 0 \
          OR cache_write_tokens > 0 OR reasoning_tokens > 0 OR total_tokens > 0) \
         ORDER BY trace_ref",
    )?;
    let mut by_trace: Vec<(i64, i64, Vec<[u8; 8]>)> = Vec::new();
    let mut rows = st.query([])?;
    while let Some(r) = rows.next()? {
        let (pid, trace_ref): (i64, i64) = (r.get(0)?, r.get(1)?);
        let Some(id) = id8(r, 2)? else { continue };
        match by_trace.last_mut() {
            Some((_, t, ids)) if *t == trace_ref => ids.push(id),
            _ => by_trace.push((pid, trace_ref, vec![id])),
        }
    }
    drop(rows);
    drop(st);
    let total = by_trace.len() as u64;
    let mut deltas: BTreeMap<i64, Delta> = BTreeMap::new();
    let mut chunks =
        conn.prepare("SELECT codec, body FROM trace_chunks WHERE trace_ref = ?1 ORDER BY id")?;
    for (done, (pid, trace_ref, ids)) in by_trace.into_iter().enumerate() {
        if done % 1024 == 0 {
            progress(BuildProgress {
                step: STEP,
                done: done as u64,
                total,
            });
        }
        // Only traces with two calls can hold a duplicate.
        if ids.len() < 2 {
            continue;
        }
        let mut bodies: HashMap<[u8; 8], String> = HashMap::new();
        let mut rows = chunks.query([trace_ref])?;
        while let Some(r) = rows.next()? {
            let codec: i64 = r.get(0)?;
            // A damaged chunk leaves its spans out of the index: they keep counting.
            if let Ok(body) = r.get_ref(1)?.as_blob() {
                let _ = chunk::decode_into(codec, body, &mut bodies);
            }
        }
        drop(rows);
        for id in ids {
            let Some(span) = bodies
                .get(&id)
                .and_then(|b| serde_json::from_str::<Span>(b).ok())
            else {
                continue;
            };
            index(conn, trace_ref, &prepare(span), false)?;
        }
        let flipped = resolve(conn, trace_ref, deltas.entry(pid).or_default())?;
        if flipped.is_empty() {
            continue;
        }
        let state = state_from_spans(conn, trace_ref)?;
        conn.prepare_cached(
            "UPDATE traces SET input_tokens = ?2, output_tokens = ?3, total_tokens = ?4, \
             cost_nano = ?5, unpriced_count = ?6, state = ?7 WHERE id = ?1",
        )?
        .execute(params![
            trace_ref,
            to_i64(state.input_tokens),
            to_i64(state.output_tokens),
            to_i64(state.total_tokens),
            state.cost_nano,
            to_i64(state.unpriced_count),
            serde_json::to_string(&state).unwrap_or_default(),
        ])?;
    }
    for (pid, delta) in &deltas {
        write_delta_built(conn, *pid, delta)?;
    }
    progress(BuildProgress {
        step: STEP,
        done: total,
        total,
    });
    Ok(())
}
