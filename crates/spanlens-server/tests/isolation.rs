//! Project isolation, generated from the router's route list: every route and method is
//! called by an admin of project A — with an API key, and signed in — against project B's
//! data (B's ids in the path, B named by parameter, by header and in the spans sent), and
//! nothing of B may come back or change. The live stream, export and content search are
//! among the routes; B's data is checked whole afterwards.

use serde_json::{json, Value};
use spanlens_auth::{Directory, Role, Scope};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::sync::Arc;
use std::time::Duration;

mod common;

use common::client::{fixture, Server, JSON};

const ROUTER: &str = include_str!("../src/http/mod.rs");

const B: &str = "bproj";
const B_TRACE: &str = "b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0";
const B_SPAN: &str = "b1b1b1b1b1b1b1b1";
/// A model call of B's trace that only B ever sends (A's key sends B's trace to its own project
/// on the ingest routes): what A tries to replay.
const B_ONLY_SPAN: &str = "b2b2b2b2b2b2b2b2";
const B_USER: &str = "user-of-b";
const B_SESSION: &str = "session-of-b";
/// Text only B's data holds: none of it may appear in an answer to A.
const MARKERS: [&str; 5] = [
    "SECRET-OF-B",
    "model-of-b",
    "B-SCORE-COMMENT",
    "key-of-b",
    "prompt-of-b",
];

/// B's image: a PNG-shaped blob whose filler is B's secret marker, so bytes reaching A show.
fn b_image() -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    while bytes.len() < 4096 {
        bytes.extend_from_slice(b"SECRET-OF-B-IMAGE ");
    }
    bytes
}

/// The hash B's image is stored under (its reference in B's span names it).
fn b_image_hash() -> String {
    spanlens_core::media::content_hash(&b_image())
}

/// `(method, path)` of every route in the router's source.
fn routes() -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    let src: String = ROUTER.split_whitespace().collect::<Vec<_>>().join(" ");
    for part in src.split(".route(").skip(1) {
        let path = part.split('"').nth(1).expect("a route path").to_string();
        let handlers = part.split(".route(").next().unwrap_or("");
        for method in ["get", "post", "put", "delete"] {
            if handlers.contains(&format!(" {method}("))
                || handlers.contains(&format!(".{method}("))
                || handlers.starts_with(&format!("\"{path}\", {method}("))
            {
                out.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

fn kv(key: &str, value: &str) -> Value {
    json!({"key": key, "value": {"stringValue": value}})
}

/// B's trace: a user, a session, a secret in the input, its own model.
fn b_trace(resource_project: &str) -> Vec<u8> {
    json!({"resourceSpans": [{
        "resource": {"attributes": [kv("spanlens.project", resource_project)]},
        "scopeSpans": [{"spans": [
        {"traceId": B_TRACE, "spanId": B_SPAN, "name": "agent",
         "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000002000000000",
         "attributes": [kv("user.id", B_USER), kv("session.id", B_SESSION),
            kv("input.value", "SECRET-OF-B"), kv("gen_ai.request.model", "model-of-b"),
            kv("gen_ai.operation.name", "chat"), kv("traceloop.prompt.key", "prompt-of-b"),
            kv("traceloop.prompt.version", "1")]}]}]}]})
    .to_string()
    .into_bytes()
}

/// The request body a route is tried with: what a client of that route sends, aimed at B.
fn body_for(method: &str, path: &str) -> Vec<u8> {
    match (method, path) {
        ("POST", "/v1/traces") | ("POST", "/api/public/otel/v1/traces") => b_trace(B),
        ("POST", "/v1/traces/ingest") => fixture("openai_agents_export.json"),
        ("POST", "/v1/logs") => json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [
            {"timeUnixNano": "1700000000100000000", "traceId": B_TRACE, "spanId": B_SPAN,
             "attributes": [kv("event.name", "gen_ai.user.message")],
             "body": {"kvlistValue": {"values": [kv("content", "overwritten?")]}}}]}]}]})
        .to_string()
        .into_bytes(),
        ("POST", "/api/v1/scores") => json!({"trace_id": B_TRACE, "name": "q", "data_type": "numeric", "value": 0.1, "project": B}).to_string().into_bytes(),
        ("POST", "/api/v1/keys") => json!({"project": B, "scopes": ["admin"]}).to_string().into_bytes(),
        ("POST", "/api/v1/accounts") => json!({"project": B, "name": "mallory", "password": "a long passphrase", "role": "admin"}).to_string().into_bytes(),
        ("PUT", "/api/v1/accounts/{name}") => json!({"role": null}).to_string().into_bytes(),
        ("PUT", p) if p.ends_with("/redaction") => json!({}).to_string().into_bytes(),
        ("PUT", p) if p.ends_with("/retention") => json!({"days": 1}).to_string().into_bytes(),
        ("PUT", p) if p.ends_with("/quota") => json!({"spans_per_second": 1}).to_string().into_bytes(),
        ("PUT", p) if p.ends_with("/forwarding") => json!({"destinations": [{"name": "leak", "kind": "otlp", "endpoint": "http://127.0.0.1:9"}]}).to_string().into_bytes(),
        ("POST", "/api/v1/views") | ("PUT", "/api/v1/views/{view_id}") => json!({"name": "taken over", "query": "status=error"}).to_string().into_bytes(),
        ("POST", "/api/v1/replay") => json!({"trace_id": B_TRACE, "span_id": B_ONLY_SPAN, "endpoint": "iso", "model": "m", "messages": [{"role": "user", "content": "hi"}]}).to_string().into_bytes(),
        ("POST", "/api/v1/queues") => json!({"name": "taken over", "source": {"kind": "filter", "query": ""}, "scores": [{"name": "ok", "data_type": "boolean"}]}).to_string().into_bytes(),
        ("POST", "/api/v1/queues/{queue_id}/items/{item}") => json!({"scores": [{"name": "ok", "value": 0}]}).to_string().into_bytes(),
        ("POST", "/api/v1/session") => json!({"name": "bob-of-b", "password": "wrong passphrase"}).to_string().into_bytes(),
        _ => Vec::new(),
    }
}

/// The query a route reads its ids from, with B's in it (`None`: the path holds them): for the
/// workflow graph, a range and name that hold B's trace.
fn query_ids(path: &str) -> Option<String> {
    match path {
        "/api/v1/compare" => Some(format!("a={B_TRACE}&b={B_TRACE}")),
        "/api/v1/graph" => Some("from=0&name=agent".to_string()),
        "/api/v1/prompts" => Some("from=0".to_string()),
        "/api/v1/whatif" => Some(format!("trace_id={B_TRACE}&as=gpt-4o")),
        "/api/v1/forecast/workflow" => Some("name=agent&from=0&runs=10".to_string()),
        // The columns the web UI reads (the row format shares the same read of the trace).
        "/api/v1/traces/{trace_id}/tree" => Some("format=columns".to_string()),
        _ => None,
    }
}

/// The route's path with B's ids in it (and in its query, for a route reading them there).
fn concrete(path: &str, b_key: &str) -> String {
    let path = match query_ids(path) {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    path.replace("{trace_id}", B_TRACE)
        .replace("{span_id}", B_SPAN)
        .replace("{session_id}", B_SESSION)
        .replace("{user_id}", B_USER)
        .replace("{project}", B)
        .replace("{id}", b_key)
        .replace("{name}", "bob-of-b")
        .replace("{group_by}", "model")
        .replace(
            "{view_id}",
            B_VIEW.get().map_or("0000000000000000", String::as_str),
        )
        .replace(
            "{queue_id}",
            B_QUEUE.get().map_or("0000000000000000", String::as_str),
        )
        .replace("{item}", "0")
        .replace("{hash}", &b_image_hash())
}

/// B's review queue, made by `seed`.
static B_QUEUE: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// B's saved view, made by `seed`.
static B_VIEW: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// JSON object keys anywhere in `v` (a role map keyed by B would show B exists for someone).
fn keys_of(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                out.push(k.clone());
                keys_of(x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| keys_of(x, out)),
        _ => {}
    }
}

struct Seeded {
    server: Server,
    a_key: String,
    b_key: String,
    b_key_id: String,
}

fn seed() -> Seeded {
    let dir = tempfile::tempdir().unwrap();
    let (a_key, b_key, b_key_id) = {
        let store = Arc::new(spanlens_server::open_store(dir.path()).unwrap());
        let d = Directory::new(store);
        let rt = tokio::runtime::Runtime::new().unwrap();
        let a = rt
            .block_on(d.create("aproj", "key-of-a", &[Scope::Admin], false))
            .unwrap();
        let b = rt
            .block_on(d.create(B, "key-of-b", &[Scope::Admin], false))
            .unwrap();
        rt.block_on(d.create_account("ann", "a long passphrase", "aproj", Role::Admin))
            .unwrap();
        rt.block_on(d.create_account("bob-of-b", "a long passphrase", B, Role::Admin))
            .unwrap();
        (a.secret, b.secret, b.view.id)
    };
    let server = Server::start_configured(dir, Vec::new(), |c| {
        c.auth = spanlens_server::auth::AuthMode::Required;
        // A replay endpoint, so a replay of B's span gets as far as looking the span up (it
        // must not find it); it is never reached.
        c.replay = Some(
            spanlens_server::replay::ReplayConfig::from_toml(
                "[[endpoint]]\nname = \"iso\"\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\nmodels = [\"m\"]",
            )
            .unwrap(),
        );
    });
    let b = format!("Bearer {b_key}");
    let (status, _, _) = server.post("/v1/traces", &[JSON, ("authorization", &b)], &b_trace(B));
    assert_eq!(status, 200);
    let only_b = json!({"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": B_TRACE, "spanId": B_ONLY_SPAN, "parentSpanId": B_SPAN, "name": "chat",
         "startTimeUnixNano": "1700000000500000000", "endTimeUnixNano": "1700000001000000000",
         "attributes": [kv("input.value", "SECRET-OF-B"), kv("gen_ai.request.model", "model-of-b"),
            kv("gen_ai.operation.name", "chat")]}]}]}]});
    let (status, _, _) = server.post(
        "/v1/traces",
        &[JSON, ("authorization", &b)],
        only_b.to_string().as_bytes(),
    );
    assert_eq!(status, 200);
    // B's SDK export counters, from a service only B has.
    let counters = json!({"resourceSpans": [{"resource": {"attributes": [
        kv("service.name", "service-SECRET-OF-B"), kv("spanlens.sdk.instance", "b-1"),
        kv("spanlens.sdk.spans.dropped", "9")]}, "scopeSpans": []}]});
    let (status, _, _) = server.post(
        "/v1/traces",
        &[JSON, ("authorization", &b)],
        counters.to_string().as_bytes(),
    );
    assert_eq!(status, 200);
    // B's image, sent as a data URL: stored once in B, named by a reference in B's span.
    use base64::Engine as _;
    let url = format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(b_image())
    );
    let with_image = json!({"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": "b3b3b3b3b3b3b3b3b3b3b3b3b3b3b3b3", "spanId": "b4b4b4b4b4b4b4b4", "name": "look",
         "startTimeUnixNano": "1700000000500000000", "endTimeUnixNano": "1700000001000000000",
         "attributes": [kv("input.value", &url)]}]}]}]});
    let (status, _, _) = server.post(
        "/v1/traces",
        &[JSON, ("authorization", &b)],
        with_image.to_string().as_bytes(),
    );
    assert_eq!(status, 200);
    let (status, image, _) = server.send(
        "GET",
        &format!("/api/v1/media/{}", b_image_hash()),
        &[("authorization", &b)],
        b"",
    );
    assert_eq!(status, 200, "B reads its own image");
    assert_eq!(image, b_image());
    let score = json!({"trace_id": B_TRACE, "name": "q", "data_type": "numeric", "value": 1, "comment": "B-SCORE-COMMENT"});
    let (status, _) = server.json("POST", "/api/v1/scores", &[("authorization", &b)], &score);
    assert_eq!(status, 201);
    let view = json!({"name": "SECRET-OF-B view", "query": "model=model-of-b"});
    let (status, saved) = server.json("POST", "/api/v1/views", &[("authorization", &b)], &view);
    assert_eq!(status, 201, "{saved}");
    let _ = B_VIEW.set(saved["id"].as_str().unwrap().to_string());
    let queue = json!({"name": "SECRET-OF-B queue", "source": {"kind": "filter", "query": ""},
                       "scores": [{"name": "ok", "data_type": "boolean"}]});
    let (status, made) = server.json("POST", "/api/v1/queues", &[("authorization", &b)], &queue);
    assert_eq!(status, 201, "{made}");
    let _ = B_QUEUE.set(made["queue"]["id"].as_str().unwrap().to_string());
    Seeded {
        server,
        a_key,
        b_key,
        b_key_id,
    }
}

/// B as its own admin sees it: the trace, its score, its key, its settings.
fn b_state(s: &Seeded) -> Value {
    let b = format!("Bearer {}", s.b_key);
    let get = |p: &str| {
        let (status, body, _) = s.server.send("GET", p, &[("authorization", &b)], b"");
        assert_eq!(status, 200, "{p}");
        serde_json::from_slice::<Value>(&body).unwrap()
    };
    let mut trace = get(&format!("/api/v1/traces/{B_TRACE}?analysis=false"));
    trace["trace"]["last_seen"] = Value::Null;
    let mut keys = get("/api/v1/keys");
    for k in keys["keys"].as_array_mut().unwrap() {
        k["last_used_ns"] = Value::Null;
    }
    json!({
        "trace": trace,
        "scores": get(&format!("/api/v1/scores?trace_id={B_TRACE}")),
        "keys": keys,
        "accounts": get("/api/v1/accounts"),
        "redaction": get(&format!("/api/v1/projects/{B}/redaction")),
        "retention": get(&format!("/api/v1/projects/{B}/retention"))["settings"],
        "quota": get(&format!("/api/v1/projects/{B}/quota"))["quota"],
        "forwarding": get(&format!("/api/v1/projects/{B}/forwarding"))["destinations"],
        "views": get("/api/v1/views")["views"],
        "queues": get("/api/v1/queues")["queues"],
        "queue": get(&format!("/api/v1/queues/{}", B_QUEUE.get().unwrap())),
        "stats": get("/api/v1/stats"),
        "sdk": get("/api/v1/sdk/health"),
        "prompts": get("/api/v1/prompts?from=0")["templates"],
    })
}

#[test]
fn nothing_of_another_project_is_reached_on_any_route() {
    let s = seed();
    let before = b_state(&s);
    assert!(
        before.to_string().contains("SECRET-OF-B"),
        "B's data is there to leak"
    );
    assert!(
        before["sdk"].to_string().contains("service-SECRET-OF-B"),
        "B's SDK counters are there to leak: {}",
        before["sdk"]
    );
    assert!(
        before["prompts"].to_string().contains("prompt-of-b"),
        "B's prompt is there to leak: {}",
        before["prompts"]
    );
    // A signed-in admin of A.
    let (status, body, headers) = s.server.send(
        "POST",
        "/api/v1/session",
        &[JSON],
        json!({"name": "ann", "password": "a long passphrase"})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let cookie = headers
        .iter()
        .find(|(n, _)| n == "set-cookie")
        .unwrap()
        .1
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let csrf = serde_json::from_slice::<Value>(&body).unwrap()["csrf"]
        .as_str()
        .unwrap()
        .to_string();
    let key_auth = format!("Bearer {}", s.a_key);
    let as_key: Vec<(&str, &str)> = vec![("authorization", &key_auth)];
    let as_user: Vec<(&str, &str)> = vec![("cookie", &cookie), ("x-csrf-token", &csrf)];

    let routes = routes();
    assert!(routes.len() >= 40, "routes parsed: {routes:?}");
    let mut calls = 0;
    let mut problems = Vec::new();
    for (method, path) in &routes {
        // The live stream is checked apart below (it does not end); signing out would end the
        // signed-in caller's session for the routes after it (it has no project to reach).
        if path == "/api/v1/live" || (method == "DELETE" && path == "/api/v1/session") {
            continue;
        }
        let url = concrete(path, &s.b_key_id);
        let body = body_for(method, path);
        for (who, creds) in [("key", &as_key), ("account", &as_user)] {
            for naming in ["", "query", "header"] {
                let mut headers: Vec<(&str, &str)> = creds.clone();
                if !body.is_empty() {
                    headers.push(JSON);
                }
                let mut target = url.clone();
                match naming {
                    "query" => target.push_str(&format!(
                        "{}project={B}",
                        if url.contains('?') { '&' } else { '?' }
                    )),
                    "header" => headers.push(("x-project-name", B)),
                    _ => {}
                }
                let (status, answer, _) = s.server.send(method, &target, &headers, &body);
                calls += 1;
                let text = String::from_utf8_lossy(&answer);
                let what = format!("{method} {target} as {who} of A ({status})");
                if status >= 500 {
                    problems.push(format!("{what}: server error {text}"));
                }
                for m in MARKERS {
                    if text.contains(m) {
                        problems.push(format!("{what}: answer holds {m:?}: {text}"));
                    }
                }
                if let Ok(v) = serde_json::from_str::<Value>(&text) {
                    let mut keys = Vec::new();
                    keys_of(&v, &mut keys);
                    if keys.iter().any(|k| k == B) {
                        problems.push(format!("{what}: answer is keyed by project {B}: {text}"));
                    }
                    // Whatever a call to a project answered, it was not B.
                    if v.get("project").and_then(Value::as_str) == Some(B) {
                        problems.push(format!("{what}: answered for project {B}: {text}"));
                    }
                }
            }
        }
    }
    assert!(calls > 250, "{calls} calls");
    assert!(
        problems.is_empty(),
        "{} leaks:\n{}",
        problems.len(),
        problems.join("\n")
    );

    // The live stream of A hears nothing of B's new spans, whichever way B is named.
    for naming in ["", "?project=bproj"] {
        let stream = std::net::TcpStream::connect(s.server.bound.http).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(1500)))
            .unwrap();
        write!(
            stream.try_clone().unwrap(),
            "GET /api/v1/live{naming} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {key_auth}\r\nAccept: text/event-stream\r\n\r\n"
        )
        .unwrap();
        let mut live = BufReader::new(stream);
        let mut first = String::new();
        live.read_line(&mut first).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let b = format!("Bearer {}", s.b_key);
        let (status, _, _) =
            s.server
                .post("/v1/traces", &[JSON, ("authorization", &b)], &b_trace(B));
        assert_eq!(status, 200);
        let mut heard = Vec::new();
        let _ = live.read_to_end(&mut heard);
        let heard = String::from_utf8_lossy(&heard);
        if naming.is_empty() {
            assert!(first.starts_with("HTTP/1.1 200"), "{first}");
            assert!(
                !heard.contains(B_TRACE) && !heard.contains("event: span"),
                "A's stream heard B: {heard}"
            );
        } else {
            assert!(first.starts_with("HTTP/1.1 403"), "{first}");
        }
    }
    // B's image is not found for A, whichever way A names B, while B still reads it.
    let image = format!("/api/v1/media/{}", b_image_hash());
    for (url, creds) in [
        (image.clone(), &as_key),
        (format!("{image}?project=aproj"), &as_user),
    ] {
        let (status, _, _) = s.server.send("GET", &url, creds, b"");
        assert_eq!(
            status, 404,
            "A reads B's image hash in its own project: {url}"
        );
    }
    assert_eq!(before["stats"]["media_blobs"], 1, "{}", before["stats"]);
    // B is as it was (its trace was sent again above: the same spans, stored once).
    assert_eq!(b_state(&s), before, "B changed");
}
