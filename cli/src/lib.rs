//! The `solace` command's library: what only the operator or the developer runs, never a
//! Lambda function.
//!
//! # Layout
//! - [`batch`]: `solace batch encode|decode`, one batch object to and from item lines.
//! - [`local`]: `solace local`, the four handlers fed from real queues with Lambda's SQS
//!   semantics. It lives here, not in `solace-functions`, because it is a developer's tool:
//!   it needs queue and table creation, polling and deleting, none of which a Lambda
//!   function does, and it reaches the handlers only through
//!   [`solace_functions::dispatch::dispatch`], the same door the Lambda runtime uses.
//! - [`plan`]: `solace plan`, the model of docs/one-terabyte.md as a pure function.
//! - [`demo`]: `solace demo`, the main job end to end, and the building blocks of the
//!   system tests.

pub mod batch;
pub mod demo;
pub mod deploy;
pub mod direct;
pub mod error;
pub mod local;
pub mod ls;
pub mod ops;
pub mod plan;
pub mod report;
pub mod url;

/// Logs of the operator commands: warnings and errors on stderr (`RUST_LOG` decides), so
/// stdout stays data.
///
/// By default the request handler's own log of a rejection is off (the command reports the
/// refusal itself; direct mode runs that handler in this process), and so are the AWS
/// SDK's warnings while it looks for a region or credentials (the command's own error says
/// what is missing).
pub fn logging() {
    use std::io::IsTerminal as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(
            "warn,aws_config=error,aws_smithy_runtime=error,solace_functions::request=off",
        )
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}
