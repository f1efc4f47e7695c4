//! Retention over HTTP: an admin sets a project's days, the sweeper deletes what is older (or
//! clears its payloads) and reports it, other projects and newer traces stay, and bad values
//! are refused with the reason.

use serde_json::{json, Value};
use std::time::{Duration, Instant};

mod common;

use common::client::{Server, JSON};

fn kv(key: &str, value: &str) -> Value {
    json!({"key": key, "value": {"stringValue": value}})
}

/// A two-span trace starting at `start_s` (seconds since the epoch) with an input.
fn trace(id: &str, start_s: u64) -> Vec<u8> {
    let ns = |s: u64, ms: u64| (s * 1_000_000_000 + ms * 1_000_000).to_string();
    json!({"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": id, "spanId": "eee19b7ec3c1b174", "name": "agent",
         "startTimeUnixNano": ns(start_s, 0), "endTimeUnixNano": ns(start_s, 2000),
         "attributes": [kv("input.value", "the secret plan"), kv("output.value", "done")]},
        {"traceId": id, "spanId": "aaa19b7ec3c1b175", "parentSpanId": "eee19b7ec3c1b174",
         "name": "chat", "startTimeUnixNano": ns(start_s, 100), "endTimeUnixNano": ns(start_s, 900),
         "attributes": [kv("gen_ai.operation.name", "chat"), kv("gen_ai.request.model", "gpt-4o")]}
    ]}]}]})
    .to_string()
    .into_bytes()
}

fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_sweeper_applies_each_projects_retention() {
    let s = Server::start();
    let day = 86_400;
    let old = |n: u32| format!("01d0000000000000000000000000{n:04x}");
    let new = "eeee0000000000000000000000000001";
    for (project, id, start) in [
        ("keep-30", old(1), now_s() - 40 * day),
        ("keep-30", old(2), now_s() - 35 * day),
        ("keep-30", new.to_string(), now_s() - day),
        ("other", old(3), now_s() - 40 * day),
        ("clear-7", old(4), now_s() - 10 * day),
    ] {
        let (status, body, _) = s.post(
            "/v1/traces",
            &[JSON, ("x-project-name", project)],
            &trace(&id, start),
        );
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    }
    // Bad values are refused.
    for bad in [
        json!({"days": 0}),
        json!({"days": 40000}),
        json!({"keep": 3}),
    ] {
        let (status, body) = s.json("PUT", "/api/v1/projects/keep-30/retention", &[], &bad);
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let (status, body) = s.json(
        "PUT",
        "/api/v1/projects/keep-30/retention",
        &[],
        &json!({"days": 30}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["settings"]["days"], 30);
    let (status, _) = s.json(
        "PUT",
        "/api/v1/projects/clear-7/retention",
        &[],
        &json!({"payload_days": 7}),
    );
    assert_eq!(status, 200);
    let count = |p: &str| {
        s.get(&format!("/api/v1/stats?project={p}")).1["span_count"]
            .as_u64()
            .unwrap()
    };
    until("the old traces of keep-30 to go", || count("keep-30") == 2);
    let list = s.get("/api/v1/traces?project=keep-30").1;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["items"][0]["trace_id"], new);
    assert_eq!(
        count("other"),
        2,
        "a project without retention keeps everything"
    );
    until("the sweep's report", || {
        !s.get("/api/v1/projects/keep-30/retention").1["last_sweep"].is_null()
    });
    let answer = s.get("/api/v1/projects/keep-30/retention").1;
    assert_eq!(answer["last_sweep"]["erased"]["traces"], 2, "{answer}");
    assert_eq!(answer["last_sweep"]["erased"]["spans"], 4);
    // Payload retention: the trace stays, what it said is gone.
    let cleared = old(4);
    until("the payloads of clear-7 to be cleared", || {
        let t = s
            .get(&format!("/api/v1/traces/{cleared}?project=clear-7"))
            .1;
        !t.to_string().contains("the secret plan")
    });
    let t = s
        .get(&format!("/api/v1/traces/{cleared}?project=clear-7"))
        .1;
    assert_eq!(t["spans"].as_array().unwrap().len(), 2, "{t}");
    assert_eq!(count("clear-7"), 2);
    // Audited.
    let log = s.get("/api/v1/audit?project=keep-30").1;
    assert_eq!(log["entries"][0]["action"], "retention.set", "{log}");
}
