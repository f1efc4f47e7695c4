//! The OTLP/HTTP exporter against an in-test HTTP server that decodes what it receives:
#![allow(clippy::vec_box)] // the exporter API takes boxed records
//! protobuf + gzip on the wire, headers, retries on 429/503 honouring Retry-After, no retry on 400.

use prost::Message;
use spanlens::export::otlp::{OtlpConfig, OtlpHttpExporter};
use spanlens::export::{ExportError, SpanExporter};
use spanlens::processor::{BatchConfig, BatchProcessor, SpanProcessor};
use spanlens::{Resource, SpanKind, Tracer};
use spanlens_core::otlp::proto::ExportTraceServiceRequest;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Received {
    headers: Vec<(String, String)>,
    request: ExportTraceServiceRequest,
    at: Instant,
}

/// Serves one scripted response per request: (status, extra headers).
fn server(
    script: Vec<(u16, Vec<(&'static str, &'static str)>)>,
) -> (String, Arc<Mutex<Vec<Received>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1/traces", listener.local_addr().unwrap());
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = got.clone();
    std::thread::spawn(move || {
        for (status, extra) in script {
            let Ok((stream, _)) = listener.accept() else {
                return;
            };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            assert!(line.starts_with("POST /v1/traces "), "{line}");
            let mut headers = Vec::new();
            loop {
                let mut h = String::new();
                reader.read_line(&mut h).unwrap();
                let h = h.trim_end();
                if h.is_empty() {
                    break;
                }
                let (k, v) = h.split_once(':').unwrap();
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
            let len: usize = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .unwrap()
                .1
                .parse()
                .unwrap();
            let mut body = vec![0; len];
            reader.read_exact(&mut body).unwrap();
            let gz = headers
                .iter()
                .any(|(k, v)| k == "content-encoding" && v == "gzip");
            let raw = if gz {
                let mut out = Vec::new();
                flate2::read::GzDecoder::new(&body[..])
                    .read_to_end(&mut out)
                    .unwrap();
                out
            } else {
                body
            };
            let request = ExportTraceServiceRequest::decode(&raw[..]).expect("valid OTLP protobuf");
            sink.lock().unwrap().push(Received {
                headers,
                request,
                at: Instant::now(),
            });
            let mut resp =
                format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n");
            for (k, v) in extra {
                resp.push_str(&format!("{k}: {v}\r\n"));
            }
            resp.push_str("\r\n");
            let mut s = stream;
            s.write_all(resp.as_bytes()).unwrap();
        }
    });
    (url, got)
}

fn spans(n: usize) -> Vec<Box<spanlens::SpanData>> {
    let mem = spanlens::processor::InMemoryProcessor::new();
    let t = Tracer::builder().with_processor(mem.clone()).build();
    let root = t.span("pipeline").kind(SpanKind::Pipeline).start();
    root.in_scope(|| {
        for i in 1..n {
            let _s = spanlens::span("llm")
                .kind(SpanKind::Llm)
                .attr("gen_ai.request.model", "gpt-4o")
                .attr("i", i)
                .start();
        }
    });
    drop(root);
    mem.spans().into_iter().map(Box::new).collect()
}

fn exporter(url: &str) -> OtlpHttpExporter {
    OtlpHttpExporter::new(OtlpConfig {
        endpoint: url.to_string(),
        headers: vec![("authorization".into(), "Bearer k".into())],
        resource: Resource::new("exporter-test"),
        initial_backoff: Duration::from_millis(10),
        ..Default::default()
    })
}

#[test]
fn sends_gzipped_protobuf_with_headers_and_resource() {
    let (url, got) = server(vec![(200, vec![])]);
    let batch = spans(3);
    exporter(&url).export(&batch).unwrap();
    let got = got.lock().unwrap();
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert!(r
        .headers
        .contains(&("content-type".into(), "application/x-protobuf".into())));
    assert!(r
        .headers
        .contains(&("content-encoding".into(), "gzip".into())));
    assert!(r
        .headers
        .contains(&("authorization".into(), "Bearer k".into())));
    let rs = &r.request.resource_spans[0];
    let service = &rs.resource.as_ref().unwrap().attributes[0];
    assert_eq!(service.key, "service.name");
    let sent = &rs.scope_spans[0].spans;
    assert_eq!(sent.len(), 3);
    let canonical = spanlens_core::otlp::to_canonical(&r.request, &Default::default()).spans;
    assert!(canonical
        .iter()
        .any(|s| s.kind == spanlens_core::SpanKind::Pipeline));
    assert_eq!(
        canonical
            .iter()
            .filter(|s| s.kind == spanlens_core::SpanKind::Llm)
            .count(),
        2
    );
    assert_eq!(canonical[0].service.as_deref(), Some("exporter-test"));
}

#[test]
fn retries_throttling_and_honours_retry_after() {
    let (url, got) = server(vec![
        (429, vec![("retry-after", "1")]),
        (503, vec![]),
        (200, vec![]),
    ]);
    exporter(&url).export(&spans(2)).unwrap();
    let got = got.lock().unwrap();
    assert_eq!(got.len(), 3, "two retries then success");
    let waited = got[1].at.duration_since(got[0].at);
    assert!(
        waited >= Duration::from_millis(950),
        "Retry-After: 1 honoured, waited {waited:?}"
    );
}

#[test]
fn does_not_retry_other_client_errors() {
    let (url, got) = server(vec![(400, vec![]), (200, vec![])]);
    let err = exporter(&url).export(&spans(1)).unwrap_err();
    assert!(
        matches!(err, ExportError::Rejected(ref m) if m.contains("400")),
        "{err}"
    );
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(got.lock().unwrap().len(), 1);
}

#[test]
fn gives_up_after_the_retry_budget_and_reports() {
    let (url, got) = server(vec![(503, vec![]); 3]);
    let mut e = OtlpHttpExporter::new(OtlpConfig {
        endpoint: url,
        max_retries: 2,
        initial_backoff: Duration::from_millis(5),
        ..Default::default()
    });
    let err = e.export(&spans(1)).unwrap_err();
    assert!(
        matches!(err, ExportError::Failed(ref m) if m.contains("3 attempts")),
        "{err}"
    );
    assert_eq!(got.lock().unwrap().len(), 3);
}

#[test]
fn batch_processor_delivers_through_the_exporter_and_counts_failures() {
    let (url, got) = server(vec![(200, vec![]), (400, vec![])]);
    let p = BatchProcessor::new(
        exporter(&url),
        BatchConfig {
            max_queue: 100,
            batch_size: 10,
            flush_interval: Duration::from_secs(60),
        },
    );
    for s in spans(4) {
        p.on_end(s);
    }
    p.force_flush().unwrap();
    assert_eq!(p.stats().exported, 4);
    for s in spans(2) {
        p.on_end(s);
    }
    p.shutdown().unwrap();
    assert_eq!(
        p.stats().failed,
        2,
        "a rejected batch is counted, not raised"
    );
    assert_eq!(got.lock().unwrap().len(), 2);
}

/// The export counters a request carried, read as the server reads them.
fn counters(r: &Received) -> spanlens_core::sdk_report::SdkCounters {
    let n = spanlens_core::otlp::to_canonical(&r.request, &Default::default());
    assert_eq!(n.sdk_reports.len(), 1, "one resource, one report");
    for s in &n.spans {
        assert!(
            !s.resource.keys().any(|k| k.starts_with("spanlens.sdk.")),
            "the counters are not kept on the spans: {:?}",
            s.resource
        );
    }
    n.sdk_reports[0].counters.clone()
}

/// Drops are never silent: every batch carries the processor's counters as resource
/// attributes, and a loss with no batch to ride on is sent alone at the next flush.
#[test]
fn export_counters_ride_with_the_batches_and_go_alone_after_a_loss() {
    let (url, got) = server(vec![(200, vec![]), (400, vec![]), (200, vec![])]);
    let p = BatchProcessor::new(
        exporter(&url),
        BatchConfig {
            max_queue: 4,
            batch_size: 100,
            flush_interval: Duration::from_secs(60),
        },
    );
    for s in spans(10) {
        p.on_end(s);
    }
    let before = p.stats();
    assert_eq!((before.queued, before.dropped), (4, 6), "{before:?}");
    assert_eq!(
        spanlens::processor::SpanProcessor::batch_stats(&p),
        Some(before)
    );
    p.force_flush().unwrap();
    for s in spans(2) {
        p.on_end(s);
    }
    p.force_flush().unwrap(); // answered 400: two spans lost
    p.force_flush().unwrap(); // nothing queued: the counters alone
    p.shutdown().unwrap(); // nothing new to say: no request
    let got = got.lock().unwrap();
    assert_eq!(got.len(), 3);
    let first = counters(&got[0]);
    assert_eq!(first.instance.len(), 16);
    assert_eq!(
        (first.exported, first.dropped, first.failed, first.queued),
        (0, 6, 0, 4)
    );
    assert_eq!(
        got[0].request.resource_spans[0].scope_spans[0].spans.len(),
        4
    );
    let second = counters(&got[1]);
    assert_eq!((second.exported, second.queued), (4, 2));
    let alone = counters(&got[2]);
    assert!(got[2].request.resource_spans[0].scope_spans.is_empty());
    assert_eq!(
        (alone.exported, alone.dropped, alone.failed, alone.queued),
        (4, 6, 2, 0)
    );
    assert_eq!(
        alone.instance, first.instance,
        "one instance id per exporter"
    );
    let last = p.stats();
    assert_eq!(
        (last.exported, last.dropped, last.failed, last.queued),
        (4, 6, 2, 0)
    );
}
