//! What the SQLite-only tests share: the contract suite's builders and a store in a temp dir.
#![allow(dead_code)]

pub use spanlens_store::contract::build::*;
use spanlens_store::{SqliteOptions, SqliteStore};
use tempfile::TempDir;

/// A store in a fresh temp dir; keep the `TempDir` alive as long as the store.
pub fn temp_store() -> (TempDir, SqliteStore) {
    temp_store_with(SqliteOptions::default())
}

/// [`temp_store`] with options.
pub fn temp_store_with(opts: SqliteOptions) -> (TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open_with(dir.path().join("spanlens.db"), opts).expect("open store");
    (dir, store)
}
