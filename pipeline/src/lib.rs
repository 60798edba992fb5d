//! Solace's pipeline: what a backup or restore function runs for its one segment.
//!
//! # Layout
//! - [`store`]: the [`Table`] and [`Objects`] traits the stages call, and error kinds.
//! - [`aws`]: the DynamoDB and S3 adapters, each client built for its own region.
//! - [`backup`]: scan → encode → upload, resumable from a [`BackupCheckpoint`].
//! - [`restore`]: download → decode → BatchWriteItem, resumable from a [`RestoreCheckpoint`].
//! - `stage` (private): what backup and restore share: tasks aborted with their run, and how
//!   an error ends a run.
//! - [`retry`]: backoff with jitter under a budget; the consumed-capacity limiter.
//! - [`segment`]: jobs, checkpoints, outcomes, errors.
//! - [`progress`]: the live [`Progress`] counters a run updates.
//! - `sim` (feature `sim`): in-memory, latency-simulated stores for tests and benchmarks.
//!
//! The objects a backup writes (batch keys, [`SegmentMarker`]) are defined by
//! `solace_codec::layout`; the stages write and read them only through it.
//!
//! Modules import without circles (`tests/no_import_cycles.rs`): `progress` and `store` use
//! nothing else of the crate; `retry` uses them; `segment` uses `retry`; `stage` uses
//! `segment` and `retry`; `backup` and `restore` use all of these; `aws` and `sim` use only
//! `store`.

pub mod aws;
pub mod backup;
pub mod progress;
pub mod restore;
pub mod retry;
pub mod segment;
#[cfg(feature = "sim")]
pub mod sim;
mod stage;
pub mod store;

pub use backup::{BackupConfig, backup_segment};
pub use progress::{Progress, ProgressSnapshot};
pub use restore::{RestoreConfig, restore_segment};
pub use retry::{CapacityLimiter, Retrier, RetryError, RetryPolicy};
pub use segment::{
    BackupCheckpoint, Outcome, PipelineError, RestoreCheckpoint, SegmentError, SegmentJob,
};
pub use solace_codec::layout::SegmentMarker;
pub use store::{ErrorKind, Objects, ScanPage, StoreError, Table, WriteResult};
