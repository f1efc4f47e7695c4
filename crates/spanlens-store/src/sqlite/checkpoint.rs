//! The checkpointer thread: copies committed WAL frames into the database file on its own
//! connection, so the writer thread spends its time committing spans instead.
//!
//! SQLite can checkpoint while another connection writes, but it only restarts the WAL from the
//! beginning when a checkpoint has caught up completely. Under sustained load the background
//! checkpoint never quite does, so the writer runs a (by then small) checkpoint itself whenever
//! the WAL has grown past a limit; that bounds the WAL file.

use rusqlite::Connection;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

#[derive(Default)]
struct Signal {
    pending: bool,
    stop: bool,
}

/// Shared between the writer (which pokes it after commits) and the checkpointer thread.
#[derive(Default)]
pub struct CheckpointShared {
    signal: Mutex<Signal>,
    cond: Condvar,
    /// Frames in the WAL at the last checkpoint.
    wal_frames: AtomicI64,
}

impl CheckpointShared {
    fn lock(&self) -> MutexGuard<'_, Signal> {
        self.signal.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tells the checkpointer there are new frames to copy.
    pub fn poke(&self) {
        self.lock().pending = true;
        self.cond.notify_one();
    }

    /// Asks the checkpointer to run a last checkpoint and exit.
    pub fn stop(&self) {
        self.lock().stop = true;
        self.cond.notify_one();
    }

    /// WAL frames seen by the last checkpoint (an estimate of the WAL size).
    pub fn wal_frames(&self) -> i64 {
        self.wal_frames.load(Ordering::Relaxed)
    }

    /// Records the WAL size seen by a checkpoint.
    pub fn set_wal_frames(&self, frames: i64) {
        self.wal_frames.store(frames, Ordering::Relaxed);
    }
}

/// Runs a passive checkpoint; returns the WAL size in frames (`None` when SQLite was busy).
pub fn passive_checkpoint(conn: &Connection) -> Option<i64> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
    })
    .ok()
    .and_then(|(busy, log)| (busy == 0).then_some(log))
}

/// The checkpointer loop: one passive checkpoint per wake-up, at most every `min_interval`.
pub fn run(conn: Connection, shared: Arc<CheckpointShared>, min_interval: Duration) {
    loop {
        {
            let mut sig = shared.lock();
            while !sig.pending && !sig.stop {
                sig = match shared.cond.wait_timeout(sig, Duration::from_secs(1)) {
                    Ok((g, _)) => g,
                    Err(e) => e.into_inner().0,
                };
                // Also checkpoint after a quiet second, so an idle store leaves a small WAL.
                if !sig.pending && !sig.stop {
                    sig.pending = true;
                }
            }
            if sig.stop {
                break;
            }
            sig.pending = false;
        }
        if let Some(frames) = passive_checkpoint(&conn) {
            shared.set_wal_frames(frames);
        }
        std::thread::sleep(min_interval);
    }
    let _ = passive_checkpoint(&conn);
}
