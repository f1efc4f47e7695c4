//! Rows in ClickHouse's `RowBinary` format, the cheapest for it to read: each value in column
//! order with no separators, numbers little-endian, strings and arrays after their length as
//! an unsigned LEB128 number, and a `Nullable` value after a byte saying whether it is NULL.

/// A buffer of rows being encoded. The caller writes each row's values in the order of the
/// column list its `INSERT … (columns) FORMAT RowBinary` names.
#[derive(Default)]
pub struct RowBinary {
    buf: Vec<u8>,
}

impl RowBinary {
    /// An empty buffer.
    pub fn new() -> RowBinary {
        RowBinary::default()
    }

    /// An empty buffer with room for `bytes`.
    pub fn with_capacity(bytes: usize) -> RowBinary {
        RowBinary {
            buf: Vec::with_capacity(bytes),
        }
    }

    /// Bytes encoded so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Nothing encoded yet.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// `UInt8`.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }

    /// `Bool`.
    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.u8(u8::from(v))
    }

    /// `UInt16`.
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// `UInt32`.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// `UInt64`.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// `Int64`, and `DateTime64(9)` (nanoseconds since the epoch).
    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// `Float64`.
    pub fn f64(&mut self, v: f64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// `String` from text.
    pub fn str(&mut self, v: &str) -> &mut Self {
        self.bytes(v.as_bytes())
    }

    /// `String` from bytes (ClickHouse's strings are bytes).
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.leb128(v.len() as u64);
        self.buf.extend_from_slice(v);
        self
    }

    /// `FixedString(N)`: exactly the `N` bytes, no length.
    pub fn fixed(&mut self, v: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(v);
        self
    }

    /// `Nullable(String)`.
    pub fn opt_str(&mut self, v: Option<&str>) -> &mut Self {
        match v {
            Some(s) => self.u8(0).str(s),
            None => self.u8(1),
        }
    }

    /// `Nullable(Int64)`.
    pub fn opt_i64(&mut self, v: Option<i64>) -> &mut Self {
        match v {
            Some(n) => self.u8(0).i64(n),
            None => self.u8(1),
        }
    }

    /// `Array(String)`.
    pub fn strs<S: AsRef<str>>(&mut self, v: &[S]) -> &mut Self {
        self.leb128(v.len() as u64);
        for s in v {
            self.str(s.as_ref());
        }
        self
    }

    /// The length of an `Array(T)` whose `n` elements follow.
    pub fn array_len(&mut self, n: usize) -> &mut Self {
        self.leb128(n as u64);
        self
    }

    fn leb128(&mut self, mut v: u64) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.buf.push(byte);
                return;
            }
            self.buf.push(byte | 0x80);
        }
    }

    /// The encoded rows.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::RowBinary;

    #[test]
    fn lengths_are_leb128_and_numbers_little_endian() {
        let mut r = RowBinary::new();
        r.str("")
            .str("ab")
            .u32(1)
            .i64(-2)
            .opt_str(None)
            .opt_i64(Some(3));
        r.bytes(&[7u8; 300]);
        let out = r.finish();
        assert_eq!(&out[..3], &[0, 2, b'a']);
        assert_eq!(&out[4..8], &[1, 0, 0, 0]);
        assert_eq!(&out[8..16], &(-2i64).to_le_bytes());
        assert_eq!(out[16], 1);
        assert_eq!(&out[17..26], &[0, 3, 0, 0, 0, 0, 0, 0, 0]);
        // 300 = 0b1_0010_1100: 0xAC then 0x02.
        assert_eq!(&out[26..28], &[0xAC, 0x02]);
        assert_eq!(out.len(), 28 + 300);
    }
}
