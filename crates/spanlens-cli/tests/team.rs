//! A team's server on every store backend: the first admin key and a person made on the store,
//! `serve --auth required`, spans sent with the key, a sign-in, settings saved, a user's
//! traces erased, and the audit log — the same on SQLite, PostgreSQL and ClickHouse.

mod common;

use common::{text, Server, BIN};
use serde_json::{json, Value};
use std::process::{Command, Stdio};

fn cli(args: &[&str], stdin: &str) -> String {
    let mut child = Command::new(BIN)
        .args(args)
        .env_remove("SPANLENS_KEY")
        .env_remove("SPANLENS_SERVER")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    common::feed_stdin(&mut child, stdin.as_bytes());
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{args:?}: {}", text(&o.stderr));
    text(&o.stdout)
}

/// A request with headers; the status and the JSON answer.
fn call(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> (u16, Value, Vec<(String, String)>) {
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build(),
    );
    let mut req = ureq::http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut resp = match body {
        Some(b) => agent.run(
            req.header("content-type", "application/json")
                .body(b.to_string())
                .unwrap(),
        ),
        None => agent.run(req.body(()).unwrap()),
    }
    .unwrap();
    let status = resp.status().as_u16();
    let got = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let body = resp.body_mut().read_to_string().unwrap();
    (
        status,
        serde_json::from_str(&body).unwrap_or(Value::Null),
        got,
    )
}

fn kv(key: &str, value: &str) -> Value {
    json!({"key": key, "value": {"stringValue": value}})
}

fn team_server_on(store: &[&str]) {
    let mut args = vec![
        "keys",
        "create",
        "--project",
        "shop",
        "--scope",
        "admin",
        "--name",
        "first",
    ];
    args.extend_from_slice(store);
    let key = cli(&args, "").trim().to_string();
    let mut args = vec![
        "users",
        "create",
        "ana",
        "--project",
        "shop",
        "--role",
        "viewer",
    ];
    args.extend_from_slice(store);
    cli(&args, "a long passphrase\n");
    let s = match store {
        ["--data-dir", dir] => Server::start(
            std::path::Path::new(dir),
            common::free_port(),
            &["--auth", "required", "--redact", "builtin"],
        ),
        ["--store", uri] => {
            Server::start_store(uri, &["--auth", "required", "--redact", "builtin"])
        }
        other => panic!("{other:?}"),
    };
    let bearer = format!("Bearer {key}");
    let auth = [("authorization", bearer.as_str())];
    // Without the key: refused. With it: stored in the key's project, redacted.
    let spans = json!({"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174", "name": "agent",
         "startTimeUnixNano": "1767225600000000000", "endTimeUnixNano": "1767225602000000000",
         "attributes": [kv("user.id", "u-7"), kv("input.value", "mail jane@example.com")]}]}]}]});
    let url = |p: &str| format!("{}{p}", s.url);
    assert_eq!(call("POST", &url("/v1/traces"), &[], Some(&spans)).0, 401);
    assert_eq!(call("POST", &url("/v1/traces"), &auth, Some(&spans)).0, 200);
    let (status, trace, _) = call(
        "GET",
        &url("/api/v1/traces/5b8efff798038103d269b633813fc60c"),
        &auth,
        None,
    );
    assert_eq!(status, 200, "{trace}");
    let t = trace.to_string();
    assert!(
        t.contains("[REDACTED:email]") && !t.contains("jane@example.com"),
        "{t}"
    );
    // Ana signs in and reads.
    let (status, me, headers) = call(
        "POST",
        &url("/api/v1/session"),
        &[],
        Some(&json!({"name": "ana", "password": "a long passphrase"})),
    );
    assert_eq!(status, 200, "{me}");
    let cookie = headers
        .iter()
        .find(|(k, _)| k == "set-cookie")
        .unwrap()
        .1
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let (status, list, _) = call(
        "GET",
        &url("/api/v1/traces?project=shop"),
        &[("cookie", &cookie)],
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    // Settings saved and read back.
    let (status, _, _) = call(
        "PUT",
        &url("/api/v1/projects/shop/retention"),
        &auth,
        Some(&json!({"days": 3650})),
    );
    assert_eq!(status, 200);
    let (status, _, _) = call(
        "PUT",
        &url("/api/v1/projects/shop/quota"),
        &auth,
        Some(&json!({"spans_per_second": 100000})),
    );
    assert_eq!(status, 200);
    let (_, r, _) = call("GET", &url("/api/v1/projects/shop/retention"), &auth, None);
    assert_eq!(r["settings"]["days"], 3650);
    // The user's traces erased.
    let (status, gone, _) = call("DELETE", &url("/api/v1/users/u-7"), &auth, None);
    assert_eq!(status, 200, "{gone}");
    assert_eq!(gone["erased"]["traces"], 1);
    let (_, list, _) = call("GET", &url("/api/v1/traces"), &auth, None);
    assert!(list["items"].as_array().unwrap().is_empty(), "{list}");
    // Audited, the CLI's changes included.
    let (_, log, _) = call("GET", &url("/api/v1/audit"), &auth, None);
    let actions: Vec<&str> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for want in [
        "delete.user",
        "quota.set",
        "retention.set",
        "account.create",
        "key.create",
    ] {
        assert!(actions.contains(&want), "{want} missing from {actions:?}");
    }
}

#[test]
fn a_team_server_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    team_server_on(&["--data-dir", data.to_str().unwrap()]);
}

#[cfg(feature = "postgres")]
#[test]
fn a_team_server_on_postgres() {
    let db = common::PgDatabase::create("team");
    team_server_on(&["--store", &db.uri]);
}

#[cfg(feature = "clickhouse")]
#[test]
fn a_team_server_on_clickhouse() {
    let uri = common::clickhouse_database("team");
    team_server_on(&["--store", &uri]);
}
