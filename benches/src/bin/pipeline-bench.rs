//! Pipeline throughput against the analytical bound of its slowest stage, and peak resident
//! memory, on generated latency-simulated stores (see `solace_benches::pipeline_sim`).
//!
//! With no `--json`, runs the matrix (each scenario at its default sizes, or `--sizes-gb`),
//! each (scenario, size) in its own child process (this binary re-invoked) so peak memory
//! does not mix, and prints a markdown table; progress and per-stage detail go to stderr.
//! `--scenario backup-io --size-gb 2 --json` runs one in this process and prints its report.
//!
//! Bounds, in uncompressed item JSON bytes per second:
//! - backup: min(scan = page bytes / scan latency (sequential), upload = batch bytes / PUT
//!   latency (uploads go one at a time, docs/protocol.md#fencing), encode = the codec on one
//!   core, measured in the same process);
//! - restore: min(download = prefetch x batch bytes / GET latency, write = write_concurrency x
//!   chunk bytes / BatchWriteItem latency, decode = the codec on one core, measured likewise).
//!
//! I/O latencies are the actual mean durations of the simulated sleeps (measured on the idle
//! runtime before the run), not the nominal ones. An I/O-bound scenario sets its stage's
//! latency (unless given) so that its bound is half the measured codec rate, but never under
//! 20 ms: tokio's timer has 1 ms steps, and shorter sleeps overshoot by 13-21%.
//!
//! Options (milliseconds and counts): `--scenarios a,b` `--sizes-gb 0.5,2` `--scan-ms`
//! `--put-ms` `--get-ms` `--write-ms` `--scan-prefetch` `--upload-concurrency` `--prefetch`
//! `--write-concurrency` `--json`; `--shape mixed|small|medium|large|binary|huge` (the items;
//! each scenario has its own, `mixed` but for `restore-huge`), `--batch-mib` (the batch
//! target, 8 by default), `--bytes-in-flight-mib` (the restore's byte budget, 256 by
//! default).

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use solace_benches::pipeline_sim::{
    Body, Encoded, GenObjects, GenTable, Pages, decode_bodies, encode_pages, load_average,
    process_cpu, resident,
};
use solace_codec::sample::Shape;
use solace_codec::{EncoderConfig, SegmentId};
use solace_pipeline::restore::{ByteBudget, MAX_ITEMS_PER_WRITE, restore_segment_budgeted};
use solace_pipeline::{
    BackupCheckpoint, BackupConfig, Open, Outcome, Progress, RestoreCheckpoint, RestoreConfig,
    SegmentJob, Unfenced, backup_segment,
};

const GB: f64 = 1e9;
const MB: f64 = 1e6;
const MIB: f64 = (1u64 << 20) as f64;
/// Distinct cached scan pages. Prime to the 8 pages of a default 8 MiB batch, so restore's
/// bodies (one per 8 pages) are 5 different batches.
const CACHED_PAGES: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Mode {
    Backup,
    Restore,
}

/// Simulated latencies, in milliseconds.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Latencies {
    scan: f64,
    put: f64,
    get: f64,
    write: f64,
}

/// The I/O stage a scenario makes the slowest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Io {
    Scan,
    Upload,
    Download,
    Write,
}

/// An I/O-bound scenario sets its stage's latency so that its bound is this fraction of the
/// codec rate measured at the start of the run (unless the latency is given): the stage stays
/// the slowest by a wide margin on a machine whose CPU share varies.
const AUTO_FRACTION: f64 = 0.5;
/// ... but never a latency under this (ms): tokio's timer has 1 ms steps, and the shorter
/// sleeps it makes run 13-21% long (6-8 ms BatchWriteItem calls, once decoding got fast
/// enough to ask for them), which the bound sees only as measured on the idle runtime.
/// Real BatchWriteItem and S3 calls take longer than this anyway.
const MIN_AUTO_MS: f64 = 20.0;

#[derive(Debug, Clone, Copy)]
struct Scenario {
    name: &'static str,
    mode: Mode,
    what: &'static str,
    /// Fixed latencies; the `auto` stage's entry is computed.
    latency: Latencies,
    auto: Option<Io>,
    /// Segment sizes run by default, GB.
    sizes: &'static [f64],
    /// The items' shape; `None`: `sample::mixed`.
    shape: Option<Shape>,
}

const fn lat(scan: f64, put: f64, get: f64, write: f64) -> Latencies {
    Latencies {
        scan,
        put,
        get,
        write,
    }
}

/// The default matrix: for each direction one scenario bound by an I/O stage and one by the
/// codec (CPU), and the restore's memory with near-400 KB items.
const SCENARIOS: [Scenario; 5] = [
    Scenario {
        name: "backup-io",
        mode: Mode::Backup,
        what: "scan-bound (sequential 1 MiB pages)",
        latency: lat(0.0, 50.0, 0.0, 0.0),
        auto: Some(Io::Scan),
        sizes: &[0.5],
        shape: None,
    },
    Scenario {
        name: "backup-cpu",
        mode: Mode::Backup,
        what: "encode-bound (fast scan and PUT)",
        latency: lat(2.0, 20.0, 0.0, 0.0),
        auto: None,
        sizes: &[0.5, 2.0],
        shape: None,
    },
    Scenario {
        name: "restore-io",
        mode: Mode::Restore,
        what: "write-bound (BatchWriteItem)",
        latency: lat(0.0, 0.0, 50.0, 0.0),
        auto: Some(Io::Write),
        sizes: &[0.5, 2.0],
        shape: None,
    },
    Scenario {
        name: "restore-cpu",
        mode: Mode::Restore,
        what: "decode-bound (fast GET and BatchWriteItem)",
        latency: lat(0.0, 0.0, 10.0, 1.0),
        auto: None,
        sizes: &[0.5],
        shape: None,
    },
    Scenario {
        name: "restore-huge",
        mode: Mode::Restore,
        what: "write-bound, near-400 KB items (memory)",
        latency: lat(0.0, 0.0, 50.0, 0.0),
        auto: Some(Io::Write),
        sizes: &[0.5, 2.0],
        shape: Some(Shape::Huge),
    },
];

/// Extra scenarios, run only when named: the other I/O stages.
const EXTRA: [Scenario; 2] = [
    Scenario {
        name: "backup-upload",
        mode: Mode::Backup,
        what: "upload-bound (PUT)",
        latency: lat(2.0, 0.0, 0.0, 0.0),
        auto: Some(Io::Upload),
        sizes: &[0.5],
        shape: None,
    },
    Scenario {
        name: "restore-download",
        mode: Mode::Restore,
        what: "download-bound (GET)",
        latency: lat(0.0, 0.0, 0.0, 1.0),
        auto: Some(Io::Download),
        sizes: &[0.5],
        shape: None,
    },
];

#[derive(Debug, Clone, Default)]
struct Args {
    scenarios: Vec<String>,
    sizes_gb: Vec<f64>,
    scan_ms: Option<f64>,
    put_ms: Option<f64>,
    get_ms: Option<f64>,
    write_ms: Option<f64>,
    scan_prefetch: Option<usize>,
    upload_concurrency: Option<usize>,
    prefetch: Option<usize>,
    write_concurrency: Option<usize>,
    /// The items' shape, for every scenario (`Some(None)`: mixed).
    shape: Option<Option<Shape>>,
    batch_mib: Option<f64>,
    bytes_in_flight_mib: Option<f64>,
    /// Run one (scenario, size) in this process and print its result as JSON.
    json: bool,
    /// Options to pass on to child processes.
    passthrough: Vec<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args::default();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--json" {
            args.json = true;
            continue;
        }
        if flag == "-h" || flag == "--help" {
            return Err(String::new());
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let num = |v: &str| v.parse::<f64>().map_err(|e| format!("{flag} {v}: {e}"));
        let count = |v: &str| v.parse::<usize>().map_err(|e| format!("{flag} {v}: {e}"));
        let list = |v: &str| v.split(',').map(str::to_owned).collect::<Vec<_>>();
        match flag.as_str() {
            "--scenario" | "--scenarios" => args.scenarios = list(&value),
            "--size-gb" | "--sizes-gb" => {
                args.sizes_gb = list(&value)
                    .iter()
                    .map(|v| num(v))
                    .collect::<Result<_, _>>()?;
            }
            _ => {
                match flag.as_str() {
                    "--scan-ms" => args.scan_ms = Some(num(&value)?),
                    "--put-ms" => args.put_ms = Some(num(&value)?),
                    "--get-ms" => args.get_ms = Some(num(&value)?),
                    "--write-ms" => args.write_ms = Some(num(&value)?),
                    "--scan-prefetch" => args.scan_prefetch = Some(count(&value)?),
                    "--upload-concurrency" => args.upload_concurrency = Some(count(&value)?),
                    "--prefetch" => args.prefetch = Some(count(&value)?),
                    "--write-concurrency" => args.write_concurrency = Some(count(&value)?),
                    "--shape" => args.shape = Some(shape(&value)?),
                    "--batch-mib" => args.batch_mib = Some(num(&value)?),
                    "--bytes-in-flight-mib" => args.bytes_in_flight_mib = Some(num(&value)?),
                    _ => return Err(format!("unknown option {flag}")),
                }
                args.passthrough.push(flag);
                args.passthrough.push(value);
            }
        }
    }
    Ok(args)
}

fn shape(name: &str) -> Result<Option<Shape>, String> {
    if name == "mixed" {
        return Ok(None);
    }
    Shape::ALL
        .into_iter()
        .find(|s| s.name() == name)
        .map(Some)
        .ok_or_else(|| format!("unknown shape {name}"))
}

fn find(name: &str) -> Option<Scenario> {
    SCENARIOS
        .iter()
        .chain(EXTRA.iter())
        .find(|s| s.name == name)
        .copied()
}

/// One run's measurements; rates in JSON bytes per second.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Report {
    scenario: String,
    mode: Mode,
    size_gb: f64,
    latency: Latencies,
    /// The stage settings: scan_prefetch/upload_concurrency or prefetch/write_concurrency.
    settings: BTreeMap<String, usize>,
    /// Each stage's analytical rate.
    bounds: BTreeMap<String, f64>,
    /// The codec's one-core rate (wall time) before and after the run; its mean is the bound.
    codec_before: f64,
    codec_after: f64,
    /// The codec's rate per CPU-second (what an idle core would do).
    codec_cpu: f64,
    /// Mean scan page clone time (backup), milliseconds.
    clone_ms: f64,
    /// Per store call: mean actual duration / nominal of its simulated latency, measured on
    /// the idle runtime before the run (the timer's rounding, the machine's wake-up delays).
    /// The bounds use the actual durations.
    timer: Latencies,
    mean_batch_json: f64,
    json_bytes: u64,
    items: u64,
    batches: u64,
    elapsed_s: f64,
    achieved: f64,
    /// CPU time of the whole process during the run.
    pipeline_cpu_s: f64,
    /// VmHWM after setup (cached pages and bodies, codec measurement) and after the run.
    setup_peak: u64,
    peak: u64,
    /// VmRSS as the run starts (what setup keeps: cached pages and bodies).
    #[serde(default)]
    start_rss: u64,
    /// 1-minute load average before and after the run.
    load: (f64, f64),
    /// Per I/O stage: (mean calls in flight, fraction of the run with any in flight).
    io: BTreeMap<String, (f64, f64)>,
    /// The stores saw exactly the work the segment holds.
    checked: bool,
    /// The items' shape.
    #[serde(default)]
    shape: String,
    /// Restore: the byte budget's bound and its high-water mark.
    #[serde(default)]
    budget: Option<(u64, u64)>,
}

impl Report {
    fn limit(&self) -> (String, f64) {
        self.bounds
            .iter()
            .min_by(|a, b| a.1.total_cmp(b.1))
            .map(|(k, v)| (k.clone(), *v))
            .unwrap_or_default()
    }
}

fn ms(v: f64) -> Duration {
    Duration::from_secs_f64(v / 1000.0)
}

/// Mean actual / nominal duration of each latency's `tokio::time::sleep`.
fn timer(runtime: &tokio::runtime::Runtime, l: Latencies) -> Latencies {
    Latencies {
        scan: timer_ratio(runtime, l.scan),
        put: timer_ratio(runtime, l.put),
        get: timer_ratio(runtime, l.get),
        write: timer_ratio(runtime, l.write),
    }
}

/// Mean actual / nominal duration of `tokio::time::sleep(latency)`, 32 at once, 3 rounds (1
/// from 100 ms).
fn timer_ratio(runtime: &tokio::runtime::Runtime, latency: f64) -> f64 {
    if latency <= 0.0 {
        return 1.0;
    }
    let rounds = if latency < 100.0 { 3 } else { 1 };
    runtime.block_on(async {
        let mut total = 0.0;
        for _ in 0..rounds {
            let handles: Vec<_> = (0..32)
                .map(|_| {
                    tokio::spawn(async move {
                        let start = Instant::now();
                        tokio::time::sleep(ms(latency)).await;
                        start.elapsed().as_secs_f64()
                    })
                })
                .collect();
            for h in handles {
                total += h.await.expect("a timer task") / 32.0;
            }
        }
        total / f64::from(rounds) / (latency / 1000.0)
    })
}

/// Rounds a latency to 0.1 ms.
fn round_ms(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

struct Common {
    size: f64,
    runtime: tokio::runtime::Runtime,
    job: SegmentJob,
    deadline: tokio::time::Instant,
    progress: Arc<Progress>,
    encoder: EncoderConfig,
    shape: Option<Shape>,
}

fn run_one(scenario: Scenario, size_gb: f64, args: &Args) -> Report {
    let common = Common {
        size: size_gb * GB,
        runtime: tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime"),
        job: SegmentJob {
            prefix: "bench/".to_owned(),
            segment: SegmentId(0),
            total_segments: 1,
        },
        deadline: tokio::time::Instant::now() + Duration::from_secs(3600),
        progress: Arc::new(Progress::default()),
        encoder: EncoderConfig {
            target_bytes: args
                .batch_mib
                .map_or(EncoderConfig::default().target_bytes, |m| {
                    (m * MIB) as usize
                }),
            ..EncoderConfig::default()
        },
        shape: args.shape.unwrap_or(scenario.shape),
    };
    let shape = common.shape;
    let mut latency = scenario.latency;
    let given = |v: Option<f64>, d: f64| v.unwrap_or(d);
    latency.scan = given(args.scan_ms, latency.scan);
    latency.put = given(args.put_ms, latency.put);
    latency.get = given(args.get_ms, latency.get);
    latency.write = given(args.write_ms, latency.write);
    // The auto stage's latency, unless given, from the bytes one call of it moves.
    let auto = |io: Io, given: Option<f64>, per_call_bytes: f64, codec: f64| -> Option<f64> {
        (scenario.auto == Some(io) && given.is_none())
            .then(|| round_ms(1000.0 * per_call_bytes / (AUTO_FRACTION * codec)).max(MIN_AUTO_MS))
    };
    match scenario.mode {
        Mode::Backup => {
            let mut config = BackupConfig {
                encoder: common.encoder,
                ..BackupConfig::default()
            };
            config.scan_prefetch = args.scan_prefetch.unwrap_or(config.scan_prefetch);
            config.upload_concurrency =
                args.upload_concurrency.unwrap_or(config.upload_concurrency);
            let pages = Pages::build_shape(CACHED_PAGES, shape);
            let page_json = pages.mean_json_bytes();
            let clone = pages.clone_time(4);
            let measure = || encode_pages(&pages, 3 * 8 * CACHED_PAGES as u64, common.encoder);
            let before: Encoded = measure();
            let batch_json = before.mean_batch_json();
            // Uploads go one at a time whatever `upload_concurrency` (which only lets an
            // upload overlap the previous batch's commit): docs/protocol.md#fencing.
            let uc = 1.0;
            if let Some(v) = auto(Io::Scan, args.scan_ms, page_json, before.rate()) {
                latency.scan = v;
            }
            if let Some(v) = auto(Io::Upload, args.put_ms, uc * batch_json, before.rate()) {
                latency.put = v;
            }
            let timer = timer(&common.runtime, latency);
            let n_pages = (common.size / page_json).ceil() as u64;
            let table = Arc::new(GenTable::new(
                pages.clone(),
                n_pages,
                ms(latency.scan),
                ms(0.0),
            ));
            let objects = Arc::new(GenObjects::new(
                &common.job.prefix,
                common.job.segment,
                Vec::new(),
                0,
                ms(latency.put),
                ms(0.0),
            ));
            let mut run = Run::start();
            let outcome = common.runtime.block_on(backup_segment(
                table.clone(),
                objects.clone(),
                Unfenced,
                &common.job,
                &config,
                BackupCheckpoint::default(),
                common.deadline,
                common.progress.clone(),
            ));
            run.stop();
            let after = measure();
            let checkpoint = match outcome {
                Ok(Outcome::Completed(c)) => c,
                other => panic!("backup did not complete: {other:?}"),
            };
            let expected_items = (n_pages / CACHED_PAGES as u64) * pages.items() as u64
                + (0..n_pages % CACHED_PAGES as u64)
                    .map(|i| pages.get(i).items.len() as u64)
                    .sum::<u64>();
            let checked = table.scans.calls() == n_pages
                && checkpoint.items == expected_items
                && objects.puts.calls() == checkpoint.next_batch + 1;
            let io = [
                ("scan", table.scans.utilization(run.elapsed)),
                ("upload", objects.puts.utilization(run.elapsed)),
            ];
            let mut bounds = BTreeMap::new();
            let scan_time = ms(latency.scan * timer.scan).max(clone).as_secs_f64();
            bounds.insert("scan".to_owned(), page_json / scan_time);
            let put_time = latency.put * timer.put / 1000.0;
            bounds.insert("upload".to_owned(), uc * batch_json / put_time);
            bounds.insert("encode".to_owned(), (before.rate() + after.rate()) / 2.0);
            let settings = [
                ("scan_prefetch", config.scan_prefetch),
                ("upload_concurrency", config.upload_concurrency),
            ];
            let codec_cpu = before.cpu_rate().unwrap_or(f64::NAN);
            run.report(
                &common,
                scenario,
                size_gb,
                latency,
                &settings,
                bounds,
                (before.rate(), after.rate(), codec_cpu),
                clone,
                timer,
                batch_json,
                &io,
                checked,
            )
        }
        Mode::Restore => {
            let mut config = RestoreConfig::default();
            config.prefetch = args.prefetch.unwrap_or(config.prefetch);
            config.write_concurrency = args.write_concurrency.unwrap_or(config.write_concurrency);
            if let Some(mib) = args.bytes_in_flight_mib {
                config.max_bytes_in_flight = (mib * MIB) as usize;
            }
            // Real batch bodies at the configured batch size, as backup would write them:
            // CACHED_PAGES distinct ones (8 pages each at the default 8 MiB of mixed items),
            // one only past 8 MiB, so the cached bodies stay small beside the pipeline.
            let bodies: Vec<Body> = {
                let pages = Pages::build_shape(CACHED_PAGES, shape);
                let per_batch = (common.encoder.target_bytes as f64 / pages.mean_json_bytes())
                    .ceil()
                    .max(1.0) as u64;
                let distinct = if common.encoder.target_bytes > 8 << 20 {
                    1
                } else {
                    CACHED_PAGES as u64
                };
                encode_pages(&pages, per_batch * distinct, common.encoder).bodies
            };
            let total_json = bodies.iter().map(|b| b.json_bytes).sum::<usize>() as f64;
            let batch_json = total_json / bodies.len() as f64;
            let chunks: usize = bodies
                .iter()
                .map(|b| b.items.div_ceil(MAX_ITEMS_PER_WRITE))
                .sum();
            let chunk_json = total_json / chunks as f64;
            let measure = || decode_bodies(&bodies, 2, config.max_inflated);
            let (before, codec_cpu) = measure();
            let pf = config.prefetch as f64;
            let wc = config.write_concurrency as f64;
            if let Some(v) = auto(Io::Download, args.get_ms, pf * batch_json, before) {
                latency.get = v;
            }
            if let Some(v) = auto(Io::Write, args.write_ms, wc * chunk_json, before) {
                latency.write = v;
            }
            let timer = timer(&common.runtime, latency);
            let n_batches = (common.size / batch_json).ceil() as u64;
            let marker = GenObjects::marker_for(&bodies, n_batches);
            let table = Arc::new(GenTable::new(
                Pages(Arc::new(Vec::new())),
                0,
                ms(0.0),
                ms(latency.write),
            ));
            let objects = Arc::new(GenObjects::new(
                &common.job.prefix,
                common.job.segment,
                bodies.clone(),
                n_batches,
                ms(0.0),
                ms(latency.get),
            ));
            let budget = Arc::new(ByteBudget::new(config.max_bytes_in_flight));
            let mut run = Run::start();
            let outcome = common.runtime.block_on(restore_segment_budgeted(
                table.clone(),
                objects.clone(),
                &Open,
                &common.job,
                &config,
                RestoreCheckpoint::default(),
                common.deadline,
                common.progress.clone(),
                &budget,
            ));
            run.stop();
            run.budget = Some((budget.bound() as u64, budget.high_water() as u64));
            let (after, _) = measure();
            let checkpoint = match outcome {
                Ok(Outcome::Completed(c)) => c,
                other => panic!("restore did not complete: {other:?}"),
            };
            let checked = checkpoint.next_batch == n_batches
                && checkpoint.items == marker.items
                && table.written_items.load(Ordering::Relaxed) == marker.items;
            let io = [
                ("download", objects.gets.utilization(run.elapsed)),
                ("write", table.writes.utilization(run.elapsed)),
            ];
            let mut bounds = BTreeMap::new();
            let get_time = latency.get * timer.get / 1000.0;
            let write_time = latency.write * timer.write / 1000.0;
            bounds.insert("download".to_owned(), pf * batch_json / get_time);
            bounds.insert("write".to_owned(), wc * chunk_json / write_time);
            bounds.insert("decode".to_owned(), (before + after) / 2.0);
            let settings = [
                ("prefetch", config.prefetch),
                ("write_concurrency", config.write_concurrency),
            ];
            run.report(
                &common,
                scenario,
                size_gb,
                latency,
                &settings,
                bounds,
                (before, after, codec_cpu.unwrap_or(f64::NAN)),
                Duration::ZERO,
                timer,
                batch_json,
                &io,
                checked,
            )
        }
    }
}

/// Wall time, process CPU time, peak memory and load around one pipeline run.
struct Run {
    setup_peak: u64,
    start_rss: u64,
    load_before: f64,
    start: Instant,
    cpu_start: Duration,
    elapsed: Duration,
    cpu: Duration,
    peak: u64,
    load_after: f64,
    budget: Option<(u64, u64)>,
}

impl Run {
    fn start() -> Self {
        let (setup_peak, start_rss) = resident().unwrap_or_default();
        Run {
            setup_peak,
            start_rss,
            load_before: load_average().unwrap_or(f64::NAN),
            cpu_start: process_cpu().unwrap_or_default(),
            start: Instant::now(),
            elapsed: Duration::ZERO,
            cpu: Duration::ZERO,
            peak: 0,
            load_after: f64::NAN,
            budget: None,
        }
    }

    fn stop(&mut self) {
        self.elapsed = self.start.elapsed();
        self.cpu = process_cpu()
            .unwrap_or_default()
            .saturating_sub(self.cpu_start);
        self.peak = resident().unwrap_or_default().0;
        self.load_after = load_average().unwrap_or(f64::NAN);
    }

    #[allow(clippy::too_many_arguments)]
    fn report(
        &self,
        common: &Common,
        scenario: Scenario,
        size_gb: f64,
        latency: Latencies,
        settings: &[(&str, usize)],
        bounds: BTreeMap<String, f64>,
        (codec_before, codec_after, codec_cpu): (f64, f64, f64),
        clone: Duration,
        timer: Latencies,
        mean_batch_json: f64,
        io: &[(&str, (f64, f64))],
        checked: bool,
    ) -> Report {
        let snap = common.progress.snapshot();
        Report {
            scenario: scenario.name.to_owned(),
            mode: scenario.mode,
            size_gb,
            latency,
            settings: settings
                .iter()
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect(),
            bounds,
            codec_before,
            codec_after,
            codec_cpu,
            clone_ms: clone.as_secs_f64() * 1000.0,
            timer,
            mean_batch_json,
            json_bytes: snap.bytes,
            items: snap.items,
            batches: snap.batches,
            elapsed_s: self.elapsed.as_secs_f64(),
            achieved: snap.bytes as f64 / self.elapsed.as_secs_f64(),
            pipeline_cpu_s: self.cpu.as_secs_f64(),
            setup_peak: self.setup_peak,
            start_rss: self.start_rss,
            peak: self.peak,
            load: (self.load_before, self.load_after),
            io: io.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
            checked,
            shape: common.shape.map_or("mixed", Shape::name).to_owned(),
            budget: self.budget,
        }
    }
}

fn mbs(v: f64) -> String {
    format!("{:.0}", v / MB)
}

fn print_table(reports: &[Report]) {
    println!(
        "| scenario | size | latency ms (actual) | stage bounds MB/s | slowest | achieved MB/s | achieved / bound | slowest stage kept busy | CPU s/GB: run (codec) | peak RSS MiB (setup) | load | items (batch MB) | bytes in flight MiB: high (bound) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in reports {
        let (l, t) = (r.latency, r.timer);
        let show =
            |name: &str, v: f64, ratio: f64| format!("{name} {v} ({:+.0}%)", 100.0 * (ratio - 1.0));
        let (latencies, order): (String, &[&str]) = match r.mode {
            Mode::Backup => (
                format!(
                    "{}, {}",
                    show("scan", l.scan, t.scan),
                    show("put", l.put, t.put)
                ),
                &["scan", "upload", "encode"],
            ),
            Mode::Restore => (
                format!(
                    "{}, {}",
                    show("get", l.get, t.get),
                    show("write", l.write, t.write)
                ),
                &["download", "write", "decode"],
            ),
        };
        let stages: Vec<String> = order
            .iter()
            .map(|s| format!("{s} {}", mbs(r.bounds.get(*s).copied().unwrap_or(f64::NAN))))
            .collect();
        let (stage, bound) = r.limit();
        let gb = r.json_bytes as f64 / GB;
        let busy = match r.io.get(&stage) {
            Some((mean, _)) => {
                let of = match stage.as_str() {
                    "upload" => r.settings.get("upload_concurrency"),
                    "download" => r.settings.get("prefetch"),
                    "write" => r.settings.get("write_concurrency"),
                    _ => Some(&1),
                };
                let of = of.copied().unwrap_or(1) as f64;
                format!(
                    "{:.0}% ({mean:.2} of {of} calls in flight)",
                    100.0 * mean / of
                )
            }
            None => format!("{:.2} cores", r.pipeline_cpu_s / r.elapsed_s),
        };
        let budget = r.budget.map_or_else(
            || "-".to_owned(),
            |(bound, high)| format!("{:.0} ({:.0})", high as f64 / MIB, bound as f64 / MIB),
        );
        println!(
            "| {} | {} GB | {} | {} | {} | {} | **{:.1}%** | {busy} | {:.1} ({:.1}) | {:.0} ({:.0}) | {:.1}→{:.1} | {} ({:.1}) | {budget} |{}",
            r.scenario,
            r.size_gb,
            latencies,
            stages.join(", "),
            stage,
            mbs(r.achieved),
            100.0 * r.achieved / bound,
            r.pipeline_cpu_s / gb,
            GB / r.codec_cpu,
            r.peak as f64 / MIB,
            r.setup_peak as f64 / MIB,
            r.load.0,
            r.load.1,
            if r.shape.is_empty() {
                "mixed"
            } else {
                &r.shape
            },
            r.mean_batch_json / MB,
            if r.checked { "" } else { " CHECK FAILED" },
        );
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: pipeline-bench [--scenarios {}] [--sizes-gb 0.5,2 (default: per scenario)] [--scan-ms N] [--put-ms N] \
         [--get-ms N] [--write-ms N] [--scan-prefetch N] [--upload-concurrency N] \
         [--prefetch N] [--write-concurrency N] [--shape mixed|small|medium|large|binary|huge] \
         [--batch-mib N] [--bytes-in-flight-mib N] [--json]",
        SCENARIOS
            .iter()
            .chain(EXTRA.iter())
            .map(|s| s.name)
            .collect::<Vec<_>>()
            .join(",")
    );
    std::process::exit(2)
}

fn main() {
    let args = parse_args().unwrap_or_else(|e| {
        if !e.is_empty() {
            eprintln!("{e}");
        }
        usage()
    });
    let names: Vec<String> = if args.scenarios.is_empty() {
        SCENARIOS.iter().map(|s| s.name.to_owned()).collect()
    } else {
        args.scenarios.clone()
    };
    let scenarios: Vec<Scenario> = names
        .iter()
        .map(|n| {
            find(n).unwrap_or_else(|| {
                eprintln!("unknown scenario {n}");
                usage()
            })
        })
        .collect();

    if args.json {
        let sizes = scenarios.first().map_or(&[][..], |s| s.sizes);
        let size = args.sizes_gb.first().or(sizes.first());
        let (Some(scenario), Some(size)) = (scenarios.first(), size) else {
            usage()
        };
        let report = run_one(*scenario, *size, &args);
        println!(
            "{}",
            serde_json::to_string(&report).expect("a report serializes")
        );
        return;
    }

    if cfg!(debug_assertions) {
        eprintln!("note: a debug build; run with --release for meaningful numbers");
    }
    let exe = std::env::current_exe().expect("the path of this binary");
    let mut reports = Vec::new();
    for scenario in &scenarios {
        let sizes = if args.sizes_gb.is_empty() {
            scenario.sizes
        } else {
            &args.sizes_gb[..]
        };
        for size in sizes {
            eprintln!("{}: {} GB ({}) ...", scenario.name, size, scenario.what);
            let output = Command::new(&exe)
                .args([
                    "--scenario",
                    scenario.name,
                    "--size-gb",
                    &size.to_string(),
                    "--json",
                ])
                .args(&args.passthrough)
                .output()
                .expect("the benchmark re-invokes itself");
            if !output.status.success() {
                eprintln!("{}", String::from_utf8_lossy(&output.stderr));
                panic!("{} {} GB failed: {}", scenario.name, size, output.status);
            }
            let line = String::from_utf8_lossy(&output.stdout);
            let report: Report = serde_json::from_str(line.trim()).expect("a child's report");
            let (stage, bound) = report.limit();
            eprintln!(
                "  {:.1} s, {} MB/s = {:.1}% of {stage} {} MB/s; {} batches; codec {}/{} MB/s \
                 (before/after), {} MB/s per CPU-s; clone {:.2} ms/page; peak {:.0} MiB \
                 ({:.0} MiB resident at the start)",
                report.elapsed_s,
                mbs(report.achieved),
                100.0 * report.achieved / bound,
                mbs(bound),
                report.batches,
                mbs(report.codec_before),
                mbs(report.codec_after),
                mbs(report.codec_cpu),
                report.clone_ms,
                report.peak as f64 / MIB,
                report.start_rss as f64 / MIB,
            );
            for (stage, (mean, busy)) in &report.io {
                eprintln!(
                    "  {stage}: {mean:.2} calls in flight on average, some in flight {:.1}% of the time",
                    100.0 * busy
                );
            }
            reports.push(report);
        }
    }
    print_table(&reports);
    println!();
    println!(
        "Rates are uncompressed item JSON bytes per second; MB = 10^6 bytes, GB = 10^9 bytes of \
         item JSON. Pipeline settings are the defaults unless given. Latency: nominal, and how \
         much longer the simulated sleep actually takes (measured on the idle runtime; the \
         bounds use the actual). Encode/decode bound: the codec on one core, wall time, in the \
         same process before and after the run (mean). Kept busy: the slowest I/O stage's \
         calls in flight, time-averaged, of its concurrency; or the process's CPU use in \
         cores. CPU s/GB: the whole process during the run (the codec alone). Load: the \
         machine's 1-minute load average before and after. Items: the sample shape and the \
         mean batch's JSON. Bytes in flight: the restore's byte budget, the most it had \
         charged at once (inflated JSON and SDK items) and its bound."
    );
}
