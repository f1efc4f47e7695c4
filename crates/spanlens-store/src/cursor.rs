//! Opaque pagination cursors: the sort key and id of the last row of a page, so the next page
//! starts strictly after it (keyset pagination, stable while new rows arrive).

use crate::error::StoreError;
use crate::types::{SortField, SortOrder};
use spanlens_core::TraceId;

/// The value of the sort column at the last row of a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SortKey {
    /// A numeric column (time, duration, cost, tokens, counts).
    Int(i64),
    /// A text column (name, status, user).
    Text(String),
}

/// Where the trace list stopped: sort, direction, key and trace id of the last row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceCursor {
    /// Sort column the cursor belongs to.
    pub sort: SortField,
    /// Direction the cursor belongs to.
    pub order: SortOrder,
    /// Sort key of the last row.
    pub key: SortKey,
    /// Trace id of the last row (the tie-breaker).
    pub trace_id: TraceId,
}

impl TraceCursor {
    /// Encodes the cursor as a URL-safe opaque string.
    pub fn encode(&self) -> String {
        let key = match &self.key {
            SortKey::Int(i) => format!("i{i}"),
            SortKey::Text(s) => format!("s{s}"),
        };
        let raw = format!(
            "t1|{}|{}|{}|{key}",
            self.sort.as_str(),
            self.order.as_str(),
            self.trace_id.to_hex()
        );
        b64_encode(raw.as_bytes())
    }

    /// Decodes a cursor and checks it belongs to the query's sort and direction.
    pub fn decode(s: &str, sort: SortField, order: SortOrder) -> Result<TraceCursor, StoreError> {
        let bad = |why: &str| StoreError::InvalidCursor(format!("{why} in cursor {s:?}"));
        let bytes = b64_decode(s).ok_or_else(|| bad("bad encoding"))?;
        let raw = String::from_utf8(bytes).map_err(|_| bad("bad encoding"))?;
        let mut parts = raw.splitn(5, '|');
        let (Some(ver), Some(f), Some(o), Some(t), Some(k)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(bad("missing fields"));
        };
        if ver != "t1" {
            return Err(bad("unknown version"));
        }
        let f = SortField::parse(f).ok_or_else(|| bad("unknown sort"))?;
        let o = SortOrder::parse(o).ok_or_else(|| bad("unknown order"))?;
        if f != sort || o != order {
            return Err(StoreError::InvalidCursor(format!(
                "cursor was made for sort {} {}, not {} {}",
                f.as_str(),
                o.as_str(),
                sort.as_str(),
                order.as_str()
            )));
        }
        let trace_id = TraceId::from_hex(t).map_err(|_| bad("bad trace id"))?;
        let key = if let Some(i) = k.strip_prefix('i') {
            SortKey::Int(i.parse().map_err(|_| bad("bad key"))?)
        } else if let Some(s) = k.strip_prefix('s') {
            SortKey::Text(s.to_string())
        } else {
            return Err(bad("bad key"));
        };
        Ok(TraceCursor {
            sort,
            order,
            key,
            trace_id,
        })
    }
}

/// Where the session list stopped: last activity and id of the last session of a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionCursor {
    /// Last activity (ns) of the last row.
    pub last_ns: i64,
    /// Session id of the last row (the tie-breaker).
    pub session_id: String,
}

impl SessionCursor {
    /// Encodes the cursor as a URL-safe opaque string.
    pub fn encode(&self) -> String {
        b64_encode(format!("s1|{}|{}", self.last_ns, self.session_id).as_bytes())
    }

    /// Decodes a cursor made by `encode`.
    pub fn decode(s: &str) -> Result<SessionCursor, StoreError> {
        let bad = |why: &str| StoreError::InvalidCursor(format!("{why} in cursor {s:?}"));
        let bytes = b64_decode(s).ok_or_else(|| bad("bad encoding"))?;
        let raw = String::from_utf8(bytes).map_err(|_| bad("bad encoding"))?;
        let mut parts = raw.splitn(3, '|');
        let (Some("s1"), Some(n), Some(id)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("not a session cursor"));
        };
        Ok(SessionCursor {
            last_ns: n.parse().map_err(|_| bad("bad time"))?,
            session_id: id.to_string(),
        })
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Base64url without padding (RFC 4648 §5), so cursors go into query strings unescaped.
fn b64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            let idx = (n >> (18 - 6 * i)) & 63;
            out.push(char::from(B64[idx as usize]));
        }
    }
    out
}

fn b64_value(c: u8) -> Option<u32> {
    B64.iter().position(|x| *x == c).map(|p| p as u32)
}

/// Decodes base64url without padding; `None` for any malformed input.
fn b64_decode(s: &str) -> Option<Vec<u8>> {
    let bytes = s.trim_end_matches('=').as_bytes();
    if bytes.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= b64_value(*c)? << (18 - 6 * i);
        }
        let produced = chunk.len() - 1;
        for i in 0..produced {
            out.push(((n >> (16 - 8 * i)) & 0xff) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_every_length() {
        for len in 0..20 {
            let data: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            assert_eq!(b64_decode(&b64_encode(&data)), Some(data));
        }
        assert_eq!(b64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(b64_encode(b"fo"), "Zm8");
        assert_eq!(b64_decode("Z"), None);
        assert_eq!(b64_decode("Zm9v!"), None);
    }

    #[test]
    fn trace_cursor_round_trip_and_mismatch() {
        let c = TraceCursor {
            sort: SortField::Name,
            order: SortOrder::Asc,
            key: SortKey::Text("a|b|c".into()),
            trace_id: TraceId::from_hex("0123456789abcdef0123456789abcdef").unwrap(),
        };
        let s = c.encode();
        assert_eq!(
            TraceCursor::decode(&s, SortField::Name, SortOrder::Asc).unwrap(),
            c
        );
        assert!(TraceCursor::decode(&s, SortField::Cost, SortOrder::Asc).is_err());
        assert!(TraceCursor::decode("garbage!!", SortField::Name, SortOrder::Asc).is_err());
        assert!(TraceCursor::decode("", SortField::Name, SortOrder::Asc).is_err());
    }

    #[test]
    fn session_cursor_round_trip() {
        let c = SessionCursor {
            last_ns: 42,
            session_id: "s|1".into(),
        };
        assert_eq!(SessionCursor::decode(&c.encode()).unwrap(), c);
        assert!(SessionCursor::decode(&b64_encode(b"t1|x")).is_err());
    }
}
