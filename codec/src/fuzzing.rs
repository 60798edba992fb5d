//! The codec's invariants as plain functions, shared by the fuzz targets (`fuzz/`) and the
//! unit tests below: each takes arbitrary input, never fails on bad input, and panics only
//! when the codec itself is wrong (a round trip that changes its items, a panic inside the
//! codec, a batch the codec accepts that plain JSON would not).
//!
//! - [`decode_arbitrary`]: any bytes, as a batch body, as one item, and zlib-compressed as a
//!   batch (so the JSON layer is reached, not only zlib's).
//! - [`round_trip`]: items derived from the bytes, encoded whole and streamed, decode back
//!   to exactly those items.
//! - [`parse_key`]: object keys and ids parse only when written the canonical way.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};

use flate2::Compression;
use flate2::write::ZlibEncoder;

use crate::layout::{self, BatchId, SegmentId};
use crate::parse::check_number;
use crate::{
    BatchDecoder, BatchEncoder, DecodeError, EncoderConfig, Item, RawItem, ResponsePage, Value,
    decode_items, encode_items, inflate_capped, write_item,
};

/// The decoder's cap while fuzzing arbitrary bytes: small, so bombs end quickly.
pub const FUZZ_MAX_INFLATED: usize = 1 << 20;

/// The decoder's cap for batches the codec wrote itself: far above what [`round_trip`]
/// generates, so hitting it is a failure.
const ROUND_TRIP_MAX_INFLATED: usize = 64 << 20;

/// DynamoDB's nesting limit for attribute values.
const MAX_DEPTH: usize = 32;

/// Bytes of long strings and binaries allowed in one [`round_trip`] input, granted to 1
/// input in 16 (such an input costs ~10 ordinary ones). With escapes (`\u0001` for one
/// byte) or base64 this makes items larger than the encoder's 64 KiB staging buffer.
const LONG_BUDGET: usize = 40 << 10;

/// Decodes arbitrary bytes three ways: as a batch body, as one raw item, and as the JSON
/// inside a zlib stream. Bad input must give an error (never a panic, never more than
/// [`FUZZ_MAX_INFLATED`] bytes); whatever decodes must be JSON that plain `serde_json`
/// reads the same way, and must survive re-encoding unchanged.
pub fn decode_arbitrary(bytes: &[u8]) {
    check_batch(bytes);
    check_raw_item(bytes);
    check_response(bytes);
    check_export_file(bytes);
    check_batch(&zlib(bytes));
}

/// The bytes as an export data file (plain lines, and gzipped): an error, or one checked item
/// per non-blank line, each the line's `Item` as plain JSON reads it.
fn check_export_file(bytes: &[u8]) {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), Compression::fast());
    gz.write_all(bytes).expect("gzip into memory");
    let gzipped = gz.finish().expect("gzip into memory");
    let mut decoder = crate::export::ExportDecoder::new(FUZZ_MAX_INFLATED);
    // Bytes that start as gzip would be read as gzip, not as the lines below.
    let plain = (!bytes.starts_with(&[0x1f, 0x8b])).then_some(bytes);
    for body in plain.into_iter().chain([&gzipped[..]]) {
        let file = match decoder.decode(body) {
            Ok(file) => file,
            Err(e) => {
                let _ = e.to_string();
                continue;
            }
        };
        let lines: Vec<serde_json::Value> = bytes
            .split(|b| *b == b'\n')
            .filter(|l| !l.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r')))
            .map(|l| serde_json::from_slice(l).expect("an accepted line is JSON"))
            .collect();
        assert_eq!(lines.len(), file.len(), "one item per line");
        for (item, line) in file.iter().zip(&lines) {
            assert_eq!(Some(&check_raw(item)), line.get("Item"), "the line's Item");
        }
    }
}

/// The bytes as a Scan response: an error, or an object whose `Items` plain JSON reads as
/// the items found, each compacting to an item equal to itself.
fn check_response(bytes: &[u8]) {
    let page = match ResponsePage::parse(bytes) {
        Ok(page) => page,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let whole: serde_json::Value =
        serde_json::from_slice(bytes).expect("an accepted response is one JSON value");
    let elements = match whole.get("Items") {
        Some(serde_json::Value::Array(items)) => items.clone(),
        None => Vec::new(),
        Some(other) => panic!("Items accepted as {other}"),
    };
    assert_eq!(elements.len(), page.len(), "one item per element of Items");
    let mut out = Vec::new();
    for (raw, element) in page.items().zip(&elements) {
        assert_eq!(&check_raw(raw), element, "the item is the element");
        out.clear();
        let compact = raw.compact_into(&mut out);
        assert_eq!(&check_raw(compact), element, "compacting changes nothing");
    }
    if let Some(key) = page.last_key() {
        assert_eq!(Some(&check_raw(key)), whole.get("LastEvaluatedKey"));
    }
}

/// One batch body: an error, or items that re-encode to the same items.
fn check_batch(body: &[u8]) {
    let mut decoder = BatchDecoder::new(FUZZ_MAX_INFLATED);
    let (raws, items, json_bytes) = match decoder.decode(body) {
        Ok(batch) => {
            let raws: Vec<Vec<u8>> = batch.iter().map(|r| r.as_bytes().to_vec()).collect();
            assert_eq!(raws.len(), batch.len());
            (raws, batch.to_items(), batch.json_bytes())
        }
        Err(e) => {
            check_error(body, &e);
            let mut built = Vec::new();
            let one = BatchDecoder::new(FUZZ_MAX_INFLATED)
                .decode_into::<Value, _>(body, &mut built)
                .map(|_| ())
                .expect_err("one pass refuses what two passes refused");
            assert_eq!(one.to_string(), e.to_string(), "the same error either way");
            return;
        }
    };
    assert!(json_bytes <= FUZZ_MAX_INFLATED, "the cap holds");
    // One pass (validate and build together) reads the items two passes read.
    let mut built = Vec::new();
    BatchDecoder::new(FUZZ_MAX_INFLATED)
        .decode_into::<Value, _>(body, &mut built)
        .expect("one pass accepts what two passes accepted");
    assert_eq!(built, items, "one pass reads the same items");

    // Plain JSON agrees: the batch is an array with one object per item.
    let mut json = Vec::new();
    inflate_capped(body, FUZZ_MAX_INFLATED, &mut json).expect("a decoded batch inflates");
    assert_eq!(json.len(), json_bytes);
    let array: Vec<serde_json::Value> =
        serde_json::from_slice(&json).expect("a decoded batch is a JSON array");
    assert_eq!(array.len(), raws.len(), "one item per array element");
    for (raw, element) in raws.iter().zip(&array) {
        let raw = RawItem::parse(raw).expect("a decoded item parses alone");
        assert_eq!(&check_raw(raw), element, "the item is the array element");
    }

    // Raw items pass through an encoder byte for byte (the decoder reused).
    let mut encoder = BatchEncoder::new(EncoderConfig {
        level: 1,
        ..EncoderConfig::default()
    });
    for raw in &raws {
        encoder.push(RawItem::parse(raw).expect("a decoded item parses alone"));
    }
    let encoded = encoder.finish();
    let again = decoder
        .decode(&encoded.body)
        .expect("a re-encoded batch decodes");
    assert_eq!(again.len(), encoded.items);
    assert_eq!(again.json_bytes(), encoded.json_bytes);
    let raws_again: Vec<&[u8]> = again.iter().map(|r| r.as_bytes()).collect();
    assert_eq!(raws_again, raws, "raw items pass through unchanged");

    // Typed items re-encode to the same typed items.
    let body = encode_items(&items, 1);
    assert_eq!(
        decode_items(&body, ROUND_TRIP_MAX_INFLATED).expect("re-encoded items decode"),
        items,
        "typed items survive re-encoding"
    );
}

/// An error must say where, inside what it read.
fn check_error(body: &[u8], e: &DecodeError) {
    let _ = e.to_string();
    let mut json = Vec::new();
    match e {
        DecodeError::Json { offset, .. } | DecodeError::Item { offset, .. } => {
            inflate_capped(body, FUZZ_MAX_INFLATED, &mut json)
                .expect("a JSON error comes after inflating");
            assert!(*offset <= json.len(), "offset {offset} past {}", json.len());
        }
        DecodeError::TooLarge { limit } => assert_eq!(*limit, FUZZ_MAX_INFLATED),
        DecodeError::TrailingData(n) => assert!(*n > 0 && *n <= body.len()),
        DecodeError::Truncated | DecodeError::Zlib(_) => {}
    }
}

/// The bytes as one item: an error, or an object that plain JSON reads the same way.
fn check_raw_item(bytes: &[u8]) {
    match RawItem::parse(bytes) {
        Ok(raw) => {
            let whole: serde_json::Value =
                serde_json::from_slice(bytes).expect("an accepted item is one JSON value");
            assert_eq!(check_raw(raw), whole, "the item is the whole input");
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// Checks one valid raw item and returns it as plain JSON: it re-parses to itself, and its
/// typed form writes JSON equal to it (so the typed model neither drops nor changes
/// anything, base64 and escapes included).
fn check_raw(raw: RawItem<'_>) -> serde_json::Value {
    let bytes = raw.as_bytes();
    assert_eq!(
        RawItem::parse(bytes),
        Ok(raw),
        "a raw item re-parses to itself"
    );
    let json: serde_json::Value =
        serde_json::from_slice(bytes).expect("a valid item is a JSON value");
    assert!(json.is_object(), "an item is a JSON object");
    let item = raw.to_item();
    assert!(!item.is_empty(), "an item has attributes");
    let mut written = Vec::new();
    write_item(&item, &mut written);
    let rewritten: serde_json::Value =
        serde_json::from_slice(&written).expect("a written item is JSON");
    assert_eq!(rewritten, json, "the typed item writes what was read");
    let reparsed = RawItem::parse(&written).expect("a written item is valid");
    assert_eq!(reparsed.to_item(), item);
    json
}

/// Python's `zlib.compress` at its fastest level.
fn zlib(bytes: &[u8]) -> Vec<u8> {
    let mut e = ZlibEncoder::new(Vec::with_capacity(bytes.len() + 64), Compression::fast());
    e.write_all(bytes)
        .expect("compressing into memory cannot fail");
    e.finish().expect("compressing into memory cannot fail")
}

/// Derives a batch configuration and items from the bytes (every attribute type, nesting to
/// DynamoDB's 32 levels, unicode and control characters, 38-digit numbers, occasional
/// strings and binaries of tens of KB) and checks that:
/// - `encode_items` at a level from the input, then `decode_items`, gives the items back;
/// - the bytes are plain zlib of a plain JSON array, one element per item;
/// - each item's JSON parses alone back to the item;
/// - a streaming [`BatchEncoder`] with a small size target and item limit, reused across
///   batches, closes batches only when full, reports their sizes exactly, and the
///   batches' items concatenated are the items in order.
pub fn round_trip(data: &[u8]) {
    let mut src = Source::new(data);
    let level = u32::from(src.byte() % 10);
    let target_bytes = 1 + usize::from(src.byte()) * 16;
    let limits = src.byte();
    let max_items = match limits % 4 {
        0 => usize::MAX,
        n => usize::from(n),
    };
    if limits >= 0xf0 {
        src.long_budget = LONG_BUDGET;
    }
    let count = usize::from(src.byte() % 12);
    let items: Vec<Item> = (0..count).map(|_| src.item()).collect();

    // One batch.
    let body = encode_items(&items, level);
    let back = decode_items(&body, ROUND_TRIP_MAX_INFLATED).expect("an encoded batch decodes");
    assert_eq!(
        back, items,
        "decode(encode(items)) == items at level {level}"
    );
    let mut json = Vec::new();
    flate2::read::ZlibDecoder::new(body.as_slice())
        .read_to_end(&mut json)
        .expect("an encoded batch is plain zlib");
    let array: Vec<serde_json::Value> =
        serde_json::from_slice(&json).expect("an encoded batch is a plain JSON array");
    assert_eq!(array.len(), items.len());

    // Streaming, several batches.
    let mut encoder = BatchEncoder::new(EncoderConfig {
        target_bytes,
        max_items,
        level,
    });
    let mut batches = Vec::new();
    let mut item_json = Vec::new();
    for (i, item) in items.iter().enumerate() {
        item_json.clear();
        write_item(item, &mut item_json);
        let raw = RawItem::parse(&item_json).expect("a written item is valid");
        assert_eq!(&raw.to_item(), item, "an item's JSON parses back to it");
        if i % 2 == 0 {
            encoder.push(raw);
        } else {
            encoder.push_item(item);
        }
        if encoder.is_full() {
            batches.push(encoder.finish());
        }
    }
    if encoder.items() > 0 || batches.is_empty() {
        batches.push(encoder.finish());
    }
    let mut decoder = BatchDecoder::new(ROUND_TRIP_MAX_INFLATED);
    let mut streamed = Vec::with_capacity(items.len());
    for (i, batch) in batches.iter().enumerate() {
        let decoded = decoder
            .decode(&batch.body)
            .expect("a streamed batch decodes");
        assert_eq!(decoded.len(), batch.items, "batch {i}: item count");
        assert_eq!(
            decoded.json_bytes(),
            batch.json_bytes,
            "batch {i}: JSON size"
        );
        if i + 1 < batches.len() {
            assert!(
                batch.items >= max_items || batch.json_bytes >= target_bytes,
                "batch {i} closed before it was full"
            );
        }
        streamed.extend(decoded.to_items());
    }
    assert_eq!(streamed, items, "streamed batches hold the items, in order");
}

/// Parses `data` as an object key (`<prefix>\n<key>`, or a key under the empty prefix):
/// never a panic; a key that parses is exactly the one [`layout::batch_key`] writes for
/// its ids, and parses again to them. The whole input, the key and each of its `/`-parts
/// are tried as segment and batch ids, which parse only in their canonical spelling. Ids
/// derived from the input always make keys that parse back, and Solace's own objects
/// (manifest, segment markers, the reserved schema and completion keys) under the same
/// prefix never parse as batches.
pub fn parse_key(data: &str) {
    let (prefix, key) = data.split_once('\n').unwrap_or(("", data));
    match layout::parse_batch_key(prefix, key) {
        Ok((segment, batch)) => {
            assert_eq!(
                layout::batch_key(prefix, segment, batch),
                key,
                "keys are canonical"
            );
            assert!(key.starts_with(&layout::segment_prefix(prefix, segment)));
            assert_eq!(layout::parse_batch_key(prefix, key), Ok((segment, batch)));
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    check_id(data);
    check_id(key);
    for part in key.split('/') {
        check_id(part);
    }

    // From ids to a key and back, under this prefix.
    let hash = data.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let segments = [0, 1, u32::MAX, (hash >> 32) as u32];
    let batches = [0, 1, u64::MAX, hash];
    for (segment, batch) in segments.into_iter().zip(batches) {
        let (segment, batch) = (SegmentId(segment), BatchId(batch));
        let key = layout::batch_key(prefix, segment, batch);
        assert_eq!(
            layout::parse_batch_key(prefix, &key),
            Ok((segment, batch)),
            "{key:?}"
        );
        assert_eq!(SegmentId::parse(&segment.to_string()), Ok(segment));
        assert_eq!(BatchId::parse(&batch.to_string()), Ok(batch));
        // Solace's own objects under the prefix are never taken for batches.
        for own in [
            layout::manifest_key(prefix),
            layout::segment_marker_key(prefix, segment),
            layout::schema_key(prefix),
            layout::completion_key(prefix),
        ] {
            assert!(layout::parse_batch_key(prefix, &own).is_err(), "{own:?}");
        }
    }
}

/// A segment or batch id parses only in the spelling it is written in, and the two agree.
fn check_id(name: &str) {
    let segment = SegmentId::parse(name);
    let batch = BatchId::parse(name);
    match (&segment, &batch) {
        (Ok(s), Ok(b)) => {
            assert_eq!(s.to_string(), name);
            assert_eq!(u64::from(s.0), b.0);
        }
        (Err(_), Ok(b)) => {
            assert_eq!(b.to_string(), name);
            assert!(
                b.0 > u64::from(u32::MAX),
                "{name:?}: a batch id but not a segment id"
            );
        }
        (Ok(s), Err(e)) => panic!("{name:?}: segment {s:?} but not a batch id: {e}"),
        (Err(_), Err(_)) => {}
    }
}

/// Reads the fuzz input as a stream of choices; zeros once it runs out, so every choice
/// (and so generation) ends.
#[derive(Debug)]
struct Source<'a> {
    data: &'a [u8],
    /// Bytes left for long strings and binaries in this input (none unless granted).
    long_budget: usize,
}

impl<'a> Source<'a> {
    fn new(data: &'a [u8]) -> Self {
        Source {
            data,
            long_budget: 0,
        }
    }

    fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }

    /// A length for a long value (1/16 of the time, while the budget lasts), else `None`.
    fn long_len(&mut self, control: u8) -> Option<usize> {
        if control & 0xf0 != 0xf0 || self.long_budget == 0 {
            return None;
        }
        let len =
            (usize::from(u16::from_le_bytes([self.byte(), self.byte()])) * 2).min(self.long_budget);
        self.long_budget -= len;
        Some(len)
    }

    /// An item: 1 to 6 attributes with non-empty names.
    fn item(&mut self) -> Item {
        let attributes = 1 + usize::from(self.byte() % 6);
        let mut item = BTreeMap::new();
        for _ in 0..attributes {
            let name = self.name();
            let value = self.value(1);
            item.insert(name, value);
        }
        item
    }

    fn name(&mut self) -> String {
        let len = 1 + usize::from(self.byte() % 8);
        (0..len).map(|_| self.char()).collect()
    }

    fn value(&mut self, depth: usize) -> Value {
        let nest = depth < MAX_DEPTH;
        match self.byte() % 10 {
            0 => Value::S(self.text()),
            1 => Value::N(self.number()),
            2 => Value::B(self.binary()),
            3 => Value::Ss(self.set(Self::text)),
            4 => Value::Ns(self.set(Self::number)),
            5 => Value::Bs(self.set(Self::binary)),
            6 => {
                let len = if nest {
                    usize::from(self.byte() % 6)
                } else {
                    0
                };
                let mut map = BTreeMap::new();
                for _ in 0..len {
                    let name = self.name();
                    let value = self.value(depth + 1);
                    map.insert(name, value);
                }
                Value::M(map)
            }
            7 => {
                let len = if nest {
                    usize::from(self.byte() % 6)
                } else {
                    0
                };
                Value::L((0..len).map(|_| self.value(depth + 1)).collect())
            }
            8 => Value::Null,
            _ => Value::Bool(self.byte() & 1 == 1),
        }
    }

    /// 1 to 4 distinct elements.
    fn set<T: PartialEq>(&mut self, mut one: impl FnMut(&mut Self) -> T) -> Vec<T> {
        let len = 1 + usize::from(self.byte() % 4);
        let mut set = Vec::with_capacity(len);
        for _ in 0..len {
            let element = one(self);
            if !set.contains(&element) {
                set.push(element);
            }
        }
        set
    }

    fn char(&mut self) -> char {
        const SPECIAL: [char; 16] = [
            'é',
            'ß',
            'δ',
            '東',
            '京',
            '🦀',
            '\u{2028}',
            '\u{2029}',
            '\u{feff}',
            '\u{fffd}',
            '\u{7f}',
            '\u{80}',
            '\u{10ffff}',
            '\u{e000}',
            '\u{301}',
            '"',
        ];
        let b = self.byte();
        match b {
            0..=0x7f => char::from(b),
            0x80..=0xbf => SPECIAL[usize::from(b & 0x0f)],
            _ => {
                let code = (u32::from(b & 0x3f) << 16
                    | u32::from(self.byte()) << 8
                    | u32::from(self.byte()))
                    % 0x11_0000;
                char::from_u32(code).unwrap_or('\u{fffd}')
            }
        }
    }

    fn text(&mut self) -> String {
        let control = self.byte();
        match self.long_len(control) {
            Some(len) => {
                let pattern: String = (0..1 + control % 8).map(|_| self.char()).collect();
                let mut s = String::with_capacity(len + pattern.len());
                while s.len() < len {
                    s.push_str(&pattern);
                }
                s
            }
            None => (0..control % 24).map(|_| self.char()).collect(),
        }
    }

    fn binary(&mut self) -> Vec<u8> {
        let control = self.byte();
        match self.long_len(control) {
            Some(len) => {
                let pattern = self.take(1 + usize::from(control % 8)).to_vec();
                pattern.iter().copied().cycle().take(len).collect()
            }
            None => self.take(usize::from(control % 40)).to_vec(),
        }
    }

    /// A number DynamoDB accepts.
    fn number(&mut self) -> String {
        let s = self.number_unchecked();
        if check_number(&s).is_ok() {
            s
        } else {
            // Not reached (a unit test checks); keeps a generator slip from reading as a
            // codec failure.
            "0".to_owned()
        }
    }

    /// Optional sign, up to 38 significant digits with or without a point (`5.`, `.5`),
    /// long runs of leading zeros, an optional exponent of up to 4 digits.
    fn number_unchecked(&mut self) -> String {
        let flags = self.byte();
        let mut s = String::new();
        if flags & 1 != 0 {
            s.push('-');
        }
        if flags & 2 != 0 {
            // 0.000…0ddd: leading zeros are not significant.
            s.push_str(if flags & 4 != 0 { "0." } else { "." });
            let zeros = usize::from(self.byte() % 64);
            s.extend(std::iter::repeat_n('0', zeros));
            let digits = 1 + usize::from(self.byte() % 38);
            self.digits(&mut s, digits);
        } else {
            let int_digits = usize::from(self.byte() % 39);
            let frac_digits = if flags & 4 != 0 {
                usize::from(self.byte()) % (39 - int_digits)
            } else {
                0
            };
            self.digits(&mut s, int_digits.max(usize::from(frac_digits == 0)));
            if flags & 4 != 0 {
                s.push('.');
                self.digits(&mut s, frac_digits);
            }
        }
        if flags & 8 != 0 {
            s.push(if flags & 16 != 0 { 'e' } else { 'E' });
            match flags >> 5 & 3 {
                0 => {}
                1 => s.push('+'),
                _ => s.push('-'),
            }
            let digits = 1 + usize::from(flags >> 7) + usize::from(self.byte() % 3);
            self.digits(&mut s, digits);
        }
        s
    }

    fn digits(&mut self, s: &mut String, n: usize) {
        for _ in 0..n {
            s.push(char::from(b'0' + self.byte() % 10));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::{self, Rng, Shape};

    fn python_batch(json: &str) -> Vec<u8> {
        zlib(json.as_bytes())
    }

    #[test]
    fn decode_arbitrary_accepts_good_and_bad_batches() {
        let items: Vec<Item> = Shape::ALL[..4]
            .iter()
            .map(|s| sample::item(*s, 3))
            .collect();
        let good = encode_items(&items, 6);
        decode_arbitrary(&good);
        decode_arbitrary(&good[..good.len() / 2]);
        decode_arbitrary(b"");
        decode_arbitrary(b"not zlib at all");
        decode_arbitrary(br#"[{"a":{"S":"x"}}, {"b":{"NS":["1","2e3"]}}]"#);
        decode_arbitrary(br#" {"a":{"B":"AAEC"}, "a":{"BOOL":true}} "#);
        decode_arbitrary(&python_batch(
            r#"[{"pk": {"S": "k\u00e9"}, "m": {"M": {}}}]"#,
        ));
        decode_arbitrary(&python_batch(r#"[{"pk": {"SS": []}}]"#));
        decode_arbitrary(&python_batch(&format!("[{}]", " ".repeat(2 << 20))));
        let mut trailing = good.clone();
        trailing.push(0);
        decode_arbitrary(&trailing);
    }

    #[test]
    fn round_trip_holds_for_derived_items() {
        round_trip(b"");
        round_trip(&[0xff; 64]);
        round_trip(&(0..=255).collect::<Vec<u8>>());
        let mut rng = Rng::new(7);
        for len in 0..300 {
            round_trip(&rng.bytes(len * 4));
        }
    }

    #[test]
    fn round_trip_reaches_long_values_and_several_batches() {
        // Level 1, a 17-byte target, no item limit and long values (0xf0), 3 items. The
        // first has one attribute named `a`: an S of a 4-character pattern (0xf3: long) of
        // control characters, repeated to 40 KiB: 240 KiB of JSON, more than is staged.
        let mut data = vec![1, 1, 0xf0, 3, 0, 0, b'a', 0, 0xf3, 0xff, 0xff, 1, 2, 3, 4];
        data.extend_from_slice(&[7; 64]);
        let mut src = Source::new(&data[4..]);
        src.long_budget = LONG_BUDGET;
        let item = src.item();
        let mut json = Vec::new();
        write_item(&item, &mut json);
        assert!(json.len() > 64 << 10, "{item:?}");
        round_trip(&data);
    }

    #[test]
    fn derived_items_keep_dynamodb_rules() {
        let mut rng = Rng::new(11);
        for _ in 0..5000 {
            let data = rng.bytes(64);
            let n = Source::new(&data).number_unchecked();
            assert_eq!(check_number(&n), Ok(()), "{data:?}");
            let item = Source::new(&data).item();
            assert!(!item.is_empty() && item.keys().all(|k| !k.is_empty()));
        }
        // The deepest nesting DynamoDB allows round trips: lists in lists, 32 levels.
        let mut deep = vec![1, 0, 0, 1, 0, 0, b'a'];
        deep.extend(std::iter::repeat_n([7, 1], MAX_DEPTH).flatten());
        let items = {
            let mut src = Source::new(&deep[4..]);
            vec![src.item()]
        };
        let mut depth = 0;
        let mut v = items[0].values().next();
        while let Some(Value::L(l)) = v {
            depth += 1;
            v = l.first();
        }
        assert_eq!(depth, MAX_DEPTH);
        round_trip(&deep);
    }

    #[test]
    fn parse_key_checks_keys_and_ids() {
        for data in [
            "",
            "0x0/0x0",
            "0x1a/0xff",
            "backups/t\nbackups/t/0x1/0x2",
            "backups/t/\nbackups/t/0x1/0x2",
            "p\np/0x01/0x2",
            "0x100000000",
            "0xffffffff/0xffffffffffffffff",
            "0x10000000000000000",
            "0X1/0x1",
            "é\né/0x0/0x0/",
        ] {
            parse_key(data);
        }
    }
}
