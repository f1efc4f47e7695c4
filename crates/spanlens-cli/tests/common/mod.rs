//! What the CLI test files share: running the `spanlens` binary and reading its output.

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
        let mut child = Command::new(BIN)
            .arg("serve")
            .arg("--data-dir")
            .arg(data)
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
