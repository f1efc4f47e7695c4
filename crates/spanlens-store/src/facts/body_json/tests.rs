//! The writer must write exactly what `serde_json` writes: stored bodies are read back by it,
//! and bodies written before this writer existed must compare equal to new ones.

use super::{escape_mask, write};
use proptest::prelude::*;
use serde::Serialize;
use serde_json::{json, Value};
use spanlens_core::Timestamp;
use spanlens_demo::{LoadGen, LoadOptions};
use std::collections::BTreeMap;

/// Asserts both writers give the same bytes for `value`.
fn same<T: Serialize + ?Sized>(value: &T) {
    let mut ours = b"prefix".to_vec();
    write(value, &mut ours).expect("writes");
    let theirs = serde_json::to_vec(value).expect("serde_json writes");
    assert_eq!(
        String::from_utf8_lossy(&ours[6..]),
        String::from_utf8_lossy(&theirs)
    );
    assert_eq!(&ours[..6], b"prefix", "what was in the buffer stays");
}

#[test]
fn every_ascii_byte_at_every_offset_of_a_word() {
    for byte in 0u8..128 {
        for before in 0..17 {
            for after in [0, 1, 7, 8, 9] {
                let s = format!(
                    "{}{}{}",
                    "a".repeat(before),
                    byte as char,
                    "é".repeat(after)
                );
                same(&s);
            }
        }
    }
}

#[test]
fn escapes_next_to_each_other_and_at_the_ends() {
    for s in [
        "",
        "\"",
        "\\",
        "\"\"\\\\\n\r\t\u{8}\u{c}\u{0}\u{1f}\u{7f}",
        "\nline one\nline two\n",
        "tab\tat 3 and 12\tthen \"quoted\" text with a \\ in it",
        "日本語のテキスト \"引用\" と 🎉 emoji\u{1}",
        "exactly8",
        "exactly8exactly8",
        "exactly\n",
    ] {
        same(s);
    }
}

/// The bytes `escape_mask` marks, in text order.
fn marked(word: [u8; 8]) -> [bool; 8] {
    let mask = escape_mask(u64::from_le_bytes(word));
    std::array::from_fn(|i| mask & (0x80 << (8 * i)) != 0)
}

fn must_escape(byte: u8) -> bool {
    byte < 0x20 || byte == b'"' || byte == b'\\'
}

#[test]
fn the_word_mask_marks_exactly_the_bytes_json_escapes() {
    for byte in 0u8..=255 {
        for pos in 0..8 {
            for fill in [b'x', 0x00, 0x1F, 0x20, b'"', b'\\', 0x7F, 0x80, 0xFF] {
                let mut word = [fill; 8];
                word[pos] = byte;
                assert_eq!(
                    marked(word),
                    word.map(must_escape),
                    "byte {byte:#04x} at {pos} among {fill:#04x}"
                );
            }
        }
    }
}

proptest! {
    #[test]
    fn the_word_mask_is_exact_on_any_word(word in any::<[u8; 8]>()) {
        prop_assert_eq!(marked(word), word.map(must_escape));
    }
}

#[test]
fn numbers_and_shapes() {
    same(&json!({
        "i": -9_223_372_036_854_775_808i64,
        "u": u64::MAX,
        "f": [0.1, 1e300, -2.5e-308, 1.0, 0.0, -0.0, 123_456_789.123_456_78],
        "b": [true, false, null],
        "nested": {"a": [[], {}, [{}], {"x": [1, "two", 3.0]}]},
        "": "empty key",
        "key \"quoted\"\n": "v"
    }));
    same(&[f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1.5]);
    same(&[f32::NAN, 0.1f32, 3.0f32]);
    same(&(1u8, -2i8, 'c', '"', "s", (), Some(5u16), None::<u32>));
    same(&[i128::MIN, 0]);
    same(&[u128::MAX]);
    same(&Bytes(vec![0, 1, 255]));
}

/// Bytes that serialize as bytes (not as a sequence of numbers).
struct Bytes(Vec<u8>);

impl Serialize for Bytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

#[derive(Serialize)]
enum Shape {
    Unit,
    Newtype(String),
    Tuple(u8, String),
    Struct { a: Option<u8>, b: Vec<String> },
}

#[derive(Serialize)]
struct Wrapper(Value);

#[derive(Serialize)]
struct Unit;

#[test]
fn enums_structs_and_map_keys() {
    same(&[
        Shape::Unit,
        Shape::Newtype("n\"".into()),
        Shape::Tuple(1, "t".into()),
        Shape::Struct {
            a: None,
            b: vec!["x".into(), "\u{0}".into()],
        },
    ]);
    same(&Wrapper(json!({"k": [1]})));
    same(&Unit);
    let mut keys = BTreeMap::new();
    keys.insert(7i32, "seven");
    keys.insert(-1i32, "minus one");
    same(&keys);
    let mut bools = BTreeMap::new();
    bools.insert(true, 1);
    same(&bools);
    let mut chars = BTreeMap::new();
    chars.insert('\n', 1);
    same(&chars);
}

#[test]
fn a_key_that_is_not_a_string_is_refused() {
    let mut m = BTreeMap::new();
    m.insert(vec![1u8], 1);
    let err = write(&m, &mut Vec::new()).unwrap_err();
    assert_eq!(err.to_string(), "key must be a string");
    assert!(serde_json::to_vec(&m).is_err());
}

#[test]
fn load_and_demo_spans_are_written_as_serde_json_writes_them() {
    let mut load = LoadGen::new(
        7,
        LoadOptions {
            rate_limits: true,
            ..LoadOptions::default()
        },
    );
    let start = Timestamp(1_700_000_000_000_000_000);
    let mut spans = Vec::new();
    for n in 0..20 {
        spans.extend(load.trace(n, start));
    }
    spans.extend(spanlens_demo::generate(3, start));
    assert!(spans.len() > 300);
    for span in &spans {
        same(span);
    }
}

/// Any JSON value, with strings drawn from all of Unicode and rich in escapes.
fn value() -> impl Strategy<Value = Value> {
    let text = prop_oneof![any::<String>(), "[a-z\"\\\\\n\t\u{0}-\u{1f} é日]{0,40}",];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        text.clone().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::from),
            prop::collection::vec((text.clone(), inner), 0..8)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn any_string_is_written_as_serde_json_writes_it(s in any::<String>()) {
        same(&s);
    }

    #[test]
    fn any_value_is_written_as_serde_json_writes_it(v in value()) {
        same(&v);
    }
}
