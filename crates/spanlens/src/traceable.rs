//! `Traceable`: a component that names its own kind and describes itself on its span.

use crate::span::{span, Span};
use spanlens_core::SpanKind;
use std::borrow::Cow;
use std::future::Future;

/// A pipeline component (agent, tool, retriever, …) that knows how it should be traced.
///
/// Running it through [`Traceable::trace`] or [`Traceable::trace_async`] opens a child span of
/// the current one with the component's kind, name and attributes, and records the result.
/// Re-entering the same component (same kind and [`identity`](Traceable::identity)) while its
/// span is open reuses that span instead of nesting a duplicate.
pub trait Traceable {
    /// What the component produces.
    type Output;

    /// The component's kind.
    fn kind(&self) -> SpanKind;

    /// The span name.
    fn name(&self) -> Cow<'static, str>;

    /// Identifies this instance for duplicate prevention; `None` never deduplicates.
    fn identity(&self) -> Option<String> {
        Some(self.name().into_owned())
    }

    /// Adds the component's own attributes when its span starts.
    fn span_attributes(&self, _span: &Span) {}

    /// Adds attributes describing the result when the work finishes.
    fn result_attributes(&self, _span: &Span, _output: &Self::Output) {}

    /// Runs `work` inside this component's span.
    fn trace<F>(&self, work: F) -> Self::Output
    where
        F: FnOnce(&Span) -> Self::Output,
    {
        let s = self.start_span();
        let out = s.in_scope(|| work(&s));
        self.result_attributes(&s, &out);
        out
    }

    /// Runs a future inside this component's span.
    fn trace_async<F>(&self, work: F) -> impl Future<Output = Self::Output>
    where
        F: Future<Output = Self::Output>,
    {
        let s = self.start_span();
        async move {
            let out = s.context().wrap(work).await;
            self.result_attributes(&s, &out);
            out
        }
    }

    /// Starts (or re-enters) this component's span without entering it.
    fn start_span(&self) -> Span {
        let mut b = span(self.name()).kind(self.kind());
        if let Some(id) = self.identity() {
            b = b.identity(id);
        }
        let s = b.start();
        self.span_attributes(&s);
        s
    }
}
