//! The two threads behind a [`Forwarder`]: a writer moving bodies from a bounded channel into
//! the disk queue, and a delivery loop sending the head record until it is delivered or
//! rejected.

use crate::queue::{DiskQueue, QueueError};
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime};

/// Bodies that may wait between `enqueue` and the disk: beyond it `enqueue` drops rather than
/// waits.
pub const DEFAULT_CHANNEL_CAPACITY: usize = 1024;

/// How often an idle delivery thread looks at the queue even without being woken.
const IDLE_POLL: Duration = Duration::from_secs(1);

/// What one delivery attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The destination has it: the record is acknowledged.
    Delivered,
    /// Try the same record again, after `after` if the destination said so (capped by
    /// [`RetryPolicy::max_retry_after`]), else after the next backoff step.
    Retry {
        /// The destination's own wait (`Retry-After`, gRPC `RetryInfo`).
        after: Option<Duration>,
        /// Why, for `last_error`.
        reason: String,
    },
    /// The destination will never take this record: it is acknowledged and counted.
    Rejected {
        /// Why, for `last_error`.
        reason: String,
    },
}

/// Sends one body to a destination. Called from the forwarder's delivery thread only, one call
/// at a time; it may block (it should time out on its own).
pub trait Transport: Send + 'static {
    /// Tries to deliver `body` once.
    fn send(&mut self, body: &[u8]) -> Outcome;
}

/// How long to wait between attempts at the same record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first backoff; it doubles with every further failure.
    pub initial: Duration,
    /// The backoff never grows past this.
    pub max: Duration,
    /// A destination's own wait is honoured up to this.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// The wait after `failures` consecutive failures (the first is 0): the doubled backoff,
    /// capped, with its upper half drawn at random so many forwarders do not retry in step.
    pub fn backoff(&self, failures: u32, random: u64) -> Duration {
        let base = self
            .initial
            .saturating_mul(1u32.checked_shl(failures.min(31)).unwrap_or(u32::MAX))
            .min(self.max);
        let half = base / 2;
        let spread = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        let extra = if spread == 0 {
            0
        } else {
            random % (spread + 1)
        };
        half + Duration::from_nanos(extra)
    }

    /// The wait a Retry outcome asks for.
    fn delay(&self, after: Option<Duration>, failures: u32, random: u64) -> Duration {
        match after {
            Some(after) if !after.is_zero() => after.min(self.max_retry_after),
            _ => self.backoff(failures, random),
        }
    }
}

/// A forwarder's counts since it was spawned, and its queue's state now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Records delivered.
    pub sent: u64,
    /// Attempts that ended in a retry.
    pub retried: u64,
    /// Records the destination refused for good (acknowledged, not sent again).
    pub rejected: u64,
    /// Undelivered records deleted because the queue reached `max_bytes`.
    pub dropped: u64,
    /// Bodies dropped by `enqueue` because the writer's channel was full.
    pub dropped_overflow: u64,
    /// Bodies lost because the queue could not store them (disk error, or a body larger than
    /// the whole queue).
    pub failed_writes: u64,
    /// Bytes cut from the queue's files as damaged or torn (see `QueueStats::corrupt_bytes`).
    pub corrupt_bytes: u64,
    /// Records waiting on disk.
    pub queued_records: u64,
    /// Their bytes on disk.
    pub queued_bytes: u64,
    /// Age of the oldest undelivered record.
    pub lag: Option<Duration>,
    /// The last retry or rejection reason (or queue error).
    pub last_error: Option<String>,
    /// When a record was last delivered.
    pub last_success: Option<SystemTime>,
}

#[derive(Default)]
struct Status {
    last_error: Option<String>,
    last_success: Option<SystemTime>,
}

#[derive(Default)]
struct Signal {
    stop: bool,
    /// Bumped by every push, so the delivery thread cannot miss one between peek and wait.
    pushes: u64,
}

#[derive(Default)]
struct Shared {
    sent: AtomicU64,
    retried: AtomicU64,
    rejected: AtomicU64,
    dropped_overflow: AtomicU64,
    failed_writes: AtomicU64,
    status: Mutex<Status>,
    signal: Mutex<Signal>,
    wake: Condvar,
}

impl Shared {
    fn status(&self) -> MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn signal(&self) -> MutexGuard<'_, Signal> {
        self.signal.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_error(&self, error: String) {
        self.status().last_error = Some(error);
    }

    fn stopped(&self) -> bool {
        self.signal().stop
    }

    /// Sleeps for `wait` unless stopped first; says whether to go on.
    fn sleep(&self, wait: Duration) -> bool {
        let end = Instant::now() + wait;
        let mut signal = self.signal();
        while !signal.stop {
            let now = Instant::now();
            if now >= end {
                return true;
            }
            signal = self
                .wake
                .wait_timeout(signal, end - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        false
    }

    /// Waits until a push after `seen`, a stop, or `IDLE_POLL`; says whether to go on.
    fn wait_for_push(&self, seen: u64) -> bool {
        let signal = self.signal();
        let signal = self
            .wake
            .wait_timeout_while(signal, IDLE_POLL, |s| !s.stop && s.pushes == seen)
            .unwrap_or_else(|e| e.into_inner())
            .0;
        !signal.stop
    }
}

/// Delivers enqueued bodies to one destination, at least once, through a disk queue.
pub struct Forwarder {
    name: String,
    sender: Option<SyncSender<Vec<u8>>>,
    queue: Arc<DiskQueue>,
    shared: Arc<Shared>,
    writer: Option<JoinHandle<()>>,
    delivery: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Forwarder {
    /// Starts the writer and delivery threads for `queue`, delivering with `transport`. What the
    /// queue already holds (from an earlier run) is delivered first.
    pub fn spawn(
        name: String,
        queue: DiskQueue,
        transport: Box<dyn Transport>,
        policy: RetryPolicy,
    ) -> Result<Forwarder, QueueError> {
        Forwarder::spawn_with_capacity(name, queue, transport, policy, DEFAULT_CHANNEL_CAPACITY)
    }

    /// [`Forwarder::spawn`] with `capacity` bodies allowed between `enqueue` and the disk.
    pub fn spawn_with_capacity(
        name: String,
        queue: DiskQueue,
        transport: Box<dyn Transport>,
        policy: RetryPolicy,
        capacity: usize,
    ) -> Result<Forwarder, QueueError> {
        let queue = Arc::new(queue);
        let shared = Arc::new(Shared::default());
        let (sender, receiver) = mpsc::sync_channel(capacity.max(1));
        let spawn_err = |source| QueueError::Io {
            context: format!("starting a thread of forwarder {name}"),
            source,
        };
        let writer = {
            let (queue, shared, name) = (queue.clone(), shared.clone(), name.clone());
            thread::Builder::new()
                .name(format!("fwd-write-{name}"))
                .spawn(move || write_loop(&name, &queue, &shared, receiver))
                .map_err(spawn_err)?
        };
        let delivery = {
            let (queue, shared, name) = (queue.clone(), shared.clone(), name.clone());
            let spawned = thread::Builder::new()
                .name(format!("fwd-send-{name}"))
                .spawn(move || deliver_loop(&name, &queue, &shared, transport, policy));
            match spawned {
                Ok(handle) => handle,
                Err(e) => {
                    drop(sender);
                    let _ = writer.join();
                    return Err(spawn_err(e));
                }
            }
        };
        Ok(Forwarder {
            name,
            sender: Some(sender),
            queue,
            shared,
            writer: Some(writer),
            delivery: Some(delivery),
        })
    }

    /// Hands `body` to the writer thread. Never blocks: when the channel is full the body is
    /// dropped and counted in `dropped_overflow`, since this runs on the ingest path.
    pub fn enqueue(&self, body: Vec<u8>) {
        let Some(sender) = &self.sender else { return };
        match sender.try_send(body) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.shared.dropped_overflow.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Counts so far and the queue's state now.
    pub fn counters(&self) -> Counters {
        let stats = self.queue.stats();
        let status = self.shared.status();
        Counters {
            sent: self.shared.sent.load(Ordering::Relaxed),
            retried: self.shared.retried.load(Ordering::Relaxed),
            rejected: self.shared.rejected.load(Ordering::Relaxed),
            dropped: stats.dropped_records,
            dropped_overflow: self.shared.dropped_overflow.load(Ordering::Relaxed),
            failed_writes: self.shared.failed_writes.load(Ordering::Relaxed),
            corrupt_bytes: stats.corrupt_bytes,
            queued_records: stats.records,
            queued_bytes: stats.bytes,
            lag: stats
                .oldest_enqueued_at
                .map(|t| SystemTime::now().duration_since(t).unwrap_or_default()),
            last_error: status.last_error.clone(),
            last_success: status.last_success,
        }
    }

    /// Stops both threads, waiting at most `deadline`. Bodies already handed over are written
    /// to disk first; whatever is undelivered stays there for the next start. A send still in
    /// progress at the deadline is left to finish (and acknowledge) on its own thread.
    pub fn shutdown(mut self, deadline: Duration) {
        let end = Instant::now() + deadline;
        self.stop();
        for handle in [self.writer.take(), self.delivery.take()]
            .into_iter()
            .flatten()
        {
            while !handle.is_finished() && Instant::now() < end {
                thread::sleep(Duration::from_millis(2));
            }
            if handle.is_finished() {
                let _ = handle.join();
            } else {
                tracing::warn!(
                    forwarder = %self.name,
                    thread = handle.thread().name().unwrap_or("?"),
                    "forwarder thread still busy at the shutdown deadline; left to finish"
                );
            }
        }
    }

    fn stop(&mut self) {
        // Closing the channel lets the writer drain it and end.
        self.sender = None;
        self.shared.signal().stop = true;
        self.shared.wake.notify_all();
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.stop();
    }
}

fn write_loop(name: &str, queue: &DiskQueue, shared: &Shared, receiver: Receiver<Vec<u8>>) {
    while let Ok(body) = receiver.recv() {
        match queue.push(&body) {
            Ok(()) => {
                shared.signal().pushes += 1;
                shared.wake.notify_all();
            }
            Err(e) => {
                shared.failed_writes.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(forwarder = %name, error = %e, "a body could not be queued");
                shared.set_error(format!("queue: {e}"));
            }
        }
    }
}

fn deliver_loop(
    name: &str,
    queue: &DiskQueue,
    shared: &Shared,
    mut transport: Box<dyn Transport>,
    policy: RetryPolicy,
) {
    let mut random = Jitter::new();
    let mut failures = 0u32;
    while !shared.stopped() {
        let seen = shared.signal().pushes;
        let record = match queue.peek() {
            Ok(Some(record)) => record,
            Ok(None) => {
                if !shared.wait_for_push(seen) {
                    break;
                }
                continue;
            }
            Err(e) => {
                tracing::warn!(forwarder = %name, error = %e, "reading the queue failed");
                shared.set_error(format!("queue: {e}"));
                let wait = policy.backoff(failures, random.next());
                failures = failures.saturating_add(1);
                if !shared.sleep(wait) {
                    break;
                }
                continue;
            }
        };
        // A panicking transport must not end delivery for good: its attempt counts as a retry.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            transport.send(&record.body)
        }))
        .unwrap_or_else(|_| Outcome::Retry {
            after: None,
            reason: "the transport panicked".into(),
        });
        match outcome {
            Outcome::Delivered => {
                failures = 0;
                shared.sent.fetch_add(1, Ordering::Relaxed);
                shared.status().last_success = Some(SystemTime::now());
                acknowledge(name, queue, shared);
            }
            Outcome::Rejected { reason } => {
                failures = 0;
                shared.rejected.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(forwarder = %name, %reason, "record rejected by the destination");
                shared.set_error(reason);
                acknowledge(name, queue, shared);
            }
            Outcome::Retry { after, reason } => {
                shared.retried.fetch_add(1, Ordering::Relaxed);
                let wait = policy.delay(after, failures, random.next());
                failures = failures.saturating_add(1);
                tracing::debug!(forwarder = %name, %reason, ?wait, "delivery will be retried");
                shared.set_error(reason);
                if !shared.sleep(wait) {
                    break;
                }
            }
        }
    }
}

fn acknowledge(name: &str, queue: &DiskQueue, shared: &Shared) {
    if let Err(e) = queue.ack() {
        // The record stays the head and is sent again: a duplicate, never a loss.
        tracing::warn!(forwarder = %name, error = %e, "acknowledging a record failed");
        shared.set_error(format!("queue: {e}"));
        shared.sleep(Duration::from_millis(100));
    }
}

/// A small xorshift generator: jitter needs spread, not quality, and no dependency.
struct Jitter(u64);

impl Jitter {
    fn new() -> Jitter {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u128(
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos(),
        );
        Jitter(hasher.finish() | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap_with_jitter_in_the_upper_half() {
        let policy = RetryPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(1000),
            max_retry_after: Duration::from_secs(5),
        };
        let mut random = Jitter::new();
        for (failures, base) in [
            (0, 100),
            (1, 200),
            (2, 400),
            (3, 800),
            (4, 1000),
            (40, 1000),
        ] {
            let base = Duration::from_millis(base);
            for _ in 0..100 {
                let wait = policy.backoff(failures, random.next());
                assert!(wait >= base / 2 && wait <= base, "{failures}: {wait:?}");
            }
        }
        assert_eq!(policy.backoff(0, 0), Duration::from_millis(50));
    }

    #[test]
    fn a_destination_wait_is_honoured_up_to_the_cap() {
        let policy = RetryPolicy::default();
        assert_eq!(
            policy.delay(Some(Duration::from_secs(7)), 0, 0),
            Duration::from_secs(7)
        );
        assert_eq!(
            policy.delay(Some(Duration::from_secs(3600)), 0, 0),
            Duration::from_secs(300)
        );
        assert_eq!(
            policy.delay(Some(Duration::ZERO), 0, 0),
            policy.backoff(0, 0)
        );
    }
}
