//! `spanlens diff A B`: two traces side by side through a running server (`GET
//! /api/v1/compare`): aligned spans with what changed, the totals, and the output diffs.

use crate::client::{fit, fmt_cost_cell, fmt_duration_ms, resolve_id, Client, ServerArgs};
use clap::Args;
use spanlens_api::{CompareAnswer, CompareRow, DiffOp, SpanFacts, TextDiff, PREVIOUS};
use spanlens_core::NanoUsd;

/// Arguments of `spanlens diff`.
#[derive(Args)]
pub struct DiffArgs {
    /// Trace A: an id or a unique prefix of at least 6 hex digits.
    a: String,
    /// Trace B, likewise, or `previous`: the latest earlier trace of A's name (A's previous run).
    b: String,
    #[command(flatten)]
    conn: ServerArgs,
    /// Print the server's answer as JSON.
    #[arg(long)]
    json: bool,
    /// Print at most this many output diffs (0: none).
    #[arg(long, default_value_t = 10)]
    max_diffs: usize,
}

/// Runs `spanlens diff A B`.
pub fn run(args: DiffArgs) -> anyhow::Result<crate::Outcome> {
    let client = Client::new(&args.conn)?;
    let a = resolve_id(&client, &args.a)?;
    let b = if args.b.eq_ignore_ascii_case(PREVIOUS) {
        PREVIOUS.to_string()
    } else {
        resolve_id(&client, &args.b)?
    };
    let query = [("a", a), ("b", b)];
    let Some(c) = client.get_or_print::<CompareAnswer>("/api/v1/compare", &query, args.json)?
    else {
        return Ok(crate::Outcome::Done);
    };
    print!("{}", render(&c, args.max_diffs));
    for u in &c.unreadable_spans {
        eprintln!(
            "span {} of trace {} is stored but cannot be read: {}",
            u.span_id.as_deref().unwrap_or("?"),
            u.trace_id,
            u.reason
        );
    }
    Ok(crate::Outcome::Done)
}

/// Span data is untrusted: control characters (terminal escapes among them) are shown escaped.
fn plain(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_control() && c != '\n' {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

fn signed_ms(ms: f64) -> String {
    if ms == 0.0 {
        return "0".into();
    }
    let sign = if ms > 0.0 { "+" } else { "-" };
    format!("{sign}{}", fmt_duration_ms(ms.abs()))
}

fn signed_int(n: i64) -> String {
    if n > 0 {
        format!("+{n}")
    } else {
        n.to_string()
    }
}

fn signed_cost(c: NanoUsd) -> String {
    match c.0 {
        0 => "$0".into(),
        n if n > 0 => format!("+{c}"),
        _ => c.to_string(),
    }
}

fn side(f: Option<&SpanFacts>) -> String {
    f.and_then(|f| f.duration_ms)
        .map_or_else(|| "—".to_string(), fmt_duration_ms)
}

fn label(r: &CompareRow, same_named: bool) -> String {
    let name = plain(&r.name).replace('\n', " ");
    let name = if same_named {
        format!("{name} #{}", r.occurrence + 1)
    } else {
        name
    };
    fit(
        &format!("{}{name}", "  ".repeat(r.depth.min(20) as usize)),
        36,
    )
}

/// What changed on a matched row, in words.
fn changes(r: &CompareRow) -> String {
    let (Some(a), Some(b), Some(d)) = (&r.a, &r.b, &r.delta) else {
        return if r.a.is_some() {
            "only in A".into()
        } else {
            "only in B".into()
        };
    };
    let mut out = Vec::new();
    if d.status_changed {
        out.push(format!("status {:?}→{:?}", a.status, b.status).to_lowercase());
    }
    if d.model_changed {
        out.push(plain(&format!(
            "model {}→{}",
            a.model.as_deref().unwrap_or("none"),
            b.model.as_deref().unwrap_or("none")
        )));
    }
    if d.output_changed {
        out.push("output".into());
    }
    out.join(", ")
}

/// The table of rows, the totals and the output diffs as printed.
fn render(c: &CompareAnswer, max_diffs: usize) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    for (tag, t) in [("A", &c.a), ("B", &c.b)] {
        let _ = writeln!(
            o,
            "{tag} {}  {}  {}  {}  {}  {} tokens  {}",
            t.trace_id,
            fit(&plain(&t.name), 30),
            t.start_time.to_rfc3339(),
            format!("{:?}", t.status).to_lowercase(),
            fmt_duration_ms(t.duration_ms),
            t.total_tokens,
            fmt_cost_cell(t.total_cost_nano_usd, t.unpriced_span_count)
        );
    }
    if c.b_is_previous {
        o.push_str("(B is A's previous run)\n");
    }
    let _ = writeln!(
        o,
        "\n{:<36} {:>9} {:>9} {:>9} {:>9} {:>9} {:>12}  changes",
        "span", "A", "B", "Δ time", "Δ in tok", "Δ out tok", "Δ cost"
    );
    // Rows whose name repeats among their siblings get `#k`, as the alignment counts them.
    let mut repeated = std::collections::HashSet::new();
    for r in &c.comparison.rows {
        if r.occurrence > 0 {
            repeated.insert((r.parent_row, r.name.as_str()));
        }
    }
    for r in &c.comparison.rows {
        let same = repeated.contains(&(r.parent_row, r.name.as_str()));
        let (dt, din, dout, dcost) = match &r.delta {
            Some(d) => (
                d.duration_ms.map_or("-".into(), signed_ms),
                signed_int(d.input_tokens),
                signed_int(d.output_tokens),
                d.cost_usd.map_or("unpriced".into(), signed_cost),
            ),
            None => Default::default(),
        };
        let _ = writeln!(
            o,
            "{:<36} {:>9} {:>9} {:>9} {:>9} {:>9} {:>12}  {}",
            label(r, same),
            side(r.a.as_ref()),
            side(r.b.as_ref()),
            dt,
            din,
            dout,
            dcost,
            changes(r)
        );
    }
    let t = &c.comparison.totals;
    let _ = writeln!(
        o,
        "\ntotals: duration {} → {} ({}), input tokens {} → {} ({}), output tokens {} → {} ({}), cost {} → {} ({}), errors {} → {}",
        fmt_duration_ms(t.a.duration_ms),
        fmt_duration_ms(t.b.duration_ms),
        signed_ms(t.delta.duration_ms),
        t.a.input_tokens,
        t.b.input_tokens,
        signed_int(t.delta.input_tokens),
        t.a.output_tokens,
        t.b.output_tokens,
        signed_int(t.delta.output_tokens),
        crate::client::cost_text(t.a.cost_usd, t.a.unpriced_span_count),
        crate::client::cost_text(t.b.cost_usd, t.b.unpriced_span_count),
        signed_cost(t.delta.cost_usd),
        t.a.error_count,
        t.b.error_count,
    );
    let _ = writeln!(
        o,
        "rows: {} matched, {} only in A, {} only in B, {} changed outputs",
        t.matched, t.only_a, t.only_b, t.changed_outputs
    );
    for n in &c.comparison.notes {
        let _ = writeln!(o, "note: {}", plain(n));
    }
    let diffs: Vec<(&CompareRow, &TextDiff)> = c
        .comparison
        .rows
        .iter()
        .filter_map(|r| Some((r, r.delta.as_ref()?.output_diff.as_ref()?)))
        .collect();
    for (r, d) in diffs.iter().take(max_diffs) {
        let _ = writeln!(
            o,
            "\noutput of {} ([-A only-] {{+B only+}}):",
            label(r, false).trim()
        );
        let _ = writeln!(o, "{}", inline_diff(d));
    }
    if diffs.len() > max_diffs && max_diffs > 0 {
        let _ = writeln!(
            o,
            "\n({} more output diffs: --max-diffs N, or --json)",
            diffs.len() - max_diffs
        );
    }
    o
}

/// A diff on one text, removals as `[-…-]` and additions as `{+…+}`; long kept stretches
/// shortened to their ends.
fn inline_diff(d: &TextDiff) -> String {
    let mut o = String::new();
    for p in &d.pieces {
        let text = plain(&p.text);
        match p.op {
            DiffOp::Equal if text.chars().count() > 160 => {
                let head: String = text.chars().take(60).collect();
                let tail: String = text
                    .chars()
                    .rev()
                    .take(60)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                o.push_str(&format!("{head} … {tail}"));
            }
            DiffOp::Equal => o.push_str(&text),
            DiffOp::Delete => o.push_str(&format!("[-{text}-]")),
            DiffOp::Insert => o.push_str(&format!("{{+{text}+}}")),
        }
    }
    if d.a_cut || d.b_cut {
        o.push_str("\n(outputs compared on their first 20 KB)");
    }
    o
}
