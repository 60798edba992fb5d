//! The thin `lambda_runtime` entry point the four function binaries share.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{LambdaEvent, service_fn};
use tokio::time::Instant;

use crate::config::Config;
use crate::context::Context;
use crate::message::Action;

/// The four functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Function {
    Request,
    Backup,
    Restore,
    Redrive,
}

impl Function {
    pub const ALL: [Function; 4] = [
        Function::Request,
        Function::Backup,
        Function::Restore,
        Function::Redrive,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Function::Request => "request",
            Function::Backup => "backup",
            Function::Restore => "restore",
            Function::Redrive => "redrive",
        }
    }
}

/// Runs one invocation's event through the function's handler, as `function`: the AWS
/// operations it calls are recorded for it ([`crate::operations`]).
pub async fn dispatch(
    ctx: &Arc<Context>,
    function: Function,
    event: SqsEvent,
    deadline: Instant,
) -> SqsBatchResponse {
    // Boxed: the handlers' futures are deep, and each binary's `main` holds them all.
    let handler: std::pin::Pin<
        Box<dyn std::future::Future<Output = SqsBatchResponse> + Send + '_>,
    > = Box::pin(async move {
        match function {
            Function::Request => crate::request::handle(ctx, event).await,
            Function::Backup => crate::worker::handle(ctx, Action::Backup, event, deadline).await,
            Function::Restore => crate::worker::handle(ctx, Action::Restore, event, deadline).await,
            Function::Redrive => crate::redrive::handle(ctx, event).await,
        }
    });
    crate::operations::scope(function, handler).await
}

/// JSON logs for CloudWatch, level from [`crate::config::LOG_LEVEL_VAR`] (default `info`).
pub fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env(crate::config::LOG_LEVEL_VAR)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().flatten_event(true).without_time().try_init()
    } else {
        builder.try_init()
    };
}

/// The `main` of a function binary: logging, configuration and clients once, then the
/// runtime loop.
pub async fn main(function: Function) -> Result<(), lambda_runtime::Error> {
    init_logging(true);
    let config = Config::from_env()?;
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let ctx = Context::new(config, sdk);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let ctx = ctx.clone();
        async move {
            let deadline = instant_of(event.context.deadline);
            Ok::<_, lambda_runtime::Error>(dispatch(&ctx, function, event.payload, deadline).await)
        }
    }))
    .await
}

/// The Lambda deadline (milliseconds since the epoch) as an `Instant`.
fn instant_of(deadline_ms: u64) -> Instant {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    Instant::now() + Duration::from_millis(deadline_ms.saturating_sub(now_ms))
}
