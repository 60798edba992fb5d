//! The redrive function: consumes the dead-letter queues. A segment message is re-routed to
//! its work queue up to the redrive limit (the count travels in the message); after that the
//! segment is marked failed, once, with its last recorded error. A dead letter of a
//! cancelled task is counted failed, `cancelled`, at once; one of a task that does not exist
//! is consumed with a structured error.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use solace_codec::SegmentId;
use tracing::{error, info, warn};

use crate::context::{Context, Services};
use crate::error::Error;
use crate::function::Function;
use crate::message::SegmentMessage;
use crate::status::{CANCELLED, Count, SegmentEnd, StatusStore};
use crate::{metrics, records};

pub async fn handle<S: Services>(ctx: &Context<S>, event: SqsEvent) -> SqsBatchResponse {
    records::each(Function::Redrive, event, |record| process(ctx, record)).await
}

async fn process<S: Services>(ctx: &Context<S>, record: SqsMessage) -> Result<(), Error> {
    let body = record.body.as_deref().unwrap_or_default();
    let message = match crate::message::parse_segment_message(body) {
        Ok(m) => m,
        Err(u) => {
            // Neither the body nor a value from it is logged: it may hold key values.
            error!(reason = %u.reason, bytes = u.bytes, sha256 = %u.sha256, "unreadable dead letter dropped");
            return Ok(());
        }
    };
    records::record_task(&message.task_id, Some(message.segment));
    let action = message.request.action;
    let segment = SegmentId(message.segment);
    let table = ctx.config.status_table(action);
    let status = ctx.services.status();
    let Some(task) = status.read_task(table, &message.task_id).await? else {
        // Not this deployment's task: nothing to re-route or count, and retrying cannot
        // change that.
        error!(
            error = "no such task in the status table",
            "dead letter for a task that does not exist consumed"
        );
        metrics::emit("redrive", &[("UnknownTasks", 1.0)]);
        return Ok(());
    };
    let differ = crate::status::mismatches(&task, &message.request, message.segment);
    if !differ.is_empty() {
        error!(error = "the dead letter does not match its task", fields = ?differ, "dead letter consumed");
        metrics::emit("redrive", &[("ForeignMessages", 1.0)]);
        return Ok(());
    }
    if message.redrives < ctx.config.redrive_limit && task.cancelled_at.is_none() {
        let next = SegmentMessage {
            redrives: message.redrives + 1,
            ..message.clone()
        };
        ctx.send_segment(&next, "re-routing").await?;
        warn!(redrive = next.redrives, "segment re-routed");
        metrics::emit("redrive", &[("Redrives", 1.0)]);
        return Ok(());
    }
    let reason = if task.cancelled_at.is_some() {
        CANCELLED.to_owned()
    } else {
        let last = status
            .segment_error(table, &message.task_id, segment)
            .await?;
        format!(
            "failed after {} redrives: {}",
            message.redrives,
            last.as_deref()
                .unwrap_or("no error was recorded (the function timed out or crashed)")
        )
    };
    let end = SegmentEnd::Failed {
        reason: reason.clone(),
    };
    let count = status
        .end_segment(table, &message.task_id, segment, &end)
        .await?;
    error!(?count, reason = %reason, "segment failed");
    if count == Count::Counted {
        metrics::emit(action.as_str(), &[("SegmentsFailed", 1.0)]);
    }
    info!("dead letter consumed");
    Ok(())
}
