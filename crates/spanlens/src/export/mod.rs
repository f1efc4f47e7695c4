//! Exporters send batches of finished spans somewhere, from the batch processor's own thread.

#[cfg(feature = "otlp")]
pub mod otlp;

use crate::span::SpanData;

/// Why a batch could not be exported.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The receiver refused the batch for good (a 4xx other than 429, a bad URL, …).
    #[error("export rejected: {0}")]
    Rejected(String),
    /// The receiver could not be reached or kept failing after every retry.
    #[error("export failed: {0}")]
    Failed(String),
}

/// Sends batches of spans. Runs on the batch processor's thread, so it may block.
pub trait SpanExporter: Send {
    /// Exports one batch.
    fn export(&mut self, batch: &[Box<SpanData>]) -> Result<(), ExportError>;
    /// Releases resources.
    fn shutdown(&mut self) {}
}

/// Discards every batch (for benchmarks and for measuring the SDK's own overhead).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoopExporter;

impl SpanExporter for NoopExporter {
    fn export(&mut self, _batch: &[Box<SpanData>]) -> Result<(), ExportError> {
        Ok(())
    }
}
