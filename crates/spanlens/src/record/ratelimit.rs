//! Rate-limit state from provider response headers.
//!
//! - OpenAI (and the many gateways copying it): `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`,
//!   resets are RELATIVE durations in Go syntax (`6m0s`, `1s`, `59.5ms`, `2h3m4.5s`).
//! - Anthropic: `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}`,
//!   resets are ABSOLUTE RFC 3339 times.
//! - `retry-after` (delay seconds or an HTTP date) and `retry-after-ms` (milliseconds, preferred).
//!
//! Header names are case-insensitive; a value that cannot be read is skipped.

use crate::attr::{Key, Value};
use chrono::{DateTime, NaiveDateTime};
use spanlens_core::{RateLimitWindow, RateLimits, Timestamp};
use std::time::Duration;

#[derive(Clone, Copy)]
enum Window {
    Requests,
    Tokens,
    InputTokens,
    OutputTokens,
}

#[derive(Clone, Copy)]
enum Field {
    Limit,
    Remaining,
    Reset,
}

fn window(s: &str) -> Option<Window> {
    Some(match s {
        "requests" => Window::Requests,
        "tokens" => Window::Tokens,
        "input-tokens" => Window::InputTokens,
        "output-tokens" => Window::OutputTokens,
        _ => return None,
    })
}

fn field(s: &str) -> Option<Field> {
    Some(match s {
        "limit" => Field::Limit,
        "remaining" => Field::Remaining,
        "reset" => Field::Reset,
        _ => return None,
    })
}

/// Which window and field a (lowercased) header name describes.
fn classify(name: &str) -> Option<(Window, Field)> {
    if let Some(rest) = name.strip_prefix("x-ratelimit-") {
        // OpenAI: field first, then window (`x-ratelimit-remaining-tokens`).
        let (f, w) = rest.split_once('-')?;
        return Some((window(w)?, field(f)?));
    }
    if let Some(rest) = name.strip_prefix("anthropic-ratelimit-") {
        // Anthropic: window first, then field (`anthropic-ratelimit-input-tokens-reset`).
        let (w, f) = rest.rsplit_once('-')?;
        return Some((window(w)?, field(f)?));
    }
    None
}

/// Reads rate-limit headers into canonical [`RateLimits`]; relative resets and `retry-after`
/// dates are resolved against `now`.
///
/// Accepts anything iterable as `(name, value)` string pairs, e.g.
/// `resp.headers().iter().map(|(k, v)| (k.as_str(), v.to_str().unwrap_or("")))`.
pub fn parse_rate_limit_headers<I, K, V>(headers: I, now: Timestamp) -> RateLimits
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<str>,
    V: AsRef<str>,
{
    let mut rl = RateLimits::default();
    let mut windows: [RateLimitWindow; 4] = Default::default();
    let mut retry_after_ms = None;
    let mut retry_after_s = None;
    for (name, value) in headers {
        let name = name.as_ref().trim().to_ascii_lowercase();
        let value = value.as_ref().trim();
        if value.is_empty() {
            continue;
        }
        match name.as_str() {
            "retry-after-ms" => {
                if let Some(ms) = parse_non_negative(value) {
                    retry_after_ms = Some(ms.round() as u64);
                }
            }
            "retry-after" => {
                retry_after_s = parse_retry_after(value, now).or(retry_after_s);
            }
            _ => {
                let Some((w, f)) = classify(&name) else {
                    continue;
                };
                let slot = &mut windows[w as usize];
                match f {
                    Field::Limit => slot.limit = value.parse().ok().or(slot.limit),
                    Field::Remaining => slot.remaining = value.parse().ok().or(slot.remaining),
                    Field::Reset => slot.reset = parse_reset(value, now).or(slot.reset),
                }
            }
        }
    }
    let keep = |w: &RateLimitWindow| (*w != RateLimitWindow::default()).then(|| w.clone());
    rl.requests = keep(&windows[Window::Requests as usize]);
    rl.tokens = keep(&windows[Window::Tokens as usize]);
    rl.input_tokens = keep(&windows[Window::InputTokens as usize]);
    rl.output_tokens = keep(&windows[Window::OutputTokens as usize]);
    rl.retry_after_ms = retry_after_ms.or(retry_after_s);
    rl
}

/// A finite, non-negative decimal number.
fn parse_non_negative(s: &str) -> Option<f64> {
    s.parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0)
}

fn add(now: Timestamp, d: Duration) -> Timestamp {
    let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    Timestamp(now.0.saturating_add(nanos))
}

/// A window reset: a Go-style duration from now, an RFC 3339 time, or a bare number (seconds from
/// now; values that can only be Unix times — at least 10^9 — are read as epoch seconds, and at
/// least 10^12 as epoch milliseconds).
fn parse_reset(v: &str, now: Timestamp) -> Option<Timestamp> {
    if let Some(secs) = parse_non_negative(v) {
        return Some(if secs >= 1e12 {
            Timestamp((secs * 1e6).round() as u64)
        } else if secs >= 1e9 {
            Timestamp((secs * 1e9).round() as u64)
        } else {
            add(now, Duration::from_secs_f64(secs))
        });
    }
    if let Some(d) = parse_duration(v) {
        return Some(add(now, d));
    }
    Timestamp::parse_rfc3339(v).ok()
}

/// `retry-after`: delay seconds, or an HTTP date (IMF-fixdate, RFC 850 or asctime form).
fn parse_retry_after(v: &str, now: Timestamp) -> Option<u64> {
    if let Some(secs) = parse_non_negative(v) {
        return Some((secs * 1000.0).round() as u64);
    }
    let at = http_date(v)?;
    Some(at.0.saturating_sub(now.0) / 1_000_000)
}

fn http_date(v: &str) -> Option<Timestamp> {
    let nanos = if let Ok(dt) = DateTime::parse_from_rfc2822(v) {
        dt.timestamp_nanos_opt()?
    } else {
        let naive = ["%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"]
            .iter()
            .find_map(|f| NaiveDateTime::parse_from_str(v, f).ok())?;
        naive.and_utc().timestamp_nanos_opt()?
    };
    u64::try_from(nanos).ok().map(Timestamp)
}

/// Parses a Go-style duration as OpenAI writes rate-limit resets: one or more `<number><unit>`
/// groups with units `ns`, `us`/`µs`, `ms`, `s`, `m`, `h` (and `d`), e.g. `6m0s`, `59.5ms`,
/// `2h3m4.5s`. `None` for anything else (negative, unit-less, unknown unit, overflow).
pub fn parse_duration(s: &str) -> Option<Duration> {
    let mut rest = s.trim();
    rest = rest.strip_prefix('+').unwrap_or(rest);
    if rest.is_empty() {
        return None;
    }
    let mut total_ns = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, after) = rest.split_at(num_len);
        if num.is_empty() || num == "." {
            return None;
        }
        let n: f64 = num.parse().ok()?;
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let scale = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "d" => 86_400e9,
            _ => return None,
        };
        total_ns += n * scale;
        rest = next;
    }
    (total_ns.is_finite() && total_ns < u64::MAX as f64)
        .then(|| Duration::from_nanos(total_ns.round() as u64))
}

/// The `spanlens.ratelimit.*` attributes core reads back into `rate_limits` (resets as RFC 3339).
pub fn rate_limit_attributes(rl: &RateLimits) -> Vec<(Key, Value)> {
    let mut out: Vec<(Key, Value)> = Vec::new();
    let windows = [
        ("requests", &rl.requests),
        ("tokens", &rl.tokens),
        ("input_tokens", &rl.input_tokens),
        ("output_tokens", &rl.output_tokens),
    ];
    for (name, w) in windows {
        let Some(w) = w else { continue };
        if let Some(v) = w.limit {
            out.push((format!("spanlens.ratelimit.{name}.limit").into(), v.into()));
        }
        if let Some(v) = w.remaining {
            out.push((
                format!("spanlens.ratelimit.{name}.remaining").into(),
                v.into(),
            ));
        }
        if let Some(t) = w.reset {
            out.push((
                format!("spanlens.ratelimit.{name}.reset").into(),
                t.to_rfc3339().into(),
            ));
        }
    }
    if let Some(ms) = rl.retry_after_ms {
        out.push(("spanlens.ratelimit.retry_after_ms".into(), ms.into()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp(1_750_000_000_000_000_000);
    const S: u64 = 1_000_000_000;
    const MS: u64 = 1_000_000;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_duration("6m0s"), Some(Duration::from_secs(360)));
        assert_eq!(parse_duration("1s"), Some(Duration::from_secs(1)));
        assert_eq!(
            parse_duration("59.5ms"),
            Some(Duration::from_micros(59_500))
        );
        assert_eq!(
            parse_duration("2h3m4.5s"),
            Some(Duration::from_millis(2 * 3_600_000 + 3 * 60_000 + 4_500))
        );
        assert_eq!(parse_duration("20ms"), Some(ms(20)));
        assert_eq!(parse_duration("0s"), Some(Duration::ZERO));
        assert_eq!(parse_duration("1m30.25s"), Some(ms(90_250)));
        assert_eq!(parse_duration("12us"), Some(Duration::from_micros(12)));
        assert_eq!(parse_duration("12µs"), Some(Duration::from_micros(12)));
        assert_eq!(parse_duration("7ns"), Some(Duration::from_nanos(7)));
        assert_eq!(parse_duration("1d"), Some(Duration::from_secs(86_400)));
        assert_eq!(parse_duration(" +3s "), Some(Duration::from_secs(3)));
        for bad in [
            "", "s", "5", "-1s", "1x", "1.2.3s", "ms", ".s", "1s2", "1e3s", "9e99h", "∞s",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn openai_headers_resolve_relative_resets() {
        let rl = parse_rate_limit_headers(
            [
                ("x-ratelimit-limit-requests", "10000"),
                ("x-ratelimit-remaining-requests", "9999"),
                ("x-ratelimit-reset-requests", "6m0s"),
                ("X-RateLimit-Limit-Tokens", "30000000"),
                ("X-RATELIMIT-REMAINING-TOKENS", "29999000"),
                ("x-ratelimit-reset-tokens", "59.5ms"),
            ],
            NOW,
        );
        let r = rl.requests.unwrap();
        assert_eq!(r.limit, Some(10_000));
        assert_eq!(r.remaining, Some(9_999));
        assert_eq!(r.reset, Some(Timestamp(NOW.0 + 360 * S)));
        let t = rl.tokens.unwrap();
        assert_eq!((t.limit, t.remaining), (Some(30_000_000), Some(29_999_000)));
        assert_eq!(t.reset, Some(Timestamp(NOW.0 + 59 * MS + 500_000)));
        assert_eq!(rl.input_tokens, None);
        assert_eq!(rl.retry_after_ms, None);
    }

    #[test]
    fn anthropic_headers_use_absolute_resets() {
        let rl = parse_rate_limit_headers(
            vec![
                (
                    "anthropic-ratelimit-requests-limit".to_string(),
                    "50".to_string(),
                ),
                ("anthropic-ratelimit-requests-remaining".into(), "49".into()),
                (
                    "anthropic-ratelimit-requests-reset".into(),
                    "2025-06-15T14:00:00Z".into(),
                ),
                ("anthropic-ratelimit-tokens-limit".into(), "90000".into()),
                (
                    "anthropic-ratelimit-tokens-remaining".into(),
                    "80000".into(),
                ),
                (
                    "anthropic-ratelimit-tokens-reset".into(),
                    "2025-06-15T14:00:30+00:00".into(),
                ),
                (
                    "Anthropic-RateLimit-Input-Tokens-Limit".into(),
                    "40000".into(),
                ),
                (
                    "anthropic-ratelimit-input-tokens-remaining".into(),
                    "39000".into(),
                ),
                (
                    "anthropic-ratelimit-input-tokens-reset".into(),
                    "2025-06-15T14:00:01.5Z".into(),
                ),
                (
                    "anthropic-ratelimit-output-tokens-limit".into(),
                    "8000".into(),
                ),
                (
                    "anthropic-ratelimit-output-tokens-remaining".into(),
                    "7990".into(),
                ),
                (
                    "anthropic-ratelimit-output-tokens-reset".into(),
                    "2025-06-15T16:00:00+02:00".into(),
                ),
            ],
            NOW,
        );
        let at = |s: &str| Some(Timestamp::parse_rfc3339(s).unwrap());
        let r = rl.requests.unwrap();
        assert_eq!(
            (r.limit, r.remaining, r.reset),
            (Some(50), Some(49), at("2025-06-15T14:00:00Z"))
        );
        let t = rl.tokens.unwrap();
        assert_eq!(
            (t.limit, t.remaining, t.reset),
            (Some(90_000), Some(80_000), at("2025-06-15T14:00:30Z"))
        );
        let i = rl.input_tokens.unwrap();
        assert_eq!(
            (i.limit, i.remaining, i.reset),
            (Some(40_000), Some(39_000), at("2025-06-15T14:00:01.500Z"))
        );
        let o = rl.output_tokens.unwrap();
        assert_eq!(
            (o.limit, o.remaining, o.reset),
            (Some(8_000), Some(7_990), at("2025-06-15T14:00:00Z"))
        );
    }

    #[test]
    fn retry_after_seconds_dates_and_milliseconds() {
        let one = |h: &str, v: &str| parse_rate_limit_headers([(h, v)], NOW).retry_after_ms;
        assert_eq!(one("retry-after", "20"), Some(20_000));
        assert_eq!(one("Retry-After", "1.5"), Some(1_500));
        assert_eq!(one("retry-after-ms", "250"), Some(250));
        assert_eq!(one("retry-after-ms", "12.6"), Some(13));
        // HTTP dates relative to NOW = 2025-06-15T15:06:40Z.
        assert_eq!(
            one("retry-after", "Sun, 15 Jun 2025 15:07:10 GMT"),
            Some(30_000)
        );
        assert_eq!(
            one("retry-after", "Sunday, 15-Jun-25 15:07:00 GMT"),
            Some(20_000)
        );
        assert_eq!(one("retry-after", "Sun Jun 15 15:06:50 2025"), Some(10_000));
        assert_eq!(
            one("retry-after", "Sun Jun  1 00:00:00 2025"),
            Some(0),
            "past"
        );
        // The millisecond header wins whichever order they come in.
        let rl = parse_rate_limit_headers([("retry-after-ms", "1234"), ("retry-after", "2")], NOW);
        assert_eq!(rl.retry_after_ms, Some(1_234));
        let rl = parse_rate_limit_headers([("retry-after", "2"), ("retry-after-ms", "1234")], NOW);
        assert_eq!(rl.retry_after_ms, Some(1_234));
        let rl = parse_rate_limit_headers([("retry-after-ms", "soon"), ("retry-after", "2")], NOW);
        assert_eq!(rl.retry_after_ms, Some(2_000));
    }

    #[test]
    fn bare_number_resets() {
        let reset = |v: &str| {
            parse_rate_limit_headers([("x-ratelimit-reset-requests", v)], NOW)
                .requests
                .and_then(|w| w.reset)
        };
        assert_eq!(reset("30"), Some(Timestamp(NOW.0 + 30 * S)));
        assert_eq!(reset("0.25"), Some(Timestamp(NOW.0 + 250 * MS)));
        assert_eq!(reset("1750000100"), Some(Timestamp(1_750_000_100 * S)));
        assert_eq!(
            reset("1750000100500"),
            Some(Timestamp(1_750_000_100_500 * MS))
        );
        assert_eq!(
            reset("2025-06-15T15:07:00Z"),
            Some(Timestamp(NOW.0 + 20 * S))
        );
    }

    #[test]
    fn bad_values_and_unknown_headers_are_skipped() {
        let rl = parse_rate_limit_headers(
            [
                ("x-ratelimit-limit-requests", "lots"),
                ("x-ratelimit-remaining-requests", "-1"),
                ("x-ratelimit-reset-requests", "whenever"),
                ("x-ratelimit-limit-tokens", "1.5"),
                ("x-ratelimit-remaining-tokens", ""),
                ("x-ratelimit-reset-tokens", "-5s"),
                ("x-ratelimit-limit-widgets", "5"),
                ("x-ratelimit-limit", "5"),
                ("anthropic-ratelimit-requests", "5"),
                ("anthropic-ratelimit-tokens-limit", "NaN"),
                ("anthropic-ratelimit-tokens-reset", "tomorrow"),
                ("retry-after", "Thu, 99 Foo 2025"),
                ("retry-after", "-3"),
                ("retry-after-ms", "inf"),
                ("content-type", "application/json"),
            ],
            NOW,
        );
        assert_eq!(rl, RateLimits::default());
        // A later good value is still read; a later bad one does not erase an earlier good one.
        let rl = parse_rate_limit_headers(
            [
                ("x-ratelimit-limit-requests", "oops"),
                ("x-ratelimit-limit-requests", "7"),
                ("x-ratelimit-remaining-requests", "3"),
                ("x-ratelimit-remaining-requests", "oops"),
            ],
            NOW,
        );
        let r = rl.requests.unwrap();
        assert_eq!((r.limit, r.remaining), (Some(7), Some(3)));
    }

    #[test]
    fn attributes_round_trip_names() {
        let rl = parse_rate_limit_headers(
            [
                ("x-ratelimit-limit-requests", "10"),
                ("x-ratelimit-reset-requests", "1s"),
                ("anthropic-ratelimit-output-tokens-remaining", "5"),
                ("retry-after", "3"),
            ],
            NOW,
        );
        let attrs = rate_limit_attributes(&rl);
        let keys: Vec<&str> = attrs.iter().map(|(k, _)| k.as_ref()).collect();
        assert_eq!(
            keys,
            [
                "spanlens.ratelimit.requests.limit",
                "spanlens.ratelimit.requests.reset",
                "spanlens.ratelimit.output_tokens.remaining",
                "spanlens.ratelimit.retry_after_ms",
            ]
        );
        assert_eq!(attrs[1].1, Value::from(Timestamp(NOW.0 + S).to_rfc3339()));
        assert_eq!(attrs[3].1, Value::I64(3_000));
    }
}
