//! `spanlens keys create|list|revoke`: API keys, made in the store itself (`--data-dir` or
//! `--store`, beside a running server or not: how the first admin key is made) or through a
//! running server's API with an admin key (`--server URL` and `SPANLENS_KEY`).

use crate::client::{parse_answer_of, Client, ServerArgs};
use crate::store_args::StoreArgs;
use crate::InputError;
use clap::{Args, Subcommand};
use serde_json::json;
use spanlens_api::{KeyView, KeysAnswer, NewKey, RevokedKey, Scope};
use spanlens_auth::Directory;

/// Arguments of `spanlens keys`.
#[derive(Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Make a key; prints it once on stdout (only its SHA-256 is kept).
    Create(CreateArgs),
    /// List keys by name and prefix, with scopes, last use and revocation.
    List(ListArgs),
    /// Revoke a key by its id (the part after `slk_` in a list).
    Revoke(RevokeArgs),
}

/// Where the keys are: a store, or a running server.
#[derive(Args)]
struct Place {
    #[command(flatten)]
    store: StoreArgs,
    /// Manage the keys through this running server instead of the store (needs an admin key:
    /// --key or SPANLENS_KEY).
    #[arg(long, value_name = "URL")]
    server: Option<String>,
    /// The admin key for --server. Also SPANLENS_KEY.
    #[arg(long, env = "SPANLENS_KEY", hide_env_values = true, value_name = "KEY")]
    key: Option<String>,
}

#[derive(Args)]
struct CreateArgs {
    /// The key's project: everything it sends is stored there, and it reads nothing else.
    #[arg(long)]
    project: String,
    /// What it may do: ingest, read or admin (repeatable).
    #[arg(long = "scope", required = true, value_name = "SCOPE")]
    scopes: Vec<String>,
    /// What it is for (shown in lists).
    #[arg(long, default_value = "")]
    name: String,
    /// A Langfuse public/secret key pair (ingest only) for Langfuse's SDKs, which send them as
    /// HTTP Basic credentials.
    #[arg(long)]
    langfuse: bool,
    /// Print the new key as JSON (id, prefix, secret, …).
    #[arg(long)]
    json: bool,
    /// Most spans per second the key may send (429 with Retry-After past it).
    #[arg(long, value_name = "N")]
    spans_per_second: Option<u32>,
    /// Most request bytes per UTC day the key may send.
    #[arg(long, value_name = "BYTES")]
    bytes_per_day: Option<u64>,
    #[command(flatten)]
    place: Place,
}

#[derive(Args)]
struct ListArgs {
    /// Only this project's keys (through a server: the admin key's project).
    #[arg(long)]
    project: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    place: Place,
}

#[derive(Args)]
struct RevokeArgs {
    /// The key's id (16 hex digits).
    id: String,
    #[command(flatten)]
    place: Place,
}

impl Place {
    fn client(&self) -> anyhow::Result<Option<Client>> {
        match &self.server {
            None => Ok(None),
            Some(url) => Ok(Some(Client::new(&ServerArgs::at(
                url.clone(),
                self.key.clone(),
            ))?)),
        }
    }

    fn directory(&self) -> anyhow::Result<Directory> {
        Ok(Directory::new(self.store.open()?))
    }
}

/// Runs `spanlens keys …`.
pub fn run(args: KeysArgs) -> anyhow::Result<crate::Outcome> {
    match args.command {
        KeysCommand::Create(a) => create(a),
        KeysCommand::List(a) => list(a),
        KeysCommand::Revoke(a) => revoke(a),
    }
}

fn input(e: impl std::fmt::Display) -> anyhow::Error {
    InputError(e.to_string()).into()
}

fn create(a: CreateArgs) -> anyhow::Result<crate::Outcome> {
    let scopes = a
        .scopes
        .iter()
        .map(|s| s.parse::<Scope>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(input)?;
    let quota = spanlens_auth::Quota {
        spans_per_second: a.spans_per_second,
        bytes_per_day: a.bytes_per_day,
    };
    let new: NewKey = match a.place.client()? {
        Some(client) => {
            let body = json!({"project": a.project, "name": a.name, "scopes": scopes,
                              "langfuse": a.langfuse, "quota": quota});
            let text = client.send_json("POST", "/api/v1/keys", &[], Some(&body))?;
            parse_answer_of("/api/v1/keys", &text)?
        }
        None => {
            let store = a.place.store.open()?;
            let dir = Directory::new(store.clone());
            let made = dir.create_with_quota(&a.project, &a.name, &scopes, a.langfuse, quota);
            let new = crate::block_on(made)?.map_err(|e| match e {
                spanlens_auth::DirectoryError::Key(e) => input(e),
                e => anyhow::anyhow!(e),
            })?;
            let detail = json!({"name": new.view.name, "scopes": new.view.scopes,
                                "langfuse": new.view.langfuse, "quota": new.view.quota});
            audit(&*store, &a.project, "key.create", &new.view.prefix, detail)?;
            new
        }
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&new)?);
    } else {
        match &new.public_key {
            Some(public) => {
                println!("LANGFUSE_PUBLIC_KEY={public}");
                println!("LANGFUSE_SECRET_KEY={}", new.secret);
            }
            None => println!("{}", new.secret),
        }
        eprintln!(
            "key {} ({}) for project {:?}, scopes {}: shown once, keep it now",
            new.view.prefix,
            new.view.name,
            new.view.project,
            scope_names(&new.view.scopes)
        );
    }
    Ok(crate::Outcome::Done)
}

/// Records a change made on the store itself in the audit log (actor `cli`).
pub(crate) fn audit(
    store: &dyn spanlens_store::Store,
    project: &str,
    action: &str,
    target: &str,
    detail: serde_json::Value,
) -> anyhow::Result<()> {
    let entry = spanlens_auth::AuditEntry {
        time_ns: 0,
        project: project.to_string(),
        actor: "cli".into(),
        action: action.into(),
        target: target.into(),
        detail,
    };
    crate::block_on(spanlens_auth::audit::record(store, entry))??;
    Ok(())
}

fn scope_names(s: &[Scope]) -> String {
    s.iter().map(|s| s.name()).collect::<Vec<_>>().join("+")
}

fn list(a: ListArgs) -> anyhow::Result<crate::Outcome> {
    let keys: Vec<KeyView> = match a.place.client()? {
        Some(client) => {
            let query: Vec<(&str, String)> =
                a.project.iter().map(|p| ("project", p.clone())).collect();
            let text = client.send_json("GET", "/api/v1/keys", &query, None)?;
            parse_answer_of::<KeysAnswer>("/api/v1/keys", &text)?.keys
        }
        None => crate::block_on(a.place.directory()?.list(a.project.as_deref()))??,
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&keys)?);
        return Ok(crate::Outcome::Done);
    }
    println!(
        "{:<23} {:<20} {:<16} {:<18} {:<20} STATE",
        "PREFIX", "NAME", "PROJECT", "SCOPES", "LAST USED"
    );
    for k in &keys {
        let when = |ns: Option<i64>| {
            ns.map_or("never".to_string(), |ns| {
                spanlens_core::Timestamp(ns.max(0) as u64).to_rfc3339()[..19].replace('T', " ")
            })
        };
        println!(
            "{:<23} {:<20} {:<16} {:<18} {:<20} {}",
            k.prefix,
            clip(&k.name, 20),
            clip(&k.project, 16),
            scope_names(&k.scopes),
            when(k.last_used_ns),
            match k.revoked_ns {
                Some(ns) => format!("revoked {}", when(Some(ns))),
                None => "active".into(),
            }
        );
    }
    Ok(crate::Outcome::Done)
}

fn clip(s: &str, n: usize) -> String {
    let mut out: String = s.chars().filter(|c| !c.is_control()).take(n).collect();
    if s.chars().count() > n {
        out.pop();
        out.push('…');
    }
    out
}

fn revoke(a: RevokeArgs) -> anyhow::Result<crate::Outcome> {
    let id =
        a.id.trim()
            .trim_start_matches("slk_")
            .trim_start_matches("pk-lf-")
            .to_string();
    let key = match a.place.client()? {
        Some(client) => {
            let path = format!("/api/v1/keys/{id}");
            let text = client.send_json("DELETE", &path, &[], None)?;
            Some(parse_answer_of::<RevokedKey>(&path, &text)?.key)
        }
        None => {
            let store = a.place.store.open()?;
            let key = crate::block_on(Directory::new(store.clone()).revoke(None, &id))??;
            if let Some(k) = &key {
                audit(
                    &*store,
                    &k.project,
                    "key.revoke",
                    &k.prefix,
                    json!({"name": k.name}),
                )?;
            }
            key
        }
    };
    match key {
        Some(k) => {
            eprintln!(
                "revoked {} ({}) of project {:?}",
                k.prefix, k.name, k.project
            );
            Ok(crate::Outcome::Done)
        }
        None => Err(input(format!("no key {id:?} in this store"))),
    }
}
