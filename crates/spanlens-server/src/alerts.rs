//! Alert rules evaluated on a timer against the store's windowed metrics, with notifications
//! POSTed as JSON to a webhook. The decision logic (thresholds, cooldown) is in
//! [`spanlens_core::alerts`]; this module measures, delivers and keeps the board the API shows.
//!
//! Configuration (`spanlens serve --alerts FILE`), TOML:
//!
//! ```toml
//! webhook_url = "http://127.0.0.1:9000/hooks/spanlens"
//! interval_seconds = 30          # how often every rule is evaluated (default 30)
//!
//! [[rule]]
//! name = "daily budget"
//! metric = "cost_usd"            # latency_p95_ms | ttft_p95_ms | error_rate | cost_usd
//! threshold = 25.0               # fires when the value is above this
//! window_seconds = 86400         # trailing window (default 300)
//! cooldown_seconds = 3600        # minimum time between notifications (default 600)
//! # project = "default", kind = "llm", model = "gpt-4o", min_spans = 1
//! ```

use serde::{Deserialize, Serialize};
use spanlens_core::alerts::{validate_rules, AlertEvent, AlertMetric, AlertRule, AlertState};
use spanlens_core::Timestamp;
use spanlens_store::{GroupBy, MetricsQuery, Store, StoreError};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn default_interval() -> f64 {
    30.0
}

/// The alerting configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertConfig {
    /// Where notifications are POSTed.
    pub webhook_url: String,
    /// Seconds between evaluations of every rule.
    #[serde(default = "default_interval")]
    pub interval_seconds: f64,
    /// The rules.
    #[serde(default, rename = "rule")]
    pub rules: Vec<AlertRule>,
}

/// Why an alert configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum AlertConfigError {
    /// The file could not be read.
    #[error("cannot read alert rules {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The TOML is malformed or has unknown or mistyped keys.
    #[error("invalid alert rules: {0}")]
    Parse(String),
    /// A value is out of range.
    #[error("invalid alert rules: {0}")]
    Invalid(String),
}

impl AlertConfig {
    /// Parses and validates a configuration.
    pub fn from_toml(text: &str) -> Result<AlertConfig, AlertConfigError> {
        let c: AlertConfig =
            toml::from_str(text).map_err(|e| AlertConfigError::Parse(e.to_string()))?;
        if !(c.interval_seconds.is_finite() && c.interval_seconds > 0.0) {
            return Err(AlertConfigError::Invalid(format!(
                "interval_seconds = {} must be a positive number",
                c.interval_seconds
            )));
        }
        if !(c.webhook_url.starts_with("http://") || c.webhook_url.starts_with("https://")) {
            return Err(AlertConfigError::Invalid(format!(
                "webhook_url = {:?} must be an http:// or https:// URL",
                c.webhook_url
            )));
        }
        validate_rules(&c.rules).map_err(|e| AlertConfigError::Invalid(e.to_string()))?;
        Ok(c)
    }

    /// Reads, parses and validates a configuration file.
    pub fn load(path: &Path) -> Result<AlertConfig, AlertConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| AlertConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        AlertConfig::from_toml(&text)
    }
}

/// One rule as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct AlertView {
    /// The rule.
    pub rule: AlertRule,
    /// Its state.
    pub state: AlertState,
    /// Why the last measurement or delivery failed, if it did.
    pub last_error: Option<String>,
    /// Notifications delivered so far.
    pub notifications: u64,
}

/// Every rule's current view, shared with the API.
pub type AlertBoard = Arc<Mutex<Vec<AlertView>>>;

/// The JSON body POSTed to the webhook.
#[derive(Debug, Clone, Serialize)]
pub struct AlertNotification<'a> {
    /// `firing` or `resolved`.
    pub status: AlertEvent,
    /// The rule's name.
    pub alert: &'a str,
    /// What was measured.
    pub metric: AlertMetric,
    /// Its unit.
    pub unit: &'static str,
    /// The measured value.
    pub value: f64,
    /// The rule's threshold.
    pub threshold: f64,
    /// The trailing window measured.
    pub window_seconds: u64,
    /// The project measured.
    pub project: &'a str,
    /// When it was measured.
    pub at: Timestamp,
    /// The full rule.
    pub rule: &'a AlertRule,
}

fn now() -> Timestamp {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp(d.as_secs() * 1_000_000_000 + u64::from(d.subsec_nanos()))
}

/// The rule's metric over its window ending at `at`, and the number of spans it covers.
pub fn measure(
    store: &dyn Store,
    rule: &AlertRule,
    at: Timestamp,
) -> Result<(Option<f64>, u64), StoreError> {
    let mut q = MetricsQuery::new(rule.project.clone(), GroupBy::All);
    q.from = Some(Timestamp(
        at.0.saturating_sub(rule.window_seconds.saturating_mul(1_000_000_000)),
    ));
    q.to = Some(at);
    q.kind = rule.kind;
    q.model = rule.model.clone();
    let Some(row) = store.metrics(&q)?.into_iter().next() else {
        return Ok((None, 0));
    };
    let ms = |ns: Option<u64>| ns.map(|v| v as f64 / 1e6);
    let value = match rule.metric {
        AlertMetric::LatencyP95Ms => ms(row.latency.p95),
        AlertMetric::TtftP95Ms => ms(row.ttft.p95),
        AlertMetric::ErrorRate => {
            (row.span_count > 0).then(|| row.error_count as f64 / row.span_count as f64)
        }
        AlertMetric::CostUsd => Some(row.cost.as_usd_f64()),
    };
    let covered = match rule.metric {
        AlertMetric::TtftP95Ms => row.ttft.count,
        _ => row.span_count,
    };
    Ok((value, covered))
}

/// POSTs one notification; any non-2xx answer is a failure (tried again next evaluation).
fn deliver(url: &str, n: &AlertNotification<'_>) -> Result<(), String> {
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build(),
    );
    let body = serde_json::to_vec(n).map_err(|e| e.to_string())?;
    let resp = agent
        .post(url)
        .header("content-type", "application/json")
        .send(&body[..])
        .map_err(|e| format!("POST {url}: {e}"))?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(format!("POST {url}: HTTP {}", resp.status()))
    }
}

/// A board with every rule in its initial state.
pub fn new_board(config: &AlertConfig) -> AlertBoard {
    Arc::new(Mutex::new(
        config
            .rules
            .iter()
            .map(|r| AlertView {
                rule: r.clone(),
                state: AlertState::default(),
                last_error: None,
                notifications: 0,
            })
            .collect(),
    ))
}

/// Evaluates every rule once (blocking: store reads and webhook calls).
pub fn evaluate_once(store: &dyn Store, config: &AlertConfig, board: &AlertBoard) {
    let count = board.lock().map(|b| b.len()).unwrap_or(0);
    for i in 0..count {
        let Some(rule) = board
            .lock()
            .ok()
            .and_then(|b| b.get(i).map(|v| v.rule.clone()))
        else {
            continue;
        };
        let at = now();
        let measured = measure(store, &rule, at);
        let mut b = match board.lock() {
            Ok(b) => b,
            Err(e) => e.into_inner(),
        };
        let view = &mut b[i];
        let (value, spans) = match measured {
            Ok(m) => m,
            Err(e) => {
                view.last_error = Some(format!("measuring: {e}"));
                continue;
            }
        };
        let Some(event) = view.state.observe(&rule, value, spans, at) else {
            view.last_error = None;
            continue;
        };
        let notification = AlertNotification {
            status: event,
            alert: &rule.name,
            metric: rule.metric,
            unit: rule.metric.unit(),
            value: value.unwrap_or(0.0),
            threshold: rule.threshold,
            window_seconds: rule.window_seconds,
            project: &rule.project,
            at,
            rule: &rule,
        };
        // Delivered outside the lock, so the API never waits on a slow webhook.
        drop(b);
        let delivered = deliver(&config.webhook_url, &notification);
        let mut b = match board.lock() {
            Ok(b) => b,
            Err(e) => e.into_inner(),
        };
        let view = &mut b[i];
        match delivered {
            Ok(()) => {
                view.state.announce(event, at);
                view.notifications += 1;
                view.last_error = None;
            }
            Err(e) => view.last_error = Some(e),
        }
    }
}

/// Evaluates the rules every `interval_seconds` until `stopped` resolves.
pub async fn run(
    store: Arc<dyn Store>,
    config: AlertConfig,
    board: AlertBoard,
    stopped: impl std::future::Future<Output = ()> + Send,
) {
    let interval = Duration::from_secs_f64(config.interval_seconds);
    let config = Arc::new(config);
    tokio::pin!(stopped);
    loop {
        let (s, c, b) = (store.clone(), config.clone(), board.clone());
        let _ = tokio::task::spawn_blocking(move || evaluate_once(&*s, &c, &b)).await;
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = &mut stopped => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configurations_are_validated_with_named_errors() {
        let ok = AlertConfig::from_toml(
            "webhook_url = 'http://127.0.0.1:1/x'\n[[rule]]\nname='e'\nmetric='error_rate'\nthreshold=0.2",
        )
        .unwrap();
        assert_eq!(ok.interval_seconds, 30.0);
        assert_eq!(ok.rules.len(), 1);
        let e = AlertConfig::from_toml("webhook_url = 'ftp://x'").unwrap_err();
        assert!(e.to_string().contains("webhook_url"), "{e}");
        let e =
            AlertConfig::from_toml("webhook_url = 'http://x'\ninterval_seconds = 0").unwrap_err();
        assert!(e.to_string().contains("interval_seconds"), "{e}");
        let e = AlertConfig::from_toml("webhook_url = 'http://x'\nwebhook = 1").unwrap_err();
        assert!(e.to_string().contains("webhook"), "{e}");
        let e = AlertConfig::from_toml(
            "webhook_url = 'http://x'\n[[rule]]\nname='a'\nmetric='error_rate'\nthreshold=-1",
        )
        .unwrap_err();
        assert!(e.to_string().contains("threshold"), "{e}");
    }
}
