//! The contract suite (`spanlens_store::contract`) on PostgreSQL: each test gets a database of
//! its own, created from the server `SPANLENS_TEST_POSTGRES` names and dropped afterwards.
//!
//! Start a test server with `scripts/postgres-test-server`, which prints the URL to export.
#![cfg(feature = "postgres")]

use spanlens_store::contract::{async_trait, StoreHarness, TestDatabase};
use spanlens_store::{PostgresOptions, PostgresStore, Store, StoreError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The variable naming the test server.
const VAR: &str = "SPANLENS_TEST_POSTGRES";

/// Makes a database per test on the server of `SPANLENS_TEST_POSTGRES`.
struct PostgresHarness;

/// One test's database: its URI, and the server URI to drop it from.
struct PostgresDb {
    server: String,
    name: String,
    uri: String,
}

/// The server URI; a run without one fails, saying how to start one (never passes silently).
fn server() -> String {
    std::env::var(VAR).unwrap_or_else(|_| {
        panic!(
            "{VAR} is not set: start a PostgreSQL test server with scripts/postgres-test-server \
             and export the URL it prints, e.g. \
             {VAR}=postgres://spanlens:spanlens@127.0.0.1:5432/postgres"
        )
    })
}

/// `uri` with its database (the path) replaced by `db`.
fn with_database(uri: &str, db: &str) -> String {
    let (head, query) = match uri.split_once('?') {
        Some((h, q)) => (h, format!("?{q}")),
        None => (uri, String::new()),
    };
    let after_scheme = head.find("://").map_or(0, |i| i + 3);
    let base = match head[after_scheme..].find('/') {
        Some(i) => &head[..after_scheme + i],
        None => head,
    };
    format!("{base}/{db}{query}")
}

async fn admin(server: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(server, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "cannot connect to {} ({e}): is the test server running? \
                 (scripts/postgres-test-server)",
                spanlens_store::redact(server)
            )
        });
    tokio::spawn(conn);
    client
}

#[async_trait]
impl StoreHarness for PostgresHarness {
    async fn create(&self) -> Box<dyn TestDatabase> {
        Box::new(PostgresDb::create().await)
    }
}

impl PostgresDb {
    /// A fresh database on the test server.
    async fn create() -> PostgresDb {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let server = server();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let name = format!(
            "spanlens_t_{}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            nanos % 1_000_000_000
        );
        admin(&server)
            .await
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|e| panic!("creating the test database {name}: {e}"));
        PostgresDb {
            uri: with_database(&server, &name),
            server,
            name,
        }
    }
}

#[async_trait]
impl TestDatabase for PostgresDb {
    async fn open(&self) -> Result<Arc<dyn Store>, StoreError> {
        Ok(Arc::new(PostgresStore::connect(&self.uri).await?))
    }
}

impl Drop for PostgresDb {
    /// Drops the database, best effort: on a thread of its own, since the test's runtime may
    /// be shutting down; `WITH (FORCE)` ends connections a store's pool still holds.
    fn drop(&mut self) {
        let (server, name) = (self.server.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok((client, conn)) =
                    tokio_postgres::connect(&server, tokio_postgres::NoTls).await
                {
                    tokio::spawn(conn);
                    let _ = client
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                }
            });
        })
        .join();
    }
}

spanlens_store::store_contract_suite!(PostgresHarness);

/// The suite again with every metrics answer taken from rollup rows wherever the range allows:
/// each store rebuilds every marked hour before it reads (on the default harness the rows are
/// rebuilt in the background seconds later, so its answers come from the spans).
mod from_rollup_rows {
    use super::*;

    struct RolledHarness;

    struct RolledDb(PostgresDb);

    #[async_trait]
    impl StoreHarness for RolledHarness {
        async fn create(&self) -> Box<dyn TestDatabase> {
            Box::new(RolledDb(PostgresDb::create().await))
        }
    }

    #[async_trait]
    impl TestDatabase for RolledDb {
        async fn open(&self) -> Result<Arc<dyn Store>, StoreError> {
            let options = PostgresOptions {
                refresh_before_reads: true,
                rollup_interval: None,
                ..PostgresOptions::default()
            };
            Ok(Arc::new(
                PostgresStore::connect_with(&self.0.uri, options).await?,
            ))
        }
    }

    spanlens_store::store_contract_suite!(RolledHarness);
}

/// A URI that cannot connect is a clear error that names it, password hidden.
#[tokio::test]
async fn an_unreachable_server_is_named_without_its_password() {
    let e = PostgresStore::connect("postgres://someone:s3cret@127.0.0.1:9/nowhere")
        .await
        .unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, StoreError::Connect { .. }), "{text}");
    assert!(
        text.contains("postgres://someone:***@127.0.0.1:9/nowhere"),
        "{text}"
    );
    assert!(!text.contains("s3cret"), "{text}");
    assert!(e.is_retryable());
}

/// Two collectors on one database writing the spans of the same traces at once, in small
/// interleaved batches, leave the summaries one collector writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_collectors_writing_one_trace_agree_with_one() {
    use spanlens_store::contract::build::{llm, span, tid};
    let spans: Vec<spanlens_core::Span> = (0..4u64)
        .flat_map(|t| {
            let mut v = vec![span(t, 0, None, "root", 0, 5_000)];
            v.extend((1..60u64).map(|i| {
                let mut s = llm(t, i, Some(0), "m", "p", i * 10, 5, 10 + i, 1, 100);
                s.user_id = (i % 7 == 3).then(|| format!("u{i}"));
                s.tags = vec![format!("t{}", i % 5)];
                s
            }));
            v
        })
        .collect();
    let one = PostgresHarness.create().await;
    let single = one.open().await.unwrap();
    single.write("p", spans.clone()).await.unwrap();

    let shared = PostgresHarness.create().await;
    let (a, b) = (shared.open().await.unwrap(), shared.open().await.unwrap());
    let (evens, odds): (Vec<_>, Vec<_>) =
        spans.iter().cloned().partition(|s| s.span_id.0[7] % 2 == 0);
    let write = |store: Arc<dyn Store>, mut part: Vec<spanlens_core::Span>| {
        part.reverse();
        tokio::spawn(async move {
            for chunk in part.chunks(3) {
                store.write("p", chunk.to_vec()).await.unwrap();
            }
        })
    };
    let (x, y) = (write(a.clone(), evens), write(b.clone(), odds));
    x.await.unwrap();
    y.await.unwrap();
    for t in 0..4 {
        let want = single
            .get_trace("p", tid(t))
            .await
            .unwrap()
            .unwrap()
            .summary;
        let got = b.get_trace("p", tid(t)).await.unwrap().unwrap().summary;
        assert_eq!(got, want, "trace {t}");
    }
    assert_eq!(a.count_spans("p").await.unwrap(), spans.len() as u64);
}

/// Spans of a trace with no summary row are inserted without a look for rows to replace. A
/// span row whose summary row is gone (no writer leaves one so; an operator might) is still
/// replaced, and the summary rebuilt, instead of the submission being refused.
#[tokio::test]
async fn a_span_row_without_its_summary_row_is_replaced_not_refused() {
    use spanlens_store::contract::build::{llm, span, tid};
    let first = vec![
        span(1, 0, None, "root", 0, 5_000),
        llm(1, 1, Some(0), "m", "p", 10, 5, 10, 1, 100),
    ];
    let mut again = first.clone();
    again[1].name = "renamed".into();
    again.push(llm(1, 2, Some(0), "m", "p", 20, 5, 30, 2, 100));

    let db = PostgresDb::create().await;
    let store: Arc<dyn Store> = Arc::new(PostgresStore::connect(&db.uri).await.unwrap());
    store.write("p", first).await.unwrap();
    admin(&db.uri)
        .await
        .batch_execute("DELETE FROM traces")
        .await
        .unwrap();
    let receipt = store.write("p", again.clone()).await.unwrap();
    assert_eq!((receipt.inserted, receipt.replaced), (1, 2));

    let fresh = PostgresHarness.create().await;
    let want = fresh.open().await.unwrap();
    want.write("p", again).await.unwrap();
    let summary = |d: Option<spanlens_store::TraceDetail>| d.unwrap().summary;
    assert_eq!(
        summary(store.get_trace("p", tid(1)).await.unwrap()),
        summary(want.get_trace("p", tid(1)).await.unwrap())
    );
    assert_eq!(store.count_spans("p").await.unwrap(), 3);
}

/// A span body that cannot be read leaves its span out of a trace and of scans, and says so,
/// while the other spans read; a span row written before bodies moved into chunks (its own
/// `body`, no `chunk_id`) still reads.
#[tokio::test]
async fn a_damaged_chunk_leaves_its_spans_out_and_old_rows_still_read() {
    use spanlens_store::contract::damage;
    let db = PostgresDb::create().await;
    let store: Arc<dyn Store> = Arc::new(PostgresStore::connect(&db.uri).await.unwrap());
    damage::write_root_and_call_then_tool(&*store).await;
    let sql = admin(&db.uri).await;
    // The tool span as an old row: its chunk's bytes (a single-span chunk) in its own row.
    // Then the other chunk is overwritten with bytes that are not zstd.
    sql.batch_execute(
        "UPDATE spans s SET body_codec = c.codec, body = c.body, chunk_id = NULL \
         FROM trace_chunks c WHERE c.chunk_id = s.chunk_id AND s.name = 'tool'; \
         DELETE FROM trace_chunks WHERE chunk_id NOT IN \
         (SELECT chunk_id FROM spans WHERE chunk_id IS NOT NULL); \
         UPDATE trace_chunks SET codec = 1, body = '\\x00112233'::BYTEA",
    )
    .await
    .unwrap();
    damage::assert_only_the_tool_span_reads(&*store).await;
}

/// TLS as libpq's URL parameters ask for it, against the test server (Debian's clusters offer
/// TLS with a self-signed "snakeoil" certificate naming the machine): `prefer` (the default) and
/// `require` encrypt, `disable` does not, `verify-ca` accepts the certificate given as the root,
/// and `verify-full` refuses it for 127.0.0.1, an address it does not name.
#[tokio::test]
async fn tls_modes_connect_as_libpq_would() {
    let db = PostgresDb::create().await;
    let sql = admin(&db.uri).await;
    let ssl: String = sql.query_one("SHOW ssl", &[]).await.unwrap().get(0);
    assert_eq!(
        ssl, "on",
        "the test server must offer TLS (scripts/postgres-test-server's Debian cluster does)"
    );
    let cert: String = sql
        .query_one("SHOW ssl_cert_file", &[])
        .await
        .unwrap()
        .get(0);
    let with = |params: &str| {
        let sep = if db.uri.contains('?') { '&' } else { '?' };
        format!("{}{sep}{params}", db.uri)
    };
    for (params, app, encrypted) in [
        ("", "t_default", true),
        ("sslmode=require", "t_require", true),
        ("sslmode=disable", "t_disable", false),
        (
            &format!("sslmode=verify-ca&sslrootcert={cert}") as &str,
            "t_ca",
            true,
        ),
    ] {
        let uri = with(&format!("{params}&application_name={app}"));
        let store = PostgresStore::connect(&uri)
            .await
            .unwrap_or_else(|e| panic!("{params}: {e}"));
        let row = sql
            .query_one(
                "SELECT count(*), count(*) FILTER (WHERE s.ssl) FROM pg_stat_activity a \
                 JOIN pg_stat_ssl s USING (pid) WHERE a.application_name = $1",
                &[&app],
            )
            .await
            .unwrap();
        let (all, tls): (i64, i64) = (row.get(0), row.get(1));
        assert!(all > 0, "{params}: no connection seen");
        assert_eq!(tls, if encrypted { all } else { 0 }, "{params}");
        drop(store);
    }
    let e = PostgresStore::connect(&with(&format!("sslmode=verify-full&sslrootcert={cert}")))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.to_lowercase().contains("certificate"), "{e}");
    assert!(!e.contains(":spanlens@"), "the password is hidden: {e}");
}

/// Two collectors' rollup tasks: one of them (the lease holder) rebuilds every marked hour once
/// it settles, day rows included, and the answers read from those rows are the ones read from
/// the spans before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rollup_task_rebuilds_marked_hours_and_answers_do_not_change() {
    use spanlens_store::contract::build::{llm, span};
    use spanlens_store::{Analytics, GroupBy, MetricsQuery, SpanWriter};
    const HOUR_MS: u64 = 3_600_000;
    let db = PostgresDb::create().await;
    let options = PostgresOptions {
        rollup_interval: Some(std::time::Duration::from_millis(100)),
        rollup_settle: std::time::Duration::ZERO,
        ..PostgresOptions::default()
    };
    let a = PostgresStore::connect_with(&db.uri, options.clone())
        .await
        .unwrap();
    let b = PostgresStore::connect_with(&db.uri, options).await.unwrap();
    // Traces over three UTC days, a span of each in another hour than its root.
    let spans: Vec<spanlens_core::Span> = (0..30u64)
        .flat_map(|t| {
            let start = t * 2 * HOUR_MS + 17;
            let model = ["m", "x", "y"][(t % 3) as usize];
            vec![
                span(t, 0, None, "root", start, 2 * HOUR_MS),
                llm(t, 1, Some(0), model, "p", start + 5, 900, 10 + t, 3, 100),
                llm(t, 2, Some(0), model, "p", start + HOUR_MS + 5, 50, 7, 2, 40),
            ]
        })
        .collect();
    let (first, second) = spans.split_at(spans.len() / 2);
    a.write("p", first.to_vec()).await.unwrap();
    b.write("p", second.to_vec()).await.unwrap();
    let by_model = MetricsQuery::new("p", GroupBy::Model);
    let from_spans = (
        a.metrics(&by_model).await.unwrap(),
        a.daily_cost(&by_model).await.unwrap(),
    );
    let sql = admin(&db.uri).await;
    let count = |q: &'static str| {
        let sql = &sql;
        async move { sql.query_one(q, &[]).await.unwrap().get::<_, i64>(0) }
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while count("SELECT count(*) FROM rollup_dirty").await > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "marked hours were not rebuilt within a minute"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(count("SELECT count(*) FROM rollups WHERE level = 1").await >= 30);
    assert_eq!(
        count("SELECT count(*) FROM rollups WHERE level = 2 AND family = 1").await,
        3
    );
    let from_rows = (
        b.metrics(&by_model).await.unwrap(),
        b.daily_cost(&by_model).await.unwrap(),
    );
    assert_eq!(from_rows, from_spans);
    assert_eq!(from_rows.0.iter().map(|r| r.span_count).sum::<u64>(), 90);
}

/// Two rebuilders of the same days at once (a lease that moved while its old holder was still
/// at work; `refresh_rollups` beside the background task) take turns: neither fails on the
/// other's rows, and the rows give the answer the spans give.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuilders_of_the_same_days_take_turns() {
    use spanlens_store::contract::build::{llm, span};
    use spanlens_store::{Analytics, GroupBy, MetricsQuery, SpanWriter};
    const HOUR_MS: u64 = 3_600_000;
    let db = PostgresDb::create().await;
    // No background task: the test's own calls are the only rebuilders.
    let options = PostgresOptions {
        rollup_interval: None,
        ..PostgresOptions::default()
    };
    let a = PostgresStore::connect_with(&db.uri, options.clone())
        .await
        .unwrap();
    let b = PostgresStore::connect_with(&db.uri, options).await.unwrap();
    let spans: Vec<spanlens_core::Span> = (0..200u64)
        .flat_map(|t| {
            let start = t * HOUR_MS / 2 + 11;
            let model = ["m", "x", "y"][(t % 3) as usize];
            vec![
                span(t, 0, None, "root", start, HOUR_MS),
                llm(t, 1, Some(0), model, "p", start + 5, 900, 10 + t, 3, 100),
            ]
        })
        .collect();
    a.write("p", spans).await.unwrap();
    let by_model = MetricsQuery::new("p", GroupBy::Model);
    let from_spans = a.metrics(&by_model).await.unwrap();
    let sql = admin(&db.uri).await;
    for round in 0..5 {
        // Every hour marked again, then both rebuild everything at once.
        sql.batch_execute(
            "INSERT INTO rollup_dirty (project_id, hour_ns) \
             SELECT project_id, start_ns - start_ns % 3600000000000 FROM spans GROUP BY 1, 2",
        )
        .await
        .unwrap();
        let (x, y) = tokio::join!(a.refresh_rollups(), b.refresh_rollups());
        let (x, y) = (x.unwrap(), y.unwrap());
        assert!(x + y >= 100, "round {round}: {x} + {y} hours rebuilt");
        let left: i64 = sql
            .query_one("SELECT count(*) FROM rollup_dirty", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(left, 0, "round {round}");
        assert_eq!(
            b.metrics(&by_model).await.unwrap(),
            from_spans,
            "round {round}"
        );
    }
}

/// The recovery report from `span_recovery` rows equals the one built from a scan of the spans,
/// which is what a range holding spans stored before the table existed gets.
#[tokio::test]
async fn the_recovery_report_from_its_rows_equals_the_one_from_a_scan() {
    use spanlens_core::recovery::Buckets;
    use spanlens_core::Timestamp;
    use spanlens_store::contract::build::{llm, span};
    use spanlens_store::{Analytics, SpanWriter};
    let db = PostgresDb::create().await;
    let store = PostgresStore::connect(&db.uri).await.unwrap();
    let spans: Vec<spanlens_core::Span> = (0..20u64)
        .flat_map(|t| {
            let mut tool = span(t, 2, Some(0), "tool", t * 1_000 + 10, 30);
            tool.kind = spanlens_core::SpanKind::Tool;
            tool.attributes.insert(
                "spanlens.tool.retry_count".into(),
                serde_json::json!(1 + t % 3),
            );
            vec![
                span(t, 0, None, "root", t * 1_000, 500),
                llm(t, 1, Some(0), "m", "p", t * 1_000 + 5, 100, 10, 3, 100),
                tool,
            ]
        })
        .collect();
    store.write("p", spans).await.unwrap();
    let b = Buckets {
        from: Timestamp(0),
        to: Timestamp(u64::MAX / 2),
        count: 4,
    };
    let from_rows = store.recovery_report("p", b).await.unwrap();
    assert_eq!(from_rows.spans_with_retries, 20);
    let sql = admin(&db.uri).await;
    sql.batch_execute("UPDATE spans SET for_recovery = NULL; DELETE FROM span_recovery")
        .await
        .unwrap();
    let from_scan = store.recovery_report("p", b).await.unwrap();
    assert_eq!(from_scan, from_rows);
}
