//! Forwarding: what the server ingested, sent on to other backends (any OTLP receiver,
//! Langfuse, LangSmith) at least once.
//!
//! Each destination follows the commit bus: a committed batch is handed, without waiting, to
//! the destination's encoder thread (a full hand-off drops the batch and counts it), which
//! filters it (project, kind, a per-trace sample), encodes it in the destination's flavour
//! (`spanlens_core::otlp::encode`, with Spanlens's usage and cost) and enqueues the request
//! on the destination's `spanlens_forward::Forwarder`: a durable on-disk queue under
//! `{data dir}/forward/`, delivered with retries, backoff and `Retry-After`. Ingest never waits
//! for a destination, however slow or dead.
//!
//! Destinations come from the server's file (`serve --forward FILE`, every project unless
//! filtered) and from each project's admin (`PUT /api/v1/projects/{p}/forwarding`, that
//! project's spans only), saved as the shared-state document `forwarding:{project}` so every
//! server on one store forwards what it ingests; the others pick a change up within
//! [`REFRESH`].

pub mod config;

use crate::commits::{CommitSubscriber, Committed};
use config::{ForwardConfigError, Receiver};
use prost::Message;
use spanlens_api::{
    DeliveryCounters, DestinationConfig, DestinationSource, DestinationStatus, ForwardConfig,
};
use spanlens_core::otlp::encode::{self, Encoding};
use spanlens_core::Span;
use spanlens_forward::{
    DiskQueue, Forwarder, GrpcConfig, GrpcTransport, HttpConfig, HttpTransport, QueueConfig,
    RetryPolicy, Transport,
};
use spanlens_store::{Store, StoreError};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

/// How often a server re-reads the destinations other servers may have saved.
pub const REFRESH: Duration = Duration::from_secs(10);
/// The shared-state key prefix of the projects' destinations.
const KEY_PREFIX: &str = "forwarding:";
/// Committed batches that may wait for a destination's encoder.
const HANDOFF: usize = 256;
/// Spans per forwarded request: a few MB at most for ordinary spans.
const SPANS_PER_REQUEST: usize = 512;
/// How long a destination being restarted or removed waits for an attempt in flight: longer than
/// a transport's own timeout (10 s), so the old delivery thread has let go of the queue before a
/// new one opens the same directory.
const RESTART_WAIT: Duration = Duration::from_secs(12);
/// How long the server's shutdown waits for an attempt in flight (what it was sending stays
/// queued, and is sent again after the next start).
const SHUTDOWN_WAIT: Duration = Duration::from_secs(2);

/// One destination at work.
struct Running {
    config: DestinationConfig,
    source: DestinationSource,
    /// The project whose destination it is (`None`: the server's file).
    owner: Option<String>,
    handoff: SyncSender<Committed>,
    counts: Arc<Counts>,
    forwarder: Arc<Forwarder>,
    encoder: std::thread::JoinHandle<()>,
}

#[derive(Default)]
struct Counts {
    spans: AtomicU64,
    overflow: AtomicU64,
}

impl Running {
    /// Whether `project`'s spans go here.
    fn takes(&self, project: &str) -> bool {
        match &self.owner {
            Some(owner) => owner == project,
            None => {
                self.config.projects.is_empty() || self.config.projects.iter().any(|p| p == project)
            }
        }
    }

    fn status(&self) -> DestinationStatus {
        let c = self.forwarder.counters();
        DestinationStatus {
            config: self.config.masked(),
            source: self.source,
            counters: DeliveryCounters {
                spans: self.counts.spans.load(Ordering::Relaxed),
                sent: c.sent,
                retried: c.retried,
                rejected: c.rejected,
                dropped: c.dropped + c.failed_writes,
                dropped_overflow: c.dropped_overflow + self.counts.overflow.load(Ordering::Relaxed),
                queued: c.queued_records,
                queued_bytes: c.queued_bytes,
                lag_seconds: c.lag.map_or(0.0, |d| d.as_secs_f64()),
                last_error: c.last_error,
                last_success: c.last_success.map(rfc3339),
            },
        }
    }

    /// Stops the encoder, then the forwarder (waiting up to `wait` for an attempt in flight);
    /// what is queued stays on disk.
    fn stop(self, wait: Duration) {
        let Running {
            handoff,
            encoder,
            forwarder,
            config,
            ..
        } = self;
        drop(handoff);
        let _ = encoder.join();
        match Arc::try_unwrap(forwarder) {
            Ok(f) => f.shutdown(wait),
            Err(_) => {
                tracing::warn!(destination = %config.name, "forwarder still referenced; left to stop with the process")
            }
        }
    }
}

fn rfc3339(t: SystemTime) -> String {
    let nanos = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    spanlens_core::Timestamp(nanos).to_rfc3339()
}

/// The destinations of one server.
pub struct Forwarding {
    dir: PathBuf,
    policy: RetryPolicy,
    file: Vec<DestinationConfig>,
    running: RwLock<Vec<Arc<RunningSlot>>>,
    /// Each project's saved destinations (secrets included), as last read or saved.
    saved: RwLock<BTreeMap<String, Vec<DestinationConfig>>>,
}

/// A running destination behind a lock that lets it be taken out and stopped.
struct RunningSlot(std::sync::Mutex<Option<Running>>);

impl RunningSlot {
    fn with<T>(&self, f: impl FnOnce(&Running) -> T) -> Option<T> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(f)
    }
}

impl std::fmt::Debug for Forwarding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarding")
            .field("dir", &self.dir)
            .field("file", &self.file.len())
            .finish_non_exhaustive()
    }
}

/// A forwarding change that could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// The settings are not usable.
    #[error(transparent)]
    Invalid(#[from] ForwardConfigError),
    /// A destination could not start (its queue directory, its client).
    #[error("destination {name:?} cannot start: {why}")]
    Start {
        /// The destination.
        name: String,
        /// Why.
        why: String,
    },
    /// The store could not read or save the settings.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Forwarding {
    /// Starts the file's destinations, their queues under `data_dir/forward/`.
    pub fn start(
        data_dir: &Path,
        file: ForwardConfig,
        policy: RetryPolicy,
    ) -> Result<Forwarding, ForwardError> {
        let f = Forwarding {
            dir: data_dir.join("forward"),
            policy,
            file: file.destination,
            running: RwLock::new(Vec::new()),
            saved: RwLock::new(BTreeMap::new()),
        };
        let mut running = Vec::new();
        for d in &f.file {
            running.push(Arc::new(RunningSlot(std::sync::Mutex::new(Some(
                f.launch(d.clone(), None)?,
            )))));
        }
        *f.running.write().unwrap_or_else(|e| e.into_inner()) = running;
        Ok(f)
    }

    fn queue_dir(&self, owner: Option<&str>, name: &str) -> PathBuf {
        match owner {
            None => self.dir.join("server").join(name),
            // Project names may hold any printable character: hex keeps them one safe path part.
            Some(p) => self.dir.join("projects").join(hex::encode(p)).join(name),
        }
    }

    fn launch(
        &self,
        config: DestinationConfig,
        owner: Option<String>,
    ) -> Result<Running, ForwardError> {
        let name = config.name.clone();
        let start = |why: String| ForwardError::Start {
            name: name.clone(),
            why,
        };
        let (flavor, receiver) = config::resolve(&config)?;
        let transport: Box<dyn Transport> = match receiver {
            Receiver::Http(t) => Box::new(
                HttpTransport::new(HttpConfig {
                    headers: t.headers,
                    gzip: config.gzip,
                    ..HttpConfig::new(t.url, "application/x-protobuf")
                })
                .map_err(|e| start(e.to_string()))?,
            ),
            Receiver::Grpc { endpoint, headers } => Box::new(
                GrpcTransport::new(GrpcConfig {
                    headers,
                    gzip: config.gzip,
                    ..GrpcConfig::new(endpoint)
                })
                .map_err(|e| start(e.to_string()))?,
            ),
        };
        let mut queue = QueueConfig::new(self.queue_dir(owner.as_deref(), &name));
        if let Some(max) = config.queue_bytes {
            queue.max_bytes = max;
            queue.segment_bytes = queue.segment_bytes.min((max / 8).max(64 * 1024));
        }
        let queue = DiskQueue::open(queue).map_err(|e| start(e.to_string()))?;
        let label = match &owner {
            Some(p) => format!("{p}/{name}"),
            None => name.clone(),
        };
        let forwarder = Arc::new(
            Forwarder::spawn(label.clone(), queue, transport, self.policy)
                .map_err(|e| start(e.to_string()))?,
        );
        let (handoff, batches) = sync_channel::<Committed>(HANDOFF);
        let counts = Arc::new(Counts::default());
        let filter = Filter::of(&config);
        let encoder = {
            let forwarder = forwarder.clone();
            let counts = counts.clone();
            std::thread::Builder::new()
                .name(format!("forward-{name}"))
                .spawn(move || {
                    let enc = Encoding {
                        flavor,
                        cost: true,
                        scope: "spanlens",
                    };
                    for batch in batches {
                        let kept: Vec<&Span> =
                            batch.spans.iter().filter(|s| filter.keeps(s)).collect();
                        counts.spans.fetch_add(kept.len() as u64, Ordering::Relaxed);
                        for chunk in kept.chunks(SPANS_PER_REQUEST) {
                            let req = encode::export_request(chunk, &enc);
                            forwarder.enqueue(req.encode_to_vec());
                        }
                    }
                })
                .map_err(|e| start(e.to_string()))?
        };
        tracing::info!(destination = %label, kind = ?config.kind, endpoint = %config.endpoint, "forwarding");
        Ok(Running {
            config,
            source: if owner.is_some() {
                DestinationSource::Project
            } else {
                DestinationSource::File
            },
            owner,
            handoff,
            counts,
            forwarder,
            encoder,
        })
    }

    /// The destinations `project`'s spans go to, with their counters.
    pub fn status(&self, project: &str) -> Vec<DestinationStatus> {
        let running = self.running.read().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<(bool, DestinationStatus)> = running
            .iter()
            .filter_map(|r| {
                r.with(|r| r.takes(project).then(|| (r.owner.is_some(), r.status())))?
            })
            .collect();
        out.sort_by(|a, b| (a.0, &a.1.config.name).cmp(&(b.0, &b.1.config.name)));
        out.into_iter().map(|(_, s)| s).collect()
    }

    /// `project`'s own destinations as saved (secrets included).
    pub fn saved(&self, project: &str) -> Vec<DestinationConfig> {
        self.saved
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(project)
            .cloned()
            .unwrap_or_default()
    }

    /// Checks, saves and applies `project`'s own destinations (secrets given as the mask keep
    /// the saved ones); an empty list removes them.
    pub async fn save(
        self: &Arc<Self>,
        store: &dyn Store,
        project: &str,
        destinations: Vec<DestinationConfig>,
    ) -> Result<(), ForwardError> {
        let mut destinations = config::unmask(destinations, &self.saved(project))?;
        for d in &mut destinations {
            // A project's destination takes that project's spans only.
            d.projects.clear();
        }
        config::check_all(&destinations)?;
        for d in &destinations {
            config::resolve(d)?;
        }
        let key = format!("{KEY_PREFIX}{project}");
        if destinations.is_empty() {
            store.delete_state(&key).await?;
        } else {
            let doc = serde_json::to_string(&destinations).map_err(|e| {
                StoreError::InvalidQuery(format!("destinations not serialisable: {e}"))
            })?;
            store.save_state(&key, &doc).await?;
        }
        let mut all = self.saved.read().unwrap_or_else(|e| e.into_inner()).clone();
        if destinations.is_empty() {
            all.remove(project);
        } else {
            all.insert(project.to_string(), destinations);
        }
        self.apply_off_runtime(all).await
    }

    /// [`Forwarding::apply`] on a blocking thread: stopping a destination joins its threads.
    async fn apply_off_runtime(
        self: &Arc<Self>,
        all: BTreeMap<String, Vec<DestinationConfig>>,
    ) -> Result<(), ForwardError> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.apply(all))
            .await
            .map_err(|e| ForwardError::Start {
                name: "*".into(),
                why: format!("applying the destinations failed: {e}"),
            })?
    }

    /// Re-reads every project's saved destinations and applies them.
    pub async fn refresh(self: &Arc<Self>, store: &dyn Store) -> Result<(), ForwardError> {
        let mut all = BTreeMap::new();
        for (key, doc) in store.list_state(KEY_PREFIX).await? {
            let project = key[KEY_PREFIX.len()..].to_string();
            match serde_json::from_str::<Vec<DestinationConfig>>(&doc) {
                Ok(list) => {
                    all.insert(project, list);
                }
                Err(e) => {
                    tracing::error!(project, error = %e, "saved forwarding destinations unreadable; not forwarding them");
                }
            }
        }
        self.apply_off_runtime(all).await
    }

    /// Makes the running project destinations match `all`: unchanged ones go on, changed
    /// ones restart (on the same queue), removed ones stop and their queues are deleted.
    fn apply(&self, all: BTreeMap<String, Vec<DestinationConfig>>) -> Result<(), ForwardError> {
        let mut running = self.running.write().unwrap_or_else(|e| e.into_inner());
        let mut keep = Vec::with_capacity(running.len());
        let mut stop = Vec::new();
        for slot in running.drain(..) {
            let verdict = slot.with(|r| match &r.owner {
                None => true,
                Some(p) => all
                    .get(p)
                    .is_some_and(|list| list.iter().any(|d| d == &r.config)),
            });
            match verdict {
                Some(true) => keep.push(slot),
                _ => stop.push(slot),
            }
        }
        let mut first_error = None;
        for (project, list) in &all {
            for d in list {
                let present = keep.iter().any(|s| {
                    s.with(|r| r.owner.as_deref() == Some(project) && &r.config == d)
                        .unwrap_or(false)
                });
                if present {
                    continue;
                }
                // A changed destination must release its queue before the new one opens it.
                if let Some(i) = stop.iter().position(|s| {
                    s.with(|r| r.owner.as_deref() == Some(project) && r.config.name == d.name)
                        .unwrap_or(false)
                }) {
                    let old = stop.remove(i);
                    let taken = old.0.lock().unwrap_or_else(|e| e.into_inner()).take();
                    if let Some(r) = taken {
                        r.stop(RESTART_WAIT);
                    }
                }
                match self.launch(d.clone(), Some(project.clone())) {
                    Ok(r) => keep.push(Arc::new(RunningSlot(std::sync::Mutex::new(Some(r))))),
                    Err(e) => {
                        tracing::error!(project, destination = %d.name, error = %e, "destination not started");
                        first_error.get_or_insert(e);
                    }
                }
            }
        }
        for slot in stop {
            let taken = slot.0.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(r) = taken {
                let dir = self.queue_dir(r.owner.as_deref(), &r.config.name);
                tracing::info!(destination = %r.config.name, "forwarding stopped; its queue is deleted");
                r.stop(RESTART_WAIT);
                if let Err(e) = std::fs::remove_dir_all(&dir) {
                    tracing::warn!(dir = %dir.display(), error = %e, "queue of a removed destination not deleted");
                }
            }
        }
        *running = keep;
        *self.saved.write().unwrap_or_else(|e| e.into_inner()) = all;
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Stops every destination; queued requests stay on disk for the next start.
    pub fn shutdown(&self) {
        let slots: Vec<_> = self
            .running
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
            .collect();
        for slot in slots {
            let taken = slot.0.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(r) = taken {
                r.stop(SHUTDOWN_WAIT);
            }
        }
    }
}

impl CommitSubscriber for Forwarding {
    fn wants(&self) -> bool {
        !self
            .running
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }

    fn committed(&self, batch: &Committed) {
        let running = self.running.read().unwrap_or_else(|e| e.into_inner());
        for slot in running.iter() {
            slot.with(|r| {
                if !r.takes(&batch.project) {
                    return;
                }
                match r.handoff.try_send(batch.clone()) {
                    Ok(()) => {}
                    Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                        r.counts.overflow.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    }
}

/// A destination's span filter: kinds and the per-trace sample.
struct Filter {
    kinds: Vec<spanlens_core::SpanKind>,
    /// Traces whose id falls under this are kept (`u64::MAX`: all).
    below: u64,
}

impl Filter {
    fn of(d: &DestinationConfig) -> Filter {
        Filter {
            kinds: d.kinds.clone(),
            below: if d.sample_rate >= 1.0 {
                u64::MAX
            } else {
                (d.sample_rate * u64::MAX as f64) as u64
            },
        }
    }

    fn keeps(&self, s: &Span) -> bool {
        if !self.kinds.is_empty() && !self.kinds.contains(&s.kind) {
            return false;
        }
        // The id's random low half decides, so every span of a trace gets the same answer.
        let low = u64::from_be_bytes(s.trace_id.0[8..16].try_into().unwrap_or([0; 8]));
        self.below == u64::MAX || low < self.below
    }
}

/// Re-reads the projects' destinations every [`REFRESH`] until `stopped`.
pub async fn keep_fresh(
    forwarding: Arc<Forwarding>,
    store: Arc<dyn Store>,
    stopped: impl std::future::Future<Output = ()>,
) {
    crate::state::every(REFRESH, stopped, || async {
        if let Err(e) = forwarding.refresh(&*store).await {
            tracing::warn!(error = %e, "forwarding destinations not re-read");
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use spanlens_core::TraceId;

    #[test]
    fn sampling_keeps_or_drops_whole_traces_at_about_the_rate() {
        let d: DestinationConfig = serde_json::from_value(serde_json::json!({
            "name": "s", "kind": "otlp", "endpoint": "http://h", "sample_rate": 0.25,
            "kinds": ["llm"]
        }))
        .unwrap();
        let f = Filter::of(&d);
        let mut kept = 0;
        for n in 0u64..10_000 {
            let mut id = [0u8; 16];
            id[8..].copy_from_slice(&n.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_be_bytes());
            let llm = Span {
                trace_id: TraceId(id),
                kind: spanlens_core::SpanKind::Llm,
                ..Default::default()
            };
            let tool = Span {
                kind: spanlens_core::SpanKind::Tool,
                ..llm.clone()
            };
            assert!(!f.keeps(&tool), "kind filter");
            let again = Span { ..llm.clone() };
            assert_eq!(f.keeps(&llm), f.keeps(&again), "same trace, same answer");
            kept += f.keeps(&llm) as u32;
        }
        assert!((2300..2700).contains(&kept), "{kept} of 10000 at 0.25");
    }
}
