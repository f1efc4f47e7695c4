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

    /// The chDB test server runs one query at a time: two random ranges, not six.
    fn random_ranges(&self) -> usize {
        2
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

    /// The chDB test server runs one query at a time: two random ranges, not six.
    fn random_ranges(&self) -> usize {
        2
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
                    Endpoint::plain(server(), "default"),
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
/// wherever whole clean slots allow, and one of the brute-force comparisons (metrics, time
/// series, daily cost and the recovery report over random traffic and ranges). The same-call
/// and re-pricing tests passed this way too when run by hand, before `span_times` existed.
mod from_rollup_rows {
    use super::RebuiltHarness;
    use spanlens_store::contract::{erase, rollups, sessions_metrics};

    #[tokio::test]
    async fn hour_and_day_rows_add_up() {
        rollups::time_ordered_ingest_builds_hour_and_day_rows_that_add_up(&RebuiltHarness).await;
        rollups::many_commits_to_one_bucket_compact_and_add_up(&RebuiltHarness).await;
        rollups::projects_are_kept_apart(&RebuiltHarness).await;
        rollups::week_rows_of_users_add_up(&RebuiltHarness).await;
    }

    #[tokio::test]
    async fn brute_force() {
        rollups::rollups_match_brute_force_seed_1(&RebuiltHarness).await;
    }

    /// Deletion and expiry where answers come from rebuilt slots: the marks a deletion leaves
    /// send the slots it touched back to the spans until they are rebuilt.
    #[tokio::test]
    async fn erasure() {
        erase::deleted_traces_leave_every_read_and_the_rest_stays_exact(&RebuiltHarness).await;
        erase::deleting_from_built_rollup_rows_keeps_them_exact(&RebuiltHarness).await;
        erase::expiry_deletes_or_clears_old_traces_in_small_steps(&RebuiltHarness).await;
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

/// Retention by TTL, per project, and changing it on tables that hold rows.
mod retention {
    use super::{fresh_name, server, ClickHouseDb};
    use spanlens_core::{Span, Timestamp};
    use spanlens_store::clickhouse::{Client, Endpoint};
    use spanlens_store::contract::build::{span, tid};
    use spanlens_store::prelude::*;
    use spanlens_store::{ClickHouseOptions, ClickHouseStore, ListQuery};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    const DAY_MS: u64 = 86_400_000;

    /// Trace `t`'s root span, started `days_ago` days before now.
    fn root(t: u64, days_ago: u64) -> Span {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let mut s = span(t, t * 10, None, "root", 0, 100);
        let start = (now_ms - days_ago * DAY_MS) * 1_000_000;
        s.start_time = Timestamp(start);
        s.end_time = Some(Timestamp(start + 100_000_000));
        s
    }

    async fn open(db: &str, params: &str) -> ClickHouseStore {
        let options = ClickHouseOptions {
            rollup_interval: None,
            ..ClickHouseOptions::default()
        };
        ClickHouseStore::connect_with(&format!("clickhouse://{}/{db}{params}", server()), options)
            .await
            .unwrap()
    }

    async fn traces(store: &ClickHouseStore, project: &str) -> Vec<u64> {
        let mut q = ListQuery::new(project);
        q.limit = 100;
        let mut ids: Vec<u64> = (store.list_traces(&q).await.unwrap().items)
            .iter()
            .map(|t| (1..10).find(|n| tid(*n) == t.trace_id).unwrap())
            .collect();
        ids.sort_unstable();
        ids
    }

    /// The `TTL` part of a table's engine as the server shows it.
    async fn ttl_of(admin: &Client, db: &str, table: &str) -> String {
        let out = admin
            .query(
                &format!(
                    "SELECT engine_full FROM system.tables WHERE database = '{db}' \
                     AND name = '{table}' FORMAT TabSeparated"
                ),
                &[],
            )
            .await
            .unwrap();
        let engine = String::from_utf8_lossy(&out).to_string();
        engine
            .split_once(" TTL ")
            .map(|(_, t)| t.to_string())
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn each_project_keeps_rows_for_its_own_days_and_a_change_reaches_existing_tables() {
        let db = ClickHouseDb {
            name: fresh_name(),
            rebuilt: false,
        };
        let name = db.name.clone();
        let store = open(&name, "?retention_days=30&retention=keep:3650").await;
        store
            .write("p", vec![root(1, 60), root(2, 1)])
            .await
            .unwrap();
        store.write("keep", vec![root(3, 60)]).await.unwrap();
        let admin = Client::new(
            Endpoint::plain(server(), name.clone()),
            Duration::from_secs(60),
        );
        // Merges apply TTLs; make one happen now.
        for table in ["spans", "span_times", "traces"] {
            admin
                .query(&format!("OPTIMIZE TABLE {table} FINAL"), &[])
                .await
                .unwrap();
        }
        assert_eq!(traces(&store, "p").await, [2], "p keeps 30 days");
        assert_eq!(traces(&store, "keep").await, [3], "keep keeps ten years");
        assert_eq!(store.count_spans("p").await.unwrap(), 1);
        let ttl = ttl_of(&admin, &name, "spans").await;
        assert!(
            ttl.contains("toIntervalDay(3650)") && ttl.contains("toIntervalDay(30)"),
            "{ttl}"
        );
        drop(store);

        // Another retention, on tables that exist: their TTLs change.
        let store = open(&name, "?retention_days=90").await;
        for table in ["spans", "span_times", "traces", "log_events", "scores"] {
            let ttl = ttl_of(&admin, &name, table).await;
            assert!(
                ttl.contains("toIntervalDay(90)") && !ttl.contains("3650"),
                "{table}: {ttl}"
            );
        }
        assert_eq!(traces(&store, "keep").await, [3]);
        drop(store);
        // None: the TTLs go.
        let _store = open(&name, "").await;
        assert_eq!(ttl_of(&admin, &name, "spans").await, "");
    }
}
