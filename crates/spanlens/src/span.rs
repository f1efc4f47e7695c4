//! Live spans: the handle an application holds, the builder that starts one, and the finished
//! record handed to processors.

use crate::attr::{AttributeList, Key, Value};
use crate::context::{Context, ContextGuard, Scope};
use crate::record_cell::RecordCell;
use crate::span_ref::SpanRef;
use crate::tracer::{self, TracerInner};
use spanlens_core::{SpanId, SpanKind, Status, Timestamp, TraceId};
use std::borrow::Cow;
use std::cell::Cell;
use std::sync::Arc;

/// A finished (or, in `on_start`, just started) span as processors see it.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanData {
    /// Trace id.
    pub trace_id: TraceId,
    /// Span id.
    pub span_id: SpanId,
    /// Parent span id; `None` for a root.
    pub parent_span_id: Option<SpanId>,
    /// Span name.
    pub name: Cow<'static, str>,
    /// What the span represents.
    pub kind: SpanKind,
    /// Start time.
    pub start_time: Timestamp,
    /// End time (`None` in `on_start`).
    pub end_time: Option<Timestamp>,
    /// Attributes, in the order first set; setting a key again replaces its value.
    pub attributes: AttributeList,
    /// Events (retries, first token, guardrail verdicts, …).
    pub events: Vec<SpanEvent>,
    /// Outcome.
    pub status: Status,
    /// Error description.
    pub status_message: Option<String>,
}

impl SpanData {
    /// The value of an attribute, if set.
    pub fn attribute(&self, key: &str) -> Option<&Value> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    pub(crate) fn set(&mut self, key: Key, value: Value) {
        match self.attributes.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.attributes.push((key, value)),
        }
    }
}

/// A timestamped event inside a span.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanEvent {
    /// Event name.
    pub name: Cow<'static, str>,
    /// When it happened.
    pub time: Timestamp,
    /// Event attributes.
    pub attributes: Vec<(Key, Value)>,
}

/// Shared state of an open span; children keep their parent's alive for duplicate detection.
pub(crate) struct SpanInner {
    pub(crate) tracer: &'static TracerInner,
    pub(crate) trace_id: TraceId,
    pub(crate) span_id: SpanId,
    pub(crate) kind: SpanKind,
    pub(crate) identity: Option<Box<str>>,
    pub(crate) parent: Option<SpanRef>,
    pub(crate) scope: Option<Arc<Scope>>,
    /// False when the trace was not sampled: the span exists only to carry context.
    pub(crate) recording: bool,
    /// The record being filled (`None` once ended, or from the start when the trace is not
    /// sampled).
    data: RecordCell,
}

impl SpanInner {
    pub(crate) fn is_open(&self) -> bool {
        self.data.with(|d| d.is_some())
    }

    /// Ends the span at `at`. `this` is a handle nobody else borrows; when it is also the only
    /// one, the record is taken without the lock.
    fn end(this: &mut SpanRef, at: Timestamp) {
        let data = if SpanRef::is_unique(this) {
            // SAFETY: `this` is the only handle on the span and is borrowed exclusively, so no
            // other thread can reach the record now, and none can later (a new handle could
            // only be cloned from `this`); what others did to it is visible (acquire).
            unsafe { this.data.take_unshared() }
        } else {
            this.data.with(Option::take)
        };
        if let Some(mut d) = data {
            // Never before the start: a clock re-anchored in between may step back a little.
            d.end_time = Some(at.max(d.start_time));
            this.tracer.on_end(d);
        }
    }
}

/// A handle on a live span. Ends when dropped (or at [`Span::end`]).
///
/// A disabled or unsampled span is a no-op handle: every method is cheap and records nothing.
#[must_use = "a span ends when dropped; bind it (`let _span = ...`) to keep it open"]
pub struct Span {
    pub(crate) inner: Option<SpanRef>,
    /// False for a re-entered duplicate: the original owner ends it.
    ends_on_drop: bool,
}

impl Span {
    /// A span that records nothing.
    #[inline(always)]
    pub const fn noop() -> Span {
        Span {
            inner: None,
            ends_on_drop: false,
        }
    }

    /// A handle on an existing span that does not end it when dropped.
    pub(crate) fn borrowed(inner: Option<SpanRef>) -> Span {
        Span {
            inner,
            ends_on_drop: false,
        }
    }

    /// True when attributes set on this span will be exported.
    pub fn is_recording(&self) -> bool {
        self.inner.as_ref().is_some_and(|i| i.is_open())
    }

    /// Trace id (`None` for a no-op span).
    pub fn trace_id(&self) -> Option<TraceId> {
        self.inner.as_ref().map(|i| i.trace_id)
    }

    /// Span id (`None` for a no-op span).
    pub fn span_id(&self) -> Option<SpanId> {
        self.inner.as_ref().map(|i| i.span_id)
    }

    /// The span's kind (`span` for a no-op span).
    pub fn kind(&self) -> SpanKind {
        self.inner.as_ref().map(|i| i.kind).unwrap_or_default()
    }

    /// Runs `f` on the recording data, if any.
    pub(crate) fn with_data(&self, f: impl FnOnce(&mut SpanData)) {
        if let Some(inner) = &self.inner {
            inner.data.with(|d| {
                if let Some(d) = d.as_mut() {
                    f(d);
                }
            });
        }
    }

    /// Sets (or replaces) an attribute.
    pub fn set_attribute(&self, key: impl Into<Key>, value: impl Into<Value>) {
        if self.inner.is_some() {
            let (k, v) = (key.into(), value.into());
            self.with_data(|d| d.set(k, v));
        }
    }

    /// Sets several attributes at once (one lock).
    pub fn set_attributes<I, K, V>(&self, attrs: I)
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<Key>,
        V: Into<Value>,
    {
        if self.inner.is_some() {
            self.with_data(|d| {
                for (k, v) in attrs {
                    d.set(k.into(), v.into());
                }
            });
        }
    }

    /// Renames the span.
    pub fn set_name(&self, name: impl Into<Cow<'static, str>>) {
        if self.inner.is_some() {
            let n = name.into();
            self.with_data(|d| d.name = n);
        }
    }

    /// Adds an event stamped now.
    pub fn add_event<I, K, V>(&self, name: impl Into<Cow<'static, str>>, attrs: I)
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<Key>,
        V: Into<Value>,
    {
        if self.inner.is_some() {
            let ev = SpanEvent {
                name: name.into(),
                time: now(),
                attributes: attrs
                    .into_iter()
                    .map(|(k, v)| (k.into(), v.into()))
                    .collect(),
            };
            self.with_data(|d| d.events.push(ev));
        }
    }

    /// Marks the span failed with a message (and the error's type name, when known).
    pub fn set_error(&self, message: impl Into<String>, error_type: Option<&str>) {
        if self.inner.is_some() {
            let msg = message.into();
            let ty = error_type.map(|t| t.to_string());
            self.with_data(|d| {
                d.status = Status::Error;
                d.status_message = Some(msg);
                if let Some(t) = ty {
                    d.set("error.type".into(), Value::Str(t.into()));
                }
            });
        }
    }

    /// Marks the span successful (unless it already failed).
    pub fn set_ok(&self) {
        self.with_data(|d| {
            if d.status == Status::Unset {
                d.status = Status::Ok;
            }
        });
    }

    /// A cheap handle for carrying this span into spawned tasks and threads.
    pub fn context(&self) -> Context {
        match &self.inner {
            Some(i) => Context {
                scope: i.scope.clone(),
                span: Some(i.clone()),
            },
            None => Context::current(),
        }
    }

    /// Makes this span the current one on this thread until the guard drops (sync code only;
    /// for async code use [`crate::FutureExt::instrument`]).
    pub fn enter(&self) -> ContextGuard {
        self.context().attach()
    }

    /// Runs `f` with this span current.
    pub fn in_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        let _g = self.enter();
        f()
    }

    /// Ends the span now.
    pub fn end(mut self) {
        self.finish();
    }

    #[inline(always)]
    fn finish(&mut self) {
        // The clock is read only for a span this handle ends: a no-op span (tracing disabled)
        // or a borrowed handle costs no clock read when dropped.
        if self.ends_on_drop {
            self.finish_at(now());
        }
    }

    /// Ends the span at `at`, a moment already taken (a recorder that does work after the
    /// operation ended, such as pricing, must not count that work in the span's duration).
    #[inline(always)]
    pub(crate) fn finish_at(&mut self, at: Timestamp) {
        if self.ends_on_drop {
            self.ends_on_drop = false;
            if let Some(i) = &mut self.inner {
                SpanInner::end(i, at);
            }
        }
    }
}

impl Drop for Span {
    #[inline(always)]
    fn drop(&mut self) {
        self.finish();
    }
}

impl std::fmt::Debug for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner {
            Some(i) => write!(f, "Span({} {} {:?})", i.trace_id, i.span_id, i.kind),
            None => f.write_str("Span(noop)"),
        }
    }
}

/// Starts building a span named `name`, a child of the current span (or a new trace's root).
///
/// When tracing is disabled, or no tracer could receive the span, the builder is empty and every
/// call on it is a branch on a null pointer: nothing is allocated or formatted.
#[inline(always)]
pub fn span(name: impl Into<Cow<'static, str>>) -> SpanBuilder {
    let armed =
        !tracer::is_disabled() && (tracer::global().is_some() || Context::has_current_span());
    SpanBuilder::new(name.into(), armed)
}

/// Options for a span about to start. Cheap to move: the span's data is boxed once, here,
/// and that box travels to the processors without being copied.
#[must_use = "call .start() to start the span"]
pub struct SpanBuilder {
    data: Option<Box<SpanData>>,
    /// The tracer to report to, when not the parent's or the global one (an explicit
    /// [`crate::Tracer`]'s spans: kept inline, as boxing it cost a malloc and a free per span).
    tracer: Option<&'static TracerInner>,
    rare: Option<Box<RareOptions>>,
}

/// Builder options most spans never use, kept out of line.
#[derive(Default)]
struct RareOptions {
    identity: Option<Box<str>>,
    parent: Option<Context>,
}

impl SpanBuilder {
    #[inline(always)]
    pub(crate) fn new(name: Cow<'static, str>, armed: bool) -> SpanBuilder {
        SpanBuilder {
            data: armed.then(|| crate::pool::take(name)),
            tracer: None,
            rare: None,
        }
    }

    /// The record being built (`None` when the builder is disarmed), for bridges that fill it
    /// field by field.
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))]
    pub(crate) fn data_mut(&mut self) -> Option<&mut SpanData> {
        self.data.as_deref_mut()
    }

    fn rare(&mut self) -> &mut RareOptions {
        self.rare.get_or_insert_with(Default::default)
    }

    pub(crate) fn with_tracer(mut self, t: &'static TracerInner) -> SpanBuilder {
        if self.data.is_some() {
            self.tracer = Some(t);
        }
        self
    }

    /// Sets the kind (default `span`).
    #[inline(always)]
    pub fn kind(mut self, kind: SpanKind) -> SpanBuilder {
        if let Some(d) = self.data.as_mut() {
            d.kind = kind;
        }
        self
    }

    /// Names the component instance: re-entering an open span of the same kind and identity
    /// reuses it instead of nesting a duplicate.
    pub fn identity(mut self, id: impl Into<String>) -> SpanBuilder {
        if self.data.is_some() {
            self.rare().identity = Some(id.into().into_boxed_str());
        }
        self
    }

    /// Adds an attribute.
    #[inline(always)]
    pub fn attr(mut self, key: impl Into<Key>, value: impl Into<Value>) -> SpanBuilder {
        if let Some(d) = self.data.as_mut() {
            crate::attr::push(&mut d.attributes, key, value);
        }
        self
    }

    /// Uses an explicit parent instead of the current context (call it before `attr`).
    pub fn parent(mut self, ctx: &Context) -> SpanBuilder {
        if self.data.is_some() {
            self.rare().parent = Some(ctx.clone());
        }
        self
    }

    /// Starts the span.
    #[inline(always)]
    pub fn start(self) -> Span {
        match self.data {
            None => Span::noop(),
            Some(data) => start_enabled(data, self.tracer, self.rare),
        }
    }
}

fn start_enabled(
    mut data: Box<SpanData>,
    tracer: Option<&'static TracerInner>,
    rare: Option<Box<RareOptions>>,
) -> Span {
    let RareOptions { identity, parent } = rare.map(|r| *r).unwrap_or_default();
    let ctx = match parent {
        Some(c) => c,
        None => Context::current(),
    };
    if let Some(id) = &identity {
        if let Some(open) = find_open(&ctx, data.kind, id) {
            let reused = Span {
                inner: Some(open),
                ends_on_drop: false,
            };
            reused.set_attributes(std::mem::take(&mut data.attributes));
            return reused;
        }
    }
    let parent = ctx.span;
    let tracer = match (&parent, tracer) {
        (_, Some(t)) => t,
        (Some(p), None) => p.tracer,
        (None, None) => match tracer::global() {
            Some(t) => t,
            None => return Span::noop(),
        },
    };
    let (trace_id, recording, span_id) = match &parent {
        Some(p) => {
            let [id] = random_words();
            (p.trace_id, p.is_recording_trace(), span_id_from(id))
        }
        None => {
            let [high, low, id] = random_words();
            let t = trace_id_from(high, low);
            (t, tracer.sampled(t), span_id_from(id))
        }
    };
    if let Some(scope) = &ctx.scope {
        scope.apply(&mut data.attributes);
    }
    let kind = data.kind;
    let data = recording.then(|| {
        data.trace_id = trace_id;
        data.span_id = span_id;
        data.parent_span_id = parent.as_ref().map(|p| p.span_id);
        data.start_time = now();
        tracer.on_start(&data);
        data
    });
    let inner = SpanRef::new(|| SpanInner {
        tracer,
        trace_id,
        span_id,
        kind,
        identity,
        recording,
        parent,
        scope: ctx.scope,
        data: RecordCell::new(data),
    });
    Span {
        inner: Some(inner),
        ends_on_drop: true,
    }
}

impl SpanInner {
    fn is_recording_trace(&self) -> bool {
        self.recording
    }
}

/// The nearest open ancestor (or current span) of the same kind and identity.
fn find_open(ctx: &Context, kind: SpanKind, identity: &str) -> Option<SpanRef> {
    let mut cur = ctx.span.clone();
    while let Some(s) = cur {
        if s.kind == kind
            && s.identity.as_deref() == Some(identity)
            && (s.is_open() || !s.recording)
        {
            return Some(s);
        }
        cur = s.parent.clone();
    }
    None
}

pub(crate) use crate::clock::now;

thread_local! {
    /// This thread's id generator state; 0 until first used (then never 0 again).
    static RNG: Cell<u64> = const { Cell::new(0) };
}

fn seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded from the OS once per process and differs per thread-local use.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(now().0);
    h.finish() | 1
}

/// `N` random words from this thread's generator (one thread-local access for all of them:
/// a root span needs three). Never 0: xorshift keeps a non-zero state non-zero, and the odd
/// multiplier maps non-zero to non-zero.
#[inline]
fn random_words<const N: usize>() -> [u64; N] {
    fn run<const N: usize>(mut x: u64) -> ([u64; N], u64) {
        let mut out = [0; N];
        for o in &mut out {
            // xorshift64*: fast, and ids only need to be unique, not unpredictable.
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            *o = x.wrapping_mul(0x2545_f491_4f6c_dd1d);
        }
        (out, x)
    }
    RNG.try_with(|r| {
        let state = match r.get() {
            0 => seed(),
            x => x,
        };
        let (out, next) = run(state);
        r.set(next);
        out
    })
    // During the thread's teardown the state is gone: a fresh seed per call then.
    .unwrap_or_else(|_| run(seed()).0)
}

/// A random id for this process's exporter (16 hex digits).
#[cfg(feature = "otlp")]
pub(crate) fn new_instance_id() -> String {
    let [v] = random_words();
    format!("{v:016x}")
}

fn span_id_from(v: u64) -> SpanId {
    SpanId(v.to_be_bytes())
}

fn trace_id_from(high: u64, low: u64) -> TraceId {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&high.to_be_bytes());
    b[8..].copy_from_slice(&low.to_be_bytes());
    TraceId(b)
}
