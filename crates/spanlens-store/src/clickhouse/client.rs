//! A small client for ClickHouse's HTTP interface: statements in the body of a POST, inserts with
//! the statement in the URL and the rows (RowBinary, zstd-compressed) in the body, settings as
//! URL parameters, errors as ClickHouse's own code and message.
//!
//! It speaks only what every ClickHouse server since 23.2 offers on its HTTP port (or its HTTPS
//! port, with `secure`), so the same calls work against a server, a cluster node or ClickHouse
//! Cloud, and against the chDB test server of `tests/clickhouse`.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderValue, CONTENT_ENCODING};
use hyper::{Method, Request, StatusCode};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use std::fmt;
use std::time::Duration;

/// Where and as whom to connect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// `host:port` of the HTTP interface (8123 by default).
    pub authority: String,
    /// The database statements run in unless they name another.
    pub database: String,
    /// Sent as `X-ClickHouse-User` (the server's `default` user when absent).
    pub user: Option<String>,
    /// Sent as `X-ClickHouse-Key`.
    pub password: Option<String>,
    /// HTTPS, the server's certificate verified for the host it is reached at.
    pub secure: bool,
    /// With `secure`: the PEM file of the roots to trust instead of the system's.
    pub ca_file: Option<String>,
}

impl Endpoint {
    /// An endpoint over plain HTTP, as the server's `default` user.
    pub fn plain(authority: impl Into<String>, database: impl Into<String>) -> Endpoint {
        Endpoint {
            authority: authority.into(),
            database: database.into(),
            user: None,
            password: None,
            secure: false,
            ca_file: None,
        }
    }
}

/// What went wrong with one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClickHouseError {
    /// The server could not be reached, or the connection broke (worth retrying).
    Unreachable(String),
    /// No answer within the call's time limit.
    Timeout(Duration),
    /// The server answered with an error: its HTTP status, ClickHouse's error code (from
    /// `X-ClickHouse-Exception-Code`, else parsed from the message) and its message.
    Server {
        /// The HTTP status.
        status: u16,
        /// ClickHouse's error code, e.g. 60 for an unknown table.
        code: Option<u32>,
        /// ClickHouse's message, cut at 4 KiB.
        message: String,
    },
}

impl fmt::Display for ClickHouseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClickHouseError::Unreachable(why) => write!(f, "ClickHouse is unreachable: {why}"),
            ClickHouseError::Timeout(d) => write!(f, "ClickHouse did not answer in {d:?}"),
            ClickHouseError::Server {
                status, message, ..
            } => write!(f, "ClickHouse answered {status}: {}", message.trim_end()),
        }
    }
}

impl std::error::Error for ClickHouseError {}

/// A TLS setup trusting `roots`, on ring (as PostgreSQL's, see `postgres/tls.rs`: no C build
/// on every machine that compiles us).
fn tls_config(roots: rustls::RootCertStore) -> rustls::ClientConfig {
    #[allow(deprecated)]
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(rustls::DEFAULT_VERSIONS)
        .expect("ring offers TLS 1.2 and 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// Longest error message kept from a server's answer (they quote the statement).
const MAX_MESSAGE: usize = 4096;

/// A connection pool to one server's HTTP interface.
#[derive(Clone)]
pub struct Client {
    http: HttpClient<HttpsConnector<HttpConnector>, Full<Bytes>>,
    /// Why TLS could not be set up (every call fails with it).
    tls_error: Option<String>,
    endpoint: Endpoint,
    timeout: Duration,
    /// Settings sent with every statement (before each call's own).
    defaults: Vec<(String, String)>,
}

impl Client {
    /// A client of `endpoint` whose calls give up after `timeout`.
    pub fn new(endpoint: Endpoint, timeout: Duration) -> Client {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(timeout));
        connector.enforce_http(false);
        // Plain HTTP trusts nothing (it never uses TLS); roots that cannot be read fail every
        // call with the reason.
        let (roots, tls_error) = match endpoint.secure {
            false => (rustls::RootCertStore::empty(), None),
            true => match crate::tls_roots::roots(endpoint.ca_file.as_deref(), "ca_file") {
                Ok(roots) => (roots, None),
                Err(e) => (rustls::RootCertStore::empty(), Some(e)),
            },
        };
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config(roots))
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        let http = HttpClient::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Client {
            http,
            tls_error,
            endpoint,
            timeout,
            defaults: Vec::new(),
        }
    }

    /// The same server and credentials, with statements run in `database`.
    pub fn with_database(&self, database: &str) -> Client {
        let mut c = self.clone();
        c.endpoint.database = database.to_string();
        c
    }

    /// The same client, sending `settings` with every statement.
    pub fn with_defaults(mut self, settings: &[(&str, &str)]) -> Client {
        self.defaults = settings
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self
    }

    /// Where it connects.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// `GET /ping`: the server is up.
    pub async fn ping(&self) -> Result<(), ClickHouseError> {
        let uri = format!("{}://{}/ping", self.scheme(), self.endpoint.authority);
        let req = self.request(Method::GET, &uri, Bytes::new())?;
        self.send(req).await.map(drop)
    }

    /// Runs one statement (sent as the body) with `settings` for it alone; returns what it
    /// printed, in the format its `FORMAT` clause names (`TabSeparated` when it names none).
    pub async fn query(
        &self,
        sql: &str,
        settings: &[(&str, &str)],
    ) -> Result<Bytes, ClickHouseError> {
        let uri = self.url(None, settings);
        let req = self.request(Method::POST, &uri, Bytes::copy_from_slice(sql.as_bytes()))?;
        self.send(req).await
    }

    /// Inserts `rows`, encoded in the format `statement` ends with (`INSERT INTO t (a, b)
    /// FORMAT RowBinary`), compressed with zstd on the way.
    pub async fn insert(
        &self,
        statement: &str,
        rows: &[u8],
        settings: &[(&str, &str)],
    ) -> Result<(), ClickHouseError> {
        let packed = zstd::bulk::compress(rows, 1)
            .map_err(|e| ClickHouseError::Unreachable(format!("compressing rows: {e}")))?;
        let uri = self.url(Some(statement), settings);
        let mut req = self.request(Method::POST, &uri, Bytes::from(packed))?;
        req.headers_mut()
            .insert(CONTENT_ENCODING, HeaderValue::from_static("zstd"));
        self.send(req).await.map(drop)
    }

    fn scheme(&self) -> &'static str {
        if self.endpoint.secure {
            "https"
        } else {
            "http"
        }
    }

    fn url(&self, query: Option<&str>, settings: &[(&str, &str)]) -> String {
        let mut url = format!(
            "{}://{}/?database={}",
            self.scheme(),
            self.endpoint.authority,
            encode(&self.endpoint.database)
        );
        if let Some(q) = query {
            url.push_str("&query=");
            url.push_str(&encode(q));
        }
        let defaults = self.defaults.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        for (name, value) in defaults.chain(settings.iter().copied()) {
            url.push('&');
            url.push_str(&encode(name));
            url.push('=');
            url.push_str(&encode(value));
        }
        url
    }

    fn request(
        &self,
        method: Method,
        uri: &str,
        body: Bytes,
    ) -> Result<Request<Full<Bytes>>, ClickHouseError> {
        if let Some(e) = &self.tls_error {
            return Err(ClickHouseError::Unreachable(e.clone()));
        }
        let mut b = Request::builder().method(method).uri(uri);
        // ClickHouse's own headers keep the password out of the URL (and of access logs).
        if let Some(user) = &self.endpoint.user {
            b = b.header("X-ClickHouse-User", user.as_str());
        }
        if let Some(password) = &self.endpoint.password {
            b = b.header("X-ClickHouse-Key", password.as_str());
        }
        b.body(Full::new(body))
            .map_err(|e| ClickHouseError::Unreachable(format!("building the request: {e}")))
    }

    async fn send(&self, req: Request<Full<Bytes>>) -> Result<Bytes, ClickHouseError> {
        let call = async {
            let resp = self
                .http
                .request(req)
                .await
                .map_err(|e| ClickHouseError::Unreachable(error_chain(&e)))?;
            let status = resp.status();
            let code = resp
                .headers()
                .get("X-ClickHouse-Exception-Code")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse().ok());
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| ClickHouseError::Unreachable(error_chain(&e)))?
                .to_bytes();
            if status == StatusCode::OK {
                return Ok(body);
            }
            let mut message = String::from_utf8_lossy(&body).into_owned();
            if message.len() > MAX_MESSAGE {
                let mut end = MAX_MESSAGE;
                while !message.is_char_boundary(end) {
                    end -= 1;
                }
                message.truncate(end);
                message.push('…');
            }
            Err(ClickHouseError::Server {
                status: status.as_u16(),
                code: code.or_else(|| code_in(&message)),
                message,
            })
        };
        tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| ClickHouseError::Timeout(self.timeout))?
    }
}

/// The code of a message that begins `Code: 60. DB::Exception: …`.
fn code_in(message: &str) -> Option<u32> {
    let rest = message.trim_start().strip_prefix("Code:")?.trim_start();
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// An error and its sources, one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                out.push('%');
                out.push(HEX[usize::from(b >> 4)] as char);
                out.push(HEX[usize::from(b & 15)] as char);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{code_in, encode};

    #[test]
    fn codes_are_read_from_messages() {
        assert_eq!(code_in("Code: 60. DB::Exception: Unknown table"), Some(60));
        assert_eq!(code_in("  Code:62. Syntax error"), Some(62));
        assert_eq!(code_in("something else"), None);
    }

    #[test]
    fn url_parts_are_percent_encoded() {
        assert_eq!(encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
        assert_eq!(encode("INSERT_INTO-t.x~"), "INSERT_INTO-t.x~");
    }
}
