//! Span processors: what happens to a span when it starts and ends.
//!
//! `on_end` runs on the application's thread, so every processor here is quick there: the batch
//! processor only enqueues, the console processor buffers until its trace ends.

mod batch;
mod console;
mod jsonl;
mod memory;
mod ring;

pub use batch::{BatchConfig, BatchProcessor, BatchStats};
pub use console::ConsoleProcessor;
pub use jsonl::JsonlProcessor;
pub use memory::InMemoryProcessor;

use crate::span::SpanData;

/// A processor failed to flush or shut down.
#[derive(Debug, thiserror::Error)]
pub enum ProcessorError {
    /// The processor was already shut down.
    #[error("processor already shut down")]
    ShutDown,
    /// Writing or exporting failed.
    #[error("{0}")]
    Failed(String),
}

/// Receives spans as they start and end.
pub trait SpanProcessor: Send + Sync {
    /// Called when a span starts (with no end time yet).
    fn on_start(&self, _span: &SpanData) {}
    /// Called when a span ends. Must not block the application. The span comes boxed so
    /// processors can keep it without copying it.
    fn on_end(&self, span: Box<SpanData>);
    /// Exports or writes everything held so far, waiting for it.
    fn force_flush(&self) -> Result<(), ProcessorError> {
        Ok(())
    }
    /// Flushes and releases resources; later spans are ignored.
    fn shutdown(&self) -> Result<(), ProcessorError> {
        self.force_flush()
    }
    /// Export counters, for a processor that queues spans and may drop them
    /// ([`BatchProcessor`]); `None` for one that hands every span on at once.
    fn batch_stats(&self) -> Option<BatchStats> {
        None
    }
}
