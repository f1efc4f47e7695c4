//! Agent-pipeline recorders: guardrail verdicts, hand-offs between agents, agent spans.

use crate::attr::{Key, Value};
use crate::context::Context;
use crate::span::{Span, SpanBuilder};
use spanlens_core::SpanKind;
use std::borrow::Cow;

/// Name of the event a guardrail verdict is recorded as.
pub const GUARDRAIL_EVENT: &str = "guardrail.verdict";

/// The outcome of a guardrail check.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Verdict {
    /// True when the checked content may go on.
    pub passed: bool,
    /// Why it passed or (usually) why it was blocked.
    pub reason: Option<String>,
    /// The check's score (toxicity, relevance, …), when it has one.
    pub score: Option<f64>,
}

impl Verdict {
    /// A passing verdict.
    pub fn pass() -> Verdict {
        Verdict {
            passed: true,
            ..Default::default()
        }
    }

    /// A blocking verdict with its reason.
    pub fn fail(reason: impl Into<String>) -> Verdict {
        Verdict {
            passed: false,
            reason: Some(reason.into()),
            score: None,
        }
    }

    /// Sets the reason.
    pub fn with_reason(mut self, reason: impl Into<String>) -> Verdict {
        self.reason = Some(reason.into());
        self
    }

    /// Sets the score.
    pub fn with_score(mut self, score: f64) -> Verdict {
        self.score = Some(score);
        self
    }

    /// `guardrail.name`, `guardrail.passed`, `guardrail.reason`, `guardrail.score`.
    fn event_attributes(&self, name: &str) -> Vec<(Key, Value)> {
        let mut a: Vec<(Key, Value)> = vec![
            ("guardrail.name".into(), name.to_string().into()),
            ("guardrail.passed".into(), self.passed.into()),
        ];
        if let Some(r) = &self.reason {
            a.push(("guardrail.reason".into(), r.clone().into()));
        }
        if let Some(s) = self.score {
            a.push(("guardrail.score".into(), s.into()));
        }
        a
    }
}

/// Records a guardrail verdict as a `guardrail.verdict` event on the current span.
pub fn guardrail(name: &str, verdict: Verdict) {
    let span = Context::current().span();
    if span.is_recording() {
        span.add_event(GUARDRAIL_EVENT, verdict.event_attributes(name));
    }
}

/// A guardrail check as a span of its own (kind `guardrail`), for checks worth timing.
#[must_use = "the guardrail span ends when dropped; record its verdict with .verdict()"]
#[derive(Debug)]
pub struct GuardrailCheck {
    span: Span,
    name: Cow<'static, str>,
}

impl GuardrailCheck {
    /// Opens a `guardrail` span named `name` as a child of the current span.
    pub fn start(name: impl Into<Cow<'static, str>>) -> GuardrailCheck {
        let name = name.into();
        let span = crate::span(name.clone())
            .kind(SpanKind::Guardrail)
            .attr("spanlens.guardrail.name", name.clone())
            .start();
        GuardrailCheck { span, name }
    }

    /// The check's span.
    pub fn span(&self) -> &Span {
        &self.span
    }

    /// Records the verdict (attributes `spanlens.guardrail.{passed,reason,score}` plus the
    /// `guardrail.verdict` event) and ends the span. The span's status is `ok` either way: a
    /// blocking verdict is the check working, not failing.
    pub fn verdict(self, verdict: Verdict) {
        if self.span.is_recording() {
            let mut attrs: Vec<(Key, Value)> =
                vec![("spanlens.guardrail.passed".into(), verdict.passed.into())];
            if let Some(r) = &verdict.reason {
                attrs.push(("spanlens.guardrail.reason".into(), r.clone().into()));
            }
            if let Some(s) = verdict.score {
                attrs.push(("spanlens.guardrail.score".into(), s.into()));
            }
            self.span.set_attributes(attrs);
            self.span
                .add_event(GUARDRAIL_EVENT, verdict.event_attributes(&self.name));
            self.span.set_ok();
        }
    }
}

/// Runs a guardrail check inside its own `guardrail` span and records its verdict.
pub fn guardrail_check(
    name: impl Into<Cow<'static, str>>,
    check: impl FnOnce() -> Verdict,
) -> Verdict {
    let g = GuardrailCheck::start(name);
    let v = g.span.in_scope(check);
    g.verdict(v.clone());
    v
}

/// Records a hand-off from one agent to another as a `handoff` span (named `handoff: from → to`,
/// attributes `spanlens.handoff.from` / `spanlens.handoff.to`) under the current span.
pub fn handoff(from: &str, to: &str) {
    let s = crate::span(format!("handoff: {from} → {to}"))
        .kind(SpanKind::Handoff)
        .attr("spanlens.handoff.from", from.to_string())
        .attr("spanlens.handoff.to", to.to_string())
        .start();
    s.set_ok();
}

/// A builder for an `agent` span named `name` with `gen_ai.agent.name` (and the agent's name
/// as its identity: re-entering the same agent while its span is open reuses it).
pub fn agent(name: impl Into<Cow<'static, str>>) -> SpanBuilder {
    let name = name.into();
    crate::span(name.clone())
        .kind(SpanKind::Agent)
        .identity(name.to_string())
        .attr("gen_ai.operation.name", "invoke_agent")
        .attr("gen_ai.agent.name", name)
}
