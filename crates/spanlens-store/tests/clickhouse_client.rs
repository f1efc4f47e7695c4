//! The ClickHouse client against a ClickHouse HTTP interface: the chDB test server that
//! `scripts/test` starts (`scripts/clickhouse-test-server`), or the server named by
//! `SPANLENS_TEST_CLICKHOUSE` (`http://host:8123`).
#![cfg(feature = "clickhouse")]

use spanlens_store::clickhouse::{ClickHouseError, Client, Endpoint, RowBinary};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

fn server() -> String {
    let url = std::env::var("SPANLENS_TEST_CLICKHOUSE").unwrap_or_else(|_| {
        panic!(
            "SPANLENS_TEST_CLICKHOUSE is not set: start a ClickHouse test server with \
             scripts/clickhouse-test-server PORT DIR and export its URL, e.g. \
             SPANLENS_TEST_CLICKHOUSE=http://127.0.0.1:PORT"
        )
    });
    url.trim_end_matches('/')
        .trim_start_matches("http://")
        .to_string()
}

/// A client on a fresh database of its own.
async fn fresh() -> Client {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        "spanlens_t_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let endpoint = |database: &str| Endpoint::plain(server(), database);
    let admin = Client::new(endpoint("default"), Duration::from_secs(60));
    admin
        .query(&format!("CREATE DATABASE {name}"), &[])
        .await
        .unwrap();
    Client::new(endpoint(&name), Duration::from_secs(60))
}

#[tokio::test]
async fn rows_encoded_as_row_binary_read_back_as_written() {
    let c = fresh().await;
    c.ping().await.unwrap();
    c.query(
        "CREATE TABLE t (id UInt32, at DateTime64(9), trace FixedString(16), name String, \
         model Nullable(String), cost Nullable(Int64), ok Bool, tags Array(String), x Float64) \
         ENGINE = MergeTree ORDER BY id",
        &[],
    )
    .await
    .unwrap();
    let mut rows = RowBinary::new();
    let long = "ß".repeat(200);
    let names = ["plain", "tab\tnew\nline \"q\" \\", long.as_str()];
    for (i, name) in names.iter().enumerate() {
        let i = i as u32;
        rows.u32(i)
            .i64(1_767_225_600_123_456_789 + i64::from(i))
            .fixed(&[i as u8; 16])
            .str(name)
            .opt_str((i != 1).then_some("gpt-4o"))
            .opt_i64((i != 2).then_some(-5 * i64::from(i)))
            .bool(i == 0)
            .strs(&vec!["a".to_string(); i as usize])
            .f64(0.5 * f64::from(i));
    }
    c.insert(
        "INSERT INTO t (id, at, trace, name, model, cost, ok, tags, x) FORMAT RowBinary",
        &rows.finish(),
        &[],
    )
    .await
    .unwrap();
    let out = c
        .query(
            "SELECT id, toUnixTimestamp64Nano(at) AS ns, hex(trace) AS trace, name, model, cost, \
             ok, tags, x FROM t ORDER BY id FORMAT JSONEachRow",
            &[("output_format_json_quote_64bit_integers", "0")],
        )
        .await
        .unwrap();
    let got: Vec<serde_json::Value> = out
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert_eq!(got.len(), 3);
    for (i, row) in got.iter().enumerate() {
        assert_eq!(row["id"], i as u64);
        assert_eq!(row["ns"], 1_767_225_600_123_456_789u64 + i as u64);
        assert_eq!(row["trace"], format!("{:02X}", i).repeat(16));
        assert_eq!(row["name"], names[i]);
        assert_eq!(row["ok"], i == 0);
        assert_eq!(row["tags"].as_array().unwrap().len(), i);
        assert_eq!(row["x"], 0.5 * i as f64);
    }
    assert!(got[1]["model"].is_null());
    assert_eq!(got[0]["model"], "gpt-4o");
    assert!(got[2]["cost"].is_null());
    assert_eq!(got[1]["cost"], -5);
}

#[tokio::test]
async fn server_errors_carry_clickhouses_code_and_message() {
    let c = fresh().await;
    match c.query("SELECT * FROM no_such_table", &[]).await {
        Err(ClickHouseError::Server {
            status,
            code,
            message,
        }) => {
            assert_eq!(status, 404);
            assert_eq!(code, Some(60));
            assert!(message.contains("no_such_table"), "{message}");
        }
        other => panic!("expected an unknown-table error, got {other:?}"),
    }
    match c.query("SELEC 1", &[]).await {
        Err(ClickHouseError::Server { code, .. }) => assert_eq!(code, Some(62)),
        other => panic!("expected a syntax error, got {other:?}"),
    }
    // A setting applies to its own statement.
    let v = c
        .query(
            "SELECT getSetting('max_block_size')",
            &[("max_block_size", "1234")],
        )
        .await
        .unwrap();
    assert_eq!(&v[..], b"1234\n");
}

#[tokio::test]
async fn an_unreachable_server_is_told_apart_from_an_error() {
    // A port nothing listens on: bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let c = Client::new(
        Endpoint::plain(format!("127.0.0.1:{port}"), "default"),
        Duration::from_secs(5),
    );
    match c.ping().await {
        Err(ClickHouseError::Unreachable(why)) => assert!(!why.is_empty()),
        other => panic!("expected unreachable, got {other:?}"),
    }
}

/// The SQL bucket expression the ClickHouse metrics group latencies by puts every value in the
/// bucket `bucket_of` does: around each power of two (where a float logarithm rounds), at the
/// small exact buckets, and at the top of the range.
#[tokio::test]
async fn the_sql_latency_bucket_is_the_rust_one() {
    use spanlens_store::clickhouse::{bucket_of, bucket_sql};
    let c = fresh().await;
    let mut values: Vec<i64> = (0..200).collect();
    for p in 6..63 {
        let b = 1i64 << p;
        values.extend([b - 2, b - 1, b, b + 1, b + (b >> 7), b + (b >> 1) - 1]);
    }
    values.extend([i64::MAX, i64::MAX - 1, i64::MAX - 1024, 1_234_567_890_123]);
    let list: Vec<String> = values.iter().map(|v| format!("toInt64({v})")).collect();
    let out = c
        .query(
            &format!(
                "SELECT v, {} FROM (SELECT arrayJoin([{}]) AS v) FORMAT TabSeparated",
                bucket_sql("v"),
                list.join(", ")
            ),
            &[],
        )
        .await
        .unwrap();
    let text = String::from_utf8(out.to_vec()).unwrap();
    let mut checked = 0;
    for line in text.lines() {
        let (v, b) = line.split_once('\t').unwrap();
        let v: i64 = v.parse().unwrap();
        let b: u16 = b.parse().unwrap();
        assert_eq!(b, bucket_of(v as u64), "bucket of {v}");
        checked += 1;
    }
    assert_eq!(checked, values.len());
}

/// A chDB test server of its own on HTTPS, with a certificate for 127.0.0.1 and its root made
/// by `openssl`.
struct TlsServer {
    child: std::process::Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl TlsServer {
    async fn start() -> TlsServer {
        let dir = tempfile::tempdir().unwrap();
        // A root and a certificate for 127.0.0.1 it signed (a self-signed certificate that is
        // its own root is refused by rustls as a CA used as an end entity).
        let p = |name: &str| dir.path().join(name);
        std::fs::write(p("ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
        let openssl = |args: &[&std::ffi::OsStr]| {
            let out = std::process::Command::new("openssl")
                .args(args)
                .output()
                .expect("openssl (scripts/test-deps installs it)");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let os = |s: &'static str| std::ffi::OsStr::new(s);
        let (ca, ca_key, csr) = (p("ca.pem"), p("ca.key"), p("leaf.csr"));
        let (cert, key, ext) = (p("cert.pem"), p("key.pem"), p("ext"));
        openssl(&[
            os("req"),
            os("-x509"),
            os("-newkey"),
            os("rsa:2048"),
            os("-nodes"),
            os("-days"),
            os("2"),
            os("-subj"),
            os("/CN=spanlens test root"),
            os("-keyout"),
            ca_key.as_os_str(),
            os("-out"),
            ca.as_os_str(),
        ]);
        openssl(&[
            os("req"),
            os("-newkey"),
            os("rsa:2048"),
            os("-nodes"),
            os("-subj"),
            os("/CN=127.0.0.1"),
            os("-keyout"),
            key.as_os_str(),
            os("-out"),
            csr.as_os_str(),
        ]);
        openssl(&[
            os("x509"),
            os("-req"),
            os("-in"),
            csr.as_os_str(),
            os("-CA"),
            ca.as_os_str(),
            os("-CAkey"),
            ca_key.as_os_str(),
            os("-CAcreateserial"),
            os("-days"),
            os("2"),
            os("-extfile"),
            ext.as_os_str(),
            os("-out"),
            cert.as_os_str(),
        ]);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../scripts/clickhouse-test-server"
        );
        let child = std::process::Command::new(script)
            .arg(port.to_string())
            .arg(dir.path().join("data"))
            .env("TLS_CERT_FILE", &cert)
            .env("TLS_KEY_FILE", &key)
            .spawn()
            .unwrap();
        let server = TlsServer { child, port, dir };
        let client = server.client(true);
        let mut last = None;
        for _ in 0..600 {
            match client.ping().await {
                Ok(()) => return server,
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the HTTPS test server did not answer in 60 s: {last:?}");
    }

    /// The root that signed its certificate.
    fn cert(&self) -> String {
        self.dir.path().join("ca.pem").display().to_string()
    }

    /// A client of it over HTTPS, trusting its certificate when `trusting`.
    fn client(&self, trusting: bool) -> Client {
        let mut e = Endpoint::plain(format!("127.0.0.1:{}", self.port), "default");
        e.secure = true;
        e.ca_file = trusting.then(|| self.cert());
        Client::new(e, Duration::from_secs(10))
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `?secure=true`: HTTPS verified against the roots of `ca_file` (else the system's), through
/// the client and the whole store; an untrusted certificate, a missing roots file and plain
/// HTTP to the TLS port are errors that say so.
#[tokio::test]
async fn https_verifies_the_server_against_the_roots_given() {
    let server = TlsServer::start().await;
    let out = server
        .client(true)
        .query("SELECT 40 + 2", &[])
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out).trim(), "42");

    let e = server.client(false).ping().await.unwrap_err().to_string();
    assert!(e.to_lowercase().contains("certificate"), "{e}");
    let mut missing = Endpoint::plain(format!("127.0.0.1:{}", server.port), "default");
    missing.secure = true;
    missing.ca_file = Some("/nonexistent/ca.pem".into());
    let e = Client::new(missing, Duration::from_secs(5))
        .ping()
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("ca_file=/nonexistent/ca.pem"), "{e}");
    let plain = Client::new(
        Endpoint::plain(format!("127.0.0.1:{}", server.port), "default"),
        Duration::from_secs(5),
    );
    assert!(
        plain.query("SELECT 1", &[]).await.is_err(),
        "plain HTTP to the TLS port"
    );

    // The store over HTTPS: `ca_file` alone means TLS.
    use spanlens_store::prelude::*;
    let uri = format!(
        "clickhouse://127.0.0.1:{}/tls_db?ca_file={}",
        server.port,
        server.cert().replace('/', "%2F")
    );
    let store = spanlens_store::ClickHouseStore::connect(&uri)
        .await
        .unwrap();
    let span = spanlens_store::contract::build::span(1, 1, None, "over tls", 0, 10);
    store.write("p", vec![span]).await.unwrap();
    assert_eq!(store.count_spans("p").await.unwrap(), 1);
}
