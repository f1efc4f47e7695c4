//! The contract suite: the tests every storage backend must pass, written against the traits
//! only, so the SQLite store and any later backend are held to the same behaviour.
//!
//! A backend's test crate implements [`StoreHarness`] (how to make an empty database of its own
//! for one test) and [`TestDatabase`] (how to open a store on it), then instantiates every test
//! with [`store_contract_suite!`](crate::store_contract_suite):
//!
//! ```no_run
//! use spanlens_store::contract::{async_trait, StoreHarness, TestDatabase};
//! use spanlens_store::{SqliteStore, Store, StoreError};
//! use std::sync::Arc;
//!
//! struct SqliteHarness;
//! struct SqliteDb(tempfile::TempDir);
//!
//! #[async_trait]
//! impl StoreHarness for SqliteHarness {
//!     async fn create(&self) -> Box<dyn TestDatabase> {
//!         Box::new(SqliteDb(tempfile::tempdir().unwrap()))
//!     }
//! }
//!
//! #[async_trait]
//! impl TestDatabase for SqliteDb {
//!     async fn open(&self) -> Result<Arc<dyn Store>, StoreError> {
//!         Ok(Arc::new(SqliteStore::open(self.0.path().join("spanlens.db"))?))
//!     }
//! }
//!
//! spanlens_store::store_contract_suite!(SqliteHarness);
//! # fn main() {}
//! ```
//!
//! Each test is an `async fn(&dyn StoreHarness)` in the module of its area, so one can also be
//! called by hand. [`TESTS`] lists them all.

pub mod build;
pub mod content;
pub mod copy;
pub mod damage;
pub mod erase;
pub mod ingest;
pub mod list;
pub mod log_events;
pub mod media;
pub mod prompts;
pub mod reprice;
pub mod rollups;
pub mod roundtrip;
pub mod same_call;
pub mod scans;
pub mod scores;
pub mod sessions_metrics;
pub mod state;

use crate::error::StoreError;
use crate::store::Store;
use std::sync::Arc;

/// Re-exported so a backend's test crate can implement the harness traits without depending
/// on `async-trait` itself.
pub use async_trait::async_trait;

/// Makes databases for the contract tests of one backend.
#[async_trait]
pub trait StoreHarness: Send + Sync {
    /// A new, empty database that no other test uses (a temp directory, a database created
    /// for the test, …). Dropping the returned value may remove it; the tests keep it alive as
    /// long as any store open on it.
    async fn create(&self) -> Box<dyn TestDatabase>;

    /// Random time ranges each brute-force comparison of the rollup and erasure tests draws,
    /// besides its nine fixed ones. A backend whose test server runs one query at a time
    /// (ClickHouse through chDB, some 30 ms a metrics query) draws fewer, so that its suite
    /// stays within minutes; the fixed ranges cover every edge each time.
    fn random_ranges(&self) -> usize {
        6
    }
}

/// One test's database.
#[async_trait]
pub trait TestDatabase: Send + Sync {
    /// A new store handle on this database, as another server on the same database or one
    /// restarted would open it. The tests open a second handle while the first is in use, and
    /// open again after dropping every handle (nothing may live only in a handle's memory).
    async fn open(&self) -> Result<Arc<dyn Store>, StoreError>;
}

/// A fresh database and a store on it. Bind both (`let (_db, store) = …`): the database must
/// outlive the store.
pub(crate) async fn fresh(h: &dyn StoreHarness) -> (Box<dyn TestDatabase>, Arc<dyn Store>) {
    let db = h.create().await;
    let store = open(&*db).await;
    (db, store)
}

/// Another store handle on `db`.
pub(crate) async fn open(db: &dyn TestDatabase) -> Arc<dyn Store> {
    db.open()
        .await
        .unwrap_or_else(|e| panic!("the harness could not open its test database: {e}"))
}

/// Every contract test by area, handed to `$callback` after `($args)`: the one list that
/// [`store_contract_suite!`](crate::store_contract_suite) and [`TESTS`] are made from. A test
/// marked `#[multi_thread]` runs on tokio's multi-thread runtime.
#[doc(hidden)]
#[macro_export]
macro_rules! __store_contract_tests {
    ($callback:ident ! ($($args:tt)*)) => {
        $crate::$callback! {
            ($($args)*)
            ingest {
                same_span_twice_is_stored_once_and_the_last_write_wins,
                duplicates_inside_one_batch_and_across_projects,
                child_before_parent_across_submits,
                user_and_session_come_from_any_span_until_the_root_says_otherwise,
                unpriced_calls_are_counted_so_a_cost_is_never_a_silent_zero,
                failed_and_recovered_traces_in_any_arrival_order,
                #[multi_thread] many_concurrent_submitters_are_all_acknowledged,
            }
            roundtrip {
                every_field_survives_the_round_trip,
                empty_project_means_default_and_empty_batch_is_a_no_op,
                a_large_trace_comes_back_complete_and_ordered,
                a_trace_of_100k_spans_sent_in_500_span_writes_reads_back_whole,
                a_span_stored_with_the_largest_time_reads_back,
                nul_characters_are_stored_not_refused,
            }
            list {
                summaries_match_the_model,
                every_filter,
                every_sort_both_ways_walks_all_pages_in_order,
                cursor_is_stable_while_traces_arrive,
                bad_queries_are_refused_with_clear_errors,
            }
            content {
                content_search_finds_traces_by_the_words_one_span_holds,
            }
            sessions_metrics {
                sessions_group_traces_and_paginate,
                metrics_grouping_and_percentiles_match_hand_computed_values,
                percentiles_over_two_hundred_values,
            }
            same_call {
                a_call_recorded_twice_counts_once_in_every_total,
                late_arrival_in_either_order_gives_the_same_totals,
                a_span_sent_again_with_other_usage_counts_again,
                separate_calls_and_other_traces_are_not_merged,
                an_unpriced_duplicate_is_not_counted_as_unpriced,
                trace_json_marks_the_duplicate,
            }
            copy {
                a_copy_holds_what_the_source_holds,
                an_interrupted_copy_resumes_without_duplicates,
            }
            scores {
                scores_are_stored_listed_trended_and_filter_traces,
                an_invalid_score_stores_nothing,
                scores_page_through_a_project_by_id,
            }
            log_events {
                events_merge_into_their_span_whichever_arrives_first,
                a_record_sent_twice_is_stored_once_and_a_span_holds_at_most_the_event_limit,
                identical_scores_from_events_are_kept_once,
            }
            reprice {
                repricing_updates_spans_and_summaries_and_is_idempotent,
                model_filter_limits_repricing,
                daily_cost_per_model,
                unpriced_counts_follow_every_cost_and_drop_when_repriced,
            }
            state {
                shared_state_is_one_document_per_key_seen_by_every_handle,
                shared_state_lists_by_prefix_and_deletes,
                #[multi_thread] a_lease_has_one_holder_until_it_runs_out_or_is_given_up,
            }
            scans {
                a_scan_hands_over_every_span_in_batches,
                a_scan_whose_consumer_stops_early_ends_and_frees_its_connection,
            }
            erase {
                deleted_traces_leave_every_read_and_the_rest_stays_exact,
                deleting_from_built_rollup_rows_keeps_them_exact,
                a_session_and_a_user_are_erased_across_batches,
                expiry_deletes_or_clears_old_traces_in_small_steps,
                erasing_nothing_counts_nothing,
            }
            prompts {
                the_list_filters_by_prompt_template_and_version,
            }
            media {
                media_are_stored_once_per_project_and_hash,
                media_are_freed_with_the_last_trace_referring_to_them,
            }
            rollups {
                rollups_match_brute_force_seed_1,
                rollups_match_brute_force_seed_2,
                rollups_match_brute_force_seed_3,
                time_ordered_ingest_builds_hour_and_day_rows_that_add_up,
                many_commits_to_one_bucket_compact_and_add_up,
                projects_are_kept_apart,
                week_rows_of_users_add_up,
            }
        }
    };
}

/// Instantiates the contract suite for a backend: one `#[tokio::test]` per contract test, in a
/// module per area (`ingest::child_before_parent_across_submits`, …), each calling
/// `spanlens_store::contract::<area>::<test>(&harness)`.
///
/// `$harness` is an expression whose reference coerces to `&dyn` [`StoreHarness`]; it is
/// evaluated once per test, inside the generated modules, which `use super::*` so names of the
/// invoking module resolve. The invoking crate needs `tokio` with the `macros` and
/// `rt-multi-thread` features (usually a dev-dependency). The [module
/// documentation](crate::contract) shows a whole harness.
///
/// [`StoreHarness`]: crate::contract::StoreHarness
#[macro_export]
macro_rules! store_contract_suite {
    ($harness:expr $(,)?) => {
        $crate::__store_contract_tests! { __store_contract_emit!($harness) }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __store_contract_emit {
    (($harness:expr) $($area:ident { $($(#[$flavor:ident])? $test:ident),* $(,)? })*) => {
        $(
            mod $area {
                #[allow(unused_imports)]
                use super::*;
                $( $crate::__store_contract_test! { $harness, $area, $test $(, $flavor)? } )*
            }
        )*
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __store_contract_test {
    ($harness:expr, $area:ident, $test:ident) => {
        #[tokio::test]
        async fn $test() {
            $crate::contract::$area::$test(&$harness).await
        }
    };
    ($harness:expr, $area:ident, $test:ident, multi_thread) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $test() {
            $crate::contract::$area::$test(&$harness).await
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __store_contract_names {
    (() $($area:ident { $($(#[$flavor:ident])? $test:ident),* $(,)? })*) => {
        /// Every contract test as `(area, name)`, in the order the suite runs them.
        pub const TESTS: &[(&str, &str)] = &[$($((stringify!($area), stringify!($test)),)*)*];
    };
}

crate::__store_contract_tests! { __store_contract_names!() }

#[cfg(test)]
mod tests {
    use super::TESTS;
    use std::collections::BTreeSet;

    /// Every `pub async fn name(h: &dyn StoreHarness)` of an area file is in the suite, and
    /// nothing else is: a test written but not listed would never run.
    #[test]
    fn the_suite_lists_every_contract_test() {
        let files = [
            ("ingest", include_str!("ingest.rs")),
            ("roundtrip", include_str!("roundtrip.rs")),
            ("list", include_str!("list.rs")),
            ("content", include_str!("content.rs")),
            ("sessions_metrics", include_str!("sessions_metrics.rs")),
            ("same_call", include_str!("same_call.rs")),
            ("scores", include_str!("scores.rs")),
            ("log_events", include_str!("log_events.rs")),
            ("reprice", include_str!("reprice.rs")),
            ("state", include_str!("state.rs")),
            ("scans", include_str!("scans.rs")),
            ("copy", include_str!("copy.rs")),
            ("rollups", include_str!("rollups.rs")),
            ("erase", include_str!("erase.rs")),
            ("prompts", include_str!("prompts.rs")),
            ("media", include_str!("media.rs")),
        ];
        let mut written = BTreeSet::new();
        for (area, text) in files {
            for item in text.split("\npub async fn ").skip(1) {
                let (name, rest) = item.split_once('(').expect("a parameter list");
                let (params, _) = rest.split_once(')').expect("the end of the parameters");
                let params: String = params.split_whitespace().collect();
                assert_eq!(
                    params.trim_end_matches(','),
                    "h:&dynStoreHarness",
                    "{area}::{name}: every public async fn of an area is a contract test"
                );
                written.insert((area, name));
            }
        }
        let listed: BTreeSet<(&str, &str)> = TESTS.iter().copied().collect();
        assert_eq!(listed.len(), TESTS.len(), "a test is listed twice");
        assert_eq!(written, listed);
        let areas: BTreeSet<&str> = TESTS.iter().map(|(a, _)| *a).collect();
        assert_eq!(areas.len(), files.len(), "an area file is not checked");
    }
}
