//! `spanlens users create|list|set-role|password`: the people who sign in to the UI, managed
//! in the store itself (`--data-dir` or `--store`, beside a running server or not). Passwords
//! are read from stdin, never from the command line, and only an Argon2id hash is stored.

use crate::store_args::StoreArgs;
use crate::InputError;
use clap::{Args, Subcommand};
use spanlens_auth::{Directory, DirectoryError, Role};
use std::io::BufRead;

/// Arguments of `spanlens users`.
#[derive(Args)]
pub struct UsersArgs {
    #[command(subcommand)]
    command: UsersCommand,
}

#[derive(Subcommand)]
enum UsersCommand {
    /// Add a person with a role in a project; the password is read from stdin (one line).
    Create {
        /// Sign-in name.
        name: String,
        /// The project.
        #[arg(long)]
        project: String,
        /// viewer (read), member (read and send) or admin (everything in the project).
        #[arg(long)]
        role: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List people and their roles.
    List {
        /// Only people with a role in this project.
        #[arg(long)]
        project: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Give a person a role in a project, or take it away with `--role none`.
    SetRole {
        /// Sign-in name.
        name: String,
        /// The project.
        #[arg(long)]
        project: String,
        /// viewer, member, admin or none.
        #[arg(long)]
        role: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Replace a person's password, read from stdin (one line).
    Password {
        /// Sign-in name.
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

fn failed(e: DirectoryError) -> anyhow::Error {
    match e {
        DirectoryError::Account(e) => InputError(e.to_string()).into(),
        e => anyhow::anyhow!(e),
    }
}

/// The password on stdin's first line (without its line end).
fn password() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let p = line.trim_end_matches(['\n', '\r']).to_string();
    if p.is_empty() {
        return Err(InputError("give the password on stdin (one line)".into()).into());
    }
    Ok(p)
}

fn role(s: &str) -> anyhow::Result<Role> {
    s.parse::<Role>().map_err(|e| InputError(e).into())
}

/// Runs `spanlens users …`.
pub fn run(args: UsersArgs) -> anyhow::Result<crate::Outcome> {
    match args.command {
        UsersCommand::Create {
            name,
            project,
            role: r,
            store,
        } => {
            let r = role(&r)?;
            let p = password()?;
            let store = store.open()?;
            let d = Directory::new(store.clone());
            let made =
                crate::block_on(d.create_account(&name, &p, &project, r))?.map_err(failed)?;
            let detail = serde_json::json!({"role": r});
            crate::keys::audit(&*store, &project, "account.create", &made.name, detail)?;
            eprintln!(
                "account {:?} made: {} of project {project:?}",
                made.name,
                r.name()
            );
        }
        UsersCommand::List { project, store } => {
            let d = Directory::new(store.open()?);
            let all = crate::block_on(d.accounts(project.as_deref()))?.map_err(failed)?;
            println!("{:<32} ROLES", "NAME");
            for a in all {
                let roles: Vec<String> = a
                    .roles
                    .iter()
                    .map(|(p, r)| format!("{p}:{}", r.name()))
                    .collect();
                println!("{:<32} {}", a.name, roles.join(" "));
            }
        }
        UsersCommand::SetRole {
            name,
            project,
            role: r,
            store,
        } => {
            let r = match r.as_str() {
                "none" => None,
                other => Some(role(other)?),
            };
            let store = store.open()?;
            let d = Directory::new(store.clone());
            crate::block_on(d.set_role(&name, &project, r))?.map_err(failed)?;
            let detail = serde_json::json!({"role": r});
            crate::keys::audit(&*store, &project, "account.role", &name, detail)?;
            eprintln!(
                "{name:?} in {project:?}: {}",
                r.map_or("no role", |r| r.name())
            );
        }
        UsersCommand::Password { name, store } => {
            let p = password()?;
            let store = store.open()?;
            let d = Directory::new(store.clone());
            let account = crate::block_on(d.account(&name))?.map_err(failed)?;
            crate::block_on(d.set_password(&name, &p))?.map_err(failed)?;
            for project in account.map(|a| a.roles.into_keys()).into_iter().flatten() {
                crate::keys::audit(
                    &*store,
                    &project,
                    "account.password",
                    &name,
                    serde_json::Value::Null,
                )?;
            }
            eprintln!("password of {name:?} replaced; its sessions are ended");
        }
    }
    Ok(crate::Outcome::Done)
}
