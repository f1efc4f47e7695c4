//! `spanlens forward` and `serve --forward` end to end: a forwarding file checked (and refused
//! with the reason), a server forwarding to an in-test receiver, `forward status` showing the
//! delivery, and `forward set` giving a project its own destination.

mod common;

use common::{free_port, text, Server, BIN};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("SPANLENS_SERVER")
        .env_remove("SPANLENS_KEY")
        .stdin(Stdio::null())
        .output()
        .expect("run spanlens")
}

/// A receiver answering 200; the paths it was posted to.
fn receiver() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let mut len = 0;
            loop {
                let mut h = String::new();
                reader.read_line(&mut h).unwrap();
                if h.trim().is_empty() {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; len];
            reader.read_exact(&mut body).unwrap();
            sink.lock()
                .unwrap()
                .push(line.split_whitespace().nth(1).unwrap_or("").to_string());
            let mut s = stream;
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    (url, got)
}

#[test]
fn a_forwarding_file_is_checked_and_names_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "[[destination]]\nname = \"lf\"\nkind = \"langfuse\"\nendpoint = \"https://cloud.langfuse.com\"\npublic_key = \"pk-lf-1\"\nsecret_key = \"sk-lf-2\"\n",
    )
    .unwrap();
    let o = run(&["forward", "check", good.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("1 destination(s) ok: lf"),
        "{}",
        text(&o.stdout)
    );
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[destination]]\nname = \"ls\"\nkind = \"langsmith\"\nendpoint = \"https://api.smith.langchain.com\"\napi_key_env = \"SPANLENS_TEST_NOT_SET\"\n",
    )
    .unwrap();
    for args in [
        vec!["forward", "check", bad.to_str().unwrap()],
        vec![
            "serve",
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--forward",
            bad.to_str().unwrap(),
        ],
    ] {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = text(&o.stderr);
        assert!(
            err.contains("SPANLENS_TEST_NOT_SET is not set"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn a_server_forwards_and_status_shows_the_delivery() {
    let (url, got) = receiver();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("forward.toml");
    std::fs::write(
        &file,
        format!("[[destination]]\nname = \"collector\"\nkind = \"otlp\"\nendpoint = \"{url}\"\n"),
    )
    .unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, free_port(), &["--forward", file.to_str().unwrap()]);
    let now = common::now_ns();
    server
        .endpoint()
        .post_traces(&common::otlp_request(&common::agent_trace(1, now)));
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "nothing forwarded");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(got.lock().unwrap()[0], "/v1/traces");
    let status = loop {
        let o = run(&["forward", "status", "--server", &server.url, "--json"]);
        assert!(o.status.success(), "{}", text(&o.stderr));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        if v["destinations"][0]["counters"]["sent"].as_u64() >= Some(1) {
            break v;
        }
        assert!(Instant::now() < deadline, "{v}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let table = text(&run(&["forward", "status", "--server", &server.url]).stdout);
    let row = table
        .lines()
        .find(|l| l.starts_with("collector"))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(
        row.contains("otlp") && row.contains("file") && row.contains(&url),
        "{table}"
    );
    assert_eq!(
        status["destinations"][0]["counters"]["spans"],
        common::SPANS_PER_TRACE
    );

    // A project's own destination, set from a file.
    let own = dir.path().join("own.toml");
    std::fs::write(
        &own,
        format!("[[destination]]\nname = \"team\"\nkind = \"langfuse\"\nendpoint = \"{url}\"\npublic_key = \"pk-lf-1\"\nsecret_key = \"sk-lf-2\"\n"),
    )
    .unwrap();
    let o = run(&[
        "forward",
        "set",
        own.to_str().unwrap(),
        "--server",
        &server.url,
        "--project",
        "team-a",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.contains("team") && out.contains("project"), "{out}");
    assert!(!out.contains("sk-lf-2"), "{out}");
}
