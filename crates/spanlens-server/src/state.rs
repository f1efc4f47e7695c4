//! What every request handler shares: the store and the live-span broadcast.

use spanlens_store::Store;
use std::sync::Arc;
use tokio::sync::broadcast;

/// One arriving span as the live stream (`GET /api/v1/live`) sends it (a wire type).
pub use spanlens_api::LiveSpan;

/// What the live stream tells its watchers.
#[derive(Debug, Clone)]
pub enum LiveEvent {
    /// A span was committed.
    Span(LiveSpan),
    /// Traces were deleted.
    Deleted(spanlens_api::LiveDeleted),
}

impl LiveEvent {
    /// The project it concerns.
    pub fn project(&self) -> &str {
        match self {
            LiveEvent::Span(s) => &s.project,
            LiveEvent::Deleted(d) => &d.project,
        }
    }
}

/// Shared server state; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The span database.
    pub store: Arc<dyn Store>,
    /// Timeouts and sizes the listeners and request readers apply.
    limits: crate::Limits,
    /// Request bytes held by every request in flight.
    budget: Arc<crate::budget::ByteBudget>,
    /// Whether the store is failing to write, so each episode is logged once.
    health: Arc<StoreHealth>,
    /// Which `Host` and `Origin` values requests may carry.
    access: Arc<crate::access::Access>,
    /// Ingest requests received so far (tells the memory janitor when ingest is idle).
    received: Arc<std::sync::atomic::AtomicU64>,
    /// Turns to decode and normalise a request: as many as keep the CPUs busy, so 200
    /// senders at once do not build 200 requests' spans at once.
    normalizers: Arc<tokio::sync::Semaphore>,
    live: broadcast::Sender<Arc<LiveEvent>>,
    /// Turns true when the server shuts down, so endless streams (the live feed) end and
    /// graceful shutdown does not wait for them forever.
    stopping: tokio::sync::watch::Sender<bool>,
    /// Alert rules and their states, when alerting is configured.
    alerts: Option<crate::alerts::AlertBoard>,
    /// Work that follows each commit: the live feed, evaluators.
    commits: crate::commits::CommitBus,
    /// The prices ingest computes costs with and the API shows.
    catalog: Catalog,
    /// What ingest redacts before storing, per project.
    redactions: Arc<crate::redaction::Redactions>,
    /// Where ingested spans are sent on (`None`: nowhere).
    forwarding: Option<Arc<crate::forward::Forwarding>>,
    /// Whether calls need an API key, and the keys.
    auth: Arc<crate::auth::Auth>,
    /// Wakes the retention sweeper.
    sweeper: Arc<tokio::sync::Notify>,
    /// The keys' and projects' quotas and meters.
    quotas: Arc<crate::quota::Quotas>,
    /// Where LLM spans may be replayed (no endpoint: replay is off).
    replay: Arc<crate::replay::ReplayConfig>,
    /// What SDKs report about their own export.
    sdk_health: Arc<crate::sdk_health::SdkHealth>,
}

/// The price catalog a server runs with: the built-in one, or one loaded at start (an override
/// file over the built-in prices).
#[derive(Clone, Default)]
pub enum Catalog {
    /// The catalog compiled into the binary.
    #[default]
    Builtin,
    /// A catalog loaded at start.
    Loaded(Arc<spanlens_core::PriceCatalog>),
}

impl Catalog {
    /// The catalog itself.
    pub fn get(&self) -> &spanlens_core::PriceCatalog {
        match self {
            Catalog::Builtin => spanlens_core::PriceCatalog::builtin(),
            Catalog::Loaded(c) => c,
        }
    }
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Catalog({})", self.get().version())
    }
}

/// Requests normalised at once per CPU: more than one, so a request waiting for its commit
/// never leaves a CPU idle, few enough that memory follows the CPUs, not the senders.
const NORMALIZERS_PER_CPU: usize = 4;

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Live events buffered per subscriber before a slow one starts missing events.
const LIVE_BUFFER: usize = 4096;

impl AppState {
    /// State around a store.
    pub fn new(store: Arc<dyn Store>) -> AppState {
        let (live, _) = broadcast::channel(LIVE_BUFFER);
        let (stopping, _) = tokio::sync::watch::channel(false);
        let limits = crate::Limits::default();
        AppState {
            store,
            budget: crate::budget::ByteBudget::new(limits.max_inflight_bytes),
            limits,
            health: Arc::new(StoreHealth::default()),
            access: Arc::new(crate::access::Access::open()),
            received: Arc::new(std::sync::atomic::AtomicU64::new(0)),
            normalizers: Arc::new(tokio::sync::Semaphore::new(NORMALIZERS_PER_CPU * cpus())),
            stopping,
            alerts: None,
            commits: crate::commits::CommitBus::default().with(Arc::new(LiveFeed(live.clone()))),
            live,
            catalog: Catalog::Builtin,
            redactions: Arc::new(crate::redaction::Redactions::default()),
            forwarding: None,
            auth: Arc::new(crate::auth::Auth::off()),
            sweeper: Arc::new(tokio::sync::Notify::new()),
            quotas: Arc::new(crate::quota::Quotas::default()),
            replay: Arc::new(crate::replay::ReplayConfig::default()),
            sdk_health: Arc::default(),
        }
    }

    /// The quotas and their meters.
    pub fn quotas(&self) -> &Arc<crate::quota::Quotas> {
        &self.quotas
    }

    /// The same state checking calls with `auth`.
    pub fn with_auth(mut self, auth: Arc<crate::auth::Auth>) -> AppState {
        self.auth = auth;
        self
    }

    /// Whether calls need a key, and the keys.
    pub fn auth(&self) -> &Arc<crate::auth::Auth> {
        &self.auth
    }

    /// The same state redacting with `redactions`.
    pub fn with_redactions(mut self, redactions: Arc<crate::redaction::Redactions>) -> AppState {
        self.redactions = redactions;
        self
    }

    /// The same state sending what it ingests on through `forwarding`.
    pub fn with_forwarding(mut self, forwarding: Arc<crate::forward::Forwarding>) -> AppState {
        self.commits = self.commits.with(forwarding.clone());
        self.forwarding = Some(forwarding);
        self
    }

    /// Where ingested spans are sent on.
    pub fn forwarding(&self) -> Option<&Arc<crate::forward::Forwarding>> {
        self.forwarding.as_ref()
    }

    /// What ingest redacts, per project.
    pub fn redactions(&self) -> &Arc<crate::redaction::Redactions> {
        &self.redactions
    }

    /// The same state pricing with `catalog`.
    pub fn with_catalog(mut self, catalog: Catalog) -> AppState {
        self.catalog = catalog;
        self
    }

    /// The price catalog in force.
    pub fn catalog(&self) -> &spanlens_core::PriceCatalog {
        self.catalog.get()
    }

    /// The same state with other limits (the in-flight budget is sized from them).
    pub fn with_limits(mut self, limits: crate::Limits) -> AppState {
        self.budget = crate::budget::ByteBudget::new(limits.max_inflight_bytes);
        self.limits = limits;
        self
    }

    /// The same state checking `Host` and `Origin` against `access`.
    pub fn with_access(mut self, access: crate::access::Access) -> AppState {
        self.access = Arc::new(access);
        self
    }

    /// The same state naming `dir` (the data directory) when the disk fills up.
    pub fn with_data_dir(mut self, dir: std::path::PathBuf) -> AppState {
        self.health = Arc::new(StoreHealth {
            data_dir: Some(dir),
            ..StoreHealth::default()
        });
        self
    }

    /// Timeouts and sizes in force.
    pub fn limits(&self) -> &crate::Limits {
        &self.limits
    }

    /// The in-flight request budget.
    pub fn budget(&self) -> &Arc<crate::budget::ByteBudget> {
        &self.budget
    }

    /// Turns to decode and normalise a request body.
    pub fn normalizers(&self) -> &Arc<tokio::sync::Semaphore> {
        &self.normalizers
    }

    /// Counts an ingest request.
    pub fn note_request(&self) {
        self.received
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Ingest requests received so far.
    pub fn requests_received(&self) -> u64 {
        self.received.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The `Host` and `Origin` policy.
    pub fn access(&self) -> &Arc<crate::access::Access> {
        &self.access
    }

    /// Maps a store failure for ingest; a write the store cannot make for now (disk full)
    /// is logged once per episode, with the free space of the data directory.
    pub fn store_failed(&self, e: spanlens_store::StoreError) -> crate::ingest::IngestError {
        if let spanlens_store::StoreError::Unavailable { disk_full, .. } = &e {
            if !self
                .health
                .failing
                .swap(true, std::sync::atomic::Ordering::Relaxed)
            {
                let dir = self.health.data_dir.as_deref();
                let reason = if *disk_full {
                    "the disk is full".to_string()
                } else {
                    e.to_string()
                };
                tracing::warn!(
                    reason = %reason,
                    free_mib = dir.and_then(free_bytes).map(|b| b >> 20),
                    data_dir = dir.map(|d| tracing::field::display(d.display())),
                    "the store cannot write; answering 503 with Retry-After until it can"
                );
            }
        }
        crate::ingest::store_error(e)
    }

    /// Notes a successful commit: ends a failing episode (logged once).
    pub fn store_wrote(&self) {
        if self
            .health
            .failing
            .swap(false, std::sync::atomic::Ordering::Relaxed)
        {
            tracing::info!("the store writes again");
        }
    }

    /// The same state with evaluators run on ingested spans.
    pub fn with_evaluators(mut self, ev: Arc<crate::evaluators::EvaluatorConfig>) -> AppState {
        let evaluate = crate::evaluators::OnCommit::new(self.store.clone(), ev);
        self.commits = self.commits.with(Arc::new(evaluate));
        self
    }

    /// The same state replaying LLM spans on `config`'s endpoints.
    pub fn with_replay(mut self, config: Arc<crate::replay::ReplayConfig>) -> AppState {
        self.replay = config;
        self
    }

    /// The replay endpoints (none when replay is off).
    pub fn replay(&self) -> &Arc<crate::replay::ReplayConfig> {
        &self.replay
    }

    /// What SDKs report about their own export.
    pub fn sdk_health(&self) -> &crate::sdk_health::SdkHealth {
        &self.sdk_health
    }

    /// What follows each commit.
    pub fn commits(&self) -> &crate::commits::CommitBus {
        &self.commits
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

    /// Watches for shutdown (true once it has begun).
    pub fn stopping(&self) -> tokio::sync::watch::Receiver<bool> {
        self.stopping.subscribe()
    }

    /// Wakes the retention sweeper (a project's retention changed).
    pub fn wake_sweeper(&self) {
        self.sweeper.notify_one();
    }

    /// What wakes the retention sweeper.
    pub fn sweeper(&self) -> &Arc<tokio::sync::Notify> {
        &self.sweeper
    }

    /// Resolves once shutdown has begun.
    pub fn stopped(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.stopping.subscribe();
        async move {
            let _ = rx.wait_for(|stopping| *stopping).await;
        }
    }

    /// Records an admin action in the audit log; a failure to record is logged, not returned
    /// (the action is done by then).
    pub async fn audit(
        &self,
        caller: Option<&crate::auth::Caller>,
        project: &str,
        action: &str,
        target: &str,
        detail: serde_json::Value,
    ) {
        let entry = spanlens_auth::AuditEntry {
            time_ns: 0,
            project: project.to_string(),
            actor: caller.map_or_else(|| "local (auth off)".into(), |c| c.actor()),
            action: action.to_string(),
            target: target.to_string(),
            detail,
        };
        if let Err(e) = spanlens_auth::audit::record(&*self.store, entry).await {
            tracing::error!(project, action, target, error = %e, "audit entry not recorded");
        }
    }

    /// Tells live watchers that traces were deleted.
    pub fn announce_deleted(&self, deleted: spanlens_api::LiveDeleted) {
        // Nobody watching is not an error.
        let _ = self.live.send(Arc::new(LiveEvent::Deleted(deleted)));
    }

    /// Subscribes to committed spans and deletions.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<LiveEvent>> {
        self.live.subscribe()
    }
}

/// The live feed as a commit subscriber: committed spans go to `/api/v1/live` watchers, and
/// nothing is copied while nobody watches.
struct LiveFeed(broadcast::Sender<Arc<LiveEvent>>);

impl crate::commits::CommitSubscriber for LiveFeed {
    fn wants(&self) -> bool {
        self.0.receiver_count() > 0
    }

    fn committed(&self, batch: &crate::commits::Committed) {
        for s in batch.spans.iter() {
            // No subscriber left is not an error: nobody is watching.
            let _ = self
                .0
                .send(Arc::new(LiveEvent::Span(LiveSpan::of(&batch.project, s))));
        }
    }
}

/// Whether the store is in a failing episode, and where its data lives.
#[derive(Default)]
struct StoreHealth {
    failing: std::sync::atomic::AtomicBool,
    data_dir: Option<std::path::PathBuf>,
}

/// Bytes available to this process on the file system holding `dir`.
#[cfg(unix)]
fn free_bytes(dir: &std::path::Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs writes into the zeroed struct we own; the path is NUL-terminated.
    unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(path.as_ptr(), &mut st) != 0 {
            return None;
        }
        Some((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
    }
}

#[cfg(not(unix))]
fn free_bytes(_dir: &std::path::Path) -> Option<u64> {
    None
}

/// Runs `work` every `period` (the first time one period from now: callers read their settings
/// once before they start) until `stopped` resolves. Settings other servers of a fleet may
/// change are kept fresh this way.
pub async fn every<W, F>(
    period: std::time::Duration,
    stopped: impl std::future::Future<Output = ()>,
    mut work: W,
) where
    W: FnMut() -> F,
    F: std::future::Future<Output = ()>,
{
    let run = async {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            work().await;
        }
    };
    tokio::select! {
        () = run => {}
        () = stopped => {}
    }
}
