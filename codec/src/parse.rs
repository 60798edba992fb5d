//! Reading DynamoDB JSON with the rules DynamoDB applies, into any [`Build`] target.
//!
//! One set of serde visitors serves three targets: [`Checked`] (validation only: nothing is
//! allocated for a string without escapes, sets and lists of a zero-sized type never
//! allocate), the typed [`crate::Value`], and, with the `sdk` feature, the SDK's
//! `AttributeValue`.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::Value;

/// What makes an item one DynamoDB would reject (or one that is not an item at all).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ItemErrorKind {
    #[error("an item has no attributes")]
    EmptyItem,
    #[error("an attribute value must be an object with exactly one type key")]
    NotOneType,
    #[error("unknown attribute type {0:?}")]
    UnknownType(String),
    #[error("{0} set is empty")]
    EmptySet(&'static str),
    /// The value is not quoted: error texts never hold item data, only its length.
    #[error("a number value of {0} characters is not a DynamoDB number")]
    BadNumber(usize),
    #[error("binary value is not valid base64: {0}")]
    BadBase64(String),
    #[error("NULL must be true")]
    NullNotTrue,
}

/// An item error with the attribute path where it was found (`a.b[3]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemError {
    pub kind: ItemErrorKind,
    pub path: String,
}

impl fmt::Display for ItemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.kind)
        } else {
            write!(f, "attribute {}: {}", self.path, self.kind)
        }
    }
}

thread_local! {
    /// The typed reason behind the last custom serde error raised on this thread, and the
    /// path segments collected (innermost first) as it propagated out.
    static LAST: RefCell<Option<(ItemErrorKind, Vec<String>)>> = const { RefCell::new(None) };
    /// Scratch for decoding base64, reused across values.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

fn fail<E: de::Error>(kind: ItemErrorKind) -> E {
    let msg = kind.to_string();
    LAST.with(|l| *l.borrow_mut() = Some((kind, Vec::new())));
    E::custom(msg)
}

fn note_path(segment: impl FnOnce() -> String) {
    LAST.with(|l| {
        if let Some((_, path)) = l.borrow_mut().as_mut() {
            path.push(segment());
        }
    });
}

pub(crate) fn clear_last() {
    LAST.with(|l| *l.borrow_mut() = None);
}

/// Takes the typed error behind the serde error just returned, if it was one of ours.
pub(crate) fn take_last() -> Option<ItemError> {
    LAST.with(|l| l.borrow_mut().take()).map(|(kind, segs)| {
        let mut path = String::new();
        for s in segs.iter().rev() {
            if !s.starts_with('[') && !path.is_empty() {
                path.push('.');
            }
            path.push_str(s);
        }
        ItemError { kind, path }
    })
}

/// Checks a DynamoDB number: an optional minus sign, digits with an optional fraction, an
/// optional exponent, and at most 38 significant digits.
pub fn check_number(s: &str) -> Result<(), ItemErrorKind> {
    let bad = || ItemErrorKind::BadNumber(s.chars().count());
    let b = s.as_bytes();
    let mut i = usize::from(b.first() == Some(&b'-'));
    let mantissa_start = i;
    let mut int_digits = 0;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
        int_digits += 1;
    }
    let mut frac_digits = 0;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
            frac_digits += 1;
        }
    }
    if int_digits + frac_digits == 0 {
        return Err(bad());
    }
    let mantissa_end = i;
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        let exp_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == exp_start || i - exp_start > 4 {
            return Err(bad());
        }
    }
    if i != b.len() {
        return Err(bad());
    }
    // Significant digits: from the first non-zero digit to the last, the point not counted.
    let digits = || {
        b[mantissa_start..mantissa_end]
            .iter()
            .filter(|c| c.is_ascii_digit())
    };
    let leading = digits().take_while(|c| **c == b'0').count();
    let trailing = digits().rev().take_while(|c| **c == b'0').count();
    let total = int_digits + frac_digits;
    if total > leading && total - leading - trailing > 38 {
        return Err(bad());
    }
    Ok(())
}

/// A target that DynamoDB JSON is read into.
pub trait Build<'de>: Sized {
    /// A string of an `S`, `N`, `SS` or `NS` value.
    type Str;
    /// A decoded binary.
    type Bin;
    /// The attributes of an item or of an `M` value.
    type Map: Default;

    /// Whether the target keeps anything: [`Checked`] does not, so the fast scanner skips
    /// unescaping strings and decoding base64 for it (it still checks both).
    const KEEPS: bool = true;

    fn string(s: Cow<'de, str>) -> Self::Str;
    fn binary(b: &[u8]) -> Self::Bin;
    /// A decoded binary the reader owns already: targets that can keep the buffer take it.
    fn binary_owned(b: Vec<u8>) -> Self::Bin {
        Self::binary(&b)
    }
    fn insert(map: &mut Self::Map, key: Cow<'de, str>, value: Self);
    fn s(v: Self::Str) -> Self;
    fn n(v: Self::Str) -> Self;
    fn b(v: Self::Bin) -> Self;
    fn ss(v: Vec<Self::Str>) -> Self;
    fn ns(v: Vec<Self::Str>) -> Self;
    fn bs(v: Vec<Self::Bin>) -> Self;
    fn m(v: Self::Map) -> Self;
    fn l(v: Vec<Self>) -> Self;
    fn null() -> Self;
    fn bool(v: bool) -> Self;
}

/// Validation only: every rule is checked, nothing is kept.
#[derive(Debug, Clone, Copy, Default)]
pub struct Checked;

impl<'de> Build<'de> for Checked {
    type Str = ();
    type Bin = ();
    type Map = ();
    const KEEPS: bool = false;
    fn string(_: Cow<'de, str>) {}
    fn binary(_: &[u8]) {}
    fn insert(_: &mut (), _: Cow<'de, str>, _: Self) {}
    fn s(_: ()) -> Self {
        Checked
    }
    fn n(_: ()) -> Self {
        Checked
    }
    fn b(_: ()) -> Self {
        Checked
    }
    fn ss(_: Vec<()>) -> Self {
        Checked
    }
    fn ns(_: Vec<()>) -> Self {
        Checked
    }
    fn bs(_: Vec<()>) -> Self {
        Checked
    }
    fn m(_: ()) -> Self {
        Checked
    }
    fn l(_: Vec<Self>) -> Self {
        Checked
    }
    fn null() -> Self {
        Checked
    }
    fn bool(_: bool) -> Self {
        Checked
    }
}

impl<'de> Build<'de> for Value {
    type Str = String;
    type Bin = Vec<u8>;
    type Map = BTreeMap<String, Value>;
    fn string(s: Cow<'de, str>) -> String {
        s.into_owned()
    }
    fn binary(b: &[u8]) -> Vec<u8> {
        b.to_vec()
    }
    fn binary_owned(b: Vec<u8>) -> Vec<u8> {
        b
    }
    fn insert(map: &mut Self::Map, key: Cow<'de, str>, value: Self) {
        map.insert(key.into_owned(), value);
    }
    fn s(v: String) -> Self {
        Value::S(v)
    }
    fn n(v: String) -> Self {
        Value::N(v)
    }
    fn b(v: Vec<u8>) -> Self {
        Value::B(v)
    }
    fn ss(v: Vec<String>) -> Self {
        Value::Ss(v)
    }
    fn ns(v: Vec<String>) -> Self {
        Value::Ns(v)
    }
    fn bs(v: Vec<Vec<u8>>) -> Self {
        Value::Bs(v)
    }
    fn m(v: Self::Map) -> Self {
        Value::M(v)
    }
    fn l(v: Vec<Self>) -> Self {
        Value::L(v)
    }
    fn null() -> Self {
        Value::Null
    }
    fn bool(v: bool) -> Self {
        Value::Bool(v)
    }
}

impl<'de> de::Deserialize<'de> for Value {
    /// Reads one DynamoDB-JSON attribute value with DynamoDB's rules.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        AttrSeed::<Value>(PhantomData).deserialize(d)
    }
}

/// A string that borrows from the input when it has no escapes.
struct CowStr<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for CowStr<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CowStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

#[derive(Clone, Copy)]
enum Tag {
    S,
    N,
    B,
    Ss,
    Ns,
    Bs,
    M,
    L,
    Null,
    Bool,
}

impl<'de> de::Deserialize<'de> for Tag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Tag;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an attribute type")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Tag, E> {
                Ok(match v {
                    "S" => Tag::S,
                    "N" => Tag::N,
                    "B" => Tag::B,
                    "SS" => Tag::Ss,
                    "NS" => Tag::Ns,
                    "BS" => Tag::Bs,
                    "M" => Tag::M,
                    "L" => Tag::L,
                    "NULL" => Tag::Null,
                    "BOOL" => Tag::Bool,
                    other => return Err(fail(ItemErrorKind::UnknownType(other.to_owned()))),
                })
            }
        }
        d.deserialize_str(V)
    }
}

fn number<'de, B: Build<'de>, E: de::Error>(s: Cow<'de, str>) -> Result<B::Str, E> {
    check_number(&s).map_err(fail)?;
    Ok(B::string(s))
}

fn binary<'de, B: Build<'de>, E: de::Error>(s: &str) -> Result<B::Bin, E> {
    SCRATCH.with(|scratch| {
        let mut scratch = scratch.borrow_mut();
        scratch.clear();
        BASE64
            .decode_vec(s, &mut scratch)
            .map_err(|e| fail(ItemErrorKind::BadBase64(e.to_string())))?;
        Ok(B::binary(&scratch))
    })
}

/// Reads one item (a non-empty object of attribute values).
pub(crate) struct ItemSeed<B>(pub PhantomData<B>);

impl<'de, B: Build<'de>> DeserializeSeed<'de> for ItemSeed<B> {
    type Value = B::Map;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<B::Map, D::Error> {
        d.deserialize_map(MapVisitor::<B> {
            allow_empty: false,
            _b: PhantomData,
        })
    }
}

/// An item that passed validation; carries nothing.
pub(crate) struct Validated;

impl<'de> serde::Deserialize<'de> for Validated {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        ItemSeed::<Checked>(PhantomData)
            .deserialize(d)
            .map(|()| Validated)
    }
}

struct MapVisitor<B> {
    allow_empty: bool,
    _b: PhantomData<B>,
}

impl<'de, B: Build<'de>> Visitor<'de> for MapVisitor<B> {
    type Value = B::Map;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of attribute values")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<B::Map, A::Error> {
        let mut map = B::Map::default();
        let mut any = false;
        while let Some(CowStr(key)) = a.next_key()? {
            any = true;
            match a.next_value_seed(AttrSeed::<B>(PhantomData)) {
                Ok(v) => B::insert(&mut map, key, v),
                Err(e) => {
                    note_path(|| key.into_owned());
                    return Err(e);
                }
            }
        }
        if !any && !self.allow_empty {
            return Err(fail(ItemErrorKind::EmptyItem));
        }
        Ok(map)
    }
}

struct AttrSeed<B>(PhantomData<B>);

impl<'de, B: Build<'de>> DeserializeSeed<'de> for AttrSeed<B> {
    type Value = B;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<B, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, B: Build<'de>> Visitor<'de> for AttrSeed<B> {
    type Value = B;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an attribute value object such as {\"S\": \"...\"}")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<B, A::Error> {
        let Some(tag) = a.next_key::<Tag>()? else {
            return Err(fail(ItemErrorKind::NotOneType));
        };
        let value = match tag {
            Tag::S => B::s(B::string(a.next_value::<CowStr>()?.0)),
            Tag::N => B::n(number::<B, _>(a.next_value::<CowStr>()?.0)?),
            Tag::B => B::b(binary::<B, _>(&a.next_value::<CowStr>()?.0)?),
            Tag::Ss => B::ss(a.next_value_seed(SetSeed::<B>(SetKind::S, PhantomData))?.0),
            Tag::Ns => B::ns(a.next_value_seed(SetSeed::<B>(SetKind::N, PhantomData))?.0),
            Tag::Bs => B::bs(a.next_value_seed(SetSeed::<B>(SetKind::B, PhantomData))?.1),
            Tag::M => B::m(a.next_value_seed(MapSeed::<B>(PhantomData))?),
            Tag::L => B::l(a.next_value_seed(ListSeed::<B>(PhantomData))?),
            Tag::Null => {
                if !a.next_value::<bool>()? {
                    return Err(fail(ItemErrorKind::NullNotTrue));
                }
                B::null()
            }
            Tag::Bool => B::bool(a.next_value::<bool>()?),
        };
        if a.next_key::<de::IgnoredAny>()?.is_some() {
            return Err(fail(ItemErrorKind::NotOneType));
        }
        Ok(value)
    }
}

struct MapSeed<B>(PhantomData<B>);

impl<'de, B: Build<'de>> DeserializeSeed<'de> for MapSeed<B> {
    type Value = B::Map;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<B::Map, D::Error> {
        d.deserialize_map(MapVisitor::<B> {
            allow_empty: true,
            _b: PhantomData,
        })
    }
}

struct ListSeed<B>(PhantomData<B>);

impl<'de, B: Build<'de>> DeserializeSeed<'de> for ListSeed<B> {
    type Value = Vec<B>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<B>, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, B: Build<'de>> Visitor<'de> for ListSeed<B> {
    type Value = Vec<B>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of attribute values")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Vec<B>, A::Error> {
        let mut out = Vec::new();
        loop {
            let index = out.len();
            match a.next_element_seed(AttrSeed::<B>(PhantomData)) {
                Ok(Some(v)) => out.push(v),
                Ok(None) => return Ok(out),
                Err(e) => {
                    note_path(|| format!("[{index}]"));
                    return Err(e);
                }
            }
        }
    }
}

#[derive(Clone, Copy)]
enum SetKind {
    S,
    N,
    B,
}

struct SetSeed<B>(SetKind, PhantomData<B>);

impl<'de, B: Build<'de>> DeserializeSeed<'de> for SetSeed<B> {
    type Value = (Vec<B::Str>, Vec<B::Bin>);
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, B: Build<'de>> Visitor<'de> for SetSeed<B> {
    type Value = (Vec<B::Str>, Vec<B::Bin>);
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a set of strings")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
        let (mut strs, mut bins) = (Vec::new(), Vec::new());
        while let Some(CowStr(s)) = a.next_element()? {
            match self.0 {
                SetKind::S => strs.push(B::string(s)),
                SetKind::N => strs.push(number::<B, _>(s)?),
                SetKind::B => bins.push(binary::<B, _>(&s)?),
            }
        }
        if strs.is_empty() && bins.is_empty() {
            return Err(fail(ItemErrorKind::EmptySet(match self.0 {
                SetKind::S => "SS",
                SetKind::N => "NS",
                SetKind::B => "BS",
            })));
        }
        Ok((strs, bins))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_follow_dynamodb_rules() {
        for ok in [
            "0",
            "-1",
            "3.14",
            ".5",
            "5.",
            "1e10",
            "1E-130",
            "12345678901234567890123456789012345678",
            "-0.000000000000000000000000000000000000000012345678901234567890123456789012345678",
            "1000000000000000000000000000000000000000000000",
        ] {
            assert_eq!(check_number(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "-",
            "abc",
            "1.2.3",
            "1e",
            "+1",
            " 1",
            "1 ",
            "0x10",
            "NaN",
            "Infinity",
            "123456789012345678901234567890123456789",
            "1e99999",
        ] {
            assert!(check_number(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
