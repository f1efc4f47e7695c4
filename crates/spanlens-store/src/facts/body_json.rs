//! Compact JSON for stored span bodies: the same bytes `serde_json::to_writer` writes, made
//! cheaper for the long strings spans carry (prompts, completions, tool output).
//!
//! Why not `serde_json` itself: its string escaper looks up every byte in a table, and on an
//! ingest profile it was the largest single function (7% of a span's server instructions). This
//! writer skips eight bytes at a time while none of them needs escaping. Everything else
//! (numbers, the escapes themselves) is written the way `serde_json` writes it, and the tests
//! check byte equality against it.

use serde::ser::{self, Serialize};
use serde_json::ser::{CompactFormatter, Formatter};
use std::fmt;

/// Appends the compact JSON of `value` to `out`. On an error, `out` may hold part of it.
pub fn write<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), Error> {
    value.serialize(&mut Writer { out })
}

/// Why a value could not be written as JSON (what its `Serialize` impl or a map key refused).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl ser::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

fn key_must_be_a_string() -> Error {
    Error("key must be a string".to_string())
}

/// Each byte of a word set to `b`.
const fn splat(b: u8) -> u64 {
    u64::from_ne_bytes([b; 8])
}

const LOW7: u64 = splat(0x7F);
const HIGH: u64 = splat(0x80);

/// The high bit of each byte of `y` that is zero. No carry crosses bytes (0x7F + 0x7F fits in
/// one), so the mask is exact, which lets the first marked byte be found with a bit count.
#[inline(always)]
fn zero_bytes(y: u64) -> u64 {
    !(((y & LOW7) + LOW7) | y) & HIGH
}

/// The high bit of each byte of `word` that JSON must escape: a control character (below
/// 0x20), `"` or `\`. Bytes of multi-byte UTF-8 characters are all 0x80 or above.
#[inline(always)]
fn escape_mask(word: u64) -> u64 {
    // A byte is below 0x20 when its high bit is clear and its low seven bits plus 0x60 do not
    // reach 0x80.
    let control = !(((word & LOW7) + splat(0x60)) | word) & HIGH;
    control | zero_bytes(word ^ splat(b'"')) | zero_bytes(word ^ splat(b'\\'))
}

/// Appends the escape of `byte` (one `escape_mask` marks), as `serde_json` writes it.
#[inline(always)]
fn push_escape(out: &mut Vec<u8>, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let short = match byte {
        b'"' => b'"',
        b'\\' => b'\\',
        0x08 => b'b',
        0x09 => b't',
        0x0A => b'n',
        0x0C => b'f',
        0x0D => b'r',
        0..=0x1F => {
            let hex = [HEX[usize::from(byte >> 4)], HEX[usize::from(byte & 15)]];
            out.extend_from_slice(&[b'\\', b'u', b'0', b'0', hex[0], hex[1]]);
            return;
        }
        // Not reached (the mask marks only the bytes above), but written as is if it were.
        _ => {
            out.push(byte);
            return;
        }
    };
    out.extend_from_slice(&[b'\\', short]);
}

/// Appends `s` as a JSON string, quotes included.
///
/// Eight bytes at a time: each word is copied whole (a fixed-size copy, no call), and when it
/// holds a byte to escape the copy is cut back to just before that byte, which is written
/// escaped, and the next word starts after it. The last few bytes are padded with spaces to a
/// word, so short strings (most keys) take one pass, not a loop per byte. Raw attributes often
/// hold JSON text, with a quote every few bytes, so escapes are cheap too.
fn write_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2 + 8);
    out.push(b'"');
    let mut i = 0;
    while i < bytes.len() {
        let (word, len) = match bytes.get(i..i + 8) {
            Some(chunk) => (chunk.try_into().expect("eight bytes"), 8),
            None => {
                let rest = &bytes[i..];
                let mut word = [b' '; 8];
                word[..rest.len()].copy_from_slice(rest);
                (word, rest.len())
            }
        };
        out.extend_from_slice(&word);
        let mask = escape_mask(u64::from_le_bytes(word));
        if mask == 0 {
            out.truncate(out.len() - 8 + len);
            i += len;
            continue;
        }
        // Little-endian: the lowest marked byte is the first in the text (never padding:
        // a space needs no escape).
        let at = (mask.trailing_zeros() / 8) as usize;
        out.truncate(out.len() - 8 + at);
        push_escape(out, word[at]);
        i += at + 1;
    }
    out.push(b'"');
}

/// Numbers go through `serde_json`'s own formatter, so they read back exactly as before.
macro_rules! number {
    ($out:expr, $method:ident, $v:expr) => {
        CompactFormatter
            .$method($out, $v)
            .expect("writing to a Vec does not fail")
    };
}

/// Methods the value and key serializers share: strings and what is written as one (a char, an
/// enum's unit variant, a newtype's content), and booleans and integers, whose text goes
/// through `$emit` (written as is for a value, between quotes for a key).
macro_rules! alike {
    ($emit:ident) => {
        fn serialize_bool(self, v: bool) -> Result<(), Error> {
            self.$emit(|out| out.extend_from_slice(if v { b"true" } else { b"false" }))
        }
        fn serialize_i64(self, v: i64) -> Result<(), Error> {
            self.$emit(|out| number!(out, write_i64, v))
        }
        fn serialize_i128(self, v: i128) -> Result<(), Error> {
            self.$emit(|out| number!(out, write_i128, v))
        }
        fn serialize_u64(self, v: u64) -> Result<(), Error> {
            self.$emit(|out| number!(out, write_u64, v))
        }
        fn serialize_u128(self, v: u128) -> Result<(), Error> {
            self.$emit(|out| number!(out, write_u128, v))
        }
        fn serialize_str(self, v: &str) -> Result<(), Error> {
            write_str(self.out, v);
            Ok(())
        }
        fn serialize_char(self, v: char) -> Result<(), Error> {
            self.serialize_str(v.encode_utf8(&mut [0; 4]))
        }
        fn serialize_unit_variant(
            self,
            _name: &'static str,
            _index: u32,
            variant: &'static str,
        ) -> Result<(), Error> {
            self.serialize_str(variant)
        }
        fn serialize_newtype_struct<T: Serialize + ?Sized>(
            self,
            _name: &'static str,
            value: &T,
        ) -> Result<(), Error> {
            value.serialize(self)
        }
        fn serialize_i8(self, v: i8) -> Result<(), Error> {
            self.serialize_i64(v.into())
        }
        fn serialize_i16(self, v: i16) -> Result<(), Error> {
            self.serialize_i64(v.into())
        }
        fn serialize_i32(self, v: i32) -> Result<(), Error> {
            self.serialize_i64(v.into())
        }
        fn serialize_u8(self, v: u8) -> Result<(), Error> {
            self.serialize_u64(v.into())
        }
        fn serialize_u16(self, v: u16) -> Result<(), Error> {
            self.serialize_u64(v.into())
        }
        fn serialize_u32(self, v: u32) -> Result<(), Error> {
            self.serialize_u64(v.into())
        }
    };
}

/// The serializer: appends to one buffer.
struct Writer<'a> {
    out: &'a mut Vec<u8>,
}

impl Writer<'_> {
    /// A scalar's text, written as is.
    fn raw(&mut self, write: impl FnOnce(&mut Vec<u8>)) -> Result<(), Error> {
        write(self.out);
        Ok(())
    }

    /// `{"variant":` — how an enum variant with content opens.
    fn open_variant(&mut self, variant: &str) {
        self.out.push(b'{');
        write_str(self.out, variant);
        self.out.push(b':');
    }
}

/// A sequence or map being written: whether a comma goes before the next element, and whether
/// it is the content of an enum variant (closed by one more `}`).
struct Compound<'w, 'a> {
    writer: &'w mut Writer<'a>,
    first: bool,
    in_variant: bool,
}

impl<'w, 'a> Compound<'w, 'a> {
    fn open(writer: &'w mut Writer<'a>, bracket: u8, in_variant: bool) -> Self {
        writer.out.push(bracket);
        Compound {
            writer,
            first: true,
            in_variant,
        }
    }

    fn comma(&mut self) {
        if !self.first {
            self.writer.out.push(b',');
        }
        self.first = false;
    }

    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.comma();
        value.serialize(&mut *self.writer)
    }

    fn field<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> Result<(), Error> {
        self.comma();
        write_str(self.writer.out, key);
        self.writer.out.push(b':');
        value.serialize(&mut *self.writer)
    }

    fn close(self, bracket: u8) -> Result<(), Error> {
        self.writer.out.push(bracket);
        if self.in_variant {
            self.writer.out.push(b'}');
        }
        Ok(())
    }
}

impl<'w, 'a> ser::Serializer for &'w mut Writer<'a> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Compound<'w, 'a>;
    type SerializeTuple = Compound<'w, 'a>;
    type SerializeTupleStruct = Compound<'w, 'a>;
    type SerializeTupleVariant = Compound<'w, 'a>;
    type SerializeMap = Compound<'w, 'a>;
    type SerializeStruct = Compound<'w, 'a>;
    type SerializeStructVariant = Compound<'w, 'a>;

    alike!(raw);
    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        // Like serde_json: JSON has no NaN or infinity, so they are written as null.
        if v.is_finite() {
            self.raw(|out| number!(out, write_f32, v))
        } else {
            self.serialize_unit()
        }
    }
    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        if v.is_finite() {
            self.raw(|out| number!(out, write_f64, v))
        } else {
            self.serialize_unit()
        }
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Error> {
        // Like serde_json: an array of numbers.
        use ser::SerializeSeq;
        let mut seq = self.serialize_seq(Some(v.len()))?;
        for b in v {
            seq.serialize_element(b)?;
        }
        seq.end()
    }
    fn serialize_none(self) -> Result<(), Error> {
        self.serialize_unit()
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Error> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Error> {
        self.serialize_unit()
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.open_variant(variant);
        value.serialize(&mut *self)?;
        self.out.push(b'}');
        Ok(())
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Compound<'w, 'a>, Error> {
        Ok(Compound::open(self, b'[', false))
    }
    fn serialize_tuple(self, len: usize) -> Result<Compound<'w, 'a>, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<Compound<'w, 'a>, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'w, 'a>, Error> {
        self.open_variant(variant);
        Ok(Compound::open(self, b'[', true))
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Compound<'w, 'a>, Error> {
        Ok(Compound::open(self, b'{', false))
    }
    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Compound<'w, 'a>, Error> {
        Ok(Compound::open(self, b'{', false))
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'w, 'a>, Error> {
        self.open_variant(variant);
        Ok(Compound::open(self, b'{', true))
    }
}

/// The four sequence-like compounds differ only in the names serde gives their methods.
macro_rules! sequence {
    ($($trait:ident :: $method:ident),*) => {$(
        impl ser::$trait for Compound<'_, '_> {
            type Ok = ();
            type Error = Error;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
                self.element(value)
            }
            fn end(self) -> Result<(), Error> {
                self.close(b']')
            }
        }
    )*};
}

sequence!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

impl ser::SerializeMap for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        self.comma();
        key.serialize(KeyWriter {
            out: self.writer.out,
        })?;
        self.writer.out.push(b':');
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        value.serialize(&mut *self.writer)
    }
    fn end(self) -> Result<(), Error> {
        self.close(b'}')
    }
}

/// A struct and a struct variant's fields are written alike.
macro_rules! fields {
    ($($trait:ident),*) => {$(
        impl ser::$trait for Compound<'_, '_> {
            type Ok = ();
            type Error = Error;
            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                key: &'static str,
                value: &T,
            ) -> Result<(), Error> {
                self.field(key, value)
            }
            fn end(self) -> Result<(), Error> {
                self.close(b'}')
            }
        }
    )*};
}

fields!(SerializeStruct, SerializeStructVariant);

/// Writes a map key. JSON keys are strings, so like `serde_json` this takes strings, chars,
/// unit variants and numbers and booleans (quoted), and refuses anything else.
struct KeyWriter<'a> {
    out: &'a mut Vec<u8>,
}

impl KeyWriter<'_> {
    /// A key written as a number or word between quotes.
    fn quoted(self, write: impl FnOnce(&mut Vec<u8>)) -> Result<(), Error> {
        self.out.push(b'"');
        write(self.out);
        self.out.push(b'"');
        Ok(())
    }
}

impl ser::Serializer for KeyWriter<'_> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = ser::Impossible<(), Error>;
    type SerializeTuple = ser::Impossible<(), Error>;
    type SerializeTupleStruct = ser::Impossible<(), Error>;
    type SerializeTupleVariant = ser::Impossible<(), Error>;
    type SerializeMap = ser::Impossible<(), Error>;
    type SerializeStruct = ser::Impossible<(), Error>;
    type SerializeStructVariant = ser::Impossible<(), Error>;

    alike!(quoted);
    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        if !v.is_finite() {
            return Err(Error("float key must be finite".to_string()));
        }
        self.quoted(|out| number!(out, write_f32, v))
    }
    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        if !v.is_finite() {
            return Err(Error("float key must be finite".to_string()));
        }
        self.quoted(|out| number!(out, write_f64, v))
    }
    fn serialize_bytes(self, _v: &[u8]) -> Result<(), Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_none(self) -> Result<(), Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _value: &T) -> Result<(), Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_unit(self) -> Result<(), Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<(), Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct, Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStruct, Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, Error> {
        Err(key_must_be_a_string())
    }
}

#[cfg(test)]
mod tests;
