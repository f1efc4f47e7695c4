//! What happens after spans are committed, decoupled from ingest: ingest announces each
//! committed batch once on the [`CommitBus`], and the work that follows a commit (the live
//! stream, evaluators) subscribes to it instead of being written into ingest.

use spanlens_core::Span;
use std::sync::Arc;

/// Spans of one project, committed to the store.
#[derive(Debug, Clone)]
pub struct Committed {
    /// Project they were stored under.
    pub project: String,
    /// The spans, as normalised and stored.
    pub spans: Arc<Vec<Span>>,
}

/// Work that follows a commit.
pub trait CommitSubscriber: Send + Sync {
    /// Whether the subscriber wants batches now; ingest keeps no copy of the spans when no
    /// subscriber does (asked once per batch, so it must be cheap).
    fn wants(&self) -> bool;

    /// Takes a committed batch. Called on the request's task after the commit and before the
    /// answer: it must not block (hand slow work, such as an LLM judge, to a task of its own).
    fn committed(&self, batch: &Committed);
}

/// The subscribers of a server, fixed at start.
#[derive(Clone, Default)]
pub struct CommitBus {
    subscribers: Vec<Arc<dyn CommitSubscriber>>,
}

impl std::fmt::Debug for CommitBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommitBus")
            .field("subscribers", &self.subscribers.len())
            .finish()
    }
}

impl CommitBus {
    /// The same bus with one more subscriber.
    pub fn with(mut self, subscriber: Arc<dyn CommitSubscriber>) -> CommitBus {
        self.subscribers.push(subscriber);
        self
    }

    /// Whether any subscriber wants the next batch.
    pub fn wanted(&self) -> bool {
        self.subscribers.iter().any(|s| s.wants())
    }

    /// Hands a committed batch to every subscriber that wants it.
    pub fn announce(&self, batch: &Committed) {
        for s in self.subscribers.iter().filter(|s| s.wants()) {
            s.committed(batch);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    struct Counter {
        on: AtomicBool,
        spans: AtomicUsize,
    }

    impl CommitSubscriber for Counter {
        fn wants(&self) -> bool {
            self.on.load(Ordering::Relaxed)
        }
        fn committed(&self, batch: &Committed) {
            self.spans.fetch_add(batch.spans.len(), Ordering::Relaxed);
        }
    }

    #[test]
    fn only_subscribers_that_want_batches_get_them() {
        let a = Arc::new(Counter {
            on: AtomicBool::new(true),
            spans: AtomicUsize::new(0),
        });
        let b = Arc::new(Counter {
            on: AtomicBool::new(false),
            spans: AtomicUsize::new(0),
        });
        let bus = CommitBus::default().with(a.clone()).with(b.clone());
        assert!(bus.wanted());
        let batch = Committed {
            project: "p".into(),
            spans: Arc::new(vec![Span::default(), Span::default()]),
        };
        bus.announce(&batch);
        assert_eq!(a.spans.load(Ordering::Relaxed), 2);
        assert_eq!(b.spans.load(Ordering::Relaxed), 0);
        a.on.store(false, Ordering::Relaxed);
        assert!(!bus.wanted(), "nobody wants: ingest keeps no copy");
        assert!(!CommitBus::default().wanted());
    }
}
