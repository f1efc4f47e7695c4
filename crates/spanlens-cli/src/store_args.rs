//! `--store URI` (or `SPANLENS_STORE`), with `--data-dir DIR` as the shorthand for
//! `sqlite:///DIR`: how every command that opens the store itself names it.

use crate::InputError;
use clap::Args;
use spanlens_store::{Store, StoreUri};
use std::path::PathBuf;
use std::sync::Arc;

/// Where the store is.
#[derive(Args, Debug, Clone)]
pub struct StoreArgs {
    /// The store: sqlite:///path/to/dir (the embedded default), postgres://user:password@host:port/db
    /// or clickhouse://host:8123/db. Also SPANLENS_STORE.
    #[arg(
        long,
        env = "SPANLENS_STORE",
        value_name = "URI",
        conflicts_with = "data_dir"
    )]
    store: Option<String>,
    /// Directory of the embedded database: shorthand for --store sqlite:///DIR.
    #[arg(long, value_name = "DIR", default_value = "spanlens-data")]
    data_dir: PathBuf,
}

impl StoreArgs {
    /// The store these arguments name; a URI that cannot be parsed is an input error (exit 2).
    pub fn uri(&self) -> anyhow::Result<StoreUri> {
        match &self.store {
            Some(text) => Ok(StoreUri::parse(text).map_err(|e| InputError(e.to_string()))?),
            None => Ok(StoreUri::sqlite(&self.data_dir)),
        }
    }

    /// The data directory of an embedded store (none for a server backend).
    pub fn data_dir(&self) -> anyhow::Result<Option<PathBuf>> {
        Ok(match self.uri()? {
            StoreUri::Sqlite { dir } => Some(dir),
            _ => None,
        })
    }

    /// Opens the store on the CLI's runtime (`crate::block_on`), creating an embedded one if
    /// missing. A store that cannot be opened is an input error naming the URI (exit 2).
    pub fn open(&self) -> anyhow::Result<Arc<dyn Store>> {
        crate::block_on(self.open_async())?
    }

    /// [`open`](Self::open) on the caller's runtime.
    pub async fn open_async(&self) -> anyhow::Result<Arc<dyn Store>> {
        open_uri(&self.uri()?, false, &self.named()?).await
    }

    /// Opens a store that must already hold data: an embedded one must exist (a command that
    /// only reads or rewrites stored spans should not create an empty database).
    pub fn open_existing(&self) -> anyhow::Result<Arc<dyn Store>> {
        crate::block_on(open_uri(&self.uri()?, true, &self.named()?))?
    }

    /// The option that named the store, for messages.
    fn named(&self) -> anyhow::Result<String> {
        Ok(match (&self.store, self.uri()?) {
            (None, StoreUri::Sqlite { dir }) => format!("--data-dir {}", dir.display()),
            (_, uri) => format!("--store {uri}"),
        })
    }
}

/// Opens the store at `uri`, named `named` in messages (`--from sqlite:///x`); with
/// `must_exist`, an embedded store that has no database yet is an input error instead of
/// being created. Every failure is an input error naming the store, password hidden (exit 2).
pub async fn open_uri(
    uri: &StoreUri,
    must_exist: bool,
    named: &str,
) -> anyhow::Result<Arc<dyn Store>> {
    if let (true, StoreUri::Sqlite { dir }) = (must_exist, uri) {
        let db = dir.join("spanlens.db");
        if !db.is_file() {
            return Err(InputError(format!(
                "no database in {named} (expected {})",
                db.display()
            ))
            .into());
        }
    }
    spanlens_server::open_store_uri(uri)
        .await
        .map_err(|e| InputError(format!("cannot open {named}: {e}")).into())
}
