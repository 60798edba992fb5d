//! The backup and restore functions: run the pipeline for one segment until the deadline
//! less a margin, then continue in a new message carrying the checkpoint; the final message
//! of a segment marks it completed in the status table.
//!
//! Before it starts and before each batch, a run asks its gate (docs/protocol.md#gates): a
//! cancelled task's segment is counted failed, `cancelled`; a segment another run counted is
//! left alone; a task that is not in the status table is not run.
//!
//! Errors decide the path (docs/messages.md#errors):
//! - permanent (a corrupt or missing batch, access denied, a table that does not exist):
//!   the segment is marked failed in this invocation, with the reason, counted once;
//! - transient after progress: the segment continues in a new message from the checkpoint
//!   this run reached, so the batches already written are not written again;
//! - transient with no progress: the message goes back to SQS, which retries it and
//!   dead-letters it after the queue's maxReceiveCount; the redrive function decides from
//!   there. The reason is noted on the task's status item.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use solace_codec::SegmentId;
use solace_codec::sdk::SdkItem;
use solace_pipeline::convert::convert_segment;
use solace_pipeline::export_backup::{EXPORT_POLL, ExportCheckpoint, backup_by_export};
use solace_pipeline::{
    BackupCheckpoint, BackupConfig, ErrorKind, Gated, Outcome, PipelineError, Progress,
    RestoreCheckpoint, RestoreConfig, ScanPage, SegmentError, SegmentJob, StoreError, Table,
    WriteResult, backup_segment, restore_segment_gated,
};
use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::context::{Context, Services};
use crate::error::Error;
use crate::function::Function;
use crate::message::{Action, Checkpoint, SegmentMessage};
use crate::status::{CANCELLED, Count, GateState, SegmentEnd, StatusStore};
use crate::{complete, metrics, records};

/// Handles a batch of segment messages for `action`, stopping work at `deadline` (the
/// Lambda deadline) less the configured margin.
pub async fn handle<S: Services>(
    ctx: &Arc<Context<S>>,
    action: Action,
    event: SqsEvent,
    deadline: Instant,
) -> SqsBatchResponse {
    let stop_at = deadline
        .checked_sub(ctx.config.deadline_margin)
        .unwrap_or_else(Instant::now);
    let function = match action {
        Action::Backup | Action::Convert => Function::Backup,
        Action::Restore | Action::Verify => Function::Restore,
    };
    let invocation = deadline.saturating_duration_since(Instant::now());
    if invocation <= ctx.config.deadline_margin {
        // Every message would go back unrun until it is dead-lettered: say why, loudly.
        error!(
            invocation_ms = invocation.as_millis() as u64,
            deadline_margin_ms = ctx.config.deadline_margin.as_millis() as u64,
            "no segment can run: the invocation is not longer than SOLACE_DEADLINE_MARGIN_MS; raise the function's timeout or lower the margin"
        );
        metrics::emit(function.name(), &[("InvocationsTooShort", 1.0)]);
    }
    records::each_concurrently(function, event, |record| async move {
        if Instant::now() >= stop_at {
            // No time left to start: SQS hands it out again.
            return Err(Error::NoTimeLeft);
        }
        process(ctx, action, record, stop_at).await
    })
    .await
}

/// The table a verify "restores" into: it takes every item and keeps none.
#[derive(Debug)]
struct Discard;

impl Table for Discard {
    async fn scan(&self, _: u32, _: u32, _: Option<SdkItem>) -> Result<ScanPage, StoreError> {
        Err(StoreError::new(
            ErrorKind::Permanent,
            "Scan",
            "a verify reads no table",
        ))
    }

    async fn batch_write(&self, _: Vec<SdkItem>) -> Result<WriteResult, StoreError> {
        Ok(WriteResult::default())
    }

    async fn has_items(&self) -> Result<bool, StoreError> {
        Ok(false)
    }
}

/// A run's gate (docs/protocol.md#gates): open while the task is not cancelled and no other
/// run has counted the segment.
struct SegmentGate<S> {
    ctx: Arc<Context<S>>,
    table: String,
    task_id: String,
    segment: SegmentId,
}

impl<S: Services> solace_pipeline::Gate for SegmentGate<S> {
    async fn open(&self, _step: u64) -> Result<bool, StoreError> {
        let state = self
            .ctx
            .services
            .status()
            .gate(&self.table, &self.task_id, self.segment)
            .await
            .map_err(|e| {
                let kind = if e.retryable {
                    ErrorKind::Transient
                } else {
                    ErrorKind::Permanent
                };
                StoreError::new(kind, "GetItem", e.to_string())
            })?;
        Ok(state == GateState::Open)
    }
}

/// How a run of the pipeline ended, for either action.
enum Run {
    Completed {
        items: u64,
        bytes: u64,
    },
    Paused(Checkpoint),
    /// Another run holds the segment's chain: this one wrote nothing more.
    Fenced,
    Failed {
        error: PipelineError,
        /// The checkpoint the run reached, when it is past the one it started from.
        progressed: Option<Checkpoint>,
    },
}

fn run_of<C: Clone>(
    result: Result<Outcome<C>, SegmentError<C>>,
    next_batch: impl Fn(&C) -> u64,
    totals: impl Fn(&C) -> (u64, u64),
    wrap: impl Fn(C) -> Checkpoint,
    from: u64,
) -> Run {
    match result {
        Ok(Outcome::Completed(c)) => {
            let (items, bytes) = totals(&c);
            Run::Completed { items, bytes }
        }
        Ok(Outcome::Paused(c)) => Run::Paused(wrap(c)),
        Ok(Outcome::Fenced(_)) => Run::Fenced,
        Err(SegmentError { checkpoint, error }) => Run::Failed {
            progressed: (next_batch(&checkpoint) > from).then(|| wrap(checkpoint)),
            error,
        },
    }
}

async fn process<S: Services>(
    ctx: &Arc<Context<S>>,
    action: Action,
    record: SqsMessage,
    stop_at: Instant,
) -> Result<(), Error> {
    let body = record.body.as_deref().unwrap_or_default();
    let message = match crate::message::parse_segment_message(body) {
        Ok(m) => m,
        Err(u) => {
            // Not a message this system writes: retrying cannot help, so it is consumed.
            // Neither the body nor a value from it is logged: it may hold key values.
            error!(reason = %u.reason, bytes = u.bytes, sha256 = %u.sha256, "unreadable segment message dropped");
            return Ok(());
        }
    };
    records::record_task(&message.task_id, Some(message.segment));
    // The restore function also verifies (a restore that writes no table).
    let runs_here = message.request.action == action
        || (action == Action::Restore && message.request.action == Action::Verify)
        || (action == Action::Backup && message.request.action == Action::Convert);
    if !runs_here {
        error!(
            "a {} message on the {} queue dropped",
            message.request.action.as_str(),
            action.as_str()
        );
        return Ok(());
    }
    let action = message.request.action;
    let segment = SegmentId(message.segment);
    let job = SegmentJob {
        prefix: message.request.bucket_prefix.clone(),
        segment,
        total_segments: message.request.total_segments,
    };
    let req = &message.request;
    let status_table = ctx.config.status_table(action);
    // Before anything is read or written: a message that is not its task's (forged, or sent
    // to the wrong deployment), a cancelled task, a segment another run counted.
    let Some(task) = ctx
        .services
        .status()
        .read_task(status_table, &message.task_id)
        .await?
    else {
        error!(
            error = "no such task in the status table",
            "segment message consumed"
        );
        return Ok(());
    };
    let differ = crate::status::mismatches(&task, &message.request, message.segment);
    if !differ.is_empty() {
        error!(error = "the message does not match its task", fields = ?differ, "segment message consumed");
        metrics::emit(action.as_str(), &[("ForeignMessages", 1.0)]);
        return Ok(());
    }
    match ctx
        .services
        .status()
        .gate(status_table, &message.task_id, segment)
        .await?
    {
        GateState::Open => {}
        GateState::Cancelled => return count_cancelled(ctx, &message).await,
        GateState::Ended => {
            // The run that counted it may have died before the completion record: this
            // redelivery writes it (a record already there is left as it is).
            info!("the segment is counted already: this message is consumed");
            return complete::record_if_done(ctx, &message.task_id, &message.request).await;
        }
        GateState::NoTask => {
            error!("no such task in the status table: the segment message is consumed");
            return Ok(());
        }
    }
    let gate = Arc::new(SegmentGate {
        ctx: ctx.clone(),
        table: status_table.to_owned(),
        task_id: message.task_id.clone(),
        segment,
    });
    let bucket = Arc::new(ctx.services.bucket(&req.bucket_region, &req.bucket_name));
    let progress = Arc::new(Progress::under(ctx.progress.clone()));

    let run = match (&message.checkpoint, action) {
        (None | Some(Checkpoint::Export(_)), Action::Backup) if req.by_export() => {
            let from = match &message.checkpoint {
                Some(Checkpoint::Export(c)) => c.clone(),
                _ => ExportCheckpoint::default(),
            };
            let table = ctx.services.table(&req.table_region, &req.table_name);
            let config = BackupConfig {
                retention: req.retention(),
                ..ctx.backup.clone()
            };
            let result = backup_by_export(
                &table,
                &*bucket,
                &req.bucket_name,
                &message.task_id,
                &job,
                &config,
                from.clone(),
                stop_at,
                EXPORT_POLL,
            )
            .await;
            match result {
                Ok(Outcome::Completed(c)) => {
                    if c.unverified {
                        let note = format!(
                            "unverified: export {} wrote no manifest-files.json; its data files were found by listing",
                            c.export_arn.as_deref().unwrap_or("(unnamed)")
                        );
                        ctx.services
                            .status()
                            .add_note(status_table, &message.task_id, &note)
                            .await?;
                    }
                    Run::Completed {
                        items: c.items,
                        bytes: c.bytes,
                    }
                }
                Ok(Outcome::Paused(c)) => Run::Paused(Checkpoint::Export(c)),
                Ok(Outcome::Fenced(_)) => Run::Fenced,
                Err(SegmentError { checkpoint, error }) => Run::Failed {
                    progressed: (checkpoint.export_arn != from.export_arn)
                        .then_some(Checkpoint::Export(checkpoint)),
                    error,
                },
            }
        }
        (None | Some(Checkpoint::Convert(_)), Action::Convert) => {
            let from = match &message.checkpoint {
                Some(Checkpoint::Convert(c)) => c.clone(),
                _ => RestoreCheckpoint::default(),
            };
            let start = from.next_batch;
            match req.convert_folder(&message.task_id) {
                Some((to_bucket, folder)) => {
                    let dest = ctx.services.bucket(&req.bucket_region, to_bucket);
                    let result = convert_segment(
                        &*bucket,
                        &dest,
                        &job,
                        &folder,
                        &ctx.restore,
                        from,
                        stop_at,
                        &progress,
                    )
                    .await;
                    run_of(
                        result,
                        |c: &RestoreCheckpoint| c.next_batch,
                        |c| (c.items, c.bytes),
                        Checkpoint::Convert,
                        start,
                    )
                }
                None => Run::Failed {
                    error: PipelineError::Internal("a convert message names no to-bucket".into()),
                    progressed: None,
                },
            }
        }
        (None | Some(Checkpoint::Backup(_)), Action::Backup) => {
            let from = match &message.checkpoint {
                Some(Checkpoint::Backup(c)) => c.clone(),
                _ => BackupCheckpoint::default(),
            };
            let start = from.next_batch;
            let fence = Gated {
                fence: ctx.services.fence(status_table, &message.task_id, segment),
                gate: gate.clone(),
            };
            let table = Arc::new(ctx.services.table(&req.table_region, &req.table_name));
            let config = BackupConfig {
                retention: req.retention(),
                ..ctx.backup.clone()
            };
            // Boxed: the pipeline's future is deep, and the binaries' `main` holds all four.
            let result = Box::pin(backup_segment(
                table,
                bucket,
                fence,
                &job,
                &config,
                from,
                stop_at,
                progress.clone(),
            ))
            .await;
            run_of(
                result,
                |c: &BackupCheckpoint| c.next_batch,
                |c| (c.items, c.bytes),
                Checkpoint::Backup,
                start,
            )
        }
        (None | Some(Checkpoint::Restore(_)), Action::Restore) => {
            let from = match &message.checkpoint {
                Some(Checkpoint::Restore(c)) => c.clone(),
                _ => RestoreCheckpoint::default(),
            };
            let start = from.next_batch;
            let table = Arc::new(ctx.services.table(&req.table_region, &req.table_name));
            let result = Box::pin(restore_segment_gated(
                table,
                bucket,
                &gate,
                &job,
                &ctx.restore,
                from,
                stop_at,
                progress.clone(),
            ))
            .await;
            run_of(
                result,
                |c: &RestoreCheckpoint| c.next_batch,
                |c| (c.items, c.bytes),
                Checkpoint::Restore,
                start,
            )
        }
        (None | Some(Checkpoint::Restore(_)), Action::Verify) => {
            let from = match &message.checkpoint {
                Some(Checkpoint::Restore(c)) => c.clone(),
                _ => RestoreCheckpoint::default(),
            };
            let start = from.next_batch;
            // Every check a restore makes before it writes, and no write.
            let config = RestoreConfig {
                write_capacity_per_second: None,
                ..ctx.restore.clone()
            };
            let result = Box::pin(restore_segment_gated(
                Arc::new(Discard),
                bucket,
                &gate,
                &job,
                &config,
                from,
                stop_at,
                progress.clone(),
            ))
            .await;
            run_of(
                result,
                |c: &RestoreCheckpoint| c.next_batch,
                |c| (c.items, c.bytes),
                Checkpoint::Restore,
                start,
            )
        }
        _ => Run::Failed {
            error: PipelineError::Internal("the checkpoint does not match the action".into()),
            progressed: None,
        },
    };
    let snap = progress.snapshot();
    let function = action.as_str();
    metrics::emit(
        function,
        &[
            ("Items", snap.items as f64),
            ("Bytes", snap.bytes as f64),
            ("StoredBytes", snap.stored_bytes as f64),
            ("Batches", snap.batches as f64),
            ("Retries", snap.retries as f64),
        ],
    );
    let status = ctx.services.status();
    match run {
        Run::Completed { items, bytes } => {
            let end = SegmentEnd::Completed { items, bytes };
            let count = status
                .end_segment(status_table, &message.task_id, segment, &end)
                .await?;
            counted(function, count, "SegmentsCompleted");
            info!(items, bytes, ?count, "segment completed");
            if count != Count::NoTask {
                complete::record_if_done(ctx, &message.task_id, &message.request).await?;
            }
            Ok(())
        }
        Run::Fenced => {
            if status.gate(status_table, &message.task_id, segment).await? == GateState::Cancelled {
                return count_cancelled(ctx, &message).await;
            }
            info!("another run holds the segment's chain, or counted it: this one stops");
            Ok(())
        }
        Run::Paused(checkpoint) => {
            continue_from(ctx, &message, checkpoint).await?;
            info!(
                items_so_far = snap.items,
                "segment continues in a new message"
            );
            Ok(())
        }
        Run::Failed { error, progressed } => {
            let reason = error.to_string();
            let retryable = error.is_retryable();
            error!(retryable, error = %reason, "segment run failed");
            if !retryable {
                // Retrying cannot help: the segment ends now, with the reason.
                let end = SegmentEnd::Failed { reason };
                let count = status
                    .end_segment(status_table, &message.task_id, segment, &end)
                    .await?;
                counted(function, count, "SegmentsFailed");
                if count != Count::NoTask {
                    complete::record_if_done(ctx, &message.task_id, &message.request).await?;
                }
                return Ok(());
            }
            if let Err(e) = status
                .note_segment_error(status_table, &message.task_id, segment, &reason)
                .await
            {
                warn!(error = %e, "could not record the segment's error");
            }
            match progressed {
                // Keep what this run did: the next one starts where it stopped.
                Some(checkpoint) => {
                    continue_from(ctx, &message, checkpoint).await?;
                    info!("segment continues past its last durable batch after a transient error");
                    Ok(())
                }
                None => Err(Error::Pipeline {
                    segment: segment.to_string(),
                    source: error,
                }),
            }
        }
    }
}

/// Counts the segment of a cancelled task failed, `cancelled` (docs/request.md#cancel).
async fn count_cancelled<S: Services>(
    ctx: &Context<S>,
    message: &SegmentMessage,
) -> Result<(), Error> {
    let action = message.request.action;
    let end = SegmentEnd::Failed {
        reason: CANCELLED.to_owned(),
    };
    let count = ctx
        .services
        .status()
        .end_segment(
            ctx.config.status_table(action),
            &message.task_id,
            SegmentId(message.segment),
            &end,
        )
        .await?;
    counted(action.as_str(), count, "SegmentsFailed");
    info!(?count, "the task is cancelled: the segment stops");
    if count != Count::NoTask {
        complete::record_if_done(ctx, &message.task_id, &message.request).await?;
    }
    Ok(())
}

async fn continue_from<S: Services>(
    ctx: &Context<S>,
    message: &SegmentMessage,
    checkpoint: Checkpoint,
) -> Result<(), Error> {
    let next = SegmentMessage {
        checkpoint: Some(checkpoint),
        ..message.clone()
    };
    ctx.send_segment(&next, "sending the continuation").await
}

/// Logs what a count did; a count refused for want of a task is the message's problem, not
/// the deployment's: it is consumed with a structured error.
fn counted(function: &str, count: Count, metric: &str) {
    match count {
        Count::Counted => metrics::emit(function, &[(metric, 1.0)]),
        Count::AlreadyCounted => {}
        Count::NoTask => error!("no such task in the status table: the segment is not counted"),
    }
}
