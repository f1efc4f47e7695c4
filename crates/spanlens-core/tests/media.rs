//! Base64 media through `normalize`: taken out whole before payloads are cut, once per content
//! hash across a batch, with no trace of the base64 left in the stored span.

use base64::Engine as _;
use prost::Message as _;
use serde_json::{json, Value};
use spanlens_core::media::{media_ref, parse_ref, MediaBlob};
use spanlens_core::span::MAX_PAYLOAD_BYTES;
use spanlens_core::{normalize, InputFormat, NormalizeOptions, Normalized, PriceCatalog, Span};

fn opts() -> NormalizeOptions {
    NormalizeOptions {
        received_at: spanlens_core::Timestamp(1_764_003_600_000_000_000),
        default_project: None,
    }
}

/// A PNG-shaped blob: the real signature and an IHDR header, then `n` bytes in all of filler.
fn png(n: usize, seed: u8) -> Vec<u8> {
    let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    b.extend((0..n - b.len()).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)));
    b
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn attr(key: &str, value: &str) -> Value {
    json!({ "key": key, "value": { "stringValue": value } })
}

/// One turn of a chat: an OpenInference LLM span whose input is the request body as JSON text,
/// the image resent in it as an OpenAI data URL.
fn turn(i: u64, image: &[u8], question: &str) -> Value {
    let body = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": [
        {"type": "text", "text": question},
        {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{}", b64(image))}}
    ]}]});
    json!({
        "traceId": "4bf92f3577b34da6a3ce929d0e0e4736",
        "spanId": format!("{:016x}", i + 1),
        "name": "ChatCompletion",
        "startTimeUnixNano": (1_764_003_600_000_000_000u64 + i * 1_000_000_000).to_string(),
        "endTimeUnixNano": (1_764_003_600_500_000_000u64 + i * 1_000_000_000).to_string(),
        "attributes": [
            attr("openinference.span.kind", "LLM"),
            attr("llm.model_name", "gpt-4o"),
            attr("input.value", &body.to_string()),
            attr("input.mime_type", "application/json"),
            attr("output.value", "a cat"),
        ],
    })
}

fn request(spans: Vec<Value>) -> Vec<u8> {
    serde_json::to_vec(&json!({ "resourceSpans": [{
        "resource": { "attributes": [attr("service.name", "vision")] },
        "scopeSpans": [{ "spans": spans }]
    }]}))
    .unwrap()
}

fn run(format: InputFormat, body: &[u8]) -> Normalized {
    let out = normalize(format, body, &opts(), PriceCatalog::builtin()).unwrap();
    assert!(out.rejected.is_empty(), "{:?}", out.rejected);
    out
}

/// The image URL of the request body a span's input holds.
fn image_url(s: &Span) -> String {
    let input = s.input.as_ref().expect("input");
    assert!(!input.truncated, "the input was cut");
    input.value["messages"][0]["content"][1]["image_url"]["url"]
        .as_str()
        .expect("url")
        .to_string()
}

#[test]
fn a_two_megabyte_image_is_taken_whole_not_truncated() {
    let image = png(2 * 1024 * 1024, 7);
    let encoded = b64(&image);
    assert!(encoded.len() > MAX_PAYLOAD_BYTES * 10);
    let body = request(vec![turn(0, &image, "what is this?")]);
    let as_proto = spanlens_core::otlp::decode_json(&body)
        .unwrap()
        .encode_to_vec();
    for (format, body) in [
        (InputFormat::OtlpJson, body),
        (InputFormat::OtlpProtobuf, as_proto),
    ] {
        let out = run(format, &body);
        assert_eq!(out.spans.len(), 1);
        assert_eq!(out.media.len(), 1, "{format:?}");
        let blob: &MediaBlob = &out.media[0];
        assert_eq!(blob.mime, "image/png");
        assert_eq!(blob.bytes, image, "the image is whole");
        assert_eq!(blob.hash.len(), 64);
        let s = &out.spans[0];
        let url = image_url(s);
        assert_eq!(parse_ref(&url), Some(blob.hash.as_str()));
        assert!(s.truncated.is_empty(), "{:?}", s.truncated);
        let text = serde_json::to_string(s).unwrap();
        assert!(
            !text.contains(&encoded[..200]),
            "base64 left in the span's JSON"
        );
        assert!(text.len() < 16 * 1024, "span JSON is {} bytes", text.len());
        // The raw attribute holds the reference too, and the question survives.
        let raw = s.attributes["input.value"].as_str().unwrap();
        assert!(raw.contains(&media_ref(&blob.hash)));
        assert!(raw.contains("what is this?"));
        let back: Span = serde_json::from_str(&text).unwrap();
        assert_eq!(&back, s);
    }
}

#[test]
fn a_chat_resending_one_image_stores_it_once() {
    let image = png(200 * 1024, 1);
    let other = png(200 * 1024, 2);
    let body = request(vec![
        turn(0, &image, "what is this?"),
        turn(1, &image, "what colour is it?"),
        turn(2, &other, "and this one?"),
        turn(3, &image, "compare them"),
    ]);
    let out = run(InputFormat::OtlpJson, &body);
    assert_eq!(out.spans.len(), 4);
    assert_eq!(out.media.len(), 2, "one blob per distinct image");
    assert_eq!(out.media[0].bytes, image);
    assert_eq!(out.media[1].bytes, other);
    let urls: Vec<String> = out.spans.iter().map(image_url).collect();
    let first = media_ref(&out.media[0].hash);
    let second = media_ref(&out.media[1].hash);
    assert_eq!(urls, vec![first.clone(), first.clone(), second, first]);
    let spans_bytes: usize = out
        .spans
        .iter()
        .map(|s| serde_json::to_string(s).unwrap().len())
        .sum();
    let media_bytes: usize = out.media.iter().map(|m| m.bytes.len()).sum();
    // Inline, the four spans would hold four base64 copies (4 × 273 KB) in payload and attribute.
    assert!(spans_bytes < 32 * 1024, "spans are {spans_bytes} bytes");
    assert_eq!(media_bytes, 2 * 200 * 1024);
}

#[test]
fn openai_agents_exports_have_their_media_taken_too() {
    let image = png(400 * 1024, 3);
    let body = serde_json::to_vec(&json!({"data": [
        {"object": "trace", "id": "trace_4bf92f3577b34da6a3ce929d0e0e4736", "workflow_name": "vision"},
        {
            "object": "trace.span",
            "id": "span_5d6e7f8091a2b3c4d5e6f708",
            "trace_id": "trace_4bf92f3577b34da6a3ce929d0e0e4736",
            "parent_id": null,
            "started_at": "2025-03-14T10:15:02.107311+00:00",
            "ended_at": "2025-03-14T10:15:04.877940+00:00",
            "span_data": {
                "type": "generation",
                "model": "gpt-4o",
                "input": [{"role": "user", "content": [
                    {"type": "input_image", "image_url": format!("data:image/png;base64,{}", b64(&image))}
                ]}],
                "output": [{"role": "assistant", "content": "a cat"}]
            },
            "error": null
        }
    ]}))
    .unwrap();
    let out = run(InputFormat::OpenAiAgents, &body);
    assert_eq!(out.media.len(), 1);
    assert_eq!(out.media[0].bytes, image);
    let text = serde_json::to_string(&out.spans).unwrap();
    assert!(text.contains(&media_ref(&out.media[0].hash)));
    assert!(!text.contains(&b64(&image)[..200]));
    assert!(out
        .spans
        .iter()
        .all(|s| s.input.as_ref().is_none_or(|p| !p.truncated)));
}

#[test]
fn each_trace_names_the_media_it_refers_to_once() {
    let image = png(4 * 1024, 5);
    let other = png(4 * 1024, 6);
    let mut second = turn(1, &other, "and this?");
    second["traceId"] = json!("0af7651916cd43dd8448eb211c80319c");
    let mut third = turn(2, &image, "again");
    third["traceId"] = json!("0af7651916cd43dd8448eb211c80319c");
    let body = request(vec![
        turn(0, &image, "what is this?"),
        turn(3, &image, "still the same"),
        second,
        third,
    ]);
    let out = run(InputFormat::OtlpJson, &body);
    assert_eq!(out.media.len(), 2);
    let (a, b) = (out.media[0].hash.clone(), out.media[1].hash.clone());
    let first = spanlens_core::TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
    let later = spanlens_core::TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").unwrap();
    let mut want = vec![(first, a.clone()), (later, a), (later, b)];
    want.sort();
    assert_eq!(out.media_refs, want);
    // A batch without media names none.
    let plain = request(vec![json!({
        "traceId": "4bf92f3577b34da6a3ce929d0e0e4736", "spanId": "00000000000000aa", "name": "x",
        "startTimeUnixNano": "1764003600000000000", "endTimeUnixNano": "1764003601000000000"
    })]);
    assert!(run(InputFormat::OtlpJson, &plain).media_refs.is_empty());
}

#[test]
fn hashes_are_found_only_in_whole_references() {
    let h = "ab".repeat(32);
    let text = format!(
        "x spanlens-media:sha256:{h} y spanlens-media:sha256:{h}0 z spanlens-media:sha256:{}",
        &h[..10]
    );
    let found: Vec<&str> = spanlens_core::media::hashes_in(&text).collect();
    assert_eq!(found, vec![h.as_str()]);
}
