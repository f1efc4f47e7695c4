//! Recycling of span records: the export thread hands exported records back to the thread that
//! made them, so a busy application neither mallocs per span nor frees across threads (which in
//! glibc contends on the allocating thread's arena and keeps faulting fresh pages in).
//!
//! A record is emptied by the thread that reuses it, not by the export thread: a write (or
//! even a read) there would pull the record's cache lines to the export thread's core, and the
//! application thread would wait for every one of them to come back the next time it fills the
//! record — a profile of the span loop showed that cost at more than half of a span's time.
//! Only a record that holds payloads (owned strings, lists, events) is emptied on the export
//! thread, so an idle pool never keeps payloads alive; the application thread says which ones
//! when it hands them over ([`owns_heap`]), while their lines are still in its own cache.

use crate::attr::{AttributeList, Value};
use crate::span::SpanData;
use spanlens_core::{SpanId, SpanKind, Status, Timestamp, TraceId};
use std::borrow::Cow;
use std::sync::{Arc, Mutex};

/// Records a thread keeps for reuse at most; beyond this they are freed.
const POOL_CAP: usize = 2048;

/// One thread's inbox of emptied records, filled by export threads.
#[derive(Default)]
pub(crate) struct Pool {
    free: Mutex<Vec<Box<SpanData>>>,
}

thread_local! {
    static POOL: Arc<Pool> = Arc::new(Pool::default());
    /// Records moved out of the inbox in one go, so taking one needs no lock.
    static LOCAL: std::cell::RefCell<Vec<Box<SpanData>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// This thread's pool (a batch shard keeps it to return records to).
pub(crate) fn thread_pool() -> Option<Arc<Pool>> {
    POOL.try_with(Arc::clone).ok()
}

/// A fresh record named `name`: a recycled one when this thread has any.
#[inline]
pub(crate) fn take(name: Cow<'static, str>) -> Box<SpanData> {
    let reused = LOCAL
        .try_with(|local| {
            let mut local = local.borrow_mut();
            if local.is_empty() {
                let refill = POOL.try_with(|p| {
                    std::mem::take(&mut *p.free.lock().unwrap_or_else(|e| e.into_inner()))
                });
                if let Ok(refill) = refill {
                    *local = refill;
                }
            }
            local.pop()
        })
        .ok()
        .flatten();
    match reused {
        Some(mut b) => {
            empty(&mut b);
            b.name = name;
            b
        }
        None => Box::new(SpanData {
            trace_id: TraceId::default(),
            span_id: SpanId::default(),
            parent_span_id: None,
            name,
            kind: SpanKind::Span,
            start_time: Timestamp(0),
            end_time: None,
            attributes: AttributeList::new(),
            events: Vec::new(),
            status: Status::Unset,
            status_message: None,
        }),
    }
}

/// Empties a recycled record on the thread about to fill it again. Its payloads are already
/// gone ([`Pool::give_back`]), so nothing is freed here.
#[inline(always)]
fn empty(r: &mut SpanData) {
    r.parent_span_id = None;
    r.kind = SpanKind::Span;
    r.end_time = None;
    // Recycled records hold only values that own nothing (`give_back` emptied the others), so
    // their attributes are forgotten rather than dropped one by one.
    // SAFETY: shortening to 0 exposes no uninitialized slot; at worst a value is not dropped.
    unsafe { r.attributes.set_len(0) };
    r.status = Status::Unset;
}

/// True when the record holds memory of its own beyond its box and inline attributes (owned
/// name, keys or texts, lists, JSON, events, an error message), which the export thread then
/// frees before the record goes back for reuse.
#[inline]
pub(crate) fn owns_heap(r: &SpanData) -> bool {
    matches!(r.name, Cow::Owned(_))
        || r.attributes.spilled()
        || !r.events.is_empty()
        || r.status_message.is_some()
        || r.attributes.iter().any(|(k, v)| {
            matches!(k, Cow::Owned(_))
                || !matches!(
                    v,
                    Value::Bool(_) | Value::I64(_) | Value::F64(_) | Value::Str(Cow::Borrowed(_))
                )
        })
}

impl Pool {
    /// Takes exported records back for the thread that made them. Records flagged as holding
    /// payloads are emptied here, on the export thread; the others are not touched at all
    /// (see the module's note), only their pointers move.
    pub(crate) fn give_back(&self, records: impl Iterator<Item = (Box<SpanData>, bool)>) {
        let mut kept: Vec<Box<SpanData>> = Vec::new();
        for (mut r, heavy) in records {
            if heavy {
                r.name = Cow::Borrowed("");
                r.attributes = AttributeList::new();
                r.events = Vec::new();
                r.status_message = None;
            }
            kept.push(r);
        }
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        let room = POOL_CAP.saturating_sub(free.len());
        free.extend(kept.into_iter().take(room));
    }
}
