//! The workloads that the `codec` criterion bench and the `codec-ratios` binary time, so both
//! measure exactly the same code.
//!
//! # Layout
//! - [`Corpus`]: one batch worth of sample items of a shape, as raw item JSON and as the JSON
//!   array the batch holds.
//! - codec workloads: [`encode_raw`], [`validate_encode`], [`decode`], [`decode_to_items`],
//!   [`validate_items`].
//! - baseline (a), zlib-rs alone through flate2: [`ZlibRs`].
//! - baseline (b), the naive way (a `serde_json::Value` tree per item, `serde_json::to_vec`,
//!   miniz_oxide, flate2's default backend): [`naive_encode`], [`naive_decode`].
//! - parsers compared on the inflated JSON: [`serde_ignored`], [`simd_tape`].

pub mod pipeline_sim;
pub mod scale_sim;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use solace_codec::sample::{self, Shape};
use solace_codec::{BatchDecoder, BatchEncoder, EncodedBatch, EncoderConfig, Item, RawItem};

/// Batch target of the per-shape rows (the sweep varies it).
pub const SHAPE_BATCH: usize = 4 << 20;

/// Batch targets of the size sweep.
pub const SWEEP_BATCHES: [usize; 4] = [256 << 10, 1 << 20, 4 << 20, 16 << 20];

/// The shape the size sweep runs on.
pub const SWEEP_SHAPE: Shape = Shape::Medium;

/// zlib levels measured.
pub const LEVELS: [u32; 2] = [1, 6];

/// One batch of sample items: exactly the items a [`BatchEncoder`] with `target_bytes` takes
/// before it reports full.
#[derive(Debug, Clone)]
pub struct Corpus {
    pub shape: Shape,
    pub target_bytes: usize,
    /// Each item's DynamoDB JSON, as a scan response carries it.
    pub items: Vec<Vec<u8>>,
    /// The batch's uncompressed JSON: `[item,item,...]`, byte for byte what the codec writes.
    pub array: Vec<u8>,
}

impl Corpus {
    pub fn new(shape: Shape, target_bytes: usize) -> Self {
        let mut items = Vec::new();
        let mut array = vec![b'['];
        let mut n = 0;
        // The encoder counts `[` or `,` before each item and the closing `]`.
        while array.len() + 1 < target_bytes || items.is_empty() {
            let mut json = Vec::new();
            solace_codec::write_item(&sample::item(shape, n), &mut json);
            if !items.is_empty() {
                array.push(b',');
            }
            array.extend_from_slice(&json);
            items.push(json);
            n += 1;
        }
        array.push(b']');
        Corpus {
            shape,
            target_bytes,
            items,
            array,
        }
    }

    /// The items as validated [`RawItem`]s (validation is not part of the "encode" timing).
    pub fn raw_items(&self) -> Vec<RawItem<'_>> {
        self.items
            .iter()
            .map(|b| RawItem::parse(b).expect("sample items are valid"))
            .collect()
    }

    pub fn config(&self, level: u32) -> EncoderConfig {
        EncoderConfig {
            target_bytes: self.target_bytes,
            level,
            ..EncoderConfig::default()
        }
    }

    pub fn json_bytes(&self) -> usize {
        self.array.len()
    }
}

/// The codec's encode as the pipeline drives it: pre-validated items pushed until the encoder
/// is full, then `finish`.
pub fn encode_raw(encoder: &mut BatchEncoder, items: &[RawItem<'_>]) -> EncodedBatch {
    for item in items {
        encoder.push(*item);
        if encoder.is_full() {
            break;
        }
    }
    encoder.finish()
}

/// Validate each item's bytes with [`RawItem::parse`], then push it.
pub fn validate_encode(encoder: &mut BatchEncoder, items: &[Vec<u8>]) -> EncodedBatch {
    for bytes in items {
        encoder.push(RawItem::parse(bytes).expect("sample items are valid"));
        if encoder.is_full() {
            break;
        }
    }
    encoder.finish()
}

/// The codec's decode: inflate, validate, split into item ranges. Returns the item count.
pub fn decode(decoder: &mut BatchDecoder, body: &[u8]) -> usize {
    decoder.decode(body).expect("the batch decodes").len()
}

/// Decode, then build every typed item.
pub fn decode_to_items(decoder: &mut BatchDecoder, body: &[u8]) -> Vec<Item> {
    decoder.decode(body).expect("the batch decodes").to_items()
}

/// The codec's validation alone, item by item, over the same bytes (what `decode` runs on the
/// inflated JSON, less the array punctuation).
pub fn validate_items(items: &[Vec<u8>]) -> usize {
    items
        .iter()
        .map(|b| {
            RawItem::parse(b)
                .expect("sample items are valid")
                .as_bytes()
                .len()
        })
        .sum()
}

/// Baseline (a): zlib-rs alone, through flate2, on the pre-serialized JSON array. The
/// compressor, decompressor and inflate buffer are reused across runs, as the codec's are.
#[derive(Debug)]
pub struct ZlibRs {
    compress: Compress,
    decompress: Decompress,
    inflated: Vec<u8>,
}

impl ZlibRs {
    pub fn new(level: u32) -> Self {
        ZlibRs {
            compress: Compress::new(Compression::new(level), true),
            decompress: Decompress::new(true),
            inflated: Vec::new(),
        }
    }

    /// Deflates `input` in one call into a buffer sized for it.
    pub fn compress(&mut self, input: &[u8]) -> Vec<u8> {
        self.compress.reset();
        let mut out = Vec::with_capacity(input.len() / 2 + 1024);
        loop {
            let consumed = self.compress.total_in() as usize;
            match self
                .compress
                .compress_vec(&input[consumed..], &mut out, FlushCompress::Finish)
            {
                Ok(Status::StreamEnd) => return out,
                Ok(_) => out.reserve(out.capacity()),
                Err(e) => panic!("deflate failed: {e}"),
            }
        }
    }

    /// Inflates `body` into the reused buffer; returns the inflated length.
    pub fn decompress(&mut self, body: &[u8]) -> usize {
        self.decompress.reset(true);
        self.inflated.clear();
        loop {
            let consumed = self.decompress.total_in() as usize;
            match self.decompress.decompress_vec(
                &body[consumed..],
                &mut self.inflated,
                FlushDecompress::Finish,
            ) {
                Ok(Status::StreamEnd) => return self.inflated.len(),
                Ok(_) => self
                    .inflated
                    .reserve(self.inflated.capacity().max(body.len() * 4)),
                Err(e) => panic!("inflate failed: {e}"),
            }
        }
    }
}

/// Baseline (b), encode: a `serde_json::Value` tree per item, the array written with
/// `serde_json::to_vec`, deflated with miniz_oxide.
pub fn naive_encode(items: &[Vec<u8>], level: u32) -> Vec<u8> {
    let values = items
        .iter()
        .map(|b| serde_json::from_slice::<serde_json::Value>(b))
        .collect::<Result<Vec<_>, _>>()
        .expect("sample items are JSON");
    let json = serde_json::to_vec(&values).expect("a Value tree serializes");
    miniz_oxide::deflate::compress_to_vec_zlib(&json, level as u8)
}

/// Baseline (b), decode: miniz_oxide inflate, then a `Vec<serde_json::Value>`.
pub fn naive_decode(body: &[u8]) -> Vec<serde_json::Value> {
    let json = miniz_oxide::inflate::decompress_to_vec_zlib(body).expect("the batch inflates");
    serde_json::from_slice(&json).expect("the batch is JSON")
}

/// serde_json syntax validation of the whole array, nothing kept (`IgnoredAny`).
pub fn serde_ignored(json: &[u8]) {
    serde_json::from_slice::<serde::de::IgnoredAny>(json).expect("the batch is JSON");
}

/// simd-json's tape over a copy of the JSON (simd-json parses in place, so the copy is part
/// of what it costs). Returns the tape length.
pub fn simd_tape(json: &[u8], scratch: &mut Vec<u8>) -> usize {
    scratch.clear();
    scratch.extend_from_slice(json);
    simd_json::to_tape(scratch)
        .expect("the batch is JSON")
        .0
        .len()
}

/// Whether this build was compiled with AVX2 enabled for all code (`-C target-cpu=...`).
pub fn build_flags() -> &'static str {
    if cfg!(target_feature = "avx2") {
        "AVX2 at compile time (target-cpu x86-64-v3 or newer)"
    } else {
        "default target CPU (no AVX2 at compile time; simd-json detects it at run time)"
    }
}
