//! Builders shared by the integration tests: deterministic ids, spans and a temp database.
#![allow(dead_code)]

use spanlens_core::{
    Cost, CostBreakdown, CostSource, NanoUsd, Span, SpanId, SpanKind, Status, Timestamp, TraceId,
    Usage,
};
use spanlens_store::{SqliteOptions, SqliteStore};
use tempfile::TempDir;

/// Base time of every test span: 2025-01-01T00:00:00Z.
pub const T0: u64 = 1_735_689_600_000_000_000;
pub const MS: u64 = 1_000_000;

pub fn tid(n: u64) -> TraceId {
    TraceId((u128::from(n) + 1).to_be_bytes())
}

pub fn sid(n: u64) -> SpanId {
    SpanId((n + 1).to_be_bytes())
}

/// A span of trace `t`, id `s`, child of `parent`, starting `start_ms` after T0, lasting `dur_ms`.
pub fn span(t: u64, s: u64, parent: Option<u64>, name: &str, start_ms: u64, dur_ms: u64) -> Span {
    Span {
        trace_id: tid(t),
        span_id: sid(s),
        parent_span_id: parent.map(sid),
        name: name.to_string(),
        kind: SpanKind::Span,
        start_time: Timestamp(T0 + start_ms * MS),
        end_time: Some(Timestamp(T0 + (start_ms + dur_ms) * MS)),
        status: Status::Ok,
        ..Default::default()
    }
}

/// An LLM span with usage and a computed cost of `cost_nano`.
#[allow(clippy::too_many_arguments)]
pub fn llm(
    t: u64,
    s: u64,
    parent: Option<u64>,
    model: &str,
    provider: &str,
    start_ms: u64,
    dur_ms: u64,
    input: u64,
    output: u64,
    cost_nano: i64,
) -> Span {
    let mut sp = span(t, s, parent, &format!("chat {model}"), start_ms, dur_ms);
    sp.kind = SpanKind::Llm;
    sp.request_model = Some(model.to_string());
    sp.provider = Some(provider.to_string());
    sp.usage = Some(Usage {
        input_tokens: input,
        output_tokens: output,
        total_tokens: input + output,
        ..Default::default()
    });
    sp.cost = Some(Cost {
        source: CostSource::Computed,
        amounts: CostBreakdown {
            input: NanoUsd(cost_nano),
            total: NanoUsd(cost_nano),
            ..Default::default()
        },
        pricing_id: None,
        pricing_version: None,
        computed: None,
    });
    sp
}

/// A store in a fresh temp dir; keep the `TempDir` alive as long as the store.
pub fn temp_store() -> (TempDir, SqliteStore) {
    temp_store_with(SqliteOptions::default())
}

pub fn temp_store_with(opts: SqliteOptions) -> (TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open_with(dir.path().join("spanlens.db"), opts).expect("open store");
    (dir, store)
}
