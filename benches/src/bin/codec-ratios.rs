//! Prints markdown tables of codec time ÷ baseline time, measured side by side in one run.
//!
//! `cargo run --release -p solace-benches --bin codec-ratios [-- --reps N] [--stat min|median]
//! [--only shapes|sweep|levels|validate]`
//!
//! Every case of a table row is run once per repetition, one after another (the starting case
//! rotating), so a slow moment of a shared machine hits all of them alike. By default a ratio
//! is of the cases' fastest runs (`--stat min`): on a machine shared with other work the
//! least-disturbed run is the best estimate of a cost, and a median carries the neighbours'
//! load. `--stat median` gives the median over repetitions of the per-repetition ratio.
//! Absolute MB/s are printed for context only: on a shared machine they are noise.

use std::hint::black_box;
use std::sync::OnceLock;
use std::time::Instant;

use solace_benches::{
    Corpus, LEVELS, SHAPE_BATCH, SWEEP_BATCHES, SWEEP_SHAPE, ZlibRs, build_flags, decode,
    decode_to_items, encode_raw, naive_decode, naive_encode, serde_ignored, simd_tape,
    validate_encode, validate_items,
};
use solace_codec::sample::Shape;
use solace_codec::{BatchDecoder, BatchEncoder};

/// Encode ≤ 1.1× zlib-rs alone; decode ≤ 1.5× zlib-rs alone; both faster than naive
/// (benches/README.md, "Targets"; they were 1.15 and 1.6 before the hot-path work).
const ENCODE_TARGET: f64 = 1.1;
const DECODE_TARGET: f64 = 1.5;

/// Levels of the level sweep (6 must be among them: the others are timed against it).
const LEVEL_SWEEP: [u32; 5] = [1, 2, 3, 6, 9];

type Case<'a> = Box<dyn FnMut() + 'a>;

/// Keeps a result alive so the optimizer cannot drop the work, then frees it (inside the
/// timing, as a caller would).
fn sink<T>(v: T) {
    drop(black_box(v));
}

/// How repetitions are summarized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stat {
    Min,
    Median,
}

static STAT: OnceLock<Stat> = OnceLock::new();

fn stat() -> Stat {
    STAT.get().copied().unwrap_or(Stat::Min)
}

/// Seconds per run, `[case][repetition]`.
struct Samples(Vec<Vec<f64>>);

impl Samples {
    /// `case a ÷ case b`: fastest run over fastest run, or the median per-repetition ratio.
    fn ratio(&self, a: usize, b: usize) -> f64 {
        match stat() {
            Stat::Min => self.time(a) / self.time(b),
            Stat::Median => median(
                self.0[a]
                    .iter()
                    .zip(&self.0[b])
                    .map(|(x, y)| x / y)
                    .collect(),
            ),
        }
    }

    /// Seconds per run of a case, summarized.
    fn time(&self, case: usize) -> f64 {
        match stat() {
            Stat::Min => self.0[case].iter().copied().fold(f64::INFINITY, f64::min),
            Stat::Median => median(self.0[case].clone()),
        }
    }

    /// MB/s of a case over `bytes`.
    fn mbps(&self, case: usize, bytes: usize) -> f64 {
        bytes as f64 / 1e6 / self.time(case)
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn run(reps: usize, mut cases: Vec<Case<'_>>) -> Samples {
    for case in cases.iter_mut() {
        case(); // warm-up: buffers grown, caches and branch predictors primed
    }
    let n = cases.len();
    let mut samples = vec![Vec::with_capacity(reps); n];
    for rep in 0..reps {
        for k in 0..n {
            let i = (rep + k) % n;
            let start = Instant::now();
            cases[i]();
            samples[i].push(start.elapsed().as_secs_f64());
        }
    }
    Samples(samples)
}

fn mark(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

fn shapes(reps: usize) {
    println!(
        "## Per shape and level ({} MiB batches)\n",
        SHAPE_BATCH >> 20
    );
    println!(
        "Ratios are codec time ÷ baseline time (lower is better; < 1 is faster than the baseline). \
         (a) = zlib-rs alone via flate2 on the same JSON bytes; (b) = naive serde_json `Value` \
         tree + miniz_oxide.\n"
    );
    println!(
        "| shape | level | items | body/JSON | encode ÷ (a) | validate+encode ÷ (a) | encode ÷ (b) \
         | decode ÷ (a) | to_items ÷ (a) | decode ÷ (b) | to_items ÷ (b) | targets |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut absolute = Vec::new();
    for shape in Shape::ALL {
        let corpus = Corpus::new(shape, SHAPE_BATCH);
        let raw = corpus.raw_items();
        for level in LEVELS {
            let mut encoder = BatchEncoder::new(corpus.config(level));
            let mut zlib = ZlibRs::new(level);
            let body = encode_raw(&mut encoder, &raw).body;
            let naive_body = naive_encode(&corpus.items, level);
            let bytes = corpus.json_bytes();
            let enc = {
                let mut encoder2 = BatchEncoder::new(corpus.config(level));
                let mut zlib2 = ZlibRs::new(level);
                run(
                    reps,
                    vec![
                        Box::new(|| sink(encode_raw(&mut encoder, &raw))),
                        Box::new(|| sink(validate_encode(&mut encoder2, &corpus.items))),
                        Box::new(|| sink(zlib2.compress(&corpus.array))),
                        Box::new(|| sink(naive_encode(&corpus.items, level))),
                    ],
                )
            };
            let dec = {
                let mut decoder = BatchDecoder::default();
                let mut decoder2 = BatchDecoder::default();
                run(
                    reps,
                    vec![
                        Box::new(|| sink(decode(&mut decoder, &body))),
                        Box::new(|| sink(decode_to_items(&mut decoder2, &body))),
                        Box::new(|| sink(zlib.decompress(&body))),
                        Box::new(|| sink(naive_decode(&naive_body))),
                    ],
                )
            };
            let (e_a, ve_a, e_b) = (enc.ratio(0, 2), enc.ratio(1, 2), enc.ratio(0, 3));
            let (d_a, t_a, d_b, t_b) = (
                dec.ratio(0, 2),
                dec.ratio(1, 2),
                dec.ratio(0, 3),
                dec.ratio(1, 3),
            );
            let enc_ok = e_a <= ENCODE_TARGET && e_b < 1.0;
            let dec_ok = d_a <= DECODE_TARGET && d_b < 1.0;
            println!(
                "| {} | {level} | {} | {:.1}% | {e_a:.2} | {ve_a:.2} | {e_b:.2} | {d_a:.2} | {t_a:.2} \
                 | {d_b:.2} | {t_b:.2} | encode {}, decode {} |",
                shape.name(),
                corpus.items.len(),
                100.0 * body.len() as f64 / bytes as f64,
                mark(enc_ok),
                mark(dec_ok),
            );
            absolute.push(format!(
                "| {} | {level} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} |",
                shape.name(),
                enc.mbps(0, bytes),
                enc.mbps(1, bytes),
                enc.mbps(2, bytes),
                enc.mbps(3, bytes),
                dec.mbps(0, bytes),
                dec.mbps(1, bytes),
                dec.mbps(2, bytes),
                dec.mbps(3, bytes),
            ));
        }
    }
    println!("\nAbsolute MB/s of uncompressed JSON (context only; noisy on a shared machine):\n");
    println!(
        "| shape | level | encode | validate+encode | (a) deflate | (b) naive encode | decode \
         | to_items | (a) inflate | (b) naive decode |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for row in absolute {
        println!("{row}");
    }
    println!();
}

fn sweep(reps: usize) {
    println!("## Batch size sweep ({} items)\n", SWEEP_SHAPE.name());
    println!(
        "| target | level | items | body/JSON | encode ÷ (a) | decode ÷ (a) | encode MB/s | decode MB/s |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for target in SWEEP_BATCHES {
        let corpus = Corpus::new(SWEEP_SHAPE, target);
        let raw = corpus.raw_items();
        let bytes = corpus.json_bytes();
        for level in LEVELS {
            let mut encoder = BatchEncoder::new(corpus.config(level));
            let mut decoder = BatchDecoder::default();
            let mut zlib = ZlibRs::new(level);
            let mut zlib2 = ZlibRs::new(level);
            let body = encode_raw(&mut encoder, &raw).body;
            let s = run(
                reps,
                vec![
                    Box::new(|| sink(encode_raw(&mut encoder, &raw))),
                    Box::new(|| sink(zlib.compress(&corpus.array))),
                    Box::new(|| sink(decode(&mut decoder, &body))),
                    Box::new(|| sink(zlib2.decompress(&body))),
                ],
            );
            println!(
                "| {} KiB | {level} | {} | {:.1}% | {:.2} | {:.2} | {:.0} | {:.0} |",
                target >> 10,
                corpus.items.len(),
                100.0 * body.len() as f64 / bytes as f64,
                s.ratio(0, 1),
                s.ratio(2, 3),
                s.mbps(0, bytes),
                s.mbps(2, bytes),
            );
        }
    }
    println!();
}

fn levels(reps: usize) {
    println!("## zlib levels ({} MiB batches)\n", SHAPE_BATCH >> 20);
    println!(
        "The codec's encode and decode at each level, time ÷ the same at level 6 (same run); \
         body/JSON is the compressed size. miniz_oxide's size at the same level for reference.\n"
    );
    println!("| shape | level | body/JSON | miniz_oxide body/JSON | encode ÷ L6 | decode ÷ L6 |");
    println!("|---|---|---|---|---|---|");
    for shape in Shape::ALL {
        let corpus = Corpus::new(shape, SHAPE_BATCH);
        let raw = corpus.raw_items();
        let bytes = corpus.json_bytes() as f64;
        let mut encoders: Vec<BatchEncoder> = LEVEL_SWEEP
            .iter()
            .map(|l| BatchEncoder::new(corpus.config(*l)))
            .collect();
        let bodies: Vec<Vec<u8>> = encoders
            .iter_mut()
            .map(|e| encode_raw(e, &raw).body)
            .collect();
        let mut decoders: Vec<BatchDecoder> = LEVEL_SWEEP
            .iter()
            .map(|_| BatchDecoder::default())
            .collect();
        let mut cases: Vec<Case<'_>> = Vec::new();
        for encoder in encoders.iter_mut() {
            let raw = &raw;
            cases.push(Box::new(move || sink(encode_raw(encoder, raw))));
        }
        for (decoder, body) in decoders.iter_mut().zip(&bodies) {
            cases.push(Box::new(move || sink(decode(decoder, body))));
        }
        let s = run(reps, cases);
        let n = LEVEL_SWEEP.len();
        let six = LEVEL_SWEEP.iter().position(|l| *l == 6).unwrap_or(0);
        for (k, level) in LEVEL_SWEEP.iter().enumerate() {
            let miniz = miniz_oxide::deflate::compress_to_vec_zlib(&corpus.array, *level as u8);
            println!(
                "| {} | {level} | {:.1}% | {:.1}% | {:.2} | {:.2} |",
                shape.name(),
                100.0 * bodies[k].len() as f64 / bytes,
                100.0 * miniz.len() as f64 / bytes,
                s.ratio(k, six),
                s.ratio(n + k, n + six),
            );
        }
    }
    println!();
}

fn validators(reps: usize) {
    println!(
        "## Validating the inflated JSON ({} MiB batches)\n",
        SHAPE_BATCH >> 20
    );
    println!(
        "Time ÷ the codec's validation (`RawItem::parse` of every item: serde_json visitors with \
         DynamoDB's rules). simd-json's tape includes copying the bytes (it parses in place).\n"
    );
    println!(
        "| shape | serde_json IgnoredAny ÷ codec | simd-json to_tape ÷ codec | zlib-rs inflate ÷ codec \
         | codec validate MB/s | simd-json tape MB/s |"
    );
    println!("|---|---|---|---|---|---|");
    for shape in Shape::ALL {
        let corpus = Corpus::new(shape, SHAPE_BATCH);
        let mut scratch = Vec::new();
        let mut zlib = ZlibRs::new(6);
        let body = zlib.compress(&corpus.array);
        let bytes = corpus.json_bytes();
        let s = run(
            reps,
            vec![
                Box::new(|| sink(validate_items(&corpus.items))),
                Box::new(|| serde_ignored(black_box(&corpus.array))),
                Box::new(|| sink(simd_tape(&corpus.array, &mut scratch))),
                Box::new(|| sink(zlib.decompress(&body))),
            ],
        );
        println!(
            "| {} | {:.2} | {:.2} | {:.2} | {:.0} | {:.0} |",
            shape.name(),
            s.ratio(1, 0),
            s.ratio(2, 0),
            s.ratio(3, 0),
            s.mbps(0, bytes),
            s.mbps(2, bytes),
        );
    }
    println!();
}

fn main() {
    let mut reps = 15;
    let mut only: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--reps" => {
                reps = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|n| *n > 0)
                    .expect("--reps takes a positive number");
            }
            "--only" => only = args.next(),
            "--stat" => {
                let chosen = match args.next().as_deref() {
                    Some("min") => Stat::Min,
                    Some("median") => Stat::Median,
                    _ => {
                        eprintln!("--stat takes min or median");
                        std::process::exit(2);
                    }
                };
                STAT.get_or_init(|| chosen);
            }
            other => {
                eprintln!(
                    "usage: codec-ratios [--reps N] [--stat min|median] [--only shapes|sweep|levels|validate] (got {other:?})"
                );
                std::process::exit(2);
            }
        }
    }
    if cfg!(debug_assertions) {
        eprintln!("warning: a debug build; run with --release");
    }
    println!("# Codec throughput ratios\n");
    let summary = match stat() {
        Stat::Min => "ratios of the fastest runs",
        Stat::Median => "median per-repetition ratios",
    };
    println!(
        "Build: {}. {reps} interleaved repetitions, {summary}.\n",
        build_flags()
    );
    let want = |name: &str| only.as_deref().is_none_or(|o| o == name);
    if want("shapes") {
        shapes(reps);
    }
    if want("sweep") {
        sweep(reps);
    }
    if want("levels") {
        levels(reps);
    }
    if want("validate") {
        validators(reps);
    }
}
