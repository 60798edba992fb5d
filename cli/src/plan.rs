//! `solace plan`: the model of docs/one-terabyte.md#the-model as a pure function, from a
//! table's size and item count and the deployment's settings to the segment count a backup
//! should use and what its backup and restore take and cost.
//!
//! Every rate is a named const with the value docs/one-terabyte.md#the-named-rates gives
//! it, and [`rates`] lists them for the command to print.

use std::time::Duration;

use serde_json::{Value, json};

// Solace, measured in this repository (docs/one-terabyte.md#solace-measured-in-this-repository).

/// Bytes a second one vCPU encodes into batches.
pub const ENCODE_RATE: f64 = 25e6;
/// The pipeline's share of a segment's scan bound; the model takes it as 1.
pub const SCAN_EFFICIENCY: f64 = 0.997;
/// Process CPU seconds a restore spends per 10^9 bytes.
pub const RESTORE_CPU_S_PER_GB: f64 = 16.4;
/// The share of the BatchWriteItem bound a restore segment reaches.
pub const RESTORE_WRITE_EFFICIENCY: f64 = 0.90;
/// Stored bytes per byte of item JSON (the mixed demo table, level 6).
pub const COMPRESSION_RATIO: f64 = 0.36;
/// Bytes of JSON a batch holds, on average.
pub const BATCH_BYTES_MEAN: f64 = 8.5e6;

// Solace, assumed (docs/one-terabyte.md#solace-assumed).

/// **Assumption**: bytes of DynamoDB JSON per byte of DynamoDB's item size.
pub const JSON_PER_ITEM_BYTE: f64 = 1.0;
/// **Assumption**: bytes a second one segment scans (a 1 MB page per 125 ms).
pub const SCAN_RATE_PER_SEGMENT: f64 = 8e6;
/// **Assumption**: seconds a BatchWriteItem of 25 items takes.
pub const BWI_LATENCY: f64 = 0.050;
/// **Assumption**: seconds each continuation of a segment loses.
pub const CONTINUATION_OVERHEAD: f64 = 2.0;
/// **Assumption**: billed seconds of each invocation outside its scan or write loop.
pub const INVOCATION_BILLED_OVERHEAD: f64 = 1.0;
/// **Assumption**: seconds the request function takes before the segments start.
pub const REQUEST_OVERHEAD: f64 = 5.0;

// AWS limits (docs/one-terabyte.md#aws-limits).

/// Read units a second one partition serves.
pub const PARTITION_READ: f64 = 3000.0;
/// Write units a second one partition takes.
pub const PARTITION_WRITE: f64 = 1000.0;
/// Read request units a second an on-demand table serves by default.
pub const TABLE_READ_QUOTA: f64 = 40_000.0;
/// Write request units a second an on-demand table takes by default.
pub const TABLE_WRITE_QUOTA: f64 = 40_000.0;
/// The most a partition holds: the partition estimate is the table's bytes over this.
pub const PARTITION_BYTES: u64 = 10 << 30;
/// Bytes one eventually consistent read unit reads (0.5 per 4 KB).
pub const READ_UNIT_BYTES: f64 = 8192.0;
/// Bytes of an item per write unit, rounded up per item.
pub const WRITE_UNIT_BYTES: u64 = 1024;
/// Invocations an SQS event source starts with.
pub const EVENT_SOURCE_START: f64 = 5.0;
/// Invocations an SQS event source adds a minute.
pub const EVENT_SOURCE_RAMP_PER_MINUTE: f64 = 300.0;
/// Items in one BatchWriteItem.
pub const CHUNK: f64 = 25.0;
/// Lambda's memory per vCPU, MB.
pub const MB_PER_VCPU: f64 = 1769.0;

// Prices, us-east-1 (docs/one-terabyte.md#prices).

/// $ per read request unit ($0.125 a million).
pub const RRU_PRICE: f64 = 0.125e-6;
/// $ per write request unit ($0.625 a million).
pub const WRU_PRICE: f64 = 0.625e-6;
/// $ per RCU-hour, provisioned.
pub const RCU_HOUR: f64 = 0.00013;
/// $ per WCU-hour, provisioned.
pub const WCU_HOUR: f64 = 0.00065;
/// $ per Lambda GB-second (x86, first tier).
pub const GBS_PRICE: f64 = 0.000_016_666_7;
/// $ per Lambda request ($0.20 a million).
pub const REQ_PRICE: f64 = 0.20e-6;
/// $ per S3 PUT ($0.005 a thousand).
pub const PUT_PRICE: f64 = 0.005e-3;
/// $ per S3 GET ($0.0004 a thousand).
pub const GET_PRICE: f64 = 0.0004e-3;
/// $ per GB-month (2^30 bytes), S3 Standard.
pub const S3_GB_MONTH: f64 = 0.023;

/// The deployment's settings the model reads (docs/one-terabyte.md#the-deployment).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    /// The backup function's memory, MB.
    pub backup_memory_mb: f64,
    /// The restore function's memory, MB.
    pub restore_memory_mb: f64,
    /// The functions' timeout, seconds.
    pub timeout_s: f64,
    /// How long before the timeout a segment stops and continues, seconds.
    pub deadline_margin_s: f64,
    /// Backup (and restore) invocations at once: C.
    pub concurrency: u32,
    /// BatchWriteItem calls a restore segment keeps in flight.
    pub write_concurrency: u32,
}

impl Settings {
    /// The defaults of `infra/project-vars.tf`.
    pub const DEFAULT: Settings = Settings {
        backup_memory_mb: 1769.0,
        restore_memory_mb: 1024.0,
        timeout_s: 900.0,
        deadline_margin_s: 30.0,
        concurrency: 200,
        write_concurrency: 8,
    };

    fn run_seconds(&self) -> f64 {
        (self.timeout_s - self.deadline_margin_s).max(1.0)
    }

    fn concurrency(&self) -> u32 {
        self.concurrency.max(1)
    }
}

/// What the model starts from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Inputs {
    /// `TableSizeBytes`: B.
    pub table_bytes: u64,
    /// `ItemCount`: N.
    pub items: u64,
    /// Secondary indexes a restore also writes each item into (every one is taken to hold
    /// every item).
    pub indexes: u32,
    pub settings: Settings,
}

impl Inputs {
    /// A table of `table_bytes` and `items`, no secondary index, the default deployment.
    pub fn new(table_bytes: u64, items: u64) -> Self {
        Inputs {
            table_bytes,
            items,
            indexes: 0,
            settings: Settings::DEFAULT,
        }
    }

    /// P: at least one partition per 10 GiB, at least 1.
    pub fn partitions(&self) -> u32 {
        u32::try_from(self.table_bytes.div_ceil(PARTITION_BYTES))
            .unwrap_or(u32::MAX)
            .max(1)
    }

    fn bytes(&self) -> f64 {
        self.table_bytes as f64
    }

    /// J: bytes of JSON the batches hold.
    fn json_bytes(&self) -> f64 {
        self.bytes() * JSON_PER_ITEM_BYTE
    }

    /// s: the mean item's bytes, at least 1.
    fn item_bytes(&self) -> f64 {
        (self.bytes() / self.items.max(1) as f64).max(1.0)
    }

    /// Write units of the mean item, at least 1.
    fn item_wru(&self) -> f64 {
        (self.item_bytes() / WRITE_UNIT_BYTES as f64)
            .ceil()
            .max(1.0)
    }

    /// A backup segment's own rate, bytes a second.
    fn backup_seg_rate(&self) -> f64 {
        SCAN_RATE_PER_SEGMENT.min(ENCODE_RATE * self.settings.backup_memory_mb / MB_PER_VCPU)
    }

    /// The table's read rate, bytes a second.
    fn read_ceiling(&self) -> f64 {
        TABLE_READ_QUOTA.min(f64::from(self.partitions()) * PARTITION_READ) * READ_UNIT_BYTES
    }

    /// Bytes a second into one destination partition: the partition rule.
    fn partition_rate(&self) -> f64 {
        PARTITION_WRITE / self.item_wru() * self.item_bytes()
    }

    /// A restore segment's pipeline bound, bytes a second.
    fn pipe_rate(&self) -> f64 {
        let calls = f64::from(self.settings.write_concurrency.max(1)) * CHUNK * self.item_bytes()
            / BWI_LATENCY
            * RESTORE_WRITE_EFFICIENCY;
        let cpu = self.settings.restore_memory_mb / MB_PER_VCPU / (RESTORE_CPU_S_PER_GB / 1e9);
        calls.min(cpu)
    }

    fn restore_seg_rate(&self) -> f64 {
        self.pipe_rate().min(self.partition_rate())
    }

    /// The destination's write rate, bytes a second (the destination taken to have the
    /// source's partitions).
    fn write_ceiling(&self) -> f64 {
        TABLE_WRITE_QUOTA.min(f64::from(self.partitions()) * PARTITION_WRITE) / self.item_wru()
            * self.item_bytes()
    }

    /// The doc's `S_recommended`: the smallest count at which neither side can go faster.
    pub fn fastest_segments(&self) -> u32 {
        let read = (self.read_ceiling() / self.backup_seg_rate()).ceil();
        let write = (self.write_ceiling() / self.partition_rate()).ceil();
        let s = read.max(write).max(1.0);
        let cap = self.settings.concurrency().min(self.partitions());
        // Float to int saturates; the cap bounds it.
        (s as u32).clamp(1, cap.max(1))
    }

    /// The backup at `segments`.
    pub fn backup(&self, segments: u32) -> Side {
        let s = segments.max(1);
        let timing = timing(
            self.json_bytes(),
            s,
            self.settings,
            self.backup_seg_rate(),
            self.read_ceiling(),
            s,
            self.settings.backup_memory_mb,
        );
        let read_units = self.bytes() / READ_UNIT_BYTES;
        let requests = (self.json_bytes() / BATCH_BYTES_MEAN).ceil() + f64::from(s) + 3.0;
        Side::priced(timing, requests, PUT_PRICE, read_units, RRU_PRICE, RCU_HOUR)
    }

    /// The restore at `segments`, into a table warm to its write quota.
    pub fn restore(&self, segments: u32) -> Side {
        let s = segments.max(1);
        let timing = timing(
            self.json_bytes(),
            s,
            self.settings,
            self.restore_seg_rate(),
            self.write_ceiling(),
            self.partitions(),
            self.settings.restore_memory_mb,
        );
        let write_units = self.items as f64 * self.item_wru() * (1.0 + f64::from(self.indexes));
        let requests = (self.json_bytes() / BATCH_BYTES_MEAN).ceil() + timing.invocations + 5.0;
        Side::priced(
            timing,
            requests,
            GET_PRICE,
            write_units,
            WRU_PRICE,
            WCU_HOUR,
        )
    }

    /// $ a month to keep the backup in S3 Standard.
    pub fn keep_usd_month(&self) -> f64 {
        self.json_bytes() * COMPRESSION_RATIO / f64::from(1u32 << 30) * S3_GB_MONTH
    }

    /// The plan: the fewest segments whose backup takes at most `within`, or the fastest.
    pub fn plan(&self, within: Duration) -> Plan {
        let fastest = self.fastest_segments();
        let limit = within.as_secs_f64();
        // Not capped by the partitions: several scan segments share a partition's read units,
        // and the backup's read ceiling already holds the partitions' limit.
        let cap = self.settings.concurrency().max(1);
        let fits = (1..=cap).find(|&s| self.backup(s).wall_s <= limit);
        let segments = fits.unwrap_or(fastest);
        Plan {
            inputs: *self,
            within,
            met: fits.is_some(),
            segments,
            fastest,
            fastest_wall_s: self.backup(fastest).wall_s,
            backup: self.backup(segments),
            restore: self.restore(segments),
            keep_usd_month: self.keep_usd_month(),
        }
    }
}

/// Seconds and invocations of one side.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Timing {
    wall_s: f64,
    invocations: f64,
    gb_seconds: f64,
}

/// The doc's timing formulas, shared by the backup and the restore: `seg_rate` is a
/// segment's own rate, `ceiling` the table's, and at most `lanes` segments add to it (the
/// restore's partitions; the backup's read ceiling holds them already).
fn timing(
    json_bytes: f64,
    segments: u32,
    settings: Settings,
    seg_rate: f64,
    ceiling: f64,
    lanes: u32,
    memory_mb: f64,
) -> Timing {
    let c = settings.concurrency();
    let s = f64::from(segments);
    let running = f64::from(segments.min(c));
    let table_rate = (running.min(f64::from(lanes.max(1))) * seg_rate).min(ceiling);
    let per_segment = seg_rate.min(table_rate / running);
    let seg_bytes = json_bytes / s;
    let t_seg = if seg_bytes > 0.0 && per_segment > 0.0 {
        seg_bytes / per_segment
    } else {
        0.0
    };
    // Every segment runs at least once.
    let runs = (t_seg / settings.run_seconds()).ceil().max(1.0);
    let waves = f64::from(segments.div_ceil(c));
    let segment_s = t_seg + (runs - 1.0) * CONTINUATION_OVERHEAD;
    let wall_s = waves * segment_s
        + (waves - 1.0) * CONTINUATION_OVERHEAD
        + REQUEST_OVERHEAD
        + ramp(running);
    let invocations = s * runs;
    let gb_seconds =
        memory_mb / 1024.0 * (s * segment_s + invocations * INVOCATION_BILLED_OVERHEAD);
    Timing {
        wall_s,
        invocations,
        gb_seconds,
    }
}

/// Seconds lost while the event source reaches `n` invocations: half of its ramp.
fn ramp(n: f64) -> f64 {
    (n - EVENT_SOURCE_START).max(0.0) / EVENT_SOURCE_RAMP_PER_MINUTE * 60.0 / 2.0
}

/// What a backup or a restore takes and costs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Side {
    pub wall_s: f64,
    pub invocations: f64,
    pub gb_seconds: f64,
    /// S3 PUTs of a backup, GETs of a restore.
    pub requests: f64,
    /// Read units of a backup, write units of a restore.
    pub units: f64,
    /// $ of the units, on demand.
    pub units_usd: f64,
    /// $ of the units on provisioned capacity, fully used.
    pub units_provisioned_usd: f64,
    /// $ of Lambda: GB-seconds and requests.
    pub lambda_usd: f64,
    pub s3_usd: f64,
    pub total_usd: f64,
}

impl Side {
    fn priced(
        t: Timing,
        requests: f64,
        request_price: f64,
        units: f64,
        unit_price: f64,
        unit_hour: f64,
    ) -> Side {
        let units_usd = units * unit_price;
        let lambda_usd = t.gb_seconds * GBS_PRICE + t.invocations * REQ_PRICE;
        let s3_usd = requests * request_price;
        Side {
            wall_s: t.wall_s,
            invocations: t.invocations,
            gb_seconds: t.gb_seconds,
            requests,
            units,
            units_usd,
            units_provisioned_usd: units / 3600.0 * unit_hour,
            lambda_usd,
            s3_usd,
            total_usd: units_usd + lambda_usd + s3_usd,
        }
    }

    fn to_json(self, requests: &str, units: &str) -> Value {
        json!({
            "wall-seconds": round1(self.wall_s),
            "invocations": self.invocations.round() as u64,
            "lambda-gb-seconds": self.gb_seconds.round() as u64,
            requests: self.requests.round() as u64,
            units: self.units.round() as u64,
            "units-usd": round2(self.units_usd),
            "units-provisioned-usd": round2(self.units_provisioned_usd),
            "lambda-usd": round2(self.lambda_usd),
            "s3-usd": round2(self.s3_usd),
            "total-usd": round2(self.total_usd),
        })
    }
}

/// The command's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub inputs: Inputs,
    pub within: Duration,
    /// Whether some count backs up within `within`.
    pub met: bool,
    /// The recommended count.
    pub segments: u32,
    /// The doc's `S_recommended`, and its backup's wall time.
    pub fastest: u32,
    pub fastest_wall_s: f64,
    pub backup: Side,
    pub restore: Side,
    pub keep_usd_month: f64,
}

/// How a rate is known (docs/one-terabyte.md#the-named-rates).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Measured,
    Assumption,
    Derived,
    Aws,
    Price,
    Deployment,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Measured => "measured",
            Source::Assumption => "assumption",
            Source::Derived => "derived",
            Source::Aws => "AWS limit",
            Source::Price => "price",
            Source::Deployment => "deployment",
        }
    }
}

/// Every rate the model assumed: name, value, how it is known.
pub fn rates(settings: &Settings) -> Vec<(&'static str, String, Source)> {
    use Source::*;
    vec![
        (
            "json_per_item_byte",
            format!("{JSON_PER_ITEM_BYTE:.1}"),
            Assumption,
        ),
        (
            "scan_rate_per_segment",
            mbs(SCAN_RATE_PER_SEGMENT),
            Assumption,
        ),
        (
            "bwi_latency",
            format!("{} ms", BWI_LATENCY * 1e3),
            Assumption,
        ),
        (
            "partition_rule",
            "a restore segment writes one partition at a time".into(),
            Derived,
        ),
        (
            "continuation_overhead",
            format!("{CONTINUATION_OVERHEAD} s"),
            Assumption,
        ),
        (
            "invocation_billed_overhead",
            format!("{INVOCATION_BILLED_OVERHEAD} s"),
            Assumption,
        ),
        (
            "request_overhead",
            format!("{REQUEST_OVERHEAD} s"),
            Assumption,
        ),
        (
            "source_warm",
            "the tables are warm to their quotas".into(),
            Assumption,
        ),
        (
            "encode_rate",
            format!("{} per vCPU", mbs(ENCODE_RATE)),
            Measured,
        ),
        (
            "scan_efficiency",
            format!("{SCAN_EFFICIENCY} (taken as 1)"),
            Measured,
        ),
        (
            "restore_cpu_s_per_gb",
            format!("{RESTORE_CPU_S_PER_GB} s"),
            Measured,
        ),
        (
            "restore_write_efficiency",
            format!("{RESTORE_WRITE_EFFICIENCY:.2}"),
            Measured,
        ),
        (
            "compression_ratio",
            format!("{COMPRESSION_RATIO}"),
            Measured,
        ),
        (
            "batch_bytes_mean",
            format!("{} MB", BATCH_BYTES_MEAN / 1e6),
            Measured,
        ),
        ("partition_read", format!("{PARTITION_READ} units/s"), Aws),
        ("partition_write", format!("{PARTITION_WRITE} units/s"), Aws),
        (
            "table_read_quota",
            format!("{TABLE_READ_QUOTA} units/s"),
            Aws,
        ),
        (
            "table_write_quota",
            format!("{TABLE_WRITE_QUOTA} units/s"),
            Aws,
        ),
        (
            "partition_size",
            format!("{} GiB", PARTITION_BYTES >> 30),
            Aws,
        ),
        (
            "read_unit",
            format!("{READ_UNIT_BYTES} bytes (eventually consistent)"),
            Aws,
        ),
        (
            "write_unit",
            format!("{WRITE_UNIT_BYTES} bytes, rounded up per item"),
            Aws,
        ),
        (
            "event_source_ramp",
            format!(
                "{EVENT_SOURCE_START} invocations, then {EVENT_SOURCE_RAMP_PER_MINUTE} more a minute"
            ),
            Aws,
        ),
        (
            "rru_price",
            format!("${:.3} per million", RRU_PRICE * 1e6),
            Price,
        ),
        (
            "wru_price",
            format!("${:.3} per million", WRU_PRICE * 1e6),
            Price,
        ),
        ("rcu_hour", format!("${RCU_HOUR} per RCU-hour"), Price),
        ("wcu_hour", format!("${WCU_HOUR} per WCU-hour"), Price),
        ("gbs_price", format!("${GBS_PRICE} per GB-second"), Price),
        (
            "req_price",
            format!("${:.2} per million", REQ_PRICE * 1e6),
            Price,
        ),
        (
            "put_price",
            format!("${:.3} per 1,000", PUT_PRICE * 1e3),
            Price,
        ),
        (
            "get_price",
            format!("${:.4} per 1,000", GET_PRICE * 1e3),
            Price,
        ),
        ("s3_gb_month", format!("${S3_GB_MONTH} per GB-month"), Price),
        (
            "backup_memory",
            format!("{} MB", settings.backup_memory_mb),
            Deployment,
        ),
        (
            "restore_memory",
            format!("{} MB", settings.restore_memory_mb),
            Deployment,
        ),
        ("timeout", format!("{} s", settings.timeout_s), Deployment),
        (
            "deadline_margin",
            format!("{} s", settings.deadline_margin_s),
            Deployment,
        ),
        ("concurrency", settings.concurrency.to_string(), Deployment),
        (
            "write_concurrency",
            settings.write_concurrency.to_string(),
            Deployment,
        ),
    ]
}

fn mbs(bytes_per_s: f64) -> String {
    format!("{} MB/s", bytes_per_s / 1e6)
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// `51m 6s`: a wall time to the second.
pub fn duration(seconds: f64) -> String {
    let s = if seconds.is_finite() {
        seconds.max(0.0).round() as u64
    } else {
        u64::MAX
    };
    humantime::format_duration(Duration::from_secs(s)).to_string()
}

fn count(x: f64) -> String {
    crate::report::thousands(x.round() as u64)
}

impl Plan {
    /// The line that says what was chosen, and why.
    pub fn verdict(&self) -> String {
        let within = duration(self.within.as_secs_f64());
        if self.met {
            format!(
                "{} segments: the fewest whose backup takes at most {within} (the fastest, {}, takes {})",
                self.segments,
                self.fastest,
                duration(self.fastest_wall_s)
            )
        } else {
            format!(
                "{} segments: no count backs this table up within {within}; the fastest is {} segments, {}",
                self.segments,
                self.fastest,
                duration(self.fastest_wall_s)
            )
        }
    }

    pub fn to_text(&self, table: &str) -> String {
        let i = &self.inputs;
        let b = &self.backup;
        let r = &self.restore;
        let mut out = format!(
            "table {table}: {} bytes, {} items, at least {} partitions, {} secondary indexes\n{}\n\n",
            crate::report::thousands(i.table_bytes),
            crate::report::thousands(i.items),
            i.partitions(),
            i.indexes,
            self.verdict()
        );
        out.push_str(&format!(
            "backup (parallel Scan to S3)\n  wall time     {}\n  invocations   {}\n  Lambda        {} GB-s\n  S3 PUT        {}\n  read units    {}\n  cost          ${:.2} reads + ${:.2} Lambda + ${:.2} S3 = ${:.2}\n  keeping it    ${:.2} a month in S3 Standard\n\n",
            duration(b.wall_s),
            count(b.invocations),
            count(b.gb_seconds),
            count(b.requests),
            count(b.units),
            b.units_usd,
            b.lambda_usd,
            b.s3_usd,
            b.total_usd,
            self.keep_usd_month,
        ));
        out.push_str(&format!(
            "restore (S3 to BatchWriteItem, into a table warm to its write quota)\n  wall time     {}\n  invocations   {}\n  Lambda        {} GB-s\n  S3 GET        {}\n  write units   {}\n  cost          ${:.2} writes + ${:.2} Lambda + ${:.2} S3 = ${:.2}\n  provisioned   ${:.2} of writes instead, on capacity fully used\n\n",
            duration(r.wall_s),
            count(r.invocations),
            count(r.gb_seconds),
            count(r.requests),
            count(r.units),
            r.units_usd,
            r.lambda_usd,
            r.s3_usd,
            r.total_usd,
            r.units_provisioned_usd,
        ));
        out.push_str("rates assumed (docs/one-terabyte.md#the-named-rates)\n");
        for (name, value, source) in rates(&i.settings) {
            out.push_str(&format!("  {name:<27} {value:<49} {}\n", source.as_str()));
        }
        out
    }

    pub fn to_json(&self, table: &str, region: &str) -> Value {
        let i = &self.inputs;
        let rates: Vec<Value> = rates(&i.settings)
            .into_iter()
            .map(|(name, value, source)| {
                json!({"name": name, "value": value, "source": source.as_str()})
            })
            .collect();
        json!({
            "table-name": table,
            "table-region": region,
            "table-bytes": i.table_bytes,
            "items": i.items,
            "partitions": i.partitions(),
            "indexes": i.indexes,
            "within-seconds": round1(self.within.as_secs_f64()),
            "within-met": self.met,
            "segments": self.segments,
            "fastest-segments": self.fastest,
            "fastest-wall-seconds": round1(self.fastest_wall_s),
            "backup": self.backup.to_json("s3-puts", "read-units"),
            "keep-usd-month": round2(self.keep_usd_month),
            "restore": self.restore.to_json("s3-gets", "write-units"),
            "rates": rates,
        })
    }
}

/// `--within`: `15m`, `1h`, `90s`, `2h30m`.
pub fn parse_within(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("{s:?} is not a duration like 15m, 1h, 90s or 2h30m ({e})"))
}

/// The default of `--within`, and what `solace backup` plans for without `--segments`.
pub const DEFAULT_WITHIN: Duration = Duration::from_secs(15 * 60);

/// The segment count `solace backup` takes without `--segments` (docs/cli.md#segments).
pub fn automatic_segments(table_bytes: u64, items: u64) -> u32 {
    Inputs::new(table_bytes, items)
        .plan(DEFAULT_WITHIN)
        .segments
}

#[cfg(test)]
mod tests {
    use super::*;

    const TB: u64 = 1_000_000_000_000;
    const ITEMS: u64 = 100_000_000;

    fn near(got: f64, want: f64, tolerance: f64, what: &str) {
        assert!(
            (got - want).abs() <= tolerance,
            "{what}: got {got}, the doc says {want}"
        );
    }

    /// docs/one-terabyte.md#backup-parallel-scan-to-s3, one row.
    fn backup_row(s: u32, wall_h: f64, gbs: f64, inv: f64, puts: f64, total: f64) {
        let b = Inputs::new(TB, ITEMS).backup(s);
        near(b.wall_s / 3600.0, wall_h, 0.05, "backup wall time (h)");
        near(b.gb_seconds, gbs, 100.0, "backup GB-s");
        near(b.invocations, inv, 0.0, "backup invocations");
        near(b.requests, puts, 0.0, "backup PUTs");
        near(b.units / 1e6, 122.07, 0.005, "read units (M)");
        near(b.units_usd, 15.26, 0.005, "reads $");
        near(b.s3_usd, 0.59, 0.005, "S3 $");
        near(b.total_usd, total, 0.005, "backup $");
    }

    /// docs/one-terabyte.md#restore-s3-to-batchwriteitem, one row.
    fn restore_row(s: u32, wall_h: f64, gbs: f64, inv: f64, gets: f64, total: f64) {
        let r = Inputs::new(TB, ITEMS).restore(s);
        near(r.wall_s / 3600.0, wall_h, 0.05, "restore wall time (h)");
        near(r.gb_seconds, gbs, 100.0, "restore GB-s");
        near(r.invocations, inv, 0.0, "restore invocations");
        near(r.requests, gets, 0.0, "restore GETs");
        near(r.units / 1e6, 1000.0, 0.0, "write units (M)");
        near(r.units_usd, 625.0, 0.005, "writes $");
        near(r.total_usd, total, 0.005, "restore $");
    }

    #[test]
    fn the_backup_table_of_the_doc() {
        backup_row(10, 3.5, 216_700.0, 150.0, 117_661.0, 19.46);
        backup_row(100, 51.0 / 60.0, 528_900.0, 400.0, 117_751.0, 24.66);
        backup_row(1000, 51.0 / 60.0, 1_056_100.0, 1000.0, 118_651.0, 33.45);
    }

    #[test]
    fn the_restore_table_of_the_doc() {
        restore_row(10, 27.8, 1_003_400.0, 1150.0, 118_803.0, 641.77);
        restore_row(100, 7.0, 2_508_500.0, 2900.0, 120_553.0, 666.86);
        restore_row(1000, 7.0, 5_016_000.0, 6000.0, 123_653.0, 708.65);
    }

    #[test]
    fn the_other_figures_of_the_doc() {
        let i = Inputs::new(TB, ITEMS);
        assert_eq!(i.partitions(), 94);
        near(i.read_ceiling() / 1e6, 327.68, 1e-9, "read_ceiling MB/s");
        near(i.pipe_rate() / 1e6, 35.3, 0.05, "pipe_rate MB/s");
        near(i.restore_seg_rate(), 1e6, 1e-6, "restore seg_rate");
        near(i.write_ceiling(), 40e6, 1e-3, "write_ceiling");
        near(i.keep_usd_month(), 7.71, 0.005, "keeping it a month");
        near(
            i.restore(10).units_provisioned_usd,
            180.56,
            0.005,
            "provisioned writes",
        );
        // "What the model recommends for 1 TB": 41, and one segment.
        near(i.backup(41).total_usd, 19.46, 0.005, "41: backup $");
        near(i.backup(41).wall_s / 60.0, 51.0, 0.5, "41: backup minutes");
        near(i.restore(41).total_usd, 642.19, 0.005, "41: restore $");
        near(i.restore(41).wall_s / 3600.0, 7.0, 0.05, "41: restore h");
        near(i.backup(1).wall_s / 3600.0, 34.8, 0.05, "1: backup h");
        near(i.restore(1).wall_s / 3600.0, 278.0, 0.5, "1: restore h");
        near(i.restore(1).total_usd, 641.77, 0.005, "1: restore $");
    }

    #[test]
    fn the_fastest_count_for_1_tb_is_41() {
        let i = Inputs::new(TB, ITEMS);
        assert_eq!(i.fastest_segments(), 41);
        // 51 minutes is the least: 15 cannot be met, so the plan is the fastest count.
        let p = i.plan(DEFAULT_WITHIN);
        assert!(!p.met);
        assert_eq!(p.segments, 41);
        assert!(
            p.verdict()
                .contains("no count backs this table up within 15m"),
            "{}",
            p.verdict()
        );
        // A limit just over the fastest wall time also lands on it.
        let p = i.plan(Duration::from_secs(52 * 60));
        assert!(p.met);
        assert_eq!(p.segments, 41);
    }

    #[test]
    fn a_longer_limit_takes_fewer_segments() {
        let i = Inputs::new(TB, ITEMS);
        let p = i.plan(Duration::from_secs(3600));
        assert!(p.met);
        assert_eq!(p.segments, 35);
        assert!(p.backup.wall_s <= 3600.0);
        assert!(i.backup(34).wall_s > 3600.0);
        // A day: two segments of 8 MB/s; one takes 34.8 h.
        assert_eq!(i.plan(Duration::from_secs(86_400)).segments, 2);
    }

    #[test]
    fn small_and_empty_tables_take_one_segment_and_never_divide_by_zero() {
        for (bytes, items) in [(0, 0), (0, 5), (5, 0), (1 << 30, 100_000)] {
            let p = Inputs::new(bytes, items).plan(DEFAULT_WITHIN);
            assert_eq!(p.segments, 1, "{bytes} bytes, {items} items");
            for side in [p.backup, p.restore] {
                assert!(
                    side.wall_s.is_finite() && side.total_usd.is_finite(),
                    "{side:?}"
                );
            }
            assert!(p.backup.invocations >= 1.0);
        }
        assert_eq!(automatic_segments(0, 0), 1);
        assert_eq!(automatic_segments(TB, ITEMS), 41);
        // One segment scans 10 GiB in 22 minutes; two share its one partition's read units
        // and take 11 (docs/cli.md#segments): the partitions do not cap a backup's count.
        assert_eq!(automatic_segments(5 << 30, 1_000_000), 1);
        assert_eq!(automatic_segments(10 << 30, 1_000_000), 2);
        assert_eq!(automatic_segments(11_000_000_000, 1_000_000), 2);
        assert_eq!(automatic_segments(30 << 30, 1_000_000), 5);
        // The largest inputs stay finite and within the concurrency.
        let p = Inputs::new(u64::MAX, 1).plan(Duration::ZERO);
        assert!(p.segments >= 1 && p.segments <= 200);
        assert!(p.backup.wall_s.is_finite());
    }

    #[test]
    fn within_parses_durations_and_names_a_bad_one() {
        assert_eq!(parse_within("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_within("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_within("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_within("2h30m"), Ok(Duration::from_secs(9000)));
        let e = parse_within("5x").expect_err("5x is no duration");
        assert!(e.contains("\"5x\""), "{e}");
    }
}
