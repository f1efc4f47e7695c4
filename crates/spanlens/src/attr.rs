//! Attribute values the SDK records: cheap for the common cases (static keys, numbers, static strings).

use std::borrow::Cow;

/// An attribute key; `&'static str` keys cost no allocation.
pub type Key = Cow<'static, str>;

/// An attribute value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Boolean.
    Bool(bool),
    /// Signed integer.
    I64(i64),
    /// Float.
    F64(f64),
    /// Text.
    Str(Cow<'static, str>),
    /// A list of strings (tags, finish reasons, …).
    StrList(Vec<String>),
    /// Structured data, sent as JSON text (boxed to keep every value small).
    Json(Box<serde_json::Value>),
}

impl Value {
    /// The value as JSON (strings stay strings; `Json` stays structured).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Bool(b) => (*b).into(),
            Value::I64(i) => (*i).into(),
            Value::F64(f) => serde_json::Number::from_f64(*f)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            Value::Str(s) => serde_json::Value::String(s.to_string()),
            Value::StrList(l) => l
                .iter()
                .map(|s| serde_json::Value::String(s.clone()))
                .collect(),
            Value::Json(v) => (**v).clone(),
        }
    }

    /// Text form for display.
    pub fn as_text(&self) -> Cow<'_, str> {
        match self {
            Value::Str(s) => Cow::Borrowed(s),
            other => Cow::Owned(other.to_json().to_string()),
        }
    }
}

macro_rules! from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Value {
                Value::I64(v as i64)
            }
        }
    )*};
}
from_int!(i8, i16, i32, i64, u8, u16, u32, isize);

impl From<u64> for Value {
    fn from(v: u64) -> Value {
        Value::I64(i64::try_from(v).unwrap_or(i64::MAX))
    }
}

impl From<usize> for Value {
    fn from(v: usize) -> Value {
        Value::I64(i64::try_from(v).unwrap_or(i64::MAX))
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::F64(v)
    }
}

impl From<f32> for Value {
    fn from(v: f32) -> Value {
        Value::F64(f64::from(v))
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Bool(v)
    }
}

impl From<&'static str> for Value {
    fn from(v: &'static str) -> Value {
        Value::Str(Cow::Borrowed(v))
    }
}

impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Str(Cow::Owned(v))
    }
}

impl From<Cow<'static, str>> for Value {
    fn from(v: Cow<'static, str>) -> Value {
        Value::Str(v)
    }
}

impl From<Vec<String>> for Value {
    fn from(v: Vec<String>) -> Value {
        Value::StrList(v)
    }
}

impl From<serde_json::Value> for Value {
    fn from(v: serde_json::Value) -> Value {
        Value::Json(Box::new(v))
    }
}

/// A span's attributes: up to six live inline, so a typical span allocates nothing for them.
pub type AttributeList = smallvec::SmallVec<[(Key, Value); 6]>;

/// Appends an attribute, making its key and value straight in their slot.
///
/// `SmallVec::push` takes the pair whole, made before it checks its capacity (a call): the
/// compiler keeps the pair on the stack across that call, built with narrow stores (an enum's
/// tag, then its payload), and copies it with 16-byte loads that straddle them, which the CPU
/// cannot forward from its store buffer — a stall of a dozen cycles per attribute, most of a
/// five-attribute span's builder time in a profile. Converting after the capacity check lets
/// the compiler write the fields where they belong.
#[inline(always)]
pub(crate) fn push(list: &mut AttributeList, key: impl Into<Key>, value: impl Into<Value>) {
    if list.len() == list.capacity() {
        list.reserve(1);
    }
    let len = list.len();
    // SAFETY: `len < capacity` after the reserve, so the slot is allocated and unused; both
    // fields are written before `set_len` makes the slot part of the list.
    unsafe {
        let slot = list.as_mut_ptr().add(len);
        std::ptr::addr_of_mut!((*slot).0).write(key.into());
        std::ptr::addr_of_mut!((*slot).1).write(value.into());
        list.set_len(len + 1);
    }
}
