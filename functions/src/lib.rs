//! Solace's four Lambda functions and what they share. The `solace` command, the local
//! runner and the demo live in the `solace-cli` crate.
//!
//! # Layout
//! - [`function`]: the four functions by name.
//! - [`message`]: the request (docs/request.md) and the per-segment messages
//!   (docs/messages.md).
//! - [`config`]: settings from environment variables (docs/settings.md), which function reads
//!   which, and the default queue and table names.
//! - [`error`]: typed errors that say whether a later delivery can fix them.
//! - [`context`]: what a function keeps between invocations; the [`context::Services`] seam
//!   and its AWS implementation.
//! - [`status`]: the status tables behind [`status::StatusStore`], segments counted once.
//! - [`queues`]: sending messages, behind [`queues::Queues`].
//! - [`records`]: the one SQS batch loop (a span per message, partial batch failures).
//! - [`request`], [`worker`] (backup and restore), [`redrive`]: the handlers.
//! - [`fence`]: a backup segment's chain of batches, fenced in the status table.
//! - [`complete`]: the completion record a backup gets once its last segment is counted.
//! - [`dispatch`]: an invocation's event through its function's handler.
//! - [`operations`]: the AWS operations each function calls (declared and recorded).
//! - [`metrics`]: CloudWatch Embedded Metric Format.
//! - [`lambda`]: the thin `lambda_runtime` entry point of the function binaries.
//! - `mem` (feature `mem`): in-memory services for the handlers' unit tests.
//! - `fuzzing` (feature `fuzzing`): the readers of untrusted text as properties over
//!   arbitrary bytes, for the fuzz targets in `fuzz/`.

pub mod allow;
pub mod complete;
pub mod config;
pub mod context;
pub mod dispatch;
pub mod error;
pub mod fence;
pub mod function;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod lambda;
#[cfg(feature = "mem")]
pub mod mem;
pub mod message;
pub mod metrics;
pub mod operations;
pub mod queues;
pub mod records;
pub mod redrive;
pub mod request;
pub mod status;
pub mod worker;

pub use error::Error;
pub use function::Function;

/// Whether this process runs inside AWS Lambda.
pub fn in_lambda() -> bool {
    std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some()
}
