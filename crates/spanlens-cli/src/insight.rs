//! `spanlens forecast`, `spanlens reconcile` (clients of a running server) and
//! `spanlens reprice` (works on the data directory itself).

use crate::client::{printed_as_json, Client, ServerArgs};
use crate::{InputError, Outcome};
use anyhow::Context;
use clap::Args;
use spanlens_api::{
    ForecastAnswer, ForecastSeries, ForecastTotal, ReconciliationAnswer, ReconciliationRow,
    WorkflowForecastAnswer,
};
use spanlens_core::{NanoUsd, PriceCatalog, Timestamp};
use spanlens_store::{RepriceReport, ScoreQuery, SpanScan};
use std::fmt::Write as _;
use std::path::PathBuf;

/// Arguments of `spanlens forecast`.
#[derive(Args, Debug)]
pub struct ForecastArgs {
    #[command(flatten)]
    conn: ServerArgs,
    /// Days to forecast (1–365).
    #[arg(long, default_value_t = 30)]
    horizon_days: u32,
    /// Forecast each model, agent or user apart (the project total is always shown).
    #[arg(long)]
    group_by: Option<String>,
    /// Complete days of history to fit (3–730; the default 56 covers eight weeks). With
    /// `--workflow`: the days of runs the cost per run comes from (1–365, default 30).
    #[arg(long)]
    history_days: Option<u32>,
    /// Project one workflow (the traces of this name) instead: its cost per run and what
    /// `--runs` runs (or `--growth-pct`) over the horizon would cost.
    #[arg(long, conflicts_with = "group_by")]
    workflow: Option<String>,
    /// With `--workflow`: runs expected over the horizon.
    #[arg(long, requires = "workflow", conflicts_with = "growth_pct")]
    runs: Option<u64>,
    /// With `--workflow`: the change of the daily run rate, percent (default 0: as now).
    #[arg(long, requires = "workflow", allow_hyphen_values = true)]
    growth_pct: Option<f64>,
    /// With `--workflow`: only runs carrying this tag (repeatable).
    #[arg(long, requires = "workflow")]
    tag: Vec<String>,
    /// With `--workflow`: only runs of this service.
    #[arg(long, requires = "workflow")]
    service: Option<String>,
    /// Print the server's JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Arguments of `spanlens reconcile`.
#[derive(Args, Debug)]
pub struct ReconcileArgs {
    #[command(flatten)]
    conn: ServerArgs,
    /// Spans that started at or after this time (RFC 3339).
    #[arg(long)]
    from: Option<String>,
    /// Spans that started before this time (RFC 3339).
    #[arg(long)]
    to: Option<String>,
    /// Print the server's JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Arguments of `spanlens reprice`.
#[derive(Args, Debug)]
pub struct RepriceArgs {
    /// Price overrides in the format of the built-in catalog (`data/prices.toml`); its entries
    /// win over the built-in ones from their `valid_from` on.
    #[arg(long)]
    prices: PathBuf,
    /// Only spans that started at or after this time (RFC 3339).
    #[arg(long)]
    from: Option<String>,
    /// Only spans that started before this time (RFC 3339).
    #[arg(long)]
    to: Option<String>,
    /// Only spans whose request or response model is this.
    #[arg(long)]
    model: Option<String>,
    /// Project to re-price.
    #[arg(long, default_value = "default")]
    project: String,
    #[command(flatten)]
    store: crate::store_args::StoreArgs,
    /// Show what would change without writing anything.
    #[arg(long)]
    dry_run: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

fn usd(v: f64) -> String {
    format!("${v:.4}")
}

fn money(n: NanoUsd) -> String {
    format!("${:.4}", n.as_usd_f64())
}

/// `spanlens forecast`: the server's forecast as a table, one row per group and a total.
pub fn run_forecast(args: ForecastArgs) -> anyhow::Result<Outcome> {
    let client = Client::new(&args.conn)?;
    if args.workflow.is_some() {
        return run_workflow_forecast(&client, args);
    }
    let mut q = vec![("horizon_days", args.horizon_days.to_string())];
    if let Some(g) = &args.group_by {
        q.push(("group_by", g.clone()));
    }
    if let Some(h) = args.history_days {
        q.push(("history_days", h.to_string()));
    }
    let Some(f) = client.get_or_print::<ForecastAnswer>("/api/v1/forecast", &q, args.json)? else {
        return Ok(Outcome::Done);
    };
    print!("{}", forecast_table(&f));
    let short = std::iter::once(&f.total)
        .chain(&f.groups)
        .any(|g| g.error.is_some());
    Ok(if short {
        Outcome::Incomplete
    } else {
        Outcome::Done
    })
}

/// `spanlens forecast --workflow NAME`: the workflow's cost per run and its projection.
fn run_workflow_forecast(client: &Client, args: ForecastArgs) -> anyhow::Result<Outcome> {
    let mut q = vec![
        ("name", args.workflow.clone().unwrap_or_default()),
        ("horizon_days", args.horizon_days.to_string()),
    ];
    for (k, v) in [
        ("runs", args.runs.map(|r| r.to_string())),
        ("growth_pct", args.growth_pct.map(|g| g.to_string())),
        ("history_days", args.history_days.map(|h| h.to_string())),
        ("service", args.service.clone()),
    ] {
        if let Some(v) = v {
            q.push((k, v));
        }
    }
    q.extend(args.tag.iter().map(|t| ("tag", t.clone())));
    if let Some(w) =
        client.get_or_print::<WorkflowForecastAnswer>("/api/v1/forecast/workflow", &q, args.json)?
    {
        print!("{}", workflow_text(&w));
    }
    Ok(Outcome::Done)
}

/// A workflow projection in a few lines.
pub fn workflow_text(w: &WorkflowForecastAnswer) -> String {
    let h = &w.history;
    let r = &w.per_run;
    let p = &w.projection;
    let range = |lo: Option<f64>, hi: Option<f64>| match (lo, hi) {
        (Some(lo), Some(hi)) => format!(" (95%: {}–{})", usd(lo), usd(hi)),
        _ => String::new(),
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "workflow {}: {} runs from {} to {} ({:.2} a day)",
        w.name, h.runs, h.from, h.to, h.runs_per_day
    );
    let _ = writeln!(
        out,
        "cost per run: mean {}{}, p50 {}, p95 {}",
        usd(r.mean_usd),
        range(r.mean_low_usd, r.mean_high_usd),
        usd(r.p50_usd),
        usd(r.p95_usd)
    );
    let volume = match (p.runs, p.growth_pct) {
        (Some(n), _) => format!("{n} runs"),
        (None, Some(g)) => format!("{:.0} runs ({g:+}% a day)", p.expected_runs),
        (None, None) => format!("{:.0} runs", p.expected_runs),
    };
    let _ = writeln!(
        out,
        "next {} days, {volume}: {}{}",
        p.horizon_days,
        usd(p.cost_usd),
        range(p.low_usd, p.high_usd)
    );
    let _ = writeln!(out, "confidence {}: {}", w.confidence, w.confidence_note);
    out
}

/// The forecast as aligned columns.
pub fn forecast_table(f: &ForecastAnswer) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "forecast {} to {} ({} days), 95% interval",
        f.forecast_from, f.forecast_to, f.horizon_days
    );
    // The project as a whole (no `--group-by`): its forecast day by day first, then the sums.
    if f.groups.is_empty() && !f.total.points.is_empty() {
        let _ = writeln!(
            out,
            "{:<10}  {:>12}  {:>12}  {:>12}",
            "DATE", "FORECAST $", "LOW $", "HIGH $"
        );
        for p in &f.total.points {
            let _ = writeln!(
                out,
                "{:<10}  {:>12}  {:>12}  {:>12}",
                p.date,
                usd(p.cost_usd),
                usd(p.lower_usd),
                usd(p.upper_usd)
            );
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "{:<32}  {:>5}  {:<23}  {:>12}  {:>12}  {:>12}  {:>12}  {:<19}",
        "GROUP", "DAYS", "HISTORY", "HISTORY $", "FORECAST $", "LOW $", "HIGH $", "METHOD"
    );
    let mut row = |name: &str, g: &ForecastSeries| {
        let h = &g.history;
        let range = match (&h.from, &h.to) {
            (Some(f), Some(t)) => format!("{f}..{t}"),
            _ => "-".into(),
        };
        let method = g
            .method
            .clone()
            .or_else(|| g.error.as_ref().map(|e| format!("({e})")))
            .unwrap_or_default();
        let sum = |pick: fn(&ForecastTotal) -> f64| {
            g.total
                .as_ref()
                .map(pick)
                .map(usd)
                .unwrap_or_else(|| "-".into())
        };
        let _ = writeln!(
            out,
            "{:<32}  {:>5}  {:<23}  {:>12}  {:>12}  {:>12}  {:>12}  {}",
            crate::client::fit(name, 32),
            h.days,
            range,
            usd(h.cost_usd),
            sum(|t| t.cost_usd),
            sum(|t| t.lower_usd),
            sum(|t| t.upper_usd),
            method
        );
    };
    for g in &f.groups {
        row(g.key.as_deref().unwrap_or("(none)"), g);
    }
    row("TOTAL", &f.total);
    if f.groups_omitted > 0 {
        let n = f.groups_omitted;
        let _ = writeln!(out, "({n} smaller groups not shown; they count in TOTAL)");
    }
    // Unpriced calls are in no figure above: said, never left to read as $0 (issue #12 item 7).
    let calls = |n: u64| format!("{n} LLM call{}", if n == 1 { "" } else { "s" });
    for g in &f.groups {
        let n = g.history.unpriced_span_count;
        if n > 0 {
            let key = g.key.as_deref().unwrap_or("(none)");
            let _ = writeln!(
                out,
                "{key}: + {} unpriced, not in its history or forecast",
                calls(n)
            );
        }
    }
    for g in &f.unpriced_groups {
        let key = g.key.as_deref().unwrap_or("(none)");
        let _ = writeln!(
            out,
            "{key}: unpriced ({} without a price), not forecast",
            calls(g.unpriced_span_count)
        );
    }
    let n = f.total.history.unpriced_span_count;
    if n > 0 {
        let _ = writeln!(
            out,
            "TOTAL: + {} unpriced in the history window; set a price with `spanlens reprice`",
            calls(n)
        );
    }
    out
}

/// `spanlens reconcile`: provider-reported against catalog-computed cost per model.
pub fn run_reconcile(args: ReconcileArgs) -> anyhow::Result<Outcome> {
    let client = Client::new(&args.conn)?;
    let mut q = Vec::new();
    for (k, v) in [("from", &args.from), ("to", &args.to)] {
        if let Some(v) = v {
            q.push((k, v.clone()));
        }
    }
    let Some(r) =
        client.get_or_print::<ReconciliationAnswer>("/api/v1/reconciliation", &q, args.json)?
    else {
        return Ok(Outcome::Done);
    };
    print!("{}", reconcile_table(&r));
    if r.rows.is_empty() {
        eprintln!("no spans with a provider-reported cost in this range");
    }
    Ok(Outcome::Done)
}

/// The reconciliation as aligned columns.
pub fn reconcile_table(v: &ReconciliationAnswer) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<32}  {:>7}  {:>12}  {:>12}  {:>12}  {:>8}  {:>8}",
        "MODEL", "SPANS", "REPORTED $", "COMPUTED $", "DIFF $", "DIFF %", "UNPRICED"
    );
    let mut row = |name: &str, r: &ReconciliationRow| {
        let pct = r
            .difference_pct
            .map(|p| format!("{p:+.1}%"))
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(
            out,
            "{:<32}  {:>7}  {:>12}  {:>12}  {:>12}  {:>8}  {:>8}",
            crate::client::fit(name, 32),
            r.spans,
            usd(r.reported_usd),
            // Nothing computed because nothing had a catalog price is not $0.
            if r.unpriced_spans == r.spans && r.spans > 0 {
                "unpriced".to_string()
            } else {
                usd(r.computed_usd)
            },
            usd(r.difference_usd),
            pct,
            r.unpriced_spans
        );
    };
    for r in &v.rows {
        row(r.model.as_deref().unwrap_or("(no model)"), r);
    }
    row("TOTAL", &v.total);
    let _ = writeln!(out, "catalog {}", v.catalog_version);
    out
}

fn time_arg(name: &str, v: &Option<String>) -> anyhow::Result<Option<Timestamp>> {
    v.as_deref()
        .map(|s| {
            Timestamp::parse_rfc3339(s)
                .map_err(|e| InputError(format!("invalid --{name} {s:?}: {e}")).into())
        })
        .transpose()
}

/// The spans a data-directory command reads: `--from`/`--to` parsed and checked to be in order.
fn span_scan(
    project: &str,
    from: &Option<String>,
    to: &Option<String>,
    model: Option<String>,
) -> anyhow::Result<SpanScan> {
    let scan = SpanScan {
        project: project.to_string(),
        from: time_arg("from", from)?,
        to: time_arg("to", to)?,
        model,
    };
    if let (Some(f), Some(t)) = (scan.from, scan.to) {
        if t.0 <= f.0 {
            return Err(InputError(format!(
                "--to {:?} is not after --from {:?}",
                to.clone().unwrap_or_default(),
                from.clone().unwrap_or_default()
            ))
            .into());
        }
    }
    Ok(scan)
}

/// An override price file (the format of the built-in catalog) over the built-in prices; a
/// file that cannot be read or parsed is an input error naming it (exit 2).
pub fn load_prices(path: &std::path::Path) -> anyhow::Result<PriceCatalog> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| InputError(format!("cannot read --prices {}: {e}", path.display())))?;
    let overrides = PriceCatalog::from_toml(&text)
        .map_err(|e| InputError(format!("--prices {}: {e}", path.display())))?;
    Ok(PriceCatalog::with_overrides(
        overrides,
        PriceCatalog::builtin(),
    ))
}

/// `spanlens reprice`: re-computes stored computed costs with the override catalog.
pub fn run_reprice(args: RepriceArgs) -> anyhow::Result<Outcome> {
    let catalog = load_prices(&args.prices)?;
    let scan = span_scan(&args.project, &args.from, &args.to, args.model.clone())?;
    let store = args.store.open_existing()?;
    let report = crate::block_on(spanlens_store::domain::reprice::reprice(
        &*store,
        &scan,
        &catalog,
        args.dry_run,
    ))?
    .context("re-pricing the stored spans")?;
    drop(store); // commits and closes the database before the report
    if !printed_as_json(args.json, &report)? {
        print!("{}", reprice_table(&report));
    }
    Ok(Outcome::Done)
}

/// The re-pricing report as aligned columns and a summary line.
pub fn reprice_table(r: &RepriceReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<32}  {:>7}  {:>7}  {:>12}  {:>12}  {:>8}",
        "MODEL", "SPANS", "CHANGED", "BEFORE $", "AFTER $", "UNPRICED"
    );
    for m in &r.models {
        let _ = writeln!(
            out,
            "{:<32}  {:>7}  {:>7}  {:>12}  {:>12}  {:>8}",
            crate::client::fit(&m.model, 32),
            m.spans,
            m.changed,
            money(m.cost_before),
            money(m.cost_after),
            format!("{}→{}", m.unpriced_before, m.unpriced_after),
        );
    }
    let verb = if r.dry_run { "would change" } else { "changed" };
    let _ = writeln!(
        out,
        "{verb} {} of {} spans ({} newly priced); {} spans with a provider-reported cost left as they were; catalog {}",
        r.changed, r.examined, r.newly_priced, r.reported_skipped, r.catalog_version
    );
    if r.unreadable > 0 {
        let _ = writeln!(
            out,
            "{} stored spans could not be read and were left as they are",
            r.unreadable
        );
    }
    out
}

// ---------------------------------------------------------------------------------------------
// spanlens evaluate

/// Arguments of `spanlens evaluate`.
#[derive(Args)]
pub struct EvaluateArgs {
    /// Evaluators file: the same TOML as `spanlens serve --evaluators`.
    #[arg(long, value_name = "FILE")]
    evaluators: PathBuf,
    /// The store (a server may keep running on it).
    #[command(flatten)]
    store: crate::store_args::StoreArgs,
    /// Project whose spans are evaluated.
    #[arg(long, default_value = "default")]
    project: String,
    /// Spans that started at or after this time (RFC 3339).
    #[arg(long)]
    from: Option<String>,
    /// Spans that started before this time (RFC 3339).
    #[arg(long)]
    to: Option<String>,
    /// Compute and report the scores without storing them.
    #[arg(long)]
    dry_run: bool,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// What one evaluator gave over the run.
#[derive(Default, serde::Serialize)]
struct EvalTally {
    scores: u64,
    passed: u64,
    sum: f64,
}

/// Runs evaluators over stored model-call spans (the ones ingested before evaluators were
/// configured) and stores their scores; spans already scored by an evaluator are skipped by it.
pub fn run_evaluate(args: EvaluateArgs) -> anyhow::Result<Outcome> {
    let config = spanlens_server::evaluators::EvaluatorConfig::load(&args.evaluators)
        .map_err(|e| InputError(e.to_string()))?;
    if config.is_empty() {
        return Err(InputError(format!(
            "{} defines no [[evaluator]] or [[judge]]",
            args.evaluators.display()
        ))
        .into());
    }
    let scan = span_scan(&args.project, &args.from, &args.to, None)?;
    let store = args.store.open_existing()?;
    let mut tally: std::collections::BTreeMap<String, EvalTally> = Default::default();
    let (mut spans_seen, mut errors) = (0u64, Vec::new());
    let evaluated: Result<(), spanlens_store::StoreError> = crate::block_on(async {
        let mut batches = store.scan_model_spans(&scan).await?;
        while let Some(spans) = batches.next().await {
            spans_seen += spans.len() as u64;
            let (mut scores, errs) = config.evaluate(&spans);
            errors.extend(errs);
            // A span that already has a score of this name keeps it: running twice adds nothing.
            if let Some(trace_id) = spans.first().map(|s| s.trace_id) {
                let existing = store
                    .list_scores(&ScoreQuery {
                        project: args.project.clone(),
                        trace_id: Some(trace_id),
                        limit: Some(1000),
                        ..Default::default()
                    })
                    .await?;
                scores.retain(|s| {
                    !existing
                        .iter()
                        .any(|e| e.name == s.name && e.span_id == s.span_id)
                });
            }
            for s in &scores {
                let t = tally.entry(s.name.clone()).or_default();
                t.scores += 1;
                t.passed += u64::from(s.value == Some(1.0));
                t.sum += s.value.unwrap_or(0.0);
            }
            if !args.dry_run && !scores.is_empty() {
                store.add_scores(&args.project, &scores).await?;
            }
        }
        batches.finish().await.map(drop)
    })?;
    evaluated.context("evaluating the stored spans")?;
    drop(store); // commits and closes the database before the report
    if args.json {
        println!(
            "{}",
            serde_json::json!({"spans": spans_seen, "dry_run": args.dry_run,
                "evaluators": tally, "errors": errors})
        );
    } else {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{spans_seen} model-call spans evaluated{}",
            if args.dry_run {
                " (dry run: nothing stored)"
            } else {
                ""
            }
        );
        let _ = writeln!(
            out,
            "{:<24}  {:>7}  {:>7}  {:>8}",
            "EVALUATOR", "SCORES", "PASSED", "MEAN"
        );
        for (name, t) in &tally {
            let mean = if t.scores > 0 {
                t.sum / t.scores as f64
            } else {
                0.0
            };
            let _ = writeln!(
                out,
                "{name:<24}  {:>7}  {:>7}  {mean:>8.3}",
                t.scores, t.passed
            );
        }
        for e in errors.iter().take(5) {
            let _ = writeln!(out, "error: {e}");
        }
        print!("{out}");
    }
    Ok(if errors.is_empty() {
        Outcome::Done
    } else {
        Outcome::Incomplete
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use spanlens_api::{ForecastHistory, ForecastPoint, HistoryWindow, UnpricedGroup};

    fn series(key: Option<&str>, cost: f64, unpriced: u64) -> ForecastSeries {
        ForecastSeries {
            key: key.map(str::to_string),
            history: ForecastHistory {
                days: 10,
                from: Some("2026-01-01".into()),
                to: Some("2026-01-10".into()),
                cost_usd: cost,
                cost_nano_usd: (cost * 1e9) as i64,
                unpriced_span_count: unpriced,
                daily: Vec::new(),
            },
            error: None,
            method: Some("linear_trend".into()),
            confidence: Some(0.95),
            trend_usd_per_day: Some(0.0),
            residual_sd_usd: Some(0.1),
            weekday_offsets_usd: None,
            points: Vec::new(),
            total: Some(ForecastTotal {
                cost_usd: 1.0,
                lower_usd: 0.5,
                upper_usd: 1.5,
                cost_nano_usd: 1_000_000_000,
                lower_nano_usd: 500_000_000,
                upper_nano_usd: 1_500_000_000,
            }),
        }
    }

    fn answer(groups: Vec<ForecastSeries>, total: ForecastSeries) -> ForecastAnswer {
        ForecastAnswer {
            project: "default".into(),
            group_by: None,
            horizon_days: 7,
            history_window: HistoryWindow {
                days: 10,
                from: "2026-01-01".into(),
                to: "2026-01-10".into(),
            },
            forecast_from: "2026-01-11".into(),
            forecast_to: "2026-01-17".into(),
            method: "least squares".into(),
            groups,
            groups_omitted: 0,
            unpriced_groups: Vec::new(),
            total,
        }
    }

    /// Unpriced calls of the history are named, and a model with nothing priced is listed as
    /// unpriced instead of showing up as a $0 forecast.
    #[test]
    fn forecast_table_names_unpriced_calls() {
        let mut v = answer(vec![series(Some("gpt-4o"), 3.0, 2)], series(None, 3.0, 12));
        v.unpriced_groups = vec![UnpricedGroup {
            key: Some("acme-ft".into()),
            unpriced_span_count: 10,
        }];
        let t = forecast_table(&v);
        assert!(t.contains("gpt-4o: + 2 LLM calls unpriced"), "{t}");
        assert!(
            t.contains("acme-ft: unpriced (10 LLM calls without a price), not forecast"),
            "{t}"
        );
        assert!(t.contains("TOTAL: + 12 LLM calls unpriced"), "{t}");
        let plain = answer(Vec::new(), series(None, 3.0, 0));
        assert!(!forecast_table(&plain).contains("unpriced"));
    }

    /// Without `--group-by` the table shows the forecast of each day, then the sums.
    #[test]
    fn forecast_table_without_groups_lists_each_day() {
        let mut total = series(None, 3.0, 0);
        let point = |date: &str, cost_usd: f64, lower_usd: f64, upper_usd: f64| ForecastPoint {
            date: date.into(),
            cost_usd,
            lower_usd,
            upper_usd,
        };
        total.points = vec![
            point("2026-01-11", 0.4, 0.3, 0.5),
            point("2026-01-12", 0.6, 0.45, 0.75),
        ];
        let v = answer(Vec::new(), total.clone());
        let t = forecast_table(&v);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[1].starts_with("DATE"), "{t}");
        assert!(
            lines[2].starts_with("2026-01-11") && lines[2].contains("$0.4000"),
            "{t}"
        );
        assert!(
            lines[3].starts_with("2026-01-12") && lines[3].contains("$0.7500"),
            "{t}"
        );
        assert!(t.lines().any(|l| l.starts_with("TOTAL")), "{t}");
        // With groups the day-by-day table is left out (one per group would be too long).
        let grouped = answer(vec![series(Some("gpt-4o"), 3.0, 0)], total);
        assert!(!forecast_table(&grouped).contains("DATE"));
    }

    /// A model none of whose reported spans the catalog can price computes nothing: "unpriced",
    /// not $0.0000.
    #[test]
    fn reconcile_table_says_unpriced_instead_of_zero() {
        let row =
            |model: Option<&str>, spans: u64, unpriced: u64, computed: f64| ReconciliationRow {
                model: model.map(str::to_string),
                spans,
                reported_usd: 0.5,
                computed_usd: computed,
                difference_usd: 0.5 - computed,
                difference_pct: None,
                reported_nano_usd: 500_000_000,
                computed_nano_usd: (computed * 1e9) as i64,
                difference_nano_usd: ((0.5 - computed) * 1e9) as i64,
                unpriced_spans: unpriced,
                unpriced_reported_usd: 0.0,
            };
        let v = ReconciliationAnswer {
            project: "default".into(),
            catalog_version: "test".into(),
            rows: vec![
                row(Some("acme-ft"), 4, 4, 0.0),
                row(Some("gpt-4o"), 3, 0, 0.25),
            ],
            total: row(None, 7, 4, 0.25),
            unreadable_spans: Default::default(),
        };
        let t = reconcile_table(&v);
        let line = |m: &str| t.lines().find(|l| l.starts_with(m)).unwrap().to_string();
        assert!(line("acme-ft").contains("unpriced"), "{t}");
        assert!(!line("acme-ft").contains("$0.0000"), "{t}");
        assert!(line("gpt-4o").contains("$0.2500"), "{t}");
        assert!(line("TOTAL").contains("$0.2500"), "{t}");
    }
}
