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
//!
//! What each rule last announced (firing or resolved, and when) and its notification count are
//! kept in the store's shared state (key [`STATE_KEY`]), replaced whenever a notification is
//! delivered, so a restart (or another server on the store) neither announces a firing alert
//! again before its cooldown nor forgets to resolve it.

use serde::{Deserialize, Serialize};
use spanlens_core::alerts::{
    validate_rules, AlertEvent, AlertMetric, AlertRule, AlertState, AlertStatus,
};
use spanlens_core::Timestamp;
use spanlens_store::{GroupBy, MetricsQuery, Store, StoreError};
use std::collections::BTreeMap;
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

/// One rule as the API shows it (a wire type: `spanlens_api::AlertView`).
pub use spanlens_api::AlertView;

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
pub async fn measure(
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
    let Some(row) = store.metrics(&q).await?.into_iter().next() else {
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

/// POSTs one notification on a blocking thread (the HTTP client blocks); any non-2xx answer
/// is a failure (tried again next evaluation).
async fn deliver(url: &str, n: &AlertNotification<'_>) -> Result<(), String> {
    let body = serde_json::to_vec(n).map_err(|e| e.to_string())?;
    let url = url.to_string();
    tokio::task::spawn_blocking(move || post(&url, &body))
        .await
        .map_err(|e| format!("delivery task failed: {e}"))?
}

/// POSTs a JSON body, blocking.
fn post(url: &str, body: &[u8]) -> Result<(), String> {
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build(),
    );
    let resp = agent
        .post(url)
        .header("content-type", "application/json")
        .send(body)
        .map_err(|e| format!("POST {url}: {e}"))?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(format!("POST {url}: HTTP {}", resp.status()))
    }
}

/// Key of the rules' announced states in the store's shared state, so every server on the
/// store (and a restarted one) resumes from them.
pub const STATE_KEY: &str = "alerts";

/// The file in the data directory where earlier versions kept the states; imported into the
/// store once, when the store holds none yet.
pub const LEGACY_STATE_FILE: &str = "alerts-state.json";

/// Version of the saved state's format.
const STATE_VERSION: u32 = 1;

/// What survives a restart of one rule: what it last announced and when (the cooldown runs
/// from there), and how many notifications it sent. The measured value is not kept: the
/// first evaluation after a restart measures again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SavedRule {
    status: AlertStatus,
    since: Option<Timestamp>,
    notifications: u64,
}

/// The saved state: rules by rule name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SavedState {
    version: u32,
    rules: BTreeMap<String, SavedRule>,
}

impl SavedState {
    /// What a board has announced.
    fn of(views: &[AlertView]) -> SavedState {
        SavedState {
            version: STATE_VERSION,
            rules: views
                .iter()
                .map(|v| {
                    (
                        v.rule.name.clone(),
                        SavedRule {
                            status: v.state.status,
                            since: v.state.since,
                            notifications: v.notifications,
                        },
                    )
                })
                .collect(),
        }
    }

    /// Parses a saved document, refusing versions this server does not write.
    fn parse(text: &str, origin: &str) -> Result<SavedState, AlertStateError> {
        let invalid = |reason: String| AlertStateError::Invalid {
            origin: origin.to_string(),
            reason,
        };
        let saved: SavedState = serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?;
        if saved.version != STATE_VERSION {
            return Err(invalid(format!(
                "version {} (this server writes {STATE_VERSION})",
                saved.version
            )));
        }
        Ok(saved)
    }
}

/// Why the saved alert state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum AlertStateError {
    /// The store failed.
    #[error("alert state: {0}")]
    Store(#[from] StoreError),
    /// Reading the legacy file failed.
    #[error("alert state {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The saved state is not one this version understands.
    #[error("alert state in {origin} is not valid: {reason}")]
    Invalid {
        /// Where it came from (the store's key or a file).
        origin: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Where the rules' announced states are kept across restarts: the store's shared state.
#[derive(Clone)]
pub struct StateStore {
    store: Arc<dyn Store>,
}

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateStore")
            .field("key", &STATE_KEY)
            .finish()
    }
}

impl StateStore {
    /// The alert state of `store`.
    pub fn new(store: Arc<dyn Store>) -> StateStore {
        StateStore { store }
    }

    /// The saved rules; none before the first save.
    async fn load(&self) -> Result<BTreeMap<String, SavedRule>, AlertStateError> {
        match self.store.load_state(STATE_KEY).await? {
            None => Ok(BTreeMap::new()),
            Some(text) => {
                Ok(SavedState::parse(&text, &format!("the store (key {STATE_KEY:?})"))?.rules)
            }
        }
    }

    /// Saves the board's announced states, replacing the saved document at once.
    pub async fn save(&self, views: &[AlertView]) -> Result<(), AlertStateError> {
        self.save_state(&SavedState::of(views)).await
    }

    async fn save_state(&self, saved: &SavedState) -> Result<(), AlertStateError> {
        let body = serde_json::to_string(saved).map_err(|e| AlertStateError::Invalid {
            origin: STATE_KEY.into(),
            reason: e.to_string(),
        })?;
        Ok(self.store.save_state(STATE_KEY, &body).await?)
    }

    /// Moves the states an earlier version kept in `<data_dir>/alerts-state.json` into the
    /// store, when the store holds none yet; true when it did. The file is left in place.
    pub async fn import_legacy_file(&self, data_dir: &Path) -> Result<bool, AlertStateError> {
        let path = data_dir.join(LEGACY_STATE_FILE);
        if self.store.load_state(STATE_KEY).await?.is_some() {
            return Ok(false);
        }
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(source) => {
                return Err(AlertStateError::Io {
                    path: path.display().to_string(),
                    source,
                })
            }
        };
        let saved = SavedState::parse(&text, &path.display().to_string())?;
        self.save_state(&saved).await?;
        Ok(true)
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

/// A board whose rules resume what `store` saved for them (by rule name; rules it does not
/// know start fresh). A state that cannot be read or parsed is reported in the returned
/// warning and ignored: alerting starts fresh rather than not at all.
pub async fn restore_board(
    config: &AlertConfig,
    store: &StateStore,
) -> (AlertBoard, Option<String>) {
    let board = new_board(config);
    let saved = match store.load().await {
        Ok(saved) => saved,
        Err(e) => {
            return (
                board,
                Some(format!("{e}; starting with every alert resolved")),
            )
        }
    };
    apply_saved(&board, &saved);
    (board, None)
}

/// Puts what was announced (saved by whichever server evaluates) on the board's rules.
fn apply_saved(board: &AlertBoard, saved: &BTreeMap<String, SavedRule>) {
    let mut views = board.lock().unwrap_or_else(|e| e.into_inner());
    for v in views.iter_mut() {
        if let Some(s) = saved.get(&v.rule.name) {
            v.state.status = s.status;
            v.state.since = s.since;
            v.notifications = s.notifications;
        }
    }
}

/// The lease that makes one server of those sharing a store evaluate the alert rules.
pub const ALERTS_LEASE: &str = "alerts";

/// How long the evaluating server's lease lasts: three rounds (at least 10 s), so a missed
/// round does not hand alerting over, and another server takes over that long after the
/// evaluating one dies.
pub fn lease_ttl(interval: Duration) -> Duration {
    (interval * 3).max(Duration::from_secs(10))
}

/// Evaluates every rule once. After a delivered notification the announced states are saved
/// to `state`, when given.
pub async fn evaluate_once(
    store: &dyn Store,
    config: &AlertConfig,
    board: &AlertBoard,
    state: Option<&StateStore>,
) {
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
        let measured = measure(store, &rule, at).await;
        // The board is locked only in this block: the guard must not live across an await.
        let (event, value) = {
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
            (event, value)
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
        let delivered = deliver(&config.webhook_url, &notification).await;
        // The board is locked only in this block: the guard must not live across an await.
        let snapshot = {
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
                    state.map(|_| SavedState::of(&b))
                }
                Err(e) => {
                    view.last_error = Some(e);
                    None
                }
            }
        };
        if let (Some(st), Some(snapshot)) = (state, snapshot) {
            if let Err(e) = st.save_state(&snapshot).await {
                // Alerting goes on; only a restart would lose this announcement.
                tracing::warn!(error = %e, "alert state not saved");
                if let Some(v) = board.lock().unwrap_or_else(|e| e.into_inner()).get_mut(i) {
                    v.last_error = Some(format!("saving state: {e}"));
                }
            }
        }
    }
}

/// Evaluates the rules every `interval_seconds` until `stopped` resolves, on one server of
/// those sharing the store: each round, the server that holds the [`ALERTS_LEASE`] (as
/// `holder`) renews it and evaluates; the others only show what it announced. A server that
/// stops gives the lease up, and one that dies loses it after [`lease_ttl`].
pub async fn run(
    store: Arc<dyn Store>,
    config: AlertConfig,
    board: AlertBoard,
    state: Option<StateStore>,
    holder: String,
    stopped: impl std::future::Future<Output = ()> + Send,
) {
    let interval = Duration::from_secs_f64(config.interval_seconds);
    let ttl = lease_ttl(interval);
    let config = Arc::new(config);
    let state = Arc::new(state);
    let mut leading = false;
    tokio::pin!(stopped);
    loop {
        match store.acquire_lease(ALERTS_LEASE, &holder, ttl).await {
            Ok(lead) => {
                if lead != leading {
                    tracing::info!(
                        holder,
                        lead,
                        "alert evaluation {}",
                        if lead {
                            "taken on"
                        } else {
                            "left to another server"
                        }
                    );
                    leading = lead;
                }
                if lead {
                    evaluate_once(&*store, &config, &board, state.as_ref().as_ref()).await;
                } else if let Some(st) = state.as_ref() {
                    match st.load().await {
                        Ok(saved) => apply_saved(&board, &saved),
                        Err(e) => tracing::warn!(error = %e, "alert state not read"),
                    }
                }
            }
            // The store is away: no round now; the lease runs out if this goes on.
            Err(e) => tracing::warn!(error = %e, "alert lease not taken"),
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = &mut stopped => break,
        }
    }
    if leading {
        if let Err(e) = store.release_lease(ALERTS_LEASE, &holder).await {
            tracing::warn!(error = %e, "alert lease not given up");
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

    fn config() -> AlertConfig {
        AlertConfig::from_toml(
            "webhook_url = 'http://127.0.0.1:1/x'\n[[rule]]\nname='e'\nmetric='error_rate'\nthreshold=0.2\n[[rule]]\nname='new'\nmetric='cost_usd'\nthreshold=1",
        )
        .unwrap()
    }

    /// A store on a temporary directory, as the alert state sees it.
    fn temp_state() -> (tempfile::TempDir, StateStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = spanlens_store::SqliteStore::open(dir.path().join("spanlens.db")).unwrap();
        (dir, StateStore::new(Arc::new(store)))
    }

    #[tokio::test]
    async fn state_is_saved_in_the_store_and_restored_by_rule_name() {
        let (_dir, store) = temp_state();
        // Nothing saved yet: every rule starts fresh, without a warning.
        let (board, warning) = restore_board(&config(), &store).await;
        assert!(warning.is_none());
        let views = {
            let mut b = board.lock().unwrap();
            b[0].state.announce(AlertEvent::Firing, Timestamp(42));
            b[0].notifications = 3;
            b.clone()
        };
        store.save(&views).await.unwrap();
        // Another server on the same store (here: another handle) resumes from it.
        let other = StateStore::new(store.store.clone());
        let (again, warning) = restore_board(&config(), &other).await;
        assert!(warning.is_none());
        let b = again.lock().unwrap();
        assert_eq!(b[0].state.status, AlertStatus::Firing);
        assert_eq!(b[0].state.since, Some(Timestamp(42)));
        assert_eq!(b[0].notifications, 3);
        // The measured value is not restored: it is measured again.
        assert_eq!(b[0].state.value, None);
        assert_eq!(b[1].state, AlertState::default());
    }

    /// Two servers on one store: only the lease holder evaluates; when it stops, the other
    /// takes over at its next round.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_server_of_several_evaluates_and_another_takes_over_when_it_stops() {
        let (_dir, state) = temp_state();
        let mut cfg = config();
        cfg.interval_seconds = 0.05;
        let evaluated = |b: &AlertBoard| b.lock().unwrap()[0].state.evaluated_at.is_some();
        let (stop_a, stopped_a) = tokio::sync::oneshot::channel::<()>();
        let (stop_b, stopped_b) = tokio::sync::oneshot::channel::<()>();
        let (board_a, board_b) = (new_board(&cfg), new_board(&cfg));
        let a = tokio::spawn(run(
            state.store.clone(),
            cfg.clone(),
            board_a.clone(),
            Some(state.clone()),
            "a".into(),
            async move {
                let _ = stopped_a.await;
            },
        ));
        tokio::time::sleep(Duration::from_millis(100)).await;
        let b = tokio::spawn(run(
            state.store.clone(),
            cfg.clone(),
            board_b.clone(),
            Some(state.clone()),
            "b".into(),
            async move {
                let _ = stopped_b.await;
            },
        ));
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(evaluated(&board_a), "the first server evaluates");
        assert!(!evaluated(&board_b), "the second only follows");
        stop_a.send(()).unwrap();
        a.await.unwrap();
        let until = std::time::Instant::now() + Duration::from_secs(5);
        while !evaluated(&board_b) {
            assert!(std::time::Instant::now() < until, "no takeover");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop_b.send(()).unwrap();
        b.await.unwrap();
        // Both gave the lease up: a third server gets it at once.
        assert!(state
            .store
            .acquire_lease(ALERTS_LEASE, "c", Duration::from_secs(60))
            .await
            .unwrap());
    }

    #[tokio::test]
    async fn an_unreadable_state_is_a_warning_and_a_fresh_start() {
        let (_dir, store) = temp_state();
        for bad in [
            "not json",
            r#"{"version": 99, "rules": {}}"#,
            r#"{"version": 1, "rules": {"e": {"status": "burning"}}}"#,
        ] {
            store.store.save_state(STATE_KEY, bad).await.unwrap();
            let (board, warning) = restore_board(&config(), &store).await;
            let w = warning.unwrap_or_else(|| panic!("no warning for {bad:?}"));
            assert!(w.contains("not valid"), "{w}");
            assert!(board
                .lock()
                .unwrap()
                .iter()
                .all(|v| v.state == AlertState::default()));
        }
    }

    #[tokio::test]
    async fn the_legacy_state_file_is_imported_once() {
        let (dir, store) = temp_state();
        let file = dir.path().join(LEGACY_STATE_FILE);
        std::fs::write(
            &file,
            r#"{"version": 1, "rules": {"e": {"status": "firing", "since": "1970-01-01T00:00:00.000000042Z", "notifications": 2}}}"#,
        )
        .unwrap();
        assert!(store.import_legacy_file(dir.path()).await.unwrap());
        let (board, warning) = restore_board(&config(), &store).await;
        assert!(warning.is_none(), "{warning:?}");
        assert_eq!(board.lock().unwrap()[0].notifications, 2);
        // The store has a state now: the file is not read again, whatever it says.
        std::fs::write(&file, "not json").unwrap();
        assert!(!store.import_legacy_file(dir.path()).await.unwrap());
        // A bad file while the store is empty is an error naming the file, not a panic.
        let (dir2, fresh) = temp_state();
        std::fs::write(dir2.path().join(LEGACY_STATE_FILE), "{").unwrap();
        let e = fresh.import_legacy_file(dir2.path()).await.unwrap_err();
        assert!(e.to_string().contains(LEGACY_STATE_FILE), "{e}");
    }
}
