//! The contract suite (`spanlens_store::contract`) on ClickHouse: each test gets a database of
//! its own on the server `SPANLENS_TEST_CLICKHOUSE` names (`http://host:port`), dropped after.
//!
//! `scripts/test` starts the chDB test server (`scripts/clickhouse-test-server`) and sets it.
#![cfg(feature = "clickhouse")]

use spanlens_store::clickhouse::{Client, Endpoint};
use spanlens_store::contract::{async_trait, StoreHarness, TestDatabase};
use spanlens_store::{ClickHouseOptions, ClickHouseStore, Store, StoreError};
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

/// Stores as collectors open them (rollups rebuilt in the background, after hours settle, so
/// most reads aggregate spans).
struct ClickHouseHarness;

/// Stores that rebuild every marked hour's rollups before each metrics read, so answers come
/// from rollup rows wherever whole clean hours allow.
struct RebuiltHarness;

struct ClickHouseDb {
    name: String,
    rebuilt: bool,
}

fn fresh_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "spanlens_t_{}_{}_{}",
        std::process::id(),
        nanos,
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

#[async_trait]
impl StoreHarness for ClickHouseHarness {
    async fn create(&self) -> Box<dyn TestDatabase> {
        Box::new(ClickHouseDb {
            name: fresh_name(),
            rebuilt: false,
        })
    }
}

#[async_trait]
impl StoreHarness for RebuiltHarness {
    async fn create(&self) -> Box<dyn TestDatabase> {
        Box::new(ClickHouseDb {
            name: fresh_name(),
            rebuilt: true,
        })
    }
}

#[async_trait]
impl TestDatabase for ClickHouseDb {
    async fn open(&self) -> Result<Arc<dyn Store>, StoreError> {
        let uri = format!("clickhouse://{}/{}", server(), self.name);
        let options = ClickHouseOptions {
            refresh_before_reads: self.rebuilt,
            rollup_interval: None,
            ..ClickHouseOptions::default()
        };
        Ok(Arc::new(
            ClickHouseStore::connect_with(&uri, options).await?,
        ))
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

/// The contract tests of metrics and their rollups again, with answers read from rollup rows
/// wherever whole clean hours allow. (The brute-force, same-call and re-pricing tests passed
/// this way too when run by hand, before `span_times` existed; they take 10 more minutes on the
/// chDB test server, so they are not part of every run.)
mod from_rollup_rows {
    use super::RebuiltHarness;
    use spanlens_store::contract::{rollups, sessions_metrics};

    #[tokio::test]
    async fn hour_and_day_rows_add_up() {
        rollups::time_ordered_ingest_builds_hour_and_day_rows_that_add_up(&RebuiltHarness).await;
        rollups::many_commits_to_one_bucket_compact_and_add_up(&RebuiltHarness).await;
        rollups::projects_are_kept_apart(&RebuiltHarness).await;
        rollups::week_rows_of_users_add_up(&RebuiltHarness).await;
    }

    #[tokio::test]
    async fn metrics_and_percentiles() {
        sessions_metrics::metrics_grouping_and_percentiles_match_hand_computed_values(
            &RebuiltHarness,
        )
        .await;
        sessions_metrics::percentiles_over_two_hundred_values(&RebuiltHarness).await;
    }
}
