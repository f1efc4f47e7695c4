//! Retries and circuit breakers: the exact events they leave on the current span, and what core
//! makes of them. Backoffs are a few milliseconds, so no clock needs faking.

use spanlens::processor::InMemoryProcessor;
use spanlens::retry::{self, CircuitBreaker, CircuitError, CircuitState, RetryError, RetryPolicy};
use spanlens::{Context, FutureExt, Key, SpanData, SpanEvent, Tracer, Value};
use std::cell::Cell;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn tracer() -> (Tracer, InMemoryProcessor) {
    let mem = InMemoryProcessor::new();
    (Tracer::builder().with_processor(mem.clone()).build(), mem)
}

fn named(spans: &[SpanData], name: &str) -> SpanData {
    let found: Vec<&SpanData> = spans.iter().filter(|s| s.name == name).collect();
    assert_eq!(found.len(), 1, "spans named {name:?}");
    found[0].clone()
}

/// Fast, deterministic backoffs: 1 ms, 2 ms, 4 ms, …
fn tiny(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(50),
        multiplier: 2.0,
        jitter: false,
    }
}

#[derive(Debug, Clone, PartialEq)]
struct ApiError {
    status: u16,
    retry_after: Option<Duration>,
}

impl ApiError {
    fn status(status: u16) -> ApiError {
        ApiError {
            status,
            retry_after: None,
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HTTP {}", self.status)
    }
}

impl RetryError for ApiError {
    fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
    fn is_retryable(&self) -> bool {
        self.status == 429 || self.status >= 500
    }
}

fn attrs(pairs: &[(&'static str, Value)]) -> Vec<(Key, Value)> {
    pairs
        .iter()
        .map(|(k, v)| (Key::from(*k), v.clone()))
        .collect()
}

fn get<'a>(e: &'a SpanEvent, key: &str) -> &'a Value {
    e.attributes
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("{key} missing on event {}: {:?}", e.name, e.attributes))
}

fn int(e: &SpanEvent, key: &str) -> i64 {
    match get(e, key) {
        Value::I64(i) => *i,
        v => panic!("{key} not an integer: {v:?}"),
    }
}

fn names(s: &SpanData) -> Vec<&str> {
    s.events.iter().map(|e| e.name.as_ref()).collect()
}

/// The event's attributes without `key` (for values that depend on timing).
fn without(e: &SpanEvent, key: &str) -> Vec<(Key, Value)> {
    e.attributes
        .iter()
        .filter(|(k, _)| k != key)
        .cloned()
        .collect()
}

#[test]
fn failed_attempts_become_retry_events_then_one_outcome() {
    let (t, mem) = tracer();
    let calls = Cell::new(0);
    let started = Instant::now();
    {
        let root = t.span("root").start();
        let _in = root.enter();
        let out = retry::run_blocking(tiny(4), |attempt| {
            calls.set(calls.get() + 1);
            assert_eq!(attempt, calls.get(), "attempts are numbered from 1");
            match attempt {
                1 => Err(ApiError::status(503)),
                2 => Err(ApiError::status(502)),
                n => Ok(n * 10),
            }
        });
        assert_eq!(out, Ok(30));
    }
    let elapsed_ms = started.elapsed().as_millis() as i64;
    assert_eq!(calls.get(), 3);
    let spans = mem.spans();
    let root = named(&spans, "root");
    assert_eq!(names(&root), ["retry", "retry", "retry.outcome"]);
    assert_eq!(
        root.events[0].attributes,
        attrs(&[
            ("retry.attempt", Value::I64(1)),
            ("error.type", Value::from("ApiError")),
            ("error.message", Value::from("HTTP 503")),
            ("retry.backoff_ms", Value::I64(1)),
        ])
    );
    assert_eq!(
        root.events[1].attributes,
        attrs(&[
            ("retry.attempt", Value::I64(2)),
            ("error.type", Value::from("ApiError")),
            ("error.message", Value::from("HTTP 502")),
            ("retry.backoff_ms", Value::I64(2)),
        ])
    );
    let outcome = &root.events[2];
    assert_eq!(
        without(outcome, "retry.recovery_ms"),
        attrs(&[
            ("retry.attempts", Value::I64(3)),
            ("retry.succeeded", Value::Bool(true)),
        ])
    );
    let recovery = int(outcome, "retry.recovery_ms");
    assert!(
        (3..=elapsed_ms).contains(&recovery),
        "recovery {recovery} ms covers both backoffs (1 + 2 ms) and no more than the run"
    );
    assert!(root.events[0].time <= root.events[1].time && root.events[1].time <= outcome.time);

    // Core keeps the events, attributes and all.
    let c = spanlens::convert::to_canonical(&spans, t.resource());
    let cr = c.iter().find(|s| s.name == "root").unwrap();
    let cn: Vec<&str> = cr.events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(cn, ["retry", "retry", "retry.outcome"]);
    assert_eq!(cr.events[1].attributes["retry.attempt"], 2);
    assert_eq!(cr.events[1].attributes["retry.backoff_ms"], 2);
    assert_eq!(cr.events[1].attributes["error.type"], "ApiError");
    assert_eq!(cr.events[2].attributes["retry.succeeded"], true);
    assert_eq!(cr.events[2].attributes["retry.recovery_ms"], recovery);
}

#[test]
fn exhausted_attempts_record_a_failed_outcome() {
    let (t, mem) = tracer();
    let calls = Cell::new(0u32);
    {
        let root = t.span("root").start();
        let _in = root.enter();
        let out: Result<(), _> = retry::run_blocking(tiny(3), |_| {
            calls.set(calls.get() + 1);
            Err(ApiError::status(500))
        });
        assert_eq!(out, Err(ApiError::status(500)));
    }
    assert_eq!(calls.get(), 3);
    let root = named(&mem.spans(), "root");
    assert_eq!(names(&root), ["retry", "retry", "retry.outcome"]);
    let backoffs: Vec<i64> = root.events[..2]
        .iter()
        .map(|e| int(e, "retry.backoff_ms"))
        .collect();
    assert_eq!(backoffs, [1, 2]);
    assert_eq!(
        root.events[2].attributes,
        attrs(&[
            ("retry.attempts", Value::I64(3)),
            ("retry.succeeded", Value::Bool(false)),
            ("retry.stop_reason", Value::from("exhausted")),
            ("error.type", Value::from("ApiError")),
            ("error.message", Value::from("HTTP 500")),
        ])
    );
}

#[test]
fn errors_that_are_not_retryable_stop_at_once() {
    let (t, mem) = tracer();
    let calls = Cell::new(0u32);
    {
        let root = t.span("root").start();
        let _in = root.enter();
        let out: Result<(), _> = retry::run_blocking(tiny(5), |_| {
            calls.set(calls.get() + 1);
            Err(ApiError::status(400))
        });
        assert!(out.is_err());
    }
    assert_eq!(calls.get(), 1);
    let root = named(&mem.spans(), "root");
    assert_eq!(names(&root), ["retry.outcome"]);
    assert_eq!(
        root.events[0].attributes,
        attrs(&[
            ("retry.attempts", Value::I64(1)),
            ("retry.succeeded", Value::Bool(false)),
            ("retry.stop_reason", Value::from("not_retryable")),
            ("error.type", Value::from("ApiError")),
            ("error.message", Value::from("HTTP 400")),
        ])
    );
}

#[test]
fn should_retry_hook_overrides_the_error_s_own_judgement() {
    let (t, mem) = tracer();
    let calls = Cell::new(0u32);
    {
        let root = t.span("root").start();
        let _in = root.enter();
        // 400 is retried because the hook says so; 503 is not.
        let out = retry::run_blocking_if(
            tiny(5),
            |e: &ApiError| e.status == 400,
            |attempt| {
                calls.set(calls.get() + 1);
                match attempt {
                    1 => Err(ApiError::status(400)),
                    _ => Err::<(), _>(ApiError::status(503)),
                }
            },
        );
        assert_eq!(out, Err(ApiError::status(503)));
    }
    assert_eq!(calls.get(), 2);
    let root = named(&mem.spans(), "root");
    assert_eq!(names(&root), ["retry", "retry.outcome"]);
    assert_eq!(
        get(&root.events[0], "error.message"),
        &Value::from("HTTP 400")
    );
    assert_eq!(
        get(&root.events[1], "retry.stop_reason"),
        &Value::from("not_retryable")
    );
    assert_eq!(int(&root.events[1], "retry.attempts"), 2);
}

#[test]
fn a_server_hint_is_honoured_over_the_computed_backoff() {
    let (t, mem) = tracer();
    let started = Instant::now();
    {
        let root = t.span("root").start();
        let _in = root.enter();
        let out = retry::run_blocking(tiny(3), |attempt| {
            if attempt == 1 {
                Err(ApiError {
                    status: 429,
                    retry_after: Some(Duration::from_millis(30)),
                })
            } else {
                Ok(())
            }
        });
        assert!(out.is_ok());
    }
    assert!(
        started.elapsed() >= Duration::from_millis(30),
        "the hint was waited out"
    );
    let root = named(&mem.spans(), "root");
    assert_eq!(
        root.events[0].attributes,
        attrs(&[
            ("retry.attempt", Value::I64(1)),
            ("error.type", Value::from("ApiError")),
            ("error.message", Value::from("HTTP 429")),
            ("retry.backoff_ms", Value::I64(30)),
            ("retry.retry_after_ms", Value::I64(30)),
        ])
    );
    assert!(int(&root.events[1], "retry.recovery_ms") >= 30);
}

#[test]
fn jittered_backoff_stays_within_the_upper_half() {
    let (t, mem) = tracer();
    {
        let root = t.span("root").start();
        let _in = root.enter();
        let policy = RetryPolicy {
            max_attempts: 6,
            initial_backoff: Duration::from_millis(8),
            max_backoff: Duration::from_millis(8),
            multiplier: 1.0,
            jitter: true,
        };
        let _ = retry::run_blocking(policy, |_| Err::<(), _>("always".to_string()));
    }
    let root = named(&mem.spans(), "root");
    assert_eq!(names(&root).len(), 6, "5 retries and the outcome");
    for e in &root.events[..5] {
        let b = int(e, "retry.backoff_ms");
        assert!((4..=8).contains(&b), "{b}");
        assert_eq!(e.attributes.len(), 3, "a String error has no error.type");
    }
}

#[test]
fn first_try_success_records_nothing() {
    let (t, mem) = tracer();
    {
        let root = t.span("root").start();
        let _in = root.enter();
        assert_eq!(retry::run_blocking(tiny(3), |_| Ok::<_, String>(1)), Ok(1));
    }
    assert!(named(&mem.spans(), "root").events.is_empty());
}

#[test]
fn events_land_on_the_span_current_around_the_retry_not_inside_attempts() {
    let (t, mem) = tracer();
    {
        let root = t.span("root").start();
        let _in = root.enter();
        let call = t.span("llm call").start();
        call.in_scope(|| {
            let _ = retry::run_blocking(tiny(2), |attempt| {
                let _s = spanlens::span(format!("attempt {attempt}")).start();
                if attempt == 1 {
                    Err("timeout".to_string())
                } else {
                    Ok(())
                }
            });
        });
    }
    let spans = mem.spans();
    assert_eq!(
        names(&named(&spans, "llm call")),
        ["retry", "retry.outcome"]
    );
    assert!(named(&spans, "root").events.is_empty());
    assert!(named(&spans, "attempt 1").events.is_empty());
    assert_eq!(
        named(&spans, "attempt 2").parent_span_id,
        named(&spans, "llm call").span_id.into()
    );
}

#[test]
fn io_errors_report_their_kind() {
    let (t, mem) = tracer();
    {
        let root = t.span("root").start();
        let _in = root.enter();
        let _: Result<(), _> = retry::run_blocking(tiny(5), |attempt| {
            if attempt == 1 {
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "read timed out",
                ))
            } else {
                Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no such model",
                ))
            }
        });
    }
    let root = named(&mem.spans(), "root");
    assert_eq!(get(&root.events[0], "error.type"), &Value::from("TimedOut"));
    assert_eq!(get(&root.events[1], "error.type"), &Value::from("NotFound"));
    // A missing resource will not appear by retrying: stop before the attempts run out.
    assert_eq!(
        get(&root.events[1], "retry.stop_reason"),
        &Value::from("not_retryable")
    );
    assert_eq!(int(&root.events[1], "retry.attempts"), 2);
}

#[tokio::test]
async fn async_retries_record_on_the_span_polling_them() {
    let (t, mem) = tracer();
    let root = t.span("root").start();
    let calls = Arc::new(AtomicU32::new(0));
    let c2 = calls.clone();
    let out = async move {
        retry::run_async_with(
            tiny(3),
            |e: &ApiError| e.is_retryable(),
            tokio::time::sleep,
            move |attempt| {
                let c = c2.clone();
                async move {
                    c.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    if attempt < 3 {
                        Err(ApiError::status(529))
                    } else {
                        Ok("done")
                    }
                }
            },
        )
        .await
    }
    .instrument(root)
    .await;
    assert_eq!(out, Ok("done"));
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let root = named(&mem.spans(), "root");
    assert_eq!(names(&root), ["retry", "retry", "retry.outcome"]);
    assert_eq!(int(&root.events[0], "retry.backoff_ms"), 1);
    assert_eq!(int(&root.events[1], "retry.backoff_ms"), 2);
    assert_eq!(int(&root.events[2], "retry.attempts"), 3);
    assert!(int(&root.events[2], "retry.recovery_ms") >= 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spawned_retry_without_context_records_where_it_was_created() {
    let (t, mem) = tracer();
    let root = t.span("root").start();
    let fut = {
        let _in = root.enter();
        retry::run_async_with(
            tiny(2),
            |_: &String| true,
            tokio::time::sleep,
            |attempt| async move {
                if attempt == 1 {
                    Err("flaky".to_string())
                } else {
                    Ok(())
                }
            },
        )
    };
    // Spawned without `.in_current_context()`: no span is current on the worker.
    tokio::spawn(fut).await.unwrap().unwrap();
    drop(root);
    let root = named(&mem.spans(), "root");
    assert_eq!(names(&root), ["retry", "retry.outcome"]);
}

#[cfg(feature = "tokio")]
#[tokio::test]
async fn run_async_uses_the_tokio_timer() {
    let (t, mem) = tracer();
    let root = t.span("root").start();
    let started = Instant::now();
    let out = retry::run_async(tiny(3), |attempt| async move {
        if attempt == 1 {
            Err(ApiError {
                status: 503,
                retry_after: Some(Duration::from_millis(15)),
            })
        } else {
            Ok(attempt)
        }
    })
    .instrument(root)
    .await;
    assert_eq!(out, Ok(2));
    assert!(started.elapsed() >= Duration::from_millis(15));
    let root = named(&mem.spans(), "root");
    assert_eq!(names(&root), ["retry", "retry.outcome"]);
    assert_eq!(int(&root.events[0], "retry.backoff_ms"), 15);
    let out = retry::run_async_if(
        tiny(3),
        |_: &ApiError| false,
        |_| async { Err::<(), _>(ApiError::status(503)) },
    )
    .await;
    assert!(out.is_err());
}

fn transitions(s: &SpanData) -> Vec<(String, String, i64)> {
    s.events
        .iter()
        .filter(|e| e.name == retry::CIRCUIT_BREAKER_EVENT)
        .map(|e| {
            assert_eq!(get(e, "circuit_breaker.name"), &Value::from("llm-api"));
            (
                get(e, "circuit_breaker.from").as_text().into_owned(),
                get(e, "circuit_breaker.to").as_text().into_owned(),
                int(e, "circuit_breaker.consecutive_failures"),
            )
        })
        .collect()
}

fn tr(from: &str, to: &str, n: i64) -> (String, String, i64) {
    (from.into(), to.into(), n)
}

#[test]
fn breaker_opens_refuses_then_half_opens_and_closes() {
    let (t, mem) = tracer();
    let cool_down = Duration::from_millis(40);
    let breaker = CircuitBreaker::new("llm-api", 2, cool_down);
    let ran = Cell::new(0u32);
    let fail = || {
        ran.set(ran.get() + 1);
        Err::<(), _>(ApiError::status(500))
    };
    {
        let root = t.span("root").start();
        let _in = root.enter();
        assert!(matches!(breaker.call(fail), Err(CircuitError::Inner(_))));
        assert_eq!(breaker.state(), CircuitState::Closed);
        assert_eq!(breaker.consecutive_failures(), 1);
        assert!(matches!(breaker.call(fail), Err(CircuitError::Inner(_))));
        assert_eq!(breaker.state(), CircuitState::Open);
        match breaker.call(fail) {
            Err(CircuitError::Open { retry_in }) => assert!(retry_in <= cool_down),
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert_eq!(ran.get(), 2, "an open breaker does not run the call");
        std::thread::sleep(cool_down + Duration::from_millis(5));
        assert_eq!(breaker.call(|| Ok::<_, ApiError>(7)), Ok(7));
        assert_eq!(breaker.state(), CircuitState::Closed);
        assert_eq!(breaker.consecutive_failures(), 0);
    }
    let root = named(&mem.spans(), "root");
    assert_eq!(
        transitions(&root),
        [
            tr("closed", "open", 2),
            tr("open", "half_open", 2),
            tr("half_open", "closed", 0)
        ]
    );
    assert_eq!(
        root.events.len(),
        3,
        "refusals and counted failures add no events"
    );
    let c = spanlens::convert::to_canonical(&[root], t.resource());
    let ev = &c[0].events[0];
    assert_eq!(ev.name, "circuit_breaker.state");
    assert_eq!(ev.attributes["circuit_breaker.from"], "closed");
    assert_eq!(ev.attributes["circuit_breaker.to"], "open");
}

#[test]
fn a_failed_trial_reopens_and_only_one_trial_runs_at_a_time() {
    let (t, mem) = tracer();
    let breaker = CircuitBreaker::new("llm-api", 1, Duration::from_millis(30));
    {
        let root = t.span("root").start();
        let _in = root.enter();
        breaker.record_failure();
        assert_eq!(breaker.state(), CircuitState::Open);
        assert!(breaker.try_acquire().is_err());
        std::thread::sleep(Duration::from_millis(35));
        assert_eq!(breaker.try_acquire(), Ok(()), "the trial");
        assert_eq!(breaker.state(), CircuitState::HalfOpen);
        assert!(
            breaker.try_acquire().is_err(),
            "a second caller waits for the trial"
        );
        breaker.record_failure();
        assert_eq!(breaker.state(), CircuitState::Open);
    }
    let root = named(&mem.spans(), "root");
    assert_eq!(
        transitions(&root),
        [
            tr("closed", "open", 1),
            tr("open", "half_open", 1),
            tr("half_open", "open", 2)
        ]
    );
}

#[test]
fn retrying_through_a_breaker_waits_out_its_cool_down() {
    let (t, mem) = tracer();
    let breaker = CircuitBreaker::new("llm-api", 1, Duration::from_millis(200));
    let ran = Cell::new(0u32);
    {
        let root = t.span("root").start();
        let _in = root.enter();
        let out = retry::run_blocking(tiny(3), |_| {
            breaker.call(|| {
                ran.set(ran.get() + 1);
                if ran.get() == 1 {
                    Err(ApiError::status(503))
                } else {
                    Ok("ok")
                }
            })
        });
        assert_eq!(out, Ok("ok"));
    }
    assert_eq!(ran.get(), 2);
    let root = named(&mem.spans(), "root");
    assert_eq!(
        names(&root),
        [
            "circuit_breaker.state",
            "retry",
            "retry",
            "circuit_breaker.state",
            "circuit_breaker.state",
            "retry.outcome"
        ]
    );
    assert_eq!(get(&root.events[1], "error.type"), &Value::from("ApiError"));
    let refused = &root.events[2];
    assert_eq!(get(refused, "error.type"), &Value::from("circuit_open"));
    let hint = int(refused, "retry.retry_after_ms");
    assert!((100..=200).contains(&hint), "{hint}");
    assert_eq!(int(refused, "retry.backoff_ms"), hint);
    assert_eq!(int(&root.events[5], "retry.attempts"), 3);
    assert_eq!(
        transitions(&root),
        [
            tr("closed", "open", 1),
            tr("open", "half_open", 1),
            tr("half_open", "closed", 0)
        ]
    );
}

#[tokio::test]
async fn breaker_async_calls_are_not_created_while_open() {
    let (t, mem) = tracer();
    let breaker = CircuitBreaker::new("llm-api", 1, Duration::from_secs(60));
    let root = t.span("root").start();
    let ctx: Context = root.context();
    let made = AtomicU32::new(0);
    let out = ctx
        .wrap(async {
            let first = breaker
                .call_async(|| {
                    made.fetch_add(1, Ordering::SeqCst);
                    async { Err::<(), _>(ApiError::status(500)) }
                })
                .await;
            assert!(matches!(first, Err(CircuitError::Inner(_))));
            breaker
                .call_async(|| {
                    made.fetch_add(1, Ordering::SeqCst);
                    async { Ok::<_, ApiError>(()) }
                })
                .await
        })
        .await;
    assert!(matches!(out, Err(CircuitError::Open { .. })));
    assert_eq!(made.load(Ordering::SeqCst), 1);
    drop(root);
    let root = named(&mem.spans(), "root");
    assert_eq!(transitions(&root), [tr("closed", "open", 1)]);
}
