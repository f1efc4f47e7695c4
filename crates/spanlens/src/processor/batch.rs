//! The batch processor: a bounded queue in front of a dedicated export thread.
//!
//! `on_end` never blocks: when the queue is full the span is dropped and counted, and the count
//! is reported at shutdown. Export failures are logged and counted, never raised.

use super::{ProcessorError, SpanProcessor};
use crate::export::SpanExporter;
use crate::span::SpanData;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Longest `force_flush` / `shutdown` wait for the export thread.
const FLUSH_WAIT: Duration = Duration::from_secs(30);

/// Queue and batching limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchConfig {
    /// Spans held at most before new ones are dropped.
    pub max_queue: usize,
    /// Spans per export call.
    pub batch_size: usize,
    /// Longest a span waits before its batch is exported.
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
}

enum Msg {
    Span(SpanData),
    Flush(SyncSender<()>),
    Shutdown(SyncSender<()>),
}

#[derive(Default)]
struct Counters {
    exported: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
}

/// Batches spans on a dedicated thread and hands them to a [`SpanExporter`].
pub struct BatchProcessor {
    tx: SyncSender<Msg>,
    counters: Arc<Counters>,
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
        let (tx, rx) = mpsc::sync_channel(config.max_queue);
        let counters = Arc::new(Counters::default());
        let c = counters.clone();
        let worker = std::thread::Builder::new()
            .name("spanlens-batch".into())
            .spawn(move || run(Box::new(exporter), rx, config, &c))
            .ok();
        if worker.is_none() {
            eprintln!("spanlens: could not start the batch export thread; spans will be dropped");
        }
        BatchProcessor {
            tx,
            counters,
            worker: Mutex::new(worker),
            shut: AtomicBool::new(false),
        }
    }

    /// Current counters.
    pub fn stats(&self) -> BatchStats {
        BatchStats {
            exported: self.counters.exported.load(Ordering::Relaxed),
            dropped: self.counters.dropped.load(Ordering::Relaxed),
            failed: self.counters.failed.load(Ordering::Relaxed),
        }
    }

    /// Sends a control message and waits for the worker to acknowledge it.
    fn control(&self, make: fn(SyncSender<()>) -> Msg, wait: Duration) -> Result<(), ProcessorError> {
        let (done_tx, done_rx) = mpsc::sync_channel(1);
        // Control messages may wait for queue space: flushing is an explicit, rare request.
        self.tx.send(make(done_tx)).map_err(|_| ProcessorError::ShutDown)?;
        done_rx
            .recv_timeout(wait)
            .map_err(|_| ProcessorError::Failed(format!("export thread did not answer within {wait:?}")))
    }
}

impl SpanProcessor for BatchProcessor {
    fn on_end(&self, span: SpanData) {
        if self.shut.load(Ordering::Relaxed) {
            return;
        }
        match self.tx.try_send(Msg::Span(span)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn force_flush(&self) -> Result<(), ProcessorError> {
        if self.shut.load(Ordering::Relaxed) {
            return Err(ProcessorError::ShutDown);
        }
        self.control(Msg::Flush, FLUSH_WAIT)
    }

    fn shutdown(&self) -> Result<(), ProcessorError> {
        if self.shut.swap(true, Ordering::SeqCst) {
            return Err(ProcessorError::ShutDown);
        }
        let flushed = self.control(Msg::Shutdown, FLUSH_WAIT);
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

fn run(mut exporter: Box<dyn SpanExporter>, rx: Receiver<Msg>, config: BatchConfig, c: &Counters) {
    let mut batch: Vec<SpanData> = Vec::with_capacity(config.batch_size);
    let mut deadline = Instant::now() + config.flush_interval;
    let export = |batch: &mut Vec<SpanData>, exporter: &mut Box<dyn SpanExporter>| {
        if batch.is_empty() {
            return;
        }
        let n = batch.len() as u64;
        match exporter.export(batch) {
            Ok(()) => c.exported.fetch_add(n, Ordering::Relaxed),
            Err(e) => {
                eprintln!("spanlens: {e} ({n} span(s) lost)");
                c.failed.fetch_add(n, Ordering::Relaxed)
            }
        };
        batch.clear();
    };
    loop {
        let wait = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(wait) {
            Ok(Msg::Span(s)) => {
                batch.push(s);
                if batch.len() >= config.batch_size {
                    export(&mut batch, &mut exporter);
                    deadline = Instant::now() + config.flush_interval;
                }
            }
            Ok(Msg::Shutdown(done)) => {
                export(&mut batch, &mut exporter);
                exporter.shutdown();
                let _ = done.send(());
                return;
            }
            Ok(Msg::Flush(done)) => {
                export(&mut batch, &mut exporter);
                deadline = Instant::now() + config.flush_interval;
                let _ = done.send(());
            }
            Err(RecvTimeoutError::Timeout) => {
                export(&mut batch, &mut exporter);
                deadline = Instant::now() + config.flush_interval;
            }
            Err(RecvTimeoutError::Disconnected) => {
                export(&mut batch, &mut exporter);
                exporter.shutdown();
                return;
            }
        }
    }
}
