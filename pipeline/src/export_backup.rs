//! A backup by DynamoDB export (`"method": "export"`, docs/export.md#backup-by-export): one
//! segment asks DynamoDB for a point-in-time export into the backup's bucket, waits for it in
//! continuation steps, and records the export's data files under the backup's prefix
//! (`solace-meta/export.json`), where restores and verifies read them.
//!
//! Every step may run twice: the export is started with the task id as its ClientToken, so a
//! repeated start returns the same export; the record is a conditional create, so the first
//! one written stays; and a run that finds the record finishes at once.

use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use solace_codec::export::{
    ExportRecord, ExportSummary, RecordedFile, export_folders, export_s3_prefix,
    parse_manifest_files,
};
use tokio::time::Instant;

use crate::backup::BackupConfig;
use crate::retry::Retrier;
use crate::segment::{Outcome, PipelineError, SegmentError, SegmentJob};
use crate::store::{ExportState, ObjectMeta, Objects, PutNew, Table};

/// Where a backup by export continues: the export it started, once started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ExportCheckpoint {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export_arn: Option<String>,
    /// What DynamoDB says it exported, once the export has completed.
    #[serde(default)]
    pub items: u64,
    #[serde(default)]
    pub bytes: u64,
    /// The completed export had no `manifest-files.json`: its files were found by listing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unverified: bool,
}

/// How often a run asks DynamoDB whether the export has finished.
pub const EXPORT_POLL: Duration = Duration::from_secs(5);

/// Runs the backup by export of `job` (its only segment) into `bucket`, the bucket `objects`
/// writes: starts the export, or goes on waiting for the one `from` names, until `deadline`
/// (then [`Outcome::Paused`]); once it has completed, records its files and completes.
#[allow(clippy::too_many_arguments)]
pub async fn backup_by_export<T: Table, O: Objects>(
    table: &T,
    objects: &O,
    bucket: &str,
    task_id: &str,
    job: &SegmentJob,
    config: &BackupConfig,
    from: ExportCheckpoint,
    deadline: Instant,
    poll: Duration,
) -> Result<Outcome<ExportCheckpoint>, SegmentError<ExportCheckpoint>> {
    let retrier = Retrier::new(config.retry, deadline);
    let fail = |checkpoint: &ExportCheckpoint, error| SegmentError {
        checkpoint: checkpoint.clone(),
        error,
    };
    let store = |what: &str, source| PipelineError::Store {
        what: what.to_owned(),
        source,
    };
    let record_key = solace_codec::export_record_key(&job.prefix);
    // A run before this one recorded the export: the segment is done.
    match retrier.run(|| objects.get(&record_key)).await {
        Ok(Some(body)) => {
            return recorded(&record_key, &body)
                .map(Outcome::Completed)
                .map_err(|e| fail(&from, e));
        }
        Ok(None) => {}
        Err(e) => return Err(fail(&from, store(&record_key, e))),
    }
    let s3_prefix = export_s3_prefix(&job.prefix);
    let mut at = from.clone();
    let arn = match &from.export_arn {
        Some(arn) => arn.clone(),
        None => {
            let started = retrier
                .run(|| table.start_export(bucket, &s3_prefix, task_id))
                .await;
            match started {
                Ok(arn) => arn,
                Err(e) => return Err(fail(&from, store("ExportTableToPointInTime", e))),
            }
        }
    };
    at.export_arn = Some(arn.clone());
    let (items, bytes, summary_key) = loop {
        match retrier.run(|| table.describe_export(&arn)).await {
            Ok(ExportState::Completed {
                item_count,
                billed_size_bytes,
                manifest_summary_key,
            }) => break (item_count, billed_size_bytes, manifest_summary_key),
            Ok(ExportState::Failed(reason)) => {
                return Err(fail(&at, PipelineError::ExportFailed { arn, reason }));
            }
            Ok(ExportState::InProgress) if Instant::now() + poll >= deadline => {
                return Ok(Outcome::Paused(at));
            }
            Ok(ExportState::InProgress) => tokio::time::sleep(poll).await,
            Err(e) => return Err(fail(&at, store("DescribeExport", e))),
        }
    };
    let record = match find_files(objects, &retrier, &s3_prefix, summary_key.as_deref()).await {
        Ok((export_prefix, verified, files)) => ExportRecord {
            format: ExportRecord::FORMAT,
            task_id: task_id.to_owned(),
            export_arn: arn,
            export_prefix,
            item_count: items,
            billed_size_bytes: bytes,
            verified,
            files,
        },
        Err(error) => return Err(fail(&at, error)),
    };
    let meta = ObjectMeta {
        retention: config.retention,
        ..ObjectMeta::default()
    };
    let body = Bytes::from(record.to_json());
    match retrier
        .run(|| objects.put_new(&record_key, body.clone(), &meta))
        .await
    {
        Ok(PutNew::Created) => Ok(Outcome::Completed(ExportCheckpoint {
            items,
            bytes,
            unverified: !record.verified,
            ..at
        })),
        // Another run wrote it first: its record is the backup's.
        Ok(PutNew::Exists { .. }) => match retrier.run(|| objects.get(&record_key)).await {
            Ok(Some(body)) => recorded(&record_key, &body)
                .map(Outcome::Completed)
                .map_err(|e| fail(&at, e)),
            Ok(None) => Err(fail(
                &at,
                PipelineError::Internal(format!("{record_key} exists and cannot be read")),
            )),
            Err(e) => Err(fail(&at, store(&record_key, e))),
        },
        Err(e) => Err(fail(&at, store(&record_key, e))),
    }
}

/// The segment is done: what the record at `key` says it holds.
fn recorded(key: &str, body: &[u8]) -> Result<ExportCheckpoint, PipelineError> {
    let r = ExportRecord::from_json(body).map_err(|e| PipelineError::BadExport {
        key: key.to_owned(),
        reason: e.to_string(),
    })?;
    Ok(ExportCheckpoint {
        export_arn: Some(r.export_arn),
        items: r.item_count,
        bytes: r.billed_size_bytes,
        unverified: !r.verified,
    })
}

/// The completed export's folder, whether its files are checked, and its files: from its
/// `manifest-files.json` when it wrote one, else every object under its `data/`. The folder
/// is the one DynamoDB names, else the only `AWSDynamoDB/<id>/` under `s3_prefix`.
async fn find_files<O: Objects>(
    objects: &O,
    retrier: &Retrier,
    s3_prefix: &str,
    summary_key: Option<&str>,
) -> Result<(String, bool, Vec<RecordedFile>), PipelineError> {
    let store = |what: String| move |source| PipelineError::Store { what, source };
    let bad = |key: &str, reason: String| PipelineError::BadExport {
        key: key.to_owned(),
        reason,
    };
    let folder = match summary_key.and_then(|k| k.strip_suffix("manifest-summary.json")) {
        Some(folder) => folder.to_owned(),
        None => {
            let under = format!("{s3_prefix}/");
            let keys = retrier
                .run(|| objects.list(&under))
                .await
                .map_err(store(under.clone()))?;
            let mut folders = export_folders(keys.iter().map(String::as_str));
            match folders.len() {
                1 => folders.remove(0),
                0 => return Err(bad(&under, "the export wrote no files there".into())),
                n => {
                    return Err(bad(
                        &under,
                        format!(
                            "{n} export folders are there and DynamoDB named none: which is this export's cannot be told"
                        ),
                    ));
                }
            }
        }
    };
    let summary_key = format!("{folder}manifest-summary.json");
    let summary = retrier
        .run(|| objects.get(&summary_key))
        .await
        .map_err(store(summary_key.clone()))?;
    if let Some(summary) = summary {
        let summary =
            ExportSummary::from_json(&summary).map_err(|e| bad(&summary_key, e.to_string()))?;
        let files_key = summary
            .manifest_files_s3_key
            .unwrap_or_else(|| format!("{folder}manifest-files.json"));
        let body = retrier
            .run(|| objects.get(&files_key))
            .await
            .map_err(store(files_key.clone()))?
            .ok_or_else(|| bad(&files_key, "the summary names it and it is missing".into()))?;
        let files = parse_manifest_files(&body).map_err(|e| bad(&files_key, e.to_string()))?;
        if let Some(outside) = files
            .iter()
            .find(|f| !f.data_file_s3_key.starts_with(&folder))
        {
            return Err(bad(
                &files_key,
                format!(
                    "it lists {} outside the export's folder {folder}",
                    outside.data_file_s3_key
                ),
            ));
        }
        return Ok((folder, true, files.iter().map(RecordedFile::from).collect()));
    }
    // No manifests (the emulator writes one data file and nothing else).
    let data = format!("{folder}data/");
    let mut keys = retrier
        .run(|| objects.list(&data))
        .await
        .map_err(store(data.clone()))?;
    keys.sort();
    let files = keys
        .into_iter()
        .map(|key| RecordedFile {
            key,
            item_count: None,
            md5_checksum: None,
        })
        .collect();
    Ok((folder, false, files))
}
