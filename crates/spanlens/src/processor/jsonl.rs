//! Writes each ended span as one canonical JSON line (the shape of `spanlens normalize`).

use super::{ProcessorError, SpanProcessor};
use crate::convert::to_canonical;
use crate::span::SpanData;
use crate::tracer::Resource;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Mutex;

/// Appends canonical span JSON lines to a writer (a file, usually).
pub struct JsonlProcessor {
    out: Mutex<Option<Box<dyn Write + Send>>>,
    resource: Resource,
}

impl JsonlProcessor {
    /// Creates (truncating) `path`.
    pub fn create(path: impl AsRef<Path>, resource: Resource) -> std::io::Result<JsonlProcessor> {
        let f = File::create(path.as_ref())?;
        Ok(Self::to_writer(BufWriter::new(f), resource))
    }

    /// Writes to any writer.
    pub fn to_writer(w: impl Write + Send + 'static, resource: Resource) -> JsonlProcessor {
        JsonlProcessor {
            out: Mutex::new(Some(Box::new(w))),
            resource,
        }
    }
}

impl SpanProcessor for JsonlProcessor {
    fn on_end(&self, span: Box<SpanData>) {
        let canonical = to_canonical(std::slice::from_ref(&span), &self.resource);
        let mut guard = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let Some(w) = guard.as_mut() else { return };
        for s in canonical {
            let written = serde_json::to_writer(&mut *w, &s)
                .map_err(std::io::Error::from)
                .and_then(|_| w.write_all(b"\n"));
            if let Err(e) = written {
                eprintln!("spanlens: cannot write span JSON: {e}");
            }
        }
    }

    fn force_flush(&self) -> Result<(), ProcessorError> {
        match self.out.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            Some(w) => w.flush().map_err(|e| ProcessorError::Failed(e.to_string())),
            None => Err(ProcessorError::ShutDown),
        }
    }

    fn shutdown(&self) -> Result<(), ProcessorError> {
        let taken = self.out.lock().unwrap_or_else(|e| e.into_inner()).take();
        match taken {
            Some(mut w) => w.flush().map_err(|e| ProcessorError::Failed(e.to_string())),
            None => Err(ProcessorError::ShutDown),
        }
    }
}
