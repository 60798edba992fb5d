//! Scale by simulation: 1 to 1,000 segments of the real pipeline (`backup_segment`,
//! `restore_segment`) against one simulated table with DynamoDB's per-partition limits, on a
//! paused tokio clock (see `solace_benches::scale_sim`). Prints, per mode, a markdown table
//! of segments x partitions: the simulated total rate, the analytical bound and what sets it,
//! the throttled fraction of calls, how much of the partitions' capacity was used, and the
//! segment runs that failed; then writes a chart (segments -> total MB/s, one line per
//! partition count) to `benches/scale.svg` (or `--svg PATH`).
//!
//! Options: `--segments 1,10,30,100,300,1000` `--partitions 1,10,100,1000`
//! `--modes backup,restore,restore-limited` (`-limited`: each segment's pipeline capacity
//! limit, `read_capacity_per_second` / `write_capacity_per_second`, set to its share of a
//! partition; `backup-limited` also exists) `--table-tb 10` `--warmup-s 10` `--window-s 120` `--scan-ms 80`
//! `--put-ms 50` `--get-ms 50` `--write-ms 14` `--throttle-ms 10` `--encode-mb-s 30`
//! `--decode-mb-s 80` `--item-bytes N` (default: the mean of `sample::mixed`, as
//! pipeline-bench's pages) `--lambda-concurrency 1000` `--svg PATH` `--no-svg`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use plotters::prelude::*;
use solace_benches::pipeline_sim::Pages;
use solace_benches::scale_sim::{self, Mode, Model, Report};

const MB: f64 = 1e6;

/// One set of runs: a mode, with or without each segment's pipeline capacity limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Set {
    mode: Mode,
    limited: bool,
}

impl Set {
    fn parse(name: &str) -> Result<Self, String> {
        let (mode, limited) = match name {
            "backup" => (Mode::Backup, false),
            "restore" => (Mode::Restore, false),
            "backup-limited" => (Mode::Backup, true),
            "restore-limited" => (Mode::Restore, true),
            _ => return Err(format!("unknown mode {name}")),
        };
        Ok(Set { mode, limited })
    }

    fn name(self) -> String {
        match (self.mode, self.limited) {
            (mode, false) => mode.name().to_owned(),
            (Mode::Backup, true) => "backup, read limit".to_owned(),
            (Mode::Restore, true) => "restore, write limit".to_owned(),
        }
    }

    fn holds(self, r: &Report) -> bool {
        r.mode == self.mode && r.model.capacity_limit == self.limited
    }
}

#[derive(Debug)]
struct Args {
    segments: Vec<u32>,
    partitions: Vec<u32>,
    modes: Vec<Set>,
    model: Model,
    item_given: bool,
    svg: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        segments: vec![1, 10, 30, 100, 300, 1000],
        partitions: vec![1, 10, 100, 1000],
        modes: ["backup", "restore", "restore-limited"]
            .into_iter()
            .map(Set::parse)
            .collect::<Result<_, _>>()?,
        model: Model::default(),
        item_given: false,
        svg: Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scale.svg")),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "-h" | "--help" => return Err(String::new()),
            "--no-svg" => {
                args.svg = None;
                continue;
            }
            _ => {}
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let num = |v: &str| v.parse::<f64>().map_err(|e| format!("{flag} {v}: {e}"));
        let counts = |v: &str| {
            v.split(',')
                .map(|c| c.parse::<u32>().map_err(|e| format!("{flag} {c}: {e}")))
                .collect::<Result<Vec<_>, _>>()
        };
        let ms = |v: &str| num(v).map(|m| Duration::from_secs_f64(m / 1000.0));
        let secs = |v: &str| num(v).map(Duration::from_secs_f64);
        let m = &mut args.model;
        match flag.as_str() {
            "--segments" => args.segments = counts(&value)?,
            "--partitions" => args.partitions = counts(&value)?,
            "--modes" => {
                args.modes = value.split(',').map(Set::parse).collect::<Result<_, _>>()?;
            }
            "--table-tb" => m.table_bytes = (num(&value)? * 1e12) as u64,
            "--warmup-s" => m.warmup = secs(&value)?,
            "--window-s" => m.window = secs(&value)?,
            "--scan-ms" => m.scan = ms(&value)?,
            "--put-ms" => m.put = ms(&value)?,
            "--get-ms" => m.get = ms(&value)?,
            "--write-ms" => m.write = ms(&value)?,
            "--throttle-ms" => m.throttle = ms(&value)?,
            "--encode-mb-s" => m.encode_bytes_per_s = num(&value)? * MB,
            "--decode-mb-s" => m.decode_bytes_per_s = num(&value)? * MB,
            "--item-bytes" => {
                m.item_bytes = value.parse().map_err(|e| format!("{flag} {value}: {e}"))?;
                args.item_given = true;
            }
            "--lambda-concurrency" => {
                m.lambda_concurrency = value.parse().map_err(|e| format!("{flag} {value}: {e}"))?;
            }
            "--svg" => args.svg = Some(PathBuf::from(value)),
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    Ok(args)
}

fn usage() -> ! {
    eprintln!(
        "usage: pipeline-scale [--segments 1,10,30,100,300,1000] [--partitions 1,10,100,1000] \
         [--modes backup,restore,restore-limited,backup-limited] [--table-tb 10] [--warmup-s 10] [--window-s 120] [--scan-ms 80] \
         [--put-ms 50] [--get-ms 50] [--write-ms 14] [--throttle-ms 10] [--encode-mb-s 30] \
         [--decode-mb-s 80] [--item-bytes N] [--lambda-concurrency 1000] [--svg PATH | --no-svg]"
    );
    std::process::exit(2)
}

fn mbs(v: f64) -> String {
    let v = v / MB;
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Time to move 1 TB at `rate` bytes per second.
fn terabyte_time(rate: f64) -> String {
    let s = 1e12 / rate;
    if !s.is_finite() {
        "-".to_owned()
    } else if s >= 86400.0 * 2.0 {
        format!("{:.0} d", s / 86400.0)
    } else if s >= 3600.0 {
        format!("{:.1} h", s / 3600.0)
    } else {
        format!("{:.0} min", s / 60.0)
    }
}

fn print_mode(set: Set, reports: &[Report]) {
    let mode = set.mode;
    let Some(first) = reports.first() else { return };
    let m = first.model;
    let (_, stage) = m.segment_rate(mode);
    let limit = if m.capacity_limit {
        "each segment's pipeline limited to its share of a partition"
    } else {
        "no capacity limit, as the functions run by default"
    };
    println!(
        "### {} ({} TB table; one segment alone: {} MB/s, {stage}; one partition: {} MB/s; {limit})",
        set.name(),
        m.table_bytes as f64 / 1e12,
        mbs(m.segment_rate(mode).0),
        mbs(m.partition_rate(mode)),
    );
    println!();
    println!(
        "| segments | partitions | simulated MB/s | bound MB/s | of bound | what limits it | throttled calls | partitions' capacity used | runs failed (requeued) | 1 TB in |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for r in reports {
        let done = match r.counts.completed_segments {
            0 => String::new(),
            n => format!(" ({n} segments finished: the table was too small)"),
        };
        println!(
            "| {} | {} | **{}**{done} | {} | {:.0}% | {} | {:.1}% | {:.1}% | {} ({}) | {} |",
            r.model.segments,
            r.model.partitions,
            mbs(r.bytes_per_s),
            mbs(r.bound),
            100.0 * r.bytes_per_s / r.bound,
            r.limit,
            100.0 * r.throttled,
            100.0 * r.partition_use,
            r.counts.failed_runs,
            r.counts.requeued,
            terabyte_time(r.bytes_per_s),
        );
    }
    println!();
}

/// Segments x partitions -> MB/s, one matrix per mode.
fn print_matrix(modes: &[Set], segments: &[u32], partitions: &[u32], reports: &[Report]) {
    for &set in modes {
        let head: Vec<String> = partitions.iter().map(|p| format!("P = {p}")).collect();
        println!("| {} MB/s | {} |", set.name(), head.join(" | "));
        println!("|---|{}", "---|".repeat(partitions.len()));
        for &n in segments {
            let row: Vec<String> = partitions
                .iter()
                .map(|&p| {
                    reports
                        .iter()
                        .find(|r| set.holds(r) && r.model.segments == n && r.model.partitions == p)
                        .map_or_else(|| "-".to_owned(), |r| mbs(r.bytes_per_s))
                })
                .collect();
            println!("| N = {n} | {} |", row.join(" | "));
        }
        println!();
    }
}

fn chart(
    path: &PathBuf,
    modes: &[Set],
    segments: &[u32],
    partitions: &[u32],
    reports: &[Report],
) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let root = SVGBackend::new(path, (560 * modes.len().max(1) as u32, 460)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let panels = root.split_evenly((1, modes.len().max(1)));
    let colors = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
    ];
    let x_max = f64::from(segments.iter().copied().max().unwrap_or(1)).max(2.0);
    for (panel, &set) in panels.iter().zip(modes) {
        let ours: Vec<&Report> = reports.iter().filter(|r| set.holds(r)).collect();
        let ys = ours.iter().map(|r| r.bytes_per_s / MB).filter(|v| *v > 0.0);
        let y_min = ys.clone().fold(f64::INFINITY, f64::min).min(1.0) / 2.0;
        let y_max = ys.fold(0.0, f64::max).max(1.0) * 2.0;
        let mut c = ChartBuilder::on(panel)
            .caption(
                format!("{}: total MB/s (dashed: bound)", set.name()),
                ("sans-serif", 20),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d((1.0..x_max).log_scale(), (y_min..y_max).log_scale())
            .map_err(|e| err(&e))?;
        c.configure_mesh()
            .x_desc("segments (concurrent Lambdas)")
            .y_desc("total MB/s of item data")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| {
                if *v >= 1.0 {
                    format!("{v:.0}")
                } else {
                    format!("{v:.1}")
                }
            })
            .draw()
            .map_err(|e| err(&e))?;
        for (k, &p) in partitions.iter().enumerate() {
            let color = colors[k % colors.len()];
            let mut points: Vec<(f64, f64)> = ours
                .iter()
                .filter(|r| r.model.partitions == p && r.bytes_per_s > 0.0)
                .map(|r| (f64::from(r.model.segments), r.bytes_per_s / MB))
                .collect();
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            c.draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
                .map_err(|e| err(&e))?
                .label(format!("{p} partition{}", if p == 1 { "" } else { "s" }))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
            // The bound, dashed.
            let bound: Vec<(f64, f64)> = ours
                .iter()
                .filter(|r| r.model.partitions == p)
                .map(|r| (f64::from(r.model.segments), r.bound / MB))
                .collect();
            c.draw_series(DashedLineSeries::new(bound, 4, 4, color.mix(0.5).into()))
                .map_err(|e| err(&e))?;
        }
        c.configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

fn main() {
    let mut args = parse_args().unwrap_or_else(|e| {
        if !e.is_empty() {
            eprintln!("{e}");
        }
        usage()
    });
    if cfg!(debug_assertions) {
        eprintln!(
            "note: a debug build; the simulated rates do not depend on it, the run time does"
        );
    }
    if !args.item_given {
        let pages = Pages::build(5);
        args.model.item_bytes = (pages.json_bytes() as f64 / pages.items() as f64).round() as u64;
    }
    eprintln!(
        "model: {:?}; restored items {} bytes, {} a batch",
        args.model,
        args.model.item_bytes,
        args.model.items_per_batch()
    );
    let mut reports = Vec::new();
    for &set in &args.modes {
        let mode = set.mode;
        for &p in &args.partitions {
            for &n in &args.segments {
                let model = Model {
                    segments: n,
                    partitions: p,
                    capacity_limit: set.limited,
                    ..args.model
                };
                let start = Instant::now();
                let report = scale_sim::run(model, mode).unwrap_or_else(|e| {
                    eprintln!("{} N={n} P={p}: {e}", set.name());
                    std::process::exit(1)
                });
                eprintln!(
                    "{} N={n} P={p}: {} MB/s (bound {} MB/s, {}), {:.1}% throttled, {} runs failed; {:.1} s",
                    set.name(),
                    mbs(report.bytes_per_s),
                    mbs(report.bound),
                    report.limit,
                    100.0 * report.throttled,
                    report.counts.failed_runs,
                    start.elapsed().as_secs_f64()
                );
                reports.push(report);
            }
        }
    }
    for &set in &args.modes {
        let ours: Vec<Report> = reports.iter().filter(|r| set.holds(r)).cloned().collect();
        print_mode(set, &ours);
    }
    print_matrix(&args.modes, &args.segments, &args.partitions, &reports);
    println!(
        "MB = 10^6 bytes of nominal item data, over {} s of simulated time after {} s of warm-up. \
         Backup: bytes of the batches uploaded; restore: of the items written. Bound: min(N x \
         one segment's rate, N x one partition's rate, P x one partition's rate). 1 TB in: \
         1 TB at the simulated rate.",
        args.model.window.as_secs_f64(),
        args.model.warmup.as_secs_f64()
    );
    if let Some(path) = &args.svg {
        match chart(
            path,
            &args.modes,
            &args.segments,
            &args.partitions,
            &reports,
        ) {
            Ok(()) => eprintln!("chart: {}", path.display()),
            Err(e) => {
                eprintln!("chart {}: {e}", path.display());
                std::process::exit(1)
            }
        }
    }
}
