//! SDK configuration from the environment, with the standard `OTEL_*` variables honoured.

use crate::processor::{BatchConfig, ConsoleProcessor, JsonlProcessor};
use crate::tracer::{Resource, Tracer};
use std::path::PathBuf;
use std::time::Duration;

/// Everything `spanlens::init` needs. Build it with [`Config::from_env`] or by hand.
#[derive(Debug, Clone)]
pub struct Config {
    /// Turn every span into a no-op.
    pub disabled: bool,
    /// Full OTLP/HTTP traces URL (e.g. `http://localhost:4318/v1/traces`); `None` exports nothing.
    pub endpoint: Option<String>,
    /// Extra HTTP headers for the exporter.
    pub headers: Vec<(String, String)>,
    /// Sent as `Authorization: Bearer <key>`.
    pub api_key: Option<String>,
    /// Print each finished trace as a tree on stderr.
    pub console: bool,
    /// Also write canonical span JSON lines to this file.
    pub jsonl: Option<PathBuf>,
    /// Queue and batching limits of the exporter.
    pub batch: BatchConfig,
    /// Fraction of traces kept, 0.0–1.0.
    pub sample_rate: f64,
    /// Exporter request timeout.
    pub timeout: Duration,
    /// Gzip request bodies.
    pub gzip: bool,
    /// Resource attributes (`service.name`, …).
    pub resource: Resource,
    /// Other receivers the spans also go to, each through its own batch processor and queue
    /// (`SPANLENS_DESTINATIONS=langfuse,langsmith`).
    pub destinations: Vec<Destination>,
    /// Settings that could not be read (reported by `init`, never fatal).
    pub problems: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            disabled: false,
            endpoint: None,
            headers: Vec::new(),
            api_key: None,
            console: false,
            jsonl: None,
            batch: BatchConfig::default(),
            sample_rate: 1.0,
            timeout: Duration::from_secs(10),
            gzip: true,
            resource: Resource::new(UNKNOWN_SERVICE),
            destinations: Vec::new(),
            problems: Vec::new(),
        }
    }
}

/// A receiver other than a Spanlens server: where it takes OTLP/HTTP, how it authenticates,
/// and the attribute flavour it reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// Its name in messages (`langfuse`, `langsmith`).
    pub name: String,
    /// The attributes it reads.
    pub flavor: spanlens_core::otlp::encode::Flavor,
    /// Its traces URL and authentication headers.
    pub target: spanlens_core::otlp::encode::target::HttpTarget,
}

/// Langfuse Cloud's EU region, Langfuse's own default.
const LANGFUSE_DEFAULT: &str = "https://cloud.langfuse.com";
/// LangSmith's US API.
const LANGSMITH_DEFAULT: &str = "https://api.smith.langchain.com";

/// The destinations `SPANLENS_DESTINATIONS` names, with their credentials from the variables
/// each product's own SDKs read; what is missing is reported in `problems`.
fn destinations(
    get: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<String>,
) -> Vec<Destination> {
    use spanlens_core::otlp::encode::{target, Flavor};
    let Some(list) = get("SPANLENS_DESTINATIONS") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let missing = |vars: &[&str]| {
            format!(
                "SPANLENS_DESTINATIONS names {name} but {} is not set; not sent there",
                vars.join(" or ")
            )
        };
        let d = match name.to_ascii_lowercase().as_str() {
            "langfuse" => match (get("LANGFUSE_PUBLIC_KEY"), get("LANGFUSE_SECRET_KEY")) {
                (Some(pk), Some(sk)) => {
                    let host = get("LANGFUSE_BASE_URL")
                        .or_else(|| get("LANGFUSE_HOST"))
                        .unwrap_or_else(|| LANGFUSE_DEFAULT.into());
                    Destination {
                        name: "langfuse".into(),
                        flavor: Flavor::Langfuse,
                        target: target::langfuse(&host, &pk, &sk),
                    }
                }
                _ => {
                    problems.push(missing(&["LANGFUSE_PUBLIC_KEY", "LANGFUSE_SECRET_KEY"]));
                    continue;
                }
            },
            "langsmith" => match get("LANGSMITH_API_KEY") {
                Some(key) => {
                    let endpoint =
                        get("LANGSMITH_ENDPOINT").unwrap_or_else(|| LANGSMITH_DEFAULT.into());
                    Destination {
                        name: "langsmith".into(),
                        flavor: Flavor::LangSmith,
                        target: target::langsmith(
                            &endpoint,
                            &key,
                            get("LANGSMITH_PROJECT").as_deref(),
                        ),
                    }
                }
                None => {
                    problems.push(missing(&["LANGSMITH_API_KEY"]));
                    continue;
                }
            },
            other => {
                problems.push(format!(
                    "SPANLENS_DESTINATIONS: {other:?} is not langfuse or langsmith; ignored"
                ));
                continue;
            }
        };
        if d.target.url.starts_with("https://") && !cfg!(feature = "tls") {
            problems.push(format!(
                "{}: {} needs the `tls` feature of spanlens; not sent there",
                d.name, d.target.url
            ));
            continue;
        }
        out.push(d);
    }
    out
}

/// Appends `/v1/traces` to a base OTLP endpoint, as the OTLP exporter spec says.
fn traces_url(base: &str) -> String {
    let b = base.trim_end_matches('/');
    if b.ends_with("/v1/traces") {
        b.to_string()
    } else {
        format!("{b}/v1/traces")
    }
}

/// The service name a resource has when nothing named one (the OpenTelemetry default).
pub const UNKNOWN_SERVICE: &str = "unknown_service";

impl Config {
    /// Names the service the spans come from (`service.name`), unless the environment already
    /// did (`OTEL_SERVICE_NAME`, or `service.name` in `OTEL_RESOURCE_ATTRIBUTES`): the code gives
    /// the default, a deployment can still rename it. Without any, traces arrive as
    /// `unknown_service`.
    ///
    /// ```
    /// let config = spanlens::Config::from_lookup(|_| None).service_name("support-bot");
    /// assert_eq!(config.service(), "support-bot");
    /// ```
    pub fn service_name(mut self, name: impl Into<String>) -> Config {
        if self.service() == UNKNOWN_SERVICE {
            self.resource = std::mem::take(&mut self.resource).with("service.name", name);
        }
        self
    }

    /// The `service.name` spans are sent with.
    pub fn service(&self) -> &str {
        self.resource
            .attributes
            .iter()
            .find(|(k, _)| k == "service.name")
            .map_or(UNKNOWN_SERVICE, |(_, v)| v.as_str())
    }

    /// Reads `SPANLENS_*` and `OTEL_*` variables from the process environment.
    pub fn from_env() -> Config {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Like [`Config::from_env`], failing on the first unreadable setting instead of warning.
    pub fn try_from_env() -> Result<Config, String> {
        let c = Self::from_env();
        match c.problems.first() {
            Some(p) => Err(p.clone()),
            None => Ok(c),
        }
    }

    /// Reads settings through `get` (testable without touching the process environment).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Config {
        let mut c = Config::default();
        let get = |k: &str| {
            get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let flag = |c: &mut Config, k: &str| -> Option<bool> {
            let v = get(k)?;
            match v.to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => Some(true),
                "0" | "false" | "no" | "off" => Some(false),
                _ => {
                    c.problems.push(format!(
                        "{k}={v:?} is not a boolean (use true or false); ignored"
                    ));
                    None
                }
            }
        };
        fn number<T: std::str::FromStr>(c: &mut Config, k: &str, v: Option<String>) -> Option<T> {
            let v = v?;
            match v.parse() {
                Ok(n) => Some(n),
                Err(_) => {
                    c.problems.push(format!(
                        "{k}={v:?} is not a valid number; the default is used"
                    ));
                    None
                }
            }
        }
        c.disabled = flag(&mut c, "SPANLENS_DISABLED").unwrap_or(false);
        c.console = flag(&mut c, "SPANLENS_CONSOLE").unwrap_or(false);
        c.endpoint = get("SPANLENS_ENDPOINT")
            .map(|e| traces_url(&e))
            .or_else(|| get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
            .or_else(|| get("OTEL_EXPORTER_OTLP_ENDPOINT").map(|e| traces_url(&e)));
        c.api_key = get("SPANLENS_API_KEY");
        for var in [
            "OTEL_EXPORTER_OTLP_HEADERS",
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        ] {
            if let Some(h) = get(var) {
                for pair in h.split(',').filter(|p| !p.trim().is_empty()) {
                    match pair.split_once('=') {
                        Some((k, v)) => {
                            c.headers.push((k.trim().to_string(), v.trim().to_string()))
                        }
                        None => c
                            .problems
                            .push(format!("{var}: {pair:?} is not key=value; ignored")),
                    }
                }
            }
        }
        if let Some(ms) = number::<u64>(
            &mut c,
            "OTEL_EXPORTER_OTLP_TIMEOUT",
            get("OTEL_EXPORTER_OTLP_TIMEOUT"),
        ) {
            c.timeout = Duration::from_millis(ms);
        }
        if let Some(v) = get("OTEL_EXPORTER_OTLP_COMPRESSION") {
            match v.as_str() {
                "gzip" => c.gzip = true,
                "none" => c.gzip = false,
                other => c.problems.push(format!(
                    "OTEL_EXPORTER_OTLP_COMPRESSION={other:?} is not gzip or none; gzip is used"
                )),
            }
        }
        c.jsonl = get("SPANLENS_JSONL").map(PathBuf::from);
        if let Some(n) = number::<usize>(&mut c, "SPANLENS_BATCH_SIZE", get("SPANLENS_BATCH_SIZE"))
        {
            c.batch.batch_size = n.max(1);
        }
        if let Some(n) = number::<u64>(
            &mut c,
            "SPANLENS_FLUSH_INTERVAL_MS",
            get("SPANLENS_FLUSH_INTERVAL_MS"),
        ) {
            c.batch.flush_interval = Duration::from_millis(n.max(1));
        }
        if let Some(n) = number::<usize>(&mut c, "SPANLENS_MAX_QUEUE", get("SPANLENS_MAX_QUEUE")) {
            c.batch.max_queue = n.max(1);
        }
        if let Some(r) = number::<f64>(&mut c, "SPANLENS_SAMPLE_RATE", get("SPANLENS_SAMPLE_RATE"))
        {
            if (0.0..=1.0).contains(&r) {
                c.sample_rate = r;
            } else {
                c.problems.push(format!(
                    "SPANLENS_SAMPLE_RATE={r} is outside 0.0–1.0; 1.0 is used"
                ));
            }
        }
        let service = get("OTEL_SERVICE_NAME").unwrap_or_else(|| UNKNOWN_SERVICE.into());
        let mut resource = Resource::new(service);
        if let Some(attrs) = get("OTEL_RESOURCE_ATTRIBUTES") {
            for pair in attrs.split(',').filter(|p| !p.trim().is_empty()) {
                match pair.split_once('=') {
                    Some((k, v))
                        if get("OTEL_SERVICE_NAME").is_none() || k.trim() != "service.name" =>
                    {
                        resource = resource.with(k.trim(), v.trim());
                    }
                    Some(_) => {}
                    None => c.problems.push(format!(
                        "OTEL_RESOURCE_ATTRIBUTES: {pair:?} is not key=value; ignored"
                    )),
                }
            }
        }
        if let Some(p) = get("SPANLENS_PROJECT") {
            resource = resource.with("spanlens.project", p);
        }
        c.resource = resource;
        c.destinations = destinations(&get, &mut c.problems);
        c
    }

    /// Builds the tracer this configuration describes (exporter, console and file processors).
    pub fn build_tracer(&self) -> Tracer {
        let mut b = Tracer::builder()
            .with_sample_rate(self.sample_rate)
            .with_resource(self.resource.clone());
        if let Some(url) = &self.endpoint {
            #[cfg(feature = "otlp")]
            {
                let mut headers = self.headers.clone();
                if let Some(k) = &self.api_key {
                    headers.push(("authorization".into(), format!("Bearer {k}")));
                }
                let exporter =
                    crate::export::otlp::OtlpHttpExporter::new(crate::export::otlp::OtlpConfig {
                        endpoint: url.clone(),
                        headers,
                        timeout: self.timeout,
                        gzip: self.gzip,
                        resource: self.resource.clone(),
                        ..Default::default()
                    });
                b = b.with_processor(crate::processor::BatchProcessor::new(exporter, self.batch));
            }
            #[cfg(not(feature = "otlp"))]
            eprintln!("spanlens: endpoint {url} set but the `otlp` feature is off; spans are not exported");
        }
        for d in &self.destinations {
            #[cfg(feature = "otlp")]
            {
                // Each receiver has its own queue and thread: a slow one holds up no other.
                let exporter =
                    crate::export::otlp::OtlpHttpExporter::new(crate::export::otlp::OtlpConfig {
                        endpoint: d.target.url.clone(),
                        headers: d.target.headers.clone(),
                        timeout: self.timeout,
                        gzip: self.gzip,
                        resource: self.resource.clone(),
                        flavor: Some(d.flavor),
                        ..Default::default()
                    });
                b = b.with_processor(crate::processor::BatchProcessor::new(exporter, self.batch));
            }
            #[cfg(not(feature = "otlp"))]
            eprintln!(
                "spanlens: destination {} set but the `otlp` feature is off; spans are not sent there",
                d.name
            );
        }
        if self.console {
            b = b.with_processor(ConsoleProcessor::stderr(self.resource.clone()));
        }
        if let Some(path) = &self.jsonl {
            match JsonlProcessor::create(path, self.resource.clone()) {
                Ok(p) => b = b.with_processor(p),
                Err(e) => eprintln!("spanlens: cannot write {}: {e}", path.display()),
            }
        }
        b.build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(vars: &[(&str, &str)]) -> Config {
        let m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn reads_spanlens_and_otel_variables() {
        let c = from(&[
            ("SPANLENS_ENDPOINT", "http://localhost:4318"),
            ("SPANLENS_API_KEY", "k"),
            ("SPANLENS_BATCH_SIZE", "64"),
            ("SPANLENS_FLUSH_INTERVAL_MS", "250"),
            ("SPANLENS_MAX_QUEUE", "100"),
            ("SPANLENS_SAMPLE_RATE", "0.5"),
            ("SPANLENS_CONSOLE", "true"),
            ("OTEL_SERVICE_NAME", "checkout"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "deployment.environment=prod,service.name=ignored",
            ),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-a=1, x-b=2"),
        ]);
        assert!(c.problems.is_empty(), "{:?}", c.problems);
        assert_eq!(
            c.endpoint.as_deref(),
            Some("http://localhost:4318/v1/traces")
        );
        assert_eq!(
            c.batch,
            BatchConfig {
                max_queue: 100,
                batch_size: 64,
                flush_interval: Duration::from_millis(250)
            }
        );
        assert_eq!(c.sample_rate, 0.5);
        assert!(c.console);
        assert_eq!(
            c.resource.attributes[0],
            ("service.name".into(), "checkout".into())
        );
        assert!(c
            .resource
            .attributes
            .contains(&("deployment.environment".into(), "prod".into())));
        assert_eq!(c.headers.len(), 2);
    }

    #[test]
    fn the_code_names_the_service_unless_the_environment_did() {
        assert_eq!(from(&[]).service(), UNKNOWN_SERVICE);
        assert_eq!(
            from(&[]).service_name("support-bot").service(),
            "support-bot"
        );
        for env in [
            ("OTEL_SERVICE_NAME", "from-env"),
            ("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-env"),
        ] {
            let c = from(&[env]).service_name("support-bot");
            assert_eq!(c.service(), "from-env", "{env:?}");
        }
        // Named once: the first attribute stays `service.name`, nothing is added twice.
        let c = from(&[]).service_name("a").service_name("b");
        let names: Vec<_> = c
            .resource
            .attributes
            .iter()
            .filter(|(k, _)| k == "service.name")
            .collect();
        assert_eq!(names, [&("service.name".to_string(), "a".to_string())]);
    }

    #[test]
    fn otel_traces_endpoint_is_used_verbatim() {
        let c = from(&[(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://collector:4318/custom",
        )]);
        assert_eq!(c.endpoint.as_deref(), Some("http://collector:4318/custom"));
        let c = from(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")]);
        assert_eq!(
            c.endpoint.as_deref(),
            Some("http://collector:4318/v1/traces")
        );
    }

    #[test]
    fn bad_values_are_reported_not_fatal() {
        let c = from(&[
            ("SPANLENS_DISABLED", "maybe"),
            ("SPANLENS_BATCH_SIZE", "lots"),
            ("SPANLENS_SAMPLE_RATE", "2"),
        ]);
        assert_eq!(c.problems.len(), 3, "{:?}", c.problems);
        assert!(c.problems[0].contains("SPANLENS_DISABLED=\"maybe\""));
        assert!(!c.disabled);
        assert_eq!(c.batch.batch_size, BatchConfig::default().batch_size);
        assert_eq!(c.sample_rate, 1.0);
    }
}
