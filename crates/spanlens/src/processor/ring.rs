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
    /// Whether the producer's last push was refused (read by the producer only).
    refusing: UnsafeCell<bool>,
}

/// What [`Ring::push`] did.
pub(crate) enum Pushed {
    /// Queued; `wake` when the consumer should be woken now.
    Queued { wake: bool },
    /// Refused, the ring being full: the record is given back.
    Full { span: Box<SpanData>, wake: bool },
}

// SAFETY: the slots, `seen_head` and `refusing` are only touched under the single-producer and
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
            refusing: UnsafeCell::new(false),
        }
    }

    /// Records held now (a moment's view when read by another thread).
    pub(crate) fn len(&self) -> usize {
        let head = self.head.0.load(Ordering::Acquire);
        self.tail.0.load(Ordering::Acquire).wrapping_sub(head)
    }

    /// Appends a record, or gives it back when the ring is full.
    ///
    /// Says when to wake the consumer: when the ring reaches a batch, again at each further
    /// batch while the consumer has not drained it (a wake-up can be consumed by a drain that
    /// ran just before the batch filled, and a woken export thread may wait its turn on a busy
    /// core), and at the first refusal after a success.
    ///
    /// # Safety
    /// Only one thread may ever push to a given ring (its owner).
    #[inline]
    pub(crate) unsafe fn push(&self, span: Box<SpanData>, batch: usize, heavy: bool) -> Pushed {
        let tail = self.tail.0.load(Ordering::Relaxed);
        // SAFETY: only the producer touches `seen_head` and `refusing` (the caller's contract).
        let (seen, refusing) = unsafe { (&mut *self.seen_head.get(), &mut *self.refusing.get()) };
        let mut held = tail.wrapping_sub(*seen);
        if held >= self.max || held + 1 >= batch {
            *seen = self.head.0.load(Ordering::Acquire);
            held = tail.wrapping_sub(*seen);
            if held >= self.max {
                let wake = !*refusing;
                *refusing = true;
                return Pushed::Full { span, wake };
            }
        }
        *refusing = false;
        let word = Box::into_raw(span) as usize | usize::from(heavy);
        // SAFETY: `held < max <= slots`, so slot `tail` is not between head and tail: the
        // consumer does not read it until the release store below publishes it.
        unsafe { *self.slots[tail & self.mask].get() = word };
        self.tail.0.store(tail.wrapping_add(1), Ordering::Release);
        let held = held + 1;
        // The division only runs while the consumer is behind.
        let wake = held == batch || (held > batch && held % batch == 0);
        Pushed::Queued { wake }
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

    fn wake(p: Pushed) -> Option<bool> {
        match p {
            Pushed::Queued { wake } => Some(wake),
            Pushed::Full { .. } => None,
        }
    }

    #[test]
    fn the_ring_keeps_order_flags_and_its_bound() {
        let ring = Ring::new(3);
        // SAFETY: this test is the ring's only producer and only consumer.
        unsafe {
            assert_eq!(wake(ring.push(record("a"), 2, false)), Some(false));
            assert_eq!(wake(ring.push(record("b"), 2, true)), Some(true));
            assert_eq!(wake(ring.push(record("c"), 2, false)), Some(false));
            let Pushed::Full { span, wake: first } = ring.push(record("d"), 2, false) else {
                panic!("full at 3")
            };
            assert_eq!(span.name, "d");
            assert!(first, "the first refusal wakes the consumer");
            let Pushed::Full { wake: again, .. } = ring.push(record("e"), 2, false) else {
                panic!("still full")
            };
            assert!(!again, "later refusals do not");
            assert_eq!(ring.len(), 3);
            let (mut spans, mut heavy) = (Vec::new(), Vec::new());
            ring.take_all(&mut spans, &mut heavy);
            let names: Vec<_> = spans.iter().map(|s| s.name.to_string()).collect();
            assert_eq!(names, ["a", "b", "c"]);
            assert_eq!(heavy, [false, true, false]);
            assert_eq!(ring.len(), 0);
            // Room again, across the wrap of the slot array.
            for n in ["f", "g", "h"] {
                assert!(wake(ring.push(record(n), 100, false)).is_some());
            }
            assert!(wake(ring.push(record("i"), 100, false)).is_none());
        }
        // The three still held are freed with the ring.
    }

    #[test]
    fn a_consumer_behind_is_woken_at_every_batch() {
        let ring = Ring::new(16);
        // SAFETY: this test is the ring's only producer.
        let wakes: Vec<usize> = (1..=12)
            .filter(|_| unsafe { wake(ring.push(record("x"), 4, false)) } == Some(true))
            .collect();
        assert_eq!(wakes.len(), 3, "at 4, 8 and 12 held");
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
                match unsafe { ring.push(r, 16, false) } {
                    Pushed::Queued { .. } => break,
                    Pushed::Full { span, .. } => {
                        r = span;
                        std::thread::yield_now();
                    }
                }
            }
        }
        let seen = consumer.join().expect("consumer");
        assert_eq!(seen, (0..10_000).collect::<Vec<_>>());
    }
}
