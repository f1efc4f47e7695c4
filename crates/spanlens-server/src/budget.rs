//! One budget for the request bytes the server holds at once, over every request and both
//! transports: the compressed body as received, what it decompresses to, and (approximately)
//! the spans made from it, until the request is answered.
//!
//! Why: each request was capped (64 MiB after gzip), but not their sum. Twenty-four senders of
//! 5–20 MB requests took the server to 2.45 GB, and a 61 KB gzip bomb expanded to 60 MiB per
//! request; four in parallel reached 4.4 GB. With one budget, memory stays bounded whatever the
//! compression ratio or the number of senders: past it, a request gets 503 with `Retry-After`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Bytes held by requests in flight, against a limit.
#[derive(Debug)]
pub struct ByteBudget {
    used: AtomicUsize,
    limit: usize,
}

/// The budget would be exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverBudget {
    /// Bytes already held when the request asked.
    pub used: usize,
    /// The limit.
    pub limit: usize,
}

impl std::fmt::Display for OverBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "server is busy: {} MiB of requests in flight (limit {} MiB); retry later",
            self.used >> 20,
            self.limit >> 20
        )
    }
}

impl ByteBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Arc<ByteBudget> {
        Arc::new(ByteBudget {
            used: AtomicUsize::new(0),
            limit,
        })
    }

    /// Bytes held now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// An empty reservation that can grow.
    pub fn reservation(self: &Arc<Self>) -> Reservation {
        Reservation {
            budget: self.clone(),
            bytes: 0,
        }
    }

    fn take(&self, n: usize) -> Result<(), OverBudget> {
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            let next = used.saturating_add(n);
            // One request alone may always proceed (it is capped on its own), so a budget
            // smaller than one request cannot lock ingest out.
            if next > self.limit && used > 0 {
                return Err(OverBudget {
                    used,
                    limit: self.limit,
                });
            }
            match self
                .used
                .compare_exchange_weak(used, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return Ok(()),
                Err(now) => used = now,
            }
        }
    }

    fn give_back(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::AcqRel);
    }
}

/// Bytes one request holds; given back when dropped.
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<ByteBudget>,
    bytes: usize,
}

impl Reservation {
    /// Holds `n` more bytes, or refuses when the budget would be exceeded.
    pub fn grow(&mut self, n: usize) -> Result<(), OverBudget> {
        self.budget.take(n)?;
        self.bytes += n;
        Ok(())
    }

    /// Gives back `n` of the bytes held (a buffer that was freed).
    pub fn shrink(&mut self, n: usize) {
        let n = n.min(self.bytes);
        self.budget.give_back(n);
        self.bytes -= n;
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.give_back(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_share_one_limit_and_give_back_on_drop() {
        let b = ByteBudget::new(100);
        let mut a = b.reservation();
        a.grow(60).unwrap();
        let mut c = b.reservation();
        assert_eq!(
            c.grow(50),
            Err(OverBudget {
                used: 60,
                limit: 100
            })
        );
        c.grow(40).unwrap();
        assert_eq!(b.used(), 100);
        a.shrink(10);
        assert_eq!((a.bytes(), b.used()), (50, 90));
        drop(a);
        drop(c);
        assert_eq!(b.used(), 0);
    }

    #[test]
    fn one_request_alone_may_exceed_the_budget() {
        let b = ByteBudget::new(10);
        let mut a = b.reservation();
        a.grow(50).unwrap();
        assert!(b.reservation().grow(1).is_err());
        drop(a);
        assert_eq!(b.used(), 0);
    }

    #[test]
    fn concurrent_reservations_never_overshoot() {
        let b = ByteBudget::new(1_000);
        let mut first = b.reservation();
        first.grow(1).unwrap();
        let held = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..1_000 {
                        let mut r = b.reservation();
                        if r.grow(7).is_ok() {
                            assert!(b.used() <= 1_000);
                            held.lock().unwrap().push(r);
                        }
                    }
                });
            }
        });
        assert!(b.used() <= 1_000);
        drop(held);
        drop(first);
        assert_eq!(b.used(), 0);
    }
}
