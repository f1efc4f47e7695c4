//! `spanlens::init` end to end: global tracer, OTLP export to a local receiver, flush on guard drop.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;

#[test]
fn init_exports_through_the_global_tracer_and_flushes_on_drop() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut r = BufReader::new(stream.try_clone().unwrap());
        let mut len = 0usize;
        loop {
            let mut h = String::new();
            r.read_line(&mut h).unwrap();
            if h.trim().is_empty() {
                break;
            }
            if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body).unwrap();
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut raw)
            .unwrap();
        let mut s = stream;
        s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .unwrap();
        tx.send(raw).unwrap();
    });
    let endpoint = format!("http://{addr}");
    let cfg = spanlens::Config::from_lookup(|k| match k {
        "SPANLENS_ENDPOINT" => Some(endpoint.clone()),
        "OTEL_SERVICE_NAME" => Some("init-test".into()),
        "SPANLENS_FLUSH_INTERVAL_MS" => Some("60000".into()),
        _ => None,
    });
    assert!(cfg.problems.is_empty(), "{:?}", cfg.problems);
    let guard = spanlens::init(cfg);
    {
        let root = spanlens::span("job")
            .kind(spanlens::SpanKind::Pipeline)
            .start();
        root.in_scope(|| drop(spanlens::span("step").start()));
    }
    drop(guard); // flushes the batch before returning
    let raw = rx
        .recv_timeout(std::time::Duration::from_secs(5))
        .expect("batch exported on guard drop");
    let req = spanlens_core::otlp::decode_protobuf(&raw).unwrap();
    let spans = spanlens_core::otlp::to_canonical(&req, &Default::default()).spans;
    assert_eq!(spans.len(), 2);
    assert!(spans
        .iter()
        .all(|s| s.service.as_deref() == Some("init-test")));
}
