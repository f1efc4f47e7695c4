//! The batch processor: per-thread buffers drained by a dedicated export thread.
//!
//! `on_end` only pushes into the calling thread's own ring (one producer, one consumer, no lock),
//! so spans from many threads never queue on one channel and the export thread is woken once per
//! batch, not once per span. Records go back to the thread that made them for reuse, untouched
//! by the export thread unless they hold payloads (see `pool`). What a thread holds is bounded:
//! past `max_queue` a span is dropped and counted. Export failures are logged and counted, never
//! raised. Drops are never silent: the
//! counters ([`BatchStats`]) can be read at any time (`spanlens::stats()`), go to the exporter
//! with every batch (the OTLP one sends them as resource attributes, so the server shows what a
//! service lost), are sent on their own within a flush interval when a loss has no batch to
//! ride on, and are printed at shutdown.

use super::ring::{Pushed, Ring};
use super::{ProcessorError, SpanProcessor};
use crate::export::SpanExporter;
use crate::span::SpanData;
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Longest `force_flush` / `shutdown` wait for the export thread.
const FLUSH_WAIT: Duration = Duration::from_secs(30);

/// Queue and batching limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchConfig {
    /// Spans each application thread may hold at most before its new ones are dropped
    /// (a per-thread bound keeps threads from contending on one shared counter). Each thread
    /// that ends spans gets a ring of this many slots rounded up to a power of two, 8 bytes a
    /// slot: 64 KiB at the default.
    pub max_queue: usize,
    /// Spans per export call; a thread holding this many wakes the export thread.
    pub batch_size: usize,
    /// Longest a span waits before it is exported.
    pub flush_interval: Duration,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_queue: 8192,
            batch_size: 512,
            flush_interval: Duration::from_millis(1000),
        }
    }
}

/// Counters of a batch processor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchStats {
    /// Spans handed to the exporter successfully.
    pub exported: u64,
    /// Spans dropped because the queue was full.
    pub dropped: u64,
    /// Spans lost because the exporter failed.
    pub failed: u64,
    /// Spans held for export right now: in threads' buffers or in the batch being exported.
    pub queued: u64,
}

impl BatchStats {
    /// Spans lost so far, dropped or failed.
    pub fn lost(&self) -> u64 {
        self.dropped.saturating_add(self.failed)
    }
}

enum Ctl {
    Wake,
    Flush(SyncSender<()>),
    Shutdown(SyncSender<()>),
}

/// One thread's queue, and that thread's pool to hand exported records back to.
struct Shard {
    ring: Ring,
    pool: Option<Arc<crate::pool::Pool>>,
}

#[derive(Default)]
struct Shared {
    shards: Mutex<Vec<Arc<Shard>>>,
    exported: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
    /// Spans drained from the shards and not yet handed to the exporter.
    in_flight: AtomicU64,
}

impl Shared {
    /// The counters now; the queue depth is read from each thread's ring under the list's lock,
    /// which `drain` also holds while it moves records from the rings to in flight.
    fn stats(&self) -> BatchStats {
        let held: usize = self
            .shards
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|s| s.ring.len())
            .sum();
        BatchStats {
            exported: self.exported.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            queued: held as u64 + self.in_flight.load(Ordering::Relaxed),
        }
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// This thread's shard of each batch processor it has fed, by processor id.
    static SHARDS: RefCell<Vec<(u64, Arc<Shard>)>> = const { RefCell::new(Vec::new()) };
}

/// Batches spans on a dedicated thread and hands them to a [`SpanExporter`].
pub struct BatchProcessor {
    id: u64,
    config: BatchConfig,
    shared: Arc<Shared>,
    ctl: SyncSender<Ctl>,
    worker: Mutex<Option<JoinHandle<()>>>,
    shut: AtomicBool,
}

impl BatchProcessor {
    /// Starts the export thread.
    pub fn new(exporter: impl SpanExporter + 'static, config: BatchConfig) -> BatchProcessor {
        let config = BatchConfig {
            max_queue: config.max_queue.max(1),
            batch_size: config.batch_size.max(1),
            flush_interval: config.flush_interval.max(Duration::from_millis(1)),
        };
        let (ctl, rx) = mpsc::sync_channel(64);
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        let worker = std::thread::Builder::new()
            .name("spanlens-batch".into())
            .spawn(move || run(Box::new(exporter), rx, config, &s))
            .ok();
        if worker.is_none() {
            eprintln!("spanlens: could not start the batch export thread; spans will be dropped");
        }
        BatchProcessor {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            config,
            shared,
            ctl,
            worker: Mutex::new(worker),
            shut: AtomicBool::new(false),
        }
    }

    /// Current counters.
    pub fn stats(&self) -> BatchStats {
        self.shared.stats()
    }

    /// Runs `f` on this thread's shard, registered with the processor on first use; `None`
    /// during the thread's teardown, when its shards are gone.
    #[inline]
    fn with_shard<R>(&self, f: impl FnOnce(&Shard) -> R) -> Option<R> {
        SHARDS
            .try_with(|cell| {
                if let Some((_, s)) = cell.borrow().iter().find(|(id, _)| *id == self.id) {
                    return f(s);
                }
                let shard = self.register();
                let r = f(&shard);
                cell.borrow_mut().push((self.id, shard));
                r
            })
            .ok()
    }

    /// A new shard for the calling thread, known to the export thread (kept out of line: it
    /// runs once per thread, and inlined it would make every push set up its large frame).
    #[cold]
    #[inline(never)]
    fn register(&self) -> Arc<Shard> {
        let shard = Arc::new(Shard {
            ring: Ring::new(self.config.max_queue),
            pool: crate::pool::thread_pool(),
        });
        self.shared
            .shards
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(shard.clone());
        shard
    }

    /// Sends a control message and waits for the worker to acknowledge it.
    fn control(&self, make: fn(SyncSender<()>) -> Ctl) -> Result<(), ProcessorError> {
        let (done_tx, done_rx) = mpsc::sync_channel(1);
        self.ctl
            .send(make(done_tx))
            .map_err(|_| ProcessorError::ShutDown)?;
        done_rx.recv_timeout(FLUSH_WAIT).map_err(|_| {
            ProcessorError::Failed(format!(
                "export thread did not answer within {FLUSH_WAIT:?}"
            ))
        })
    }
}

impl SpanProcessor for BatchProcessor {
    fn batch_stats(&self) -> Option<BatchStats> {
        Some(self.stats())
    }

    fn on_end(&self, span: Box<SpanData>) {
        if self.shut.load(Ordering::Relaxed) {
            return;
        }
        let batch = self.config.batch_size;
        // Decided here, while the record's lines are in this core's cache.
        let heavy = crate::pool::owns_heap(&span);
        // SAFETY: a shard is pushed to only here, by the thread whose `SHARDS` holds it.
        let wake = match self.with_shard(|s| unsafe { s.ring.push(span, batch, heavy) }) {
            Some(Pushed::Queued { wake }) => wake,
            Some(Pushed::Full { span, wake }) => {
                drop(span);
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                wake
            }
            None => {
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        };
        if wake {
            // A full channel means the worker is already awake; never wait here.
            let _ = self.ctl.try_send(Ctl::Wake);
        }
    }

    fn force_flush(&self) -> Result<(), ProcessorError> {
        if self.shut.load(Ordering::Relaxed) {
            return Err(ProcessorError::ShutDown);
        }
        self.control(Ctl::Flush)
    }

    fn shutdown(&self) -> Result<(), ProcessorError> {
        if self.shut.swap(true, Ordering::SeqCst) {
            return Err(ProcessorError::ShutDown);
        }
        let flushed = self.control(Ctl::Shutdown);
        if let Some(h) = self.worker.lock().unwrap_or_else(|e| e.into_inner()).take() {
            if flushed.is_ok() {
                let _ = h.join();
            }
        }
        let s = self.stats();
        if s.dropped > 0 || s.failed > 0 {
            eprintln!(
                "spanlens: {} span(s) exported, {} dropped (queue full), {} lost to export errors",
                s.exported, s.dropped, s.failed
            );
        }
        flushed
    }
}

/// Drained records, and which shard each consecutive run of them came from (with the run's
/// payload flags).
type Drained = (Vec<Box<SpanData>>, Vec<(Arc<Shard>, Vec<bool>)>);

/// Takes everything the shards hold (and forgets shards of threads that have exited),
/// remembering which shard each run of records came from.
fn drain(shared: &Shared) -> Drained {
    let mut shards = shared.shards.lock().unwrap_or_else(|e| e.into_inner());
    let mut out = Vec::new();
    let mut origin = Vec::new();
    for s in shards.iter() {
        let mut heavy = Vec::new();
        // SAFETY: only the export thread drains.
        unsafe { s.ring.take_all(&mut out, &mut heavy) };
        if !heavy.is_empty() {
            origin.push((s.clone(), heavy));
        }
    }
    shards.retain(|s| Arc::strong_count(s) > 1 || s.ring.len() > 0);
    // Counted as in flight before the shards are let go: `stats` takes their lock, so it sees
    // these records either still in a ring or here, never in neither.
    shared.in_flight.store(out.len() as u64, Ordering::Relaxed);
    (out, origin)
}

fn run(
    mut exporter: Box<dyn SpanExporter>,
    rx: Receiver<Ctl>,
    config: BatchConfig,
    shared: &Shared,
) {
    // The losses the exporter last carried: a later loss with no batch to ride on is sent alone.
    let mut carried = 0;
    let mut export_all = |exporter: &mut Box<dyn SpanExporter>| {
        let (spans, origin) = drain(shared);
        if spans.is_empty() {
            let stats = shared.stats();
            if stats.lost() != carried {
                match exporter.send_stats(&stats) {
                    Ok(()) => carried = stats.lost(),
                    Err(e) => eprintln!("spanlens: sending the export counters: {e}"),
                }
            }
        }
        for chunk in spans.chunks(config.batch_size) {
            let n = chunk.len() as u64;
            let stats = shared.stats();
            exporter.note_stats(&stats);
            carried = stats.lost();
            let sent = exporter.export(chunk);
            // Counted as done before they leave the in-flight count, so a reader may count a
            // batch twice for a moment but never misses one.
            match sent {
                Ok(()) => shared.exported.fetch_add(n, Ordering::Relaxed),
                Err(e) => {
                    eprintln!("spanlens: {e} ({n} span(s) lost)");
                    shared.failed.fetch_add(n, Ordering::Relaxed)
                }
            };
            shared.in_flight.fetch_sub(n, Ordering::Relaxed);
        }
        let mut rest = spans.into_iter();
        for (shard, heavy) in origin {
            let run = rest.by_ref().take(heavy.len());
            match &shard.pool {
                Some(p) => p.give_back(run.zip(heavy)),
                None => run.for_each(drop),
            }
        }
    };
    loop {
        match rx.recv_timeout(config.flush_interval) {
            Ok(Ctl::Wake) | Err(RecvTimeoutError::Timeout) => export_all(&mut exporter),
            Ok(Ctl::Flush(done)) => {
                export_all(&mut exporter);
                let _ = done.send(());
            }
            Ok(Ctl::Shutdown(done)) => {
                export_all(&mut exporter);
                exporter.shutdown();
                let _ = done.send(());
                return;
            }
            Err(RecvTimeoutError::Disconnected) => {
                export_all(&mut exporter);
                exporter.shutdown();
                return;
            }
        }
    }
}
