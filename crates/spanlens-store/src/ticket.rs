//! A one-shot completion handle for a submitted batch, usable both from threads (`wait`) and
//! from async code (`.await`), so the store needs no async runtime of its own.

use crate::error::StoreError;
use crate::types::WriteReceipt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

type Outcome = Result<WriteReceipt, StoreError>;

#[derive(Default)]
struct State {
    outcome: Option<Outcome>,
    waker: Option<Waker>,
    done: bool,
    /// Memory the writer hands back to be freed by whoever takes the outcome.
    garbage: Option<Box<dyn Send>>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    cond: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means another holder panicked; the state itself stays valid.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Resolves when the transaction holding a submitted batch commits (or fails): the ingest
/// acknowledgement waits on it so a request is answered only once its spans are durable.
#[must_use = "a batch is acknowledged only when its ticket resolves"]
pub struct CommitTicket {
    shared: Arc<Shared>,
}

/// The writer's end of a ticket; dropping it unresolved resolves the ticket with `Closed`,
/// so a waiter can never hang on a writer that went away.
pub(crate) struct Completer {
    shared: Option<Arc<Shared>>,
}

impl CommitTicket {
    /// A ticket and the completer that resolves it.
    pub(crate) fn pair() -> (CommitTicket, Completer) {
        let shared = Arc::new(Shared::default());
        (
            CommitTicket {
                shared: shared.clone(),
            },
            Completer {
                shared: Some(shared),
            },
        )
    }

    /// A ticket that is already resolved (used for empty submissions).
    pub fn ready(outcome: Result<WriteReceipt, StoreError>) -> CommitTicket {
        let (t, c) = CommitTicket::pair();
        c.complete(outcome);
        t
    }

    /// Blocks the calling thread until the batch is committed (or has failed).
    pub fn wait(self) -> Result<WriteReceipt, StoreError> {
        let mut st = self.shared.lock();
        loop {
            if let Some(out) = st.outcome.take() {
                let garbage = st.garbage.take();
                drop(st);
                drop(garbage);
                return out;
            }
            if st.done {
                return Err(StoreError::Closed);
            }
            st = self.shared.cond.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Like `wait`, but gives the ticket back if it has not resolved within `timeout`.
    pub fn wait_timeout(self, timeout: Duration) -> Result<Result<WriteReceipt, StoreError>, Self> {
        let deadline = std::time::Instant::now() + timeout;
        {
            let mut st = self.shared.lock();
            loop {
                if let Some(out) = st.outcome.take() {
                    let garbage = st.garbage.take();
                    drop(st);
                    drop(garbage);
                    return Ok(out);
                }
                if st.done {
                    return Ok(Err(StoreError::Closed));
                }
                let now = std::time::Instant::now();
                if now >= deadline {
                    break;
                }
                st = self
                    .shared
                    .cond
                    .wait_timeout(st, deadline - now)
                    .map(|(g, _)| g)
                    .unwrap_or_else(|e| e.into_inner().0);
            }
        }
        Err(self)
    }

    /// True once the outcome is known, so callers can poll without blocking.
    pub fn is_ready(&self) -> bool {
        let st = self.shared.lock();
        st.done
    }
}

impl std::fmt::Debug for CommitTicket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommitTicket")
            .field("ready", &self.is_ready())
            .finish()
    }
}

impl Future for CommitTicket {
    type Output = Result<WriteReceipt, StoreError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut st = self.shared.lock();
        if let Some(out) = st.outcome.take() {
            let garbage = st.garbage.take();
            drop(st);
            drop(garbage);
            return Poll::Ready(out);
        }
        if st.done {
            return Poll::Ready(Err(StoreError::Closed));
        }
        match &st.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => st.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl Completer {
    /// Resolves the ticket, waking a thread blocked in `wait` or a task awaiting it.
    pub(crate) fn complete(mut self, outcome: Result<WriteReceipt, StoreError>) {
        self.finish(Some(outcome), None);
    }

    /// Resolves the ticket and hands `garbage` to the waiter to drop, keeping deallocation
    /// off the completing thread (the writer).
    pub(crate) fn complete_with(
        mut self,
        outcome: Result<WriteReceipt, StoreError>,
        garbage: Box<dyn Send>,
    ) {
        self.finish(Some(outcome), Some(garbage));
    }

    fn finish(&mut self, outcome: Option<Outcome>, garbage: Option<Box<dyn Send>>) {
        let Some(shared) = self.shared.take() else {
            return;
        };
        let waker = {
            let mut st = shared.lock();
            st.outcome = outcome;
            st.garbage = garbage;
            st.done = true;
            st.waker.take()
        };
        shared.cond.notify_all();
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl Drop for Completer {
    fn drop(&mut self) {
        self.finish(Some(Err(StoreError::Closed)), None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Wake;

    struct Flag(std::sync::atomic::AtomicBool);
    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[test]
    fn wait_returns_the_outcome_from_another_thread() {
        let (t, c) = CommitTicket::pair();
        let h = std::thread::spawn(move || {
            c.complete(Ok(WriteReceipt {
                spans: 3,
                ..Default::default()
            }))
        });
        assert_eq!(t.wait().unwrap().spans, 3);
        h.join().unwrap();
    }

    #[test]
    fn dropped_completer_resolves_closed() {
        let (t, c) = CommitTicket::pair();
        drop(c);
        assert!(matches!(t.wait(), Err(StoreError::Closed)));
    }

    #[test]
    fn timeout_gives_the_ticket_back() {
        let (t, c) = CommitTicket::pair();
        let t = t.wait_timeout(Duration::from_millis(5)).unwrap_err();
        c.complete(Ok(WriteReceipt::default()));
        assert!(t.wait_timeout(Duration::from_millis(5)).is_ok());
    }

    #[test]
    fn future_is_woken_on_completion() {
        let (mut t, c) = CommitTicket::pair();
        let flag = Arc::new(Flag(false.into()));
        let waker = Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut t).poll(&mut cx).is_pending());
        c.complete(Ok(WriteReceipt::default()));
        assert!(flag.0.load(std::sync::atomic::Ordering::SeqCst));
        assert!(matches!(Pin::new(&mut t).poll(&mut cx), Poll::Ready(Ok(_))));
    }
}
