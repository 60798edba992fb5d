//! The redrive function: consumes the dead-letter queues. A segment message is re-routed to
//! its work queue up to the redrive limit (the count travels in the message); after that the
//! segment is marked failed, once, with its last recorded error.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use solace_codec::SegmentId;
use tracing::{error, info, warn};

use crate::context::{Context, failures, metrics};
use crate::message::SegmentMessage;
use crate::status::{self, SegmentEnd};

pub async fn handle(ctx: &Context, event: SqsEvent) -> SqsBatchResponse {
    let mut failed = Vec::new();
    for record in event.records {
        let id = record.message_id.clone().unwrap_or_default();
        if let Err(e) = process(ctx, &record).await {
            warn!(message_id = %id, error = %e, "redrive will be retried");
            failed.push(id);
        }
    }
    failures(failed)
}

async fn process(ctx: &Context, record: &SqsMessage) -> Result<(), String> {
    let body = record.body.as_deref().unwrap_or_default();
    let message: SegmentMessage = match serde_json::from_str(body) {
        Ok(m) => m,
        Err(e) => {
            error!(body = %body, error = %e, "unreadable dead letter dropped");
            return Ok(());
        }
    };
    let action = message.request.action;
    let segment = SegmentId(message.segment);
    if message.redrives < ctx.config.redrive_limit {
        let next = SegmentMessage {
            redrives: message.redrives + 1,
            ..message.clone()
        };
        ctx.send_segment(&next, "re-routing").await?;
        warn!(task_id = %message.task_id, segment = %segment, redrive = next.redrives, "segment re-routed");
        metrics("redrive", &[("Redrives", 1.0)]);
        return Ok(());
    }
    let table = ctx.config.status_tables().for_action(action).to_owned();
    let last = status::read_task(&ctx.status, &table, &message.task_id)
        .await
        .map_err(|e| e.to_string())?
        .and_then(|t| t.errors.get(&segment.to_string()).cloned());
    let reason = format!(
        "failed after {} redrives: {}",
        message.redrives,
        last.as_deref()
            .unwrap_or("no error was recorded (the function timed out or crashed)")
    );
    let counted = status::end_segment(
        &ctx.status,
        &table,
        &message.task_id,
        segment,
        &SegmentEnd::Failed {
            reason: reason.clone(),
        },
    )
    .await
    .map_err(|e| e.to_string())?;
    error!(task_id = %message.task_id, segment = %segment, counted, reason = %reason, "segment failed");
    if counted {
        metrics(action.as_str(), &[("SegmentsFailed", 1.0)]);
    }
    info!(task_id = %message.task_id, "dead letter consumed");
    Ok(())
}
