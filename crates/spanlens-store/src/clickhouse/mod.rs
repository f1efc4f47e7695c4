//! The ClickHouse backend: spans for hundreds of millions, over ClickHouse's HTTP interface.
//!
//! Spans are written once, appended (`ReplacingMergeTree` keyed by project, trace and span, so
//! a resend is kept once after merges; reads take the newest copy with `LIMIT 1 BY`). There
//! are no transactions: after each insert the collector recomputes the summary of every trace
//! it touched from the spans stored for it, and writes it versioned by the newest span insert
//! it saw, so the summary that saw the most wins however collectors race (`writer`). Lists
//! read the small summary table; metrics, scans and one trace read spans (`read`). Leases
//! take the next epoch of a chain with an insert the server deduplicates (`side`).
//!
//! Pure logic (a span's facts, the summary state, the same-call rule, cursors, metric groups)
//! is shared with SQLite and PostgreSQL through `crate::facts`, `crate::rollup` and
//! `spanlens_core`. Building blocks: a client for the HTTP interface ([`Client`]) and the
//! `RowBinary` encoding of inserts and answers.

pub mod client;
mod erase;
mod media;
mod read;
mod rollups;
pub mod rowbinary;
mod rowread;
pub mod schema;
mod side;
mod sql;
mod store;
mod writer;

pub use client::{ClickHouseError, Client, Endpoint};
pub use rowbinary::RowBinary;
pub use schema::Layout;

/// The latency-histogram bucket of a value, as the metrics of every backend count it, and the
/// same in ClickHouse's SQL (`bucket_sql`), which the ClickHouse metrics aggregate by: exposed
/// so a test can hold the two against each other on a server.
pub use crate::rollup::hist::bucket_of;
pub use rollups::bucket_sql;

use crate::error::StoreError;
use crate::uri::redact;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Tuning of the ClickHouse backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClickHouseOptions {
    /// Writer tasks inserting from the one queue at once.
    pub writers: usize,
    /// Spans accepted but not yet inserted before `submit` answers `Busy`; bounds memory.
    pub max_pending_spans: usize,
    /// Submissions waiting in the queue before `submit` answers `Busy`.
    pub max_pending_batches: usize,
    /// Largest number of spans in one insert.
    pub max_spans_per_insert: usize,
    /// How long one call to the server may take.
    pub timeout: Duration,
    /// How often this collector offers to rebuild metric rollups (one collector at a time
    /// does, under a lease); `None`: never.
    pub rollup_interval: Option<Duration>,
    /// An hour's rollups are rebuilt once no span has been written to it for this long.
    pub rollup_settle: Duration,
    /// Rebuild every marked hour before each metrics read (tests; costs a write per read).
    pub refresh_before_reads: bool,
}

impl Default for ClickHouseOptions {
    fn default() -> Self {
        ClickHouseOptions {
            writers: 2,
            max_pending_spans: 100_000,
            max_pending_batches: 4096,
            max_spans_per_insert: 20_000,
            timeout: Duration::from_secs(60),
            rollup_interval: Some(Duration::from_secs(2)),
            rollup_settle: Duration::from_secs(10),
            refresh_before_reads: false,
        }
    }
}

/// Where a `clickhouse://` URI points and how its tables are laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClickHouseTarget {
    /// Server, database and credentials.
    pub endpoint: Endpoint,
    /// Cluster and payload TTL.
    pub layout: Layout,
}

/// Parses `clickhouse://[user[:password]@]host[:port][/database][?cluster=NAME&payload_ttl_days=N&text_index=false]`
/// (port 8123 and database `default` when left out).
pub fn parse_uri(uri: &str) -> Result<ClickHouseTarget, String> {
    let uri = uri.trim();
    let rest = uri
        .strip_prefix("clickhouse://")
        .ok_or("not a clickhouse:// URI")?;
    let (main, query) = match rest.split_once('?') {
        Some((m, q)) => (m, q),
        None => (rest, ""),
    };
    let (authority, database) = match main.split_once('/') {
        Some((a, d)) => (a, d.trim_end_matches('/')),
        None => (main, ""),
    };
    let (mut user, mut password, host) = match authority.rsplit_once('@') {
        Some((info, host)) => match info.split_once(':') {
            Some((u, p)) => (Some(decode(u)?), Some(decode(p)?), host),
            None => (Some(decode(info)?), None, host),
        },
        None => (None, None, authority),
    };
    if host.is_empty() {
        return Err("no host: use clickhouse://host:8123/database".into());
    }
    let port_given = host.rsplit_once(':').is_some_and(|(_, p)| !p.contains(']'));
    if port_given {
        let (_, port) = host.rsplit_once(':').unwrap_or_default();
        port.parse::<u16>()
            .map_err(|_| format!("port {port:?} is not a number from 1 to 65535"))?;
    }
    let database = if database.is_empty() {
        "default".to_string()
    } else {
        decode(database)?
    };
    let mut layout = Layout::default();
    let (mut secure, mut ca_file) = (false, None);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "cluster" if !v.is_empty() => layout.cluster = Some(decode(v)?),
            "secure" => secure = flag(k, v)?,
            "ca_file" if !v.is_empty() => ca_file = Some(decode(v)?),
            // As ClickHouse's own HTTP URLs take them (the userinfo form is preferred).
            "user" => user = Some(decode(v)?),
            "password" => password = Some(decode(v)?),
            "text_index" => layout.text_index = flag(k, v)?,
            "retention_days" => layout.retention.days = Some(days(k, v)?),
            "retention" => {
                for rule in v.split(',').filter(|r| !r.is_empty()) {
                    let (project, d) = rule
                        .rsplit_once(':')
                        .ok_or(format!("retention={v:?}: use PROJECT:DAYS[,PROJECT:DAYS…]"))?;
                    let project = decode(project)?;
                    if project.is_empty() {
                        return Err(format!("retention={v:?}: a project name is empty"));
                    }
                    layout.retention.projects.insert(project, days(k, d)?);
                }
            }
            "payload_ttl_days" => layout.payload_ttl_days = Some(days(k, v)?),
            other => {
                return Err(format!(
                    "unknown parameter {other:?}: use cluster, payload_ttl_days, retention_days, \
                     retention, text_index, secure, ca_file, user or password"
                ))
            }
        }
    }
    // Roots to trust mean TLS.
    secure |= ca_file.is_some();
    Ok(ClickHouseTarget {
        endpoint: Endpoint {
            // The HTTP interface's ports: 8123, or 8443 with TLS.
            authority: match (port_given, secure) {
                (true, _) => host.to_string(),
                (false, false) => format!("{host}:8123"),
                (false, true) => format!("{host}:8443"),
            },
            database,
            user,
            password,
            secure,
            ca_file,
        },
        layout,
    })
}

/// `true`/`1` or `false`/`0`.
fn flag(key: &str, v: &str) -> Result<bool, String> {
    match v {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(format!("{key}={v:?}: use true or false")),
    }
}

/// A whole number of days, 1 or more.
fn days(key: &str, v: &str) -> Result<u32, String> {
    v.parse().ok().filter(|d| *d > 0).ok_or(format!(
        "{key}: {v:?} is not a whole number of days, 1 or more"
    ))
}

/// Percent-decoding of a URI part.
fn decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad percent escape in {s:?}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s:?} is not UTF-8 once decoded"))
}

/// The ClickHouse implementation of [`crate::Store`].
pub struct ClickHouseStore {
    /// The URI, password hidden, for messages.
    uri: String,
    client: Client,
    sender: mpsc::Sender<writer::Job>,
    pending: Arc<AtomicUsize>,
    max_pending_spans: usize,
    refresh_before_reads: bool,
    /// The cluster of the layout: deletes go to its local tables, `ON CLUSTER`.
    cluster: Option<String>,
    /// Dropped with the store, which stops its rollup task.
    _alive: Arc<()>,
}

impl std::fmt::Debug for ClickHouseStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClickHouseStore")
            .field("uri", &self.uri)
            .finish()
    }
}

impl ClickHouseStore {
    /// Connects with default options.
    pub async fn connect(uri: &str) -> Result<ClickHouseStore, StoreError> {
        ClickHouseStore::connect_with(uri, ClickHouseOptions::default()).await
    }

    /// Connects to the server `uri` names, makes the schema (idempotent: collectors starting
    /// together may all do it) and starts the writer tasks on the current tokio runtime. A
    /// server that cannot be reached is [`StoreError::Connect`], naming the URI with its
    /// password hidden; a database written by a newer Spanlens is [`StoreError::SchemaTooNew`].
    pub async fn connect_with(
        uri: &str,
        options: ClickHouseOptions,
    ) -> Result<ClickHouseStore, StoreError> {
        let shown = redact(uri.trim());
        let fail = |reason: String| StoreError::Connect {
            uri: shown.clone(),
            reason,
        };
        let target = parse_uri(uri).map_err(&fail)?;
        let mut client = Client::new(target.endpoint.clone(), options.timeout);
        if target.layout.cluster.is_some() {
            // On `Distributed` tables: an insert returns once every shard has its rows (reads
            // after it see them), and `IN (subquery)` over another distributed table reads
            // the whole subquery (its rows live on other shards).
            client = client.with_defaults(&[
                ("insert_distributed_sync", "1"),
                ("distributed_product_mode", "global"),
            ]);
        }
        client.ping().await.map_err(|e| fail(e.to_string()))?;
        migrate(&client, &target, &shown).await?;
        let pending = Arc::new(AtomicUsize::new(0));
        let (sender, receiver) = mpsc::channel(options.max_pending_batches.max(1));
        let receiver = Arc::new(tokio::sync::Mutex::new(receiver));
        let w = writer::Writer {
            client: client.clone(),
            pending: pending.clone(),
            max_spans: options.max_spans_per_insert.max(1),
        };
        for _ in 0..options.writers.max(1) {
            tokio::spawn(w.clone().run(receiver.clone()));
        }
        let alive = Arc::new(());
        if let Some(every) = options.rollup_interval {
            tokio::spawn(rollups::keep_rebuilding(
                client.clone(),
                Arc::downgrade(&alive),
                every,
                options.rollup_settle,
            ));
        }
        Ok(ClickHouseStore {
            uri: shown,
            client,
            sender,
            pending,
            max_pending_spans: options.max_pending_spans.max(1),
            refresh_before_reads: options.refresh_before_reads,
            cluster: target.layout.cluster.clone(),
            _alive: alive,
        })
    }

    /// Rebuilds the rollups of every hour written to so far, settled or not, whoever holds the
    /// rollup lease (benchmarks and tests; collectors do it in the background). Returns the
    /// hours rebuilt.
    pub async fn refresh_rollups(&self) -> Result<usize, StoreError> {
        let mut total = 0;
        loop {
            let (n, more) = rollups::refresh(&self.client, None, 256).await?;
            total += n;
            if !more {
                return Ok(total);
            }
        }
    }

    /// Bytes on disk of the database's tables (their active parts), as the server counts them.
    pub async fn disk_bytes(&self) -> Result<u64, StoreError> {
        let out = self
            .client
            .query(
                &format!(
                    "SELECT toUInt64(sum(bytes_on_disk)) FROM system.parts \
                     WHERE database = {} AND active FORMAT RowBinary",
                    sql::string(&self.client.endpoint().database)
                ),
                &[],
            )
            .await
            .map_err(|e| ch_error("measuring the database", e))?;
        Ok(rowread::RowReader::new(&out).u64()?)
    }

    /// The URI of the database, password hidden.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// The statements that make the schema `uri` asks for (`spanlens clickhouse-schema` prints
    /// them, for operators who run DDL themselves).
    pub fn schema_statements(uri: &str) -> Result<Vec<String>, String> {
        let t = parse_uri(uri)?;
        Ok(schema::statements(&t.endpoint.database, &t.layout))
    }
}

/// Whether the server makes `TYPE text` indexes without experimental settings (26.2 or newer).
async fn has_text_index(client: &Client) -> bool {
    let Ok(out) = client
        .query("SELECT version() FORMAT TabSeparated", &[])
        .await
    else {
        return false;
    };
    let version = String::from_utf8_lossy(&out);
    let mut parts = version
        .trim()
        .split('.')
        .map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0)) >= (26, 2)
}

/// Makes the schema unless a newer Spanlens made it, then records this build's version.
async fn migrate(
    client: &Client,
    target: &ClickHouseTarget,
    shown: &str,
) -> Result<(), StoreError> {
    let db = schema::ident(&target.endpoint.database);
    let found = client
        .query(
            &format!("SELECT max(version) FROM {db}.schema_versions FORMAT TabSeparated"),
            &[],
        )
        .await;
    // An unknown table or database: nothing made yet.
    let found = match found {
        Ok(b) => String::from_utf8_lossy(&b)
            .trim()
            .parse::<u32>()
            .unwrap_or(0),
        Err(ClickHouseError::Server {
            code: Some(60 | 81),
            ..
        }) => 0,
        Err(e) => return Err(ch_error("reading the schema version", e)),
    };
    if found > schema::LATEST {
        return Err(StoreError::SchemaTooNew {
            path: shown.into(),
            found: i64::from(found),
            supported: i64::from(schema::LATEST),
        });
    }
    let mut layout = target.layout.clone();
    if layout.text_index && !has_text_index(client).await {
        tracing::warn!(
            "this ClickHouse server is older than 26.2, where text indexes became generally \
             available: span content gets no index, and content search reads the content column"
        );
        layout.text_index = false;
    }
    let mut statements = schema::statements(&target.endpoint.database, &layout);
    // The database itself is made from `default` (naming a database that does not exist yet
    // fails every statement). A user without that right on a database made for it by an
    // operator goes on: the tables' statements say what is missing, if anything.
    let database = statements.remove(0);
    if let Err(e) = client.with_database("default").query(&database, &[]).await {
        tracing::debug!("making the ClickHouse database: {e}");
    }
    for statement in statements {
        client
            .query(&statement, &[])
            .await
            .map_err(|e| ch_error("making the schema", e))?;
    }
    apply_retention(client, &target.endpoint.database, &layout).await?;
    if found < schema::LATEST {
        client
            .query(
                &format!(
                    "INSERT INTO {db}.schema_versions (version) VALUES ({})",
                    schema::LATEST
                ),
                &[],
            )
            .await
            .map_err(|e| ch_error("recording the schema version", e))?;
    }
    Ok(())
}

/// The state key recording the retention the tables' TTLs were last set to.
const RETENTION_KEY: &str = "clickhouse.retention";

/// Sets the tables' TTLs to `layout`'s retention when it differs from the one they were last
/// set to (tables made before now have none). The change applies to parts as they merge
/// (`materialize_ttl_after_modify = 0`: rewriting every part at start-up could take hours);
/// `ALTER TABLE … MATERIALIZE TTL` applies it at once.
async fn apply_retention(
    client: &Client,
    database: &str,
    layout: &Layout,
) -> Result<(), StoreError> {
    let want = format!("{:?}", layout.retention);
    let had = side::load_state(client, RETENTION_KEY).await?;
    if had
        .as_deref()
        .unwrap_or(&format!("{:?}", schema::Retention::default()))
        == want
    {
        return Ok(());
    }
    for statement in schema::retention_statements(database, layout) {
        client
            .query(&statement, &[("materialize_ttl_after_modify", "0")])
            .await
            .map_err(|e| ch_error("changing the retention", e))?;
    }
    side::save_state(client, RETENTION_KEY, &want).await
}

/// A client error as the caller should see it: an unreachable or slow server, or one short of
/// memory or parts (`TOO_MANY_PARTS`, `MEMORY_LIMIT_EXCEEDED`, `TIMEOUT_EXCEEDED`…), is
/// transient (`Unavailable`: answer 503 and retry); anything else is a database error.
pub(crate) fn ch_error(op: &'static str, e: ClickHouseError) -> StoreError {
    match &e {
        ClickHouseError::Unreachable(_) | ClickHouseError::Timeout(_) => StoreError::Unavailable {
            op,
            reason: e.to_string(),
            disk_full: false,
        },
        ClickHouseError::Server { code, status, .. } => {
            // 159 timeout, 202 too many simultaneous queries, 241 memory limit, 252 too many
            // parts, 243 not enough space, 209/210 socket timeout / network error, 425 system
            // error, 999 keeper exception.
            let transient = matches!(
                code,
                Some(159 | 202 | 209 | 210 | 241 | 243 | 252 | 425 | 999)
            ) || *status == 503;
            if transient {
                StoreError::Unavailable {
                    op,
                    reason: e.to_string(),
                    disk_full: *code == Some(243),
                }
            } else {
                StoreError::database(op, e.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_uri;

    #[test]
    fn uris_name_host_port_database_credentials_and_layout() {
        let t = parse_uri("clickhouse://localhost/spans").unwrap();
        assert_eq!(t.endpoint.authority, "localhost:8123");
        assert_eq!(t.endpoint.database, "spans");
        assert_eq!(t.endpoint.user, None);
        let t = parse_uri("clickhouse://bob:p%40ss@ch.example:9000?cluster=c1&payload_ttl_days=30")
            .unwrap();
        assert_eq!(t.endpoint.authority, "ch.example:9000");
        assert_eq!(t.endpoint.database, "default");
        assert_eq!(t.endpoint.user.as_deref(), Some("bob"));
        assert_eq!(t.endpoint.password.as_deref(), Some("p@ss"));
        assert_eq!(t.layout.cluster.as_deref(), Some("c1"));
        assert_eq!(t.layout.payload_ttl_days, Some(30));
        assert!(t.layout.text_index);
        assert!(!t.endpoint.secure);
        let t = parse_uri("clickhouse://abc.clickhouse.cloud?secure=true").unwrap();
        assert_eq!(t.endpoint.authority, "abc.clickhouse.cloud:8443");
        assert!(t.endpoint.secure);
        let t = parse_uri("clickhouse://h:9443/db?secure=1&ca_file=%2Fetc%2Fca.pem").unwrap();
        assert_eq!(t.endpoint.authority, "h:9443");
        assert_eq!(t.endpoint.ca_file.as_deref(), Some("/etc/ca.pem"));
        assert!(
            !parse_uri("clickhouse://h?text_index=false")
                .unwrap()
                .layout
                .text_index
        );
        for bad in [
            "clickhouse://",
            "clickhouse://h:port/db",
            "clickhouse://h/db?payload_ttl_days=0",
            "clickhouse://h/db?colour=red",
            "clickhouse://h/db?text_index=maybe",
            "clickhouse://h/db?secure=yes",
            "clickhouse://h/db?retention_days=0",
            "clickhouse://h/db?retention=prod",
            "clickhouse://h/db?retention=:5",
            "clickhouse://h/db?retention=prod:soon",
            "clickhouse://h/%zz",
        ] {
            assert!(parse_uri(bad).is_err(), "{bad}");
        }
    }
}
