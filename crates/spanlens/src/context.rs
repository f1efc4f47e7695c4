//! The current-span context: thread-local in sync code, carried by futures in async code, and
//! moved explicitly (and cheaply: two counted-handle clones) into spawned tasks and threads.

use crate::attr::{AttributeList, Value};
use crate::span::Span;
use crate::span_ref::SpanRef;
use std::cell::RefCell;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

thread_local! {
    static CURRENT: RefCell<Context> = const { RefCell::new(Context { span: None, scope: None }) };
}

/// A snapshot of "where we are": the current span and the user/session/tag scope.
///
/// Clone it and [`attach`](Context::attach) it in another thread, or [`wrap`](Context::wrap) a
/// future with it before `tokio::spawn`, to keep spans of that work under the same parent.
#[derive(Clone, Default)]
pub struct Context {
    pub(crate) span: Option<SpanRef>,
    pub(crate) scope: Option<Arc<Scope>>,
}

impl Context {
    /// The context current on this thread.
    pub fn current() -> Context {
        CURRENT.with(|c| c.borrow().clone())
    }

    /// True when a span is current on this thread (cheaper than cloning the context).
    #[inline]
    pub(crate) fn has_current_span() -> bool {
        CURRENT.with(|c| c.borrow().span.is_some())
    }

    /// Makes `ctx` current and returns the context it replaced (`None` during thread teardown).
    ///
    /// For bridges that cannot hold a [`ContextGuard`] (a `tracing` layer sees enter and exit as
    /// two separate calls) and so keep the previous context themselves.
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))]
    pub(crate) fn replace_current(ctx: Context) -> Option<Context> {
        CURRENT.try_with(|c| c.replace(ctx)).ok()
    }

    /// A handle on the current span that does not end it (no-op when there is none).
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))]
    pub(crate) fn current_span() -> Span {
        Span::borrowed(CURRENT.try_with(|c| c.borrow().span.clone()).ok().flatten())
    }

    /// The current span, as a handle that does not end it.
    pub fn span(&self) -> Span {
        Span::borrowed(self.span.clone())
    }

    /// Makes this context current until the guard drops.
    pub fn attach(self) -> ContextGuard {
        let prev = CURRENT.with(|c| c.replace(self));
        ContextGuard {
            prev: Some(prev),
            _not_send: PhantomData,
        }
    }

    /// Runs `f` inside this context.
    pub fn run<R>(self, f: impl FnOnce() -> R) -> R {
        let _g = self.attach();
        f()
    }

    /// A future that runs inside this context on every poll (use before `tokio::spawn`).
    pub fn wrap<F: Future>(self, fut: F) -> WithContext<F> {
        WithContext {
            ctx: self,
            inner: fut,
        }
    }
}

/// Restores the previous context when dropped. Not `Send`: it belongs to the thread it was made on.
#[must_use = "the context is detached when the guard drops"]
pub struct ContextGuard {
    prev: Option<Context>,
    _not_send: PhantomData<*const ()>,
}

impl Drop for ContextGuard {
    fn drop(&mut self) {
        if let Some(prev) = self.prev.take() {
            // During thread teardown the slot may be gone; nothing to restore then.
            let _ = CURRENT.try_with(|c| c.replace(prev));
        }
    }
}

/// User, session, tags and metadata applied to every span started inside a scope.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scope {
    pub(crate) user_id: Option<String>,
    pub(crate) session_id: Option<String>,
    pub(crate) tags: Vec<String>,
    pub(crate) metadata: Vec<(String, Value)>,
}

impl Scope {
    pub(crate) fn apply(&self, attrs: &mut AttributeList) {
        if let Some(u) = &self.user_id {
            attrs.push(("user.id".into(), Value::Str(u.clone().into())));
        }
        if let Some(s) = &self.session_id {
            attrs.push(("session.id".into(), Value::Str(s.clone().into())));
        }
        if !self.tags.is_empty() {
            attrs.push(("spanlens.tags".into(), Value::StrList(self.tags.clone())));
        }
        for (k, v) in &self.metadata {
            attrs.push((format!("spanlens.metadata.{k}").into(), v.clone()));
        }
    }
}

/// Starts describing a scope; nested scopes add to the enclosing one.
pub fn scope() -> ScopeBuilder {
    ScopeBuilder {
        scope: Context::current()
            .scope
            .map(|s| (*s).clone())
            .unwrap_or_default(),
    }
}

/// Builder of a [`Scope`].
#[must_use = "enter the scope with .enter(), .run() or .wrap()"]
pub struct ScopeBuilder {
    scope: Scope,
}

impl ScopeBuilder {
    /// The end user.
    pub fn user(mut self, id: impl Into<String>) -> Self {
        self.scope.user_id = Some(id.into());
        self
    }

    /// The session or conversation.
    pub fn session(mut self, id: impl Into<String>) -> Self {
        self.scope.session_id = Some(id.into());
        self
    }

    /// Adds a tag.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        let t = tag.into();
        if !self.scope.tags.contains(&t) {
            self.scope.tags.push(t);
        }
        self
    }

    /// Adds a metadata entry.
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        let k = key.into();
        self.scope.metadata.retain(|(x, _)| *x != k);
        self.scope.metadata.push((k, value.into()));
        self
    }

    fn context(self) -> Context {
        Context {
            span: Context::current().span,
            scope: Some(Arc::new(self.scope)),
        }
    }

    /// Enters the scope on this thread until the guard drops.
    pub fn enter(self) -> ContextGuard {
        self.context().attach()
    }

    /// Runs `f` inside the scope.
    pub fn run<R>(self, f: impl FnOnce() -> R) -> R {
        self.context().run(f)
    }

    /// Runs a future inside the scope.
    pub fn wrap<F: Future>(self, fut: F) -> WithContext<F> {
        self.context().wrap(fut)
    }
}

pin_project_lite::pin_project! {
    /// A future polled inside a [`Context`].
    pub struct WithContext<F> {
        ctx: Context,
        #[pin]
        inner: F,
    }
}

impl<F: Future> Future for WithContext<F> {
    type Output = F::Output;
    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _g = this.ctx.clone().attach();
        this.inner.poll(cx)
    }
}

pin_project_lite::pin_project! {
    /// A future whose span is current while it is polled and ends when it completes.
    pub struct Instrumented<F> {
        span: Option<Span>,
        #[pin]
        inner: F,
    }
}

impl<F: Future> Future for Instrumented<F> {
    type Output = F::Output;
    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        let this = self.project();
        let out = {
            let _g = this.span.as_ref().map(Span::enter);
            this.inner.poll(cx)
        };
        if out.is_ready() {
            // End at completion, not whenever the wrapper happens to be dropped.
            this.span.take();
        }
        out
    }
}

/// Extension methods tying futures to spans and contexts.
pub trait FutureExt: Future + Sized {
    /// Polls this future inside `span` and ends the span when the future completes.
    fn instrument(self, span: Span) -> Instrumented<Self> {
        Instrumented {
            span: Some(span),
            inner: self,
        }
    }

    /// Polls this future inside the context current now (for `tokio::spawn`).
    fn in_current_context(self) -> WithContext<Self> {
        Context::current().wrap(self)
    }
}

impl<F: Future> FutureExt for F {}
