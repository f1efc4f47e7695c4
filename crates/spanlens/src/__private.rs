//! Runtime support for the code `#[traced]` generates. Not a public API: anything here may
//! change in any release.
//!
//! Three jobs:
//! - enter a span around a sync body, or instrument an async one, and mark the span failed when
//!   the body panics;
//! - record a function's outcome: `Err(e)` of a `Result` whose error is `Display` (or `Debug`)
//!   becomes the span's error, `Ok` marks it successful, any other return type records nothing;
//! - capture arguments and the return value as size-capped `Debug` text, with `"<not Debug>"`
//!   for values whose type is not (known to be) `Debug`.
//!
//! The outcome and capture choices are made at compile time by "autoref specialisation": the
//! generated code calls a method on a stack of references to a wrapper (`(&&&&Outcome(&r))`), and
//! method resolution picks the impl that needs the fewest auto-dereferences among those whose
//! bounds hold. Each tier is a separate trait with the same method name, implemented for the
//! wrapper behind a different number of references. For a generic type without the needed bound
//! the lower tier is chosen (the decision is made where the function is defined).

use crate::attr::{Key, Value};
use crate::context::{ContextGuard, FutureExt, Instrumented};
use crate::span::Span;
use std::fmt::{self, Debug, Display, Write as _};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

/// What a value whose type is not `Debug` is recorded as.
pub const NOT_DEBUG: &str = "<not Debug>";

/// Attribute flagging a cut `input.value`.
pub const INPUT_TRUNCATED: &str = "spanlens.input.truncated";

/// Attribute flagging a cut `output.value`.
pub const OUTPUT_TRUNCATED: &str = "spanlens.output.truncated";

// ---------------------------------------------------------------------------------------------
// Capped text

/// A `fmt::Write` sink that keeps at most `limit` bytes, cut on a char boundary.
///
/// Once full it reports `fmt::Error`, which stops a well-behaved `Debug` impl early, so a huge
/// value costs about `limit` bytes of formatting rather than its full size.
#[derive(Debug)]
pub struct CappedText {
    buf: String,
    limit: usize,
    truncated: bool,
}

impl CappedText {
    /// An empty sink keeping at most `limit` bytes.
    pub fn new(limit: usize) -> CappedText {
        CappedText {
            buf: String::new(),
            limit,
            truncated: false,
        }
    }

    /// The text kept so far.
    pub fn as_str(&self) -> &str {
        &self.buf
    }

    /// True when something was cut.
    pub fn is_truncated(&self) -> bool {
        self.truncated
    }

    /// The text kept.
    pub fn into_string(self) -> String {
        self.buf
    }
}

impl fmt::Write for CappedText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.truncated {
            return Err(fmt::Error);
        }
        let room = self.limit.saturating_sub(self.buf.len());
        if s.len() <= room {
            self.buf.push_str(s);
            return Ok(());
        }
        let mut cut = room;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        self.buf.push_str(&s[..cut]);
        self.truncated = true;
        Err(fmt::Error)
    }
}

// ---------------------------------------------------------------------------------------------
// Entering spans

/// A handle on `span` that does not end it.
#[inline]
fn handle(span: &Span) -> Span {
    Span::borrowed(span.inner.clone())
}

/// Calls `f`. The body of a sync function runs in a closure passed here so that `return` and `?`
/// leave the closure, not the function; taking `FnOnce` lets the closure be inferred as
/// `FnOnce`, so bodies may return borrows of moved-in captures (`&mut self` → `&mut T`).
#[inline(always)]
pub fn call_once<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// Notes a panic that started while a span's body was running.
struct PanicWatch<'a> {
    span: &'a Span,
    was_panicking: bool,
}

impl<'a> PanicWatch<'a> {
    #[inline]
    fn new(span: &'a Span) -> PanicWatch<'a> {
        PanicWatch {
            span,
            // A noop span needs no watch; `true` makes the drop check skip it.
            was_panicking: span.inner.is_none() || std::thread::panicking(),
        }
    }
}

impl Drop for PanicWatch<'_> {
    fn drop(&mut self) {
        if !self.was_panicking && std::thread::panicking() {
            self.span.set_error("panicked", Some("panic"));
        }
    }
}

/// Keeps a span current for a sync body and marks it failed if the body panics.
pub struct SyncScope<'a> {
    // Field order matters: the watch records the panic before the context is restored.
    _watch: PanicWatch<'a>,
    _ctx: Option<ContextGuard>,
}

/// Makes `span` current until the returned guard drops.
///
/// Entering a noop span would only re-attach the current context, so it is skipped.
#[inline]
pub fn enter_sync(span: &Span) -> SyncScope<'_> {
    SyncScope {
        _watch: PanicWatch::new(span),
        _ctx: span.inner.as_ref().map(|_| span.enter()),
    }
}

pin_project_lite::pin_project! {
    /// The body of a traced async function: calls `record` with its output when it completes,
    /// and marks the span failed if a poll panics. Runs inside [`Instrumented`], so the span is
    /// still open (and current) when `record` runs, and ends right after.
    pub struct Recorded<F, C> {
        #[pin]
        inner: F,
        handle: Span,
        record: Option<C>,
    }
}

impl<F, C> Future for Recorded<F, C>
where
    F: Future,
    C: FnOnce(&Span, &F::Output),
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _watch = PanicWatch::new(this.handle);
        let out = match this.inner.poll(cx) {
            Poll::Ready(out) => out,
            Poll::Pending => return Poll::Pending,
        };
        if let Some(record) = this.record.take() {
            record(this.handle, &out);
        }
        Poll::Ready(out)
    }
}

/// The future of a traced async function.
pub type Traced<F, C> = Instrumented<Recorded<F, C>>;

/// Instruments `fut` with `span` (see [`FutureExt::instrument`]): the span is current on every
/// poll and ends when `fut` completes, after `record` has seen the output.
#[inline]
pub fn traced_future<F, C>(span: Span, fut: F, record: C) -> Traced<F, C>
where
    F: Future,
    C: FnOnce(&Span, &F::Output),
{
    Recorded {
        inner: fut,
        handle: handle(&span),
        record: Some(record),
    }
    .instrument(span)
}

/// `fut`, unchanged; names its output type so that `?` in an async body knows what to convert to.
#[inline(always)]
pub fn returning<R, F: Future<Output = R>>(fut: F) -> F {
    fut
}

// ---------------------------------------------------------------------------------------------
// Outcome

/// Wraps a function's return value for outcome recording (see the module docs).
pub struct Outcome<'a, T>(pub &'a T);

/// Tier 1: `Result<T, E: Display>`.
pub trait OutcomeDisplay {
    /// Records the outcome on `span`.
    fn __spanlens_outcome(&self, span: &Span, max_bytes: usize);
}

/// Tier 2: `Result<T, E: Debug>`.
pub trait OutcomeDebug {
    /// Records the outcome on `span`.
    fn __spanlens_outcome(&self, span: &Span, max_bytes: usize);
}

/// Tier 3: any other `Result`.
pub trait OutcomeResult {
    /// Records the outcome on `span`.
    fn __spanlens_outcome(&self, span: &Span, max_bytes: usize);
}

/// Tier 4: anything else: the function returned normally, so the span is `ok` (unless the
/// function marked it failed itself: `set_ok` never overrides an error).
pub trait OutcomeOther {
    /// Sets `ok`.
    fn __spanlens_outcome(&self, span: &Span, max_bytes: usize);
}

fn record_err<E>(span: &Span, max_bytes: usize, write: impl FnOnce(&mut CappedText)) {
    if !span.is_recording() {
        return;
    }
    let mut text = CappedText::new(max_bytes);
    write(&mut text);
    let ty = short_type_name(std::any::type_name::<E>());
    span.set_error(text.into_string(), Some(&ty));
}

impl<T, E: Display> OutcomeDisplay for &&&Outcome<'_, Result<T, E>> {
    fn __spanlens_outcome(&self, span: &Span, max_bytes: usize) {
        match self.0 {
            Ok(_) => span.set_ok(),
            Err(e) => record_err::<E>(span, max_bytes, |t| {
                let _ = write!(t, "{e}");
            }),
        }
    }
}

impl<T, E: Debug> OutcomeDebug for &&Outcome<'_, Result<T, E>> {
    fn __spanlens_outcome(&self, span: &Span, max_bytes: usize) {
        match self.0 {
            Ok(_) => span.set_ok(),
            Err(e) => record_err::<E>(span, max_bytes, |t| {
                let _ = write!(t, "{e:?}");
            }),
        }
    }
}

impl<T, E> OutcomeResult for &Outcome<'_, Result<T, E>> {
    fn __spanlens_outcome(&self, span: &Span, max_bytes: usize) {
        match self.0 {
            Ok(_) => span.set_ok(),
            Err(_) => record_err::<E>(span, max_bytes, |t| {
                let _ = t.write_str("error");
            }),
        }
    }
}

impl<T> OutcomeOther for Outcome<'_, T> {
    #[inline(always)]
    fn __spanlens_outcome(&self, span: &Span, _max_bytes: usize) {
        span.set_ok();
    }
}

/// A type name without module paths: `alloc::boxed::Box<dyn core::error::Error>` →
/// `Box<dyn Error>`, `std::io::error::Error` → `Error`.
pub fn short_type_name(full: &str) -> String {
    let mut out = String::with_capacity(full.len());
    let mut rest = full;
    while let Some(i) = rest.find("::") {
        out.push_str(&rest[..i]);
        // Drop the path segment just written: back to the last char that cannot be in one.
        let keep = out
            .char_indices()
            .rev()
            .find(|(_, c)| !(c.is_alphanumeric() || *c == '_'))
            .map_or(0, |(p, c)| p + c.len_utf8());
        out.truncate(keep);
        rest = &rest[i + 2..];
    }
    out.push_str(rest);
    out
}

// ---------------------------------------------------------------------------------------------
// Capture

/// Wraps an argument or return value for `Debug` capture (see the module docs).
pub struct Capture<'a, T: ?Sized>(pub &'a T);

/// Tier 0 of argument capture: text (`&str`, `String`, `Cow<str>`, …), stored as the string
/// itself, not its quoted `Debug` text.
pub trait CaptureText {
    /// Captures the argument `name` into `args`.
    fn __spanlens_arg(&self, args: &mut Args, name: &'static str);
}

/// Tier ½ of argument capture: numbers and booleans, stored as JSON numbers and booleans.
pub trait CaptureScalar {
    /// Captures the argument `name` into `args`.
    fn __spanlens_arg(&self, args: &mut Args, name: &'static str);
}

/// Tier 1: `Debug` values (arguments: their `Debug` text as a JSON string).
pub trait CaptureDebug {
    /// Writes the value's `Debug` text.
    fn __spanlens_debug(&self, out: &mut CappedText);
    /// Captures the argument `name` into `args`.
    fn __spanlens_arg(&self, args: &mut Args, name: &'static str);
}

/// Tier 2: anything else.
pub trait CaptureOther {
    /// Writes [`NOT_DEBUG`].
    fn __spanlens_debug(&self, out: &mut CappedText);
    /// Captures the argument `name` into `args`.
    fn __spanlens_arg(&self, args: &mut Args, name: &'static str);
}

impl<T: AsRef<str> + ?Sized> CaptureText for &&&Capture<'_, T> {
    fn __spanlens_arg(&self, args: &mut Args, name: &'static str) {
        args.arg(name, |out| {
            let _ = out.write_str(self.0.as_ref());
        });
    }
}

/// Numbers and booleans: what JSON can hold as itself.
pub trait JsonScalar {
    /// The JSON value (`None`: not representable, e.g. a NaN, which is kept as text).
    fn json(&self) -> Option<serde_json::Value>;
}

macro_rules! json_scalars {
    ($($t:ty),*) => {$(
        impl JsonScalar for $t {
            fn json(&self) -> Option<serde_json::Value> {
                serde_json::to_value(self).ok().filter(|v| !v.is_null())
            }
        }
    )*};
}
json_scalars!(i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, u128, usize, f32, f64, bool);

impl<T: JsonScalar + Debug + ?Sized> CaptureScalar for &&Capture<'_, T> {
    fn __spanlens_arg(&self, args: &mut Args, name: &'static str) {
        match self.0.json() {
            Some(v) => args.value(name, v),
            None => args.arg(name, |out| {
                let _ = write!(out, "{:?}", self.0);
            }),
        }
    }
}

impl<T: Debug + ?Sized> CaptureDebug for &Capture<'_, T> {
    fn __spanlens_debug(&self, out: &mut CappedText) {
        let _ = write!(out, "{:?}", self.0);
    }
    fn __spanlens_arg(&self, args: &mut Args, name: &'static str) {
        args.arg(name, |out| self.__spanlens_debug(out));
    }
}

impl<T: ?Sized> CaptureOther for Capture<'_, T> {
    fn __spanlens_debug(&self, out: &mut CappedText) {
        let _ = out.write_str(NOT_DEBUG);
    }
    fn __spanlens_arg(&self, args: &mut Args, name: &'static str) {
        args.arg(name, |out| self.__spanlens_debug(out));
    }
}

/// Captured arguments: one JSON object sharing one byte budget, in order. Text arguments are
/// strings, numbers and booleans are themselves, anything else is its `Debug` text.
pub struct Args {
    map: serde_json::Map<String, serde_json::Value>,
    budget: usize,
    truncated: bool,
}

impl Args {
    /// Captures one argument.
    pub fn arg(&mut self, name: &'static str, write: impl FnOnce(&mut CappedText)) {
        let mut text = CappedText::new(self.budget);
        write(&mut text);
        self.budget -= text.as_str().len();
        self.truncated |= text.is_truncated();
        self.map.insert(
            name.to_string(),
            serde_json::Value::String(text.into_string()),
        );
    }

    /// Captures one number or boolean, when its text fits the budget left (else an empty
    /// string, marked truncated, as a cut text would be).
    pub fn value(&mut self, name: &'static str, v: serde_json::Value) {
        let len = v.to_string().len();
        if len > self.budget {
            self.truncated = true;
            self.map
                .insert(name.to_string(), serde_json::Value::String(String::new()));
            return;
        }
        self.budget -= len;
        self.map.insert(name.to_string(), v);
    }
}

/// Records the arguments `capture` writes as `input.value` (a JSON object of `Debug` texts) when
/// `span` is recording; `capture` is not called otherwise.
#[inline]
pub fn record_input(span: &Span, max_bytes: usize, capture: impl FnOnce(&mut Args)) {
    if !span.is_recording() {
        return;
    }
    let mut args = Args {
        map: serde_json::Map::new(),
        budget: max_bytes,
        truncated: false,
    };
    capture(&mut args);
    let mut attrs: Vec<(Key, Value)> = vec![
        (
            "input.value".into(),
            Value::Json(Box::new(serde_json::Value::Object(args.map))),
        ),
        (
            "input.mime_type".into(),
            Value::Str("application/json".into()),
        ),
    ];
    if args.truncated {
        attrs.push((INPUT_TRUNCATED.into(), Value::Bool(true)));
    }
    span.set_attributes(attrs);
}

/// Records the `Debug` text `capture` writes as `output.value` when `span` is recording;
/// `capture` is not called otherwise.
#[inline]
pub fn record_output(span: &Span, max_bytes: usize, capture: impl FnOnce(&mut CappedText)) {
    if !span.is_recording() {
        return;
    }
    let mut text = CappedText::new(max_bytes);
    capture(&mut text);
    let truncated = text.is_truncated();
    let mut attrs: Vec<(Key, Value)> = vec![
        ("output.value".into(), Value::Str(text.into_string().into())),
        ("output.mime_type".into(), Value::Str("text/plain".into())),
    ];
    if truncated {
        attrs.push((OUTPUT_TRUNCATED.into(), Value::Bool(true)));
    }
    span.set_attributes(attrs);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capped_text_cuts_on_a_char_boundary() {
        let mut t = CappedText::new(5);
        assert!(write!(t, "ab").is_ok());
        assert!(write!(t, "cdé").is_err()); // 'é' is 2 bytes and would end at byte 6
        assert_eq!(t.as_str(), "abcd");
        assert!(t.is_truncated());
        assert!(t.write_str("x").is_err());
        assert_eq!(t.as_str(), "abcd");

        let mut exact = CappedText::new(3);
        assert!(exact.write_str("abc").is_ok());
        assert!(!exact.is_truncated());
    }

    #[test]
    fn type_names_lose_their_module_paths() {
        assert_eq!(short_type_name("std::io::error::Error"), "Error");
        assert_eq!(short_type_name("u32"), "u32");
        assert_eq!(
            short_type_name("alloc::boxed::Box<dyn core::error::Error + core::marker::Send>"),
            "Box<dyn Error + Send>"
        );
        assert_eq!(
            short_type_name("my_crate::Wrapper<alloc::string::String, (i32, my_crate::inner::E)>"),
            "Wrapper<String, (i32, E)>"
        );
        assert_eq!(short_type_name("&my::Thing"), "&Thing");
    }

    #[test]
    #[allow(clippy::needless_borrow)] // the borrows are the point: they pick the tier
    fn outcome_tiers_are_chosen_by_the_error_type() {
        #[allow(unused_imports)]
        use super::{
            OutcomeDebug as _, OutcomeDisplay as _, OutcomeOther as _, OutcomeResult as _,
        };
        struct Opaque;
        let t = crate::Tracer::builder().build();
        let root = t.span("r").start();
        let _in = root.enter();
        let check = |f: &dyn Fn(&Span)| {
            let s = crate::span("x").start();
            f(&s);
            let mut out = None;
            s.with_data(|d| out = Some((d.status, d.status_message.clone())));
            out.unwrap()
        };
        use spanlens_core::Status;
        let display: Result<(), String> = Err("boom".into());
        assert_eq!(
            check(&|s| (&&&&Outcome(&display)).__spanlens_outcome(s, 64)),
            (Status::Error, Some("boom".into()))
        );
        let debug: Result<(), ()> = Err(());
        assert_eq!(
            check(&|s| (&&&&Outcome(&debug)).__spanlens_outcome(s, 64)),
            (Status::Error, Some("()".into()))
        );
        let opaque: Result<(), Opaque> = Err(Opaque);
        assert_eq!(
            check(&|s| (&&&&Outcome(&opaque)).__spanlens_outcome(s, 64)),
            (Status::Error, Some("error".into()))
        );
        let ok: Result<u8, Opaque> = Ok(1);
        assert_eq!(
            check(&|s| (&&&&Outcome(&ok)).__spanlens_outcome(s, 64)).0,
            Status::Ok
        );
        // Any other value: the function returned, so it succeeded…
        let other = 5u8;
        assert_eq!(
            check(&|s| (&&&&Outcome(&other)).__spanlens_outcome(s, 64)),
            (Status::Ok, None)
        );
        // …unless the body marked its span failed itself: that error stays.
        assert_eq!(
            check(&|s| {
                s.set_error("bad input", Some("Validation"));
                (&&&&Outcome(&other)).__spanlens_outcome(s, 64)
            }),
            (Status::Error, Some("bad input".into()))
        );
    }
}
