//! Restore of one segment: download → decode → BatchWriteItem.
//!
//! Batches are read in order from the checkpoint: at most `prefetch` are being downloaded
//! ahead (each by its own task), and they are decoded one at a time, in order, on the
//! blocking pool, by one decoder the segment run reuses from batch to batch. One decoded
//! batch waits for the writer, and the writer keeps `write_concurrency` BatchWriteItem calls
//! (at most 25 items and 16 MB each) in flight across batch boundaries. A batch is done when
//! every item is written, and the checkpoint moves over done batches in order; unprocessed
//! items are retried with backoff until they are written. At the deadline the run stops at
//! its checkpoint, dropping writes in flight (the next run writes those items again).
//!
//! Memory is bounded by bytes, not by batches: a [`ByteBudget`] of
//! [`RestoreConfig::max_bytes_in_flight`] is charged, in batch order, for each batch's
//! inflated JSON before it is decoded and for each of its SDK items as it is built, and
//! released as the items are written (docs/pipeline.md#memory-of-a-restore). Each download
//! is refused past a size cap ([`download_cap`]).
//!
//! With a format-2 segment marker each batch is checked against its entry (SHA-256 of the
//! stored body, item count) before any of its items goes to the writer
//! (docs/protocol.md#what-a-restore-checks).
//!
//! A prefix with no segment marker but a DynamoDB export's `manifest-summary.json` is an
//! export: the segment reads its share of the data files instead of batches, each checked by
//! MD5 and item count against `manifest-files.json` (docs/export.md).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_sdk_dynamodb::types::AttributeValue;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use solace_codec::export::ExportDecoder;
use solace_codec::layout::{BatchEntry, SegmentMarker};
use solace_codec::sdk::SdkItem;
use solace_codec::{BatchDecoder, BatchId, RawItem};
use tokio::sync::{Semaphore, oneshot};
use tokio::time::Instant;
use tracing::{debug, info};

use crate::fence::{Gate, Open};
use crate::progress::Progress;
use crate::retry::{CapacityLimiter, Retrier, RetryPolicy};
use crate::segment::{Outcome, PipelineError, RestoreCheckpoint, SegmentError, SegmentJob};
use crate::stage::{AbortOnDrop, stopped};
use crate::store::{ErrorKind, Objects, StoreError, Table, sha256_hex};

/// DynamoDB's BatchWriteItem limits.
pub const MAX_ITEMS_PER_WRITE: usize = 25;
pub const MAX_BYTES_PER_WRITE: usize = 16 << 20;

/// The restore function's memory in a default deployment, MiB (`restore_memory_mb` in
/// `infra/`; Lambda's "MB" are MiB).
pub const DEFAULT_FUNCTION_MEMORY_MB: u64 = 1024;

/// The default [`RestoreConfig::max_bytes_in_flight`]: a quarter of the default function's
/// memory, 256 MiB ([`bytes_in_flight_for_memory`]).
pub const DEFAULT_BYTES_IN_FLIGHT: usize = bytes_in_flight_for_memory(DEFAULT_FUNCTION_MEMORY_MB);

/// The byte budget for a restore function of `memory_mb` MiB: a quarter of it. The rest is
/// for what the budget does not count (docs/pipeline.md#memory-of-a-restore): the process
/// itself (~50 MiB), the `prefetch` compressed bodies downloaded ahead, the decoder's buffer
/// between batches, each BatchWriteItem call's copy of its items and its request body (up to
/// `write_concurrency` x 2 x 16 MB), and the allocator's slack.
pub const fn bytes_in_flight_for_memory(memory_mb: u64) -> usize {
    let bytes = (memory_mb << 20) / 4;
    if bytes > usize::MAX as u64 {
        usize::MAX
    } else {
        bytes as usize
    }
}

/// Limits of a restore run.
#[derive(Debug, Clone, PartialEq)]
pub struct RestoreConfig {
    /// Batches downloaded ahead of the writer.
    pub prefetch: usize,
    /// BatchWriteItem calls in flight.
    pub write_concurrency: usize,
    /// Write capacity units per second this segment may consume (`None`: no limit).
    pub write_capacity_per_second: Option<f64>,
    /// Refuse batches that inflate to more than this.
    pub max_inflated: usize,
    /// Bytes of inflated JSON and SDK items the run holds at most ([`ByteBudget`]); a batch
    /// that needs more than all of it runs alone, holding all of it.
    pub max_bytes_in_flight: usize,
    pub retry: RetryPolicy,
}

impl Default for RestoreConfig {
    fn default() -> Self {
        RestoreConfig {
            prefetch: 2,
            write_concurrency: 8,
            write_capacity_per_second: None,
            max_inflated: solace_codec::batch::DEFAULT_MAX_INFLATED,
            max_bytes_in_flight: DEFAULT_BYTES_IN_FLIGHT,
            retry: RetryPolicy::default(),
        }
    }
}

/// The bytes a restore run holds in flight, bounded: permits of a semaphore, one per byte.
///
/// A batch is charged, in batch order and before it is decoded, for its inflated JSON (the
/// marker entry's size; without one, a guess settled to the real size right after
/// inflating), then for each SDK item as it is built ([`sdk_item_bytes`]); the JSON's
/// charge is released once the batch's items are built, each item's once the
/// BatchWriteItem call that carries it is done. Batches decode one at a time in order, and
/// everything charged before the batch being decoded is written without further charges, so
/// a wait always ends: there is no deadlock. A batch never holds more than the whole bound:
/// one that needs more takes all of it (so it runs alone) and the rest of it is not charged.
#[derive(Debug)]
pub struct ByteBudget {
    bound: usize,
    permits: Semaphore,
    in_flight: AtomicUsize,
    high_water: AtomicUsize,
}

impl ByteBudget {
    /// A budget of `bound` bytes (at least 1, at most `u32::MAX`).
    pub fn new(bound: usize) -> Self {
        let bound = bound.clamp(1, (u32::MAX as usize).min(Semaphore::MAX_PERMITS));
        ByteBudget {
            bound,
            permits: Semaphore::new(bound),
            in_flight: AtomicUsize::new(0),
            high_water: AtomicUsize::new(0),
        }
    }

    pub fn bound(&self) -> usize {
        self.bound
    }

    /// Bytes charged now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// The most bytes charged at once so far.
    pub fn high_water(&self) -> usize {
        self.high_water.load(Ordering::Acquire)
    }

    /// Waits for `bytes` (at most the bound) to be free, from the blocking pool.
    fn charge_blocking(self: &Arc<Self>, bytes: usize) -> Charge {
        let bytes = bytes.min(self.bound);
        if bytes == 0 {
            return self.granted(0);
        }
        // `bytes` fits in u32: the bound does.
        let n = bytes as u32;
        match self.permits.try_acquire_many(n) {
            Ok(permit) => permit.forget(),
            // The semaphore is never closed: `acquire_many` only waits.
            Err(_) => match futures::executor::block_on(self.permits.acquire_many(n)) {
                Ok(permit) => permit.forget(),
                Err(_) => return self.granted(0),
            },
        }
        self.granted(bytes)
    }

    fn granted(self: &Arc<Self>, bytes: usize) -> Charge {
        let now = self.in_flight.fetch_add(bytes, Ordering::AcqRel) + bytes;
        self.high_water.fetch_max(now, Ordering::AcqRel);
        Charge {
            budget: self.clone(),
            bytes,
        }
    }

    fn release(&self, bytes: usize) {
        if bytes > 0 {
            // Counted out before the permits go back, so `in_flight` never passes the bound.
            self.in_flight.fetch_sub(bytes, Ordering::AcqRel);
            self.permits.add_permits(bytes);
        }
    }
}

/// Bytes held of a [`ByteBudget`], given back when dropped.
#[derive(Debug)]
struct Charge {
    budget: Arc<ByteBudget>,
    bytes: usize,
}

impl Charge {
    /// Gives back all but `keep` bytes.
    fn shrink_to(&mut self, keep: usize) {
        if keep < self.bytes {
            self.budget.release(self.bytes - keep);
            self.bytes = keep;
        }
    }

    fn merge(&mut self, mut other: Charge) {
        self.bytes += std::mem::take(&mut other.bytes);
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.release(self.bytes);
    }
}

/// A batch's charges while it is decoded: `held` of the budget in all, never more than its
/// bound.
struct Charger<'a> {
    budget: &'a Arc<ByteBudget>,
    held: usize,
}

impl Charger<'_> {
    /// Charges `bytes`, or what is left of the bound for this batch.
    fn charge(&mut self, bytes: usize) -> Charge {
        let bytes = bytes.min(self.budget.bound - self.held);
        let charge = self.budget.charge_blocking(bytes);
        self.held += charge.bytes;
        charge
    }

    /// Sets `charge` to `bytes`: more is charged, less given back.
    fn settle(&mut self, charge: &mut Charge, bytes: usize) {
        if bytes > charge.bytes {
            let more = self.charge(bytes - charge.bytes);
            charge.merge(more);
        } else {
            self.held -= charge.bytes - bytes;
            charge.shrink_to(bytes);
        }
    }
}

/// Heap bytes an SDK item holds, as they are asked of the allocator: every string, blob and
/// vector, and each map's table (hashbrown's buckets, entries and control bytes), each
/// allocation rounded as glibc's malloc rounds it (8 bytes of header, 16-byte steps, 32
/// bytes at least). Not the item's own inline bytes (its map's header).
pub fn sdk_item_bytes(item: &SdkItem) -> usize {
    map_bytes(item)
}

fn alloc(bytes: usize) -> usize {
    if bytes == 0 {
        0
    } else {
        (bytes + 8).next_multiple_of(16).max(32)
    }
}

fn map_bytes(map: &HashMap<String, AttributeValue>) -> usize {
    let capacity = map.capacity();
    let table = if capacity == 0 {
        0
    } else {
        // hashbrown keeps 7/8 of its buckets usable (all but one below 8 buckets), and one
        // control byte per bucket plus a group's width.
        let buckets = (capacity * 8 / 7).next_power_of_two().max(4);
        alloc(buckets * (size_of::<(String, AttributeValue)>() + 1) + 16)
    };
    table
        + map
            .iter()
            .map(|(k, v)| alloc(k.capacity()) + value_bytes(v))
            .sum::<usize>()
}

fn value_bytes(value: &AttributeValue) -> usize {
    let strings = |v: &Vec<String>| {
        alloc(v.capacity() * size_of::<String>())
            + v.iter().map(|s| alloc(s.capacity())).sum::<usize>()
    };
    match value {
        AttributeValue::S(s) | AttributeValue::N(s) => alloc(s.capacity()),
        AttributeValue::B(b) => alloc(b.as_ref().len()),
        AttributeValue::Ss(v) | AttributeValue::Ns(v) => strings(v),
        AttributeValue::Bs(v) => {
            alloc(v.capacity() * size_of::<aws_smithy_types::Blob>())
                + v.iter().map(|b| alloc(b.as_ref().len())).sum::<usize>()
        }
        AttributeValue::L(v) => {
            alloc(v.capacity() * size_of::<AttributeValue>())
                + v.iter().map(value_bytes).sum::<usize>()
        }
        AttributeValue::M(m) => map_bytes(m),
        _ => 0,
    }
}

/// A chunk of a batch, ready to write: at most 25 items and 16 MB, their JSON, and their
/// charge (both).
struct Chunk {
    items: Vec<SdkItem>,
    json: ChunkJson,
    charge: Charge,
}

/// The JSON of a chunk's items still to write. A BatchWriteItem takes its items by value (no
/// copy of them is made to send), so when a call fails they are gone; the next attempt reads
/// them again from here. Items a call left unprocessed come back as values and take the
/// place of the chunk's JSON (written again: a throttled call's rare path).
#[derive(Default)]
struct ChunkJson {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl ChunkJson {
    fn push(&mut self, item: &[u8]) {
        self.bytes.extend_from_slice(item);
        self.ends.push(self.bytes.len());
    }

    fn of(items: &[SdkItem]) -> Result<Self, PipelineError> {
        let mut json = ChunkJson::default();
        for item in items {
            solace_codec::sdk::write_sdk_item(item, &mut json.bytes)
                .map_err(|e| PipelineError::Internal(e.to_string()))?;
            json.ends.push(json.bytes.len());
        }
        Ok(json)
    }

    /// The items, read again (they were checked when their batch was decoded).
    fn items(&self) -> Result<Vec<SdkItem>, PipelineError> {
        let mut start = 0;
        self.ends
            .iter()
            .map(|&end| {
                let item = RawItem::parse(&self.bytes[start..end])
                    .map_err(|e| PipelineError::Internal(format!("a chunk's item: {e}")))?
                    .to_sdk();
                start = end;
                Ok(item)
            })
            .collect()
    }
}

struct Decoded {
    id: BatchId,
    chunks: Vec<Chunk>,
    count: usize,
    json_bytes: usize,
    stored_bytes: usize,
}

/// Restores `job`'s segment from `from` until it is complete or `deadline` passes.
///
/// A missing segment folder, a missing or corrupt batch, a batch that does not match its
/// marker entry, or an item DynamoDB rejects ends the run with an error naming the object
/// and the reason; nothing is skipped, and nothing of a batch that does not match is written.
pub async fn restore_segment<T: Table, O: Objects>(
    table: Arc<T>,
    objects: Arc<O>,
    job: &SegmentJob,
    config: &RestoreConfig,
    from: RestoreCheckpoint,
    deadline: Instant,
    progress: Arc<Progress>,
) -> Result<Outcome<RestoreCheckpoint>, SegmentError<RestoreCheckpoint>> {
    restore_segment_gated(table, objects, &Open, job, config, from, deadline, progress).await
}

/// [`restore_segment`], asking `gate` before the first item of each batch is written: a
/// closed gate ends the run with `Outcome::Fenced` at the checkpoint it reached, and writes
/// in flight for the batch before are dropped (docs/protocol.md#gates).
#[allow(clippy::too_many_arguments)]
pub async fn restore_segment_gated<T: Table, O: Objects, G: Gate>(
    table: Arc<T>,
    objects: Arc<O>,
    gate: &G,
    job: &SegmentJob,
    config: &RestoreConfig,
    from: RestoreCheckpoint,
    deadline: Instant,
    progress: Arc<Progress>,
) -> Result<Outcome<RestoreCheckpoint>, SegmentError<RestoreCheckpoint>> {
    let budget = Arc::new(ByteBudget::new(config.max_bytes_in_flight));
    restore_segment_budgeted(
        table, objects, gate, job, config, from, deadline, progress, &budget,
    )
    .await
}

/// [`restore_segment_gated`] charging `budget` instead of a budget of its own of
/// [`RestoreConfig::max_bytes_in_flight`], so the caller can read its high-water mark (tests,
/// benchmarks). Never give one budget to two runs at once: each run's decoder would wait for
/// bytes the other's holds.
#[allow(clippy::too_many_arguments)]
pub async fn restore_segment_budgeted<T: Table, O: Objects, G: Gate>(
    table: Arc<T>,
    objects: Arc<O>,
    gate: &G,
    job: &SegmentJob,
    config: &RestoreConfig,
    from: RestoreCheckpoint,
    deadline: Instant,
    progress: Arc<Progress>,
    budget: &Arc<ByteBudget>,
) -> Result<Outcome<RestoreCheckpoint>, SegmentError<RestoreCheckpoint>> {
    let retrier = Retrier::new(config.retry, deadline).with_progress(progress.clone());
    let limiter = CapacityLimiter::new(config.write_capacity_per_second);
    let segment = job.segment;
    let fail = |checkpoint: RestoreCheckpoint, error| Err(SegmentError { checkpoint, error });

    let marker_key = solace_codec::segment_marker_key(&job.prefix, segment);
    let marker = match retrier.run(|| objects.get(&marker_key)).await {
        Ok(None) => None,
        Ok(Some(body)) => match SegmentMarker::from_json(&body) {
            Ok(m) => Some(m),
            Err(e) => {
                let error = PipelineError::BadMarker {
                    key: marker_key,
                    reason: e.to_string(),
                };
                return fail(from, error);
            }
        },
        Err(source) => {
            let error = PipelineError::Store {
                what: marker_key,
                source,
            };
            return stopped(&from, from.clone(), error);
        }
    };
    // No marker: a Solace v3 backup, or a DynamoDB export (docs/export.md), told apart by
    // the export's manifest-summary.json.
    let export = match marker {
        Some(_) => None,
        None => match export_share(&objects, &retrier, job).await {
            Ok(share) => share,
            Err(StartError::Permanent(error)) => return fail(from, error),
            Err(StartError::Stopped(error)) => return stopped(&from, from.clone(), error),
        },
    };
    let export = export.map(Arc::new);
    // With a marker, exactly its batches; an export, its share of data files; without either
    // (a Solace v3 backup), up to the first gap.
    let end = match (&marker, &export) {
        (Some(m), _) => m.batches,
        (None, Some(files)) => files.len() as u64,
        (None, None) => u64::MAX,
    };
    let key_of = {
        let (prefix, export) = (job.prefix.clone(), export.clone());
        move |id: BatchId| match &export {
            Some(files) => files
                .get(id.0 as usize)
                .map_or_else(String::new, |(key, _)| key.clone()),
            None => solace_codec::batch_key(&prefix, segment, id),
        }
    };

    let max_inflated = config.max_inflated;
    // Each batch is fetched by its own task, `prefetch` batches ahead: they progress while
    // the writer works, not only when the writer asks for the next batch. The decoders are
    // handed from each batch's task to the next once it has decoded, so batches decode one
    // at a time, in order, reusing the decoders' buffers, and charge the budget in order.
    let mut turn = {
        let (first, turn) = oneshot::channel();
        let _ = first.send(Decoders::new(max_inflated));
        turn
    };
    let decoded = futures::stream::iter(from.next_batch..end)
        .map(|n| {
            let id = BatchId(n);
            let key = key_of(id);
            let objects = objects.clone();
            let retrier = retrier.clone();
            let expected = match &export {
                Some(files) => Expected::Export(files.get(n as usize).and_then(|f| f.1.clone())),
                None => Expected::Batch(marker.as_ref().and_then(|m| m.entry(n)).cloned()),
            };
            let (next, following) = oneshot::channel();
            let turn = std::mem::replace(&mut turn, following);
            let task = AbortOnDrop(tokio::spawn(fetch(
                objects,
                retrier,
                Fetch {
                    id,
                    key,
                    expected,
                    max_inflated,
                },
                (turn, next),
                budget.clone(),
            )));
            async move {
                let mut task = task;
                (&mut task.0)
                    .await
                    .map_err(|e| PipelineError::Internal(format!("batch reader task: {e}")))?
            }
        })
        .buffered(config.prefetch.max(1));
    futures::pin_mut!(decoded);

    // Writes run across batch boundaries: the chunks of the next batch start as slots free
    // up at the tail of this one, so the writer never drains at a boundary. The checkpoint
    // moves only over batches whose every chunk is written, in order.
    let width = config.write_concurrency.max(1);
    let mut checkpoint = from.clone();
    let mut taken = 0usize;
    let mut exhausted = false;
    let mut ready: Option<Decoded> = None;
    let mut writing: VecDeque<Writing> = VecDeque::new();
    let mut queued: VecDeque<(BatchId, Chunk)> = VecDeque::new();
    let mut writes = FuturesUnordered::new();
    loop {
        // At the deadline a run that has moved its checkpoint stops at once: writes in flight
        // are dropped, and a partly written batch is written again by the next run (puts
        // are idempotent). Before that, at least one batch: every run moves the checkpoint.
        let late = Instant::now() >= deadline;
        if late && checkpoint != from {
            return Ok(Outcome::Paused(checkpoint));
        }
        let may_take = !(taken > 0 && late);
        if queued.is_empty() && may_take {
            if let Some(batch) = ready.take() {
                match retrier.run(|| gate.open(batch.id.0)).await {
                    Ok(true) => {}
                    Ok(false) => {
                        info!(segment = %segment, batch = %batch.id, "gate closed: the run stops");
                        return Ok(Outcome::Fenced(checkpoint));
                    }
                    Err(source) => {
                        let what = format!("the gate of segment {segment}");
                        return stopped(&from, checkpoint, PipelineError::Store { what, source });
                    }
                }
                taken += 1;
                writing.push_back(Writing {
                    id: batch.id,
                    count: batch.count,
                    remaining: batch.chunks.len(),
                    json_bytes: batch.json_bytes,
                    stored_bytes: batch.stored_bytes,
                });
                queued.extend(batch.chunks.into_iter().map(|c| (batch.id, c)));
            }
        }
        while writes.len() < width {
            let Some((id, chunk)) = queued.pop_front() else {
                break;
            };
            let key = key_of(id);
            let (table, retrier, limiter) = (&*table, &retrier, &limiter);
            writes.push(async move {
                let Chunk {
                    items,
                    json,
                    charge,
                } = chunk;
                let result = write_chunk(table, &key, (items, json), retrier, limiter).await;
                // The items are gone (written, or dropped with the error): so is their charge.
                drop(charge);
                (id, result)
            });
        }
        // Batches written in full (an empty one at once) advance the checkpoint, in order.
        while writing.front().is_some_and(|b| b.remaining == 0) {
            let Some(b) = writing.pop_front() else { break };
            progress.batch(b.count as u64, b.json_bytes as u64, b.stored_bytes as u64);
            debug!(segment = %segment, batch = %b.id, items = b.count, "batch restored");
            checkpoint = RestoreCheckpoint {
                next_batch: b.id.0 + 1,
                items: checkpoint.items + b.count as u64,
                bytes: checkpoint.bytes + b.json_bytes as u64,
            };
        }
        let want = ready.is_none() && !exhausted && may_take;
        if writes.is_empty() && queued.is_empty() && !want {
            if ready.is_none() && writing.is_empty() && exhausted {
                break;
            }
            if !may_take {
                return Ok(Outcome::Paused(checkpoint));
            }
        }
        tokio::select! {
            () = tokio::time::sleep_until(deadline), if !late && checkpoint != from => {}
            Some((id, result)) = writes.next(), if !writes.is_empty() => {
                if let Err(error) = result {
                    return stopped(&from, checkpoint, error);
                }
                if let Some(b) = writing.iter_mut().find(|b| b.id == id) {
                    b.remaining -= 1;
                }
            }
            next = decoded.next(), if want => match next {
                None => exhausted = true,
                Some(Err(error)) => return stopped(&from, checkpoint, error),
                Some(Ok(Ok(batch))) => ready = Some(batch),
                Some(Ok(Err((id, key)))) => {
                    if export.is_some() {
                        return fail(checkpoint, PipelineError::MissingDataFile { key });
                    }
                    if let Some(m) = &marker {
                        let error = PipelineError::MissingBatch {
                            key,
                            batches: m.batches,
                        };
                        return fail(checkpoint, error);
                    }
                    if id.0 == 0 {
                        let folder = solace_codec::segment_prefix(&job.prefix, segment);
                        return fail(checkpoint, PipelineError::MissingSegment { folder });
                    }
                    // A v3 backup ends at its first missing batch.
                    exhausted = true;
                }
            },
            // Not reached (with nothing to write, a batch is wanted); an error, not a hang.
            else => {
                let error = PipelineError::Internal("the restore loop had nothing to wait for".into());
                return fail(checkpoint, error);
            }
        }
    }
    info!(segment = %segment, batches = checkpoint.next_batch, items = checkpoint.items, "segment restored");
    Ok(Outcome::Completed(checkpoint))
}

/// What an object is checked against before its items are written.
enum Expected {
    /// A Solace batch: its segment marker's entry, when the marker has entries.
    Batch(Option<BatchEntry>),
    /// An export's data file: its `manifest-files.json` line, when the export has one.
    Export(Option<solace_codec::export::ExportFile>),
}

/// Why a segment could not start.
enum StartError {
    /// Retrying cannot help.
    Permanent(PipelineError),
    /// The store failed; a later run may get through.
    Stopped(PipelineError),
}

/// A DynamoDB export under the job's prefix, or a backup by export's record of one: this
/// segment's share of its data files (key, and the manifest's line when there is a
/// `manifest-files.json`; without one the files are those listed under `data/`, unchecked).
/// `None`: no export there.
async fn export_share<O: Objects>(
    objects: &O,
    retrier: &Retrier,
    job: &SegmentJob,
) -> Result<Option<Vec<(String, Option<solace_codec::export::ExportFile>)>>, StartError> {
    use solace_codec::export::{ExportSummary, parse_manifest_files, segment_files};
    let prefix = solace_codec::normalized_prefix(&job.prefix);
    let store =
        |what: String| move |source| StartError::Stopped(PipelineError::Store { what, source });
    let bad = |key: &str, reason: String| {
        StartError::Permanent(PipelineError::BadExport {
            key: key.to_owned(),
            reason,
        })
    };
    // A backup by export: the files its record names (docs/export.md#backup-by-export).
    let record_key = solace_codec::export_record_key(&job.prefix);
    if let Some(body) = retrier
        .run(|| objects.get(&record_key))
        .await
        .map_err(store(record_key.clone()))?
    {
        let record = solace_codec::export::ExportRecord::from_json(&body)
            .map_err(|e| bad(&record_key, e.to_string()))?;
        let files: Vec<_> = record.files.iter().map(|f| f.expected()).collect();
        return Ok(Some(
            segment_files(&files, job.segment.0, job.total_segments)
                .cloned()
                .collect(),
        ));
    }
    let summary_key = format!("{prefix}manifest-summary.json");
    let Some(summary) = retrier
        .run(|| objects.get(&summary_key))
        .await
        .map_err(store(summary_key.clone()))?
    else {
        return Ok(None);
    };
    ExportSummary::from_json(&summary).map_err(|e| bad(&summary_key, e.to_string()))?;
    let files_key = format!("{prefix}manifest-files.json");
    let files: Vec<(String, Option<solace_codec::export::ExportFile>)> = match retrier
        .run(|| objects.get(&files_key))
        .await
        .map_err(store(files_key.clone()))?
    {
        Some(body) => parse_manifest_files(&body)
            .map_err(|e| bad(&files_key, e.to_string()))?
            .into_iter()
            .map(|f| (f.data_file_s3_key.clone(), Some(f)))
            .collect(),
        None => {
            let data = format!("{prefix}data/");
            let mut keys = retrier
                .run(|| objects.list(&data))
                .await
                .map_err(store(data.clone()))?;
            keys.retain(|k| k.ends_with(".json.gz") || k.ends_with(".json"));
            keys.sort();
            keys.into_iter().map(|k| (k, None)).collect()
        }
    };
    Ok(Some(
        segment_files(&files, job.segment.0, job.total_segments)
            .cloned()
            .collect(),
    ))
}

/// One batch or data file to fetch.
struct Fetch {
    id: BatchId,
    key: String,
    expected: Expected,
    max_inflated: usize,
}

/// The decoders a segment run reuses from batch to batch, and what the last batch inflated
/// to per stored byte.
struct Decoders {
    batch: BatchDecoder,
    export: ExportDecoder,
    /// The last batch's items, read in the decode's one pass, moved into its chunks.
    items: Vec<SdkItem>,
    ratio: Option<f64>,
}

impl Decoders {
    fn new(max_inflated: usize) -> Self {
        Decoders {
            batch: BatchDecoder::new(max_inflated),
            export: ExportDecoder::new(max_inflated),
            items: Vec::new(),
            ratio: None,
        }
    }

    /// The inflated size charged for a body of `body` bytes whose inflated size nothing says,
    /// until it is inflated: the last batch's ratio and an eighth more, or 8 x the body (the
    /// decoder's own first guess) for the run's first; within the decoder's cap.
    fn guess_inflated(&self, body: usize, cap: usize) -> usize {
        let guess = match self.ratio {
            Some(ratio) => (body as f64 * ratio * 1.125) as usize,
            None => body.saturating_mul(8),
        };
        guess.min(cap)
    }
}

/// The most bytes a download of `expected` may have: twice its marker entry's size when
/// there is one (the checksum catches any smaller difference), and never more than the
/// largest zlib or gzip stream that inflates within `max_inflated` ([`compress_bound`]). The
/// second part of the answer says where the cap comes from, for the error.
pub fn download_cap(expected: Option<&BatchEntry>, max_inflated: usize) -> (u64, String) {
    let decoder = compress_bound(max_inflated as u64);
    match expected {
        Some(entry) if entry.stored_bytes.saturating_mul(2) < decoder => (
            entry
                .stored_bytes
                .saturating_mul(2)
                .max(64 << 10)
                .min(decoder),
            format!(
                "twice the {} bytes its segment marker entry says",
                entry.stored_bytes
            ),
        ),
        _ => (
            decoder,
            format!("the most that inflates within the decoder's cap of {max_inflated} bytes"),
        ),
    }
}

/// zlib's `compressBound`: the largest zlib stream deflate makes of `bytes` bytes (stored
/// blocks, the worst case), and room for a gzip header with a file name.
pub fn compress_bound(bytes: u64) -> u64 {
    bytes + (bytes >> 12) + (bytes >> 14) + (bytes >> 25) + 13 + 1024
}

/// Downloads one batch or data file, refused past its [`download_cap`], then waits for the
/// decoders (`turn`), decodes it checked against its expectation on the blocking pool,
/// charging `budget`, and hands the decoders on (`next`); `Ok(Err(..))` when there is no such
/// object.
async fn fetch<O: Objects>(
    objects: Arc<O>,
    retrier: Retrier,
    job: Fetch,
    (turn, next): (oneshot::Receiver<Decoders>, oneshot::Sender<Decoders>),
    budget: Arc<ByteBudget>,
) -> Result<Result<Decoded, (BatchId, String)>, PipelineError> {
    let Fetch {
        id,
        key,
        expected,
        max_inflated,
    } = job;
    let entry = match &expected {
        Expected::Batch(entry) => entry.as_ref(),
        Expected::Export(_) => None,
    };
    let (cap, why) = download_cap(entry, max_inflated);
    let Some(body) = download(&*objects, &retrier, &key, cap, why).await? else {
        // Hand the decoders on: the run may go on past a missing object (a v3 segment's end).
        if let Ok(decoders) = turn.await {
            let _ = next.send(decoders);
        }
        return Ok(Err((id, key)));
    };
    let mut decoders = turn.await.map_err(|_| {
        PipelineError::Internal("the batch before ended without handing on its decoder".into())
    })?;
    let (decoders, decoded) = tokio::task::spawn_blocking(move || {
        let decoded = decode_charged(&mut decoders, &key, &body, expected, max_inflated, &budget);
        (decoders, decoded)
    })
    .await
    .map_err(|e| PipelineError::Internal(format!("decoder task: {e}")))?;
    let _ = next.send(decoders);
    let (chunks, count, json_bytes, stored_bytes) = decoded?;
    Ok(Ok(Decoded {
        id,
        chunks,
        count,
        json_bytes,
        stored_bytes,
    }))
}

/// `key`'s body, refused with [`PipelineError::ObjectTooLarge`] when it has more than `cap`
/// bytes. The [`Objects`] trait hands over bodies whole, so the check comes after the read;
/// an adapter that reads with the cap would refuse before (docs/pipeline.md#downloads).
async fn download<O: Objects>(
    objects: &O,
    retrier: &Retrier,
    key: &str,
    cap: u64,
    why: String,
) -> Result<Option<Bytes>, PipelineError> {
    let body = retrier
        .run(|| objects.get(key))
        .await
        .map_err(|source| PipelineError::Store {
            what: key.to_owned(),
            source,
        })?;
    match body {
        Some(body) if body.len() as u64 > cap => Err(PipelineError::ObjectTooLarge {
            key: key.to_owned(),
            size: body.len() as u64,
            limit: cap,
            why,
        }),
        body => Ok(body),
    }
}

/// A decoder keeps its buffer from one batch to the next (held, but not charged, between
/// batches) only while the batches are at most this fraction of the budget (1/8: 32 MiB of
/// the default 256 MiB); after a larger one it is replaced, and its buffer freed.
const KEEP_BUFFER_BELOW: usize = 8;

/// A decoded batch's chunks, item count, JSON bytes and stored bytes.
type DecodedChunks = (Vec<Chunk>, usize, usize, usize);

/// Decodes a batch or data file after checking its body (SHA-256 or MD5) against its
/// expectation, then its item count, so an object that is not the one backed up never
/// reaches the writer; charges `budget` for its inflated JSON and its SDK items.
fn decode_charged(
    decoders: &mut Decoders,
    key: &str,
    body: &[u8],
    expected: Expected,
    max_inflated: usize,
    budget: &Arc<ByteBudget>,
) -> Result<DecodedChunks, PipelineError> {
    let mut charger = Charger { budget, held: 0 };
    match expected {
        Expected::Batch(entry) => {
            if let Some(entry) = &entry {
                let found = sha256_hex(body);
                if found != entry.sha256 {
                    return Err(PipelineError::ChecksumMismatch {
                        key: key.to_owned(),
                        expected: entry.sha256.clone(),
                        found,
                    });
                }
            }
            let inflated = entry.as_ref().map_or_else(
                || decoders.guess_inflated(body.len(), max_inflated),
                |e| usize::try_from(e.bytes).unwrap_or(usize::MAX),
            );
            let mut json = charger.charge(inflated);
            let batch = decoders
                .batch
                .decode_into::<AttributeValue, _>(body, &mut decoders.items)
                .map_err(|source| PipelineError::Decode {
                    key: key.to_owned(),
                    source,
                })?;
            charger.settle(&mut json, batch.json_bytes());
            decoders.ratio = Some(batch.json_bytes() as f64 / body.len().max(1) as f64);
            if let Some(entry) = &entry {
                let found = batch.len() as u64;
                if found != entry.items {
                    return Err(PipelineError::ItemCountMismatch {
                        key: key.to_owned(),
                        expected: entry.items,
                        found,
                    });
                }
            }
            let chunks = build_chunks(batch.iter().zip(decoders.items.drain(..)), &mut charger);
            let decoded = (chunks, batch.len(), batch.json_bytes(), body.len());
            if decoded.2 > budget.bound() / KEEP_BUFFER_BELOW {
                decoders.batch = BatchDecoder::new(max_inflated);
                decoders.items = Vec::new();
            }
            Ok(decoded)
        }
        Expected::Export(entry) => {
            let mismatch = |why: String| PipelineError::ExportMismatch {
                key: key.to_owned(),
                why,
            };
            if let Some(entry) = &entry {
                let found = solace_codec::export::md5_base64(body);
                if found != entry.md5_checksum {
                    return Err(mismatch(format!(
                        "its MD5 is {found}, manifest-files.json says {}",
                        entry.md5_checksum
                    )));
                }
            }
            let mut json = charger.charge(decoders.guess_inflated(body.len(), max_inflated));
            let file = decoders
                .export
                .decode_into::<AttributeValue, _>(body, &mut decoders.items)
                .map_err(|e| PipelineError::BadExport {
                    key: key.to_owned(),
                    reason: e.to_string(),
                })?;
            // The lines' item JSON: the buffer holds a few bytes more per line.
            charger.settle(&mut json, file.json_bytes());
            decoders.ratio = Some(file.json_bytes() as f64 / body.len().max(1) as f64);
            if let Some(entry) = &entry
                && file.len() as u64 != entry.item_count
            {
                return Err(mismatch(format!(
                    "it holds {} items, manifest-files.json says {}",
                    file.len(),
                    entry.item_count
                )));
            }
            let chunks = build_chunks(file.iter().zip(decoders.items.drain(..)), &mut charger);
            let decoded = (chunks, file.len(), file.json_bytes(), body.len());
            if decoded.2 > budget.bound() / KEEP_BUFFER_BELOW {
                decoders.export = ExportDecoder::new(max_inflated);
                decoders.items = Vec::new();
            }
            Ok(decoded)
        }
    }
}

/// Moves each item (its SDK value, read in the decode's one pass, and a copy of its JSON)
/// into chunks of at most 25 items and 16 MB of JSON ([`chunks`]), charging both as it goes;
/// each chunk holds its items' charge.
fn build_chunks<'a>(
    items: impl Iterator<Item = (RawItem<'a>, SdkItem)>,
    charger: &mut Charger<'_>,
) -> Vec<Chunk> {
    let mut out = Vec::new();
    let mut chunk: Option<Chunk> = None;
    for (raw, item) in items {
        let size = raw.as_bytes().len();
        let full = chunk
            .as_ref()
            .is_some_and(|c| ends_chunk(c.items.len(), c.json.bytes.len(), size));
        if full && let Some(c) = chunk.take() {
            out.push(c);
        }
        let charge = charger
            .charge(sdk_item_bytes(&item) + size_of::<SdkItem>() + size + size_of::<usize>());
        let c = chunk.get_or_insert_with(|| Chunk {
            items: Vec::with_capacity(MAX_ITEMS_PER_WRITE),
            json: ChunkJson::default(),
            charge: charger.charge(0),
        });
        c.items.push(item);
        c.json.push(raw.as_bytes());
        c.charge.merge(charge);
    }
    out.extend(chunk);
    out
}

/// Whether an item of `size` JSON bytes starts a new chunk after `len` items of `bytes`.
fn ends_chunk(len: usize, bytes: usize, size: usize) -> bool {
    len > 0 && (len == MAX_ITEMS_PER_WRITE || bytes + size > MAX_BYTES_PER_WRITE)
}

/// A batch whose chunks are being written.
struct Writing {
    id: BatchId,
    count: usize,
    remaining: usize,
    json_bytes: usize,
    stored_bytes: usize,
}

/// Splits items into BatchWriteItem requests: at most 25 items and 16 MB each.
pub fn chunks(items: Vec<(SdkItem, usize)>) -> Vec<Vec<SdkItem>> {
    let mut out = Vec::new();
    let mut chunk = Vec::new();
    let mut bytes = 0;
    for (item, size) in items {
        if ends_chunk(chunk.len(), bytes, size) {
            out.push(std::mem::take(&mut chunk));
            bytes = 0;
        }
        bytes += size;
        chunk.push(item);
    }
    if !chunk.is_empty() {
        out.push(chunk);
    }
    out
}

/// Writes one chunk, retrying unprocessed items with backoff until all are written. Progress
/// (fewer unprocessed items than sent) resets the attempt count: only a table that writes
/// nothing at all for `max_attempts` rounds ends the chunk.
///
/// The items go into each call by value; a failed call's items are read again from the
/// chunk's JSON ([`ChunkJson`]).
async fn write_chunk<T: Table>(
    table: &T,
    key: &str,
    (items, mut json): (Vec<SdkItem>, ChunkJson),
    retrier: &Retrier,
    limiter: &CapacityLimiter,
) -> Result<(), PipelineError> {
    let mut attempt = 1;
    let mut ready = Some(items);
    loop {
        let pending = match ready.take() {
            Some(items) => items,
            None => json.items()?,
        };
        let sent = pending.len();
        // At least one write unit per item; settled with what the table reports.
        let estimate = sent as f64;
        limiter.reserve(estimate).await;
        let written = retrier.timed(table.batch_write(pending)).await;
        let consumed = written.as_ref().map_or(0.0, |r| r.consumed);
        limiter.settle(estimate, consumed).await;
        let error = match written {
            Ok(result) => {
                if result.unprocessed.is_empty() {
                    return Ok(());
                }
                if result.unprocessed.len() < sent {
                    attempt = 1;
                }
                let n = result.unprocessed.len();
                json = ChunkJson::of(&result.unprocessed)?;
                ready = Some(result.unprocessed);
                StoreError::new(
                    ErrorKind::Throttled,
                    "BatchWriteItem",
                    format!("{n} unprocessed items"),
                )
            }
            Err(e) => e,
        };
        let permanent = !error.is_retryable();
        if let Err(source) = retrier.backoff(attempt, error).await {
            return Err(if permanent {
                PipelineError::Rejected {
                    key: key.to_owned(),
                    source,
                }
            } else {
                PipelineError::Store {
                    what: format!("BatchWriteItem of {key}"),
                    source,
                }
            });
        }
        attempt += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::types::AttributeValue;

    fn item(n: usize) -> SdkItem {
        [("pk".to_owned(), AttributeValue::S(n.to_string()))].into()
    }

    #[test]
    fn chunks_hold_at_most_25_items_and_16_mb() {
        let small: Vec<_> = (0..60).map(|n| (item(n), 100)).collect();
        let sizes: Vec<usize> = chunks(small).iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![25, 25, 10]);

        let big: Vec<_> = (0..10).map(|n| (item(n), 5 << 20)).collect();
        let sizes: Vec<usize> = chunks(big).iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![3, 3, 3, 1], "3 x 5 MB fit in 16 MB, 4 do not");

        let order: Vec<_> = chunks((0..30).map(|n| (item(n), 1)).collect())
            .concat()
            .into_iter()
            .map(|i| i["pk"].clone())
            .collect();
        let expected: Vec<_> = (0..30).map(|n| AttributeValue::S(n.to_string())).collect();
        assert_eq!(order, expected, "nothing lost, reordered or duplicated");
    }
}

/// The byte budget against the in-memory stores (feature `sim`).
#[cfg(all(test, feature = "sim"))]
mod budget_tests {
    use std::sync::atomic::AtomicBool;
    use std::time::Duration;

    use solace_codec::sample::{self, Shape};
    use solace_codec::sdk::to_sdk_item;
    use solace_codec::{Item, SegmentId};

    use super::*;
    use crate::sim::{MemObjects, MemTable};
    use crate::store::WriteResult;

    const PREFIX: &str = "t/";

    fn job() -> SegmentJob {
        SegmentJob {
            prefix: PREFIX.to_owned(),
            segment: SegmentId(0),
            total_segments: 1,
        }
    }

    /// A segment of `batches` batches of `per_batch` huge (near-400 KB) items each, with a
    /// format-2 marker (`entries`) or a format-1 one; its items as SDK maps, by key.
    fn huge_segment(
        objects: &MemObjects,
        batches: u64,
        per_batch: u64,
        entries: bool,
    ) -> Vec<SdkItem> {
        let mut all = Vec::new();
        let mut list = Vec::new();
        for b in 0..batches {
            let items: Vec<Item> = (0..per_batch)
                .map(|i| sample::item(Shape::Huge, b * per_batch + i))
                .collect();
            let body = solace_codec::encode_items(&items, 1);
            let mut json = Vec::new();
            solace_codec::batch::inflate_capped(&body, usize::MAX, &mut json)
                .expect("our own batch inflates");
            list.push(BatchEntry {
                batch: b,
                items: per_batch,
                bytes: json.len() as u64,
                stored_bytes: body.len() as u64,
                sha256: sha256_hex(&body),
            });
            let key = solace_codec::batch_key(PREFIX, SegmentId(0), BatchId(b));
            objects.put_now(&key, Bytes::from(body));
            all.extend(items.iter().map(to_sdk_item));
        }
        let marker = if entries {
            SegmentMarker::v2(list)
        } else {
            let items = list.iter().map(|e| e.items).sum();
            let bytes = list.iter().map(|e| e.bytes).sum();
            SegmentMarker::v1(batches, items, bytes)
        };
        let key = solace_codec::segment_marker_key(PREFIX, SegmentId(0));
        objects.put_now(&key, Bytes::from(marker.to_json()));
        all
    }

    fn by_key(mut items: Vec<SdkItem>) -> Vec<SdkItem> {
        items.sort_by_key(|i| format!("{:?}", i.get("pk")));
        items
    }

    /// A table that checks, at each BatchWriteItem, that the budget has the call's items
    /// charged (they are part of what is in flight), and counts the calls.
    struct Checked {
        table: MemTable,
        budget: Arc<ByteBudget>,
        uncovered: AtomicBool,
        calls: AtomicUsize,
    }

    impl Table for Checked {
        async fn scan(
            &self,
            segment: u32,
            total: u32,
            start_key: Option<SdkItem>,
        ) -> Result<crate::store::ScanPage, StoreError> {
            self.table.scan(segment, total, start_key).await
        }

        async fn batch_write(&self, items: Vec<SdkItem>) -> Result<WriteResult, StoreError> {
            let held: usize = items.iter().map(sdk_item_bytes).sum();
            if self.budget.in_flight() < held {
                self.uncovered.store(true, Ordering::Relaxed);
            }
            self.calls.fetch_add(1, Ordering::Relaxed);
            self.table.batch_write(items).await
        }
    }

    async fn restore_with(
        objects: Arc<MemObjects>,
        bound: usize,
    ) -> (
        Result<Outcome<RestoreCheckpoint>, SegmentError<RestoreCheckpoint>>,
        Arc<Checked>,
    ) {
        let budget = Arc::new(ByteBudget::new(bound));
        let table = Arc::new(Checked {
            // Writes slower than decodes: decoded batches pile up against the budget.
            table: MemTable::new("pk", Some("sk")).with_latency(Duration::ZERO, ms(20)),
            budget: budget.clone(),
            uncovered: AtomicBool::new(false),
            calls: AtomicUsize::new(0),
        });
        let config = RestoreConfig {
            prefetch: 4,
            max_bytes_in_flight: bound,
            ..RestoreConfig::default()
        };
        let outcome = restore_segment_budgeted(
            table.clone(),
            objects,
            &crate::fence::Open,
            &job(),
            &config,
            RestoreCheckpoint::default(),
            Instant::now() + Duration::from_secs(600),
            Arc::default(),
            &budget,
        )
        .await;
        (outcome, table)
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bytes_in_flight_never_pass_the_bound_restoring_huge_items_and_the_copy_is_exact() {
        // 12 batches of 6 huge items: ~3 MB of JSON and ~2.3 MB of SDK items a batch, 37 MB
        // of JSON in all, against 8 MiB. With a format-2 marker the inflated size is known
        // before decoding; with format 1 it is guessed and settled after inflating.
        for entries in [true, false] {
            let objects = Arc::new(MemObjects::new());
            let source = huge_segment(&objects, 12, 6, entries);
            let bound = 8 << 20;
            let (outcome, table) = restore_with(objects, bound).await;
            let checkpoint = match outcome {
                Ok(Outcome::Completed(c)) => c,
                other => panic!("the restore completes: {other:?}"),
            };
            assert_eq!(checkpoint.next_batch, 12);
            assert_eq!(checkpoint.items, 72);
            let budget = &table.budget;
            assert!(
                budget.high_water() <= bound,
                "in flight {} past the bound {bound}",
                budget.high_water()
            );
            assert!(
                budget.high_water() > bound / 2,
                "the budget was the limit (high water {})",
                budget.high_water()
            );
            assert_eq!(budget.in_flight(), 0, "every charge is given back");
            assert!(
                !table.uncovered.load(Ordering::Relaxed),
                "every write's items were charged while it ran"
            );
            assert_eq!(
                by_key(table.table.items()),
                by_key(source),
                "an exact copy (entries: {entries})"
            );
        }
    }

    /// A table whose calls, in turn: fail after taking the items (a reply lost), write one
    /// item and leave the rest unprocessed, fail again, and write all.
    struct Stutter {
        table: MemTable,
        calls: AtomicUsize,
    }

    impl Table for Stutter {
        async fn scan(
            &self,
            segment: u32,
            total: u32,
            start_key: Option<SdkItem>,
        ) -> Result<crate::store::ScanPage, StoreError> {
            self.table.scan(segment, total, start_key).await
        }

        async fn batch_write(&self, mut items: Vec<SdkItem>) -> Result<WriteResult, StoreError> {
            let lost = || StoreError::new(ErrorKind::Transient, "BatchWriteItem", "reply lost");
            match self.calls.fetch_add(1, Ordering::Relaxed) % 4 {
                0 | 2 => Err(lost()),
                1 => {
                    let rest = items.split_off(1.min(items.len()));
                    let mut result = self.table.batch_write(items).await?;
                    result.unprocessed.extend(rest);
                    Ok(result)
                }
                _ => self.table.batch_write(items).await,
            }
        }
    }

    /// Items go into each BatchWriteItem by value: after a failed call (its items gone with
    /// it) they are read again from the chunk's JSON, after an unprocessed reply from what
    /// came back, and the copy is exact either way.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn items_a_failed_write_took_are_read_again_and_the_copy_is_exact() {
        let objects = Arc::new(MemObjects::new());
        let source = huge_segment(&objects, 3, 5, true);
        let table = Arc::new(Stutter {
            table: MemTable::new("pk", Some("sk")),
            calls: AtomicUsize::new(0),
        });
        let mut config = RestoreConfig::default();
        config.retry.base = Duration::from_millis(1);
        let outcome = restore_segment(
            table.clone(),
            objects,
            &job(),
            &config,
            RestoreCheckpoint::default(),
            Instant::now() + Duration::from_secs(600),
            Arc::default(),
        )
        .await;
        assert!(
            matches!(outcome, Ok(Outcome::Completed(ref c)) if c.items == 15),
            "{outcome:?}"
        );
        assert!(
            table.calls.load(Ordering::Relaxed) >= 12,
            "every chunk met every fault"
        );
        assert_eq!(by_key(table.table.items()), by_key(source));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_larger_than_the_whole_budget_still_restores_alone() {
        for entries in [true, false] {
            let objects = Arc::new(MemObjects::new());
            // 3 batches of 10 huge items (~5 MB of JSON each) through 1 MiB.
            let source = huge_segment(&objects, 3, 10, entries);
            let bound = 1 << 20;
            let (outcome, table) = restore_with(objects, bound).await;
            assert!(
                matches!(outcome, Ok(Outcome::Completed(ref c)) if c.items == 30),
                "{outcome:?}"
            );
            assert_eq!(table.table.items().len(), 30);
            assert_eq!(by_key(table.table.items()), by_key(source));
            assert_eq!(table.budget.high_water(), bound, "it held all of it");
            assert_eq!(table.budget.in_flight(), 0);
        }
    }

    #[tokio::test]
    async fn a_download_past_its_cap_is_refused_naming_the_key_and_the_sizes() {
        // Past twice its marker entry's size.
        let objects = Arc::new(MemObjects::new());
        huge_segment(&objects, 2, 2, true);
        let key = solace_codec::batch_key(PREFIX, SegmentId(0), BatchId(1));
        let stored = objects.get_now(&key).expect("batch 1").len() as u64;
        let bigger: Vec<Item> = (0..6).map(|n| sample::item(Shape::Huge, 100 + n)).collect();
        let body = solace_codec::encode_items(&bigger, 1);
        let size = body.len() as u64;
        objects.put_now(&key, Bytes::from(body));
        let (outcome, table) = restore_with(objects, 64 << 20).await;
        let error = outcome.expect_err("refused").error;
        match &error {
            PipelineError::ObjectTooLarge {
                key: k,
                size: s,
                limit,
                ..
            } => {
                assert_eq!((k, *s, *limit), (&key, size, 2 * stored));
            }
            other => panic!("refused for its size: {other}"),
        }
        let text = error.to_string();
        assert!(
            text.contains(&key) && text.contains(&size.to_string()),
            "{text}"
        );
        assert!(!error.is_retryable());
        for item in &bigger {
            assert!(
                table.table.get(&to_sdk_item(item)).is_none(),
                "nothing of the refused body is written"
            );
        }

        // No entry: past what inflates within the decoder's cap.
        let objects = Arc::new(MemObjects::new());
        huge_segment(&objects, 1, 1, false);
        let key = solace_codec::batch_key(PREFIX, SegmentId(0), BatchId(0));
        let table = Arc::new(MemTable::new("pk", Some("sk")));
        let config = RestoreConfig {
            max_inflated: 64 << 10,
            ..RestoreConfig::default()
        };
        let error = restore_segment(
            table.clone(),
            objects,
            &job(),
            &config,
            RestoreCheckpoint::default(),
            Instant::now() + Duration::from_secs(60),
            Arc::default(),
        )
        .await
        .expect_err("refused")
        .error;
        assert!(
            matches!(&error, PipelineError::ObjectTooLarge { key: k, limit, .. }
                if *k == key && *limit == compress_bound(64 << 10)),
            "{error}"
        );
        assert!(table.is_empty());
    }

    #[test]
    fn sdk_item_bytes_count_every_string_blob_and_table() {
        let huge = to_sdk_item(&sample::item(Shape::Huge, 1));
        let bytes = sdk_item_bytes(&huge);
        assert!(bytes >= 380_000, "the 380 KB payload at least: {bytes}");
        assert!(bytes < 400_000, "and not much more: {bytes}");
        // Small attributes cost their table entries, not their JSON.
        let small: SdkItem = (0..100)
            .map(|n| (format!("a{n}"), AttributeValue::Null(true)))
            .collect();
        let per = sdk_item_bytes(&small) / 100;
        let entry = size_of::<(String, AttributeValue)>();
        assert!(per > entry, "{per} bytes an attribute, {entry} an entry");
    }
}
