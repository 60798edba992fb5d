//! Backup of one segment: parallel scan → batcher/encoder → upload.
//!
//! Three stages joined by bounded channels, so memory is set by configuration, not by the
//! table: at most `scan_prefetch` pages wait for the encoder, one batch is being built
//! (compressed as it grows), and at most `upload_concurrency` finished batches are uploading.
//! Compression runs on the blocking pool, never on the reactor's workers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use futures::StreamExt;
use solace_codec::layout::SegmentMarker;
use solace_codec::sdk::{self, SdkItem};
use solace_codec::{BatchEncoder, BatchId, EncodedBatch, EncoderConfig, RawItem};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tracing::{debug, info};

use crate::progress::Progress;
use crate::retry::{CapacityLimiter, Retrier, RetryError, RetryPolicy};
use crate::segment::{BackupCheckpoint, Outcome, PipelineError, SegmentError, SegmentJob};
use crate::stage::{AbortOnDrop, stopped};
use crate::store::{Objects, ScanPage, Table};

/// Limits of a backup run.
#[derive(Debug, Clone, PartialEq)]
pub struct BackupConfig {
    pub encoder: EncoderConfig,
    /// Scan pages buffered between the scanner and the encoder.
    pub scan_prefetch: usize,
    /// Batches uploading at once.
    pub upload_concurrency: usize,
    /// Read capacity units per second this segment may consume (`None`: no limit).
    pub read_capacity_per_second: Option<f64>,
    pub retry: RetryPolicy,
}

impl Default for BackupConfig {
    fn default() -> Self {
        BackupConfig {
            encoder: EncoderConfig::default(),
            scan_prefetch: 2,
            upload_concurrency: 2,
            read_capacity_per_second: None,
            retry: RetryPolicy::default(),
        }
    }
}

enum PageMsg {
    Page(ScanPage),
    Failed(RetryError),
}

struct Stored {
    id: BatchId,
    body: Bytes,
    items: usize,
    json_bytes: usize,
}

/// A batch ready to upload, or the end of the segment with nothing left to upload.
struct Closed {
    batch: Option<Stored>,
    after: BackupCheckpoint,
    last: bool,
}

/// Backs up `job`'s segment from `from` until it is complete or `deadline` passes.
///
/// Returns `Completed` once every batch and the segment marker are in S3, or `Paused` with
/// the checkpoint to continue from. Each durable batch advances the checkpoint.
///
/// Batch boundaries depend on the data only (a batch closes on the first page boundary at or
/// past the target), never on the clock: a resumed run writes exactly the objects an
/// uninterrupted run would, so two runs of one continuation (SQS delivers at least once)
/// write identical objects and cannot interleave into a wrong backup. The deadline is
/// honoured only after this run has closed a batch, so every run moves the checkpoint,
/// however slow the table; a batch must fit in the deadline margin.
pub async fn backup_segment<T: Table, O: Objects>(
    table: Arc<T>,
    objects: Arc<O>,
    job: &SegmentJob,
    config: &BackupConfig,
    from: BackupCheckpoint,
    deadline: Instant,
    progress: Arc<Progress>,
) -> Result<Outcome<BackupCheckpoint>, SegmentError<BackupCheckpoint>> {
    let retrier = Retrier::new(config.retry, deadline).with_progress(progress.clone());
    let limiter = CapacityLimiter::new(config.read_capacity_per_second);
    let (page_tx, page_rx) = mpsc::channel(config.scan_prefetch.max(1));
    let (batch_tx, batch_rx) = mpsc::channel(1);
    let closed_one = Arc::new(AtomicBool::new(false));

    let scanner = tokio::spawn(scan(
        table,
        job.segment.0,
        job.total_segments,
        from.start_key.as_ref().map(sdk::to_sdk_item),
        retrier.clone(),
        limiter,
        deadline,
        closed_one.clone(),
        page_tx,
    ));
    let encoder = tokio::spawn(encode(
        config.encoder,
        from.clone(),
        page_rx,
        batch_tx,
        closed_one,
    ));
    // Abort the stages however this function ends, so nothing runs on after it returns.
    let _guards = (AbortOnDrop(scanner), AbortOnDrop(encoder));

    let prefix = job.prefix.clone();
    let segment = job.segment;
    let uploads = ReceiverStream::new(batch_rx)
        .map(|closed: Result<Closed, PipelineError>| {
            let objects = objects.clone();
            let retrier = retrier.clone();
            let prefix = prefix.clone();
            async move {
                let closed = closed?;
                if let Some(batch) = &closed.batch {
                    let key = solace_codec::batch_key(&prefix, segment, batch.id);
                    let body = batch.body.clone();
                    retrier
                        .run(|| objects.put(&key, body.clone()))
                        .await
                        .map_err(|source| PipelineError::Store { what: key, source })?;
                }
                Ok::<_, PipelineError>(closed)
            }
        })
        .buffered(config.upload_concurrency.max(1));
    futures::pin_mut!(uploads);

    let mut checkpoint = from.clone();
    while let Some(result) = uploads.next().await {
        let closed = match result {
            Ok(closed) => closed,
            Err(error) => return stopped(&from, checkpoint, error),
        };
        if let Some(batch) = &closed.batch {
            progress.batch(
                batch.items as u64,
                batch.json_bytes as u64,
                batch.body.len() as u64,
            );
            debug!(segment = %segment, batch = %batch.id, items = batch.items, bytes = batch.body.len(), "batch stored");
        }
        checkpoint = closed.after;
        if closed.last {
            let marker = SegmentMarker {
                batches: checkpoint.next_batch,
                items: checkpoint.items,
                bytes: checkpoint.bytes,
            };
            let key = solace_codec::segment_marker_key(&job.prefix, segment);
            let body = Bytes::from(marker.to_json());
            if let Err(source) = retrier.run(|| objects.put(&key, body.clone())).await {
                return stopped(
                    &from,
                    checkpoint,
                    PipelineError::Store { what: key, source },
                );
            }
            info!(segment = %segment, batches = marker.batches, items = marker.items, "segment backed up");
            return Ok(Outcome::Completed(checkpoint));
        }
    }
    // The stages ended without the last batch: the deadline came.
    Ok(Outcome::Paused(checkpoint))
}

#[allow(clippy::too_many_arguments)]
async fn scan<T: Table>(
    table: Arc<T>,
    segment: u32,
    total: u32,
    mut start: Option<SdkItem>,
    retrier: Retrier,
    limiter: CapacityLimiter,
    deadline: Instant,
    closed_one: Arc<AtomicBool>,
    pages: mpsc::Sender<PageMsg>,
) {
    loop {
        // Past the deadline, scanning goes on until this run has closed a batch.
        if Instant::now() >= deadline && closed_one.load(Ordering::Acquire) {
            return;
        }
        let page = retrier
            .run(|| table.scan(segment, total, start.clone()))
            .await;
        match page {
            Ok(page) => {
                limiter.consumed(page.consumed).await;
                let next = page.last_key.clone();
                if pages.send(PageMsg::Page(page)).await.is_err() {
                    return;
                }
                match next {
                    Some(key) => start = Some(key),
                    None => return,
                }
            }
            Err(e) => {
                let _ = pages.send(PageMsg::Failed(e)).await;
                return;
            }
        }
    }
}

async fn encode(
    config: EncoderConfig,
    from: BackupCheckpoint,
    mut pages: mpsc::Receiver<PageMsg>,
    batches: mpsc::Sender<Result<Closed, PipelineError>>,
    closed_one: Arc<AtomicBool>,
) {
    let mut encoder = BatchEncoder::new(config);
    let mut next = from;
    while let Some(msg) = pages.recv().await {
        let page = match msg {
            PageMsg::Page(page) => page,
            PageMsg::Failed(source) => {
                let _ = batches
                    .send(Err(PipelineError::Store {
                        what: "Scan".into(),
                        source,
                    }))
                    .await;
                return;
            }
        };
        let last = page.last_key.is_none();
        let start_key = page.last_key;
        let first_batch = next.next_batch == 0;
        let items = page.items;
        let joined = tokio::task::spawn_blocking(move || {
            let result = push_page(&mut encoder, &items);
            // A batch closes on a page boundary: when full, and at the end of the segment
            // if it has items (or is the segment's only batch, so an empty segment still
            // has its 0x0).
            let close = result.is_ok()
                && (encoder.is_full() || (last && (encoder.items() > 0 || first_batch)));
            let batch = close.then(|| encoder.finish());
            (encoder, result, batch)
        })
        .await;
        let (enc, result, batch) = match joined {
            Ok(v) => v,
            Err(e) => {
                let _ = batches
                    .send(Err(PipelineError::Internal(format!("encoder task: {e}"))))
                    .await;
                return;
            }
        };
        encoder = enc;
        if let Err(e) = result {
            let _ = batches.send(Err(e)).await;
            return;
        }
        // The scan position must survive into the checkpoint: resuming without it would
        // rescan from the start under later batch numbers and duplicate items.
        let resume_key = match &start_key {
            None => None,
            Some(key) => match sdk::from_sdk_item(key) {
                Some(k) => Some(k),
                None => {
                    let error = PipelineError::Encode(format!(
                        "the scan position has an attribute type this codec does not know: {key:?}"
                    ));
                    let _ = batches.send(Err(error)).await;
                    return;
                }
            },
        };
        let closed = match batch {
            Some(EncodedBatch {
                body,
                items,
                json_bytes,
            }) => {
                let id = BatchId(next.next_batch);
                next = BackupCheckpoint {
                    next_batch: next.next_batch + 1,
                    start_key: resume_key,
                    items: next.items + items as u64,
                    bytes: next.bytes + json_bytes as u64,
                };
                Some(Closed {
                    batch: Some(Stored {
                        id,
                        body: Bytes::from(body),
                        items,
                        json_bytes,
                    }),
                    after: next.clone(),
                    last,
                })
            }
            None if last => Some(Closed {
                batch: None,
                after: next.clone(),
                last,
            }),
            None => None,
        };
        if let Some(closed) = closed {
            closed_one.store(true, Ordering::Release);
            if batches.send(Ok(closed)).await.is_err() || last {
                return;
            }
        }
    }
}

fn push_page(encoder: &mut BatchEncoder, items: &[SdkItem]) -> Result<(), PipelineError> {
    let mut json = Vec::with_capacity(4 << 10);
    for item in items {
        json.clear();
        sdk::write_sdk_item(item, &mut json).map_err(|e| PipelineError::Encode(e.to_string()))?;
        // Our own writer's output; parsing it here keeps the batch provably valid.
        let raw = RawItem::parse(&json).map_err(|e| PipelineError::Encode(e.to_string()))?;
        encoder.push(raw);
    }
    Ok(())
}
