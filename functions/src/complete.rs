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
    if request.action != Action::Backup {
        return Ok(());
    }
    let table = ctx.config.status_table(request.action);
    let Some(task) = ctx.services.status().read_task(table, task_id).await? else {
        return Ok(());
    };
    if !task.is_done() {
        return Ok(());
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
