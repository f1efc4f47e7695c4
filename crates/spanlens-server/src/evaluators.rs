//! Evaluators run on ingest: the built-in rules of [`spanlens_core::evals`] and LLM-as-judge
//! evaluators calling any OpenAI-compatible chat completions endpoint. Their scores are stored
//! with source `rule` or `llm` after the spans are committed, off the request path.
//!
//! Configuration (`spanlens serve --evaluators FILE`), TOML:
//!
//! ```toml
//! [[evaluator]]
//! name = "fast enough"
//! rule = "latency_sla"          # latency_sla | cost_budget | valid_json | json_schema | pii
//! max_ms = 5000                 #   | non_empty_output | tokens_per_second_floor
//! kinds = ["llm"]               # span kinds evaluated (default: llm)
//!
//! [[judge]]
//! name = "helpfulness"
//! endpoint = "http://127.0.0.1:8000/v1"   # base URL; /chat/completions is appended
//! model = "gpt-4o-mini"
//! api_key_env = "OPENAI_API_KEY"          # optional: the key is read from this variable
//! prompt = "Rate how helpful the answer is to the question.\nQuestion: {input}\nAnswer: {output}"
//! ```

use serde::Deserialize;
use spanlens_core::evals::{payload_text, RuleEvaluator, Score, ScoreSource, ScoreType};
use spanlens_core::{Span, SpanKind};
use std::path::Path;
use std::time::Duration;

fn default_kinds() -> Vec<SpanKind> {
    vec![SpanKind::Llm]
}

/// One LLM-as-judge evaluator.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JudgeConfig {
    /// Score name.
    pub name: String,
    /// OpenAI-compatible base URL (`…/v1`).
    pub endpoint: String,
    /// Model asked to judge.
    pub model: String,
    /// Environment variable holding the API key, if the endpoint needs one.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// The question put to the judge; `{input}` and `{output}` are replaced by the span's.
    pub prompt: String,
    /// Span kinds judged.
    #[serde(default = "default_kinds")]
    pub kinds: Vec<SpanKind>,
}

/// The evaluators configuration file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvaluatorConfig {
    /// Rule evaluators.
    #[serde(default)]
    pub evaluator: Vec<RuleEvaluator>,
    /// LLM-as-judge evaluators.
    #[serde(default)]
    pub judge: Vec<JudgeConfig>,
}

/// Why an evaluators file was refused.
#[derive(Debug, thiserror::Error)]
pub enum EvaluatorConfigError {
    /// Unreadable file.
    #[error("cannot read evaluators {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// What went wrong.
        source: std::io::Error,
    },
    /// Malformed or invalid content.
    #[error("invalid evaluators: {0}")]
    Invalid(String),
}

impl EvaluatorConfig {
    /// Parses and checks a configuration.
    pub fn from_toml(text: &str) -> Result<EvaluatorConfig, EvaluatorConfigError> {
        let c: EvaluatorConfig =
            toml::from_str(text).map_err(|e| EvaluatorConfigError::Invalid(e.to_string()))?;
        let mut names = std::collections::BTreeSet::new();
        let all = c
            .evaluator
            .iter()
            .map(|e| e.name.as_str())
            .chain(c.judge.iter().map(|j| j.name.as_str()));
        for n in all {
            if n.trim().is_empty() {
                return Err(EvaluatorConfigError::Invalid(
                    "an evaluator has an empty name".into(),
                ));
            }
            if !names.insert(n) {
                return Err(EvaluatorConfigError::Invalid(format!(
                    "two evaluators are named {n:?}"
                )));
            }
        }
        for j in &c.judge {
            if !(j.endpoint.starts_with("http://") || j.endpoint.starts_with("https://")) {
                return Err(EvaluatorConfigError::Invalid(format!(
                    "judge {:?}: endpoint {:?} must be an http:// or https:// URL",
                    j.name, j.endpoint
                )));
            }
        }
        Ok(c)
    }

    /// Reads a configuration file.
    pub fn load(path: &Path) -> Result<EvaluatorConfig, EvaluatorConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| EvaluatorConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        EvaluatorConfig::from_toml(&text)
    }

    /// True when there is nothing to run.
    pub fn is_empty(&self) -> bool {
        self.evaluator.is_empty() && self.judge.is_empty()
    }

    /// Every score the evaluators give `spans` (blocking: judges make HTTP calls). A judge that
    /// fails gives no score; its error is returned beside the scores.
    pub fn evaluate(&self, spans: &[Span]) -> (Vec<Score>, Vec<String>) {
        let mut scores = Vec::new();
        let mut errors = Vec::new();
        for s in spans {
            scores.extend(self.evaluator.iter().filter_map(|e| e.evaluate(s)));
            for j in self.judge.iter().filter(|j| j.kinds.contains(&s.kind)) {
                match judge(j, s) {
                    Ok(Some(score)) => scores.push(score),
                    Ok(None) => {}
                    Err(e) => errors.push(format!("judge {:?} on span {}: {e}", j.name, s.span_id)),
                }
            }
        }
        (scores, errors)
    }
}

/// What a judge answers: `{"score": 0..1, "reason": "…"}`, possibly inside a code fence.
#[derive(Deserialize)]
struct Verdict {
    score: f64,
    #[serde(default)]
    reason: Option<String>,
}

/// Asks the judge about one span; `None` when the span has no output to judge.
fn judge(j: &JudgeConfig, span: &Span) -> Result<Option<Score>, String> {
    let output = payload_text(span.output.as_ref(), &span.output_messages).unwrap_or_default();
    if output.trim().is_empty() {
        return Ok(None);
    }
    let input = payload_text(span.input.as_ref(), &span.input_messages).unwrap_or_default();
    let question = j
        .prompt
        .replace("{input}", &input)
        .replace("{output}", &output);
    let body = serde_json::json!({
        "model": j.model,
        "temperature": 0,
        "messages": [
            {"role": "system", "content": "You are an evaluator. Reply with only a JSON object {\"score\": <number from 0 to 1>, \"reason\": <one sentence>}."},
            {"role": "user", "content": question},
        ],
    });
    let url = format!("{}/chat/completions", j.endpoint.trim_end_matches('/'));
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build(),
    );
    let mut req = agent.post(&url).header("content-type", "application/json");
    if let Some(var) = &j.api_key_env {
        let key =
            std::env::var(var).map_err(|_| format!("environment variable {var} is not set"))?;
        req = req.header("authorization", &format!("Bearer {key}"));
    }
    let mut resp = req
        .send(body.to_string().as_bytes())
        .map_err(|e| format!("POST {url}: {e}"))?;
    let status = resp.status();
    let text = resp
        .body_mut()
        .read_to_string()
        .map_err(|e| format!("reading the answer of {url}: {e}"))?;
    if !status.is_success() {
        return Err(format!(
            "POST {url}: HTTP {status}: {}",
            text.chars().take(200).collect::<String>()
        ));
    }
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("answer is not JSON: {e}"))?;
    let content = v["choices"][0]["message"]["content"]
        .as_str()
        .ok_or("answer has no choices[0].message.content")?;
    let inner = content
        .trim()
        .trim_start_matches("```json")
        .trim_start_matches("```")
        .trim_end_matches("```")
        .trim();
    let verdict: Verdict = serde_json::from_str(inner)
        .map_err(|e| format!("judge reply {content:?} is not {{\"score\", \"reason\"}}: {e}"))?;
    if !(0.0..=1.0).contains(&verdict.score) {
        return Err(format!("judge score {} is outside 0..1", verdict.score));
    }
    Ok(Some(Score {
        id: None,
        trace_id: Some(span.trace_id),
        span_id: Some(span.span_id),
        session_id: None,
        name: j.name.clone(),
        data_type: ScoreType::Numeric,
        value: Some(verdict.score),
        label: None,
        source: ScoreSource::Llm,
        comment: verdict.reason,
        author: None,
        created_ns: None,
    }))
}

/// Evaluators as a commit subscriber: each committed batch is scored in the background (the
/// request is already answered, and a slow LLM judge must not hold up ingest).
pub struct OnCommit {
    store: std::sync::Arc<dyn spanlens_store::Store>,
    config: std::sync::Arc<EvaluatorConfig>,
}

impl OnCommit {
    /// Scores with `config`, storing the scores in `store`.
    pub fn new(
        store: std::sync::Arc<dyn spanlens_store::Store>,
        config: std::sync::Arc<EvaluatorConfig>,
    ) -> OnCommit {
        OnCommit { store, config }
    }
}

impl crate::commits::CommitSubscriber for OnCommit {
    fn wants(&self) -> bool {
        !self.config.is_empty()
    }

    fn committed(&self, batch: &crate::commits::Committed) {
        let (store, config) = (self.store.clone(), self.config.clone());
        let (project, spans) = (batch.project.clone(), batch.spans.clone());
        tokio::spawn(async move {
            // Evaluators may call an LLM judge over blocking HTTP: on a blocking thread.
            let judged = tokio::task::spawn_blocking(move || config.evaluate(&spans)).await;
            let Ok((scores, errors)) = judged else {
                return;
            };
            for e in errors.iter().take(3) {
                tracing::warn!(project = %project, error = %e, "evaluator failed");
            }
            if !scores.is_empty() {
                if let Err(e) = store.add_scores(&project, &scores).await {
                    tracing::warn!(project = %project, error = %e, "evaluator scores not stored");
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configurations_are_checked() {
        let c = EvaluatorConfig::from_toml(
            "[[evaluator]]\nname='json'\nrule='valid_json'\n[[judge]]\nname='help'\nendpoint='http://x/v1'\nmodel='m'\nprompt='{output}'",
        )
        .unwrap();
        assert_eq!((c.evaluator.len(), c.judge.len()), (1, 1));
        let e = EvaluatorConfig::from_toml(
            "[[evaluator]]\nname='a'\nrule='valid_json'\n[[evaluator]]\nname='a'\nrule='pii'",
        )
        .unwrap_err();
        assert!(e.to_string().contains("\"a\""), "{e}");
        let e =
            EvaluatorConfig::from_toml("[[judge]]\nname='j'\nendpoint='x'\nmodel='m'\nprompt='p'")
                .unwrap_err();
        assert!(e.to_string().contains("endpoint"), "{e}");
        assert!(EvaluatorConfig::from_toml("[[judge]]\nname='j'").is_err());
    }
}
