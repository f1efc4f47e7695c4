//! Deletion over HTTP: a trace, a session's traces and a user's traces (the right to erasure)
//! leave every read — the trace, the lists, sessions, metrics and scores — the answer counts
//! what went, live watchers are told, bad ids are 400, and with auth only an admin deletes.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};

mod common;

use common::client::{Server, JSON};

fn kv(key: &str, value: &str) -> Value {
    json!({"key": key, "value": {"stringValue": value}})
}

/// One trace of an agent and its chat call for `user` in `session`.
fn trace(id: &str, user: &str, session: &str) -> Vec<u8> {
    json!({"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": id, "spanId": "eee19b7ec3c1b174", "name": "agent",
         "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000002000000000",
         "attributes": [kv("user.id", user), kv("session.id", session)]},
        {"traceId": id, "spanId": "aaa19b7ec3c1b175", "parentSpanId": "eee19b7ec3c1b174",
         "name": "chat gpt-4o", "startTimeUnixNano": "1700000000100000000",
         "endTimeUnixNano": "1700000001000000000",
         "attributes": [kv("gen_ai.operation.name", "chat"), kv("gen_ai.request.model", "gpt-4o"),
            {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "100"}},
            {"key": "gen_ai.usage.output_tokens", "value": {"intValue": "10"}}]}
    ]}]}]})
    .to_string()
    .into_bytes()
}

fn ids(n: u32) -> String {
    format!("5b8efff798038103d269b63381{n:06x}")
}

fn spans_in(s: &Server) -> u64 {
    s.get("/api/v1/stats").1["span_count"].as_u64().unwrap()
}

#[test]
fn traces_sessions_and_users_are_deleted_from_every_read() {
    let s = Server::start();
    // u1: traces 0–2 in session s1; u2: traces 3–4 in s2, trace 5 in s3.
    for (i, (user, session)) in [
        ("u1", "s1"),
        ("u1", "s1"),
        ("u1", "s1"),
        ("u2", "s2"),
        ("u2", "s2"),
        ("u2", "s3"),
    ]
    .iter()
    .enumerate()
    {
        let (status, _, _) = s.post("/v1/traces", &[JSON], &trace(&ids(i as u32), user, session));
        assert_eq!(status, 200);
    }
    let score = json!({"trace_id": ids(0), "name": "ok", "data_type": "boolean", "value": 1});
    assert_eq!(s.json("POST", "/api/v1/scores", &[], &score).0, 201);
    assert_eq!(spans_in(&s), 12);
    // A live watcher.
    let stream = std::net::TcpStream::connect(s.bound.http).unwrap();
    write!(
        stream.try_clone().unwrap(),
        "GET /api/v1/live HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    let mut live = BufReader::new(stream);
    let mut line = String::new();
    live.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");
    std::thread::sleep(std::time::Duration::from_millis(100));

    // One trace.
    let (status, body) = s.json(
        "DELETE",
        &format!("/api/v1/traces/{}", ids(0)),
        &[],
        &Value::Null,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["erased"]["traces"], 1);
    assert_eq!(body["erased"]["spans"], 2);
    assert_eq!(body["erased"]["scores"], 1);
    assert_eq!(s.get(&format!("/api/v1/traces/{}", ids(0))).0, 404);
    assert!(
        s.get(&format!("/api/v1/scores?trace_id={}", ids(0))).1["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(spans_in(&s), 10);
    let mut event = String::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        line.clear();
        live.read_line(&mut line).unwrap();
        if line.starts_with("event: deleted") {
            line.clear();
            live.read_line(&mut line).unwrap();
            event = line.trim().trim_start_matches("data:").trim().to_string();
            break;
        }
    }
    let event: Value = serde_json::from_str(&event).unwrap_or(Value::Null);
    assert_eq!(
        event["trace_ids"],
        json!([ids(0)]),
        "the live watcher is told"
    );
    // Again: nothing left to delete, counted as such.
    let (status, body) = s.json(
        "DELETE",
        &format!("/api/v1/traces/{}", ids(0)),
        &[],
        &Value::Null,
    );
    assert_eq!(status, 200);
    assert_eq!(body["erased"]["traces"], 0);

    // A session: its two remaining traces; the user's other session stays.
    let (_, body) = s.json("DELETE", "/api/v1/sessions/s1", &[], &Value::Null);
    assert_eq!(body["erased"]["traces"], 2);
    assert_eq!(s.get("/api/v1/sessions/s1").0, 404);
    let sessions = s.get("/api/v1/sessions").1;
    let names: Vec<&str> = sessions["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["session_id"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(!names.contains(&"s1"));

    // A user: every trace, across sessions.
    let (_, body) = s.json("DELETE", "/api/v1/users/u2", &[], &Value::Null);
    assert_eq!(body["erased"]["traces"], 3);
    assert_eq!(body["erased"]["spans"], 6);
    let list = s.get("/api/v1/traces").1;
    assert!(list["items"].as_array().unwrap().is_empty(), "{list}");
    assert_eq!(spans_in(&s), 0);
    let metrics = s
        .get("/api/v1/metrics?group_by=model&from=2023-01-01T00:00:00Z")
        .1;
    let calls: u64 = metrics["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["span_count"].as_u64().unwrap())
        .sum();
    assert_eq!(calls, 0, "rollups follow: {metrics}");
    // Bad asks.
    let (status, body) = s.json("DELETE", "/api/v1/traces/xyz", &[], &Value::Null);
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().contains("trace_id"),
        "{body}"
    );
}

#[test]
fn with_auth_only_an_admin_of_the_project_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let (admin, reader, other) = {
        let store = std::sync::Arc::new(spanlens_server::open_store(dir.path()).unwrap());
        let d = spanlens_auth::Directory::new(store);
        let rt = tokio::runtime::Runtime::new().unwrap();
        let make = |p: &str, sc| rt.block_on(d.create(p, "", &[sc], false)).unwrap().secret;
        (
            make("a", spanlens_auth::Scope::Admin),
            make("a", spanlens_auth::Scope::Read),
            make("b", spanlens_auth::Scope::Admin),
        )
    };
    let s = Server::start_configured(dir, Vec::new(), |c| {
        c.auth = spanlens_server::auth::AuthMode::Required;
    });
    let bearer = |k: &str| format!("Bearer {k}");
    let ingest = bearer(&admin);
    let (status, _, _) = s.post(
        "/v1/traces",
        &[JSON, ("authorization", &ingest)],
        &trace(&ids(9), "u", "s"),
    );
    assert_eq!(status, 200);
    let path = format!("/api/v1/traces/{}", ids(9));
    let (status, _, _) = s.send("DELETE", &path, &[("authorization", &bearer(&reader))], b"");
    assert_eq!(status, 403, "read scope");
    let (status, body, _) = s.send("DELETE", &path, &[("authorization", &bearer(&other))], b"");
    assert_eq!(
        status, 200,
        "another project's admin deletes in its own project: nothing"
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["erased"]["traces"],
        0
    );
    let (status, body, _) = s.send("DELETE", &path, &[("authorization", &bearer(&admin))], b"");
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["erased"]["traces"],
        1
    );
    // Audited: who deleted what, with the counts; the other project's no-op is in its own log.
    let (status, log, _) = s.send(
        "GET",
        "/api/v1/audit",
        &[("authorization", &bearer(&admin))],
        b"",
    );
    assert_eq!(status, 200);
    let log: Value = serde_json::from_slice(&log).unwrap();
    let first = &log["entries"][0];
    assert_eq!(first["action"], "delete.trace", "{log}");
    assert_eq!(first["target"], format!("trace {}", ids(9)));
    assert_eq!(first["detail"]["spans"], 2);
    assert!(
        first["actor"].as_str().unwrap().starts_with("key slk_"),
        "{first}"
    );
    assert_eq!(log["entries"].as_array().unwrap().len(), 1, "{log}");
    let (status, _, _) = s.send(
        "GET",
        "/api/v1/audit",
        &[("authorization", &bearer(&reader))],
        b"",
    );
    assert_eq!(status, 403, "the log is an admin's");
}
