//! The ClickHouse schema, generated for one server or for a cluster.
//!
//! ClickHouse has no transactions and no advisory locks, so every statement is idempotent
//! (`CREATE … IF NOT EXISTS`): collectors that start together may all run them, and the schema
//! version they record only tells a newer schema apart. On a cluster (`?cluster=NAME` in the
//! store URI) each table is a `Replicated…MergeTree` created `ON CLUSTER` under the name
//! `<table>_local`, with a `Distributed` table of the plain name over it sharded by trace (or
//! key) so that every row of one trace lands on one shard, where replacing keys meet.

use super::sql;

/// Newest schema version this build writes.
pub const LATEST: u32 = 4;

/// How tables are laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Cluster name (`ON CLUSTER`, replicated and distributed tables); `None`: one server.
    pub cluster: Option<String>,
    /// Days after a span's start when its body (inputs, outputs, messages) is dropped by TTL
    /// while its metadata stays; `None`: kept as long as the row.
    pub payload_ttl_days: Option<u32>,
    /// Days rows (spans, summaries, events, scores) are kept after their time, per project.
    pub retention: Retention,
    /// Whether span content gets a full-text index (`TYPE text`, ClickHouse 26.2 or newer;
    /// without it content search reads the content column of the range).
    pub text_index: bool,
}

impl Default for Layout {
    fn default() -> Self {
        Layout {
            cluster: None,
            payload_ttl_days: None,
            retention: Retention::default(),
            text_index: true,
        }
    }
}

/// How long rows are kept: `days` for every project but those `projects` names (project, days).
/// Metric rollups are kept: dashboards still show what deleted spans added up to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Retention {
    /// Days for projects not named in `projects`; `None`: kept.
    pub days: Option<u32>,
    /// Days for each project named.
    pub projects: std::collections::BTreeMap<String, u32>,
}

impl Retention {
    /// The `TTL` clause deleting rows by the nanosecond time `column`, `None` when all are kept.
    pub fn ttl(&self, column: &str) -> Option<String> {
        let time = time_of(column);
        let mut rules: Vec<String> = self
            .projects
            .iter()
            .map(|(p, d)| {
                format!(
                    "{time} + INTERVAL {d} DAY DELETE WHERE project = {}",
                    sql::string(p)
                )
            })
            .collect();
        if let Some(d) = self.days {
            let named: Vec<String> = self.projects.keys().map(|p| sql::string(p)).collect();
            rules.push(match named.is_empty() {
                true => format!("{time} + INTERVAL {d} DAY DELETE"),
                false => format!(
                    "{time} + INTERVAL {d} DAY DELETE WHERE project NOT IN ({})",
                    named.join(", ")
                ),
            });
        }
        (!rules.is_empty()).then(|| format!("TTL {}", rules.join(",\n    ")))
    }
}

/// A nanosecond column as a `DateTime` (clamped to what one holds).
fn time_of(column: &str) -> String {
    format!(
        "toDateTime(intDiv(greatest(least({column}, 4102444800000000000), 0), 1000000000), 'UTC')"
    )
}

/// One table: its columns, engine family, keys and the expression its rows are sharded by.
struct Table {
    name: &'static str,
    columns: &'static str,
    /// `MergeTree` or `ReplacingMergeTree(version)`, without `Replicated`.
    engine: &'static str,
    tail: &'static str,
    shard_by: &'static str,
    /// The nanosecond time column retention deletes rows by; `None`: kept.
    expires_by: Option<&'static str>,
}

/// A span row: typed columns for what lists, metrics and summaries read, the canonical JSON
/// for the rest. `version` is the server's clock at insert, so of two copies of a span (a
/// resend) the later wins in merges and in `LIMIT 1 BY` reads.
const SPANS: Table = Table {
    name: "spans",
    columns: "
    project             LowCardinality(String),
    trace_id            FixedString(16),
    span_id             FixedString(8),
    parent_span_id      Nullable(FixedString(8)),
    start_ns            Int64,
    end_ns              Nullable(Int64),
    duration_ns         Nullable(Int64),
    kind                LowCardinality(String),
    status              LowCardinality(String),
    name                String,
    request_model       LowCardinality(Nullable(String)),
    response_model      LowCardinality(Nullable(String)),
    provider            LowCardinality(Nullable(String)),
    agent_name          Nullable(String),
    user_id             Nullable(String),
    session_id          Nullable(String),
    service             LowCardinality(Nullable(String)),
    tool_name           Nullable(String),
    error_type          Nullable(String),
    input_tokens        Int64,
    output_tokens       Int64,
    cache_read_tokens   Int64,
    cache_write_tokens  Int64,
    reasoning_tokens    Int64,
    total_tokens        Int64,
    cost_nano           Nullable(Int64),
    unpriced            Bool,
    ttft_ns             Nullable(Int64),
    retry_count         Int64,
    tags                Array(String),
    call_response_id    Nullable(String),
    call_detail         Nullable(UInt32),
    body                String CODEC(ZSTD(3)){payload_ttl},
    version             Int64 DEFAULT toUnixTimestamp64Nano(now64(9)),
{v2_columns}    INDEX start_ns_range start_ns TYPE minmax GRANULARITY 1{content_index}",
    engine: "ReplacingMergeTree(version)",
    tail: "PARTITION BY toYYYYMM(toDateTime(intDiv(greatest(least(start_ns, 4102444800000000000), 0), 1000000000), 'UTC'))
ORDER BY (project, trace_id, span_id)",
    shard_by: "cityHash64(trace_id)",
    expires_by: Some("start_ns"),
};

/// What metrics read of each span, ordered by hour so a range reads only its own hours (the
/// `spans` table is ordered by trace). A span sent again with a start in another hour leaves a
/// deleted row at its old key, so `FINAL` counts it once, in its new hour.
const SPAN_TIMES: Table = Table {
    name: "span_times",
    columns: "
    project             LowCardinality(String),
    hour                Int64,
    trace_id            FixedString(16),
    span_id             FixedString(8),
    start_ns            Int64,
    kind                LowCardinality(String),
    status              LowCardinality(String),
    duration_ns         Nullable(Int64),
    ttft_ns             Nullable(Int64),
    input_tokens        Int64,
    output_tokens       Int64,
    cache_read_tokens   Int64,
    cache_write_tokens  Int64,
    reasoning_tokens    Int64,
    total_tokens        Int64,
    cost_nano           Nullable(Int64),
    unpriced            Bool,
    retry_count         Int64,
    request_model       LowCardinality(Nullable(String)),
    response_model      LowCardinality(Nullable(String)),
    provider            LowCardinality(Nullable(String)),
    agent_name          Nullable(String),
    user_id             Nullable(String),
    tool_name           Nullable(String),
    version             Int64 DEFAULT toUnixTimestamp64Nano(now64(9)),
    deleted             UInt8 DEFAULT 0",
    engine: "ReplacingMergeTree(version, deleted)",
    tail: "PARTITION BY toYYYYMM(toDateTime(greatest(least(hour, 1139568), 0) * 3600, 'UTC'))
ORDER BY (project, hour, trace_id, span_id)",
    shard_by: "cityHash64(trace_id)",
    expires_by: Some("start_ns"),
};

/// A trace's summary as the collectors compute it from its stored spans; the highest
/// `version` (the newest span insert the computation saw) wins.
const TRACES: Table = Table {
    name: "traces",
    columns: "
    project             LowCardinality(String),
    trace_id            FixedString(16),
    name                String,
    status              LowCardinality(String),
    start_ns            Int64,
    end_ns              Int64,
    duration_ns         Int64,
    span_count          Int64,
    error_count         Int64,
    input_tokens        Int64,
    output_tokens       Int64,
    total_tokens        Int64,
    cost_nano           Int64,
    unpriced_count      Int64,
    user_id             String,
    session_id          String,
    root_span_id        Nullable(FixedString(8)),
    service             Nullable(String),
    tags                Array(String),
    kinds               Array(String),
    models              Array(String),
    providers           Array(String),
    search              String,
    duplicates          Array(Tuple(FixedString(8), FixedString(8))),
    version             Int64",
    engine: "ReplacingMergeTree(version)",
    tail: "ORDER BY (project, trace_id)",
    shard_by: "cityHash64(trace_id)",
    expires_by: Some("start_ns"),
};

/// GenAI events that arrived as log records; a record sent twice has the same key.
const LOG_EVENTS: Table = Table {
    name: "log_events",
    columns: "
    project             LowCardinality(String),
    trace_id            FixedString(16),
    span_id             FixedString(8),
    digest              Int64,
    time_ns             Int64,
    event               String CODEC(ZSTD(3)),
    received_ns         Int64",
    engine: "ReplacingMergeTree(received_ns)",
    tail: "ORDER BY (project, trace_id, span_id, digest)",
    shard_by: "cityHash64(trace_id)",
    expires_by: Some("time_ns"),
};

const SCORES: Table = Table {
    name: "scores",
    columns: "
    project             LowCardinality(String),
    id                  Int64,
    trace_id            Nullable(FixedString(16)),
    span_id             Nullable(FixedString(8)),
    session_id          Nullable(String),
    name                String,
    data_type           LowCardinality(String),
    value               Nullable(Float64),
    label               Nullable(String),
    source              LowCardinality(String),
    comment             Nullable(String),
    created_ns          Int64,
    author              Nullable(String)",
    engine: "MergeTree",
    tail: "ORDER BY (project, id)",
    shard_by: "cityHash64(project)",
    expires_by: Some("created_ns"),
};

/// Shared documents; the newest save of a key wins.
const SHARED_STATE: Table = Table {
    name: "shared_state",
    columns: "
    key                 String,
    value               String,
    version             Int64 DEFAULT toUnixTimestamp64Nano(now64(9))",
    engine: "ReplacingMergeTree(version)",
    tail: "ORDER BY key",
    shard_by: "cityHash64(key)",
    expires_by: None,
};

/// Leases as a chain of epochs per name: whoever inserts epoch `n + 1` first holds it (the
/// insert carries a deduplication token naming the epoch, so a second insert of the same epoch
/// is dropped by the server). Old epochs expire after a day; a chain started again after that
/// starts from the day's number, never at an epoch used before.
const LEASES: Table = Table {
    name: "leases",
    columns: "
    name                String,
    epoch               UInt64,
    holder              String,
    expires_ns          Int64,
    taken_ns            Int64 DEFAULT toUnixTimestamp64Nano(now64(9))",
    engine: "MergeTree",
    tail: "ORDER BY (name, epoch)
TTL toDateTime(intDiv(taken_ns, 1000000000)) + INTERVAL 1 DAY
SETTINGS non_replicated_deduplication_window = 10000, replicated_deduplication_window = 10000",
    shard_by: "cityHash64(name)",
    expires_by: None,
};

/// Hours written to since their rollups were built: one row per insert and hour, newest kept.
const ROLLUP_MARKS: Table = Table {
    name: "rollup_marks",
    columns: "
    project             LowCardinality(String),
    hour                Int64,
    marked_ns           Int64 DEFAULT toUnixTimestamp64Nano(now64(9))",
    engine: "ReplacingMergeTree(marked_ns)",
    tail: "ORDER BY (project, hour)",
    shard_by: "cityHash64(project)",
    expires_by: None,
};

/// When each slot's rollups were last built (the generation of its rows to read). A slot is an
/// hour, a UTC day or a week (`width` in hours, `hour` its first hour); a day's rows are summed
/// from hour rows and a week's from day rows, and `parts` names the hour generations they hold.
const ROLLUP_SLOTS: Table = Table {
    name: "rollup_slots",
    columns: "
    project             LowCardinality(String),
    hour                Int64,
    width               UInt16,
    built_ns            Int64,
    parts               Array(Tuple(Int64, Int64))",
    engine: "ReplacingMergeTree(built_ns)",
    tail: "ORDER BY (project, width, hour)",
    shard_by: "cityHash64(project)",
    expires_by: None,
};

/// Sums and latency histograms per span class and slot, one generation per rebuild.
const ROLLUP_ROWS: Table = Table {
    name: "rollup_slot_rows",
    columns: "
    project             LowCardinality(String),
    hour                Int64,
    width               UInt16,
    built_ns            Int64,
    family              UInt8,
    kind                LowCardinality(String),
    request_model       LowCardinality(Nullable(String)),
    response_model      LowCardinality(Nullable(String)),
    provider            LowCardinality(Nullable(String)),
    agent               Nullable(String),
    tool                Nullable(String),
    user                Nullable(String),
    spans               Int64,
    errors              Int64,
    retries             Int128,
    priced              Int64,
    cost                Int128,
    unpriced            Int64,
    input_tokens        Int128,
    output_tokens       Int128,
    cache_read_tokens   Int128,
    cache_write_tokens  Int128,
    reasoning_tokens    Int128,
    total_tokens        Int128,
    duration            Tuple(Array(UInt16), Array(Int64)),
    ttft                Tuple(Array(UInt16), Array(Int64))",
    engine: "MergeTree",
    tail: "ORDER BY (project, family, width, hour, built_ns)",
    shard_by: "cityHash64(project)",
    expires_by: None,
};

/// Traces whose payloads expiry cleared, at the summary version they had then (version 3): a
/// trace whose summary has another version got spans since, and is cleared again.
const PAYLOAD_CLEARED: Table = Table {
    name: "payload_cleared",
    columns: "
    project             LowCardinality(String),
    trace_id            FixedString(16),
    version             Int64",
    engine: "ReplacingMergeTree(version)",
    tail: "ORDER BY (project, trace_id)",
    shard_by: "cityHash64(trace_id)",
    expires_by: None,
};

/// Media blobs taken out of span payloads, one per project and content hash (racing puts may
/// store one twice until merged; reads take one row per hash).
const MEDIA_BLOBS: Table = Table {
    name: "media_blobs",
    columns: "
    project             LowCardinality(String),
    hash                String,
    mime                LowCardinality(String),
    bytes               String,
    size                UInt64,
    version             Int64 DEFAULT toUnixTimestamp64Nano(now64(9))",
    engine: "ReplacingMergeTree(version)",
    tail: "ORDER BY (project, hash)",
    shard_by: "cityHash64(project, hash)",
    expires_by: None,
};

/// Which trace refers to which media blob: a blob is deleted once no row names it.
const MEDIA_REFS: Table = Table {
    name: "media_refs",
    columns: "
    project             LowCardinality(String),
    trace_id            FixedString(16),
    hash                String,
    version             Int64 DEFAULT toUnixTimestamp64Nano(now64(9))",
    engine: "ReplacingMergeTree(version)",
    tail: "ORDER BY (project, trace_id, hash)",
    shard_by: "cityHash64(trace_id)",
    expires_by: None,
};

/// Schema versions applied (the highest tells a newer schema apart).
const SCHEMA_VERSIONS: Table = Table {
    name: "schema_versions",
    columns: "
    version             UInt32,
    applied_ns          Int64 DEFAULT toUnixTimestamp64Nano(now64(9))",
    engine: "ReplacingMergeTree(applied_ns)",
    tail: "ORDER BY version",
    shard_by: "version",
    expires_by: None,
};

const TABLES: [&Table; 14] = [
    &SCHEMA_VERSIONS,
    &SPANS,
    &SPAN_TIMES,
    &TRACES,
    &LOG_EVENTS,
    &SCORES,
    &SHARED_STATE,
    &LEASES,
    &ROLLUP_MARKS,
    &ROLLUP_SLOTS,
    &ROLLUP_ROWS,
    &PAYLOAD_CLEARED,
    &MEDIA_BLOBS,
    &MEDIA_REFS,
];

/// Columns `spans` gained in version 2, as (name, type, what only a table holding rows takes,
/// not a distributed one): in its `CREATE` statement, and added to a version 1 table.
/// `content` is empty in the rows stored before (they are not found by content search);
/// `has_rate_limits` is computed from the body, for old rows as they are read.
const SPANS_V2_COLUMNS: [(&str, &str, &str); 2] = [
    ("content", "String", " CODEC(ZSTD(3)){payload_ttl}"),
    (
        "has_rate_limits",
        "Bool DEFAULT position(body, '\"rate_limits\"') > 0",
        "",
    ),
];

/// Columns added in version 4, as (table, name, type): who gave a score, the prompt template
/// and version of a span, and a trace's prompt sets for the list filter. Added by `ALTER … ADD COLUMN IF NOT
/// EXISTS` to new and old tables alike; rows stored before have none (their traces are found
/// by the prompt filter once a span of them is written again).
const V4_COLUMNS: [(&str, &str, &str); 5] = [
    ("scores", "author", "Nullable(String)"),
    ("spans", "prompt_name", "Nullable(String)"),
    ("spans", "prompt_version", "Nullable(String)"),
    ("traces", "prompts", "Array(String)"),
    ("traces", "prompt_versions", "Array(String)"),
];

/// ` ON CLUSTER name` for a cluster layout, else nothing.
fn on_cluster(layout: &Layout) -> String {
    match &layout.cluster {
        Some(c) => format!(" ON CLUSTER {}", ident(c)),
        None => String::new(),
    }
}

/// The statements that set the TTLs of the tables rows expire from to `layout`'s retention
/// (`REMOVE TTL` where it keeps everything), on the tables that hold rows.
pub fn retention_statements(database: &str, layout: &Layout) -> Vec<String> {
    let (db, on) = (ident(database), on_cluster(layout));
    let suffix = if layout.cluster.is_some() {
        "_local"
    } else {
        ""
    };
    TABLES
        .iter()
        .filter_map(|t| t.expires_by.map(|column| (t.name, column)))
        .map(|(table, column)| {
            let change = match layout.retention.ttl(column) {
                Some(ttl) => format!("MODIFY {ttl}"),
                None => "REMOVE TTL".to_string(),
            };
            format!("ALTER TABLE {db}.{table}{suffix}{on} {change}")
        })
        .collect()
}

/// The full-text index of span content: the words content search looks for (the text is
/// lowered when written, so the tokenizer's words are `spanlens_core::content`'s).
const CONTENT_INDEX: &str = "content_words content TYPE text(tokenizer = 'splitByNonAlpha')";

/// Tables of an earlier schema that nothing reads any more (version 1's hourly rollups,
/// rebuilt into slots from the marks that stay), dropped by the schema's statements.
const RETIRED: [&str; 2] = ["rollup_hours", "rollup_rows"];

/// The statements that make the schema of `database` in `layout`, in order; each may be run
/// again. Table and database names are quoted identifiers.
pub fn statements(database: &str, layout: &Layout) -> Vec<String> {
    let (db, on) = (ident(database), on_cluster(layout));
    let payload_ttl = match layout.payload_ttl_days {
        Some(days) => format!(" TTL {} + INTERVAL {days} DAY", time_of("start_ns")),
        None => String::new(),
    };
    let content_index = match layout.text_index {
        true => format!(",\n    INDEX {CONTENT_INDEX}"),
        false => String::new(),
    };
    let v2_columns: String = SPANS_V2_COLUMNS
        .iter()
        .map(|(name, ty, local)| format!("    {name} {ty}{local},\n"))
        .collect();
    let mut out = vec![format!("CREATE DATABASE IF NOT EXISTS {db}{on}")];
    for t in TABLES {
        let columns = t
            .columns
            .replace("{v2_columns}", &v2_columns)
            .replace("{payload_ttl}", &payload_ttl)
            .replace("{content_index}", &content_index);
        let ttl = t.expires_by.and_then(|c| layout.retention.ttl(c));
        let tail = match ttl {
            Some(ttl) => format!("{}\n{ttl}", t.tail),
            None => t.tail.to_string(),
        };
        match &layout.cluster {
            None => out.push(format!(
                "CREATE TABLE IF NOT EXISTS {db}.{} ({columns}\n) ENGINE = {}\n{tail}",
                t.name, t.engine
            )),
            Some(c) => {
                let local = format!("{}_local", t.name);
                out.push(format!(
                    "CREATE TABLE IF NOT EXISTS {db}.{local}{on} ({columns}\n) ENGINE = Replicated{}\n{tail}",
                    t.engine
                ));
                out.push(format!(
                    "CREATE TABLE IF NOT EXISTS {db}.{}{on} AS {db}.{local} \
                     ENGINE = Distributed({}, {}, {}, {})",
                    t.name,
                    sql::string(c),
                    sql::string(database),
                    sql::string(&local),
                    t.shard_by
                ));
            }
        }
    }
    let spans = match layout.cluster {
        Some(_) => vec!["spans_local", "spans"],
        None => vec!["spans"],
    };
    for (i, table) in spans.iter().enumerate() {
        for (name, ty, local) in SPANS_V2_COLUMNS {
            let local = match i {
                0 => local.replace("{payload_ttl}", &payload_ttl),
                _ => String::new(),
            };
            out.push(format!(
                "ALTER TABLE {db}.{table}{on} ADD COLUMN IF NOT EXISTS {name} {ty}{local}"
            ));
        }
        if i == 0 && layout.text_index {
            out.push(format!(
                "ALTER TABLE {db}.{table}{on} ADD INDEX IF NOT EXISTS {CONTENT_INDEX}"
            ));
        }
    }
    for (table, name, ty) in V4_COLUMNS {
        let tables = match layout.cluster {
            Some(_) => vec![format!("{table}_local"), table.to_string()],
            None => vec![table.to_string()],
        };
        for t in tables {
            out.push(format!(
                "ALTER TABLE {db}.{t}{on} ADD COLUMN IF NOT EXISTS {name} {ty}"
            ));
        }
    }
    for name in RETIRED {
        out.push(format!("DROP TABLE IF EXISTS {db}.{name}{on}"));
        if layout.cluster.is_some() {
            out.push(format!("DROP TABLE IF EXISTS {db}.{name}_local{on}"));
        }
    }
    out
}

/// A quoted identifier.
pub fn ident(name: &str) -> String {
    format!("`{}`", name.replace('\\', "\\\\").replace('`', "\\`"))
}

#[cfg(test)]
mod tests {
    use super::{statements, Layout, Retention, RETIRED, TABLES, V4_COLUMNS};

    #[test]
    fn one_server_gets_plain_tables_and_a_cluster_replicated_and_distributed_ones() {
        let one = statements("spanlens", &Layout::default());
        assert_eq!(
            one.len(),
            1 + TABLES.len() + 3 + RETIRED.len() + V4_COLUMNS.len()
        );
        assert!(one[0].starts_with("CREATE DATABASE IF NOT EXISTS `spanlens`"));
        assert!(one.iter().all(|s| !s.contains("ON CLUSTER")));
        assert!(one.iter().skip(1).all(|s| s.contains(" IF ")));
        let spans = one.iter().find(|s| s.contains(".spans (")).unwrap();
        assert!(spans.contains("ENGINE = ReplacingMergeTree(version)"));
        assert!(!spans.contains("TTL"), "no payload TTL unless asked");

        assert!(spans.contains("TYPE text(tokenizer = 'splitByNonAlpha')"));
        let layout = Layout {
            cluster: Some("prod".into()),
            payload_ttl_days: Some(30),
            retention: Retention {
                days: Some(90),
                projects: [("prod".to_string(), 400)].into(),
            },
            text_index: false,
        };
        let many = statements("spanlens", &layout);
        assert_eq!(
            many.len(),
            1 + 2 * (TABLES.len() + 2 + RETIRED.len() + V4_COLUMNS.len())
        );
        assert!(many.iter().all(|s| !s.contains("TYPE text")));
        let local = many
            .iter()
            .find(|s| s.contains(".traces_local ON"))
            .unwrap();
        assert!(
            local.contains("INTERVAL 400 DAY DELETE WHERE project = 'prod'"),
            "{local}"
        );
        assert!(local.contains("INTERVAL 90 DAY DELETE WHERE project NOT IN ('prod')"));
        let marks = many
            .iter()
            .find(|s| s.contains(".rollup_marks_local ON"))
            .unwrap();
        assert!(!marks.contains("DELETE"), "rollups are kept");
        assert!(many[0].ends_with("ON CLUSTER `prod`"));
        let local = many.iter().find(|s| s.contains(".spans_local ON")).unwrap();
        assert!(local.contains("ENGINE = ReplicatedReplacingMergeTree(version)"));
        assert!(local.contains("CODEC(ZSTD(3)) TTL"));
        assert!(local.contains("INTERVAL 30 DAY"));
        let dist = many
            .iter()
            .find(|s| s.contains(".spans ON CLUSTER"))
            .unwrap();
        assert!(
            dist.contains("Distributed('prod', 'spanlens', 'spans_local', cityHash64(trace_id))")
        );
    }
}
