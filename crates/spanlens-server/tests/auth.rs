//! `--auth required` over real sockets: keys in every form clients send them, 401 and 403 with
//! reasons, the key deciding the project on every ingest path (a header or resource attribute
//! cannot write elsewhere, a parameter cannot read elsewhere), keys made and revoked through
//! the API, and the refusal to serve beyond loopback without auth.

use base64::Engine;
use serde_json::{json, Value};
use spanlens_auth::{Directory, NewKey, Role, Scope};
use spanlens_core::otlp::proto::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use std::sync::Arc;

mod common;

use common::client::{fixture, Server, JSON};

/// Keys made in the data directory before the server starts (as `spanlens keys create` does).
struct Keys {
    admin_a: NewKey,
    ingest_a: NewKey,
    read_a: NewKey,
    read_b: NewKey,
    langfuse_a: NewKey,
}

fn server() -> (Server, Keys) {
    let dir = tempfile::tempdir().unwrap();
    let keys = {
        let store = Arc::new(spanlens_server::open_store(dir.path()).unwrap());
        let d = Directory::new(store);
        let rt = tokio::runtime::Runtime::new().unwrap();
        for (name, role) in [("ana", Role::Viewer), ("bob", Role::Admin)] {
            rt.block_on(d.create_account(name, "a long passphrase", "a", role))
                .unwrap();
        }
        let make = |p: &str, s: Scope, langfuse: bool| {
            rt.block_on(d.create(p, "", &[s], langfuse)).unwrap()
        };
        Keys {
            admin_a: make("a", Scope::Admin, false),
            ingest_a: make("a", Scope::Ingest, false),
            read_a: make("a", Scope::Read, false),
            read_b: make("b", Scope::Read, false),
            langfuse_a: make("a", Scope::Ingest, true),
        }
    };
    let s = Server::start_configured(dir, Vec::new(), |c| {
        c.auth = spanlens_server::auth::AuthMode::Required;
    });
    (s, keys)
}

fn bearer(k: &NewKey) -> String {
    format!("Bearer {}", k.secret)
}

fn otlp(trace: &str, project_attr: &str) -> Vec<u8> {
    json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "spanlens.project", "value": {"stringValue": project_attr}}]},
        "scopeSpans": [{"spans": [
        {"traceId": trace, "spanId": "eee19b7ec3c1b174", "name": "agent",
         "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000002000000000"}]}]}]})
    .to_string()
    .into_bytes()
}

fn get(s: &Server, path: &str, auth: &str) -> (u16, Value) {
    let (status, body, _) = s.send("GET", path, &[("authorization", auth)], b"");
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

fn error(v: &Value) -> &str {
    v["error"].as_str().unwrap_or("")
}

#[test]
fn keys_are_needed_checked_and_scoped() {
    let (s, k) = server();
    // No key: 401 saying how to get one; open routes stay open.
    let (status, body, headers) = s.send("GET", "/api/v1/traces", &[], b"");
    assert_eq!(status, 401);
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("spanlens keys create"), "{text}");
    assert!(headers
        .iter()
        .any(|(n, v)| n == "www-authenticate" && v.starts_with("Bearer")));
    assert_eq!(s.send("GET", "/healthz", &[], b"").0, 200);
    assert_eq!(s.send("GET", "/api/v1/openapi.json", &[], b"").0, 200);
    let (status, _, _) = s.post(
        "/v1/traces",
        &[JSON],
        &otlp("5b8efff798038103d269b633813fc601", "a"),
    );
    assert_eq!(status, 401, "ingest needs a key too");
    // A malformed, a forged and a foreign key: 401.
    let forged = format!("Bearer slk_{}_{}", k.read_a.view.id, "0".repeat(64));
    for bad in [
        "Bearer nope",
        "Basic Zm9vOmJhcg==",
        forged.as_str(),
        "Bearer sk-proj-abc",
    ] {
        let (status, body) = get(&s, "/api/v1/traces", bad);
        assert_eq!(status, 401, "{bad}");
        assert!(error(&body).contains("not accepted"), "{body}");
    }
    // The right key: 200, in both header forms.
    assert_eq!(get(&s, "/api/v1/traces", &bearer(&k.read_a)).0, 200);
    let (status, _, _) = s.send(
        "GET",
        "/api/v1/traces",
        &[("x-api-key", &k.read_a.secret)],
        b"",
    );
    assert_eq!(status, 200);
    // A key without the scope: 403 naming what it has and needs.
    let (status, body) = get(&s, "/api/v1/traces", &bearer(&k.ingest_a));
    assert_eq!(status, 403);
    assert!(
        error(&body).contains("has scope ingest; this needs read"),
        "{body}"
    );
    let (status, _, _) = s.post(
        "/v1/traces",
        &[JSON, ("authorization", &bearer(&k.read_a))],
        &otlp("5b8efff798038103d269b633813fc601", "a"),
    );
    assert_eq!(status, 403);
    let (status, body) = get(&s, "/api/v1/keys", &bearer(&k.read_a));
    assert_eq!(status, 403, "{body}");
    // Alert rules (no webhook address in them) are read, of the key's project only.
    let (status, body) = get(&s, "/api/v1/alerts", &bearer(&k.read_a));
    assert_eq!(status, 200, "{body}");
}

#[test]
fn the_key_decides_the_project_on_every_ingest_path() {
    let (s, k) = server();
    // OTLP/HTTP with a resource naming project b: stored in a.
    let t1 = "5b8efff798038103d269b633813fc601";
    let (status, body, _) = s.post(
        "/v1/traces",
        &[JSON, ("authorization", &bearer(&k.ingest_a))],
        &otlp(t1, "b"),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let (status, _) = get(&s, &format!("/api/v1/traces/{t1}"), &bearer(&k.read_a));
    assert_eq!(status, 200, "in the key's project");
    let (status, _) = get(&s, &format!("/api/v1/traces/{t1}"), &bearer(&k.read_b));
    assert_eq!(status, 404, "not in b");
    // A header naming another project: refused, nothing stored.
    let t2 = "5b8efff798038103d269b633813fc602";
    let (status, body, _) = s.post(
        "/v1/traces",
        &[
            JSON,
            ("authorization", &bearer(&k.ingest_a)),
            ("x-project-name", "b"),
        ],
        &otlp(t2, "a"),
    );
    assert_eq!(status, 403);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert!(
        error(&body).contains("cannot reach project \"b\""),
        "{body}"
    );
    // Langfuse's OTLP path with its Basic-auth key pair.
    let t3 = "5b8efff798038103d269b633813fc603";
    let basic = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        k.langfuse_a.public_key.as_ref().unwrap(),
        k.langfuse_a.secret
    ));
    let (status, _, _) = s.post(
        "/api/public/otel/v1/traces",
        &[JSON, ("authorization", &format!("Basic {basic}"))],
        &otlp(t3, "b"),
    );
    assert_eq!(status, 200);
    // The OpenAI Agents exporter's bearer key.
    let (status, _, _) = s.post(
        "/v1/traces/ingest",
        &[JSON, ("authorization", &bearer(&k.ingest_a))],
        &fixture("openai_agents_export.json"),
    );
    assert_eq!(status, 200);
    // Scores with an ingest key land in its project.
    let score = json!({"trace_id": t1, "name": "ok", "data_type": "boolean", "value": 1});
    let (status, _, _) = s.send(
        "POST",
        "/api/v1/scores?project=a",
        &[JSON, ("authorization", &bearer(&k.ingest_a))],
        score.to_string().as_bytes(),
    );
    assert_eq!(status, 201);
    let (_, list) = get(&s, "/api/v1/traces", &bearer(&k.read_a));
    let ids: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["trace_id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&t1) && ids.contains(&t3), "{ids:?}");
    assert!(ids.contains(&"4bf92f3577b34da6a3ce929d0e0e4736"), "{ids:?}");
    assert!(!ids.contains(&t2));
    // Reading another project by parameter: 403; the project list shows the key's own only.
    let (status, body) = get(&s, "/api/v1/traces?project=a", &bearer(&k.read_b));
    assert_eq!(status, 403, "{body}");
    let (_, projects) = get(&s, "/api/v1/projects", &bearer(&k.read_a));
    assert_eq!(projects["projects"], json!(["a"]));
    let (_, projects) = get(&s, "/api/v1/projects", &bearer(&k.read_b));
    assert_eq!(projects["projects"], json!([]));
}

#[tokio::test]
async fn grpc_takes_the_key_from_metadata() {
    let (s, k) = tokio::task::spawn_blocking(server).await.unwrap();
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", s.bound.grpc))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = tonic::client::Grpc::new(channel);
    let trace = "5b8efff798038103d269b633813fc604";
    let export = |auth: Option<(&'static str, String)>| {
        let mut req =
            tonic::Request::new(spanlens_core::otlp::decode_json(&otlp(trace, "b")).unwrap());
        if let Some((name, value)) = auth {
            req.metadata_mut().insert(name, value.parse().unwrap());
        }
        req
    };
    let path = || http::uri::PathAndQuery::from_static(spanlens_server::grpc::EXPORT_PATH);
    let codec = || {
        tonic_prost::ProstCodec::<ExportTraceServiceRequest, ExportTraceServiceResponse>::default()
    };
    client.ready().await.unwrap();
    let e = client
        .unary(export(None), path(), codec())
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");
    client.ready().await.unwrap();
    let read = Some(("authorization", bearer(&k.read_a)));
    let e = client
        .unary(export(read), path(), codec())
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
    client.ready().await.unwrap();
    let ingest = Some(("x-api-key", k.ingest_a.secret.clone()));
    client.unary(export(ingest), path(), codec()).await.unwrap();
    let read_a = bearer(&k.read_a);
    let status =
        tokio::task::spawn_blocking(move || get(&s, &format!("/api/v1/traces/{trace}"), &read_a).0)
            .await
            .unwrap();
    assert_eq!(
        status, 200,
        "stored in the key's project, not the resource's"
    );
}

#[test]
fn admins_make_list_and_revoke_their_projects_keys() {
    let (s, k) = server();
    let admin = bearer(&k.admin_a);
    let (status, made) = s.json(
        "POST",
        "/api/v1/keys",
        &[("authorization", &admin)],
        &json!({"name": "ci", "scopes": ["ingest"]}),
    );
    assert_eq!(status, 201, "{made}");
    assert_eq!(made["view"]["project"], "a");
    let secret = made["secret"].as_str().unwrap().to_string();
    // Another project's key cannot be made, listed or revoked by this admin.
    let (status, body) = s.json(
        "POST",
        "/api/v1/keys",
        &[("authorization", &admin)],
        &json!({"project": "b", "scopes": ["read"]}),
    );
    assert_eq!(status, 403, "{body}");
    let (status, list) = get(&s, "/api/v1/keys", &admin);
    assert_eq!(status, 200);
    let listed = list["keys"].as_array().unwrap();
    assert_eq!(listed.len(), 5, "a's four and the new one: {list}");
    assert!(listed.iter().all(|v| v["project"] == "a"));
    assert!(
        !list.to_string().contains(&secret[21..]),
        "no secrets in lists"
    );
    let b_key = &k.read_b.view.id;
    let (status, _, _) = s.send(
        "DELETE",
        &format!("/api/v1/keys/{b_key}"),
        &[("authorization", &admin)],
        b"",
    );
    assert_eq!(status, 404);
    // The new key works, and is refused as soon as it is revoked.
    let new = format!("Bearer {secret}");
    let (status, _, _) = s.post(
        "/v1/traces",
        &[JSON, ("authorization", &new)],
        &otlp("5b8efff798038103d269b633813fc605", "a"),
    );
    assert_eq!(status, 200);
    let id = made["view"]["id"].as_str().unwrap();
    let (status, body, _) = s.send(
        "DELETE",
        &format!("/api/v1/keys/{id}"),
        &[("authorization", &admin)],
        b"",
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let (status, _, _) = s.post(
        "/v1/traces",
        &[JSON, ("authorization", &new)],
        &otlp("5b8efff798038103d269b633813fc606", "a"),
    );
    assert_eq!(status, 401);
    let (_, list) = get(&s, "/api/v1/keys", &admin);
    let revoked = list["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["id"] == id)
        .unwrap();
    assert!(revoked["revoked_ns"].is_i64(), "{revoked}");
    // Bad requests name the problem.
    let (status, body) = s.json(
        "POST",
        "/api/v1/keys",
        &[("authorization", &admin)],
        &json!({"scopes": []}),
    );
    assert_eq!(status, 400);
    assert!(error(&body).contains("at least one scope"), "{body}");
    let (status, body) = s.json(
        "POST",
        "/api/v1/keys",
        &[("authorization", &admin)],
        &json!({"scopes": ["root"]}),
    );
    assert_eq!(status, 400);
    assert!(error(&body).contains("unknown variant"), "{body}");
}

#[test]
fn beyond_loopback_the_server_will_not_start_without_auth() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::local_config(dir.path());
    config.http = "0.0.0.0:0".parse().unwrap();
    let store = Arc::new(spanlens_server::open_store(dir.path()).unwrap());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let err = rt
        .block_on(spanlens_server::serve(&config, store, async {}, |_| {}))
        .unwrap_err()
        .to_string();
    assert!(err.contains("without authentication"), "{err}");
    assert!(
        err.contains("spanlens keys create") && err.contains("--auth required"),
        "{err}"
    );
}

/// Signs in; the session cookie (`name=value`) and the CSRF token.
fn sign_in(s: &Server, name: &str, headers: &[(&str, &str)]) -> (String, String, String) {
    let body = json!({"name": name, "password": "a long passphrase"}).to_string();
    let mut all = vec![JSON];
    all.extend_from_slice(headers);
    let (status, answer, got) = s.send("POST", "/api/v1/session", &all, body.as_bytes());
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    let set = got
        .iter()
        .find(|(n, _)| n == "set-cookie")
        .map(|(_, v)| v.clone())
        .unwrap();
    let cookie = set.split(';').next().unwrap().to_string();
    let answer: Value = serde_json::from_slice(&answer).unwrap();
    (cookie, answer["csrf"].as_str().unwrap().to_string(), set)
}

#[test]
fn people_sign_in_and_their_roles_decide_what_they_reach() {
    let (s, _k) = server();
    // Wrong passwords are 401, and after five of them the name must wait.
    for _ in 0..5 {
        let (status, _) = s.json(
            "POST",
            "/api/v1/session",
            &[],
            &json!({"name": "ana", "password": "not it at all"}),
        );
        assert_eq!(status, 401);
    }
    let (status, body, headers) = s.send(
        "POST",
        "/api/v1/session",
        &[JSON],
        json!({"name": "ana", "password": "a long passphrase"})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(status, 429, "{}", String::from_utf8_lossy(&body));
    assert!(headers.iter().any(|(n, _)| n == "retry-after"));
    // An unknown name is the same 401 as a wrong password.
    let (status, body) = s.json(
        "POST",
        "/api/v1/session",
        &[],
        &json!({"name": "zed", "password": "a long passphrase"}),
    );
    assert_eq!(status, 401);
    assert_eq!(error(&body), "wrong name or password");
    // Bob signs in (behind a TLS proxy: the cookie is Secure).
    let (cookie, csrf, set) = sign_in(&s, "bob", &[("x-forwarded-proto", "https")]);
    for part in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/"] {
        assert!(set.contains(part), "{set}");
    }
    let with = |extra: &[(&'static str, &str)]| {
        let mut h: Vec<(&str, &str)> = vec![("cookie", cookie.as_str())];
        h.extend_from_slice(extra);
        h.into_iter()
            .map(|(a, b)| (a, b.to_string()))
            .collect::<Vec<_>>()
    };
    let call = |method: &str, path: &str, extra: &[(&'static str, &str)], body: &[u8]| {
        let h = with(extra);
        let h: Vec<(&str, &str)> = h.iter().map(|(a, b)| (*a, b.as_str())).collect();
        let (status, body, _) = s.send(method, path, &h, body);
        (
            status,
            serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null),
        )
    };
    let (status, me) = call("GET", "/api/v1/session", &[], b"");
    assert_eq!(status, 200);
    assert_eq!(me["account"], "bob");
    assert_eq!(me["roles"], json!({"a": "admin"}));
    assert_eq!(call("GET", "/api/v1/traces?project=a", &[], b"").0, 200);
    let (status, body) = call("GET", "/api/v1/traces?project=b", &[], b"");
    assert_eq!(status, 403);
    assert!(
        error(&body).contains("no role allowing read in project \"b\""),
        "{body}"
    );
    let (_, projects) = call("GET", "/api/v1/projects", &[], b"");
    assert_eq!(
        projects["projects"],
        json!([]),
        "no spans yet, and only a's would show"
    );
    // A state-changing request needs the session's CSRF token.
    let score = json!({"trace_id": "5b8efff798038103d269b633813fc601", "name": "ok", "data_type": "boolean", "value": 1}).to_string();
    let (status, body) = call(
        "POST",
        "/api/v1/scores?project=a",
        &[JSON],
        score.as_bytes(),
    );
    assert_eq!(status, 403);
    assert!(error(&body).contains("x-csrf-token"), "{body}");
    let (status, body) = call(
        "POST",
        "/api/v1/scores?project=a",
        &[JSON, ("x-csrf-token", "0".repeat(64).leak())],
        score.as_bytes(),
    );
    assert_eq!(status, 403, "{body}");
    let (status, body) = call(
        "POST",
        "/api/v1/scores?project=a",
        &[JSON, ("x-csrf-token", &csrf)],
        score.as_bytes(),
    );
    assert_eq!(status, 201, "{body}");
    // Bob adds Carol as a viewer of a; she reads a, not b, and cannot write.
    let carol =
        json!({"name": "carol", "password": "another passphrase", "role": "viewer"}).to_string();
    let (status, body) = call(
        "POST",
        "/api/v1/accounts?project=a",
        &[JSON, ("x-csrf-token", &csrf)],
        carol.as_bytes(),
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["roles"], json!({"a": "viewer"}));
    let (status, body) = call("GET", "/api/v1/accounts?project=a", &[], b"");
    assert_eq!(status, 200);
    assert_eq!(body["accounts"].as_array().unwrap().len(), 3, "{body}");
    let body = json!({"name": "carol", "password": "another passphrase"}).to_string();
    let (_, _, got) = s.send("POST", "/api/v1/session", &[JSON], body.as_bytes());
    let carol_cookie = got
        .iter()
        .find(|(n, _)| n == "set-cookie")
        .unwrap()
        .1
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let (status, _, _) = s.send(
        "GET",
        "/api/v1/traces?project=a",
        &[("cookie", &carol_cookie)],
        b"",
    );
    assert_eq!(status, 200);
    let (status, _, _) = s.send(
        "GET",
        "/api/v1/accounts?project=a",
        &[("cookie", &carol_cookie)],
        b"",
    );
    assert_eq!(status, 403, "a viewer is not an admin");
    // Removing her role takes effect at once through this server.
    let (status, _) = call(
        "PUT",
        "/api/v1/accounts/carol?project=a",
        &[JSON, ("x-csrf-token", &csrf)],
        br#"{"role": null}"#,
    );
    assert_eq!(status, 200);
    let (status, _, _) = s.send(
        "GET",
        "/api/v1/traces?project=a",
        &[("cookie", &carol_cookie)],
        b"",
    );
    assert_eq!(status, 403);
    // Signing out ends the session.
    let (status, _) = call("DELETE", "/api/v1/session", &[], b"");
    assert_eq!(status, 204);
    let (status, body) = call("GET", "/api/v1/traces?project=a", &[], b"");
    assert_eq!(status, 401);
    assert!(error(&body).contains("sign in again"), "{body}");
    let (_, me) = call("GET", "/api/v1/session", &[], b"");
    assert_eq!(me["account"], Value::Null);
    assert_eq!(me["auth"], "required");
}
