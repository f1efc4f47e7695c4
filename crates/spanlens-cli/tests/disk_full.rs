//! A full disk (issue #11): `spanlens serve` on a small tmpfs answers 503 with `Retry-After`
//! (never a 500, which OTLP clients treat as final), logs the episode once with the free
//! space, keeps answering reads, and writes again by itself once space returns.
//!
//! Mounting a tmpfs needs root (CI runs as root); elsewhere the test says it was skipped.

mod common;

use common::{free_port, Server};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// A tmpfs mounted on a temporary directory, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Tmpfs { dir })
    }

    fn resize(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(self.dir.path())
            .status()
            .unwrap();
        assert!(status.success(), "remount failed");
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// 4 KB of letters that do not compress (xorshift), different for each seed.
fn noise(seed: u64) -> String {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (b'a' + (x % 26) as u8) as char
        })
        .collect()
}

/// One OTLP/JSON request of `n` spans of a fresh trace, each with 4 KB of input text.
fn batch(seq: u64, n: u64) -> String {
    let spans: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            let text = noise(seq * 1000 + i);
            serde_json::json!({
                "traceId": format!("{:032x}", seq + 1),
                "spanId": format!("{:016x}", i + 1),
                "name": "step",
                "startTimeUnixNano": "1764003600000000000",
                "endTimeUnixNano": "1764003601000000000",
                "attributes": [{"key": "input.value", "value": {"stringValue": text}}],
            })
        })
        .collect();
    serde_json::json!({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}).to_string()
}

fn post(url: &str, body: &str) -> (u16, Option<String>) {
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build(),
    );
    let resp = agent
        .post(&format!("{url}/v1/traces"))
        .header("content-type", "application/json")
        .send(body)
        .expect("the server answers");
    let retry = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (resp.status().as_u16(), retry)
}

fn stored(url: &str) -> u64 {
    let mut resp = ureq::get(&format!("{url}/api/v1/stats")).call().unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap();
    v["span_count"].as_u64().unwrap()
}

/// Server messages printed so far.
fn messages(server: &Server) -> Vec<String> {
    server.stderr.try_iter().collect()
}

#[test]
fn a_full_disk_answers_503_and_recovers_by_itself() {
    let Some(fs) = Tmpfs::mount("12m") else {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    };
    let server = Server::start(&fs.path().join("data"), free_port(), &[]);
    let url = server.url.clone();
    let mut acknowledged = 0u64;
    let mut seq = 0u64;
    // Fill the disk until the server says it cannot write.
    let full = loop {
        seq += 1;
        assert!(seq < 500, "12 MiB never filled up");
        match post(&url, &batch(seq, 100)) {
            (200, _) => acknowledged += 100,
            (503, retry) => break retry,
            (other, _) => panic!("answered {other} instead of 503 on a full disk"),
        }
    };
    assert_eq!(full.as_deref(), Some("1"), "503 carries Retry-After");
    // More attempts on the full disk: still 503, and one log line for the whole episode.
    for _ in 0..3 {
        seq += 1;
        assert_eq!(post(&url, &batch(seq, 100)).0, 503);
    }
    let said = messages(&server);
    let full_lines: Vec<&String> = said.iter().filter(|l| l.contains("cannot write")).collect();
    assert_eq!(full_lines.len(), 1, "{said:#?}");
    eprintln!("logged: {}", full_lines[0]);
    assert!(
        full_lines[0].contains("the disk is full"),
        "{}",
        full_lines[0]
    );
    assert!(
        full_lines[0].contains("WARN") && full_lines[0].contains("free_mib="),
        "{}",
        full_lines[0]
    );
    // Reads go on, and every acknowledged span is there.
    assert_eq!(stored(&url), acknowledged);

    // Space comes back: the next request is written, with no restart.
    fs.resize("256m");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        seq += 1;
        match post(&url, &batch(seq, 100)) {
            (200, _) => {
                acknowledged += 100;
                break;
            }
            (503, _) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
            (status, _) => panic!("still {status} after space returned"),
        }
    }
    assert_eq!(stored(&url), acknowledged);
    std::thread::sleep(Duration::from_millis(200));
    let said = messages(&server);
    assert!(
        said.iter().any(|l| l.contains("the store writes again")),
        "{said:#?}"
    );
    drop(server);
}
