//! The record of an open span, behind a one-byte lock.
//!
//! A span's record is almost only touched by the thread that owns the span, so the lock is
//! always free: a spin lock takes it with one locked instruction and gives it back with a plain
//! store, where `std::sync::Mutex` needs a locked instruction for both (each waits for every
//! store before it to reach the cache, a tenth of a span's time in a profile). The span's owner
//! ending it while it holds the only handle does not lock at all ([`RecordCell::take_unshared`]).

use crate::span::SpanData;
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, Ordering};

pub(crate) struct RecordCell {
    locked: AtomicBool,
    /// `None` once ended, or from the start when the trace is not sampled.
    record: UnsafeCell<Option<Box<SpanData>>>,
}

// SAFETY: the record is only reached under the lock, or through `take_unshared`, whose caller
// guarantees that no other thread can reach the cell.
unsafe impl Sync for RecordCell {}

/// Releases the lock when dropped, so a panic inside [`RecordCell::with`] cannot leave the
/// span locked for good.
struct Unlock<'a>(&'a AtomicBool);

impl Drop for Unlock<'_> {
    #[inline]
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl RecordCell {
    pub(crate) fn new(record: Option<Box<SpanData>>) -> RecordCell {
        RecordCell {
            locked: AtomicBool::new(false),
            record: UnsafeCell::new(record),
        }
    }

    /// Runs `f` on the record with the lock held (no user code runs under it but the
    /// attribute conversions the caller passes in).
    #[inline]
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut Option<Box<SpanData>>) -> R) -> R {
        let _unlock = self.lock();
        // SAFETY: the lock is held until `_unlock` drops, after `f` returns or unwinds.
        f(unsafe { &mut *self.record.get() })
    }

    #[inline]
    fn lock(&self) -> Unlock<'_> {
        let mut spins = 0u32;
        while self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            // Two threads touching one span at once is rare and brief; past a short spin,
            // give the holder the CPU.
            while self.locked.load(Ordering::Relaxed) {
                spins += 1;
                if spins < 64 {
                    std::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
            }
        }
        Unlock(&self.locked)
    }

    /// Takes the record without locking.
    ///
    /// # Safety
    /// No other thread may reach this cell now or later, and whatever other threads did to it
    /// must happen before this call (an acquire of their last release of it).
    #[inline]
    pub(crate) unsafe fn take_unshared(&self) -> Option<Box<SpanData>> {
        // SAFETY: the caller guarantees exclusive access.
        unsafe { (*self.record.get()).take() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn threads_taking_turns_lose_no_update() {
        let cell = Arc::new(RecordCell::new(Some(crate::pool::take("n".into()))));
        let workers: Vec<_> = (0..4)
            .map(|_| {
                let cell = cell.clone();
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        cell.with(|r| {
                            if let Some(r) = r {
                                r.start_time.0 += 1;
                            }
                        });
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().expect("worker");
        }
        let total = cell.with(|r| r.as_ref().map(|r| r.start_time.0));
        assert_eq!(total, Some(40_000));
    }

    #[test]
    fn a_panic_inside_leaves_the_cell_usable() {
        let cell = RecordCell::new(Some(crate::pool::take("n".into())));
        let hit = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            cell.with(|_| panic!("inside"));
        }));
        assert!(hit.is_err());
        assert!(cell.with(|r| r.is_some()));
    }
}
