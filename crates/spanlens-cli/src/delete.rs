//! `spanlens delete trace|session|user ID`: deletes through a running server (so the deletion
//! is audited and live watchers are told), in the project of `--project` or of the key.

use crate::client::{parse_answer_of, Client, ServerArgs};
use clap::{Args, ValueEnum};
use spanlens_api::ErasedAnswer;

/// Arguments of `spanlens delete`.
#[derive(Args)]
pub struct DeleteArgs {
    /// What to delete: one trace, every trace of a session, or every trace of a user (the
    /// right to erasure).
    what: What,
    /// Its id (a trace's 32 hex digits, a session or user id).
    id: String,
    #[command(flatten)]
    conn: ServerArgs,
    /// Print the answer as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum What {
    Trace,
    Session,
    User,
}

/// Runs `spanlens delete …`.
pub fn run(args: DeleteArgs) -> anyhow::Result<crate::Outcome> {
    let client = Client::new(&args.conn)?;
    let collection = match args.what {
        What::Trace => "traces",
        What::Session => "sessions",
        What::User => "users",
    };
    let path = format!("/api/v1/{collection}/{}", crate::client::percent(&args.id));
    let project = args.conn.project_name().to_string();
    let text = client.send_json("DELETE", &path, &[("project", project)], None)?;
    let answer: ErasedAnswer = parse_answer_of(&path, &text)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    } else {
        let e = answer.erased;
        println!(
            "deleted {} traces, {} spans, {} scores from project {:?}",
            e.traces, e.spans, e.scores, answer.project
        );
    }
    Ok(crate::Outcome::Done)
}
