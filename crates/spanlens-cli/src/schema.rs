//! `spanlens schema --store clickhouse://…`: prints the statements that make a ClickHouse
//! store's schema, for operators who run DDL themselves (a cluster's change process, a user
//! without DDL rights for the collectors). Collectors run the same statements at start.

use crate::{InputError, Outcome};
use clap::Args;

/// What to print.
#[derive(Args, Debug)]
pub struct SchemaArgs {
    /// The store whose schema to print: clickhouse://host:8123/db, with ?cluster=NAME for a
    /// cluster's replicated and distributed tables and ?payload_ttl_days=N for the body TTL.
    #[arg(long, value_name = "URI")]
    store: String,
}

/// Prints each statement followed by `;` and a blank line.
pub fn run(args: SchemaArgs) -> anyhow::Result<Outcome> {
    let statements = statements(&args.store)?;
    for s in statements {
        println!("{};\n", s.trim());
    }
    Ok(Outcome::Done)
}

#[cfg(feature = "clickhouse")]
fn statements(uri: &str) -> anyhow::Result<Vec<String>> {
    if !uri.trim().starts_with("clickhouse://") {
        return Err(InputError(format!(
            "--store {}: only a clickhouse:// store has its schema printed (SQLite and PostgreSQL \
             stores make and migrate theirs themselves)",
            spanlens_store::redact(uri)
        ))
        .into());
    }
    spanlens_store::ClickHouseStore::schema_statements(uri)
        .map_err(|why| InputError(format!("--store {}: {why}", spanlens_store::redact(uri))).into())
}

#[cfg(not(feature = "clickhouse"))]
fn statements(uri: &str) -> anyhow::Result<Vec<String>> {
    Err(InputError(format!(
        "--store {}: this build has no clickhouse backend",
        spanlens_store::redact(uri)
    ))
    .into())
}
