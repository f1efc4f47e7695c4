//! Saved views of the trace list over real sockets: saved, listed, opened by id, saved over and
//! deleted per project; a query the trace list would refuse, an unknown column, a taken name and
//! a stranger's id are refused with the reason; with auth on, a viewer reads views and a member
//! saves them.

use serde_json::{json, Value};

mod common;

use common::client::Server;

#[test]
fn views_are_saved_listed_opened_and_deleted_per_project() {
    let s = Server::start();
    let view = json!({"name": "Costly errors", "query": "status=error&sort=cost&order=desc&model=gpt-4o",
                      "columns": ["name", "cost", "duration"]});
    let (code, saved) = s.json("POST", "/api/v1/views?project=shop", &[], &view);
    assert_eq!(code, 201, "{saved}");
    let id = saved["id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 16);
    assert_eq!(
        saved["query"],
        "status=error&sort=cost&order=desc&model=gpt-4o"
    );
    assert_eq!(saved["saved_by"], "local (auth off)");
    let (_, list) = s.get("/api/v1/views?project=shop");
    assert_eq!(list["views"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list["views"][0]["name"], "Costly errors");
    let (_, other) = s.get("/api/v1/views?project=shopping");
    assert_eq!(
        other["views"],
        json!([]),
        "another project (even one whose name starts the same) has none"
    );
    let (code, one) = s.get(&format!("/api/v1/views/{id}?project=shop"));
    assert_eq!((code, &one["name"]), (200, &json!("Costly errors")));
    assert_eq!(s.get(&format!("/api/v1/views/{id}?project=default")).0, 404);

    // Refusals name the problem.
    let refusals: [(Value, &str); 6] = [
        (json!({"name": "", "query": ""}), "invalid name"),
        (json!({"name": "x", "query": "status=sideways"}), "status"),
        (
            json!({"name": "x", "query": "min_duration_ms=fast"}),
            "min_duration_ms",
        ),
        (
            json!({"name": "x", "query": "project=other"}),
            "not a project or a page",
        ),
        (
            json!({"name": "x", "columns": ["secret"]}),
            "invalid columns=\"secret\"",
        ),
        (json!({"name": "x", "colour": "red"}), "unknown field"),
    ];
    for (body, want) in refusals {
        let (code, answer) = s.json("POST", "/api/v1/views?project=shop", &[], &body);
        assert_eq!(code, 400, "{body}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(want),
            "{body}: {answer}"
        );
    }
    let (code, answer) = s.json(
        "POST",
        "/api/v1/views?project=shop",
        &[],
        &json!({"name": "costly ERRORS"}),
    );
    assert_eq!(code, 409, "{answer}");

    // Saved over, then deleted.
    let (code, updated) = s.json(
        "PUT",
        &format!("/api/v1/views/{id}?project=shop"),
        &[],
        &json!({"name": "Slow calls", "query": "sort=duration&order=desc"}),
    );
    assert_eq!(code, 200, "{updated}");
    assert_eq!(updated["id"], id.as_str());
    assert_eq!(
        s.get(&format!("/api/v1/views/{id}?project=shop")).1["name"],
        "Slow calls"
    );
    assert_eq!(
        s.json(
            "PUT",
            "/api/v1/views/0123456789abcdef?project=shop",
            &[],
            &json!({"name": "y"})
        )
        .0,
        404
    );
    assert_eq!(s.get("/api/v1/views/not-an-id?project=shop").0, 400);
    let (code, _, _) = s.send(
        "DELETE",
        &format!("/api/v1/views/{id}?project=shop"),
        &[],
        b"",
    );
    assert_eq!(code, 204);
    assert_eq!(s.get("/api/v1/views?project=shop").1["views"], json!([]));
    let (code, _, _) = s.send(
        "DELETE",
        &format!("/api/v1/views/{id}?project=shop"),
        &[],
        b"",
    );
    assert_eq!(code, 404);
}

#[test]
fn with_auth_a_viewer_reads_views_and_a_member_saves_them() {
    let dir = tempfile::tempdir().unwrap();
    let (viewer, member) = {
        let store = std::sync::Arc::new(spanlens_server::open_store(dir.path()).unwrap());
        let d = spanlens_auth::Directory::new(store);
        let rt = tokio::runtime::Runtime::new().unwrap();
        let r = rt
            .block_on(d.create("shop", "reader", &[spanlens_auth::Scope::Read], false))
            .unwrap();
        let m = rt
            .block_on(d.create(
                "shop",
                "member",
                &[spanlens_auth::Scope::Read, spanlens_auth::Scope::Ingest],
                false,
            ))
            .unwrap();
        (
            format!("Bearer {}", r.secret),
            format!("Bearer {}", m.secret),
        )
    };
    let s = Server::start_configured(dir, Vec::new(), |c| {
        c.auth = spanlens_server::auth::AuthMode::Required;
    });
    let view = json!({"name": "mine", "query": "status=error"});
    let (code, _) = s.json(
        "POST",
        "/api/v1/views",
        &[("authorization", &viewer)],
        &view,
    );
    assert_eq!(code, 403, "a viewer does not save");
    let (code, saved) = s.json(
        "POST",
        "/api/v1/views",
        &[("authorization", &member)],
        &view,
    );
    assert_eq!(code, 201, "{saved}");
    assert!(
        saved["saved_by"].as_str().unwrap().contains("member"),
        "{saved}"
    );
    let (code, body, _) = s.send("GET", "/api/v1/views", &[("authorization", &viewer)], b"");
    assert_eq!(code, 200);
    let list: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(list["project"], "shop", "the key's project");
    assert_eq!(list["views"][0]["name"], "mine");
}
