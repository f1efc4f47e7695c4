//! Keeps ended spans in memory, for tests.

use super::SpanProcessor;
use crate::span::SpanData;
use std::sync::{Arc, Mutex};

/// Collects every ended span; clones share the same store.
#[derive(Clone, Default)]
pub struct InMemoryProcessor {
    spans: Arc<Mutex<Vec<SpanData>>>,
}

impl InMemoryProcessor {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The spans ended so far, in end order.
    pub fn spans(&self) -> Vec<SpanData> {
        self.spans.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Empties the store.
    pub fn clear(&self) {
        self.spans.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

impl SpanProcessor for InMemoryProcessor {
    fn on_end(&self, span: Box<SpanData>) {
        self.spans
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(*span);
    }
}
