//! Writes the seed inputs of every target into `corpus/<target>/seed-*` from the fixtures of
//! `crates/spanlens-core/tests/fixtures/` and a few small hand-made requests:
//!
//! ```sh
//! cargo run --manifest-path fuzz/Cargo.toml --no-default-features --example seed
//! ```
//!
//! Normalisation and ingest inputs start with their mode byte (see `spanlens_fuzz::Mode`):
//! `0` a raw body, `1` a request built from the bytes, `2` gzip on the wire, `4` gRPC unframed.

use prost::Message;
use std::io::Write;
use std::path::{Path, PathBuf};

const SMALL_OTLP: &str = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"svc"}}]},"scopeSpans":[{"scope":{"name":"s"},"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"chat gpt-4o","kind":3,"startTimeUnixNano":"1700000000000000000","endTimeUnixNano":"1700000001000000000","attributes":[{"key":"gen_ai.operation.name","value":{"stringValue":"chat"}},{"key":"gen_ai.request.model","value":{"stringValue":"gpt-4o"}},{"key":"gen_ai.usage.input_tokens","value":{"intValue":"100"}},{"key":"gen_ai.usage.output_tokens","value":{"intValue":20}},{"key":"temperature","value":{"doubleValue":"NaN"}},{"key":"blob","value":{"bytesValue":"AAEC"}}],"events":[{"timeUnixNano":"1700000000500000000","name":"gen_ai.first_token"}],"status":{"code":"STATUS_CODE_ERROR","message":"boom"}}]}]}]}"#;

const SNAKE_OTLP: &str = r#"{"resource_spans":[{"instrumentation_library_spans":[{"instrumentation_library":{"name":"old"},"spans":[{"trace_id":"5B8EFFF798038103D269B633813FC60C","span_id":"EEE19B7EC3C1B174","parent_span_id":"0102030405060708","name":"tool","kind":"SPAN_KIND_INTERNAL","start_time_unix_nano":1700000000000000000,"end_time_unix_nano":"1700000000000000001","attributes":[{"key":"openinference.span.kind","value":{"string_value":"TOOL"}},{"key":"tool.name","value":{"string_value":"search"}},{"key":"nested","value":{"kvlist_value":{"values":[{"key":"a","value":{"array_value":{"values":[{"int_value":"1"},{}]}}}]}}}]}]}]}]}"#;

const SMALL_AGENTS: &str = r#"{"data":[{"object":"trace","id":"trace_0123456789abcdef0123456789abcdef","workflow_name":"wf","group_id":"g1","metadata":{"user_id":"u1"}},{"object":"trace.span","id":"span_0123456789abcdef01234567","trace_id":"trace_0123456789abcdef0123456789abcdef","parent_id":null,"started_at":"2025-06-01T10:00:00.000000+00:00","ended_at":"2025-06-01T10:00:01.500000+00:00","span_data":{"type":"generation","model":"gpt-4o","usage":{"input_tokens":10,"output_tokens":5},"input":[{"role":"user","content":"hi"}],"output":[{"role":"assistant","content":"hello"}]},"error":null},{"object":"trace.span","id":"span_1123456789abcdef01234567","trace_id":"trace_0123456789abcdef0123456789abcdef","started_at":"2025-06-01T10:00:00Z","span_data":{"type":"function","name":"lookup","input":"{\"q\":1}","output":"42"},"error":{"message":"RateLimitError","data":{"code":429}}}]}"#;

fn fixtures() -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/spanlens-core/tests/fixtures");
    let mut out = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fixtures")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    entries.sort();
    for p in entries {
        let stem = p.file_stem().unwrap().to_string_lossy().into_owned();
        out.push((stem, std::fs::read(&p).expect("fixture")));
    }
    out
}

/// Deterministic filler bytes for the built-request seeds.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) as u8
        })
        .collect()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn with_mode(mode: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![mode];
    v.extend_from_slice(body);
    v
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let put = |target: &str, name: &str, data: &[u8]| {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("seed-{name}")), data).unwrap();
    };
    let mut otlp_json: Vec<(String, Vec<u8>)> = vec![
        ("small_otlp".into(), SMALL_OTLP.as_bytes().to_vec()),
        ("snake_otlp".into(), SNAKE_OTLP.as_bytes().to_vec()),
        ("empty_request".into(), b"{\"resourceSpans\":[]}".to_vec()),
    ];
    let mut agents: Vec<(String, Vec<u8>)> = vec![
        ("small_agents".into(), SMALL_AGENTS.as_bytes().to_vec()),
        ("empty_data".into(), b"{\"data\":[]}".to_vec()),
    ];
    for (name, body) in fixtures() {
        if name.starts_with("otlp_") {
            otlp_json.push((name, body));
        } else {
            agents.push((name, body));
        }
    }
    let otlp_proto: Vec<(String, Vec<u8>)> = otlp_json
        .iter()
        .map(|(n, b)| {
            let req = spanlens_core::otlp::decode_json(b).expect("seed decodes");
            (n.clone(), req.encode_to_vec())
        })
        .collect();

    for (n, b) in &otlp_proto {
        put("decode_otlp_proto", n, b);
        put("normalize_otlp_proto", n, &with_mode(0, b));
        put("ingest_otlp_proto", n, &with_mode(0, b));
        put("ingest_grpc", n, &with_mode(0, b));
    }
    for (n, b) in &otlp_json {
        put("decode_otlp_json", n, b);
        put("normalize_otlp_json", n, &with_mode(0, b));
        put("ingest_otlp_json", n, &with_mode(0, b));
    }
    for (n, b) in &agents {
        put("decode_agents", n, b);
        put("normalize_agents", n, &with_mode(0, b));
        put("ingest_agents", n, &with_mode(0, b));
    }
    // The wire variants: gzip on HTTP, gzip and no framing on gRPC.
    let (_, small_proto) = &otlp_proto[0];
    put(
        "ingest_otlp_proto",
        "small_otlp_gzip",
        &with_mode(2, small_proto),
    );
    put(
        "ingest_otlp_json",
        "small_otlp_gzip",
        &with_mode(2, SMALL_OTLP.as_bytes()),
    );
    put(
        "ingest_agents",
        "small_agents_gzip",
        &with_mode(2, SMALL_AGENTS.as_bytes()),
    );
    put("ingest_grpc", "small_otlp_gzip", &with_mode(2, small_proto));
    put(
        "ingest_grpc",
        "small_otlp_unframed",
        &with_mode(4, small_proto),
    );
    // Built requests from filler bytes.
    for i in 0..4u64 {
        let bytes = noise(i, 512 << i);
        for (target, mode) in [
            ("normalize_otlp_proto", 1),
            ("normalize_otlp_json", 1),
            ("normalize_agents", 1),
            ("ingest_otlp_proto", 1 | ((i as u8 & 1) << 1)),
            ("ingest_otlp_json", 1 | ((i as u8 & 1) << 1)),
            ("ingest_agents", 1 | ((i as u8 & 1) << 1)),
            ("ingest_grpc", 1 | ((i as u8 & 1) << 1)),
        ] {
            put(target, &format!("built-{i}"), &with_mode(mode, &bytes));
        }
    }
    // The gzip decoder: first byte picks the Content-Encoding (0 gzip, 1 x-gzip, 3 identity,
    // 5 br, 0x80 none).
    put(
        "decode_gzip",
        "gzip_small_otlp",
        &with_mode(0, &gzip(SMALL_OTLP.as_bytes())),
    );
    let mut two = gzip(b"first member,");
    two.extend(gzip(b" second member"));
    put("decode_gzip", "x_gzip_two_members", &with_mode(1, &two));
    put("decode_gzip", "identity", &with_mode(3, b"plain body"));
    put("decode_gzip", "br", &with_mode(5, b"whatever"));
    put("decode_gzip", "no_header", &with_mode(0x80, b"plain"));
    put(
        "decode_gzip",
        "truncated_gzip",
        &with_mode(0, &gzip(b"hello")[..12]),
    );
    println!("seeds written under {}", root.display());
}
