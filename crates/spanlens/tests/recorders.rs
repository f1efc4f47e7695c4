//! Recorders: the attributes and events each writes, and the canonical fields core derives from
//! them (through the same OTLP normalisation and pricing the server applies).

use serde_json::json;
use spanlens::processor::InMemoryProcessor;
use spanlens::record::{self, LlmCall, ToolCall, Verdict};
use spanlens::{FutureExt, SpanData, SpanKind, Status, Tracer, Value};
use spanlens_core::span::MAX_PAYLOAD_BYTES;
use spanlens_core::{CostSource, NanoUsd, RateLimitWindow, Timestamp, Usage};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn tracer() -> (Tracer, InMemoryProcessor) {
    let mem = InMemoryProcessor::new();
    (Tracer::builder().with_processor(mem.clone()).build(), mem)
}

fn now() -> Timestamp {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    Timestamp(d.as_nanos() as u64)
}

/// The one span with this name.
fn named<'a>(spans: &'a [SpanData], name: &str) -> &'a SpanData {
    let found: Vec<&SpanData> = spans.iter().filter(|s| s.name == name).collect();
    assert_eq!(found.len(), 1, "spans named {name:?} in {spans:#?}");
    found[0]
}

fn canon<'a>(spans: &'a [spanlens_core::Span], name: &str) -> &'a spanlens_core::Span {
    spans
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no canonical span {name:?}"))
}

fn attr<'a>(s: &'a SpanData, key: &str) -> &'a Value {
    s.attribute(key)
        .unwrap_or_else(|| panic!("{key} missing on {}: {:#?}", s.name, s.attributes))
}

fn int(s: &SpanData, key: &str) -> i64 {
    match attr(s, key) {
        Value::I64(i) => *i,
        v => panic!("{key} is not an integer: {v:?}"),
    }
}

fn float(s: &SpanData, key: &str) -> f64 {
    match attr(s, key) {
        Value::F64(f) => *f,
        v => panic!("{key} is not a float: {v:?}"),
    }
}

fn text(s: &SpanData, key: &str) -> String {
    match attr(s, key) {
        Value::Str(t) => t.to_string(),
        v => panic!("{key} is not text: {v:?}"),
    }
}

fn keys_with_prefix(s: &SpanData, prefix: &str) -> Vec<String> {
    s.attributes
        .iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(k, _)| k.to_string())
        .collect()
}

const OPENAI_USAGE: &str = r#"{"prompt_tokens": 2006, "completion_tokens": 300, "total_tokens": 2306,
    "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0}}"#;

#[test]
fn llm_call_records_genai_attributes_cost_ttft_and_rate_limits() {
    let (t, mem) = tracer();
    let before = now();
    {
        let root = t.span("root").start();
        let _in = root.enter();
        let call = LlmCall::start("openai", "gpt-4o-mini");
        call.capture_messages(true)
            .param("temperature", 0.2)
            .param("max_tokens", 256)
            .messages_input(&json!([
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Capital of France?"}
            ]))
            .prompt_template("Capital of {country}?", "v3", &json!({"country": "France"}));
        std::thread::sleep(Duration::from_millis(5));
        call.token();
        call.first_token(); // idempotent: the first token was already marked
        std::thread::sleep(Duration::from_millis(5));
        call.tokens(2).token();
        call.usage_json(&serde_json::from_str(OPENAI_USAGE).unwrap())
            .response_model("gpt-4o-mini-2024-07-18")
            .response_id("chatcmpl-123")
            .finish_reason("stop")
            .rate_limit_headers([
                ("x-ratelimit-limit-requests", "10000"),
                ("x-ratelimit-remaining-requests", "9999"),
                ("x-ratelimit-reset-requests", "6m0s"),
                ("x-ratelimit-limit-tokens", "200000"),
                ("x-ratelimit-remaining-tokens", "197994"),
                ("x-ratelimit-reset-tokens", "601ms"),
            ])
            .messages_output(&json!([{"role": "assistant", "content": "Paris."}]));
        call.finish();
    }
    let after = now();
    let spans = mem.spans();
    let root = named(&spans, "root");
    let llm = named(&spans, "chat gpt-4o-mini");
    assert_eq!(llm.kind, SpanKind::Llm);
    assert_eq!(llm.parent_span_id, Some(root.span_id));
    assert_eq!(llm.status, Status::Ok);

    // Request side.
    assert_eq!(text(llm, "gen_ai.provider.name"), "openai");
    assert_eq!(text(llm, "gen_ai.operation.name"), "chat");
    assert_eq!(text(llm, "gen_ai.request.model"), "gpt-4o-mini");
    assert_eq!(float(llm, "gen_ai.request.temperature"), 0.2);
    assert_eq!(int(llm, "gen_ai.request.max_tokens"), 256);
    assert_eq!(
        text(llm, "llm.prompt_template.template"),
        "Capital of {country}?"
    );
    assert_eq!(text(llm, "llm.prompt_template.version"), "v3");
    assert_eq!(
        attr(llm, "llm.prompt_template.variables").to_json(),
        json!({"country": "France"})
    );
    // Response side.
    assert_eq!(text(llm, "gen_ai.response.model"), "gpt-4o-mini-2024-07-18");
    assert_eq!(text(llm, "gen_ai.response.id"), "chatcmpl-123");
    assert_eq!(
        attr(llm, "gen_ai.response.finish_reasons"),
        &Value::StrList(vec!["stop".into()])
    );
    assert_eq!(
        attr(llm, "gen_ai.output.messages").to_json()[0]["content"],
        "Paris."
    );
    // Usage, with OpenAI's rule (cached tokens already inside prompt_tokens).
    assert_eq!(int(llm, "gen_ai.usage.input_tokens"), 2006);
    assert_eq!(int(llm, "gen_ai.usage.cache_read.input_tokens"), 1920);
    assert_eq!(int(llm, "gen_ai.usage.output_tokens"), 300);
    assert_eq!(int(llm, "gen_ai.usage.total_tokens"), 2306);
    assert_eq!(
        llm.attribute("gen_ai.usage.cache_creation.input_tokens"),
        None
    );
    assert_eq!(llm.attribute("gen_ai.usage.reasoning.output_tokens"), None);
    assert_eq!(text(llm, "spanlens.usage.format"), "openai_chat");
    // First token: one event, and the GenAI seconds attribute.
    let firsts: Vec<_> = llm
        .events
        .iter()
        .filter(|e| e.name == record::FIRST_TOKEN_EVENT)
        .collect();
    assert_eq!(firsts.len(), 1);
    let ttft_s = float(llm, "gen_ai.response.time_to_first_chunk");
    assert!(ttft_s >= 0.005, "{ttft_s}");
    let span_secs = (llm.end_time.unwrap().0 - llm.start_time.0) as f64 / 1e9;
    assert!(ttft_s < span_secs, "{ttft_s} < {span_secs}");
    assert!(firsts[0].time.0 - llm.start_time.0 >= 5_000_000);
    // Streaming speed over first token → end: 300 output tokens, ≥ 5 ms window.
    assert_eq!(int(llm, "spanlens.llm.streamed_tokens"), 4);
    let tps = float(llm, "spanlens.llm.tokens_per_second");
    let tpot = float(llm, "spanlens.llm.time_per_output_token_ms");
    assert!(tps > 0.0 && tpot > 0.0, "{tps} {tpot}");
    assert!(
        (tps * tpot - 1000.0).abs() < 1e-6,
        "tps and per-token latency agree"
    );
    let window_ms = tpot * 299.0;
    assert!(
        window_ms >= 5.0 && window_ms <= span_secs * 1000.0,
        "{window_ms}"
    );
    // Cost by hand from data/prices.toml (gpt-4o-mini: $0.15 in, $0.075 cached, $0.60 out per M):
    // 86 uncached × 0.15 = 12,900 nano-USD; 1920 cached × 0.075 = 144,000; 300 out × 0.60 = 180,000.
    let expected = NanoUsd(12_900 + 144_000 + 180_000);
    assert_eq!(float(llm, "spanlens.cost.total_usd"), expected.as_usd_f64());
    assert_eq!(float(llm, "spanlens.cost.input_usd"), 12_900e-9);
    assert_eq!(float(llm, "spanlens.cost.cache_read_usd"), 144_000e-9);
    assert_eq!(float(llm, "spanlens.cost.output_usd"), 180_000e-9);
    assert_eq!(float(llm, "spanlens.cost.cache_write_usd"), 0.0);
    assert_eq!(text(llm, "spanlens.pricing_id"), "gpt-4o-mini");
    assert_eq!(
        text(llm, "spanlens.pricing_version"),
        spanlens_core::PriceCatalog::builtin().version()
    );
    assert_eq!(llm.attribute("spanlens.unpriced"), None);
    // Rate limits: the relative reset resolved against the time of the call.
    assert_eq!(int(llm, "spanlens.ratelimit.requests.limit"), 10_000);
    assert_eq!(int(llm, "spanlens.ratelimit.tokens.remaining"), 197_994);
    let reset = Timestamp::parse_rfc3339(&text(llm, "spanlens.ratelimit.requests.reset")).unwrap();
    assert!(reset.0 >= before.0 + 360_000_000_000 && reset.0 <= after.0 + 360_000_000_000);

    // What core derives from all that.
    let c = spanlens::convert::to_canonical(&spans, t.resource());
    let cl = canon(&c, "chat gpt-4o-mini");
    assert_eq!(cl.kind, SpanKind::Llm);
    assert_eq!(cl.source.as_deref(), Some("spanlens"));
    assert_eq!(cl.provider.as_deref(), Some("openai"));
    assert_eq!(cl.request_model.as_deref(), Some("gpt-4o-mini"));
    assert_eq!(cl.response_model.as_deref(), Some("gpt-4o-mini-2024-07-18"));
    assert_eq!(cl.model_parameters["temperature"], json!(0.2));
    assert_eq!(cl.model_parameters["max_tokens"], json!(256));
    assert_eq!(
        cl.usage,
        Some(Usage {
            input_tokens: 2006,
            output_tokens: 300,
            cache_read_tokens: 1920,
            total_tokens: 2306,
            ..Default::default()
        })
    );
    let cost = cl.cost.as_ref().expect("priced");
    assert_eq!(cost.source, CostSource::Computed);
    assert_eq!(cost.amounts.total, expected);
    assert!(cost.amounts.total > NanoUsd::ZERO);
    assert_eq!(cost.pricing_id.as_deref(), Some("gpt-4o-mini"));
    assert_eq!(cl.unpriced_reason, None);
    assert_eq!(cl.ttft_ns, Some((ttft_s * 1e9).round() as u64));
    let ttft_ms = serde_json::to_value(cl).unwrap()["ttft_ms"]
        .as_f64()
        .unwrap();
    assert!((ttft_ms - ttft_s * 1000.0).abs() < 1e-3, "{ttft_ms}");
    assert_eq!(cl.finish_reasons, ["stop"]);
    let rl = cl.rate_limits.as_ref().expect("rate limits");
    assert_eq!(
        rl.requests,
        Some(RateLimitWindow {
            limit: Some(10_000),
            remaining: Some(9_999),
            reset: Some(reset),
        })
    );
    let tokens = rl.tokens.as_ref().unwrap();
    assert_eq!(
        (tokens.limit, tokens.remaining),
        (Some(200_000), Some(197_994))
    );
    assert_eq!(
        reset.0 - tokens.reset.unwrap().0,
        360_000_000_000 - 601_000_000
    );
    assert_eq!(rl.retry_after_ms, None);
    assert_eq!(cl.input_messages.len(), 2);
    assert_eq!(
        cl.input_messages[1].content.as_deref(),
        Some("Capital of France?")
    );
    assert_eq!(cl.output_messages[0].content.as_deref(), Some("Paris."));
    let prompt = cl.prompt.as_ref().expect("prompt template");
    assert_eq!(prompt.template.as_deref(), Some("Capital of {country}?"));
    assert_eq!(prompt.version.as_deref(), Some("v3"));
    assert_eq!(prompt.variables["country"], "France");
    assert!(cl.events.iter().any(|e| e.name == "spanlens.first_token"));
}

#[test]
fn anthropic_usage_adds_cache_to_input_and_prices_the_one_hour_writes() {
    let (t, mem) = tracer();
    {
        let root = t.span("root").start();
        let _in = root.enter();
        let call = LlmCall::start("anthropic", "claude-sonnet-4-20250514");
        call.usage_json(&json!({"id": "msg_1", "usage": {
                "input_tokens": 50, "cache_creation_input_tokens": 1000,
                "cache_read_input_tokens": 20000, "output_tokens": 400,
                "cache_creation": {"ephemeral_5m_input_tokens": 600, "ephemeral_1h_input_tokens": 400}}}))
            .finish_reason("end_turn")
            .rate_limit_headers(vec![
                ("anthropic-ratelimit-input-tokens-limit".to_string(), "40000".to_string()),
                ("anthropic-ratelimit-input-tokens-remaining".into(), "18950".into()),
                ("anthropic-ratelimit-input-tokens-reset".into(), "2025-06-15T14:00:01Z".into()),
                ("anthropic-ratelimit-output-tokens-limit".into(), "8000".into()),
                ("anthropic-ratelimit-output-tokens-remaining".into(), "7600".into()),
                ("anthropic-ratelimit-output-tokens-reset".into(), "2025-06-15T14:00:02Z".into()),
                ("retry-after".into(), "7".into()),
            ]);
    } // ended on drop, without finish()
    let spans = mem.spans();
    let llm = named(&spans, "chat claude-sonnet-4-20250514");
    assert_eq!(llm.status, Status::Ok);
    assert_eq!(int(llm, "gen_ai.usage.input_tokens"), 21_050);
    assert_eq!(int(llm, "gen_ai.usage.cache_read.input_tokens"), 20_000);
    assert_eq!(int(llm, "gen_ai.usage.cache_creation.input_tokens"), 1_000);
    assert_eq!(int(llm, "gen_ai.usage.output_tokens"), 400);
    assert_eq!(int(llm, "spanlens.usage.cache_write_1h_tokens"), 400);
    assert_eq!(text(llm, "spanlens.usage.format"), "anthropic");
    // Not streamed: no first token, no speed.
    assert!(llm.events.is_empty());
    assert_eq!(llm.attribute("gen_ai.response.time_to_first_chunk"), None);
    assert_eq!(llm.attribute("spanlens.llm.tokens_per_second"), None);
    assert_eq!(llm.attribute("spanlens.llm.streamed_tokens"), None);
    // 50 × $3 + 20,000 × $0.30 + 600 × $3.75 + 400 × $6 (1 h writes) + 400 × $15, per million.
    let expected = NanoUsd(150_000 + 6_000_000 + 2_250_000 + 2_400_000 + 6_000_000);
    assert_eq!(float(llm, "spanlens.cost.total_usd"), expected.as_usd_f64());
    assert_eq!(float(llm, "spanlens.cost.cache_write_usd"), 4_650_000e-9);
    assert_eq!(text(llm, "spanlens.pricing_id"), "claude-sonnet-4");

    let c = spanlens::convert::to_canonical(&spans, t.resource());
    let cl = canon(&c, "chat claude-sonnet-4-20250514");
    assert_eq!(cl.provider.as_deref(), Some("anthropic"));
    let u = cl.usage.as_ref().unwrap();
    assert_eq!(
        (
            u.input_tokens,
            u.cache_read_tokens,
            u.cache_write_tokens,
            u.output_tokens
        ),
        (21_050, 20_000, 1_000, 400)
    );
    assert_eq!(u.total_tokens, 21_450);
    assert_eq!(u.extra.get(Usage::CACHE_WRITE_1H), Some(&400));
    assert_eq!(cl.cost.as_ref().unwrap().amounts.total, expected);
    assert_eq!(cl.ttft_ns, None);
    assert_eq!(cl.finish_reasons, ["end_turn"]);
    let rl = cl.rate_limits.as_ref().unwrap();
    assert_eq!(rl.requests, None);
    let at = |s: &str| Some(Timestamp::parse_rfc3339(s).unwrap());
    assert_eq!(
        rl.input_tokens,
        Some(RateLimitWindow {
            limit: Some(40_000),
            remaining: Some(18_950),
            reset: at("2025-06-15T14:00:01Z"),
        })
    );
    assert_eq!(
        rl.output_tokens,
        Some(RateLimitWindow {
            limit: Some(8_000),
            remaining: Some(7_600),
            reset: at("2025-06-15T14:00:02Z"),
        })
    );
    assert_eq!(rl.retry_after_ms, Some(7_000));
}

#[test]
fn gemini_and_responses_usage_keep_reasoning_inside_output() {
    let (t, mem) = tracer();
    {
        let root = t.span("root").start();
        let _in = root.enter();
        LlmCall::start("gcp.gemini", "gemini-2.5-flash").usage_json(&json!({"usageMetadata": {
            "promptTokenCount": 1200, "cachedContentTokenCount": 1000,
            "candidatesTokenCount": 80, "thoughtsTokenCount": 420, "totalTokenCount": 1700}}));
        LlmCall::start("openai", "o4-mini").usage_json(&json!({
            "input_tokens": 5000, "input_tokens_details": {"cached_tokens": 4096},
            "output_tokens": 900, "output_tokens_details": {"reasoning_tokens": 640},
            "total_tokens": 5900}));
    }
    let spans = mem.spans();
    let gem = named(&spans, "chat gemini-2.5-flash");
    assert_eq!(int(gem, "gen_ai.usage.output_tokens"), 500);
    assert_eq!(int(gem, "gen_ai.usage.reasoning.output_tokens"), 420);
    assert_eq!(text(gem, "spanlens.usage.format"), "gemini");
    let o4 = named(&spans, "chat o4-mini");
    assert_eq!(text(o4, "spanlens.usage.format"), "openai_responses");

    let c = spanlens::convert::to_canonical(&spans, t.resource());
    let g = canon(&c, "chat gemini-2.5-flash");
    assert_eq!(g.provider.as_deref(), Some("google"));
    let u = g.usage.as_ref().unwrap();
    assert_eq!(
        (
            u.input_tokens,
            u.cache_read_tokens,
            u.output_tokens,
            u.reasoning_tokens
        ),
        (1200, 1000, 500, 420)
    );
    // gemini-2.5-flash: 200 × $0.30 + 1000 × $0.03 + 500 × $2.50 per million.
    let expected = NanoUsd(60_000 + 30_000 + 1_250_000);
    assert_eq!(g.cost.as_ref().unwrap().amounts.total, expected);
    assert_eq!(float(gem, "spanlens.cost.total_usd"), expected.as_usd_f64());
    let o = canon(&c, "chat o4-mini");
    let u = o.usage.as_ref().unwrap();
    assert_eq!(
        (
            u.input_tokens,
            u.cache_read_tokens,
            u.output_tokens,
            u.reasoning_tokens
        ),
        (5000, 4096, 900, 640)
    );
    assert_eq!(
        o.cost.as_ref().unwrap().amounts.total.as_usd_f64(),
        float(o4, "spanlens.cost.total_usd")
    );
}

#[test]
fn unreadable_usage_is_recorded_not_raised() {
    let (t, mem) = tracer();
    {
        let root = t.span("root").start();
        let _in = root.enter();
        LlmCall::start("openai", "gpt-4o-mini").usage_json(&json!("lots of tokens"));
        let kept = LlmCall::start("openai", "gpt-4o");
        kept.usage_json(&json!({"prompt_tokens": 10, "completion_tokens": 2}));
        kept.usage_json(&json!({"prompt_tokens": "ten"}));
        LlmCall::start("openai", "gpt-4.1").usage_json(&json!({"foo": 1}));
    }
    let spans = mem.spans();
    let bad = named(&spans, "chat gpt-4o-mini");
    assert!(text(bad, "spanlens.usage_error").contains("JSON object"));
    assert!(keys_with_prefix(bad, "gen_ai.usage.").is_empty());
    assert!(keys_with_prefix(bad, "spanlens.cost.").is_empty());
    assert_eq!(bad.attribute("spanlens.unpriced"), None);
    assert_eq!(bad.status, Status::Ok);
    let kept = named(&spans, "chat gpt-4o");
    assert_eq!(
        text(kept, "spanlens.usage_error"),
        "usage field `prompt_tokens` must be a non-negative integer, got \"ten\""
    );
    assert_eq!(
        int(kept, "gen_ai.usage.input_tokens"),
        10,
        "earlier usage kept"
    );
    let unknown = named(&spans, "chat gpt-4.1");
    assert!(text(unknown, "spanlens.usage_error").contains("no known token field"));

    let c = spanlens::convert::to_canonical(&spans, t.resource());
    assert_eq!(canon(&c, "chat gpt-4o-mini").usage, None);
    assert_eq!(canon(&c, "chat gpt-4o-mini").cost, None);
    assert_eq!(
        canon(&c, "chat gpt-4o")
            .usage
            .as_ref()
            .unwrap()
            .input_tokens,
        10
    );
}

#[test]
fn unknown_model_is_marked_unpriced_never_zero() {
    let (t, mem) = tracer();
    {
        let root = t.span("root").start();
        let _in = root.enter();
        LlmCall::start("acme", "acme-llm-7b-finetune").usage(Usage {
            input_tokens: 100,
            output_tokens: 20,
            ..Default::default()
        });
    }
    let spans = mem.spans();
    let llm = named(&spans, "chat acme-llm-7b-finetune");
    assert_eq!(attr(llm, "spanlens.unpriced"), &Value::Bool(true));
    assert!(keys_with_prefix(llm, "spanlens.cost.").is_empty());
    assert_eq!(llm.attribute("spanlens.pricing_id"), None);
    assert_eq!(int(llm, "gen_ai.usage.total_tokens"), 120);
    let c = spanlens::convert::to_canonical(&spans, t.resource());
    let cl = canon(&c, "chat acme-llm-7b-finetune");
    assert_eq!(cl.cost, None);
    assert!(cl
        .unpriced_reason
        .as_deref()
        .unwrap()
        .contains("acme-llm-7b-finetune"));
}

#[test]
fn the_answering_model_is_priced_before_the_requested_name() {
    // Azure requests name a deployment; only the response says which model answered.
    let (t, mem) = tracer();
    {
        let root = t.span("root").start();
        let _in = root.enter();
        LlmCall::start("azure.ai.openai", "prod-chat-deployment")
            .response_model("gpt-4o-mini-2024-07-18")
            .usage(Usage {
                input_tokens: 1_000,
                output_tokens: 100,
                ..Default::default()
            });
    }
    let spans = mem.spans();
    let llm = named(&spans, "chat prod-chat-deployment");
    // 1,000 × $0.15 + 100 × $0.60 per million.
    let expected = NanoUsd(150_000 + 60_000);
    assert_eq!(text(llm, "spanlens.pricing_id"), "gpt-4o-mini");
    assert_eq!(float(llm, "spanlens.cost.total_usd"), expected.as_usd_f64());
    assert_eq!(llm.attribute("spanlens.unpriced"), None);
    let c = spanlens::convert::to_canonical(&spans, t.resource());
    let cl = canon(&c, "chat prod-chat-deployment");
    assert_eq!(cl.provider.as_deref(), Some("azure"));
    assert_eq!(cl.cost.as_ref().unwrap().amounts.total, expected);
}

#[test]
fn messages_are_captured_only_when_asked() {
    let (t, mem) = tracer();
    let msgs = json!([{"role": "user", "content": "my email is a@b.c"}]);
    {
        let root = t.span("root").start();
        let _in = root.enter();
        LlmCall::start("openai", "off")
            .capture_messages(false)
            .messages_input(&msgs)
            .messages_output(&msgs);
        LlmCall::start("openai", "on")
            .capture_messages(true)
            .messages_input(&msgs);
        LlmCall::start("openai", "default").messages_input(&msgs);
    }
    let spans = mem.spans();
    let off = named(&spans, "chat off");
    assert_eq!(off.attribute("gen_ai.input.messages"), None);
    assert_eq!(off.attribute("gen_ai.output.messages"), None);
    assert_eq!(
        attr(named(&spans, "chat on"), "gen_ai.input.messages").to_json(),
        msgs
    );
    // By default the environment decides (off unless SPANLENS_CAPTURE_MESSAGES is true).
    let env_on = matches!(
        std::env::var(record::CAPTURE_MESSAGES_ENV)
            .unwrap_or_default()
            .to_ascii_lowercase()
            .trim(),
        "1" | "true" | "yes" | "on"
    );
    assert_eq!(
        named(&spans, "chat default")
            .attribute("gen_ai.input.messages")
            .is_some(),
        env_on
    );
}

#[derive(Debug)]
struct RateLimitError(u32);

impl std::fmt::Display for RateLimitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "rate limited for {} s", self.0)
    }
}

#[test]
fn errors_mark_the_call_failed() {
    let (t, mem) = tracer();
    {
        let root = t.span("root").start();
        let _in = root.enter();
        LlmCall::start("openai", "gpt-4o-mini").error(&RateLimitError(20));
        LlmCall::start("openai", "gpt-4o").error_typed(Some("timeout"), "no answer in 30 s");
        LlmCall::start("openai", "gpt-4.1").error("plain text");
    }
    let spans = mem.spans();
    let a = named(&spans, "chat gpt-4o-mini");
    assert_eq!(a.status, Status::Error, "finish does not turn a failure ok");
    assert_eq!(a.status_message.as_deref(), Some("rate limited for 20 s"));
    assert_eq!(text(a, "error.type"), "RateLimitError");
    let b = named(&spans, "chat gpt-4o");
    assert_eq!(text(b, "error.type"), "timeout");
    let plain = named(&spans, "chat gpt-4.1");
    assert_eq!(plain.status, Status::Error);
    assert_eq!(
        plain.attribute("error.type"),
        None,
        "a str says nothing about its type"
    );
    let c = spanlens::convert::to_canonical(&spans, t.resource());
    let ca = canon(&c, "chat gpt-4o-mini");
    assert_eq!(ca.status, Status::Error);
    assert_eq!(ca.error_type.as_deref(), Some("RateLimitError"));
    assert_eq!(ca.status_message.as_deref(), Some("rate limited for 20 s"));
    assert_eq!(
        canon(&c, "chat gpt-4o").error_type.as_deref(),
        Some("timeout")
    );
}

#[test]
fn start_with_a_custom_builder_and_nesting_under_the_call() {
    let (t, mem) = tracer();
    {
        let call = LlmCall::start_with(
            t.span("summarise").attr("app.step", 3),
            "mistral",
            "mistral-large-latest",
        );
        call.operation("text_completion");
        call.in_scope(|| drop(spanlens::span("parse").start()));
        let _g = call.enter();
        drop(spanlens::span("validate").start());
    }
    let spans = mem.spans();
    let llm = named(&spans, "summarise");
    assert_eq!(llm.kind, SpanKind::Llm);
    assert_eq!(llm.parent_span_id, None);
    assert_eq!(int(llm, "app.step"), 3);
    assert_eq!(text(llm, "gen_ai.operation.name"), "text_completion");
    assert_eq!(named(&spans, "parse").parent_span_id, Some(llm.span_id));
    assert_eq!(named(&spans, "validate").parent_span_id, Some(llm.span_id));
    let c = spanlens::convert::to_canonical(&spans, t.resource());
    assert_eq!(canon(&c, "summarise").provider.as_deref(), Some("mistral"));
}

#[test]
fn without_a_parent_or_tracer_recorders_are_noops() {
    // No span is current and no global tracer is installed in this test binary.
    let call = LlmCall::start("openai", "gpt-4o-mini");
    assert!(!call.span().is_recording());
    call.capture_messages(true)
        .messages_input(&json!([]))
        .token()
        .usage_json(&json!({"prompt_tokens": 1}))
        .rate_limit_headers([("retry-after", "1")]);
    call.finish();
    let tool = ToolCall::start("noop");
    tool.arguments("x").result("y").success();
    assert!(!tool.span().is_recording());
    record::guardrail("g", Verdict::pass());
    record::handoff("a", "b");
    assert_eq!(record::tool::run("t", "a", || Ok::<_, String>(1)), Ok(1));
}

#[test]
fn tool_call_records_arguments_result_size_and_retries() {
    let (t, mem) = tracer();
    {
        let root = t.span("root").start();
        let _in = root.enter();
        let tool = ToolCall::start("get_weather");
        tool.call_id("call_abc")
            .description("Current weather for a city")
            .arguments(json!({"city": "Paris"}));
        std::thread::sleep(Duration::from_millis(3));
        tool.result("Sunny, 21°C").retry_count(2).success();
        tool.finish();
    }
    let spans = mem.spans();
    let root = named(&spans, "root");
    let tool = named(&spans, "get_weather");
    assert_eq!(tool.kind, SpanKind::Tool);
    assert_eq!(tool.parent_span_id, Some(root.span_id));
    assert_eq!(tool.status, Status::Ok);
    assert_eq!(text(tool, "gen_ai.operation.name"), "execute_tool");
    assert_eq!(text(tool, "gen_ai.tool.name"), "get_weather");
    assert_eq!(text(tool, "gen_ai.tool.call.id"), "call_abc");
    assert_eq!(
        attr(tool, "gen_ai.tool.call.arguments").to_json(),
        json!({"city": "Paris"})
    );
    assert_eq!(text(tool, "gen_ai.tool.call.result"), "Sunny, 21°C");
    assert_eq!(
        int(tool, "spanlens.tool.result_bytes"),
        12,
        "bytes, not chars"
    );
    assert_eq!(int(tool, "spanlens.tool.retry_count"), 2);
    assert_eq!(tool.attribute("spanlens.tool.result_truncated"), None);
    assert!(tool.end_time.unwrap().0 - tool.start_time.0 >= 3_000_000);

    let c = spanlens::convert::to_canonical(&spans, t.resource());
    let ct = canon(&c, "get_weather");
    assert_eq!(ct.kind, SpanKind::Tool);
    let info = ct.tool.as_ref().unwrap();
    assert_eq!(info.name.as_deref(), Some("get_weather"));
    assert_eq!(info.call_id.as_deref(), Some("call_abc"));
    assert_eq!(
        info.description.as_deref(),
        Some("Current weather for a city")
    );
    assert_eq!(ct.input.as_ref().unwrap().value, json!({"city": "Paris"}));
    assert_eq!(ct.output.as_ref().unwrap().value, json!("Sunny, 21°C"));
    assert!(ct.duration_ns().unwrap() >= 3_000_000);
    assert_eq!(ct.status, Status::Ok);
}

#[derive(Debug)]
struct SearchTimeout;

impl std::fmt::Display for SearchTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("search backend timed out")
    }
}

#[test]
fn tool_run_closure_records_output_or_error_and_nests_children() {
    let (t, mem) = tracer();
    {
        let root = t.span("root").start();
        let _in = root.enter();
        let hits = record::tool::run("search", "q=rust tracing", || {
            drop(spanlens::span("http GET").start());
            Ok::<_, SearchTimeout>(json!({"hits": 3}))
        });
        assert_eq!(hits.unwrap(), json!({"hits": 3}));
        let failed = record::tool::run("lookup", json!({"id": 7}), || {
            Err::<String, _>(SearchTimeout)
        });
        assert!(failed.is_err());
        let nothing = record::tool::run("notify", "ping", || Ok::<(), SearchTimeout>(()));
        assert!(nothing.is_ok());
    }
    let spans = mem.spans();
    let search = named(&spans, "search");
    assert_eq!(search.status, Status::Ok);
    assert_eq!(text(search, "gen_ai.tool.call.arguments"), "q=rust tracing");
    assert_eq!(
        attr(search, "gen_ai.tool.call.result").to_json(),
        json!({"hits": 3})
    );
    assert_eq!(
        int(search, "spanlens.tool.result_bytes"),
        r#"{"hits":3}"#.len() as i64
    );
    assert_eq!(
        named(&spans, "http GET").parent_span_id,
        Some(search.span_id)
    );
    let lookup = named(&spans, "lookup");
    assert_eq!(lookup.status, Status::Error);
    assert_eq!(
        lookup.status_message.as_deref(),
        Some("search backend timed out")
    );
    assert_eq!(text(lookup, "error.type"), "SearchTimeout");
    assert_eq!(lookup.attribute("gen_ai.tool.call.result"), None);
    let notify = named(&spans, "notify");
    assert_eq!(notify.status, Status::Ok);
    assert_eq!(notify.attribute("spanlens.tool.result_bytes"), None);

    let c = spanlens::convert::to_canonical(&spans, t.resource());
    let cs = canon(&c, "search");
    assert_eq!(cs.output.as_ref().unwrap().value, json!({"hits": 3}));
    assert_eq!(cs.input.as_ref().unwrap().value, json!("q=rust tracing"));
    let cl = canon(&c, "lookup");
    assert_eq!(cl.error_type.as_deref(), Some("SearchTimeout"));
    assert_eq!(cl.input.as_ref().unwrap().value, json!({"id": 7}));
    assert_eq!(cl.tool.as_ref().unwrap().name.as_deref(), Some("lookup"));
}

#[test]
fn oversized_tool_results_are_cut_but_measured() {
    let (t, mem) = tracer();
    let big = "x".repeat(MAX_PAYLOAD_BYTES + 1000);
    {
        let root = t.span("root").start();
        let _in = root.enter();
        ToolCall::start("dump").result(big.clone());
    }
    let spans = mem.spans();
    let dump = named(&spans, "dump");
    assert_eq!(int(dump, "spanlens.tool.result_bytes"), big.len() as i64);
    assert_eq!(
        attr(dump, "spanlens.tool.result_truncated"),
        &Value::Bool(true)
    );
    assert_eq!(
        text(dump, "gen_ai.tool.call.result").len(),
        MAX_PAYLOAD_BYTES
    );
}

#[tokio::test]
async fn async_tool_runs_in_its_own_span() {
    let (t, mem) = tracer();
    let root = t.span("root").start();
    let root_id = root.span_id();
    let out = async {
        record::tool::run_async("fetch", json!({"url": "https://example.com"}), async {
            tokio::time::sleep(Duration::from_millis(2)).await;
            drop(spanlens::span("inner").start());
            Ok::<_, SearchTimeout>("<html>".to_string())
        })
        .await
    }
    .instrument(root)
    .await;
    assert_eq!(out.unwrap(), "<html>");
    let spans = mem.spans();
    let fetch = named(&spans, "fetch");
    assert_eq!(fetch.parent_span_id, root_id);
    assert_eq!(named(&spans, "inner").parent_span_id, Some(fetch.span_id));
    assert_eq!(text(fetch, "gen_ai.tool.call.result"), "<html>");
    assert_eq!(int(fetch, "spanlens.tool.result_bytes"), 6);
    assert_eq!(fetch.status, Status::Ok);
    assert!(fetch.end_time.unwrap().0 - fetch.start_time.0 >= 2_000_000);
}

#[test]
fn guardrail_verdicts_as_events_and_as_spans() {
    let (t, mem) = tracer();
    {
        let root = t.span("root").start();
        let _in = root.enter();
        record::guardrail("pii", Verdict::fail("email address found").with_score(0.93));
        record::guardrail("length", Verdict::pass());
        let v = record::guardrail_check("toxicity", || {
            std::thread::sleep(Duration::from_millis(2));
            Verdict::pass().with_score(0.02).with_reason("clean")
        });
        assert!(v.passed);
        record::GuardrailCheck::start("jailbreak").verdict(Verdict::fail("prompt injection"));
    }
    let spans = mem.spans();
    let root = named(&spans, "root");
    let verdicts: Vec<_> = root
        .events
        .iter()
        .filter(|e| e.name == "guardrail.verdict")
        .collect();
    assert_eq!(verdicts.len(), 2);
    assert_eq!(
        verdicts[0].attributes.to_vec(),
        vec![
            ("guardrail.name".into(), Value::from("pii")),
            ("guardrail.passed".into(), Value::Bool(false)),
            (
                "guardrail.reason".into(),
                Value::from("email address found")
            ),
            ("guardrail.score".into(), Value::F64(0.93)),
        ]
    );
    assert_eq!(
        verdicts[1].attributes.to_vec(),
        vec![
            ("guardrail.name".into(), Value::from("length")),
            ("guardrail.passed".into(), Value::Bool(true)),
        ]
    );
    let tox = named(&spans, "toxicity");
    assert_eq!(tox.kind, SpanKind::Guardrail);
    assert_eq!(tox.parent_span_id, Some(root.span_id));
    assert_eq!(tox.status, Status::Ok);
    assert_eq!(attr(tox, "spanlens.guardrail.passed"), &Value::Bool(true));
    assert_eq!(float(tox, "spanlens.guardrail.score"), 0.02);
    assert_eq!(text(tox, "spanlens.guardrail.reason"), "clean");
    assert_eq!(tox.events.len(), 1);
    assert_eq!(tox.events[0].name, "guardrail.verdict");
    assert!(tox.end_time.unwrap().0 - tox.start_time.0 >= 2_000_000);
    let jb = named(&spans, "jailbreak");
    assert_eq!(attr(jb, "spanlens.guardrail.passed"), &Value::Bool(false));
    assert_eq!(text(jb, "spanlens.guardrail.reason"), "prompt injection");

    let c = spanlens::convert::to_canonical(&spans, t.resource());
    let cr = canon(&c, "root");
    let ev = cr
        .events
        .iter()
        .find(|e| e.name == "guardrail.verdict")
        .unwrap();
    assert_eq!(ev.attributes["guardrail.name"], "pii");
    assert_eq!(ev.attributes["guardrail.passed"], false);
    assert_eq!(ev.attributes["guardrail.score"], 0.93);
    assert_eq!(canon(&c, "toxicity").kind, SpanKind::Guardrail);
    assert_eq!(
        canon(&c, "jailbreak").attributes["spanlens.guardrail.passed"],
        false
    );
}

#[test]
fn handoffs_and_agent_spans() {
    let (t, mem) = tracer();
    {
        let root = t.span("root").start();
        let _in = root.enter();
        let triage = record::agent("triage").start();
        let _a = triage.enter();
        LlmCall::start("openai", "gpt-4o-mini").finish();
        // Re-entering the same agent while its span is open reuses that span.
        let again = record::agent("triage").attr("turn", 2).start();
        assert_eq!(again.span_id(), triage.span_id());
        record::handoff("triage", "billing");
    }
    let spans = mem.spans();
    let root = named(&spans, "root");
    let triage = named(&spans, "triage");
    assert_eq!(triage.kind, SpanKind::Agent);
    assert_eq!(triage.parent_span_id, Some(root.span_id));
    assert_eq!(text(triage, "gen_ai.agent.name"), "triage");
    assert_eq!(int(triage, "turn"), 2);
    assert_eq!(
        named(&spans, "chat gpt-4o-mini").parent_span_id,
        Some(triage.span_id)
    );
    let h = named(&spans, "handoff: triage → billing");
    assert_eq!(h.kind, SpanKind::Handoff);
    assert_eq!(h.parent_span_id, Some(triage.span_id));
    assert_eq!(text(h, "spanlens.handoff.from"), "triage");
    assert_eq!(text(h, "spanlens.handoff.to"), "billing");
    assert_eq!(h.status, Status::Ok);

    let c = spanlens::convert::to_canonical(&spans, t.resource());
    let ct = canon(&c, "triage");
    assert_eq!(ct.kind, SpanKind::Agent);
    assert_eq!(ct.agent_name.as_deref(), Some("triage"));
    let ch = canon(&c, "handoff: triage → billing");
    assert_eq!(ch.kind, SpanKind::Handoff);
    assert_eq!(ch.attributes["spanlens.handoff.to"], "billing");
}
