//! `spanlens prompts`: the prompt templates and versions a running server's spans used in a
//! time range (`GET /api/v1/prompts`), a row per version with its calls, cost, latency, error
//! rate and mean scores.

use crate::client::{cost_text, fit, fmt_duration_ms, Client, ServerArgs};
use clap::Args;
use spanlens_api::PromptsAnswer;
use spanlens_core::NanoUsd;
use std::fmt::Write as _;

/// Arguments of `spanlens prompts`.
#[derive(Args, Debug)]
pub struct PromptsArgs {
    #[command(flatten)]
    conn: ServerArgs,
    /// Traces started at or after (RFC 3339 or ns since the epoch); default: 7 days before --to.
    #[arg(long)]
    from: Option<String>,
    /// Traces started before (RFC 3339 or ns since the epoch); default: now.
    #[arg(long)]
    to: Option<String>,
    /// Most traces read, the most recent first (1–1000).
    #[arg(long)]
    limit: Option<u32>,
    /// Print the API's JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Runs `spanlens prompts`.
pub fn run(args: PromptsArgs) -> anyhow::Result<crate::Outcome> {
    let client = Client::new(&args.conn)?;
    let mut query = Vec::new();
    for (k, v) in [("from", args.from), ("to", args.to)] {
        if let Some(v) = v {
            query.push((k, v));
        }
    }
    if let Some(n) = args.limit {
        query.push(("limit", n.to_string()));
    }
    let Some(answer) =
        client.get_or_print::<PromptsAnswer>("/api/v1/prompts", &query, args.json)?
    else {
        return Ok(crate::Outcome::Done);
    };
    print!("{}", render(&answer));
    if answer.templates.is_empty() {
        eprintln!(
            "no prompt templates in project {:?} in this range",
            answer.project
        );
    }
    if answer.matched_traces > answer.used_traces {
        eprintln!(
            "figures of the most recent {} of {} traces holding a prompt",
            answer.used_traces, answer.matched_traces
        );
    }
    Ok(crate::Outcome::Done)
}

/// Span data is untrusted: control characters (terminal escapes among them) are shown escaped.
fn plain(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

/// A row per version under its template's name.
fn render(a: &PromptsAnswer) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<28} {:<12} {:>6} {:>18} {:>9} {:>9} {:>7}  SCORES",
        "TEMPLATE", "VERSION", "CALLS", "COST", "P50", "P95", "ERRORS"
    );
    for t in &a.templates {
        for (i, v) in t.versions.iter().enumerate() {
            let name = if i == 0 {
                plain(&t.name)
            } else {
                String::new()
            };
            let version = v.version.as_deref().map_or("-".to_string(), plain);
            let ms = |m: Option<f64>| m.map_or("-".to_string(), fmt_duration_ms);
            let scores: Vec<String> = v
                .scores
                .iter()
                .map(|s| format!("{} {:.2} ({})", plain(&s.name), s.mean, s.count))
                .collect();
            let _ = writeln!(
                out,
                "{:<28} {:<12} {:>6} {:>18} {:>9} {:>9} {:>6.1}%  {}",
                fit(&name, 28),
                fit(&version, 12),
                v.calls,
                cost_text(NanoUsd(v.cost_nano_usd), v.unpriced_span_count),
                ms(v.p50_ms),
                ms(v.p95_ms),
                v.error_rate * 100.0,
                if scores.is_empty() {
                    "-".to_string()
                } else {
                    scores.join(", ")
                }
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use spanlens_api::{PromptTemplateRow, PromptVersionRow, ScoreMean};
    use spanlens_core::Timestamp;

    fn version(v: Option<&str>, calls: u64, errors: u64) -> PromptVersionRow {
        PromptVersionRow {
            version: v.map(str::to_string),
            calls,
            errors,
            error_rate: errors as f64 / calls as f64,
            cost_usd: 0.00042,
            cost_nano_usd: 420_000,
            unpriced_span_count: 0,
            p50_ms: Some(100.0),
            p95_ms: Some(300.0),
            traces: calls,
            first_call: Timestamp(0),
            last_call: Timestamp(0),
            scores: vec![ScoreMean {
                name: "helpful".into(),
                count: 2,
                mean: 0.75,
            }],
        }
    }

    #[test]
    fn a_row_per_version_under_its_template_and_escapes_shown() {
        let a = PromptsAnswer {
            project: "p".into(),
            from: Timestamp(0),
            to: Timestamp(1),
            matched_traces: 2,
            used_traces: 2,
            trace_cap: 1000,
            templates: vec![PromptTemplateRow {
                name: "answer\u{1b}[31m".into(),
                calls: 3,
                versions: vec![version(Some("v2"), 2, 1), version(None, 1, 0)],
            }],
            unreadable_span_count: 0,
        };
        let text = render(&a);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[1].starts_with("answer\\u{1b}[31m"), "{text}");
        assert!(
            lines[1].contains("v2") && lines[1].contains("50.0%"),
            "{text}"
        );
        assert!(
            lines[1].contains("$0.00042") && lines[1].contains("helpful 0.75 (2)"),
            "{text}"
        );
        assert!(
            lines[2].starts_with(' ') && lines[2].contains(" -  "),
            "{text}"
        );
        assert!(!text.contains('\u{1b}'));
    }
}
