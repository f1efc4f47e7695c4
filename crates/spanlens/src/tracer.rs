//! The tracer: where ended spans go (its processors), which traces are sampled, and the process
//! resource. One global tracer serves `spanlens::span`; explicit tracers serve tests and libraries.

use crate::config::Config;
use crate::processor::{BatchStats, SpanProcessor};
use crate::span::{SpanBuilder, SpanData};
use spanlens_core::TraceId;
use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

/// Attributes describing the process that emits spans (`service.name`, …).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resource {
    /// Key/value pairs, `service.name` first.
    pub attributes: Vec<(String, String)>,
}

impl Resource {
    /// A resource naming the service, plus the SDK's own identification.
    pub fn new(service_name: impl Into<String>) -> Resource {
        Resource {
            attributes: vec![
                ("service.name".into(), service_name.into()),
                ("telemetry.sdk.name".into(), "spanlens".into()),
                ("telemetry.sdk.language".into(), "rust".into()),
                (
                    "telemetry.sdk.version".into(),
                    env!("CARGO_PKG_VERSION").into(),
                ),
            ],
        }
    }

    /// Adds or replaces an attribute.
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Resource {
        let k = key.into();
        let v = value.into();
        match self.attributes.iter_mut().find(|(x, _)| *x == k) {
            Some(slot) => slot.1 = v,
            None => self.attributes.push((k, v)),
        }
        self
    }
}

pub(crate) struct TracerInner {
    processors: Vec<Box<dyn SpanProcessor>>,
    sample_rate: f64,
    pub(crate) resource: Resource,
}

impl TracerInner {
    pub(crate) fn sampled(&self, trace: TraceId) -> bool {
        if self.sample_rate >= 1.0 {
            return true;
        }
        let mut low = [0u8; 8];
        low.copy_from_slice(&trace.0[8..]);
        (u64::from_be_bytes(low) as f64 / u64::MAX as f64) < self.sample_rate
    }

    pub(crate) fn on_start(&self, span: &SpanData) {
        for p in &self.processors {
            p.on_start(span);
        }
    }

    pub(crate) fn on_end(&self, span: Box<SpanData>) {
        if let Some((last, rest)) = self.processors.split_last() {
            for p in rest {
                p.on_end(span.clone());
            }
            last.on_end(span);
        }
    }
}

/// A tracer: a set of processors, a sample rate and a resource.
///
/// Tracers live for the rest of the process (they are leaked on build), so spans never outlive
/// the processors they report to.
#[derive(Clone, Copy)]
pub struct Tracer {
    inner: &'static TracerInner,
}

impl Tracer {
    /// Starts configuring a tracer.
    pub fn builder() -> TracerBuilder {
        TracerBuilder {
            processors: Vec::new(),
            sample_rate: 1.0,
            resource: Resource::new("unknown_service"),
        }
    }

    /// A span of this tracer: a child of the current span if there is one, else a new root.
    pub fn span(&self, name: impl Into<Cow<'static, str>>) -> SpanBuilder {
        SpanBuilder::new(name.into(), !is_disabled()).with_tracer(self.inner)
    }

    #[cfg_attr(not(feature = "tracing"), allow(dead_code))]
    pub(crate) fn inner(&self) -> &'static TracerInner {
        self.inner
    }

    /// The resource spans of this tracer carry.
    pub fn resource(&self) -> &Resource {
        &self.inner.resource
    }

    /// Asks every processor to export what it holds, waiting for it.
    pub fn force_flush(&self) {
        for p in &self.inner.processors {
            if let Err(e) = p.force_flush() {
                eprintln!("spanlens: flush failed: {e}");
            }
        }
    }

    /// The export counters of this tracer's queueing processors, summed (`None` when it has
    /// none): how many spans were exported, dropped and lost, and how many wait now.
    pub fn stats(&self) -> Option<BatchStats> {
        self.inner
            .processors
            .iter()
            .filter_map(|p| p.batch_stats())
            .reduce(|a, b| BatchStats {
                exported: a.exported.saturating_add(b.exported),
                dropped: a.dropped.saturating_add(b.dropped),
                failed: a.failed.saturating_add(b.failed),
                queued: a.queued.saturating_add(b.queued),
            })
    }

    /// Flushes and stops every processor.
    pub fn shutdown(&self) {
        for p in &self.inner.processors {
            if let Err(e) = p.shutdown() {
                eprintln!("spanlens: shutdown failed: {e}");
            }
        }
    }

    /// Makes this the tracer behind [`crate::span`].
    pub fn install_global(&self) {
        GLOBAL.store(
            self.inner as *const TracerInner as *mut TracerInner,
            Ordering::Release,
        );
    }
}

/// Builder of a [`Tracer`].
pub struct TracerBuilder {
    processors: Vec<Box<dyn SpanProcessor>>,
    sample_rate: f64,
    resource: Resource,
}

impl TracerBuilder {
    /// Adds a processor; every ended span goes to each in order.
    pub fn with_processor(mut self, p: impl SpanProcessor + 'static) -> Self {
        self.processors.push(Box::new(p));
        self
    }

    /// Adds a boxed processor.
    pub fn with_boxed_processor(mut self, p: Box<dyn SpanProcessor>) -> Self {
        self.processors.push(p);
        self
    }

    /// Keeps this fraction of traces (decided once per trace, at its root).
    pub fn with_sample_rate(mut self, rate: f64) -> Self {
        self.sample_rate = if rate.is_finite() {
            rate.clamp(0.0, 1.0)
        } else {
            1.0
        };
        self
    }

    /// Sets the resource.
    pub fn with_resource(mut self, r: Resource) -> Self {
        self.resource = r;
        self
    }

    /// Builds the tracer.
    pub fn build(self) -> Tracer {
        Tracer {
            inner: Box::leak(Box::new(TracerInner {
                processors: self.processors,
                sample_rate: self.sample_rate,
                resource: self.resource,
            })),
        }
    }
}

/// The global tracer; only ever set from `Box::leak`ed tracers, so a loaded pointer is valid forever.
static GLOBAL: AtomicPtr<TracerInner> = AtomicPtr::new(std::ptr::null_mut());
static DISABLED: AtomicBool = AtomicBool::new(false);

pub(crate) fn global() -> Option<&'static TracerInner> {
    let p = GLOBAL.load(Ordering::Acquire);
    // SAFETY: GLOBAL only holds null or pointers from `Box::leak` in `TracerBuilder::build`,
    // which are never freed, so a non-null pointer is valid for 'static.
    unsafe { p.as_ref() }
}

/// The global tracer, if one is installed.
pub fn global_tracer() -> Option<Tracer> {
    global().map(|inner| Tracer { inner })
}

/// The global tracer's export counters ([`Tracer::stats`]): what an application reads to see
/// whether spans are being dropped.
pub fn stats() -> Option<BatchStats> {
    global_tracer()?.stats()
}

#[inline(always)]
pub(crate) fn is_disabled() -> bool {
    DISABLED.load(Ordering::Relaxed)
}

/// Turns every span of the process into a no-op (what `SPANLENS_DISABLED=true` does), or back.
pub fn set_disabled(disabled: bool) {
    DISABLED.store(disabled, Ordering::Relaxed);
}

/// Flushes and shuts the global tracer down when dropped: keep it alive for the program's life.
#[must_use = "spans are flushed when the guard drops; bind it: `let _guard = spanlens::init(..)`"]
pub struct Guard {
    tracer: Option<Tracer>,
}

impl Guard {
    /// The tracer this guard owns (`None` when tracing is disabled).
    pub fn tracer(&self) -> Option<Tracer> {
        self.tracer
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(t) = self.tracer.take() {
            t.force_flush();
            t.shutdown();
        }
    }
}

/// Installs the global tracer described by `config` and returns the guard that flushes it.
///
/// Never fails: tracing must not break the application. Problems (an unreadable setting, an
/// exporter that cannot be built) are reported on stderr and the rest of the setup proceeds.
pub fn init(config: Config) -> Guard {
    for problem in &config.problems {
        eprintln!("spanlens: {problem}");
    }
    if config.disabled {
        set_disabled(true);
        return Guard { tracer: None };
    }
    set_disabled(false);
    // The built-in price catalog is parsed once per process; parse it now, beside the
    // application, rather than inside the first model call's bookkeeping.
    let _ = std::thread::Builder::new()
        .name("spanlens-catalog".into())
        .spawn(|| {
            spanlens_core::PriceCatalog::builtin();
        });
    let tracer = config.build_tracer();
    tracer.install_global();
    Guard {
        tracer: Some(tracer),
    }
}
