//! Test support for Solace: a real AWS wire-protocol emulator (moto's server mode, docs/settings.md#running-locally)
//! for each test binary, SDK clients pointed at it, and fixtures with unique names so the
//! tests of one binary can share one emulator.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use solace_testkit::{Emulator, TableKeys, DEFAULT_REGION};
//!
//! let config = Emulator::shared().sdk_config(DEFAULT_REGION).await;
//! let dynamodb = solace_testkit::dynamodb_client(&config);
//! let table = solace_testkit::unique_name("orders");
//! solace_testkit::create_table(&dynamodb, &table, TableKeys::PkSk).await?;
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`emulator`]: [`Emulator`], one moto server per test binary (or `SOLACE_TEST_ENDPOINT`),
//!   always stopped with the test process.
//! - [`clients`]: [`sdk_config`] and the DynamoDB, S3 and SQS clients built from it.
//! - [`faults`]: [`FaultProxy`], a fault-injecting proxy between the SDK clients and the
//!   emulator (throttles, 5xx, resets before and after forwarding, delays, truncations).
//! - [`fixtures`]: unique names, tables, buckets and queues to test against.
//! - [`hcl`]: a structural evaluator of Terraform, to check `infra/` against the code.

pub mod clients;
pub mod emulator;
pub mod faults;
pub mod fixtures;
pub mod hcl;

pub use clients::{DEFAULT_REGION, dynamodb_client, s3_client, sdk_config, sqs_client};
pub use emulator::{ENDPOINT_ENV, Emulator};
pub use faults::{Fault, FaultProxy, Plan};
pub use fixtures::{
    PK, QueueWithDlq, SK, TableKeys, create_bucket, create_queue, create_queue_with_dlq,
    create_table, create_table_with_everything, put_export, unique_name, wait_table_active,
};
