//! Exporters send batches of finished spans somewhere, from the batch processor's own thread.

#[cfg(feature = "otlp")]
pub mod otlp;

use crate::processor::BatchStats;
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
    /// The batch processor's counters, given before each [`SpanExporter::export`] so that an
    /// exporter can send them with the batch (the OTLP exporter does, as resource attributes).
    fn note_stats(&mut self, _stats: &BatchStats) {}
    /// Sends the counters alone: spans were lost since the last batch carried them, and no
    /// batch is waiting. The default sends nothing.
    fn send_stats(&mut self, _stats: &BatchStats) -> Result<(), ExportError> {
        Ok(())
    }
}

/// Discards every batch (for benchmarks and for measuring the SDK's own overhead).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoopExporter;

impl SpanExporter for NoopExporter {
    fn export(&mut self, _batch: &[Box<SpanData>]) -> Result<(), ExportError> {
        Ok(())
    }
}
