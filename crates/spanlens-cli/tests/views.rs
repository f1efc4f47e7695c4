//! `spanlens traces --view NAME`: the list starts from a saved view's filters and sort, options
//! given on the command line win, and an unknown view is refused naming the views there are.

mod common;

use common::{agent_trace, free_port, otlp_request, text, Server, BIN};
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

#[test]
fn traces_start_from_a_saved_view() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), free_port(), &[]);
    let now = common::now_ns();
    for t in 0..7 {
        server
            .endpoint()
            .post_traces(&otlp_request(&agent_trace(t, now)));
    }
    // Users cycle u0..u4: a view of user u1's traces, longest first.
    let view = json!({"name": "u1 slow", "query": "user=u1&sort=duration&order=desc"});
    let mut resp = ureq::post(&format!("{}/api/v1/views", server.url))
        .header("content-type", "application/json")
        .config()
        .http_status_as_error(false)
        .build()
        .send(view.to_string())
        .unwrap();
    assert_eq!(
        resp.status().as_u16(),
        201,
        "{}",
        resp.body_mut().read_to_string().unwrap()
    );
    let o = run(&[
        "traces",
        "--server",
        &server.url,
        "--view",
        "U1 SLOW",
        "--json",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let page: Value = serde_json::from_slice(&o.stdout).unwrap();
    let users: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["user_id"].as_str().unwrap())
        .collect();
    assert_eq!(users, vec!["u1", "u1"], "traces 1 and 6 of user u1: {page}");
    // An option on the command line wins over the view's.
    let o = run(&[
        "traces",
        "--server",
        &server.url,
        "--view",
        "u1 slow",
        "--user",
        "u2",
        "--json",
    ]);
    let page: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["user_id"] == "u2"),
        "{page}"
    );
    let o = run(&["traces", "--server", &server.url, "--view", "nope"]);
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(
        err.contains("no saved view \"nope\"") && err.contains("u1 slow"),
        "{err}"
    );
}
