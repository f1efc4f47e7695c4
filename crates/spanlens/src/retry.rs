//! Retries with exponential backoff, and a circuit breaker, that tell their story as events on
//! the current span.
//!
//! Events:
//! - `retry`: an attempt failed and another follows — `retry.attempt` (1-based number of the
//!   failed attempt), `error.type`, `error.message`, `retry.backoff_ms` (the wait before the next
//!   attempt) and `retry.retry_after_ms` when the error carried a server hint.
//! - `retry.outcome`: once, after the final outcome of an operation that failed at least once —
//!   `retry.attempts`, `retry.succeeded`, and `retry.recovery_ms` (first failure to success) on
//!   success, or `retry.stop_reason` (`exhausted` / `not_retryable`), `error.type` and
//!   `error.message` on failure. A first-try success records nothing.
//! - `circuit_breaker.state`: a breaker changed state — `circuit_breaker.name`,
//!   `circuit_breaker.from`, `circuit_breaker.to` (`closed`, `open`, `half_open`),
//!   `circuit_breaker.consecutive_failures`.
//!
//! ```
//! use spanlens::retry::{self, RetryPolicy};
//! use std::time::Duration;
//! let policy = RetryPolicy { initial_backoff: Duration::from_millis(1), ..Default::default() };
//! let out: Result<u32, String> = retry::run_blocking(policy, |attempt| {
//!     if attempt < 2 { Err("flaky".to_string()) } else { Ok(attempt) }
//! });
//! assert_eq!(out, Ok(2));
//! ```

use crate::attr::{Key, Value};
use crate::context::Context;
use crate::span::Span;
use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Event added to the current span for every failed attempt that is retried.
pub const RETRY_EVENT: &str = "retry";
/// Event added once an operation that failed at least once has its final outcome.
pub const RETRY_OUTCOME_EVENT: &str = "retry.outcome";
/// Event added when a circuit breaker changes state.
pub const CIRCUIT_BREAKER_EVENT: &str = "circuit_breaker.state";

/// How often and how patiently to retry.
///
/// The wait after failed attempt `n` is `initial_backoff × multiplier^(n−1)`, capped at
/// `max_backoff`; with `jitter` it is drawn uniformly from the upper half of that value, so
/// clients that failed together do not retry together. A server hint
/// ([`RetryError::retry_after`]) is honoured: the wait is at least the hint, even above
/// `max_backoff`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (0 is read as 1).
    pub max_attempts: u32,
    /// Wait after the first failure.
    pub initial_backoff: Duration,
    /// Longest computed wait.
    pub max_backoff: Duration,
    /// Growth factor of the wait per failure (non-finite or negative is read as 1).
    pub multiplier: f64,
    /// Randomise each wait within its upper half.
    pub jitter: bool,
}

impl Default for RetryPolicy {
    /// 3 attempts, 500 ms doubling up to 30 s, with jitter.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            multiplier: 2.0,
            jitter: true,
        }
    }
}

impl RetryPolicy {
    /// The default policy with `max_attempts` attempts.
    pub fn with_max_attempts(max_attempts: u32) -> Self {
        RetryPolicy {
            max_attempts,
            ..Default::default()
        }
    }

    /// A single attempt: failures are not retried (but still recorded).
    pub fn no_retry() -> Self {
        Self::with_max_attempts(1)
    }

    fn attempts(&self) -> u32 {
        self.max_attempts.max(1)
    }

    /// The wait after failed attempt `failed_attempt` (1-based), before jitter.
    pub fn backoff(&self, failed_attempt: u32) -> Duration {
        let m = if self.multiplier.is_finite() && self.multiplier >= 0.0 {
            self.multiplier
        } else {
            1.0
        };
        let exp = i32::try_from(failed_attempt.saturating_sub(1)).unwrap_or(i32::MAX);
        let secs = self.initial_backoff.as_secs_f64() * m.powi(exp);
        let max = self.max_backoff.as_secs_f64();
        if !secs.is_finite() || secs >= max {
            self.max_backoff
        } else {
            Duration::from_secs_f64(secs.max(0.0))
        }
    }
}

/// What the retry helpers need from an error: a message (`Display`), and optionally a type name,
/// whether it is worth retrying, and the server's "retry after" hint.
///
/// Implement it for your error type (all methods have defaults); foreign error types can be
/// wrapped, or judged with the `*_if` variants' `should_retry` hook.
pub trait RetryError: fmt::Display {
    /// How long the server asked to wait (`Retry-After`), if it did.
    fn retry_after(&self) -> Option<Duration> {
        None
    }

    /// Whether trying again may help (used when no `should_retry` hook is given).
    fn is_retryable(&self) -> bool {
        true
    }

    /// The error class recorded as `error.type` (defaults to the type's short name).
    fn error_type(&self) -> Option<String> {
        crate::record::error_type_name::<Self>()
    }
}

impl RetryError for std::io::Error {
    fn is_retryable(&self) -> bool {
        use std::io::ErrorKind::*;
        !matches!(
            self.kind(),
            NotFound | PermissionDenied | InvalidInput | InvalidData | Unsupported | AlreadyExists
        )
    }

    fn error_type(&self) -> Option<String> {
        Some(format!("{:?}", self.kind()))
    }
}

impl RetryError for String {}
impl RetryError for &str {}

impl RetryError for Box<dyn std::error::Error + Send + Sync> {
    fn error_type(&self) -> Option<String> {
        None
    }
}

impl RetryError for Box<dyn std::error::Error> {
    fn error_type(&self) -> Option<String> {
        None
    }
}

/// Small xorshift generator for jitter (seeded per run; jitter needs spread, not secrecy).
struct Jitter(u64);

impl Jitter {
    fn new() -> Jitter {
        use std::hash::{BuildHasher, Hasher};
        // Every RandomState carries fresh random keys, so even an empty hash differs per run.
        let h = std::collections::hash_map::RandomState::new().build_hasher();
        Jitter(h.finish() | 1)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The bookkeeping of one retried operation, shared by the blocking and async loops.
struct Run {
    policy: RetryPolicy,
    first_failure: Option<Instant>,
    jitter: Jitter,
    /// Span to record on when no span is current while polling (a spawned, unwrapped future).
    fallback: Option<Context>,
}

impl Run {
    fn new(policy: RetryPolicy, fallback: Option<Context>) -> Run {
        Run {
            policy,
            first_failure: None,
            jitter: Jitter::new(),
            fallback,
        }
    }

    fn target(&self) -> Span {
        let cur = Context::current();
        match (&cur.span, &self.fallback) {
            (None, Some(f)) => f.span(),
            _ => cur.span(),
        }
    }

    fn error_attrs<E: RetryError + ?Sized>(err: &E, out: &mut Vec<(Key, Value)>) {
        if let Some(t) = err.error_type() {
            out.push(("error.type".into(), t.into()));
        }
        out.push(("error.message".into(), err.to_string().into()));
    }

    /// Attempt `attempt` failed: the wait before the next one, or `None` to give up (the outcome
    /// is then recorded).
    fn failed<E: RetryError>(
        &mut self,
        attempt: u32,
        err: &E,
        should_retry: &impl Fn(&E) -> bool,
    ) -> Option<Duration> {
        self.first_failure.get_or_insert_with(Instant::now);
        let span = self.target();
        let stop = if !should_retry(err) {
            Some("not_retryable")
        } else if attempt >= self.policy.attempts() {
            Some("exhausted")
        } else {
            None
        };
        if let Some(reason) = stop {
            if span.is_recording() {
                let mut a: Vec<(Key, Value)> = vec![
                    ("retry.attempts".into(), attempt.into()),
                    ("retry.succeeded".into(), false.into()),
                    ("retry.stop_reason".into(), reason.into()),
                ];
                Self::error_attrs(err, &mut a);
                span.add_event(RETRY_OUTCOME_EVENT, a);
            }
            return None;
        }
        let mut wait = self.policy.backoff(attempt);
        if self.policy.jitter {
            wait = wait.mul_f64(0.5 + 0.5 * self.jitter.unit());
        }
        let hint = err.retry_after();
        if let Some(h) = hint {
            wait = wait.max(h);
        }
        if span.is_recording() {
            let mut a: Vec<(Key, Value)> = vec![("retry.attempt".into(), attempt.into())];
            Self::error_attrs(err, &mut a);
            a.push(("retry.backoff_ms".into(), millis(wait).into()));
            if let Some(h) = hint {
                a.push(("retry.retry_after_ms".into(), millis(h).into()));
            }
            span.add_event(RETRY_EVENT, a);
        }
        Some(wait)
    }

    /// Attempt `attempt` succeeded.
    fn succeeded(&self, attempt: u32) {
        let Some(first) = self.first_failure else {
            return;
        };
        let span = self.target();
        if span.is_recording() {
            span.add_event(
                RETRY_OUTCOME_EVENT,
                [
                    ("retry.attempts", Value::from(attempt)),
                    ("retry.succeeded", true.into()),
                    ("retry.recovery_ms", millis(first.elapsed()).into()),
                ],
            );
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Runs `op(attempt)` (attempts numbered from 1) until it succeeds, the error is not
/// [retryable](RetryError::is_retryable), or the policy's attempts are spent, sleeping the
/// thread between attempts. Returns the last result.
pub fn run_blocking<T, E, F>(policy: RetryPolicy, op: F) -> Result<T, E>
where
    E: RetryError,
    F: FnMut(u32) -> Result<T, E>,
{
    run_blocking_if(policy, |e: &E| e.is_retryable(), op)
}

/// [`run_blocking`] with a hook deciding which errors are worth retrying.
pub fn run_blocking_if<T, E, F, P>(policy: RetryPolicy, should_retry: P, mut op: F) -> Result<T, E>
where
    E: RetryError,
    F: FnMut(u32) -> Result<T, E>,
    P: Fn(&E) -> bool,
{
    let mut run = Run::new(policy, None);
    let mut attempt = 1;
    loop {
        match op(attempt) {
            Ok(v) => {
                run.succeeded(attempt);
                return Ok(v);
            }
            Err(e) => match run.failed(attempt, &e, &should_retry) {
                Some(wait) => {
                    std::thread::sleep(wait);
                    attempt += 1;
                }
                None => return Err(e),
            },
        }
    }
}

/// The async retry loop with a sleep of your choosing (any runtime): `sleep(d)` must return a
/// future that completes after `d`. Events go to the span current while the returned future is
/// polled, or else to the span current when this function was called.
pub fn run_async_with<T, E, F, Fut, P, S, SFut>(
    policy: RetryPolicy,
    should_retry: P,
    sleep: S,
    mut op: F,
) -> impl Future<Output = Result<T, E>>
where
    E: RetryError,
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    P: Fn(&E) -> bool,
    S: Fn(Duration) -> SFut,
    SFut: Future<Output = ()>,
{
    let fallback = Context::current();
    async move {
        let mut run = Run::new(policy, Some(fallback));
        let mut attempt = 1;
        loop {
            match op(attempt).await {
                Ok(v) => {
                    run.succeeded(attempt);
                    return Ok(v);
                }
                Err(e) => match run.failed(attempt, &e, &should_retry) {
                    Some(wait) => {
                        sleep(wait).await;
                        attempt += 1;
                    }
                    None => return Err(e),
                },
            }
        }
    }
}

/// Async [`run_blocking`]: waits with `tokio::time::sleep` (feature `tokio`).
#[cfg(feature = "tokio")]
pub fn run_async<T, E, F, Fut>(policy: RetryPolicy, op: F) -> impl Future<Output = Result<T, E>>
where
    E: RetryError,
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    run_async_with(policy, |e: &E| e.is_retryable(), tokio::time::sleep, op)
}

/// [`run_async`] with a hook deciding which errors are worth retrying (feature `tokio`).
#[cfg(feature = "tokio")]
pub fn run_async_if<T, E, F, Fut, P>(
    policy: RetryPolicy,
    should_retry: P,
    op: F,
) -> impl Future<Output = Result<T, E>>
where
    E: RetryError,
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    P: Fn(&E) -> bool,
{
    run_async_with(policy, should_retry, tokio::time::sleep, op)
}

/// State of a [`CircuitBreaker`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CircuitState {
    /// Calls go through; consecutive failures are counted.
    Closed,
    /// Calls are refused until the cool-down has passed.
    Open,
    /// One trial call is let through; its outcome closes or re-opens the breaker.
    HalfOpen,
}

impl CircuitState {
    /// `closed`, `open` or `half_open`.
    pub fn as_str(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::Open => "open",
            CircuitState::HalfOpen => "half_open",
        }
    }
}

/// A call refused by an open breaker, or the call's own error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CircuitError<E> {
    /// The breaker is open; it lets a trial through after `retry_in`.
    Open {
        /// Time left of the cool-down.
        retry_in: Duration,
    },
    /// The call ran and failed.
    Inner(E),
}

impl<E: fmt::Display> fmt::Display for CircuitError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CircuitError::Open { retry_in } => {
                write!(f, "circuit open; next trial in {} ms", retry_in.as_millis())
            }
            CircuitError::Inner(e) => e.fmt(f),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for CircuitError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CircuitError::Open { .. } => None,
            CircuitError::Inner(e) => Some(e),
        }
    }
}

impl<E: RetryError> RetryError for CircuitError<E> {
    fn retry_after(&self) -> Option<Duration> {
        match self {
            CircuitError::Open { retry_in } => Some(*retry_in),
            CircuitError::Inner(e) => e.retry_after(),
        }
    }

    fn is_retryable(&self) -> bool {
        match self {
            CircuitError::Open { .. } => true,
            CircuitError::Inner(e) => e.is_retryable(),
        }
    }

    fn error_type(&self) -> Option<String> {
        match self {
            CircuitError::Open { .. } => Some("circuit_open".into()),
            CircuitError::Inner(e) => e.error_type(),
        }
    }
}

struct BreakerState {
    state: CircuitState,
    consecutive_failures: u32,
    opened_at: Option<Instant>,
    trial_started: Option<Instant>,
}

type Transition = (CircuitState, CircuitState, u32);

/// A circuit breaker: after `failure_threshold` consecutive failures it opens and refuses calls
/// for `cool_down`, then lets one trial call through (half-open); the trial's success closes it,
/// its failure re-opens it. Each change is recorded as a `circuit_breaker.state` event on the
/// current span. Share it between tasks by reference or `Arc`.
pub struct CircuitBreaker {
    name: Cow<'static, str>,
    failure_threshold: u32,
    cool_down: Duration,
    inner: Mutex<BreakerState>,
}

impl CircuitBreaker {
    /// A closed breaker (a threshold of 0 is read as 1).
    pub fn new(
        name: impl Into<Cow<'static, str>>,
        failure_threshold: u32,
        cool_down: Duration,
    ) -> CircuitBreaker {
        CircuitBreaker {
            name: name.into(),
            failure_threshold: failure_threshold.max(1),
            cool_down,
            inner: Mutex::new(BreakerState {
                state: CircuitState::Closed,
                consecutive_failures: 0,
                opened_at: None,
                trial_started: None,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, BreakerState> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The breaker's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The current state (an open breaker past its cool-down turns half-open at the next call).
    pub fn state(&self) -> CircuitState {
        self.lock().state
    }

    /// Consecutive failures counted so far.
    pub fn consecutive_failures(&self) -> u32 {
        self.lock().consecutive_failures
    }

    fn record(&self, t: Option<Transition>) {
        let Some((from, to, failures)) = t else {
            return;
        };
        let span = Context::current().span();
        if span.is_recording() {
            span.add_event(
                CIRCUIT_BREAKER_EVENT,
                [
                    ("circuit_breaker.name", Value::from(self.name.clone())),
                    ("circuit_breaker.from", from.as_str().into()),
                    ("circuit_breaker.to", to.as_str().into()),
                    ("circuit_breaker.consecutive_failures", failures.into()),
                ],
            );
        }
    }

    /// Asks to make a call: `Ok` when it may go ahead (report its outcome with
    /// [`record_success`](Self::record_success) / [`record_failure`](Self::record_failure)),
    /// `Err(time left)` while the breaker is open or a half-open trial is in flight.
    pub fn try_acquire(&self) -> Result<(), Duration> {
        let mut s = self.lock();
        let now = Instant::now();
        let (result, t) = match s.state {
            CircuitState::Closed => (Ok(()), None),
            CircuitState::Open => {
                let since = s.opened_at.map_or(self.cool_down, |o| now - o);
                if since >= self.cool_down {
                    s.state = CircuitState::HalfOpen;
                    s.trial_started = Some(now);
                    let t = (
                        CircuitState::Open,
                        CircuitState::HalfOpen,
                        s.consecutive_failures,
                    );
                    (Ok(()), Some(t))
                } else {
                    (Err(self.cool_down - since), None)
                }
            }
            CircuitState::HalfOpen => match s.trial_started {
                // A trial that never reported back (its caller panicked or forgot) stops
                // blocking after one cool-down.
                Some(t0) if now - t0 < self.cool_down => (Err(self.cool_down - (now - t0)), None),
                _ => {
                    s.trial_started = Some(now);
                    (Ok(()), None)
                }
            },
        };
        drop(s);
        self.record(t);
        result
    }

    /// Reports a successful call: resets the failure count and closes a half-open breaker.
    pub fn record_success(&self) {
        let mut s = self.lock();
        s.consecutive_failures = 0;
        let t = match s.state {
            CircuitState::HalfOpen => {
                s.state = CircuitState::Closed;
                s.trial_started = None;
                s.opened_at = None;
                Some((CircuitState::HalfOpen, CircuitState::Closed, 0))
            }
            _ => None,
        };
        drop(s);
        self.record(t);
    }

    /// Reports a failed call: opens the breaker at the threshold, or re-opens a half-open one.
    pub fn record_failure(&self) {
        let mut s = self.lock();
        s.consecutive_failures = s.consecutive_failures.saturating_add(1);
        let from = s.state;
        let open = match from {
            CircuitState::Closed => s.consecutive_failures >= self.failure_threshold,
            CircuitState::HalfOpen => true,
            CircuitState::Open => false,
        };
        let t = open.then(|| {
            s.state = CircuitState::Open;
            s.opened_at = Some(Instant::now());
            s.trial_started = None;
            (from, CircuitState::Open, s.consecutive_failures)
        });
        drop(s);
        self.record(t);
    }

    /// Runs `op` through the breaker.
    pub fn call<T, E>(&self, op: impl FnOnce() -> Result<T, E>) -> Result<T, CircuitError<E>> {
        self.try_acquire()
            .map_err(|retry_in| CircuitError::Open { retry_in })?;
        let out = op();
        match &out {
            Ok(_) => self.record_success(),
            Err(_) => self.record_failure(),
        }
        out.map_err(CircuitError::Inner)
    }

    /// Runs the future `op()` makes through the breaker (it is not created while open).
    pub async fn call_async<T, E, F, Fut>(&self, op: F) -> Result<T, CircuitError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.try_acquire()
            .map_err(|retry_in| CircuitError::Open { retry_in })?;
        let out = op().await;
        match &out {
            Ok(_) => self.record_success(),
            Err(_) => self.record_failure(),
        }
        out.map_err(CircuitError::Inner)
    }
}

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.lock();
        f.debug_struct("CircuitBreaker")
            .field("name", &self.name)
            .field("state", &s.state)
            .field("consecutive_failures", &s.consecutive_failures)
            .field("failure_threshold", &self.failure_threshold)
            .field("cool_down", &self.cool_down)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            multiplier: 3.0,
            jitter: false,
        };
        let ms: Vec<u128> = (1..=5).map(|n| p.backoff(n).as_millis()).collect();
        assert_eq!(ms, [100, 300, 900, 1000, 1000]);
        assert_eq!(p.backoff(u32::MAX), Duration::from_secs(1));
        let flat = RetryPolicy {
            multiplier: f64::NAN,
            ..p
        };
        assert_eq!(flat.backoff(4), Duration::from_millis(100));
    }

    #[test]
    fn jitter_is_uniform_in_the_unit_interval() {
        let mut j = Jitter::new();
        for _ in 0..10_000 {
            let u = j.unit();
            assert!((0.0..1.0).contains(&u), "{u}");
        }
    }

    #[test]
    fn io_errors_name_their_kind_and_retryability() {
        let e = std::io::Error::new(std::io::ErrorKind::TimedOut, "slow");
        assert_eq!(e.error_type().as_deref(), Some("TimedOut"));
        assert!(e.is_retryable());
        let e = std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        assert!(!e.is_retryable());
        assert_eq!(RetryError::error_type(&"x"), None);
    }
}
