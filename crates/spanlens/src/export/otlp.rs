//! OTLP/HTTP protobuf exporter with gzip, retrying throttling and gateway errors.
//!
//! Retries follow the OTLP exporter spec: 429, 502, 503 and 504 (and connection failures) are
//! retried with exponential backoff, waiting as long as a `Retry-After` header asks; any other
//! 4xx is final. Runs on the batch processor's thread, so blocking here never slows the app.

use super::{ExportError, SpanExporter};
use crate::convert::to_export_request;
use crate::processor::BatchStats;
use crate::span::SpanData;
use crate::tracer::Resource;
use prost::Message;
use spanlens_core::otlp::proto::{self, any_value};
use std::io::Write;
use std::time::{Duration, Instant};

/// Settings of [`OtlpHttpExporter`].
#[derive(Debug, Clone)]
pub struct OtlpConfig {
    /// Full traces URL, e.g. `http://localhost:4318/v1/traces`.
    pub endpoint: String,
    /// Extra headers (auth, tenant, …).
    pub headers: Vec<(String, String)>,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Gzip the body.
    pub gzip: bool,
    /// Resource sent with every batch.
    pub resource: Resource,
    /// Attempts after the first one.
    pub max_retries: u32,
    /// First backoff; doubles per attempt.
    pub initial_backoff: Duration,
    /// Longest single wait, `Retry-After` included.
    pub max_backoff: Duration,
    /// `None`: the SDK's own attributes, which a Spanlens server or any OTel backend normalises.
    /// `Some`: spans normalised and priced here first, then sent with the attributes that
    /// receiver documents (Langfuse's `langfuse.*`, LangSmith's run fields, or GenAI plus
    /// `spanlens.cost.*`): the same mapping as the server's forwarding.
    pub flavor: Option<spanlens_core::otlp::encode::Flavor>,
}

impl Default for OtlpConfig {
    fn default() -> Self {
        OtlpConfig {
            endpoint: "http://localhost:4318/v1/traces".into(),
            headers: Vec::new(),
            timeout: Duration::from_secs(10),
            gzip: true,
            resource: Resource::new("unknown_service"),
            max_retries: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(30),
            flavor: None,
        }
    }
}

/// Sends batches as OTLP/HTTP protobuf (`application/x-protobuf`).
pub struct OtlpHttpExporter {
    agent: ureq::Agent,
    config: OtlpConfig,
    /// This process's id in the counters it sends ([`spanlens_core::sdk_report::INSTANCE`]).
    instance: String,
    /// The batch processor's counters, sent with the next batch.
    stats: Option<BatchStats>,
}

/// What one HTTP attempt came to.
enum Attempt {
    Done,
    Retry {
        after: Option<Duration>,
        why: String,
    },
    Fatal(String),
}

impl OtlpHttpExporter {
    /// An exporter for `config`.
    pub fn new(config: OtlpConfig) -> OtlpHttpExporter {
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .timeout_global(Some(config.timeout))
                .http_status_as_error(false)
                .build(),
        );
        OtlpHttpExporter {
            agent,
            config,
            instance: crate::span::new_instance_id(),
            stats: None,
        }
    }

    /// The counters as resource attributes, added to every resource of `req`.
    fn add_stats(&self, req: &mut proto::ExportTraceServiceRequest) {
        use spanlens_core::sdk_report::{DROPPED, EXPORTED, FAILED, INSTANCE, QUEUED};
        let Some(stats) = self.stats else { return };
        let int = |key: &str, n: u64| proto::KeyValue {
            key: key.into(),
            value: Some(proto::AnyValue {
                value: Some(any_value::Value::IntValue(n.min(i64::MAX as u64) as i64)),
            }),
        };
        let attrs = [
            proto::KeyValue {
                key: INSTANCE.into(),
                value: Some(proto::AnyValue {
                    value: Some(any_value::Value::StringValue(self.instance.clone())),
                }),
            },
            int(EXPORTED, stats.exported),
            int(DROPPED, stats.dropped),
            int(FAILED, stats.failed),
            int(QUEUED, stats.queued),
        ];
        for rs in &mut req.resource_spans {
            rs.resource
                .get_or_insert_with(Default::default)
                .attributes
                .extend(attrs.iter().cloned());
        }
    }

    fn body(&self, batch: &[Box<SpanData>]) -> Result<Vec<u8>, ExportError> {
        let mut req = match self.config.flavor {
            // The counters alone: the resource with no spans.
            _ if batch.is_empty() => {
                let mut req = to_export_request::<Box<SpanData>>(&[], &self.config.resource);
                req.resource_spans
                    .iter_mut()
                    .for_each(|rs| rs.scope_spans.clear());
                req
            }
            None => to_export_request(batch, &self.config.resource),
            Some(flavor) => {
                use spanlens_core::otlp::encode::{export_request, Encoding};
                let spans = crate::convert::to_canonical(batch, &self.config.resource);
                let enc = Encoding {
                    flavor,
                    cost: true,
                    scope: "spanlens",
                };
                export_request(&spans, &enc)
            }
        };
        self.add_stats(&mut req);
        let raw = req.encode_to_vec();
        if !self.config.gzip {
            return Ok(raw);
        }
        let mut enc = flate2::write::GzEncoder::new(
            Vec::with_capacity(raw.len() / 3),
            flate2::Compression::fast(),
        );
        enc.write_all(&raw)
            .and_then(|_| enc.finish())
            .map_err(|e| ExportError::Failed(format!("gzip: {e}")))
    }

    fn attempt(&self, body: &[u8]) -> Attempt {
        let mut req = self
            .agent
            .post(&self.config.endpoint)
            .header("content-type", "application/x-protobuf");
        if self.config.gzip {
            req = req.header("content-encoding", "gzip");
        }
        for (k, v) in &self.config.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let mut resp = match req.send(body) {
            Ok(r) => r,
            Err(e) => {
                return Attempt::Retry {
                    after: None,
                    why: format!("{}: {e}", self.config.endpoint),
                }
            }
        };
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let mut text = || {
            let msg = resp.body_mut().read_to_string().unwrap_or_default();
            let msg: String = msg.chars().take(300).collect();
            format!("{} answered {status}: {}", self.config.endpoint, msg.trim())
        };
        match status {
            200..=299 => Attempt::Done,
            429 | 502 | 503 | 504 => Attempt::Retry {
                after: retry_after,
                why: text(),
            },
            _ => Attempt::Fatal(text()),
        }
    }
}

impl SpanExporter for OtlpHttpExporter {
    fn note_stats(&mut self, stats: &BatchStats) {
        self.stats = Some(*stats);
    }

    /// One attempt, no retries: the counters are sent again with the next batch or tick.
    fn send_stats(&mut self, stats: &BatchStats) -> Result<(), ExportError> {
        self.stats = Some(*stats);
        let body = self.body(&[])?;
        match self.attempt(&body) {
            Attempt::Done => Ok(()),
            Attempt::Fatal(why) => Err(ExportError::Rejected(why)),
            Attempt::Retry { why, .. } => Err(ExportError::Failed(why)),
        }
    }

    fn export(&mut self, batch: &[Box<SpanData>]) -> Result<(), ExportError> {
        let body = self.body(batch)?;
        let started = Instant::now();
        let mut backoff = self.config.initial_backoff;
        let mut attempt = 0;
        loop {
            match self.attempt(&body) {
                Attempt::Done => return Ok(()),
                Attempt::Fatal(why) => return Err(ExportError::Rejected(why)),
                Attempt::Retry { after, why } => {
                    if attempt >= self.config.max_retries {
                        return Err(ExportError::Failed(format!(
                            "{why} (gave up after {} attempts in {:?})",
                            attempt + 1,
                            started.elapsed()
                        )));
                    }
                    attempt += 1;
                    let wait = after.unwrap_or(backoff).min(self.config.max_backoff);
                    std::thread::sleep(wait);
                    backoff = (backoff * 2).min(self.config.max_backoff);
                }
            }
        }
    }
}

/// `Retry-After` as delay-seconds or an HTTP date (RFC 9110 §10.2.3).
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let delta = when.timestamp_millis() - now_ms;
    Some(Duration::from_millis(delta.max(0) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("0.5"), Some(Duration::from_millis(500)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
