//! The contract suite (`spanlens_store::contract`) on ClickHouse: each test gets a database of
//! its own on the server `SPANLENS_TEST_CLICKHOUSE` names (`http://host:port`), dropped after.
//!
//! `scripts/test` starts the chDB test server (`scripts/clickhouse-test-server`) and sets it.
#![cfg(feature = "clickhouse")]

use spanlens_store::clickhouse::{Client, Endpoint};
use spanlens_store::contract::{async_trait, StoreHarness, TestDatabase};
use spanlens_store::{ClickHouseStore, Store, StoreError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const VAR: &str = "SPANLENS_TEST_CLICKHOUSE";

/// `host:port` of the test server; a run without one fails, saying how to start one.
fn server() -> String {
    let url = std::env::var(VAR).unwrap_or_else(|_| {
        panic!(
            "{VAR} is not set: start a ClickHouse test server with \
             scripts/clickhouse-test-server PORT DIR and export its URL, e.g. \
             {VAR}=http://127.0.0.1:PORT"
        )
    });
    url.trim_end_matches('/')
        .trim_start_matches("http://")
        .to_string()
}

struct ClickHouseHarness;

struct ClickHouseDb {
    name: String,
}

#[async_trait]
impl StoreHarness for ClickHouseHarness {
    async fn create(&self) -> Box<dyn TestDatabase> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let name = format!(
            "spanlens_t_{}_{}_{}",
            std::process::id(),
            nanos,
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        Box::new(ClickHouseDb { name })
    }
}

#[async_trait]
impl TestDatabase for ClickHouseDb {
    async fn open(&self) -> Result<Arc<dyn Store>, StoreError> {
        let uri = format!("clickhouse://{}/{}", server(), self.name);
        Ok(Arc::new(ClickHouseStore::connect(&uri).await?))
    }
}

impl Drop for ClickHouseDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Dropped from a thread of its own: the test's runtime may be shutting down.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            rt.block_on(async {
                let admin = Client::new(
                    Endpoint {
                        authority: server(),
                        database: "default".into(),
                        user: None,
                        password: None,
                    },
                    Duration::from_secs(60),
                );
                let _ = admin
                    .query(&format!("DROP DATABASE IF EXISTS `{name}`"), &[])
                    .await;
            });
        })
        .join();
    }
}

spanlens_store::store_contract_suite!(ClickHouseHarness);
