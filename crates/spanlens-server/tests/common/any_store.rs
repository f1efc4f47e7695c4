//! A server on any store (SQLite in a fresh directory, or the PostgreSQL or ClickHouse a URI
//! names) on its own thread and runtime, a blocking client for it, and the test databases the
//! PostgreSQL and ClickHouse runs use: for tests that run the same checks on every backend.
#![allow(dead_code)]

use serde_json::Value;
use spanlens_server::{serve, Bound, ServerConfig};
use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;

pub struct Srv {
    pub bound: Bound,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Drop for Srv {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A server on the store `uri` names (`None`: SQLite in a fresh directory), opened on the
/// server's own runtime, its configuration changed by `edit`.
pub fn start(
    uri: Option<String>,
    dir: tempfile::TempDir,
    edit: impl FnOnce(&mut ServerConfig) + Send + 'static,
) -> Srv {
    let data_dir = dir.path().to_path_buf();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (bound_tx, bound_rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let store: Arc<dyn spanlens_store::Store> = match uri {
                None => Arc::new(spanlens_server::open_store(&data_dir).unwrap()),
                Some(u) => {
                    spanlens_server::open_store_uri(&spanlens_store::StoreUri::parse(&u).unwrap())
                        .await
                        .unwrap()
                }
            };
            let mut config = ServerConfig {
                http: SocketAddr::from(([127, 0, 0, 1], 0)),
                grpc: SocketAddr::from(([127, 0, 0, 1], 0)),
                data_dir,
                ..ServerConfig::default()
            };
            edit(&mut config);
            serve(
                &config,
                store,
                async {
                    let _ = stop_rx.await;
                },
                move |b| bound_tx.send(b).unwrap(),
            )
            .await
            .unwrap();
        });
    });
    Srv {
        bound: bound_rx.recv().unwrap(),
        stop: Some(stop_tx),
        thread: Some(thread),
        _dir: dir,
    }
}

impl Srv {
    /// A request; the answer's status, JSON (text as a string when not JSON) and raw text.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> (u16, Value, String) {
        self.raw(
            method,
            path,
            headers,
            body.map(|b| (b.to_string().into_bytes(), "application/json")),
        )
    }

    pub fn raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<(Vec<u8>, &str)>,
    ) -> (u16, Value, String) {
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build(),
        );
        let mut req = ureq::http::Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.bound.http));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let bytes = match body {
            Some((b, ct)) => {
                req = req.header("content-type", ct);
                b
            }
            None => Vec::new(),
        };
        let mut resp = agent.run(req.body(bytes).unwrap()).unwrap();
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap();
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text.clone()));
        (status, v, text)
    }
}

/// A fresh database `name` on the test PostgreSQL (`SPANLENS_TEST_POSTGRES`, a superuser URL),
/// dropped when the guard goes: its URI and the guard.
pub fn postgres_database(name: &str) -> (String, impl Drop) {
    let admin = std::env::var("SPANLENS_TEST_POSTGRES")
        .expect("SPANLENS_TEST_POSTGRES is not set: a superuser URL of a test PostgreSQL");
    let psql = {
        let admin = admin.clone();
        move |sql: &str| {
            let out = Command::new("psql")
                .args([&admin, "-qc", sql])
                .output()
                .expect("psql");
            assert!(
                out.status.success(),
                "{sql}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    };
    psql(&format!("DROP DATABASE IF EXISTS {name}"));
    psql(&format!("CREATE DATABASE {name}"));
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    struct Dropper<F: Fn(&str)>(F, String);
    impl<F: Fn(&str)> Drop for Dropper<F> {
        fn drop(&mut self) {
            (self.0)(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.1));
        }
    }
    (format!("{base}/{name}"), Dropper(psql, name.to_string()))
}

/// A fresh database on the test ClickHouse (`SPANLENS_TEST_CLICKHOUSE`, its HTTP URL): its URI.
pub fn clickhouse_uri(prefix: &str) -> String {
    let server = std::env::var("SPANLENS_TEST_CLICKHOUSE")
        .expect("SPANLENS_TEST_CLICKHOUSE is not set: the URL of a test ClickHouse");
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "clickhouse://{}/{prefix}_{}_{nanos}",
        server.trim_end_matches('/').trim_start_matches("http://"),
        std::process::id()
    )
}
