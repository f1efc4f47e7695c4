//! `spanlens whatif`: a trace's or a session's model calls priced as another catalog model,
//! beside their stored cost (a client of a running server's `GET /api/v1/whatif`).

use crate::client::{fit, Client, ServerArgs};
use crate::{InputError, Outcome};
use clap::Args;
use spanlens_api::WhatIfAnswer;
use std::fmt::Write as _;

/// Arguments of `spanlens whatif`.
#[derive(Args, Debug)]
pub struct WhatIfArgs {
    #[command(flatten)]
    conn: ServerArgs,
    /// The trace to price.
    #[arg(long, conflicts_with_all = ["session", "from", "to", "filter"], required_unless_present_any = ["session", "from", "to", "filter"])]
    trace: Option<String>,
    /// The session to price (its traces, up to 1,000).
    #[arg(long, conflicts_with_all = ["from", "to", "filter"])]
    session: Option<String>,
    /// The traces the trace list's filter chooses, as `KEY=VALUE` (`name=support`, `tag=prod`,
    /// `user=u1`, `min_cost=0.1`, …; repeatable, with `--from`/`--to` on their start), up to 1,000.
    #[arg(long, value_name = "KEY=VALUE")]
    filter: Vec<String>,
    /// Instead: every model call that started at or after this time (RFC 3339), by model.
    #[arg(long)]
    from: Option<String>,
    /// With `--from`: and before this time.
    #[arg(long)]
    to: Option<String>,
    /// The catalog model to price the calls as (`GET /api/v1/models` lists them).
    #[arg(long = "as", value_name = "MODEL")]
    as_model: String,
    /// Price only the calls of this model; the others stay as stored.
    #[arg(long)]
    only_model: Option<String>,
    /// Price only this agent's calls.
    #[arg(long)]
    only_agent: Option<String>,
    /// Price only the calls to this provider.
    #[arg(long)]
    only_provider: Option<String>,
    /// Price cached input tokens as plain input (as if nothing had been cached).
    #[arg(long)]
    no_cache_reads: bool,
    /// Print the server's JSON instead of a table.
    #[arg(long)]
    json: bool,
}

fn usd(v: Option<f64>) -> String {
    v.map_or_else(|| "unpriced".into(), |v| format!("${v:.6}"))
}

/// A summed cost that never reads as a false $0: `unpriced`, or `$x + N unpriced`.
fn cost(usd: f64, unpriced: usize) -> String {
    match unpriced {
        0 => format!("${usd:.6}"),
        n if usd == 0.0 => format!("unpriced ({n})"),
        n => format!("${usd:.6} + {n} unpriced"),
    }
}

/// `spanlens whatif`: the calls as a table, the totals and what the token counts mean.
pub fn run(args: WhatIfArgs) -> anyhow::Result<Outcome> {
    let client = Client::new(&args.conn)?;
    let mut q = vec![("as", args.as_model.clone())];
    let mut filters: Vec<(String, String)> = Vec::new();
    for (k, v) in [
        ("trace_id", &args.trace),
        ("session_id", &args.session),
        ("from", &args.from),
        ("to", &args.to),
        ("only_model", &args.only_model),
        ("only_agent", &args.only_agent),
        ("only_provider", &args.only_provider),
    ] {
        if let Some(v) = v {
            q.push((k, v.clone()));
        }
    }
    if args.no_cache_reads {
        q.push(("cache_reads", "false".into()));
    }
    for f in &args.filter {
        let Some((k, v)) = f.split_once('=') else {
            return Err(InputError(format!(
                "--filter {f:?}: expected KEY=VALUE, e.g. name=support"
            ))
            .into());
        };
        filters.push((k.trim().to_string(), v.to_string()));
    }
    let query: Vec<(&str, String)> = q
        .into_iter()
        .chain(filters.iter().map(|(k, v)| (k.as_str(), v.clone())))
        .collect();
    if let Some(a) = client.get_or_print::<WhatIfAnswer>("/api/v1/whatif", &query, args.json)? {
        print!("{}", table(&a));
    }
    Ok(Outcome::Done)
}

/// The answer as aligned columns, its totals and its note.
pub fn table(a: &WhatIfAnswer) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} {} priced as {} (catalog {}{})",
        a.scope,
        a.id,
        a.model,
        a.pricing_version,
        if a.cache_reads {
            ""
        } else {
            ", cached input as plain input"
        }
    );
    if !a.calls.is_empty() {
        let _ = writeln!(
            out,
            "{:<16}  {:<20}  {:<24}  {:>9}  {:>8}  {:>8}  {:>12}  {:>12}",
            "SPAN", "NAME", "MODEL", "IN", "CACHED", "OUT", "STORED", "WHAT-IF"
        );
        for c in &a.calls {
            let _ = writeln!(
                out,
                "{:<16}  {:<20}  {:<24}  {:>9}  {:>8}  {:>8}  {:>12}  {:>12}{}",
                c.span_id,
                fit(&c.name, 20),
                fit(c.model.as_deref().unwrap_or("-"), 24),
                c.input_tokens,
                c.cache_read_tokens,
                c.output_tokens,
                usd(c.stored_usd),
                usd(c.whatif_usd),
                if c.repriced { "" } else { "  (kept)" }
            );
        }
    }
    if a.calls.is_empty() && !a.by_model.is_empty() {
        let _ = writeln!(
            out,
            "{:<40}  {:>8}  {:>9}  {:>12}  {:>12}",
            "RAN ON", "CALLS", "REPRICED", "STORED", "WHAT-IF"
        );
        for m in &a.by_model {
            let _ = writeln!(
                out,
                "{:<40}  {:>8}  {:>9}  {:>12}  {:>12}",
                fit(m.model.as_deref().unwrap_or("-"), 40),
                m.calls,
                m.repriced,
                cost(m.stored_usd, m.stored_unpriced),
                cost(m.whatif_usd, m.whatif_unpriced)
            );
        }
    }
    let t = &a.total;
    let _ = writeln!(
        out,
        "TOTAL: {} calls in {} trace(s), {} priced as {}: stored ${:.6}, what-if ${:.6} ({}{:.6})",
        t.calls,
        a.traces,
        t.repriced,
        a.model,
        t.stored_usd,
        t.whatif_usd,
        if t.difference_usd < 0.0 { "-$" } else { "+$" },
        t.difference_usd.abs()
    );
    if t.stored_unpriced > 0 {
        let _ = writeln!(
            out,
            "{} call(s) had no stored price: they are in the what-if total only",
            t.stored_unpriced
        );
    }
    if t.whatif_unpriced > 0 {
        let _ = writeln!(
            out,
            "{} call(s) kept as stored have no price: in neither total",
            t.whatif_unpriced
        );
    }
    let _ = writeln!(out, "{}", a.note);
    out
}
