//! Batches: a zlib stream (RFC 1950) of a UTF-8 JSON array of DynamoDB-JSON items.
//!
//! Items travel as validated raw JSON byte ranges ([`RawItem`]): the encoder copies them into
//! the compressor, the decoder inflates into a reused buffer and hands out slices of it. The
//! bytes are touched by the validating scanner and by zlib, and little else.

use std::marker::PhantomData;
use std::ops::Range;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use serde::de::DeserializeSeed;

use crate::parse::{self, Build, ItemError, ItemSeed, Validated};
use crate::{Item, Value};

/// One item as validated DynamoDB JSON: an object of attribute values that DynamoDB accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawItem<'a>(&'a [u8]);

/// Why bytes are not a valid item.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RawItemError {
    #[error("bad JSON at offset {offset}: {message}")]
    Json { offset: usize, message: String },
    #[error("{0}")]
    Item(ItemError),
}

impl<'a> RawItem<'a> {
    /// Validates one item: a JSON object (surrounding white space allowed) whose every
    /// attribute value DynamoDB would accept.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, RawItemError> {
        let text =
            utf8(bytes).map_err(|(offset, message)| RawItemError::Json { offset, message })?;
        let end = scan_item(text, 0)?;
        // JSON's white space only: `is_ascii_whitespace` would also let a form feed through.
        let trailing = skip_ws(bytes, end);
        if trailing != bytes.len() {
            return Err(RawItemError::Json {
                offset: trailing,
                message: "trailing characters after the item".into(),
            });
        }
        Ok(RawItem(&bytes[skip_ws(bytes, 0)..end]))
    }

    /// Validates one item and appends it to `out` with JSON's white space between tokens
    /// removed, so what is stored does not depend on how the sender formatted it (DynamoDB
    /// writes compact JSON, other servers may not). Strings are copied as they are, escapes
    /// included. Returns the item as appended; on error `out` is left as it was.
    pub fn parse_compact<'o>(
        bytes: &[u8],
        out: &'o mut Vec<u8>,
    ) -> Result<RawItem<'o>, RawItemError> {
        Ok(RawItem::parse(bytes)?.compact_into(out))
    }

    /// An item the caller has checked (a range [`scan_item`] accepted).
    pub(crate) fn checked(bytes: &'a [u8]) -> Self {
        RawItem(bytes)
    }

    /// Appends the item to `out` in the form DynamoDB itself sends, and returns it as
    /// appended: JSON's white space between tokens removed, and a `\uXXXX` escape (or
    /// surrogate pair) of a character that needs none written as the character's UTF-8
    /// (the emulator escapes every non-ASCII character). Escapes of control characters, `"`
    /// and `\`, and all other escapes, are kept as they are. A checked item stays one: the
    /// strings are the same strings.
    pub fn compact_into<'o>(self, out: &'o mut Vec<u8>) -> RawItem<'o> {
        let bytes = self.0;
        let start = out.len();
        // Runs of bytes that need no change are copied whole; strings are crossed with memchr
        // (they are most of an item's bytes).
        let mut run = 0;
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'"' => {
                    i += 1;
                    while let Some(n) = memchr::memchr2(b'"', b'\\', &bytes[i..]) {
                        i += n;
                        if bytes[i] == b'"' {
                            i += 1;
                            break;
                        }
                        match unescape(&bytes[i..]) {
                            Some((c, len)) => {
                                out.extend_from_slice(&bytes[run..i]);
                                out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                                i += len;
                                run = i;
                            }
                            None => i += 2, // the backslash and the escaped byte
                        }
                    }
                }
                b' ' | b'\t' | b'\n' | b'\r' => {
                    out.extend_from_slice(&bytes[run..i]);
                    i += 1;
                    run = i;
                }
                _ => i += 1,
            }
        }
        out.extend_from_slice(&bytes[run..bytes.len().min(i)]);
        RawItem(&out[start..])
    }

    /// The item's JSON bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.0
    }

    /// Builds the typed item.
    pub fn to_item(&self) -> Item {
        self.build::<Value>()
    }

    /// Reads this (already validated) item into any [`Build`] target: the fast scanner's
    /// builder, or serde's visitors for what the scanner leaves to them.
    pub fn build<B: Build<'a>>(&self) -> B::Map {
        if let Ok(text) = simdutf8::basic::from_utf8(self.0)
            && let Some((_, map)) = crate::fast::build_item::<B>(text, 0)
        {
            return map;
        }
        self.build_serde::<B>()
    }

    /// [`RawItem::build`] by serde's visitors alone.
    pub(crate) fn build_serde<B: Build<'a>>(&self) -> B::Map {
        let mut de = serde_json::Deserializer::from_slice(self.0);
        match ItemSeed::<B>(PhantomData).deserialize(&mut de) {
            Ok(map) => map,
            // A RawItem exists only after its bytes passed the same visitors.
            Err(e) => unreachable!("a validated item failed to parse: {e}"),
        }
    }
}

/// The character a `\uXXXX` escape (or a surrogate pair of them) at the start of `escape`
/// stands for, and the escape's length, when the character needs no escape in JSON (not a
/// control character, `"` or `\`).
fn unescape(escape: &[u8]) -> Option<(char, usize)> {
    let hex = |at: usize| {
        let digits = std::str::from_utf8(escape.get(at..at + 4)?).ok()?;
        u32::from_str_radix(digits, 16).ok()
    };
    if escape.get(1) != Some(&b'u') {
        return None;
    }
    let high = hex(2)?;
    let (code, len) = if (0xD800..0xDC00).contains(&high) {
        if escape.get(6..8) != Some(b"\\u") {
            return None;
        }
        let low = hex(8).filter(|low| (0xDC00..0xE000).contains(low))?;
        (0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00), 12)
    } else {
        (high, 6)
    };
    let c = char::from_u32(code)?;
    (!c.is_control() && c != '"' && c != '\\').then_some((c, len))
}

/// The bytes as text, checked once for the whole buffer (SIMD), so the per-string checks of
/// the scanners below can be skipped; an error gives the offset of the first bad byte.
pub(crate) fn utf8(bytes: &[u8]) -> Result<&str, (usize, String)> {
    match simdutf8::basic::from_utf8(bytes) {
        Ok(s) => Ok(s),
        Err(_) => {
            std::str::from_utf8(bytes).map_err(|e| (e.valid_up_to(), "invalid UTF-8".to_owned()))
        }
    }
}

/// Validates the item starting at `start` (after optional white space) and returns the
/// offset just past it. The fast scanner (`fast.rs`) decides the common case; whatever it is
/// unsure of goes through the serde visitors, which decide and name the error.
pub(crate) fn scan_item(text: &str, start: usize) -> Result<usize, RawItemError> {
    let bytes = text.as_bytes();
    if let Some(end) = crate::fast::scan_item(text, start) {
        return Ok(end);
    }
    parse::clear_last();
    let mut stream = serde_json::Deserializer::from_str(&text[start..]).into_iter::<Validated>();
    match stream.next() {
        Some(Ok(Validated)) => Ok(start + stream.byte_offset()),
        Some(Err(e)) => Err(match parse::take_last() {
            Some(item) => RawItemError::Item(item),
            None => RawItemError::Json {
                offset: start + offset_of(&bytes[start..], e.line(), e.column()),
                message: describe(&e),
            },
        }),
        None => Err(RawItemError::Json {
            offset: bytes.len(),
            message: "expected an item, found the end of the input".into(),
        }),
    }
}

/// Validates the item starting at `start` (after optional white space) and reads it into
/// `B` in the same pass; returns the offset just past it and the built map. As
/// [`scan_item`], what the fast scanner is unsure of goes to serde, which decides and reports.
pub(crate) fn build_item<'a, B: Build<'a>>(
    text: &'a str,
    start: usize,
) -> Result<(usize, B::Map), RawItemError> {
    if let Some(done) = crate::fast::build_item::<B>(text, start) {
        return Ok(done);
    }
    let end = scan_item(text, start)?;
    let from = skip_ws(text.as_bytes(), start);
    Ok((end, RawItem(&text.as_bytes()[from..end]).build_serde::<B>()))
}

/// Byte offset of a 1-based line and column reported by serde_json.
fn offset_of(bytes: &[u8], line: usize, column: usize) -> usize {
    let mut offset = 0;
    for _ in 1..line {
        match bytes[offset..].iter().position(|b| *b == b'\n') {
            Some(i) => offset += i + 1,
            None => return bytes.len(),
        }
    }
    (offset + column.saturating_sub(1)).min(bytes.len())
}

/// What kind of JSON error `e` is, without serde's own text: that quotes the offending value
/// (`invalid type: string "…"`), and error texts never hold item data. The offset says where.
pub(crate) fn describe(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax => "malformed JSON",
        Category::Eof => "the JSON ends early",
        Category::Data => "JSON that is not a DynamoDB item",
        Category::Io => "the JSON could not be read",
    }
    .to_owned()
}

/// When a batch closes and how hard it is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncoderConfig {
    /// Close the batch once its uncompressed JSON reaches this many bytes.
    pub target_bytes: usize,
    /// Close the batch once it holds this many items.
    pub max_items: usize,
    /// zlib level, 0 (store) to 9.
    pub level: u32,
}

impl Default for EncoderConfig {
    fn default() -> Self {
        EncoderConfig {
            target_bytes: 8 << 20,
            max_items: usize::MAX,
            level: 6,
        }
    }
}

/// A finished batch, ready to upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedBatch {
    /// The zlib stream.
    pub body: Vec<u8>,
    /// Items in the batch.
    pub items: usize,
    /// Bytes of uncompressed JSON.
    pub json_bytes: usize,
}

/// Staging size: small items are gathered and handed to deflate in blocks, so the per-call
/// cost of the compressor is paid per 64 KiB, not per item.
const STAGE: usize = 64 << 10;

/// A streaming batch encoder: items go in one at a time; [`BatchEncoder::is_full`] says when
/// the batch has reached its target, [`BatchEncoder::finish`] closes it.
#[derive(Debug)]
pub struct BatchEncoder {
    config: EncoderConfig,
    deflate: Compress,
    stage: Vec<u8>,
    out: Vec<u8>,
    items: usize,
    json_bytes: usize,
}

impl BatchEncoder {
    pub fn new(config: EncoderConfig) -> Self {
        let level = Compression::new(config.level.min(9));
        BatchEncoder {
            config,
            deflate: Compress::new(level, true),
            stage: Vec::with_capacity(STAGE),
            out: Vec::new(),
            items: 0,
            json_bytes: 0,
        }
    }

    pub fn config(&self) -> &EncoderConfig {
        &self.config
    }

    /// Items in the open batch.
    pub fn items(&self) -> usize {
        self.items
    }

    /// Uncompressed JSON bytes in the open batch, counting the closing `]`.
    pub fn json_bytes(&self) -> usize {
        self.json_bytes + 1
    }

    /// Whether the open batch has reached its size or item target.
    pub fn is_full(&self) -> bool {
        self.items > 0
            && (self.json_bytes + 1 >= self.config.target_bytes
                || self.items >= self.config.max_items)
    }

    /// Adds one item to the open batch.
    pub fn push(&mut self, item: RawItem<'_>) {
        self.stage.push(if self.items == 0 { b'[' } else { b',' });
        self.json_bytes += 1 + item.0.len();
        self.items += 1;
        if self.stage.len() + item.0.len() <= STAGE {
            self.stage.extend_from_slice(item.0);
            if self.stage.len() >= STAGE / 2 {
                self.flush_stage();
            }
        } else {
            self.flush_stage();
            self.compress(item.0, FlushCompress::None);
        }
    }

    /// Adds a typed item.
    pub fn push_item(&mut self, item: &Item) {
        let mut json = Vec::new();
        crate::write_item(item, &mut json);
        self.push(RawItem(&json));
    }

    /// Closes the open batch and returns it; the encoder is ready for the next one. A batch
    /// with no items is `[]`.
    pub fn finish(&mut self) -> EncodedBatch {
        if self.items == 0 {
            self.stage.push(b'[');
        }
        self.stage.push(b']');
        let stage = std::mem::take(&mut self.stage);
        self.compress(&stage, FlushCompress::Finish);
        self.stage = stage;
        self.stage.clear();
        self.deflate.reset();
        let batch = EncodedBatch {
            body: std::mem::take(&mut self.out),
            items: self.items,
            json_bytes: if self.items == 0 {
                2
            } else {
                self.json_bytes + 1
            },
        };
        self.items = 0;
        self.json_bytes = 0;
        batch
    }

    fn flush_stage(&mut self) {
        let stage = std::mem::take(&mut self.stage);
        self.compress(&stage, FlushCompress::None);
        self.stage = stage;
        self.stage.clear();
    }

    fn compress(&mut self, mut input: &[u8], flush: FlushCompress) {
        loop {
            if self.out.capacity() - self.out.len() < 32 << 10 {
                self.out.reserve((input.len() / 2).max(64 << 10));
            }
            let before_in = self.deflate.total_in();
            let status = self.deflate.compress_vec(input, &mut self.out, flush);
            let consumed = (self.deflate.total_in() - before_in) as usize;
            input = &input[consumed..];
            match status {
                Ok(Status::StreamEnd) => return,
                Ok(Status::Ok | Status::BufError) => {
                    let room = self.out.capacity() > self.out.len();
                    if input.is_empty() && !matches!(flush, FlushCompress::Finish) && room {
                        return;
                    }
                }
                // Compressing into a Vec with room cannot fail; a failure here is a bug in
                // the backend, not bad input.
                Err(e) => unreachable!("deflate failed: {e}"),
            }
        }
    }
}

/// Encodes a whole batch of typed items (tests, the CLI).
pub fn encode_items(items: &[Item], level: u32) -> Vec<u8> {
    let mut encoder = BatchEncoder::new(EncoderConfig {
        level,
        ..EncoderConfig::default()
    });
    for item in items {
        encoder.push_item(item);
    }
    encoder.finish().body
}

/// Why a batch could not be decoded. Every variant is permanent for that object: the same
/// bytes decode the same way.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("the zlib stream is truncated")]
    Truncated,
    #[error("bad zlib data: {0}")]
    Zlib(String),
    #[error("{0} bytes follow the end of the zlib stream")]
    TrailingData(usize),
    #[error("the batch inflates to more than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("bad JSON at offset {offset}: {message}")]
    Json { offset: usize, message: String },
    #[error("item {index} (at offset {offset}): {error}")]
    Item {
        index: usize,
        offset: usize,
        error: ItemError,
    },
}

/// Decodes batches, reusing its buffers from one batch to the next.
#[derive(Debug)]
pub struct BatchDecoder {
    max_inflated: usize,
    json: Vec<u8>,
    ranges: Vec<Range<usize>>,
}

/// Default cap on a batch's inflated size: well above the largest batch target.
pub const DEFAULT_MAX_INFLATED: usize = 256 << 20;

impl Default for BatchDecoder {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_INFLATED)
    }
}

impl BatchDecoder {
    /// A decoder that refuses batches inflating to more than `max_inflated` bytes.
    pub fn new(max_inflated: usize) -> Self {
        BatchDecoder {
            max_inflated,
            json: Vec::new(),
            ranges: Vec::new(),
        }
    }

    /// Inflates and validates one batch; the items borrow from the decoder's buffer.
    pub fn decode(&mut self, body: &[u8]) -> Result<DecodedBatch<'_>, DecodeError> {
        inflate_capped(body, self.max_inflated, &mut self.json)?;
        self.ranges.clear();
        split_array(&self.json, &mut self.ranges, scan_item)?;
        Ok(DecodedBatch {
            json: &self.json,
            ranges: &self.ranges,
        })
    }

    /// Inflates one batch and reads each item into `B` (the SDK's map, the typed model) as it
    /// is validated: one pass over each item, where [`BatchDecoder::decode`] then
    /// [`RawItem::build`] make two. `items` is cleared first and holds the items in order,
    /// `items[i]` built from the batch's item `i`; on error its contents are unspecified.
    pub fn decode_into<B, M>(
        &mut self,
        body: &[u8],
        items: &mut Vec<M>,
    ) -> Result<DecodedBatch<'_>, DecodeError>
    where
        B: for<'x> Build<'x, Map = M>,
    {
        items.clear();
        inflate_capped(body, self.max_inflated, &mut self.json)?;
        self.ranges.clear();
        split_array(&self.json, &mut self.ranges, |text, start| {
            let (end, map) = build_item::<B>(text, start)?;
            items.push(map);
            Ok(end)
        })?;
        Ok(DecodedBatch {
            json: &self.json,
            ranges: &self.ranges,
        })
    }
}

/// The items of one decoded batch.
#[derive(Debug, Clone, Copy)]
pub struct DecodedBatch<'a> {
    json: &'a [u8],
    ranges: &'a [Range<usize>],
}

impl<'a> DecodedBatch<'a> {
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Uncompressed JSON bytes of the batch.
    pub fn json_bytes(&self) -> usize {
        self.json.len()
    }

    pub fn get(&self, index: usize) -> Option<RawItem<'a>> {
        self.ranges
            .get(index)
            .map(|r| RawItem(&self.json[r.clone()]))
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = RawItem<'a>> + 'a {
        let json = self.json;
        self.ranges.iter().map(move |r| RawItem(&json[r.clone()]))
    }

    /// The typed items.
    pub fn to_items(&self) -> Vec<Item> {
        self.iter().map(|i| i.to_item()).collect()
    }
}

/// Decodes a whole batch into typed items (tests, the CLI).
pub fn decode_items(body: &[u8], max_inflated: usize) -> Result<Vec<Item>, DecodeError> {
    let mut decoder = BatchDecoder::new(max_inflated);
    Ok(decoder.decode(body)?.to_items())
}

/// Inflates a zlib stream into `out` (cleared first), refusing to write more than `limit`
/// bytes and anything after the end of the stream.
pub fn inflate_capped(body: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<(), DecodeError> {
    out.clear();
    let mut inflate = Decompress::new(true);
    // A first guess from typical JSON ratios; grown by doubling, never past the cap.
    let first = body
        .len()
        .saturating_mul(8)
        .max(4 << 10)
        .min(limit.saturating_add(1));
    if out.capacity() < first {
        out.reserve(first);
    }
    let mut input = body;
    loop {
        if out.len() == out.capacity() {
            if out.len() > limit {
                return Err(DecodeError::TooLarge { limit });
            }
            // One byte past the cap is enough to tell "exactly at the cap" from "over".
            let want = out
                .capacity()
                .saturating_mul(2)
                .min(limit.saturating_add(1))
                - out.len();
            if want == 0 {
                return Err(DecodeError::TooLarge { limit });
            }
            out.reserve_exact(want);
        }
        let before_in = inflate.total_in();
        let before_out = out.len();
        let status = inflate
            .decompress_vec(input, out, FlushDecompress::None)
            .map_err(|e| DecodeError::Zlib(e.to_string()))?;
        input = &input[(inflate.total_in() - before_in) as usize..];
        if out.len() > limit {
            return Err(DecodeError::TooLarge { limit });
        }
        match status {
            Status::StreamEnd => {
                return if input.is_empty() {
                    Ok(())
                } else {
                    Err(DecodeError::TrailingData(input.len()))
                };
            }
            Status::Ok | Status::BufError => {
                // No progress with room to write: the input ended before the stream did.
                let progressed = out.len() > before_out || inflate.total_in() > before_in;
                if !progressed && out.len() < out.capacity() {
                    return Err(DecodeError::Truncated);
                }
            }
        }
    }
}

pub(crate) fn skip_ws(json: &[u8], mut i: usize) -> usize {
    while i < json.len() && matches!(json[i], b' ' | b'\n' | b'\r' | b'\t') {
        i += 1;
    }
    i
}

/// Splits a JSON array of items into item ranges, each checked (and perhaps read) by `item`
/// ([`scan_item`], [`build_item`]): given the text and an item's start, it returns the offset
/// past the item.
fn split_array<'a>(
    json: &'a [u8],
    ranges: &mut Vec<Range<usize>>,
    mut item: impl FnMut(&'a str, usize) -> Result<usize, RawItemError>,
) -> Result<(), DecodeError> {
    let syntax = |offset: usize, message: &str| DecodeError::Json {
        offset,
        message: message.to_owned(),
    };
    let text = utf8(json).map_err(|(offset, message)| DecodeError::Json { offset, message })?;
    let mut i = skip_ws(json, 0);
    if json.get(i) != Some(&b'[') {
        return Err(syntax(i, "a batch must be a JSON array of items"));
    }
    i = skip_ws(json, i + 1);
    if json.get(i) == Some(&b']') {
        i += 1;
    } else {
        loop {
            let start = skip_ws(json, i);
            let end = item(text, start).map_err(|e| match e {
                RawItemError::Json { offset, message } => DecodeError::Json { offset, message },
                RawItemError::Item(error) => DecodeError::Item {
                    index: ranges.len(),
                    offset: start,
                    error,
                },
            })?;
            ranges.push(start..end);
            i = skip_ws(json, end);
            match json.get(i) {
                Some(b',') => i += 1,
                Some(b']') => {
                    i += 1;
                    break;
                }
                Some(_) => return Err(syntax(i, "expected `,` or `]` after an item")),
                None => return Err(syntax(i, "the array is not closed")),
            }
        }
    }
    let end = skip_ws(json, i);
    if end != json.len() {
        return Err(syntax(end, "trailing characters after the array"));
    }
    Ok(())
}
