//! The server attacked as an adversary would (issue #11): each test guards one defect that was
//! found, over real sockets against a real store.

use prost::Message;
use serde_json::{json, Value};
use spanlens_core::{Cost, CostBreakdown, CostSource, NanoUsd, Span, SpanKind, Timestamp};
use spanlens_server::Limits;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

mod common;

use common::client::{parse_answer, raw_request, Server, JSON};

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// One OTLP/JSON request of the given spans (a resource with a service name).
fn otlp(spans: Vec<Value>) -> Vec<u8> {
    serde_json::to_vec(&json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "edge"}}]},
        "scopeSpans": [{"spans": spans}]
    }]}))
    .unwrap()
}

fn kv(key: &str, value: Value) -> Value {
    let v = match value {
        Value::String(s) => json!({"stringValue": s}),
        Value::Number(n) if n.is_f64() => json!({"doubleValue": n}),
        Value::Number(n) => json!({"intValue": n.to_string()}),
        other => json!({"stringValue": other.to_string()}),
    };
    json!({"key": key, "value": v})
}

fn otlp_span(trace: u64, span: u64, name: &str, start: u64, end: u64, attrs: Vec<Value>) -> Value {
    json!({
        "traceId": format!("{trace:032x}"),
        "spanId": format!("{span:016x}"),
        "name": name,
        "startTimeUnixNano": start.to_string(),
        "endTimeUnixNano": end.to_string(),
        "attributes": attrs,
    })
}

fn get_request(path: &str, host: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").into_bytes()
}

/// Every read endpoint a trace or a project can break answers 200.
fn assert_reads_answer(s: &Server, trace: &str) {
    let day = 86_400_000_000_000u64;
    let (from, to) = (now_ns() - 30 * day, now_ns() + day);
    for path in [
        format!("/api/v1/traces/{trace}"),
        format!("/api/v1/traces/{trace}?analysis=false"),
        format!("/api/v1/traces/{trace}/tree"),
        format!("/api/v1/traces/{trace}/export"),
        "/api/v1/traces".to_string(),
        "/api/v1/traces?sort=cost".to_string(),
        "/api/v1/sessions".to_string(),
        format!("/api/v1/metrics/model?from={from}&to={to}"),
        format!("/api/v1/metrics?from={from}&to={to}&buckets=3"),
        "/api/v1/metrics/day".to_string(),
        format!("/api/v1/recovery?from={from}&to={to}"),
        "/api/v1/reconciliation".to_string(),
        "/api/v1/forecast".to_string(),
        "/api/v1/live?limit=1".replace("/live?limit=1", "/stats"),
    ] {
        let (status, body) = s.get(&path);
        assert_eq!(status, 200, "{path}: {body}");
    }
}

// 1. Security headers on API answers (the UI's CSP is tested in the UI crate and the browser).

#[test]
fn api_answers_carry_security_headers() {
    let s = Server::start();
    let a = raw_request(
        s.bound.http,
        &get_request("/api/v1/traces", &s.bound.http.to_string()),
    )
    .unwrap();
    assert_eq!(a.status, 200);
    assert_eq!(a.header("x-content-type-options"), Some("nosniff"));
    assert!(a
        .header("content-security-policy")
        .is_some_and(|c| c.contains("default-src 'none'") && c.contains("frame-ancestors 'none'")));
    assert_eq!(a.header("x-frame-options"), Some("DENY"));
    let (_, _, headers) = s.post("/v1/traces", &[JSON], &otlp(vec![]));
    assert!(headers
        .iter()
        .any(|(k, v)| k == "x-content-type-options" && v == "nosniff"));
}

// 2. Any web page could write traces: a body without a content type, and no Host check.

#[test]
fn ingest_requires_a_supported_content_type() {
    let s = Server::start();
    let agents = br#"{"data": []}"#;
    for (path, headers) in [
        ("/v1/traces/ingest", vec![]),
        ("/v1/traces/ingest", vec![("content-type", "text/plain")]),
        ("/v1/traces", vec![]),
        ("/v1/traces", vec![("content-type", "text/plain")]),
        ("/api/v1/scores", vec![]),
        ("/api/v1/scores", vec![("content-type", "text/plain")]),
    ] {
        let (status, body, _) = s.post(path, &headers, agents);
        assert_eq!(
            status,
            415,
            "{path} {headers:?}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    assert_eq!(s.post("/v1/traces/ingest", &[JSON], agents).0, 200);
}

#[test]
fn foreign_hosts_and_browser_origins_are_refused() {
    let s = Server::start();
    let port = s.bound.http.port();
    for path in ["/api/v1/traces", "/", "/healthz"] {
        let a = raw_request(
            s.bound.http,
            &get_request(path, &format!("evil.example:{port}")),
        )
        .unwrap();
        assert_eq!(a.status, 403, "{path}: {}", a.body);
        assert!(a.body.contains("--public-name"), "{}", a.body);
        for host in [format!("localhost:{port}"), format!("127.0.0.1:{port}")] {
            let ok = raw_request(s.bound.http, &get_request(path, &host)).unwrap();
            assert_eq!(ok.status, 200, "{path} via {host}");
        }
    }
    let body = otlp(vec![otlp_span(1, 1, "x", now_ns(), now_ns(), vec![])]);
    let (status, text, _) = s.post(
        "/v1/traces",
        &[JSON, ("origin", "http://evil.example")],
        &body,
    );
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&text));
    assert_eq!(
        s.post("/v1/traces", &[JSON, ("origin", "null")], &body).0,
        403
    );
    assert_eq!(s.get("/api/v1/stats").1["span_count"], 0, "nothing stored");
    // The UI itself (same origin) and clients that send no origin may write.
    let own = format!("http://{}", s.bound.http);
    assert_eq!(
        s.post("/v1/traces", &[JSON, ("origin", &own)], &body).0,
        200
    );
    assert_eq!(s.post("/v1/traces", &[JSON], &body).0, 200);

    // Configured names and origins are served.
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_configured(dir, vec![], |c| {
        c.public_names = vec!["spanlens.internal".into()];
        c.allowed_origins = vec!["https://dash.example.com".into()];
    });
    let a = raw_request(
        s.bound.http,
        &get_request("/api/v1/traces", "spanlens.internal"),
    )
    .unwrap();
    assert_eq!(a.status, 200);
    assert_eq!(
        s.post(
            "/v1/traces",
            &[JSON, ("origin", "https://dash.example.com")],
            &body
        )
        .0,
        200
    );
}

// 3. One span broke a trace for good: times of 2^63 ns and later.

#[test]
fn times_past_2262_are_rejected_per_span_naming_the_field() {
    let s = Server::start();
    let t = now_ns();
    let body = otlp(vec![
        otlp_span(7, 1, "ok", t, t + 1_000, vec![]),
        otlp_span(7, 2, "end past 2262", t, 1 << 63, vec![]),
        otlp_span(7, 3, "start at u64::MAX", u64::MAX, u64::MAX, vec![]),
    ]);
    let (status, text, _) = s.post("/v1/traces", &[JSON], &body);
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&text).unwrap();
    assert_eq!(v["partialSuccess"]["rejectedSpans"], "2");
    let msg = v["partialSuccess"]["errorMessage"].as_str().unwrap();
    assert!(msg.contains("spans[1].endTimeUnixNano"), "{msg}");
    assert!(msg.contains("spans[2].startTimeUnixNano"), "{msg}");
    assert!(msg.contains("2262-04-11"), "{msg}");
    assert_reads_answer(&s, &format!("{:032x}", 7));
}

/// A span as an older build could have stored it: times past 2262 and a reported cost.
fn far_future_span() -> Span {
    let t = now_ns();
    Span {
        trace_id: spanlens_core::TraceId::from_hex(&format!("{:032x}", 9)).unwrap(),
        span_id: spanlens_core::SpanId::from_hex(&format!("{:016x}", 1)).unwrap(),
        name: "chat".into(),
        kind: SpanKind::Llm,
        start_time: Timestamp(t),
        end_time: Some(Timestamp(u64::MAX)),
        request_model: Some("gpt-4o".into()),
        provider: Some("openai".into()),
        events: vec![spanlens_core::Event {
            name: "retry".into(),
            time: Timestamp(1 << 63),
            attributes: Default::default(),
        }],
        cost: Some(Cost {
            source: CostSource::Reported,
            amounts: CostBreakdown {
                total: NanoUsd(1_000),
                ..Default::default()
            },
            pricing_id: None,
            pricing_version: None,
            computed: None,
        }),
        ..Default::default()
    }
}

#[test]
fn a_stored_span_past_2262_no_longer_breaks_reads() {
    let s = Server::start_with(vec![far_future_span()]);
    assert_reads_answer(&s, &format!("{:032x}", 9));
    let (_, v) = s.get(&format!("/api/v1/traces/{:032x}", 9));
    assert_eq!(v["spans"].as_array().unwrap().len(), 1);
    assert!(v.get("unreadable_spans").is_none(), "{v}");
}

#[test]
fn a_damaged_stored_span_is_reported_not_a_500() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("spanlens.db");
    {
        let store = spanlens_server::open_store(dir.path()).unwrap();
        let mut a = far_future_span();
        a.end_time = Some(Timestamp(a.start_time.0 + 1_000));
        a.events.clear();
        let mut b = a.clone();
        b.span_id = spanlens_core::SpanId::from_hex(&format!("{:016x}", 2)).unwrap();
        b.parent_span_id = Some(a.span_id);
        spanlens_store::SpanWriter::submit(&store, "default", vec![a])
            .and_then(|ticket| ticket.wait())
            .unwrap();
        spanlens_store::SpanWriter::submit(&store, "default", vec![b])
            .and_then(|ticket| ticket.wait())
            .unwrap();
    }
    // The first chunk (span 1) now holds bytes that are not zstd.
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute(
            "UPDATE trace_chunks SET codec = 1, body = x'00ff' WHERE id = (SELECT min(id) FROM trace_chunks)",
            [],
        )
        .unwrap();
    let s = Server::start_configured(dir, vec![], |_| {});
    assert_reads_answer(&s, &format!("{:032x}", 9));
    let (_, v) = s.get(&format!("/api/v1/traces/{:032x}", 9));
    assert_eq!(v["spans"].as_array().unwrap().len(), 1);
    assert_eq!(v["unreadable_spans"][0]["span_id"], format!("{:016x}", 1));
    // The waterfall is drawn from the spans' typed rows, which the damage did not touch: both
    // spans are there, and the damaged body is reported when its span is opened (below).
    let (_, tree) = s.get(&format!("/api/v1/traces/{:032x}/tree", 9));
    assert_eq!(tree["spans"].as_array().unwrap().len(), 2, "{tree}");
    assert!(tree.get("unreadable_spans").is_none(), "{tree}");
    let (_, rec) = s.get("/api/v1/reconciliation");
    assert_eq!(rec["unreadable_spans"]["count"], 1);
    let (status, err) = s.get(&format!("/api/v1/traces/{:032x}/spans/{:016x}", 9, 1));
    assert_eq!(status, 404);
    assert!(
        err["error"].as_str().unwrap().contains("cannot be read"),
        "{err}"
    );
}

#[test]
fn extreme_numbers_never_break_a_read() {
    let s = Server::start();
    // Yesterday, so the forecast's history (complete days) includes them.
    let t = now_ns() - 86_400_000_000_000;
    let llm = |span: u64, extra: Vec<Value>| {
        let mut attrs = vec![
            kv("gen_ai.operation.name", json!("chat")),
            kv("gen_ai.provider.name", json!("openai")),
            kv("gen_ai.request.model", json!("gpt-4o")),
            kv("session.id", json!("s-extreme")),
        ];
        attrs.extend(extra);
        otlp_span(11, span, "chat", t, t + 1_000_000, attrs)
    };
    let mut spans = vec![
        llm(1, vec![kv("gen_ai.usage.input_tokens", json!(i64::MAX))]),
        llm(2, vec![kv("gen_ai.usage.output_tokens", json!(f64::MAX))]),
        llm(
            3,
            vec![kv("gen_ai.response.time_to_first_chunk", json!(1e300))],
        ),
        llm(4, vec![kv("llm.cost.total", json!(1e300))]),
        llm(5, vec![kv("llm.cost.total", json!(-1e300))]),
        llm(
            6,
            vec![kv(
                "spanlens.ratelimit.requests.reset",
                json!(u64::MAX.to_string()),
            )],
        ),
        llm(7, vec![kv("gen_ai.usage.input_tokens", json!(-1))]),
    ];
    spans.push(llm(
        8,
        vec![
            kv("spanlens.ratelimit.requests.limit", json!(0)),
            kv(
                "spanlens.ratelimit.requests.remaining",
                json!(u64::MAX.to_string()),
            ),
            kv("spanlens.ratelimit.tokens.limit", json!(1)),
            kv("spanlens.ratelimit.tokens.remaining", json!(i64::MAX)),
            kv("spanlens.ratelimit.retry_after_ms", json!(f64::MAX)),
            kv("gen_ai.request.temperature", json!(f64::MAX)),
            kv("gen_ai.request.max_tokens", json!(i64::MIN)),
        ],
    ));
    // A tool retried with absurd attempt numbers, backoffs and recovery times.
    let mut tool = otlp_span(
        11,
        9,
        "execute_tool lookup",
        t,
        t + 2_000_000,
        vec![
            kv("gen_ai.operation.name", json!("execute_tool")),
            kv("gen_ai.tool.name", json!("lookup")),
            kv("spanlens.tool.retry_count", json!(i64::MAX)),
            kv("spanlens.items", json!(f64::MAX)),
        ],
    );
    tool["events"] = json!([
        {"name": "retry", "timeUnixNano": (t + 1).to_string(), "attributes": [
            kv("retry.attempt", json!(f64::MAX)), kv("retry.backoff_ms", json!(f64::MAX)),
            kv("error.type", json!("x".repeat(100_000)))]},
        {"name": "retry", "timeUnixNano": (t + 2).to_string(), "attributes": [
            kv("retry.attempt", json!(-1)), kv("retry.backoff_ms", json!(-1e300))]},
        {"name": "retry.outcome", "timeUnixNano": (t + 3).to_string(), "attributes": [
            kv("retry.succeeded", json!("true")), kv("retry.recovery_ms", json!(f64::MAX))]},
    ]);
    spans.push(tool);
    // Many spans at the largest cost one span may report: their sum is past 2^63 nano-USD.
    for i in 0..1_000u64 {
        spans.push(llm(
            100 + i,
            vec![
                kv("openinference.span.kind", json!("LLM")),
                kv("llm.cost.total", json!(9_999_999.0)),
            ],
        ));
    }
    let (status, text, _) = s.post("/v1/traces", &[JSON], &otlp(spans));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&text));
    assert_reads_answer(&s, &format!("{:032x}", 11));
    let (_, sessions) = s.get("/api/v1/sessions");
    assert_eq!(sessions["items"][0]["session_id"], "s-extreme");
}

// 4. No size caps on names: a 61 KB gzip request carrying a 60 MiB name.

#[test]
fn a_60_mib_name_in_a_small_gzip_request_is_capped() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_configured(dir, vec![], |_| {});
    let t = now_ns();
    let name = "n".repeat(60 * 1024 * 1024);
    let body = otlp(vec![otlp_span(21, 1, &name, t, t + 1, vec![])]);
    drop(name);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&body).unwrap();
    let gz = gz.finish().unwrap();
    assert!(gz.len() < 100 * 1024, "{} bytes", gz.len());
    let (status, text, _) = s.post("/v1/traces", &[JSON, ("content-encoding", "gzip")], &gz);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&text));
    let (_, v) = s.get(&format!("/api/v1/traces/{:032x}", 21));
    let stored = v["spans"][0]["name"].as_str().unwrap();
    assert_eq!(stored.len(), spanlens_core::limits::MAX_NAME_BYTES);
    assert_eq!(v["trace"]["name"].as_str().unwrap().len(), stored.len());
    assert_eq!(v["spans"][0]["truncated"][0]["field"], "name");
    assert_eq!(
        v["spans"][0]["truncated"][0]["reason"],
        "more than 4194304 bytes (cut while reading), kept 2048"
    );
    // Nothing beyond the caps reached the disk.
    let bytes: u64 = std::fs::read_dir(s.dir.as_ref().unwrap().path())
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(bytes < 16 * 1024 * 1024, "{bytes} bytes on disk");
}

#[test]
fn overlong_project_names_are_refused() {
    let s = Server::start();
    let body = otlp(vec![otlp_span(1, 1, "x", now_ns(), now_ns(), vec![])]);
    let long = "p".repeat(10_000);
    let (status, text, _) = s.post("/v1/traces", &[JSON, ("x-project-name", &long)], &body);
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&text).contains("x-project-name"));
    assert_eq!(s.get("/api/v1/projects").1, json!({"projects": []}));
}

#[test]
fn an_encoded_nul_in_a_url_is_a_clear_400() {
    let s = Server::start();
    for url in [
        "/api/v1/traces?user=a%00b",
        "/api/v1/sessions/a%00b",
        "/api/v1/metrics?model=gpt%00",
        "/api/v1/traces?project=p%00",
    ] {
        let (status, v) = s.get(url);
        assert_eq!(status, 400, "{url}");
        assert!(v["error"].as_str().unwrap().contains("NUL"), "{url}: {v}");
    }
    assert_eq!(s.get("/api/v1/traces?user=a%2500b").0, 200);
}

// 5. No timeouts on headers, bodies or idle connections; no connection limit.

fn short_limits(c: &mut spanlens_server::ServerConfig) {
    c.limits = Limits {
        header_read_timeout: Duration::from_secs(1),
        body_read_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(2),
        ..Limits::default()
    };
}

/// Seconds until the server closes `stream` (reads until EOF or an error), at most 20.
fn closed_within(mut stream: TcpStream) -> (Duration, Vec<u8>) {
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let started = Instant::now();
    let mut got = Vec::new();
    let _ = stream.read_to_end(&mut got);
    (started.elapsed(), got)
}

#[test]
fn slow_and_idle_connections_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_configured(dir, vec![], short_limits);
    // Headers that never end.
    let mut slow = TcpStream::connect(s.bound.http).unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHo").unwrap();
    let (took, _) = closed_within(slow);
    assert!(took < Duration::from_secs(10), "headers: {took:?}");
    // A connection that never says anything, on either listener.
    for addr in [s.bound.http, s.bound.grpc] {
        let (took, _) = closed_within(TcpStream::connect(addr).unwrap());
        assert!(took < Duration::from_secs(10), "{addr}: {took:?}");
    }
    // A body that never arrives gets 408.
    let mut body = TcpStream::connect(s.bound.http).unwrap();
    write!(
        body,
        "POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"resourceSpans\""
    )
    .unwrap();
    let (took, got) = closed_within(body);
    assert!(took < Duration::from_secs(10), "body: {took:?}");
    let answer = parse_answer(&got).expect("an answer before closing");
    assert_eq!(answer.status, 408, "{}", answer.body);
    // The server still serves.
    assert_eq!(s.get("/healthz").0, 200);
}

#[test]
fn connections_past_the_limit_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_configured(dir, vec![], |c| c.limits.max_connections = 3);
    let held: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(s.bound.http).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let refused = raw_request(s.bound.http, &get_request("/healthz", "127.0.0.1")).unwrap();
    assert_eq!(refused.status, 503);
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert!(refused.body.contains("too many open connections"));
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let a = raw_request(s.bound.http, &get_request("/healthz", "127.0.0.1")).unwrap();
        if a.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "slots never came back");
        std::thread::sleep(Duration::from_millis(50));
    }
}

// 7. gRPC answered INTERNAL for a malformed protobuf.

/// Sends `bytes` as the Export request message, as they are.
#[derive(Default, Clone)]
struct RawCodec;

struct RawEncoder;
struct ResponseDecoder;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = spanlens_core::otlp::proto::ExportTraceServiceResponse;
    type Encoder = RawEncoder;
    type Decoder = ResponseDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> ResponseDecoder {
        ResponseDecoder
    }
}

impl tonic::codec::Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

impl tonic::codec::Decoder for ResponseDecoder {
    type Item = spanlens_core::otlp::proto::ExportTraceServiceResponse;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Self::Item>, tonic::Status> {
        Self::Item::decode(src)
            .map(Some)
            .map_err(|e| tonic::Status::internal(e.to_string()))
    }
}

#[tokio::test]
async fn grpc_malformed_protobuf_is_invalid_argument() {
    let s = tokio::task::spawn_blocking(Server::start).await.unwrap();
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", s.bound.grpc))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = tonic::client::Grpc::new(channel);
    let path = http::uri::PathAndQuery::from_static(spanlens_server::grpc::EXPORT_PATH);
    client.ready().await.unwrap();
    let err = client
        .unary(
            tonic::Request::new(vec![0xff, 0xff, 0xff, 0x0f]),
            path.clone(),
            RawCodec,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("invalid OTLP protobuf"), "{err:?}");
    // A well-formed message with a span past 2262: accepted, that span reported as rejected.
    let t = now_ns();
    let req = spanlens_core::otlp::decode_json(&otlp(vec![
        otlp_span(5, 1, "ok", t, t + 1, vec![]),
        otlp_span(5, 2, "far", t, 1 << 63, vec![]),
    ]))
    .unwrap();
    client.ready().await.unwrap();
    let ok = client
        .unary(tonic::Request::new(req.encode_to_vec()), path, RawCodec)
        .await
        .unwrap()
        .into_inner();
    let partial = ok.partial_success.unwrap();
    assert_eq!(partial.rejected_spans, 1);
    assert!(partial.error_message.contains("endTimeUnixNano"));
    tokio::task::spawn_blocking(move || drop(s)).await.unwrap();
}

/// CORS is off unless origins are named; a named origin's page gets its preflight answered and
/// may read and change through the API; any other origin gets no CORS header and cannot
/// change state. Signed-in pages carry the same headers as the rest.
#[test]
fn cors_is_off_by_default_and_opened_per_origin() {
    let header =
        |h: &[(String, String)], n: &str| h.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let plain = Server::start();
    let (_, _, h) = plain.send(
        "GET",
        "/api/v1/traces",
        &[("origin", "https://dash.example.com")],
        b"",
    );
    assert_eq!(header(&h, "access-control-allow-origin"), None);
    let s = Server::start_configured(tempfile::tempdir().unwrap(), Vec::new(), |c| {
        c.cors_origins = vec!["https://dash.example.com".into()];
    });
    let (status, _, h) = s.send(
        "OPTIONS",
        "/api/v1/traces",
        &[
            ("origin", "https://dash.example.com"),
            ("access-control-request-method", "GET"),
            ("access-control-request-headers", "authorization"),
        ],
        b"",
    );
    assert_eq!(status, 204);
    assert_eq!(
        header(&h, "access-control-allow-origin").as_deref(),
        Some("https://dash.example.com")
    );
    assert!(header(&h, "access-control-allow-headers")
        .unwrap()
        .contains("authorization"));
    assert!(header(&h, "access-control-allow-methods")
        .unwrap()
        .contains("DELETE"));
    let (status, _, h) = s.send(
        "GET",
        "/api/v1/traces",
        &[("origin", "https://dash.example.com")],
        b"",
    );
    assert_eq!(status, 200);
    assert_eq!(
        header(&h, "access-control-allow-origin").as_deref(),
        Some("https://dash.example.com")
    );
    assert_eq!(header(&h, "vary").as_deref(), Some("Origin"));
    let (status, _, _) = s.post(
        "/v1/traces",
        &[JSON, ("origin", "https://dash.example.com")],
        &otlp(vec![]),
    );
    assert_eq!(status, 200, "an allowed origin may send");
    // Another origin: no CORS, no state change.
    let (_, _, h) = s.send(
        "GET",
        "/api/v1/traces",
        &[("origin", "https://evil.example")],
        b"",
    );
    assert_eq!(header(&h, "access-control-allow-origin"), None);
    let (status, _, _) = s.post(
        "/v1/traces",
        &[JSON, ("origin", "https://evil.example")],
        &otlp(vec![]),
    );
    assert_eq!(status, 403);
    // The UI's pages are not part of the API: no CORS there.
    let (_, _, h) = s.send(
        "GET",
        "/login",
        &[("origin", "https://dash.example.com")],
        b"",
    );
    assert_eq!(header(&h, "access-control-allow-origin"), None);
    // The sign-in page and the session API carry the security headers.
    for path in ["/login", "/admin", "/api/v1/session"] {
        let (_, _, h) = s.send("GET", path, &[], b"");
        assert_eq!(
            header(&h, "referrer-policy").as_deref(),
            Some("no-referrer"),
            "{path}"
        );
        assert_eq!(
            header(&h, "x-frame-options").as_deref(),
            Some("DENY"),
            "{path}"
        );
        assert!(
            header(&h, "content-security-policy")
                .unwrap()
                .contains("frame-ancestors 'none'"),
            "{path}"
        );
        assert_eq!(
            header(&h, "x-content-type-options").as_deref(),
            Some("nosniff"),
            "{path}"
        );
    }
}
