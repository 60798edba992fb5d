//! Restore of one segment: download → decode → BatchWriteItem.
//!
//! Batches are read in order from the checkpoint: at most `prefetch` are being downloaded or
//! decoded ahead (each batch by its own task, decoding on the blocking pool), one decoded
//! batch waits for the writer, and the writer keeps `write_concurrency` BatchWriteItem calls
//! (at most 25 items and 16 MB each) in flight across batch boundaries. A batch is done when
//! every item is written, and the checkpoint moves over done batches in order; unprocessed
//! items are retried with backoff until they are written. At the deadline the run stops at
//! its checkpoint, dropping writes in flight (the next run writes those items again).
//!
//! With a format-2 segment marker each batch is checked against its entry (SHA-256 of the
//! stored body, item count) before any of its items goes to the writer
//! (docs/protocol.md#what-a-restore-checks).
//!
//! A prefix with no segment marker but a DynamoDB export's `manifest-summary.json` is an
//! export: the segment reads its share of the data files instead of batches, each checked by
//! MD5 and item count against `manifest-files.json` (docs/export.md).

use std::collections::VecDeque;
use std::sync::Arc;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use solace_codec::layout::{BatchEntry, SegmentMarker};
use solace_codec::sdk::SdkItem;
use solace_codec::{BatchDecoder, BatchId, DecodeError};
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

/// Limits of a restore run.
#[derive(Debug, Clone, PartialEq)]
pub struct RestoreConfig {
    /// Batches downloaded and decoded ahead of the writer.
    pub prefetch: usize,
    /// BatchWriteItem calls in flight.
    pub write_concurrency: usize,
    /// Write capacity units per second this segment may consume (`None`: no limit).
    pub write_capacity_per_second: Option<f64>,
    /// Refuse batches that inflate to more than this.
    pub max_inflated: usize,
    pub retry: RetryPolicy,
}

impl Default for RestoreConfig {
    fn default() -> Self {
        RestoreConfig {
            prefetch: 2,
            write_concurrency: 8,
            write_capacity_per_second: None,
            max_inflated: solace_codec::batch::DEFAULT_MAX_INFLATED,
            retry: RetryPolicy::default(),
        }
    }
}

struct Decoded {
    id: BatchId,
    items: Vec<(SdkItem, usize)>,
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
    // Each batch is fetched and decoded by its own task, `prefetch` batches ahead: they
    // progress while the writer works, not only when the writer asks for the next batch.
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
            let task = AbortOnDrop(tokio::spawn(fetch(
                objects,
                retrier,
                id,
                key,
                expected,
                max_inflated,
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
    let mut queued: VecDeque<(BatchId, Vec<SdkItem>)> = VecDeque::new();
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
                let chunks = chunks(batch.items);
                writing.push_back(Writing {
                    id: batch.id,
                    count: chunks.iter().map(Vec::len).sum(),
                    remaining: chunks.len(),
                    json_bytes: batch.json_bytes,
                    stored_bytes: batch.stored_bytes,
                });
                queued.extend(chunks.into_iter().map(|c| (batch.id, c)));
            }
        }
        while writes.len() < width {
            let Some((id, chunk)) = queued.pop_front() else {
                break;
            };
            let key = key_of(id);
            let (table, retrier, limiter) = (&*table, &retrier, &limiter);
            writes.push(async move {
                let result = write_chunk(table, &key, chunk, retrier, limiter).await;
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

/// Downloads and decodes one batch or data file, checked against `expected`; `Ok(Err(..))`
/// when there is no such object.
async fn fetch<O: Objects>(
    objects: Arc<O>,
    retrier: Retrier,
    id: BatchId,
    key: String,
    expected: Expected,
    max_inflated: usize,
) -> Result<Result<Decoded, (BatchId, String)>, PipelineError> {
    let body = retrier
        .run(|| objects.get(&key))
        .await
        .map_err(|source| PipelineError::Store {
            what: key.clone(),
            source,
        })?;
    let Some(body) = body else {
        return Ok(Err((id, key)));
    };
    let joined = tokio::task::spawn_blocking(move || match expected {
        Expected::Batch(entry) => checked(&key, &body, entry, max_inflated),
        Expected::Export(entry) => checked_export(&key, &body, entry, max_inflated),
    })
    .await
    .map_err(|e| PipelineError::Internal(format!("decoder task: {e}")))?;
    let (items, json_bytes, stored_bytes) = joined?;
    Ok(Ok(Decoded {
        id,
        items,
        json_bytes,
        stored_bytes,
    }))
}

/// Decodes a batch, first checking its body's SHA-256 and then its item count against the
/// marker's entry, so a batch that is not the one backed up never reaches the writer.
fn checked(
    key: &str,
    body: &[u8],
    expected: Option<BatchEntry>,
    max_inflated: usize,
) -> Result<DecodedItems, PipelineError> {
    if let Some(entry) = &expected {
        let found = sha256_hex(body);
        if found != entry.sha256 {
            return Err(PipelineError::ChecksumMismatch {
                key: key.to_owned(),
                expected: entry.sha256.clone(),
                found,
            });
        }
    }
    let decoded = decode(body, max_inflated).map_err(|source| PipelineError::Decode {
        key: key.to_owned(),
        source,
    })?;
    if let Some(entry) = &expected {
        let found = decoded.0.len() as u64;
        if found != entry.items {
            return Err(PipelineError::ItemCountMismatch {
                key: key.to_owned(),
                expected: entry.items,
                found,
            });
        }
    }
    Ok(decoded)
}

/// Decodes an export's data file, first checking its MD5 and then its item count against its
/// `manifest-files.json` line (docs/export.md).
fn checked_export(
    key: &str,
    body: &[u8],
    expected: Option<solace_codec::export::ExportFile>,
    max_inflated: usize,
) -> Result<DecodedItems, PipelineError> {
    let mismatch = |why: String| PipelineError::ExportMismatch {
        key: key.to_owned(),
        why,
    };
    if let Some(entry) = &expected {
        let found = solace_codec::export::md5_base64(body);
        if found != entry.md5_checksum {
            return Err(mismatch(format!(
                "its MD5 is {found}, manifest-files.json says {}",
                entry.md5_checksum
            )));
        }
    }
    let mut decoder = solace_codec::export::ExportDecoder::new(max_inflated);
    let file = decoder.decode(body).map_err(|e| PipelineError::BadExport {
        key: key.to_owned(),
        reason: e.to_string(),
    })?;
    if let Some(entry) = &expected
        && file.len() as u64 != entry.item_count
    {
        return Err(mismatch(format!(
            "it holds {} items, manifest-files.json says {}",
            file.len(),
            entry.item_count
        )));
    }
    let items = file
        .iter()
        .map(|raw| (raw.to_sdk(), raw.as_bytes().len()))
        .collect();
    Ok((items, file.json_bytes(), body.len()))
}

/// A batch whose chunks are being written.
struct Writing {
    id: BatchId,
    count: usize,
    remaining: usize,
    json_bytes: usize,
    stored_bytes: usize,
}

type DecodedItems = (Vec<(SdkItem, usize)>, usize, usize);

fn decode(body: &[u8], max_inflated: usize) -> Result<DecodedItems, DecodeError> {
    let mut decoder = BatchDecoder::new(max_inflated);
    let batch = decoder.decode(body)?;
    let items = batch
        .iter()
        .map(|raw| (raw.to_sdk(), raw.as_bytes().len()))
        .collect();
    Ok((items, batch.json_bytes(), body.len()))
}

/// Splits items into BatchWriteItem requests: at most 25 items and 16 MB each.
pub fn chunks(items: Vec<(SdkItem, usize)>) -> Vec<Vec<SdkItem>> {
    let mut out = Vec::new();
    let mut chunk = Vec::new();
    let mut bytes = 0;
    for (item, size) in items {
        if !chunk.is_empty()
            && (chunk.len() == MAX_ITEMS_PER_WRITE || bytes + size > MAX_BYTES_PER_WRITE)
        {
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
async fn write_chunk<T: Table>(
    table: &T,
    key: &str,
    mut pending: Vec<SdkItem>,
    retrier: &Retrier,
    limiter: &CapacityLimiter,
) -> Result<(), PipelineError> {
    let mut attempt = 1;
    loop {
        // At least one write unit per item; settled with what the table reports.
        let estimate = pending.len() as f64;
        limiter.reserve(estimate).await;
        let written = retrier.timed(table.batch_write(&pending)).await;
        let consumed = written.as_ref().map_or(0.0, |r| r.consumed);
        limiter.settle(estimate, consumed).await;
        let error = match written {
            Ok(result) => {
                if result.unprocessed.is_empty() {
                    return Ok(());
                }
                if result.unprocessed.len() < pending.len() {
                    attempt = 1;
                }
                let n = result.unprocessed.len();
                pending = result.unprocessed;
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
