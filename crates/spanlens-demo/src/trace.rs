//! Building traces: spans for model calls, tool calls, guardrails, retries and rate limits,
//! shared by every workflow.

use crate::models::Model;
use crate::rng::Rng;
use crate::{DEMO_SOURCE, GATEWAY_SERVICE, NS_PER_MS, ONE_HOUR_CACHE_MODEL, SEC};
use serde_json::{json, Value};
use spanlens_core::normalize::propagate_agent_names;
use spanlens_core::{
    compute_cost, price_span, Attributes, Cost, CostBreakdown, CostSource, Event, Message, Payload,
    PriceCatalog, PromptTemplate, RateLimitWindow, RateLimits, Span, SpanKind, Status, Timestamp,
    ToolCallRef, ToolInfo, TraceId, Usage,
};

/// A failure plan for an operation that is retried.
#[derive(Clone)]
pub(crate) struct Retry {
    /// Failed attempts.
    pub(crate) fails: u64,
    /// True when no attempt succeeds (the last failure ends the span in error).
    pub(crate) exhausted: bool,
    pub(crate) error_type: &'static str,
    pub(crate) message: String,
    /// How long a failing attempt takes.
    pub(crate) attempt_ms: (u64, u64),
    /// First backoff; doubled after every failure (plus jitter).
    pub(crate) backoff_ms: u64,
    /// A server's `Retry-After` hint, which replaces the backoff.
    pub(crate) retry_after_ms: Option<u64>,
}

/// One model call to add to a trace.
pub(crate) struct Call {
    pub(crate) name: &'static str,
    pub(crate) model: Model,
    /// All input tokens, cached ones included.
    pub(crate) input: u64,
    /// Visible output tokens (reasoning tokens are added for reasoning models).
    pub(crate) output: u64,
    /// Tokens of stable prompt prefix (system prompt, tools, earlier turns).
    pub(crate) prefix: u64,
    /// Whether the prefix is already in the provider's cache.
    pub(crate) warm: bool,
    pub(crate) temperature: f64,
    pub(crate) max_tokens: u64,
    pub(crate) messages: Vec<Message>,
    pub(crate) reply: Message,
    pub(crate) prompt: Option<PromptTemplate>,
    /// Name of the JSON schema the output must follow (structured outputs).
    pub(crate) json_schema: Option<&'static str>,
    pub(crate) retry: Option<Retry>,
}

impl Call {
    pub(crate) fn new(name: &'static str, model: Model, input: u64, output: u64) -> Call {
        Call {
            name,
            model,
            input,
            output,
            prefix: 0,
            warm: false,
            temperature: 0.2,
            max_tokens: 1024,
            messages: Vec::new(),
            reply: Message::default(),
            prompt: None,
            json_schema: None,
            retry: None,
        }
    }
}

/// One tool execution to add to a trace.
pub(crate) struct ToolCall {
    pub(crate) name: &'static str,
    pub(crate) description: &'static str,
    pub(crate) args: Value,
    pub(crate) result: Value,
    pub(crate) duration_ms: (u64, u64),
    pub(crate) call_id: Option<String>,
    pub(crate) retry: Option<Retry>,
}

/// Trace-level context copied onto every span of the trace.
pub(crate) struct Ctx {
    pub(crate) service: &'static str,
    pub(crate) user: Option<String>,
    pub(crate) session: Option<String>,
    pub(crate) tags: Vec<String>,
    pub(crate) metadata: Attributes,
    /// Forces the workflow's rarest failure in this trace.
    pub(crate) incident: bool,
}

/// What happened when an operation ran: its span, when it ended, whether it succeeded.
#[derive(Clone, Copy)]
pub(crate) struct Done {
    pub(crate) span: usize,
    pub(crate) end: u64,
    pub(crate) ok: bool,
}

/// A trace under construction; times are milliseconds from the trace's start.
pub(crate) struct Trace<'a> {
    pub(crate) rng: &'a mut Rng,
    pub(crate) window_start: u64,
    pub(crate) t0: u64,
    pub(crate) trace_id: TraceId,
    pub(crate) spans: Vec<Span>,
}

impl Trace<'_> {
    pub(crate) fn ts(&self, at: u64) -> Timestamp {
        Timestamp(self.window_start + (self.t0 + at) * NS_PER_MS)
    }

    pub(crate) fn open(
        &mut self,
        parent: Option<usize>,
        name: &str,
        kind: SpanKind,
        at: u64,
    ) -> usize {
        let span_id = self.rng.span_id();
        let parent_span_id = parent.map(|p| self.spans[p].span_id);
        self.spans.push(Span {
            trace_id: self.trace_id,
            span_id,
            parent_span_id,
            name: name.to_string(),
            kind,
            start_time: self.ts(at),
            ..Default::default()
        });
        self.spans.len() - 1
    }

    /// Ends a span; one not marked failed is `ok`.
    pub(crate) fn close(&mut self, i: usize, at: u64) {
        let end = self.ts(at);
        let s = &mut self.spans[i];
        s.end_time = Some(end);
        if s.status == Status::Unset {
            s.status = Status::Ok;
        }
    }

    pub(crate) fn fail(&mut self, i: usize, error_type: &str, message: impl Into<String>) {
        let s = &mut self.spans[i];
        s.status = Status::Error;
        s.error_type = Some(error_type.to_string());
        s.status_message = Some(message.into());
    }

    pub(crate) fn event(&mut self, i: usize, at: u64, name: &str, attributes: Value) {
        let time = self.ts(at);
        let attributes = match attributes {
            Value::Object(m) => m.into_iter().collect(),
            _ => Attributes::new(),
        };
        self.spans[i].events.push(Event {
            name: name.to_string(),
            time,
            attributes,
        });
    }

    pub(crate) fn attr(&mut self, i: usize, key: &str, value: Value) {
        self.spans[i].attributes.insert(key.to_string(), value);
    }

    pub(crate) fn input(&mut self, i: usize, v: Value) {
        self.spans[i].input = Some(Payload::from_value(v));
    }

    pub(crate) fn output(&mut self, i: usize, v: Value) {
        self.spans[i].output = Some(Payload::from_value(v));
    }

    /// Adds the failed attempts of `r` to span `i` from `at` as `retry` events (and the final
    /// `retry.outcome` when every attempt failed); returns when the next attempt starts, or when
    /// the span ends if none does.
    pub(crate) fn failed_attempts(&mut self, i: usize, at: u64, r: &Retry) -> u64 {
        let mut t = at;
        for attempt in 1..=r.fails {
            t += self.rng.range(r.attempt_ms.0, r.attempt_ms.1);
            if r.exhausted && attempt == r.fails {
                self.event(
                    i,
                    t,
                    "retry.outcome",
                    json!({
                        "retry.attempts": attempt,
                        "retry.succeeded": false,
                        "retry.stop_reason": "exhausted",
                        "error.type": r.error_type,
                        "error.message": r.message,
                    }),
                );
                self.fail(
                    i,
                    r.error_type,
                    format!("{} (gave up after {attempt} attempts)", r.message),
                );
                return t;
            }
            let jitter = self.rng.below(r.backoff_ms / 4 + 1);
            let backoff = r
                .retry_after_ms
                .unwrap_or((r.backoff_ms << (attempt - 1)) + jitter);
            let mut attrs = json!({
                "retry.attempt": attempt,
                "error.type": r.error_type,
                "error.message": r.message,
                "retry.backoff_ms": backoff,
            });
            if let Some(h) = r.retry_after_ms {
                attrs["retry.retry_after_ms"] = json!(h);
            }
            self.event(i, t, "retry", attrs);
            t += backoff;
        }
        t
    }

    /// Records the `retry.outcome` of an operation that failed `r.fails` times and then succeeded.
    pub(crate) fn recovered(&mut self, i: usize, at: u64, first_failure: u64, r: &Retry) {
        self.event(
            i,
            at,
            "retry.outcome",
            json!({
                "retry.attempts": r.fails + 1,
                "retry.succeeded": true,
                "retry.recovery_ms": at.saturating_sub(first_failure),
            }),
        );
    }

    /// A rate-limit snapshot as the provider's response headers report it.
    pub(crate) fn rate_limits(
        &mut self,
        m: &Model,
        at: u64,
        tokens: u64,
        limited: Option<u64>,
    ) -> Option<RateLimits> {
        if m.rpm == 0 {
            return None;
        }
        let req_left = match limited {
            Some(_) => 0,
            None => self.rng.range(m.rpm / 5, m.rpm - 1),
        };
        let tok_left = m
            .tpm
            .saturating_sub(tokens)
            .saturating_sub(self.rng.below(m.tpm / 2));
        let (req_in, tok_in) = (self.rng.range(100, 60 * SEC), self.rng.range(100, 60 * SEC));
        let (req_reset, tok_reset) = (self.ts(at + req_in), self.ts(at + tok_in));
        let window = |limit: u64, remaining: u64, reset: Timestamp| RateLimitWindow {
            limit: Some(limit),
            remaining: Some(remaining),
            reset: Some(reset),
        };
        let mut rl = RateLimits {
            requests: Some(window(m.rpm, req_left, req_reset)),
            tokens: Some(window(m.tpm, tok_left, tok_reset)),
            retry_after_ms: limited,
            ..Default::default()
        };
        if m.provider == "anthropic" {
            let input_tpm = m.tpm * 4 / 5;
            let output_tpm = m.tpm / 5;
            rl.input_tokens = Some(window(
                input_tpm,
                input_tpm.saturating_sub(self.rng.below(input_tpm / 2)),
                tok_reset,
            ));
            rl.output_tokens = Some(window(
                output_tpm,
                output_tpm.saturating_sub(self.rng.below(output_tpm / 2)),
                tok_reset,
            ));
        }
        Some(rl)
    }

    /// Adds a model call under `parent` starting at `at`.
    pub(crate) fn llm(&mut self, parent: usize, at: u64, c: Call) -> Done {
        let m = c.model;
        let kind = if m.request.contains("embedding") {
            SpanKind::Embedding
        } else {
            SpanKind::Llm
        };
        let i = self.open(Some(parent), c.name, kind, at);
        {
            let s = &mut self.spans[i];
            s.provider = Some(m.provider.to_string());
            s.request_model = Some(m.request.to_string());
            if kind == SpanKind::Llm {
                let p = &mut s.model_parameters;
                p.insert("temperature".into(), json!(c.temperature));
                p.insert("max_tokens".into(), json!(c.max_tokens));
                if let Some(schema) = c.json_schema {
                    p.insert(
                        "response_format".into(),
                        json!({"type": "json_schema", "json_schema": {"name": schema, "strict": true}}),
                    );
                }
                if m.reasoning {
                    p.insert("reasoning_effort".into(), json!("medium"));
                }
            }
            s.input_messages = c.messages;
            s.prompt = c.prompt;
            s.attributes.insert(
                "gen_ai.operation.name".into(),
                json!(if kind == SpanKind::Llm {
                    "chat"
                } else {
                    "embeddings"
                }),
            );
        }
        let mut t = at;
        let mut first_failure = None;
        if let Some(r) = &c.retry {
            first_failure = Some(at + r.attempt_ms.0);
            t = self.failed_attempts(i, at, r);
            if r.exhausted {
                let rl = self.rate_limits(&m, t, 0, r.retry_after_ms);
                self.spans[i].rate_limits = rl;
                self.close(i, t);
                return Done {
                    span: i,
                    end: t,
                    ok: false,
                };
            }
        }
        let reasoning = if m.reasoning {
            self.rng.range(c.output / 2, c.output * 3)
        } else {
            0
        };
        let output = if kind == SpanKind::Llm {
            c.output + reasoning
        } else {
            0
        };
        let think_ms = reasoning * SEC / m.tokens_per_s;
        let ttft = self.rng.range(m.ttft_ms.0, m.ttft_ms.1) + c.input / 40 + think_ms;
        let end = t + ttft + c.output * SEC / m.tokens_per_s;
        let (cache_read, cache_write) = m.cached(c.prefix, c.input, c.warm);
        let usage = Usage {
            input_tokens: c.input,
            output_tokens: output,
            cache_read_tokens: cache_read,
            cache_write_tokens: cache_write,
            reasoning_tokens: reasoning,
            ..Default::default()
        }
        .normalized();
        let limited = c.retry.as_ref().and_then(|r| r.retry_after_ms);
        let rl = self.rate_limits(&m, end, usage.total_tokens, limited);
        if let (Some(r), Some(first)) = (&c.retry, first_failure) {
            self.recovered(i, end, first, r);
        }
        let s = &mut self.spans[i];
        s.response_model = Some(m.response.to_string());
        s.usage = Some(usage);
        s.rate_limits = rl;
        if kind == SpanKind::Llm {
            s.ttft_ns = Some((t - at + ttft) * NS_PER_MS);
            let finish = if c.reply.tool_calls.is_empty() {
                "stop"
            } else {
                "tool_calls"
            };
            s.finish_reasons = vec![finish.to_string()];
            let mut reply = c.reply;
            reply.role = Some("assistant".into());
            reply.finish_reason = Some(finish.into());
            s.output_messages = vec![reply];
        }
        self.close(i, end);
        Done {
            span: i,
            end,
            ok: true,
        }
    }

    /// Adds a tool execution under `parent` starting at `at`.
    pub(crate) fn tool(&mut self, parent: usize, at: u64, c: ToolCall) -> Done {
        let i = self.open(Some(parent), c.name, SpanKind::Tool, at);
        self.spans[i].tool = Some(ToolInfo {
            name: Some(c.name.to_string()),
            call_id: c.call_id,
            description: Some(c.description.to_string()),
        });
        self.input(i, c.args);
        let mut t = at;
        if let Some(r) = &c.retry {
            t = self.failed_attempts(i, at, r);
            if r.exhausted {
                self.spans[i].error_stack = Some(format!(
                    "{}: {}\n  at {} (tools/{}.py:{})\n  at run_tool (agents/runtime.py:214)",
                    r.error_type,
                    r.message,
                    c.name,
                    c.name.split('.').next().unwrap_or(c.name),
                    40 + c.name.len() * 3
                ));
                self.close(i, t);
                return Done {
                    span: i,
                    end: t,
                    ok: false,
                };
            }
        }
        let end = t + self.rng.range(c.duration_ms.0, c.duration_ms.1);
        if let Some(r) = &c.retry {
            self.recovered(i, end, at + r.attempt_ms.0, r);
        }
        self.output(i, c.result);
        self.close(i, end);
        Done {
            span: i,
            end,
            ok: true,
        }
    }

    /// A guardrail check with its verdict.
    pub(crate) fn guardrail(
        &mut self,
        parent: usize,
        at: u64,
        name: &str,
        dur: u64,
        passed: bool,
        reason: &str,
    ) -> Done {
        let i = self.open(Some(parent), name, SpanKind::Guardrail, at);
        let end = at + dur;
        self.event(
            i,
            end,
            "guardrail.verdict",
            json!({"guardrail.name": name, "guardrail.passed": passed, "guardrail.reason": reason}),
        );
        self.attr(i, "spanlens.guardrail.passed", json!(passed));
        self.output(i, json!({"passed": passed, "reason": reason}));
        self.close(i, end);
        Done {
            span: i,
            end,
            ok: passed,
        }
    }

    /// Finishes the trace: context onto every span, agent names, prices.
    pub(crate) fn finish(mut self, ctx: &Ctx) -> Vec<Span> {
        let resource: std::sync::Arc<Attributes> = std::sync::Arc::new(
            [
                ("service.name".to_string(), json!(ctx.service)),
                ("service.version".to_string(), json!("2.14.0")),
                ("deployment.environment".to_string(), json!("production")),
                ("telemetry.sdk.name".to_string(), json!("spanlens-demo")),
            ]
            .into_iter()
            .collect::<Attributes>(),
        );
        for s in &mut self.spans {
            s.service = Some(ctx.service.to_string());
            s.source = Some(DEMO_SOURCE.to_string());
            s.user_id = ctx.user.clone();
            s.session_id = ctx.session.clone();
            s.tags = ctx.tags.clone();
            s.metadata = ctx.metadata.clone();
            s.resource = resource.clone();
        }
        propagate_agent_names(&mut self.spans);
        let catalog = PriceCatalog::builtin();
        for s in &mut self.spans {
            if ctx.service == GATEWAY_SERVICE {
                gateway_bill(s, catalog);
            }
            price_span(s, catalog);
        }
        self.spans
    }
}

/// Sets the cost the gateway reported for a model call: the catalog's price of what the provider
/// actually billed, which for [`ONE_HOUR_CACHE_MODEL`] includes one-hour cache writes the span's
/// usage does not show. Calls that failed (no usage) were not billed and report nothing.
pub(crate) fn gateway_bill(s: &mut Span, catalog: &PriceCatalog) {
    let Some(usage) = s.usage.as_ref().filter(|_| s.kind == SpanKind::Llm) else {
        return;
    };
    let Some(model) = s.response_model.as_deref() else {
        return;
    };
    let Some(entry) = catalog.lookup(model, s.provider.as_deref(), Some(s.start_time)) else {
        return;
    };
    let mut billed = usage.clone();
    if model == ONE_HOUR_CACHE_MODEL && billed.cache_write_tokens > 0 {
        billed
            .extra
            .insert(Usage::CACHE_WRITE_1H.to_string(), billed.cache_write_tokens);
    }
    // A gateway reports the total it charged, not the catalog's breakdown.
    s.cost = Some(Cost {
        source: CostSource::Reported,
        amounts: CostBreakdown {
            total: compute_cost(entry, &billed).total,
            ..Default::default()
        },
        pricing_id: None,
        pricing_version: None,
        computed: None,
    });
    s.attributes
        .insert("server.address".into(), json!("openrouter.ai"));
    s.attributes
        .insert("llm.gateway".into(), json!("openrouter"));
}

pub(crate) fn msg(role: &str, content: impl Into<String>) -> Message {
    Message {
        role: Some(role.to_string()),
        content: Some(content.into()),
        ..Default::default()
    }
}

pub(crate) fn tool_call(id: &str, name: &str, args: &Value) -> ToolCallRef {
    ToolCallRef {
        id: Some(id.to_string()),
        name: Some(name.to_string()),
        arguments: Some(args.to_string()),
    }
}

pub(crate) fn tool_result(id: &str, name: &str, result: &Value) -> Message {
    Message {
        role: Some("tool".into()),
        content: Some(result.to_string()),
        name: Some(name.to_string()),
        tool_call_id: Some(id.to_string()),
        ..Default::default()
    }
}

pub(crate) fn template(name: &str, version: &str, text: &str, vars: Value) -> PromptTemplate {
    PromptTemplate {
        name: Some(name.to_string()),
        template: Some(text.to_string()),
        version: Some(version.to_string()),
        variables: match vars {
            Value::Object(m) => m.into_iter().collect(),
            _ => Attributes::new(),
        },
    }
}

pub(crate) fn meta(v: Value) -> Attributes {
    match v {
        Value::Object(m) => m.into_iter().collect(),
        _ => Attributes::new(),
    }
}

pub(crate) fn tags(xs: &[&str]) -> Vec<String> {
    xs.iter().map(|s| s.to_string()).collect()
}
