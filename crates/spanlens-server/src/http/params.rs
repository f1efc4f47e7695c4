//! Query-string parameters of the JSON API, parsed with errors that name the parameter.

use super::error::{bad, ApiError};
use axum::http::HeaderMap;
use axum::http::StatusCode;
use spanlens_api::Pairs;
use spanlens_core::{NanoUsd, SpanKind, Timestamp};
use spanlens_store::{DEFAULT_PROJECT, MAX_PAGE_SIZE};

/// A time as RFC 3339 or integer nanoseconds since the epoch.
pub(crate) fn time(key: &str, v: Option<&str>) -> Result<Option<Timestamp>, ApiError> {
    let Some(v) = v else {
        return Ok(None);
    };
    if let Ok(ns) = v.parse::<u64>() {
        return Ok(Some(Timestamp(ns)));
    }
    Timestamp::parse_rfc3339(v)
        .map(Some)
        .map_err(|e| bad(key, v, &format!("{e}; use RFC 3339 or nanoseconds")))
}

/// Most time slices one metrics request may ask for.
pub(crate) const MAX_BUCKETS: u32 = 200;

/// Query parameters, repeated keys kept (`tag=a&tag=b`).
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    pub(crate) fn parse(raw: Option<String>) -> Result<Params, ApiError> {
        let raw = raw.unwrap_or_default();
        serde_urlencoded::from_str::<Vec<(String, String)>>(&raw)
            .map(Params)
            .map_err(|e| {
                ApiError(
                    StatusCode::BAD_REQUEST,
                    format!("invalid query string: {e}"),
                )
            })
    }

    /// The pairs as sent, read with the rules every route shares (`spanlens_api::Pairs`).
    pub(crate) fn pairs(&self) -> Pairs<'_> {
        Pairs(&self.0)
    }

    pub(crate) fn get(&self, keys: &[&str]) -> Option<&str> {
        self.pairs().get(keys)
    }

    pub(crate) fn string(&self, keys: &[&str]) -> Option<String> {
        self.pairs().string(keys)
    }

    pub(crate) fn project(&self) -> String {
        self.string(&["project"])
            .unwrap_or_else(|| DEFAULT_PROJECT.to_string())
    }

    /// A time as RFC 3339 or integer nanoseconds since the epoch.
    pub(crate) fn time(&self, key: &str) -> Result<Option<Timestamp>, ApiError> {
        time(key, self.get(&[key]))
    }

    /// `[from, to)` of a look-back read (`to` defaults to now, `from` to `look_back_ns` before
    /// it) and `limit` (default and most `max`), refused naming the parameter when out of range.
    pub(crate) fn range_and_cap(
        &self,
        look_back_ns: u64,
        max: u32,
    ) -> Result<(Timestamp, Timestamp, u32), ApiError> {
        let to = self.time("to")?.unwrap_or_else(crate::ingest::now);
        let from = self
            .time("from")?
            .unwrap_or(Timestamp(to.0.saturating_sub(look_back_ns)));
        if from.0 >= to.0 {
            return Err(bad(
                "from",
                &from.to_rfc3339(),
                &format!("must be before to={}", to.to_rfc3339()),
            ));
        }
        let cap = self.number::<u32>("limit")?.unwrap_or(max);
        if cap == 0 || cap > max {
            return Err(bad(
                "limit",
                &cap.to_string(),
                &format!("must be 1..={max}"),
            ));
        }
        Ok((from, to, cap))
    }

    pub(crate) fn number<T: std::str::FromStr>(&self, key: &str) -> Result<Option<T>, ApiError> {
        Ok(self.pairs().number(key)?)
    }

    pub(crate) fn kind(&self) -> Result<Option<SpanKind>, ApiError> {
        kind(self.get(&["kind"]))
    }

    pub(crate) fn limit(&self) -> Result<u32, ApiError> {
        limit(self.number::<u32>("limit")?)
    }
}

/// An amount in USD (a non-negative decimal) as exact nano-USD.
pub(crate) fn usd(key: &str, v: Option<f64>) -> Result<Option<NanoUsd>, ApiError> {
    match v {
        None => Ok(None),
        Some(usd) if usd >= 0.0 => NanoUsd::from_usd_f64(usd)
            .map(Some)
            .ok_or_else(|| bad(key, &usd.to_string(), "not an amount")),
        Some(usd) => Err(bad(key, &usd.to_string(), "a cost cannot be negative")),
    }
}

/// Milliseconds as nanoseconds; a negative or non-finite value is no bound.
pub(crate) fn ms_as_ns(v: Option<f64>) -> Option<u64> {
    v.filter(|v| v.is_finite() && *v >= 0.0)
        .map(|ms| (ms * 1e6) as u64)
}

/// A span kind by name.
pub(crate) fn kind(v: Option<&str>) -> Result<Option<SpanKind>, ApiError> {
    match v {
        None => Ok(None),
        Some(v) => SpanKind::parse(v)
            .map(Some)
            .ok_or_else(|| bad("kind", v, "unknown kind")),
    }
}

/// A page size, checked against the bounds (default when not given).
pub(crate) fn limit(v: Option<u32>) -> Result<u32, ApiError> {
    let n = v.unwrap_or(spanlens_store::DEFAULT_PAGE_SIZE);
    if n == 0 || n > MAX_PAGE_SIZE {
        return Err(bad(
            "limit",
            &n.to_string(),
            &format!("must be 1..={MAX_PAGE_SIZE}"),
        ));
    }
    Ok(n)
}

pub(crate) fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// The declared body length, when the header is a number.
pub(crate) fn content_length(h: &HeaderMap) -> Option<u64> {
    header_str(h, "content-length").and_then(|v| v.trim().parse().ok())
}
