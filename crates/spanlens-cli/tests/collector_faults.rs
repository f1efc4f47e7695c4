//! Faults with several collectors on one PostgreSQL, under load: a collector killed with
//! `kill -9`, and PostgreSQL restarted. Nothing a collector acknowledged may be lost, the
//! others keep serving, and collectors answer 503 while the database is away and recover by
//! themselves when it is back.
//!
//! Needs `SPANLENS_TEST_POSTGRES` and `SPANLENS_TEST_POSTGRES_CLUSTER` (`15 main`: the cluster
//! the restart test restarts with `pg_ctlcluster`); `scripts/postgres-test-server` prints both.

#![cfg(feature = "postgres")]

mod common;

use common::{agent_trace, otlp_request, Endpoint, PgDatabase, Server, SPANS_PER_TRACE};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The fault tests take turns: one restarts the database the other uses.
static SERIAL: Mutex<()> = Mutex::new(());

/// What a sender saw: traces acknowledged (200), and answers of each kind.
#[derive(Default)]
struct Tally {
    acked: Mutex<BTreeSet<u64>>,
    ok: AtomicU64,
    busy: AtomicU64,
    refused: AtomicU64,
}

/// Sends whole traces to `server` until `stop`, numbered from `first` by `step`; records which
/// were acknowledged. Connection errors (a dead collector) and 503s are counted, not retried:
/// a load balancer would send the next request elsewhere.
fn send(server: &Endpoint, first: u64, step: u64, stop: &AtomicBool, tally: &Tally) {
    let url = format!("{}/v1/traces", server.url);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let base = 1_767_225_600_000_000_000;
    let mut t = first;
    while !stop.load(Ordering::SeqCst) {
        let body = otlp_request(&agent_trace(t, base));
        match agent
            .post(&url)
            .header("content-type", "application/json")
            .send(&body[..])
        {
            Ok(r) if r.status().as_u16() == 200 => {
                tally.acked.lock().unwrap().insert(t);
                tally.ok.fetch_add(1, Ordering::SeqCst);
            }
            Ok(r) if r.status().as_u16() == 503 => {
                tally.busy.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(50));
            }
            Ok(r) => panic!("POST {url}: unexpected {}", r.status()),
            Err(_) => {
                tally.refused.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        t += step;
    }
}

/// Every acknowledged trace is stored whole.
fn all_acked_are_stored(reader: &Endpoint, acked: &BTreeSet<u64>) {
    assert!(!acked.is_empty());
    for t in acked {
        let id = format!("{:032x}", 0x5eed_0000_0000u64 + t);
        let d = reader.get(&format!("/api/v1/traces/{id}?analysis=false"));
        assert_eq!(
            d["spans"].as_array().map(Vec::len),
            Some(SPANS_PER_TRACE as usize),
            "acknowledged trace {t} ({id}) is not stored whole"
        );
    }
}

fn wait_until(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_collector_killed_under_load_loses_nothing_it_acknowledged() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let db = PgDatabase::create("kill");
    let mut collectors: Vec<Server> = (0..3).map(|_| Server::start_store(&db.uri, &[])).collect();
    let endpoints: Vec<Endpoint> = collectors.iter().map(Server::endpoint).collect();
    let stop = AtomicBool::new(false);
    let tallies: Vec<Tally> = (0..3).map(|_| Tally::default()).collect();
    let after_kill = AtomicU64::new(0);
    std::thread::scope(|scope| {
        for (c, server) in endpoints.iter().enumerate() {
            for k in 0..2u64 {
                let (stop, tally) = (&stop, &tallies[c]);
                scope.spawn(move || send(server, c as u64 * 2 + k, 6, stop, tally));
            }
        }
        wait_until("some load on every collector", 60, || {
            tallies.iter().all(|t| t.ok.load(Ordering::SeqCst) >= 20)
        });
        // kill -9 the middle collector while it is taking requests.
        let pid = collectors[1].child.as_ref().unwrap().id();
        let killed = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let before = tallies[0].ok.load(Ordering::SeqCst) + tallies[2].ok.load(Ordering::SeqCst);
        wait_until("the others to keep serving", 60, || {
            let now = tallies[0].ok.load(Ordering::SeqCst) + tallies[2].ok.load(Ordering::SeqCst);
            now >= before + 40
        });
        after_kill.store(
            tallies[0].ok.load(Ordering::SeqCst) + tallies[2].ok.load(Ordering::SeqCst) - before,
            Ordering::SeqCst,
        );
        stop.store(true, Ordering::SeqCst);
    });
    assert!(
        tallies[1].refused.load(Ordering::SeqCst) > 0,
        "the killed collector refused"
    );
    assert!(after_kill.load(Ordering::SeqCst) >= 40);
    let _ = collectors[1].child.take().map(|mut c| c.wait());
    let acked: BTreeSet<u64> = tallies
        .iter()
        .flat_map(|t| t.acked.lock().unwrap().clone())
        .collect();
    all_acked_are_stored(&endpoints[0], &acked);
    eprintln!(
        "kill -9: {} traces acknowledged ({} by the killed collector, {} by the others after the kill), \
         {} refused by the dead one; every acknowledged trace stored whole",
        acked.len(),
        tallies[1].ok.load(Ordering::SeqCst),
        after_kill.load(Ordering::SeqCst),
        tallies[1].refused.load(Ordering::SeqCst)
    );
}

#[test]
fn collectors_answer_503_while_postgres_restarts_and_recover_by_themselves() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let cluster = std::env::var("SPANLENS_TEST_POSTGRES_CLUSTER").unwrap_or_else(|_| {
        panic!(
            "SPANLENS_TEST_POSTGRES_CLUSTER is not set (`15 main`): run scripts/postgres-test-server"
        )
    });
    let cluster: Vec<&str> = cluster.split_whitespace().collect();
    let db = PgDatabase::create("restart");
    let collectors: Vec<Server> = (0..2).map(|_| Server::start_store(&db.uri, &[])).collect();
    let endpoints: Vec<Endpoint> = collectors.iter().map(Server::endpoint).collect();
    let stop = AtomicBool::new(false);
    let tallies: Vec<Tally> = (0..2).map(|_| Tally::default()).collect();
    std::thread::scope(|scope| {
        for (c, server) in endpoints.iter().enumerate() {
            let (stop, tally) = (&stop, &tallies[c]);
            scope.spawn(move || send(server, c as u64, 2, stop, tally));
        }
        wait_until("some load", 60, || {
            tallies.iter().all(|t| t.ok.load(Ordering::SeqCst) >= 20)
        });
        let pg = |action: &str| {
            let o = std::process::Command::new("pg_ctlcluster")
                .args([cluster[0], cluster[1], action])
                .output()
                .expect("run pg_ctlcluster");
            assert!(
                o.status.success(),
                "pg_ctlcluster {action}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        };
        pg("stop");
        let busy_before: u64 = tallies.iter().map(|t| t.busy.load(Ordering::SeqCst)).sum();
        wait_until("503s while PostgreSQL is away", 30, || {
            tallies
                .iter()
                .map(|t| t.busy.load(Ordering::SeqCst))
                .sum::<u64>()
                > busy_before + 4
        });
        let ok_while_down: u64 = tallies.iter().map(|t| t.ok.load(Ordering::SeqCst)).sum();
        std::thread::sleep(Duration::from_secs(2));
        let ok_still: u64 = tallies.iter().map(|t| t.ok.load(Ordering::SeqCst)).sum();
        assert_eq!(
            ok_while_down, ok_still,
            "a request was acknowledged while the database was down"
        );
        let at_restart: Vec<u64> = tallies
            .iter()
            .map(|t| t.ok.load(Ordering::SeqCst))
            .collect();
        pg("start");
        wait_until("both collectors to accept again", 90, || {
            tallies
                .iter()
                .zip(&at_restart)
                .all(|(t, before)| t.ok.load(Ordering::SeqCst) >= before + 10)
        });
        stop.store(true, Ordering::SeqCst);
    });
    for t in &tallies {
        assert_eq!(
            t.refused.load(Ordering::SeqCst),
            0,
            "a collector stopped answering"
        );
    }
    let acked: BTreeSet<u64> = tallies
        .iter()
        .flat_map(|t| t.acked.lock().unwrap().clone())
        .collect();
    all_acked_are_stored(&endpoints[1], &acked);
    eprintln!(
        "PostgreSQL restart: {} traces acknowledged, {} answers 503 while it was away, none \
         acknowledged then; every acknowledged trace stored whole",
        acked.len(),
        tallies
            .iter()
            .map(|t| t.busy.load(Ordering::SeqCst))
            .sum::<u64>()
    );
}
