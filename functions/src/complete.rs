//! The completion record (docs/protocol.md#completion-record): written under the backup's
//! `solace-meta/` once its last segment is counted, by whichever function counted it. A
//! backup is complete only when this record exists and says no segment failed.

use bytes::Bytes;
use solace_codec::layout::Completion;
use solace_pipeline::{ObjectMeta, Objects};
use tracing::info;

use crate::context::{Context, Services};
use crate::error::Error;
use crate::message::{Action, Request};
use crate::status::StatusStore;

/// Writes a backup's completion record if its task is done; a record already there is
/// left as it is. Called after every count, so a function that died between counting the
/// last segment and writing the record is made good by the redelivered message.
pub async fn record_if_done<S: Services>(
    ctx: &Context<S>,
    task_id: &str,
    request: &Request,
) -> Result<(), Error> {
    if !matches!(request.action, Action::Backup | Action::Convert) {
        return Ok(());
    }
    let table = ctx.config.status_table(request.action);
    let Some(task) = ctx.services.status().read_task(table, task_id).await? else {
        return Ok(());
    };
    if !task.is_done() {
        return Ok(());
    }
    if request.action == Action::Convert {
        return convert_manifests(ctx, task_id, request, &task).await;
    }
    let record = Completion {
        format: Completion::FORMAT,
        task_id: task_id.to_owned(),
        table_region: request.table_region.clone(),
        table_name: request.table_name.clone(),
        total_segments: task.total,
        completed_segments: task.completed,
        failed_segments: task.failed,
        items: task.items,
        bytes: task.bytes,
        failed: task.errors.into_iter().collect(),
        completed_at: crate::status::now_rfc3339(),
    };
    let key = solace_codec::completion_key(&request.bucket_prefix);
    let bucket = ctx
        .services
        .bucket(&request.bucket_region, &request.bucket_name);
    bucket
        .put_new(
            &key,
            Bytes::from(record.to_json()),
            &ObjectMeta {
                retention: request.retention(),
                ..ObjectMeta::default()
            },
        )
        .await
        .map_err(|source| Error::Bucket {
            bucket: request.bucket_name.clone(),
            source,
        })?;
    info!(
        completed = task.completed,
        failed = task.failed,
        "backup complete: record written"
    );
    Ok(())
}

/// A convert that every segment completed gets its export manifests
/// (docs/export.md#convert), written like the completion record: by whoever counted last,
/// and again by a redelivery if that one died first. A convert with a failed segment gets
/// none: its copy is not an export, and its status says why.
async fn convert_manifests<S: Services>(
    ctx: &Context<S>,
    task_id: &str,
    request: &Request,
    task: &crate::status::TaskStatus,
) -> Result<(), Error> {
    let Some((to_bucket, folder)) = request.convert_folder(task_id) else {
        return Ok(());
    };
    if !task.succeeded() {
        return Ok(());
    }
    let dest = ctx.services.bucket(&request.bucket_region, to_bucket);
    let retrier = solace_pipeline::Retrier::new(
        ctx.backup.retry,
        tokio::time::Instant::now() + std::time::Duration::from_secs(120),
    );
    let export_time = task.created_at.clone().unwrap_or_default();
    let files = solace_pipeline::convert::write_manifests(
        &dest,
        to_bucket,
        &folder,
        &export_time,
        &retrier,
    )
    .await
    .map_err(|e| Error::Internal(format!("writing the export manifests: {e}")))?;
    info!(files, "convert complete: export manifests written");
    Ok(())
}
