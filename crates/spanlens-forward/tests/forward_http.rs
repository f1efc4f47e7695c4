//! The forwarder over HTTP against a real receiver on 127.0.0.1 (plain std::net, one
//! connection at a time, each answered and closed).

use flate2::read::GzDecoder;
use spanlens_forward::{DiskQueue, Forwarder, HttpConfig, HttpTransport, QueueConfig, RetryPolicy};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
struct Seen {
    headers: Vec<(String, String)>,
    /// As sent on the wire.
    raw: Vec<u8>,
    /// After undoing `content-encoding: gzip`.
    body: Vec<u8>,
    at: Instant,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
}

fn ok() -> Reply {
    Reply {
        status: 200,
        headers: Vec::new(),
        body: "{}".into(),
    }
}

fn status(status: u16, body: &str) -> Reply {
    Reply {
        status,
        headers: Vec::new(),
        body: body.into(),
    }
}

type Script = Box<dyn FnMut(usize, &Seen) -> Reply + Send>;

#[derive(Clone)]
struct Receiver {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Receiver {
    fn start(listener: TcpListener, mut script: Script) -> Receiver {
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let _ = serve(stream, &mut script, &log);
            }
        });
        Receiver { addr, seen }
    }

    fn url(&self) -> String {
        format!("http://{}/v1/traces", self.addr)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn bodies(&self) -> Vec<Vec<u8>> {
        self.seen().into_iter().map(|s| s.body).collect()
    }
}

fn serve(stream: TcpStream, script: &mut Script, log: &Mutex<Vec<Seen>>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    assert!(
        line.starts_with("POST /v1/traces "),
        "request line {line:?}"
    );
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        let (name, value) = trimmed.split_once(':').expect("a header");
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.parse().unwrap())
        .expect("content-length");
    let mut raw = vec![0u8; length];
    reader.read_exact(&mut raw)?;
    let gzipped = headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("content-encoding") && v == "gzip");
    let body = if gzipped {
        let mut out = Vec::new();
        GzDecoder::new(&raw[..]).read_to_end(&mut out)?;
        out
    } else {
        raw.clone()
    };
    let seen = Seen {
        headers,
        raw,
        body,
        at: Instant::now(),
    };
    let index = {
        let mut log = log.lock().unwrap();
        log.push(seen.clone());
        log.len() - 1
    };
    let reply = script(index, &seen);
    let mut out = format!(
        "HTTP/1.1 {} X\r\ncontent-length: {}\r\nconnection: close\r\n",
        reply.status,
        reply.body.len()
    );
    for (name, value) in &reply.headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(&reply.body);
    let mut stream = stream;
    stream.write_all(out.as_bytes())?;
    stream.flush()
}

/// A loopback address with nothing listening on it (yet).
fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn bind_again(addr: SocketAddr) -> TcpListener {
    for _ in 0..100 {
        if let Ok(listener) = TcpListener::bind(addr) {
            return listener;
        }
        thread::sleep(Duration::from_millis(20));
    }
    panic!("could not bind {addr} again");
}

fn quick_policy() -> RetryPolicy {
    RetryPolicy {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(200),
        max_retry_after: Duration::from_secs(5),
    }
}

fn open_queue(dir: &Path) -> DiskQueue {
    DiskQueue::open(QueueConfig::new(dir)).unwrap()
}

fn forwarder(dir: &Path, config: HttpConfig, policy: RetryPolicy) -> Forwarder {
    let transport = HttpTransport::new(config).unwrap();
    Forwarder::spawn("test".into(), open_queue(dir), Box::new(transport), policy).unwrap()
}

fn json(url: String) -> HttpConfig {
    let mut config = HttpConfig::new(url, "application/json");
    config.timeout = Duration::from_secs(3);
    config
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(15);
    while !done() {
        assert!(Instant::now() < end, "timed out waiting until {what}");
        thread::sleep(Duration::from_millis(5));
    }
}

fn numbered(i: usize) -> Vec<u8> {
    format!("{{\"batch\":{i}}}").into_bytes()
}

#[test]
fn every_body_is_delivered_in_order_with_its_headers() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(
        TcpListener::bind("127.0.0.1:0").unwrap(),
        Box::new(|_, _| ok()),
    );
    let mut config = json(receiver.url());
    config
        .headers
        .push(("authorization".into(), "Bearer secret".into()));
    let fwd = forwarder(dir.path(), config, quick_policy());
    for i in 0..20 {
        fwd.enqueue(numbered(i));
    }
    wait_until("20 delivered", || fwd.counters().sent == 20);
    assert_eq!(receiver.bodies(), (0..20).map(numbered).collect::<Vec<_>>());
    let first = &receiver.seen()[0];
    assert_eq!(first.header("authorization"), Some("Bearer secret"));
    assert_eq!(first.header("content-type"), Some("application/json"));
    assert_eq!(first.header("content-encoding"), None);
    let counters = fwd.counters();
    assert_eq!((counters.retried, counters.rejected), (0, 0));
    assert_eq!((counters.queued_records, counters.queued_bytes), (0, 0));
    assert_eq!(counters.lag, None);
    assert!(counters.last_success.is_some());
    assert_eq!(counters.last_error, None);
    fwd.shutdown(Duration::from_secs(2));
}

#[test]
fn a_429_with_retry_after_is_waited_out_then_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(
        TcpListener::bind("127.0.0.1:0").unwrap(),
        Box::new(|index, _| match index {
            0 => Reply {
                status: 429,
                headers: vec![("retry-after", "1".into())],
                body: "slow down".into(),
            },
            _ => ok(),
        }),
    );
    let fwd = forwarder(dir.path(), json(receiver.url()), quick_policy());
    fwd.enqueue(numbered(1));
    wait_until("delivered", || fwd.counters().sent == 1);
    let seen = receiver.seen();
    assert_eq!(seen.len(), 2);
    let gap = seen[1].at - seen[0].at;
    assert!(gap >= Duration::from_secs(1), "retried after {gap:?}");
    assert!(gap < Duration::from_secs(3), "retried after {gap:?}");
    let counters = fwd.counters();
    assert_eq!(counters.retried, 1);
    assert_eq!(counters.last_error.as_deref(), Some("HTTP 429: slow down"));
    fwd.shutdown(Duration::from_secs(2));
}

#[test]
fn server_errors_are_retried_with_a_growing_backoff() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(
        TcpListener::bind("127.0.0.1:0").unwrap(),
        Box::new(|index, _| if index < 4 { status(500, "oops") } else { ok() }),
    );
    let policy = RetryPolicy {
        initial: Duration::from_millis(40),
        max: Duration::from_secs(1),
        max_retry_after: Duration::from_secs(5),
    };
    let fwd = forwarder(dir.path(), json(receiver.url()), policy);
    fwd.enqueue(numbered(7));
    wait_until("delivered", || fwd.counters().sent == 1);
    let seen = receiver.seen();
    assert_eq!(seen.len(), 5);
    assert!(seen.iter().all(|s| s.body == numbered(7)));
    // Each wait is at least half its doubled step: 40, 80, 160, 320 ms.
    for (i, pair) in seen.windows(2).enumerate() {
        let gap = pair[1].at - pair[0].at;
        let floor = Duration::from_millis(20 << i);
        assert!(gap >= floor, "wait {i} was {gap:?}, below {floor:?}");
    }
    let counters = fwd.counters();
    assert_eq!(counters.retried, 4);
    assert_eq!(counters.rejected, 0);
    assert_eq!(counters.last_error.as_deref(), Some("HTTP 500: oops"));
    fwd.shutdown(Duration::from_secs(2));
}

#[test]
fn a_400_is_rejected_counted_and_not_sent_again() {
    let dir = tempfile::tempdir().unwrap();
    let answer = format!("invalid span: {}", "z".repeat(400));
    let reply = answer.clone();
    let receiver = Receiver::start(
        TcpListener::bind("127.0.0.1:0").unwrap(),
        Box::new(move |_, seen| {
            if seen.body == numbered(2) {
                status(400, &reply)
            } else {
                ok()
            }
        }),
    );
    let fwd = forwarder(dir.path(), json(receiver.url()), quick_policy());
    for i in 1..=3 {
        fwd.enqueue(numbered(i));
    }
    wait_until("all answered", || {
        let c = fwd.counters();
        c.sent + c.rejected == 3
    });
    thread::sleep(Duration::from_millis(100));
    let counters = fwd.counters();
    assert_eq!(
        (counters.sent, counters.rejected, counters.retried),
        (2, 1, 0)
    );
    assert_eq!(counters.queued_records, 0);
    assert_eq!(
        receiver.bodies(),
        vec![numbered(1), numbered(2), numbered(3)],
        "the rejected body was sent once"
    );
    let expected: String = format!("HTTP 400: {}", answer.chars().take(200).collect::<String>());
    assert_eq!(counters.last_error.as_deref(), Some(expected.as_str()));
    fwd.shutdown(Duration::from_secs(2));
}

#[test]
fn a_receiver_down_at_first_gets_everything_once_it_is_up() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let fwd = forwarder(
        dir.path(),
        json(format!("http://{addr}/v1/traces")),
        quick_policy(),
    );
    for i in 0..10 {
        fwd.enqueue(numbered(i));
    }
    wait_until("connection refused twice", || fwd.counters().retried >= 2);
    let counters = fwd.counters();
    assert_eq!(counters.sent, 0);
    assert_eq!(counters.queued_records, 10);
    assert!(counters.lag.is_some());
    assert!(counters.last_error.unwrap().contains(&addr.to_string()));
    let receiver = Receiver::start(bind_again(addr), Box::new(|_, _| ok()));
    wait_until("10 delivered", || fwd.counters().sent == 10);
    assert_eq!(receiver.bodies(), (0..10).map(numbered).collect::<Vec<_>>());
    fwd.shutdown(Duration::from_secs(2));
}

#[test]
fn a_restart_with_a_queue_left_on_disk_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let url = format!("http://{addr}/v1/traces");
    let first = forwarder(dir.path(), json(url.clone()), quick_policy());
    for i in 0..20 {
        first.enqueue(numbered(i));
    }
    wait_until("20 on disk", || first.counters().queued_records == 20);
    first.shutdown(Duration::from_secs(2));

    let second = forwarder(dir.path(), json(url), quick_policy());
    assert_eq!(second.counters().queued_records, 20, "the queue survived");
    for i in 20..30 {
        second.enqueue(numbered(i));
    }
    let receiver = Receiver::start(bind_again(addr), Box::new(|_, _| ok()));
    wait_until("all 30 arrived", || {
        let bodies = receiver.bodies();
        (0..30).all(|i| bodies.contains(&numbered(i)))
    });
    wait_until("queue empty", || second.counters().queued_records == 0);
    let bodies = receiver.bodies();
    // Order is kept (duplicates, allowed at least once, could only repeat a body already seen).
    let mut firsts: Vec<Vec<u8>> = Vec::new();
    for body in bodies {
        if !firsts.contains(&body) {
            firsts.push(body);
        }
    }
    assert_eq!(firsts, (0..30).map(numbered).collect::<Vec<_>>());
    second.shutdown(Duration::from_secs(2));
}

#[test]
fn gzip_bodies_arrive_as_they_were() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(
        TcpListener::bind("127.0.0.1:0").unwrap(),
        Box::new(|_, _| ok()),
    );
    let mut config = json(receiver.url());
    config.gzip = true;
    let fwd = forwarder(dir.path(), config, quick_policy());
    let big = format!("{{\"spans\":[{}]}}", "{\"name\":\"chat\"},".repeat(500)).into_bytes();
    fwd.enqueue(big.clone());
    fwd.enqueue(b"{}".to_vec());
    wait_until("delivered", || fwd.counters().sent == 2);
    let seen = receiver.seen();
    assert_eq!(seen[0].header("content-encoding"), Some("gzip"));
    assert_eq!(seen[0].body, big);
    assert!(seen[0].raw.len() < big.len() / 10, "compressed on the wire");
    assert_eq!(seen[1].body, b"{}");
    fwd.shutdown(Duration::from_secs(2));
}

#[test]
fn enqueue_never_blocks_while_the_destination_hangs() {
    let dir = tempfile::tempdir().unwrap();
    // A black hole: connections are accepted and held, never read or answered.
    let hole = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = hole.local_addr().unwrap();
    thread::spawn(move || {
        let mut held = Vec::new();
        for stream in hole.incoming() {
            held.push(stream);
        }
    });
    let queue = DiskQueue::open(QueueConfig {
        dir: dir.path().to_path_buf(),
        max_bytes: 1 << 20,
        segment_bytes: 64 << 10,
    })
    .unwrap();
    let mut config = json(format!("http://{addr}/v1/traces"));
    config.timeout = Duration::from_secs(2);
    let fwd = Forwarder::spawn_with_capacity(
        "black-hole".into(),
        queue,
        Box::new(HttpTransport::new(config).unwrap()),
        quick_policy(),
        16,
    )
    .unwrap();
    let n = 20_000;
    let bodies: Vec<Vec<u8>> = (0..n).map(|i| format!("{i:0512}").into_bytes()).collect();
    let mut slowest = Duration::ZERO;
    let start = Instant::now();
    for body in bodies {
        let t = Instant::now();
        fwd.enqueue(body);
        slowest = slowest.max(t.elapsed());
    }
    let average = start.elapsed() / n;
    eprintln!("enqueue: {average:?} on average, slowest {slowest:?}");
    assert!(
        average < Duration::from_micros(50),
        "{average:?} per enqueue"
    );
    wait_until("every body accounted for", || {
        let c = fwd.counters();
        c.queued_records + c.dropped + c.dropped_overflow == u64::from(n)
    });
    let counters = fwd.counters();
    assert!(counters.dropped_overflow > 0, "{counters:?}");
    assert_eq!((counters.sent, counters.failed_writes), (0, 0));
    // The delivery thread is stuck in a send; shutdown still keeps its deadline.
    let t = Instant::now();
    fwd.shutdown(Duration::from_millis(200));
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
}

#[test]
fn a_restart_sends_nothing_already_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(
        TcpListener::bind("127.0.0.1:0").unwrap(),
        Box::new(|_, _| ok()),
    );
    let first = forwarder(dir.path(), json(receiver.url()), quick_policy());
    for i in 0..10 {
        first.enqueue(numbered(i));
    }
    wait_until("10 delivered", || first.counters().sent == 10);
    first.shutdown(Duration::from_secs(2));

    let second = forwarder(dir.path(), json(receiver.url()), quick_policy());
    for i in 10..15 {
        second.enqueue(numbered(i));
    }
    wait_until("5 more delivered", || second.counters().sent == 5);
    thread::sleep(Duration::from_millis(100));
    assert_eq!(receiver.bodies(), (0..15).map(numbered).collect::<Vec<_>>());
    second.shutdown(Duration::from_secs(2));
}

#[test]
fn shutdown_cuts_a_long_wait_short_and_keeps_the_record() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(
        TcpListener::bind("127.0.0.1:0").unwrap(),
        Box::new(|_, _| Reply {
            status: 503,
            headers: vec![("retry-after", "60".into())],
            body: String::new(),
        }),
    );
    let policy = RetryPolicy {
        max_retry_after: Duration::from_secs(120),
        ..quick_policy()
    };
    let fwd = forwarder(dir.path(), json(receiver.url()), policy);
    fwd.enqueue(numbered(1));
    wait_until("the first attempt answered", || fwd.counters().retried == 1);
    let t = Instant::now();
    fwd.shutdown(Duration::from_secs(10));
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "shutdown took {:?}",
        t.elapsed()
    );
    assert_eq!(receiver.seen().len(), 1);
    let queue = open_queue(dir.path());
    assert_eq!(queue.peek().unwrap().unwrap().body, numbered(1));
}

#[test]
fn a_panicking_transport_is_retried_not_fatal() {
    struct Flaky(u32, Arc<Mutex<Vec<Vec<u8>>>>);
    impl spanlens_forward::Transport for Flaky {
        fn send(&mut self, body: &[u8]) -> spanlens_forward::Outcome {
            self.0 += 1;
            if self.0 == 1 {
                panic!("first call fails");
            }
            self.1.lock().unwrap().push(body.to_vec());
            spanlens_forward::Outcome::Delivered
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let fwd = Forwarder::spawn(
        "flaky".into(),
        open_queue(dir.path()),
        Box::new(Flaky(0, got.clone())),
        quick_policy(),
    )
    .unwrap();
    fwd.enqueue(numbered(1));
    wait_until("delivered", || fwd.counters().sent == 1);
    assert_eq!(*got.lock().unwrap(), vec![numbered(1)]);
    assert_eq!(fwd.counters().retried, 1);
    fwd.shutdown(Duration::from_secs(2));
}
