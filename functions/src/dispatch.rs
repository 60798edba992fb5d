//! One invocation's event through its function's handler: what the Lambda runtime and the
//! local runner both call.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use tokio::time::Instant;

use crate::context::{Context, Services};
use crate::function::Function;
use crate::message::Action;

/// Runs `event` through `function`'s handler; the AWS operations it calls are recorded for
/// it ([`crate::operations`]). `deadline` is the invocation's.
pub async fn dispatch<S: Services>(
    ctx: &Arc<Context<S>>,
    function: Function,
    event: SqsEvent,
    deadline: Instant,
) -> SqsBatchResponse {
    // Boxed: the handlers' futures are deep, and each binary's `main` holds them all.
    let handler: std::pin::Pin<
        Box<dyn std::future::Future<Output = SqsBatchResponse> + Send + '_>,
    > = Box::pin(async move {
        match function {
            Function::Request => crate::request::handle(ctx, event, deadline).await,
            Function::Backup => crate::worker::handle(ctx, Action::Backup, event, deadline).await,
            Function::Restore => crate::worker::handle(ctx, Action::Restore, event, deadline).await,
            Function::Redrive => crate::redrive::handle(ctx, event).await,
        }
    });
    crate::operations::scope(function, handler).await
}
