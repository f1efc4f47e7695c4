//! The `tracing` bridge: a `tracing-subscriber` layer that turns `tracing` spans and events into
//! Spanlens spans, in the same tree as `#[traced]`, [`crate::span`] and the recorders.
//!
//! How it keeps one tree: while a `tracing` span is entered, its Spanlens span is the SDK's
//! current span on that thread (the layer swaps the thread-local context on enter and restores it
//! on exit), so `#[traced]` functions called inside become its children. A `tracing` span created
//! with the contextual parent takes the SDK's current span as parent, which is the innermost of
//! the entered `tracing` spans and the SDK's own spans, so a `tracing` span opened inside a
//! `#[traced]` function hangs under it. An explicit `parent:` is honoured; `parent: None` starts
//! a new trace.
//!
//! What it costs: the Spanlens span lives in the `tracing` span's extensions (no map of its own,
//! no global lock); entering pushes one entry on a thread-local stack and swaps the thread-local
//! context (two `Arc` clones); static names, keys, targets and levels are borrowed, not copied.

use crate::attr::{Key, Value};
use crate::context::Context;
use crate::span::{now, Span, SpanBuilder, SpanData, SpanEvent};
use crate::tracer::{self, Tracer, TracerInner};
use spanlens_core::{SpanKind, Status};
use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use tracing_core::field::{Field, Visit};
use tracing_core::span::{Attributes, Id, Record};
use tracing_core::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context as LayerContext, Layer};
use tracing_subscriber::registry::{LookupSpan, SpanRef};

/// Field that sets a span's kind explicitly (`spanlens.kind = "agent"`); the SDK's own attribute
/// name, `spanlens.span.kind`, is accepted too. Neither is kept as an attribute.
pub const KIND_FIELD: &str = "spanlens.kind";

/// Attribute holding the `tracing` target (the module path, unless the callsite set one).
pub const TARGET_ATTRIBUTE: &str = "code.namespace";

/// Attribute holding the `tracing` level (`"INFO"`, …): always on events, on spans when asked.
pub const LEVEL_ATTRIBUTE: &str = "tracing.level";

/// Attribute holding the source file of the callsite, when asked for.
pub const FILE_ATTRIBUTE: &str = "code.file.path";

/// Attribute holding the source line of the callsite, when asked for.
pub const LINE_ATTRIBUTE: &str = "code.line.number";

/// A layer for `tracing_subscriber::registry()` that records `tracing` spans as Spanlens spans.
///
/// Spans go to the tracer given with [`TracingLayer::with_tracer`], else to the parent span's
/// tracer, else to the global tracer ([`crate::init`]). With none of these, or while tracing is
/// disabled, the layer records nothing and leaves `tracing` working as before.
pub struct TracingLayer {
    tracer: Option<&'static TracerInner>,
    /// Tells this layer's entries on the per-thread stack from those of another subscriber's
    /// layer: span ids are only unique within one subscriber.
    id: u64,
    target: bool,
    level: bool,
    location: bool,
    error_status: bool,
}

impl fmt::Debug for TracingLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TracingLayer")
            .field("explicit_tracer", &self.tracer.is_some())
            .field("target", &self.target)
            .field("level", &self.level)
            .field("location", &self.location)
            .field("error_status", &self.error_status)
            .finish()
    }
}

/// A layer recording `tracing` spans and events as Spanlens spans (see [`TracingLayer`]):
/// `tracing_subscriber::registry().with(spanlens::tracing_layer()).init()`.
pub fn tracing_layer() -> TracingLayer {
    static NEXT_ID: AtomicU64 = AtomicU64::new(1);
    TracingLayer {
        tracer: None,
        id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        target: true,
        level: false,
        location: false,
        error_status: true,
    }
}

impl TracingLayer {
    /// Sends every span this layer makes to `tracer` rather than to its parent's or the global
    /// one, as [`Tracer::span`] does (tests, libraries with their own tracer). `#[traced]` spans
    /// inside follow their parent, so they go there too.
    pub fn with_tracer(mut self, tracer: Tracer) -> Self {
        self.tracer = Some(tracer.inner());
        self
    }

    /// Records the `tracing` target as `code.namespace` on spans and events (default: on).
    pub fn with_target(mut self, on: bool) -> Self {
        self.target = on;
        self
    }

    /// Records the level as `tracing.level` on spans too (default: off; events always have it).
    pub fn with_level(mut self, on: bool) -> Self {
        self.level = on;
        self
    }

    /// Records the callsite's file and line as `code.file.path` / `code.line.number` on spans
    /// and events (default: off).
    pub fn with_location(mut self, on: bool) -> Self {
        self.location = on;
        self
    }

    /// Lets an `ERROR` event mark the span it happens in as failed, with the event's message as
    /// the status message and its `error.type` field, if any, as the error type (default: on).
    pub fn with_error_status(mut self, on: bool) -> Self {
        self.error_status = on;
        self
    }

    /// The attributes every span or event of `meta` carries, whatever its fields.
    fn describe(
        &self,
        meta: &'static Metadata<'static>,
        level: bool,
        mut put: impl FnMut(Key, Value),
    ) {
        if self.target {
            put(
                Cow::Borrowed(TARGET_ATTRIBUTE),
                Value::Str(Cow::Borrowed(meta.target())),
            );
        }
        if level {
            put(
                Cow::Borrowed(LEVEL_ATTRIBUTE),
                Value::Str(Cow::Borrowed(meta.level().as_str())),
            );
        }
        if self.location {
            if let Some(file) = meta.file() {
                put(
                    Cow::Borrowed(FILE_ATTRIBUTE),
                    Value::Str(Cow::Borrowed(file)),
                );
            }
            if let Some(line) = meta.line() {
                put(Cow::Borrowed(LINE_ATTRIBUTE), Value::from(line));
            }
        }
    }
}

/// What the layer keeps in a `tracing` span's extensions.
struct Bridged {
    /// The owning handle: dropping it (when the `tracing` span closes) ends the span.
    span: Span,
    hints: KindHints,
}

/// What the fields seen so far say about the span's kind; resolved again after each `record`,
/// since a field may be filled in later (`field::Empty` at creation).
#[derive(Default, Clone, Copy)]
struct KindHints {
    explicit: Option<SpanKind>,
    operation: Option<SpanKind>,
    model: bool,
}

impl KindHints {
    /// Explicit kind, else the GenAI operation's, else `llm` when a model is named.
    fn kind(self) -> SpanKind {
        self.explicit.or(self.operation).unwrap_or(if self.model {
            SpanKind::Llm
        } else {
            SpanKind::Span
        })
    }
}

fn into_text(v: Value) -> Cow<'static, str> {
    match v {
        Value::Str(s) => s,
        other => Cow::Owned(other.as_text().into_owned()),
    }
}

/// Attribute values from `tracing`'s field visitor.
trait PutField {
    fn put(&mut self, field: &Field, value: Value);
}

/// A 128-bit integer as an integer when it fits, else as its decimal text.
fn wide<T: TryInto<i64> + fmt::Display + Copy>(v: T) -> Value {
    match v.try_into() {
        Ok(i) => Value::I64(i),
        Err(_) => Value::Str(Cow::Owned(v.to_string())),
    }
}

/// Converts each field to a [`Value`]: numbers and booleans as themselves (`u64` past `i64::MAX`
/// is clamped, as everywhere in the SDK), strings copied, errors as their `Display` text,
/// anything else (including `%display` and `?debug` fields) as formatted text.
struct Fields<T>(T);

impl<T: PutField> Visit for Fields<T> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.put(field, Value::F64(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.put(field, Value::I64(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.put(field, Value::from(value));
    }
    fn record_i128(&mut self, field: &Field, value: i128) {
        self.0.put(field, wide(value));
    }
    fn record_u128(&mut self, field: &Field, value: u128) {
        self.0.put(field, wide(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.put(field, Value::Bool(value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.put(field, Value::Str(Cow::Owned(value.to_owned())));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.put(field, Value::Str(Cow::Owned(value.to_string())));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .put(field, Value::Str(Cow::Owned(format!("{value:?}"))));
    }
}

/// A span's fields into its record.
struct SpanFields<'a> {
    data: &'a mut SpanData,
    hints: &'a mut KindHints,
    /// False at creation, where every field comes once and can simply be appended; `record`
    /// replaces a value set before.
    replace: bool,
}

impl PutField for SpanFields<'_> {
    fn put(&mut self, field: &Field, value: Value) {
        let name = field.name();
        match name {
            KIND_FIELD | crate::convert::KIND_ATTRIBUTE => {
                if let Some(kind) = SpanKind::parse(&value.as_text()) {
                    self.hints.explicit = Some(kind);
                    return;
                }
                // An unknown kind stays visible as an attribute rather than vanishing.
            }
            // The names tracing-opentelemetry gives meaning to, so existing instrumentation
            // keeps working when it moves to this layer.
            "otel.name" => {
                self.data.name = into_text(value);
                return;
            }
            "otel.status_code" => {
                let code = value.as_text();
                if code.eq_ignore_ascii_case("error") {
                    self.data.status = Status::Error;
                } else if code.eq_ignore_ascii_case("ok") {
                    self.data.status = Status::Ok;
                }
                return;
            }
            "otel.status_message" => {
                self.data.status_message = Some(into_text(value).into_owned());
                return;
            }
            // An OTel span kind (client, server…) says nothing Spanlens uses.
            "otel.kind" => return,
            "gen_ai.operation.name" => {
                // The SDK always exports its own kind, which normalisation trusts over this name: the
                // kind is chosen here, by the conventions' own rule.
                self.hints.operation = spanlens_core::conventions::operation_kind(&value.as_text());
            }
            "gen_ai.request.model" | "gen_ai.response.model" => self.hints.model = true,
            _ => {}
        }
        let key = Cow::Borrowed(name);
        if self.replace {
            self.data.set(key, value);
        } else {
            self.data.attributes.push((key, value));
        }
    }
}

/// An event's fields: `message` names the event, the rest become its attributes.
struct EventFields {
    message: Option<Cow<'static, str>>,
    attributes: Vec<(Key, Value)>,
}

impl PutField for EventFields {
    fn put(&mut self, field: &Field, value: Value) {
        match field.name() {
            "message" => self.message = Some(into_text(value)),
            name => self.attributes.push((Cow::Borrowed(name), value)),
        }
    }
}

/// One `tracing` span entered on this thread by a bridge layer, and the context it replaced.
struct Entered {
    layer: u64,
    span: u64,
    prev: Context,
}

thread_local! {
    /// The contexts to restore as entered `tracing` spans exit, innermost last. Kept per thread
    /// (not in the span's extensions) because one span may be entered on several threads at once.
    static ENTERED: RefCell<Vec<Entered>> = const { RefCell::new(Vec::new()) };
}

/// The Spanlens span of `span` or of its nearest ancestor that has one (skipping `span` itself
/// when `skip_self`).
fn nearest<S>(span: &SpanRef<'_, S>, skip_self: bool) -> Option<Span>
where
    S: for<'a> LookupSpan<'a>,
{
    span.scope().skip(usize::from(skip_self)).find_map(|s| {
        s.extensions()
            .get::<Bridged>()
            .map(|b| Span::borrowed(b.span.inner.clone()))
    })
}

impl<S> Layer<S> for TracingLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: LayerContext<'_, S>) {
        if tracer::is_disabled() {
            return;
        }
        let Some(span_ref) = ctx.span(id) else {
            return;
        };
        // Contextual: the SDK's current span, which already is the innermost of entered
        // `tracing` spans and `#[traced]` ones. Explicit: the registry recorded that parent
        // (skipping any this layer is filtered from); `parent: None` has no ancestor at all.
        let parent = (!attrs.is_contextual()).then(|| match nearest(&span_ref, true) {
            Some(p) => p.context(),
            None => Context {
                span: None,
                scope: Context::current().scope,
            },
        });
        let armed = self.tracer.is_some()
            || tracer::global().is_some()
            || match &parent {
                Some(p) => p.span.is_some(),
                None => Context::has_current_span(),
            };
        if !armed {
            return;
        }
        let meta = attrs.metadata();
        let mut builder = SpanBuilder::new(Cow::Borrowed(meta.name()), true);
        if let Some(t) = self.tracer {
            builder = builder.with_tracer(t);
        }
        if let Some(p) = &parent {
            builder = builder.parent(p);
        }
        let mut hints = KindHints::default();
        if let Some(data) = builder.data_mut() {
            attrs.record(&mut Fields(SpanFields {
                data: &mut *data,
                hints: &mut hints,
                replace: false,
            }));
            self.describe(meta, self.level, |k, v| data.set(k, v));
        }
        let span = builder.kind(hints.kind()).start();
        if span.inner.is_some() {
            span_ref.extensions_mut().insert(Bridged { span, hints });
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: LayerContext<'_, S>) {
        let Some(span_ref) = ctx.span(id) else {
            return;
        };
        let mut ext = span_ref.extensions_mut();
        let Some(Bridged { span, hints }) = ext.get_mut::<Bridged>() else {
            return;
        };
        span.with_data(|data| {
            values.record(&mut Fields(SpanFields {
                data: &mut *data,
                hints: &mut *hints,
                replace: true,
            }));
            data.kind = hints.kind();
        });
    }

    fn on_event(&self, event: &Event<'_>, ctx: LayerContext<'_, S>) {
        if tracer::is_disabled() {
            return;
        }
        // Contextual events go to the SDK's current span, so a `tracing::info!` inside a
        // `#[traced]` function lands on that function's span.
        let span = if event.is_contextual() {
            Context::current_span()
        } else {
            match event.parent().and_then(|p| ctx.span(p)) {
                Some(p) => nearest(&p, false).unwrap_or(Span::noop()),
                None => Span::noop(),
            }
        };
        if !span.is_recording() {
            return;
        }
        let time = now();
        let meta = event.metadata();
        let mut fields = Fields(EventFields {
            message: None,
            attributes: Vec::with_capacity(meta.fields().len() + 2),
        });
        event.record(&mut fields);
        let EventFields {
            message,
            mut attributes,
        } = fields.0;
        self.describe(meta, true, |k, v| attributes.push((k, v)));
        let name = message.unwrap_or(Cow::Borrowed(meta.name()));
        let failed = self.error_status && *meta.level() == Level::ERROR;
        let error_type = failed
            .then(|| attributes.iter().find(|(k, _)| k == "error.type"))
            .flatten()
            .map(|(_, v)| v.clone());
        span.with_data(|d| {
            // The first error explains the failure; later ones are still there as events.
            if failed && d.status != Status::Error {
                d.status = Status::Error;
                d.status_message = Some(name.to_string());
                if let Some(t) = error_type {
                    d.set(Cow::Borrowed("error.type"), t);
                }
            }
            d.events.push(SpanEvent {
                name,
                time,
                attributes,
            });
        });
    }

    fn on_enter(&self, id: &Id, ctx: LayerContext<'_, S>) {
        let Some(span_ref) = ctx.span(id) else {
            return;
        };
        let entered = match span_ref.extensions().get::<Bridged>() {
            Some(b) => b.span.context(),
            None => return,
        };
        let Some(prev) = Context::replace_current(entered) else {
            return;
        };
        let entry = Entered {
            layer: self.id,
            span: id.into_u64(),
            prev,
        };
        let _ = ENTERED.try_with(|s| s.borrow_mut().push(entry));
    }

    fn on_exit(&self, id: &Id, _ctx: LayerContext<'_, S>) {
        let key = id.into_u64();
        let restore = ENTERED
            .try_with(|s| {
                let mut s = s.borrow_mut();
                let i = s
                    .iter()
                    .rposition(|e| e.layer == self.id && e.span == key)?;
                let entry = s.remove(i);
                if i == s.len() {
                    return Some(entry.prev);
                }
                // Exited out of order (allowed by `tracing`): the span entered after this one
                // stays current, and restores what this one replaced when it exits.
                s[i].prev = entry.prev;
                None
            })
            .ok()
            .flatten();
        if let Some(prev) = restore {
            drop(Context::replace_current(prev));
        }
    }

    fn on_close(&self, id: Id, ctx: LayerContext<'_, S>) {
        let Some(span_ref) = ctx.span(&id) else {
            return;
        };
        // Taken out first so the span ends (and processors run) outside the extensions lock.
        let bridged = span_ref.extensions_mut().remove::<Bridged>();
        drop(bridged);
    }
}
