//! The one SQS batch loop every handler runs: each record handled in a tracing span of its
//! own (message id, and the task id, segment and batch as the handler learns them), and a
//! partial batch response naming exactly the records SQS should hand out again, so one bad
//! message never fails its neighbours.

use std::future::Future;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use tracing::{Instrument, field, warn};

use crate::error::Error;
use crate::function::Function;

/// Runs `handle` on each record in order. `Ok` consumes the record; `Err` hands it back to
/// SQS (the handlers return `Err` only for what a later delivery can fix).
pub async fn each<F, Fut>(function: Function, event: SqsEvent, mut handle: F) -> SqsBatchResponse
where
    F: FnMut(SqsMessage) -> Fut,
    Fut: Future<Output = Result<(), Error>>,
{
    let mut failed = Vec::new();
    for record in event.records {
        let id = record.message_id.clone().unwrap_or_default();
        let span = message_span(function, &id);
        let result = handle(record).instrument(span.clone()).await;
        if let Err(e) = result {
            span.in_scope(|| {
                warn!(retryable = e.is_retryable(), error = %e, "message handed back to the queue");
            });
            failed.push(id);
        }
    }
    failures(failed)
}

/// Runs `handle` on every record at once (the backup and restore functions: each record is
/// a segment that may fill the whole invocation, so a record run after another would find
/// no time left and come back unrun, counting a receive toward the dead-letter queue every
/// time). `Ok` consumes a record; `Err` hands it back.
pub async fn each_concurrently<F, Fut>(
    function: Function,
    event: SqsEvent,
    handle: F,
) -> SqsBatchResponse
where
    F: Fn(SqsMessage) -> Fut,
    Fut: Future<Output = Result<(), Error>>,
{
    let runs = event.records.into_iter().map(|record| {
        let id = record.message_id.clone().unwrap_or_default();
        let span = message_span(function, &id);
        let run = handle(record).instrument(span.clone());
        async move {
            let result = run.await;
            result.err().map(|e| {
                span.in_scope(|| {
                    warn!(retryable = e.is_retryable(), error = %e, "message handed back to the queue");
                });
                id
            })
        }
    });
    failures(
        futures::future::join_all(runs)
            .await
            .into_iter()
            .flatten()
            .collect(),
    )
}

fn message_span(function: Function, id: &str) -> tracing::Span {
    tracing::info_span!(
        "message",
        function = function.name(),
        message_id = %id,
        task_id = field::Empty,
        segment = field::Empty,
        batch = field::Empty,
    )
}

/// Names the task and segment a record belongs to on the current record's span.
pub fn record_task(task_id: &str, segment: Option<u32>) {
    let span = tracing::Span::current();
    span.record("task_id", task_id);
    if let Some(segment) = segment {
        span.record("segment", format!("0x{segment:x}"));
    }
}

/// A partial batch response failing the given message ids.
pub fn failures(ids: Vec<String>) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = ids
        .into_iter()
        .map(|id| {
            let mut f = BatchItemFailure::default();
            f.item_identifier = id;
            f
        })
        .collect();
    response
}
