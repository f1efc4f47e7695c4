//! `spanlens prompts` and `spanlens traces --prompt` through the binary against a running
//! server fed Traceloop prompt spans: a row per version with its calls and error rate, and the
//! trace list filtered to a version.

mod common;

use common::{free_port, text, Server, BIN};
use serde_json::{json, Value};
use std::process::{Command, Output, Stdio};

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("SPANLENS_SERVER")
        .env_remove("SPANLENS_KEY")
        .stdin(Stdio::null())
        .output()
        .expect("run spanlens")
}

/// Traces 0 and 1 use `summarize` version 1 (trace 1's call fails), trace 2 version 2.
fn post(url: &str, now: u64) {
    let kv = |k: &str, v: &str| json!({"key": k, "value": {"stringValue": v}});
    let mut spans = Vec::new();
    for (i, version) in ["1", "1", "2"].into_iter().enumerate() {
        let start = now - 600_000_000_000 + i as u64 * 1_000_000_000;
        let mut s = json!({"traceId": format!("{:032x}", 0x7700 + i), "spanId": format!("{:016x}", 0x77 + i),
            "name": "chat", "startTimeUnixNano": start.to_string(),
            "endTimeUnixNano": (start + 250_000_000).to_string(),
            "attributes": [kv("llm.request.type", "chat"), kv("gen_ai.system", "openai"),
                kv("gen_ai.request.model", "gpt-4o-mini"), kv("traceloop.prompt.key", "summarize"),
                kv("traceloop.prompt.version", version)]});
        if i == 1 {
            s["status"] = json!({"code": 2});
        }
        spans.push(s);
    }
    let body = json!({"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"spans": spans}]}]});
    let resp = ureq::post(&format!("{url}/v1/traces"))
        .header("content-type", "application/json")
        .send(body.to_string())
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
}

#[test]
fn prompts_lists_versions_and_traces_filter_by_one() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), free_port(), &[]);
    let now = common::now_ns();
    post(&server.url, now);
    let o = run(&["prompts", "--server", &server.url]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].starts_with("TEMPLATE"), "{out}");
    // Version 2 was used last: first, under the name.
    let cols = |l: &str| l.split_whitespace().map(str::to_string).collect::<Vec<_>>();
    assert_eq!(cols(lines[1])[..3], ["summarize", "2", "1"], "{out}");
    assert!(lines[1].contains("0.0%"), "{out}");
    assert_eq!(cols(lines[2])[..2], ["1", "2"], "{out}");
    assert!(
        lines[2].contains("50.0%") && lines[2].contains("250"),
        "{out}"
    );

    let o = run(&["prompts", "--server", &server.url, "--json"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["matched_traces"], 3);

    let o = run(&[
        "traces",
        "--server",
        &server.url,
        "--prompt",
        "summarize",
        "--prompt-version",
        "1",
        "--json",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let page: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 2, "{page}");

    // A bad range is refused with the server's reason.
    let o = run(&["prompts", "--server", &server.url, "--limit", "0"]);
    assert!(!o.status.success());
    assert!(text(&o.stderr).contains("limit"), "{}", text(&o.stderr));
}
