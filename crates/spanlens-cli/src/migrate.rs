//! `spanlens migrate --from URI --to URI`: copies a store into another (any pair of backends)
//! with a progress line, resumable after an interruption, and checks the copy at the end
//! (`spanlens_store::domain::copy`).

use crate::store_args::open_uri;
use crate::{InputError, Outcome};
use clap::Args;
use spanlens_store::domain::copy::{copy_store, CopyError, CopyOptions, CopyProgress, CopyReport};
use spanlens_store::StoreUri;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Arguments of `spanlens migrate`.
#[derive(Args, Debug)]
pub struct MigrateArgs {
    /// The store to copy (sqlite:///path/to/dir, postgres://…); it must exist.
    #[arg(long, value_name = "URI")]
    from: String,
    /// The store to copy into: empty, or holding an interrupted copy of the same source, which
    /// is resumed.
    #[arg(long, value_name = "URI")]
    to: String,
    /// Print the final check as JSON.
    #[arg(long)]
    json: bool,
}

/// Seconds between progress lines when stderr is not a terminal.
const LOG_EVERY: Duration = Duration::from_secs(5);

/// Copies, then compares both stores project by project: exit 0 when they match, 1 when they
/// do not (or the copy failed), 2 for a bad URI, 130 when interrupted (run it again to resume).
pub fn run(args: MigrateArgs) -> anyhow::Result<Outcome> {
    let parse = |flag: &str, text: &str| {
        StoreUri::parse(text).map_err(|e| InputError(format!("--{flag}: {e}")))
    };
    let (from, to) = (parse("from", &args.from)?, parse("to", &args.to)?);
    if from == to {
        return Err(InputError(format!("--from and --to are the same store ({from})")).into());
    }
    let source = crate::block_on(open_uri(&from, true, &format!("--from {from}")))??;
    let target = crate::block_on(open_uri(&to, false, &format!("--to {to}")))??;
    let stop = Arc::new(AtomicBool::new(false));
    let report = crate::block_on(async {
        let flag = stop.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                flag.store(true, Ordering::SeqCst);
            }
        });
        let mut line = ProgressLine::new();
        let out = copy_store(
            &*source,
            &*target,
            &from.redacted(),
            CopyOptions::default(),
            &mut |p| {
                line.show(p);
                !stop.load(Ordering::SeqCst)
            },
        )
        .await;
        line.done();
        out
    })?;
    let report = match report {
        Ok(r) => r,
        Err(CopyError::Interrupted) => {
            drop((source, target)); // every page written so far is committed; close cleanly
            eprintln!(
                "interrupted: progress is saved in the target; run the same command again to resume"
            );
            std::process::exit(130);
        }
        Err(e @ CopyError::TargetNotEmpty { .. }) => return Err(InputError(e.to_string()).into()),
        Err(e) => return Err(e.into()),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", check_table(&report));
    }
    if report.matches() {
        eprintln!("copied {from} into {to}: every project matches");
        Ok(Outcome::Done)
    } else {
        eprintln!("copied {from} into {to}, but the stores differ (see above)");
        Ok(Outcome::Incomplete)
    }
}

/// The final check: one line per project and store.
fn check_table(r: &CopyReport) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<24}  {:<6}  {:>12}  {:>10}  {:>8}  {:>16}  {:>9}  check",
        "PROJECT", "STORE", "SPANS", "TRACES", "SCORES", "COST", "UNPRICED"
    );
    for c in &r.projects {
        for (name, t) in [("from", &c.source), ("to", &c.target)] {
            let check = match (name, c.matches()) {
                ("from", _) => String::new(),
                (_, true) => "ok".to_string(),
                (_, false) => "DIFFERS".to_string(),
            };
            let _ = writeln!(
                out,
                "{:<24}  {:<6}  {:>12}  {:>10}  {:>8}  {:>16}  {:>9}  {check}",
                crate::client::fit(&c.project, 24),
                name,
                t.spans,
                t.traces,
                t.scores,
                t.cost.to_string(),
                t.unpriced,
            );
        }
        if c.unreadable_spans > 0 {
            let _ = writeln!(
                out,
                "  {} spans of {:?} could not be read from the source and were not copied",
                c.unreadable_spans, c.project
            );
        }
    }
    for u in &r.unreadable.examples {
        let _ = writeln!(
            out,
            "  unreadable: trace {} span {}: {}",
            u.trace_id,
            u.span_id.as_deref().unwrap_or("?"),
            u.reason
        );
    }
    out
}

/// The copy's progress on stderr: one line rewritten in place on a terminal, a line every few
/// seconds otherwise (a log file or CI).
struct ProgressLine {
    tty: bool,
    /// The first progress of this run (a resumed copy starts from its saved count).
    first: Option<(Instant, u64)>,
    last: Option<Instant>,
    shown: bool,
}

impl ProgressLine {
    fn new() -> ProgressLine {
        ProgressLine {
            tty: std::io::stderr().is_terminal(),
            first: None,
            last: None,
            shown: false,
        }
    }

    fn show(&mut self, p: &CopyProgress) {
        let now = Instant::now();
        if !self.tty && self.last.is_some_and(|l| now - l < LOG_EVERY) {
            return;
        }
        self.last = Some(now);
        let (t0, s0) = *self.first.get_or_insert((now, p.spans));
        let rate = match (now - t0).as_secs_f64() {
            secs if secs > 0.5 => format!(", {:.0} spans/s", (p.spans - s0) as f64 / secs),
            _ => String::new(),
        };
        let pct = if p.total_spans > 0 {
            format!("{:.1}%", 100.0 * p.spans as f64 / p.total_spans as f64)
        } else {
            "-".into()
        };
        let text = format!(
            "copying {:?}: {}/{} spans ({pct}), {} traces, {} scores{rate}",
            p.project, p.spans, p.total_spans, p.traces, p.scores
        );
        let mut err = std::io::stderr().lock();
        let _ = if self.tty {
            write!(err, "\r\x1b[2K{text}")
        } else {
            writeln!(err, "{text}")
        };
        self.shown = true;
    }

    fn done(&mut self) {
        if self.tty && self.shown {
            eprintln!();
        }
    }
}
