//! OTLP protobuf cross-checks.
//!
//! 1. Every `tests/fixtures/otlp_*.json` request, re-encoded as protobuf with this crate's own
//!    message types, must normalise to exactly the same canonical spans as the JSON body.
//! 2. Wire compatibility with an independent implementation (`opentelemetry-proto`, the OTel Rust
//!    project's generated types): the fixtures survive a round trip through its decoder and
//!    encoder and its OTLP/JSON serialiser, and a request built field by field with its types
//!    (every `AnyValue` kind, events, links, status, flags, dropped counts) decodes here with
//!    every field intact.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest as OtelRequest;
use opentelemetry_proto::tonic::common::v1 as oc;
use opentelemetry_proto::tonic::resource::v1::Resource as OtelResource;
use opentelemetry_proto::tonic::trace::v1 as ot;
use prost::Message;
use serde_json::{json, Value};
use spanlens_core::otlp::proto::{self as sp, any_value::Value as SV};
use spanlens_core::otlp::{decode_json, decode_protobuf};
use spanlens_core::{
    normalize, CostSource, InputFormat, NanoUsd, NormalizeOptions, PriceCatalog, Span, SpanKind,
    Status, Timestamp,
};
use std::path::PathBuf;

const FIXTURES: [&str; 4] = [
    "otlp_genai",
    "otlp_openinference",
    "otlp_traceloop",
    "otlp_langfuse",
];

fn fixture(stem: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(format!("{stem}.json"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn opts() -> NormalizeOptions {
    NormalizeOptions {
        received_at: Timestamp(1_764_003_600_000_000_000),
        default_project: Some("default".into()),
    }
}

fn run(format: InputFormat, body: &[u8]) -> Vec<Span> {
    let out = normalize(format, body, &opts(), PriceCatalog::builtin())
        .unwrap_or_else(|e| panic!("{format:?} body refused: {e}"));
    assert!(out.rejected.is_empty(), "{format:?}: {:?}", out.rejected);
    out.spans
}

/// Asserts two canonical outputs are identical, naming the first differing span.
fn assert_same_spans(what: &str, want: &[Span], got: &[Span]) {
    assert_eq!(want.len(), got.len(), "{what}: span count");
    for (i, (w, g)) in want.iter().zip(got).enumerate() {
        if w != g {
            let wj = serde_json::to_string_pretty(w).unwrap();
            let gj = serde_json::to_string_pretty(g).unwrap();
            panic!(
                "{what}: span #{i} ({:?}) differs\nJSON path:\n{wj}\nprotobuf path:\n{gj}",
                w.name
            );
        }
    }
}

#[test]
fn fixtures_normalise_identically_over_json_and_protobuf() {
    for stem in FIXTURES {
        let body = fixture(stem);
        let req = decode_json(&body).unwrap_or_else(|e| panic!("{stem}: {e}"));
        let wire = req.encode_to_vec();
        assert_eq!(
            decode_protobuf(&wire).expect("own encoding decodes"),
            req,
            "{stem}: protobuf round trip"
        );
        let from_json = run(InputFormat::OtlpJson, &body);
        let from_proto = run(InputFormat::OtlpProtobuf, &wire);
        assert!(!from_json.is_empty(), "{stem}: no spans");
        assert_same_spans(stem, &from_json, &from_proto);
    }
}

#[test]
fn fixtures_survive_the_independent_implementation() {
    for stem in FIXTURES {
        let body = fixture(stem);
        let ours = decode_json(&body).unwrap_or_else(|e| panic!("{stem}: {e}"));

        // Our encoding, decoded by opentelemetry-proto.
        let theirs = OtelRequest::decode(ours.encode_to_vec().as_slice())
            .unwrap_or_else(|e| panic!("{stem}: opentelemetry-proto cannot decode our bytes: {e}"));
        let (our_spans, their_spans): (usize, usize) = (
            ours.resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .map(|s| s.spans.len())
                .sum(),
            theirs
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .map(|s| s.spans.len())
                .sum(),
        );
        assert_eq!(our_spans, their_spans, "{stem}: span count");
        let first = &theirs.resource_spans[0].scope_spans[0].spans[0];
        let our_first = &ours.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(first.trace_id, our_first.trace_id, "{stem}");
        assert_eq!(first.start_time_unix_nano, our_first.start_time_unix_nano);
        assert_eq!(first.attributes.len(), our_first.attributes.len());

        // Their protobuf encoding, decoded by us: the same request.
        let their_wire = theirs.encode_to_vec();
        assert_eq!(
            decode_protobuf(&their_wire).expect("their encoding decodes"),
            ours,
            "{stem}: request after a trip through opentelemetry-proto's protobuf"
        );
        // Their OTLP/JSON serialisation, decoded by us: the same request again.
        let their_json = serde_json::to_vec(&theirs).expect("opentelemetry-proto serialises");
        assert_eq!(
            decode_json(&their_json).unwrap_or_else(|e| panic!("{stem}: {e}")),
            ours,
            "{stem}: request after a trip through opentelemetry-proto's JSON"
        );
        assert_same_spans(
            stem,
            &run(InputFormat::OtlpJson, &body),
            &run(InputFormat::OtlpProtobuf, &their_wire),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// A request built with opentelemetry-proto's types, every field set
// ---------------------------------------------------------------------------------------------

const TRACE: [u8; 16] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];
const SPAN: [u8; 8] = [0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8];
const ROOT: [u8; 8] = [0xb1, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8];
const LINK_TRACE: [u8; 16] = [0xff; 16];
const LINK_SPAN: [u8; 8] = [0xee; 8];
const START: u64 = 1_764_000_000_123_456_789; // 2025-11-24T16:00:00.123456789Z
const BYTES: [u8; 4] = [0x00, 0xff, 0x10, 0x80];

fn ov(v: oc::any_value::Value) -> Option<oc::AnyValue> {
    Some(oc::AnyValue { value: Some(v) })
}

fn okv(key: &str, v: oc::any_value::Value) -> oc::KeyValue {
    oc::KeyValue {
        key: key.into(),
        value: ov(v),
        ..Default::default()
    }
}

fn ostr(s: &str) -> oc::any_value::Value {
    oc::any_value::Value::StringValue(s.into())
}

fn otel_request() -> OtelRequest {
    use oc::any_value::Value as V;
    let attributes = vec![
        okv("str", ostr("héllo ✓")),
        okv("bool", V::BoolValue(true)),
        okv("int", V::IntValue(-42)),
        okv("big", V::IntValue(i64::MAX)),
        okv("dbl", V::DoubleValue(3.25)),
        okv("neg_dbl", V::DoubleValue(-0.5)),
        okv("bytes", V::BytesValue(BYTES.to_vec())),
        okv(
            "arr",
            V::ArrayValue(oc::ArrayValue {
                values: vec![
                    oc::AnyValue {
                        value: Some(ostr("a")),
                    },
                    oc::AnyValue {
                        value: Some(V::IntValue(1)),
                    },
                    oc::AnyValue {
                        value: Some(V::DoubleValue(2.5)),
                    },
                    oc::AnyValue {
                        value: Some(V::BoolValue(false)),
                    },
                    oc::AnyValue {
                        value: Some(V::ArrayValue(oc::ArrayValue {
                            values: vec![oc::AnyValue {
                                value: Some(ostr("nested")),
                            }],
                        })),
                    },
                    oc::AnyValue {
                        value: Some(V::KvlistValue(oc::KeyValueList {
                            values: vec![okv("k", ostr("v"))],
                        })),
                    },
                ],
            }),
        ),
        okv(
            "kv",
            V::KvlistValue(oc::KeyValueList {
                values: vec![
                    okv("inner", ostr("x")),
                    okv(
                        "list",
                        V::ArrayValue(oc::ArrayValue {
                            values: vec![
                                oc::AnyValue {
                                    value: Some(V::IntValue(1)),
                                },
                                oc::AnyValue {
                                    value: Some(V::IntValue(2)),
                                },
                            ],
                        }),
                    ),
                    okv(
                        "deep",
                        V::KvlistValue(oc::KeyValueList {
                            values: vec![okv("z", V::BoolValue(true))],
                        }),
                    ),
                    okv("blob", V::BytesValue(vec![1, 2, 3])),
                ],
            }),
        ),
        oc::KeyValue {
            key: "empty".into(),
            value: Some(oc::AnyValue { value: None }),
            ..Default::default()
        },
        okv("gen_ai.operation.name", ostr("chat")),
        okv("gen_ai.provider.name", ostr("openai")),
        okv("gen_ai.request.model", ostr("gpt-4o-mini")),
        okv("gen_ai.usage.input_tokens", V::IntValue(1000)),
        okv("gen_ai.usage.output_tokens", V::IntValue(200)),
    ];
    let child = ot::Span {
        trace_id: TRACE.to_vec(),
        span_id: SPAN.to_vec(),
        trace_state: "vendor=1".into(),
        parent_span_id: ROOT.to_vec(),
        flags: 0x101,
        name: "chat gpt-4o-mini".into(),
        kind: ot::span::SpanKind::Client as i32,
        start_time_unix_nano: START,
        end_time_unix_nano: START + 1_500_000_000,
        attributes,
        dropped_attributes_count: 3,
        events: vec![
            ot::span::Event {
                time_unix_nano: START + 100_000_000,
                name: "retry".into(),
                attributes: vec![
                    okv("attempt", V::IntValue(2)),
                    okv("error", ostr("rate_limited")),
                    okv("backoff_ms", V::DoubleValue(250.5)),
                ],
                dropped_attributes_count: 1,
            },
            ot::span::Event {
                time_unix_nano: START + 1_400_000_000,
                name: "exception".into(),
                attributes: vec![
                    okv("exception.type", ostr("TimeoutError")),
                    okv("exception.message", ostr("read timed out")),
                    okv("exception.stacktrace", ostr("Traceback …\nTimeoutError")),
                ],
                dropped_attributes_count: 0,
            },
        ],
        dropped_events_count: 4,
        links: vec![ot::span::Link {
            trace_id: LINK_TRACE.to_vec(),
            span_id: LINK_SPAN.to_vec(),
            trace_state: "k=v".into(),
            attributes: vec![okv("link.kind", ostr("follows_from"))],
            dropped_attributes_count: 2,
            flags: 0x301,
        }],
        dropped_links_count: 5,
        status: Some(ot::Status {
            message: "boom".into(),
            code: ot::status::StatusCode::Error as i32,
        }),
    };
    let root = ot::Span {
        trace_id: TRACE.to_vec(),
        span_id: ROOT.to_vec(),
        name: "root".into(),
        kind: ot::span::SpanKind::Server as i32,
        start_time_unix_nano: START - 1_000,
        end_time_unix_nano: START + 2_000_000_000,
        status: Some(ot::Status {
            message: String::new(),
            code: ot::status::StatusCode::Ok as i32,
        }),
        ..Default::default()
    };
    OtelRequest {
        resource_spans: vec![ot::ResourceSpans {
            resource: Some(OtelResource {
                attributes: vec![
                    okv("service.name", ostr("crosscheck")),
                    okv("host.cpu.count", V::IntValue(8)),
                ],
                dropped_attributes_count: 7,
                ..Default::default()
            }),
            scope_spans: vec![ot::ScopeSpans {
                scope: Some(oc::InstrumentationScope {
                    name: "crosscheck.scope".into(),
                    version: "0.0.1".into(),
                    attributes: vec![okv("scope.attr", ostr("s"))],
                    dropped_attributes_count: 6,
                }),
                spans: vec![child, root],
                schema_url: "https://opentelemetry.io/schemas/1.37.0".into(),
            }],
            schema_url: "https://opentelemetry.io/schemas/1.38.0".into(),
        }],
    }
}

fn sv(v: SV) -> Option<sp::AnyValue> {
    Some(sp::AnyValue { value: Some(v) })
}

fn skv(key: &str, v: SV) -> sp::KeyValue {
    sp::KeyValue {
        key: key.into(),
        value: sv(v),
    }
}

fn sstr(s: &str) -> SV {
    SV::StringValue(s.into())
}

fn sany(v: SV) -> sp::AnyValue {
    sp::AnyValue { value: Some(v) }
}

#[test]
fn independent_encoder_every_field_decodes() {
    let wire = otel_request().encode_to_vec();
    let req = decode_protobuf(&wire).expect("opentelemetry-proto bytes decode");

    assert_eq!(req.resource_spans.len(), 1);
    let rs = &req.resource_spans[0];
    assert_eq!(rs.schema_url, "https://opentelemetry.io/schemas/1.38.0");
    let res = rs.resource.as_ref().expect("resource");
    assert_eq!(res.dropped_attributes_count, 7);
    assert_eq!(
        res.attributes,
        vec![
            skv("service.name", sstr("crosscheck")),
            skv("host.cpu.count", SV::IntValue(8)),
        ]
    );

    assert_eq!(rs.scope_spans.len(), 1);
    let ss = &rs.scope_spans[0];
    assert_eq!(ss.schema_url, "https://opentelemetry.io/schemas/1.37.0");
    let scope = ss.scope.as_ref().expect("scope");
    assert_eq!(scope.name, "crosscheck.scope");
    assert_eq!(scope.version, "0.0.1");
    assert_eq!(scope.attributes, vec![skv("scope.attr", sstr("s"))]);
    assert_eq!(scope.dropped_attributes_count, 6);

    assert_eq!(ss.spans.len(), 2);
    let s = &ss.spans[0];
    assert_eq!(s.trace_id, TRACE);
    assert_eq!(s.span_id, SPAN);
    assert_eq!(s.parent_span_id, ROOT);
    assert_eq!(s.trace_state, "vendor=1");
    assert_eq!(s.flags, 0x101);
    assert_eq!(s.name, "chat gpt-4o-mini");
    assert_eq!(s.kind, sp::SpanKind::Client as i32);
    assert_eq!(s.start_time_unix_nano, START);
    assert_eq!(s.end_time_unix_nano, START + 1_500_000_000);
    assert_eq!(s.dropped_attributes_count, 3);
    assert_eq!(s.dropped_events_count, 4);
    assert_eq!(s.dropped_links_count, 5);
    assert_eq!(
        s.status,
        Some(sp::Status {
            message: "boom".into(),
            code: sp::StatusCode::Error as i32,
        })
    );

    // Every AnyValue kind, nested arrays and maps, bytes, and a present-but-empty value.
    let want_attrs = vec![
        skv("str", sstr("héllo ✓")),
        skv("bool", SV::BoolValue(true)),
        skv("int", SV::IntValue(-42)),
        skv("big", SV::IntValue(i64::MAX)),
        skv("dbl", SV::DoubleValue(3.25)),
        skv("neg_dbl", SV::DoubleValue(-0.5)),
        skv("bytes", SV::BytesValue(BYTES.to_vec())),
        skv(
            "arr",
            SV::ArrayValue(sp::ArrayValue {
                values: vec![
                    sany(sstr("a")),
                    sany(SV::IntValue(1)),
                    sany(SV::DoubleValue(2.5)),
                    sany(SV::BoolValue(false)),
                    sany(SV::ArrayValue(sp::ArrayValue {
                        values: vec![sany(sstr("nested"))],
                    })),
                    sany(SV::KvlistValue(sp::KeyValueList {
                        values: vec![skv("k", sstr("v"))],
                    })),
                ],
            }),
        ),
        skv(
            "kv",
            SV::KvlistValue(sp::KeyValueList {
                values: vec![
                    skv("inner", sstr("x")),
                    skv(
                        "list",
                        SV::ArrayValue(sp::ArrayValue {
                            values: vec![sany(SV::IntValue(1)), sany(SV::IntValue(2))],
                        }),
                    ),
                    skv(
                        "deep",
                        SV::KvlistValue(sp::KeyValueList {
                            values: vec![skv("z", SV::BoolValue(true))],
                        }),
                    ),
                    skv("blob", SV::BytesValue(vec![1, 2, 3])),
                ],
            }),
        ),
        sp::KeyValue {
            key: "empty".into(),
            value: Some(sp::AnyValue { value: None }),
        },
        skv("gen_ai.operation.name", sstr("chat")),
        skv("gen_ai.provider.name", sstr("openai")),
        skv("gen_ai.request.model", sstr("gpt-4o-mini")),
        skv("gen_ai.usage.input_tokens", SV::IntValue(1000)),
        skv("gen_ai.usage.output_tokens", SV::IntValue(200)),
    ];
    assert_eq!(s.attributes, want_attrs);

    assert_eq!(s.events.len(), 2);
    let e = &s.events[0];
    assert_eq!(e.time_unix_nano, START + 100_000_000);
    assert_eq!(e.name, "retry");
    assert_eq!(e.dropped_attributes_count, 1);
    assert_eq!(
        e.attributes,
        vec![
            skv("attempt", SV::IntValue(2)),
            skv("error", sstr("rate_limited")),
            skv("backoff_ms", SV::DoubleValue(250.5)),
        ]
    );
    assert_eq!(s.events[1].name, "exception");
    assert_eq!(s.events[1].attributes.len(), 3);

    assert_eq!(s.links.len(), 1);
    let l = &s.links[0];
    assert_eq!(l.trace_id, LINK_TRACE);
    assert_eq!(l.span_id, LINK_SPAN);
    assert_eq!(l.trace_state, "k=v");
    assert_eq!(l.flags, 0x301);
    assert_eq!(l.dropped_attributes_count, 2);
    assert_eq!(l.attributes, vec![skv("link.kind", sstr("follows_from"))]);

    let root = &ss.spans[1];
    assert_eq!(root.span_id, ROOT);
    assert!(root.parent_span_id.is_empty());
    assert_eq!(root.kind, sp::SpanKind::Server as i32);
    assert_eq!(root.start_time_unix_nano, START - 1_000);
    assert_eq!(
        root.status.as_ref().map(|s| s.code),
        Some(sp::StatusCode::Ok as i32)
    );
    assert!(root.attributes.is_empty() && root.events.is_empty() && root.links.is_empty());

    // The independent JSON serialiser of the same request decodes to the same message.
    let their_json = serde_json::to_vec(&otel_request()).expect("serialises");
    assert_eq!(decode_json(&their_json).expect("their JSON decodes"), req);
    // And our own encoding is read back by the independent decoder unchanged.
    assert_eq!(
        OtelRequest::decode(req.encode_to_vec().as_slice()).expect("they decode our bytes"),
        otel_request()
    );
}

#[test]
fn independent_encoder_canonical_span() {
    let spans = run(InputFormat::OtlpProtobuf, &otel_request().encode_to_vec());
    assert_eq!(spans.len(), 2);
    let s = &spans[0];
    assert_eq!(s.trace_id.to_hex(), "0102030405060708090a0b0c0d0e0f10");
    assert_eq!(s.span_id.to_hex(), "a1a2a3a4a5a6a7a8");
    assert_eq!(
        s.parent_span_id.map(|p| p.to_hex()).as_deref(),
        Some("b1b2b3b4b5b6b7b8")
    );
    assert_eq!(s.name, "chat gpt-4o-mini");
    assert_eq!(s.start_time.to_rfc3339(), "2025-11-24T16:00:00.123456789Z");
    assert_eq!(s.duration_ns(), Some(1_500_000_000));
    assert_eq!(s.service.as_deref(), Some("crosscheck"));
    assert_eq!(s.project.as_deref(), Some("default"));
    assert_eq!(s.resource["host.cpu.count"], 8);

    // Status: OTel status wins for the message; the exception event supplies type and stack.
    assert_eq!(s.status, Status::Error);
    assert_eq!(s.status_message.as_deref(), Some("boom"));
    assert_eq!(s.error_type.as_deref(), Some("TimeoutError"));
    assert_eq!(s.error_stack.as_deref(), Some("Traceback …\nTimeoutError"));

    // Attribute values as canonical JSON: bytes → standard base64, kvlist → object, empty → null.
    let a = &s.attributes;
    assert_eq!(a["str"], "héllo ✓");
    assert_eq!(a["bool"], true);
    assert_eq!(a["int"], -42);
    assert_eq!(a["big"], json!(i64::MAX));
    assert_eq!(a["dbl"], 3.25);
    assert_eq!(a["neg_dbl"], -0.5);
    assert_eq!(a["bytes"], "AP8QgA==");
    assert_eq!(
        a["arr"],
        json!(["a", 1, 2.5, false, ["nested"], {"k": "v"}])
    );
    assert_eq!(
        a["kv"],
        json!({"inner": "x", "list": [1, 2], "deep": {"z": true}, "blob": "AQID"})
    );
    assert_eq!(a["empty"], Value::Null);
    assert_eq!(a["otel.span.kind"], "client");
    assert_eq!(a["otel.scope.name"], "crosscheck.scope");
    assert_eq!(a["otel.scope.version"], "0.0.1");

    // Events and links.
    assert_eq!(s.events.len(), 2);
    assert_eq!(s.events[0].name, "retry");
    assert_eq!(
        s.events[0].time.to_rfc3339(),
        "2025-11-24T16:00:00.223456789Z"
    );
    assert_eq!(
        Value::Object(s.events[0].attributes.clone().into_iter().collect()),
        json!({"attempt": 2, "error": "rate_limited", "backoff_ms": 250.5})
    );
    assert_eq!(s.links.len(), 1);
    assert_eq!(
        s.links[0].trace_id.to_hex(),
        "ffffffffffffffffffffffffffffffff"
    );
    assert_eq!(s.links[0].span_id.to_hex(), "eeeeeeeeeeeeeeee");
    assert_eq!(s.links[0].attributes["link.kind"], "follows_from");

    // GenAI attributes carried as int64 over the wire: an LLM span, priced.
    // gpt-4o-mini: 1000 × $0.15/M = 150_000 n$; 200 × $0.60/M = 120_000 n$; total 270_000 n$.
    assert_eq!(s.kind, SpanKind::Llm);
    let u = s.usage.as_ref().expect("usage");
    assert_eq!(
        (u.input_tokens, u.output_tokens, u.total_tokens),
        (1000, 200, 1200)
    );
    let c = s.cost.as_ref().expect("cost");
    assert_eq!(c.source, CostSource::Computed);
    assert_eq!(c.amounts.total, NanoUsd(270_000));

    let root = &spans[1];
    assert_eq!(root.parent_span_id, None);
    assert_eq!(root.status, Status::Ok);
    assert_eq!(root.attributes["otel.span.kind"], "server");
    assert_eq!(root.start_time.0, START - 1_000);
}
