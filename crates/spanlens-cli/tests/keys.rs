//! `spanlens keys` and `serve --auth required` end to end: the first admin key made in the data
//! directory, more keys made, listed and revoked through the server with it, client commands
//! with `SPANLENS_KEY`, and a server that will not listen beyond loopback without auth.

mod common;

use common::{free_port, text, Server, BIN};
use std::process::{Command, Output, Stdio};

fn run(args: &[&str], key: Option<&str>) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("SPANLENS_SERVER")
        .env_remove("SPANLENS_KEY")
        .stdin(Stdio::null());
    if let Some(k) = key {
        cmd.env("SPANLENS_KEY", k);
    }
    cmd.output().expect("run spanlens")
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "{}", text(&o.stderr));
    text(&o.stdout)
}

#[test]
fn keys_made_in_the_store_and_through_the_server_guard_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let admin = ok(&run(
        &[
            "keys",
            "create",
            "--project",
            "shop",
            "--scope",
            "admin",
            "--name",
            "root",
            "--data-dir",
            data,
        ],
        None,
    ));
    let admin = admin.trim().to_string();
    assert!(
        admin.starts_with("slk_") && !admin.contains('\n'),
        "{admin}"
    );
    let pair = ok(&run(
        &[
            "keys",
            "create",
            "--project",
            "shop",
            "--scope",
            "ingest",
            "--langfuse",
            "--data-dir",
            data,
        ],
        None,
    ));
    assert!(
        pair.contains("LANGFUSE_PUBLIC_KEY=pk-lf-") && pair.contains("LANGFUSE_SECRET_KEY=sk-lf-"),
        "{pair}"
    );
    // Bad asks are input errors naming the problem.
    let o = run(
        &[
            "keys",
            "create",
            "--project",
            "shop",
            "--scope",
            "root",
            "--data-dir",
            data,
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("use ingest, read or admin"),
        "{}",
        text(&o.stderr)
    );
    let o = run(
        &[
            "keys",
            "create",
            "--project",
            "shop",
            "--scope",
            "read",
            "--langfuse",
            "--data-dir",
            data,
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(2));

    let port = free_port();
    let s = Server::start(std::path::Path::new(data), port, &["--auth", "required"]);
    // Through the server with the admin key.
    let reader = ok(&run(
        &[
            "keys",
            "create",
            "--project",
            "shop",
            "--scope",
            "read",
            "--server",
            &s.url,
        ],
        Some(&admin),
    ));
    let reader = reader.trim().to_string();
    let o = run(
        &[
            "keys",
            "create",
            "--project",
            "other",
            "--scope",
            "read",
            "--server",
            &s.url,
        ],
        Some(&admin),
    );
    assert_eq!(o.status.code(), Some(2), "another project's key");
    assert!(text(&o.stderr).contains("403"), "{}", text(&o.stderr));
    let list = ok(&run(&["keys", "list", "--server", &s.url], Some(&admin)));
    assert_eq!(list.lines().count(), 4, "a header and three keys: {list}");
    assert!(list.contains("root") && list.contains("pk-lf-"), "{list}");
    assert!(!list.contains(&admin[21..]), "no secrets listed");
    // Client commands read with a key, and say why without one.
    let o = run(&["traces", "--server", &s.url, "--project", "shop"], None);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("401") && text(&o.stderr).contains("API key"),
        "{}",
        text(&o.stderr)
    );
    ok(&run(
        &["traces", "--server", &s.url, "--project", "shop"],
        Some(&reader),
    ));
    // Revoked through the server: refused at once.
    let id = &reader["slk_".len().."slk_".len() + 16];
    ok(&run(
        &["keys", "revoke", id, "--server", &s.url],
        Some(&admin),
    ));
    let o = run(
        &["traces", "--server", &s.url, "--project", "shop"],
        Some(&reader),
    );
    assert_eq!(o.status.code(), Some(2));
    // The store lists it revoked, with its last use.
    let list = ok(&run(
        &[
            "keys",
            "list",
            "--project",
            "shop",
            "--data-dir",
            data,
            "--json",
        ],
        None,
    ));
    let keys: serde_json::Value = serde_json::from_str(&list).unwrap();
    let revoked = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id)
        .unwrap();
    assert!(revoked["revoked_ns"].is_i64(), "{revoked}");
    let o = run(
        &["keys", "revoke", "0123456789abcdef", "--data-dir", data],
        None,
    );
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn serving_beyond_loopback_needs_auth() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let o = run(
        &[
            "serve",
            "--data-dir",
            data.to_str().unwrap(),
            "--http",
            "0.0.0.0:0",
            "--grpc",
            "127.0.0.1:0",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(
        err.contains("without authentication") && err.contains("spanlens keys create"),
        "{err}"
    );
    assert!(!data.exists(), "nothing opened");
}

fn with_stdin(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    common::feed_stdin(&mut child, stdin.as_bytes());
    child.wait_with_output().unwrap()
}

#[test]
fn users_are_made_with_a_password_from_stdin_and_roles_per_project() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let make = [
        "users",
        "create",
        "ana",
        "--project",
        "shop",
        "--role",
        "viewer",
        "--data-dir",
        data,
    ];
    let o = with_stdin(&make, "a long passphrase\n");
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = with_stdin(&make, "a long passphrase\n");
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("exists already"),
        "{}",
        text(&o.stderr)
    );
    let o = with_stdin(
        &[
            "users",
            "create",
            "bob",
            "--project",
            "shop",
            "--role",
            "viewer",
            "--data-dir",
            data,
        ],
        "short\n",
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("at least 10 characters"),
        "{}",
        text(&o.stderr)
    );
    let o = with_stdin(
        &[
            "users",
            "create",
            "bob",
            "--project",
            "shop",
            "--role",
            "owner",
            "--data-dir",
            data,
        ],
        "a long passphrase\n",
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("viewer, member or admin"));
    ok(&run(
        &[
            "users",
            "set-role",
            "ana",
            "--project",
            "blog",
            "--role",
            "admin",
            "--data-dir",
            data,
        ],
        None,
    ));
    let list = ok(&run(&["users", "list", "--data-dir", data], None));
    assert!(
        list.contains("ana") && list.contains("blog:admin") && list.contains("shop:viewer"),
        "{list}"
    );
    ok(&run(
        &[
            "users",
            "set-role",
            "ana",
            "--project",
            "blog",
            "--role",
            "none",
            "--data-dir",
            data,
        ],
        None,
    ));
    let list = ok(&run(
        &["users", "list", "--project", "blog", "--data-dir", data],
        None,
    ));
    assert_eq!(list.lines().count(), 1, "only the header: {list}");
    let o = with_stdin(
        &["users", "password", "ana", "--data-dir", data],
        "a newer passphrase\n",
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = with_stdin(
        &["users", "password", "zed", "--data-dir", data],
        "a newer passphrase\n",
    );
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn delete_removes_through_the_server_and_prints_the_counts() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), free_port(), &[]);
    let spans = common::agent_trace(7, 1_735_689_600_000_000_000);
    s.endpoint().post_traces(&common::otlp_request(&spans));
    let trace = s.get("/api/v1/traces")["items"][0]["trace_id"]
        .as_str()
        .unwrap()
        .to_string();
    let out = ok(&run(&["delete", "trace", &trace, "--server", &s.url], None));
    assert_eq!(
        out.trim(),
        format!(
            "deleted 1 traces, {} spans, 0 scores from project \"default\"",
            common::SPANS_PER_TRACE
        )
    );
    let o = run(&["delete", "trace", "nope", "--server", &s.url], None);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("trace_id"), "{}", text(&o.stderr));
    let log = s.get("/api/v1/audit");
    assert_eq!(log["entries"][0]["action"], "delete.trace", "{log}");
    assert_eq!(log["entries"][0]["actor"], "local (auth off)");
}
