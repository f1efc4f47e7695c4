//! A server with its own data directory, and a blocking HTTP client for it: what the server
//! test files share.
#![allow(dead_code)]

use super::{local_config, Running};
use serde_json::Value;
use spanlens_server::{Bound, ServerConfig};
use std::sync::Arc;

pub const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../spanlens-core/tests/fixtures"
);

pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}/{name}")).expect("fixture")
}

pub struct Server {
    pub bound: Bound,
    pub running: Running,
    pub dir: Option<tempfile::TempDir>,
}

impl Server {
    pub fn start() -> Server {
        Server::start_full(Vec::new(), None, None)
    }

    /// A server whose store already holds `spans` (project `default`).
    pub fn start_with(spans: Vec<spanlens_core::Span>) -> Server {
        Server::start_full(spans, None, None)
    }

    /// A server with stored `spans`, alert rules and evaluators.
    pub fn start_full(
        spans: Vec<spanlens_core::Span>,
        alerts: Option<spanlens_server::alerts::AlertConfig>,
        evaluators: Option<spanlens_server::evaluators::EvaluatorConfig>,
    ) -> Server {
        Server::start_in(tempfile::tempdir().unwrap(), spans, alerts, evaluators)
    }

    /// Stops the server and hands back its data directory, to start another one on it.
    pub fn stop_keeping_data(mut self) -> tempfile::TempDir {
        self.running.stop();
        self.dir.take().unwrap()
    }

    /// A server on the data directory `dir`, as [`Server::start_full`].
    pub fn start_in(
        dir: tempfile::TempDir,
        spans: Vec<spanlens_core::Span>,
        alerts: Option<spanlens_server::alerts::AlertConfig>,
        evaluators: Option<spanlens_server::evaluators::EvaluatorConfig>,
    ) -> Server {
        Server::start_configured(dir, spans, |c| {
            c.alerts = alerts;
            c.evaluators = evaluators;
        })
    }

    /// A server on `dir` holding `spans`, its loopback configuration changed by `edit`.
    pub fn start_configured(
        dir: tempfile::TempDir,
        spans: Vec<spanlens_core::Span>,
        edit: impl FnOnce(&mut ServerConfig),
    ) -> Server {
        let mut config = local_config(dir.path());
        edit(&mut config);
        let store = Arc::new(spanlens_server::open_store(&config.data_dir).unwrap());
        if !spans.is_empty() {
            spanlens_store::SpanWriter::submit(&*store, "default", spans)
                .and_then(|ticket| ticket.wait())
                .unwrap();
        }
        let running = Running::start(config, store);
        Server {
            bound: running.bound,
            running,
            dir: Some(dir),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.bound.http)
    }

    pub fn post(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, Vec<u8>, Vec<(String, String)>) {
        self.send("POST", path, headers, body)
    }

    /// Any request: status, body and headers of the answer.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, Vec<u8>, Vec<(String, String)>) {
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .allow_non_standard_methods(true)
                .build(),
        );
        let mut req = ureq::http::Request::builder()
            .method(method)
            .uri(self.url(path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let mut resp = agent.run(req.body(body.to_vec()).unwrap()).unwrap();
        let status = resp.status().as_u16();
        let hdrs = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        (status, resp.body_mut().read_to_vec().unwrap(), hdrs)
    }

    /// A JSON request; the answer's status and JSON (its text as a string when not JSON).
    pub fn json(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &Value,
    ) -> (u16, Value) {
        let mut all = vec![JSON];
        all.extend_from_slice(headers);
        let (status, bytes, _) = self.send(method, path, &all, body.to_string().as_bytes());
        let text = String::from_utf8_lossy(&bytes).into_owned();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build(),
        );
        let mut resp = agent.get(&self.url(path)).call().unwrap();
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}

pub const JSON: (&str, &str) = ("content-type", "application/json");
pub const PROTO: (&str, &str) = ("content-type", "application/x-protobuf");

/// An answer read off a raw socket: status, lowercase header lines, body text.
pub struct RawAnswer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl RawAnswer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `request` (the whole HTTP/1.1 text, which should say `Connection: close`) and reads
/// the answer until the server closes; `None` when the server closed without answering.
pub fn raw_request(addr: std::net::SocketAddr, request: &[u8]) -> Option<RawAnswer> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    s.write_all(request).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    parse_answer(&buf)
}

/// Parses an HTTP/1.1 answer (no chunked decoding: enough for status and headers).
pub fn parse_answer(buf: &[u8]) -> Option<RawAnswer> {
    let text = String::from_utf8_lossy(buf);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let mut lines = head.lines();
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Some(RawAnswer {
        status,
        headers,
        body: body.to_string(),
    })
}
