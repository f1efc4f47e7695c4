//! [`ToolCall`]: one tool (function) execution, as a `tool` span.
//!
//! Attributes: `gen_ai.operation.name = execute_tool`, `gen_ai.tool.name`, `gen_ai.tool.call.id`,
//! `gen_ai.tool.description`, `gen_ai.tool.call.arguments`, `gen_ai.tool.call.result`,
//! `spanlens.tool.result_bytes` (size of the result in bytes, before any cut),
//! `spanlens.tool.{arguments,result}_truncated` (payloads above core's 256 KiB cap are cut),
//! `spanlens.tool.retry_count`. The duration is the span's.

use super::{cap_text, error_type_name};
use crate::attr::{Key, Value};
use crate::context::{Context, ContextGuard};
use crate::span::Span;
use spanlens_core::SpanKind;
use std::borrow::Cow;
use std::fmt;
use std::future::Future;

/// Tool arguments or a tool result: text, or structured JSON.
#[derive(Debug, Clone, PartialEq)]
pub enum ToolPayload {
    /// Plain text (a JSON document given as text stays text here; core parses it).
    Text(String),
    /// Structured JSON.
    Json(serde_json::Value),
}

impl ToolPayload {
    /// The attribute value, its size in bytes, and whether it was cut to the payload cap.
    fn into_attribute(self) -> (Value, usize, bool) {
        match self {
            ToolPayload::Text(t) => {
                let len = t.len();
                let (t, cut) = cap_text(t);
                (t.into(), len, cut)
            }
            ToolPayload::Json(serde_json::Value::String(s)) => {
                ToolPayload::Text(s).into_attribute()
            }
            ToolPayload::Json(v) => {
                let text = v.to_string();
                let len = text.len();
                if len <= spanlens_core::span::MAX_PAYLOAD_BYTES {
                    (v.into(), len, false)
                } else {
                    let (t, _) = cap_text(text);
                    (t.into(), len, true)
                }
            }
        }
    }
}

impl From<&str> for ToolPayload {
    fn from(s: &str) -> Self {
        ToolPayload::Text(s.to_string())
    }
}

impl From<String> for ToolPayload {
    fn from(s: String) -> Self {
        ToolPayload::Text(s)
    }
}

impl From<Cow<'_, str>> for ToolPayload {
    fn from(s: Cow<'_, str>) -> Self {
        ToolPayload::Text(s.into_owned())
    }
}

impl From<serde_json::Value> for ToolPayload {
    fn from(v: serde_json::Value) -> Self {
        ToolPayload::Json(v)
    }
}

impl From<&serde_json::Value> for ToolPayload {
    fn from(v: &serde_json::Value) -> Self {
        ToolPayload::Json(v.clone())
    }
}

/// A tool's successful output as [`run`] records it: implement it for your result types
/// (return `None` to record no result).
pub trait ToolOutput {
    /// The payload to record as `gen_ai.tool.call.result`.
    fn tool_output(&self) -> Option<ToolPayload>;
}

impl ToolOutput for str {
    fn tool_output(&self) -> Option<ToolPayload> {
        Some(self.into())
    }
}

impl ToolOutput for String {
    fn tool_output(&self) -> Option<ToolPayload> {
        Some(self.as_str().into())
    }
}

impl ToolOutput for Cow<'_, str> {
    fn tool_output(&self) -> Option<ToolPayload> {
        Some(self.as_ref().into())
    }
}

impl ToolOutput for serde_json::Value {
    fn tool_output(&self) -> Option<ToolPayload> {
        Some(self.into())
    }
}

impl ToolOutput for () {
    fn tool_output(&self) -> Option<ToolPayload> {
        None
    }
}

macro_rules! json_output {
    ($($t:ty),*) => {$(
        impl ToolOutput for $t {
            fn tool_output(&self) -> Option<ToolPayload> {
                Some(ToolPayload::Json(serde_json::Value::from(*self)))
            }
        }
    )*};
}
json_output!(bool, i8, i16, i32, i64, isize, u8, u16, u32, u64, usize, f32, f64);

impl<T: ToolOutput + ?Sized> ToolOutput for &T {
    fn tool_output(&self) -> Option<ToolPayload> {
        (**self).tool_output()
    }
}

impl<T: ToolOutput + ?Sized> ToolOutput for Box<T> {
    fn tool_output(&self) -> Option<ToolPayload> {
        (**self).tool_output()
    }
}

impl<T: ToolOutput> ToolOutput for Option<T> {
    fn tool_output(&self) -> Option<ToolPayload> {
        self.as_ref().and_then(ToolOutput::tool_output)
    }
}

impl ToolOutput for Vec<String> {
    fn tool_output(&self) -> Option<ToolPayload> {
        Some(ToolPayload::Json(self.clone().into()))
    }
}

/// A tool execution, recorded as a `tool` span that ends when the `ToolCall` is dropped (or at
/// [`ToolCall::finish`]). Methods take `&self` and chain.
#[must_use = "the tool span ends when the ToolCall is dropped; bind it"]
pub struct ToolCall {
    span: Span,
    recording: bool,
}

impl ToolCall {
    /// Opens a `tool` span named `name` as a child of the current span.
    pub fn start(name: impl Into<Cow<'static, str>>) -> ToolCall {
        let name = name.into();
        let span = crate::span(name.clone())
            .kind(SpanKind::Tool)
            .attr("gen_ai.operation.name", "execute_tool")
            .attr("gen_ai.tool.name", name)
            .start();
        ToolCall {
            recording: span.is_recording(),
            span,
        }
    }

    /// The tool's span.
    pub fn span(&self) -> &Span {
        &self.span
    }

    /// Makes the tool's span current on this thread until the guard drops.
    pub fn enter(&self) -> ContextGuard {
        self.span.enter()
    }

    /// The tool's span as a context to carry into tasks.
    pub fn context(&self) -> Context {
        self.span.context()
    }

    /// Runs `f` with the tool's span current.
    pub fn in_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        self.span.in_scope(f)
    }

    /// The model's tool-call id this execution answers.
    pub fn call_id(&self, id: impl Into<String>) -> &Self {
        self.span.set_attribute("gen_ai.tool.call.id", id.into());
        self
    }

    /// The tool's description.
    pub fn description(&self, text: impl Into<String>) -> &Self {
        self.span
            .set_attribute("gen_ai.tool.description", text.into());
        self
    }

    /// The arguments the tool was called with (JSON or text).
    pub fn arguments(&self, args: impl Into<ToolPayload>) -> &Self {
        if self.recording {
            let (v, _, cut) = args.into().into_attribute();
            let mut attrs: Vec<(Key, Value)> = vec![("gen_ai.tool.call.arguments".into(), v)];
            if cut {
                attrs.push(("spanlens.tool.arguments_truncated".into(), true.into()));
            }
            self.span.set_attributes(attrs);
        }
        self
    }

    /// The tool's result (JSON or text), with its size as `spanlens.tool.result_bytes`.
    pub fn result(&self, result: impl Into<ToolPayload>) -> &Self {
        if self.recording {
            let (v, len, cut) = result.into().into_attribute();
            let mut attrs: Vec<(Key, Value)> = vec![
                ("gen_ai.tool.call.result".into(), v),
                ("spanlens.tool.result_bytes".into(), len.into()),
            ];
            if cut {
                attrs.push(("spanlens.tool.result_truncated".into(), true.into()));
            }
            self.span.set_attributes(attrs);
        }
        self
    }

    /// How many times the tool was retried before this outcome.
    pub fn retry_count(&self, n: u32) -> &Self {
        self.span.set_attribute("spanlens.tool.retry_count", n);
        self
    }

    /// Marks the execution successful.
    pub fn success(&self) -> &Self {
        self.span.set_ok();
        self
    }

    /// Marks the execution failed; `error.type` is the error's type name when it says something.
    pub fn failure<E: fmt::Display + ?Sized>(&self, err: &E) -> &Self {
        let ty = error_type_name::<E>();
        self.span.set_error(err.to_string(), ty.as_deref());
        self
    }

    /// Records a closure's or future's outcome: its output as the result, or its error.
    fn outcome<T: ToolOutput, E: fmt::Display>(&self, out: &Result<T, E>) {
        match out {
            Ok(v) => {
                if self.recording {
                    if let Some(p) = v.tool_output() {
                        self.result(p);
                    }
                }
                self.success();
            }
            Err(e) => {
                self.failure(e);
            }
        }
    }

    /// Ends the span now.
    pub fn finish(self) {}
}

impl fmt::Debug for ToolCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ToolCall")
            .field("span", &self.span)
            .finish()
    }
}

/// Runs a tool inside its own `tool` span: records the arguments, then the output as the result
/// (see [`ToolOutput`]) or the error, and the duration.
pub fn run<T, E, F>(
    name: impl Into<Cow<'static, str>>,
    args: impl Into<ToolPayload>,
    f: F,
) -> Result<T, E>
where
    F: FnOnce() -> Result<T, E>,
    T: ToolOutput,
    E: fmt::Display,
{
    let call = ToolCall::start(name);
    call.arguments(args);
    let out = call.in_scope(f);
    call.outcome(&out);
    out
}

/// The async form of [`run`]: the span starts now (as a child of the current span), is current
/// while `fut` is polled, and ends when it completes.
pub fn run_async<T, E, Fut>(
    name: impl Into<Cow<'static, str>>,
    args: impl Into<ToolPayload>,
    fut: Fut,
) -> impl Future<Output = Result<T, E>>
where
    Fut: Future<Output = Result<T, E>>,
    T: ToolOutput,
    E: fmt::Display,
{
    let call = ToolCall::start(name);
    call.arguments(args);
    async move {
        let out = call.context().wrap(fut).await;
        call.outcome(&out);
        out
    }
}
