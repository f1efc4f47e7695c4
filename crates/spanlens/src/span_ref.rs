//! A counted handle on an open span's shared state: `Arc` without its weak count, so that the
//! last handle frees the state without an atomic read-modify-write.
//!
//! Most spans are never shared (no child, no context taken), so the handle that ends one is
//! almost always the last. `Arc`'s drop decrements with a locked instruction even then, and a
//! locked instruction waits for every earlier store to reach the cache (the span's record was
//! just written): a measurable share of a span's time. Here a handle that sees a count of one
//! knows it is alone (nobody could be cloning it) and frees the state directly.

use crate::span::SpanInner;
use std::cell::RefCell;
use std::mem::MaybeUninit;
use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicUsize, Ordering};

/// Freed states a thread keeps for its next spans, at most (a malloc and a free per span cost
/// more than a push and a pop here).
const SPARE_CAP: usize = 64;

thread_local! {
    static SPARE: RefCell<Vec<Box<MaybeUninit<Counted>>>> = const { RefCell::new(Vec::new()) };
}

struct Counted {
    refs: AtomicUsize,
    inner: SpanInner,
}

pub(crate) struct SpanRef {
    ptr: NonNull<Counted>,
}

// SAFETY: a `SpanRef` is a shared reference to a `SpanInner` with a thread-safe count, like
// `Arc<SpanInner>`, which is `Send` and `Sync` because `SpanInner` is both.
unsafe impl Send for SpanRef where SpanInner: Send + Sync {}
// SAFETY: as above.
unsafe impl Sync for SpanRef where SpanInner: Send + Sync {}

impl SpanRef {
    /// A first handle on the state `make` returns (called once its memory is at hand).
    #[inline(always)]
    pub(crate) fn new(make: impl FnOnce() -> SpanInner) -> SpanRef {
        // Allocated before it is filled: built first, the state would wait on the stack across
        // the allocation and be copied whole over fields just written in pieces (a
        // store-forwarding stall); filled after, each field goes from its register to the heap.
        let mut slot = SPARE
            .try_with(|s| s.borrow_mut().pop())
            .ok()
            .flatten()
            .unwrap_or_else(Box::new_uninit);
        slot.write(Counted {
            refs: AtomicUsize::new(1),
            inner: make(),
        });
        // SAFETY: written just above.
        let counted = unsafe { slot.assume_init() };
        SpanRef {
            ptr: NonNull::from(Box::leak(counted)),
        }
    }

    fn counted(&self) -> &Counted {
        // SAFETY: the state lives while any handle does, and this is one.
        unsafe { self.ptr.as_ref() }
    }

    /// True when `this` is the only handle. Nobody else borrows it (`&mut`), so nobody can
    /// clone it meanwhile: the answer stays true, and what other handles' threads did before
    /// dropping theirs is visible after it (acquire).
    #[inline]
    pub(crate) fn is_unique(this: &mut SpanRef) -> bool {
        this.counted().refs.load(Ordering::Acquire) == 1
    }
}

impl Deref for SpanRef {
    type Target = SpanInner;

    #[inline(always)]
    fn deref(&self) -> &SpanInner {
        &self.counted().inner
    }
}

impl Clone for SpanRef {
    #[inline]
    fn clone(&self) -> SpanRef {
        // Relaxed, as `Arc` does: a new handle is made from an existing one, which already
        // keeps the state alive.
        let old = self.counted().refs.fetch_add(1, Ordering::Relaxed);
        if old > isize::MAX as usize {
            // Only a leak of handles on an enormous scale gets here; wrapping would free
            // the state under live handles.
            std::process::abort();
        }
        SpanRef { ptr: self.ptr }
    }
}

impl Drop for SpanRef {
    #[inline]
    fn drop(&mut self) {
        let refs = &self.counted().refs;
        // A count of one seen by a handle is its own: nobody else can clone or drop one.
        let last = refs.load(Ordering::Acquire) == 1 || refs.fetch_sub(1, Ordering::Release) == 1;
        if last {
            // Pairs with the other handles' release decrements.
            fence(Ordering::Acquire);
            // SAFETY: this was the last handle, so the state is dropped once, here; its box
            // (from `Box::leak` in `new`) is then only memory, kept as `MaybeUninit` for `new`
            // to write whole, or freed as such.
            let spare = unsafe {
                std::ptr::drop_in_place(self.ptr.as_ptr());
                Box::from_raw(self.ptr.as_ptr() as *mut MaybeUninit<Counted>)
            };
            let _ = SPARE.try_with(|s| {
                let mut s = s.borrow_mut();
                if s.len() < SPARE_CAP {
                    s.push(spare);
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn handles_shared_across_threads_end_the_span_once() {
        let ended = crate::processor::InMemoryProcessor::new();
        let tracer = crate::Tracer::builder()
            .with_processor(ended.clone())
            .build();
        for _ in 0..200 {
            let span = tracer.span("shared").start();
            let ctx = span.context();
            let workers: Vec<_> = (0..3)
                .map(|_| {
                    let ctx = ctx.clone();
                    std::thread::spawn(move || {
                        for _ in 0..50 {
                            let c = ctx.clone();
                            c.span().set_attribute("k", 1);
                            drop(c);
                        }
                    })
                })
                .collect();
            drop(ctx);
            drop(span);
            for w in workers {
                w.join().expect("worker");
            }
        }
        assert_eq!(ended.spans().len(), 200);
    }
}
