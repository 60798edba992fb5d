//! Solace's functions and the `solace` command.
//!
//! # Layout
//! - [`message`]: the request (SPEC §1) and the per-segment messages.
//! - [`config`]: settings from environment variables (see `CONTRACT.md`), and which
//!   function reads which.
//! - [`context`]: clients built once per function, partial batch responses, EMF metrics.
//! - [`request`], [`worker`] (backup and restore), [`redrive`]: the four handlers.
//! - [`operations`]: the AWS operations each function calls (declared and recorded).
//! - [`status`]: the status tables, counted exactly once per segment.
//! - [`local`]: `solace local`, the four handlers fed from real queues with Lambda's SQS
//!   semantics.
//! - [`lambda`]: the thin `lambda_runtime` entry point the function binaries share.
//! - [`cli_batch`]: `solace batch encode|decode`.

pub mod cli_batch;
pub mod config;
pub mod context;
pub mod demo;
pub mod lambda;
pub mod local;
pub mod message;
pub mod operations;
pub mod redrive;
pub mod request;
pub mod status;
pub mod worker;

/// Whether this process runs inside AWS Lambda.
pub fn in_lambda() -> bool {
    std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some()
}
