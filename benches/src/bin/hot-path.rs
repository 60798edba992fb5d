//! The per-item cost of the restore's decode stage and of the backup's SDK-item encode, each
//! way the code has done it, side by side in one run: time per item (the fastest of the
//! repetitions, each case run once per repetition in turn) and allocations per item (counted
//! by a counting global allocator over one run).
//!
//! `cargo run --release --locked -p solace-benches --bin hot-path [-- --reps N]`
//!
//! Restore, per batch of about 8 MiB of one shape's JSON:
//! - `inflate`: zlib-rs alone, the physical bound;
//! - `before`: validate (the scanner), then read each item again by serde's visitors, then
//!   clone it into the request (the code until this change);
//! - `+ fast builder`: the same two passes, the second by the scanner's builder;
//! - `+ one pass`: `decode_into` checks and builds in one pass, still cloned;
//! - `after`: one pass, the item moved into the request, its JSON copied into its chunk
//!   (what `pipeline/src/restore.rs` does now).
//!
//! Backup, items a store hands over as SDK maps, into a level-6 encoder:
//! - `before`: write the JSON, parse it again to prove it valid, push;
//! - `after`: write it checked on its SDK values (`write_checked_sdk_item`), push.

use std::alloc::System;
use std::hint::black_box;
use std::time::Instant;

use aws_sdk_dynamodb::types::AttributeValue;
use solace_codec::sample::{self, Shape};
use solace_codec::sdk::{SdkItem, to_sdk_item, write_checked_sdk_item, write_sdk_item};
use solace_codec::{BatchDecoder, BatchEncoder, EncoderConfig, Item, RawItem, inflate_capped};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// JSON per batch, as the backup's default target.
const BATCH_JSON: usize = 8 << 20;
/// Items per BatchWriteItem.
const CHUNK: usize = 25;

type Case<'a> = (&'static str, Box<dyn FnMut() + 'a>);

fn items_of(shape: Option<Shape>) -> Vec<Item> {
    let mut out = Vec::new();
    let mut bytes = 0;
    let mut n = 0;
    while bytes < BATCH_JSON {
        let item = match shape {
            Some(s) => sample::item(s, n),
            None => sample::mixed(n),
        };
        let mut json = Vec::new();
        solace_codec::write_item(&item, &mut json);
        bytes += json.len() + 1;
        out.push(item);
        n += 1;
    }
    out
}

/// Runs every case once per repetition, in turn; each case's fastest run, in seconds, and
/// its allocations over one more run.
fn measure(cases: &mut [Case<'_>], reps: usize) -> Vec<(f64, u64)> {
    let mut best = vec![f64::INFINITY; cases.len()];
    for _ in 0..reps {
        for (i, (_, run)) in cases.iter_mut().enumerate() {
            let start = Instant::now();
            run();
            best[i] = best[i].min(start.elapsed().as_secs_f64());
        }
    }
    cases
        .iter_mut()
        .zip(best)
        .map(|((_, run), t)| {
            let region = Region::new(GLOBAL);
            run();
            (t, region.change().allocations as u64)
        })
        .collect()
}

/// The restore's cases over one batch body; each case owns its decoder, reused from run to
/// run as a segment run reuses it.
fn restore_cases(body: &[u8]) -> Vec<Case<'_>> {
    let mut json = Vec::new();
    let inflate = move || {
        inflate_capped(body, usize::MAX, &mut json).expect("inflates");
        black_box(json.len());
    };
    let two_pass = |fast: bool| {
        let mut decoder = BatchDecoder::default();
        move || {
            let batch = decoder.decode(body).expect("decodes");
            let mut sent = Vec::with_capacity(CHUNK);
            for raw in batch.iter() {
                let item = if fast {
                    raw.to_sdk()
                } else {
                    raw.to_sdk_by_serde()
                };
                sent.push(item.clone());
                black_box(&item);
                if sent.len() == CHUNK {
                    drop(black_box(std::mem::take(&mut sent)));
                }
            }
            drop(black_box(sent));
        }
    };
    let one_pass = |moved: bool| {
        let mut decoder = BatchDecoder::default();
        let mut items: Vec<SdkItem> = Vec::new();
        move || {
            let batch = decoder
                .decode_into::<AttributeValue, _>(body, &mut items)
                .expect("decodes");
            let mut sent = Vec::with_capacity(CHUNK);
            let mut chunk_json = Vec::new();
            let mut ends = Vec::with_capacity(CHUNK);
            for (raw, item) in batch.iter().zip(items.drain(..)) {
                if moved {
                    chunk_json.extend_from_slice(raw.as_bytes());
                    ends.push(chunk_json.len());
                    sent.push(item);
                } else {
                    sent.push(item.clone());
                    black_box(&item);
                }
                if sent.len() == CHUNK {
                    drop(black_box(std::mem::take(&mut sent)));
                    drop(black_box(std::mem::take(&mut chunk_json)));
                    ends.clear();
                }
            }
            drop(black_box(sent));
        }
    };
    vec![
        ("inflate", Box::new(inflate)),
        ("before", Box::new(two_pass(false))),
        ("+ fast builder", Box::new(two_pass(true))),
        ("+ one pass", Box::new(one_pass(false))),
        ("after", Box::new(one_pass(true))),
    ]
}

fn backup_cases(items: &[SdkItem]) -> Vec<Case<'_>> {
    let encode = |checked: bool| {
        move || {
            let mut encoder = BatchEncoder::new(EncoderConfig::default());
            let mut json = Vec::with_capacity(4 << 10);
            for item in items {
                json.clear();
                let raw = if checked {
                    write_checked_sdk_item(item, &mut json).expect("valid")
                } else {
                    write_sdk_item(item, &mut json).expect("writes");
                    RawItem::parse(&json).expect("valid")
                };
                encoder.push(raw);
            }
            black_box(encoder.finish());
        }
    };
    vec![
        ("before", Box::new(encode(false))),
        ("after", Box::new(encode(true))),
    ]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let reps = args
        .iter()
        .position(|a| a == "--reps")
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().expect("--reps takes a count"))
        .unwrap_or(7);
    let shapes: Vec<(&str, Option<Shape>)> = Shape::ALL
        .iter()
        .map(|s| (s.name(), Some(*s)))
        .chain([("mixed", None)])
        .collect();

    println!("### Restore decode stage, per item (fastest of {reps})\n");
    println!(
        "| shape | items | inflate ns | before ns (÷ inflate) | + fast builder | + one pass | after ns (÷ inflate) | after ÷ before | allocs before | allocs after |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let mut backup_rows = Vec::new();
    for (name, shape) in &shapes {
        let items = items_of(*shape);
        let n = items.len() as f64;
        let body = solace_codec::encode_items(&items, 6);
        let mut cases = restore_cases(&body);
        let r = measure(&mut cases, reps);
        let ns = |i: usize| r[i].0 / n * 1e9;
        let allocs = |i: usize| r[i].1 as f64 / n;
        println!(
            "| {name} | {} | {:.0} | {:.0} ({:.2}) | {:.0} ({:.2}) | {:.0} ({:.2}) | {:.0} ({:.2}) | {:.2} | {:.1} | {:.1} |",
            items.len(),
            ns(0),
            ns(1),
            ns(1) / ns(0),
            ns(2),
            ns(2) / ns(0),
            ns(3),
            ns(3) / ns(0),
            ns(4),
            ns(4) / ns(0),
            ns(4) / ns(1),
            allocs(1),
            allocs(4),
        );
        let sdk: Vec<SdkItem> = items.iter().map(to_sdk_item).collect();
        let mut cases = backup_cases(&sdk);
        let b = measure(&mut cases, reps);
        backup_rows.push((name.to_string(), items.len(), b));
    }
    println!("\n### Backup of SDK items into a level-6 encoder, per item (fastest of {reps})\n");
    println!(
        "| shape | items | before ns | after ns | after ÷ before | allocs before | allocs after |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (name, count, b) in backup_rows {
        let n = count as f64;
        println!(
            "| {name} | {count} | {:.0} | {:.0} | {:.2} | {:.1} | {:.1} |",
            b[0].0 / n * 1e9,
            b[1].0 / n * 1e9,
            b[1].0 / b[0].0,
            b[0].1 as f64 / n,
            b[1].1 as f64 / n,
        );
    }
}
