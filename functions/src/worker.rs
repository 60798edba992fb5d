//! The backup and restore functions: run the pipeline for one segment until the deadline
//! less a margin, then continue in a new message carrying the checkpoint; the final message
//! of a segment marks it completed in the status table.
//!
//! A failure leaves the message to SQS: it is retried, dead-lettered after the queue's
//! maxReceiveCount, and the redrive function decides from there. Its reason is recorded on
//! the task's status item.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use solace_codec::SegmentId;
use solace_pipeline::{
    BackupCheckpoint, Outcome, Progress, RestoreCheckpoint, SegmentJob, backup_segment,
    restore_segment,
};
use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::context::{Context, failures, metrics};
use crate::message::{Action, Checkpoint, SegmentMessage};
use crate::status::{self, SegmentEnd};

/// Handles a batch of segment messages for `action`, stopping work at `deadline` (the
/// Lambda deadline) less the configured margin.
pub async fn handle(
    ctx: &Arc<Context>,
    action: Action,
    event: SqsEvent,
    deadline: Instant,
) -> SqsBatchResponse {
    let stop_at = deadline
        .checked_sub(ctx.config.deadline_margin)
        .unwrap_or_else(Instant::now);
    let mut failed = Vec::new();
    for record in event.records {
        let id = record.message_id.clone().unwrap_or_default();
        if Instant::now() >= stop_at {
            // No time left to start: SQS hands it out again.
            failed.push(id);
            continue;
        }
        if let Err(e) = process(ctx, action, &record, stop_at).await {
            warn!(message_id = %id, error = %e, "segment message will be retried");
            failed.push(id);
        }
    }
    failures(failed)
}

async fn process(
    ctx: &Arc<Context>,
    action: Action,
    record: &SqsMessage,
    stop_at: Instant,
) -> Result<(), String> {
    let body = record.body.as_deref().unwrap_or_default();
    let message: SegmentMessage = match serde_json::from_str(body) {
        Ok(m) => m,
        Err(e) => {
            // Not a message this system writes: retrying cannot help, so it is consumed.
            error!(body = %body, error = %e, "unreadable segment message dropped");
            return Ok(());
        }
    };
    if message.request.action != action {
        error!(task_id = %message.task_id, "a {} message on the {} queue dropped",
               message.request.action.as_str(), action.as_str());
        return Ok(());
    }
    let task_id = message.task_id.clone();
    let segment = SegmentId(message.segment);
    let job = SegmentJob {
        prefix: message.request.bucket_prefix.clone(),
        segment,
        total_segments: message.request.total_segments,
    };
    let req = &message.request;
    let table = Arc::new(ctx.table(&req.table_region, &req.table_name));
    let bucket = Arc::new(ctx.bucket(&req.bucket_region, &req.bucket_name));
    let progress = Arc::new(Progress::default());
    let status_table = ctx.config.status_tables().for_action(action).to_owned();

    let result = match (&message.checkpoint, action) {
        (None | Some(Checkpoint::Backup(_)), Action::Backup) => {
            let from = match &message.checkpoint {
                Some(Checkpoint::Backup(c)) => c.clone(),
                _ => BackupCheckpoint::default(),
            };
            // Boxed: the pipeline's future is deep, and the binaries' `main` holds all four.
            Box::pin(backup_segment(
                table,
                bucket,
                &job,
                &ctx.backup,
                from,
                stop_at,
                progress.clone(),
            ))
            .await
            .map(|o| match o {
                Outcome::Completed(c) => (true, Checkpoint::Backup(c.clone()), c.items, c.bytes),
                Outcome::Paused(c) => (false, Checkpoint::Backup(c.clone()), c.items, c.bytes),
            })
            .map_err(|e| (e.error.is_retryable(), e.to_string()))
        }
        (None | Some(Checkpoint::Restore(_)), Action::Restore) => {
            let from = match &message.checkpoint {
                Some(Checkpoint::Restore(c)) => c.clone(),
                _ => RestoreCheckpoint::default(),
            };
            Box::pin(restore_segment(
                table,
                bucket,
                &job,
                &ctx.restore,
                from,
                stop_at,
                progress.clone(),
            ))
            .await
            .map(|o| match o {
                Outcome::Completed(c) => (true, Checkpoint::Restore(c.clone()), c.items, c.bytes),
                Outcome::Paused(c) => (false, Checkpoint::Restore(c.clone()), c.items, c.bytes),
            })
            .map_err(|e| (e.error.is_retryable(), e.to_string()))
        }
        _ => Err((false, "the checkpoint does not match the action".to_owned())),
    };
    let snap = progress.snapshot();
    let function = action.as_str();
    metrics(
        function,
        &[
            ("Items", snap.items as f64),
            ("Bytes", snap.bytes as f64),
            ("StoredBytes", snap.stored_bytes as f64),
            ("Batches", snap.batches as f64),
            ("Retries", snap.retries as f64),
        ],
    );
    match result {
        Ok((true, _, items, bytes)) => {
            let counted = status::end_segment(
                &ctx.status,
                &status_table,
                &task_id,
                segment,
                &SegmentEnd::Completed { items, bytes },
            )
            .await
            .map_err(|e| e.to_string())?;
            info!(task_id = %task_id, segment = %segment, items, bytes, counted, "segment completed");
            if counted {
                metrics(function, &[("SegmentsCompleted", 1.0)]);
            }
            Ok(())
        }
        Ok((false, checkpoint, items, _)) => {
            let next = SegmentMessage {
                checkpoint: Some(checkpoint),
                ..message.clone()
            };
            ctx.send_segment(&next, "sending the continuation").await?;
            info!(task_id = %task_id, segment = %segment, items_so_far = items, "segment continues in a new message");
            Ok(())
        }
        Err((retryable, reason)) => {
            error!(task_id = %task_id, segment = %segment, retryable, error = %reason, "segment run failed");
            if let Err(e) =
                status::note_segment_error(&ctx.status, &status_table, &task_id, segment, &reason)
                    .await
            {
                warn!(task_id = %task_id, error = %e, "could not record the segment's error");
            }
            Err(reason)
        }
    }
}
