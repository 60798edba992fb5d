//! Many segments of the real pipeline against one simulated table with DynamoDB's
//! per-partition limits, on a paused tokio clock: what the `pipeline-scale` binary runs.
//!
//! Each of `N` segments runs the pipeline's own `backup_segment` or `restore_segment`,
//! unmodified, against its own view ([`SegTable`], [`SegObjects`]) of one shared table
//! ([`SimDb`]). The table's key space is split evenly by hash into `P` partitions, as a
//! parallel scan splits it into segments (`pipeline/src/sim.rs`, `MemTable`: a segment is a
//! range of the partition key's hash); here a position in the key space is a byte offset of
//! the table's nominal size, so segment `i` of `N` covers bytes `[i T/N, (i+1) T/N)` and
//! partition `j` of `P` bytes `[j T/P, (j+1) T/P)`. Each partition has a token bucket for
//! reads (3,000 RCU/s) and one for writes (1,000 WCU/s), each holding one second of its rate
//! (no burst or adaptive capacity); a call its partition cannot pay for is answered with
//! [`ErrorKind::Throttled`] after [`Model::throttle`], and the pipeline's own retry policy
//! backs off and tries again.
//!
//! Nominal sizes keep a terabyte cheap:
//! - backup: every scan page is 1 MiB of the key space (shorter at a partition's or the
//!   segment's end) and is charged as that (0.5 RCU per 4 KiB, eventually consistent: 128
//!   RCU a page), but it carries one real item, so the pipeline encodes one item a page; the
//!   encoder closes a batch every 8 items (`EncoderConfig::max_items`), i.e. every 8 MiB of
//!   nominal pages, as the default 8 MiB batches close on page boundaries;
//! - restore: every batch holds as many real items as an 8 MiB batch of
//!   [`Model::item_bytes`]-byte items does (so the pipeline makes as many BatchWriteItem calls
//!   of 25), but each real item is a few bytes; a call is charged ⌈item / 1 KiB⌉ WCU per item
//!   and counts `item_bytes` per item written. Its items go to the partition of the segment's
//!   position: the segment's start plus the items it has written times the item size (a
//!   segment restores its batches in order, and its items were scanned in hash order).
//!
//! The codec's CPU, which a real segment spends on its own Lambda, is not the real (tiny)
//! encode or decode: the pipeline's blocking tasks take no simulated time (tokio's paused
//! clock does not advance while one runs), and the stores add the simulated time instead,
//! stage by stage as the pipeline overlaps it:
//! - backup: a virtual encoder per segment takes each page once it has arrived and the
//!   previous one is encoded, and spends `page bytes / encode rate` on it; the scan view
//!   delays the next Scan while the pipeline's page channel (`scan_prefetch` pages) would be
//!   full, and the batch's PUT starts no earlier than its last page is encoded;
//! - restore: the GET of a batch answers once a virtual decoder, one batch at a time in
//!   order, has spent `batch bytes / decode rate` on it after its download.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use bytes::Bytes;
use solace_codec::sdk::SdkItem;
use solace_codec::{BatchEncoder, EncoderConfig, RawItem, SegmentId};
use solace_pipeline::restore::MAX_ITEMS_PER_WRITE;
use solace_pipeline::{
    BackupCheckpoint, BackupConfig, ErrorKind, ObjectInfo, ObjectMeta, Objects, Outcome, Progress,
    PutNew, RestoreCheckpoint, RestoreConfig, ScanPage, SegmentJob, StoreError, Table, Unfenced,
    WriteResult, backup_segment, restore_segment,
};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::pipeline_sim::{Body, GenObjects};

/// DynamoDB's scan page: 1 MB (MiB).
pub const PAGE_BYTES: u64 = 1 << 20;
/// Read capacity units per partition per second.
pub const RCU_PER_PARTITION: f64 = 3000.0;
/// Write capacity units per partition per second.
pub const WCU_PER_PARTITION: f64 = 1000.0;
/// Lambda's default concurrency limit per account and region.
pub const LAMBDA_CONCURRENCY: usize = 1000;
/// The mean item JSON of `pipeline-bench`'s `sample::mixed` pages (8.5 MB batches of ~2,900
/// items); the binary measures it from the same items.
pub const MIXED_ITEM_BYTES: u64 = 2930;

const PREFIX: &str = "scale/";
/// The attribute of a scan page's `LastEvaluatedKey`: the byte offset where the next page
/// starts.
const POS_ATTR: &str = "pos";

/// Read capacity of a page of `bytes` (eventually consistent: 0.5 RCU per 4 KiB, rounded up).
pub fn read_units(bytes: u64) -> f64 {
    bytes.div_ceil(4096) as f64 * 0.5
}

/// Write capacity of one item of `bytes` (1 WCU per 1 KiB, rounded up).
pub fn write_units(bytes: u64) -> f64 {
    bytes.div_ceil(1024).max(1) as f64
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Backup,
    Restore,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Backup => "backup",
            Mode::Restore => "restore",
        }
    }
}

/// What is simulated: the table, the latencies, the Lambda's CPU, the measurement window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Model {
    pub segments: u32,
    pub partitions: u32,
    /// The table's nominal size: 10 TB, so that no segment finishes within the window (1,000
    /// segments at 13 MB/s each would finish a 1 TB table in 76 s).
    pub table_bytes: u64,
    /// A restored item's nominal size (its WCU).
    pub item_bytes: u64,
    /// One Scan page (pipeline-bench's scan-bound row: 81.6 ms a 1 MiB page).
    pub scan: Duration,
    /// One PUT of a batch (pipeline-bench: 50 ms).
    pub put: Duration,
    /// One GET of a batch (pipeline-bench: 50 ms).
    pub get: Duration,
    /// One BatchWriteItem of 25 items (pipeline-bench's write-bound rows: 14.1-14.4 ms).
    pub write: Duration,
    /// The answer to a throttled call.
    pub throttle: Duration,
    /// The encode stage's rate on a segment's Lambda, nominal bytes per second.
    pub encode_bytes_per_s: f64,
    /// The decode stage's rate on a segment's Lambda, nominal bytes per second.
    pub decode_bytes_per_s: f64,
    /// The backup's batch target (8 MiB: 8 pages).
    pub batch_bytes: u64,
    /// Simulated time before the measurement starts.
    pub warmup: Duration,
    /// Simulated time measured.
    pub window: Duration,
    /// How long a message whose run failed without moving its checkpoint waits before it is
    /// delivered again (the queue's visibility timeout: 6 x the 900 s function timeout).
    pub redelivery: Duration,
    /// Segments running at once (Lambda's concurrency); the others wait.
    pub lambda_concurrency: usize,
    /// Give each segment the pipeline's own capacity limit
    /// (`read_capacity_per_second` / `write_capacity_per_second`): its share of a partition,
    /// [`Model::segment_capacity`]. Off: no limit, as the functions run by default.
    pub capacity_limit: bool,
}

impl Default for Model {
    fn default() -> Self {
        Model {
            segments: 1,
            partitions: 1,
            table_bytes: 10_000_000_000_000,
            item_bytes: MIXED_ITEM_BYTES,
            scan: Duration::from_millis(80),
            put: Duration::from_millis(50),
            get: Duration::from_millis(50),
            write: Duration::from_millis(14),
            throttle: Duration::from_millis(10),
            encode_bytes_per_s: 30e6,
            decode_bytes_per_s: 80e6,
            batch_bytes: 8 << 20,
            warmup: Duration::from_secs(10),
            window: Duration::from_secs(120),
            redelivery: Duration::from_secs(6 * 900),
            lambda_concurrency: LAMBDA_CONCURRENCY,
            capacity_limit: false,
        }
    }
}

impl Model {
    fn pages_per_batch(&self) -> usize {
        (self.batch_bytes / PAGE_BYTES).max(1) as usize
    }

    /// Items in a restored batch: as many as `batch_bytes` holds.
    pub fn items_per_batch(&self) -> usize {
        (self.batch_bytes / self.item_bytes.max(1)).max(1) as usize
    }

    fn restore_batch_bytes(&self) -> u64 {
        self.items_per_batch() as u64 * self.item_bytes
    }

    /// Bytes `[lo, hi)` of segment `i`: an even share of the key space, the last segment
    /// taking the remainder (as `MemTable` splits the hash range).
    pub fn segment_range(&self, i: u32) -> (u64, u64) {
        let span = self.table_bytes / u64::from(self.segments.max(1));
        let lo = u64::from(i) * span;
        let hi = if i + 1 >= self.segments {
            self.table_bytes
        } else {
            lo + span
        };
        (lo, hi)
    }

    /// The partition holding byte `pos`.
    pub fn partition_of(&self, pos: u64) -> usize {
        let p = u128::from(self.partitions.max(1));
        let j = u128::from(pos.min(self.table_bytes.saturating_sub(1))) * p
            / u128::from(self.table_bytes.max(1));
        j as usize
    }

    /// Where partition `j` ends: the first byte of partition `j + 1`.
    pub fn partition_end(&self, j: usize) -> u64 {
        let p = u128::from(self.partitions.max(1));
        ((j as u128 + 1) * u128::from(self.table_bytes)).div_ceil(p) as u64
    }

    /// One segment's rate with no throttling, and its slowest stage: what the pipeline's
    /// stages do one after another (scan pages one at a time, encode one page at a time,
    /// upload batches one at a time; download `prefetch` batches at once, decode one at a
    /// time, `write_concurrency` BatchWriteItem calls of 25 items).
    pub fn segment_rate(&self, mode: Mode) -> (f64, &'static str) {
        let stages: [(f64, &'static str); 3] = match mode {
            Mode::Backup => {
                let per_batch = self.pages_per_batch() as f64 * PAGE_BYTES as f64;
                [
                    (PAGE_BYTES as f64 / self.scan.as_secs_f64(), "scan latency"),
                    (self.encode_bytes_per_s, "encode CPU"),
                    (per_batch / self.put.as_secs_f64(), "upload latency"),
                ]
            }
            Mode::Restore => {
                let restore = RestoreConfig::default();
                let call = (MAX_ITEMS_PER_WRITE as u64 * self.item_bytes) as f64;
                let batch = self.restore_batch_bytes() as f64;
                [
                    (
                        restore.write_concurrency as f64 * call / self.write.as_secs_f64(),
                        "write latency",
                    ),
                    (self.decode_bytes_per_s, "decode CPU"),
                    (
                        restore.prefetch as f64 * batch / self.get.as_secs_f64(),
                        "download latency",
                    ),
                ]
            }
        };
        stages
            .into_iter()
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .unwrap_or((f64::NAN, "none"))
    }

    /// A segment's share of the capacity units of the partition it is in: all of them when
    /// segments are no more than partitions (each segment is in one partition at a time),
    /// `P / N` of them when more segments share each partition.
    pub fn segment_capacity(&self, mode: Mode) -> f64 {
        let units = match mode {
            Mode::Backup => RCU_PER_PARTITION,
            Mode::Restore => WCU_PER_PARTITION,
        };
        units * (f64::from(self.partitions) / f64::from(self.segments.max(1))).min(1.0)
    }

    /// One partition's rate in nominal bytes per second: its RCU in 1 MiB pages, or its WCU
    /// in items.
    pub fn partition_rate(&self, mode: Mode) -> f64 {
        match mode {
            Mode::Backup => RCU_PER_PARTITION / read_units(PAGE_BYTES) * PAGE_BYTES as f64,
            Mode::Restore => {
                WCU_PER_PARTITION / write_units(self.item_bytes) * self.item_bytes as f64
            }
        }
    }

    /// The analytical bound and what sets it: `N` segments at their own rate, each in one
    /// partition at a time (a segment reads or writes its hash range in order), and all `P`
    /// partitions at their capacity.
    pub fn bound(&self, mode: Mode) -> (f64, String) {
        let (seg, stage) = self.segment_rate(mode);
        let part = self.partition_rate(mode);
        let n = f64::from(self.segments.min(self.lambda_concurrency as u32));
        let all = f64::from(self.partitions) * part;
        let units = match mode {
            Mode::Backup => "RCU",
            Mode::Restore => "WCU",
        };
        if all <= n * seg.min(part) {
            let s = if self.partitions == 1 { "" } else { "s" };
            (
                all,
                format!("{units} of all {} partition{s}", self.partitions),
            )
        } else if seg <= part {
            (n * seg, format!("segments: {stage}"))
        } else {
            (n * part, format!("{units} of one partition per segment"))
        }
    }
}

/// A token bucket holding at most one second of its rate.
#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// A full bucket of `rate`.
    pub fn full(rate: f64, now: Instant) -> Self {
        Bucket {
            tokens: rate,
            at: now,
        }
    }

    /// Refills at `rate` up to one second of it, then takes `cost` if it is there.
    pub fn take(&mut self, now: Instant, rate: f64, cost: f64) -> bool {
        if now > self.at {
            let refill = rate * (now - self.at).as_secs_f64();
            self.tokens = (self.tokens + refill).min(rate);
            self.at = now;
        }
        if self.tokens >= cost {
            self.tokens -= cost;
            true
        } else {
            false
        }
    }
}

/// What happened in the measurement window (calls answered in it), and over the whole run
/// (segment runs).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counts {
    /// Scan or BatchWriteItem calls answered in the window, throttled included.
    pub calls: u64,
    pub throttled: u64,
    /// RCU or WCU consumed.
    pub units: f64,
    /// Backup: nominal bytes of the batches uploaded; restore: of the items written.
    pub bytes: f64,
    /// Backup: nominal bytes of the pages scanned (what was read, uploaded or not).
    pub scanned: f64,
    /// Segment runs that ended with a retryable error (the pipeline gave up retrying).
    pub failed_runs: u64,
    /// Of those, runs that had not moved their checkpoint: their message goes back to the
    /// queue for [`Model::redelivery`].
    pub requeued: u64,
    pub completed_segments: u64,
}

/// The table all segments share: its partitions' buckets and the counters.
#[derive(Debug)]
pub struct SimDb {
    model: Model,
    from: Instant,
    to: Instant,
    read: Mutex<Vec<Bucket>>,
    write: Mutex<Vec<Bucket>>,
    counts: Mutex<Counts>,
    fatal: Mutex<Option<String>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl SimDb {
    pub fn new(model: Model, start: Instant) -> Self {
        let p = model.partitions.max(1) as usize;
        SimDb {
            model,
            from: start + model.warmup,
            to: start + model.warmup + model.window,
            read: Mutex::new(vec![Bucket::full(RCU_PER_PARTITION, start); p]),
            write: Mutex::new(vec![Bucket::full(WCU_PER_PARTITION, start); p]),
            counts: Mutex::new(Counts::default()),
            fatal: Mutex::new(None),
        }
    }

    fn in_window(&self, t: Instant) -> bool {
        t >= self.from && t < self.to
    }

    fn count(&self, at: Instant, f: impl FnOnce(&mut Counts)) {
        if self.in_window(at) {
            f(&mut lock(&self.counts));
        }
    }

    pub fn counts(&self) -> Counts {
        *lock(&self.counts)
    }
}

/// A segment's virtual CPU, and where its restore writes.
#[derive(Debug, Default)]
struct Cpu {
    /// Backup, this run's pages in order: when the encoder took it, when it was encoded, its
    /// nominal bytes.
    pages: Vec<(Instant, Instant, u64)>,
    /// Backup: pages whose batches were uploaded, this run.
    uploaded: usize,
    /// Restore: when the decoder is done with the last batch given to it.
    decoder_free: Option<Instant>,
    /// Restore: items written by the segment (its position in its hash range).
    written: u64,
}

/// One segment's view of the table: Scan pages of its range, BatchWriteItem into the
/// partition where it is.
#[derive(Debug)]
pub struct SegTable {
    db: Arc<SimDb>,
    segment: u32,
    cpu: Arc<Mutex<Cpu>>,
    /// The pipeline's page channel between scanner and encoder.
    prefetch: usize,
}

fn throttled(operation: &'static str) -> StoreError {
    StoreError::new(
        ErrorKind::Throttled,
        operation,
        "ProvisionedThroughputExceededException: the partition's capacity is spent",
    )
}

fn page_item(offset: u64) -> SdkItem {
    [("pk".to_owned(), AttributeValue::S(format!("{offset:020}")))].into()
}

fn pos_of(key: &SdkItem) -> Option<u64> {
    match key.get(POS_ATTR)? {
        AttributeValue::N(n) => n.parse().ok(),
        _ => None,
    }
}

impl Table for SegTable {
    async fn scan(
        &self,
        segment: u32,
        total: u32,
        start_key: Option<SdkItem>,
    ) -> Result<ScanPage, StoreError> {
        let model = &self.db.model;
        if segment != self.segment || total != model.segments {
            return Err(StoreError::new(
                ErrorKind::Permanent,
                "Scan",
                format!(
                    "ValidationException: segment {segment} of {total} on the view of segment {}",
                    self.segment
                ),
            ));
        }
        let (lo, hi) = model.segment_range(segment);
        let offset = match &start_key {
            None => lo,
            Some(key) => pos_of(key).ok_or_else(|| {
                StoreError::new(
                    ErrorKind::Permanent,
                    "Scan",
                    "ValidationException: bad start key",
                )
            })?,
        };
        if offset >= hi {
            return Ok(ScanPage::default());
        }
        // The scanner would still be waiting to hand its last page to a busy encoder.
        let wait = {
            let cpu = lock(&self.cpu);
            let k = cpu.pages.len();
            (k > self.prefetch).then(|| cpu.pages[k - 1 - self.prefetch].0)
        };
        if let Some(until) = wait {
            tokio::time::sleep_until(until).await;
        }
        let now = Instant::now();
        let partition = model.partition_of(offset);
        let end = (offset + PAGE_BYTES)
            .min(hi)
            .min(model.partition_end(partition));
        let bytes = end - offset;
        let units = read_units(bytes);
        let paid = lock(&self.db.read)[partition].take(now, RCU_PER_PARTITION, units);
        if !paid {
            let at = now + model.throttle;
            self.db.count(at, |c| {
                c.calls += 1;
                c.throttled += 1;
            });
            tokio::time::sleep_until(at).await;
            return Err(throttled("Scan"));
        }
        let at = now + model.scan;
        self.db.count(at, |c| {
            c.calls += 1;
            c.units += units;
            c.scanned += bytes as f64;
        });
        tokio::time::sleep_until(at).await;
        {
            let mut cpu = lock(&self.cpu);
            let taken = cpu.pages.last().map_or(at, |p| p.1.max(at));
            let encoded =
                taken + Duration::from_secs_f64(bytes as f64 / model.encode_bytes_per_s.max(1.0));
            cpu.pages.push((taken, encoded, bytes));
        }
        let mut last_key = SdkItem::new();
        last_key.insert(POS_ATTR.to_owned(), AttributeValue::N(end.to_string()));
        Ok(ScanPage {
            items: vec![page_item(offset)],
            raw: None,
            last_key: (end < hi).then_some(last_key),
            consumed: units,
        })
    }

    async fn batch_write(&self, items: Vec<SdkItem>) -> Result<WriteResult, StoreError> {
        let model = &self.db.model;
        if items.is_empty() || items.len() > MAX_ITEMS_PER_WRITE {
            return Err(StoreError::new(
                ErrorKind::Permanent,
                "BatchWriteItem",
                format!("ValidationException: {} items in one request", items.len()),
            ));
        }
        let n = items.len() as u64;
        let (lo, hi) = model.segment_range(self.segment);
        let position = lo + lock(&self.cpu).written * model.item_bytes;
        let partition = model.partition_of(position.min(hi.saturating_sub(1)));
        let units = n as f64 * write_units(model.item_bytes);
        let now = Instant::now();
        let paid = lock(&self.db.write)[partition].take(now, WCU_PER_PARTITION, units);
        if !paid {
            let at = now + model.throttle;
            self.db.count(at, |c| {
                c.calls += 1;
                c.throttled += 1;
            });
            tokio::time::sleep_until(at).await;
            return Err(throttled("BatchWriteItem"));
        }
        let at = now + model.write;
        self.db.count(at, |c| {
            c.calls += 1;
            c.units += units;
            c.bytes += (n * model.item_bytes) as f64;
        });
        tokio::time::sleep_until(at).await;
        lock(&self.cpu).written += n;
        Ok(WriteResult {
            unprocessed: Vec::new(),
            consumed: units,
        })
    }
}

/// One segment's view of the bucket: `GenObjects` (PUT counts and drops; GET serves a real
/// batch body and the marker), with the virtual encoder and decoder in front.
#[derive(Debug)]
pub struct SegObjects {
    db: Arc<SimDb>,
    inner: GenObjects,
    segment: SegmentId,
    cpu: Arc<Mutex<Cpu>>,
}

impl SegObjects {
    fn is_batch(&self, key: &str) -> bool {
        solace_codec::parse_batch_key(PREFIX, key).is_ok_and(|(s, _)| s == self.segment)
    }
}

impl Objects for SegObjects {
    async fn put(&self, key: &str, body: Bytes) -> Result<(), StoreError> {
        self.inner.put(key, body).await
    }

    /// A batch's upload starts once its last page is encoded; its pages' nominal bytes count
    /// when the upload is done.
    async fn put_new(
        &self,
        key: &str,
        body: Bytes,
        meta: &ObjectMeta,
    ) -> Result<PutNew, StoreError> {
        if !self.is_batch(key) {
            return self.inner.put_new(key, body, meta).await;
        }
        let (ready, bytes) = {
            let mut cpu = lock(&self.cpu);
            let first = cpu.uploaded;
            let last = (first + meta.items.unwrap_or(0) as usize).min(cpu.pages.len());
            cpu.uploaded = last;
            let pages = &cpu.pages[first..last];
            (
                pages.last().map(|p| p.1),
                pages.iter().map(|p| p.2).sum::<u64>(),
            )
        };
        if let Some(ready) = ready {
            tokio::time::sleep_until(ready).await;
        }
        let put = self.inner.put_new(key, body, meta).await?;
        self.db.count(Instant::now(), |c| c.bytes += bytes as f64);
        Ok(put)
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError> {
        self.inner.head(key).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.inner.list(prefix).await
    }

    /// A batch's body comes back once the virtual decoder has decoded it: after its download,
    /// and after the batch before it.
    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        let body = self.inner.get(key).await?;
        if body.is_some() && self.is_batch(key) {
            let model = &self.db.model;
            let decode = Duration::from_secs_f64(
                model.restore_batch_bytes() as f64 / model.decode_bytes_per_s.max(1.0),
            );
            let done = {
                let mut cpu = lock(&self.cpu);
                let now = Instant::now();
                let start = cpu.decoder_free.map_or(now, |f| f.max(now));
                let done = start + decode;
                cpu.decoder_free = Some(done);
                done
            };
            tokio::time::sleep_until(done).await;
        }
        Ok(body)
    }
}

/// One real batch body of `model.items_per_batch()` tiny items (`{"pk":{"N":"i"}}`), what
/// every batch of a restored segment is.
pub fn restore_body(model: &Model) -> Body {
    let items = model.items_per_batch();
    let mut encoder = BatchEncoder::new(EncoderConfig {
        max_items: items,
        ..EncoderConfig::default()
    });
    let mut json = Vec::new();
    for i in 0..items {
        json.clear();
        json.extend_from_slice(format!("{{\"pk\":{{\"N\":\"{i}\"}}}}").as_bytes());
        encoder.push(RawItem::parse(&json).expect("a tiny item is an item"));
    }
    let batch = encoder.finish();
    Body {
        body: Bytes::from(batch.body),
        items: batch.items,
        json_bytes: batch.json_bytes,
    }
}

/// One run: every segment's pipeline for `warmup + window` of simulated time.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub mode: Mode,
    pub model: Model,
    pub counts: Counts,
    /// Nominal bytes per second over the window.
    pub bytes_per_s: f64,
    /// Throttled calls / calls.
    pub throttled: f64,
    /// Capacity units consumed / what all partitions had in the window.
    pub partition_use: f64,
    /// The analytical bound and what sets it ([`Model::bound`]).
    pub bound: f64,
    pub limit: String,
}

#[derive(Clone)]
struct Segment {
    db: Arc<SimDb>,
    index: u32,
    permits: Arc<Semaphore>,
    body: Option<Body>,
}

impl Segment {
    fn views(&self, put: Duration, get: Duration) -> (Arc<SegTable>, Arc<SegObjects>) {
        let model = &self.db.model;
        let cpu = Arc::new(Mutex::new(Cpu::default()));
        let segment = SegmentId(self.index);
        let bodies: Vec<Body> = self.body.iter().cloned().collect();
        let n_batches = if bodies.is_empty() {
            0
        } else {
            let (lo, hi) = model.segment_range(self.index);
            ((hi - lo) / model.restore_batch_bytes()).max(1)
        };
        let table = Arc::new(SegTable {
            db: self.db.clone(),
            segment: self.index,
            cpu: cpu.clone(),
            prefetch: BackupConfig::default().scan_prefetch.max(1),
        });
        let objects = Arc::new(SegObjects {
            db: self.db.clone(),
            inner: GenObjects::new(PREFIX, segment, bodies, n_batches, put, get),
            segment,
            cpu,
        });
        (table, objects)
    }

    fn job(&self) -> SegmentJob {
        SegmentJob {
            prefix: PREFIX.to_owned(),
            segment: SegmentId(self.index),
            total_segments: self.db.model.segments,
        }
    }

    fn fatal(&self, what: String) {
        lock(&self.db.fatal).get_or_insert(what);
    }

    /// A run that failed: a retryable error is what a function hands on, continuing from the
    /// checkpoint at once when it moved, back in the queue otherwise.
    async fn failed(&self, retryable: bool, progressed: bool, what: String) -> bool {
        if !retryable {
            self.fatal(format!("segment {}: {what}", self.index));
            return false;
        }
        let model = &self.db.model;
        lock(&self.db.counts).failed_runs += 1;
        if !progressed {
            lock(&self.db.counts).requeued += 1;
            tokio::time::sleep(model.redelivery).await;
        }
        true
    }

    async fn backup(self) {
        let Ok(_permit) = self.permits.clone().acquire_owned().await else {
            return;
        };
        let model = self.db.model;
        let (table, objects) = self.views(model.put, Duration::ZERO);
        let job = self.job();
        let config = BackupConfig {
            encoder: EncoderConfig {
                max_items: model.pages_per_batch(),
                ..EncoderConfig::default()
            },
            read_capacity_per_second: model
                .capacity_limit
                .then(|| model.segment_capacity(Mode::Backup)),
            ..BackupConfig::default()
        };
        let deadline = self.db.to + Duration::from_secs(3600);
        let mut from = BackupCheckpoint::default();
        loop {
            {
                let mut cpu = lock(&table.cpu);
                cpu.pages.clear();
                cpu.uploaded = 0;
            }
            let run = backup_segment(
                table.clone(),
                objects.clone(),
                Unfenced,
                &job,
                &config,
                from.clone(),
                deadline,
                Arc::new(Progress::default()),
            )
            .await;
            match run {
                Ok(Outcome::Completed(_)) => {
                    lock(&self.db.counts).completed_segments += 1;
                    return;
                }
                Ok(Outcome::Paused(c) | Outcome::Fenced(c)) => from = c,
                Err(e) => {
                    let progressed = e.checkpoint != from;
                    let retryable = e.error.is_retryable();
                    if !self
                        .failed(retryable, progressed, e.error.to_string())
                        .await
                    {
                        return;
                    }
                    from = e.checkpoint;
                }
            }
        }
    }

    async fn restore(self) {
        let Ok(_permit) = self.permits.clone().acquire_owned().await else {
            return;
        };
        let model = self.db.model;
        let (table, objects) = self.views(Duration::ZERO, model.get);
        let job = self.job();
        let config = RestoreConfig {
            write_capacity_per_second: model
                .capacity_limit
                .then(|| model.segment_capacity(Mode::Restore)),
            ..RestoreConfig::default()
        };
        let deadline = self.db.to + Duration::from_secs(3600);
        let mut from = RestoreCheckpoint::default();
        loop {
            {
                let mut cpu = lock(&table.cpu);
                cpu.decoder_free = None;
                cpu.written = from.items;
            }
            let run = restore_segment(
                table.clone(),
                objects.clone(),
                &job,
                &config,
                from.clone(),
                deadline,
                Arc::new(Progress::default()),
            )
            .await;
            match run {
                Ok(Outcome::Completed(_)) => {
                    lock(&self.db.counts).completed_segments += 1;
                    return;
                }
                Ok(Outcome::Paused(c) | Outcome::Fenced(c)) => from = c,
                Err(e) => {
                    let progressed = e.checkpoint != from;
                    let retryable = e.error.is_retryable();
                    if !self
                        .failed(retryable, progressed, e.error.to_string())
                        .await
                    {
                        return;
                    }
                    from = e.checkpoint;
                }
            }
        }
    }
}

/// Runs `model.segments` segments of `mode` on a paused clock until the window ends.
pub fn run(model: Model, mode: Mode) -> Result<Report, String> {
    if model.segments == 0 || model.partitions == 0 || model.table_bytes == 0 {
        return Err("segments, partitions and the table size must be positive".into());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .map_err(|e| format!("a tokio runtime: {e}"))?;
    let db = runtime.block_on(async {
        let db = Arc::new(SimDb::new(model, Instant::now()));
        let permits = Arc::new(Semaphore::new(model.lambda_concurrency.max(1)));
        let body = (mode == Mode::Restore).then(|| restore_body(&model));
        let tasks: Vec<_> = (0..model.segments)
            .map(|index| {
                let segment = Segment {
                    db: db.clone(),
                    index,
                    permits: permits.clone(),
                    body: body.clone(),
                };
                match mode {
                    Mode::Backup => tokio::spawn(segment.backup()),
                    Mode::Restore => tokio::spawn(segment.restore()),
                }
            })
            .collect();
        tokio::time::sleep_until(db.to).await;
        for task in &tasks {
            task.abort();
        }
        db
    });
    drop(runtime);
    if let Some(fatal) = lock(&db.fatal).clone() {
        return Err(fatal);
    }
    let counts = db.counts();
    let window = model.window.as_secs_f64();
    let rate = match mode {
        Mode::Backup => RCU_PER_PARTITION,
        Mode::Restore => WCU_PER_PARTITION,
    };
    let (bound, limit) = model.bound(mode);
    Ok(Report {
        mode,
        model,
        counts,
        bytes_per_s: counts.bytes / window,
        throttled: counts.throttled as f64 / counts.calls.max(1) as f64,
        partition_use: counts.units / (f64::from(model.partitions) * rate * window),
        bound,
        limit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(segments: u32, partitions: u32) -> Model {
        Model {
            segments,
            partitions,
            warmup: Duration::from_secs(5),
            window: Duration::from_secs(20),
            ..Model::default()
        }
    }

    fn run_ok(m: Model, mode: Mode) -> Report {
        run(m, mode).expect("the simulation runs")
    }

    #[test]
    fn capacity_units_are_dynamodbs() {
        assert_eq!(
            read_units(PAGE_BYTES),
            128.0,
            "a 1 MiB page, eventually consistent"
        );
        assert_eq!(read_units(1), 0.5);
        assert_eq!(read_units(4097), 1.0);
        assert_eq!(write_units(1024), 1.0);
        assert_eq!(write_units(1025), 2.0);
        assert_eq!(write_units(MIXED_ITEM_BYTES), 3.0);
        // 3,000 RCU/s of 1 MiB pages: 23.4 MiB/s.
        let cap = Model::default().partition_rate(Mode::Backup);
        assert_eq!(cap, 3000.0 * 8192.0);
        assert!((cap / (1u64 << 20) as f64 - 23.4375).abs() < 1e-9);
    }

    #[test]
    fn segments_and_partitions_split_the_key_space_evenly() {
        let m = Model {
            segments: 3,
            partitions: 4,
            table_bytes: 1200,
            ..Model::default()
        };
        assert_eq!(m.segment_range(0), (0, 400));
        assert_eq!(m.segment_range(2), (800, 1200));
        assert_eq!(
            (0..4).map(|j| m.partition_end(j)).collect::<Vec<_>>(),
            [300, 600, 900, 1200]
        );
        for pos in [0, 299, 300, 899, 900, 1199] {
            let j = m.partition_of(pos);
            assert!(pos < m.partition_end(j), "{pos} in {j}");
            assert!(j == 0 || pos >= m.partition_end(j - 1), "{pos} in {j}");
        }
        assert_eq!(m.partition_of(5000), 3, "past the end: the last partition");
    }

    #[tokio::test(start_paused = true)]
    async fn a_bucket_holds_one_second_and_refills_at_its_rate() {
        let start = Instant::now();
        let mut b = Bucket::full(3000.0, start);
        // One second's worth at once, then nothing.
        for _ in 0..23 {
            assert!(b.take(start, 3000.0, 128.0));
        }
        assert!(
            !b.take(start, 3000.0, 128.0),
            "23 x 128 = 2944 of 3000 taken"
        );
        // 128 RCU come back in 128 / 3000 s.
        assert!(!b.take(start + Duration::from_millis(20), 3000.0, 128.0));
        assert!(b.take(start + Duration::from_millis(43), 3000.0, 128.0));
        // Idle for a minute: still only one second's worth (no burst capacity).
        let later = start + Duration::from_secs(60);
        let taken = (0..100).filter(|_| b.take(later, 3000.0, 128.0)).count();
        assert_eq!(taken, 23);
    }

    #[test]
    fn one_segment_runs_at_its_serial_page_rate_unthrottled() {
        // 1,000 partitions: one segment is never short of capacity; it scans one 1 MiB page
        // per scan latency.
        let m = model(1, 1000);
        let r = run_ok(m, Mode::Backup);
        let serial = PAGE_BYTES as f64 / m.scan.as_secs_f64();
        assert_eq!(r.counts.throttled, 0);
        assert!(
            (r.bytes_per_s / serial - 1.0).abs() < 0.06,
            "{} vs {serial}",
            r.bytes_per_s
        );
        assert_eq!(m.segment_rate(Mode::Backup).1, "scan latency");
        assert!(r.limit.starts_with("segments"), "{}", r.limit);
        // Faster scans make encoding the limit: the virtual encoder paces the scanner (at
        // 15 MB/s, under the 24.6 MB/s of the one partition the segment is in).
        let fast = Model {
            scan: Duration::from_millis(5),
            encode_bytes_per_s: 15e6,
            ..m
        };
        assert_eq!(fast.segment_rate(Mode::Backup).1, "encode CPU");
        let r = run_ok(fast, Mode::Backup);
        assert!(
            (r.bytes_per_s / fast.encode_bytes_per_s - 1.0).abs() < 0.06,
            "{} vs encode {}",
            r.bytes_per_s,
            fast.encode_bytes_per_s
        );
    }

    #[test]
    fn one_partition_caps_backup_at_its_rcu_whatever_the_segments() {
        let cap = RCU_PER_PARTITION / 128.0 * PAGE_BYTES as f64;
        for n in [4, 30] {
            let r = run_ok(model(n, 1), Mode::Backup);
            let scanned = r.counts.scanned / r.model.window.as_secs_f64();
            assert!(scanned <= cap * 1.01, "{n} segments: {scanned} > {cap}");
            assert!(scanned >= cap * 0.85, "{n} segments: {scanned} << {cap}");
            assert!(r.counts.throttled > 0, "{n} segments are throttled");
            assert_eq!(r.limit, "RCU of all 1 partition");
        }
    }

    #[test]
    fn restore_writes_at_one_partitions_wcu_per_segment() {
        // 10 segments on 100 partitions: each writes its hash range in order, so each is in
        // one partition at a time, at 1,000 WCU/s of 3-WCU items. With the pipeline's own
        // write limit at that rate, the segments get all of it.
        let m = Model {
            capacity_limit: true,
            ..model(10, 100)
        };
        assert_eq!(m.segment_capacity(Mode::Restore), WCU_PER_PARTITION);
        let r = run_ok(m, Mode::Restore);
        let per_segment = WCU_PER_PARTITION / 3.0 * MIXED_ITEM_BYTES as f64;
        let rate = r.bytes_per_s / 10.0;
        assert!(
            rate <= per_segment * 1.01 && rate >= per_segment * 0.95,
            "{rate} vs {per_segment}"
        );
        assert_eq!(r.counts.failed_runs, 0);
        assert_eq!(r.limit, "WCU of one partition per segment");
        // The 10 partitions the segments are in at a time, 1,000 WCU/s each, of 100.
        assert!((r.partition_use - 0.1).abs() < 0.01, "{}", r.partition_use);
    }

    #[test]
    fn unlimited_restores_on_one_partition_give_up_and_are_requeued() {
        // 10 segments x 8 BatchWriteItem calls in flight on one partition's 1,000 WCU/s
        // (13 calls a second): writers deep in their backoff lose every race to those that
        // just succeeded, and after 12 attempts the run fails. Without a batch written it
        // moved no checkpoint: its message goes back to the queue.
        let m = Model {
            window: Duration::from_secs(40),
            ..model(10, 1)
        };
        let r = run_ok(m, Mode::Restore);
        assert!(r.counts.failed_runs >= 1, "{:?}", r.counts);
        assert!(r.counts.requeued >= 1, "{:?}", r.counts);
        assert!(r.throttled > 0.5, "{}", r.throttled);
        assert!(r.bytes_per_s < r.bound, "{} vs {}", r.bytes_per_s, r.bound);
    }
}
