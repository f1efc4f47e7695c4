//! Reading answers in ClickHouse's `RowBinary` output format (the mirror of
//! [`super::RowBinary`]): values in column order, numbers little-endian, strings after an
//! unsigned LEB128 length, `Nullable` values after a null byte. A short or malformed answer is
//! an error naming what was being read, never a panic.

/// A malformed answer: what was expected, where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed RowBinary answer at byte {at}: {what}")]
pub struct RowError {
    /// Offset in the answer.
    pub at: usize,
    /// What could not be read.
    pub what: &'static str,
}

/// A cursor over an answer's bytes.
pub struct RowReader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> RowReader<'a> {
    /// Reads `buf` from its start.
    pub fn new(buf: &'a [u8]) -> RowReader<'a> {
        RowReader { buf, at: 0 }
    }

    /// Every row read.
    pub fn is_empty(&self) -> bool {
        self.at >= self.buf.len()
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], RowError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.buf.len());
        match end {
            Some(end) => {
                let s = &self.buf[self.at..end];
                self.at = end;
                Ok(s)
            }
            None => Err(RowError { at: self.at, what }),
        }
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], RowError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    /// `UInt8` / `Bool`.
    pub fn u8(&mut self) -> Result<u8, RowError> {
        Ok(self.take(1, "UInt8")?[0])
    }

    /// `Bool`.
    pub fn bool(&mut self) -> Result<bool, RowError> {
        Ok(self.u8()? != 0)
    }

    /// `UInt16`.
    pub fn u16(&mut self) -> Result<u16, RowError> {
        Ok(u16::from_le_bytes(self.array("UInt16")?))
    }

    /// `UInt32`.
    pub fn u32(&mut self) -> Result<u32, RowError> {
        Ok(u32::from_le_bytes(self.array("UInt32")?))
    }

    /// `UInt64`.
    pub fn u64(&mut self) -> Result<u64, RowError> {
        Ok(u64::from_le_bytes(self.array("UInt64")?))
    }

    /// `Int64`.
    pub fn i64(&mut self) -> Result<i64, RowError> {
        Ok(i64::from_le_bytes(self.array("Int64")?))
    }

    /// `Int128`.
    pub fn i128(&mut self) -> Result<i128, RowError> {
        Ok(i128::from_le_bytes(self.array("Int128")?))
    }

    /// `Float64`.
    pub fn f64(&mut self) -> Result<f64, RowError> {
        Ok(f64::from_le_bytes(self.array("Float64")?))
    }

    /// A LEB128 length, bounded by what is left (a corrupt length cannot ask for gigabytes).
    pub fn len(&mut self) -> Result<usize, RowError> {
        let at = self.at;
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return usize::try_from(v)
                    .ok()
                    .filter(|&n| n <= self.buf.len())
                    .ok_or(RowError { at, what: "length" });
            }
        }
        Err(RowError { at, what: "length" })
    }

    /// `String` as bytes.
    pub fn bytes(&mut self) -> Result<&'a [u8], RowError> {
        let n = self.len()?;
        self.take(n, "String")
    }

    /// `String` as text (invalid UTF-8 replaced: a stored string is shown, never refused).
    pub fn string(&mut self) -> Result<String, RowError> {
        Ok(String::from_utf8_lossy(self.bytes()?).into_owned())
    }

    /// `FixedString(N)`.
    pub fn fixed<const N: usize>(&mut self) -> Result<[u8; N], RowError> {
        self.array("FixedString")
    }

    /// `Nullable(T)` with `T` read by `f`.
    pub fn nullable<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, RowError>,
    ) -> Result<Option<T>, RowError> {
        if self.u8()? != 0 {
            Ok(None)
        } else {
            f(self).map(Some)
        }
    }

    /// `Array(T)` with each `T` read by `f`.
    pub fn array_of<T>(
        &mut self,
        mut f: impl FnMut(&mut Self) -> Result<T, RowError>,
    ) -> Result<Vec<T>, RowError> {
        let n = self.len()?;
        let mut out = Vec::with_capacity(n.min(4096));
        for _ in 0..n {
            out.push(f(self)?);
        }
        Ok(out)
    }

    /// `Array(String)`.
    pub fn strings(&mut self) -> Result<Vec<String>, RowError> {
        self.array_of(|r| r.string())
    }
}

impl From<RowError> for crate::error::StoreError {
    fn from(e: RowError) -> Self {
        crate::error::StoreError::Corrupt {
            table: "a ClickHouse answer",
            reason: e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::RowReader;
    use crate::clickhouse::RowBinary;

    #[test]
    fn reads_back_what_the_writer_encodes() {
        let mut w = RowBinary::new();
        w.str("héllo")
            .i64(-5)
            .opt_str(None)
            .opt_i64(Some(7))
            .strs(&["a", "bc"])
            .fixed(&[1, 2])
            .u32(9)
            .bool(true);
        w.bytes(&[0u8; 300]);
        let buf = w.finish();
        let mut r = RowReader::new(&buf);
        assert_eq!(r.string().unwrap(), "héllo");
        assert_eq!(r.i64().unwrap(), -5);
        assert_eq!(r.nullable(|r| r.string()).unwrap(), None);
        assert_eq!(r.nullable(|r| r.i64()).unwrap(), Some(7));
        assert_eq!(r.strings().unwrap(), vec!["a", "bc"]);
        assert_eq!(r.fixed::<2>().unwrap(), [1, 2]);
        assert_eq!(r.u32().unwrap(), 9);
        assert!(r.bool().unwrap());
        assert_eq!(r.bytes().unwrap().len(), 300);
        assert!(r.is_empty());
        assert!(r.u8().is_err());
    }

    #[test]
    fn a_length_past_the_end_is_an_error_not_an_allocation() {
        // A length of 2^62 followed by nothing.
        let buf = [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40];
        let err = RowReader::new(&buf).bytes().unwrap_err();
        assert_eq!(err.what, "length");
        let err = RowReader::new(&[3, b'a', b'b']).bytes().unwrap_err();
        assert_eq!(err.what, "String");
    }
}
