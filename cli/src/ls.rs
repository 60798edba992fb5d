//! `solace ls s3://BUCKET[/PREFIX]`: the backups under a prefix (docs/cli.md#ls), found by
//! their objects' keys ([`solace_codec::layout::backup_object`]) in one listing, each
//! described by its manifest, completion record and segment markers.

use std::collections::BTreeMap;

use futures::{StreamExt, TryStreamExt};
use serde_json::{Value, json};
use solace_codec::layout::{BackupObject, Completion, Manifest, SegmentMarker};
use solace_functions::status::{DynamoStatus, StatusStore};

use crate::error::{CliError, CliResult, Exit};
use crate::ops::Ops;
use crate::report::{out, size, thousands};
use crate::url::S3Url;

/// What one listing says about one backup.
#[derive(Debug, Default)]
struct Found {
    manifest: bool,
    completion: bool,
    markers: Vec<String>,
    batches: u64,
    stored_bytes: u64,
    segments: std::collections::BTreeSet<u32>,
}

/// One row of `ls`.
#[derive(Debug)]
pub struct Backup {
    pub prefix: String,
    pub manifest: Option<Manifest>,
    pub completion: Option<Completion>,
    pub state: &'static str,
    pub total_segments: u64,
    pub complete_segments: u64,
    pub batches: u64,
    /// Items and their JSON bytes, from the completion record or the segment markers;
    /// `None` for a Solace v3 backup, which records neither.
    pub items: Option<u64>,
    pub bytes: Option<u64>,
    pub stored_bytes: u64,
}

impl Backup {
    fn ratio(&self) -> Option<f64> {
        let bytes = self.bytes?;
        (self.stored_bytes > 0).then(|| bytes as f64 / self.stored_bytes as f64)
    }

    fn to_json(&self) -> Value {
        let mut v = json!({
            "prefix": self.prefix,
            "state": self.state,
            "total-segments": self.total_segments,
            "complete-segments": self.complete_segments,
            "batches": self.batches,
            "stored-bytes": self.stored_bytes,
            "format": match &self.manifest {
                Some(m) if m.method.as_deref() == Some("export") => "solace-export",
                Some(_) => "solace",
                None => "solace-v3",
            },
        });
        let o = v.as_object_mut().expect("a JSON object literal");
        if let (Some(items), Some(bytes)) = (self.items, self.bytes) {
            o.insert("items".into(), items.into());
            o.insert("bytes".into(), bytes.into());
        }
        if let Some(r) = self.ratio() {
            o.insert(
                "compression-ratio".into(),
                ((r * 100.0).round() / 100.0).into(),
            );
        }
        if let Some(m) = &self.manifest {
            o.insert("task-id".into(), m.task_id.clone().into());
            o.insert("table-name".into(), m.table_name.clone().into());
            o.insert("table-region".into(), m.table_region.clone().into());
            o.insert("created-at".into(), m.created_at.clone().into());
        }
        if let Some(c) = &self.completion {
            o.insert("completed-at".into(), c.completed_at.clone().into());
            o.insert("failed-segments".into(), c.failed_segments.into());
        }
        v
    }
}

impl Ops {
    pub async fn ls(&self, url: &S3Url, region: Option<String>) -> CliResult<Exit> {
        let region = region.or_else(|| self.deploy.region()).ok_or_else(|| {
            CliError::refused("no region: pass --bucket-region or set AWS_REGION")
        })?;
        let s3 = solace_pipeline::aws::s3_client(&self.deploy.sdk, &region);
        let backups = list(
            &s3,
            &url.bucket,
            &url.prefix,
            &self.deploy.dynamodb,
            &self.deploy.backup_status_table,
        )
        .await?;
        if self.json {
            let rows: Vec<Value> = backups.iter().map(Backup::to_json).collect();
            out(&format!(
                "{}",
                json!({"bucket": url.bucket, "prefix": url.prefix, "backups": rows})
            ));
            return Ok(Exit::Success);
        }
        if backups.is_empty() {
            eprintln!("no backups under {url}");
            return Ok(Exit::Success);
        }
        let mut table = comfy_table::Table::new();
        table.load_preset(comfy_table::presets::NOTHING);
        table.set_header([
            "PREFIX", "TABLE", "CREATED", "STATE", "SEGMENTS", "BATCHES", "ITEMS", "STORED",
            "RATIO",
        ]);
        for b in &backups {
            table.add_row([
                b.prefix.clone(),
                b.manifest
                    .as_ref()
                    .map_or("?".to_owned(), |m| m.table_name.clone()),
                b.manifest
                    .as_ref()
                    .map_or(String::new(), |m| m.created_at.clone()),
                b.state.to_owned(),
                format!("{}/{}", b.complete_segments, b.total_segments),
                thousands(b.batches),
                b.items.map_or("?".to_owned(), thousands),
                size(b.stored_bytes),
                b.ratio().map_or(String::new(), |r| format!("{r:.1}x")),
            ]);
        }
        out(&table.to_string());
        Ok(Exit::Success)
    }
}

/// Every backup under `prefix`, by prefix.
pub async fn list(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    dynamodb: &aws_sdk_dynamodb::Client,
    backup_status_table: &str,
) -> CliResult<Vec<Backup>> {
    let mut found: BTreeMap<String, Found> = BTreeMap::new();
    let mut pages = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| match e.as_service_error() {
            Some(s) if s.is_no_such_bucket() => {
                CliError::not_found(format!("bucket {bucket} does not exist"))
            }
            _ => CliError::aws(format!("listing s3://{bucket}/{prefix}"), &e),
        })?;
        for o in page.contents() {
            let Some(key) = o.key() else { continue };
            let Some((root, what)) = solace_codec::layout::backup_object(key) else {
                continue;
            };
            let f = found.entry(root.to_owned()).or_default();
            match what {
                BackupObject::Batch(segment, _) => {
                    f.batches += 1;
                    f.stored_bytes += o.size().unwrap_or(0).max(0) as u64;
                    f.segments.insert(segment.0);
                }
                BackupObject::Manifest => f.manifest = true,
                BackupObject::Completion => f.completion = true,
                BackupObject::SegmentMarker(_) => f.markers.push(key.to_owned()),
                BackupObject::Schema | BackupObject::ExportRecord => {}
            }
        }
    }
    let get = |key: String| async move {
        let out = s3.get_object().bucket(bucket).key(&key).send().await;
        match out {
            Ok(o) => o
                .body
                .collect()
                .await
                .map(|b| b.into_bytes().to_vec())
                .map_err(|e| CliError::not_found(format!("reading s3://{bucket}/{key}: {e}"))),
            Err(e) => Err(CliError::aws(format!("reading s3://{bucket}/{key}"), &e)),
        }
    };
    let status = DynamoStatus::new(dynamodb.clone());
    let mut out = Vec::new();
    for (root, f) in found {
        // A folder of batches without a manifest is a Solace v3 backup only when it holds
        // segment folders and nothing says otherwise.
        let manifest = match f.manifest {
            true => Manifest::from_json(&get(solace_codec::manifest_key(&root)).await?).ok(),
            false => None,
        };
        let completion = match f.completion {
            true => Completion::from_json(&get(solace_codec::completion_key(&root)).await?).ok(),
            false => None,
        };
        // Without a completion record the counts come from the segment markers.
        let (items, bytes) = match (&completion, &manifest) {
            (Some(c), _) => (Some(c.items), Some(c.bytes)),
            (None, None) => (None, None),
            (None, Some(_)) => {
                let markers: Vec<SegmentMarker> = futures::stream::iter(f.markers.clone())
                    .map(&get)
                    .buffer_unordered(16)
                    .map_ok(|b| SegmentMarker::from_json(&b).ok())
                    .try_collect::<Vec<_>>()
                    .await?
                    .into_iter()
                    .flatten()
                    .collect();
                let (i, b) = markers
                    .iter()
                    .fold((0, 0), |(i, b), m| (i + m.items, b + m.bytes));
                (Some(i), Some(b))
            }
        };
        let state = match (&manifest, &completion) {
            (_, Some(c)) if c.failed_segments == 0 => "complete",
            (_, Some(_)) => "incomplete",
            (None, None) => "unverified",
            (Some(m), None) => {
                let running = status
                    .read_task(backup_status_table, &m.task_id)
                    .await
                    .ok()
                    .flatten()
                    .is_some_and(|t| !t.is_done());
                if running { "in progress" } else { "incomplete" }
            }
        };
        let total_segments = manifest
            .as_ref()
            .map_or(f.segments.len() as u64, |m| u64::from(m.total_segments));
        out.push(Backup {
            prefix: root,
            state,
            total_segments,
            complete_segments: if manifest.is_some() {
                // A backup by export's one segment writes no marker: its record counts.
                let by_export = manifest
                    .as_ref()
                    .is_some_and(|m| m.method.as_deref() == Some("export"));
                match &completion {
                    Some(c) if by_export => c.completed_segments,
                    _ => f.markers.len() as u64,
                }
            } else {
                f.segments.len() as u64
            },
            batches: f.batches,
            items,
            bytes,
            stored_bytes: f.stored_bytes,
            manifest,
            completion,
        });
    }
    Ok(out)
}
