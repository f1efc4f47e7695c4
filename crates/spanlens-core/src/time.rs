//! Timestamps: nanoseconds since the Unix epoch, written as RFC 3339 with nine fractional digits.
//!
//! JSON never carries a bare integer above 2^53 for a time, so JavaScript clients lose nothing.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A point in time, nanoseconds since the Unix epoch (UTC).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Timestamp(pub u64);

/// Why a time string could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid RFC 3339 time {value:?}: {reason}")]
pub struct TimeError {
    /// The offending text.
    pub value: String,
    /// What is wrong with it.
    pub reason: String,
}

impl Timestamp {
    /// Nanoseconds since the epoch.
    pub fn nanos(self) -> u64 {
        self.0
    }

    /// RFC 3339 in UTC with exactly nine fractional digits, e.g. `2025-01-01T00:00:00.000000001Z`.
    pub fn to_rfc3339(self) -> String {
        let digits = self.rfc3339_digits();
        digits.iter().map(|&b| b as char).collect()
    }

    /// `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ` in a stack buffer: every stored span serialises two
    /// timestamps, and going through chrono's formatter and a heap string showed in ingest
    /// profiles. (A u64 of nanoseconds ends in 2554, so the year always has four digits.)
    fn rfc3339_digits(self) -> [u8; 30] {
        let secs = self.0 / 1_000_000_000;
        let nanos = self.0 % 1_000_000_000;
        let (year, month, day) = civil_date(secs / 86_400);
        let in_day = secs % 86_400;
        let mut out = *b"0000-00-00T00:00:00.000000000Z";
        let mut put = |at: usize, width: usize, mut v: u64| {
            for i in (at..at + width).rev() {
                out[i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        put(0, 4, year);
        put(5, 2, month);
        put(8, 2, day);
        put(11, 2, in_day / 3600);
        put(14, 2, in_day % 3600 / 60);
        put(17, 2, in_day % 60);
        put(20, 9, nanos);
        out
    }

    /// Parses RFC 3339 / ISO 8601 with an offset (`Z` or `±hh:mm`); a missing offset is read as UTC,
    /// since several SDKs (Python's `datetime.isoformat()` on naive times) omit it.
    pub fn parse_rfc3339(s: &str) -> Result<Self, TimeError> {
        let err = |reason: &str| TimeError {
            value: s.to_string(),
            reason: reason.to_string(),
        };
        let dt = match DateTime::parse_from_rfc3339(s) {
            Ok(dt) => dt.with_timezone(&Utc),
            Err(e) => {
                let naive = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
                    .map_err(|_| err(&e.to_string()))?;
                naive.and_utc()
            }
        };
        // Not `timestamp_nanos_opt`: it stops at 2262 (i64), and a time this type can hold
        // must read back, or one stored span would make its whole trace unreadable.
        let secs = u64::try_from(dt.timestamp()).map_err(|_| err("before 1970"))?;
        secs.checked_mul(1_000_000_000)
            .and_then(|ns| ns.checked_add(u64::from(dt.timestamp_subsec_nanos())))
            .map(Timestamp)
            .ok_or_else(|| err("out of range"))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({})", self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let digits = self.rfc3339_digits();
        // Only ASCII was written, so this never fails.
        s.serialize_str(std::str::from_utf8(&digits).unwrap_or_default())
    }
}

/// (year, month, day) of the proleptic Gregorian calendar for days since 1970-01-01, counting
/// in 400-year eras of 146,097 days that start on 1 March (so the leap day ends a year).
fn civil_date(days: u64) -> (u64, u64, u64) {
    // 1970-01-01 is day 719,468 counted from 0000-03-01.
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    // Months counted from March: 0 = March … 11 = February.
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    (year, month, day)
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Timestamp::parse_rfc3339(&s).map_err(serde::de::Error::custom)
    }
}

/// Serde helper for `Option<u64>` nanosecond durations written as fractional milliseconds.
pub mod opt_ms {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes nanoseconds as milliseconds (`1500000` → `1.5`).
    pub fn serialize<S: Serializer>(v: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(ns) => s.serialize_f64(*ns as f64 / 1e6),
            None => s.serialize_none(),
        }
    }

    /// Reads milliseconds back into nanoseconds, rounding to the nearest nanosecond.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        let v = Option::<f64>::deserialize(d)?;
        match v {
            None => Ok(None),
            Some(ms) if ms.is_finite() && ms >= 0.0 => Ok(Some((ms * 1e6).round() as u64)),
            Some(ms) => Err(serde::de::Error::custom(format!(
                "invalid duration {ms} ms"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::SecondsFormat;
    use proptest::prelude::*;

    /// chrono's formatting, the reference the hand-written one must match.
    fn chrono_rfc3339(t: Timestamp) -> String {
        let dt = DateTime::<Utc>::from_timestamp(
            (t.0 / 1_000_000_000) as i64,
            (t.0 % 1_000_000_000) as u32,
        )
        .unwrap();
        dt.to_rfc3339_opts(SecondsFormat::Nanos, true)
    }

    #[test]
    fn formatting_matches_chrono_at_the_edges() {
        for t in [
            0,
            1,
            86_399_999_999_999,
            86_400_000_000_000,
            951_782_400_000_000_000,   // 2000-02-29
            951_868_800_000_000_000,   // 2000-03-01
            4_107_542_400_000_000_000, // 2100-02-28 (2100 is not a leap year)
            u64::MAX,
        ] {
            assert_eq!(
                Timestamp(t).to_rfc3339(),
                chrono_rfc3339(Timestamp(t)),
                "{t}"
            );
        }
        assert_eq!(
            serde_json::to_string(&Timestamp(1)).unwrap(),
            "\"1970-01-01T00:00:00.000000001Z\""
        );
    }

    proptest! {
        #[test]
        fn formatting_matches_chrono(t in any::<u64>()) {
            prop_assert_eq!(Timestamp(t).to_rfc3339(), chrono_rfc3339(Timestamp(t)));
        }

        /// Every time the type can hold reads back, 2262 and later included: a span stored
        /// with such a time once made its whole trace unreadable.
        #[test]
        fn every_time_reads_back(t in any::<u64>()) {
            prop_assert_eq!(Timestamp::parse_rfc3339(&Timestamp(t).to_rfc3339()), Ok(Timestamp(t)));
        }
    }

    #[test]
    fn nanosecond_round_trip() {
        let t = Timestamp(1_700_000_000_123_456_789);
        let s = t.to_rfc3339();
        assert_eq!(s, "2023-11-14T22:13:20.123456789Z");
        assert_eq!(Timestamp::parse_rfc3339(&s).unwrap(), t);
    }

    #[test]
    fn offsets_and_naive_times() {
        let a = Timestamp::parse_rfc3339("2025-03-01T12:00:00.5+01:00").unwrap();
        let b = Timestamp::parse_rfc3339("2025-03-01T11:00:00.500Z").unwrap();
        assert_eq!(a, b);
        let c = Timestamp::parse_rfc3339("2025-03-01T11:00:00.500000").unwrap();
        assert_eq!(b, c);
        assert!(Timestamp::parse_rfc3339("yesterday").is_err());
        assert!(Timestamp::parse_rfc3339("1969-12-31T23:59:59Z").is_err());
    }

    #[test]
    fn extremes_do_not_panic() {
        let s = Timestamp(u64::MAX).to_rfc3339();
        assert!(s.starts_with("2554-"));
        assert_eq!(Timestamp::parse_rfc3339(&s), Ok(Timestamp(u64::MAX)));
        assert!(Timestamp::parse_rfc3339("2554-07-21T23:34:33.709551616Z").is_err());
        assert_eq!(Timestamp(0).to_rfc3339(), "1970-01-01T00:00:00.000000000Z");
    }
}
