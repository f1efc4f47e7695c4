//! The contract suite (`spanlens_store::contract`) on the SQLite store: each test gets a store
//! file in a temp directory of its own.

use spanlens_store::contract::{async_trait, StoreHarness, TestDatabase};
use spanlens_store::{SqliteStore, Store, StoreError};
use std::sync::Arc;
use tempfile::TempDir;

/// Makes a temp directory per test database.
struct SqliteHarness;

/// A temp directory holding one store file, removed when dropped.
struct SqliteDb(TempDir);

#[async_trait]
impl StoreHarness for SqliteHarness {
    async fn create(&self) -> Box<dyn TestDatabase> {
        Box::new(SqliteDb(tempfile::tempdir().expect("temp dir")))
    }
}

#[async_trait]
impl TestDatabase for SqliteDb {
    async fn open(&self) -> Result<Arc<dyn Store>, StoreError> {
        Ok(Arc::new(SqliteStore::open(
            self.0.path().join("spanlens.db"),
        )?))
    }
}

spanlens_store::store_contract_suite!(SqliteHarness);
