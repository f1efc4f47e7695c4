//! Trace and span identifiers: W3C/OTel-sized byte arrays that serialise as lowercase hex.
//!
//! Foreign ids (OpenAI Agents `trace_<32hex>`, `span_<24hex>`, or any other string) are
//! mapped deterministically so the same source id always lands on the same canonical id.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// Why a string is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The string has the wrong number of hex digits.
    #[error("expected {expected} hex digits, got {got}")]
    Length {
        /// Hex digits the id needs.
        expected: usize,
        /// Characters found.
        got: usize,
    },
    /// The string contains a character that is not a hex digit.
    #[error("invalid hex digit {0:?}")]
    NotHex(char),
    /// The id is all zeroes, which OTel defines as invalid.
    #[error("all-zero id is invalid")]
    Zero,
}

macro_rules! id_type {
    ($name:ident, $len:expr, $doc:literal) => {
        #[doc = $doc]
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            /// Number of bytes in this id.
            pub const LEN: usize = $len;

            /// Parses hex (either case) of exactly the right length; rejects all-zero ids.
            pub fn from_hex(s: &str) -> Result<Self, IdError> {
                let bytes = parse_hex::<$len>(s)?;
                if bytes.iter().all(|b| *b == 0) {
                    return Err(IdError::Zero);
                }
                Ok(Self(bytes))
            }

            /// Builds an id from raw bytes (as found in OTLP protobuf); wrong length or all-zero is an error.
            pub fn from_bytes(b: &[u8]) -> Result<Self, IdError> {
                let arr: [u8; $len] = b.try_into().map_err(|_| IdError::Length {
                    expected: $len * 2,
                    got: b.len() * 2,
                })?;
                if arr.iter().all(|x| *x == 0) {
                    return Err(IdError::Zero);
                }
                Ok(Self(arr))
            }

            /// Lowercase hex form.
            pub fn to_hex(&self) -> String {
                self.hex_digits().iter().map(|&b| b as char).collect()
            }

            /// Lowercase hex digits in a stack buffer: ids are serialised for every stored span,
            /// and a heap string per id showed in ingest profiles.
            fn hex_digits(&self) -> [u8; $len * 2] {
                const DIGITS: &[u8; 16] = b"0123456789abcdef";
                let mut out = [0u8; $len * 2];
                for (i, b) in self.0.iter().enumerate() {
                    out[2 * i] = DIGITS[usize::from(b >> 4)];
                    out[2 * i + 1] = DIGITS[usize::from(b & 0xf)];
                }
                out
            }

            /// Maps any foreign id string onto this id space deterministically.
            ///
            /// If the string (after an optional `prefix_` such as `trace_`) is exactly the right
            /// amount of hex it is used as is, so ids stay recognisable; otherwise the string is hashed.
            pub fn from_foreign(s: &str) -> Self {
                let body = s.split_once('_').map(|(_, b)| b).unwrap_or(s);
                if let Ok(id) = Self::from_hex(body) {
                    return id;
                }
                let mut out = [0u8; $len];
                for (chunk, seed) in out.chunks_mut(8).zip(0u64..) {
                    let h = fnv1a64(s.as_bytes(), seed).to_be_bytes();
                    chunk.copy_from_slice(&h[..chunk.len()]);
                }
                if out.iter().all(|b| *b == 0) {
                    out[$len - 1] = 1;
                }
                Self(out)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                for b in self.0 {
                    write!(f, "{b:02x}")?;
                }
                Ok(())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({self})", stringify!($name))
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::from_hex(s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let digits = self.hex_digits();
                // Only ASCII hex digits were written, so this never fails.
                s.serialize_str(std::str::from_utf8(&digits).unwrap_or_default())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::from_hex(&s).map_err(|e| serde::de::Error::custom(format!("{e} in id {s:?}")))
            }
        }
    };
}

id_type!(
    TraceId,
    16,
    "A 16-byte trace id (32 lowercase hex digits in JSON)."
);
id_type!(
    SpanId,
    8,
    "An 8-byte span id (16 lowercase hex digits in JSON)."
);

fn parse_hex<const N: usize>(s: &str) -> Result<[u8; N], IdError> {
    if s.len() != N * 2 {
        return Err(IdError::Length {
            expected: N * 2,
            got: s.chars().count(),
        });
    }
    let mut out = [0u8; N];
    let bytes = s.as_bytes();
    for (i, o) in out.iter_mut().enumerate() {
        let hi = hex_val(bytes[2 * i])?;
        let lo = hex_val(bytes[2 * i + 1])?;
        *o = (hi << 4) | lo;
    }
    Ok(out)
}

fn hex_val(c: u8) -> Result<u8, IdError> {
    match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err(IdError::NotHex(c as char)),
    }
}

/// FNV-1a, seeded; stable across releases so foreign ids keep mapping to the same canonical id.
fn fnv1a64(data: &[u8], seed: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_case() {
        let t = TraceId::from_hex("5B8EFFF798038103D269B633813FC60C").unwrap();
        assert_eq!(t.to_hex(), "5b8efff798038103d269b633813fc60c");
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            "\"5b8efff798038103d269b633813fc60c\""
        );
        let back: TraceId = serde_json::from_str("\"5b8efff798038103d269b633813fc60c\"").unwrap();
        assert_eq!(back, t);
    }

    #[test]
    fn bad_ids_are_rejected() {
        assert_eq!(
            SpanId::from_hex("abc"),
            Err(IdError::Length {
                expected: 16,
                got: 3
            })
        );
        assert_eq!(
            SpanId::from_hex("zz00000000000000"),
            Err(IdError::NotHex('z'))
        );
        assert_eq!(SpanId::from_hex("0000000000000000"), Err(IdError::Zero));
        assert!(SpanId::from_bytes(&[1, 2, 3]).is_err());
        assert!(SpanId::from_hex("ééééééé").is_err());
    }

    #[test]
    fn foreign_ids_map_deterministically() {
        let t = TraceId::from_foreign("trace_0123456789abcdef0123456789abcdef");
        assert_eq!(t.to_hex(), "0123456789abcdef0123456789abcdef");
        let s1 = SpanId::from_foreign("span_0123456789abcdef01234567");
        let s2 = SpanId::from_foreign("span_0123456789abcdef01234567");
        let s3 = SpanId::from_foreign("span_0123456789abcdef01234568");
        assert_eq!(s1, s2);
        assert_ne!(s1, s3);
        assert_ne!(TraceId::from_foreign("x").0, [0; 16]);
    }
}
