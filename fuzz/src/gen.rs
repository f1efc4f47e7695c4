//! Structured inputs: OTLP requests and OpenAI Agents exports built from fuzzer bytes.
//!
//! Raw mutation of a protobuf or JSON body mostly produces something the decoder refuses, so
//! the normalisation and ingest targets spend most of their inputs building a well-formed
//! request instead: the fuzzer's bytes choose the shape (how many resources, spans, events),
//! the attribute keys (from the conventions Spanlens reads), the ids (from a small pool, so
//! spans form trees, cycles and duplicates) and the values (from boundary values and free
//! text). Every choice is a read from [`Unstructured`], so the same bytes always build the same
//! request and libFuzzer's mutations move through the space of requests.

use arbitrary::{Result, Unstructured};
use serde_json::{json, Map, Number, Value};
use spanlens_core::otlp::proto::{self, any_value::Value as V};

/// Attribute keys of the conventions Spanlens maps (GenAI, OpenInference, OpenLLMetry,
/// Langfuse, its own), and a few that nothing maps.
const KEYS: &[&str] = &[
    "service.name",
    "openinference.project.name",
    "spanlens.project",
    "langfuse.project.name",
    "gen_ai.operation.name",
    "gen_ai.system",
    "gen_ai.provider.name",
    "gen_ai.request.model",
    "gen_ai.response.model",
    "gen_ai.request.temperature",
    "gen_ai.request.max_tokens",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.prompt_tokens",
    "gen_ai.usage.completion_tokens",
    "gen_ai.usage.total_tokens",
    "gen_ai.usage.cache_read_input_tokens",
    "gen_ai.usage.cache_creation_input_tokens",
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_creation.input_tokens",
    "gen_ai.usage.input_tokens.cached",
    "gen_ai.usage.input_tokens.cache_write",
    "gen_ai.usage.output_tokens.reasoning",
    "gen_ai.usage.reasoning_tokens",
    "gen_ai.usage.reasoning.output_tokens",
    "gen_ai.response.finish_reasons",
    "gen_ai.response.time_to_first_token",
    "gen_ai.response.time_to_first_chunk",
    "gen_ai.prompt",
    "gen_ai.completion",
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.system_instructions",
    "gen_ai.tool.name",
    "gen_ai.tool.call.id",
    "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result",
    "gen_ai.tool.description",
    "gen_ai.agent.name",
    "gen_ai.conversation.id",
    "session.id",
    "user.id",
    "enduser.id",
    "error.type",
    "error.message",
    "exception.type",
    "exception.message",
    "exception.stacktrace",
    "openinference.span.kind",
    "llm.model_name",
    "llm.provider",
    "llm.system",
    "llm.request.model",
    "llm.response.model",
    "llm.request.type",
    "llm.user",
    "llm.invocation_parameters",
    "llm.finish_reason",
    "llm.token_count.prompt",
    "llm.token_count.completion",
    "llm.token_count.total",
    "llm.token_count.prompt_details.cache_read",
    "llm.token_count.prompt_details.cache_write",
    "llm.token_count.prompt_details.audio",
    "llm.token_count.completion_details.reasoning",
    "llm.token_count.completion_details.audio",
    "llm.usage.prompt_tokens",
    "llm.usage.completion_tokens",
    "llm.usage.total_tokens",
    "llm.usage.cache_read_input_tokens",
    "llm.usage.cache_creation_input_tokens",
    "llm.usage.reasoning_tokens",
    "llm.cost.total",
    "llm.cost.prompt",
    "llm.cost.completion",
    "llm.cost.prompt_details.input",
    "llm.cost.prompt_details.cache_read",
    "llm.cost.prompt_details.cache_write",
    "llm.cost.completion_details.output",
    "llm.cost.completion_details.reasoning",
    "llm.prompt_template.template",
    "llm.prompt_template.variables",
    "llm.prompt_template.version",
    "embedding.model_name",
    "input.value",
    "input.mime_type",
    "output.value",
    "output.mime_type",
    "tool.name",
    "tool.id",
    "tool.description",
    "tag.tags",
    "metadata",
    "agent.name",
    "traceloop.span.kind",
    "traceloop.entity.name",
    "traceloop.entity.input",
    "traceloop.entity.output",
    "traceloop.prompt.key",
    "traceloop.prompt.template",
    "traceloop.prompt.version",
    "traceloop.association.properties.session_id",
    "traceloop.prompt.template_variables.city",
    "langfuse.observation.type",
    "langfuse.observation.level",
    "langfuse.observation.status_message",
    "langfuse.observation.input",
    "langfuse.observation.output",
    "langfuse.observation.metadata",
    "langfuse.observation.model.name",
    "langfuse.observation.model.parameters",
    "langfuse.observation.usage_details",
    "langfuse.observation.cost_details",
    "langfuse.observation.completion_start_time",
    "langfuse.observation.prompt.name",
    "langfuse.observation.prompt.version",
    "langfuse.trace.tags",
    "langfuse.trace.metadata",
    "langfuse.trace.metadata.tenant",
    "langfuse.session.id",
    "langfuse.user.id",
    "langfuse.environment",
    "langfuse.release",
    "spanlens.span.kind",
    "spanlens.agent.name",
    "spanlens.tags",
    "spanlens.metadata.tenant",
    "spanlens.items",
    "items.count",
    "spanlens.first_token",
    "spanlens.tool.retry_count",
    "spanlens.usage.cache_write_1h_tokens",
    "spanlens.ratelimit.requests.limit",
    "spanlens.ratelimit.requests.remaining",
    "spanlens.ratelimit.requests.reset",
    "spanlens.ratelimit.tokens.limit",
    "spanlens.ratelimit.tokens.remaining",
    "spanlens.ratelimit.tokens.reset",
    "spanlens.ratelimit.input_tokens.reset",
    "spanlens.ratelimit.output_tokens.remaining",
    "spanlens.ratelimit.retry_after_ms",
    "retry.attempt",
    "retry.attempts",
    "retry.backoff_ms",
    "retry.outcome",
    "retry.recovery_ms",
    "retry.retry_after_ms",
    "retry.stop_reason",
    "retry.succeeded",
    "otel.span.kind",
    "otel.scope.name",
    "acme.flag",
    "",
];

/// Keys with a message or part index in them: `{}` is replaced by a small number.
const INDEXED_KEYS: &[&str] = &[
    "llm.input_messages.{}.message.role",
    "llm.input_messages.{}.message.content",
    "llm.input_messages.{}.message.name",
    "llm.input_messages.{}.message.tool_call_id",
    "llm.input_messages.{}.message.contents.0.message_content.text",
    "llm.input_messages.{}.message.tool_calls.0.tool_call.function.name",
    "llm.input_messages.{}.message.tool_calls.0.tool_call.function.arguments",
    "llm.input_messages.{}.message.tool_calls.0.tool_call.id",
    "llm.output_messages.{}.message.role",
    "llm.output_messages.{}.message.content",
    "llm.output_messages.{}.message.tool_calls.{}.tool_call.function.name",
    "gen_ai.prompt.{}.role",
    "gen_ai.prompt.{}.content",
    "gen_ai.prompt.{}.tool_calls.{}.name",
    "gen_ai.completion.{}.role",
    "gen_ai.completion.{}.content",
    "gen_ai.completion.{}.finish_reason",
    "gen_ai.completion.{}.tool_calls.{}.arguments",
    "llm.tools.{}.tool.json_schema",
    "retrieval.documents.{}.document.content",
];

/// Strings that mean something to some convention: kinds, providers, models, mime types,
/// finish reasons, times, JSON documents the conventions parse out of string attributes.
const WORDS: &[&str] = &[
    "chat",
    "text_completion",
    "embeddings",
    "execute_tool",
    "invoke_agent",
    "create_agent",
    "LLM",
    "AGENT",
    "TOOL",
    "CHAIN",
    "RETRIEVER",
    "EMBEDDING",
    "RERANKER",
    "GUARDRAIL",
    "EVALUATOR",
    "workflow",
    "task",
    "agent",
    "tool",
    "generation",
    "span",
    "event",
    "llm",
    "pipeline",
    "openai",
    "anthropic",
    "aws.bedrock",
    "gcp.vertex_ai",
    "gcp.gemini",
    "azure.ai.openai",
    "mistral_ai",
    "x.ai",
    "gpt-4o",
    "gpt-4o-2024-08-06",
    "gpt-4o-mini",
    "o3",
    "o1-mini",
    "gpt-5",
    "claude-sonnet-4-20250514",
    "us.anthropic.claude-sonnet-4-20250514-v1:0",
    "claude-3-5-haiku-latest",
    "gemini-2.5-pro",
    "gemini-1.5-flash-002",
    "text-embedding-3-small",
    "ft:gpt-4o:acme::abc",
    "application/json",
    "text/plain",
    "stop",
    "length",
    "tool_calls",
    "ERROR",
    "DEFAULT",
    "WARNING",
    "true",
    "false",
    "NaN",
    "-1",
    "0",
    "18446744073709551615",
    "9223372036854775808",
    "1.5",
    "2025-01-01T00:00:00Z",
    "2025-06-01T10:00:00.123456+02:00",
    "2262-04-11T23:47:16.854775807Z",
    "2262-04-11T23:47:16.854775808Z",
    "9999-12-31T23:59:59Z",
    "1969-12-31T23:59:59Z",
    "{\"input\":5,\"output\":7,\"total\":12}",
    "{\"input\":18446744073709551615,\"output\":18446744073709551615}",
    "{\"input_tokens\":10,\"output_tokens\":2,\"cache_read_input_tokens\":1000}",
    "{\"prompt_tokens\":3,\"completion_tokens\":4,\"prompt_tokens_details\":{\"cached_tokens\":9}}",
    "{\"total\":0.002,\"input\":0.001}",
    "{\"total\":1e300}",
    "{\"total\":-1}",
    "{\"temperature\":0.2,\"max_tokens\":100,\"top_p\":1}",
    "[{\"role\":\"user\",\"content\":\"hi\"}]",
    "[{\"role\":\"assistant\",\"parts\":[{\"type\":\"text\",\"content\":\"ok\"}],\"finish_reason\":\"stop\"}]",
    "[\"a\",\"b\"]",
    "\"quoted\"",
    "{\"city\":\"Paris\"}",
    "",
    " ",
    "é",
    "\u{0}",
];

/// Integers at the edges of what token counts, costs, times and indexes accept.
const INTS: &[i64] = &[
    0,
    1,
    -1,
    2,
    7,
    100,
    1_000,
    128_000,
    1_000_000,
    4_294_967_295,
    9_007_199_254_740_993,
    1_700_000_000_000_000_000,
    i64::MAX,
    i64::MIN,
];

/// Doubles at the edges: non-finite ones are encoded by name in OTLP/JSON.
const DOUBLES: &[f64] = &[
    0.0,
    -0.0,
    0.1,
    0.5,
    1.5,
    -2.5,
    1e-9,
    1e21,
    1e300,
    5e-324,
    f64::MAX,
    f64::NAN,
    f64::INFINITY,
    f64::NEG_INFINITY,
];

/// Nanosecond times: mostly near 2023, sometimes at the edges of the canonical time range.
fn time_ns(u: &mut Unstructured) -> Result<u64> {
    const BASE: u64 = 1_700_000_000_000_000_000;
    Ok(match u.int_in_range(0u8..=15)? {
        0 => *u.choose(&[
            0,
            1,
            (1u64 << 63) - 1,
            1u64 << 63,
            u64::MAX,
            BASE - 1,
            18_000_000_000_000_000_000,
        ])?,
        1 => u.arbitrary()?,
        _ => BASE + u64::from(u.arbitrary::<u32>()?) * u64::from(u.int_in_range(1u16..=2000)?),
    })
}

fn short_string(u: &mut Unstructured) -> Result<String> {
    let s: &str = u.arbitrary()?;
    Ok(s.chars().take(64).collect())
}

fn word(u: &mut Unstructured) -> Result<String> {
    Ok(if u.ratio(1u8, 6)? {
        short_string(u)?
    } else {
        u.choose(WORDS)?.to_string()
    })
}

fn attribute_key(u: &mut Unstructured) -> Result<String> {
    Ok(match u.int_in_range(0u8..=9)? {
        0 => short_string(u)?,
        1..=3 => {
            let pattern = u.choose(INDEXED_KEYS)?;
            let mut out = String::new();
            for (i, part) in pattern.split("{}").enumerate() {
                if i > 0 {
                    out.push_str(&u.int_in_range(0u8..=3)?.to_string());
                }
                out.push_str(part);
            }
            out
        }
        _ => u.choose(KEYS)?.to_string(),
    })
}

fn any_value(u: &mut Unstructured, depth: u8) -> Result<proto::AnyValue> {
    let top = if depth >= 2 { 7 } else { 9 };
    let value = match u.int_in_range(0u8..=top)? {
        0 => None,
        1 | 2 => Some(V::StringValue(word(u)?)),
        3 => Some(V::IntValue(if u.ratio(1u8, 3)? {
            u.arbitrary()?
        } else {
            *u.choose(INTS)?
        })),
        4 => Some(V::DoubleValue(if u.ratio(1u8, 3)? {
            u.arbitrary()?
        } else {
            *u.choose(DOUBLES)?
        })),
        5 => Some(V::BoolValue(u.arbitrary()?)),
        6 => {
            let len = u.int_in_range(0usize..=24)?;
            Some(V::BytesValue(u.bytes(len)?.to_vec()))
        }
        7 => Some(V::StringValue(short_string(u)?)),
        8 => {
            let n = u.int_in_range(0usize..=4)?;
            let mut values = Vec::with_capacity(n);
            for _ in 0..n {
                values.push(any_value(u, depth + 1)?);
            }
            Some(V::ArrayValue(proto::ArrayValue { values }))
        }
        _ => Some(V::KvlistValue(proto::KeyValueList {
            values: key_values(u, depth + 1, 4)?,
        })),
    };
    Ok(proto::AnyValue { value })
}

fn key_values(u: &mut Unstructured, depth: u8, max: usize) -> Result<Vec<proto::KeyValue>> {
    let n = u.int_in_range(0..=max)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(proto::KeyValue {
            key: attribute_key(u)?,
            value: if u.ratio(1u8, 12)? {
                None
            } else {
                Some(any_value(u, depth)?)
            },
        });
    }
    Ok(out)
}

/// Ids from a pool of the request's own, so spans share traces and point at each other.
struct Ids {
    traces: Vec<Vec<u8>>,
    spans: Vec<Vec<u8>>,
}

impl Ids {
    fn new(u: &mut Unstructured) -> Result<Ids> {
        let mut traces = Vec::new();
        for _ in 0..u.int_in_range(1usize..=3)? {
            traces.push(u.bytes(16)?.to_vec());
        }
        let mut spans = Vec::new();
        for _ in 0..u.int_in_range(1usize..=8)? {
            spans.push(u.bytes(8)?.to_vec());
        }
        Ok(Ids { traces, spans })
    }

    /// An id of `len` bytes: usually from the pool, sometimes empty, zero or the wrong length.
    fn pick(u: &mut Unstructured, pool: &[Vec<u8>], len: usize) -> Result<Vec<u8>> {
        Ok(match u.int_in_range(0u8..=19)? {
            0 => Vec::new(),
            1 => vec![0; len],
            2 => {
                let len = u.int_in_range(0usize..=20)?;
                u.bytes(len)?.to_vec()
            }
            _ => u.choose(pool)?.clone(),
        })
    }
}

fn event(u: &mut Unstructured) -> Result<proto::Event> {
    const NAMES: &[&str] = &[
        "exception",
        "gen_ai.first_token",
        "llm.first_token",
        "spanlens.first_token",
        "first_token",
        "retry",
        "gen_ai.content.prompt",
        "gen_ai.choice",
        "guardrail",
    ];
    Ok(proto::Event {
        time_unix_nano: time_ns(u)?,
        name: if u.ratio(1u8, 4)? {
            short_string(u)?
        } else {
            u.choose(NAMES)?.to_string()
        },
        attributes: key_values(u, 0, 4)?,
        dropped_attributes_count: 0,
    })
}

fn span(u: &mut Unstructured, ids: &Ids) -> Result<proto::Span> {
    let start = time_ns(u)?;
    let end = match u.int_in_range(0u8..=7)? {
        0 => 0,
        1 => time_ns(u)?,
        2 => start.saturating_sub(u64::from(u.arbitrary::<u32>()?)),
        _ => start.saturating_add(u64::from(u.arbitrary::<u32>()?) * 16),
    };
    let mut events = Vec::new();
    for _ in 0..u.int_in_range(0usize..=3)? {
        events.push(event(u)?);
    }
    let mut links = Vec::new();
    for _ in 0..u.int_in_range(0usize..=1)? {
        links.push(proto::Link {
            trace_id: Ids::pick(u, &ids.traces, 16)?,
            span_id: Ids::pick(u, &ids.spans, 8)?,
            trace_state: String::new(),
            attributes: key_values(u, 0, 2)?,
            dropped_attributes_count: 0,
            flags: 0,
        });
    }
    Ok(proto::Span {
        trace_id: Ids::pick(u, &ids.traces, 16)?,
        span_id: Ids::pick(u, &ids.spans, 8)?,
        trace_state: String::new(),
        parent_span_id: if u.ratio(1u8, 3)? {
            Vec::new()
        } else {
            Ids::pick(u, &ids.spans, 8)?
        },
        flags: u.arbitrary()?,
        name: word(u)?,
        kind: u.int_in_range(0..=6)?,
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        attributes: key_values(u, 0, 14)?,
        dropped_attributes_count: 0,
        events,
        dropped_events_count: 0,
        links,
        dropped_links_count: 0,
        status: if u.ratio(1u8, 3)? {
            None
        } else {
            Some(proto::Status {
                message: word(u)?,
                code: u.int_in_range(0..=3)?,
            })
        },
    })
}

/// An OTLP `ExportTraceServiceRequest` built from the fuzzer's bytes.
pub fn otlp_request(u: &mut Unstructured) -> Result<proto::ExportTraceServiceRequest> {
    let ids = Ids::new(u)?;
    let mut req = proto::ExportTraceServiceRequest::default();
    for _ in 0..u.int_in_range(1usize..=3)? {
        let mut scope_spans = Vec::new();
        for _ in 0..u.int_in_range(1usize..=2)? {
            let mut spans = Vec::new();
            for _ in 0..u.int_in_range(0usize..=6)? {
                spans.push(span(u, &ids)?);
            }
            scope_spans.push(proto::ScopeSpans {
                scope: if u.ratio(1u8, 3)? {
                    None
                } else {
                    Some(proto::InstrumentationScope {
                        name: word(u)?,
                        version: word(u)?,
                        attributes: Vec::new(),
                        dropped_attributes_count: 0,
                    })
                },
                spans,
                schema_url: String::new(),
            });
        }
        req.resource_spans.push(proto::ResourceSpans {
            resource: if u.ratio(1u8, 5)? {
                None
            } else {
                Some(proto::Resource {
                    attributes: key_values(u, 0, 5)?,
                    dropped_attributes_count: 0,
                })
            },
            scope_spans,
            schema_url: String::new(),
        });
    }
    Ok(req)
}

/// Choices of how the OTLP/JSON encoding spells what the protobuf holds (all of them legal).
#[derive(Clone, Copy, Default)]
pub struct JsonStyle {
    /// 64-bit integers as JSON numbers instead of strings.
    pub numbers: bool,
    /// Field names in the `.proto` snake_case instead of lowerCamelCase.
    pub snake_case: bool,
    /// Ids in upper-case hex.
    pub upper_hex: bool,
    /// Enums by name (`SPAN_KIND_CLIENT`) instead of number.
    pub enum_names: bool,
}

impl JsonStyle {
    /// A style chosen by the fuzzer.
    pub fn arbitrary(u: &mut Unstructured) -> Result<JsonStyle> {
        let bits: u8 = u.arbitrary()?;
        Ok(JsonStyle {
            numbers: bits & 1 != 0,
            snake_case: bits & 2 != 0,
            upper_hex: bits & 4 != 0,
            enum_names: bits & 8 != 0,
        })
    }

    fn key(&self, camel: &str, snake: &str) -> String {
        if self.snake_case { snake } else { camel }.to_string()
    }

    fn uint(&self, n: u64) -> Value {
        if self.numbers {
            Value::Number(n.into())
        } else {
            Value::String(n.to_string())
        }
    }

    fn int(&self, n: i64) -> Value {
        if self.numbers {
            Value::Number(n.into())
        } else {
            Value::String(n.to_string())
        }
    }

    fn hex(&self, b: &[u8]) -> Value {
        let mut s = String::with_capacity(b.len() * 2);
        for byte in b {
            s.push_str(&if self.upper_hex {
                format!("{byte:02X}")
            } else {
                format!("{byte:02x}")
            });
        }
        Value::String(s)
    }
}

/// Standard base64 with padding, as the OTLP/JSON encoding writes `bytes` values.
pub fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn json_any(v: &proto::AnyValue, st: &JsonStyle) -> Value {
    let (key, value) = match &v.value {
        None => return json!({}),
        Some(V::StringValue(s)) => ("stringValue", Value::String(s.clone())),
        Some(V::BoolValue(b)) => ("boolValue", Value::Bool(*b)),
        Some(V::IntValue(i)) => ("intValue", st.int(*i)),
        Some(V::DoubleValue(d)) => (
            "doubleValue",
            Number::from_f64(*d).map(Value::Number).unwrap_or_else(|| {
                Value::String(
                    if d.is_nan() {
                        "NaN"
                    } else if *d > 0.0 {
                        "Infinity"
                    } else {
                        "-Infinity"
                    }
                    .into(),
                )
            }),
        ),
        Some(V::BytesValue(b)) => ("bytesValue", Value::String(base64(b))),
        Some(V::ArrayValue(a)) => (
            "arrayValue",
            json!({"values": a.values.iter().map(|x| json_any(x, st)).collect::<Vec<_>>()}),
        ),
        Some(V::KvlistValue(kv)) => ("kvlistValue", json!({"values": json_kvs(&kv.values, st)})),
    };
    let mut m = Map::new();
    let snake = match key {
        "stringValue" => "string_value",
        "boolValue" => "bool_value",
        "intValue" => "int_value",
        "doubleValue" => "double_value",
        "bytesValue" => "bytes_value",
        "arrayValue" => "array_value",
        _ => "kvlist_value",
    };
    m.insert(st.key(key, snake), value);
    Value::Object(m)
}

fn json_kvs(kvs: &[proto::KeyValue], st: &JsonStyle) -> Value {
    Value::Array(
        kvs.iter()
            .map(|kv| {
                let mut m = Map::new();
                m.insert("key".into(), Value::String(kv.key.clone()));
                if let Some(v) = &kv.value {
                    m.insert("value".into(), json_any(v, st));
                }
                Value::Object(m)
            })
            .collect(),
    )
}

/// Puts `n` under the key when it is not 0 (the encoding omits default values; both are legal).
fn put_count(m: &mut Map<String, Value>, st: &JsonStyle, camel: &str, snake: &str, n: u32) {
    if n != 0 {
        m.insert(st.key(camel, snake), Value::Number(n.into()));
    }
}

fn put_string(m: &mut Map<String, Value>, st: &JsonStyle, camel: &str, snake: &str, s: &str) {
    if !s.is_empty() {
        m.insert(st.key(camel, snake), Value::String(s.to_string()));
    }
}

fn json_span(s: &proto::Span, st: &JsonStyle) -> Value {
    let mut m = Map::new();
    m.insert(st.key("traceId", "trace_id"), st.hex(&s.trace_id));
    m.insert(st.key("spanId", "span_id"), st.hex(&s.span_id));
    put_string(&mut m, st, "traceState", "trace_state", &s.trace_state);
    if !s.parent_span_id.is_empty() {
        m.insert(
            st.key("parentSpanId", "parent_span_id"),
            st.hex(&s.parent_span_id),
        );
    }
    put_count(&mut m, st, "flags", "flags", s.flags);
    m.insert("name".into(), Value::String(s.name.clone()));
    m.insert(
        "kind".into(),
        match proto::SpanKind::try_from(s.kind) {
            Ok(k) if st.enum_names => Value::String(k.as_str_name().into()),
            _ => Value::Number(s.kind.into()),
        },
    );
    m.insert(
        st.key("startTimeUnixNano", "start_time_unix_nano"),
        st.uint(s.start_time_unix_nano),
    );
    m.insert(
        st.key("endTimeUnixNano", "end_time_unix_nano"),
        st.uint(s.end_time_unix_nano),
    );
    m.insert("attributes".into(), json_kvs(&s.attributes, st));
    put_count(
        &mut m,
        st,
        "droppedAttributesCount",
        "dropped_attributes_count",
        s.dropped_attributes_count,
    );
    let events = s
        .events
        .iter()
        .map(|e| {
            let mut em = Map::new();
            em.insert(
                st.key("timeUnixNano", "time_unix_nano"),
                st.uint(e.time_unix_nano),
            );
            em.insert("name".into(), Value::String(e.name.clone()));
            em.insert("attributes".into(), json_kvs(&e.attributes, st));
            put_count(
                &mut em,
                st,
                "droppedAttributesCount",
                "dropped_attributes_count",
                e.dropped_attributes_count,
            );
            Value::Object(em)
        })
        .collect();
    m.insert("events".into(), Value::Array(events));
    put_count(
        &mut m,
        st,
        "droppedEventsCount",
        "dropped_events_count",
        s.dropped_events_count,
    );
    let links = s
        .links
        .iter()
        .map(|l| {
            let mut lm = Map::new();
            lm.insert(st.key("traceId", "trace_id"), st.hex(&l.trace_id));
            lm.insert(st.key("spanId", "span_id"), st.hex(&l.span_id));
            put_string(&mut lm, st, "traceState", "trace_state", &l.trace_state);
            lm.insert("attributes".into(), json_kvs(&l.attributes, st));
            put_count(
                &mut lm,
                st,
                "droppedAttributesCount",
                "dropped_attributes_count",
                l.dropped_attributes_count,
            );
            put_count(&mut lm, st, "flags", "flags", l.flags);
            Value::Object(lm)
        })
        .collect();
    m.insert("links".into(), Value::Array(links));
    put_count(
        &mut m,
        st,
        "droppedLinksCount",
        "dropped_links_count",
        s.dropped_links_count,
    );
    if let Some(status) = &s.status {
        let code = match proto::StatusCode::try_from(status.code) {
            Ok(c) if st.enum_names => Value::String(c.as_str_name().into()),
            _ => Value::Number(status.code.into()),
        };
        m.insert(
            "status".into(),
            json!({"message": status.message, "code": code}),
        );
    }
    Value::Object(m)
}

/// The OTLP/JSON encoding of a request, in the given style.
pub fn otlp_json(req: &proto::ExportTraceServiceRequest, st: &JsonStyle) -> Value {
    let resource_spans: Vec<Value> = req
        .resource_spans
        .iter()
        .map(|rs| {
            let mut m = Map::new();
            if let Some(r) = &rs.resource {
                let mut rm = Map::new();
                rm.insert("attributes".into(), json_kvs(&r.attributes, st));
                put_count(
                    &mut rm,
                    st,
                    "droppedAttributesCount",
                    "dropped_attributes_count",
                    r.dropped_attributes_count,
                );
                m.insert("resource".into(), Value::Object(rm));
            }
            let scopes: Vec<Value> = rs
                .scope_spans
                .iter()
                .map(|ss| {
                    let mut sm = Map::new();
                    if let Some(sc) = &ss.scope {
                        let mut scm = Map::new();
                        scm.insert("name".into(), Value::String(sc.name.clone()));
                        scm.insert("version".into(), Value::String(sc.version.clone()));
                        scm.insert("attributes".into(), json_kvs(&sc.attributes, st));
                        put_count(
                            &mut scm,
                            st,
                            "droppedAttributesCount",
                            "dropped_attributes_count",
                            sc.dropped_attributes_count,
                        );
                        sm.insert("scope".into(), Value::Object(scm));
                    }
                    sm.insert(
                        "spans".into(),
                        Value::Array(ss.spans.iter().map(|s| json_span(s, st)).collect()),
                    );
                    put_string(&mut sm, st, "schemaUrl", "schema_url", &ss.schema_url);
                    Value::Object(sm)
                })
                .collect();
            m.insert(st.key("scopeSpans", "scope_spans"), Value::Array(scopes));
            put_string(&mut m, st, "schemaUrl", "schema_url", &rs.schema_url);
            Value::Object(m)
        })
        .collect();
    let mut top = Map::new();
    top.insert(
        st.key("resourceSpans", "resource_spans"),
        Value::Array(resource_spans),
    );
    Value::Object(top)
}

// ---------------------------------------------------------------------------------------------
// OpenAI Agents exports

/// A JSON value for an Agents field: mostly of the expected shape, sometimes anything.
fn json_value(u: &mut Unstructured, depth: u8) -> Result<Value> {
    let top = if depth >= 2 { 5 } else { 7 };
    Ok(match u.int_in_range(0u8..=top)? {
        0 => Value::Null,
        1 => Value::Bool(u.arbitrary()?),
        2 => Value::Number(if u.ratio(1u8, 2)? {
            (*u.choose(INTS)?).into()
        } else {
            Number::from_f64(*u.choose(DOUBLES)?).unwrap_or_else(|| 0.into())
        }),
        3 | 4 => Value::String(word(u)?),
        5 => Value::Number(u.arbitrary::<u64>()?.into()),
        6 => {
            let n = u.int_in_range(0usize..=3)?;
            let mut a = Vec::with_capacity(n);
            for _ in 0..n {
                a.push(json_value(u, depth + 1)?);
            }
            Value::Array(a)
        }
        _ => {
            let n = u.int_in_range(0usize..=3)?;
            let mut m = Map::new();
            for _ in 0..n {
                m.insert(word(u)?, json_value(u, depth + 1)?);
            }
            Value::Object(m)
        }
    })
}

fn agents_time(u: &mut Unstructured) -> Result<Value> {
    const FORMS: &[&str] = &[
        "2025-03-14T10:15:02.106020+00:00",
        "2025-03-14T10:15:04.877940+00:00",
        "2025-03-14T10:15:02.106020",
        "2025-03-14T12:15:02Z",
        "2025-03-14T10:15:02.106020-11:30",
        "2262-04-11T23:47:16.854775807Z",
        "2262-04-11T23:47:16.854775808Z",
        "2554-07-21T23:34:33.709551615Z",
        "9999-12-31T23:59:59.999999999Z",
        "1970-01-01T00:00:00Z",
        "1969-12-31T23:59:59Z",
        "2025-02-30T00:00:00Z",
        "",
    ];
    Ok(match u.int_in_range(0u8..=9)? {
        0 => Value::Null,
        1 => json_value(u, 2)?,
        2 => Value::String(short_string(u)?),
        _ => Value::String(u.choose(FORMS)?.to_string()),
    })
}

fn agents_usage(u: &mut Unstructured) -> Result<Value> {
    let mut n = || -> Result<Value> {
        Ok(if u.ratio(1u8, 4)? {
            json_value(u, 2)?
        } else {
            Value::Number(u64::from(u.arbitrary::<u16>()?).into())
        })
    };
    Ok(json!({
        "input_tokens": n()?,
        "output_tokens": n()?,
        "input_tokens_details": {"cached_tokens": n()?},
        "output_tokens_details": {"reasoning_tokens": n()?},
        "total_tokens": n()?,
    }))
}

fn agents_messages(u: &mut Unstructured) -> Result<Value> {
    let n = u.int_in_range(0usize..=3)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let content = match u.int_in_range(0u8..=3)? {
            0 => json_value(u, 1)?,
            1 => json!([{"type": "output_text", "text": word(u)?}, {"type": "input_image"}]),
            _ => Value::String(word(u)?),
        };
        let mut m = json!({"role": *u.choose(&["system", "user", "assistant", "tool", ""])?, "content": content});
        if u.ratio(1u8, 4)? {
            m["tool_calls"] = json!([{"id": word(u)?, "type": "function",
                "function": {"name": word(u)?, "arguments": word(u)?}}]);
        }
        if u.ratio(1u8, 6)? {
            m["tool_call_id"] = Value::String(word(u)?);
        }
        out.push(m);
    }
    Ok(Value::Array(out))
}

fn span_data(u: &mut Unstructured) -> Result<Value> {
    const TYPES: &[&str] = &[
        "agent",
        "generation",
        "response",
        "function",
        "handoff",
        "guardrail",
        "custom",
        "mcp_tools",
        "transcription",
        "speech",
        "speech_group",
        "",
    ];
    if u.ratio(1u8, 12)? {
        return json_value(u, 0);
    }
    let ty = if u.ratio(1u8, 10)? {
        word(u)?
    } else {
        u.choose(TYPES)?.to_string()
    };
    let mut m = Map::new();
    m.insert("type".into(), Value::String(ty));
    for _ in 0..u.int_in_range(0usize..=6)? {
        let (key, value) = match u.int_in_range(0u8..=13)? {
            0 => ("name", Value::String(word(u)?)),
            1 => ("model", Value::String(word(u)?)),
            2 => ("usage", agents_usage(u)?),
            3 => ("input", agents_messages(u)?),
            4 => ("output", agents_messages(u)?),
            5 => ("input", json_value(u, 0)?),
            6 => ("output", Value::String(word(u)?)),
            7 => (
                "model_config",
                json!({"temperature": json_value(u, 2)?, "max_tokens": json_value(u, 2)?, "top_p": null}),
            ),
            8 => ("from_agent", Value::String(word(u)?)),
            9 => ("to_agent", Value::String(word(u)?)),
            10 => ("triggered", json_value(u, 2)?),
            11 => (
                "data",
                json!({"sdk_span_type": *u.choose(&["task", "turn", "other"])?,
                    "name": word(u)?, "turn": json_value(u, 2)?, "agent_name": word(u)?}),
            ),
            12 => ("first_content_at", agents_time(u)?),
            _ => ("response_id", json_value(u, 2)?),
        };
        m.insert(key.into(), value);
    }
    Ok(Value::Object(m))
}

/// An OpenAI Agents SDK export (`{"data": [...]}`) built from the fuzzer's bytes.
pub fn agents_export(u: &mut Unstructured) -> Result<Value> {
    let mut traces = Vec::new();
    for _ in 0..u.int_in_range(1usize..=2)? {
        traces.push(format!("trace_{}", hex32(u.bytes(16)?)));
    }
    let mut spans = Vec::new();
    for _ in 0..u.int_in_range(1usize..=6)? {
        spans.push(format!("span_{}", &hex32(u.bytes(12)?)));
    }
    let id = |u: &mut Unstructured, pool: &[String]| -> Result<Value> {
        Ok(match u.int_in_range(0u8..=15)? {
            0 => Value::Null,
            1 => json_value(u, 2)?,
            2 => Value::String(short_string(u)?),
            _ => Value::String(u.choose(pool)?.clone()),
        })
    };
    let mut data = Vec::new();
    for _ in 0..u.int_in_range(0usize..=8)? {
        let mut m = Map::new();
        if u.ratio(1u8, 3)? {
            m.insert("object".into(), json!("trace"));
            m.insert("id".into(), id(u, &traces)?);
            m.insert("workflow_name".into(), json_value(u, 1)?);
            m.insert("group_id".into(), json_value(u, 1)?);
            let mut meta = Map::new();
            meta.insert("user_id".into(), json_value(u, 2)?);
            meta.insert(word(u)?, json_value(u, 2)?);
            m.insert("metadata".into(), Value::Object(meta));
        } else {
            let object = match u.int_in_range(0u8..=11)? {
                0 => Value::Null,
                1 => json_value(u, 2)?,
                _ => json!("trace.span"),
            };
            m.insert("object".into(), object);
            m.insert("id".into(), id(u, &spans)?);
            m.insert("trace_id".into(), id(u, &traces)?);
            m.insert("parent_id".into(), id(u, &spans)?);
            m.insert("started_at".into(), agents_time(u)?);
            m.insert("ended_at".into(), agents_time(u)?);
            m.insert("span_data".into(), span_data(u)?);
            let error = if u.ratio(1u8, 3)? {
                json!({"message": word(u)?, "data": json_value(u, 1)?})
            } else {
                Value::Null
            };
            m.insert("error".into(), error);
        }
        if u.ratio(1u8, 8)? {
            m.insert(word(u)?, json_value(u, 1)?);
        }
        data.push(Value::Object(m));
    }
    Ok(json!({ "data": data }))
}

fn hex32(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_known_answers() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foob"), "Zm9vYg==");
    }

    #[test]
    fn built_requests_decode_in_both_encodings() {
        let bytes: Vec<u8> = (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect();
        let mut u = Unstructured::new(&bytes);
        let req = otlp_request(&mut u).unwrap();
        let st = JsonStyle::arbitrary(&mut u).unwrap();
        let body = otlp_json(&req, &st).to_string();
        spanlens_core::otlp::decode_json(body.as_bytes()).unwrap();
    }
}
