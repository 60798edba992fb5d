//! Backup of one segment: parallel scan → batcher/encoder → upload → commit.
//!
//! Stages joined by bounded channels, so memory is set by configuration, not by the table: at
//! most `scan_prefetch` pages wait for the encoder, one batch is being built (compressed as
//! it grows), one waits for the uploader, and at most `upload_concurrency` batches are
//! between their upload and their commit. Compression and hashing run on the blocking pool,
//! never on the reactor's workers.
//!
//! Each batch is a step of the segment's chain (docs/protocol.md#fencing): proposed to the
//! [`Fence`], created with a conditional write that never replaces an object, then committed
//! in order. Whatever the number of runs of the segment alive at once, one chain of batches
//! wins, and the segment marker written after its last batch describes exactly that chain.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use futures::StreamExt;
use solace_codec::layout::{BatchEntry, SegmentMarker};
use solace_codec::sdk::{self, SdkItem};
use solace_codec::{BatchDecoder, BatchEncoder, BatchId, EncodedBatch, EncoderConfig};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::fence::Fence;
use crate::progress::Progress;
use crate::retry::{CapacityLimiter, Retrier, RetryError, RetryPolicy};
use crate::segment::{BackupCheckpoint, Outcome, PipelineError, SegmentError, SegmentJob};
use crate::stage::{AbortOnDrop, stopped};
use crate::store::{
    ErrorKind, ObjectMeta, Objects, PutNew, RawPage, Retention, ScanPage, StoreError, Table,
    sha256_hex,
};

/// Limits of a backup run.
#[derive(Debug, Clone, PartialEq)]
pub struct BackupConfig {
    pub encoder: EncoderConfig,
    /// Scan pages buffered between the scanner and the encoder.
    pub scan_prefetch: usize,
    /// Batches between the start of their upload and their commit. Uploads themselves go one
    /// at a time (a batch is uploaded only once the previous one is known to be in its key,
    /// docs/protocol.md#fencing); with 2 or more, a batch uploads while the previous one
    /// commits.
    pub upload_concurrency: usize,
    /// Read capacity units per second this segment may consume (`None`: no limit).
    pub read_capacity_per_second: Option<f64>,
    pub retry: RetryPolicy,
    /// Object Lock retention of every batch and marker the segment writes.
    pub retention: Option<Retention>,
}

impl Default for BackupConfig {
    fn default() -> Self {
        BackupConfig {
            encoder: EncoderConfig::default(),
            scan_prefetch: 2,
            upload_concurrency: 2,
            read_capacity_per_second: None,
            retry: RetryPolicy::default(),
            retention: None,
        }
    }
}

enum PageMsg {
    Page(ScanPage),
    Failed(RetryError),
}

/// A closed batch, ready to upload.
struct Closed {
    id: BatchId,
    body: Bytes,
    /// SHA-256 of `body`, lower-case hex.
    sha256: String,
    items: usize,
    json_bytes: usize,
    /// The checkpoint after this batch (`done` when it is the segment's last).
    after: BackupCheckpoint,
}

impl Closed {
    fn entry(&self) -> BatchEntry {
        BatchEntry {
            batch: self.id.0,
            items: self.items as u64,
            bytes: self.json_bytes as u64,
            stored_bytes: self.body.len() as u64,
            sha256: self.sha256.clone(),
        }
    }
}

/// What the uploader hands the committer.
enum Uploaded {
    /// The batch's key holds the body with SHA-256 `winner`: this run's (`closed.sha256`) or,
    /// when another run's write came first, that one's. The permit bounds the batches
    /// between upload and commit.
    Stored {
        closed: Closed,
        winner: String,
        permit: OwnedSemaphorePermit,
    },
    /// The fence refused a proposal: the chain is past the batch.
    Lost,
}

/// How one pass of the stages from a checkpoint ended.
enum Pass {
    /// The deadline came; the run holds the chain at this checkpoint.
    Paused(BackupCheckpoint),
    /// The last batch is committed (`done`): the marker is next.
    Done(BackupCheckpoint),
    /// This run committed a batch the chain continues from differently than this pass would
    /// (another run's body, or its checkpoint): it holds the chain at this checkpoint and
    /// goes on from there.
    Moved(BackupCheckpoint),
    /// Another run holds the chain; this run's last committed checkpoint.
    Fenced(BackupCheckpoint),
}

/// Backs up `job`'s segment from `from` until it is complete or `deadline` passes, as one
/// run of the segment's chain guarded by `fence` (docs/protocol.md#fencing).
///
/// At the start the run asks the fence where the chain is, and continues from there when it
/// is past `from` (a redelivered message whose step was committed since). Returns
/// `Completed` once the last batch is committed and the segment marker is in S3 (also when
/// another run had written that marker), `Paused` with the checkpoint to continue from, or
/// `Fenced` when another run holds the chain: that run goes on, this one has stopped
/// writing, and its message is to be consumed without counting anything.
///
/// Batch boundaries depend on the data only (a batch closes on the first page boundary at or
/// past the target, or at the end of the segment, then even when empty), never on the
/// clock. The deadline is honoured only after this run has closed a batch, so every run
/// moves the checkpoint, however slow the table; a batch must fit in the deadline margin.
/// No object is ever overwritten: every batch and the marker are conditional creates.
#[allow(clippy::too_many_arguments)]
pub async fn backup_segment<T: Table, O: Objects, F: Fence>(
    table: Arc<T>,
    objects: Arc<O>,
    fence: F,
    job: &SegmentJob,
    config: &BackupConfig,
    from: BackupCheckpoint,
    deadline: Instant,
    progress: Arc<Progress>,
) -> Result<Outcome<BackupCheckpoint>, SegmentError<BackupCheckpoint>> {
    let retrier = Retrier::new(config.retry, deadline).with_progress(progress.clone());
    let fence = Arc::new(fence);
    let original = from;
    // A chain past this run's checkpoint was extended by another run since the message was
    // sent: continue where it is, never from behind it (docs/protocol.md#fencing).
    let mut from = match retrier.run(|| fence.position()).await {
        Ok(Some(position)) if position.next_batch > original.next_batch => {
            info!(segment = %job.segment, from = original.next_batch, to = position.next_batch, "continuing from the chain's checkpoint");
            position
        }
        Ok(_) => original.clone(),
        Err(source) => {
            let error = PipelineError::Store {
                what: "the fence's position".into(),
                source,
            };
            return stopped(&original, original.clone(), error);
        }
    };
    // The batches this run committed, for the marker (the others are read back from S3).
    let mut known = BTreeMap::new();
    loop {
        if from.done {
            return match write_marker(&*objects, job, &retrier, &from, &known, config.retention)
                .await
            {
                Ok(()) => Ok(Outcome::Completed(from)),
                Err(error) => stopped(&original, from, error),
            };
        }
        let pass = extend(
            table.clone(),
            objects.clone(),
            fence.clone(),
            job,
            config,
            &retrier,
            from,
            deadline,
            &progress,
            &mut known,
        )
        .await;
        match pass {
            Err((checkpoint, error)) => return stopped(&original, checkpoint, error),
            Ok(Pass::Paused(c)) => return Ok(Outcome::Paused(c)),
            Ok(Pass::Fenced(c)) => {
                info!(segment = %job.segment, batches = c.next_batch, "another run holds the chain: stopping");
                return Ok(Outcome::Fenced(c));
            }
            Ok(Pass::Done(c)) => from = c,
            Ok(Pass::Moved(c)) => {
                if Instant::now() >= deadline && !c.done {
                    return Ok(Outcome::Paused(c));
                }
                from = c;
            }
        }
    }
}

/// Runs the stages from `from` until the deadline, the last batch, or the end of this run's
/// hold on the chain.
#[allow(clippy::too_many_arguments)]
async fn extend<T: Table, O: Objects, F: Fence>(
    table: Arc<T>,
    objects: Arc<O>,
    fence: Arc<F>,
    job: &SegmentJob,
    config: &BackupConfig,
    retrier: &Retrier,
    from: BackupCheckpoint,
    deadline: Instant,
    progress: &Progress,
    known: &mut BTreeMap<u64, BatchEntry>,
) -> Result<Pass, (BackupCheckpoint, PipelineError)> {
    let limiter = CapacityLimiter::new(config.read_capacity_per_second);
    let (page_tx, page_rx) = mpsc::channel(config.scan_prefetch.max(1));
    let (batch_tx, batch_rx) = mpsc::channel(1);
    let window = config.upload_concurrency.max(1);
    let (stored_tx, mut stored_rx) = mpsc::channel(window);
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
    let uploader = tokio::spawn(upload(
        objects,
        fence.clone(),
        job.clone(),
        config.retention,
        retrier.clone(),
        Arc::new(Semaphore::new(window)),
        batch_rx,
        stored_tx,
    ));
    // Abort the stages however this function ends, so nothing runs on after it returns.
    let _guards = (
        AbortOnDrop(scanner),
        AbortOnDrop(encoder),
        AbortOnDrop(uploader),
    );

    let segment = job.segment;
    let mut checkpoint = from;
    // Commits, strictly in batch order: a batch counts only once it is committed.
    while let Some(uploaded) = stored_rx.recv().await {
        let (closed, winner, permit) = match uploaded {
            Err(error) => return Err((checkpoint, error)),
            Ok(Uploaded::Lost) => return Ok(Pass::Fenced(checkpoint)),
            Ok(Uploaded::Stored {
                closed,
                winner,
                permit,
            }) => (closed, winner, permit),
        };
        let key = solace_codec::batch_key(&job.prefix, segment, closed.id);
        let fenced = |source| PipelineError::Store {
            what: format!("the fence, committing {key}"),
            source,
        };
        match retrier.run(|| fence.commit(closed.id.0, &winner)).await {
            Ok(true) => {}
            Ok(false) => return Ok(Pass::Fenced(checkpoint)),
            Err(source) => return Err((checkpoint, fenced(source))),
        }
        // The chain now continues from the committed proposal: normally this run's own. A
        // fence that keeps no position (`Unfenced`) leaves this run's.
        let position = match retrier.run(|| fence.position()).await {
            Ok(p) => p,
            Err(source) => return Err((checkpoint, fenced(source))),
        };
        drop(permit);
        let ours = winner == closed.sha256;
        if ours {
            progress.batch(
                closed.items as u64,
                closed.json_bytes as u64,
                closed.body.len() as u64,
            );
            debug!(segment = %segment, batch = %closed.id, items = closed.items, bytes = closed.body.len(), "batch committed");
            known.insert(closed.id.0, closed.entry());
        }
        match position {
            // Another run's body, or another run's checkpoint after this body (it saw the
            // end of the segment where this run did not, or the other way round): this
            // run's next batch would not extend the chain.
            Some(p) if !ours || p != closed.after => {
                debug!(segment = %segment, batch = %closed.id, ours, "the chain continues from another run's proposal");
                return Ok(Pass::Moved(p));
            }
            None if !ours => {
                // Without a fence there is no proposal to continue from: the key holds
                // another body (an earlier backup onto this prefix, or a concurrent run
                // that should have had a fence).
                let error = PipelineError::Conflict { key, found: winner };
                return Err((checkpoint, error));
            }
            _ => {}
        }
        checkpoint = closed.after;
        if checkpoint.done {
            return Ok(Pass::Done(checkpoint));
        }
    }
    // The stages ended without the last batch: the deadline came.
    Ok(Pass::Paused(checkpoint))
}

/// Proposes and uploads closed batches one at a time, in order: a batch is uploaded only
/// once the previous one's key is known to hold this run's body, so every object this run
/// creates extends what is in the key before it (docs/protocol.md#fencing).
#[allow(clippy::too_many_arguments)]
async fn upload<O: Objects, F: Fence>(
    objects: Arc<O>,
    fence: Arc<F>,
    job: SegmentJob,
    retention: Option<Retention>,
    retrier: Retrier,
    window: Arc<Semaphore>,
    mut batches: mpsc::Receiver<Result<Closed, PipelineError>>,
    stored: mpsc::Sender<Result<Uploaded, PipelineError>>,
) {
    while let Some(closed) = batches.recv().await {
        let closed = match closed {
            Ok(closed) => closed,
            Err(error) => {
                let _ = stored.send(Err(error)).await;
                return;
            }
        };
        let Ok(permit) = window.clone().acquire_owned().await else {
            return;
        };
        let key = solace_codec::batch_key(&job.prefix, job.segment, closed.id);
        let proposed = retrier
            .run(|| fence.propose(closed.id.0, &closed.sha256, &closed.after))
            .await;
        match proposed {
            Ok(true) => {}
            Ok(false) => {
                let _ = stored.send(Ok(Uploaded::Lost)).await;
                return;
            }
            Err(source) => {
                let what = format!("the fence, proposing {key}");
                let _ = stored
                    .send(Err(PipelineError::Store { what, source }))
                    .await;
                return;
            }
        }
        let meta = ObjectMeta {
            sha256: Some(closed.sha256.clone()),
            items: Some(closed.items as u64),
            json_bytes: Some(closed.json_bytes as u64),
            retention,
        };
        let written = retrier
            .run(|| put_new_checksum(&*objects, &key, closed.body.clone(), &meta, &closed.sha256))
            .await;
        let winner = match written {
            Ok(winner) => winner,
            Err(source) => {
                let _ = stored
                    .send(Err(PipelineError::Store { what: key, source }))
                    .await;
                return;
            }
        };
        // Another body in the key: what this run would build next does not extend it.
        let last = winner != closed.sha256 || closed.after.done;
        let message = Uploaded::Stored {
            closed,
            winner,
            permit,
        };
        if stored.send(Ok(message)).await.is_err() || last {
            return;
        }
    }
}

/// A conditional create whose answer is the SHA-256 of the body the key holds: `own` when
/// it was created (or this is a retry of a create whose reply was lost), the other body's
/// otherwise.
async fn put_new_checksum<O: Objects>(
    objects: &O,
    key: &str,
    body: Bytes,
    meta: &ObjectMeta,
    own: &str,
) -> Result<String, StoreError> {
    match objects.put_new(key, body, meta).await? {
        PutNew::Created => Ok(own.to_owned()),
        PutNew::Exists {
            sha256: Some(sha256),
        } => Ok(sha256),
        // It went away between the refused write and the read: try again.
        PutNew::Exists { sha256: None } => Err(StoreError::new(
            ErrorKind::Transient,
            "PutObject",
            format!("{key} exists but its checksum could not be read"),
        )),
    }
}

/// Writes the segment marker of the committed chain `done` (docs/layout.md#segment-markers):
/// one entry per batch, from `known` or read back from S3. A marker already there for the
/// same chain (another run's, or this run's earlier attempt) is success; one for another is
/// a conflict.
async fn write_marker<O: Objects>(
    objects: &O,
    job: &SegmentJob,
    retrier: &Retrier,
    done: &BackupCheckpoint,
    known: &BTreeMap<u64, BatchEntry>,
    retention: Option<Retention>,
) -> Result<(), PipelineError> {
    let segment = job.segment;
    let key = solace_codec::segment_marker_key(&job.prefix, segment);
    let store = |source| PipelineError::Store {
        what: key.clone(),
        source,
    };
    // A late run of a finished chain: the marker is usually there already, and then reading
    // it back saves reading every batch's checksum.
    if let Some(body) = retrier.run(|| objects.get(&key)).await.map_err(store)? {
        return match SegmentMarker::from_json(&body) {
            Ok(m) if (m.batches, m.items, m.bytes) == (done.next_batch, done.items, done.bytes) => {
                Ok(())
            }
            _ => Err(PipelineError::Conflict {
                key,
                found: sha256_hex(&body),
            }),
        };
    }
    let entries: Vec<BatchEntry> = futures::stream::iter(0..done.next_batch)
        .map(|n| async move {
            match known.get(&n) {
                Some(entry) => Ok(entry.clone()),
                None => describe(objects, job, retrier, n, done.next_batch).await,
            }
        })
        .buffered(8)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let marker = SegmentMarker::v2(entries);
    if (marker.items, marker.bytes) != (done.items, done.bytes) {
        return Err(PipelineError::Internal(format!(
            "the batches of segment {segment} hold {} items and {} bytes, its chain says {} and {}",
            marker.items, marker.bytes, done.items, done.bytes
        )));
    }
    let body = Bytes::from(marker.to_json());
    let sha256 = sha256_hex(&body);
    let meta = ObjectMeta {
        sha256: Some(sha256.clone()),
        retention,
        ..ObjectMeta::default()
    };
    let found = retrier
        .run(|| put_new_checksum(objects, &key, body.clone(), &meta, &sha256))
        .await
        .map_err(store)?;
    if found != sha256 {
        warn!(segment = %segment, key = %key, "a different segment marker is already there");
        return Err(PipelineError::Conflict { key, found });
    }
    info!(segment = %segment, batches = marker.batches, items = marker.items, "segment backed up");
    Ok(())
}

/// The marker entry of batch `n`, from its object: its stored checksum and counts, or, for
/// an object that lacks them, its body hashed and decoded.
async fn describe<O: Objects>(
    objects: &O,
    job: &SegmentJob,
    retrier: &Retrier,
    n: u64,
    batches: u64,
) -> Result<BatchEntry, PipelineError> {
    let key = solace_codec::batch_key(&job.prefix, job.segment, BatchId(n));
    let store = |source| PipelineError::Store {
        what: key.clone(),
        source,
    };
    let missing = || PipelineError::MissingBatch {
        key: key.clone(),
        batches,
    };
    let info = retrier.run(|| objects.head(&key)).await.map_err(store)?;
    let info = info.ok_or_else(missing)?;
    if let (Some(sha256), Some(items), Some(bytes)) = (&info.sha256, info.items, info.json_bytes) {
        return Ok(BatchEntry {
            batch: n,
            items,
            bytes,
            stored_bytes: info.size,
            sha256: sha256.clone(),
        });
    }
    let body = retrier.run(|| objects.get(&key)).await.map_err(store)?;
    let body = body.ok_or_else(missing)?;
    let counted = tokio::task::spawn_blocking(move || {
        let mut decoder = BatchDecoder::new(solace_codec::batch::DEFAULT_MAX_INFLATED);
        let counts = decoder
            .decode(&body)
            .map(|batch| (batch.len() as u64, batch.json_bytes() as u64));
        (sha256_hex(&body), body.len() as u64, counts)
    })
    .await
    .map_err(|e| PipelineError::Internal(format!("decoder task: {e}")))?;
    let (sha256, stored_bytes, counts) = counted;
    let (items, bytes) = counts.map_err(|source| PipelineError::Decode {
        key: key.clone(),
        source,
    })?;
    Ok(BatchEntry {
        batch: n,
        items,
        bytes,
        stored_bytes,
        sha256,
    })
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
        let (items, raw) = (page.items, page.raw);
        let joined = tokio::task::spawn_blocking(move || {
            let result = push_page(&mut encoder, &items, raw.as_ref());
            // A batch closes on a page boundary: when full, and at the end of the segment
            // even when empty (an empty segment's 0x0, or the end after a full batch), so
            // the last step of the chain is always a batch that says the segment is done.
            let close = result.is_ok() && (encoder.is_full() || last);
            let batch = close.then(|| {
                let batch = encoder.finish();
                let sha256 = sha256_hex(&batch.body);
                (batch, sha256)
            });
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
        if let Some((
            EncodedBatch {
                body,
                items,
                json_bytes,
            },
            sha256,
        )) = batch
        {
            let id = BatchId(next.next_batch);
            next = BackupCheckpoint {
                next_batch: next.next_batch + 1,
                start_key: resume_key,
                items: next.items + items as u64,
                bytes: next.bytes + json_bytes as u64,
                done: last,
            };
            let closed = Closed {
                id,
                body: Bytes::from(body),
                sha256,
                items,
                json_bytes,
                after: next.clone(),
            };
            closed_one.store(true, Ordering::Release);
            if batches.send(Ok(closed)).await.is_err() || last {
                return;
            }
        }
    }
}

fn push_page(
    encoder: &mut BatchEncoder,
    items: &[SdkItem],
    raw: Option<&RawPage>,
) -> Result<(), PipelineError> {
    let mut json = Vec::with_capacity(4 << 10);
    // Items as the store sent them go in compacted, once checked to be items.
    for item in raw.into_iter().flat_map(RawPage::items) {
        json.clear();
        encoder.push(item.compact_into(&mut json));
    }
    for item in items {
        json.clear();
        // Checked on its SDK values as it is written: the JSON is not parsed again.
        let raw = sdk::write_checked_sdk_item(item, &mut json)
            .map_err(|e| PipelineError::Encode(e.to_string()))?;
        encoder.push(raw);
    }
    Ok(())
}
