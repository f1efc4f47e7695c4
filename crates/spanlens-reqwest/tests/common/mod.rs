//! Shared by the integration tests: the repository's Python mock LLM (tests/e2e/mock_llm.py),
//! started once per test binary, and a tracer whose spans stay in memory.

#![allow(dead_code)]

use spanlens::processor::InMemoryProcessor;
use spanlens::{FutureExt, Resource, SpanData, Tracer};
use spanlens_core::SpanId;
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};

/// The mock's first-chunk delay (`FIRST_CHUNK_DELAY_S`), in nanoseconds.
pub const FIRST_CHUNK_DELAY_NS: u64 = 150_000_000;

/// Starts the mock and prints its port; stays up until its standard input closes, which
/// happens when the test process exits (however it exits).
const START: &str = r#"
import sys
sys.path.insert(0, sys.argv[1])
try:
    import mock_llm
except Exception as e:
    print(f"IMPORT-FAILED {e!r}", flush=True)
    sys.exit(3)
m = mock_llm.MockLLM().start()
print(m.port, flush=True)
sys.stdin.read()
"#;

struct Mock {
    port: u16,
    _child: Child,
    _stdin: ChildStdin,
}

/// Base URL of the mock (`http://127.0.0.1:PORT`), started on first use.
pub fn mock_url() -> String {
    static MOCK: OnceLock<Mutex<Mock>> = OnceLock::new();
    let m = MOCK.get_or_init(|| Mutex::new(start_mock()));
    format!("http://127.0.0.1:{}", m.lock().unwrap().port)
}

fn start_mock() -> Mock {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/e2e");
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(START)
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("these tests need python3 to run the mock LLM ({dir}/mock_llm.py): {e}")
        });
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("reading the mock LLM's port");
    let port = line.trim().parse().unwrap_or_else(|_| {
        panic!(
            "python3 could not start the mock LLM from {dir}/mock_llm.py: {:?}",
            line.trim()
        )
    });
    let stdin = child.stdin.take().unwrap();
    Mock {
        port,
        _child: child,
        _stdin: stdin,
    }
}

/// A tracer keeping its spans in memory.
pub fn tracer() -> (Tracer, InMemoryProcessor) {
    let mem = InMemoryProcessor::new();
    let t = Tracer::builder().with_processor(mem.clone()).build();
    (t, mem)
}

/// Runs `f` under a fresh root span of `t`; returns its output and the root's id.
pub async fn under_root<F: Future>(t: &Tracer, f: F) -> (F::Output, SpanId) {
    let root = t.span("test").start();
    let id = root.span_id().unwrap();
    (f.instrument(root).await, id)
}

/// The canonical form of the ended spans, as a server would store them.
pub fn canonical(spans: &[SpanData]) -> Vec<spanlens_core::Span> {
    spanlens::convert::to_canonical(spans, &Resource::new("spanlens-reqwest-tests"))
}

/// The canonical `llm` spans, in end order.
pub fn llm_spans(mem: &InMemoryProcessor) -> Vec<spanlens_core::Span> {
    canonical(&mem.spans())
        .into_iter()
        .filter(|s| s.kind == spanlens_core::SpanKind::Llm)
        .collect()
}

/// Cost in USD of `n` tokens at `per_million` USD per million tokens.
pub fn usd(n: u64, per_million: f64) -> f64 {
    n as f64 * per_million / 1e6
}

/// The mock's ids (`chatcmpl_mock000012`) blanked, so two answers can be compared byte for byte.
pub fn mask_ids(body: &str) -> String {
    let mut out = String::with_capacity(body.len());
    let mut rest = body;
    while let Some(i) = rest.find("_mock") {
        let (head, tail) = rest.split_at(i + 5);
        out.push_str(head);
        let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 {
            out.push('#');
        }
        rest = &tail[digits..];
    }
    out.push_str(rest);
    out
}
