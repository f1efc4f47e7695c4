//! The server over real sockets: OTLP/HTTP (JSON, protobuf, gzip), OTLP/gRPC, the OpenAI Agents
//! and Langfuse endpoints, error statuses, idempotency, the query API and the live stream.

use prost::Message;
use serde_json::Value;
use spanlens_core::otlp::proto::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use std::io::{BufRead, BufReader, Read, Write};
use std::sync::Arc;

mod common;

use common::client::{fixture, Server, JSON, PROTO};

#[test]
fn otlp_json_protobuf_and_gzip_are_committed_before_the_answer() {
    let s = Server::start();
    let (status, body, _) = s.post("/v1/traces", &[JSON], &fixture("otlp_genai.json"));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap(),
        serde_json::json!({})
    );
    // The answer came after the commit: the spans are readable at once.
    let (_, stats) = s.get("/api/v1/stats");
    assert_eq!(stats["span_count"], 6);

    let req = spanlens_core::otlp::decode_json(&fixture("otlp_traceloop.json")).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&req.encode_to_vec()).unwrap();
    let (status, body, hdrs) = s.post(
        "/v1/traces",
        &[PROTO, ("content-encoding", "gzip")],
        &gz.finish().unwrap(),
    );
    assert_eq!(status, 200);
    assert!(hdrs
        .iter()
        .any(|(k, v)| k == "content-type" && v == "application/x-protobuf"));
    assert_eq!(
        ExportTraceServiceResponse::decode(&body[..])
            .unwrap()
            .partial_success,
        None
    );
    let (_, stats) = s.get("/api/v1/stats");
    assert_eq!(stats["span_count"], 12);

    // Sending the same spans again stores them once.
    let (status, _, _) = s.post("/v1/traces", &[JSON], &fixture("otlp_genai.json"));
    assert_eq!(status, 200);
    let (_, stats) = s.get("/api/v1/stats");
    assert_eq!(stats["span_count"], 12);
}

#[test]
fn bad_requests_get_the_otlp_status_codes() {
    let s = Server::start();
    let (status, body, _) = s.post("/v1/traces", &[("content-type", "text/plain")], b"hello");
    assert_eq!(status, 415, "{}", String::from_utf8_lossy(&body));
    let (status, body, _) = s.post(
        "/v1/traces",
        &[JSON],
        br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"xyz"}]}]}]}"#,
    );
    assert_eq!(status, 400);
    let msg: Value = serde_json::from_slice(&body).unwrap();
    assert!(
        msg["message"].as_str().unwrap().contains("traceId")
            && msg["message"].as_str().unwrap().contains("xyz"),
        "{msg}"
    );
    let (status, _, _) = s.post("/v1/traces", &[PROTO], b"\x0a\xff\xff");
    assert_eq!(status, 400);
    let (status, _, _) = s.post(
        "/v1/traces",
        &[JSON, ("content-encoding", "gzip")],
        b"not gzip",
    );
    assert_eq!(status, 400);
    // 65 MiB of zeros, gzipped to a small body: refused after decompression.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mb = vec![b' '; 1 << 20];
    for _ in 0..65 {
        gz.write_all(&mb).unwrap();
    }
    let (status, _, _) = s.post(
        "/v1/traces",
        &[JSON, ("content-encoding", "gzip")],
        &gz.finish().unwrap(),
    );
    assert_eq!(status, 413);
}

#[test]
fn partial_success_reports_rejected_spans() {
    let s = Server::start();
    let body = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[
        {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"good","startTimeUnixNano":"1700000000000000000","endTimeUnixNano":"1700000001000000000"},
        {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7e","name":"short id","startTimeUnixNano":"1700000000000000000"}]}]}]}"#;
    let (status, resp, _) = s.post("/v1/traces", &[JSON], body);
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&resp).unwrap();
    assert_eq!(v["partialSuccess"]["rejectedSpans"], "1");
    assert!(
        v["partialSuccess"]["errorMessage"]
            .as_str()
            .unwrap()
            .contains("spanId"),
        "{v}"
    );
    assert_eq!(s.get("/api/v1/stats").1["span_count"], 1);
}

#[test]
fn agents_and_langfuse_endpoints_and_project_routing() {
    let s = Server::start();
    let (status, body, _) = s.post(
        "/v1/traces/ingest",
        &[JSON, ("x-project-name", "agents")],
        &fixture("openai_agents_export.json"),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["accepted"],
        11
    );
    let (status, _, _) = s.post(
        "/api/public/otel/v1/traces",
        &[JSON],
        &fixture("otlp_langfuse.json"),
    );
    assert_eq!(status, 200);
    // The OpenInference fixture names its project in the resource.
    let (status, _, _) = s.post("/v1/traces", &[JSON], &fixture("otlp_openinference.json"));
    assert_eq!(status, 200);
    let (_, p) = s.get("/api/v1/projects");
    assert_eq!(
        p["projects"],
        serde_json::json!(["agents", "default", "support-bot-prod"])
    );
    assert_eq!(s.get("/api/v1/stats?project=agents").1["span_count"], 11);
    assert_eq!(s.get("/api/v1/stats").1["span_count"], 5);
}

#[test]
fn query_api_lists_filters_and_returns_traces() {
    let s = Server::start();
    for f in [
        "otlp_genai.json",
        "otlp_traceloop.json",
        "otlp_langfuse.json",
    ] {
        assert_eq!(s.post("/v1/traces", &[JSON], &fixture(f)).0, 200);
    }
    let (status, page) = s.get("/api/v1/traces?limit=2");
    assert_eq!(status, 200);
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let cursor = page["next_cursor"]
        .as_str()
        .expect("a second page")
        .to_string();
    let (_, page2) = s.get(&format!("/api/v1/traces?limit=2&cursor={cursor}"));
    assert_eq!(page2["items"].as_array().unwrap().len(), 1);
    let row = &page["items"][0];
    for field in [
        "trace_id",
        "name",
        "start_time",
        "duration_ms",
        "status",
        "span_count",
        "error_count",
        "input_tokens",
        "output_tokens",
        "total_cost_usd",
        "user_id",
        "session_id",
        "tags",
    ] {
        assert!(row.get(field).is_some(), "row lacks {field}: {row}");
    }
    // Traceloop's Claude calls, and Langfuse's draft-menu (provider from its priced model).
    let (_, anthropic) = s.get("/api/v1/traces?provider=anthropic");
    assert_eq!(anthropic["items"].as_array().unwrap().len(), 2);
    let (_, sonnet) = s.get("/api/v1/traces?model=claude-3-5-sonnet-20241022");
    assert_eq!(sonnet["items"].as_array().unwrap().len(), 1);
    let (_, tagged) = s.get("/api/v1/traces?tag=meal-planning&tag=beta");
    assert_eq!(tagged["items"].as_array().unwrap().len(), 1);
    // A cost range keeps exactly the traces whose total lies in it.
    let (_, all) = s.get("/api/v1/traces?limit=100");
    let costs: Vec<f64> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["total_cost_usd"].as_f64().unwrap())
        .collect();
    let cheapest = costs.iter().cloned().fold(f64::INFINITY, f64::min);
    let (_, cheap) = s.get(&format!("/api/v1/traces?max_cost={cheapest}"));
    assert_eq!(
        cheap["items"].as_array().unwrap().len(),
        costs.iter().filter(|c| **c <= cheapest).count()
    );
    let (status, err) = s.get("/api/v1/traces?max_cost=-1");
    assert_eq!(status, 400);
    assert!(err["error"].as_str().unwrap().contains("max_cost"), "{err}");
    let (status, err) = s.get("/api/v1/traces?from=yesterday");
    assert_eq!(status, 400);
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .contains("from=\"yesterday\""),
        "{err}"
    );

    let id = anthropic["items"][0]["trace_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, detail) = s.get(&format!("/api/v1/traces/{id}"));
    assert_eq!(status, 200);
    assert_eq!(detail["trace"]["trace_id"], id.as_str());
    let spans = detail["spans"].as_array().unwrap();
    assert_eq!(
        spans.len(),
        detail["trace"]["span_count"].as_u64().unwrap() as usize
    );
    let llm = spans.iter().find(|s| s["kind"] == "llm").unwrap();
    assert!(llm["usage"]["input_tokens"].as_u64().unwrap() > 0);
    assert!(llm["cost"]["total_usd"].as_f64().unwrap() > 0.0);
    assert_eq!(
        s.get(&format!("/api/v1/traces/{}", "0".repeat(31) + "1")).0,
        404
    );
    assert_eq!(s.get("/api/v1/traces/nothex").0, 400);

    let (_, m) = s.get("/api/v1/metrics?group_by=model");
    assert!(!m["rows"].as_array().unwrap().is_empty());
    assert_eq!(s.get("/api/v1/metrics/provider").0, 200);
    assert_eq!(s.get("/api/v1/metrics?group_by=planet").0, 400);
    let (_, sessions) = s.get("/api/v1/sessions");
    assert!(!sessions["items"].as_array().unwrap().is_empty());
    let (_, models) = s.get("/api/v1/models");
    assert!(models["models"].as_array().unwrap().len() >= 40);
    let (status, openapi) = s.get("/api/v1/openapi.json");
    assert_eq!(status, 200);
    assert_eq!(openapi["openapi"], "3.0.3");
}

#[test]
fn live_stream_sends_committed_spans() {
    let s = Server::start();
    let stream = std::net::TcpStream::connect(s.bound.http).unwrap();
    let mut w = stream.try_clone().unwrap();
    write!(
        w,
        "GET /api/v1/live HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(
        s.post("/v1/traces", &[JSON], &fixture("otlp_genai.json")).0,
        200
    );
    let mut seen = 0;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while seen < 6 && std::time::Instant::now() < deadline {
        line.clear();
        if r.read_line(&mut line).unwrap() == 0 {
            break;
        }
        if let Some(data) = line.trim().strip_prefix("data:") {
            let v: Value = serde_json::from_str(data.trim()).unwrap();
            assert_eq!(v["project"], "default");
            assert!(v["span_id"].as_str().unwrap().len() == 16);
            seen += 1;
        }
    }
    assert_eq!(
        seen, 6,
        "all six spans of the request arrive on the live stream"
    );
    let _ = r.read(&mut [0u8; 0]);
}

#[tokio::test]
async fn grpc_export_commits_spans() {
    let s = tokio::task::spawn_blocking(Server::start).await.unwrap();
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", s.bound.grpc))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = tonic::client::Grpc::new(channel);
    client.ready().await.unwrap();
    let req: ExportTraceServiceRequest =
        spanlens_core::otlp::decode_json(&fixture("otlp_openinference.json")).unwrap();
    let codec =
        tonic_prost::ProstCodec::<ExportTraceServiceRequest, ExportTraceServiceResponse>::default();
    let path = http::uri::PathAndQuery::from_static(spanlens_server::grpc::EXPORT_PATH);
    let resp = client
        .unary(tonic::Request::new(req), path, codec)
        .await
        .unwrap();
    assert_eq!(resp.into_inner().partial_success, None);
    let stats = tokio::task::spawn_blocking(move || {
        let v = s.get("/api/v1/stats?project=support-bot-prod").1;
        drop(s);
        v
    })
    .await
    .unwrap();
    assert_eq!(stats["span_count"], 6);
}

#[test]
fn shutdown_ends_live_streams_instead_of_waiting_for_them() {
    let s = Server::start();
    let stream = std::net::TcpStream::connect(s.bound.http).unwrap();
    let mut w = stream.try_clone().unwrap();
    write!(w, "GET /api/v1/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        drop(s); // signals shutdown and joins the server thread
        let _ = done_tx.send(());
    });
    done_rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("the server stopped although a live client was still connected");
}

#[test]
fn tree_and_span_endpoints_serve_the_waterfall_lazily() {
    let s = Server::start();
    assert_eq!(
        s.post("/v1/traces", &[JSON], &fixture("otlp_genai.json")).0,
        200
    );
    let (_, page) = s.get("/api/v1/traces");
    let id = page["items"][0]["trace_id"].as_str().unwrap().to_string();
    let (_, full) = s.get(&format!("/api/v1/traces/{id}"));
    let (status, tree) = s.get(&format!("/api/v1/traces/{id}/tree"));
    assert_eq!(status, 200);
    assert_eq!(tree["trace"], full["trace"]);
    let nodes = tree["spans"].as_array().unwrap();
    let spans = full["spans"].as_array().unwrap();
    assert_eq!(nodes.len(), spans.len());
    for (node, span) in nodes.iter().zip(spans) {
        assert_eq!(node["span_id"], span["span_id"]);
        assert_eq!(node["parent_span_id"], span["parent_span_id"]);
        assert_eq!(node["kind"], span["kind"]);
        assert_eq!(node["error"], span["status"] == "error");
        assert!(node["start_ms"].as_f64().unwrap() >= 0.0);
        // Payloads stay out of the tree; they come with the span.
        assert!(node.get("input").is_none() && node.get("attributes").is_none());
        if let Some(cost) = span["cost"]["total_usd"].as_f64() {
            assert_eq!(node["cost_usd"].as_f64().unwrap(), cost);
        }
    }
    let root = nodes
        .iter()
        .find(|n| n["parent_span_id"].is_null())
        .unwrap();
    assert_eq!(root["start_ms"].as_f64().unwrap(), 0.0);

    let llm = spans.iter().find(|s| s["kind"] == "llm").unwrap();
    let sid = llm["span_id"].as_str().unwrap();
    let (status, one) = s.get(&format!("/api/v1/traces/{id}/spans/{sid}"));
    assert_eq!(status, 200);
    assert_eq!(
        &one, llm,
        "the span endpoint returns the same canonical span"
    );
    assert_eq!(
        s.get(&format!(
            "/api/v1/traces/{id}/spans/{}",
            "0".repeat(15) + "1"
        ))
        .0,
        404
    );
    assert_eq!(s.get(&format!("/api/v1/traces/{id}/spans/xyz")).0, 400);
    assert_eq!(
        s.get(&format!("/api/v1/traces/{}/tree", "0".repeat(31) + "1"))
            .0,
        404
    );
}

#[test]
fn metrics_buckets_slice_the_time_range() {
    let s = Server::start();
    assert_eq!(
        s.post("/v1/traces", &[JSON], &fixture("otlp_genai.json")).0,
        200
    );
    let (_, all) = s.get("/api/v1/metrics?group_by=model");
    let (status, m) =
        s.get("/api/v1/metrics/model?from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z&buckets=4");
    assert_eq!(status, 200, "{m}");
    assert_eq!(m["rows"], all["rows"]);
    let buckets = m["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 4);
    assert_eq!(buckets[0]["from"], "2000-01-01T00:00:00.000000000Z");
    assert_eq!(buckets[3]["to"], "2100-01-01T00:00:00.000000000Z");
    let spans: u64 = buckets
        .iter()
        .flat_map(|b| b["rows"].as_array().unwrap())
        .map(|r| r["span_count"].as_u64().unwrap())
        .sum();
    let total: u64 = all["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["span_count"].as_u64().unwrap())
        .sum();
    assert_eq!(spans, total, "every span falls in exactly one bucket");
    assert_eq!(s.get("/api/v1/metrics/model?buckets=4").0, 400);
    assert_eq!(
        s.get("/api/v1/metrics/model?from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z&buckets=0")
            .0,
        400
    );
}

#[test]
fn ui_pages_and_assets_are_served_beside_the_api() {
    let s = Server::start();
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build(),
    );
    let fetch = |path: &str, etag: Option<&str>| {
        let mut req = agent.get(&s.url(path));
        if let Some(e) = etag {
            req = req.header("if-none-match", e);
        }
        let mut resp = req.call().unwrap();
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default()
        };
        let (ct, tag) = (header("content-type"), header("etag"));
        let status = resp.status().as_u16();
        (status, ct, tag, resp.body_mut().read_to_string().unwrap())
    };
    for page in [
        "/",
        "/traces/0123456789abcdef0123456789abcdef",
        "/sessions",
        "/sessions/chat-1",
        "/dashboard",
        "/reliability",
        "/live",
    ] {
        let (status, ct, _, body) = fetch(page, None);
        assert_eq!(status, 200, "{page}");
        assert!(ct.starts_with("text/html"), "{page}: {ct}");
        assert!(body.contains("/assets/app.js"), "{page} is the UI shell");
    }
    let (status, ct, tag, body) = fetch("/assets/app.js", None);
    assert_eq!(status, 200);
    assert!(ct.starts_with("text/javascript"), "{ct}");
    assert!(body.contains("import"));
    assert_eq!(fetch("/assets/app.js", Some(&tag)).0, 304, "revalidation");
    assert!(fetch("/assets/app.css", None).1.starts_with("text/css"));
    assert!(fetch("/assets/charts.js", None)
        .1
        .starts_with("text/javascript"));
    assert_eq!(fetch("/assets/nope.js", None).0, 404);
    // The API keeps its own answers next to the UI routes.
    let (status, ct, _, _) = fetch("/api/v1/traces", None);
    assert_eq!(status, 200);
    assert!(ct.starts_with("application/json"), "{ct}");
    assert_eq!(fetch("/api/v1/nothing", None).0, 404);
}

/// A one-route HTTP server on a free port: records the JSON body of every POST and answers it
/// with `status` and `reply` (JSON); returns its base URL and the bodies received.
fn json_server(status: &'static str, reply: String) -> (String, Arc<std::sync::Mutex<Vec<Value>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let got = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = got.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((k, v)) = line.split_once(':') {
                    if k.eq_ignore_ascii_case("content-length") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
            }
            let mut body = vec![0; len];
            if reader.read_exact(&mut body).is_ok() {
                if let Ok(v) = serde_json::from_slice(&body) {
                    sink.lock().unwrap().push(v);
                }
            }
            let _ = conn.write_all(
                format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reply}",
                    reply.len()
                )
                .as_bytes(),
            );
        }
    });
    (url, got)
}

/// A webhook receiver: records the JSON body of every POST and answers 200.
fn webhook_receiver() -> (String, Arc<std::sync::Mutex<Vec<Value>>>) {
    let (base, got) = json_server("200 OK", String::new());
    (format!("{base}/hook"), got)
}

/// One OTLP/JSON span starting now, failed or not.
fn span_now(n: u64, failed: bool) -> Vec<u8> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    serde_json::to_vec(
        &serde_json::json!({"resourceSpans": [{"scopeSpans": [{"spans": [{
            "traceId": format!("{:032x}", 0xa1e7_0000 + n),
            "spanId": format!("{:016x}", 0xa1e7_0000 + n),
            "name": "call",
            "startTimeUnixNano": (now - 5_000_000).to_string(),
            "endTimeUnixNano": now.to_string(),
            "status": {"code": if failed { 2 } else { 1 }},
        }]}]}]}),
    )
    .unwrap()
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while !done() {
        assert!(
            std::time::Instant::now() < until,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// One rule, "error rate" above 50 % over the last hour, checked every 0.1 s, notifying `url`.
fn error_rate_alert(url: &str, cooldown_seconds: u32) -> spanlens_server::alerts::AlertConfig {
    spanlens_server::alerts::AlertConfig::from_toml(&format!(
        r#"
        webhook_url = "{url}"
        interval_seconds = 0.1
        [[rule]]
        name = "error rate"
        metric = "error_rate"
        threshold = 0.5
        window_seconds = 3600
        cooldown_seconds = {cooldown_seconds}
        "#
    ))
    .unwrap()
}

#[test]
fn alert_rules_fire_and_resolve_through_the_webhook() {
    let (url, got) = webhook_receiver();
    let config = error_rate_alert(&url, 0);
    let s = Server::start_full(Vec::new(), Some(config), None);
    let (_, board) = s.get("/api/v1/alerts");
    assert_eq!(board["configured"], true);
    assert_eq!(board["alerts"][0]["rule"]["name"], "error rate");

    assert_eq!(s.post("/v1/traces", &[JSON], &span_now(1, true)).0, 200);
    wait_for("a firing notification", || !got.lock().unwrap().is_empty());
    let first = got.lock().unwrap()[0].clone();
    assert_eq!(first["status"], "firing", "{first}");
    assert_eq!(first["alert"], "error rate");
    assert_eq!(first["value"], 1.0);
    assert_eq!(first["threshold"], 0.5);

    // Good spans bring the rate down to 0.5, 0.33, then 0.25: resolved once, at whichever the
    // evaluator's tick saw first (a loaded machine may tick between two requests).
    for n in 2..5 {
        assert_eq!(s.post("/v1/traces", &[JSON], &span_now(n, false)).0, 200);
    }
    wait_for("a resolved notification", || got.lock().unwrap().len() >= 2);
    std::thread::sleep(std::time::Duration::from_millis(400));
    let all = got.lock().unwrap().clone();
    assert_eq!(all.len(), 2, "no repeats while nothing changes: {all:?}");
    assert_eq!(all[1]["status"], "resolved");
    let resolved_at = all[1]["value"].as_f64().unwrap();
    assert!((0.25..=0.5).contains(&resolved_at), "{resolved_at}");
    let (_, board) = s.get("/api/v1/alerts");
    assert_eq!(board["alerts"][0]["state"]["status"], "ok");
    assert_eq!(board["alerts"][0]["notifications"], 2);

    // Without a configuration the endpoint says so.
    let plain = Server::start();
    assert_eq!(plain.get("/api/v1/alerts").1["configured"], false);
}

/// A firing alert survives a restart: the new server does not announce it again (its cooldown
/// has not passed and nothing changed), and still resolves it once the metric recovers.
#[test]
fn alert_state_survives_a_restart() {
    let (url, got) = webhook_receiver();
    let config = error_rate_alert(&url, 3);
    let s = Server::start_full(Vec::new(), Some(config.clone()), None);
    assert_eq!(s.post("/v1/traces", &[JSON], &span_now(11, true)).0, 200);
    wait_for("a firing notification", || !got.lock().unwrap().is_empty());
    let dir = s.stop_keeping_data();
    // The state is in the store, where every server on it reads it.
    let saved: Value = {
        let db = saved_alert_state(dir.path());
        serde_json::from_str(&db).unwrap()
    };
    assert_eq!(saved["rules"]["error rate"]["status"], "firing", "{saved}");
    assert_eq!(saved["rules"]["error rate"]["notifications"], 1, "{saved}");

    // Restarted on the same data: still breached, already announced, so nothing is sent
    // (a server that forgot would fire again on its first evaluation).
    let s = Server::start_in(dir, Vec::new(), Some(config), None);
    let (_, board) = s.get("/api/v1/alerts");
    assert_eq!(board["alerts"][0]["state"]["status"], "firing", "{board}");
    assert_eq!(board["alerts"][0]["notifications"], 1, "{board}");
    wait_for("evaluations after the restart", || {
        s.get("/api/v1/alerts").1["alerts"][0]["state"]["value"] == 1.0
    });
    std::thread::sleep(std::time::Duration::from_millis(500));
    let sent = got.lock().unwrap().clone();
    assert_eq!(sent.len(), 1, "{sent:?}");

    // The metric recovers: the resolve is sent, once the cooldown from the firing has passed.
    for n in 12..15 {
        assert_eq!(s.post("/v1/traces", &[JSON], &span_now(n, false)).0, 200);
    }
    wait_for("a resolved notification", || got.lock().unwrap().len() >= 2);
    let all = got.lock().unwrap().clone();
    assert_eq!(all[0]["status"], "firing");
    assert_eq!(all[1]["status"], "resolved", "{all:?}");
    let gap = |k: usize| {
        let t = |v: &Value| {
            spanlens_core::Timestamp::parse_rfc3339(v["at"].as_str().unwrap())
                .unwrap()
                .0
        };
        t(&all[k]).saturating_sub(t(&all[k - 1]))
    };
    assert!(gap(1) >= 3_000_000_000, "resolved before the cooldown");
    // The board records a notification after the webhook answered it: on a loaded machine a
    // read may come between the two.
    wait_for("the board counting both notifications", || {
        s.get("/api/v1/alerts").1["alerts"][0]["notifications"] == 2
    });
}

/// An OpenAI-compatible judge: answers every chat completion with the given score and keeps
/// the prompts it was sent.
fn mock_judge(score: f64) -> (String, Arc<std::sync::Mutex<Vec<Value>>>) {
    let content =
        format!("```json\n{{\"score\": {score}, \"reason\": \"clear and correct\"}}\n```");
    let answer = serde_json::json!({"id": "x", "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]});
    let (base, got) = json_server("200 OK", answer.to_string());
    (format!("{base}/v1"), got)
}

#[test]
fn evaluators_score_ingested_spans_and_scores_filter_traces() {
    let (judge_url, prompts) = mock_judge(0.8);
    let config = spanlens_server::evaluators::EvaluatorConfig::from_toml(&format!(
        r#"
        [[evaluator]]
        name = "valid json"
        rule = "valid_json"
        [[evaluator]]
        name = "no pii"
        rule = "pii"
        [[judge]]
        name = "helpfulness"
        endpoint = "{judge_url}"
        model = "judge-model"
        prompt = "Question: {{input}}\nAnswer: {{output}}"
        "#
    ))
    .unwrap();
    let s = Server::start_full(Vec::new(), None, Some(config));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let body = serde_json::to_vec(&serde_json::json!({"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": "5c0de5c0de5c0de5c0de5c0de5c0de01", "spanId": "5c0de5c0de5c0d01",
        "name": "chat", "startTimeUnixNano": (now - 1_000_000).to_string(), "endTimeUnixNano": now.to_string(),
        "attributes": [
            {"key": "openinference.span.kind", "value": {"stringValue": "LLM"}},
            {"key": "input.value", "value": {"stringValue": "What is 6 x 7? Mail me at a@b.co"}},
            {"key": "output.value", "value": {"stringValue": "{\"answer\": 42}"}}
        ]}]}]}]}))
    .unwrap();
    assert_eq!(s.post("/v1/traces", &[JSON], &body).0, 200);
    let tid = "5c0de5c0de5c0de5c0de5c0de5c0de01";
    let mut scores = Vec::new();
    wait_for("three evaluator scores", || {
        scores = s.get(&format!("/api/v1/scores?trace_id={tid}")).1["items"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        scores.len() == 3
    });
    let by = |n: &str| scores.iter().find(|x| x["name"] == n).unwrap().clone();
    assert_eq!(
        (
            by("valid json")["value"].clone(),
            by("valid json")["source"].clone()
        ),
        (1.0.into(), "rule".into())
    );
    assert_eq!(by("no pii")["value"], 0.0, "the input has an email address");
    assert_eq!(by("no pii")["comment"], "found email");
    let judged = by("helpfulness");
    assert_eq!(
        (judged["value"].clone(), judged["source"].clone()),
        (0.8.into(), "llm".into())
    );
    assert_eq!(judged["comment"], "clear and correct");
    let sent = prompts.lock().unwrap()[0].clone();
    assert_eq!(sent["model"], "judge-model");
    let asked = sent["messages"][1]["content"].as_str().unwrap();
    assert!(asked.starts_with("Question: What is 6 x 7?"), "{asked}");
    assert!(asked.contains("Answer: {\"answer\":42}"), "{asked}");

    // API scores: validated, listed, trended and usable as a trace filter.
    let (status, _, _) = s.post(
        "/api/v1/scores",
        &[JSON],
        format!(r#"{{"trace_id": "{tid}", "name": "thumbs", "data_type": "boolean", "value": 1, "source": "human"}}"#).as_bytes(),
    );
    assert_eq!(status, 201);
    let (status, err, _) = s.post(
        "/api/v1/scores",
        &[JSON],
        br#"[{"name": "x", "data_type": "numeric", "value": 1}]"#,
    );
    assert_eq!(status, 400);
    assert!(
        String::from_utf8_lossy(&err).contains("trace_id"),
        "{}",
        String::from_utf8_lossy(&err)
    );
    let (_, hit) = s.get("/api/v1/traces?score_name=helpfulness&score_min=0.5");
    assert_eq!(hit["items"].as_array().unwrap().len(), 1);
    let (_, miss) = s.get("/api/v1/traces?score_name=helpfulness&score_min=0.9");
    assert!(miss["items"].as_array().unwrap().is_empty());
    assert_eq!(s.get("/api/v1/traces?score_min=1").0, 400);
    let (_, trends) = s.get("/api/v1/scores/trends");
    let rows = trends["rows"].as_array().unwrap();
    assert!(
        rows.iter()
            .any(|r| r["name"] == "thumbs" && r["mean"] == 1.0),
        "{trends}"
    );
}

mod insight {
    use super::Server;
    use serde_json::{json, Value};
    use spanlens_core::{
        Event, RateLimitWindow, RateLimits, Span, SpanId, SpanKind, Status, Timestamp, TraceId,
    };

    const MS: u64 = 1_000_000;
    /// 2026-01-01T00:00:00Z.
    const T0: u64 = 1_767_225_600_000_000_000;

    fn span(n: u8, parent: Option<u8>, start: u64, end: Option<u64>) -> Span {
        Span {
            trace_id: TraceId([9; 16]),
            span_id: SpanId([n; 8]),
            parent_span_id: parent.map(|p| SpanId([p; 8])),
            name: format!("s{n}"),
            start_time: Timestamp(T0 + start * MS),
            end_time: end.map(|e| Timestamp(T0 + e * MS)),
            status: Status::Ok,
            ..Default::default()
        }
    }

    fn hex(n: u8) -> String {
        SpanId([n; 8]).to_hex()
    }

    #[test]
    fn trace_detail_and_tree_carry_the_analysis() {
        // root 0..100: a 10..40 and b 20..60 overlap, c 70..90 runs after them; d is open.
        let spans = vec![
            span(4, Some(1), 70, Some(90)),
            span(1, None, 0, Some(100)),
            span(3, Some(1), 20, Some(60)),
            span(2, Some(1), 10, Some(40)),
            span(5, Some(3), 30, None),
        ];
        let s = Server::start_with(spans);
        let id = TraceId([9; 16]).to_hex();
        let (status, full) = s.get(&format!("/api/v1/traces/{id}"));
        assert_eq!(status, 200);
        assert_eq!(full["spans"].as_array().unwrap().len(), 5);
        assert_eq!(full["trace"]["trace_id"], id.as_str());
        let a = &full["analysis"];
        let path: Vec<&str> = a["critical_path"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        // d is unclosed, so it runs to the latest known time (100) and is clipped to b (60).
        assert_eq!(path, ["s1", "s3", "s5", "s4"]);
        assert_eq!(a["critical_path_ms"], 100.0);
        assert_eq!(a["coordination_overhead_ms"], 30.0 + 10.0);
        assert_eq!(a["parallel_groups"][0]["names"], json!(["s2", "s3"]));
        assert_eq!(a["parallelism_efficiency"], (90.0 + 30.0) / (70.0 + 30.0));
        assert_eq!(a["unclosed_span_ids"], json!([hex(5)]));
        assert_eq!(a["clock_skew_span_ids"], json!([hex(5)]));

        let (status, tree) = s.get(&format!("/api/v1/traces/{id}/tree"));
        assert_eq!(status, 200);
        let row = |n: u8| -> Value {
            tree["spans"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["span_id"] == hex(n).as_str())
                .unwrap()
                .clone()
        };
        assert_eq!(row(1)["self_ms"], 30.0);
        assert_eq!(row(1)["critical"], true);
        assert_eq!(row(2)["critical"], false);
        assert_eq!(row(2)["self_ms"], 30.0);
        assert_eq!(row(5)["unclosed"], true);
        assert_eq!(
            tree["analysis"]["critical_path"],
            json!([hex(1), hex(3), hex(5), hex(4)])
        );
        assert_eq!(tree["analysis"]["coordination_overhead_ms"], 40.0);
        let (_, bare) = s.get(&format!("/api/v1/traces/{id}?analysis=false"));
        assert!(bare.get("analysis").is_none());
        assert_eq!(bare["spans"], full["spans"]);
        let (status, body) = s.get(&format!("/api/v1/traces/{id}?analysis=maybe"));
        assert_eq!(status, 400);
        assert!(
            body["error"].as_str().unwrap().contains("analysis"),
            "{body}"
        );
        // The export stays the stored trace, without derived fields.
        let (_, export) = s.get(&format!("/api/v1/traces/{id}/export"));
        assert!(export.get("analysis").is_none());
    }

    fn retry(at: u64, attempt: u64, error: &str) -> Event {
        Event {
            name: "retry".into(),
            time: Timestamp(T0 + at * MS),
            attributes: [
                ("retry.attempt".to_string(), json!(attempt)),
                ("error.type".to_string(), json!(error)),
                ("retry.backoff_ms".to_string(), json!(100)),
            ]
            .into_iter()
            .collect(),
        }
    }

    #[test]
    fn recovery_reports_retries_and_rate_limit_headroom() {
        let mut llm = span(1, None, 0, Some(1_000));
        llm.kind = SpanKind::Llm;
        llm.provider = Some("openai".into());
        llm.events = vec![
            retry(100, 1, "RateLimitError"),
            retry(300, 2, "RateLimitError"),
        ];
        llm.rate_limits = Some(RateLimits {
            requests: Some(RateLimitWindow {
                limit: Some(100),
                remaining: Some(25),
                reset: None,
            }),
            ..Default::default()
        });
        let mut tool = span(2, Some(1), 100, Some(900));
        tool.kind = SpanKind::Tool;
        tool.status = Status::Error;
        tool.events = vec![retry(400, 1, "TimeoutError")];
        let s = Server::start_with(vec![llm, tool]);

        let from = Timestamp(T0 - 3_600_000 * MS).to_rfc3339();
        let to = Timestamp(T0 + 3_600_000 * MS).to_rfc3339();
        let (status, r) = s.get(&format!("/api/v1/recovery?from={from}&to={to}&buckets=2"));
        assert_eq!(status, 200, "{r}");
        assert_eq!(r["spans_with_retries"], 2);
        assert_eq!(r["recovered"], 1);
        assert_eq!(r["recovery_rate"], 0.5);
        assert_eq!(r["retries"], 3);
        // No outcome event: success at the span end, 900 ms after the first failure.
        assert_eq!(r["recovery_time"]["max_ms"], 900.0);
        assert_eq!(r["by_provider"][0]["key"], "openai");
        assert_eq!(r["by_tool"][0]["key"], "s2");
        assert_eq!(r["by_error_type"][0]["key"], "RateLimitError");
        assert_eq!(r["by_error_type"][0]["retries"], 2);
        let llm = r["timelines"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == "s1")
            .unwrap();
        assert_eq!(llm["attempts"][1]["offset_ms"], 300.0);
        let rl = &r["rate_limits"][0];
        assert_eq!(
            (rl["provider"].as_str(), rl["window"].as_str()),
            (Some("openai"), Some("requests"))
        );
        assert_eq!(rl["buckets"].as_array().unwrap().len(), 2);
        assert_eq!(rl["buckets"][1]["min_headroom"], 0.25);
        // The report is exact over the range: there is no cap to report.
        assert!(r.get("truncated").is_none() && r.get("traces_scanned").is_none());

        // A range without traces is an empty report, not an error.
        let (status, empty) = s.get("/api/v1/recovery?from=0&to=1000");
        assert_eq!(status, 200);
        assert_eq!(empty["spans_with_retries"], 0);
        assert!(empty["recovery_rate"].is_null());

        for (query, param) in [
            ("from=yesterday", "from"),
            ("buckets=0", "buckets"),
            ("buckets=many", "buckets"),
            ("from=2000&to=1000", "from"),
        ] {
            let (status, body) = s.get(&format!("/api/v1/recovery?{query}"));
            assert_eq!(status, 400, "{query}");
            let msg = body["error"].as_str().unwrap();
            assert!(msg.contains(param), "{query}: {msg}");
        }
    }
}

/// A Traceloop framework span and the OpenAI SDK's GenAI span of one call (same usage, the SDK
/// span nested inside and carrying the response id), sent in two requests, SDK span first.
fn same_call_otlp(which: &str) -> Vec<u8> {
    let kv = |k: &str, v: Value| serde_json::json!({"key": k, "value": v});
    let s = |v: &str| serde_json::json!({"stringValue": v});
    let i = |v: i64| serde_json::json!({"intValue": v.to_string()});
    let trace = "5b8efff798038103d269b633813fc60c";
    let framework = serde_json::json!({
        "traceId": trace, "spanId": "00000000000000a2", "parentSpanId": "00000000000000a1",
        "name": "ChatOpenAI.chat", "startTimeUnixNano": "1735689600100000000",
        "endTimeUnixNano": "1735689600900000000",
        "attributes": [kv("llm.request.type", s("chat")), kv("gen_ai.system", s("openai")),
            kv("gen_ai.request.model", s("gpt-4o")), kv("gen_ai.usage.prompt_tokens", i(1000)),
            kv("gen_ai.usage.completion_tokens", i(200))]});
    let sdk = serde_json::json!({
        "traceId": trace, "spanId": "00000000000000a3", "parentSpanId": "00000000000000a2",
        "name": "chat gpt-4o", "startTimeUnixNano": "1735689600120000000",
        "endTimeUnixNano": "1735689600880000000",
        "attributes": [kv("gen_ai.operation.name", s("chat")), kv("gen_ai.system", s("openai")),
            kv("gen_ai.request.model", s("gpt-4o")), kv("gen_ai.response.model", s("gpt-4o-2024-08-06")),
            kv("gen_ai.response.id", s("chatcmpl-42")), kv("gen_ai.usage.input_tokens", i(1000)),
            kv("gen_ai.usage.output_tokens", i(200))]});
    let root = serde_json::json!({
        "traceId": trace, "spanId": "00000000000000a1", "name": "agent",
        "startTimeUnixNano": "1735689600000000000", "endTimeUnixNano": "1735689601000000000"});
    let spans = match which {
        "sdk" => vec![sdk],
        _ => vec![root, framework],
    };
    serde_json::to_vec(&serde_json::json!({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}))
        .unwrap()
}

#[test]
fn a_call_recorded_by_two_instrumentations_is_counted_once_and_marked() {
    let s = Server::start();
    assert_eq!(s.post("/v1/traces", &[JSON], &same_call_otlp("sdk")).0, 200);
    let id = "5b8efff798038103d269b633813fc60c";
    let (_, alone) = s.get(&format!("/api/v1/traces/{id}"));
    let once = alone["trace"]["total_cost_usd"].as_f64().unwrap();
    assert!(once > 0.0, "gpt-4o is priced: {alone}");
    assert_eq!(alone["trace"]["input_tokens"], 1000);
    assert_eq!(
        s.post("/v1/traces", &[JSON], &same_call_otlp("rest")).0,
        200
    );
    let (status, full) = s.get(&format!("/api/v1/traces/{id}"));
    assert_eq!(status, 200);
    // Three spans, one call: its tokens and cost counted once.
    assert_eq!(full["trace"]["span_count"], 3);
    assert_eq!(full["trace"]["input_tokens"], 1000);
    assert_eq!(full["trace"]["output_tokens"], 200);
    assert_eq!(full["trace"]["total_cost_usd"].as_f64().unwrap(), once);
    let spans = full["spans"].as_array().unwrap();
    let by_id = |sid: &str| spans.iter().find(|x| x["span_id"] == sid).unwrap();
    // Both report input, output and total and both are priced: the framework span (smaller
    // id) is counted, the SDK span is marked as the same call.
    let sdk = by_id("00000000000000a3");
    assert_eq!(sdk["duplicate_of"], "00000000000000a2");
    assert_eq!(sdk["response_id"], "chatcmpl-42");
    assert_eq!(
        sdk["usage"]["input_tokens"], 1000,
        "the duplicate keeps its usage"
    );
    assert!(by_id("00000000000000a2").get("duplicate_of").is_none());
    let (_, tree) = s.get(&format!("/api/v1/traces/{id}/tree"));
    let marked: Vec<&Value> = tree["spans"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n.get("duplicate_of").is_some())
        .collect();
    assert_eq!(marked.len(), 1);
    assert_eq!(marked[0]["span_id"], "00000000000000a3");
    assert_eq!(marked[0]["duplicate_of"], "00000000000000a2");
    let (status, one) = s.get(&format!("/api/v1/traces/{id}/spans/00000000000000a3"));
    assert_eq!(status, 200);
    assert_eq!(one["duplicate_of"], "00000000000000a2");
    // The dashboard counts the call once too.
    let (_, m) = s.get("/api/v1/metrics?group_by=model");
    let tokens: u64 = m["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["input_tokens"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(tokens, 1000, "{m}");
}

/// The saved alert state, read through a store opened on the data directory (and closed again
/// before the next server opens it).
fn saved_alert_state(dir: &std::path::Path) -> String {
    let store = spanlens_server::open_store(dir).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let got = rt.block_on(spanlens_store::SharedState::load_state(
        &store,
        spanlens_server::alerts::STATE_KEY,
    ));
    store.close();
    got.unwrap().expect("an alert state in the store")
}

/// A server started with an override catalog prices what it ingests with it, lists it in
/// `/api/v1/models`, and reconciles against it; the built-in prices stay for other models.
#[test]
fn the_catalog_in_force_prices_ingest_and_answers() {
    let overrides = spanlens_core::PriceCatalog::from_toml(
        "version = \"team-2026-12\"\n[[model]]\nid = \"gpt-4o-mini\"\nprovider = \"openai\"\n\
         match = '^gpt-4o-mini'\nvalid_from = \"2000-01-01\"\ninput = 100.0\noutput = 0.0\n\
         source = \"https://example.com\"\nchecked = \"2026-12-01\"\n",
    )
    .unwrap();
    let catalog = std::sync::Arc::new(spanlens_core::PriceCatalog::with_overrides(
        overrides,
        spanlens_core::PriceCatalog::builtin(),
    ));
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_configured(dir, vec![], |c| {
        c.catalog = spanlens_server::state::Catalog::Loaded(catalog.clone());
    });
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let body = serde_json::json!({"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": "c0ffee00c0ffee00c0ffee00c0ffee00", "spanId": "c0ffee00c0ffee01", "name": "chat",
        "startTimeUnixNano": (now - 1_000_000).to_string(), "endTimeUnixNano": now.to_string(),
        "attributes": [
            {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
            {"key": "gen_ai.provider.name", "value": {"stringValue": "openai"}},
            {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o-mini"}},
            {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "1000"}},
            {"key": "gen_ai.usage.output_tokens", "value": {"intValue": "10"}}]}]}]}]});
    assert_eq!(
        s.post("/v1/traces", &[JSON], &serde_json::to_vec(&body).unwrap())
            .0,
        200
    );
    let (_, t) = s.get("/api/v1/traces/c0ffee00c0ffee00c0ffee00c0ffee00");
    // 1,000 input tokens at $100 per million, output free: $0.1 exactly.
    assert_eq!(
        t["trace"]["total_cost_nano_usd"], 100_000_000,
        "{}",
        t["trace"]
    );
    let (_, models) = s.get("/api/v1/models");
    let mini = models["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "gpt-4o-mini")
        .unwrap()
        .clone();
    assert_eq!(mini["input_per_million_usd"], 100.0, "{mini}");
    assert!(
        models["models"].as_array().unwrap().len() >= 40,
        "built-ins stay"
    );
    let (_, rec) = s.get("/api/v1/reconciliation");
    assert!(
        rec["catalog_version"]
            .as_str()
            .unwrap()
            .contains("team-2026-12"),
        "{}",
        rec["catalog_version"]
    );
}

/// `/tree?format=columns` (what the web UI reads) holds exactly the rows of the row format:
/// each row rebuilt from the columns equals the row format's object, field by field.
#[test]
fn tree_columns_hold_the_same_rows_as_the_row_format() {
    let s = Server::start();
    assert_eq!(
        s.post("/v1/traces", &[JSON], &fixture("otlp_genai.json")).0,
        200
    );
    let (_, page) = s.get("/api/v1/traces");
    let id = page["items"][0]["trace_id"].as_str().unwrap().to_string();
    let (_, rows) = s.get(&format!("/api/v1/traces/{id}/tree"));
    let (status, c) = s.get(&format!("/api/v1/traces/{id}/tree?format=columns"));
    assert_eq!(status, 200, "{c}");
    assert_eq!(c["trace"], rows["trace"]);
    assert_eq!(c["analysis"], rows["analysis"]);
    assert!(c.get("spans").is_none(), "columns instead of rows");
    let rows = rows["spans"].as_array().unwrap();
    assert!(rows.len() > 1);
    assert_eq!(c["count"], serde_json::json!(rows.len()));
    let at = |col: &str, i: usize| c[col][i].clone();
    let index = |col: &str, dict: &str, i: usize| match at(col, i).as_i64().unwrap() {
        -1 => Value::Null,
        k => c[dict][k as usize].clone(),
    };
    for (i, row) in rows.iter().enumerate() {
        let parent = match at("parent", i).as_i64().unwrap() {
            -1 => c["missing_parent"]
                .get(i.to_string())
                .cloned()
                .unwrap_or(Value::Null),
            p => at("span_id", p as usize),
        };
        let flags = at("flags", i).as_u64().unwrap();
        let mut rebuilt = serde_json::json!({
            "span_id": at("span_id", i),
            "parent_span_id": parent,
            "name": index("name", "names", i),
            "kind": index("kind", "kinds", i),
            "status": index("status", "statuses", i),
            "start_ms": at("start_ms", i),
            "duration_ms": at("duration_ms", i),
            "model": index("model", "models", i),
            "input_tokens": at("input_tokens", i),
            "output_tokens": at("output_tokens", i),
            "cost_usd": at("cost_usd", i),
            "unpriced": flags & 2 != 0,
            "error": flags & 1 != 0,
            "self_ms": at("self_ms", i),
            "critical": flags & 4 != 0,
            "unclosed": flags & 8 != 0,
        });
        for sparse in ["error_message", "duplicate_of"] {
            if let Some(v) = c[sparse].get(i.to_string()) {
                rebuilt[sparse] = v.clone();
            }
        }
        assert_eq!(&rebuilt, row, "row {i}");
    }
    let (status, err) = s.get(&format!("/api/v1/traces/{id}/tree?format=xml"));
    assert_eq!(status, 400);
    assert!(
        err["error"].as_str().unwrap().contains("format"),
        "the message names the parameter: {err}"
    );
}
