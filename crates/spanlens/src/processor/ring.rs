//! One application thread's queue of ended spans for the batch processor: a bounded ring with
//! one producer (the thread) and one consumer (the export thread).
//!
//! A mutex here cost two locked instructions per span, and a locked instruction waits until
//! every store before it has reached the cache: with a span's record just written, that wait was
//! a tenth of a span's time in a profile. The ring needs none: the producer publishes a slot
//! with a release store of its tail and the consumer frees slots with a release store of its
//! head, both plain stores on x86.

use crate::span::SpanData;
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A counter on a cache line of its own, so that the producer's and the consumer's writes do
/// not pull the same line back and forth.
#[repr(align(64))]
struct Padded(AtomicUsize);

pub(crate) struct Ring {
    /// Each slot holds a `Box<SpanData>` as a pointer, its lowest bit (free: the box is
    /// 8-aligned) set when the record holds payloads.
    slots: Box<[UnsafeCell<usize>]>,
    mask: usize,
    /// Most records held at once.
    max: usize,
    /// Next slot the consumer reads; written by the consumer only.
    head: Padded,
    /// Next slot the producer writes; written by the producer only.
    tail: Padded,
    /// The producer's last look at `head` (read by the producer only), so that a push reads
    /// the consumer's line only when the ring looks full or a batch looks ready.
    seen_head: UnsafeCell<usize>,
}

// SAFETY: the slots and `seen_head` are only touched under the single-producer and
// single-consumer contracts of `push` and `take_all`, with ownership of each slot passed
// through the release/acquire pairs on `tail` and `head`.
unsafe impl Sync for Ring {}
// SAFETY: the ring owns the boxes its slots point to, and `SpanData` is `Send`.
unsafe impl Send for Ring {}

impl Ring {
    /// A ring holding up to `max` records (at least 1).
    pub(crate) fn new(max: usize) -> Ring {
        let max = max.max(1);
        let size = max.next_power_of_two();
        Ring {
            slots: (0..size).map(|_| UnsafeCell::new(0)).collect(),
            mask: size - 1,
            max,
            head: Padded(AtomicUsize::new(0)),
            tail: Padded(AtomicUsize::new(0)),
            seen_head: UnsafeCell::new(0),
        }
    }

    /// Records held now (a moment's view when read by another thread).
    pub(crate) fn len(&self) -> usize {
        let head = self.head.0.load(Ordering::Acquire);
        self.tail.0.load(Ordering::Acquire).wrapping_sub(head)
    }

    /// Appends a record; `Err` gives it back when the ring is full. On success, returns how
    /// many records the ring held right after when that is exactly `batch` (the moment to wake
    /// the consumer), else `None`.
    ///
    /// # Safety
    /// Only one thread may ever push to a given ring (its owner).
    #[inline]
    pub(crate) unsafe fn push(
        &self,
        span: Box<SpanData>,
        heavy: bool,
        batch: usize,
    ) -> Result<Option<usize>, Box<SpanData>> {
        let tail = self.tail.0.load(Ordering::Relaxed);
        // SAFETY: only the producer touches `seen_head` (the caller's contract).
        let seen = unsafe { &mut *self.seen_head.get() };
        let mut held = tail.wrapping_sub(*seen);
        if held >= self.max || held + 1 >= batch {
            *seen = self.head.0.load(Ordering::Acquire);
            held = tail.wrapping_sub(*seen);
            if held >= self.max {
                return Err(span);
            }
        }
        let word = Box::into_raw(span) as usize | usize::from(heavy);
        // SAFETY: `held < max <= slots`, so slot `tail` is not between head and tail: the
        // consumer does not read it until the release store below publishes it.
        unsafe { *self.slots[tail & self.mask].get() = word };
        self.tail.0.store(tail.wrapping_add(1), Ordering::Release);
        let held = held + 1;
        Ok((held == batch).then_some(held))
    }

    /// Moves every published record to `spans`, with its payload flag to `heavy`.
    ///
    /// # Safety
    /// Only one thread at a time may take from a given ring (the export thread).
    pub(crate) unsafe fn take_all(&self, spans: &mut Vec<Box<SpanData>>, heavy: &mut Vec<bool>) {
        let head = self.head.0.load(Ordering::Relaxed);
        let tail = self.tail.0.load(Ordering::Acquire);
        let mut at = head;
        while at != tail {
            // SAFETY: slots from head to tail were published by the producer's release store
            // of `tail` (acquired above) and are not written again until `head` moves past them.
            let word = unsafe { *self.slots[at & self.mask].get() };
            // SAFETY: the word is a pointer from `Box::into_raw` with the flag in its low bit;
            // it is taken once, as `head` moves past it below.
            spans.push(unsafe { Box::from_raw((word & !1) as *mut SpanData) });
            heavy.push(word & 1 == 1);
            at = at.wrapping_add(1);
        }
        self.head.0.store(tail, Ordering::Release);
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        let (mut spans, mut heavy) = (Vec::new(), Vec::new());
        // SAFETY: `&mut self`: no producer or consumer is left.
        unsafe { self.take_all(&mut spans, &mut heavy) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &'static str) -> Box<SpanData> {
        crate::pool::take(name.into())
    }

    #[test]
    fn the_ring_keeps_order_flags_and_its_bound() {
        let ring = Ring::new(3);
        // SAFETY: this test is the ring's only producer and only consumer.
        unsafe {
            assert_eq!(ring.push(record("a"), false, 2).ok(), Some(None));
            assert_eq!(ring.push(record("b"), true, 2).ok(), Some(Some(2)));
            assert_eq!(ring.push(record("c"), false, 2).ok(), Some(None));
            let refused = ring.push(record("d"), false, 2).expect_err("full at 3");
            assert_eq!(refused.name, "d");
            assert_eq!(ring.len(), 3);
            let (mut spans, mut heavy) = (Vec::new(), Vec::new());
            ring.take_all(&mut spans, &mut heavy);
            let names: Vec<_> = spans.iter().map(|s| s.name.to_string()).collect();
            assert_eq!(names, ["a", "b", "c"]);
            assert_eq!(heavy, [false, true, false]);
            assert_eq!(ring.len(), 0);
            // Room again, across the wrap of the slot array.
            for n in ["e", "f", "g"] {
                assert!(ring.push(record(n), false, 100).is_ok());
            }
            assert!(ring.push(record("h"), false, 100).is_err());
        }
        // The three still held are freed with the ring (Miri or a leak checker would see).
    }

    #[test]
    fn a_consumer_thread_sees_every_record_once() {
        let ring = std::sync::Arc::new(Ring::new(64));
        let consumer = {
            let ring = ring.clone();
            std::thread::spawn(move || {
                let (mut spans, mut heavy) = (Vec::new(), Vec::new());
                while spans.len() < 10_000 {
                    // SAFETY: this thread is the only consumer.
                    unsafe { ring.take_all(&mut spans, &mut heavy) };
                    std::thread::yield_now();
                }
                spans
                    .iter()
                    .map(|s| s.span_id.0[7] as usize + 256 * s.span_id.0[6] as usize)
                    .collect::<Vec<_>>()
            })
        };
        for i in 0..10_000usize {
            let mut r = record("x");
            r.span_id.0[6] = (i / 256) as u8;
            r.span_id.0[7] = (i % 256) as u8;
            loop {
                // SAFETY: this thread is the only producer.
                match unsafe { ring.push(r, false, 16) } {
                    Ok(_) => break,
                    Err(back) => {
                        r = back;
                        std::thread::yield_now();
                    }
                }
            }
        }
        let seen = consumer.join().expect("consumer");
        assert_eq!(seen, (0..10_000).collect::<Vec<_>>());
    }
}
