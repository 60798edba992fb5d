//! The item model: DynamoDB's ten attribute types, with numbers kept as their exact decimal
//! strings and binaries as bytes (base64 on the wire).
//!
//! This typed model is the edge adapter (the CLI, tests, conversions); the hot path moves
//! items as validated raw JSON ([`crate::RawItem`]).

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

/// One DynamoDB item: attribute name to value.
pub type Item = BTreeMap<String, Value>;

/// One DynamoDB attribute value, as the low-level API writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `{"S": "..."}`
    S(String),
    /// `{"N": "..."}`: the exact decimal string, every digit kept.
    N(String),
    /// `{"B": "<base64>"}`
    B(Vec<u8>),
    /// `{"SS": [...]}`, never empty.
    Ss(Vec<String>),
    /// `{"NS": [...]}`, never empty.
    Ns(Vec<String>),
    /// `{"BS": [...]}`, never empty.
    Bs(Vec<Vec<u8>>),
    /// `{"M": {...}}`
    M(BTreeMap<String, Value>),
    /// `{"L": [...]}`
    L(Vec<Value>),
    /// `{"NULL": true}`
    Null,
    /// `{"BOOL": true|false}`
    Bool(bool),
}

/// Writes bytes as base64 without an intermediate `String` where the serializer allows.
pub(crate) struct Base64<'a>(pub &'a [u8]);

impl Serialize for Base64<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&BASE64.encode(self.0))
    }
}

pub(crate) struct Base64Seq<'a, T>(pub &'a [T]);

impl<T: AsRef<[u8]>> Serialize for Base64Seq<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for b in self.0 {
            seq.serialize_element(&Base64(b.as_ref()))?;
        }
        seq.end()
    }
}

/// `{"<tag>": value}`
pub(crate) fn tagged<S: Serializer, V: Serialize + ?Sized>(
    s: S,
    tag: &'static str,
    v: &V,
) -> Result<S::Ok, S::Error> {
    let mut map = s.serialize_map(Some(1))?;
    map.serialize_entry(tag, v)?;
    map.end()
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::S(v) => tagged(s, "S", v),
            Value::N(v) => tagged(s, "N", v),
            Value::B(v) => tagged(s, "B", &Base64(v)),
            Value::Ss(v) => tagged(s, "SS", v),
            Value::Ns(v) => tagged(s, "NS", v),
            Value::Bs(v) => tagged(s, "BS", &Base64Seq(v)),
            Value::M(v) => tagged(s, "M", v),
            Value::L(v) => tagged(s, "L", v),
            Value::Null => tagged(s, "NULL", &true),
            Value::Bool(v) => tagged(s, "BOOL", v),
        }
    }
}

/// Appends the DynamoDB JSON of an item to `out`.
pub fn write_item(item: &Item, out: &mut Vec<u8>) {
    // Writing into a Vec cannot fail, and every Value serializes.
    if let Err(e) = serde_json::to_writer(&mut *out, item) {
        unreachable!("serializing an Item into memory cannot fail: {e}")
    }
}
