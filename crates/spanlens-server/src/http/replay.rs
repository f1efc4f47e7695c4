//! Replaying an LLM span: `GET /api/v1/replay/endpoints` (where replays may go),
//! `GET /api/v1/traces/{trace_id}/spans/{span_id}/replay` (the span as an editor's draft) and
//! `POST /api/v1/replay` (send an edited call to a configured provider). A replay is stored as
//! a new one-span trace linked to the original, through the ingest path (redaction, quotas,
//! pricing, the live feed and evaluators, every store backend), and a failed attempt is stored
//! too, as an error span. Reading the original goes through `TraceReader` alone.

use super::admin::json_body;
use super::error::{bad, internal, ApiError};
use super::params::Params;
use super::rows::trace_id;
use crate::auth::{Caller, Who};
use crate::replay::{Answer, CallError, Endpoint};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use serde_json::Value;
use spanlens_api::{
    ReplayAnswer, ReplayDraft, ReplayEndpoints, ReplayFigures, ReplayMessage, ReplayParameters,
    ReplayRequest,
};
use spanlens_core::evals::payload_text;
use spanlens_core::{
    Attributes, Link, Message, Span, SpanId, SpanKind, Status, Timestamp, TraceId,
};

/// Largest replay request body (the conversation and parameters).
const MAX_REQUEST_BYTES: usize = 1024 * 1024;
/// Most messages a replay sends.
const MAX_MESSAGES: usize = 500;
/// Most stop sequences (OpenAI's limit).
const MAX_STOP: usize = 4;
/// Roles a replayed message may have.
const ROLES: [&str; 3] = ["system", "user", "assistant"];
/// Attributes naming the original on the replay's span.
pub(crate) const OF_TRACE: &str = "spanlens.replay.of_trace";
/// See [`OF_TRACE`].
pub(crate) const OF_SPAN: &str = "spanlens.replay.of_span";
/// The endpoint a replay went to.
const ENDPOINT_ATTR: &str = "spanlens.replay.endpoint";

/// `GET /api/v1/replay/endpoints`: names, kinds and models; never keys or URLs.
pub(super) async fn endpoints(State(st): State<AppState>) -> Json<ReplayEndpoints> {
    Json(st.replay().public())
}

/// The LLM span `sid` of trace `tid` in `project`.
async fn original(
    st: &AppState,
    project: &str,
    tid: TraceId,
    sid: SpanId,
) -> Result<Span, ApiError> {
    let detail = st
        .store
        .get_trace(project, tid)
        .await?
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no trace {tid}")))?;
    let span = detail
        .spans
        .into_iter()
        .find(|s| s.span_id == sid)
        .ok_or_else(|| {
            ApiError(
                StatusCode::NOT_FOUND,
                format!("no span {sid} in trace {tid}"),
            )
        })?;
    if span.kind != SpanKind::Llm {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!(
                "span {sid} is a {} span: only llm spans (model calls) can be replayed",
                span.kind.as_str()
            ),
        ));
    }
    Ok(span)
}

fn span_id(raw: &str) -> Result<SpanId, ApiError> {
    SpanId::from_hex(raw).map_err(|e| bad("span_id", raw, &e.to_string()))
}

/// A call's figures as a span holds them.
fn figures(s: &Span) -> ReplayFigures {
    ReplayFigures {
        model: s.response_model.clone().or_else(|| s.request_model.clone()),
        output: payload_text(s.output.as_ref(), &s.output_messages),
        usage: s.usage.clone(),
        cost_usd: s.cost.as_ref().map(|c| c.amounts.total.as_usd_f64()),
        unpriced_reason: s.unpriced_reason.clone(),
        latency_ms: s.duration_ns().map(|ns| ns as f64 / 1e6),
        finish_reasons: s.finish_reasons.clone(),
    }
}

fn number(v: &Value) -> Option<f64> {
    v.as_f64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

/// The sampling parameters of a span (`gen_ai.request.*`), and those that are not carried over.
fn parameters_of(s: &Span, notes: &mut Vec<String>) -> ReplayParameters {
    let mut p = ReplayParameters::default();
    for (k, v) in &s.model_parameters {
        let n = number(v);
        let taken = match k.as_str() {
            "temperature" => n.map(|x| p.temperature = Some(x)).is_some(),
            "max_tokens" | "max_output_tokens" | "max_completion_tokens" => {
                n.map(|x| p.max_tokens = Some(x.max(0.0) as u64)).is_some()
            }
            "top_p" => n.map(|x| p.top_p = Some(x)).is_some(),
            "presence_penalty" => n.map(|x| p.presence_penalty = Some(x)).is_some(),
            "frequency_penalty" => n.map(|x| p.frequency_penalty = Some(x)).is_some(),
            "seed" => n.map(|x| p.seed = Some(x as i64)).is_some(),
            "stop" | "stop_sequences" => {
                let stop: Option<Vec<String>> = match v {
                    Value::String(s) => Some(vec![s.clone()]),
                    Value::Array(a) => a.iter().map(|x| x.as_str().map(str::to_string)).collect(),
                    _ => None,
                };
                stop.map(|stop| p.stop = stop).is_some()
            }
            _ => false,
        };
        if !taken {
            notes.push(format!("parameter {k} is not replayed"));
        }
    }
    p
}

/// An LLM span as an editor's starting point: its input as text messages.
fn draft_of(s: &Span) -> ReplayDraft {
    let mut notes = Vec::new();
    let mut messages = Vec::new();
    for (i, m) in s.input_messages.iter().enumerate() {
        let n = i + 1;
        let content = m.content.clone().unwrap_or_default();
        let role = match m.role.as_deref().unwrap_or("user") {
            "system" | "developer" => "system",
            "assistant" | "model" | "ai" => "assistant",
            "tool" | "function" | "ipython" => {
                notes.push(format!(
                    "message {n} (a tool result) is sent as a user message"
                ));
                messages.push(ReplayMessage {
                    role: "user".into(),
                    content: format!("Tool result: {content}"),
                });
                continue;
            }
            _ => "user",
        };
        if !m.tool_calls.is_empty() {
            notes.push(format!(
                "message {n}'s tool calls are left out (replays send text only)"
            ));
        }
        messages.push(ReplayMessage {
            role: role.into(),
            content,
        });
    }
    if messages.is_empty() {
        if let Some(text) = payload_text(s.input.as_ref(), &[]) {
            notes.push("the span recorded its input as one text: it is one user message".into());
            messages.push(ReplayMessage {
                role: "user".into(),
                content: text,
            });
        }
    }
    if s.tool_definitions.is_some() {
        notes.push("the tools offered to the model are not replayed".into());
    }
    let parameters = parameters_of(s, &mut notes);
    ReplayDraft {
        trace_id: s.trace_id.to_hex(),
        span_id: s.span_id.to_hex(),
        provider: s.provider.clone(),
        model: s.request_model.clone().or_else(|| s.response_model.clone()),
        messages,
        parameters,
        notes,
        original: figures(s),
    }
}

/// `GET /api/v1/traces/{trace_id}/spans/{span_id}/replay`: the span as a replay draft.
pub(super) async fn draft(
    State(st): State<AppState>,
    Path((id, span)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Result<Json<ReplayDraft>, ApiError> {
    let project = Params::parse(q)?.project();
    let (tid, sid) = (trace_id(&id)?, span_id(&span)?);
    let s = original(&st, &project, tid, sid).await?;
    Ok(Json(draft_of(&s)))
}

/// Checks what a replay asks for; answers the endpoint to call.
fn checked<'a>(
    config: &'a crate::replay::ReplayConfig,
    r: &ReplayRequest,
) -> Result<&'a Endpoint, ApiError> {
    let refuse = |m: String| ApiError(StatusCode::BAD_REQUEST, m);
    if config.endpoints.is_empty() {
        return Err(refuse(
            "replay is not configured on this server: start it with --replay FILE naming the endpoints".into(),
        ));
    }
    let names = || {
        config
            .endpoints
            .iter()
            .map(|e| e.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let endpoint = config.endpoint(&r.endpoint).ok_or_else(|| {
        refuse(format!(
            "unknown endpoint {:?}: use one of {}",
            r.endpoint,
            names()
        ))
    })?;
    if !endpoint.models.contains(&r.model) {
        return Err(refuse(format!(
            "endpoint {:?} offers no model {:?}: use one of {}",
            endpoint.name,
            r.model,
            endpoint.models.join(", ")
        )));
    }
    if r.messages.is_empty() || r.messages.len() > MAX_MESSAGES {
        return Err(refuse(format!(
            "messages: 1 to {MAX_MESSAGES} messages, not {}",
            r.messages.len()
        )));
    }
    for (i, m) in r.messages.iter().enumerate() {
        if !ROLES.contains(&m.role.as_str()) {
            return Err(refuse(format!(
                "messages[{i}].role {:?}: use {}",
                m.role,
                ROLES.join(", ")
            )));
        }
    }
    if !r.messages.iter().any(|m| m.role == "user") {
        return Err(refuse("messages: at least one user message".into()));
    }
    let p = &r.parameters;
    let range = |name: &str, v: Option<f64>, lo: f64, hi: f64| match v {
        Some(x) if !(lo..=hi).contains(&x) => {
            Err(refuse(format!("parameters.{name} {x}: from {lo} to {hi}")))
        }
        _ => Ok(()),
    };
    range("temperature", p.temperature, 0.0, 2.0)?;
    range("top_p", p.top_p, 0.0, 1.0)?;
    range("presence_penalty", p.presence_penalty, -2.0, 2.0)?;
    range("frequency_penalty", p.frequency_penalty, -2.0, 2.0)?;
    if let Some(n) = p.max_tokens.filter(|n| !(1..=1_000_000).contains(n)) {
        return Err(refuse(format!(
            "parameters.max_tokens {n}: from 1 to 1000000"
        )));
    }
    if p.stop.len() > MAX_STOP || p.stop.iter().any(|s| s.is_empty() || s.len() > 200) {
        return Err(refuse(format!(
            "parameters.stop: at most {MAX_STOP} sequences of 1 to 200 bytes"
        )));
    }
    if endpoint.kind == crate::replay::Kind::Anthropic {
        let openai_only = [
            ("presence_penalty", p.presence_penalty.is_some()),
            ("frequency_penalty", p.frequency_penalty.is_some()),
            ("seed", p.seed.is_some()),
        ];
        if let Some((name, _)) = openai_only.iter().find(|(_, set)| *set) {
            return Err(refuse(format!(
                "parameters.{name}: anthropic endpoints take no {name}"
            )));
        }
    }
    Ok(endpoint)
}

fn random<const N: usize>() -> Result<[u8; N], ApiError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| internal(format!("no randomness for an id: {e}")))?;
    Ok(b)
}

/// The replay as a canonical span: a new trace's root, linked to the original.
fn replay_span(
    ids: (TraceId, SpanId),
    original: &Span,
    endpoint: &Endpoint,
    r: &ReplayRequest,
    start: Timestamp,
    end: Timestamp,
    result: &Result<Answer, CallError>,
) -> Span {
    let (tid, sid) = ids;
    let mut attributes = Attributes::new();
    attributes.insert(OF_TRACE.into(), Value::from(original.trace_id.to_hex()));
    attributes.insert(OF_SPAN.into(), Value::from(original.span_id.to_hex()));
    attributes.insert(ENDPOINT_ATTR.into(), Value::from(endpoint.name.clone()));
    let mut link = Attributes::new();
    link.insert("spanlens.link.type".into(), Value::from("replay_of"));
    let model_parameters = match serde_json::to_value(&r.parameters) {
        Ok(Value::Object(m)) => m.into_iter().collect(),
        _ => Attributes::new(),
    };
    let mut s = Span {
        trace_id: tid,
        span_id: sid,
        name: format!("replay {}", r.model),
        kind: SpanKind::Llm,
        start_time: start,
        end_time: Some(end),
        service: Some("spanlens-replay".into()),
        provider: Some(endpoint.kind.as_str().into()),
        request_model: Some(r.model.clone()),
        tags: vec!["replay".into()],
        model_parameters,
        input_messages: r
            .messages
            .iter()
            .map(|m| Message {
                role: Some(m.role.clone()),
                content: Some(m.content.clone()),
                ..Message::default()
            })
            .collect(),
        links: vec![Link {
            trace_id: original.trace_id,
            span_id: original.span_id,
            attributes: link,
        }],
        attributes,
        ..Span::default()
    };
    match result {
        Ok(a) => {
            s.status = Status::Ok;
            s.response_model = a.model.clone();
            s.response_id = a.id.clone();
            s.usage = a.usage.clone();
            s.finish_reasons = a.finish_reasons.clone();
            s.output_messages = vec![Message {
                role: Some("assistant".into()),
                content: Some(a.text.clone()),
                finish_reason: a.finish_reasons.first().cloned(),
                ..Message::default()
            }];
        }
        Err(e) => {
            s.status = Status::Error;
            s.error_type = Some(e.class());
            s.status_message = Some(e.to_string());
        }
    }
    s
}

/// Stores `span` in `project` the way an OTLP request would be: the ingest path normalises,
/// redacts, prices, applies quotas and tells the live feed and evaluators.
async fn store(
    st: &AppState,
    project: &str,
    caller: Option<&Caller>,
    span: &Span,
) -> Result<(), ApiError> {
    use prost::Message as _;
    let encoding = spanlens_core::otlp::encode::Encoding {
        flavor: spanlens_core::otlp::encode::Flavor::Otlp,
        cost: false,
        scope: "spanlens.replay",
    };
    let body = spanlens_core::otlp::encode::export_request(std::slice::from_ref(span), &encoding)
        .encode_to_vec();
    let mut held = st.budget().reservation();
    held.grow(body.len()).map_err(|e| {
        ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the server is busy: {e}"),
        )
    })?;
    let key = match caller.map(|c| &c.who) {
        Some(Who::Key(k)) => Some(k.clone()),
        _ => None,
    };
    let origin = crate::ingest::Origin {
        project: Some(project.to_string()),
        key,
    };
    let received = crate::ingest::Received {
        body: body.into(),
        content_encoding: None,
        held,
    };
    let outcome = crate::ingest::ingest(
        st,
        spanlens_core::InputFormat::OtlpProtobuf,
        received,
        origin,
    )
    .await
    .map_err(|e| {
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        ApiError(status, format!("the replay was not stored: {e}"))
    })?;
    if outcome.accepted != 1 {
        return Err(internal(format!(
            "the replay was not stored: {}",
            outcome.message
        )));
    }
    Ok(())
}

/// `POST /api/v1/replay`: sends an edited model call to a configured endpoint, stores it as a
/// new trace linked to the original, and answers both calls' figures. A provider failure is a
/// 502 naming it, the attempt stored as an error span.
pub(super) async fn replay(
    State(st): State<AppState>,
    caller: Option<Extension<Caller>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<ReplayAnswer>, ApiError> {
    let project = Params::parse(q)?.project();
    let r: ReplayRequest = json_body(&st, &headers, body, MAX_REQUEST_BYTES).await?;
    let config = st.replay().clone();
    let endpoint = checked(&config, &r)?.clone();
    let (otid, osid) = (trace_id(&r.trace_id)?, span_id(&r.span_id)?);
    let orig = original(&st, &project, otid, osid).await?;
    let ids = (TraceId(random::<16>()?), SpanId(random::<8>()?));
    let request = endpoint.body(&r.model, &r.messages, &r.parameters);
    let start = crate::ingest::now();
    let clock = std::time::Instant::now();
    let ep = endpoint.clone();
    // A blocking HTTP call: off the async workers.
    let result = tokio::task::spawn_blocking(move || ep.call(&request))
        .await
        .map_err(internal)?;
    let took = u64::try_from(clock.elapsed().as_nanos()).unwrap_or(u64::MAX);
    let end = Timestamp(start.0.saturating_add(took.max(1)));
    let span = replay_span(ids, &orig, &endpoint, &r, start, end, &result);
    store(&st, &project, caller.as_deref(), &span).await?;
    if let Err(e) = result {
        tracing::info!(endpoint = %endpoint.name, error = %e, "replay failed");
        return Err(ApiError(
            StatusCode::BAD_GATEWAY,
            format!(
                "replay on endpoint {:?} (model {}) failed: {e}. The attempt is stored as trace {}",
                endpoint.name, r.model, ids.0
            ),
        ));
    }
    // Read back: the answer shows what was stored (priced by the ingest path's catalog).
    let stored = st
        .store
        .get_trace(&project, ids.0)
        .await?
        .and_then(|d| d.spans.into_iter().find(|s| s.span_id == ids.1))
        .ok_or_else(|| {
            internal(format!(
                "replay trace {} was stored but cannot be read",
                ids.0
            ))
        })?;
    Ok(Json(ReplayAnswer {
        trace_id: ids.0.to_hex(),
        span_id: ids.1.to_hex(),
        endpoint: endpoint.name.clone(),
        replay: figures(&stored),
        original: figures(&orig),
    }))
}
