//! Spanlens SDK: coherent tracing for LLM applications and agent pipelines.
//!
//! Spans nest by themselves (`#[traced]`, [`Traceable`], [`span`]), carry exact token counts and
//! cost, and leave the application through processors that never block it.
//!
//! ```no_run
//! let _guard = spanlens::init(spanlens::Config::from_env());
//! let span = spanlens::span("handle request").kind(spanlens::SpanKind::Pipeline).start();
//! let _in = span.enter();
//! // ... work; child spans attach to `span` automatically
//! ```

// Span records are boxed on purpose: they move between threads by pointer and are recycled,
// so `Vec<Box<SpanData>>` is the intended shape, not an accident.
#![allow(clippy::vec_box)]
// The README's quick start is compiled as a doc test so it cannot drift from the API.
#![cfg_attr(all(doctest, feature = "tokio"), doc = include_str!("../README.md"))]

mod attr;
mod clock;
pub mod config;
mod context;
pub mod convert;
pub mod export;
mod pool;
pub mod processor;
pub mod record;
mod record_cell;
pub mod retry;
mod span;
mod span_ref;
mod traceable;
mod tracer;
#[cfg(feature = "tracing")]
pub mod tracing_bridge;

#[doc(hidden)]
pub mod __private;

pub use attr::{AttributeList, Key, Value};
pub use config::Config;
pub use context::{
    scope, Context, ContextGuard, FutureExt, Instrumented, Scope, ScopeBuilder, WithContext,
};
pub use processor::BatchStats;
pub use span::{span, Span, SpanBuilder, SpanData, SpanEvent};
pub use spanlens_core::{SpanKind, Status};
pub use spanlens_macros::traced;
pub use traceable::Traceable;
pub use tracer::{
    global_tracer, init, set_disabled, stats, Guard, Resource, Tracer, TracerBuilder,
};
#[cfg(feature = "tracing")]
pub use tracing_bridge::{tracing_layer, TracingLayer};
