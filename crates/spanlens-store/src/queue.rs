//! The bounded write queue every backend keeps in front of its writer: admission by the number
//! of spans waiting (so memory stays bounded and `submit` answers `Busy` at once instead of
//! blocking), and the gathering of waiting submissions into one transaction (group commit).

use crate::error::StoreError;
use crate::ticket::CommitTicket;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Why a writer's queue did not take a submission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// No room: the writer is behind.
    Full,
    /// The writer is gone.
    Closed,
}

/// Spans counted as waiting while a submission is prepared and queued; they are given back
/// when it is dropped, unless [`settle`](Admitted::settle) finds the submission queued (then
/// the writer gives them back once it committed them).
#[must_use = "dropping an admission gives its spans back"]
pub struct Admitted<'a> {
    pending: &'a AtomicUsize,
    spans: usize,
    limit: usize,
}

impl<'a> Admitted<'a> {
    /// Counts `spans` more as waiting, or refuses them with `Busy` when that would pass
    /// `limit`. A batch larger than the whole limit is still taken when nothing else waits,
    /// otherwise it could never be written.
    pub fn admit(
        pending: &'a AtomicUsize,
        spans: usize,
        limit: usize,
    ) -> Result<Admitted<'a>, StoreError> {
        let before = pending.fetch_add(spans, Ordering::AcqRel);
        let admitted = Admitted {
            pending,
            spans,
            limit,
        };
        if before > 0 && before.saturating_add(spans) > limit {
            drop(admitted);
            return Err(StoreError::Busy {
                pending_spans: before,
                limit_spans: limit,
            });
        }
        Ok(admitted)
    }

    /// Ends the admission with how queuing the submission went: queued, its spans stay
    /// counted until the writer is done with them and the ticket is handed out; refused, they
    /// are given back and the caller is told why (`Busy`: retry later).
    pub fn settle(
        self,
        queued: Result<(), Refused>,
        ticket: CommitTicket,
    ) -> Result<CommitTicket, StoreError> {
        let (pending, limit) = (self.pending, self.limit);
        match queued {
            Ok(()) => {
                std::mem::forget(self);
                Ok(ticket)
            }
            Err(Refused::Full) => {
                drop(self);
                Err(StoreError::Busy {
                    pending_spans: pending.load(Ordering::Relaxed),
                    limit_spans: limit,
                })
            }
            Err(Refused::Closed) => Err(StoreError::Closed),
        }
    }
}

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        self.pending.fetch_sub(self.spans, Ordering::AcqRel);
    }
}

/// The submissions of one transaction: `first`, then whatever waits (`next`) until `max`
/// spans are gathered; returns them and their span count.
pub fn gather<J>(
    first: J,
    max: usize,
    spans_of: impl Fn(&J) -> usize,
    mut next: impl FnMut() -> Option<J>,
) -> (Vec<J>, usize) {
    let mut queued = spans_of(&first);
    let mut jobs = vec![first];
    while queued < max {
        let Some(job) = next() else { break };
        queued += spans_of(&job);
        jobs.push(job);
    }
    (jobs, queued)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admission_counts_until_dropped_or_kept() {
        let pending = AtomicUsize::new(0);
        let a = Admitted::admit(&pending, 10, 15).unwrap();
        assert!(matches!(
            Admitted::admit(&pending, 10, 15),
            Err(StoreError::Busy {
                pending_spans: 10,
                ..
            })
        ));
        assert_eq!(pending.load(Ordering::Relaxed), 10);
        drop(a);
        // A full queue gives the spans back.
        let ready = || CommitTicket::ready(Ok(Default::default()));
        let b = Admitted::admit(&pending, 5, 15).unwrap();
        let refused = b.settle(Err(Refused::Full), ready());
        assert!(matches!(refused, Err(StoreError::Busy { .. })));
        assert_eq!(pending.load(Ordering::Relaxed), 0);
        // Alone, a batch over the limit is taken, and stays counted once queued.
        let a = Admitted::admit(&pending, 20, 15).unwrap();
        assert!(a.settle(Ok(()), ready()).is_ok());
        assert_eq!(pending.load(Ordering::Relaxed), 20);
    }

    #[test]
    fn gathering_stops_at_the_limit_or_the_end_of_the_queue() {
        let mut rest = vec![3, 4, 5].into_iter();
        assert_eq!(gather(2, 6, |n| *n, || rest.next()), (vec![2, 3, 4], 9));
        let mut none = std::iter::empty::<usize>();
        assert_eq!(gather(7, 6, |n| *n, || none.next()), (vec![7], 7));
    }
}
