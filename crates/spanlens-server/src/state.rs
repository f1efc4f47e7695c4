//! What every request handler shares: the store and the live-span broadcast.

use serde::Serialize;
use spanlens_core::Span;
use spanlens_store::Store;
use std::sync::Arc;
use tokio::sync::broadcast;

/// One arriving span as the live stream (`GET /api/v1/live`) sends it: small, so a busy server
/// can fan it out cheaply; the full span is one `GET /api/v1/traces/{id}` away.
#[derive(Debug, Clone, Serialize)]
pub struct LiveSpan {
    /// Project.
    pub project: String,
    /// Trace id.
    pub trace_id: String,
    /// Span id.
    pub span_id: String,
    /// Parent span id.
    pub parent_span_id: Option<String>,
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: &'static str,
    /// Start, RFC 3339.
    pub start_time: String,
    /// Duration in milliseconds, when ended.
    pub duration_ms: Option<f64>,
    /// `ok` / `error` / `unset`.
    pub status: spanlens_core::Status,
    /// Model, for LLM spans.
    pub model: Option<String>,
    /// Input + output tokens.
    pub tokens: Option<u64>,
    /// Cost in USD.
    pub cost_usd: Option<f64>,
}

impl LiveSpan {
    fn of(project: &str, s: &Span) -> LiveSpan {
        LiveSpan {
            project: project.to_string(),
            trace_id: s.trace_id.to_hex(),
            span_id: s.span_id.to_hex(),
            parent_span_id: s.parent_span_id.map(|p| p.to_hex()),
            name: s.name.clone(),
            kind: s.kind.as_str(),
            start_time: s.start_time.to_rfc3339(),
            duration_ms: s.duration_ns().map(|d| d as f64 / 1e6),
            status: s.status,
            model: s.response_model.clone().or_else(|| s.request_model.clone()),
            tokens: s.usage.as_ref().map(|u| u.input_tokens + u.output_tokens),
            cost_usd: s.cost.as_ref().map(|c| c.amounts.total.as_usd_f64()),
        }
    }
}

/// Shared server state; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The span database.
    pub store: Arc<dyn Store>,
    live: broadcast::Sender<Arc<LiveSpan>>,
    /// Turns true when the server shuts down, so endless streams (the live feed) end and
    /// graceful shutdown does not wait for them forever.
    stopping: tokio::sync::watch::Sender<bool>,
    /// Alert rules and their states, when alerting is configured.
    alerts: Option<crate::alerts::AlertBoard>,
    /// Evaluators run on committed spans, when configured.
    evaluators: Option<Arc<crate::evaluators::EvaluatorConfig>>,
}

/// Live events buffered per subscriber before a slow one starts missing events.
const LIVE_BUFFER: usize = 4096;

impl AppState {
    /// State around a store.
    pub fn new(store: Arc<dyn Store>) -> AppState {
        let (live, _) = broadcast::channel(LIVE_BUFFER);
        let (stopping, _) = tokio::sync::watch::channel(false);
        AppState {
            store,
            live,
            stopping,
            alerts: None,
            evaluators: None,
        }
    }

    /// The same state with evaluators run on ingested spans.
    pub fn with_evaluators(mut self, ev: Arc<crate::evaluators::EvaluatorConfig>) -> AppState {
        self.evaluators = Some(ev);
        self
    }

    /// The configured evaluators.
    pub fn evaluators(&self) -> Option<Arc<crate::evaluators::EvaluatorConfig>> {
        self.evaluators.clone()
    }

    /// The same state with alerting shown by the API.
    pub fn with_alerts(mut self, board: crate::alerts::AlertBoard) -> AppState {
        self.alerts = Some(board);
        self
    }

    /// The alert rules and their states (`None` when alerting is not configured).
    pub fn alerts(&self) -> Option<Vec<crate::alerts::AlertView>> {
        self.alerts
            .as_ref()
            .map(|b| b.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }

    /// Tells long-lived streams to end.
    pub fn begin_shutdown(&self) {
        self.stopping.send_replace(true);
    }

    /// Resolves once shutdown has begun.
    pub fn stopped(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.stopping.subscribe();
        async move {
            let _ = rx.wait_for(|stopping| *stopping).await;
        }
    }

    /// Number of live-stream subscribers (spans are only copied for them when there are any).
    pub fn live_subscribers(&self) -> usize {
        self.live.receiver_count()
    }

    /// Subscribes to committed spans.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<LiveSpan>> {
        self.live.subscribe()
    }

    /// Announces committed spans of `project` to live subscribers.
    pub fn publish(&self, project: &str, spans: Vec<Span>) {
        for s in &spans {
            // No subscriber is not an error: nobody is watching.
            let _ = self.live.send(Arc::new(LiveSpan::of(project, s)));
        }
    }
}
