//! Fuzz-style property tests: no input, however broken, makes a decoder or normaliser panic.
//! Random bytes, random JSON documents, and every truncation and random mutation of real
//! fixtures go through all three input formats.

use proptest::prelude::*;
use prost::Message;
use serde_json::Value;
use spanlens_core::{normalize, otlp, InputFormat, NormalizeOptions, PriceCatalog};

const FORMATS: [InputFormat; 3] = [
    InputFormat::OtlpProtobuf,
    InputFormat::OtlpJson,
    InputFormat::OpenAiAgents,
];

fn run_all(bytes: &[u8]) {
    let opts = NormalizeOptions::default();
    for f in FORMATS {
        // Errors are expected; panics are the failure this test looks for.
        let _ = normalize(f, bytes, &opts, PriceCatalog::builtin());
    }
    let _ = spanlens_core::detect_json_format(bytes);
    // The same bytes as an OTLP logs request: decoded, turned into GenAI events and merged
    // into a span the way a read merges them.
    for req in [
        otlp::logs::decode_protobuf(bytes),
        otlp::logs::decode_json(bytes),
    ]
    .into_iter()
    .flatten()
    {
        let out = otlp::logs::to_events(req, &opts);
        let _ = out.rejected.message();
        let mut span = spanlens_core::Span::default();
        let events = out.events.into_iter().map(|e| e.event).collect();
        spanlens_core::conventions::merge_log_events(&mut span, events);
    }
}

/// Every JSON fixture in tests/fixtures, plus the protobuf encoding of each OTLP one.
fn seeds() -> Vec<Vec<u8>> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let mut out = vec![
        SMALL_OTLP.as_bytes().to_vec(),
        SMALL_LOGS.as_bytes().to_vec(),
    ];
    for entry in std::fs::read_dir(dir).expect("fixtures dir").flatten() {
        let p = entry.path();
        if p.extension().and_then(|e| e.to_str()) == Some("json") {
            out.push(std::fs::read(&p).expect("fixture readable"));
        }
    }
    let protos: Vec<Vec<u8>> = out
        .iter()
        .filter_map(|b| otlp::decode_json(b).ok())
        .map(|r| r.encode_to_vec())
        .chain(std::iter::once(
            otlp::logs::decode_json(SMALL_LOGS.as_bytes())
                .expect("the logs seed decodes")
                .encode_to_vec(),
        ))
        .collect();
    out.extend(protos);
    out
}

const SMALL_OTLP: &str = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"svc"}}]},
"scopeSpans":[{"scope":{"name":"s"},"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",
"name":"chat gpt-4o","kind":3,"startTimeUnixNano":"1700000000000000000","endTimeUnixNano":"1700000001000000000",
"attributes":[{"key":"gen_ai.operation.name","value":{"stringValue":"chat"}},
{"key":"gen_ai.request.model","value":{"stringValue":"gpt-4o"}},
{"key":"gen_ai.usage.input_tokens","value":{"intValue":"100"}},
{"key":"llm.input_messages.0.message.content","value":{"stringValue":"hi"}},
{"key":"langfuse.observation.usage_details","value":{"stringValue":"{\"input\":1}"}},
{"key":"nested","value":{"arrayValue":{"values":[{"kvlistValue":{"values":[{"key":"k","value":{"doubleValue":1.5}}]}}]}}}],
"events":[{"timeUnixNano":"1700000000500000000","name":"exception","attributes":[{"key":"exception.type","value":{"stringValue":"E"}}]}],
"status":{"code":2}}]}]}]}"#;

const SMALL_LOGS: &str = r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[
{"timeUnixNano":"1700000000500000000","eventName":"gen_ai.client.inference.operation.details",
"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","attributes":[
{"key":"gen_ai.request.model","value":{"stringValue":"gpt-4o"}},
{"key":"gen_ai.usage.input_tokens","value":{"intValue":"100"}},
{"key":"gen_ai.input.messages","value":{"stringValue":"[{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"hi\"}]}]"}}]},
{"eventName":"gen_ai.choice","traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",
"body":{"kvlistValue":{"values":[{"key":"index","value":{"intValue":0}},{"key":"message","value":{"kvlistValue":{"values":[{"key":"content","value":{"stringValue":"yo"}}]}}}]}}},
{"attributes":[{"key":"event.name","value":{"stringValue":"gen_ai.evaluation.result"}},
{"key":"gen_ai.evaluation.name","value":{"stringValue":"r"}}],"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174"}]}]}]}"#;

#[test]
fn every_truncation_of_every_fixture_is_handled() {
    for seed in seeds() {
        // Every cut in the first 2 KiB (headers, first span), then a prime stride through the rest:
        // every structural position is still hit in some fixture, and debug builds stay quick.
        let cuts = (0..seed.len().min(2048)).chain((2048..seed.len()).step_by(61));
        for cut in cuts {
            run_all(&seed[..cut]);
        }
    }
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| Value::Number(n.into())),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null)),
        prop_oneof![
            "[a-zA-Z_.]{0,12}",
            Just("5b8efff798038103d269b633813fc60c".to_string()),
            Just("eee19b7ec3c1b174".to_string()),
            Just("2025-01-01T00:00:00Z".to_string()),
            Just("trace_0123456789abcdef0123456789abcdef".to_string()),
        ]
        .prop_map(Value::String),
    ];
    let keys = prop_oneof![
        Just("resourceSpans".to_string()),
        Just("scopeSpans".to_string()),
        Just("spans".to_string()),
        Just("traceId".to_string()),
        Just("spanId".to_string()),
        Just("parentSpanId".to_string()),
        Just("attributes".to_string()),
        Just("key".to_string()),
        Just("value".to_string()),
        Just("stringValue".to_string()),
        Just("intValue".to_string()),
        Just("arrayValue".to_string()),
        Just("kvlistValue".to_string()),
        Just("values".to_string()),
        Just("startTimeUnixNano".to_string()),
        Just("data".to_string()),
        Just("object".to_string()),
        Just("id".to_string()),
        Just("trace_id".to_string()),
        Just("span_data".to_string()),
        Just("type".to_string()),
        Just("usage".to_string()),
        Just("started_at".to_string()),
        "[a-z]{1,6}",
    ];
    leaf.prop_recursive(6, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((keys.clone(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        run_all(&bytes);
    }

    #[test]
    fn random_json_never_panics(v in arb_json()) {
        run_all(v.to_string().as_bytes());
        let wrapped = serde_json::json!({"resourceSpans": [{"scopeSpans": [{"spans": [v.clone()]}]}], "data": [v]});
        run_all(wrapped.to_string().as_bytes());
    }

    #[test]
    fn mutated_fixtures_never_panic(seed_idx in 0usize..64, flips in prop::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
        let seeds = seeds();
        let mut bytes = seeds[seed_idx % seeds.len()].clone();
        for (pos, val) in flips {
            if !bytes.is_empty() {
                let i = pos % bytes.len();
                bytes[i] = val;
            }
        }
        run_all(&bytes);
    }
}
