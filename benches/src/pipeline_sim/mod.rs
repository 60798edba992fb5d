//! Generated, latency-simulated stores for the `pipeline-bench` binary: segments of any size
//! with memory that does not grow with it.
//!
//! - [`Pages`]: a few pre-built 1 MiB scan pages of [`sample::mixed`] items (or of one
//!   [`Shape`], e.g. near-400 KB huge items), served as clones.
//! - [`GenTable`]: a [`Table`] whose scan serves page `i % K` for page index `i` (the
//!   `LastEvaluatedKey` carries the next index), and whose BatchWriteItem counts and drops.
//! - [`GenObjects`]: an [`Objects`] whose PUT counts and drops, and whose GET serves batch
//!   `n` from a few pre-encoded real batch bodies, plus the segment marker.
//! - [`encode_pages`], [`decode_bodies`]: the codec work of the backup and restore stages,
//!   timed on one core, for the analytical bounds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use bytes::Bytes;
use solace_codec::sample::{self, Shape};
use solace_codec::sdk::{self, SdkItem};
use solace_codec::{BatchDecoder, BatchEncoder, BatchId, EncoderConfig, SegmentId};
use solace_pipeline::{
    ErrorKind, ObjectInfo, ObjectMeta, Objects, PutNew, ScanPage, SegmentMarker, StoreError, Table,
    WriteResult,
};

/// DynamoDB's scan page size.
pub const PAGE_BYTES: usize = 1 << 20;

/// The attribute of the generated `LastEvaluatedKey` that holds the next page index.
const PAGE_ATTR: &str = "page";

/// One cached scan page.
#[derive(Debug, Clone)]
pub struct Page {
    pub items: Vec<SdkItem>,
    /// The items' DynamoDB JSON bytes.
    pub json_bytes: usize,
}

/// `K` distinct pages of consecutive [`sample::mixed`] items, each ending once its JSON
/// reaches [`PAGE_BYTES`] (as a DynamoDB page ends at 1 MB).
#[derive(Debug, Clone)]
pub struct Pages(pub Arc<Vec<Page>>);

impl Pages {
    pub fn build(k: usize) -> Self {
        Self::build_shape(k, None)
    }

    /// [`Pages::build`] of `shape`'s items ([`sample::item`]); `None`: [`sample::mixed`].
    pub fn build_shape(k: usize, shape: Option<Shape>) -> Self {
        let mut pages = Vec::with_capacity(k);
        let mut n = 0u64;
        let mut json = Vec::new();
        for _ in 0..k {
            let mut page = Page {
                items: Vec::new(),
                json_bytes: 0,
            };
            while page.json_bytes < PAGE_BYTES {
                let item = sdk::to_sdk_item(&match shape {
                    Some(shape) => sample::item(shape, n),
                    None => sample::mixed(n),
                });
                json.clear();
                sdk::write_sdk_item(&item, &mut json).expect("sample items are writable");
                page.json_bytes += json.len();
                page.items.push(item);
                n += 1;
            }
            pages.push(page);
        }
        Pages(Arc::new(pages))
    }

    pub fn get(&self, index: u64) -> &Page {
        &self.0[(index % self.0.len() as u64) as usize]
    }

    pub fn mean_json_bytes(&self) -> f64 {
        self.0.iter().map(|p| p.json_bytes).sum::<usize>() as f64 / self.0.len() as f64
    }

    pub fn items(&self) -> usize {
        self.0.iter().map(|p| p.items.len()).sum()
    }

    pub fn json_bytes(&self) -> usize {
        self.0.iter().map(|p| p.json_bytes).sum()
    }

    /// Mean time to clone one page (what [`GenTable::scan`] does per page).
    pub fn clone_time(&self, rounds: usize) -> Duration {
        let start = Instant::now();
        for i in 0..rounds * self.0.len() {
            let items = self.get(i as u64).items.clone();
            std::hint::black_box(&items);
            drop(items);
        }
        start.elapsed() / (rounds * self.0.len()) as u32
    }
}

fn page_key(index: u64) -> SdkItem {
    [(PAGE_ATTR.to_owned(), AttributeValue::N(index.to_string()))].into()
}

fn page_index(key: &SdkItem) -> Option<u64> {
    match key.get(PAGE_ATTR)? {
        AttributeValue::N(n) => n.parse().ok(),
        _ => None,
    }
}

/// Calls of one kind in flight over time: the mean concurrency a stage achieved.
#[derive(Debug, Default)]
pub struct Gauge(Mutex<GaugeState>);

#[derive(Debug, Default)]
struct GaugeState {
    in_flight: u64,
    since: Option<Instant>,
    /// Integral of calls in flight over time, in call-seconds.
    area: f64,
    /// Seconds with at least one call in flight.
    busy: f64,
    calls: u64,
}

impl Gauge {
    fn change(&self, up: bool) {
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if let Some(since) = g.since {
            let dt = now.duration_since(since).as_secs_f64();
            g.area += g.in_flight as f64 * dt;
            if g.in_flight > 0 {
                g.busy += dt;
            }
        }
        g.since = Some(now);
        if up {
            g.in_flight += 1;
            g.calls += 1;
        } else {
            g.in_flight = g.in_flight.saturating_sub(1);
        }
    }

    /// Counts one call in flight until the guard drops.
    pub fn enter(&self) -> GaugeGuard<'_> {
        self.change(true);
        GaugeGuard(self)
    }

    /// (mean calls in flight, fraction of time with any in flight) over `span`.
    pub fn utilization(&self, span: Duration) -> (f64, f64) {
        let g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let s = span.as_secs_f64().max(f64::MIN_POSITIVE);
        (g.area / s, g.busy / s)
    }

    pub fn calls(&self) -> u64 {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).calls
    }
}

/// Ends one call of a [`Gauge`].
#[derive(Debug)]
pub struct GaugeGuard<'a>(&'a Gauge);

impl Drop for GaugeGuard<'_> {
    fn drop(&mut self) {
        self.0.change(false);
    }
}

/// A table of `pages` generated pages, and a BatchWriteItem sink.
#[derive(Debug)]
pub struct GenTable {
    pages: Pages,
    n_pages: u64,
    pub scan_latency: Duration,
    pub write_latency: Duration,
    pub scans: Gauge,
    pub writes: Gauge,
    pub written_items: AtomicU64,
}

impl GenTable {
    pub fn new(
        pages: Pages,
        n_pages: u64,
        scan_latency: Duration,
        write_latency: Duration,
    ) -> Self {
        GenTable {
            pages,
            n_pages,
            scan_latency,
            write_latency,
            scans: Gauge::default(),
            writes: Gauge::default(),
            written_items: AtomicU64::new(0),
        }
    }
}

impl Table for GenTable {
    /// The page is cloned first, then the call sleeps out the rest of `scan_latency`: a page
    /// takes `max(scan_latency, clone time)`, and the clone runs on the scanning task as a real
    /// response's deserialization would.
    async fn scan(
        &self,
        _segment: u32,
        _total: u32,
        start_key: Option<SdkItem>,
    ) -> Result<ScanPage, StoreError> {
        let _call = self.scans.enter();
        let start = tokio::time::Instant::now();
        let index = match &start_key {
            None => 0,
            Some(key) => page_index(key).ok_or_else(|| {
                StoreError::new(
                    ErrorKind::Permanent,
                    "Scan",
                    "ValidationException: bad start key",
                )
            })?,
        };
        if index >= self.n_pages.max(1) {
            return Err(StoreError::new(
                ErrorKind::Permanent,
                "Scan",
                format!("ValidationException: no page {index}"),
            ));
        }
        let items = if self.n_pages == 0 {
            Vec::new()
        } else {
            self.pages.get(index).items.clone()
        };
        tokio::time::sleep_until(start + self.scan_latency).await;
        Ok(ScanPage {
            items,
            last_key: (index + 1 < self.n_pages).then(|| page_key(index + 1)),
            consumed: 0.0,
            raw: None,
        })
    }

    async fn batch_write(&self, items: Vec<SdkItem>) -> Result<WriteResult, StoreError> {
        if items.is_empty() || items.len() > 25 {
            return Err(StoreError::new(
                ErrorKind::Permanent,
                "BatchWriteItem",
                format!("ValidationException: {} items in one request", items.len()),
            ));
        }
        let _call = self.writes.enter();
        tokio::time::sleep(self.write_latency).await;
        self.written_items
            .fetch_add(items.len() as u64, Ordering::Relaxed);
        Ok(WriteResult::default())
    }
}

/// One pre-encoded batch body.
#[derive(Debug, Clone)]
pub struct Body {
    pub body: Bytes,
    pub items: usize,
    pub json_bytes: usize,
}

/// A bucket that drops what is put and serves a segment of `n_batches` batches cycling over
/// a few real bodies.
#[derive(Debug)]
pub struct GenObjects {
    prefix: String,
    segment: SegmentId,
    bodies: Vec<Body>,
    n_batches: u64,
    marker: Bytes,
    pub put_latency: Duration,
    pub get_latency: Duration,
    pub puts: Gauge,
    pub put_bytes: AtomicU64,
    pub gets: Gauge,
}

impl GenObjects {
    pub fn new(
        prefix: &str,
        segment: SegmentId,
        bodies: Vec<Body>,
        n_batches: u64,
        put_latency: Duration,
        get_latency: Duration,
    ) -> Self {
        let marker = Self::marker_for(&bodies, n_batches);
        GenObjects {
            prefix: prefix.to_owned(),
            segment,
            marker: Bytes::from(marker.to_json()),
            bodies,
            n_batches,
            put_latency,
            get_latency,
            puts: Gauge::default(),
            put_bytes: AtomicU64::new(0),
            gets: Gauge::default(),
        }
    }

    /// The marker of a segment of `n_batches` batches cycling over `bodies`.
    pub fn marker_for(bodies: &[Body], n_batches: u64) -> SegmentMarker {
        // Format 1: the restore bench measures the pipeline, not the checksum of each body.
        let mut marker = SegmentMarker::v1(n_batches, 0, 0);
        if bodies.is_empty() {
            return marker;
        }
        for n in 0..n_batches {
            let body = &bodies[(n % bodies.len() as u64) as usize];
            marker.items += body.items as u64;
            marker.bytes += body.json_bytes as u64;
        }
        marker
    }

    fn body(&self, key: &str) -> Option<Bytes> {
        if key == solace_codec::segment_marker_key(&self.prefix, self.segment) {
            // A backup's store (no bodies) has no marker until the backup writes one; the
            // backup reads the key before writing it, and a restore's marker would conflict.
            return (!self.bodies.is_empty()).then(|| self.marker.clone());
        }
        let (segment, BatchId(n)) = solace_codec::parse_batch_key(&self.prefix, key).ok()?;
        if segment != self.segment || n >= self.n_batches || self.bodies.is_empty() {
            return None;
        }
        Some(
            self.bodies[(n % self.bodies.len() as u64) as usize]
                .body
                .clone(),
        )
    }
}

impl Objects for GenObjects {
    async fn put(&self, _key: &str, body: Bytes) -> Result<(), StoreError> {
        let _call = self.puts.enter();
        tokio::time::sleep(self.put_latency).await;
        self.put_bytes
            .fetch_add(body.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Counts and drops, as `put`: every key is new.
    async fn put_new(
        &self,
        key: &str,
        body: Bytes,
        _meta: &ObjectMeta,
    ) -> Result<PutNew, StoreError> {
        self.put(key, body).await?;
        Ok(PutNew::Created)
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError> {
        Ok(self.body(key).map(|b| ObjectInfo {
            size: b.len() as u64,
            ..ObjectInfo::default()
        }))
    }

    async fn list(&self, _prefix: &str) -> Result<Vec<String>, StoreError> {
        Ok(Vec::new())
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        let _call = self.gets.enter();
        tokio::time::sleep(self.get_latency).await;
        Ok(self.body(key))
    }
}

/// What the backup's encode stage does to one page (`push_page` in the pipeline): each SDK
/// item written as JSON, validated, pushed.
pub fn push_page(encoder: &mut BatchEncoder, items: &[SdkItem], json: &mut Vec<u8>) {
    for item in items {
        json.clear();
        // As the backup does (`pipeline/src/backup.rs`): checked on its SDK values as written.
        encoder.push(sdk::write_checked_sdk_item(item, json).expect("sample items are valid"));
    }
}

/// The result of [`encode_pages`].
#[derive(Debug, Clone)]
pub struct Encoded {
    /// The batches closed, in order (each closes on a page boundary once full, as in backup).
    pub bodies: Vec<Body>,
    /// JSON bytes pushed.
    pub json_bytes: usize,
    /// Time spent in the codec (writing, validating, compressing), one core.
    pub elapsed: Duration,
    /// CPU time of this thread over the same span (`None` where it cannot be read).
    pub cpu: Option<Duration>,
}

impl Encoded {
    /// JSON bytes per second of wall time.
    pub fn rate(&self) -> f64 {
        self.json_bytes as f64 / self.elapsed.as_secs_f64()
    }

    /// JSON bytes per second of CPU time (the rate on an idle core).
    pub fn cpu_rate(&self) -> Option<f64> {
        self.cpu.map(|c| self.json_bytes as f64 / c.as_secs_f64())
    }

    pub fn mean_batch_json(&self) -> f64 {
        self.bodies.iter().map(|b| b.json_bytes).sum::<usize>() as f64
            / self.bodies.len().max(1) as f64
    }
}

/// Encodes `n_pages` pages (cycling over `pages`) as the backup's encode stage does, closing
/// a batch on the first page boundary at which the encoder is full; the last open batch is
/// dropped (not counted). Times only the codec work.
pub fn encode_pages(pages: &Pages, n_pages: u64, config: EncoderConfig) -> Encoded {
    let mut encoder = BatchEncoder::new(config);
    let mut json = Vec::with_capacity(4 << 10);
    let mut out = Encoded {
        bodies: Vec::new(),
        json_bytes: 0,
        elapsed: Duration::ZERO,
        cpu: None,
    };
    let cpu = thread_cpu();
    let start = Instant::now();
    for i in 0..n_pages {
        let page = pages.get(i);
        push_page(&mut encoder, &page.items, &mut json);
        out.json_bytes += page.json_bytes;
        if encoder.is_full() {
            let batch = encoder.finish();
            out.bodies.push(Body {
                body: Bytes::from(batch.body),
                items: batch.items,
                json_bytes: batch.json_bytes,
            });
        }
    }
    out.elapsed = start.elapsed();
    out.cpu = cpu.zip(thread_cpu()).map(|(a, b)| b.saturating_sub(a));
    out
}

/// Decodes each body `rounds` times as the restore's decode stage does (one decoder reused
/// from batch to batch, each item checked and built as an SDK map in one pass, its heap bytes
/// counted for the byte budget and its JSON copied into its chunk) on this thread; returns the
/// JSON bytes per second of wall time and of CPU time. Dropping the items is not timed (the
/// pipeline drops them after writing).
pub fn decode_bodies(bodies: &[Body], rounds: usize, max_inflated: usize) -> (f64, Option<f64>) {
    let mut bytes = 0usize;
    let mut elapsed = Duration::ZERO;
    let mut cpu = Some(Duration::ZERO);
    let mut decoder = BatchDecoder::new(max_inflated);
    let mut built = Vec::new();
    for _ in 0..rounds {
        for body in bodies {
            let cpu_start = thread_cpu();
            let start = Instant::now();
            let batch = decoder
                .decode_into::<AttributeValue, _>(&body.body, &mut built)
                .expect("our own batches decode");
            let mut json = Vec::with_capacity(batch.json_bytes());
            let items: Vec<(SdkItem, usize)> = batch
                .iter()
                .zip(built.drain(..))
                .map(|(raw, item)| {
                    let held = solace_pipeline::restore::sdk_item_bytes(&item);
                    json.extend_from_slice(raw.as_bytes());
                    (item, raw.as_bytes().len() + held)
                })
                .collect();
            bytes += batch.json_bytes();
            elapsed += start.elapsed();
            let spent = cpu_start
                .zip(thread_cpu())
                .map(|(a, b)| b.saturating_sub(a));
            cpu = cpu.zip(spent).map(|(a, b)| a + b);
            std::hint::black_box((&items, &json));
            drop(items);
        }
    }
    let rate = |d: Duration| bytes as f64 / d.as_secs_f64();
    (rate(elapsed), cpu.map(rate))
}

/// CPU time of the calling thread, from `/proc/thread-self/schedstat` (Linux).
pub fn thread_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = stat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// User plus system CPU time of this process, all threads, from `/proc/self/stat` (Linux,
/// 100 ticks per second).
pub fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesized command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

/// The 1-minute load average (`/proc/loadavg`), a noise indicator on a shared machine.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// This process's peak and current resident set (VmHWM, VmRSS) in bytes, from
/// `/proc/self/status` (Linux); `None` elsewhere.
pub fn resident() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kb: u64 = line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kb * 1024)
    };
    Some((field("VmHWM:")?, field("VmRSS:")?))
}
