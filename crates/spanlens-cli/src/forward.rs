//! `spanlens forward status|set|check`: where a running server sends a project's spans on, and
//! how delivery is doing; a project's own destinations set from a TOML file; a forwarding file
//! checked before a server is started with it.

use crate::client::{parse_answer_of, Client, ServerArgs};
use clap::{Args, Subcommand};
use spanlens_api::{ForwardingAnswer, ProjectForwarding};
use std::path::PathBuf;

/// Arguments of `spanlens forward`.
#[derive(Args)]
pub struct ForwardArgs {
    #[command(subcommand)]
    command: ForwardCommand,
}

#[derive(Subcommand)]
enum ForwardCommand {
    /// The destinations of the project (`--project`, or the key's) with their delivery
    /// counters: spans handed over, requests sent, retried, rejected, dropped, queued, lag.
    Status {
        #[command(flatten)]
        conn: ServerArgs,
        /// Print the answer as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Replace the project's own destinations with the `[[destination]]` tables of FILE (the
    /// format of `serve --forward`; an empty file removes them). Needs an admin key.
    Set {
        /// The TOML file.
        file: PathBuf,
        #[command(flatten)]
        conn: ServerArgs,
    },
    /// Check a forwarding file (`serve --forward FILE`) without starting anything.
    Check {
        /// The TOML file.
        file: PathBuf,
    },
}

/// Runs `spanlens forward …`.
pub fn run(args: ForwardArgs) -> anyhow::Result<crate::Outcome> {
    match args.command {
        ForwardCommand::Check { file } => {
            let c = spanlens_server::forward::config::load(&file)
                .map_err(|e| crate::InputError(e.to_string()))?;
            for d in &c.destination {
                // Secrets named by variable must be set where the server will run.
                spanlens_server::forward::config::resolve(d)
                    .map_err(|e| crate::InputError(e.to_string()))?;
            }
            println!(
                "{}: {} destination(s) ok: {}",
                file.display(),
                c.destination.len(),
                c.destination
                    .iter()
                    .map(|d| d.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            Ok(crate::Outcome::Done)
        }
        ForwardCommand::Status { conn, json } => {
            let client = Client::new(&conn)?;
            let path = format!(
                "/api/v1/projects/{}/forwarding",
                crate::client::percent(conn.project_name())
            );
            let text = client.send_json("GET", &path, &[], None)?;
            let answer: ForwardingAnswer = parse_answer_of(&path, &text)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&answer)?);
            } else {
                print_status(&answer);
            }
            Ok(crate::Outcome::Done)
        }
        ForwardCommand::Set { file, conn } => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| crate::InputError(format!("cannot read {}: {e}", file.display())))?;
            let c = spanlens_server::forward::config::from_toml(&text)
                .map_err(|e| crate::InputError(format!("{}: {e}", file.display())))?;
            let body = serde_json::to_value(ProjectForwarding {
                destinations: c.destination,
            })?;
            let client = Client::new(&conn)?;
            let path = format!(
                "/api/v1/projects/{}/forwarding",
                crate::client::percent(conn.project_name())
            );
            let text = client.send_json("PUT", &path, &[], Some(&body))?;
            let answer: ForwardingAnswer = parse_answer_of(&path, &text)?;
            print_status(&answer);
            Ok(crate::Outcome::Done)
        }
    }
}

fn print_status(a: &ForwardingAnswer) {
    if a.destinations.is_empty() {
        println!("project {:?}: no forwarding destinations", a.project);
        return;
    }
    println!(
        "{:<20} {:<9} {:<7} {:>9} {:>7} {:>7} {:>8} {:>7} {:>7} {:>8}  endpoint",
        "destination",
        "kind",
        "source",
        "spans",
        "sent",
        "retried",
        "rejected",
        "dropped",
        "queued",
        "lag"
    );
    for d in &a.destinations {
        let c = &d.counters;
        println!(
            "{:<20} {:<9} {:<7} {:>9} {:>7} {:>7} {:>8} {:>7} {:>7} {:>7.1}s  {}",
            crate::client::fit(&d.config.name, 20),
            crate::client::wire_name(&d.config.kind),
            crate::client::wire_name(&d.source),
            c.spans,
            c.sent,
            c.retried,
            c.rejected,
            c.dropped + c.dropped_overflow,
            c.queued,
            c.lag_seconds,
            d.config.endpoint
        );
        if let Some(e) = &c.last_error {
            println!("  last error: {e}");
        }
    }
}
