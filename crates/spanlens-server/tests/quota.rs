//! Quotas over real sockets: a project over its spans per second and a key over its bytes per
//! day get 429 with `Retry-After` (gRPC `RESOURCE_EXHAUSTED`), nothing of the refused request
//! is stored, and admins see what was sent and refused.

use serde_json::{json, Value};
use spanlens_core::otlp::proto::{ExportTraceServiceRequest, ExportTraceServiceResponse};

mod common;

use common::client::{Server, JSON};

fn trace(id: &str) -> Vec<u8> {
    json!({"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": id, "spanId": "eee19b7ec3c1b174", "name": "agent",
         "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000002000000000"},
        {"traceId": id, "spanId": "aaa19b7ec3c1b175", "parentSpanId": "eee19b7ec3c1b174",
         "name": "chat", "startTimeUnixNano": "1700000000100000000",
         "endTimeUnixNano": "1700000001000000000"}
    ]}]}]})
    .to_string()
    .into_bytes()
}

fn id(n: u32) -> String {
    format!("5b8efff798038103d269b63381{n:06x}")
}

#[tokio::test]
async fn over_a_quota_ingest_is_429_with_retry_after_and_counted() {
    let s = tokio::task::spawn_blocking(Server::start).await.unwrap();
    let s = std::sync::Arc::new(s);
    let t = s.clone();
    tokio::task::spawn_blocking(move || {
        let s = t;
        let (status, body) = s.json(
            "PUT",
            "/api/v1/projects/default/quota",
            &[],
            &json!({"spans_per_second": 1}),
        );
        assert_eq!(status, 200, "{body}");
        let (status, body) = s.json(
            "PUT",
            "/api/v1/projects/default/quota",
            &[],
            &json!({"spans_per_second": 0}),
        );
        assert_eq!(status, 400, "{body}");
        // Two spans pass (into debt), the next request waits about two seconds.
        assert_eq!(s.post("/v1/traces", &[JSON], &trace(&id(1))).0, 200);
        let (status, body, headers) = s.post("/v1/traces", &[JSON], &trace(&id(2)));
        assert_eq!(status, 429, "{}", String::from_utf8_lossy(&body));
        let wait: u64 = headers
            .iter()
            .find(|(n, _)| n == "retry-after")
            .unwrap()
            .1
            .parse()
            .unwrap();
        assert!((1..=2).contains(&wait), "{wait}");
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("1 spans per second"),
            "{body}"
        );
        assert_eq!(
            s.get(&format!("/api/v1/traces/{}", id(2))).0,
            404,
            "nothing stored"
        );
        let q = s.get("/api/v1/projects/default/quota").1;
        assert_eq!(q["usage"]["throttled_requests"], 1, "{q}");
        assert_eq!(q["usage"]["throttled_spans"], 2);
        assert_eq!(q["usage"]["spans"], 2);
        // Another project is not held to it.
        assert_eq!(
            s.post(
                "/v1/traces",
                &[JSON, ("x-project-name", "free")],
                &trace(&id(3))
            )
            .0,
            200
        );
    })
    .await
    .unwrap();
    // gRPC: RESOURCE_EXHAUSTED.
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", s.bound.grpc))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = tonic::client::Grpc::new(channel);
    client.ready().await.unwrap();
    let req: ExportTraceServiceRequest = spanlens_core::otlp::decode_json(&trace(&id(4))).unwrap();
    let codec =
        tonic_prost::ProstCodec::<ExportTraceServiceRequest, ExportTraceServiceResponse>::default();
    let path = http::uri::PathAndQuery::from_static(spanlens_server::grpc::EXPORT_PATH);
    let e = client
        .unary(tonic::Request::new(req), path, codec)
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
    assert!(e.message().contains("quota"), "{e:?}");
    drop(client);
    tokio::task::spawn_blocking(move || drop(s)).await.unwrap();
}

#[test]
fn a_keys_bytes_per_day_hold_it_and_not_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let (small, big) = {
        let store = std::sync::Arc::new(spanlens_server::open_store(dir.path()).unwrap());
        let d = spanlens_auth::Directory::new(store);
        let rt = tokio::runtime::Runtime::new().unwrap();
        let q = spanlens_auth::Quota {
            spans_per_second: None,
            bytes_per_day: Some(100),
        };
        let small = rt
            .block_on(d.create_with_quota("a", "small", &[spanlens_auth::Scope::Admin], false, q))
            .unwrap();
        let big = rt
            .block_on(d.create("a", "big", &[spanlens_auth::Scope::Ingest], false))
            .unwrap();
        (small, big)
    };
    let s = Server::start_configured(dir, Vec::new(), |c| {
        c.auth = spanlens_server::auth::AuthMode::Required;
    });
    let auth = |k: &spanlens_auth::NewKey| format!("Bearer {}", k.secret);
    assert_eq!(
        s.post(
            "/v1/traces",
            &[JSON, ("authorization", &auth(&small))],
            &trace(&id(1))
        )
        .0,
        200
    );
    let (status, body, headers) = s.post(
        "/v1/traces",
        &[JSON, ("authorization", &auth(&small))],
        &trace(&id(2)),
    );
    assert_eq!(status, 429, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("100 bytes per day"));
    assert!(headers.iter().any(|(n, _)| n == "retry-after"));
    assert_eq!(
        s.post(
            "/v1/traces",
            &[JSON, ("authorization", &auth(&big))],
            &trace(&id(3))
        )
        .0,
        200
    );
    let (_, q, _) = s.send(
        "GET",
        "/api/v1/projects/a/quota",
        &[("authorization", &auth(&small))],
        b"",
    );
    let q: Value = serde_json::from_slice(&q).unwrap();
    let key = &q["keys"][0];
    assert_eq!(key["name"], "small", "{q}");
    assert_eq!(key["usage"]["throttled_requests"], 1);
    assert!(key["usage"]["bytes_today"].as_u64().unwrap() > 100);
}
