//! The workflows: one module each, all adding their traces to one [`Gen`].

use crate::rng::Rng;
use crate::trace::Trace;
use crate::traffic::Traffic;
use crate::{EARLY_MS, LATE_MS, WINDOW_MS};
use spanlens_core::Span;

mod chat;
mod code_review;
mod extraction;
mod rag;
mod support;

/// The scripts the tests check the generated conversations against.
#[cfg(test)]
pub(crate) use self::{chat::CHATS, support::TICKETS};

pub(crate) const USERS: [&str; 10] = [
    "maria.garcia",
    "james.wilson",
    "li.wei",
    "fatima.khan",
    "lucas.silva",
    "emma.johnson",
    "noah.mueller",
    "aisha.bello",
    "kenji.sato",
    "olivia.brown",
];

pub(crate) struct Gen {
    pub(crate) rng: Rng,
    pub(crate) window_start: u64,
    pub(crate) traffic: Traffic,
    pub(crate) spans: Vec<Span>,
}

impl Gen {
    /// A start offset for instance `k` of `n` of a workflow lasting `length` ms, so that it
    /// lies within the window, drawn with the density of
    /// [`traffic_weight`](crate::traffic::traffic_weight).
    ///
    /// Stratified: instance `k` gets its own `1/n` slice of the traffic (slices handed out in a
    /// scrambled order, so the instance number says nothing about the time), which keeps each
    /// day's volume close to its expected share instead of adding sampling noise that a
    /// 25-traces-a-day demo could not average out. Always exactly one draw, so the ids (which
    /// come from the same generator) never depend on `now`.
    pub(crate) fn place(&mut self, k: usize, n: usize, length: u64) -> u64 {
        let latest = WINDOW_MS - LATE_MS - length.min(WINDOW_MS / 2);
        let n = n.max(1);
        // 7919 is prime and larger than any `n`, so this visits every slice once.
        let slice = (k * 7919) % n;
        let u = (slice as f64 + self.rng.unit()) / n as f64;
        self.traffic.place(EARLY_MS, latest, u)
    }

    pub(crate) fn trace(&mut self, t0: u64) -> Trace<'_> {
        let trace_id = self.rng.trace_id();
        Trace {
            rng: &mut self.rng,
            window_start: self.window_start,
            t0,
            trace_id,
            spans: Vec::new(),
        }
    }
}
