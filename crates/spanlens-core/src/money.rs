//! Money as integer nano-USD, so sums over millions of spans are exact.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::ops::{Add, AddAssign};

/// An amount of US dollars in billionths (1 USD = 1,000,000,000 nano-USD).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct NanoUsd(pub i64);

impl NanoUsd {
    /// Zero dollars.
    pub const ZERO: NanoUsd = NanoUsd(0);

    /// Converts a float USD amount (as providers and instrumentations report it), rounding to
    /// the nearest nano-USD; `None` for NaN, infinity or amounts beyond ±9.2 billion USD.
    pub fn from_usd_f64(usd: f64) -> Option<NanoUsd> {
        let n = (usd * 1e9).round();
        if n.is_finite() && n.abs() < 9.2e18 {
            Some(NanoUsd(n as i64))
        } else {
            None
        }
    }

    /// The amount in USD as a float, for display and JSON.
    pub fn as_usd_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }

    /// Parses a decimal USD string such as `"2.50"` exactly (at most nine decimals).
    pub fn parse_decimal(s: &str) -> Option<NanoUsd> {
        let s = s.trim();
        let (neg, body) = match s.strip_prefix('-') {
            Some(b) => (true, b),
            None => (false, s),
        };
        let (int, frac) = body.split_once('.').unwrap_or((body, ""));
        if (int.is_empty() && frac.is_empty())
            || frac.len() > 9
            || !int.bytes().all(|c| c.is_ascii_digit())
            || !frac.bytes().all(|c| c.is_ascii_digit())
        {
            return None;
        }
        let int_v: i64 = if int.is_empty() { 0 } else { int.parse().ok()? };
        let mut frac_v: i64 = if frac.is_empty() {
            0
        } else {
            frac.parse().ok()?
        };
        for _ in frac.len()..9 {
            frac_v *= 10;
        }
        let v = int_v.checked_mul(1_000_000_000)?.checked_add(frac_v)?;
        Some(NanoUsd(if neg { -v } else { v }))
    }
}

impl Add for NanoUsd {
    type Output = NanoUsd;
    fn add(self, o: NanoUsd) -> NanoUsd {
        NanoUsd(self.0.saturating_add(o.0))
    }
}

impl AddAssign for NanoUsd {
    fn add_assign(&mut self, o: NanoUsd) {
        *self = *self + o;
    }
}

impl std::iter::Sum for NanoUsd {
    fn sum<I: Iterator<Item = NanoUsd>>(it: I) -> NanoUsd {
        it.fold(NanoUsd::ZERO, Add::add)
    }
}

impl fmt::Display for NanoUsd {
    /// Exact decimal dollars with trailing zeros trimmed, e.g. `$0.0042`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let (int, frac) = (abs / 1_000_000_000, abs % 1_000_000_000);
        if frac == 0 {
            return write!(f, "{sign}${int}");
        }
        let frac = format!("{frac:09}");
        write!(f, "{sign}${int}.{}", frac.trim_end_matches('0'))
    }
}

impl fmt::Debug for NanoUsd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NanoUsd({})", self.0)
    }
}

/// Serialises as a USD float; the integer stays exact internally.
impl Serialize for NanoUsd {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.as_usd_f64())
    }
}

impl<'de> Deserialize<'de> for NanoUsd {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = f64::deserialize(d)?;
        NanoUsd::from_usd_f64(v)
            .ok_or_else(|| serde::de::Error::custom(format!("invalid USD amount {v}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_parsing_is_exact() {
        assert_eq!(NanoUsd::parse_decimal("2.50"), Some(NanoUsd(2_500_000_000)));
        assert_eq!(NanoUsd::parse_decimal("0.000000001"), Some(NanoUsd(1)));
        assert_eq!(NanoUsd::parse_decimal(".5"), Some(NanoUsd(500_000_000)));
        assert_eq!(NanoUsd::parse_decimal("0.0000000001"), None);
        assert_eq!(NanoUsd::parse_decimal("1e3"), None);
        assert_eq!(NanoUsd::parse_decimal(""), None);
        assert_eq!(NanoUsd::parse_decimal("99999999999999999999"), None);
    }

    #[test]
    fn float_round_trip_keeps_every_nano() {
        for n in [0i64, 1, 7, 999_999_999, 1_234_567_891_234, 4_200_000] {
            let v = NanoUsd(n);
            let json = serde_json::to_string(&v).unwrap();
            let back: NanoUsd = serde_json::from_str(&json).unwrap();
            assert_eq!(back, v, "{json}");
        }
        assert_eq!(NanoUsd::from_usd_f64(f64::NAN), None);
    }

    #[test]
    fn display_is_exact_decimal() {
        assert_eq!(NanoUsd(4_200_000).to_string(), "$0.0042");
        assert_eq!(NanoUsd(3_000_000_000).to_string(), "$3");
        assert_eq!(NanoUsd(-1).to_string(), "-$0.000000001");
    }
}
