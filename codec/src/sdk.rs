//! Conversions between the codec's items and the AWS SDK's `AttributeValue`.
//!
//! A backup from DynamoDB keeps the Scan response's items as the JSON they came as; one from
//! a store that hands over SDK items writes them straight to JSON ([`write_sdk_item`]).
//! Restore reads raw items straight into SDK maps ([`crate::RawItem::to_sdk`]), with no typed
//! item in between.

use std::borrow::Cow;
use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_types::Blob;
use serde::ser::{Error as _, SerializeMap};
use serde::{Serialize, Serializer};

use crate::item::{Base64, Base64Seq, tagged};
use crate::parse::Build;
use crate::{Item, RawItem, Value};

/// An SDK item.
pub type SdkItem = HashMap<String, AttributeValue>;

impl<'de> Build<'de> for AttributeValue {
    type Str = String;
    type Bin = Blob;
    type Map = HashMap<String, AttributeValue>;
    fn string(s: Cow<'de, str>) -> String {
        s.into_owned()
    }
    fn binary(b: &[u8]) -> Blob {
        Blob::new(b)
    }
    fn binary_owned(b: Vec<u8>) -> Blob {
        Blob::new(b)
    }
    fn insert(map: &mut Self::Map, key: Cow<'de, str>, value: Self) {
        map.insert(key.into_owned(), value);
    }
    fn s(v: String) -> Self {
        AttributeValue::S(v)
    }
    fn n(v: String) -> Self {
        AttributeValue::N(v)
    }
    fn b(v: Blob) -> Self {
        AttributeValue::B(v)
    }
    fn ss(v: Vec<String>) -> Self {
        AttributeValue::Ss(v)
    }
    fn ns(v: Vec<String>) -> Self {
        AttributeValue::Ns(v)
    }
    fn bs(v: Vec<Blob>) -> Self {
        AttributeValue::Bs(v)
    }
    fn m(v: Self::Map) -> Self {
        AttributeValue::M(v)
    }
    fn l(v: Vec<Self>) -> Self {
        AttributeValue::L(v)
    }
    fn null() -> Self {
        AttributeValue::Null(true)
    }
    fn bool(v: bool) -> Self {
        AttributeValue::Bool(v)
    }
}

impl RawItem<'_> {
    /// The item as the SDK's map.
    pub fn to_sdk(&self) -> SdkItem {
        self.build::<AttributeValue>()
    }

    /// [`RawItem::to_sdk`] by serde's visitors alone, as the codec read items before its
    /// scanner built them: the baseline the hot-path bench measures against.
    pub fn to_sdk_by_serde(&self) -> SdkItem {
        self.build_serde::<AttributeValue>()
    }
}

/// Serializes an SDK value as DynamoDB JSON.
struct SdkValue<'a>(&'a AttributeValue);
struct SdkMap<'a>(&'a HashMap<String, AttributeValue>);

impl Serialize for SdkMap<'_> {
    /// Attributes in name order: the SDK's `HashMap` iterates in a random order per map, and
    /// a backup must be byte-for-byte the same however often a segment is re-run.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut entries: Vec<_> = self.0.iter().collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut map = s.serialize_map(Some(entries.len()))?;
        for (k, v) in entries {
            map.serialize_entry(k, &SdkValue(v))?;
        }
        map.end()
    }
}

struct SdkList<'a>(&'a [AttributeValue]);

impl Serialize for SdkList<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(SdkValue))
    }
}

impl Serialize for SdkValue<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            AttributeValue::S(v) => tagged(s, "S", v),
            AttributeValue::N(v) => tagged(s, "N", v),
            AttributeValue::B(v) => tagged(s, "B", &Base64(v.as_ref())),
            AttributeValue::Ss(v) => tagged(s, "SS", v),
            AttributeValue::Ns(v) => tagged(s, "NS", v),
            AttributeValue::Bs(v) => tagged(s, "BS", &Base64Seq(v)),
            AttributeValue::M(v) => tagged(s, "M", &SdkMap(v)),
            AttributeValue::L(v) => tagged(s, "L", &SdkList(v)),
            AttributeValue::Null(_) => tagged(s, "NULL", &true),
            AttributeValue::Bool(v) => tagged(s, "BOOL", v),
            other => Err(S::Error::custom(format!(
                "attribute type unknown to this SDK version: {other:?}"
            ))),
        }
    }
}

/// Why an SDK item cannot be written as DynamoDB JSON.
#[derive(Debug, thiserror::Error)]
#[error("cannot write item as DynamoDB JSON: {0}")]
pub struct SdkWriteError(String);

/// Appends the DynamoDB JSON of an SDK item to `out`. On error `out` is left as it was.
pub fn write_sdk_item(item: &SdkItem, out: &mut Vec<u8>) -> Result<(), SdkWriteError> {
    let len = out.len();
    serde_json::to_writer(&mut *out, &SdkMap(item)).map_err(|e| {
        out.truncate(len);
        SdkWriteError(e.to_string())
    })
}

/// Appends the DynamoDB JSON of an SDK item to `out` and returns it as a checked item, for
/// the encoder. DynamoDB's rules are checked on the SDK values as they are (numbers, sets
/// not empty, an item not empty, `NULL` true), so the JSON is not parsed again; an item
/// those checks are not sure of (nested deeper than DynamoDB's 32 levels, `NULL` false, a
/// type this SDK does not know) is written and then parsed, which decides and names the
/// error. On error `out` is left as it was.
pub fn write_checked_sdk_item<'o>(
    item: &SdkItem,
    out: &'o mut Vec<u8>,
) -> Result<RawItem<'o>, SdkWriteError> {
    let start = out.len();
    write_sdk_item(item, out)?;
    if !item.is_empty() && item.values().all(|v| surely_valid(v, 0)) {
        return Ok(RawItem::checked(&out[start..]));
    }
    match RawItem::parse(&out[start..]) {
        Ok(_) => Ok(RawItem::checked(&out[start..])),
        Err(e) => {
            out.truncate(start);
            Err(SdkWriteError(e.to_string()))
        }
    }
}

/// Whether DynamoDB surely accepts `v` at nesting `depth` (false: not sure).
fn surely_valid(v: &AttributeValue, depth: u32) -> bool {
    let number = |n: &String| crate::parse::check_number(n).is_ok();
    match v {
        AttributeValue::S(_) | AttributeValue::B(_) | AttributeValue::Bool(_) => true,
        AttributeValue::N(n) => number(n),
        AttributeValue::Ss(v) => !v.is_empty(),
        AttributeValue::Bs(v) => !v.is_empty(),
        AttributeValue::Ns(v) => !v.is_empty() && v.iter().all(number),
        AttributeValue::Null(null) => *null,
        AttributeValue::M(m) => depth < 31 && m.values().all(|v| surely_valid(v, depth + 1)),
        AttributeValue::L(l) => depth < 31 && l.iter().all(|v| surely_valid(v, depth + 1)),
        _ => false,
    }
}

/// The typed value as an SDK value.
pub fn to_sdk_value(v: &Value) -> AttributeValue {
    match v {
        Value::S(s) => AttributeValue::S(s.clone()),
        Value::N(n) => AttributeValue::N(n.clone()),
        Value::B(b) => AttributeValue::B(Blob::new(b.clone())),
        Value::Ss(v) => AttributeValue::Ss(v.clone()),
        Value::Ns(v) => AttributeValue::Ns(v.clone()),
        Value::Bs(v) => AttributeValue::Bs(v.iter().map(|b| Blob::new(b.clone())).collect()),
        Value::M(m) => AttributeValue::M(
            m.iter()
                .map(|(k, v)| (k.clone(), to_sdk_value(v)))
                .collect(),
        ),
        Value::L(l) => AttributeValue::L(l.iter().map(to_sdk_value).collect()),
        Value::Null => AttributeValue::Null(true),
        Value::Bool(b) => AttributeValue::Bool(*b),
    }
}

/// The typed item as an SDK item.
pub fn to_sdk_item(item: &Item) -> SdkItem {
    item.iter()
        .map(|(k, v)| (k.clone(), to_sdk_value(v)))
        .collect()
}

/// An SDK value as a typed value; `None` for a type this codec does not know.
pub fn from_sdk_value(v: &AttributeValue) -> Option<Value> {
    Some(match v {
        AttributeValue::S(s) => Value::S(s.clone()),
        AttributeValue::N(n) => Value::N(n.clone()),
        AttributeValue::B(b) => Value::B(b.as_ref().to_vec()),
        AttributeValue::Ss(v) => Value::Ss(v.clone()),
        AttributeValue::Ns(v) => Value::Ns(v.clone()),
        AttributeValue::Bs(v) => Value::Bs(v.iter().map(|b| b.as_ref().to_vec()).collect()),
        AttributeValue::M(m) => Value::M(
            m.iter()
                .map(|(k, v)| Some((k.clone(), from_sdk_value(v)?)))
                .collect::<Option<_>>()?,
        ),
        AttributeValue::L(l) => Value::L(l.iter().map(from_sdk_value).collect::<Option<_>>()?),
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::Bool(b) => Value::Bool(*b),
        _ => return None,
    })
}

/// An SDK item as a typed item; `None` if it holds a type this codec does not know.
pub fn from_sdk_item(item: &SdkItem) -> Option<Item> {
    item.iter()
        .map(|(k, v)| Some((k.clone(), from_sdk_value(v)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample;

    #[test]
    fn sdk_items_write_the_same_bytes_whatever_the_map_order() {
        let item = sample::item(sample::Shape::Medium, 3);
        let mut first = Vec::new();
        write_sdk_item(&to_sdk_item(&item), &mut first).expect("writes");
        for _ in 0..20 {
            // Each HashMap gets its own random iteration order.
            let mut again = Vec::new();
            write_sdk_item(&to_sdk_item(&item), &mut again).expect("writes");
            assert_eq!(again, first);
        }
        let back = RawItem::parse(&first).expect("valid").to_sdk();
        assert_eq!(from_sdk_item(&back), Some(item));
    }

    /// Items checked on their SDK values are accepted and refused exactly as writing and
    /// parsing them would, with the same error, and the JSON is the same.
    #[test]
    fn an_sdk_item_checked_as_values_is_judged_as_its_json_would_be() {
        let old = |item: &SdkItem| -> Result<Vec<u8>, String> {
            let mut json = Vec::new();
            write_sdk_item(item, &mut json).map_err(|e| e.to_string())?;
            RawItem::parse(&json)
                .map(|_| ())
                .map_err(|e| SdkWriteError(e.to_string()).to_string())?;
            Ok(json)
        };
        let new = |item: &SdkItem| -> Result<Vec<u8>, String> {
            let mut json = b"kept".to_vec();
            let raw = write_checked_sdk_item(item, &mut json).map_err(|e| e.to_string());
            let raw = raw.map(|r| r.as_bytes().to_vec());
            assert!(json.starts_with(b"kept"), "what was in the buffer stays");
            if raw.is_err() {
                assert_eq!(json, b"kept", "an error leaves the buffer as it was");
            }
            raw
        };
        let mut cases: Vec<SdkItem> = sample::Shape::ALL
            .iter()
            .flat_map(|&shape| (0..20).map(move |n| to_sdk_item(&sample::item(shape, n))))
            .collect();
        let with = |k: &str, v: AttributeValue| SdkItem::from([(k.to_owned(), v)]);
        let nested = |depth: usize| {
            let mut v = AttributeValue::S("x".into());
            for _ in 0..depth {
                v = AttributeValue::L(vec![v]);
            }
            v
        };
        cases.extend([
            SdkItem::new(),
            with("n", AttributeValue::N("1e".into())),
            with("n", AttributeValue::N("12".into())),
            with("ns", AttributeValue::Ns(vec!["1".into(), "x".into()])),
            with("ss", AttributeValue::Ss(Vec::new())),
            with("bs", AttributeValue::Bs(Vec::new())),
            with("null", AttributeValue::Null(false)),
            with("m", AttributeValue::M(SdkItem::new())),
            with("deep", nested(31)),
            with("deep", nested(32)),
            with("deep", nested(40)),
            with("deep", nested(70)),
            with(
                "bad",
                AttributeValue::M(with("in", AttributeValue::N("-".into()))),
            ),
        ]);
        for item in &cases {
            assert_eq!(
                new(item),
                old(item),
                "{:?}",
                item.keys().collect::<Vec<_>>()
            );
        }
    }

    /// One pass (`decode_into`) reads the same SDK items as decode-then-`to_sdk`, on every
    /// shape, and refuses a bad batch with the same error.
    #[test]
    fn a_one_pass_decode_reads_what_two_passes_read_and_refuses_the_same() {
        use crate::{BatchDecoder, encode_items};
        for shape in sample::Shape::ALL {
            let items: Vec<Item> = (0..40).map(|n| sample::item(shape, n)).collect();
            let body = encode_items(&items, 6);
            let mut two = BatchDecoder::default();
            let expected: Vec<SdkItem> = two
                .decode(&body)
                .expect("decodes")
                .iter()
                .map(|i| i.to_sdk())
                .collect();
            let mut one = BatchDecoder::default();
            let mut built = vec![SdkItem::new()];
            let decoded = one
                .decode_into::<AttributeValue, _>(&body, &mut built)
                .expect("decodes");
            assert_eq!(decoded.len(), built.len());
            assert_eq!(built, expected, "{shape:?}");
        }
        let bad = encode_items(&[sample::item(sample::Shape::Small, 1)], 6);
        let mut json = Vec::new();
        crate::inflate_capped(&bad, 1 << 20, &mut json).expect("inflates");
        let json = String::from_utf8(json)
            .expect("UTF-8")
            .replacen("{\"S\"", "{\"Q\"", 1);
        let body = {
            use std::io::Write as _;
            let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
            z.write_all(json.as_bytes()).expect("deflates");
            z.finish().expect("deflates")
        };
        let two = BatchDecoder::default()
            .decode(&body)
            .map(|_| ())
            .expect_err("bad type");
        let mut built = Vec::new();
        let one = BatchDecoder::default()
            .decode_into::<AttributeValue, _>(&body, &mut built)
            .map(|_| ())
            .expect_err("bad type");
        assert_eq!(one.to_string(), two.to_string());
    }
}
