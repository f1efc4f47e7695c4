//! Alert rules over windowed metrics and the state machine that decides when to notify.
//!
//! Pure: the server measures the metric over each rule's window and feeds the value in; this
//! module says whether that is a new breach (fire), a recovery (resolve) or nothing to say.
//!
//! Cooldown: after a notification, the rule stays in the state it announced for at least
//! `cooldown_seconds`, so a metric hovering around its threshold produces one fire and one
//! resolve per cooldown period instead of a notification per evaluation.

use crate::span::SpanKind;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// What a rule measures over its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertMetric {
    /// 95th percentile span duration, milliseconds.
    LatencyP95Ms,
    /// 95th percentile time to first token, milliseconds (spans that report one).
    TtftP95Ms,
    /// Spans with status error / all spans, 0–1.
    ErrorRate,
    /// Cost in USD over the window (a daily budget is a 86,400 s window).
    CostUsd,
}

impl AlertMetric {
    /// Unit shown beside values.
    pub fn unit(self) -> &'static str {
        match self {
            AlertMetric::LatencyP95Ms | AlertMetric::TtftP95Ms => "ms",
            AlertMetric::ErrorRate => "ratio",
            AlertMetric::CostUsd => "USD",
        }
    }
}

fn default_project() -> String {
    "default".into()
}
fn default_window() -> u64 {
    300
}
fn default_cooldown() -> u64 {
    600
}
fn default_min_spans() -> u64 {
    1
}

/// One rule: fire when `metric` over the last `window_seconds` is above `threshold`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRule {
    /// Name in notifications and the API; unique within a configuration.
    pub name: String,
    /// What is measured.
    pub metric: AlertMetric,
    /// Fires when the value is strictly above this.
    pub threshold: f64,
    /// Trailing window the metric is computed over.
    #[serde(default = "default_window")]
    pub window_seconds: u64,
    /// Minimum time between two notifications of this rule.
    #[serde(default = "default_cooldown")]
    pub cooldown_seconds: u64,
    /// Project measured.
    #[serde(default = "default_project")]
    pub project: String,
    /// Only spans of this kind (e.g. `llm`).
    #[serde(default)]
    pub kind: Option<SpanKind>,
    /// Only spans of this model.
    #[serde(default)]
    pub model: Option<String>,
    /// Fewer spans than this in the window means "no data": the rule neither fires nor resolves.
    #[serde(default = "default_min_spans")]
    pub min_spans: u64,
}

/// Why a rule set was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AlertRuleError {
    /// Two rules share a name.
    #[error("two alert rules are named {0:?}; names must be unique")]
    DuplicateName(String),
    /// A rule has an empty name.
    #[error("an alert rule has an empty name")]
    EmptyName,
    /// A threshold is not a finite number or is negative.
    #[error("alert rule {name:?}: threshold {value} must be a finite number ≥ 0")]
    BadThreshold {
        /// The rule.
        name: String,
        /// The value given.
        value: f64,
    },
    /// A window of zero seconds.
    #[error("alert rule {0:?}: window_seconds must be at least 1")]
    EmptyWindow(String),
}

/// Checks a rule set before it is used.
pub fn validate_rules(rules: &[AlertRule]) -> Result<(), AlertRuleError> {
    let mut seen = std::collections::BTreeSet::new();
    for r in rules {
        if r.name.trim().is_empty() {
            return Err(AlertRuleError::EmptyName);
        }
        if !seen.insert(r.name.as_str()) {
            return Err(AlertRuleError::DuplicateName(r.name.clone()));
        }
        if !r.threshold.is_finite() || r.threshold < 0.0 {
            return Err(AlertRuleError::BadThreshold {
                name: r.name.clone(),
                value: r.threshold,
            });
        }
        if r.window_seconds == 0 {
            return Err(AlertRuleError::EmptyWindow(r.name.clone()));
        }
    }
    Ok(())
}

/// The state a rule has announced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    /// Not breached (or never measured).
    #[default]
    Ok,
    /// Breached and announced.
    Firing,
}

/// A notification to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertEvent {
    /// The metric went above the threshold.
    Firing,
    /// The metric came back to or below the threshold.
    Resolved,
}

/// What the server remembers per rule between evaluations.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertState {
    /// The state last announced.
    pub status: AlertStatus,
    /// When that state was announced.
    pub since: Option<Timestamp>,
    /// Last measured value (`None`: no data in the window).
    pub value: Option<f64>,
    /// When the rule was last evaluated.
    pub evaluated_at: Option<Timestamp>,
    /// True when the measured condition differs from the announced state but the cooldown has
    /// not passed yet.
    pub pending: bool,
}

impl AlertState {
    /// Takes one measurement (`None` or fewer than `min_spans` spans: no data) and returns the
    /// notification to send, if any. The caller confirms delivery with [`AlertState::announce`];
    /// until then the state does not change, so an undelivered notification is tried again.
    pub fn observe(
        &mut self,
        rule: &AlertRule,
        value: Option<f64>,
        spans: u64,
        now: Timestamp,
    ) -> Option<AlertEvent> {
        self.evaluated_at = Some(now);
        let value = value.filter(|_| spans >= rule.min_spans.max(1));
        self.value = value;
        let Some(v) = value else {
            self.pending = false;
            return None;
        };
        let breached = v > rule.threshold;
        let wanted = if breached {
            AlertStatus::Firing
        } else {
            AlertStatus::Ok
        };
        if wanted == self.status {
            self.pending = false;
            return None;
        }
        let cooled = self.since.is_none_or(|since| {
            now.0.saturating_sub(since.0) >= rule.cooldown_seconds.saturating_mul(1_000_000_000)
        });
        if !cooled {
            self.pending = true;
            return None;
        }
        self.pending = false;
        Some(match wanted {
            AlertStatus::Firing => AlertEvent::Firing,
            AlertStatus::Ok => AlertEvent::Resolved,
        })
    }

    /// Records that `event` was delivered at `now`.
    pub fn announce(&mut self, event: AlertEvent, now: Timestamp) {
        self.status = match event {
            AlertEvent::Firing => AlertStatus::Firing,
            AlertEvent::Resolved => AlertStatus::Ok,
        };
        self.since = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn rule(threshold: f64, cooldown: u64) -> AlertRule {
        AlertRule {
            name: "errors".into(),
            metric: AlertMetric::ErrorRate,
            threshold,
            window_seconds: 60,
            cooldown_seconds: cooldown,
            project: "default".into(),
            kind: None,
            model: None,
            min_spans: 5,
        }
    }

    /// Feeds values one second apart, announcing whatever is returned; returns the events.
    fn run(rule: &AlertRule, values: &[Option<f64>]) -> Vec<(u64, AlertEvent)> {
        let mut st = AlertState::default();
        let mut out = Vec::new();
        for (t, v) in values.iter().enumerate() {
            let now = Timestamp(1_000 * S + t as u64 * S);
            if let Some(e) = st.observe(rule, *v, 10, now) {
                st.announce(e, now);
                out.push((t as u64, e));
            }
        }
        out
    }

    #[test]
    fn fires_above_and_resolves_at_or_below_the_threshold() {
        let r = rule(0.1, 0);
        let ev = run(
            &r,
            &[Some(0.05), Some(0.1), Some(0.2), Some(0.3), Some(0.1)],
        );
        assert_eq!(ev, vec![(2, AlertEvent::Firing), (4, AlertEvent::Resolved)]);
    }

    #[test]
    fn cooldown_holds_the_announced_state_while_the_metric_flaps() {
        let r = rule(0.1, 5);
        let flapping: Vec<Option<f64>> = (0..12)
            .map(|t| Some(if t % 2 == 0 { 0.5 } else { 0.0 }))
            .collect();
        let ev = run(&r, &flapping);
        // Fire at 0; the first calm reading after 5 s is at 5, the next breach after 10 s at 10.
        assert_eq!(
            ev,
            vec![
                (0, AlertEvent::Firing),
                (5, AlertEvent::Resolved),
                (10, AlertEvent::Firing)
            ]
        );
    }

    #[test]
    fn no_data_neither_fires_nor_resolves() {
        let r = rule(0.1, 0);
        let ev = run(&r, &[Some(0.9), None, None, Some(0.9), Some(0.0)]);
        assert_eq!(ev, vec![(0, AlertEvent::Firing), (4, AlertEvent::Resolved)]);
        // Too few spans is no data too.
        let mut st = AlertState::default();
        assert_eq!(st.observe(&r, Some(1.0), 4, Timestamp(S)), None);
        assert_eq!(st.value, None);
        assert_eq!(
            st.observe(&r, Some(1.0), 5, Timestamp(S)),
            Some(AlertEvent::Firing)
        );
    }

    #[test]
    fn an_undelivered_notification_is_offered_again() {
        let r = rule(0.1, 60);
        let mut st = AlertState::default();
        assert_eq!(
            st.observe(&r, Some(0.5), 10, Timestamp(S)),
            Some(AlertEvent::Firing)
        );
        // Not announced (the webhook failed): the next evaluation offers it again.
        assert_eq!(
            st.observe(&r, Some(0.5), 10, Timestamp(2 * S)),
            Some(AlertEvent::Firing)
        );
        st.announce(AlertEvent::Firing, Timestamp(2 * S));
        assert_eq!(st.observe(&r, Some(0.5), 10, Timestamp(3 * S)), None);
        assert_eq!(st.status, AlertStatus::Firing);
        // Calm again within the cooldown: pending, not resolved yet.
        assert_eq!(st.observe(&r, Some(0.0), 10, Timestamp(4 * S)), None);
        assert!(st.pending);
        assert_eq!(
            st.observe(&r, Some(0.0), 10, Timestamp(62 * S)),
            Some(AlertEvent::Resolved)
        );
    }

    #[test]
    fn rules_parse_from_toml_with_defaults_and_are_validated() {
        #[derive(Debug, Deserialize)]
        struct File {
            rule: Vec<AlertRule>,
        }
        let f: File = toml::from_str(
            r#"
            [[rule]]
            name = "daily budget"
            metric = "cost_usd"
            threshold = 25.0
            window_seconds = 86400

            [[rule]]
            name = "slow first token"
            metric = "ttft_p95_ms"
            threshold = 2000
            kind = "llm"
            "#,
        )
        .unwrap();
        assert_eq!(f.rule[0].cooldown_seconds, 600);
        assert_eq!(f.rule[1].kind, Some(SpanKind::Llm));
        assert_eq!(f.rule[1].window_seconds, 300);
        assert!(validate_rules(&f.rule).is_ok());
        let mut dup = f.rule.clone();
        dup[1].name = "daily budget".into();
        assert_eq!(
            validate_rules(&dup),
            Err(AlertRuleError::DuplicateName("daily budget".into()))
        );
        let mut bad = f.rule.clone();
        bad[0].threshold = f64::NAN;
        assert!(matches!(
            validate_rules(&bad),
            Err(AlertRuleError::BadThreshold { .. })
        ));
        let unknown = toml::from_str::<File>("[[rule]]\nname='x'\nmetric='p99'\nthreshold=1");
        assert!(unknown.unwrap_err().to_string().contains("p99"));
    }
}
