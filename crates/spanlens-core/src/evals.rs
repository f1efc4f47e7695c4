//! Evaluation scores and the built-in rule evaluators that produce them from spans.
//!
//! A score is attached to a trace, a span or a session; it is numeric, categorical or boolean, and
//! says where it came from (the API, a rule, an LLM judge, a human). Rule evaluators are pure
//! functions of one span, so the server can run them on ingest without any I/O.

use crate::span::{Message, Payload, Span, SpanKind};
use crate::{SpanId, TraceId};
use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::OnceLock;

/// The kind of value a score holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScoreType {
    /// A number (`value`).
    Numeric,
    /// A label (`label`).
    Categorical,
    /// Pass or fail (`value` 1 or 0).
    Boolean,
}

/// Who produced a score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScoreSource {
    /// Sent through the scores API.
    Api,
    /// A built-in rule evaluator.
    Rule,
    /// An LLM-as-judge evaluator.
    Llm,
    /// A person (e.g. annotation in a review tool).
    Human,
    /// A `gen_ai.evaluation.result` event sent with the span or as an OTLP log record.
    OtelEvent,
}

impl ScoreSource {
    /// Stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            ScoreSource::Api => "api",
            ScoreSource::Rule => "rule",
            ScoreSource::Llm => "llm",
            ScoreSource::Human => "human",
            ScoreSource::OtelEvent => "otel_event",
        }
    }
}

/// One score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Score {
    /// Store id (absent until stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    /// Trace scored (or the trace of the scored span).
    #[serde(default)]
    pub trace_id: Option<TraceId>,
    /// Span scored.
    #[serde(default)]
    pub span_id: Option<SpanId>,
    /// Session scored.
    #[serde(default)]
    pub session_id: Option<String>,
    /// What is measured, e.g. `helpfulness`, `latency_sla`.
    pub name: String,
    /// Numeric, categorical or boolean.
    pub data_type: ScoreType,
    /// Numeric value, or 1/0 for a boolean.
    #[serde(default)]
    pub value: Option<f64>,
    /// Categorical label.
    #[serde(default)]
    pub label: Option<String>,
    /// Who produced it.
    pub source: ScoreSource,
    /// Why (the rule's finding, the judge's reasoning, a reviewer's note).
    #[serde(default)]
    pub comment: Option<String>,
    /// Who gave it, when a person did (the reviewer's account or key in a review queue).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// When it was stored, ns since the epoch: set by the store, ignored on input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_ns: Option<u64>,
}

/// Longest `author` of a score, in characters.
pub const MAX_AUTHOR_CHARS: usize = 200;

/// Why a score was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScoreError {
    /// Nothing to attach it to.
    #[error("score {0:?}: give a trace_id, a span_id with its trace_id, or a session_id")]
    NoTarget(String),
    /// A span without its trace.
    #[error("score {0:?}: a span_id needs its trace_id")]
    SpanWithoutTrace(String),
    /// Empty name.
    #[error("a score needs a non-empty name")]
    NoName,
    /// The value does not fit the type.
    #[error("score {name:?}: {why}")]
    BadValue {
        /// The score.
        name: String,
        /// What is wrong.
        why: String,
    },
}

impl Score {
    /// Checks the target and that the value fits the type.
    pub fn validate(&self) -> Result<(), ScoreError> {
        if self.name.trim().is_empty() {
            return Err(ScoreError::NoName);
        }
        if self.span_id.is_some() && self.trace_id.is_none() {
            return Err(ScoreError::SpanWithoutTrace(self.name.clone()));
        }
        if self.trace_id.is_none() && self.session_id.is_none() {
            return Err(ScoreError::NoTarget(self.name.clone()));
        }
        if let Some(a) = &self.author {
            if a.chars().count() > MAX_AUTHOR_CHARS || a.chars().any(char::is_control) {
                return Err(ScoreError::BadValue {
                    name: self.name.clone(),
                    why: format!(
                        "`author` takes at most {MAX_AUTHOR_CHARS} characters, no control characters"
                    ),
                });
            }
        }
        let bad = |why: &str| ScoreError::BadValue {
            name: self.name.clone(),
            why: why.into(),
        };
        match self.data_type {
            ScoreType::Numeric => match self.value {
                Some(v) if v.is_finite() => Ok(()),
                _ => Err(bad("a numeric score needs a finite `value`")),
            },
            ScoreType::Boolean => match self.value {
                Some(v) if v == 0.0 || v == 1.0 => Ok(()),
                _ => Err(bad("a boolean score needs `value` 1 (pass) or 0 (fail)")),
            },
            ScoreType::Categorical => match self.label.as_deref().map(str::trim) {
                Some(l) if !l.is_empty() => Ok(()),
                _ => Err(bad("a categorical score needs a non-empty `label`")),
            },
        }
    }

    /// A pass/fail score of a span produced by a rule.
    fn verdict(span: &Span, name: &str, pass: bool, comment: String) -> Score {
        Score {
            id: None,
            trace_id: Some(span.trace_id),
            span_id: Some(span.span_id),
            session_id: None,
            name: name.to_string(),
            data_type: ScoreType::Boolean,
            value: Some(if pass { 1.0 } else { 0.0 }),
            label: None,
            source: ScoreSource::Rule,
            comment: Some(comment),
            author: None,
            created_ns: None,
        }
    }
}

/// Which payloads a PII check reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayloadSide {
    /// The span's input (and input messages).
    Input,
    /// The span's output (and output messages).
    Output,
    /// Both.
    #[default]
    Both,
}

/// What a rule checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum Rule {
    /// The span takes at most `max_ms`.
    LatencySla {
        /// Limit, milliseconds.
        max_ms: f64,
    },
    /// The span costs at most `max_usd` (unpriced spans are not judged).
    CostBudget {
        /// Limit, USD.
        max_usd: f64,
    },
    /// The output is valid JSON.
    ValidJson,
    /// The output is JSON matching `schema` (see [`check_schema`] for the keywords read).
    JsonSchema {
        /// The schema.
        schema: Value,
    },
    /// No email address, phone number, card number (Luhn-valid) or US SSN in the payloads: a
    /// guardrail audit.
    Pii {
        /// Which payloads are read.
        #[serde(default)]
        on: PayloadSide,
    },
    /// The output is not empty.
    NonEmptyOutput,
    /// Output tokens per second (after the first token when known) of at least `min`.
    TokensPerSecondFloor {
        /// Floor, tokens/s.
        min: f64,
    },
}

/// A named rule applied to spans of some kinds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleEvaluator {
    /// Score name.
    pub name: String,
    /// The check.
    #[serde(flatten)]
    pub rule: Rule,
    /// Spans of these kinds are evaluated (default: LLM calls).
    #[serde(default = "default_kinds")]
    pub kinds: Vec<SpanKind>,
}

fn default_kinds() -> Vec<SpanKind> {
    vec![SpanKind::Llm]
}

/// A payload as text (text as is, structured values as JSON), else the messages' contents joined
/// by newlines; `None` when there is neither. What evaluators and judges read as a span's input
/// or output.
pub fn payload_text(payload: Option<&Payload>, messages: &[Message]) -> Option<String> {
    if let Some(p) = payload {
        return Some(match &p.value {
            Value::String(s) => s.clone(),
            v => v.to_string(),
        });
    }
    let parts: Vec<&str> = messages
        .iter()
        .filter_map(|m| m.content.as_deref())
        .collect();
    (!parts.is_empty()).then(|| parts.join("\n"))
}

fn output_text(span: &Span) -> Option<String> {
    payload_text(span.output.as_ref(), &span.output_messages)
}

fn input_text(span: &Span) -> Option<String> {
    payload_text(span.input.as_ref(), &span.input_messages)
}

/// The output parsed as JSON: a structured payload as is, text parsed.
fn output_json(span: &Span) -> Result<Value, String> {
    match span.output.as_ref().map(|p| &p.value) {
        Some(Value::String(s)) => serde_json::from_str(s).map_err(|e| e.to_string()),
        Some(v) => Ok(v.clone()),
        None => match output_text(span) {
            Some(t) => serde_json::from_str(&t).map_err(|e| e.to_string()),
            None => Err("no output".into()),
        },
    }
}

impl RuleEvaluator {
    /// The rule's score for `span`, or `None` when the rule does not apply to it (wrong kind,
    /// nothing to judge).
    pub fn evaluate(&self, span: &Span) -> Option<Score> {
        if !self.kinds.contains(&span.kind) {
            return None;
        }
        let (pass, comment) = match &self.rule {
            Rule::LatencySla { max_ms } => {
                let ms = span.duration_ns()? as f64 / 1e6;
                (ms <= *max_ms, format!("{ms:.1} ms against {max_ms} ms"))
            }
            Rule::CostBudget { max_usd } => {
                let usd = span.cost.as_ref()?.amounts.total.as_usd_f64();
                (usd <= *max_usd, format!("${usd} against ${max_usd}"))
            }
            Rule::ValidJson => match output_json(span) {
                Ok(_) => (true, "output is JSON".into()),
                Err(e) => (false, format!("output is not JSON: {e}")),
            },
            Rule::JsonSchema { schema } => match output_json(span) {
                Ok(v) => match check_schema(schema, &v, "$") {
                    Ok(()) => (true, "output matches the schema".into()),
                    Err(e) => (false, e),
                },
                Err(e) => (false, format!("output is not JSON: {e}")),
            },
            Rule::Pii { on } => {
                let mut found = Vec::new();
                if matches!(on, PayloadSide::Input | PayloadSide::Both) {
                    found.extend(input_text(span).iter().flat_map(|t| find_pii(t)));
                }
                if matches!(on, PayloadSide::Output | PayloadSide::Both) {
                    found.extend(output_text(span).iter().flat_map(|t| find_pii(t)));
                }
                found.sort();
                found.dedup();
                if found.is_empty() {
                    (true, "no PII found".into())
                } else {
                    (false, format!("found {}", found.join(", ")))
                }
            }
            Rule::NonEmptyOutput => {
                let empty = output_text(span).is_none_or(|t| t.trim().is_empty());
                (
                    !empty,
                    if empty { "empty output" } else { "has output" }.into(),
                )
            }
            Rule::TokensPerSecondFloor { min } => {
                let out = span.usage.as_ref()?.output_tokens;
                let dur = span.duration_ns()?;
                let gen_ns = dur.saturating_sub(span.ttft_ns.unwrap_or(0));
                if out == 0 || gen_ns == 0 {
                    return None;
                }
                let tps = out as f64 / (gen_ns as f64 / 1e9);
                (tps >= *min, format!("{tps:.1} tokens/s against {min}"))
            }
        };
        Some(Score::verdict(span, &self.name, pass, comment))
    }
}

/// Validates `value` against a JSON Schema subset: `type` (one or a list), `enum`, `const`,
/// `required`, `properties`, `additionalProperties: false`, `items`, `minItems`, `maxItems`,
/// `minLength`, `maxLength`, `minimum`, `maximum`. Other keywords are ignored (they pass).
/// The error names the JSON path of the first violation.
pub fn check_schema(schema: &Value, value: &Value, path: &str) -> Result<(), String> {
    let Some(s) = schema.as_object() else {
        return Ok(()); // `true` or a non-object schema accepts everything
    };
    if let Some(t) = s.get("type") {
        let types: Vec<&str> = match t {
            Value::String(one) => vec![one.as_str()],
            Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !types.is_empty() && !types.iter().any(|t| type_matches(t, value)) {
            return Err(format!(
                "{path}: expected {}, got {}",
                types.join(" or "),
                type_name(value)
            ));
        }
    }
    if let Some(Value::Array(allowed)) = s.get("enum") {
        if !allowed.contains(value) {
            return Err(format!(
                "{path}: {value} is not one of {}",
                Value::Array(allowed.clone())
            ));
        }
    }
    if let Some(c) = s.get("const") {
        if c != value {
            return Err(format!("{path}: expected {c}, got {value}"));
        }
    }
    match value {
        Value::Object(obj) => {
            for r in s
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(k) = r.as_str() {
                    if !obj.contains_key(k) {
                        return Err(format!("{path}: missing required property {k:?}"));
                    }
                }
            }
            let props = s.get("properties").and_then(Value::as_object);
            for (k, v) in obj {
                match props.and_then(|p| p.get(k)) {
                    Some(sub) => check_schema(sub, v, &format!("{path}.{k}"))?,
                    None if s.get("additionalProperties") == Some(&Value::Bool(false)) => {
                        return Err(format!("{path}: property {k:?} is not allowed"));
                    }
                    None => {}
                }
            }
        }
        Value::Array(items) => {
            let n = items.len() as u64;
            if let Some(min) = s.get("minItems").and_then(Value::as_u64) {
                if n < min {
                    return Err(format!("{path}: {n} items, at least {min} required"));
                }
            }
            if let Some(max) = s.get("maxItems").and_then(Value::as_u64) {
                if n > max {
                    return Err(format!("{path}: {n} items, at most {max} allowed"));
                }
            }
            if let Some(sub) = s.get("items") {
                for (i, v) in items.iter().enumerate() {
                    check_schema(sub, v, &format!("{path}[{i}]"))?;
                }
            }
        }
        Value::String(text) => {
            let n = text.chars().count() as u64;
            if let Some(min) = s.get("minLength").and_then(Value::as_u64) {
                if n < min {
                    return Err(format!("{path}: {n} characters, at least {min} required"));
                }
            }
            if let Some(max) = s.get("maxLength").and_then(Value::as_u64) {
                if n > max {
                    return Err(format!("{path}: {n} characters, at most {max} allowed"));
                }
            }
        }
        Value::Number(num) => {
            let x = num.as_f64().unwrap_or(0.0);
            if let Some(min) = s.get("minimum").and_then(Value::as_f64) {
                if x < min {
                    return Err(format!("{path}: {x} is below the minimum {min}"));
                }
            }
            if let Some(max) = s.get("maximum").and_then(Value::as_f64) {
                if x > max {
                    return Err(format!("{path}: {x} is above the maximum {max}"));
                }
            }
        }
        _ => {}
    }
    Ok(())
}

fn type_matches(t: &str, v: &Value) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "number" => v.is_number(),
        "integer" => v.as_i64().is_some() || v.as_u64().is_some(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        _ => true,
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Object(_) => "object",
        Value::Array(_) => "array",
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "boolean",
        Value::Null => "null",
    }
}

struct PiiPatterns {
    email: Regex,
    phone: Regex,
    card: Regex,
    ssn: Regex,
}

fn patterns() -> &'static PiiPatterns {
    static P: OnceLock<PiiPatterns> = OnceLock::new();
    P.get_or_init(|| PiiPatterns {
        email: Regex::new(r"(?i)\b[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}\b").expect("valid"),
        phone: Regex::new(r"(?:\+\d{1,3}[\s.-]?)?\(?\b\d{3}\)?[\s.-]\d{3}[\s.-]\d{4}\b")
            .expect("valid"),
        card: Regex::new(r"\b(?:\d[ -]?){13,19}\b").expect("valid"),
        ssn: Regex::new(r"\b\d{3}-\d{2}-\d{4}\b").expect("valid"),
    })
}

/// Luhn checksum, so order numbers and timestamps are not taken for card numbers.
fn luhn(digits: &[u32]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    sum % 10 == 0
}

/// The kinds of PII found in `text` (`email`, `phone`, `card`, `ssn`).
pub fn find_pii(text: &str) -> Vec<&'static str> {
    let p = patterns();
    let mut out = Vec::new();
    if p.email.is_match(text) {
        out.push("email");
    }
    if p.ssn.is_match(text) {
        out.push("ssn");
    }
    if p.card.find_iter(text).any(|m| {
        let d: Vec<u32> = m.as_str().chars().filter_map(|c| c.to_digit(10)).collect();
        (13..=19).contains(&d.len()) && luhn(&d)
    }) {
        out.push("card");
    }
    if p.phone.is_match(&p.ssn.replace_all(text, "")) {
        out.push("phone");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::span::Usage;
    use crate::Timestamp;
    use serde_json::json;

    fn llm(ms: u64, output: Option<Value>) -> Span {
        Span {
            trace_id: TraceId([1; 16]),
            span_id: SpanId([2; 8]),
            kind: SpanKind::Llm,
            start_time: Timestamp(1_000_000_000),
            end_time: Some(Timestamp(1_000_000_000 + ms * 1_000_000)),
            output: output.map(|v| Payload {
                value: v,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn eval(rule: Rule, span: &Span) -> Option<(bool, String)> {
        RuleEvaluator {
            name: "r".into(),
            rule,
            kinds: default_kinds(),
        }
        .evaluate(span)
        .map(|s| (s.value == Some(1.0), s.comment.unwrap_or_default()))
    }

    #[test]
    fn latency_and_tokens_per_second() {
        let s = llm(1500, None);
        assert!(!eval(Rule::LatencySla { max_ms: 1000.0 }, &s).unwrap().0);
        assert!(eval(Rule::LatencySla { max_ms: 1500.0 }, &s).unwrap().0);
        let mut s = llm(2000, None);
        s.ttft_ns = Some(1_000_000_000);
        s.usage = Some(Usage {
            output_tokens: 50,
            ..Default::default()
        });
        // 50 tokens in the 1 s after the first token.
        let (pass, why) = eval(Rule::TokensPerSecondFloor { min: 60.0 }, &s).unwrap();
        assert!(!pass && why.starts_with("50.0 tokens/s"), "{why}");
        assert!(
            eval(Rule::TokensPerSecondFloor { min: 50.0 }, &s)
                .unwrap()
                .0
        );
        // Not an LLM span: not judged.
        let mut tool = llm(5000, None);
        tool.kind = SpanKind::Tool;
        assert!(eval(Rule::LatencySla { max_ms: 1.0 }, &tool).is_none());
    }

    #[test]
    fn json_output_and_schema() {
        let ok = llm(1, Some(json!("{\"answer\": \"42\", \"confidence\": 0.9}")));
        let bad = llm(1, Some(json!("Sure! Here is the JSON: {")));
        assert!(eval(Rule::ValidJson, &ok).unwrap().0);
        assert!(!eval(Rule::ValidJson, &bad).unwrap().0);
        let schema = json!({"type": "object", "required": ["answer", "confidence"],
            "additionalProperties": false,
            "properties": {"answer": {"type": "string", "minLength": 1},
                           "confidence": {"type": "number", "minimum": 0, "maximum": 1}}});
        assert!(
            eval(
                Rule::JsonSchema {
                    schema: schema.clone()
                },
                &ok
            )
            .unwrap()
            .0
        );
        let wrong = llm(1, Some(json!({"answer": "42", "confidence": 1.5})));
        let (pass, why) = eval(
            Rule::JsonSchema {
                schema: schema.clone(),
            },
            &wrong,
        )
        .unwrap();
        assert!(!pass);
        assert_eq!(why, "$.confidence: 1.5 is above the maximum 1");
        let extra = llm(1, Some(json!({"answer": "42", "confidence": 1, "x": 1})));
        assert!(eval(Rule::JsonSchema { schema }, &extra)
            .unwrap()
            .1
            .contains("\"x\" is not allowed"));
        assert_eq!(
            check_schema(
                &json!({"type": "array", "items": {"enum": [1, 2]}}),
                &json!([1, 3]),
                "$"
            ),
            Err("$[1]: 3 is not one of [1,2]".into())
        );
    }

    #[test]
    fn pii_in_payloads_is_reported_by_kind() {
        assert_eq!(find_pii("mail jane.doe@example.com now"), vec!["email"]);
        assert_eq!(find_pii("call +1 415-555-0100"), vec!["phone"]);
        assert_eq!(find_pii("card 4111 1111 1111 1111"), vec!["card"]);
        assert_eq!(
            find_pii("order 1234 5678 9012 3456"),
            Vec::<&str>::new(),
            "Luhn fails"
        );
        assert_eq!(find_pii("ssn 123-45-6789"), vec!["ssn"]);
        assert!(find_pii("The meeting is at 10:30 in room 4.").is_empty());
        let mut s = llm(1, Some(json!("Contact jane@example.com")));
        s.input = Some(Payload {
            value: json!("hello"),
            ..Default::default()
        });
        let (pass, why) = eval(
            Rule::Pii {
                on: PayloadSide::Both,
            },
            &s,
        )
        .unwrap();
        assert!(!pass && why == "found email", "{why}");
        assert!(
            eval(
                Rule::Pii {
                    on: PayloadSide::Input
                },
                &s
            )
            .unwrap()
            .0
        );
    }

    #[test]
    fn empty_output_and_cost_budget() {
        assert!(
            !eval(Rule::NonEmptyOutput, &llm(1, Some(json!("  "))))
                .unwrap()
                .0
        );
        assert!(!eval(Rule::NonEmptyOutput, &llm(1, None)).unwrap().0);
        assert!(
            eval(Rule::NonEmptyOutput, &llm(1, Some(json!("hi"))))
                .unwrap()
                .0
        );
        // Unpriced: nothing to judge.
        assert!(eval(Rule::CostBudget { max_usd: 0.01 }, &llm(1, None)).is_none());
    }

    #[test]
    fn scores_are_validated_and_evaluators_parse_from_toml() {
        let mut s = Score {
            id: None,
            trace_id: Some(TraceId([1; 16])),
            span_id: None,
            session_id: None,
            name: "helpful".into(),
            data_type: ScoreType::Boolean,
            value: Some(0.5),
            label: None,
            source: ScoreSource::Human,
            comment: None,
            author: None,
            created_ns: None,
        };
        assert!(s
            .validate()
            .unwrap_err()
            .to_string()
            .contains("1 (pass) or 0"));
        s.value = Some(1.0);
        assert!(s.validate().is_ok());
        s.trace_id = None;
        assert!(matches!(s.validate(), Err(ScoreError::NoTarget(_))));
        s.session_id = Some("s1".into());
        s.data_type = ScoreType::Categorical;
        assert!(s.validate().is_err());
        s.label = Some("good".into());
        assert!(s.validate().is_ok());

        #[derive(Debug, Deserialize)]
        struct F {
            evaluator: Vec<RuleEvaluator>,
        }
        let f: F = toml::from_str(
            r#"
            [[evaluator]]
            name = "fast"
            rule = "latency_sla"
            max_ms = 2000
            [[evaluator]]
            name = "no pii"
            rule = "pii"
            on = "output"
            kinds = ["llm", "agent"]
            "#,
        )
        .unwrap();
        assert_eq!(f.evaluator[0].rule, Rule::LatencySla { max_ms: 2000.0 });
        assert_eq!(f.evaluator[1].kinds, vec![SpanKind::Llm, SpanKind::Agent]);
        let e = toml::from_str::<F>("[[evaluator]]\nname='x'\nrule='vibes'").unwrap_err();
        assert!(e.to_string().contains("vibes"), "{e}");
    }
}
