//! Recycling of span records: the export thread hands emptied records back to the thread that
//! made them, so a busy application neither mallocs per span nor frees across threads (which in
//! glibc contends on the allocating thread's arena and keeps faulting fresh pages in).

use crate::attr::AttributeList;
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

impl Pool {
    /// Empties exported records (their values are dropped here, on the export thread) and
    /// keeps them for the owning thread.
    pub(crate) fn give_back(&self, records: impl Iterator<Item = Box<SpanData>>) {
        let mut cleaned: Vec<Box<SpanData>> = Vec::new();
        for mut r in records {
            r.parent_span_id = None;
            r.name = Cow::Borrowed("");
            r.kind = SpanKind::Span;
            r.end_time = None;
            r.attributes.clear();
            if r.attributes.spilled() {
                r.attributes = AttributeList::new();
            }
            r.events = Vec::new();
            r.status = Status::Unset;
            r.status_message = None;
            cleaned.push(r);
        }
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        let room = POOL_CAP.saturating_sub(free.len());
        free.extend(cleaned.into_iter().take(room));
    }
}
