//! Delivery by HTTP POST (OTLP/HTTP, Langfuse, LangSmith), with ureq.

use crate::forwarder::{Outcome, Transport};
use std::borrow::Cow;
use std::io::{Read, Write};
use std::time::{Duration, SystemTime};

/// How much of an error answer is kept in `last_error`.
const REASON_CHARS: usize = 200;
/// How much of an answer is read at all (the rest is left unread).
const ANSWER_LIMIT: u64 = 64 * 1024;

/// Why a transport could not be set up: checked once, so a bad address is never taken for a
/// destination that is down (retried forever) or one that refuses (records lost).
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The endpoint, a header or another setting is unusable.
    #[error("invalid transport configuration: {0}")]
    Config(String),
    /// The transport's own runtime could not start.
    #[error("starting the transport runtime: {0}")]
    Runtime(#[from] std::io::Error),
}

/// Where and how [`HttpTransport`] posts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// The full URL posted to (`http://` or, with the `tls` feature, `https://`).
    pub url: String,
    /// Extra headers, e.g. authorization.
    pub headers: Vec<(String, String)>,
    /// The body's `content-type`.
    pub content_type: String,
    /// Compress bodies with gzip and say so in `content-encoding`.
    pub gzip: bool,
    /// Limit on a whole attempt: connecting, sending and reading the answer.
    pub timeout: Duration,
}

impl HttpConfig {
    /// Posting `content_type` bodies to `url`, uncompressed, with a 10 s timeout.
    pub fn new(url: impl Into<String>, content_type: impl Into<String>) -> HttpConfig {
        HttpConfig {
            url: url.into(),
            headers: Vec::new(),
            content_type: content_type.into(),
            gzip: false,
            timeout: Duration::from_secs(10),
        }
    }
}

/// Posts each body to one URL and maps the answer to an [`Outcome`]: 2xx delivered; 408, 429,
/// 5xx and failures to connect or answer in time retried (with `Retry-After`); other 4xx
/// rejected. An unexpected 1xx or 3xx is retried too, so a misconfigured URL keeps its records.
pub struct HttpTransport {
    agent: ureq::Agent,
    config: HttpConfig,
}

impl std::fmt::Debug for HttpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpTransport")
            .field("url", &self.config.url)
            .finish_non_exhaustive()
    }
}

impl HttpTransport {
    /// Checks the URL and headers and builds the HTTP agent.
    pub fn new(config: HttpConfig) -> Result<HttpTransport, TransportError> {
        let uri: http::Uri = config
            .url
            .parse()
            .map_err(|e| TransportError::Config(format!("URL {:?}: {e}", config.url)))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") if cfg!(feature = "tls") => {}
            Some("https") => {
                return Err(TransportError::Config(format!(
                    "URL {:?} needs the `tls` feature",
                    config.url
                )))
            }
            _ => {
                return Err(TransportError::Config(format!(
                    "URL {:?} is not http:// or https://",
                    config.url
                )))
            }
        }
        if uri.host().is_none() {
            return Err(TransportError::Config(format!(
                "URL {:?} has no host",
                config.url
            )));
        }
        let header_names = config
            .headers
            .iter()
            .map(|(name, _)| name.as_str())
            .chain(["content-type"]);
        for name in header_names {
            http::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| TransportError::Config(format!("bad header name {name:?}")))?;
        }
        let values = config
            .headers
            .iter()
            .map(|(_, value)| value.as_str())
            .chain([config.content_type.as_str()]);
        for value in values {
            http::HeaderValue::from_str(value).map_err(|_| {
                TransportError::Config("a header value is not visible ASCII".into())
            })?;
        }
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(config.timeout))
            // Statuses are outcomes here, not errors.
            .http_status_as_error(false)
            // A redirected POST may turn into a GET; better to surface it as a retry.
            .max_redirects(0)
            .build()
            .new_agent();
        Ok(HttpTransport { agent, config })
    }
}

impl Transport for HttpTransport {
    fn send(&mut self, body: &[u8]) -> Outcome {
        let payload: Cow<'_, [u8]> = if self.config.gzip {
            match gzip(body) {
                Ok(compressed) => Cow::Owned(compressed),
                Err(e) => {
                    return Outcome::Retry {
                        after: None,
                        reason: format!("compressing: {e}"),
                    }
                }
            }
        } else {
            Cow::Borrowed(body)
        };
        let mut request = self
            .agent
            .post(&self.config.url)
            .header("content-type", self.config.content_type.as_str());
        if self.config.gzip {
            request = request.header("content-encoding", "gzip");
        }
        for (name, value) in &self.config.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let mut response = match request.send(&payload[..]) {
            Ok(response) => response,
            Err(e) => {
                return Outcome::Retry {
                    after: None,
                    reason: format!("POST {}: {e}", self.config.url),
                }
            }
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let mut answer = Vec::new();
        // Read (part of) the answer so the reason can quote it and the connection be reused.
        let _ = response
            .body_mut()
            .as_reader()
            .take(ANSWER_LIMIT)
            .read_to_end(&mut answer);
        outcome(status, retry_after, &answer)
    }
}

/// The outcome of an HTTP answer.
fn outcome(status: u16, retry_after: Option<Duration>, answer: &[u8]) -> Outcome {
    let reason = || {
        let text = String::from_utf8_lossy(answer);
        let quoted: String = text.trim().chars().take(REASON_CHARS).collect();
        format!("HTTP {status}: {quoted}")
    };
    match status {
        200..=299 => Outcome::Delivered,
        408 | 429 | 500..=599 => Outcome::Retry {
            after: retry_after,
            reason: reason(),
        },
        400..=499 => Outcome::Rejected { reason: reason() },
        _ => Outcome::Retry {
            after: retry_after,
            reason: reason(),
        },
    }
}

fn gzip(body: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4 + 64),
        flate2::Compression::fast(),
    );
    encoder.write_all(body)?;
    encoder.finish()
}

/// `Retry-After` as delay-seconds or an HTTP-date (a date in the past means now).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_read_as_seconds_or_a_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("1", now), Some(Duration::from_secs(1)));
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        let later = httpdate::fmt_http_date(now + Duration::from_secs(90));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(90))
        );
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(90));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-3", now), None);
        assert_eq!(parse_retry_after("", now), None);
    }

    #[test]
    fn statuses_map_to_outcomes() {
        assert_eq!(outcome(200, None, b""), Outcome::Delivered);
        assert_eq!(outcome(204, None, b""), Outcome::Delivered);
        for status in [408, 429, 500, 502, 503, 504] {
            assert!(
                matches!(outcome(status, None, b""), Outcome::Retry { .. }),
                "{status}"
            );
        }
        for status in [400, 401, 403, 404, 413, 422] {
            assert!(
                matches!(outcome(status, None, b""), Outcome::Rejected { .. }),
                "{status}"
            );
        }
        assert!(matches!(outcome(302, None, b""), Outcome::Retry { .. }));
        let long = "é".repeat(500);
        let Outcome::Rejected { reason } = outcome(400, None, long.as_bytes()) else {
            panic!("400 is rejected");
        };
        assert_eq!(reason, format!("HTTP 400: {}", "é".repeat(200)));
    }

    #[test]
    fn bad_settings_are_refused_up_front() {
        let bad = |config: HttpConfig| HttpTransport::new(config).is_err();
        assert!(bad(HttpConfig::new("ftp://x/y", "application/json")));
        assert!(bad(HttpConfig::new("not a url", "application/json")));
        assert!(bad(HttpConfig::new("/relative", "application/json")));
        assert!(bad(HttpConfig::new("http://x/", "bad\ncontent-type")));
        let mut headers = HttpConfig::new("http://x/", "application/json");
        headers.headers.push(("bad header".into(), "v".into()));
        assert!(bad(headers));
        assert!(!bad(HttpConfig::new(
            "http://127.0.0.1:1/v1/traces",
            "application/json"
        )));
        assert_eq!(
            !bad(HttpConfig::new(
                "https://example.invalid/",
                "application/json"
            )),
            cfg!(feature = "tls")
        );
    }
}
