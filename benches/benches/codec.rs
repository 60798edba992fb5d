//! Criterion benches of the batch codec: encode and decode throughput (bytes of uncompressed
//! JSON per second) per item shape and zlib level, beside zlib-rs alone and the naive
//! serde_json + miniz_oxide way; a batch-size sweep; and the JSON validators compared.
//!
//! `cargo bench -p solace-benches --bench codec` (filter with a trailing name, e.g. `encode/small`).
//! For the side-by-side ratio table run `cargo run --release -p solace-benches --bin codec-ratios`.

use std::hint::black_box;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, SamplingMode, Throughput};
use solace_benches::{
    Corpus, LEVELS, SHAPE_BATCH, SWEEP_BATCHES, SWEEP_SHAPE, ZlibRs, decode, decode_to_items,
    encode_raw, naive_decode, naive_encode, serde_ignored, simd_tape, validate_encode,
    validate_items,
};
use solace_codec::sample::Shape;
use solace_codec::{BatchDecoder, BatchEncoder};

fn configure(group: &mut BenchmarkGroup<'_, WallTime>, bytes: usize) {
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .sampling_mode(SamplingMode::Flat)
        .throughput(Throughput::Bytes(bytes as u64));
}

fn shapes(c: &mut Criterion) {
    for shape in Shape::ALL {
        let corpus = Corpus::new(shape, SHAPE_BATCH);
        let raw = corpus.raw_items();
        for level in LEVELS {
            let mut encoder = BatchEncoder::new(corpus.config(level));
            let mut zlib = ZlibRs::new(level);
            let body = encode_raw(&mut encoder, &raw).body;
            let naive_body = naive_encode(&corpus.items, level);

            let mut group = c.benchmark_group(format!("encode/{}/L{level}", shape.name()));
            configure(&mut group, corpus.json_bytes());
            group.bench_function("codec", |b| b.iter(|| encode_raw(&mut encoder, &raw)));
            group.bench_function("validate+encode", |b| {
                b.iter(|| validate_encode(&mut encoder, &corpus.items))
            });
            group.bench_function("zlib-rs", |b| b.iter(|| zlib.compress(&corpus.array)));
            group.bench_function("naive", |b| b.iter(|| naive_encode(&corpus.items, level)));
            group.finish();

            let mut decoder = BatchDecoder::default();
            let mut group = c.benchmark_group(format!("decode/{}/L{level}", shape.name()));
            configure(&mut group, corpus.json_bytes());
            group.bench_function("codec", |b| b.iter(|| decode(&mut decoder, &body)));
            group.bench_function("to_items", |b| {
                b.iter(|| decode_to_items(&mut decoder, &body))
            });
            group.bench_function("zlib-rs", |b| b.iter(|| zlib.decompress(&body)));
            group.bench_function("naive", |b| b.iter(|| naive_decode(&naive_body)));
            group.finish();
        }
    }
}

fn batch_sizes(c: &mut Criterion) {
    for level in LEVELS {
        let mut group = c.benchmark_group(format!("batch-size/{}/L{level}", SWEEP_SHAPE.name()));
        for target in SWEEP_BATCHES {
            let corpus = Corpus::new(SWEEP_SHAPE, target);
            let raw = corpus.raw_items();
            let mut encoder = BatchEncoder::new(corpus.config(level));
            let mut decoder = BatchDecoder::default();
            let mut zlib = ZlibRs::new(level);
            let body = encode_raw(&mut encoder, &raw).body;
            configure(&mut group, corpus.json_bytes());
            let kib = target >> 10;
            group.bench_function(BenchmarkId::new("encode-codec", kib), |b| {
                b.iter(|| encode_raw(&mut encoder, &raw))
            });
            group.bench_function(BenchmarkId::new("encode-zlib-rs", kib), |b| {
                b.iter(|| zlib.compress(&corpus.array))
            });
            group.bench_function(BenchmarkId::new("decode-codec", kib), |b| {
                b.iter(|| decode(&mut decoder, &body))
            });
            group.bench_function(BenchmarkId::new("decode-zlib-rs", kib), |b| {
                b.iter(|| zlib.decompress(&body))
            });
        }
        group.finish();
    }
}

fn validators(c: &mut Criterion) {
    for shape in Shape::ALL {
        let corpus = Corpus::new(shape, SHAPE_BATCH);
        let mut scratch = Vec::new();
        let mut group = c.benchmark_group(format!("validate/{}", shape.name()));
        configure(&mut group, corpus.json_bytes());
        group.bench_function("codec-raw-item-parse", |b| {
            b.iter(|| validate_items(black_box(&corpus.items)))
        });
        group.bench_function("serde-ignored-any", |b| {
            b.iter(|| serde_ignored(black_box(&corpus.array)))
        });
        group.bench_function("simd-json-to-tape", |b| {
            b.iter(|| simd_tape(black_box(&corpus.array), &mut scratch))
        });
        group.finish();
    }
}

criterion::criterion_group!(benches, shapes, batch_sizes, validators);
criterion::criterion_main!(benches);
