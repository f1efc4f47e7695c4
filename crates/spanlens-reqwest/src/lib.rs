//! Spanlens for reqwest: a [`reqwest_middleware`] middleware that records every LLM API call made
//! through the client as a Spanlens `llm` span, nested under the current span.
//!
//! ```no_run
//! # async fn run() -> Result<(), reqwest_middleware::Error> {
//! use spanlens_reqwest::SpanlensMiddleware;
//! let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(SpanlensMiddleware::new())
//!     .build();
//! let answer = client
//!     .post("https://api.openai.com/v1/chat/completions")
//!     .header("content-type", "application/json")
//!     .body(r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#)
//!     .send()
//!     .await?;
//! let text = answer.text().await?; // the span ends here, with usage and cost
//! # Ok(()) }
//! ```
//!
//! Recognised endpoints (by path, whatever the host): OpenAI-compatible `…/chat/completions`,
//! `…/responses`, `…/completions`, `…/embeddings`; Anthropic `…/v1/messages`; Gemini
//! `…/models/{model}:generateContent` and `:streamGenerateContent`. Other requests pass through
//! untouched and unrecorded. See the crate README for what each span carries.

mod attempts;
mod body;
pub mod endpoint;
#[cfg(feature = "async-openai")]
pub mod openai;
mod request;
mod response;

use body::ObservedBody;
use bytes::Bytes;
use endpoint::Endpoint;
use http::Extensions;
use http_body::Body as _;
use reqwest::{Request, Response, ResponseBuilderExt};
use reqwest_middleware::{Middleware, Next};
use response::Observer;
use serde_json::Value;
use spanlens::record::{parse_rate_limit_headers, LlmCall};
use spanlens_core::span::MAX_PAYLOAD_BYTES;
use spanlens_core::Timestamp;
use std::sync::OnceLock;

pub use endpoint::Api;

/// Records LLM API calls as Spanlens `llm` spans.
///
/// Put it after a retrying middleware (`.with(retry).with(SpanlensMiddleware::new())`) so that
/// each attempt is its own span, marked as a retry of the ones before.
#[derive(Debug, Clone, Default)]
pub struct SpanlensMiddleware {
    capture: Option<bool>,
}

impl SpanlensMiddleware {
    /// A middleware that records messages only when `SPANLENS_CAPTURE_MESSAGES` asks for it.
    pub fn new() -> SpanlensMiddleware {
        SpanlensMiddleware::default()
    }

    /// Records the input messages and the output text (`true`), or never (`false`), whatever
    /// `SPANLENS_CAPTURE_MESSAGES` says. Messages often hold personal data: off by default.
    pub fn capture_messages(mut self, on: bool) -> SpanlensMiddleware {
        self.capture = Some(on);
        self
    }

    fn capturing(&self) -> bool {
        static ENV: OnceLock<bool> = OnceLock::new();
        self.capture.unwrap_or_else(|| {
            *ENV.get_or_init(|| {
                let v = std::env::var(spanlens::record::CAPTURE_MESSAGES_ENV).unwrap_or_default();
                matches!(
                    v.trim().to_ascii_lowercase().as_str(),
                    "1" | "true" | "yes" | "on"
                )
            })
        })
    }

    /// Opens the call's span from the request (before it is sent).
    fn start(&self, ep: &Endpoint, req: &Request, capture: bool) -> LlmCall {
        let body = req.body().and_then(reqwest::Body::as_bytes);
        let info = request::read(ep.api, body, capture);
        let model = info
            .model
            .or_else(|| ep.path_model.clone())
            .unwrap_or_else(|| "unknown".to_string());
        let op = ep.api.operation();
        let call = LlmCall::start_with(spanlens::span(format!("{op} {model}")), ep.provider, model);
        if !call.span().is_recording() {
            return call;
        }
        call.operation(op).capture_messages(capture);
        for (k, v) in info.params {
            call.param(k, v);
        }
        let url = req.url();
        let span = call.span();
        if let Some(host) = url.host_str() {
            span.set_attribute("server.address", host.to_string());
        }
        if let Some(port) = url.port_or_known_default() {
            span.set_attribute("server.port", port);
        }
        if let Some(m) = info.messages {
            let (m, cut) = cap_messages(m);
            call.messages_input(&m);
            if cut {
                span.set_attribute("spanlens.reqwest.input_truncated", true);
            }
        }
        call
    }
}

#[async_trait::async_trait]
impl Middleware for SpanlensMiddleware {
    async fn handle(
        &self,
        req: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let Some(ep) = endpoint::recognise(req.url()) else {
            return next.run(req, extensions).await;
        };
        let capture = self.capturing();
        let call = self.start(&ep, &req, capture);
        if !call.span().is_recording() {
            // Tracing is off or this trace is not sampled: no copy, no parsing.
            drop(call);
            return next.run(req, extensions).await;
        }
        let attempt = attempts::begin(extensions, &call);
        let resp = match next.run(req, extensions).await {
            Ok(r) => r,
            Err(e) => {
                let ty = transport_error_type(&e);
                let msg = e.to_string();
                call.error_typed(Some(ty), msg.clone());
                attempts::failed(extensions, attempt, ty, &msg, None);
                return Err(e);
            }
        };
        let status = resp.status();
        call.span()
            .set_attribute("http.response.status_code", status.as_u16());
        let headers: Vec<(String, String)> = resp
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect();
        call.rate_limit_headers(headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        if status.is_client_error() || status.is_server_error() {
            // Error answers are small: read them now, so the span (and what a retrying middleware
            // learns from it) is complete before the caller, or the retrier, looks at them.
            let (parts, body) = into_http(resp).into_parts();
            let bytes = match collect(body).await {
                Ok(b) => b,
                Err(e) => {
                    call.error_typed(Some("body_error"), e.to_string());
                    return Err(e.into());
                }
            };
            let (provider_type, message) = response::error_from_body(&bytes);
            let ty = provider_type.unwrap_or_else(|| format!("http_{}", status.as_u16()));
            let reason = status.canonical_reason().unwrap_or("error");
            let msg = match message {
                Some(m) => format!("{} {reason}: {m}", status.as_u16()),
                None => format!("{} {reason}", status.as_u16()),
            };
            call.error_typed(Some(&ty), msg.clone());
            let retry_after = parse_rate_limit_headers(
                headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                now(),
            )
            .retry_after_ms;
            attempts::failed(extensions, attempt, &ty, &msg, retry_after);
            drop(call);
            let body = reqwest::Body::from(bytes);
            return Ok(Response::from(http::Response::from_parts(parts, body)));
        }
        attempts::succeeded(extensions, &call);
        let sse = resp
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().starts_with("text/event-stream"));
        let observer = Observer::new(ep.api, sse, capture);
        let (parts, body) = into_http(resp).into_parts();
        let body = reqwest::Body::wrap(ObservedBody::new(body, call, observer));
        Ok(Response::from(http::Response::from_parts(parts, body)))
    }
}

/// The response as an `http::Response`, its URL stored where `Response::from(http::Response)`
/// looks for it, so the caller's `response.url()` survives the round trip.
fn into_http(resp: Response) -> http::Response<reqwest::Body> {
    let url = resp.url().clone();
    let (mut parts, body) = http::Response::from(resp).into_parts();
    if let Ok(r) = http::Response::builder().url(url).body(()) {
        parts.extensions.extend(r.into_parts().0.extensions);
    }
    http::Response::from_parts(parts, body)
}

/// Reads a whole body.
async fn collect(mut body: reqwest::Body) -> Result<Bytes, reqwest::Error> {
    let mut buf = Vec::new();
    while let Some(frame) =
        std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await
    {
        if let Ok(data) = frame?.into_data() {
            buf.extend_from_slice(&data);
        }
    }
    Ok(Bytes::from(buf))
}

/// A short class for an error that left no HTTP answer.
fn transport_error_type(e: &reqwest_middleware::Error) -> &'static str {
    match e {
        reqwest_middleware::Error::Reqwest(r) if r.is_timeout() => "timeout",
        reqwest_middleware::Error::Reqwest(r) if r.is_connect() => "connect",
        reqwest_middleware::Error::Reqwest(_) => "request",
        reqwest_middleware::Error::Middleware(_) => "middleware",
    }
}

fn now() -> Timestamp {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Keeps recorded messages within the SDK's payload cap: each message's text is cut to an
/// equal share of it when the whole would not fit. `true` when something was cut.
fn cap_messages(v: Value) -> (Value, bool) {
    let size = v.to_string().len();
    let Value::Array(items) = v else {
        return (v, false);
    };
    if size <= MAX_PAYLOAD_BYTES || items.is_empty() {
        return (Value::Array(items), false);
    }
    let share = MAX_PAYLOAD_BYTES / items.len() / 2;
    let items = items
        .into_iter()
        .map(|mut m| {
            if let Some(c) = m.get_mut("content") {
                let mut text = match c.take() {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                if text.len() > share {
                    let mut cut = share;
                    while !text.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    text.truncate(cut);
                }
                *c = Value::String(text);
            }
            m
        })
        .collect();
    (Value::Array(items), true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_messages_are_cut_to_the_cap() {
        let big = "x".repeat(MAX_PAYLOAD_BYTES);
        let v = serde_json::json!([{"role": "user", "content": big}, {"role": "user", "content": [{"text": "y"}]}]);
        let (v, cut) = cap_messages(v);
        assert!(cut);
        assert!(v.to_string().len() <= MAX_PAYLOAD_BYTES);
        let small = serde_json::json!([{"role": "user", "content": "hi"}]);
        assert_eq!(cap_messages(small.clone()), (small, false));
    }
}
