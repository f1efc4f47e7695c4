//! Media taken out of span payloads end to end (#19 item 9): stored once per project at
//! ingest, served by `GET /api/v1/media/{hash}` with headers that keep a browser from running
//! them, freed with the last trace referring to them, and the storage a chat saves that sends
//! one image again in every turn.
//!
//! `cargo test -p spanlens-server --test media -- --nocapture` prints the figures.

mod common;

use base64::Engine as _;
use common::client::{Server, JSON};
use common::otlp_json::{kv, span};
use serde_json::{json, Value};
use spanlens_core::media::{content_hash, media_ref};

const T0: u64 = 1_764_003_600_000_000_000;

/// A PNG of `n` bytes: the signature and an IHDR header, then bytes that do not compress (a
/// real PNG's deflated data does not either), drawn by xorshift from `seed`.
fn png(n: usize, seed: u64) -> Vec<u8> {
    let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    let mut x = seed | 1;
    while b.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        b.push(x as u8);
    }
    b
}

fn data_url(bytes: &[u8]) -> String {
    format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

fn request(spans: Vec<Value>) -> Vec<u8> {
    json!({"resourceSpans": [{
        "resource": {"attributes": [kv("service.name", json!("vision"))]},
        "scopeSpans": [{"spans": spans}]
    }]})
    .to_string()
    .into_bytes()
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

#[test]
fn a_stored_image_is_served_with_its_type_and_safe_headers() {
    let server = Server::start();
    let image = png(50 * 1024, 3);
    let hash = content_hash(&image);
    let trace = "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a";
    let body = request(vec![span(
        trace,
        1,
        None,
        "look",
        T0,
        (0, 100),
        vec![kv("input.value", json!(data_url(&image)))],
        None,
    )]);
    let (status, _, _) = server.post("/v1/traces", &[JSON], &body);
    assert_eq!(status, 200);
    // The span holds the reference, not the base64.
    let (status, detail) = server.get(&format!("/api/v1/traces/{trace}"));
    assert_eq!(status, 200);
    let text = detail.to_string();
    assert!(text.contains(&media_ref(&hash)), "{text:.400}");
    assert!(text.len() < 16 * 1024, "{} bytes", text.len());

    let (status, bytes, headers) = server.send("GET", &format!("/api/v1/media/{hash}"), &[], b"");
    assert_eq!(status, 200);
    assert_eq!(bytes, image);
    assert_eq!(header(&headers, "content-type"), Some("image/png"));
    assert_eq!(header(&headers, "x-content-type-options"), Some("nosniff"));
    assert_eq!(
        header(&headers, "content-security-policy"),
        Some("sandbox; default-src 'none'")
    );
    assert_eq!(
        header(&headers, "cache-control"),
        Some("private, max-age=31536000, immutable")
    );
    // Another project does not have it; malformed hashes are refused, naming the problem.
    let (status, _, _) = server.send(
        "GET",
        &format!("/api/v1/media/{hash}?project=other"),
        &[],
        b"",
    );
    assert_eq!(status, 404);
    for bad in [
        hash.to_uppercase(),
        hash[..63].to_string(),
        format!("{hash}0"),
        "z".repeat(64),
    ] {
        let (status, answer) = server.get(&format!("/api/v1/media/{bad}"));
        assert_eq!(status, 400, "{bad}");
        assert!(answer["error"]
            .as_str()
            .unwrap()
            .contains("64 lowercase hex"));
    }
    let (status, _) = server.get(&format!("/api/v1/media/{}", "0".repeat(64)));
    assert_eq!(status, 404);
    let (_, stats) = server.get("/api/v1/stats");
    assert_eq!(stats["media_blobs"], 1);
    assert_eq!(stats["media_bytes"], image.len());

    // Deleting the only trace referring to it frees it.
    let (status, _, _) = server.send("DELETE", &format!("/api/v1/traces/{trace}"), &[], b"");
    assert_eq!(status, 200);
    let (status, _) = server.get(&format!("/api/v1/media/{hash}"));
    assert_eq!(status, 404);
    let (_, stats) = server.get("/api/v1/stats");
    assert_eq!(stats["media_blobs"], 0);
}

/// One turn of the chat: the whole history so far (the image in the first user message) as an
/// OpenAI request body in `input.value`, and the answer.
fn turn(trace: &str, i: usize, image: &[u8]) -> Value {
    let mut messages = vec![json!({"role": "user", "content": [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": data_url(image)}}
    ]})];
    for k in 0..i {
        messages
            .push(json!({"role": "assistant", "content": format!("Answer {k}: a cat on a mat.")}));
        messages.push(json!({"role": "user", "content": format!("Follow-up question {k}?")}));
    }
    let body = json!({"model": "gpt-4o", "messages": messages});
    span(
        trace,
        (i + 1) as u8,
        None,
        "ChatCompletion",
        T0,
        (i as u64 * 2000, i as u64 * 2000 + 900),
        vec![
            kv("openinference.span.kind", json!("LLM")),
            kv("llm.model_name", json!("gpt-4o")),
            kv("input.value", json!(body.to_string())),
            kv("input.mime_type", json!("application/json")),
            kv(
                "output.value",
                json!(format!("Answer {i}: a cat on a mat.")),
            ),
        ],
        None,
    )
}

/// Bytes of the stored span bodies (compressed chunks) and of the media, read from the file.
fn stored_sizes(dir: &std::path::Path) -> (u64, u64, u64) {
    let db = rusqlite::Connection::open(dir.join("spanlens.db")).unwrap();
    let q = |sql: &str| -> u64 { db.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap() as u64 };
    (
        q("SELECT coalesce(sum(length(body)), 0) FROM trace_chunks"),
        q("SELECT coalesce(sum(size), 0) FROM media_blobs"),
        q("SELECT count(*) FROM media_blobs"),
    )
}

#[test]
fn a_ten_turn_chat_resending_one_image_stores_it_once() {
    let server = Server::start();
    let image = png(200 * 1024, 11);
    let trace = "c4a7c4a7c4a7c4a7c4a7c4a7c4a7c4a7";
    let mut carried = 0u64;
    for i in 0..10 {
        let body = request(vec![turn(trace, i, &image)]);
        carried += body.len() as u64;
        let (status, answer, _) = server.post("/v1/traces", &[JSON], &body);
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    }
    let (status, detail) = server.get(&format!("/api/v1/traces/{trace}"));
    assert_eq!(status, 200);
    let spans = detail["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 10);
    let reference = media_ref(&content_hash(&image));
    let span_json: u64 = spans.iter().map(|s| s.to_string().len() as u64).sum();
    for s in spans {
        assert!(
            s.to_string().contains(&reference),
            "every turn names the image"
        );
    }
    let (_, stats) = server.get("/api/v1/stats");
    assert_eq!(stats["media_blobs"], 1, "the image is stored once");
    assert_eq!(stats["media_bytes"], image.len());

    let dir = server.stop_keeping_data();
    let (chunks, media, blobs) = stored_sizes(dir.path());
    assert_eq!((media, blobs), (image.len() as u64, 1));
    // Inline, each span would hold the base64 (4/3 of the image) in its input, cut to the
    // payload cap, and again in its raw attribute.
    let inline_image = (image.len() as u64).div_ceil(3) * 4;
    println!(
        "10-turn chat, one {} B PNG resent in every turn:\n  \
         requests carried {carried} B ({} B of it base64 image)\n  \
         media stored {media} B in {blobs} blob\n  \
         span bodies stored {chunks} B compressed ({span_json} B as JSON read back)\n  \
         stored in all {} B = {:.1}% of what was sent",
        image.len(),
        10 * inline_image,
        media + chunks,
        100.0 * (media + chunks) as f64 / carried as f64
    );
    assert!(
        carried > 10 * inline_image,
        "each request carries the image"
    );
    assert!(span_json < 10 * 16 * 1024, "spans hold references only");
    assert!(
        media + chunks < carried / 8,
        "stored {} of {carried}",
        media + chunks
    );
}

/// The gRPC export goes through the same ingest: its image is stored before its span, and
/// served.
#[tokio::test]
async fn an_image_sent_over_grpc_is_stored_and_served() {
    use spanlens_core::otlp::proto::{ExportTraceServiceRequest, ExportTraceServiceResponse};
    let s = tokio::task::spawn_blocking(Server::start).await.unwrap();
    let image = png(30 * 1024, 5);
    let hash = content_hash(&image);
    let body = request(vec![span(
        "9a9a9a9a9a9a9a9a9a9a9a9a9a9a9a9a",
        1,
        None,
        "look",
        T0,
        (0, 100),
        vec![kv("gen_ai.prompt", json!(data_url(&image)))],
        None,
    )]);
    let req: ExportTraceServiceRequest = spanlens_core::otlp::decode_json(&body).unwrap();
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", s.bound.grpc))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = tonic::client::Grpc::new(channel);
    client.ready().await.unwrap();
    let codec =
        tonic_prost::ProstCodec::<ExportTraceServiceRequest, ExportTraceServiceResponse>::default();
    let path = http::uri::PathAndQuery::from_static(spanlens_server::grpc::EXPORT_PATH);
    let resp = client
        .unary(tonic::Request::new(req), path, codec)
        .await
        .unwrap();
    assert_eq!(resp.into_inner().partial_success, None);
    let (status, bytes) = tokio::task::spawn_blocking(move || {
        let (status, bytes, _) = s.send("GET", &format!("/api/v1/media/{hash}"), &[], b"");
        drop(s);
        (status, bytes)
    })
    .await
    .unwrap();
    assert_eq!(status, 200);
    assert_eq!(bytes, image);
}

/// A project's redaction runs before its media are stored: a reference it removes leaves its
/// blob unstored (nothing would ever show or free it).
#[test]
fn a_reference_redacted_away_leaves_its_blob_unstored() {
    let server = Server::start();
    let rule = json!({"builtin": false, "drop_attributes": [], "keep_attributes": [],
        "rules": [{"name": "media", "pattern": "spanlens-media:sha256:[0-9a-f]{64}"}]});
    let (status, body) = server.json("PUT", "/api/v1/projects/masked/redaction", &[], &rule);
    assert_eq!(status, 200, "{body}");
    let image = png(20 * 1024, 9);
    for project in ["masked", "plain"] {
        let body = request(vec![span(
            "7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d",
            1,
            None,
            "look",
            T0,
            (0, 100),
            vec![kv("input.value", json!(data_url(&image)))],
            None,
        )]);
        let (status, _, _) = server.post("/v1/traces", &[JSON, ("x-project-name", project)], &body);
        assert_eq!(status, 200);
    }
    let (_, detail) = server.get("/api/v1/traces/7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d?project=masked");
    assert!(detail.to_string().contains("[REDACTED:media]"), "{detail}");
    let (_, masked) = server.get("/api/v1/stats?project=masked");
    assert_eq!(masked["media_blobs"], 0, "{masked}");
    let (_, plain) = server.get("/api/v1/stats?project=plain");
    assert_eq!(plain["media_blobs"], 1, "{plain}");
}
