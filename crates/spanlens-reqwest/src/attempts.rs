//! Attempts of one call, counted across a retrying middleware.
//!
//! A retrying middleware (reqwest-retry, or any that runs `next` again) hands every attempt the
//! same `http::Extensions`, so the count and the failures so far travel there. Each attempt is
//! its own `llm` span; a repeated attempt carries the `retry` events of the attempts that failed
//! before it, and a retried attempt that succeeds carries the `retry.outcome` event, with the
//! names and attributes of `spanlens::retry`, so the recovery report reads them alike.

use http::Extensions;
use spanlens::record::LlmCall;
use spanlens::retry::{RETRY_EVENT, RETRY_OUTCOME_EVENT};
use spanlens::{Key, Value};
use std::time::Instant;

#[derive(Clone, Default)]
struct Attempts {
    count: u32,
    failures: Vec<Failure>,
}

#[derive(Clone)]
struct Failure {
    attempt: u32,
    error_type: String,
    message: String,
    retry_after_ms: Option<u64>,
    ended: Instant,
    /// Time from this failure to the next attempt (known once that attempt starts).
    backoff_ms: Option<u64>,
}

fn millis(from: Instant) -> u64 {
    u64::try_from(from.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Counts a new attempt and marks the call's span with its number and the failures before it.
pub(crate) fn begin(ext: &mut Extensions, call: &LlmCall) -> u32 {
    let st = ext.get_or_insert_default::<Attempts>();
    st.count += 1;
    if let Some(last) = st.failures.last_mut() {
        last.backoff_ms.get_or_insert_with(|| millis(last.ended));
    }
    let span = call.span();
    span.set_attribute("spanlens.llm.attempt", st.count);
    if st.count > 1 {
        // OTel HTTP convention: how many times this request was sent before.
        span.set_attribute("http.request.resend_count", st.count - 1);
    }
    for f in &st.failures {
        let mut attrs: Vec<(Key, Value)> = vec![
            ("retry.attempt".into(), f.attempt.into()),
            ("error.type".into(), f.error_type.clone().into()),
            ("error.message".into(), f.message.clone().into()),
        ];
        if let Some(b) = f.backoff_ms {
            attrs.push(("retry.backoff_ms".into(), b.into()));
        }
        if let Some(r) = f.retry_after_ms {
            attrs.push(("retry.retry_after_ms".into(), r.into()));
        }
        span.add_event(RETRY_EVENT, attrs);
    }
    st.count
}

/// Remembers that attempt `attempt` failed, for the attempts that may follow.
pub(crate) fn failed(
    ext: &mut Extensions,
    attempt: u32,
    error_type: &str,
    message: &str,
    retry_after_ms: Option<u64>,
) {
    let st = ext.get_or_insert_default::<Attempts>();
    st.failures.push(Failure {
        attempt,
        error_type: error_type.to_string(),
        message: message.to_string(),
        retry_after_ms,
        ended: Instant::now(),
        backoff_ms: None,
    });
}

/// The attempt succeeded: after earlier failures, the call recovered.
pub(crate) fn succeeded(ext: &Extensions, call: &LlmCall) {
    let Some(st) = ext.get::<Attempts>() else {
        return;
    };
    let Some(first) = st.failures.first() else {
        return;
    };
    call.span().add_event(
        RETRY_OUTCOME_EVENT,
        [
            ("retry.attempts", Value::from(st.count)),
            ("retry.succeeded", true.into()),
            ("retry.recovery_ms", millis(first.ended).into()),
        ],
    );
}
