//! The log of `spanlens serve` on stderr: `tracing` events of the CLI and of spanlens-server,
//! filtered by `SPANLENS_LOG` and written as text or JSON lines (`SPANLENS_LOG_FORMAT`).

mod common;

use common::{free_port, lines_of, text, BIN};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

/// A `spanlens serve --max-connections 1` child with `env` set, killed when dropped.
struct Serve {
    child: Child,
    port: u16,
    stderr: Receiver<String>,
    /// Every stderr line read so far.
    lines: Vec<String>,
}

impl Serve {
    fn start(data: &std::path::Path, env: &[(&str, &str)]) -> Serve {
        let port = free_port();
        let mut cmd = Command::new(BIN);
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(data)
            .args([
                "--http",
                &format!("127.0.0.1:{port}"),
                "--grpc",
                "127.0.0.1:0",
            ])
            .args(["--max-connections", "1"])
            .env_remove("SPANLENS_LOG")
            .env_remove("SPANLENS_LOG_FORMAT")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn spanlens serve");
        let stderr = lines_of(child.stderr.take().unwrap());
        let mut serve = Serve {
            child,
            port,
            stderr,
            lines: Vec::new(),
        };
        serve.wait_for("listening on");
        serve
    }

    /// Reads stderr until a line contains `needle`, and returns it.
    fn wait_for(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let Ok(line) = self.stderr.recv_timeout(left) else {
                break;
            };
            self.lines.push(line.clone());
            if line.contains(needle) {
                return line;
            }
        }
        panic!("no line with {needle:?} on stderr: {:#?}", self.lines);
    }

    /// Holds the one connection slot, is refused a second connection, gives the slot back and
    /// is served again: the server warns once, then says it accepts again.
    fn exhaust_the_connection_limit(&mut self) {
        let held = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let refused = get_healthz(self.port);
        assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
        self.wait_for("connection limit reached");
        drop(held);
        // The slot is free once the server has seen the held connection close.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !get_healthz(self.port).starts_with("HTTP/1.1 200") {
            assert!(Instant::now() < deadline, "the slot never came back");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends SIGTERM, waits for a clean exit and returns every stderr line.
    fn stop(mut self) -> Vec<String> {
        let term = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(term.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "serve did not stop after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(status.success(), "serve exited with {status}");
        // The pipe closed with the process: the rest of its lines are there to read.
        while let Ok(line) = self.stderr.recv_timeout(Duration::from_secs(10)) {
            self.lines.push(line);
        }
        std::mem::take(&mut self.lines)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET /healthz` on a connection of its own; the raw answer (empty if the server closed it).
fn get_healthz(port: u16) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    text(&answer)
}

#[test]
fn serve_logs_json_lines_with_spanlens_log_format_json() {
    let dir = tempfile::tempdir().unwrap();
    let mut serve = Serve::start(&dir.path().join("data"), &[("SPANLENS_LOG_FORMAT", "json")]);
    let port = serve.port;
    serve.exhaust_the_connection_limit();
    serve.wait_for("accepting connections again");
    let lines = serve.stop();

    let events: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    for (e, line) in events.iter().zip(&lines) {
        assert!(e.is_object(), "{line}");
        assert!(e["timestamp"].is_string(), "{line}");
        assert!(
            ["INFO", "WARN"].contains(&e["level"].as_str().unwrap_or("")),
            "{line}"
        );
        assert!(e["fields"]["message"].is_string(), "{line}");
        assert!(e["target"].is_string(), "{line}");
    }
    let find = |message: &str| {
        events
            .iter()
            .find(|e| {
                e["fields"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains(message))
            })
            .unwrap_or_else(|| panic!("no event {message:?}: {lines:#?}"))
    };
    // The CLI's startup line, its values as fields.
    let listening = find("listening on");
    assert_eq!(listening["level"], "INFO");
    assert_eq!(
        listening["fields"]["http"],
        format!("http://127.0.0.1:{port}")
    );
    assert!(listening["fields"]["grpc"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));
    assert!(listening["fields"]["ready_ms"].is_u64(), "{listening}");
    // spanlens-server's events: a warning with its values, and the all-clear.
    let refusing = find("connection limit reached");
    assert_eq!(refusing["level"], "WARN");
    assert_eq!(refusing["fields"]["limit"], 1);
    assert_eq!(refusing["fields"]["listener"], "HTTP");
    assert!(
        refusing["target"]
            .as_str()
            .unwrap()
            .starts_with("spanlens_server"),
        "{refusing}"
    );
    assert_eq!(find("accepting connections again")["level"], "INFO");
    // And the way out.
    find("shutting down");
    assert_eq!(
        events.last().unwrap()["fields"]["message"],
        "stopped",
        "{lines:#?}"
    );
}

#[test]
fn spanlens_log_filters_events_and_text_lines_stay_readable() {
    let dir = tempfile::tempdir().unwrap();
    // Warnings only, except the CLI's own messages (the listening line).
    let mut serve = Serve::start(
        &dir.path().join("data"),
        &[("SPANLENS_LOG", "warn,spanlens::serve=info")],
    );
    let port = serve.port;
    let listening = serve.lines.last().unwrap().clone();
    assert!(
        listening.contains("INFO") && listening.contains(&format!("http=http://127.0.0.1:{port}")),
        "{listening}"
    );
    serve.exhaust_the_connection_limit();
    let lines = serve.stop();
    let refusing = lines
        .iter()
        .find(|l| l.contains("connection limit reached"))
        .unwrap();
    assert!(
        refusing.contains("WARN")
            && refusing.contains("limit=1")
            && refusing.contains("listener=HTTP"),
        "{refusing}"
    );
    // The server's info events are filtered out; nothing is JSON.
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("accepting connections again")),
        "{lines:#?}"
    );
    assert!(!lines.iter().any(|l| l.starts_with('{')), "{lines:#?}");
    assert!(lines.last().unwrap().ends_with("stopped"), "{lines:#?}");
}

#[test]
fn a_bad_spanlens_log_or_format_is_an_input_error() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port().to_string();
    let serve = |var: &str, value: &str| {
        Command::new(BIN)
            .args(["serve", "--data-dir"])
            .arg(&data)
            .args([
                "--http",
                &format!("127.0.0.1:{port}"),
                "--grpc",
                "127.0.0.1:0",
            ])
            .env_remove("SPANLENS_LOG")
            .env_remove("SPANLENS_LOG_FORMAT")
            .env(var, value)
            .stdin(Stdio::null())
            .output()
            .expect("run spanlens serve")
    };
    for (var, value) in [("SPANLENS_LOG", "bogus["), ("SPANLENS_LOG_FORMAT", "yaml")] {
        let o = serve(var, value);
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{var}={value}: {err}");
        assert!(
            err.starts_with("error: ") && err.contains(&format!("{var}=\"{value}\"")),
            "{err}"
        );
        assert!(!err.contains("panicked"), "{err}");
        assert!(o.stdout.is_empty());
    }
    // Nothing was started: no data directory was made.
    assert!(!data.exists());
    // Commands that do not log ignore the variables.
    let o = Command::new(BIN)
        .args(["cost", "--model", "gpt-4o", "--input-tokens", "10"])
        .env("SPANLENS_LOG", "bogus[")
        .env("SPANLENS_LOG_FORMAT", "yaml")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
}
