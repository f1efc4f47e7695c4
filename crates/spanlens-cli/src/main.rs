//! `spanlens`: the command-line tool — the server, cost look-ups and normalisation.

mod bench;
mod client;
mod cost;
mod delete;
mod demo;
mod diff;
mod forward;
mod insight;
mod keys;
mod log;
mod migrate;
mod normalize;
mod prompts;
mod schema;
mod serve;
mod store_args;
mod users;
mod whatif;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Spanlens: tracing, token and cost analytics for LLM applications and agent pipelines.
#[derive(Parser)]
#[command(name = "spanlens", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Price one LLM call from token counts or a raw provider usage object.
    Cost(cost::CostArgs),
    /// Read an OTLP request (JSON or protobuf) or an OpenAI Agents export and print canonical spans, one JSON per line.
    Normalize(normalize::NormalizeArgs),
    /// Run the server: OTLP/HTTP and the JSON API on :4318, OTLP/gRPC on :4317, data in ./spanlens-data.
    Serve(serve::ServeArgs),
    /// Load generators: `spanlens bench ingest --target URL --concurrency N --duration S`.
    Bench(bench::BenchArgs),
    /// Load realistic demo traces (5 agent workflows over the last 4 weeks) into the data directory.
    Demo(demo::DemoArgs),
    /// List recent traces of a running server as a table.
    Traces(client::TracesArgs),
    /// Show one trace as a tree (accepts a unique id prefix of 6+ hex digits).
    Trace(client::TraceArgs),
    /// Show one trace's agent graph: agents, tools and models, and the calls between them.
    Graph(client::GraphArgs),
    /// How retried calls recovered (rate, time, by provider/tool/error) and rate-limit headroom.
    Recovery(client::RecoveryArgs),
    /// Print spans as they arrive at a running server, until Ctrl-C.
    Tail(client::TailArgs),
    /// Show the alert rules of a running server (`serve --alerts FILE`) and their states.
    Alerts(client::AlertsArgs),
    /// List evaluation scores of a trace, a session or a score name on a running server.
    Scores(client::ScoresArgs),
    /// List the review queues of a running server's project with their progress.
    Queues(client::QueuesArgs),
    /// Run evaluators (the `serve --evaluators` file) over stored model-call spans and store the
    /// scores. Works on the data directory itself, beside a running server or not.
    Evaluate(insight::EvaluateArgs),
    /// Forecast daily cost from a running server's history: per day, with a 95% interval.
    Forecast(insight::ForecastArgs),
    /// Compare provider-reported and catalog-computed cost per model on a running server.
    Reconcile(insight::ReconcileArgs),
    /// Price a trace's or a session's model calls as another catalog model through a running
    /// server, beside their stored cost (nothing stored changes; tokens stay as measured).
    Whatif(whatif::WhatIfArgs),
    /// Re-price stored spans with a price override file. Works on the data directory itself,
    /// beside a running server or not.
    Reprice(insight::RepriceArgs),
    /// Copy a store into another (SQLite to PostgreSQL, …), resumably, and check the copy.
    Migrate(migrate::MigrateArgs),
    /// Print the statements that make a ClickHouse store's schema (with ?cluster=NAME: replicated
    /// tables and distributed ones over them), for operators who run DDL themselves.
    Schema(schema::SchemaArgs),
    /// API keys for a server run with --auth required: create (printed once), list, revoke.
    /// Works on the store itself (the first admin key) or through a server with an admin key.
    Keys(keys::KeysArgs),
    /// People who sign in to the UI of a server run with --auth required: create (password on
    /// stdin), list, set-role, password. Works on the store itself.
    Users(users::UsersArgs),
    /// Delete a trace, a session's traces or a user's traces through a running server; prints
    /// the counts removed.
    Delete(delete::DeleteArgs),
    /// Compare two traces through a running server (B may be `previous`: A's previous run):
    /// spans aligned by name, what changed, the totals and the output diffs.
    Diff(diff::DiffArgs),
    /// Forwarding to other backends: a project's destinations and their delivery counters on a
    /// running server (status), set from a TOML file (set), or a forwarding file checked (check).
    Forward(forward::ForwardArgs),
    /// The prompt templates and versions a running server's spans used in a time range: calls,
    /// cost, latency p50/p95, error rate and mean scores per version.
    Prompts(prompts::PromptsArgs),
}

/// Bad input from the user: reported on stderr with exit status 2.
#[derive(Debug)]
pub struct InputError(pub String);

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InputError {}

/// How a command ended when it did not fail.
pub enum Outcome {
    /// Everything asked for was done.
    Done,
    /// Done, but the result is incomplete in a way scripts should notice (exit status 1).
    Incomplete,
}

impl Command {
    /// Whether the command runs the server or opens a data directory, whose messages (startup,
    /// schema upgrades, store trouble) are `tracing` events written to stderr by [`log`].
    fn logs(&self) -> bool {
        matches!(
            self,
            Command::Serve(_)
                | Command::Demo(_)
                | Command::Evaluate(_)
                | Command::Reprice(_)
                | Command::Migrate(_)
        )
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::Incomplete) => ExitCode::from(1),
        Err(e) if e.downcast_ref::<InputError>().is_some() => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(command: Command) -> anyhow::Result<Outcome> {
    if command.logs() {
        log::init()?;
    }
    match command {
        Command::Cost(args) => cost::run(args),
        Command::Normalize(args) => normalize::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Traces(args) => client::run_traces(args),
        Command::Trace(args) => client::run_trace(args),
        Command::Graph(args) => client::run_graph(args),
        Command::Recovery(args) => client::run_recovery(args),
        Command::Tail(args) => client::run_tail(args),
        Command::Alerts(args) => client::run_alerts(args),
        Command::Scores(args) => client::run_scores(args),
        Command::Queues(args) => client::run_queues(args),
        Command::Evaluate(args) => insight::run_evaluate(args),
        Command::Forecast(args) => insight::run_forecast(args),
        Command::Reconcile(args) => insight::run_reconcile(args),
        Command::Whatif(args) => whatif::run(args),
        Command::Reprice(args) => insight::run_reprice(args),
        Command::Migrate(args) => migrate::run(args),
        Command::Schema(args) => schema::run(args),
        Command::Keys(args) => keys::run(args),
        Command::Users(args) => users::run(args),
        Command::Delete(args) => delete::run(args),
        Command::Diff(args) => diff::run(args),
        Command::Forward(args) => forward::run(args),
        Command::Prompts(args) => prompts::run(args),
    }
}

/// Reads a file, or standard input for `-`.
pub fn read_input(path: &str) -> anyhow::Result<Vec<u8>> {
    use anyhow::Context;
    use std::io::Read;
    if path == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .context("reading standard input")?;
        Ok(buf)
    } else {
        std::fs::read(path).map_err(|e| InputError(format!("cannot read {path}: {e}")).into())
    }
}

/// Runs a future to completion on a runtime of its own, for the commands that open the store
/// directly (the store's reads hand blocking work to tokio's pool).
/// Runs `f` on the CLI's one runtime, made on first use. One runtime for the whole command, so
/// a server store opened in one call (its writer task runs there) still works in the next.
pub(crate) fn block_on<F: std::future::Future>(f: F) -> anyhow::Result<F::Output> {
    static RUNTIME: std::sync::OnceLock<Result<tokio::runtime::Runtime, String>> =
        std::sync::OnceLock::new();
    let rt = RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| anyhow::anyhow!("starting the async runtime: {e}"))?;
    Ok(rt.block_on(f))
}
