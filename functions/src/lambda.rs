//! The thin `lambda_runtime` entry point the four function binaries share: logging,
//! configuration and clients once, then the runtime loop.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{LambdaEvent, service_fn};
use tokio::time::Instant;

use crate::config::Config;
use crate::context::{AwsServices, Context};
use crate::dispatch::dispatch;
use crate::function::Function;

/// Logs to stderr, level from [`crate::config::LOG_LEVEL_VAR`] (default `info`); JSON for
/// CloudWatch when `json`.
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

/// The `main` of a function binary.
pub async fn main(function: Function) -> Result<(), lambda_runtime::Error> {
    init_logging(true);
    let config = Config::from_env()?;
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let services = AwsServices::new(sdk, &config);
    let ctx = Context::new(config, services);
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
