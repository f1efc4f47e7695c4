//! Review queues on every store backend, through `spanlens serve` and `spanlens queues`: a queue
//! is made from a trace-list filter, an item is claimed and scored (stored with source `human`,
//! the reviewer and the time), the progress counts it — on a second server of the same store
//! too (PostgreSQL and ClickHouse), since queues live in the store's shared state — and
//! `spanlens queues` prints it.
//!
//! PostgreSQL and ClickHouse need `SPANLENS_TEST_POSTGRES` (and `psql`) and
//! `SPANLENS_TEST_CLICKHOUSE`, as the collector tests do.

mod common;

use common::{agent_trace, otlp_request, text, Server, BIN};
use serde_json::{json, Value};
use std::process::{Command, Stdio};

fn send(url: &str, method: &str, path: &str, body: Value) -> (u16, Value) {
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build(),
    );
    let req = ureq::http::Request::builder()
        .method(method)
        .uri(format!("{url}{path}"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .unwrap();
    let mut resp = agent.run(req).unwrap();
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// The flow on the store of `servers` (all on one store).
fn review_on(servers: &[Server]) {
    let (one, last) = (&servers[0], servers.last().unwrap());
    let now = common::now_ns();
    for t in 0..5 {
        one.endpoint()
            .post_traces(&otlp_request(&agent_trace(t, now - 3_600_000_000_000)));
    }
    let input = json!({"name": "Users u1", "source": {"kind": "filter", "query": "user=u1"},
                       "scores": [{"name": "helpful", "data_type": "numeric", "min": 0, "max": 1}]});
    let (code, made) = send(&one.url, "POST", "/api/v1/queues", input);
    assert_eq!(code, 201, "{made}");
    let id = made["queue"]["id"].as_str().unwrap().to_string();
    assert_eq!(made["progress"]["total"], 1, "trace 1 is user u1's: {made}");
    let (code, bad) = send(
        &one.url,
        "POST",
        "/api/v1/queues",
        json!({"name": "x", "source": {"kind": "failed_scores", "score": "nope", "fail_at_most": 0},
               "scores": [{"name": "ok", "data_type": "boolean"}]}),
    );
    assert_eq!(code, 400, "{bad}");

    let (code, next) = send(
        &last.url,
        "POST",
        &format!("/api/v1/queues/{id}/next"),
        json!({}),
    );
    assert_eq!(code, 200, "{next}");
    let item = next["item"].clone();
    assert_eq!(item["index"], 0, "{next}");
    let (code, done) = send(
        &last.url,
        "POST",
        &format!("/api/v1/queues/{id}/items/0"),
        json!({"scores": [{"name": "helpful", "value": 0.25}], "comment": "vague"}),
    );
    assert_eq!(code, 200, "{done}");
    let trace = item["trace_id"].as_str().unwrap();
    let scores = one.get(&format!("/api/v1/scores?trace_id={trace}&name=helpful"));
    let s = &scores["items"][0];
    assert_eq!(
        (&s["source"], &s["value"], &s["author"]),
        (&json!("human"), &json!(0.25), &json!("local (auth off)")),
        "{scores}"
    );
    assert!(s["created_ns"].as_u64().unwrap() >= now, "{s}");
    // Done: it leaves the queue, seen from every server of the store.
    for server in servers {
        let list = server.get("/api/v1/queues");
        let p = &list["queues"][0]["progress"];
        assert_eq!(
            (&p["done"], &p["pending"]),
            (&json!(1), &json!(0)),
            "{list}"
        );
        let (_, next) = send(
            &server.url,
            "POST",
            &format!("/api/v1/queues/{id}/next"),
            json!({}),
        );
        assert_eq!(next["item"], Value::Null, "{next}");
    }
    let o = Command::new(BIN)
        .args(["queues", "--server", &one.url])
        .env_remove("SPANLENS_SERVER")
        .env_remove("SPANLENS_KEY")
        .stdin(Stdio::null())
        .output()
        .expect("run spanlens queues");
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.contains(&id) && out.contains("Users u1"), "{out}");
    assert!(out.contains("####################"), "all done: {out}");
    assert!(out.contains("local (auth off) 1"), "{out}");
}

#[test]
fn a_queue_is_reviewed_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let uri = format!("sqlite://{}", dir.path().join("data").display());
    review_on(&[Server::start_store(&uri, &[])]);
}

#[cfg(feature = "postgres")]
#[test]
fn a_queue_is_reviewed_on_postgres_through_two_servers() {
    let db = common::PgDatabase::create("queues");
    let servers: Vec<Server> = (0..2).map(|_| Server::start_store(&db.uri, &[])).collect();
    review_on(&servers);
}

#[cfg(feature = "clickhouse")]
#[test]
fn a_queue_is_reviewed_on_clickhouse_through_two_servers() {
    let uri = common::clickhouse_database("queues");
    let servers: Vec<Server> = (0..2).map(|_| Server::start_store(&uri, &[])).collect();
    review_on(&servers);
}
