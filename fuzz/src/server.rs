//! Whole-ingest-path targets: the input as a request body through the server's real HTTP router
//! (or its gRPC service), into a real SQLite store, and every stored trace read back.
//!
//! One tokio runtime and one store (in a temporary directory) serve the whole process. Each
//! input is sent under its own project (`x-project-name: fz<N>`), so what one input stored
//! never mixes with another's and every finding reproduces from its input alone. The store is
//! replaced by a fresh one every [`ROTATE_EVERY`] inputs so a long run does not fill the disk.
//!
//! Checked for each input, against `spanlens_core::normalize` of the same body:
//! - a body the normaliser refuses gets 400 (gRPC: `INVALID_ARGUMENT`), never a 5xx;
//! - an accepted body gets 200 (gRPC: `OK`) with the rejected count the normaliser gives;
//! - for every trace the request stored: `GET /api/v1/traces/{id}` (200, exactly the spans
//!   sent, `span_count` right), `/tree` (one node per span), `/export`, `/spans/{span_id}`; then
//!   the project's trace list, sessions and `GET /api/v1/metrics/model`. A 5xx on any read is
//!   a finding: one bad span must never break a read.

use crate::normalise::{self, options};
use crate::Mode;
use axum::body::Body;
use axum::Router;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use prost::Message;
use serde_json::Value;
use spanlens_core::otlp::proto::ExportTraceServiceResponse;
use spanlens_core::{normalize, InputFormat, Normalized, PriceCatalog, SpanId, TraceId};
use spanlens_server::grpc::{TraceService, EXPORT_PATH};
use spanlens_server::AppState;
use spanlens_store::SqliteStore;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use tower::ServiceExt;

/// Inputs served by one store before it is replaced.
pub const ROTATE_EVERY: u64 = 20_000;

/// The process-wide server.
struct Harness {
    rt: tokio::runtime::Runtime,
    instance: Mutex<Option<Instance>>,
    inputs: AtomicU64,
    stores: AtomicU64,
}

/// One store and the server state around it.
struct Instance {
    state: AppState,
    app: Router,
    dir: PathBuf,
    served: u64,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Prefix of the temporary directories; the process id follows.
const DIR_PREFIX: &str = "spanlens-fuzz-";

fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| {
        remove_stale_dirs();
        Harness {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime"),
            instance: Mutex::new(None),
            inputs: AtomicU64::new(0),
            stores: AtomicU64::new(0),
        }
    })
}

/// libFuzzer ends the process with `exit`, so a store's directory outlives it: remove those
/// of processes that are gone.
fn remove_stale_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(DIR_PREFIX)
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

impl Harness {
    /// The current instance's state and router, and a project name no other input used.
    fn begin(&self) -> (AppState, Router, String) {
        let mut slot = self.instance.lock().unwrap_or_else(|e| e.into_inner());
        if slot.as_ref().is_some_and(|i| i.served >= ROTATE_EVERY) {
            // Dropped inside the runtime: the store joins its writer thread.
            *slot = None;
        }
        let inst = slot.get_or_insert_with(|| {
            let n = self.stores.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir().join(format!("{DIR_PREFIX}{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            let store = SqliteStore::open(dir.join("spanlens.db")).expect("open the store");
            let state = AppState::new(Arc::new(store));
            let app = spanlens_server::http::router(state.clone());
            Instance {
                state,
                app,
                dir,
                served: 0,
            }
        });
        inst.served += 1;
        let project = format!("fz{}", self.inputs.fetch_add(1, Ordering::Relaxed));
        (inst.state.clone(), inst.app.clone(), project)
    }

    /// Sends one request to the router: status and body.
    fn send(&self, app: &Router, req: Request<Body>) -> (StatusCode, Bytes) {
        self.rt.block_on(async {
            let resp = app
                .clone()
                .oneshot(req)
                .await
                .expect("the router is infallible");
            let status = resp.status();
            let body = resp
                .into_body()
                .collect()
                .await
                .expect("response body")
                .to_bytes();
            (status, body)
        })
    }

    fn get(&self, app: &Router, uri: &str) -> (StatusCode, Bytes) {
        let req = Request::get(uri)
            .body(Body::empty())
            .expect("a GET request");
        self.send(app, req)
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).expect("gzip into memory");
    enc.finish().expect("gzip into memory")
}

fn text(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    s.chars().take(2000).collect()
}

/// What the normaliser makes of the body, as the server will see it.
fn expect(format: InputFormat, body: &[u8]) -> Option<Normalized> {
    normalize(format, body, &options(), PriceCatalog::builtin()).ok()
}

fn ingest_http(format: InputFormat, path: &str, content_type: &str, data: &[u8]) {
    let (mode, rest) = Mode::split(data);
    let Some(body) = normalise::body(format, mode, rest) else {
        return;
    };
    let expected = expect(format, &body);
    let h = harness();
    let (_state, app, project) = h.begin();
    let mut req = Request::post(path)
        .header("content-type", content_type)
        .header("x-project-name", &project);
    let wire = if mode.gzip() {
        req = req.header("content-encoding", "gzip");
        gzip(&body)
    } else {
        body.clone()
    };
    let req = req.body(Body::from(wire)).expect("an ingest request");
    let (status, answer) = h.send(&app, req);
    let Some(n) = expected else {
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "a body the normaliser refuses must get 400: {}",
            text(&answer)
        );
        return;
    };
    assert_eq!(
        status,
        StatusCode::OK,
        "an accepted body must get 200: {}",
        text(&answer)
    );
    let rejected = match format {
        InputFormat::OtlpProtobuf => ExportTraceServiceResponse::decode(&answer[..])
            .expect("an OTLP protobuf answer")
            .partial_success
            .map_or(0, |p| p.rejected_spans),
        InputFormat::OtlpJson => {
            let v: Value = serde_json::from_slice(&answer).expect("an OTLP JSON answer");
            match &v["partialSuccess"]["rejectedSpans"] {
                Value::Null => 0,
                Value::String(s) => s.parse().expect("rejectedSpans as an integer string"),
                other => panic!("rejectedSpans is {other}"),
            }
        }
        InputFormat::OpenAiAgents => {
            let v: Value = serde_json::from_slice(&answer).expect("an Agents answer");
            assert_eq!(
                v["accepted"].as_u64(),
                Some(n.spans.len() as u64),
                "accepted count: {v}"
            );
            v["rejected"].as_i64().expect("rejected count")
        }
    };
    assert_eq!(rejected, n.rejected.len() as i64, "rejected count");
    check_reads(h, &app, &project, &n);
}

/// `POST /v1/traces` with `Content-Type: application/x-protobuf`.
pub fn ingest_otlp_proto(data: &[u8]) {
    ingest_http(
        InputFormat::OtlpProtobuf,
        "/v1/traces",
        "application/x-protobuf",
        data,
    );
}

/// `POST /v1/traces` with `Content-Type: application/json`.
pub fn ingest_otlp_json(data: &[u8]) {
    ingest_http(
        InputFormat::OtlpJson,
        "/v1/traces",
        "application/json",
        data,
    );
}

/// `POST /v1/traces/ingest` (OpenAI Agents SDK export).
pub fn ingest_agents(data: &[u8]) {
    ingest_http(
        InputFormat::OpenAiAgents,
        "/v1/traces/ingest",
        "application/json",
        data,
    );
}

/// OTLP/gRPC `TraceService/Export`, through the server's gRPC service in process: the input
/// (after the mode byte) is the protobuf message, framed as gRPC unless the mode says not to.
pub fn ingest_grpc(data: &[u8]) {
    let (mode, rest) = Mode::split(data);
    let Some(message) = normalise::body(InputFormat::OtlpProtobuf, mode, rest) else {
        return;
    };
    let h = harness();
    let (state, app, project) = h.begin();
    let mut req = Request::post(EXPORT_PATH)
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("x-project-name", &project);
    let wire = if mode.unframed() {
        message.clone()
    } else {
        let (flag, payload) = if mode.gzip() {
            req = req.header("grpc-encoding", "gzip");
            (1u8, gzip(&message))
        } else {
            (0u8, message.clone())
        };
        let mut framed = Vec::with_capacity(payload.len() + 5);
        framed.push(flag);
        framed.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        framed.extend_from_slice(&payload);
        framed
    };
    let body = tonic::body::Body::new(http_body_util::Full::new(Bytes::from(wire)));
    let req = req.body(body).expect("a gRPC request");
    let (code, grpc_message, answer) = h.rt.block_on(async {
        let resp = TraceService::new(state)
            .oneshot(req)
            .await
            .expect("the gRPC service is infallible");
        let (parts, body) = resp.into_parts();
        let collected = body.collect().await.expect("gRPC response body");
        let trailers = collected.trailers().cloned().unwrap_or_default();
        let header = |name: &str| {
            trailers
                .get(name)
                .or_else(|| parts.headers.get(name))
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let code: i32 = header("grpc-status")
            .expect("a grpc-status")
            .parse()
            .expect("a numeric grpc-status");
        (
            code,
            header("grpc-message").unwrap_or_default(),
            collected.to_bytes(),
        )
    });
    if mode.unframed() {
        // Whatever the framing came to, the service answered with a status and did not panic.
        return;
    }
    let Some(n) = expect(InputFormat::OtlpProtobuf, &message) else {
        assert_eq!(
            code, 3,
            "a message the normaliser refuses must get INVALID_ARGUMENT: {grpc_message}"
        );
        return;
    };
    assert_eq!(code, 0, "an accepted message must get OK: {grpc_message}");
    assert!(answer.len() >= 5, "an OK answer carries a message");
    let resp = ExportTraceServiceResponse::decode(&answer[5..]).expect("an Export answer");
    assert_eq!(
        resp.partial_success.map_or(0, |p| p.rejected_spans),
        n.rejected.len() as i64,
        "rejected count"
    );
    check_reads(h, &app, &project, &n);
}

/// Reads back every trace the request stored, and the project's lists and metrics.
fn check_reads(h: &Harness, app: &Router, project: &str, n: &Normalized) {
    let mut traces: BTreeMap<TraceId, BTreeSet<SpanId>> = BTreeMap::new();
    for s in &n.spans {
        traces.entry(s.trace_id).or_default().insert(s.span_id);
    }
    // Any 5xx on a read is a finding: one stored span must never break a read.
    let read = |uri: String, _trace: Option<&TraceId>| -> Option<Value> {
        let (status, body) = h.get(app, &uri);
        assert_eq!(status, StatusCode::OK, "GET {uri}: {}", text(&body));
        Some(serde_json::from_slice(&body).unwrap_or_else(|e| panic!("GET {uri}: not JSON: {e}")))
    };
    for (trace, spans) in &traces {
        let this = Some(trace);
        let base = format!("/api/v1/traces/{}", trace.to_hex());
        let Some(detail) = read(format!("{base}?project={project}"), this) else {
            return;
        };
        let got: BTreeSet<String> = detail["spans"]
            .as_array()
            .expect("spans")
            .iter()
            .map(|s| s["span_id"].as_str().expect("span_id").to_string())
            .collect();
        let want: BTreeSet<String> = spans.iter().map(SpanId::to_hex).collect();
        assert_eq!(got, want, "GET {base}: the spans stored are the spans sent");
        assert_eq!(
            detail["trace"]["span_count"].as_u64(),
            Some(want.len() as u64),
            "GET {base}: span_count"
        );
        let Some(tree) = read(format!("{base}/tree?project={project}"), this) else {
            return;
        };
        assert_eq!(
            tree["spans"].as_array().map(Vec::len),
            Some(want.len()),
            "GET {base}/tree: one node per span"
        );
        if read(format!("{base}/export?project={project}"), this).is_none() {
            return;
        }
        let first = spans.iter().next().expect("a trace has a span").to_hex();
        if read(format!("{base}/spans/{first}?project={project}"), this).is_none() {
            return;
        }
    }
    let whole_project = None;
    let Some(list) = read(format!("/api/v1/traces?project={project}"), whole_project) else {
        return;
    };
    assert_eq!(
        list["items"].as_array().map(Vec::len),
        Some(traces.len().min(spanlens_store::DEFAULT_PAGE_SIZE as usize)),
        "GET /api/v1/traces lists every trace stored"
    );
    if read(format!("/api/v1/sessions?project={project}"), whole_project).is_none() {
        return;
    }
    let _ = read(
        format!("/api/v1/metrics/model?project={project}"),
        whole_project,
    );
}
