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
//! - [`demo`]: `solace demo`, the main job end to end, and the building blocks of the
//!   system tests.

pub mod batch;
pub mod demo;
pub mod local;
