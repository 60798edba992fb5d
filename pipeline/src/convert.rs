//! A convert of one segment (docs/export.md#convert): each batch of a complete Solace backup,
//! checked against its segment marker, is written again as a data file in the DynamoDB Export
//! layout (gzip of `{"Item":…}` lines), with its `manifest-files.json` line beside it, so
//! ImportTable and StartBulkPutItems can read the copy.
//!
//! Both objects of a batch are conditional creates of bytes that depend only on the batch, so
//! a run repeated from any checkpoint writes the same objects, or finds them there.

use bytes::Bytes;
use solace_codec::BatchDecoder;
use solace_codec::export::{ExportFile, data_file};
use tokio::time::Instant;

use crate::progress::Progress;
use crate::restore::RestoreConfig;
use crate::retry::Retrier;
use crate::segment::{Outcome, PipelineError, RestoreCheckpoint, SegmentError, SegmentJob};
use crate::store::{ObjectMeta, Objects, PutNew, sha256_hex};

/// Where a convert's data file for batch `batch` of `segment` goes under the export folder.
pub fn data_file_key(folder: &str, segment: solace_codec::SegmentId, batch: u64) -> String {
    format!(
        "{folder}data/{segment}-{}.json.gz",
        solace_codec::BatchId(batch)
    )
}

/// Where that data file's `manifest-files.json` line is kept until the manifests are written.
pub fn part_key(folder: &str, segment: solace_codec::SegmentId, batch: u64) -> String {
    format!(
        "{folder}{PARTS}{segment}/{}.json",
        solace_codec::BatchId(batch)
    )
}

/// The folder of the lines under an export folder.
pub const PARTS: &str = "solace-parts/";

/// Converts segment `job.segment` of the backup `source` holds into the export folder
/// `folder` of `dest`, from checkpoint `from` until done or `deadline`.
#[allow(clippy::too_many_arguments)]
pub async fn convert_segment<O: Objects, D: Objects>(
    source: &O,
    dest: &D,
    job: &SegmentJob,
    folder: &str,
    config: &RestoreConfig,
    from: RestoreCheckpoint,
    deadline: Instant,
    progress: &Progress,
) -> Result<Outcome<RestoreCheckpoint>, SegmentError<RestoreCheckpoint>> {
    let retrier = Retrier::new(config.retry, deadline);
    let fail = |at: &RestoreCheckpoint, error| SegmentError {
        checkpoint: at.clone(),
        error,
    };
    let store = |what: &str, source| PipelineError::Store {
        what: what.to_owned(),
        source,
    };
    let marker_key = solace_codec::segment_marker_key(&job.prefix, job.segment);
    let marker = match retrier.run(|| source.get(&marker_key)).await {
        Ok(Some(body)) => solace_codec::SegmentMarker::from_json(&body).map_err(|e| {
            fail(
                &from,
                PipelineError::BadMarker {
                    key: marker_key.clone(),
                    reason: e.to_string(),
                },
            )
        })?,
        Ok(None) => {
            return Err(fail(
                &from,
                PipelineError::BadMarker {
                    key: marker_key,
                    reason: "it is missing: a convert copies only a complete backup".into(),
                },
            ));
        }
        Err(e) => return Err(fail(&from, store(&marker_key, e))),
    };
    let mut at = from;
    let mut decoder = BatchDecoder::new(config.max_inflated);
    let meta = ObjectMeta::default();
    // A batch is read, re-encoded and written in well under this; a run stops before
    // starting one it might not finish.
    let margin = std::time::Duration::from_secs(5);
    while at.next_batch < marker.batches {
        if Instant::now() + margin >= deadline {
            return Ok(Outcome::Paused(at));
        }
        let n = at.next_batch;
        let key = solace_codec::batch_key(&job.prefix, job.segment, solace_codec::BatchId(n));
        let body = match retrier.run(|| source.get(&key)).await {
            Ok(Some(body)) => body,
            Ok(None) => {
                let error = PipelineError::MissingBatch {
                    key,
                    batches: marker.batches,
                };
                return Err(fail(&at, error));
            }
            Err(e) => return Err(fail(&at, store(&key, e))),
        };
        if let Some(entry) = marker.entry(n) {
            let found = sha256_hex(&body);
            if found != entry.sha256 {
                let error = PipelineError::ChecksumMismatch {
                    key,
                    expected: entry.sha256.clone(),
                    found,
                };
                return Err(fail(&at, error));
            }
        }
        let batch = match decoder.decode(&body) {
            Ok(b) => b,
            Err(source) => return Err(fail(&at, PipelineError::Decode { key, source })),
        };
        let items = batch.len() as u64;
        if let Some(entry) = marker.entry(n).filter(|e| e.items != items) {
            let error = PipelineError::ItemCountMismatch {
                key,
                expected: entry.items,
                found: items,
            };
            return Err(fail(&at, error));
        }
        let json_bytes = batch.json_bytes() as u64;
        let file = Bytes::from(data_file(batch.iter()));
        let file_key = data_file_key(folder, job.segment, n);
        let line = ExportFile::of(&file_key, &file, items).to_json_line();
        for (k, b) in [
            (file_key, file),
            (part_key(folder, job.segment, n), Bytes::from(line)),
        ] {
            match retrier.run(|| dest.put_new(&k, b.clone(), &meta)).await {
                Ok(PutNew::Created) => {}
                Ok(PutNew::Exists { sha256 }) if sha256.as_deref() == Some(&sha256_hex(&b)) => {}
                Ok(PutNew::Exists { sha256 }) => {
                    let error = PipelineError::Conflict {
                        key: k,
                        found: sha256.unwrap_or_else(|| "unknown".into()),
                    };
                    return Err(fail(&at, error));
                }
                Err(e) => return Err(fail(&at, store(&k, e))),
            }
        }
        progress.batch(items, json_bytes, body.len() as u64);
        at = RestoreCheckpoint {
            next_batch: n + 1,
            items: at.items + items,
            bytes: at.bytes + json_bytes,
        };
    }
    Ok(Outcome::Completed(at))
}

/// Writes a finished convert's `manifest-files.json` (the lines its segments kept, sorted by
/// data file) and then its `manifest-summary.json`, each a conditional create of bytes that
/// depend only on the lines: a writer that died between them, or wrote both already, is made
/// good by running this again. Returns the number of data files.
pub async fn write_manifests<D: Objects>(
    dest: &D,
    bucket: &str,
    folder: &str,
    export_time: &str,
    retrier: &Retrier,
) -> Result<u64, PipelineError> {
    use futures::{StreamExt as _, TryStreamExt as _};
    let store = |what: String| move |source| PipelineError::Store { what, source };
    let parts = format!("{folder}{PARTS}");
    let keys = retrier
        .run(|| dest.list(&parts))
        .await
        .map_err(store(parts.clone()))?;
    let mut files: Vec<ExportFile> = futures::stream::iter(keys)
        .map(|key| async move {
            let body = retrier
                .run(|| dest.get(&key))
                .await
                .map_err(store(key.clone()))?
                .ok_or_else(|| PipelineError::MissingDataFile { key: key.clone() })?;
            serde_json::from_slice::<ExportFile>(&body).map_err(|e| PipelineError::BadExport {
                key,
                reason: e.to_string(),
            })
        })
        .buffer_unordered(32)
        .try_collect()
        .await?;
    files.sort_by(|a, b| a.data_file_s3_key.cmp(&b.data_file_s3_key));
    let mut lines = String::new();
    for f in &files {
        lines.push_str(&f.to_json_line());
        lines.push('\n');
    }
    let items = files.iter().map(|f| f.item_count).sum();
    let files_key = format!("{folder}manifest-files.json");
    let summary_key = format!("{folder}manifest-summary.json");
    let summary =
        solace_codec::export::summary_json(export_time, items, bucket, folder, &files_key);
    let meta = ObjectMeta::default();
    for (key, body) in [
        (files_key, Bytes::from(lines)),
        (summary_key, Bytes::from(summary)),
    ] {
        match retrier
            .run(|| dest.put_new(&key, body.clone(), &meta))
            .await
            .map_err(store(key.clone()))?
        {
            PutNew::Created => {}
            PutNew::Exists { sha256 } if sha256.as_deref() == Some(&sha256_hex(&body)) => {}
            PutNew::Exists { sha256 } => {
                return Err(PipelineError::Conflict {
                    key,
                    found: sha256.unwrap_or_else(|| "unknown".into()),
                });
            }
        }
    }
    Ok(files.len() as u64)
}
