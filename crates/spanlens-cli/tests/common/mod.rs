//! What the CLI test files share: running the `spanlens` binary and reading its output.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::Duration;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_spanlens");

/// Runs `spanlens` with `args` (no `SPANLENS_SERVER` from the environment, no stdin).
#[allow(dead_code)]
pub fn spanlens(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("SPANLENS_SERVER")
        .stdin(Stdio::null())
        .output()
        .expect("run spanlens")
}

/// Writes `input` to a child's stdin and closes it. A command that refuses its arguments may
/// exit before reading its input: the pipe is then closed, and what it printed says why.
#[allow(dead_code)]
pub fn feed_stdin(child: &mut Child, input: &[u8]) {
    use std::io::Write;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    match stdin.write_all(input) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        other => other.expect("writing the command's input"),
    }
}

/// Runs `spanlens` with `args`, which must succeed, and parses what it printed as JSON.
#[allow(dead_code)]
pub fn spanlens_json(args: &[&str]) -> serde_json::Value {
    let o = spanlens(args);
    assert!(o.status.success(), "{args:?}: {}", text(&o.stderr));
    serde_json::from_str(&text(&o.stdout)).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

/// Output bytes as text.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The wall clock, ns since the Unix epoch: for spans sent "now".
#[allow(dead_code)] // not every test file sends spans
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_nanos() as u64
}

/// A free loopback port (bound and released; a test server takes it right after).
#[allow(dead_code)] // not every test file starts a server
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free port")
        .port()
}

/// Lines of a child's pipe, read on a thread so a test can wait for one with a deadline.
#[allow(dead_code)]
pub fn lines_of(pipe: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// A `spanlens serve` child process on a known port, killed when dropped.
#[allow(dead_code)]
pub struct Server {
    pub child: Option<Child>,
    pub url: String,
    /// What the server printed before it was ready.
    pub startup: Vec<String>,
    /// What the server prints after it is ready (kept open: a closed pipe would fail its writes).
    pub stderr: Receiver<String>,
}

#[allow(dead_code)]
impl Server {
    /// Starts `spanlens serve --data-dir data --http 127.0.0.1:port` with `extra` arguments and
    /// waits until it says it is listening.
    pub fn start(data: &Path, port: u16, extra: &[&str]) -> Server {
        let data = data.to_str().expect("a UTF-8 temp path");
        Server::start_on(&["--data-dir", data], port, extra)
    }

    /// Starts `spanlens serve --store uri` on a free port and waits until it listens.
    pub fn start_store(uri: &str, extra: &[&str]) -> Server {
        Server::start_on(&["--store", uri], free_port(), extra)
    }

    fn start_on(store: &[&str], port: u16, extra: &[&str]) -> Server {
        let mut child = Command::new(BIN)
            .arg("serve")
            .args(store)
            .args([
                "--http",
                &format!("127.0.0.1:{port}"),
                "--grpc",
                "127.0.0.1:0",
            ])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn spanlens serve");
        let stderr = lines_of(child.stderr.take().unwrap());
        let mut startup = Vec::new();
        while let Ok(line) = stderr.recv_timeout(Duration::from_secs(60)) {
            let ready = line.contains("listening on");
            startup.push(line);
            if ready {
                break;
            }
        }
        assert!(
            startup.last().is_some_and(|l| l.contains("listening on")),
            "server did not start: {startup:#?}"
        );
        Server {
            child: Some(child),
            url: format!("http://127.0.0.1:{port}"),
            startup,
            stderr,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A fresh database name on the ClickHouse test server (`SPANLENS_TEST_CLICKHOUSE`), as a
/// `clickhouse://` store URI; the collector creates it. (The server `scripts/test` starts is
/// removed with its data after the run.)
#[allow(dead_code)]
pub fn clickhouse_database(what: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let server = std::env::var("SPANLENS_TEST_CLICKHOUSE").unwrap_or_else(|_| {
        panic!(
            "SPANLENS_TEST_CLICKHOUSE is not set: start scripts/clickhouse-test-server PORT DIR and \
             export http://127.0.0.1:PORT, or run the tests with scripts/test"
        )
    });
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "clickhouse://{}/spanlens_cli_{what}_{}_{nanos}_{n}",
        server.trim_end_matches('/').trim_start_matches("http://"),
        std::process::id()
    )
}

/// A database of its own on the test PostgreSQL (`SPANLENS_TEST_POSTGRES`, a superuser URL),
/// dropped when this is dropped.
#[allow(dead_code)]
pub struct PgDatabase {
    /// The database's URL.
    pub uri: String,
    admin: String,
    name: String,
}

#[allow(dead_code)]
impl PgDatabase {
    /// Creates `spanlens_cli_{what}_{pid}_{n}` with `psql`.
    pub fn create(what: &str) -> PgDatabase {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let admin = std::env::var("SPANLENS_TEST_POSTGRES").unwrap_or_else(|_| {
            panic!(
                "SPANLENS_TEST_POSTGRES is not set: run scripts/postgres-test-server (it starts \
                 PostgreSQL and prints the URL to export), or run the tests with scripts/test"
            )
        });
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let name = format!("spanlens_cli_{what}_{}_{n}", std::process::id());
        psql(&admin, &format!("DROP DATABASE IF EXISTS {name}"));
        psql(&admin, &format!("CREATE DATABASE {name}"));
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        PgDatabase {
            uri: format!("{base}/{name}"),
            admin,
            name,
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                &self.admin,
                "-qc",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .output();
    }
}

/// Runs one SQL statement with `psql`, which must succeed.
#[allow(dead_code)]
pub fn psql(url: &str, sql: &str) {
    let o = Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-qc", sql])
        .output()
        .expect("run psql (PostgreSQL's client)");
    assert!(o.status.success(), "psql {sql}: {}", text(&o.stderr));
}

/// A server's base URL, to call it from several threads (a [`Server`] holds a receiver).
#[allow(dead_code)]
#[derive(Clone)]
pub struct Endpoint {
    pub url: String,
}

#[allow(dead_code)]
impl Server {
    /// Where to reach this server.
    pub fn endpoint(&self) -> Endpoint {
        Endpoint {
            url: self.url.clone(),
        }
    }

    /// `GET path`, which must answer 200 with JSON.
    pub fn get(&self, path: &str) -> serde_json::Value {
        self.endpoint().get(path)
    }
}

/// A blocking HTTP client for a test server: JSON answers and OTLP posts.
#[allow(dead_code)]
impl Endpoint {
    /// `GET path` (with `project` unset), which must answer 200 with JSON.
    pub fn get(&self, path: &str) -> serde_json::Value {
        let url = format!("{}{path}", self.url);
        let mut resp = ureq::get(&url)
            .config()
            .http_status_as_error(false)
            .build()
            .call()
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let status = resp.status().as_u16();
        let body = resp.body_mut().read_to_string().unwrap();
        assert_eq!(status, 200, "GET {url}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {url}: {e}: {body}"))
    }

    /// Posts an OTLP/JSON request, retrying while the server answers 503 (busy): spans are
    /// acknowledged only once committed.
    pub fn post_traces(&self, body: &[u8]) {
        let url = format!("{}/v1/traces", self.url);
        for _ in 0..200 {
            let mut resp = ureq::post(&url)
                .header("content-type", "application/json")
                .config()
                .http_status_as_error(false)
                .build()
                .send(body)
                .unwrap_or_else(|e| panic!("POST {url}: {e}"));
            match resp.status().as_u16() {
                200 => return,
                503 => std::thread::sleep(Duration::from_millis(100)),
                s => panic!(
                    "POST {url}: {s}: {}",
                    resp.body_mut().read_to_string().unwrap_or_default()
                ),
            }
        }
        panic!("POST {url}: still busy after 20 s");
    }
}

/// Spans per [`agent_trace`]: a root, 3 agents, 2 model calls under each agent, 2 tools.
#[allow(dead_code)]
pub const SPANS_PER_TRACE: u64 = 12;
/// Sessions the agent traces are spread over (by trace number).
#[allow(dead_code)]
pub const SESSIONS: u64 = 16;

/// An OTLP attribute.
#[allow(dead_code)]
pub fn attr(key: &str, v: Value) -> Value {
    json!({"key": key, "value": v})
}

/// The spans of agent trace `t` (root, 3 agents with 2 priced model calls each, 2 tools, one
/// failed in every 7th trace) as OTLP/JSON span objects, starting `t` seconds after `base_ns`.
#[allow(dead_code)]
pub fn agent_trace(t: u64, base_ns: u64) -> Vec<Value> {
    let tid = format!("{:032x}", 0x5eed_0000_0000u64 + t);
    let sid = |s: u64| format!("{:016x}", (t << 8) + s + 1);
    let start = base_ns + t * 1_000_000_000;
    let mut out = Vec::new();
    let mut push = |s: u64,
                    parent: Option<u64>,
                    name: &str,
                    at_ms: u64,
                    dur_ms: u64,
                    attrs: Vec<Value>,
                    failed: bool| {
        let mut span = json!({
            "traceId": tid, "spanId": sid(s), "name": name,
            "startTimeUnixNano": (start + at_ms * 1_000_000).to_string(),
            "endTimeUnixNano": (start + (at_ms + dur_ms) * 1_000_000).to_string(),
            "attributes": attrs,
            "status": {"code": if failed { 2 } else { 1 }},
        });
        if let Some(p) = parent {
            span["parentSpanId"] = json!(sid(p));
        }
        out.push(span);
    };
    push(
        0,
        None,
        "pipeline",
        0,
        900,
        vec![
            attr(
                "session.id",
                json!({"stringValue": format!("s{}", t % SESSIONS)}),
            ),
            attr("user.id", json!({"stringValue": format!("u{}", t % 5)})),
            attr("openinference.span.kind", json!({"stringValue": "CHAIN"})),
        ],
        false,
    );
    let mut s = 1;
    for a in 0..3u64 {
        let agent = s;
        push(
            agent,
            Some(0),
            &format!("agent {a}"),
            10 + a * 5,
            700,
            vec![
                attr(
                    "gen_ai.operation.name",
                    json!({"stringValue": "invoke_agent"}),
                ),
                attr(
                    "gen_ai.agent.name",
                    json!({"stringValue": format!("agent-{a}")}),
                ),
            ],
            false,
        );
        s += 1;
        for c in 0..2u64 {
            let input = 100 + t + a * 10 + c;
            push(
                s,
                Some(agent),
                "chat",
                20 + c * 300,
                250,
                vec![
                    attr("gen_ai.operation.name", json!({"stringValue": "chat"})),
                    attr("gen_ai.provider.name", json!({"stringValue": "openai"})),
                    attr(
                        "gen_ai.request.model",
                        json!({"stringValue": "gpt-4o-mini"}),
                    ),
                    attr(
                        "gen_ai.usage.input_tokens",
                        json!({"intValue": input.to_string()}),
                    ),
                    attr(
                        "gen_ai.usage.output_tokens",
                        json!({"intValue": (20 + c).to_string()}),
                    ),
                ],
                false,
            );
            s += 1;
        }
    }
    for k in 0..2u64 {
        push(
            s,
            Some(1),
            "search",
            600 + k * 50,
            40,
            vec![
                attr(
                    "gen_ai.operation.name",
                    json!({"stringValue": "execute_tool"}),
                ),
                attr("gen_ai.tool.name", json!({"stringValue": "search"})),
            ],
            t % 7 == 0 && k == 1,
        );
        s += 1;
    }
    assert_eq!(s, SPANS_PER_TRACE);
    out
}

#[allow(dead_code)]
/// An OTLP/JSON request of `spans` from one service.
pub fn otlp_request(spans: &[Value]) -> Vec<u8> {
    serde_json::to_vec(&json!({"resourceSpans": [{
        "resource": {"attributes": [attr("service.name", json!({"stringValue": "collectors-test"}))]},
        "scopeSpans": [{"spans": spans}]}]}))
    .unwrap()
}
